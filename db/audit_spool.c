/*
 * audit_spool.c — see audit_spool.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_spool.h"
#include "../lib/log.h"

static const struct db_stmt S_LOCK = { "audit_spool_head_lock", 0,
	"SELECT seq FROM audit_chain_head FOR UPDATE" };
static const struct db_stmt S_PRESENT = { "audit_spool_present", 2,
	"SELECT e.event_id::text FROM audit_events e "
	"  JOIN unnest($1::uuid[], $2::timestamptz[]) AS u(id, at) ON e.event_id = u.id AND e.at = u.at" };

static void at_text(int64_t at_us, char out[40])
{
	time_t secs = (time_t)(at_us / 1000000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	snprintf(out, 40, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(at_us % 1000000));
}

tsr_rc db_audit_replay(struct db_conn *c, const struct audit_event *ev, int n, int *appended)
{
	*appended = 0;
	if (n <= 0)
		return TSR_OK;
	tsr_rc rc = TSR_OK;
	const char **ids = calloc((size_t)n, sizeof(*ids));
	const char **ats = calloc((size_t)n, sizeof(*ats));
	char (*atbuf)[40] = calloc((size_t)n, sizeof(*atbuf));
	struct audit_event *fresh = calloc((size_t)n, sizeof(*fresh));
	char *id_arr = NULL, *at_arr = NULL;
	PGresult *r = NULL;
	if (!ids || !ats || !atbuf || !fresh) {
		rc = TSR_INTERNAL;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		ids[i] = ev[i].event_id;
		at_text(ev[i].at_us, atbuf[i]);
		ats[i] = atbuf[i];
	}
	id_arr = db_text_array(ids, (size_t)n);
	at_arr = db_text_array(ats, (size_t)n);
	if (!id_arr || !at_arr) {
		rc = TSR_INTERNAL;
		goto out;
	}
	if ((rc = db_simple(c, "BEGIN")) != TSR_OK)
		goto out;
	r = db_exec(c, &S_LOCK, 0, NULL, &rc);
	if (!r)
		goto rollback;
	PQclear(r);
	const char *p[] = { id_arr, at_arr };
	r = db_exec(c, &S_PRESENT, 2, p, &rc);
	if (!r)
		goto rollback;
	int m = 0;
	for (int i = 0; i < n; i++) {
		bool present = false;
		for (int k = 0; k < PQntuples(r) && !present; k++)
			present = strcmp(PQgetvalue(r, k, 0), ev[i].event_id) == 0;
		if (!present)
			fresh[m++] = ev[i];
	}
	if (PQntuples(r) > 0)
		log_info("audit_spool_duplicates_skipped", "events=%d", PQntuples(r));
	PQclear(r);
	r = NULL;
	if (m > 0 && (rc = db_audit_append(c, fresh, m)) != TSR_OK)
		goto rollback;
	if ((rc = db_simple(c, "COMMIT")) == TSR_OK)
		*appended = m;
	goto out;
rollback:
	if (PQstatus(c->pg) == CONNECTION_OK) {
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
	}
out:
	free(ids);
	free(ats);
	free(atbuf);
	free(fresh);
	free(id_arr);
	free(at_arr);
	return rc;
}
