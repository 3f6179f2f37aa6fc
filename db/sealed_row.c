/*
 * sealed_row.c — see sealed_row.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sealed_row.h"
#include "../lib/crypto.h"

tsr_rc db_sealed_key_from_row(const PGresult *r, int row, int col, struct sealed *out)
{
	if (!crypto_unhex(PQgetvalue(r, row, col), out->wrapped_dek, sizeof(out->wrapped_dek)) ||
	    !crypto_unhex(PQgetvalue(r, row, col + 1), out->dek_nonce, sizeof(out->dek_nonce)))
		return TSR_INVALID;
	snprintf(out->master_key_id, sizeof(out->master_key_id), "%s", PQgetvalue(r, row, col + 2));
	return TSR_OK;
}

tsr_rc db_sealed_from_row(const PGresult *r, int row, int col, struct sealed *out)
{
	memset(out, 0, sizeof(*out));
	const char *ct = PQgetvalue(r, row, col);
	size_t n = strlen(ct) / 2;
	out->ciphertext = malloc(n ? n : 1);
	if (!out->ciphertext)
		return TSR_INTERNAL;
	out->ciphertext_len = n;
	if (!crypto_unhex(ct, out->ciphertext, n) ||
	    !crypto_unhex(PQgetvalue(r, row, col + 1), out->nonce, sizeof(out->nonce)))
		return TSR_INVALID;
	return db_sealed_key_from_row(r, row, col + 2, out);
}

tsr_rc db_sealed_hex(const struct sealed *s, struct sealed_hex *h)
{
	h->ct = malloc(2 * s->ciphertext_len + 1);
	if (!h->ct)
		return TSR_INTERNAL;
	crypto_hex(s->ciphertext, s->ciphertext_len, h->ct);
	crypto_hex(s->nonce, sizeof(s->nonce), h->nonce);
	crypto_hex(s->wrapped_dek, sizeof(s->wrapped_dek), h->wdek);
	crypto_hex(s->dek_nonce, sizeof(s->dek_nonce), h->dnonce);
	return TSR_OK;
}

void db_sealed_hex_free(struct sealed_hex *h)
{
	free(h->ct);
	h->ct = NULL;
}
