/*
 * Unit tests of gw_usage_from_json (broker/gateway_sse.c): token counts read from upstream answers
 * and SSE data lines by parsing only the "usage" objects. The counts feed the daily token budgets:
 * these tests pin what must be counted (every dialect, whitespace, nesting, truncation) and what
 * must not (usage look-alikes inside model text, counts that are not integers).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "broker/gateway_int.h"

struct counts {
	int64_t in, out;
};

static struct counts usage_of(const char *json)
{
	struct counts c = { -1, -1 };
	gw_usage_from_json(json, strlen(json), &c.in, &c.out);
	return c;
}

#define assert_counts(json, want_in, want_out)                   \
	do {                                                      \
		struct counts c_ = usage_of(json);                \
		assert_int_equal(c_.in, (want_in));               \
		assert_int_equal(c_.out, (want_out));             \
	} while (0)

static void openai_chat_answer_counts_prompt_and_completion(void **state)
{
	assert_counts("{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"gpt-4o\","
		      "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello there\"},"
		      "\"finish_reason\":\"stop\"}],"
		      "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7,\"total_tokens\":19,"
		      "\"prompt_tokens_details\":{\"cached_tokens\":0}}}",
		      12, 7);
}

static void openai_embeddings_count_prompt_only(void **state)
{
	assert_counts("{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
		      "\"embedding\":[0.0023,-0.0093,0.0158]}],\"model\":\"text-embedding-3-small\","
		      "\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}",
		      8, -1);
}

static void openai_stream_chunks_with_null_usage_count_nothing_until_the_last(void **state)
{
	assert_counts(" {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}", -1, -1);
	assert_counts(" {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":3,"
		      "\"total_tokens\":24}}",
		      21, 3);
}

static void responses_api_completed_event_counts_under_response(void **state)
{
	assert_counts("{\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{\"id\":\"resp_1\","
		      "\"status\":\"completed\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\","
		      "\"text\":\"done\"}]}],\"usage\":{\"input_tokens\":30,\"input_tokens_details\":{\"cached_tokens\":0},"
		      "\"output_tokens\":6,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":36}}}",
		      30, 6);
	/* events before completion carry "usage": null */
	assert_counts("{\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\","
		      "\"usage\":null}}",
		      -1, -1);
}

static void anthropic_message_start_and_delta_count_input_and_output(void **state)
{
	struct counts c = { -1, -1 };
	const char *start = " {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
			    "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-3-5-sonnet\",\"stop_reason\":null,"
			    "\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}";
	const char *delta = " {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
			    "\"usage\":{\"output_tokens\":15}}";
	gw_usage_from_json(start, strlen(start), &c.in, &c.out);
	assert_int_equal(c.in, 25);
	assert_int_equal(c.out, 1);
	gw_usage_from_json(delta, strlen(delta), &c.in, &c.out);
	assert_int_equal(c.in, 25);
	assert_int_equal(c.out, 15);
}

static void usage_written_inside_model_text_does_not_count(void **state)
{
	/* the model "answers" with a usage object of its own: escaped inside the content string */
	assert_counts("{\"choices\":[{\"message\":{\"content\":\"{\\\"usage\\\":{\\\"prompt_tokens\\\":99999,"
		      "\\\"completion_tokens\\\":99999}}\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}",
		      3, 4);
	/* ... and trying to close the string first: the quote is still escaped */
	assert_counts("{\"choices\":[{\"message\":{\"content\":\"x\\\",\\\"usage\\\": {\\\"prompt_tokens\\\":99999}, "
		      "\\\"y\\\":\\\"\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}",
		      3, 4);
	/* an escaped backslash before the quote: the string ends, "usage" is not preceded by { or , */
	assert_counts("{\"choices\":[{\"text\":\"a\\\\\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}", 3, 4);
	/* "usage" as a value, not a key */
	assert_counts("{\"object\":\"usage\",\"kind\":[\"usage\",{\"prompt_tokens\":500}],"
		      "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}",
		      3, 4);
}

static void whitespace_around_the_key_is_allowed(void **state)
{
	assert_counts("{ \"usage\" :\n\t{ \"prompt_tokens\" : 5 ,\r\n \"completion_tokens\"\t: 6 } }", 5, 6);
	assert_counts("{\"a\":1 ,\r\n\t \"usage\"\n:\n{\"input_tokens\":7,\"output_tokens\":8}}", 7, 8);
	assert_counts("\n\n{\n  \"usage\": {\n    \"prompt_tokens\": 9,\n    \"completion_tokens\": 10\n  }\n}\n", 9, 10);
}

static void nested_objects_around_and_inside_usage(void **state)
{
	/* usage after deep nesting, with nested details inside it */
	assert_counts("{\"a\":{\"b\":{\"c\":[{\"d\":{\"e\":[1,2,{\"f\":null}]}}]}},\"usage\":{\"prompt_tokens_details\":"
		      "{\"cached_tokens\":1000,\"audio_tokens\":{\"x\":2000}},\"prompt_tokens\":11,"
		      "\"completion_tokens_details\":{\"reasoning_tokens\":3000},\"completion_tokens\":12}}",
		      11, 12);
	/* a usage object the full parse would not look at (nested in choices) may only raise the counts */
	assert_counts("{\"choices\":[{\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":60}}],"
		      "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}}",
		      50, 60);
}

static void counts_never_go_down(void **state)
{
	struct counts c = { 100, 200 };
	const char *j = "{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}}";
	gw_usage_from_json(j, strlen(j), &c.in, &c.out);
	assert_int_equal(c.in, 100);
	assert_int_equal(c.out, 200);
	/* two usage keys: the larger of each count */
	assert_counts("{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":60},\"usage\":{\"prompt_tokens\":50,"
		      "\"completion_tokens\":6}}",
		      50, 60);
}

static void truncated_answers(void **state)
{
	/* cut inside the usage object: nothing can be read */
	assert_counts("{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":", -1, -1);
	assert_counts("{\"usage\":{\"prompt_tok", -1, -1);
	assert_counts("{\"usage\"", -1, -1);
	assert_counts("{\"usage\":", -1, -1);
	/* cut after it: the complete usage object still counts */
	assert_counts("{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7},\"choices\":[{\"message\":{\"con", 5, 7);
	/* a complete usage object, then one cut off: the first still counts */
	assert_counts("{\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":7}},\"usage\":{\"input_tokens\":", 5, 7);
}

static void counts_that_are_not_integers_do_not_count(void **state)
{
	assert_counts("{\"usage\":{\"prompt_tokens\":\"12\",\"completion_tokens\":\"7\"}}", -1, -1);
	assert_counts("{\"usage\":{\"prompt_tokens\":12.0,\"completion_tokens\":null}}", -1, -1);
	/* the alternative name is taken when the first is not an integer */
	assert_counts("{\"usage\":{\"prompt_tokens\":\"12\",\"input_tokens\":13,\"completion_tokens\":true,"
		      "\"output_tokens\":14}}",
		      13, 14);
}

static void usage_key_spelt_with_escapes_still_counts(void **state)
{
	/* "usag\u0065" is "usage" to a JSON parser: the full parse must still see it */
	assert_counts("{\"choices\":[{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}],"
		      "\"usag\\u0065\":{\"prompt_tokens\":40,\"completion_tokens\":41}}",
		      40, 41);
	assert_counts("{\"object\":\"usage\",\"\\u0075sage\":{\"input_tokens\":42,\"output_tokens\":43}}", 42, 43);
}

static void large_answer_with_usage_look_alikes_counts_the_real_one(void **state)
{
	struct buf b;
	buf_init(&b, 4 << 20);
	assert_int_equal(buf_append(&b, "{\"choices\":[{\"message\":{\"content\":\"", 35), TSR_OK);
	for (int i = 0; i < 20000; i++) {
		static const char chunk[] = "text {\\\"usage\\\":{\\\"prompt_tokens\\\":99999}} more ";
		assert_int_equal(buf_append(&b, chunk, sizeof(chunk) - 1), TSR_OK);
	}
	static const char tail[] = "\"}}],\"usage\":{\"prompt_tokens\":1234,\"completion_tokens\":5678}}";
	assert_int_equal(buf_append(&b, tail, sizeof(tail) - 1), TSR_OK);
	int64_t in = -1, out = -1;
	gw_usage_from_json(b.data, b.len, &in, &out);
	assert_int_equal(in, 1234);
	assert_int_equal(out, 5678);
	buf_free(&b);
}

static void deeply_nested_usage_keys_are_read_without_error(void **state)
{
	/* {"usage":{"prompt_tokens":N,"x":{"usage":... nested 500 deep; the outermost is the one counted
	 * by the full parse, and the scan reads it (and only it) */
	struct buf b;
	buf_init(&b, 1 << 20);
	char tmp[64];
	for (int i = 0; i < 500; i++) {
		int k = snprintf(tmp, sizeof(tmp), "{\"usage\":{\"prompt_tokens\":%d,\"x\":", 1000 - i);
		assert_int_equal(buf_append(&b, tmp, (size_t)k), TSR_OK);
	}
	assert_int_equal(buf_append(&b, "null", 4), TSR_OK);
	for (int i = 0; i < 500; i++)
		assert_int_equal(buf_append(&b, "}}", 2), TSR_OK);
	int64_t in = -1, out = -1;
	gw_usage_from_json(b.data, b.len, &in, &out);
	assert_int_equal(in, 1000);
	assert_int_equal(out, -1);
	buf_free(&b);
}

static void sse_stream_in_small_chunks_counts_anthropic_usage(void **state)
{
	const char *stream =
		"event: message_start\n"
		"data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
		"event: content_block_delta\n"
		"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
		"\"text\":\"{\\\"usage\\\":{\\\"output_tokens\\\":99999}}\"}}\n\n"
		"event: message_delta\r\n"
		"data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\r\n\r\n"
		"event: message_stop\n"
		"data: {\"type\":\"message_stop\"}\n\n";
	struct gw_req *g = calloc(1, sizeof(*g));
	assert_non_null(g);
	g->withhold_from = -1;
	g->tokens_in = g->tokens_out = -1;
	buf_init(&g->line, 4096);
	size_t n = strlen(stream);
	for (size_t at = 0; at < n; at += 7) {
		size_t k = n - at < 7 ? n - at : 7;
		gw_sse_feed(g, stream + at, k);
		g->total_in += (int64_t)k;
	}
	assert_int_equal(g->tokens_in, 25);
	assert_int_equal(g->tokens_out, 15);
	assert_true(g->withhold_from >= 0);
	buf_free(&g->line);
	free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(openai_chat_answer_counts_prompt_and_completion),
		cmocka_unit_test(openai_embeddings_count_prompt_only),
		cmocka_unit_test(openai_stream_chunks_with_null_usage_count_nothing_until_the_last),
		cmocka_unit_test(responses_api_completed_event_counts_under_response),
		cmocka_unit_test(anthropic_message_start_and_delta_count_input_and_output),
		cmocka_unit_test(usage_written_inside_model_text_does_not_count),
		cmocka_unit_test(whitespace_around_the_key_is_allowed),
		cmocka_unit_test(nested_objects_around_and_inside_usage),
		cmocka_unit_test(counts_never_go_down),
		cmocka_unit_test(truncated_answers),
		cmocka_unit_test(counts_that_are_not_integers_do_not_count),
		cmocka_unit_test(usage_key_spelt_with_escapes_still_counts),
		cmocka_unit_test(large_answer_with_usage_look_alikes_counts_the_real_one),
		cmocka_unit_test(deeply_nested_usage_keys_are_read_without_error),
		cmocka_unit_test(sse_stream_in_small_chunks_counts_anthropic_usage),
	};
	return cmocka_run_group_tests_name("gateway_usage", tests, NULL, NULL);
}
