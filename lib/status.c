/*
 * status.c — mappings of tsr_rc onto HTTP and exit codes. See status.h.
 */
#include "status.h"

int status_http(tsr_rc rc)
{
	switch (rc) {
	case TSR_OK: return 200;
	case TSR_INVALID: return 400;
	case TSR_UNAUTHENTICATED: return 401;
	case TSR_DENIED: return 403;
	case TSR_NOT_FOUND: return 404;
	case TSR_CONFLICT: return 409;
	case TSR_TOO_LARGE: return 413;
	case TSR_RATE_LIMITED: return 429;
	case TSR_UNAVAILABLE: return 503;
	case TSR_INTERNAL: return 500;
	}
	return 500;
}

const char *status_name(tsr_rc rc)
{
	switch (rc) {
	case TSR_OK: return "ok";
	case TSR_INVALID: return "invalid_request";
	case TSR_UNAUTHENTICATED: return "unauthenticated";
	case TSR_DENIED: return "forbidden";
	case TSR_NOT_FOUND: return "not_found";
	case TSR_CONFLICT: return "conflict";
	case TSR_TOO_LARGE: return "too_large";
	case TSR_RATE_LIMITED: return "rate_limited";
	case TSR_UNAVAILABLE: return "unavailable";
	case TSR_INTERNAL: return "internal";
	}
	return "internal";
}

tsr_rc status_from_http(long http)
{
	if (http >= 200 && http < 300)
		return TSR_OK;
	switch (http) {
	case 400: case 422: return TSR_INVALID;
	case 401: return TSR_UNAUTHENTICATED;
	case 403: return TSR_DENIED;
	case 404: return TSR_NOT_FOUND;
	case 409: case 412: return TSR_CONFLICT;
	case 413: return TSR_TOO_LARGE;
	case 429: return TSR_RATE_LIMITED;
	case 502: case 503: case 504: return TSR_UNAVAILABLE;
	default: return TSR_INTERNAL;
	}
}

int status_exit(tsr_rc rc)
{
	switch (rc) {
	case TSR_OK: return 0;
	case TSR_INVALID: return 2;
	case TSR_UNAUTHENTICATED:
	case TSR_DENIED: return 3;
	case TSR_NOT_FOUND: return 4;
	default: return 1;
	}
}
