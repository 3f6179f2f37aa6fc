/*
 * audit_seal.h — what an audit seal and a signed export trailer sign, and
 * the Ed25519 operations on them (OpenSSL EVP, EVP_PKEY_ED25519).
 *
 * Shared by the sealer in tesserad, the verifier (tesserad and the CLI's
 * offline `tessera audit verify --file F --key K`), so a signature means the
 * same thing everywhere. Messages are ASCII text with a version tag:
 *
 *   seal:   "tessera-audit-seal-v1\n" seq_upto "\n" hex(head_hash) "\n"
 *           sealed_at (integer microseconds since the Unix epoch) "\n" key_id "\n"
 *   export: "tessera-audit-export-v1\n" canonical JSON of the trailer record
 *           without its "signature" member (audit_canon_json form)
 *
 * key_id = lower-case hex SHA-256 of the 32-byte raw public key
 * (audit_keys.id). Public keys travel as raw 32 bytes in hex or base64, or as
 * a PEM "PUBLIC KEY" (SubjectPublicKeyInfo) block. Private key bytes passed
 * in are never copied anywhere but OpenSSL's key object, freed at once.
 * No state: every function is thread-safe.
 */
#ifndef TSR_AUDIT_SEAL_H
#define TSR_AUDIT_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "status.h"

#define AUDIT_KEY_ID_LEN 64
#define AUDIT_SIG_LEN 64

/* Write the seal message into out[n] (NUL-terminated); returns its length, 0 if it does not fit. */
size_t audit_seal_message(int64_t seq_upto, const uint8_t head_hash[32], int64_t sealed_at_us, const char *key_id,
			  char *out, size_t n);

/* key_id (hex SHA-256 of pub) into out[65]. */
void audit_key_id(const uint8_t pub[32], char out[AUDIT_KEY_ID_LEN + 1]);

/* A fresh Ed25519 key pair. Caller wipes priv with OPENSSL_cleanse when done. */
tsr_rc audit_ed25519_keygen(uint8_t pub[32], uint8_t priv[32]) TSR_WUR;
/* Sign msg[0..n) with the raw private key. */
tsr_rc audit_ed25519_sign(const uint8_t priv[32], const void *msg, size_t n, uint8_t sig[AUDIT_SIG_LEN]) TSR_WUR;
/* TSR_OK if sig is pub's signature of msg, TSR_DENIED if not, TSR_INVALID for a malformed key. */
tsr_rc audit_ed25519_verify(const uint8_t pub[32], const void *msg, size_t n, const uint8_t sig[AUDIT_SIG_LEN]) TSR_WUR;

/* PEM SubjectPublicKeyInfo of pub; caller frees with free(). NULL on failure. */
char *audit_pubkey_pem(const uint8_t pub[32]);
/*
 * Parse a public key written as 64 hex digits, base64 of the 32 raw bytes,
 * or a PEM "PUBLIC KEY" block (surrounding whitespace ignored).
 */
tsr_rc audit_pubkey_parse(const char *text, uint8_t pub[32]) TSR_WUR;

/* Standard base64 (with padding) of p[0..n) into out (needs 4*ceil(n/3)+1 bytes). */
void audit_b64(const uint8_t *p, size_t n, char *out);
/* Decode standard base64 into out[n] exactly; false on anything else. */
bool audit_unb64(const char *s, uint8_t *out, size_t n);

#endif
