/*
 * report.c — see report.h.
 *
 * "Could user U get a token for repo R at T" = U held at least read on R at
 * T through some source (repo_permissions_at over repo_permission_history)
 * and U was active at T: created by then, not deleted by then, and the last
 * user.offboard / user.reinstate event at or before T (audit_events, by the
 * (user_id, at) index) was not an offboarding — or, for users offboarded
 * before events existed, users.deactivated_at. Without --at the current
 * sources answer (repo_permission_sources), plus pairs that have an
 * effective permission but no recorded source ("unrecorded").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

#define TS(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* active at p.at for the users row u (needs p(at) in scope) */
#define ACTIVE_AT                                                                                                    \
	"(u.created_at <= p.at AND (u.deleted_at IS NULL OR u.deleted_at > p.at) AND "                               \
	" coalesce((SELECT e.action = 'user.reinstate' FROM audit_events e "                                         \
	"            WHERE e.user_id = u.id AND e.action IN ('user.offboard', 'user.reinstate') AND e.at <= p.at "    \
	"            ORDER BY e.at DESC, e.seq DESC LIMIT 1), "                                                        \
	"          NOT (NOT u.active AND u.deactivated_at IS NOT NULL AND u.deactivated_at <= p.at)))"

#define SOURCE_JSON                                                                                                  \
	"jsonb_build_object('via', src.via, 'ref', src.via_ref, 'permission', src.permission, 'since', " TS("src.since") \
	", 'grant', CASE src.via WHEN 'team' THEN 'team ' || src.via_ref WHEN 'direct' THEN 'collaborator' "           \
	"  WHEN 'outside' THEN 'outside collaborator' "                                                                \
	"  WHEN 'org' THEN CASE src.via_ref WHEN 'owner' THEN 'organisation owner' ELSE 'organisation base permission' END " \
	"  ELSE 'effective permission without a recorded source' END)"

static const struct db_stmt S_ACCESS_REPO = { "report_access_repo", 2,
	"WITH p AS (SELECT coalesce($2::timestamptz, now()) AS at, $2::timestamptz IS NULL AS now_mode), "
	"repo AS (SELECT r.* FROM repositories r, p WHERE lower(r.full_name) = lower($1) "
	"          ORDER BY (r.removed_at IS NULL OR r.removed_at > p.at) DESC, r.id DESC LIMIT 1), "
	"src AS ("
	"  SELECT h.user_id, h.via, h.via_ref, h.permission, h.since "
	"    FROM repo, p, repo_permissions_at(repo.id, p.at) h WHERE NOT p.now_mode "
	"  UNION ALL "
	"  SELECT s.user_id, s.via, s.via_ref, s.permission, "
	"         coalesce((SELECT max(h.changed_at) FROM repo_permission_history h WHERE h.repo_id = s.repo_id "
	"                    AND h.user_id = s.user_id AND h.via = s.via AND h.via_ref = s.via_ref), s.updated_at) "
	"    FROM repo, p, repo_permission_sources s WHERE p.now_mode AND s.repo_id = repo.id "
	"  UNION ALL "
	"  SELECT rp.user_id, 'unrecorded', '', rp.permission, rp.updated_at "
	"    FROM repo, p, repo_permissions rp WHERE p.now_mode AND rp.repo_id = repo.id "
	"     AND NOT EXISTS (SELECT 1 FROM repo_permission_sources s WHERE s.repo_id = rp.repo_id AND s.user_id = rp.user_id)), "
	"ua AS (SELECT u.id, u.user_name, u.repo_login, " ACTIVE_AT " AS active_at FROM users u, p "
	"        WHERE u.id IN (SELECT user_id FROM src)), "
	"rows AS (SELECT ua.user_name, ua.id, ua.repo_login, ua.active_at, max(src.permission) AS permission, "
	"                jsonb_agg(" SOURCE_JSON " ORDER BY src.via, src.via_ref) AS sources "
	"           FROM src JOIN ua ON ua.id = src.user_id GROUP BY ua.user_name, ua.id, ua.repo_login, ua.active_at), "
	"live AS (SELECT repo.removed_at IS NULL OR repo.removed_at > p.at AS ok FROM repo, p) "
	"SELECT jsonb_build_object("
	"  'repo', jsonb_build_object('id', repo.id, 'full_name', repo.full_name, 'classifications', repo.classifications, "
	"          'archived', repo.archived, 'visibility', repo.visibility, 'removed_at', " TS("repo.removed_at") "), "
	"  'at', " TS("p.at") ", 'now', p.now_mode, "
	"  'history_starts', (SELECT " TS("min(h.changed_at)") " FROM repo_permission_history h WHERE h.repo_id = repo.id), "
	"  'users', coalesce((SELECT jsonb_agg(jsonb_build_object('user', user_name, 'user_id', id, 'repo_login', repo_login, "
	"          'active', active_at, 'could_get_token', active_at AND (SELECT ok FROM live), 'permission', permission, "
	"          'sources', sources) ORDER BY lower(user_name)) FROM rows), '[]'::jsonb), "
	"  'count', (SELECT count(*) FROM rows), "
	"  'could_get_token', (SELECT count(*) FROM rows WHERE active_at AND (SELECT ok FROM live)))::text "
	"FROM repo, p" };

static const struct db_stmt S_ACCESS_USER = { "report_access_user", 2,
	"WITH p AS (SELECT coalesce($2::timestamptz, now()) AS at, $2::timestamptz IS NULL AS now_mode), "
	"u AS (SELECT * FROM users WHERE lower(user_name) = lower($1) ORDER BY (deleted_at IS NULL) DESC, id DESC LIMIT 1), "
	"src AS ("
	"  SELECT last.repo_id, last.via, last.via_ref, last.new_permission AS permission, last.changed_at AS since FROM ("
	"    SELECT DISTINCT ON (h.repo_id, h.via, h.via_ref) h.repo_id, h.via, h.via_ref, h.new_permission, h.changed_at "
	"      FROM repo_permission_history h, u, p WHERE h.user_id = u.id AND h.changed_at <= p.at AND NOT p.now_mode "
	"     ORDER BY h.repo_id, h.via, h.via_ref, h.changed_at DESC, h.id DESC) last "
	"   WHERE last.new_permission IS NOT NULL "
	"  UNION ALL "
	"  SELECT s.repo_id, s.via, s.via_ref, s.permission, "
	"         coalesce((SELECT max(h.changed_at) FROM repo_permission_history h WHERE h.repo_id = s.repo_id "
	"                    AND h.user_id = s.user_id AND h.via = s.via AND h.via_ref = s.via_ref), s.updated_at) "
	"    FROM u, p, repo_permission_sources s WHERE p.now_mode AND s.user_id = u.id "
	"  UNION ALL "
	"  SELECT rp.repo_id, 'unrecorded', '', rp.permission, rp.updated_at "
	"    FROM u, p, repo_permissions rp WHERE p.now_mode AND rp.user_id = u.id "
	"     AND NOT EXISTS (SELECT 1 FROM repo_permission_sources s WHERE s.repo_id = rp.repo_id AND s.user_id = rp.user_id)), "
	"rows AS (SELECT r.full_name, r.id, r.classifications, (r.removed_at IS NULL OR r.removed_at > (SELECT at FROM p)) AS live, "
	"                max(src.permission) AS permission, jsonb_agg(" SOURCE_JSON " ORDER BY src.via, src.via_ref) AS sources "
	"           FROM src JOIN repositories r ON r.id = src.repo_id GROUP BY r.full_name, r.id, r.classifications, r.removed_at) "
	"SELECT jsonb_build_object("
	"  'user', jsonb_build_object('id', u.id, 'user_name', u.user_name, 'repo_login', u.repo_login, "
	"          'active_now', u.active, 'active', " ACTIVE_AT ", 'deactivated_at', " TS("u.deactivated_at") ", "
	"          'deactivated_by', u.deactivated_by), "
	"  'at', " TS("p.at") ", 'now', p.now_mode, "
	"  'roles', coalesce((SELECT jsonb_agg(jsonb_build_object('role', g.role, 'via', g.via) ORDER BY g.role, g.via) "
	"                      FROM role_grants g WHERE g.user_id = u.id), '[]'::jsonb), "
	"  'history_starts', (SELECT " TS("min(h.changed_at)") " FROM repo_permission_history h WHERE h.user_id = u.id), "
	"  'repos', coalesce((SELECT jsonb_agg(jsonb_build_object('repo', full_name, 'repo_id', id, 'classifications', "
	"          classifications, 'removed', NOT live, 'permission', permission, 'sources', sources) ORDER BY lower(full_name)) "
	"          FROM rows), '[]'::jsonb), "
	"  'count', (SELECT count(*) FROM rows))::text "
	"FROM u, p" };

static const struct db_stmt S_USAGE = { "report_usage", 4,
	"WITH ev AS ("
	"  SELECT e.user_id, e.repo_id, coalesce(e.upstream, '(none)') AS upstream, e.req_bytes, e.resp_bytes, e.tokens_in, "
	"         e.tokens_out, e.at, (coalesce(e.decision, '') IN ('block', 'deny') OR e.outcome = 'denied') AS blocked "
	"    FROM audit_events e "
	"   WHERE e.action = 'gateway.request' AND e.at >= $1::timestamptz AND e.at < $2::timestamptz "
	"     AND ($4::text IS NULL OR e.user_id IN (SELECT id FROM users WHERE lower(user_name) = lower($4)))), "
	"g AS ("
	"  SELECT CASE $3 WHEN 'user' THEN ev.user_id WHEN 'repo' THEN ev.repo_id END AS kid, "
	"         CASE $3 WHEN 'upstream' THEN ev.upstream END AS kname, ev.upstream, count(*) AS requests, "
	"         count(*) FILTER (WHERE ev.blocked) AS blocked, "
	"         coalesce(sum(ev.req_bytes) FILTER (WHERE NOT ev.blocked), 0) AS bytes_sent, "
	"         coalesce(sum(ev.resp_bytes), 0) AS bytes_received, coalesce(sum(ev.tokens_in), 0) AS tokens_in, "
	"         coalesce(sum(ev.tokens_out), 0) AS tokens_out, min(ev.at) AS first, max(ev.at) AS last "
	"    FROM ev GROUP BY 1, 2, 3), "
	"named AS ("
	"  SELECT CASE $3 WHEN 'user' THEN coalesce(u.user_name, '(no user)') WHEN 'repo' THEN coalesce(r.full_name, '(no repository)') "
	"              ELSE g.kname END AS key, g.* "
	"    FROM g LEFT JOIN users u ON $3 = 'user' AND u.id = g.kid LEFT JOIN repositories r ON $3 = 'repo' AND r.id = g.kid), "
	"minted AS ("
	"  SELECT CASE $3 WHEN 'user' THEN e.user_id WHEN 'repo' THEN e.repo_id END AS kid, count(*) AS n "
	"    FROM audit_events e "
	"   WHERE $3 IN ('user', 'repo') AND e.action = 'token.mint' AND e.outcome = 'success' "
	"     AND e.at >= $1::timestamptz AND e.at < $2::timestamptz "
	"     AND ($4::text IS NULL OR e.user_id IN (SELECT id FROM users WHERE lower(user_name) = lower($4))) "
	"   GROUP BY 1), "
	"rows AS ("
	"  SELECT key, min(kid) AS kid, sum(requests) AS requests, sum(blocked) AS blocked, sum(bytes_sent) AS bytes_sent, "
	"         sum(bytes_received) AS bytes_received, sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, "
	"         min(first) AS first, max(last) AS last, "
	"         jsonb_agg(jsonb_build_object('upstream', upstream, 'requests', requests, 'blocked', blocked, "
	"           'bytes_sent', bytes_sent, 'bytes_received', bytes_received, 'tokens_in', tokens_in, "
	"           'tokens_out', tokens_out, 'first', " TS("first") ", 'last', " TS("last") ") ORDER BY upstream) AS upstreams "
	"    FROM named GROUP BY key) "
	"SELECT jsonb_build_object('from', " TS("$1::timestamptz") ", 'to', " TS("$2::timestamptz") ", 'by', $3::text, "
	"  'user', $4::text, "
	"  'rows', coalesce((SELECT jsonb_agg(jsonb_build_object('key', key, 'requests', requests, 'blocked', blocked, "
	"           'bytes_sent', bytes_sent, 'bytes_received', bytes_received, 'tokens_in', tokens_in, 'tokens_out', tokens_out, "
	"           'access_tokens_minted', (SELECT m.n FROM minted m WHERE m.kid = rows.kid), "
	"           'first', " TS("first") ", 'last', " TS("last") ", 'upstreams', upstreams) ORDER BY bytes_sent DESC, key) "
	"           FROM rows), '[]'::jsonb), "
	"  'totals', (SELECT jsonb_build_object('requests', coalesce(sum(requests), 0), 'blocked', coalesce(sum(blocked), 0), "
	"           'bytes_sent', coalesce(sum(bytes_sent), 0), 'bytes_received', coalesce(sum(bytes_received), 0), "
	"           'tokens_in', coalesce(sum(tokens_in), 0), 'tokens_out', coalesce(sum(tokens_out), 0)) FROM g))::text" };

static const struct db_stmt S_OFFBOARDING = { "report_offboarding", 1,
	"WITH u AS (SELECT * FROM users WHERE lower(user_name) = lower($1) ORDER BY (deleted_at IS NULL) DESC, id DESC LIMIT 1), "
	"receipts AS ("
	"  SELECT e.seq, e.at, e.actor, e.detail, encode(e.hash, 'hex') AS hash, "
	"         (SELECT jsonb_build_object('id', s.id, 'seq_upto', s.seq_upto, 'sealed_at', " TS("s.sealed_at") ", "
	"                 'key_id', s.key_id) FROM audit_seals s WHERE s.seq_upto >= e.seq ORDER BY s.seq_upto LIMIT 1) AS seal "
	"    FROM audit_events e, u WHERE e.user_id = u.id AND e.action = 'user.offboard'), "
	"reinst AS (SELECT e.seq, e.at, e.actor, e.detail FROM audit_events e, u "
	"            WHERE e.user_id = u.id AND e.action = 'user.reinstate'), "
	"creds AS ("
	"  SELECT c.id, c.kind, c.auth_method, c.created_at, c.expires_at, c.revoked_at, c.revoked_reason, c.revoked_by, "
	"         c.last_used_at, "
	"         (SELECT string_agg(r.full_name, ',' ORDER BY r.full_name) FROM credential_repos cr "
	"            JOIN repositories r ON r.id = cr.repo_id WHERE cr.credential_id = c.id) AS repos, "
	"         (SELECT max(e.at) FROM audit_events e WHERE e.user_id = c.user_id AND e.credential_id = c.id "
	"             AND e.action = 'gateway.request' AND e.outcome = 'success') AS last_request, "
	"         (SELECT max(a.created_at) FROM credentials a WHERE a.session_id = c.id) AS last_mint, "
	"         CASE WHEN c.revoked_at IS NOT NULL AND (c.expires_at IS NULL OR c.revoked_at <= c.expires_at) "
	"              THEN c.revoked_at ELSE c.expires_at END AS stopped_at, "
	"         c.revoked_at IS NOT NULL AND (c.expires_at IS NULL OR c.revoked_at <= c.expires_at) AS by_revocation "
	"    FROM credentials c, u WHERE c.user_id = u.id) "
	"SELECT jsonb_build_object("
	"  'user', jsonb_build_object('id', u.id, 'user_name', u.user_name, 'active', u.active, "
	"          'deactivated_at', " TS("u.deactivated_at") ", 'deactivated_by', u.deactivated_by, "
	"          'deactivated_reason', u.deactivated_reason, 'deleted_at', " TS("u.deleted_at") "), "
	"  'receipts', coalesce((SELECT jsonb_agg(jsonb_build_object('seq', seq, 'at', " TS("at") ", 'actor', actor, "
	"          'trigger', detail->>'trigger', 'reason', detail->>'reason', 'deactivated_at', detail->>'deactivated_at', "
	"          'credentials', coalesce(detail->'credentials', '[]'::jsonb), "
	"          'roles_removed', coalesce(detail->'roles_removed', '[]'::jsonb), 'record_hash', hash, 'sealed_by', seal) "
	"          ORDER BY seq) FROM receipts), '[]'::jsonb), "
	"  'reinstatements', coalesce((SELECT jsonb_agg(jsonb_build_object('seq', seq, 'at', " TS("at") ", 'actor', actor, "
	"          'reason', detail->>'reason') ORDER BY seq) FROM reinst), '[]'::jsonb), "
	"  'credentials', coalesce((SELECT jsonb_agg(jsonb_build_object('id', id, 'kind', kind, 'auth_method', auth_method, "
	"          'repos', repos, 'created_at', " TS("created_at") ", 'expires_at', " TS("expires_at") ", "
	"          'revoked_at', " TS("revoked_at") ", 'revoked_reason', revoked_reason, 'revoked_by', revoked_by, "
	"          'stopped_at', " TS("stopped_at") ", "
	"          'stopped_by', CASE WHEN by_revocation THEN 'revoked' WHEN stopped_at <= now() THEN 'expired' END, "
	"          'working_now', (stopped_at IS NULL OR stopped_at > now()) AND u.active AND u.deleted_at IS NULL, "
	"          'last_used_at', " TS("last_used_at") ", 'last_request_at', " TS("last_request") ", "
	"          'last_worked_at', " TS("greatest(last_used_at, last_request, last_mint)") ", "
	"          'used_after_stop', (SELECT count(*) FROM audit_events e WHERE e.user_id = u.id AND e.credential_id = creds.id "
	"                 AND e.action = 'gateway.request' AND e.outcome = 'success' AND e.at > creds.stopped_at)) "
	"          ORDER BY id) FROM creds), '[]'::jsonb))::text "
	"FROM u" };

static const struct db_stmt S_UPSTREAMS = { "report_upstreams", 0,
	"WITH RECURSIVE seen AS ("
	"  SELECT min(upstream) AS name FROM audit_events WHERE upstream IS NOT NULL "
	"  UNION ALL "
	"  SELECT (SELECT min(e.upstream) FROM audit_events e WHERE e.upstream > seen.name) FROM seen WHERE seen.name IS NOT NULL), "
	"names AS (SELECT name FROM upstreams UNION SELECT name FROM seen WHERE name IS NOT NULL), "
	"use AS (SELECT n.name, "
	"  (SELECT e.at FROM audit_events e WHERE e.upstream = n.name AND e.action = 'gateway.request' ORDER BY e.at LIMIT 1) AS first_use, "
	"  (SELECT e.at FROM audit_events e WHERE e.upstream = n.name AND e.action = 'gateway.request' ORDER BY e.at DESC LIMIT 1) AS last_use, "
	"  (SELECT count(*) FROM audit_events e WHERE e.upstream = n.name AND e.action = 'gateway.request' "
	"      AND e.at >= now() - interval '30 days') AS requests_30d, "
	"  (SELECT coalesce(sum(e.req_bytes), 0) FROM audit_events e WHERE e.upstream = n.name AND e.action = 'gateway.request' "
	"      AND e.at >= now() - interval '30 days' AND coalesce(e.decision, '') NOT IN ('block', 'deny') "
	"      AND e.outcome <> 'denied') AS bytes_sent_30d "
	"  FROM names n) "
	"SELECT coalesce(jsonb_agg(jsonb_build_object('name', use.name, 'configured', u.id IS NOT NULL, 'kind', u.kind, "
	"  'base_url', u.base_url, 'region', u.region, 'baa', u.baa, 'on_prem', u.on_prem, 'models', u.models, "
	"  'created_at', " TS("u.created_at") ", 'removed_at', " TS("u.removed_at") ", "
	"  'first_use', " TS("coalesce(use.first_use, u.first_used_at)") ", 'last_use', " TS("coalesce(use.last_use, u.last_used_at)") ", "
	"  'requests_30d', use.requests_30d, 'bytes_sent_30d', use.bytes_sent_30d) ORDER BY use.name), '[]'::jsonb)::text "
	"FROM use LEFT JOIN upstreams u ON u.name = use.name" };

#define SINCE "now() - make_interval(days => $1::int)"
static const struct db_stmt S_COMPLIANCE = { "report_compliance", 2,
	"WITH rules AS (SELECT split_part(r, ':', 1) AS class, string_to_array(split_part(r, ':', 2), '|') AS attrs "
	"                 FROM unnest(string_to_array($2::text, ',')) AS r WHERE r LIKE '%:%'), "
	"gw AS (SELECT e.* FROM audit_events e WHERE e.action = 'gateway.request' AND e.at >= " SINCE ") "
	"SELECT jsonb_build_object("
	" 'days', $1::int, "
	" 'gateway_requests', (SELECT count(*) FROM gw), "
	" 'gateway_requests_with_digest', (SELECT count(*) FROM gw WHERE req_sha256 IS NOT NULL), "
	" 'decisions', (SELECT coalesce(jsonb_object_agg(d, n), '{}'::jsonb) FROM "
	"     (SELECT coalesce(decision, '(none)') AS d, count(*) AS n FROM gw GROUP BY 1) x), "
	" 'rule_hits', (SELECT coalesce(jsonb_object_agg(k, n), '{}'::jsonb) FROM "
	"     (SELECT kv.key AS k, sum(CASE WHEN jsonb_typeof(kv.value) = 'number' THEN kv.value::text::numeric ELSE 1 END) AS n "
	"        FROM gw, jsonb_each(gw.rule_hits) AS kv WHERE jsonb_typeof(gw.rule_hits) = 'object' GROUP BY 1) x), "
	" 'classified', (SELECT coalesce(jsonb_agg(jsonb_build_object('class', rules.class, 'allowed', to_jsonb(rules.attrs), "
	"     'requests', (SELECT count(*) FROM gw JOIN repositories r ON r.id = gw.repo_id "
	"                   WHERE rules.class = ANY(r.classifications) AND coalesce(gw.decision, '') NOT IN ('block', 'deny') "
	"                     AND gw.outcome <> 'denied'), "
	"     'violations', (SELECT count(*) FROM gw JOIN repositories r ON r.id = gw.repo_id LEFT JOIN upstreams up ON up.name = gw.upstream "
	"                   WHERE rules.class = ANY(r.classifications) AND coalesce(gw.decision, '') NOT IN ('block', 'deny') "
	"                     AND gw.outcome <> 'denied' "
	"                     AND NOT (('baa' = ANY(rules.attrs) AND coalesce(up.baa, false)) "
	"                           OR ('on_prem' = ANY(rules.attrs) AND coalesce(up.on_prem, false))))) "
	"     ORDER BY rules.class), '[]'::jsonb) FROM rules), "
	" 'upstreams', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', name, 'region', region, 'baa', baa, "
	"     'on_prem', on_prem, 'removed', removed_at IS NOT NULL) ORDER BY name), '[]'::jsonb) FROM upstreams), "
	" 'upstream_keys', (SELECT jsonb_build_object('active', count(*) FILTER (WHERE state = 'active'), "
	"     'active_encrypted', count(*) FILTER (WHERE state = 'active' AND ciphertext IS NOT NULL AND master_key_id IS NOT NULL), "
	"     'oldest_active', " TS("min(activated_at) FILTER (WHERE state = 'active')") ") FROM upstream_keys), "
	" 'live_access_tokens', (SELECT count(*) FROM credentials WHERE kind = 'access' AND revoked_at IS NULL AND expires_at > now()), "
	" 'longest_live_access_ttl_s', (SELECT coalesce(max(extract(epoch FROM expires_at - created_at)), 0)::bigint "
	"     FROM credentials WHERE kind = 'access' AND revoked_at IS NULL AND expires_at > now()), "
	" 'inactive_users_with_live_credentials', (SELECT count(DISTINCT c.user_id) FROM credentials c JOIN users u ON u.id = c.user_id "
	"     WHERE (NOT u.active OR u.deleted_at IS NOT NULL) AND c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > now())), "
	" 'offboardings', (SELECT count(*) FROM audit_events WHERE action = 'user.offboard' AND at >= " SINCE "), "
	" 'offboarding_triggers', (SELECT coalesce(jsonb_object_agg(t, n), '{}'::jsonb) FROM "
	"     (SELECT coalesce(detail->>'trigger', '?') AS t, count(*) AS n FROM audit_events "
	"       WHERE action = 'user.offboard' AND at >= " SINCE " GROUP BY 1) x), "
	" 'users', (SELECT jsonb_build_object('active', count(*) FILTER (WHERE active), "
	"     'inactive', count(*) FILTER (WHERE NOT active AND deleted_at IS NULL), "
	"     'deleted', count(*) FILTER (WHERE deleted_at IS NOT NULL)) FROM users), "
	" 'roles', (SELECT coalesce(jsonb_object_agg(role, n), '{}'::jsonb) FROM "
	"     (SELECT role, count(DISTINCT user_id) AS n FROM role_grants GROUP BY role) x), "
	" 'role_grants_from_groups', (SELECT count(*) FROM role_grants WHERE via NOT IN ('bootstrap', 'local')), "
	" 'role_grants_local', (SELECT count(*) FROM role_grants WHERE via IN ('bootstrap', 'local')), "
	" 'bootstrap_token_live', (SELECT count(*) > 0 FROM credentials WHERE kind = 'bootstrap' AND revoked_at IS NULL), "
	" 'sync', (SELECT coalesce(jsonb_object_agg(kind, jsonb_build_object('last_ok', " TS("last_ok") ", "
	"     'last_status', last_status, 'last_started', " TS("last_started") ")), '{}'::jsonb) FROM "
	"     (SELECT kind, max(finished_at) FILTER (WHERE status = 'ok') AS last_ok, "
	"             (array_agg(status ORDER BY started_at DESC))[1] AS last_status, max(started_at) AS last_started "
	"        FROM sync_runs GROUP BY kind) x), "
	" 'auth_failures', (SELECT count(*) FROM audit_events WHERE action LIKE 'auth.%' AND outcome <> 'success' "
	"     AND at >= " SINCE "), "
	" 'denied', (SELECT count(*) FROM audit_events WHERE outcome = 'denied' AND at >= " SINCE "), "
	" 'audit_head', (SELECT jsonb_build_object('seq', seq, 'updated_at', " TS("updated_at") ") FROM audit_chain_head), "
	" 'seals', (SELECT jsonb_build_object('count', count(*), 'latest_at', " TS("max(sealed_at)") ", "
	"     'latest_seq', max(seq_upto), 'age_s', coalesce(extract(epoch FROM now() - max(sealed_at))::bigint, -1)) FROM audit_seals), "
	" 'audit_keys', (SELECT jsonb_build_object('total', count(*), 'active', count(*) FILTER (WHERE retired_at IS NULL), "
	"     'active_id', max(id) FILTER (WHERE retired_at IS NULL)) FROM audit_keys), "
	" 'oldest_record', (SELECT jsonb_build_object('seq', seq, 'at', " TS("at") ") FROM audit_events ORDER BY seq LIMIT 1), "
	" 'partitions', (SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_events'::regclass), "
	" 'retention_drops', (SELECT count(*) FROM audit_events WHERE action = 'audit.retention' AND outcome = 'success'), "
	" 'actions', (SELECT coalesce(jsonb_object_agg(action, n), '{}'::jsonb) FROM "
	"     (SELECT action, count(*) AS n FROM audit_events WHERE at >= " SINCE " GROUP BY action) x))::text" };

static tsr_rc run(struct db_conn *c, const struct db_stmt *s, int n, const char *const *p, char **json)
{
	*json = NULL;
	tsr_rc rc = db_simple(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (rc != TSR_OK)
		return rc;
	if ((rc = db_simple(c, "SET LOCAL timezone = 'UTC'")) == TSR_OK &&
	    (rc = db_simple(c, "SET LOCAL plan_cache_mode = force_custom_plan")) == TSR_OK) {
		PGresult *r = db_exec(c, s, n, p, &rc);
		if (r && (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)))
			rc = TSR_NOT_FOUND;
		else if (r && !(*json = strdup(PQgetvalue(r, 0, 0))))
			rc = TSR_INTERNAL;
		PQclear(r);
	}
	tsr_rc end = db_simple(c, rc == TSR_OK || rc == TSR_NOT_FOUND ? "COMMIT" : "ROLLBACK");
	(void)end;
	return rc;
}

tsr_rc db_report_access_repo(struct db_conn *c, const char *repo, const char *at, char **json)
{
	const char *p[] = { repo, at };
	return run(c, &S_ACCESS_REPO, 2, p, json);
}

tsr_rc db_report_access_user(struct db_conn *c, const char *user, const char *at, char **json)
{
	const char *p[] = { user, at };
	return run(c, &S_ACCESS_USER, 2, p, json);
}

tsr_rc db_report_usage(struct db_conn *c, const char *from, const char *to, const char *by, const char *user,
		       char **json)
{
	const char *p[] = { from, to, by, user };
	return run(c, &S_USAGE, 4, p, json);
}

tsr_rc db_report_offboarding(struct db_conn *c, const char *user, char **json)
{
	const char *p[] = { user };
	return run(c, &S_OFFBOARDING, 1, p, json);
}

tsr_rc db_report_upstreams(struct db_conn *c, char **json)
{
	return run(c, &S_UPSTREAMS, 0, NULL, json);
}

tsr_rc db_report_compliance_evidence(struct db_conn *c, int days, const char *classified, char **json)
{
	char d[16];
	snprintf(d, sizeof(d), "%d", days);
	const char *p[] = { d, classified ? classified : "" };
	return run(c, &S_COMPLIANCE, 2, p, json);
}
