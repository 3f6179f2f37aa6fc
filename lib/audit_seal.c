/*
 * audit_seal.c — see audit_seal.h. Changing a message format breaks every
 * existing seal and export signature: add a new version tag instead.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit_seal.h"
#include "crypto.h"

size_t audit_seal_message(int64_t seq_upto, const uint8_t head_hash[32], int64_t sealed_at_us, const char *key_id,
			  char *out, size_t n)
{
	char hex[65];
	crypto_hex(head_hash, 32, hex);
	int w = snprintf(out, n, "tessera-audit-seal-v1\n%" PRId64 "\n%s\n%" PRId64 "\n%s\n", seq_upto, hex,
			 sealed_at_us, key_id);
	return w < 0 || (size_t)w >= n ? 0 : (size_t)w;
}

void audit_key_id(const uint8_t pub[32], char out[AUDIT_KEY_ID_LEN + 1])
{
	uint8_t h[32];
	crypto_sha256(pub, 32, h);
	crypto_hex(h, 32, out);
}

tsr_rc audit_ed25519_keygen(uint8_t pub[32], uint8_t priv[32])
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!k)
		return TSR_INTERNAL;
	size_t pl = 32, sl = 32;
	tsr_rc rc = EVP_PKEY_get_raw_public_key(k, pub, &pl) == 1 && pl == 32 &&
				    EVP_PKEY_get_raw_private_key(k, priv, &sl) == 1 && sl == 32
			    ? TSR_OK
			    : TSR_INTERNAL;
	EVP_PKEY_free(k);
	return rc;
}

tsr_rc audit_ed25519_sign(const uint8_t priv[32], const void *msg, size_t n, uint8_t sig[AUDIT_SIG_LEN])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, 32);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t sl = AUDIT_SIG_LEN;
	tsr_rc rc = k && ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) == 1 &&
				    EVP_DigestSign(ctx, sig, &sl, msg, n) == 1 && sl == AUDIT_SIG_LEN
			    ? TSR_OK
			    : TSR_INTERNAL;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	return rc;
}

tsr_rc audit_ed25519_verify(const uint8_t pub[32], const void *msg, size_t n, const uint8_t sig[AUDIT_SIG_LEN])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	if (!k)
		return TSR_INVALID;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	tsr_rc rc = TSR_INTERNAL;
	if (ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) == 1)
		rc = EVP_DigestVerify(ctx, sig, AUDIT_SIG_LEN, msg, n) == 1 ? TSR_OK : TSR_DENIED;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	return rc;
}

char *audit_pubkey_pem(const uint8_t pub[32])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	BIO *b = BIO_new(BIO_s_mem());
	char *out = NULL;
	if (k && b && PEM_write_bio_PUBKEY(b, k) == 1) {
		char *data;
		long len = BIO_get_mem_data(b, &data);
		if (len > 0 && (out = malloc((size_t)len + 1)) != NULL) {
			memcpy(out, data, (size_t)len);
			out[len] = '\0';
		}
	}
	BIO_free(b);
	EVP_PKEY_free(k);
	return out;
}

void audit_b64(const uint8_t *p, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

bool audit_unb64(const char *s, uint8_t *out, size_t n)
{
	size_t len = strlen(s);
	if (n == 0 || len != 4 * ((n + 2) / 3))
		return false;
	size_t pad = (s[len - 1] == '=') + (len > 1 && s[len - 2] == '=');
	uint8_t tmp[512];
	if (len / 4 * 3 > sizeof(tmp))
		return false;
	int got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len);
	if (got < 0 || (size_t)got - pad != n) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return false;
	}
	memcpy(out, tmp, n);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return true;
}

tsr_rc audit_pubkey_parse(const char *text, uint8_t pub[32])
{
	while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
		text++;
	if (strstr(text, "-----BEGIN PUBLIC KEY-----")) {
		BIO *b = BIO_new_mem_buf(text, -1);
		EVP_PKEY *k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
		size_t pl = 32;
		tsr_rc rc = k && EVP_PKEY_get_id(k) == EVP_PKEY_ED25519 && EVP_PKEY_get_raw_public_key(k, pub, &pl) == 1 &&
					    pl == 32
				    ? TSR_OK
				    : TSR_INVALID;
		EVP_PKEY_free(k);
		BIO_free(b);
		return rc;
	}
	char tok[128];
	size_t n = strcspn(text, " \t\r\n");
	if (n == 0 || n >= sizeof(tok))
		return TSR_INVALID;
	memcpy(tok, text, n);
	tok[n] = '\0';
	const char *rest = text + n;
	while (*rest == ' ' || *rest == '\t' || *rest == '\n' || *rest == '\r')
		rest++;
	if (*rest)
		return TSR_INVALID;
	if (n == 64 && crypto_unhex(tok, pub, 32))
		return TSR_OK;
	if (audit_unb64(tok, pub, 32))
		return TSR_OK;
	return TSR_INVALID;
}
