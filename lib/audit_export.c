/*
 * audit_export.c — see audit_export.h.
 *
 * The CSV reader is the small RFC 4180 subset the writer produces (quoted
 * fields with doubled quotes, CRLF or LF line ends); anything else is a
 * malformed record, which offline verification reports as such.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_export.h"
#include "crypto.h"

static bool is_int_field(int k)
{
	switch (k) {
	case AUF_SEQ:
	case AUF_ACTOR_USER_ID:
	case AUF_USER_ID:
	case AUF_REPO_ID:
	case AUF_CREDENTIAL_ID:
	case AUF_UPSTREAM_KEY_ID:
	case AUF_REQ_BYTES:
	case AUF_RESP_BYTES:
	case AUF_STATUS:
	case AUF_LATENCY_US:
	case AUF_TOKENS_IN:
	case AUF_TOKENS_OUT:
		return true;
	default:
		return false;
	}
}

static bool is_json_field(int k)
{
	return k == AUF_RULE_HITS || k == AUF_DETAIL;
}

json_t *audit_export_json(const struct audit_rec *r)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	for (int k = 0; k < AUF_NFIELDS; k++) {
		const char *v = r->f[k];
		json_t *j;
		if (!v) {
			j = json_null();
		} else if (is_int_field(k)) {
			j = json_integer((json_int_t)strtoll(v, NULL, 10));
		} else if (k == AUF_AT_US) {
			char at[32];
			audit_time_format(strtoll(v, NULL, 10), at);
			j = json_string(at);
		} else if (is_json_field(k)) {
			json_error_t e;
			j = json_loads(v, JSON_DECODE_ANY, &e);
		} else {
			j = json_string(v);
		}
		if (!j || json_object_set_new(o, audit_field_names[k], j) != 0) {
			json_decref(o);
			return NULL;
		}
	}
	char ph[65], hh[65];
	crypto_hex(r->prev_hash, 32, ph);
	crypto_hex(r->hash, 32, hh);
	if (json_object_set_new(o, "prev_hash", json_string(ph)) != 0 ||
	    json_object_set_new(o, "hash", json_string(hh)) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *audit_export_seal_json(const struct audit_seal_rec *s)
{
	char hh[65], sig[89], at[32];
	crypto_hex(s->head_hash, 32, hh);
	audit_b64(s->signature, AUDIT_SIG_LEN, sig);
	audit_time_format(s->sealed_at_us, at);
	return json_pack("{s:s,s:I,s:I,s:s,s:s,s:s,s:s}", "type", "seal", "id", (json_int_t)s->id, "seq_upto",
			 (json_int_t)s->seq_upto, "head_hash", hh, "sealed_at", at, "key_id", s->key_id, "signature",
			 sig);
}

void audit_parsed_free(struct audit_parsed *p)
{
	for (int k = 0; k < AUF_NFIELDS; k++) {
		free(p->text[k]);
		p->text[k] = NULL;
	}
}

static tsr_rc perr(char *err, size_t n, const char *what, const char *field)
{
	snprintf(err, n, "%s %s", what, field);
	return TSR_INVALID;
}

tsr_rc audit_export_parse(json_t *obj, struct audit_parsed *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	if (!json_is_object(obj))
		return perr(err, errlen, "not a JSON object:", "record");
	for (int k = 0; k < AUF_NFIELDS; k++) {
		const char *name = audit_field_names[k];
		json_t *v = json_object_get(obj, name);
		if (!v) {
			audit_parsed_free(p);
			return perr(err, errlen, "missing field", name);
		}
		if (json_is_null(v)) {
			p->rec.f[k] = NULL;
		} else if (is_int_field(k)) {
			if (!json_is_integer(v)) {
				audit_parsed_free(p);
				return perr(err, errlen, "not an integer:", name);
			}
			snprintf(p->num[k], sizeof(p->num[k]), "%" PRId64, (int64_t)json_integer_value(v));
			p->rec.f[k] = p->num[k];
		} else if (k == AUF_AT_US) {
			int64_t us;
			if (!json_is_string(v) || !audit_time_parse(json_string_value(v), &us)) {
				audit_parsed_free(p);
				return perr(err, errlen, "not a time like 2026-01-02T03:04:05.000000Z:", name);
			}
			snprintf(p->num[k], sizeof(p->num[k]), "%" PRId64, us);
			p->rec.f[k] = p->num[k];
		} else if (is_json_field(k)) {
			p->text[k] = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
			if (!p->text[k]) {
				audit_parsed_free(p);
				return perr(err, errlen, "unencodable", name);
			}
			p->rec.f[k] = p->text[k];
		} else {
			if (!json_is_string(v)) {
				audit_parsed_free(p);
				return perr(err, errlen, "not a string:", name);
			}
			p->rec.f[k] = json_string_value(v);
		}
	}
	const char *ph = json_string_value(json_object_get(obj, "prev_hash"));
	const char *hh = json_string_value(json_object_get(obj, "hash"));
	if (!p->rec.f[AUF_SEQ]) {
		audit_parsed_free(p);
		return perr(err, errlen, "null", "seq");
	}
	if (!ph || !crypto_unhex(ph, p->rec.prev_hash, 32) || !hh || !crypto_unhex(hh, p->rec.hash, 32)) {
		audit_parsed_free(p);
		return perr(err, errlen, "bad or missing", "prev_hash/hash");
	}
	p->rec.seq = strtoll(p->rec.f[AUF_SEQ], NULL, 10);
	return TSR_OK;
}

tsr_rc audit_export_parse_seal(json_t *o, struct audit_seal_rec *s)
{
	memset(s, 0, sizeof(*s));
	const char *hh = json_string_value(json_object_get(o, "head_hash"));
	const char *at = json_string_value(json_object_get(o, "sealed_at"));
	const char *kid = json_string_value(json_object_get(o, "key_id"));
	const char *sig = json_string_value(json_object_get(o, "signature"));
	json_t *seq = json_object_get(o, "seq_upto");
	if (!hh || !at || !kid || !sig || !json_is_integer(seq) || strlen(kid) != AUDIT_KEY_ID_LEN ||
	    !crypto_unhex(hh, s->head_hash, 32) || !audit_time_parse(at, &s->sealed_at_us) ||
	    !audit_unb64(sig, s->signature, AUDIT_SIG_LEN))
		return TSR_INVALID;
	s->seq_upto = (int64_t)json_integer_value(seq);
	s->id = (int64_t)json_integer_value(json_object_get(o, "id"));
	snprintf(s->key_id, sizeof(s->key_id), "%s", kid);
	return TSR_OK;
}

tsr_rc audit_csv_header(struct buf *b)
{
	for (int k = 0; k < AUF_NFIELDS; k++)
		if (buf_puts(b, audit_field_names[k]) != TSR_OK || buf_puts(b, ",") != TSR_OK)
			return TSR_TOO_LARGE;
	return buf_puts(b, "prev_hash,hash\n");
}

static tsr_rc csv_field(struct buf *b, const char *v)
{
	if (!v)
		return TSR_OK; /* NULL: empty and unquoted */
	if (*v && !strpbrk(v, ",\"\r\n") && *v != '#')
		return buf_puts(b, v);
	if (buf_puts(b, "\"") != TSR_OK)
		return TSR_TOO_LARGE;
	for (const char *q; (q = strchr(v, '"')) != NULL; v = q + 1)
		if (buf_append(b, v, (size_t)(q - v)) != TSR_OK || buf_puts(b, "\"\"") != TSR_OK)
			return TSR_TOO_LARGE;
	if (buf_puts(b, v) != TSR_OK)
		return TSR_TOO_LARGE;
	return buf_puts(b, "\"");
}

tsr_rc audit_csv_row(struct buf *b, const struct audit_rec *r)
{
	char at[32], ph[65], hh[65];
	for (int k = 0; k < AUF_NFIELDS; k++) {
		const char *v = r->f[k];
		if (k == AUF_AT_US && v) {
			audit_time_format(strtoll(v, NULL, 10), at);
			v = at;
		}
		if (csv_field(b, v) != TSR_OK || buf_puts(b, ",") != TSR_OK)
			return TSR_TOO_LARGE;
	}
	crypto_hex(r->prev_hash, 32, ph);
	crypto_hex(r->hash, 32, hh);
	return buf_printf(b, "%s,%s\n", ph, hh);
}

tsr_rc audit_csv_parse(const char *text, size_t len, struct audit_parsed *p, bool *need_more, char *err,
		       size_t errlen)
{
	memset(p, 0, sizeof(*p));
	*need_more = false;
	char *fields[AUF_NFIELDS + 2] = { 0 };
	bool isnull[AUF_NFIELDS + 2] = { 0 };
	int nf = 0;
	size_t i = 0;
	tsr_rc rc = TSR_OK;
	for (;;) {
		if (nf >= AUF_NFIELDS + 2) {
			rc = perr(err, errlen, "too many fields in", "a CSV row");
			goto out;
		}
		struct buf f;
		buf_init(&f, len + 1);
		if (i < len && text[i] == '"') {
			i++;
			for (;;) {
				const char *q = memchr(text + i, '"', len - i);
				if (!q) {
					buf_free(&f);
					*need_more = true;
					rc = TSR_INVALID;
					goto out;
				}
				size_t span = (size_t)(q - (text + i));
				if (span && (rc = buf_append(&f, text + i, span)) != TSR_OK)
					break;
				i += span;
				if (i + 1 < len && text[i + 1] == '"') {
					rc = buf_append(&f, "\"", 1);
					i += 2;
					if (rc != TSR_OK)
						break;
					continue;
				}
				i++; /* the closing quote */
				break;
			}
			if (rc == TSR_OK && !f.data)
				rc = buf_puts(&f, "");
		} else {
			size_t j = i;
			while (j < len && text[j] != ',' && text[j] != '\n' && text[j] != '\r')
				j++;
			if (j == i)
				isnull[nf] = true;
			else
				rc = buf_append(&f, text + i, j - i);
			i = j;
		}
		if (rc != TSR_OK) {
			buf_free(&f);
			goto out;
		}
		if (isnull[nf]) {
			buf_free(&f);
			fields[nf] = NULL;
		} else {
			fields[nf] = buf_steal(&f);
		}
		nf++;
		if (i < len && text[i] == ',') {
			i++;
			continue;
		}
		if (i < len && text[i] == '\r')
			i++;
		if (i < len && text[i] != '\n') {
			rc = perr(err, errlen, "stray text after a quoted field in", "a CSV row");
			goto out;
		}
		break;
	}
	if (nf != AUF_NFIELDS + 2) {
		snprintf(err, errlen, "a CSV row needs %d fields, this one has %d", AUF_NFIELDS + 2, nf);
		rc = TSR_INVALID;
		goto out;
	}
	for (int k = 0; k < AUF_NFIELDS; k++) {
		p->text[k] = fields[k];
		fields[k] = NULL;
		p->rec.f[k] = p->text[k];
		if (!p->rec.f[k])
			continue;
		if (k == AUF_AT_US) {
			int64_t us;
			if (!audit_time_parse(p->text[k], &us)) {
				rc = perr(err, errlen, "not a time like 2026-01-02T03:04:05.000000Z:", "at");
				goto out;
			}
			snprintf(p->num[k], sizeof(p->num[k]), "%" PRId64, us);
			p->rec.f[k] = p->num[k];
		}
	}
	if (!p->rec.f[AUF_SEQ] || !fields[AUF_NFIELDS] || !fields[AUF_NFIELDS + 1] ||
	    !crypto_unhex(fields[AUF_NFIELDS], p->rec.prev_hash, 32) ||
	    !crypto_unhex(fields[AUF_NFIELDS + 1], p->rec.hash, 32)) {
		rc = perr(err, errlen, "bad seq or hashes in", "a CSV row");
		goto out;
	}
	p->rec.seq = strtoll(p->rec.f[AUF_SEQ], NULL, 10);
out:
	for (int k = 0; k < AUF_NFIELDS + 2; k++)
		free(fields[k]);
	if (rc != TSR_OK)
		audit_parsed_free(p);
	return rc;
}

char *audit_export_signed_text(json_t *trailer)
{
	json_t *copy = json_deep_copy(trailer);
	if (!copy)
		return NULL;
	json_object_del(copy, "signature");
	char *s = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(copy);
	if (!s)
		return NULL;
	size_t n = strlen(AUDIT_EXPORT_FORMAT) + 1 + strlen(s) + 1;
	char *msg = malloc(n);
	if (msg)
		snprintf(msg, n, "%s\n%s", AUDIT_EXPORT_FORMAT, s);
	free(s);
	return msg;
}
