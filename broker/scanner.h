/*
 * scanner.h — the data-governance scanner: finds secrets and PHI/PCI
 * patterns in outbound prompt text, in one hand-written pass.
 *
 * What it owns: the rules (PEM private keys, AWS/GCP/Azure keys,
 * GitHub/GitLab/Slack tokens, JWTs, tessera's own tsr_ tokens, US SSNs,
 * card numbers passing Luhn, and configured templates such as MRNs and
 * claim ids), where each rule matched (offsets, never copies of the text),
 * and redaction into typed placeholders ("[REDACTED:us_ssn]").
 * What it does not own: deciding what a hit means (policy.c) and logging
 * (nothing here ever logs or returns matched text).
 *
 * The input is scanned as bytes: the gateway scans the raw JSON request
 * body, so every field (system prompt, messages, tools) is covered. A JSON
 * escape such as "\n" before a token counts as a word boundary.
 *
 * How it stays fast (>= 500 MB/s per core on a 32 KiB prompt): one pass, a
 * 256-entry class table, and rules are tried only at the few bytes that can
 * start one (a word-initial trigger letter, a digit at a word start, "-----",
 * "Q~"); everything else costs one table load.
 *
 * A struct scanner is immutable after scanner_new(); share it between threads.
 */
#ifndef TSR_SCANNER_H
#define TSR_SCANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../lib/status.h"
#include "../lib/buf.h"

enum scan_rule {
	SR_PEM_PRIVATE_KEY,
	SR_AWS_ACCESS_KEY,
	SR_AWS_SECRET_KEY,
	SR_GCP_API_KEY,
	SR_AZURE_STORAGE_KEY,
	SR_AZURE_CLIENT_SECRET,
	SR_GITHUB_TOKEN,
	SR_GITLAB_TOKEN,
	SR_SLACK_TOKEN,
	SR_JWT,
	SR_TSR_TOKEN,
	SR_US_SSN,
	SR_CARD_NUMBER,
	SR_BUILTIN_N, /* configured templates follow: SR_BUILTIN_N + i */
};

#define SCAN_MAX_CUSTOM 16
#define SCAN_MAX_RULES (SR_BUILTIN_N + SCAN_MAX_CUSTOM)
#define SCAN_MAX_SPANS 256

/* The data class of a rule: what kind of thing it finds. */
enum scan_group { SG_SECRET, SG_PHI, SG_PCI };

struct scan_span {
	uint32_t off, len;
	uint16_t rule;
};

struct scan_result {
	uint32_t hits[SCAN_MAX_RULES]; /* per rule */
	uint32_t total;
	struct scan_span spans[SCAN_MAX_SPANS]; /* in order; the first SCAN_MAX_SPANS hits */
	int n_spans;
	bool spans_truncated;
};

struct scanner;

/*
 * Build a scanner. templates: "name:TEMPLATE" or "name@phi|pci:TEMPLATE"
 * entries where, in TEMPLATE, '#' is a digit, '@' a letter, '*' a letter or
 * digit, '\x' the literal x, and anything else itself; a match must stand
 * alone (no letter or digit right before or after). err names a bad entry.
 * Caller frees with scanner_free().
 */
tsr_rc scanner_new(const char *const *templates, size_t n, struct scanner **out, char *err, size_t errlen) TSR_WUR;
void scanner_free(struct scanner *s);

/* Scan p[0..n). Fills *res (which need not be initialised). */
void scanner_scan(const struct scanner *s, const char *p, size_t n, struct scan_result *res);

/*
 * Copy p[0..n) into out with the spans whose rule has redact[rule] set
 * replaced by "[REDACTED:rule]". Spans must come from scanner_scan of the
 * same text. TSR_TOO_LARGE at out's ceiling.
 */
tsr_rc scanner_redact(const struct scanner *s, const char *p, size_t n, const struct scan_result *res,
		      const bool *redact, struct buf *out) TSR_WUR;

int scanner_n_rules(const struct scanner *s);
/* Rule name ("us_ssn", "mrn"), or NULL past the end. */
const char *scanner_rule_name(const struct scanner *s, int rule);
enum scan_group scanner_rule_group(const struct scanner *s, int rule);
/* Rule index by name, -1 if unknown. */
int scanner_rule_find(const struct scanner *s, const char *name, size_t len);

#endif
