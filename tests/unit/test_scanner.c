/* Unit tests of broker/scanner.c: every rule finds its pattern, near misses do not match, redaction. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "broker/scanner.h"

static struct scanner *S;

static int setup(void **state)
{
	const char *tpl[] = { "mrn:MRN-#######", "claim_id@phi:CLM\\-@@########" };
	char err[200];
	return scanner_new(tpl, 2, &S, err, sizeof(err)) == TSR_OK ? 0 : -1;
}

static int teardown(void **state)
{
	scanner_free(S);
	return 0;
}

/* The one rule text hits (asserting exactly one hit), or -1 when nothing matched. */
static int one_rule(const char *text)
{
	struct scan_result r;
	scanner_scan(S, text, strlen(text), &r);
	if (r.total == 0)
		return -1;
	assert_int_equal(r.total, 1);
	return r.spans[0].rule;
}

static void finds_each_secret_rule(void **state)
{
	assert_int_equal(one_rule("key\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"),
			 SR_PEM_PRIVATE_KEY);
	assert_int_equal(one_rule("{\"content\":\"-----BEGIN OPENSSH PRIVATE KEY-----\\nb3Blbn\\n-----END OPENSSH PRIVATE KEY-----\"}"),
			 SR_PEM_PRIVATE_KEY);
	assert_int_equal(one_rule("id=AKIAIOSFODNN7EXAMPLE end"), SR_AWS_ACCESS_KEY);
	assert_int_equal(one_rule("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"), SR_AWS_SECRET_KEY);
	assert_int_equal(one_rule("k: AIzaSyA-1234567890abcdefghijklmnopqrstu"), SR_GCP_API_KEY);
	assert_int_equal(one_rule("DefaultEndpointsProtocol=https;AccountName=x;AccountKey="
				  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"),
			 SR_AZURE_STORAGE_KEY);
	assert_int_equal(one_rule("secret 'abc8Q~abcdefghijklmnopqrstuvwxyz0123456' ok"), SR_AZURE_CLIENT_SECRET);
	assert_int_equal(one_rule("token ghp_0123456789abcdefghijklmnopqrstuvwxyz"), SR_GITHUB_TOKEN);
	assert_int_equal(one_rule("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"), SR_GITHUB_TOKEN);
	assert_int_equal(one_rule("glpat-abcdefghij0123456789"), SR_GITLAB_TOKEN);
	assert_int_equal(one_rule("xoxb-123456789012-abcdefghijkl"), SR_SLACK_TOKEN);
	assert_int_equal(one_rule("https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
			 SR_SLACK_TOKEN);
	assert_int_equal(one_rule("Authorization: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N"),
			 SR_JWT);
	assert_int_equal(one_rule("use tsr_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ please"), SR_TSR_TOKEN);
}

static void finds_phi_and_pci(void **state)
{
	assert_int_equal(one_rule("patient ssn 123-45-6789."), SR_US_SSN);
	assert_int_equal(one_rule("\"text\":\"ssn:\\n078-05-1120\""), SR_US_SSN);
	assert_int_equal(one_rule("card 4111 1111 1111 1111 exp"), SR_CARD_NUMBER);
	assert_int_equal(one_rule("card 4111-1111-1111-1111"), SR_CARD_NUMBER);
	assert_int_equal(one_rule("amex 378282246310005"), SR_CARD_NUMBER);
	assert_int_equal(one_rule("mc 5555555555554444;"), SR_CARD_NUMBER);
	assert_int_equal(one_rule("see MRN-0012345 today"), SR_BUILTIN_N);
	assert_int_equal(one_rule("claim CLM-AB12345678"), SR_BUILTIN_N + 1);
}

static void near_misses_do_not_match(void **state)
{
	assert_int_equal(one_rule("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"), -1);
	assert_int_equal(one_rule("-----BEGIN PUBLIC KEY-----"), -1);
	assert_int_equal(one_rule("AKIAIOSFODNN7EXAMPL"), -1);        /* 19 chars */
	assert_int_equal(one_rule("XAKIAIOSFODNN7EXAMPLE"), -1);      /* not at a word start */
	assert_int_equal(one_rule("AKIAIOSFODNN7EXAMPLEX"), -1);      /* runs on */
	assert_int_equal(one_rule("ghp_short"), -1);
	assert_int_equal(one_rule("tsr_tooshort"), -1);
	assert_int_equal(one_rule("eyJhbGciOiJIUzI1NiJ9 only a header"), -1);
	assert_int_equal(one_rule("ssn 000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000"), -1);
	assert_int_equal(one_rule("phone 555-123-4567, date 2024-01-15 10:30"), -1);
	assert_int_equal(one_rule("card 4111 1111 1111 1112"), -1); /* fails Luhn */
	assert_int_equal(one_rule("id 1234567890123456"), -1);       /* no card issuer */
	assert_int_equal(one_rule("41111111111111111111111"), -1);   /* too long */
	assert_int_equal(one_rule("MRN-001234"), -1);                /* template wants 7 digits */
	assert_int_equal(one_rule("XMRN-0012345"), -1);
	assert_int_equal(one_rule("the quick brown fox at the gate, eating grapes"), -1);
}

static void counts_several_hits_in_order(void **state)
{
	const char *t = "a 123-45-6789 b AKIAIOSFODNN7EXAMPLE c 123-45-6789";
	struct scan_result r;
	scanner_scan(S, t, strlen(t), &r);
	assert_int_equal(r.total, 3);
	assert_int_equal(r.hits[SR_US_SSN], 2);
	assert_int_equal(r.hits[SR_AWS_ACCESS_KEY], 1);
	assert_int_equal(r.n_spans, 3);
	assert_int_equal(r.spans[0].off, 2);
	assert_int_equal(r.spans[1].rule, SR_AWS_ACCESS_KEY);
}

static void redaction_replaces_only_chosen_rules_with_typed_placeholders(void **state)
{
	const char *t = "{\"q\":\"ssn 123-45-6789 key AKIAIOSFODNN7EXAMPLE\"}";
	struct scan_result r;
	scanner_scan(S, t, strlen(t), &r);
	bool red[SCAN_MAX_RULES] = { false };
	red[SR_US_SSN] = true;
	struct buf out;
	buf_init(&out, 1 << 20);
	assert_int_equal(scanner_redact(S, t, strlen(t), &r, red, &out), TSR_OK);
	assert_string_equal(out.data, "{\"q\":\"ssn [REDACTED:us_ssn] key AKIAIOSFODNN7EXAMPLE\"}");
	buf_free(&out);
}

static void rule_names_are_stable(void **state)
{
	assert_string_equal(scanner_rule_name(S, SR_TSR_TOKEN), "tsr_token");
	assert_string_equal(scanner_rule_name(S, SR_BUILTIN_N), "mrn");
	assert_int_equal(scanner_rule_find(S, "card_number", 11), SR_CARD_NUMBER);
	assert_int_equal(scanner_rule_find(S, "claim_id", 8), SR_BUILTIN_N + 1);
	assert_int_equal(scanner_rule_group(S, SR_US_SSN), SG_PHI);
	assert_int_equal(scanner_rule_group(S, SR_CARD_NUMBER), SG_PCI);
	assert_int_equal(scanner_rule_group(S, SR_JWT), SG_SECRET);
	assert_null(scanner_rule_name(S, SR_BUILTIN_N + 2));
}

static void bad_templates_are_refused_with_a_reason(void **state)
{
	struct scanner *s = NULL;
	char err[200];
	const char *a[] = { "nocolon" };
	assert_int_equal(scanner_new(a, 1, &s, err, sizeof(err)), TSR_INVALID);
	const char *b[] = { "x:AB" };
	assert_int_equal(scanner_new(b, 1, &s, err, sizeof(err)), TSR_INVALID);
	assert_non_null(strstr(err, "at least"));
	const char *c[] = { "us_ssn:###-##-####" };
	assert_int_equal(scanner_new(c, 1, &s, err, sizeof(err)), TSR_INVALID);
	const char *d[] = { "x@foo:####" };
	assert_int_equal(scanner_new(d, 1, &s, err, sizeof(err)), TSR_INVALID);
}

static void scans_binary_junk_without_reading_past_the_end(void **state)
{
	/* every prefix of a tricky text: matchers must bound-check (ASan catches a read past n) */
	const char *t = "-----BEGIN RSA PRIVATE KEY-----\\nAAAA AKIA ghp_ xoxb- eyJhb.eyJ 4111 123-45- AccountKey=abc8Q~";
	size_t n = strlen(t);
	for (size_t k = 0; k <= n; k++) {
		char *copy = malloc(k ? k : 1);
		memcpy(copy, t, k);
		struct scan_result r;
		scanner_scan(S, copy, k, &r);
		free(copy);
	}
}

static void matches_never_overlap_even_when_a_rule_looks_back(void **state)
{
	/* found by fuzz_scanner: an Azure secret's "Q~" right after a Slack webhook URL */
	const char *t = "x hooks.slack.com/services/-26-22-2/serc2-655655/6388Q~-21292-6-2-v555655638-2-6-2-v55es/-2";
	struct scan_result r;
	scanner_scan(S, t, strlen(t), &r);
	for (int i = 1; i < r.n_spans; i++)
		assert_true(r.spans[i].off >= r.spans[i - 1].off + r.spans[i - 1].len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(finds_each_secret_rule),
		cmocka_unit_test(finds_phi_and_pci),
		cmocka_unit_test(near_misses_do_not_match),
		cmocka_unit_test(counts_several_hits_in_order),
		cmocka_unit_test(redaction_replaces_only_chosen_rules_with_typed_placeholders),
		cmocka_unit_test(rule_names_are_stable),
		cmocka_unit_test(bad_templates_are_refused_with_a_reason),
		cmocka_unit_test(scans_binary_junk_without_reading_past_the_end),
		cmocka_unit_test(matches_never_overlap_even_when_a_rule_looks_back),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
