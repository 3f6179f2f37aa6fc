/*
 * seal.c — see seal.h.
 *
 * Lock order: the active-key row (FOR UPDATE, rotation only), then the
 * audit chain head (db_audit_append). Sealing takes no lock: it reads the
 * head in a snapshot, verifies up to it and inserts a seal for exactly that
 * head; audit_seals.seq_upto is unique, so two sealers racing on one head
 * leave one seal.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "seal.h"
#include "audit.h"
#include "audit_read.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

static const struct db_stmt S_ACTIVE = { "seal_active_key", 0,
	"SELECT id, encode(private_key_ciphertext, 'hex'), encode(nonce, 'hex'), encode(wrapped_dek, 'hex'), "
	"       encode(dek_nonce, 'hex'), master_key_id "
	"  FROM audit_keys WHERE retired_at IS NULL" };
static const struct db_stmt S_MK_REGISTER = { "seal_master_key_register", 1,
	"INSERT INTO master_keys (id) VALUES ($1) ON CONFLICT DO NOTHING" };
static const struct db_stmt S_KEY_INSERT = { "seal_key_insert", 7,
	"INSERT INTO audit_keys (id, public_key, private_key_ciphertext, nonce, wrapped_dek, dek_nonce, master_key_id) "
	"VALUES ($1, decode($2, 'hex'), decode($3, 'hex'), decode($4, 'hex'), decode($5, 'hex'), decode($6, 'hex'), $7) "
	"ON CONFLICT DO NOTHING RETURNING id" };
static const struct db_stmt S_RETIRE = { "seal_key_retire", 0,
	"UPDATE audit_keys SET retired_at = now(), private_key_ciphertext = NULL, nonce = NULL, wrapped_dek = NULL, "
	"       dek_nonce = NULL, master_key_id = NULL "
	" WHERE retired_at IS NULL RETURNING id" };
static const struct db_stmt S_LOCK_ACTIVE = { "seal_key_lock", 0,
	"SELECT id FROM audit_keys WHERE retired_at IS NULL FOR UPDATE" };
static const struct db_stmt S_KEYS = { "seal_keys", 0,
	"SELECT k.id, encode(k.public_key, 'hex'), "
	"       to_char(k.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"       coalesce(to_char(k.retired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), "
	"       (SELECT count(*) FROM audit_seals s WHERE s.key_id = k.id) "
	"  FROM audit_keys k ORDER BY k.created_at DESC, k.id" };
static const struct db_stmt S_LATEST = { "seal_latest", 0,
	"SELECT id, seq_upto, encode(head_hash, 'hex'), encode(signature, 'hex'), key_id, "
	"       (extract(epoch FROM sealed_at) * 1000000)::bigint "
	"  FROM audit_seals ORDER BY seq_upto DESC LIMIT 1" };
static const struct db_stmt S_SEAL_INSERT = { "seal_insert", 5,
	"INSERT INTO audit_seals (seq_upto, head_hash, signature, key_id, sealed_at) "
	"VALUES ($1, decode($2, 'hex'), decode($3, 'hex'), $4, $5::timestamptz) "
	"ON CONFLICT (seq_upto) DO NOTHING RETURNING id" };

/* Generate and store a new active key (inside the caller's transaction). */
static tsr_rc create_key(struct db_conn *c, const struct masterkey *mk, char id[AUDIT_KEY_ID_LEN + 1], bool *inserted)
{
	uint8_t pub[32], priv[32];
	*inserted = false;
	tsr_rc rc = audit_ed25519_keygen(pub, priv);
	if (rc != TSR_OK)
		return rc;
	audit_key_id(pub, id);
	char aad[128];
	snprintf(aad, sizeof(aad), "audit_key:%s", id);
	struct sealed s;
	memset(&s, 0, sizeof(s));
	rc = envelope_seal(mk, priv, sizeof(priv), aad, &s);
	OPENSSL_cleanse(priv, sizeof(priv));
	if (rc != TSR_OK)
		return rc;
	char pubhex[65], nonce[25], dek_nonce[25], wrapped[97];
	char *ct = malloc(2 * s.ciphertext_len + 1);
	if (!ct) {
		sealed_free(&s);
		return TSR_INTERNAL;
	}
	crypto_hex(pub, 32, pubhex);
	crypto_hex(s.ciphertext, s.ciphertext_len, ct);
	crypto_hex(s.nonce, 12, nonce);
	crypto_hex(s.wrapped_dek, 48, wrapped);
	crypto_hex(s.dek_nonce, 12, dek_nonce);
	const char *pm[] = { s.master_key_id };
	PGresult *r = db_exec(c, &S_MK_REGISTER, 1, pm, &rc);
	PQclear(r);
	if (rc == TSR_OK) {
		const char *p[] = { id, pubhex, ct, nonce, wrapped, dek_nonce, s.master_key_id };
		r = db_exec(c, &S_KEY_INSERT, 7, p, &rc);
		if (r)
			*inserted = PQntuples(r) == 1;
		PQclear(r);
	}
	free(ct);
	sealed_free(&s);
	if (rc == TSR_OK && *inserted)
		log_info("audit_key_created", "key_id=%s", id);
	return rc;
}

/*
 * The active key's id and private half (created when there is none).
 * Caller wipes priv. Runs inside the caller's transaction if one is open.
 */
static tsr_rc active_key(struct db_conn *c, const struct masterkey *mk, char id[AUDIT_KEY_ID_LEN + 1], uint8_t priv[32])
{
	if (!mk)
		return TSR_UNAVAILABLE;
	tsr_rc rc;
	for (int attempt = 0; attempt < 2; attempt++) {
		PGresult *r = db_exec(c, &S_ACTIVE, 0, NULL, &rc);
		if (!r)
			return rc;
		if (PQntuples(r) == 1) {
			struct sealed s;
			memset(&s, 0, sizeof(s));
			snprintf(id, AUDIT_KEY_ID_LEN + 1, "%s", PQgetvalue(r, 0, 0));
			const char *cthex = PQgetvalue(r, 0, 1);
			size_t ctlen = strlen(cthex) / 2;
			s.ciphertext = malloc(ctlen ? ctlen : 1);
			s.ciphertext_len = ctlen;
			snprintf(s.master_key_id, sizeof(s.master_key_id), "%s", PQgetvalue(r, 0, 5));
			bool ok = s.ciphertext && ctlen >= 16 && crypto_unhex(cthex, s.ciphertext, ctlen) &&
				  crypto_unhex(PQgetvalue(r, 0, 2), s.nonce, 12) &&
				  crypto_unhex(PQgetvalue(r, 0, 3), s.wrapped_dek, 48) &&
				  crypto_unhex(PQgetvalue(r, 0, 4), s.dek_nonce, 12);
			PQclear(r);
			if (!ok) {
				sealed_free(&s);
				return TSR_INTERNAL;
			}
			char aad[128];
			snprintf(aad, sizeof(aad), "audit_key:%s", id);
			uint8_t *pt = NULL;
			size_t n = 0;
			rc = envelope_open(mk, &s, aad, &pt, &n);
			sealed_free(&s);
			if (rc != TSR_OK) {
				log_error("audit_key_unusable", "key_id=%s reason=\"%s\"", id,
					  rc == TSR_DENIED ? "not openable with the loaded master key" : "decryption failed");
				return rc;
			}
			if (n != 32) {
				envelope_free_plain(pt, n);
				return TSR_INTERNAL;
			}
			memcpy(priv, pt, 32);
			envelope_free_plain(pt, n);
			return TSR_OK;
		}
		PQclear(r);
		bool inserted;
		if ((rc = create_key(c, mk, id, &inserted)) != TSR_OK)
			return rc;
		/* lost a race with another replica: read the winner's key */
	}
	return TSR_CONFLICT;
}

static tsr_rc seal_from(PGresult *r, struct audit_seal_rec *s)
{
	memset(s, 0, sizeof(*s));
	s->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	s->seq_upto = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	s->sealed_at_us = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
	snprintf(s->key_id, sizeof(s->key_id), "%s", PQgetvalue(r, 0, 4));
	return crypto_unhex(PQgetvalue(r, 0, 2), s->head_hash, 32) &&
			       crypto_unhex(PQgetvalue(r, 0, 3), s->signature, AUDIT_SIG_LEN)
		       ? TSR_OK
		       : TSR_INTERNAL;
}

tsr_rc db_seal_latest(struct db_conn *c, struct audit_seal_rec *out, bool *found)
{
	*found = false;
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_LATEST, 0, NULL, &rc);
	if (!r)
		return rc;
	if (PQntuples(r) == 1) {
		rc = seal_from(r, out);
		*found = rc == TSR_OK;
	}
	PQclear(r);
	return rc;
}

tsr_rc db_seal_head(struct db_conn *c, const struct masterkey *mk, struct audit_seal_rec *out, bool *sealed,
		    struct audit_finding *problem)
{
	*sealed = false;
	if (problem)
		memset(problem, 0, sizeof(*problem));
	if (!mk)
		return TSR_UNAVAILABLE;
	/* 1. in one snapshot: the newest seal, the head, and the records in between verified */
	struct audit_verify_out vo;
	memset(&vo, 0, sizeof(vo));
	audit_verify_init(&vo.v);
	struct audit_seal_rec last;
	bool have_last = false;
	tsr_rc rc = db_audit_read_begin(c);
	if (rc == TSR_OK)
		rc = db_seal_latest(c, &last, &have_last);
	struct audit_range range;
	if (rc == TSR_OK)
		rc = db_audit_range(c, NULL, NULL, &range);
	bool nothing = rc == TSR_OK && (range.head_seq == 0 || (have_last && last.seq_upto >= range.head_seq));
	if (rc == TSR_OK && !nothing) {
		if (have_last) {
			range.lo = last.seq_upto + 1;
			range.empty = false;
		}
		range.hi = range.head_seq;
		range.to_head = true;
		rc = db_audit_verify_run(c, &range, have_last ? &last : NULL, &vo);
	}
	db_audit_read_end(c);
	if (rc != TSR_OK || nothing) {
		db_audit_verify_free(&vo);
		return rc;
	}
	if (vo.v.bad.problem != AUDIT_OK) {
		if (problem)
			*problem = vo.v.bad;
		log_error("audit_seal_refused", "problem=%s seq=%" PRId64 " detail=\"%s\"",
			  audit_problem_name(vo.v.bad.problem), vo.v.bad.seq, vo.v.bad.message);
		db_audit_verify_free(&vo);
		return TSR_CONFLICT;
	}
	db_audit_verify_free(&vo);

	/* 2. sign the verified head */
	struct audit_seal_rec s;
	memset(&s, 0, sizeof(s));
	s.seq_upto = range.head_seq;
	memcpy(s.head_hash, range.head_hash, 32);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	s.sealed_at_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	uint8_t priv[32];
	bool own;
	if ((rc = db_tx_begin(c, &own)) != TSR_OK)
		return rc;
	rc = active_key(c, mk, s.key_id, priv);
	char msg[256];
	size_t n = rc == TSR_OK ? audit_seal_message(s.seq_upto, s.head_hash, s.sealed_at_us, s.key_id, msg, sizeof(msg))
				: 0;
	if (rc == TSR_OK)
		rc = n ? audit_ed25519_sign(priv, msg, n, s.signature) : TSR_INTERNAL;
	OPENSSL_cleanse(priv, sizeof(priv));
	if (rc == TSR_OK) {
		char seq[24], hh[65], sig[129], at[32];
		snprintf(seq, sizeof(seq), "%" PRId64, s.seq_upto);
		crypto_hex(s.head_hash, 32, hh);
		crypto_hex(s.signature, 64, sig);
		audit_time_format(s.sealed_at_us, at);
		const char *p[] = { seq, hh, sig, s.key_id, at };
		PGresult *r = db_exec(c, &S_SEAL_INSERT, 5, p, &rc);
		if (r && PQntuples(r) == 1) {
			s.id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
			*sealed = true;
		}
		PQclear(r);
	}
	rc = db_tx_end(c, own, rc);
	if (rc == TSR_OK && *sealed) {
		*out = s;
		log_info("audit_sealed", "seal_id=%" PRId64 " seq_upto=%" PRId64 " key_id=%.16s", s.id, s.seq_upto,
			 s.key_id);
	}
	return rc;
}

tsr_rc db_seal_sign(struct db_conn *c, const struct masterkey *mk, const void *msg, size_t n,
		    char key_id[AUDIT_KEY_ID_LEN + 1], uint8_t sig[AUDIT_SIG_LEN])
{
	uint8_t priv[32];
	bool own;
	tsr_rc rc = db_tx_begin(c, &own);
	if (rc != TSR_OK)
		return rc;
	rc = active_key(c, mk, key_id, priv);
	if (rc == TSR_OK)
		rc = audit_ed25519_sign(priv, msg, n, sig);
	OPENSSL_cleanse(priv, sizeof(priv));
	return db_tx_end(c, own, rc);
}

tsr_rc db_seal_rotate(struct db_conn *c, const struct masterkey *mk, const char *actor, int64_t actor_user_id,
		      char old_id[AUDIT_KEY_ID_LEN + 1], char new_id[AUDIT_KEY_ID_LEN + 1])
{
	old_id[0] = new_id[0] = '\0';
	if (!mk)
		return TSR_UNAVAILABLE;
	/* the old key's last seal covers everything written before the switch */
	struct audit_seal_rec s;
	bool sealed;
	tsr_rc rc = db_seal_head(c, mk, &s, &sealed, NULL);
	if (rc != TSR_OK && rc != TSR_UNAVAILABLE)
		log_warn("audit_seal_before_rotation_failed", "error=%s", status_name(rc));
	bool own;
	if ((rc = db_tx_begin(c, &own)) != TSR_OK)
		return rc;
	PGresult *r = db_exec(c, &S_LOCK_ACTIVE, 0, NULL, &rc);
	PQclear(r);
	if (rc == TSR_OK) {
		r = db_exec(c, &S_RETIRE, 0, NULL, &rc);
		if (r && PQntuples(r) == 1)
			snprintf(old_id, AUDIT_KEY_ID_LEN + 1, "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	bool inserted = false;
	if (rc == TSR_OK)
		rc = create_key(c, mk, new_id, &inserted);
	if (rc == TSR_OK && !inserted)
		rc = TSR_CONFLICT;
	char *detail = NULL;
	if (rc == TSR_OK) {
		json_t *d = json_pack("{s:s?,s:s}", "old_key_id", old_id[0] ? old_id : NULL, "new_key_id", new_id);
		detail = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		json_decref(d);
		struct audit_event ev;
		rc = detail ? audit_event_init(&ev, actor, "audit.key_rotated", "success") : TSR_INTERNAL;
		if (rc == TSR_OK) {
			ev.actor_user_id = actor_user_id;
			ev.target = new_id;
			ev.detail = detail;
			rc = db_audit_append(c, &ev, 1);
		}
	}
	free(detail);
	rc = db_tx_end(c, own, rc);
	if (rc == TSR_OK)
		log_info("audit_key_rotated", "old_key_id=%.16s new_key_id=%.16s", old_id[0] ? old_id : "-", new_id);
	return rc;
}

tsr_rc db_seal_keys(struct db_conn *c, struct seal_key **keys, int *n)
{
	*keys = NULL;
	*n = 0;
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_KEYS, 0, NULL, &rc);
	if (!r)
		return rc;
	int rows = PQntuples(r);
	struct seal_key *k = calloc((size_t)rows + 1, sizeof(*k));
	if (!k) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < rows; i++) {
		snprintf(k[i].id, sizeof(k[i].id), "%s", PQgetvalue(r, i, 0));
		if (!crypto_unhex(PQgetvalue(r, i, 1), k[i].pub, 32)) {
			free(k);
			PQclear(r);
			return TSR_INTERNAL;
		}
		snprintf(k[i].created_at, sizeof(k[i].created_at), "%s", PQgetvalue(r, i, 2));
		snprintf(k[i].retired_at, sizeof(k[i].retired_at), "%s", PQgetvalue(r, i, 3));
		k[i].active = !k[i].retired_at[0];
		k[i].seals = strtoll(PQgetvalue(r, i, 4), NULL, 10);
	}
	PQclear(r);
	*keys = k;
	*n = rows;
	return TSR_OK;
}
