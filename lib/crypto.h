/*
 * crypto.h — the small set of primitives tessera needs, all from OpenSSL.
 *
 * Tokens: 32 random bytes (256 bits) from the OS CSPRNG, base64url without
 * padding (43 characters), prefixed "tsr_". Only their SHA-256 is stored;
 * comparisons of secrets use CRYPTO_memcmp. No hand-written primitive here:
 * this module only wraps OpenSSL with tessera's conventions.
 */
#ifndef TSR_CRYPTO_H
#define TSR_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <openssl/types.h>
#include "status.h"

#define TOKEN_PREFIX "tsr_"
#define TOKEN_RAW_BYTES 32
#define TOKEN_B64_LEN 43
#define TOKEN_LEN (4 + TOKEN_B64_LEN)
#define SHA256_LEN 32

/* Fill p with n bytes from the CSPRNG. */
tsr_rc crypto_random(void *p, size_t n) TSR_WUR;
/* Random bytes for identifiers that must be unique and unguessable but are not keys (buffered per thread). */
tsr_rc crypto_random_id(void *p, size_t n) TSR_WUR;
/* Write a new token (TOKEN_LEN chars + NUL) into out[TOKEN_LEN + 1]. */
tsr_rc crypto_token_new(char out[TOKEN_LEN + 1]) TSR_WUR;
/* True if s has the shape of a tessera token (prefix, length, alphabet). */
bool crypto_token_shape_ok(const char *s);
/*
 * SHA-256 and AES-256-GCM, fetched from OpenSSL's provider once per process:
 * EVP_sha256() / EVP_aes_256_gcm() make OpenSSL 3 look the algorithm up
 * again on every use, which costs more than hashing a short token. For
 * EVP_DigestInit_ex / EVP_CipherInit_ex.
 */
const EVP_MD *crypto_md_sha256(void);
const EVP_CIPHER *crypto_cipher_aes256gcm(void);
/* SHA-256 of p[0..n). */
void crypto_sha256(const void *p, size_t n, uint8_t out[SHA256_LEN]);
/* Lower-case hex of p[0..n) into out[2n + 1]. */
void crypto_hex(const uint8_t *p, size_t n, char *out);
/* base64url without padding of p[0..n) into out (needs 4*ceil(n/3)+1 bytes). */
void crypto_b64url(const uint8_t *p, size_t n, char *out);
/* HMAC-SHA256 over the concatenation of n parts. */
void crypto_hmac_sha256(const void *key, size_t keylen, const void *const *parts, const size_t *lens, int n,
			uint8_t out[SHA256_LEN]);
/* Parse 2n hex digits into out[n]; false on anything else. */
bool crypto_unhex(const char *hex, uint8_t *out, size_t n);

/* Constant-time equality of two equal-length byte strings. */
bool crypto_equal(const void *a, const void *b, size_t n);

#endif
