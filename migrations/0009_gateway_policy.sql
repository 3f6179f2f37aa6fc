-- 0009_gateway_policy.sql -- the gateway's per-user request rate, shared by
-- every replica.
--
-- [gateway] rate_limit is requests per minute per user across the cluster.
-- Fixed one-minute windows: one row per user and window start (UTC minute).
-- A replica leases a slice of the window's allowance with one atomic
-- INSERT ... ON CONFLICT DO UPDATE ... WHERE used < limit (db/policy.c) and
-- serves requests from its local lease, so there is no round trip per
-- request and two replicas together never lease more than the limit.
-- `last_grant` is what the latest lease got (the UPDATE's RETURNING sees
-- only new values). Rows of past windows are pruned by the replicas
-- (a few minutes after they end); nothing else reads them.
CREATE TABLE rate_windows (
    user_id      bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    window_start timestamptz NOT NULL,
    used         integer NOT NULL DEFAULT 0 CHECK (used >= 0),
    last_grant   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, window_start)
) WITH (fillfactor = 70);
CREATE INDEX rate_windows_window_start_idx ON rate_windows (window_start);
