-- 0007_rotation.sql -- automatic rotation of upstream keys through a provider
-- admin API (issue 8; broker/rotation.c, broker/rotation_provider.c).
--
-- upstream_rotation: one row per upstream, the scheduler's shared state, so
-- that whichever replica holds the job's advisory lock continues where the
-- last one stopped: a pending `tessera rotate upstream NAME --now`
-- (requested_at), the backoff after failed provider calls (failures,
-- next_attempt_at), the outcome of the last attempt (read by the CLI that
-- asked and by /metrics) and when an operator was last reminded of an
-- overdue operator-supplied key. Never holds a secret.
CREATE TABLE upstream_rotation (
    upstream_id      bigint PRIMARY KEY REFERENCES upstreams,
    requested_at     timestamptz,          -- a pending --now request
    requested_by     text,
    failures         integer NOT NULL DEFAULT 0 CHECK (failures >= 0),  -- consecutive
    failures_total   bigint NOT NULL DEFAULT 0 CHECK (failures_total >= 0),
    next_attempt_at  timestamptz,          -- backoff: no provider call before
    last_attempt_at  timestamptz,
    last_outcome     text CHECK (last_outcome IN ('success', 'failure')),
    last_error       text,
    last_version     integer,
    last_fingerprint text,
    last_success_at  timestamptz,
    reminded_at      timestamptz
);

-- Deleting a retired provider key at the provider (the retire job): when it
-- was done, and the backoff of failed attempts.
ALTER TABLE upstream_keys
    ADD COLUMN provider_deleted_at timestamptz,
    ADD COLUMN provider_delete_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN provider_delete_next_at timestamptz;
CREATE INDEX upstream_keys_provider_delete_idx ON upstream_keys (id)
    WHERE origin = 'provider' AND provider_key_id IS NOT NULL AND provider_deleted_at IS NULL;
