/*
 * Unit tests of the audit record's hand-written JSON (no server): the
 * journal/spool line (broker/auditlog_line.c) is byte for byte what the
 * jansson encoder it replaced wrote, and reads back to the same event; the
 * string escaper and integer formatter (lib/json_write.c) agree with
 * jansson and snprintf; the gateway's detail (broker/gateway_detail.c) is
 * already canonical, i.e. audit_canon_json() returns it unchanged.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "broker/auditlog_line.h"
#include "broker/gateway_detail.h"
#include "lib/audit_canon.h"
#include "lib/json_write.h"

/* ---------- the reference: the jansson encoder auditlog.c used before ---------- */

/* jstr() as it was; with null_bad, a string jansson refuses is null instead of NULL (a missing key). */
static json_t *ref_jstr(const char *s, bool null_bad)
{
	json_t *j = s ? json_string(s) : json_null();
	return !j && null_bad ? json_null() : j;
}

/* As event_json() was; null_bad: the one documented difference of the new writer (see ref_jstr). */
static json_t *ref_event_json(const struct audit_event *e, bool null_bad)
{
	json_t *j = json_object();
	assert_non_null(j);
#define JS(v) ref_jstr(v, null_bad)
	json_object_set_new(j, "at_us", json_integer(e->at_us));
	json_object_set_new(j, "event_id", JS(e->event_id));
	json_object_set_new(j, "actor", JS(e->actor));
	json_object_set_new(j, "actor_user_id", json_integer(e->actor_user_id));
	json_object_set_new(j, "actor_addr", JS(e->actor_addr));
	json_object_set_new(j, "action", JS(e->action));
	json_object_set_new(j, "target", JS(e->target));
	json_object_set_new(j, "outcome", JS(e->outcome));
	json_object_set_new(j, "user_id", json_integer(e->user_id));
	json_object_set_new(j, "repo_id", json_integer(e->repo_id));
	json_object_set_new(j, "credential_id", json_integer(e->credential_id));
	json_object_set_new(j, "route", JS(e->route));
	json_object_set_new(j, "model", JS(e->model));
	json_object_set_new(j, "upstream", JS(e->upstream));
	json_object_set_new(j, "upstream_key_id", json_integer(e->upstream_key_id));
	json_object_set_new(j, "decision", JS(e->decision));
	json_object_set_new(j, "rule_hits", JS(e->rule_hits));
	json_object_set_new(j, "req_bytes", json_integer(e->req_bytes));
	json_object_set_new(j, "resp_bytes", json_integer(e->resp_bytes));
	json_object_set_new(j, "req_sha256_hex", JS(e->req_sha256_hex));
	json_object_set_new(j, "status", json_integer(e->status));
	json_object_set_new(j, "latency_us", json_integer(e->latency_us));
	json_object_set_new(j, "tokens_in", json_integer(e->tokens_in));
	json_object_set_new(j, "tokens_out", json_integer(e->tokens_out));
	json_object_set_new(j, "detail", JS(e->detail));
#undef JS
	return j;
}

/* The old line (json_dumps(JSON_COMPACT) + "\n"); caller frees. */
static char *ref_line(const struct audit_event *e, bool null_bad)
{
	json_t *j = ref_event_json(e, null_bad);
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	assert_non_null(s);
	size_t n = strlen(s);
	char *line = malloc(n + 2);
	assert_non_null(line);
	memcpy(line, s, n);
	memcpy(line + n, "\n", 2);
	free(s);
	return line;
}

/* The fields event_from_json() reads back (its macro list), as one comparable text. */
static void read_back(const char *line, struct buf *out)
{
	json_error_t err;
	json_t *j = json_loads(line, 0, &err);
	assert_non_null(j);
	assert_true(json_is_object(j));
	buf_init(out, 1u << 20);
	static const char *const strs[] = { "event_id", "actor", "actor_addr", "action", "target", "outcome", "route",
					    "model", "upstream", "decision", "rule_hits", "req_sha256_hex", "detail" };
	static const char *const ints[] = { "at_us", "actor_user_id", "user_id", "repo_id", "credential_id",
					    "upstream_key_id", "req_bytes", "resp_bytes", "status", "latency_us",
					    "tokens_in", "tokens_out" };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		const char *v = json_string_value(json_object_get(j, strs[i]));
		assert_int_equal(buf_printf(out, "%s=%s%s;", strs[i], v ? "S" : "N", v ? v : ""), TSR_OK);
	}
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		assert_int_equal(buf_printf(out, "%s=%" PRId64 ";", ints[i],
					    (int64_t)json_integer_value(json_object_get(j, ints[i]))),
				 TSR_OK);
	json_decref(j);
}

/* ---------- awkward values ---------- */

static const char *const valid_strs[] = {
	"", "a", "\"", "\\", "\"\\\"", "a/b</script>", "tab\there", "line\nbreak\r\n", "\b\f", "\x01\x1f\x7f",
	"é", "日本語", "😀 emoji", "\xf4\x8f\xbf\xbf" /* U+10FFFF */, "\xef\xbf\xbd" /* U+FFFD */,
	"\xed\x9f\xbf" /* U+D7FF */, "\xee\x80\x80" /* U+E000 */, "{\"json\":[1,2]}", "gateway.request",
};

static const char *const invalid_strs[] = {
	"\x80", "\xc3", "a\xc3", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
	"\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "ok\xfe", "\xe6\x97",
	"\xf0\x9f\x98", "\xc3\x28", "\xe2\x28\xa1",
};

static const int64_t ints[] = { 0, -1, 1, 9, 10, -10, 999999, INT64_C(1714567890123456), INT64_MAX, INT64_MIN,
				INT64_MAX - 1, INT64_MIN + 1, 200, 4096 };

static char every_control[32]; /* bytes 0x01..0x1f */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A random string: NULL, one of the valid set, every control char, or (if bad) one of the invalid set. */
static const char *pick_str(bool allow_bad, bool *bad)
{
	uint64_t x = rnd() % 100;
	if (x < 15)
		return NULL;
	if (x < 20)
		return every_control;
	if (allow_bad && x >= 90) {
		*bad = true;
		return invalid_strs[rnd() % (sizeof(invalid_strs) / sizeof(invalid_strs[0]))];
	}
	return valid_strs[rnd() % (sizeof(valid_strs) / sizeof(valid_strs[0]))];
}

static void random_event(struct audit_event *e, bool allow_bad, bool *bad)
{
	memset(e, 0, sizeof(*e));
	*bad = false;
	snprintf(e->event_id, sizeof(e->event_id), "%08" PRIx64 "-0000-4000-8000-%012" PRIx64, rnd() & 0xffffffff,
		 rnd() & UINT64_C(0xffffffffffff));
#define S(f) e->f = pick_str(allow_bad, bad)
#define I(f) e->f = ints[rnd() % (sizeof(ints) / sizeof(ints[0]))]
	I(at_us); S(actor); I(actor_user_id); S(actor_addr); S(action); S(target); S(outcome); I(user_id); I(repo_id);
	I(credential_id); S(route); S(model); S(upstream); I(upstream_key_id); S(decision); S(rule_hits); I(req_bytes);
	I(resp_bytes); S(req_sha256_hex); I(status); I(latency_us); I(tokens_in); I(tokens_out); S(detail);
#undef S
#undef I
}

static void init_controls(void)
{
	for (int c = 1; c < 32; c++)
		every_control[c - 1] = (char)c;
	every_control[31] = '\0';
}

/* ---------- tests ---------- */

static void journal_line_is_byte_identical_to_the_jansson_encoder(void **state)
{
	(void)state;
	init_controls();
	for (int i = 0; i < 5000; i++) {
		struct audit_event e;
		bool bad;
		random_event(&e, false, &bad);
		e.detail_canonical = i % 2; /* never written: the line is the same either way */
		struct buf b;
		buf_init(&b, 1u << 20);
		assert_int_equal(auditlog_line(&b, &e), TSR_OK);
		char *want = ref_line(&e, false);
		assert_string_equal(b.data, want);
		assert_int_equal(b.len, strlen(want));
		free(want);
		buf_free(&b);
	}
}

static void journal_line_writes_invalid_utf8_as_null_and_reads_back_the_same(void **state)
{
	(void)state;
	init_controls();
	int with_bad = 0;
	for (int i = 0; i < 5000; i++) {
		struct audit_event e;
		bool bad;
		random_event(&e, true, &bad);
		with_bad += bad;
		struct buf b;
		buf_init(&b, 1u << 20);
		assert_int_equal(auditlog_line(&b, &e), TSR_OK);
		/* byte for byte the old encoder, a refused string being null rather than a missing key */
		char *want = ref_line(&e, true);
		assert_string_equal(b.data, want);
		free(want);
		/* and what a replay reads from it is what it read from the old line */
		char *old = ref_line(&e, false);
		struct buf got_ev, old_ev;
		read_back(b.data, &got_ev);
		read_back(old, &old_ev);
		assert_string_equal(got_ev.data, old_ev.data);
		free(old);
		buf_free(&got_ev);
		buf_free(&old_ev);
		buf_free(&b);
	}
	assert_true(with_bad > 1000); /* the invalid strings were exercised */
}

static void journal_line_reads_back_to_the_event(void **state)
{
	(void)state;
	struct audit_event e;
	memset(&e, 0, sizeof(e));
	memcpy(e.event_id, "0190c0de-0000-4000-8000-000000000001", 37);
	e.at_us = INT64_MAX;
	e.actor = "al\"ice\\";
	e.actor_user_id = INT64_MIN;
	e.action = "gateway.request";
	e.outcome = "";
	e.target = "\x01\x1f\n";
	e.route = "/v1/chat/completions";
	e.model = "日本😀";
	e.upstream = "\xc3\x28"; /* not UTF-8: null */
	e.rule_hits = "[\"a\"]";
	e.detail = "{\"k\":\"v\"}";
	e.status = -1;
	struct buf b;
	buf_init(&b, 1u << 16);
	assert_int_equal(auditlog_line(&b, &e), TSR_OK);
	assert_true(b.len > 0 && b.data[b.len - 1] == '\n');
	assert_null(memchr(b.data, '\n', b.len - 1)); /* one line */
	json_error_t err;
	json_t *j = json_loads(b.data, 0, &err);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 25);
	assert_string_equal(json_string_value(json_object_get(j, "event_id")), e.event_id);
	assert_true(json_integer_value(json_object_get(j, "at_us")) == INT64_MAX);
	assert_true(json_integer_value(json_object_get(j, "actor_user_id")) == INT64_MIN);
	assert_string_equal(json_string_value(json_object_get(j, "actor")), e.actor);
	assert_string_equal(json_string_value(json_object_get(j, "outcome")), "");
	assert_string_equal(json_string_value(json_object_get(j, "target")), e.target);
	assert_string_equal(json_string_value(json_object_get(j, "model")), e.model);
	assert_true(json_is_null(json_object_get(j, "upstream")));
	assert_true(json_is_null(json_object_get(j, "actor_addr")));
	assert_string_equal(json_string_value(json_object_get(j, "detail")), e.detail);
	assert_true(json_integer_value(json_object_get(j, "status")) == -1);
	assert_null(json_object_get(j, "detail_canonical"));
	json_decref(j);
	buf_free(&b);
}

static void strings_escape_like_jansson(void **state)
{
	(void)state;
	/* every single byte 0x01..0xff, and the explicit forms of the escapes */
	for (int c = 1; c < 256; c++) {
		char s[2] = { (char)c, 0 };
		struct buf b;
		buf_init(&b, 64);
		assert_int_equal(json_write_str(&b, s), TSR_OK);
		json_t *j = json_string(s);
		char *want = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		assert_string_equal(b.data, want ? want : "null");
		free(want);
		json_decref(j);
		buf_free(&b);
	}
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "\"", "\"\\\"\"" }, { "\\", "\"\\\\\"" }, { "/", "\"/\"" }, { "\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"" },
		{ "\x01\x1f", "\"\\u0001\\u001F\"" }, { "\x7f", "\"\x7f\"" }, { "é", "\"é\"" }, { "", "\"\"" },
		{ "\xed\xa0\x80", "null" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;
		buf_init(&b, 64);
		assert_int_equal(json_write_str(&b, cases[i].in), TSR_OK);
		assert_string_equal(b.data, cases[i].out);
		buf_free(&b);
	}
	struct buf b;
	buf_init(&b, 64);
	assert_int_equal(json_write_str(&b, NULL), TSR_OK);
	assert_string_equal(b.data, "null");
	buf_free(&b);
	/* the ceiling holds: a string that does not fit fails, nothing is half-written past it */
	buf_init(&b, 4);
	assert_int_not_equal(json_write_str(&b, "abcdef"), TSR_OK);
	assert_true(b.len <= 4);
	buf_free(&b);
}

static void utf8_check_agrees_with_jansson(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(valid_strs) / sizeof(valid_strs[0]); i++)
		assert_true(json_write_utf8_ok(valid_strs[i], strlen(valid_strs[i])));
	for (size_t i = 0; i < sizeof(invalid_strs) / sizeof(invalid_strs[0]); i++)
		assert_false(json_write_utf8_ok(invalid_strs[i], strlen(invalid_strs[i])));
	/* random byte strings biased to UTF-8 lead and continuation bytes */
	static const unsigned char bytes[] = { 'a', 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef,
					       0xf0, 0xf4, 0xf5, 0xff, 0x9f, 0xa0, 0x8f, 0x90 };
	for (int i = 0; i < 200000; i++) {
		char s[6];
		size_t n = 1 + rnd() % 5;
		for (size_t k = 0; k < n; k++)
			s[k] = (char)bytes[rnd() % sizeof(bytes)];
		s[n] = '\0';
		json_t *j = json_string(s);
		assert_int_equal(json_write_utf8_ok(s, n), j != NULL);
		json_decref(j);
	}
}

static void integers_format_like_printf(void **state)
{
	(void)state;
	for (int i = 0; i < 100000; i++) {
		int64_t v = i < (int)(sizeof(ints) / sizeof(ints[0])) ? ints[i] : (int64_t)rnd() >> (rnd() % 64);
		if (i % 3 == 0 && v != INT64_MIN)
			v = -v;
		char got[JSON_WRITE_INT_MAX], want[32];
		size_t n = json_write_i64(got, v);
		snprintf(want, sizeof(want), "%" PRId64, v);
		assert_string_equal(got, want);
		assert_int_equal(n, strlen(want));
	}
	char got[JSON_WRITE_INT_MAX];
	assert_int_equal(json_write_i64(got, INT64_MIN), 20);
	assert_string_equal(got, "-9223372036854775808");
}

/* audit_canon_json(text) == text, byte for byte */
static void assert_canonical(const char *text)
{
	char *canon = NULL;
	assert_int_equal(audit_canon_json(text, &canon), TSR_OK);
	assert_string_equal(canon, text);
	free(canon);
}

static void gateway_detail_is_already_canonical(void **state)
{
	(void)state;
	init_controls();
	const char *classes[] = { "", "public", "internal,secret", "a\"b\\c/d", every_control, "ünïcödé,日本,😀",
				  "\xc3\x28" /* not UTF-8: null */, NULL };
	const char *errors[] = { NULL, "Timeout was reached", "Couldn't connect to server", "Failure when receiving "
				 "data from the peer" };
	const int64_t nums[] = { -1, 0, 1, 123456, INT64_MAX, INT64_MIN };
	int n = 0;
	for (size_t c = 0; c < sizeof(classes) / sizeof(classes[0]); c++)
		for (size_t e = 0; e < sizeof(errors) / sizeof(errors[0]); e++)
			for (int flags = 0; flags < 4; flags++)
				for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++) {
					struct gateway_detail d = {
						.classifications = classes[c], .client_gone = flags & 1,
						.overhead_us = nums[k], .stream = flags & 2,
						.ttfb_us = nums[(k + 1) % 6], .upstream_error = errors[e],
						.upstream_us = nums[(k + 2) % 6],
					};
					struct buf b;
					buf_init(&b, 4096);
					assert_int_equal(gateway_detail_json(&b, &d), TSR_OK);
					assert_canonical(b.data);
					buf_free(&b);
					n++;
				}
	assert_int_equal(n, 8 * 4 * 4 * 6);

	/* and it says what the jansson version said, keys and values */
	struct gateway_detail d = { .classifications = "internal", .client_gone = true, .overhead_us = 12,
				    .stream = true, .ttfb_us = -1, .upstream_error = "Timeout was reached",
				    .upstream_us = 3400 };
	struct buf b;
	buf_init(&b, 4096);
	assert_int_equal(gateway_detail_json(&b, &d), TSR_OK);
	assert_string_equal(b.data, "{\"classifications\":\"internal\",\"client_gone\":true,\"overhead_us\":12,"
				    "\"stream\":true,\"ttfb_us\":-1,\"upstream_error\":\"Timeout was reached\","
				    "\"upstream_us\":3400}");
	json_t *ref = json_pack("{s:b,s:I,s:I,s:I,s:s}", "stream", 1, "upstream_us", (json_int_t)3400, "overhead_us",
				(json_int_t)12, "ttfb_us", (json_int_t)-1, "classifications", "internal");
	assert_non_null(ref);
	json_object_set_new(ref, "upstream_error", json_string("Timeout was reached"));
	json_object_set_new(ref, "client_gone", json_true());
	char *want = json_dumps(ref, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(b.data, want);
	free(want);
	json_decref(ref);
	buf_free(&b);

	/* without the optional keys */
	d = (struct gateway_detail){ .classifications = "", .overhead_us = 0, .ttfb_us = 5, .upstream_us = 7 };
	buf_init(&b, 4096);
	assert_int_equal(gateway_detail_json(&b, &d), TSR_OK);
	assert_string_equal(b.data,
			    "{\"classifications\":\"\",\"overhead_us\":0,\"stream\":false,\"ttfb_us\":5,\"upstream_us\":7}");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(journal_line_is_byte_identical_to_the_jansson_encoder),
		cmocka_unit_test(journal_line_writes_invalid_utf8_as_null_and_reads_back_the_same),
		cmocka_unit_test(journal_line_reads_back_to_the_event),
		cmocka_unit_test(strings_escape_like_jansson),
		cmocka_unit_test(utf8_check_agrees_with_jansson),
		cmocka_unit_test(integers_format_like_printf),
		cmocka_unit_test(gateway_detail_is_already_canonical),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
