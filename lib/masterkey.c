/*
 * masterkey.c — see masterkey.h. AES-256-GCM from OpenSSL EVP; nothing
 * hand-rolled.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "masterkey.h"
#include "crypto.h"

struct masterkey {
	uint8_t key[32];
	char id[MASTERKEY_ID_LEN + 1];
	/* rotation (see masterkey.h): the key that replaces this one, set once at run time */
	_Atomic(struct masterkey *) next;
	struct masterkey *prev; /* set before threads start */
};

tsr_rc masterkey_from_bytes(const uint8_t key[32], struct masterkey **out)
{
	struct masterkey *mk = calloc(1, sizeof(*mk));
	if (!mk)
		return TSR_INTERNAL;
	memcpy(mk->key, key, 32);
	static const char dom[] = "tessera-master-key-id";
	uint8_t buf[sizeof(dom) + 32], h[SHA256_LEN];
	memcpy(buf, dom, sizeof(dom)); /* includes the NUL separator */
	memcpy(buf + sizeof(dom), key, 32);
	crypto_sha256(buf, sizeof(buf), h);
	OPENSSL_cleanse(buf, sizeof(buf));
	crypto_hex(h, sizeof(h), mk->id);
	*out = mk;
	return TSR_OK;
}

tsr_rc masterkey_load(const char *file, struct masterkey **out, char *err, size_t errlen)
{
	char text[128];
	size_t n = 0;
	uint8_t key[32];
	tsr_rc rc = TSR_INVALID;
	if (file) {
		struct stat st;
		FILE *f = fopen(file, "rb");
		if (!f) {
			snprintf(err, errlen, "cannot open master key file %s: %s", file, strerror(errno));
			return TSR_NOT_FOUND;
		}
		if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
			fclose(f);
			snprintf(err, errlen, "master key file %s is readable by others (mode %03o): chmod 600 it", file,
				 (unsigned)(st.st_mode & 0777));
			return TSR_DENIED;
		}
		n = fread(text, 1, sizeof(text) - 1, f);
		fclose(f);
	} else {
		const char *env = getenv("TESSERA_MASTER_KEY");
		if (!env) {
			snprintf(err, errlen, "no master key: set [server] master_key_file or TESSERA_MASTER_KEY");
			return TSR_NOT_FOUND;
		}
		n = strlen(env) < sizeof(text) - 1 ? strlen(env) : sizeof(text) - 1;
		memcpy(text, env, n);
	}
	text[n] = '\0';
	if (n == 32 && !file) {
		snprintf(err, errlen, "TESSERA_MASTER_KEY must be 64 hex digits");
	} else if (n == 32) {
		memcpy(key, text, 32);
		rc = TSR_OK;
	} else {
		while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
			text[--n] = '\0';
		if (n == 64 && crypto_unhex(text, key, 32))
			rc = TSR_OK;
		else
			snprintf(err, errlen, "master key must be 64 hex digits or 32 raw bytes");
	}
	OPENSSL_cleanse(text, sizeof(text));
	if (rc == TSR_OK)
		rc = masterkey_from_bytes(key, out);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

void masterkey_free(struct masterkey *mk)
{
	if (!mk)
		return;
	masterkey_free(atomic_load(&mk->next));
	masterkey_free(mk->prev);
	OPENSSL_cleanse(mk, sizeof(*mk));
	free(mk);
}

void masterkey_set_previous(struct masterkey *mk, struct masterkey *prev)
{
	masterkey_free(mk->prev);
	mk->prev = prev;
}

tsr_rc masterkey_adopt(const struct masterkey *mk, struct masterkey *next)
{
	struct masterkey *m = (struct masterkey *)mk; /* only the atomic successor field changes */
	const struct masterkey *cur = masterkey_current(mk);
	if (strcmp(cur->id, next->id) == 0) {
		masterkey_free(next);
		return TSR_OK; /* already the current key: nothing to adopt */
	}
	if (strcmp(mk->id, next->id) == 0 || (mk->prev && strcmp(mk->prev->id, next->id) == 0)) {
		masterkey_free(next);
		return TSR_INVALID; /* rotating back to an older key */
	}
	struct masterkey *expected = NULL;
	if (!atomic_compare_exchange_strong(&m->next, &expected, next)) {
		masterkey_free(next);
		return TSR_CONFLICT;
	}
	return TSR_OK;
}

const struct masterkey *masterkey_current(const struct masterkey *mk)
{
	struct masterkey *n = atomic_load(&((struct masterkey *)mk)->next);
	return n ? n : mk;
}

const char *masterkey_previous_id(const struct masterkey *mk)
{
	return mk->prev ? mk->prev->id : NULL;
}

const struct masterkey *masterkey_find(const struct masterkey *mk, const char *id)
{
	const struct masterkey *n = masterkey_current(mk);
	if (strcmp(n->id, id) == 0)
		return n;
	if (strcmp(mk->id, id) == 0)
		return mk;
	if (mk->prev && strcmp(mk->prev->id, id) == 0)
		return mk->prev;
	return NULL;
}

const char *masterkey_id(const struct masterkey *mk)
{
	return mk->id;
}

/* AES-256-GCM: out = ciphertext || tag(16). */
static tsr_rc gcm(bool enc, const uint8_t key[32], const uint8_t nonce[12], const char *aad, const uint8_t *in,
		  size_t n, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0;
	tsr_rc rc = TSR_INTERNAL;
	if (!ctx || n > (size_t)INT32_MAX - 16)
		goto out;
	if (EVP_CipherInit_ex(ctx, crypto_cipher_aes256gcm(), NULL, NULL, NULL, enc ? 1 : 0) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc ? 1 : 0) != 1)
		goto out;
	if (aad && EVP_CipherUpdate(ctx, NULL, &len, (const uint8_t *)aad, (int)strlen(aad)) != 1)
		goto out;
	if (enc) {
		if (EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1 || EVP_CipherFinal_ex(ctx, out + len, &len) != 1 ||
		    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + n) != 1)
			goto out;
	} else {
		if (n < 16)
			goto denied;
		if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)(in + n - 16)) != 1 ||
		    EVP_CipherUpdate(ctx, out, &len, in, (int)(n - 16)) != 1)
			goto out;
		if (EVP_CipherFinal_ex(ctx, out + len, &len) != 1)
			goto denied;
	}
	rc = TSR_OK;
	goto out;
denied:
	rc = TSR_DENIED;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

tsr_rc envelope_seal(const struct masterkey *mk, const void *pt, size_t n, const char *aad, struct sealed *out)
{
	mk = masterkey_current(mk);
	memset(out, 0, sizeof(*out));
	uint8_t dek[32];
	tsr_rc rc = crypto_random(dek, sizeof(dek));
	if (rc == TSR_OK)
		rc = crypto_random(out->nonce, sizeof(out->nonce));
	if (rc == TSR_OK)
		rc = crypto_random(out->dek_nonce, sizeof(out->dek_nonce));
	if (rc == TSR_OK) {
		out->ciphertext = malloc(n + 16);
		out->ciphertext_len = n + 16;
		rc = out->ciphertext ? gcm(true, dek, out->nonce, aad, pt, n, out->ciphertext) : TSR_INTERNAL;
	}
	if (rc == TSR_OK)
		rc = gcm(true, mk->key, out->dek_nonce, mk->id, dek, sizeof(dek), out->wrapped_dek);
	if (rc == TSR_OK)
		snprintf(out->master_key_id, sizeof(out->master_key_id), "%s", mk->id);
	else
		sealed_free(out);
	OPENSSL_cleanse(dek, sizeof(dek));
	return rc;
}

static tsr_rc unwrap(const struct masterkey *mk, const struct sealed *in, uint8_t dek[32])
{
	mk = masterkey_find(mk, in->master_key_id);
	if (!mk)
		return TSR_DENIED; /* sealed under a master key we do not hold */
	return gcm(false, mk->key, in->dek_nonce, mk->id, in->wrapped_dek, sizeof(in->wrapped_dek), dek);
}

tsr_rc envelope_open(const struct masterkey *mk, const struct sealed *in, const char *aad, uint8_t **pt, size_t *n)
{
	uint8_t dek[32];
	tsr_rc rc = unwrap(mk, in, dek);
	if (rc != TSR_OK)
		return rc;
	if (in->ciphertext_len < 16) {
		OPENSSL_cleanse(dek, sizeof(dek));
		return TSR_DENIED;
	}
	size_t len = in->ciphertext_len - 16;
	uint8_t *buf = malloc(len + 1);
	rc = buf ? gcm(false, dek, in->nonce, aad, in->ciphertext, in->ciphertext_len, buf) : TSR_INTERNAL;
	OPENSSL_cleanse(dek, sizeof(dek));
	if (rc != TSR_OK) {
		envelope_free_plain(buf, len + 1);
		return rc;
	}
	buf[len] = '\0';
	*pt = buf;
	*n = len;
	return TSR_OK;
}

tsr_rc envelope_rewrap(const struct masterkey *old_mk, const struct masterkey *new_mk, struct sealed *in)
{
	uint8_t dek[32], nonce[12], wrapped[48];
	new_mk = masterkey_current(new_mk);
	tsr_rc rc = unwrap(old_mk, in, dek);
	if (rc == TSR_OK)
		rc = crypto_random(nonce, sizeof(nonce));
	if (rc == TSR_OK)
		rc = gcm(true, new_mk->key, nonce, new_mk->id, dek, sizeof(dek), wrapped);
	if (rc == TSR_OK) {
		memcpy(in->dek_nonce, nonce, sizeof(nonce));
		memcpy(in->wrapped_dek, wrapped, sizeof(wrapped));
		snprintf(in->master_key_id, sizeof(in->master_key_id), "%s", new_mk->id);
	}
	OPENSSL_cleanse(dek, sizeof(dek));
	return rc;
}

void sealed_free(struct sealed *s)
{
	if (!s)
		return;
	free(s->ciphertext);
	s->ciphertext = NULL;
	s->ciphertext_len = 0;
}

void envelope_free_plain(uint8_t *pt, size_t n)
{
	if (!pt)
		return;
	OPENSSL_cleanse(pt, n);
	free(pt);
}
