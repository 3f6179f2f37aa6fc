/*
 * gateway_dialect.c — errors in the caller's dialect.
 *
 * OpenAI clients read {"error":{"message","type","param","code"}};
 * Anthropic clients {"type":"error","error":{"type","message"}}. Both SDKs
 * choose their exception class from the HTTP status, and show the message.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "gateway_int.h"

static const char *openai_type(int status)
{
	switch (status) {
	case 400: case 413: return "invalid_request_error";
	case 401: return "authentication_error";
	case 403: return "permission_error";
	case 404: return "not_found_error";
	case 429: return "rate_limit_error";
	default: return "server_error";
	}
}

static const char *openai_code(int status)
{
	switch (status) {
	case 400: return "blocked_by_policy";
	case 401: return "invalid_api_key";
	case 403: return "forbidden_by_policy";
	case 404: return "model_not_found";
	case 413: return "request_too_large";
	case 429: return "rate_limit_exceeded";
	case 502: return "upstream_error";
	case 503: return "service_unavailable";
	case 504: return "upstream_timeout";
	default: return "internal_error";
	}
}

static const char *anthropic_type(int status)
{
	switch (status) {
	case 400: return "invalid_request_error";
	case 401: return "authentication_error";
	case 403: return "permission_error";
	case 404: return "not_found_error";
	case 413: return "request_too_large";
	case 429: return "rate_limit_error";
	case 503: return "overloaded_error";
	default: return "api_error";
	}
}

tsr_rc gw_error(struct http_req *r, enum upstream_dialect d, int status, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *j;
	if (d == DIALECT_ANTHROPIC)
		j = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type", anthropic_type(status), "message",
			      msg);
	else
		j = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", msg, "type", openai_type(status), "param",
			      "code", openai_code(status));
	return http_reply_json(r, status, j);
}
