/*
 * audit_check.c — see audit_check.h.
 *
 * Bytes are cut into lines; a CSV record may span lines (quoted newlines),
 * so record lines accumulate until audit_csv_parse has a whole record. The
 * running SHA-256 takes each line once it is known not to be the trailer
 * (the trailer must be the last line, so nothing after it is hashed).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "audit_check.h"
#include "../lib/audit_export.h"
#include "../lib/buf.h"
#include "../lib/crypto.h"

#define MAX_LINE (16u << 20)

enum fmt { F_UNKNOWN, F_JSONL, F_CSV };

struct audit_check {
	struct audit_pubkey *keys;
	int nkeys;
	char *path;
	enum fmt fmt;
	struct buf line;    /* the physical line being assembled */
	struct buf rec;     /* a CSV record spanning lines */
	int64_t lineno, rec_line;
	EVP_MD_CTX *digest;
	struct audit_verifier v; /* chain order: meaningful for unfiltered exports */
	int64_t chain_bad_line;
	/* what every export must satisfy */
	int64_t records, seals, first_seq, last_seq;
	uint8_t first_prev[32], head_hash[32];
	int64_t self_bad_seq, self_bad_line; /* first record whose own hash fails */
	char fail[600];                      /* first structural or signature failure */
	json_t *trailer;
	bool after_trailer;
	/* outcome */
	bool finished, ok;
	char result[700];
	char signer[AUDIT_KEY_ID_LEN + 1];
	int64_t last_sealed;
};

static void failf(struct audit_check *k, const char *fmt, ...) TSR_PRINTF(2, 3);
static void failf(struct audit_check *k, const char *fmt, ...)
{
	if (k->fail[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(k->fail, sizeof(k->fail), fmt, ap);
	va_end(ap);
}

/* Look a stored hash up in the export file (the verifier's find callback). */
static bool find_in_file(void *arg, const uint8_t h[32], int64_t *seq)
{
	struct audit_check *k = arg;
	FILE *f = k->path ? fopen(k->path, "r") : NULL;
	if (!f)
		return false;
	char hex[65], needle[80];
	crypto_hex(h, 32, hex);
	if (k->fmt == F_CSV)
		snprintf(needle, sizeof(needle), ",%s", hex);
	else
		snprintf(needle, sizeof(needle), ",\"hash\":\"%s\"", hex);
	char *l = NULL;
	size_t cap = 0;
	ssize_t n;
	bool found = false;
	while (!found && (n = getline(&l, &cap, f)) > 0) {
		while (n > 0 && (l[n - 1] == '\n' || l[n - 1] == '\r'))
			l[--n] = '\0';
		char *m = strstr(l, needle);
		if (!m || (k->fmt == F_CSV && m + strlen(needle) != l + n))
			continue;
		if (k->fmt == F_CSV) {
			*seq = strtoll(l, NULL, 10);
			found = *seq > 0;
		} else {
			json_error_t e;
			json_t *j = json_loads(l, 0, &e);
			json_t *s = json_object_get(j, "seq");
			if (json_is_integer(s)) {
				*seq = (int64_t)json_integer_value(s);
				found = true;
			}
			json_decref(j);
		}
	}
	free(l);
	fclose(f);
	return found;
}

tsr_rc audit_check_new(const struct audit_pubkey *keys, int nkeys, const char *path, struct audit_check **out)
{
	struct audit_check *k = calloc(1, sizeof(*k));
	if (!k)
		return TSR_INTERNAL;
	k->keys = calloc((size_t)nkeys + 1, sizeof(*keys));
	k->digest = EVP_MD_CTX_new();
	k->path = path ? strdup(path) : NULL;
	if (!k->keys || !k->digest || (path && !k->path) || EVP_DigestInit_ex(k->digest, crypto_md_sha256(), NULL) != 1) {
		audit_check_free(k);
		return TSR_INTERNAL;
	}
	if (nkeys)
		memcpy(k->keys, keys, (size_t)nkeys * sizeof(*keys));
	k->nkeys = nkeys;
	buf_init(&k->line, MAX_LINE);
	buf_init(&k->rec, MAX_LINE);
	audit_verify_init(&k->v);
	k->v.keys = k->keys;
	k->v.nkeys = nkeys;
	if (path) {
		k->v.find = find_in_file;
		k->v.find_arg = k;
	}
	*out = k;
	return TSR_OK;
}

void audit_check_free(struct audit_check *k)
{
	if (!k)
		return;
	audit_verify_free(&k->v);
	EVP_MD_CTX_free(k->digest);
	buf_free(&k->line);
	buf_free(&k->rec);
	json_decref(k->trailer);
	free(k->keys);
	free(k->path);
	free(k);
}

int64_t audit_check_records(const struct audit_check *k)
{
	return k->records;
}

static const struct audit_pubkey *key_for(const struct audit_check *k, const char *id)
{
	for (int i = 0; id && i < k->nkeys; i++)
		if (strcmp(k->keys[i].id, id) == 0)
			return &k->keys[i];
	return NULL;
}

static void on_record(struct audit_check *k, const struct audit_rec *r, int64_t line)
{
	if (k->records == 0) {
		k->first_seq = r->seq;
		memcpy(k->first_prev, r->prev_hash, 32);
		if (r->seq == 1) {
			static const uint8_t genesis[32];
			audit_verify_anchor(&k->v, 0, genesis);
		}
	}
	k->records++;
	k->last_seq = r->seq;
	memcpy(k->head_hash, r->hash, 32);
	uint8_t h[32];
	audit_verify_hash(&k->v, r->f, r->prev_hash, h);
	if (!crypto_equal(h, r->hash, 32) && !k->self_bad_seq) {
		k->self_bad_seq = r->seq;
		k->self_bad_line = line;
	}
	if (k->v.bad.problem == AUDIT_OK && !audit_verify_record_hashed(&k->v, r, h))
		k->chain_bad_line = line;
}

static void on_seal(struct audit_check *k, json_t *j, int64_t line)
{
	struct audit_seal_rec s;
	if (audit_export_parse_seal(j, &s) != TSR_OK) {
		failf(k, "line %" PRId64 ": a malformed seal", line);
		return;
	}
	k->seals++;
	const struct audit_pubkey *key = key_for(k, s.key_id);
	char msg[256];
	size_t n = audit_seal_message(s.seq_upto, s.head_hash, s.sealed_at_us, s.key_id, msg, sizeof(msg));
	if (!key)
		failf(k, "line %" PRId64 ": seal #%" PRId64 " is signed by key %.16s…, which is not among the trusted keys",
		      line, s.id, s.key_id);
	else if (!n || audit_ed25519_verify(key->pub, msg, n, s.signature) != TSR_OK)
		failf(k, "line %" PRId64 ": seal #%" PRId64 " (up to seq %" PRId64 ") has an invalid signature", line, s.id,
		      s.seq_upto);
	else
		k->last_sealed = s.seq_upto;
	if (k->v.bad.problem == AUDIT_OK && !audit_verify_seal(&k->v, &s, true))
		k->chain_bad_line = line;
}

/* A parsed JSON line: a record (JSON Lines only), a seal, or the trailer (already taken out). */
static void on_json_line(struct audit_check *k, json_t *j, int64_t line, bool meta_only)
{
	const char *type = json_string_value(json_object_get(j, "type"));
	if (type && strcmp(type, "seal") == 0) {
		on_seal(k, j, line);
	} else if (meta_only || type) {
		failf(k, "line %" PRId64 ": unknown line type '%s'", line, type ? type : "record");
	} else {
		struct audit_parsed p;
		char err[200];
		if (audit_export_parse(j, &p, err, sizeof(err)) != TSR_OK) {
			failf(k, "line %" PRId64 ": a malformed record: %s", line, err);
		} else {
			on_record(k, &p.rec, line);
			audit_parsed_free(&p);
		}
	}
}

static bool csv_header_ok(const char *s)
{
	struct buf h;
	buf_init(&h, 4096);
	bool ok = audit_csv_header(&h) == TSR_OK && strlen(s) == h.len - 1 && strncmp(h.data, s, h.len - 1) == 0;
	buf_free(&h);
	return ok;
}

/* A complete physical line s (newline stripped); raw is the line as it was, for the digest. */
static void on_line(struct audit_check *k, const char *s, const char *raw, size_t rawlen)
{
	k->lineno++;
	if (k->after_trailer) {
		failf(k, "line %" PRId64 ": data after the verification record", k->lineno);
		return;
	}
	if (k->fmt == F_UNKNOWN) {
		if (s[0] == '{') {
			k->fmt = F_JSONL;
		} else if (strncmp(s, "seq,", 4) == 0) {
			k->fmt = F_CSV;
			if (!csv_header_ok(s))
				failf(k, "line 1: the CSV header is not the export's");
			EVP_DigestUpdate(k->digest, raw, rawlen);
			return;
		} else {
			failf(k, "line 1: neither JSON Lines nor the CSV export header");
			return;
		}
	}
	bool meta = k->fmt == F_CSV && k->rec.len == 0 && strncmp(s, "# ", 2) == 0;
	if (k->fmt == F_JSONL || meta) {
		json_error_t e;
		json_t *j = json_loads(meta ? s + 2 : s, 0, &e);
		if (!json_is_object(j)) {
			EVP_DigestUpdate(k->digest, raw, rawlen);
			failf(k, "line %" PRId64 ": not a JSON object (%s)", k->lineno, j ? "wrong type" : e.text);
			json_decref(j);
			return;
		}
		const char *type = json_string_value(json_object_get(j, "type"));
		if (type && strcmp(type, "verification") == 0) {
			/* the trailer: the last line, outside the digest */
			k->after_trailer = true;
			json_decref(k->trailer);
			k->trailer = j;
			return;
		}
		EVP_DigestUpdate(k->digest, raw, rawlen);
		on_json_line(k, j, k->lineno, meta);
		json_decref(j);
		return;
	}
	EVP_DigestUpdate(k->digest, raw, rawlen);
	/* CSV record, possibly continued over several lines */
	if (!k->rec.len)
		k->rec_line = k->lineno;
	if (buf_append(&k->rec, raw, rawlen) != TSR_OK) {
		failf(k, "line %" PRId64 ": a record longer than %u bytes", k->rec_line, MAX_LINE);
		k->rec.len = 0;
		return;
	}
	struct audit_parsed p;
	bool more = false;
	char err[200];
	if (audit_csv_parse(k->rec.data, k->rec.len, &p, &more, err, sizeof(err)) != TSR_OK) {
		if (more)
			return;
		failf(k, "line %" PRId64 ": a malformed record: %s", k->rec_line, err);
	} else {
		on_record(k, &p.rec, k->rec_line);
		audit_parsed_free(&p);
	}
	k->rec.len = 0;
}

void audit_check_feed(struct audit_check *k, const char *p, size_t n)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) + 1 : n;
		if (buf_append(&k->line, p, take) != TSR_OK) {
			failf(k, "line %" PRId64 ": longer than %u bytes", k->lineno + 1, MAX_LINE);
			k->line.len = 0;
		}
		p += take;
		n -= take;
		if (!nl)
			break;
		size_t len = k->line.len;
		char *s = k->line.data;
		char save = s[len - 1];
		s[len - 1] = '\0';
		if (len >= 2 && s[len - 2] == '\r')
			s[len - 2] = '\0';
		/* on_line hashes the raw bytes; restore the newline for that */
		char *copy = malloc(len + 1);
		if (copy) {
			memcpy(copy, s, len);
			copy[len - 1] = save;
			copy[len] = '\0';
			on_line(k, s, copy, len);
			free(copy);
		}
		k->line.len = 0;
	}
}

static bool hex_eq(json_t *v, const uint8_t h[32])
{
	uint8_t b[32];
	const char *s = json_string_value(v);
	return s && crypto_unhex(s, b, 32) && crypto_equal(b, h, 32);
}

static bool done(struct audit_check *k, bool ok, const char *fmt, ...) TSR_PRINTF(3, 4);
static bool done(struct audit_check *k, bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(k->result, sizeof(k->result), fmt, ap);
	va_end(ap);
	k->ok = ok;
	k->finished = true;
	return ok;
}

bool audit_check_finish(struct audit_check *k)
{
	if (k->line.len) /* a last line without its newline */
		audit_check_feed(k, "\n", 1);
	if (k->rec.len)
		failf(k, "line %" PRId64 ": the file ends inside a quoted CSV field", k->rec_line);
	if (k->fail[0])
		return done(k, false, "%s", k->fail);
	json_t *t = k->trailer;
	if (!t)
		return done(k, false, "no verification record at the end: the export is incomplete (truncated or cut off)");
	if (strcmp(json_string_value(json_object_get(t, "format")) ? json_string_value(json_object_get(t, "format")) : "",
		   AUDIT_EXPORT_FORMAT) != 0)
		return done(k, false, "the verification record is not %s", AUDIT_EXPORT_FORMAT);
	bool filtered = json_is_true(json_object_get(t, "filtered"));
	/* 1. the records themselves */
	if (k->self_bad_seq)
		return done(k, false, "record seq %" PRId64 " (line %" PRId64 ") was altered: its fields no longer match its hash",
			    k->self_bad_seq, k->self_bad_line);
	if (!filtered && k->v.bad.problem != AUDIT_OK)
		return done(k, false, "%s (line %" PRId64 ")", k->v.bad.message, k->chain_bad_line);
	/* 2. the trailer describes exactly these records */
	uint8_t d[32];
	unsigned int dl = 32;
	EVP_DigestFinal_ex(k->digest, d, &dl);
	if (!hex_eq(json_object_get(t, "records_sha256"), d))
		return done(k, false, "records_sha256 of the verification record does not match the file: lines were changed, "
				      "added or removed");
	if (json_integer_value(json_object_get(t, "count")) != k->records)
		return done(k, false, "the verification record counts %" PRId64 " records, the file holds %" PRId64,
			    (int64_t)json_integer_value(json_object_get(t, "count")), k->records);
	if (k->records &&
	    (json_integer_value(json_object_get(t, "seq_first")) != k->first_seq ||
	     json_integer_value(json_object_get(t, "seq_last")) != k->last_seq ||
	     !hex_eq(json_object_get(t, "head_hash"), k->head_hash) ||
	     !hex_eq(json_object_get(t, "first_prev_hash"), k->first_prev)))
		return done(k, false, "the verification record's range or hashes do not match the records");
	/* 3. its signature */
	const char *kid = json_string_value(json_object_get(t, "key_id"));
	const char *sig = json_string_value(json_object_get(t, "signature"));
	if (!kid || !sig)
		return done(k, false, "the export is not signed (tesserad had no master key): it cannot be authenticated");
	const struct audit_pubkey *key = key_for(k, kid);
	if (!key)
		return done(k, false, "the export is signed by key %.16s…, which is not among the trusted keys", kid);
	uint8_t sb[AUDIT_SIG_LEN];
	char *text = audit_export_signed_text(t);
	bool sig_ok = text && audit_unb64(sig, sb, AUDIT_SIG_LEN) &&
		      audit_ed25519_verify(key->pub, text, strlen(text), sb) == TSR_OK;
	free(text);
	if (!sig_ok)
		return done(k, false, "the verification record's signature is invalid: the record was changed");
	snprintf(k->signer, sizeof(k->signer), "%s", kid);
	/* 4. what tesserad found when it exported */
	json_t *chain = json_object_get(t, "chain");
	if (!json_is_true(json_object_get(chain, "verified"))) {
		const char *m = json_string_value(json_object_get(json_object_get(chain, "problem"), "message"));
		return done(k, false, "tesserad found the log itself broken when exporting: %s", m ? m : "(no detail)");
	}
	json_t *cover = json_object_get(t, "covering_seal");
	if (json_is_object(cover)) {
		struct audit_seal_rec s;
		char msg[256];
		const struct audit_pubkey *ck = NULL;
		size_t n = 0;
		if (audit_export_parse_seal(cover, &s) == TSR_OK) {
			ck = key_for(k, s.key_id);
			n = audit_seal_message(s.seq_upto, s.head_hash, s.sealed_at_us, s.key_id, msg, sizeof(msg));
		}
		if (!ck || !n || audit_ed25519_verify(ck->pub, msg, n, s.signature) != TSR_OK)
			return done(k, false, "the covering seal in the verification record does not verify");
		if (!filtered && s.seq_upto == k->last_seq && !crypto_equal(s.head_hash, k->head_hash, 32))
			return done(k, false, "the covering seal signed another head than the last record's hash");
	}
	if (filtered)
		return done(k, true,
			    "OK: %" PRId64 " records (a filtered export: each record matches its hash; tesserad verified the "
			    "chain of seq %" PRId64 "..%" PRId64 "), %" PRId64 " seal%s verified, export signed by key %.16s…",
			    k->records, (int64_t)json_integer_value(json_object_get(chain, "seq_first")),
			    (int64_t)json_integer_value(json_object_get(chain, "seq_last")), k->seals, k->seals == 1 ? "" : "s",
			    kid);
	if (!k->records)
		return done(k, true, "OK: no records in the range, export signed by key %.16s…", kid);
	return done(k, true,
		    "OK: %" PRId64 " records, seq %" PRId64 "..%" PRId64 ", chain intact, %" PRId64
		    " seal%s verified (the last up to seq %" PRId64 "), export signed by key %.16s…",
		    k->records, k->first_seq, k->last_seq, k->seals, k->seals == 1 ? "" : "s", k->last_sealed, kid);
}

void audit_check_report(const struct audit_check *k, FILE *f)
{
	fprintf(f, "%s%s\n", k->ok ? "" : "FAILED: ", k->result);
	if (k->ok && k->records && k->last_sealed < k->last_seq)
		fprintf(f, "note: records after seq %" PRId64 " are not yet covered by a seal in the file; the export's "
			   "signature covers them\n",
			k->last_sealed);
}

json_t *audit_check_json(const struct audit_check *k)
{
	char hh[65];
	crypto_hex(k->head_hash, 32, hh);
	return json_pack("{s:b,s:s,s:I,s:I,s:I,s:I,s:s,s:s?}", "ok", k->ok, "result", k->result, "records",
			 (json_int_t)k->records, "seq_first", (json_int_t)k->first_seq, "seq_last", (json_int_t)k->last_seq,
			 "seals", (json_int_t)k->seals, "head_hash", hh, "signed_by", k->signer[0] ? k->signer : NULL);
}

tsr_rc audit_keys_from_json(json_t *j, struct audit_pubkey **keys, int *nkeys)
{
	json_t *arr = json_object_get(j, "keys");
	if (!json_is_array(arr))
		return TSR_INVALID;
	size_t i;
	json_t *e;
	json_array_foreach (arr, i, e) {
		const char *pk = json_string_value(json_object_get(e, "public_key"));
		if (!pk)
			pk = json_string_value(json_object_get(e, "public_key_hex"));
		uint8_t pub[32];
		if (!pk || audit_pubkey_parse(pk, pub) != TSR_OK)
			return TSR_INVALID;
		struct audit_pubkey *n = realloc(*keys, (size_t)(*nkeys + 1) * sizeof(**keys));
		if (!n)
			return TSR_INTERNAL;
		*keys = n;
		memcpy(n[*nkeys].pub, pub, 32);
		audit_key_id(pub, n[*nkeys].id);
		(*nkeys)++;
	}
	return TSR_OK;
}

tsr_rc audit_keys_load(const char *const *values, int n, struct audit_pubkey **keys, int *nkeys, char *err,
		       size_t errlen)
{
	*keys = NULL;
	*nkeys = 0;
	for (int i = 0; i < n; i++) {
		const char *v = values[i];
		char *text = NULL;
		FILE *f = fopen(v, "r");
		if (f) {
			struct buf b;
			buf_init(&b, 1u << 20);
			char chunk[4096];
			size_t got;
			tsr_rc rc = TSR_OK;
			while (rc == TSR_OK && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
				rc = buf_append(&b, chunk, got);
			fclose(f);
			if (rc != TSR_OK || !b.data) {
				buf_free(&b);
				snprintf(err, errlen, "%s: empty or too large", v);
				return TSR_INVALID;
			}
			text = buf_steal(&b);
		} else if (errno != ENOENT || strchr(v, '/')) {
			snprintf(err, errlen, "%s: %s", v, strerror(errno));
			return TSR_INVALID;
		}
		const char *s = text ? text : v;
		uint8_t pub[32];
		json_error_t e;
		json_t *j = s[strspn(s, " \t\r\n")] == '{' ? json_loads(s, 0, &e) : NULL;
		tsr_rc rc;
		if (j) {
			rc = audit_keys_from_json(j, keys, nkeys);
			json_decref(j);
		} else if ((rc = audit_pubkey_parse(s, pub)) == TSR_OK) {
			struct audit_pubkey *nk = realloc(*keys, (size_t)(*nkeys + 1) * sizeof(**keys));
			if (!nk) {
				rc = TSR_INTERNAL;
			} else {
				*keys = nk;
				memcpy(nk[*nkeys].pub, pub, 32);
				audit_key_id(pub, nk[*nkeys].id);
				(*nkeys)++;
			}
		}
		free(text);
		if (rc != TSR_OK) {
			snprintf(err, errlen, "%s: not an Ed25519 public key (PEM, 64 hex digits, base64, or the JSON of "
					      "/audit/v1/keys)",
				 v);
			return TSR_INVALID;
		}
	}
	return TSR_OK;
}
