/*
 * libFuzzer target: offline verification of an audit export
 * (admin/audit_check.c) reads files auditors receive and the stream the CLI
 * downloads from tesserad: JSON Lines or CSV records, seal lines and the
 * verification record, cut into arbitrary chunks. It must never crash, never
 * read out of bounds, and never call garbage verified.
 * Build: ../configure CC=clang --enable-fuzzers && make tests/fuzz/fuzz_audit_export
 * Run:   tests/fuzz/fuzz_audit_export ../tests/fuzz/corpus/audit_export
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/audit_check.h"
#include "lib/audit_export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a fixed trusted key: nothing random can be signed by it */
	struct audit_pubkey key;
	memset(&key, 0, sizeof(key));
	memset(key.pub, 0x42, sizeof(key.pub));
	audit_key_id(key.pub, key.id);
	struct audit_check *k;
	if (audit_check_new(&key, 1, NULL, &k) != TSR_OK)
		return 0;
	/* the first byte picks the chunking */
	size_t step = size ? (size_t)data[0] % 17 + 1 : 1;
	for (size_t off = size ? 1 : 0; off < size; off += step)
		audit_check_feed(k, (const char *)data + off, off + step <= size ? step : size - off);
	if (audit_check_finish(k))
		abort(); /* without a valid signature by the trusted key nothing verifies */
	audit_check_free(k);

	/* the CSV record reader on its own */
	struct audit_parsed p;
	bool more;
	char err[200];
	if (audit_csv_parse((const char *)data, size, &p, &more, err, sizeof(err)) == TSR_OK)
		audit_parsed_free(&p);
	return 0;
}
