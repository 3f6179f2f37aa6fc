/*
 * gateway_detail.c — see gateway_detail.h. The keys below must stay in
 * bytewise order (JSON_SORT_KEYS): classifications < client_gone <
 * overhead_us < stream < ttfb_us < upstream_error < upstream_us.
 */
#include "gateway_detail.h"
#include "../lib/json_write.h"

tsr_rc gateway_detail_json(struct buf *out, const struct gateway_detail *d)
{
	tsr_rc rc = buf_puts(out, "{\"classifications\":");
	if (rc == TSR_OK)
		rc = json_write_str(out, d->classifications);
	if (rc == TSR_OK && d->client_gone)
		rc = buf_puts(out, ",\"client_gone\":true");
	if (rc == TSR_OK)
		rc = buf_puts(out, ",\"overhead_us\":");
	if (rc == TSR_OK)
		rc = json_write_int(out, d->overhead_us);
	if (rc == TSR_OK)
		rc = buf_puts(out, d->stream ? ",\"stream\":true,\"ttfb_us\":" : ",\"stream\":false,\"ttfb_us\":");
	if (rc == TSR_OK)
		rc = json_write_int(out, d->ttfb_us);
	if (rc == TSR_OK && d->upstream_error)
		rc = buf_puts(out, ",\"upstream_error\":");
	if (rc == TSR_OK && d->upstream_error)
		rc = json_write_str(out, d->upstream_error);
	if (rc == TSR_OK)
		rc = buf_puts(out, ",\"upstream_us\":");
	if (rc == TSR_OK)
		rc = json_write_int(out, d->upstream_us);
	return rc == TSR_OK ? buf_puts(out, "}") : rc;
}
