/*
 * auditlog_line.c — see auditlog_line.h. Keys and order are those of the
 * jansson encoder this replaced (json_dumps(JSON_COMPACT) of an object built
 * field by field); tests/unit/test_audit_line.c keeps that encoder as the
 * reference and compares byte for byte.
 */
#include <string.h>

#include "auditlog_line.h"
#include "../lib/json_write.h"

/* key is the literal text before the value: ,"name": */
static tsr_rc put_str(struct buf *out, tsr_rc rc, const char *key, const char *v)
{
	if (rc == TSR_OK)
		rc = buf_append(out, key, strlen(key));
	return rc == TSR_OK ? json_write_str(out, v) : rc;
}

static tsr_rc put_int(struct buf *out, tsr_rc rc, const char *key, int64_t v)
{
	if (rc == TSR_OK)
		rc = buf_append(out, key, strlen(key));
	return rc == TSR_OK ? json_write_int(out, v) : rc;
}

tsr_rc auditlog_line(struct buf *out, const struct audit_event *e)
{
	tsr_rc rc = TSR_OK;
#define S(f) rc = put_str(out, rc, ",\"" #f "\":", e->f)
#define I(f) rc = put_int(out, rc, ",\"" #f "\":", e->f)
	rc = put_int(out, rc, "{\"at_us\":", e->at_us);
	S(event_id); S(actor); I(actor_user_id); S(actor_addr); S(action); S(target); S(outcome); I(user_id);
	I(repo_id); I(credential_id); S(route); S(model); S(upstream); I(upstream_key_id); S(decision); S(rule_hits);
	I(req_bytes); I(resp_bytes); S(req_sha256_hex); I(status); I(latency_us); I(tokens_in); I(tokens_out);
	S(detail);
#undef S
#undef I
	return rc == TSR_OK ? buf_append(out, "}\n", 2) : rc;
}
