/*
 * crypto.c — see crypto.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "crypto.h"

tsr_rc crypto_random(void *p, size_t n)
{
	if (n > (size_t)INT32_MAX || RAND_priv_bytes(p, (int)n) != 1)
		return TSR_INTERNAL;
	return TSR_OK;
}

/*
 * Identifiers are taken from a per-thread block of DRBG output: one
 * RAND_bytes call (and OpenSSL's fork check, a getpid) per 32 ids of 16
 * bytes instead of one per id. The block is wiped as it is used.
 */
#define ID_POOL 512

tsr_rc crypto_random_id(void *p, size_t n)
{
	static __thread uint8_t pool[ID_POOL];
	static __thread size_t left;
	if (n > ID_POOL / 4)
		return crypto_random(p, n);
	if (left < n) {
		if (RAND_bytes(pool, ID_POOL) != 1)
			return TSR_INTERNAL;
		left = ID_POOL;
	}
	uint8_t *src = pool + (ID_POOL - left);
	memcpy(p, src, n);
	OPENSSL_cleanse(src, n);
	left -= n;
	return TSR_OK;
}

void crypto_b64url(const uint8_t *p, size_t n, char *out)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i = 0;
	for (; i + 2 < n; i += 3) {
		uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8) | p[i + 2];
		out[o++] = al[(v >> 18) & 63];
		out[o++] = al[(v >> 12) & 63];
		out[o++] = al[(v >> 6) & 63];
		out[o++] = al[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = al[(v >> 18) & 63];
		out[o++] = al[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8);
		out[o++] = al[(v >> 18) & 63];
		out[o++] = al[(v >> 12) & 63];
		out[o++] = al[(v >> 6) & 63];
	}
	out[o] = '\0';
}

tsr_rc crypto_token_new(char out[TOKEN_LEN + 1])
{
	uint8_t raw[TOKEN_RAW_BYTES];
	tsr_rc rc = crypto_random(raw, sizeof(raw));
	if (rc != TSR_OK)
		return rc;
	memcpy(out, TOKEN_PREFIX, 4);
	crypto_b64url(raw, sizeof(raw), out + 4);
	OPENSSL_cleanse(raw, sizeof(raw));
	return TSR_OK;
}

bool crypto_token_shape_ok(const char *s)
{
	if (strncmp(s, TOKEN_PREFIX, 4) != 0 || strlen(s) != TOKEN_LEN)
		return false;
	for (const char *c = s + 4; *c; c++) {
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_'))
			return false;
	}
	return true;
}

/* Fetched once, kept for the process's life (never freed: used until exit). */
static EVP_MD *md_sha256;
static EVP_CIPHER *cipher_gcm;
static EVP_MAC *mac_hmac;
static pthread_once_t fetched = PTHREAD_ONCE_INIT;

static void fetch_algorithms(void)
{
	md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	cipher_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	mac_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

const EVP_MD *crypto_md_sha256(void)
{
	pthread_once(&fetched, fetch_algorithms);
	return md_sha256 ? md_sha256 : EVP_sha256();
}

const EVP_CIPHER *crypto_cipher_aes256gcm(void)
{
	pthread_once(&fetched, fetch_algorithms);
	return cipher_gcm ? cipher_gcm : EVP_aes_256_gcm();
}

static pthread_key_t md_ctx_key;

static void md_ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void md_ctx_key_init(void)
{
	if (pthread_key_create(&md_ctx_key, md_ctx_free) != 0)
		abort();
}

void crypto_sha256(const void *p, size_t n, uint8_t out[SHA256_LEN])
{
	/* one context per thread, kept: EVP_Digest() allocates and frees one per call */
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, md_ctx_key_init);
	EVP_MD_CTX *ctx = pthread_getspecific(md_ctx_key);
	if (!ctx) {
		ctx = EVP_MD_CTX_new();
		if (!ctx || pthread_setspecific(md_ctx_key, ctx) != 0)
			abort(); /* out of memory at a thread's first digest */
	}
	unsigned int len = SHA256_LEN;
	if (EVP_DigestInit_ex(ctx, crypto_md_sha256(), NULL) != 1 || EVP_DigestUpdate(ctx, p, n) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &len) != 1)
		abort(); /* broken invariant: SHA-256 is always available */
}

void crypto_hex(const uint8_t *p, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[p[i] >> 4];
		out[2 * i + 1] = hx[p[i] & 15];
	}
	out[2 * n] = '\0';
}

bool crypto_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *const *parts, const size_t *lens, int n,
			uint8_t out[SHA256_LEN])
{
	pthread_once(&fetched, fetch_algorithms);
	EVP_MAC_CTX *ctx = mac_hmac ? EVP_MAC_CTX_new(mac_hmac) : NULL;
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
				OSSL_PARAM_construct_end() };
	size_t outlen = 0;
	if (!ctx || EVP_MAC_init(ctx, key, keylen, params) != 1)
		abort(); /* broken invariant: HMAC-SHA256 is always available */
	for (int i = 0; i < n; i++)
		EVP_MAC_update(ctx, parts[i], lens[i]);
	EVP_MAC_final(ctx, out, &outlen, SHA256_LEN);
	EVP_MAC_CTX_free(ctx);
}

bool crypto_unhex(const char *hex, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char ch = hex[2 * i + k];
			v <<= 4;
			if (ch >= '0' && ch <= '9')
				v |= (unsigned)(ch - '0');
			else if (ch >= 'a' && ch <= 'f')
				v |= (unsigned)(ch - 'a' + 10);
			else if (ch >= 'A' && ch <= 'F')
				v |= (unsigned)(ch - 'A' + 10);
			else
				return false;
		}
		out[i] = (uint8_t)v;
	}
	return hex[2 * n] == '\0';
}
