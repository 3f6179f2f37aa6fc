/*
 * masterkey.h — the master key and envelope encryption; the one small
 * module that touches key material.
 *
 * The master key (256 bits, from a file or TESSERA_MASTER_KEY) never leaves
 * this module and never reaches Postgres. Each secret tessera stores
 * (upstream org keys, webhook secrets, audit signing keys) is sealed with its
 * own random data key (AES-256-GCM), and the data key is wrapped by the
 * master key (AES-256-GCM) — the columns ciphertext (tag appended), nonce,
 * wrapped_dek (32 + 16 bytes), dek_nonce, master_key_id of
 * migrations/0001_initial.sql. The AAD binds a ciphertext to the row it
 * belongs to ("upstream_key:NAME:VERSION"), so rows cannot be swapped.
 * Master-key rotation only re-wraps data keys (envelope_rewrap).
 * Thread-safe after load (read-only). Plaintext buffers returned are wiped
 * by envelope_free_plain().
 */
#ifndef TSR_MASTERKEY_H
#define TSR_MASTERKEY_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"

#define MASTERKEY_ID_LEN 64 /* hex */

struct masterkey;

/*
 * Load from file (64 hex digits, or 32 raw bytes; trailing newline ok); if
 * file is NULL, from the environment variable TESSERA_MASTER_KEY (64 hex).
 * Refuses a file readable by group or others. err gets a reason without
 * key material. Caller frees with masterkey_free() (wipes the key).
 */
tsr_rc masterkey_load(const char *file, struct masterkey **out, char *err, size_t errlen) TSR_WUR;
/* From raw bytes (tests, rotation). */
tsr_rc masterkey_from_bytes(const uint8_t key[32], struct masterkey **out) TSR_WUR;
void masterkey_free(struct masterkey *mk);
/* hex SHA-256("tessera-master-key-id\0" || key): names the key without revealing it. */
const char *masterkey_id(const struct masterkey *mk);

/*
 * Master-key rotation. A loaded key can hold two more: the previous key
 * ([server] previous_master_key_file, attached before threads start) and a
 * successor adopted at run time (`tessera rotate master-key`). Sealing uses
 * the successor when there is one; opening and re-wrapping pick whichever
 * held key matches the envelope's master_key_id, so rows under either key
 * stay readable until every data key is re-wrapped. mk owns both (freed by
 * masterkey_free(mk)).
 */
void masterkey_set_previous(struct masterkey *mk, struct masterkey *prev);
/*
 * Make next the key new envelopes are sealed under (thread-safe, once).
 * Takes ownership of next in every case. TSR_OK also when next already is
 * the current key; TSR_INVALID when next is mk itself or its previous key;
 * TSR_CONFLICT when another successor was adopted already.
 */
tsr_rc masterkey_adopt(const struct masterkey *mk, struct masterkey *next) TSR_WUR;
/* The key new envelopes are sealed under (the successor, or mk). */
const struct masterkey *masterkey_current(const struct masterkey *mk);
/* The id of mk's previous key, or NULL. */
const char *masterkey_previous_id(const struct masterkey *mk);
/* The held key named id (current, mk, or previous), or NULL. */
const struct masterkey *masterkey_find(const struct masterkey *mk, const char *id);

struct sealed {
	uint8_t *ciphertext; /* plaintext length + 16 (GCM tag), malloc'd */
	size_t ciphertext_len;
	uint8_t nonce[12];
	uint8_t wrapped_dek[48];
	uint8_t dek_nonce[12];
	char master_key_id[MASTERKEY_ID_LEN + 1];
};

/* Seal pt[0..n) under a fresh data key wrapped by mk. Caller frees with sealed_free(). */
tsr_rc envelope_seal(const struct masterkey *mk, const void *pt, size_t n, const char *aad, struct sealed *out) TSR_WUR;
/*
 * Open: TSR_DENIED if the key id does not match mk or authentication fails
 * (tampered row, wrong AAD). *pt is NUL-terminated for convenience; caller
 * frees with envelope_free_plain(*pt, *n).
 */
tsr_rc envelope_open(const struct masterkey *mk, const struct sealed *in, const char *aad, uint8_t **pt,
		     size_t *n) TSR_WUR;
/*
 * Re-wrap in's data key from old to new (master-key rotation); the ciphertext is untouched.
 * The unwrapping key is whichever key held by old_mk matches in->master_key_id; the
 * wrapping key is masterkey_current(new_mk).
 */
tsr_rc envelope_rewrap(const struct masterkey *old_mk, const struct masterkey *new_mk, struct sealed *in) TSR_WUR;
void sealed_free(struct sealed *s);
void envelope_free_plain(uint8_t *pt, size_t n);

#endif
