/*
 * sealed_row.h — reading an AES-256-GCM envelope (lib/masterkey.h) back
 * from the hex text columns the tables keep it in (upstream_keys, secrets,
 * and the data-key columns the master-key re-wrap moves).
 */
#ifndef TSR_DB_SEALED_ROW_H
#define TSR_DB_SEALED_ROW_H

#include <libpq-fe.h>
#include "../lib/masterkey.h"

/*
 * The data key of an envelope from row `row` of r: wrapped_dek (hex) in
 * column col, dek_nonce (hex) in col + 1, master_key_id in col + 2.
 * TSR_INVALID when a column is not hex of the right length.
 */
tsr_rc db_sealed_key_from_row(const PGresult *r, int row, int col, struct sealed *out) TSR_WUR;
/*
 * A whole envelope: ciphertext (hex) in column col, nonce (hex) in col + 1,
 * then the data key as db_sealed_key_from_row at col + 2. out is
 * overwritten; free it with sealed_free() (also after a failure).
 */
tsr_rc db_sealed_from_row(const PGresult *r, int row, int col, struct sealed *out) TSR_WUR;

/* An envelope as the hex text its columns take: ct (malloc'd), nonce, wrapped_dek, dek_nonce. */
struct sealed_hex {
	char *ct;
	char nonce[25], wdek[97], dnonce[25];
};
/* Fill h from s (TSR_INTERNAL: out of memory); free with db_sealed_hex_free(). */
tsr_rc db_sealed_hex(const struct sealed *s, struct sealed_hex *h) TSR_WUR;
void db_sealed_hex_free(struct sealed_hex *h);

#endif
