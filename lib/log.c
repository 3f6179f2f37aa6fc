/*
 * log.c — see log.h. Owns the stderr log format and redaction; nothing else.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <stdatomic.h>

#include "log.h"

static atomic_int min_level = LOG_INFO;

static const char *level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level lvl)
{
	atomic_store(&min_level, (int)lvl);
}

int log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

static int is_tok_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* Overwrite s[from..to) with "[REDACTED]" (shorter or equal) and close the gap. */
static size_t replace_span(char *s, size_t from, size_t to)
{
	static const char mark[] = "[REDACTED]";
	size_t mlen = sizeof(mark) - 1;
	size_t span = to - from;
	if (span < mlen) {
		/* too short to hold the mark: blank it with '*' */
		memset(s + from, '*', span);
		return to;
	}
	memcpy(s + from, mark, mlen);
	memmove(s + from + mlen, s + to, strlen(s + to) + 1);
	return from + mlen;
}

void log_redact(char *s)
{
	size_t i = 0;
	while (s[i]) {
		if (strncmp(s + i, "tsr_", 4) == 0 && (i == 0 || !is_tok_char(s[i - 1]))) {
			size_t j = i + 4;
			while (is_tok_char(s[j]))
				j++;
			if (j - (i + 4) >= 12) {
				i = replace_span(s, i + 8, j);
				continue;
			}
			i = j;
			continue;
		}
		if (strncasecmp(s + i, "password=", 9) == 0) {
			size_t j = i + 9;
			if (s[j] == '\'') {
				j++;
				while (s[j] && s[j] != '\'')
					j += (s[j] == '\\' && s[j + 1]) ? 2 : 1;
				if (s[j])
					j++;
			} else {
				while (s[j] && s[j] != ' ' && s[j] != '&' && s[j] != '"')
					j++;
			}
			i = replace_span(s, i + 9, j);
			continue;
		}
		if (strncmp(s + i, "://", 3) == 0) {
			/* scheme://user:password@host — find '@' before the next '/' or space */
			size_t j = i + 3, colon = 0;
			while (s[j] && s[j] != '/' && s[j] != ' ' && s[j] != '@' && s[j] != '"') {
				if (s[j] == ':' && !colon)
					colon = j;
				j++;
			}
			if (s[j] == '@' && colon) {
				i = replace_span(s, colon + 1, j);
				continue;
			}
			i += 3;
			continue;
		}
		i++;
	}
}

void log_event(enum log_level lvl, const char *event, const char *fmt, ...)
{
	if ((int)lvl < atomic_load(&min_level))
		return;
	char line[4096];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 ts.tv_nsec / 1000000, level_names[lvl], event);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	if (fmt && *fmt && len < sizeof(line) - 2) {
		line[len++] = ' ';
		va_list ap;
		va_start(ap, fmt);
		int m = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
		va_end(ap);
		if (m > 0)
			len += (size_t)m < sizeof(line) - len ? (size_t)m : sizeof(line) - len - 1;
	}
	line[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	log_redact(line);
	len = strlen(line);
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
