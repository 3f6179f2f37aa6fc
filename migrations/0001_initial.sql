-- 0001_initial.sql -- the first tessera schema, for the whole contract in DESIGN.md.
--
-- Applied by tesserad's migration runner inside one transaction (no BEGIN/COMMIT
-- here); the runner owns schema_migrations. Once released this file is never
-- edited: later changes go in 0002_... and so on.
--
-- Conventions
--   * Every surrogate key is "bigint GENERATED ALWAYS AS IDENTITY". Nothing here
--     is ever keyed by a name that can change (user names, logins, repo names
--     and DNs all get renamed).
--   * Every time is timestamptz. Month boundaries (audit partitions) and "days"
--     (usage counters) are UTC.
--   * "Case-insensitive" means lower(...) in a unique expression index. Queries
--     must use the same expression (WHERE lower(user_name) = lower($1)) so the
--     index is used. lower() follows the database's LC_CTYPE: create the
--     database with UTF8 encoding and a UTF-8 locale (initdb -E UTF8
--     --locale=C.UTF-8) or non-ASCII names only fold in their ASCII letters.
--     A WARNING below says so at migration time.
--   * Hashes (token hashes, audit chain, request digests) are raw 32-byte
--     SHA-256 values in bytea, never hex text; CHECKs pin the length so a
--     hex-encoding bug fails loudly in tests instead of silently never matching.
--   * Rows that are evidence (people, credentials, repositories, permission
--     history, audit) are not deleted by normal operation: users get a
--     tombstone (deleted_at), repositories removed_at, credentials revoked_at
--     (only a retention job purges long-expired credentials).
--
-- Encrypted columns (secrets, upstream_keys, audit_keys) use one envelope:
--   ciphertext  = AES-256-GCM(DEK, nonce, plaintext, AAD) || 16-byte tag
--   nonce       = 12 random bytes
--   wrapped_dek = AES-256-GCM(master key, dek_nonce, DEK) || tag  (32 + 16 = 48 bytes)
--   dek_nonce   = 12 random bytes
--   master_key_id = fingerprint of the master key that wrapped the DEK.
-- The AAD should bind the row's identity (e.g. "tessera/upstream_key/<upstream>/<version>")
-- so a ciphertext copied into another row does not decrypt. Retired/revoked
-- material may be shredded by setting all five envelope columns to NULL.
--
-- LISTEN/NOTIFY (sent by the C code, inside the transaction that makes the
-- change, so replicas hear about it only once it is committed and visible):
--   tessera_revoke   payload '<credential id>'  one credential was revoked
--                    payload 'user:<user id>'   every credential of that user
--                                               is invalid (offboarding, deactivation)
--   tessera_perm     payload 'user:<user id>:repo:<repo id>'  a permission of that
--                    pair changed or vanished; 'repo:<repo id>' for a whole repo
--                    (removed/archived); 'all' after a full sync.
-- Payloads stay far below NOTIFY's 8000-byte limit; a listener that lost its
-- connection must assume it missed notifications and flush its cache
-- (DESIGN.md: re-check at least every second until it is back).
--
-- Advisory locks: keys 0x7465737365726100..0x74657373657261ff ("tessera\0"..)
-- are reserved for functions in this schema; 0x7465737365726101 serialises
-- audit partition maintenance. The C code should pick its own job keys
-- (migrations, sync, rotation, sealing) outside that range.

DO $$
BEGIN
    IF current_setting('server_version_num')::int < 150000 THEN
        RAISE EXCEPTION 'tessera needs PostgreSQL 15 or later (found %)',
            current_setting('server_version');
    END IF;
    -- (the file itself is pure ASCII so it applies whatever the client encoding)
    IF current_setting('server_encoding') <> 'UTF8' THEN
        RAISE WARNING 'database encoding is %, not UTF8: case-insensitive user names and '
            'logins will only fold ASCII letters; use initdb -E UTF8 --locale=C.UTF-8',
            current_setting('server_encoding');
    ELSIF lower(chr(196) || chr(201)) <> chr(228) || chr(233) THEN   -- A-umlaut E-acute
        RAISE WARNING 'LC_CTYPE % does not fold non-ASCII case: case-insensitive user names and '
            'logins will only fold ASCII letters; use initdb -E UTF8 --locale=C.UTF-8',
            current_setting('lc_ctype');
    END IF;
END
$$;


-- ===========================================================================
-- Shared trigger functions
-- ===========================================================================

-- users and groups carry a version for SCIM ETags (If-Match -> 412). The
-- database maintains it so no code path can forget: any UPDATE that changes a
-- column other than version/updated_at bumps version and sets updated_at.
-- An UPDATE that changes nothing else keeps both (lastModified stays honest,
-- and a no-change sync run does not change every ETag). Code that changes a
-- child table the database does not watch can force a new ETag with
-- "SET version = version + 1".
CREATE FUNCTION tessera_bump_version() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.version IS DISTINCT FROM OLD.version
       OR (to_jsonb(NEW) - 'version' - 'updated_at')
          IS DISTINCT FROM (to_jsonb(OLD) - 'version' - 'updated_at') THEN
        NEW.version := OLD.version + 1;
        NEW.updated_at := now();
    ELSE
        NEW.version := OLD.version;
        NEW.updated_at := OLD.updated_at;
    END IF;
    RETURN NEW;
END
$$;

-- Evidence tables are append-only. This guards against application bugs and
-- hand-written "fixes"; it is not a defence against the table owner (who can
-- disable triggers or drop partitions). Tampering by the owner is what the
-- hash chain and Ed25519 seals detect.
CREATE FUNCTION audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % on % is not allowed',
        TG_OP, TG_TABLE_NAME
        USING HINT = 'retention drops whole monthly partitions (audit_drop_partitions_before)';
END
$$;


-- ===========================================================================
-- Identity: users, their emails, their per-source identities
-- ===========================================================================

-- One row per person, merged from sources (ldap, scim, local).
--
-- active: a user who is inactive in ANY authoritative source is inactive.
-- users.active is that conclusion, maintained by the one offboarding code
-- path from user_sources.active (plus admin/HR offboarding and reinstatement).
-- The token check reads only users.active, never user_sources, so the hot
-- path is one row; the offboarding function sets it, revokes credentials and
-- drops role grants in the same transaction.
--
-- deleted_at: SCIM DELETE (Entra hard delete) leaves a tombstone instead of
-- removing the row, because credentials, permission history, audit reports
-- and the offboarding receipt still refer to the person. Uniqueness of
-- user_name and repo_login applies to live rows only, so an IdP can re-create
-- a user with the same userName (a new row, a new SCIM id). SCIM lookups and
-- logins must filter "deleted_at IS NULL". A tombstoned user is never active.
CREATE TABLE users (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the SCIM "id": opaque, stable, never reused, never our integer id
    scim_id             uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    user_name           text NOT NULL CHECK (user_name <> '' AND length(user_name) <= 512),
    display_name        text,
    given_name          text,
    family_name         text,
    -- repo-host login (e.g. GitHub login), joined case-insensitively with the
    -- repo host's logins; which directory/SCIM attribute feeds it is config.
    repo_login          text CHECK (repo_login <> ''),
    active              boolean NOT NULL DEFAULT true,
    deactivated_at      timestamptz,
    deactivated_reason  text,
    -- which trigger deactivated the user (DESIGN.md: Offboarding triggers)
    deactivated_by      text CHECK (deactivated_by IN ('scim', 'ldap', 'admin', 'hr', 'github')),
    deleted_at          timestamptz,
    -- SCIM enterprise extension (urn:ietf:params:scim:schemas:extension:enterprise:2.0:User)
    -- stored as received and returned as is
    enterprise          jsonb CHECK (enterprise IS NULL OR jsonb_typeof(enterprise) = 'object'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- SCIM meta.version (W/"<version>"); maintained by tessera_bump_version
    version             bigint NOT NULL DEFAULT 1,
    -- an inactive user always says since when (reinstatement may clear it)
    CONSTRAINT users_inactive_has_time CHECK (active OR deactivated_at IS NOT NULL),
    CONSTRAINT users_deleted_inactive CHECK (deleted_at IS NULL OR NOT active)
);

-- userName is caseExact=false in SCIM: "Alice" and "alice" are one user (409 uniqueness).
-- ON CONFLICT inference must repeat the predicate:
--   ON CONFLICT (lower(user_name)) WHERE deleted_at IS NULL
CREATE UNIQUE INDEX users_user_name_key ON users (lower(user_name)) WHERE deleted_at IS NULL;
-- repo-host logins are case-insensitive on GitHub; one login maps to one person
CREATE UNIQUE INDEX users_repo_login_key ON users (lower(repo_login))
    WHERE repo_login IS NOT NULL AND deleted_at IS NULL;

CREATE TRIGGER users_bump_version BEFORE UPDATE ON users
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION tessera_bump_version();

-- SCIM emails (multi-valued) and the directory's mail attribute. source says
-- which feed wrote the row, so an LDAP sync replaces only its own emails and
-- a SCIM PUT only its own.
CREATE TABLE user_emails (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    source      text NOT NULL CHECK (source IN ('ldap', 'scim', 'local')),
    value       text NOT NULL CHECK (value <> ''),
    type        text,                       -- SCIM "work", "home", ...
    is_primary  boolean NOT NULL DEFAULT false
);
CREATE INDEX user_emails_user_idx ON user_emails (user_id);
-- SCIM filters emails.value eq "..." (caseExact=false) and login-by-email
CREATE INDEX user_emails_value_idx ON user_emails (lower(value));
-- RFC 7643 2.4: primary=true appears at most once per multi-valued attribute
CREATE UNIQUE INDEX user_emails_one_primary ON user_emails (user_id, source) WHERE is_primary;

-- One row per (user, source): how that source identifies the person and
-- whether it considers them active.
--   ldap:  external_id = entryUUID (OpenLDAP) or objectGUID (AD, as its
--          canonical GUID string), dn = current DN (changes on modrdn, which
--          is why the user is found by external_id, not dn).
--   scim:  external_id = the IdP's externalId (caseExact); attributes holds
--          SCIM attributes not modelled as columns (name.formatted, title,
--          phoneNumbers, ...) so they round-trip.
--   local: break-glass accounts (the bootstrap admin).
-- active is this source's view; see users.active for the merge rule.
-- last_seen is when the source last reported a change for the entry; a
-- no-change sync run does not touch it (sync_runs says when a full run last
-- confirmed everything), so "nothing changed" really writes nothing.
-- When a SCIM user is tombstoned its scim row is deleted, freeing externalId.
CREATE TABLE user_sources (
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    source      text NOT NULL CHECK (source IN ('ldap', 'scim', 'local')),
    external_id text CHECK (external_id <> ''),
    dn          text,
    active      boolean NOT NULL DEFAULT true,
    attributes  jsonb,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, source)
);
-- LDAP sync matches entries by stable id; SCIM filters externalId eq "..."
CREATE UNIQUE INDEX user_sources_external_id_key ON user_sources (source, external_id)
    WHERE external_id IS NOT NULL;
-- group member values are DNs; resolve member DN -> user. Not unique: DN
-- comparison needs RFC 4514 normalisation the database cannot do, and a
-- rename chain inside one sync transaction may briefly duplicate a DN.
CREATE INDEX user_sources_dn_idx ON user_sources (source, lower(dn)) WHERE dn IS NOT NULL;

-- A user's SCIM representation includes emails and externalId/attributes
-- from the scim source, so changing those must change the user's ETag.
-- Statement-level triggers with transition tables bump each affected user
-- once per statement: bulk sync should write emails with one statement
-- (INSERT ... SELECT / COPY), not one statement per row. Users created in
-- this same transaction are skipped (nobody can have seen an ETag for them
-- yet), which keeps a first full sync of 100k users from rewriting every
-- user row a second time.
CREATE FUNCTION user_emails_bump_users() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE users SET version = version + 1
         WHERE id IN (SELECT user_id FROM new_rows)
           AND NOT (created_at = now() AND xmin = pg_current_xact_id()::xid);
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE users SET version = version + 1
         WHERE id IN (SELECT user_id FROM old_rows)
           AND NOT (created_at = now() AND xmin = pg_current_xact_id()::xid);
    ELSE
        UPDATE users SET version = version + 1
         WHERE id IN (SELECT user_id FROM new_rows UNION SELECT user_id FROM old_rows)
           AND NOT (created_at = now() AND xmin = pg_current_xact_id()::xid);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER user_emails_bump_ins AFTER INSERT ON user_emails
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION user_emails_bump_users();
CREATE TRIGGER user_emails_bump_del AFTER DELETE ON user_emails
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION user_emails_bump_users();
CREATE TRIGGER user_emails_bump_upd AFTER UPDATE ON user_emails
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION user_emails_bump_users();

-- Only the scim source is part of the SCIM representation; LDAP bookkeeping
-- (dn, last_seen) must not churn ETags, and the WHEN clauses keep the
-- function from even being called for ldap/local rows during a bulk sync.
CREATE FUNCTION user_sources_bump_user() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    uid bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        uid := OLD.user_id;
    ELSE
        uid := NEW.user_id;
    END IF;
    UPDATE users SET version = version + 1
     WHERE id = uid
       AND NOT (created_at = now() AND xmin = pg_current_xact_id()::xid);
    IF TG_OP = 'UPDATE' AND OLD.user_id <> NEW.user_id THEN
        UPDATE users SET version = version + 1 WHERE id = OLD.user_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER user_sources_bump_ins AFTER INSERT ON user_sources
    FOR EACH ROW WHEN (NEW.source = 'scim')
    EXECUTE FUNCTION user_sources_bump_user();
CREATE TRIGGER user_sources_bump_del AFTER DELETE ON user_sources
    FOR EACH ROW WHEN (OLD.source = 'scim')
    EXECUTE FUNCTION user_sources_bump_user();
CREATE TRIGGER user_sources_bump_upd AFTER UPDATE ON user_sources
    FOR EACH ROW WHEN ((OLD.source = 'scim' OR NEW.source = 'scim') AND
                       (OLD.user_id, OLD.source, OLD.external_id, OLD.attributes, OLD.active)
                       IS DISTINCT FROM
                       (NEW.user_id, NEW.source, NEW.external_id, NEW.attributes, NEW.active))
    EXECUTE FUNCTION user_sources_bump_user();


-- ===========================================================================
-- Groups, memberships, roles
-- ===========================================================================

-- Groups from LDAP, SCIM, the repo host (teams, if mirrored: name 'org/slug',
-- external_id = team id) or local. Names are unique per source because
-- [roles] maps group *names* to roles; two LDAP groups with the same cn in
-- different OUs would make that mapping ambiguous, so the sync must report
-- them rather than pick one.
CREATE TABLE groups (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scim_id      uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    name         text NOT NULL CHECK (name <> ''),
    display_name text,
    source       text NOT NULL CHECK (source IN ('ldap', 'scim', 'github', 'local')),
    external_id  text CHECK (external_id <> ''),   -- entryUUID/objectGUID, SCIM externalId, team id
    dn           text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      bigint NOT NULL DEFAULT 1,         -- SCIM ETag, see tessera_bump_version
    CONSTRAINT groups_source_external_id_key UNIQUE (source, external_id)
);
CREATE UNIQUE INDEX groups_source_name_key ON groups (source, lower(name));
-- SCIM: filter=displayName eq "..." (Okta, Entra look groups up this way)
CREATE INDEX groups_display_name_idx ON groups (lower(display_name));
-- nested LDAP groups list member group DNs
CREATE INDEX groups_dn_idx ON groups (source, lower(dn)) WHERE dn IS NOT NULL;

CREATE TRIGGER groups_bump_version BEFORE UPDATE ON groups
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION tessera_bump_version();

-- Direct memberships only; nesting is a member_group_id row, and the closure
-- is computed with a recursive CTE (UNION, not UNION ALL, so cycles -- which
-- LDAP allows -- terminate). Exactly one member column is set.
-- There is no source column: a membership's source is its group's source,
-- and a second copy could only drift.
CREATE TABLE group_members (
    group_id        bigint NOT NULL REFERENCES groups ON DELETE CASCADE,
    member_user_id  bigint REFERENCES users ON DELETE CASCADE,
    member_group_id bigint REFERENCES groups ON DELETE CASCADE,
    added_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT group_members_one_member CHECK (num_nonnulls(member_user_id, member_group_id) = 1),
    CONSTRAINT group_members_not_self CHECK (member_group_id IS DISTINCT FROM group_id),
    -- one constraint for both kinds; also the group -> members index.
    -- ON CONFLICT ON CONSTRAINT group_members_key DO NOTHING for idempotent adds.
    CONSTRAINT group_members_key UNIQUE NULLS NOT DISTINCT (group_id, member_user_id, member_group_id)
);
-- member -> groups (role computation at login, "groups" of a SCIM user,
-- removing a user from every group); group_id included for index-only scans
CREATE INDEX group_members_user_idx ON group_members (member_user_id, group_id)
    WHERE member_user_id IS NOT NULL;
CREATE INDEX group_members_group_idx ON group_members (member_group_id, group_id)
    WHERE member_group_id IS NOT NULL;

-- A SCIM Group's representation is its members: membership changes bump the
-- group's ETag, once per statement (a PATCH adding 1,000 members bumps once).
-- Groups created in this same transaction are skipped, as for users.
CREATE FUNCTION group_members_bump_groups() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE groups SET version = version + 1
         WHERE id IN (SELECT group_id FROM new_rows)
           AND NOT (created_at = now() AND xmin = pg_current_xact_id()::xid);
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE groups SET version = version + 1
         WHERE id IN (SELECT group_id FROM old_rows)
           AND NOT (created_at = now() AND xmin = pg_current_xact_id()::xid);
    ELSE
        UPDATE groups SET version = version + 1
         WHERE id IN (SELECT group_id FROM new_rows UNION SELECT group_id FROM old_rows)
           AND NOT (created_at = now() AND xmin = pg_current_xact_id()::xid);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER group_members_bump_ins AFTER INSERT ON group_members
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION group_members_bump_groups();
CREATE TRIGGER group_members_bump_del AFTER DELETE ON group_members
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION group_members_bump_groups();
CREATE TRIGGER group_members_bump_upd AFTER UPDATE ON group_members
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION group_members_bump_groups();

-- Roles materialised from group membership ([roles] maps group names to
-- roles), so the per-request role check is one indexed read and there is no
-- second permission system: the sync/login code recomputes a user's rows from
-- their (nested) groups; offboarding deletes them. via = the group name that
-- granted the role, or 'bootstrap' / 'local' for the break-glass admin.
CREATE TABLE role_grants (
    user_id    bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('admin', 'security', 'developer')),
    via        text NOT NULL CHECK (via <> ''),
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role, via)
);


-- ===========================================================================
-- Sync bookkeeping (permission history rows name the run that made them)
-- ===========================================================================

-- One row per LDAP or GitHub sync run, including failed and aborted ones.
-- A run's data changes are one transaction that commits or not at all, so
-- the run row is written in its own transactions: INSERT (status 'running')
-- before, UPDATE with counts/status after -- a failed run is still recorded.
-- Webhook deliveries that change permissions are recorded as mode 'webhook'.
-- A replica that dies leaves 'running' behind: whoever next takes the job's
-- advisory lock marks older 'running' rows of that kind 'aborted'.
CREATE TABLE sync_runs (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                 text NOT NULL CHECK (kind IN ('ldap', 'github')),
    mode                 text NOT NULL CHECK (mode IN ('full', 'incremental', 'webhook')),
    started_at           timestamptz NOT NULL DEFAULT now(),
    finished_at          timestamptz,
    status               text NOT NULL DEFAULT 'running'
                         CHECK (status IN ('running', 'ok', 'failed', 'aborted')),
    error                text,
    started_by           text,                      -- 'schedule', 'cli:<user>', 'webhook:<event>'
    forced               boolean NOT NULL DEFAULT false,  -- --force past the safety valve
    users_added          integer NOT NULL DEFAULT 0,
    users_updated        integer NOT NULL DEFAULT 0,
    users_deactivated    integer NOT NULL DEFAULT 0,
    groups_added         integer NOT NULL DEFAULT 0,
    groups_updated       integer NOT NULL DEFAULT 0,
    groups_removed       integer NOT NULL DEFAULT 0,
    memberships_added    integer NOT NULL DEFAULT 0,
    memberships_removed  integer NOT NULL DEFAULT 0,
    permissions_changed  integer NOT NULL DEFAULT 0,
    api_calls            integer NOT NULL DEFAULT 0,   -- GitHub requests made
    not_modified         integer NOT NULL DEFAULT 0,   -- of which 304 (free of rate limit)
    wait_ms              bigint NOT NULL DEFAULT 0,    -- time spent waiting on rate limits
    detail               jsonb,                        -- e.g. why the safety valve tripped
    CONSTRAINT sync_runs_finished CHECK ((status = 'running') = (finished_at IS NULL))
);
-- `tessera sync status`: latest runs per kind
CREATE INDEX sync_runs_kind_started_idx ON sync_runs (kind, started_at DESC);

-- Small per-sync cursors: LDAP high-water modifyTimestamp (or syncrepl
-- cookie), GitHub installation token expiry, etc.
CREATE TABLE sync_state (
    kind       text NOT NULL,
    key        text NOT NULL,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, key)
);

-- Conditional-request cache for the GitHub API, remembered across runs and
-- replicas. A 304 is only useful if the sync can reuse what the earlier 200
-- said, so data holds the extracted content of the response (only the
-- fields the sync uses, plus the Link rel="next" URL) -- not the raw body.
CREATE TABLE github_etags (
    url         text PRIMARY KEY,
    etag        text NOT NULL,
    body_sha256 bytea CHECK (octet_length(body_sha256) = 32),
    data        jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Webhook replay protection shared by all replicas: GitHub X-GitHub-Delivery
-- ids (redelivery must not apply twice) and HR webhook signatures seen inside
-- the 5-minute window (delivery_id = hex SHA-256 of the signature). Rows older
-- than the window are purged by the scheduler.
CREATE TABLE webhook_deliveries (
    source      text NOT NULL CHECK (source IN ('github', 'hr')),
    delivery_id text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, delivery_id)
);
CREATE INDEX webhook_deliveries_received_idx ON webhook_deliveries (received_at);


-- ===========================================================================
-- Repositories and permissions
-- ===========================================================================

-- Repositories on the repo host. Renames keep the row (matched by
-- external_id, the host's numeric id); deleted repos keep the row with
-- removed_at for history and reports. host names the repo-host instance
-- ('github' = the configured [github] api_url).
-- classifications come from topics via [github] topic_classifications
-- (e.g. topic hipaa -> phi) and drive upstream policy.
-- Visibility 'public' grants nothing by itself: only permission rows do.
CREATE TABLE repositories (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host            text NOT NULL DEFAULT 'github' CHECK (host <> ''),
    owner           text NOT NULL CHECK (owner <> ''),
    name            text NOT NULL CHECK (name <> ''),
    full_name       text GENERATED ALWAYS AS (owner || '/' || name) STORED,
    external_id     bigint,
    visibility      text CHECK (visibility IN ('public', 'private', 'internal')),
    archived        boolean NOT NULL DEFAULT false,
    topics          text[] NOT NULL DEFAULT '{}',
    classifications text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    removed_at      timestamptz,
    CONSTRAINT repositories_external_id_key UNIQUE (host, external_id)
);
-- token mint: --repo OWNER/NAME (GitHub names are case-insensitive).
-- Live repos only, so a deleted-and-recreated repo can take its name back.
CREATE UNIQUE INDEX repositories_full_name_key ON repositories (host, lower(full_name))
    WHERE removed_at IS NULL;
-- per-organisation sync and reports
CREATE INDEX repositories_owner_idx ON repositories (host, lower(owner));

-- Every repo-host account the sync has seen (org members, team members,
-- outside collaborators), matched to a user or not. Keyed by the host's
-- numeric user id, because logins get renamed. The match is NOT stored: it
-- is the join lower(login) = lower(users.repo_login) (both indexed), so it
-- is never stale when the directory's login attribute changes. Unmatched
-- accounts get no permission rows; `tessera report access --unmatched` is
--   SELECT a.* FROM repo_accounts a
--    WHERE NOT EXISTS (SELECT 1 FROM users u
--                       WHERE lower(u.repo_login) = lower(a.login) AND u.deleted_at IS NULL);
CREATE TABLE repo_accounts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host        text NOT NULL DEFAULT 'github',
    external_id bigint NOT NULL,
    login       text NOT NULL CHECK (login <> ''),
    detail      jsonb,          -- org roles, repos reachable (for the unmatched report)
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT repo_accounts_external_id_key UNIQUE (host, external_id)
);
CREATE INDEX repo_accounts_login_idx ON repo_accounts (host, lower(login));

-- Declared in ascending order of power so comparisons and max()/min() work:
--   permission >= 'read', max(permission) over sources.
CREATE TYPE repo_permission AS ENUM ('read', 'triage', 'write', 'maintain', 'admin');

-- The three permission tables below have no foreign keys, deliberately:
-- they are written in bulk (a first GitHub sync writes millions of rows into
-- each), and a per-row foreign-key check measured about 4x the insert cost
-- (2M rows: 25 s with both FKs, 6.5 s without). Their parents are never
-- deleted (users are tombstoned, repositories get removed_at), and the sync
-- takes the ids from those tables in the same transaction, so there is
-- nothing for a cascade to do and little for a check to catch. Tests should
-- assert "no orphans" instead:
--   SELECT count(*) FROM repo_permissions p
--    WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p.user_id)
--       OR NOT EXISTS (SELECT 1 FROM repositories r WHERE r.id = p.repo_id);

-- Every source of a user's permission on a repo, as the repo host reports it:
--   via 'direct'  collaborator added directly          via_ref ''
--   via 'outside' outside collaborator                 via_ref ''
--   via 'team'    through a team (incl. parent teams)  via_ref = slug of the team
--                 holding the repo grant (the repo's org is implied)
--   via 'org'     org base permission or org owner    via_ref '' (base) or 'owner'
-- An org base permission fans out to (members x repos) rows. That is fine
-- within the 5M-row design point; an org with base permission 'read' far
-- beyond it would want org-level grants stored once per (user, org) in a
-- later migration.
-- via_ref is '' rather than NULL so it can be part of the primary key.
CREATE TABLE repo_permission_sources (
    user_id    bigint NOT NULL,     -- users.id (no FK: see above)
    repo_id    bigint NOT NULL,     -- repositories.id
    via        text NOT NULL CHECK (via IN ('direct', 'team', 'org', 'outside')),
    via_ref    text NOT NULL DEFAULT '',
    permission repo_permission NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, repo_id, via, via_ref),      -- also the "by user" index
    CONSTRAINT repo_permission_sources_team_ref CHECK (via <> 'team' OR via_ref <> '')
);
-- by repo: webhooks (team_add, collaborator, repository) and the access report
CREATE INDEX repo_permission_sources_repo_idx ON repo_permission_sources (repo_id, user_id);

-- Effective permission = max(permission) over the pair's sources: the one
-- row the mint check and every gateway request's re-check read (primary-key
-- lookup, 5M rows). The sync/webhook code maintains it in the same
-- transaction as the sources, and NOTIFYs tessera_perm when a pair is lowered
-- below read or removed. Invariant (cheap to assert in tests):
--   SELECT user_id, repo_id, max(permission) FROM repo_permission_sources
--   GROUP BY 1, 2   ==   SELECT user_id, repo_id, permission FROM repo_permissions
CREATE TABLE repo_permissions (
    user_id    bigint NOT NULL,     -- users.id (no FK: see above)
    repo_id    bigint NOT NULL,     -- repositories.id
    permission repo_permission NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, repo_id)
);
-- who can reach repo X now; revoke-on-repo-removal
CREATE INDEX repo_permissions_repo_idx ON repo_permissions (repo_id, user_id);

-- One row per change of one source of one (user, repo): granted (none ->
-- some), raised, lowered, removed (some -> none). Recorded per source, not
-- per effective permission, so the report can say "through which team or
-- collaborator grant". Append-only evidence. The first full sync writes a
-- 'granted' row for every existing source, so history starts at that run
-- (reports must say so for earlier times: min(changed_at)).
--
-- "Who could reach repo X at time T" (repo_permissions_at below):
--   SELECT * FROM (
--     SELECT DISTINCT ON (user_id, via, via_ref) user_id, via, via_ref, new_permission
--       FROM repo_permission_history
--      WHERE repo_id = $X AND changed_at <= $T
--      ORDER BY user_id, via, via_ref, changed_at DESC, id DESC) last
--    WHERE new_permission IS NOT NULL;
-- i.e. the latest change at or before T of each source, kept if it left a
-- permission. Whether the user could get a *token* then also needs the user
-- active at T (user.offboard / user.reinstate audit events).
CREATE TABLE repo_permission_history (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        bigint NOT NULL,     -- users.id (no FK: see above)
    repo_id        bigint NOT NULL,     -- repositories.id
    via            text NOT NULL CHECK (via IN ('direct', 'team', 'org', 'outside')),
    via_ref        text NOT NULL DEFAULT '',
    old_permission repo_permission,
    new_permission repo_permission,
    change         text NOT NULL CHECK (change IN ('granted', 'raised', 'lowered', 'removed')),
    changed_at     timestamptz NOT NULL DEFAULT now(),
    sync_run_id    bigint,              -- sync_runs.id (mode 'webhook' for webhook changes)
    CONSTRAINT repo_permission_history_change_matches CHECK (
        CASE change
            WHEN 'granted' THEN old_permission IS NULL AND new_permission IS NOT NULL
            WHEN 'removed' THEN old_permission IS NOT NULL AND new_permission IS NULL
            WHEN 'raised'  THEN coalesce(new_permission > old_permission, false)
            WHEN 'lowered' THEN coalesce(new_permission < old_permission, false)
        END)
);
CREATE INDEX repo_permission_history_repo_idx ON repo_permission_history (repo_id, changed_at);
CREATE INDEX repo_permission_history_user_idx ON repo_permission_history (user_id, changed_at);

CREATE TRIGGER repo_permission_history_append_only BEFORE UPDATE OR DELETE ON repo_permission_history
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER repo_permission_history_no_truncate BEFORE TRUNCATE ON repo_permission_history
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- The query above as a function, for `tessera report access --repo R --at T`.
-- since = when that source reached its state at T.
CREATE FUNCTION repo_permissions_at(p_repo_id bigint, p_at timestamptz)
RETURNS TABLE (user_id bigint, via text, via_ref text, permission repo_permission, since timestamptz)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT last.user_id, last.via, last.via_ref, last.new_permission, last.changed_at
      FROM (SELECT DISTINCT ON (h.user_id, h.via, h.via_ref)
                   h.user_id, h.via, h.via_ref, h.new_permission, h.changed_at
              FROM repo_permission_history h
             WHERE h.repo_id = p_repo_id AND h.changed_at <= p_at
             ORDER BY h.user_id, h.via, h.via_ref, h.changed_at DESC, h.id DESC) last
     WHERE last.new_permission IS NOT NULL
$$;


-- ===========================================================================
-- Keys and encrypted secrets
-- ===========================================================================

-- The master key never enters Postgres; this table only records which keys
-- exist so tesserad can refuse to start with the wrong key file and so
-- master-key rotation is resumable. id = hex SHA-256 over a domain-separated
-- input (e.g. "tessera master key fingerprint v1\0" || key): never the key,
-- and not a plain hash of it.
-- Rotation (`tessera rotate master-key --new-key-file F`): mark the old key
-- 'retiring' and insert the new one as 'active' in one transaction (in that
-- order: the one-active index is checked per statement); re-wrap
-- DEKs row by row (each row names its master_key_id, so an interrupted run
-- leaves every row decryptable by the key it names and re-running continues
-- where it stopped); when no row references the old key, mark it 'retired'.
CREATE TABLE master_keys (
    id         text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{64}$'),
    state      text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retiring', 'retired')),
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz,
    CONSTRAINT master_keys_retired CHECK ((state = 'retired') = (retired_at IS NOT NULL))
);
CREATE UNIQUE INDEX master_keys_one_active ON master_keys ((true)) WHERE state = 'active';

-- Secrets tesserad must read back in plaintext (so they cannot be hashed):
-- webhook HMAC secrets ('github_webhook', 'hr_webhook', ...). Rotation keeps
-- the old version 'retiring' until not_after (the overlap window), during
-- which both verify; then 'retired'.
CREATE TABLE secrets (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL CHECK (name <> ''),
    version       integer NOT NULL CHECK (version > 0),
    state         text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retiring', 'retired')),
    ciphertext    bytea CHECK (octet_length(ciphertext) >= 16),
    nonce         bytea CHECK (octet_length(nonce) = 12),
    wrapped_dek   bytea CHECK (octet_length(wrapped_dek) = 48),
    dek_nonce     bytea CHECK (octet_length(dek_nonce) = 12),
    master_key_id text REFERENCES master_keys,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text,
    not_after     timestamptz,          -- end of the overlap window once retiring
    CONSTRAINT secrets_name_version_key UNIQUE (name, version),
    CONSTRAINT secrets_envelope_complete
        CHECK (num_nulls(ciphertext, nonce, wrapped_dek, dek_nonce, master_key_id) IN (0, 5)),
    CONSTRAINT secrets_material_while_usable CHECK (state = 'retired' OR ciphertext IS NOT NULL),
    CONSTRAINT secrets_retiring_has_end CHECK (state <> 'retiring' OR not_after IS NOT NULL)
);
CREATE UNIQUE INDEX secrets_one_active ON secrets (name) WHERE state = 'active';
-- master-key rotation: find rows still wrapped by the old key
CREATE INDEX secrets_master_key_idx ON secrets (master_key_id);

-- LLM upstreams. Configured in [upstream.NAME] sections (and the admin API);
-- mirrored here so keys, audit records and the subprocessor report
-- (`report upstreams`: region, BAA, on-prem, first/last use) have a row to
-- point at. An upstream removed from config keeps its row (removed_at).
-- last_used_at is written coarsely (at most about once a minute per
-- replica), never per request; exact use comes from audit_events.
CREATE TABLE upstreams (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name <> ''),
    kind            text NOT NULL CHECK (kind IN ('openai', 'anthropic', 'azure-openai', 'openai-compatible')),
    base_url        text NOT NULL,
    region          text,
    baa             boolean NOT NULL DEFAULT false,   -- covered by a Business Associate Agreement
    on_prem         boolean NOT NULL DEFAULT false,
    models          text[] NOT NULL DEFAULT '{}',
    rotation_period interval NOT NULL DEFAULT '30 days' CHECK (rotation_period > interval '0'),
    grace_period    interval NOT NULL DEFAULT '1 hour' CHECK (grace_period >= interval '0'),
    -- which provider admin API creates/deletes keys (e.g. {"api":"openai-admin",
    -- "project":"proj_..."}); references to secrets only, never a secret
    provider_admin  jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    first_used_at   timestamptz,
    last_used_at    timestamptz,
    removed_at      timestamptz
);

-- Versions of each upstream's provider key, encrypted (envelope above).
-- States: pending (obtained, not yet serving) -> active (new requests) ->
-- retiring (still valid for in-flight requests until retire_after = start of
-- retiring + grace_period) -> retired (deleted at the provider / no longer
-- used; material may be shredded). revoked = pulled at once after a leak.
-- Exactly one active key per upstream at a time; rotation switches with
-- "UPDATE old -> retiring; UPDATE new -> active" in one transaction (the
-- partial unique index is checked per statement, so demote first).
CREATE TABLE upstream_keys (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    upstream_id     bigint NOT NULL REFERENCES upstreams,
    version         integer NOT NULL CHECK (version > 0),
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'active', 'retiring', 'retired', 'revoked')),
    origin          text CHECK (origin IN ('config', 'cli', 'provider')),  -- key_file, --key-file, admin API
    ciphertext      bytea CHECK (octet_length(ciphertext) >= 16),
    nonce           bytea CHECK (octet_length(nonce) = 12),
    wrapped_dek     bytea CHECK (octet_length(wrapped_dek) = 48),
    dek_nonce       bytea CHECK (octet_length(dek_nonce) = 12),
    master_key_id   text REFERENCES master_keys,
    provider_key_id text,   -- the provider's id for the key (to delete it later); not secret
    -- non-secret identifier for logs/reports: hex of a domain-separated
    -- SHA-256 of the key, truncated; lets tests show which key served a request
    fingerprint     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    activated_at    timestamptz,
    retiring_at     timestamptz,
    retire_after    timestamptz,
    retired_at      timestamptz,
    CONSTRAINT upstream_keys_version_key UNIQUE (upstream_id, version),
    CONSTRAINT upstream_keys_envelope_complete
        CHECK (num_nulls(ciphertext, nonce, wrapped_dek, dek_nonce, master_key_id) IN (0, 5)),
    CONSTRAINT upstream_keys_material_while_usable
        CHECK (state IN ('retired', 'revoked') OR ciphertext IS NOT NULL),
    CONSTRAINT upstream_keys_active_has_time CHECK (state <> 'active' OR activated_at IS NOT NULL),
    CONSTRAINT upstream_keys_retiring_has_deadline CHECK (state <> 'retiring' OR retire_after IS NOT NULL)
);
CREATE UNIQUE INDEX upstream_keys_one_active ON upstream_keys (upstream_id) WHERE state = 'active';
CREATE INDEX upstream_keys_master_key_idx ON upstream_keys (master_key_id);


-- ===========================================================================
-- Credentials
-- ===========================================================================

-- Sessions, access tokens (tsr_...) and bootstrap tokens in one table, so the
-- token check is a single lookup by SHA-256 for every route, whatever the
-- credential kind. The token itself is never stored.
--   session    CLI login; expires (session_ttl)
--   access     minted from a session for one repository (or an explicit set,
--              credential_repos -- at least one row, enforced by the mint
--              code) and optional models/upstreams; expires (<= max_ttl)
--   bootstrap  first operator's admin token; no expiry until revoked
-- Hot-path reads: token_hash (unique) -> row -> users.active ->
-- repo_permissions PK. Revocation sets revoked_at/_reason/_by (never deletes;
-- the offboarding receipt lists them) and NOTIFYs tessera_revoke.
-- last_used_at is updated coarsely (at most once a minute per credential and
-- replica, batched), never per request; it is unindexed and fillfactor 90
-- leaves room so those updates are HOT (no index writes).
-- Old expired/revoked rows may be purged by a retention job: their story is
-- in audit_events; credential_repos rows cascade, children's session_id is
-- cleared.
CREATE TABLE credentials (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('session', 'access', 'bootstrap')),
    token_hash     bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    user_id        bigint NOT NULL REFERENCES users,
    -- the session an access token was minted from (logout revokes its tokens)
    session_id     bigint REFERENCES credentials ON DELETE SET NULL,
    -- how the session was established (whoami, audit, reports)
    auth_method    text CHECK (auth_method IN ('ldap', 'github', 'bootstrap', 'local')),
    models         text[],       -- NULL = any model the policy allows
    upstreams      text[],       -- NULL = any upstream the policy allows
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz,
    revoked_at     timestamptz,
    revoked_reason text,         -- 'logout', 'offboard: <reason>', 'permission lost', 'admin'
    revoked_by     text,         -- actor: user name, 'scim:<idp>', 'ldap-sync', 'github-sync', 'hr'
    last_used_at   timestamptz,
    client_addr    inet,
    user_agent     text,
    CONSTRAINT credentials_expiry CHECK (expires_at IS NOT NULL OR kind = 'bootstrap'),
    CONSTRAINT credentials_expiry_after_creation CHECK (expires_at IS NULL OR expires_at > created_at),
    CONSTRAINT credentials_session_only_for_access CHECK (session_id IS NULL OR kind = 'access'),
    CONSTRAINT credentials_revocation_fields
        CHECK (revoked_at IS NOT NULL OR (revoked_reason IS NULL AND revoked_by IS NULL))
) WITH (fillfactor = 90);
-- A user's live credentials: offboarding ("revoke every session and token"),
-- `tokens list/revoke --user`, and permission loss (then probe
-- credential_repos by its primary key). expires_at lets those queries skip
-- the long tail of expired-but-unrevoked tokens:
--   WHERE user_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
CREATE INDEX credentials_user_live_idx ON credentials (user_id, expires_at) WHERE revoked_at IS NULL;
CREATE INDEX credentials_session_idx ON credentials (session_id) WHERE session_id IS NOT NULL;
-- purge job over expired rows; BRIN because expiry tracks insertion order and
-- it costs next to nothing on the mint path
CREATE INDEX credentials_expires_brin ON credentials USING brin (expires_at);

CREATE VIEW sessions AS
    SELECT id, kind, token_hash, user_id, auth_method, created_at, expires_at,
           revoked_at, revoked_reason, revoked_by, last_used_at, client_addr, user_agent
      FROM credentials WHERE kind = 'session'
    WITH LOCAL CHECK OPTION;

CREATE VIEW access_tokens AS
    SELECT id, kind, token_hash, user_id, session_id, models, upstreams, created_at, expires_at,
           revoked_at, revoked_reason, revoked_by, last_used_at, client_addr, user_agent
      FROM credentials WHERE kind = 'access'
    WITH LOCAL CHECK OPTION;

-- The repositories an access token is scoped to.
CREATE TABLE credential_repos (
    credential_id bigint NOT NULL REFERENCES credentials ON DELETE CASCADE,
    repo_id       bigint NOT NULL REFERENCES repositories,
    PRIMARY KEY (credential_id, repo_id)
);
-- repo removed/archived/reclassified -> find its tokens at once
CREATE INDEX credential_repos_repo_idx ON credential_repos (repo_id);

-- The organisation's SCIM bearer tokens (SHA-256 hashes). After
-- `tessera rotate scim-token`, the old token gets expires_at = now() +
-- [scim] token_overlap and both work until then. label names the IdP, used
-- as the audit actor 'scim:<label>'.
CREATE TABLE scim_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    label        text NOT NULL DEFAULT 'idp',
    token_hash   bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text,
    expires_at   timestamptz,     -- NULL until rotated out; then end of the overlap
    revoked_at   timestamptz,
    last_used_at timestamptz
);

-- Failed-login throttling shared by all replicas (an attacker spreading
-- attempts across replicas must not multiply the budget). key is
-- 'user:<lower user name>' or 'addr:<ip or /64>'. Small, hot, update-heavy:
-- fillfactor for HOT updates; rows with an old window are purged.
CREATE TABLE auth_throttle (
    key           text PRIMARY KEY,
    failures      integer NOT NULL DEFAULT 0,
    window_start  timestamptz NOT NULL DEFAULT now(),
    blocked_until timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);

-- Per-user daily budgets (UTC day), shared by all replicas. The gateway
-- reserves before forwarding and settles from the upstream's usage, atomically:
--   UPDATE usage_counters SET tokens_reserved = tokens_reserved + $n
--    WHERE user_id = $u AND day = $d AND tokens_used + tokens_reserved + $n <= $limit
-- (row created by INSERT ... ON CONFLICT DO NOTHING first), so concurrent
-- requests cannot overspend. Reporting uses audit_events, not this table.
CREATE TABLE usage_counters (
    user_id         bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    day             date NOT NULL,
    requests        bigint NOT NULL DEFAULT 0,
    tokens_reserved bigint NOT NULL DEFAULT 0,
    tokens_used     bigint NOT NULL DEFAULT 0,
    bytes_out       bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, day)
) WITH (fillfactor = 70);


-- ===========================================================================
-- Audit log: append-only, hash-chained, sealed, partitioned by month
-- ===========================================================================

-- Ed25519 keys that sign seals. The public key is kept forever (exports are
-- verified offline against it; /audit/v1/keys publishes it); the private key
-- is encrypted like secrets and may be shredded once retired.
-- id = hex SHA-256 of the public key.
CREATE TABLE audit_keys (
    id                     text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{64}$'),
    public_key             bytea NOT NULL UNIQUE CHECK (octet_length(public_key) = 32),
    private_key_ciphertext bytea CHECK (octet_length(private_key_ciphertext) >= 16),
    nonce                  bytea CHECK (octet_length(nonce) = 12),
    wrapped_dek            bytea CHECK (octet_length(wrapped_dek) = 48),
    dek_nonce              bytea CHECK (octet_length(dek_nonce) = 12),
    master_key_id          text REFERENCES master_keys,
    created_at             timestamptz NOT NULL DEFAULT now(),
    retired_at             timestamptz,
    CONSTRAINT audit_keys_envelope_complete CHECK (
        num_nulls(private_key_ciphertext, nonce, wrapped_dek, dek_nonce, master_key_id) IN (0, 5)),
    CONSTRAINT audit_keys_active_has_private CHECK (retired_at IS NOT NULL OR private_key_ciphertext IS NOT NULL)
);
CREATE UNIQUE INDEX audit_keys_one_active ON audit_keys ((true)) WHERE retired_at IS NULL;
CREATE INDEX audit_keys_master_key_idx ON audit_keys (master_key_id);

-- The head of the hash chain: one row. It serialises chain appends across
-- all replicas and gives seq its gapless values.
--
-- Writer protocol (one transaction per batch, from any replica):
--   SELECT seq, hash FROM audit_chain_head FOR UPDATE;      -- waits for other writers
--   for each record k = 1..n, in order:
--       seq_k      = head.seq + k                           -- gapless, = chain order
--       prev_hash  = hash of record k-1 (head.hash for k = 1)
--       hash_k     = SHA-256(canonical encoding of the record incl. seq and prev_hash)
--   INSERT / COPY the n records;
--   UPDATE audit_chain_head SET seq = <last seq>, hash = <last hash>, updated_at = now();
--   COMMIT;
-- Because the head is locked until commit, commits happen in seq order: a
-- reader never sees seq N+1 without N. A rolled-back batch rolls the head
-- back too, so seq has no gaps; a missing seq in the table (above what
-- retention dropped) is a removed record. The genesis prev_hash is 32 zero
-- bytes (the initial row below).
-- Batch (e.g. up to a few hundred records or a few ms) so the serialised
-- section costs one round trip and one commit per batch, not per request.
-- There is deliberately no sequence: a sequence would leave gaps on rollback
-- and would let a writer take a seq without holding the chain.
--
-- Spool replay (records written while Postgres was down) goes through the
-- same protocol: replayed records get new seqs after everything already in
-- the table, keep their original `at`, and are de-duplicated by event_id
-- (check for existing (event_id, at) under the head lock before chaining).
-- So seq order (the chain) is authoritative; `at` is not monotonic in seq.
CREATE TABLE audit_chain_head (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq        bigint NOT NULL CHECK (seq >= 0),
    hash       bytea NOT NULL CHECK (octet_length(hash) = 32),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO audit_chain_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

-- The head only moves forward and never disappears.
CREATE FUNCTION audit_chain_head_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'audit records are append-only: the chain head cannot be deleted or moved back';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_chain_head_guard BEFORE UPDATE OR DELETE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION audit_chain_head_guard();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- Every audited thing: logins, mints, gateway requests, syncs and what they
-- changed, SCIM writes, offboardings (the revocation receipt is one event
-- whose detail lists every credential id revoked and its last use),
-- rotations, admin actions, failed authentications, partition drops.
-- Never a prompt, never a token, never a secret.
--
-- Columns:
--   seq            chain position (see audit_chain_head), unique across partitions
--   at             when it happened (supplied by the writer: it is hashed, so
--                  it must be known before the INSERT; microsecond precision
--                  -- encode it canonically as integer microseconds since epoch)
--   event_id       generated by the writer when the event is created (before
--                  any spooling) so a replay can be de-duplicated: unique with at
--   actor_user_id  the tessera user who performed an admin/auth action; NULL
--                  for gateway.request (user_id is the caller) and for system actors
--   actor          display form: user name, 'scim:<idp>', 'system', 'ldap-sync', ...
--   user_id        the user the event is about (the caller for gateway requests,
--                  the subject of an offboarding, ...); `audit search --user`
--   repo_id, credential_id, route, model, upstream (name), upstream_key_id,
--   decision ('allow','redact','block','deny',...), rule_hits ({"rule":count}),
--   req_bytes/resp_bytes (bytes sent upstream / returned), req_sha256 (of the
--   request body as received), status (HTTP), latency_us, tokens_in/out:
--                  the gateway record DESIGN.md lists
--   detail         anything else, as JSON
--   prev_hash/hash the chain (always set: nothing enters the table unchained)
-- No foreign keys: audit must never fail because a referenced row changed,
-- and spooled records are replayed long after the fact. Few CHECKs for the
-- same reason -- a rejected audit record means a refused request.
--
-- Partitioned by month on at (UTC): retention drops whole old partitions
-- (cheap, no bloat), and time-range queries prune to the months they touch.
CREATE TABLE audit_events (
    seq             bigint NOT NULL CHECK (seq > 0),
    at              timestamptz NOT NULL DEFAULT now(),
    event_id        uuid NOT NULL DEFAULT gen_random_uuid(),
    actor_user_id   bigint,
    actor           text NOT NULL,
    actor_addr      inet,
    action          text NOT NULL,      -- 'auth.login', 'token.mint', 'gateway.request', ...
    target          text,
    outcome         text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    user_id         bigint,
    repo_id         bigint,
    credential_id   bigint,
    route           text,
    model           text,
    upstream        text,
    upstream_key_id bigint,
    decision        text,
    rule_hits       jsonb,
    req_bytes       bigint,
    resp_bytes      bigint,
    req_sha256      bytea,
    status          integer,
    latency_us      bigint,
    tokens_in       integer,
    tokens_out      integer,
    detail          jsonb,
    prev_hash       bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash            bytea NOT NULL CHECK (octet_length(hash) = 32),
    -- a unique index on a partitioned table must include the partition key;
    -- seq alone is unique by the writer protocol
    PRIMARY KEY (seq, at),
    CONSTRAINT audit_events_event_id_key UNIQUE (event_id, at)
) PARTITION BY RANGE (at);

-- Indexes are declared on the parent and created on every partition.
-- Time ranges: BRIN, because rows arrive in time order (the gateway writes
-- thousands per second; a btree on at would be one more index to maintain
-- for queries that partition pruning plus BRIN already serve). Order results
-- by seq (the primary key), not at.
CREATE INDEX audit_events_at_brin ON audit_events USING brin (at);
CREATE INDEX audit_events_user_at_idx ON audit_events (user_id, at) WHERE user_id IS NOT NULL;
CREATE INDEX audit_events_repo_at_idx ON audit_events (repo_id, at) WHERE repo_id IS NOT NULL;
CREATE INDEX audit_events_action_at_idx ON audit_events (action, at);
-- "what did admin X do"; small because gateway requests leave it NULL
CREATE INDEX audit_events_actor_at_idx ON audit_events (actor_user_id, at) WHERE actor_user_id IS NOT NULL;

-- Row triggers on a partitioned table are cloned to every partition,
-- including future ones. TRUNCATE triggers are not cloned, so
-- audit_ensure_partitions adds one to each partition it creates.
-- Retention uses DROP TABLE / DETACH PARTITION on whole months, which no
-- trigger can see: that is deliberate (old months must be cheap to drop),
-- and audit_drop_partitions_before is the one sanctioned way; the C code
-- audits each drop.
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- Catches anything outside the monthly partitions (a clock far in the
-- future, a spooled record older than retention) so an audit write never
-- fails for want of a partition.
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events_default
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- Creates monthly partitions audit_events_YYYYMM (UTC months) from the
-- current month through months_ahead months ahead, where absent. Idempotent
-- and safe to call concurrently (advisory lock); returns the names created.
-- tesserad calls it at start and daily from the scheduler.
--
-- Locking: the partition is created standalone and then ATTACHed, which
-- takes only SHARE UPDATE EXCLUSIVE on audit_events, so concurrent audit
-- inserts are not blocked. ATTACH does lock and scan the DEFAULT partition;
-- if a long reader (an export) holds it, lock_timeout makes this fail with
-- SQLSTATE 55P03 rather than queue everyone behind it: log it and retry
-- later -- never fatal, rows land in the default partition meanwhile.
-- Rows already in the default partition for the new month are moved into it
-- first (the one place where audit rows are deleted, re-inserted unchanged
-- in the same transaction; the append-only trigger is disabled for that
-- statement only).
CREATE FUNCTION audit_ensure_partitions(months_ahead integer)
RETURNS SETOF text
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET lock_timeout = '10s'
AS $$
DECLARE
    nsp     text;
    parent  regclass := 'audit_events'::regclass;
    m0      timestamp;      -- first day of the current month, UTC wall clock
    lo      timestamp;
    hi      timestamp;
    lo_tz   timestamptz;
    hi_tz   timestamptz;
    part    text;
    n       bigint;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'audit_ensure_partitions: months_ahead must be between 0 and 120, got %',
            months_ahead;
    END IF;
    PERFORM pg_advisory_xact_lock(x'7465737365726101'::bigint);

    SELECT n.nspname INTO nsp
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = parent;

    m0 := date_trunc('month', now() AT TIME ZONE 'UTC');
    FOR i IN 0 .. months_ahead LOOP
        lo := m0 + make_interval(months => i);
        hi := lo + interval '1 month';
        lo_tz := lo AT TIME ZONE 'UTC';
        hi_tz := hi AT TIME ZONE 'UTC';
        part := 'audit_events_' || to_char(lo, 'YYYYMM');

        IF EXISTS (SELECT 1 FROM pg_inherits ih JOIN pg_class c ON c.oid = ih.inhrelid
                    WHERE ih.inhparent = parent AND c.relname = part) THEN
            CONTINUE;
        END IF;
        IF to_regclass(format('%I.%I', nsp, part)) IS NOT NULL THEN
            RAISE EXCEPTION 'audit_ensure_partitions: table %.% exists but is not a partition of audit_events',
                nsp, part;
        END IF;

        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)',
                       nsp, part, nsp);

        -- Keep new rows out of the default partition while we empty it of
        -- this month (ATTACH needs that lock anyway).
        EXECUTE format('LOCK TABLE %I.audit_events_default IN SHARE ROW EXCLUSIVE MODE', nsp);
        EXECUTE format('SELECT count(*) FROM %I.audit_events_default WHERE at >= $1 AND at < $2', nsp)
           INTO n USING lo_tz, hi_tz;
        IF n > 0 THEN
            EXECUTE format('INSERT INTO %I.%I SELECT * FROM %I.audit_events_default WHERE at >= $1 AND at < $2',
                           nsp, part, nsp) USING lo_tz, hi_tz;
            EXECUTE format('ALTER TABLE %I.audit_events_default DISABLE TRIGGER audit_events_append_only', nsp);
            EXECUTE format('DELETE FROM %I.audit_events_default WHERE at >= $1 AND at < $2', nsp)
               USING lo_tz, hi_tz;
            EXECUTE format('ALTER TABLE %I.audit_events_default ENABLE TRIGGER audit_events_append_only', nsp);
            RAISE NOTICE 'audit_ensure_partitions: moved % rows from audit_events_default into %', n, part;
        END IF;

        EXECUTE format('ALTER TABLE %I.audit_events ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       nsp, nsp, part,
                       to_char(lo, 'YYYY-MM-DD HH24:MI:SS') || '+00',
                       to_char(hi, 'YYYY-MM-DD HH24:MI:SS') || '+00');
        EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON %I.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()', nsp, part);
        RETURN NEXT part;
    END LOOP;
END
$$;

-- Retention: drops the monthly partitions that end at or before cutoff
-- (now() - [audit] retention) and returns their names, so the caller can
-- write the audit event that records the drop. Never touches the default
-- partition or the current month. Verification of what remains anchors on
-- the seal covering the last dropped record (its seq_upto / head_hash), so
-- keep seals: they are tiny and never dropped.
CREATE FUNCTION audit_drop_partitions_before(cutoff timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET lock_timeout = '10s'
AS $$
DECLARE
    nsp  text;
    r    record;
    hi   timestamptz;
BEGIN
    IF cutoff IS NULL OR cutoff > date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' THEN
        RAISE EXCEPTION 'audit_drop_partitions_before: cutoff % would drop the current month', cutoff;
    END IF;
    PERFORM pg_advisory_xact_lock(x'7465737365726101'::bigint);
    SELECT n.nspname INTO nsp FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = 'audit_events'::regclass;
    FOR r IN SELECT c.relname
               FROM pg_inherits ih JOIN pg_class c ON c.oid = ih.inhrelid
              WHERE ih.inhparent = 'audit_events'::regclass
                AND c.relname ~ '^audit_events_[0-9]{6}$'
              ORDER BY c.relname LOOP
        hi := (make_date(substr(r.relname, 14, 4)::int, substr(r.relname, 18, 2)::int, 1)::timestamp
               + interval '1 month') AT TIME ZONE 'UTC';
        IF hi <= cutoff THEN
            EXECUTE format('DROP TABLE %I.%I', nsp, r.relname);
            RETURN NEXT r.relname;
        END IF;
    END LOOP;
END
$$;

-- Signed checkpoints of the chain. The sealer (one replica, advisory lock)
-- signs, with the active audit key, a canonical message over
-- (seq_upto, head_hash, sealed_at, key_id); verify checks the chain up to
-- each seal and the signature, so truncation after a seal and rewriting
-- history are both detected. Append-only.
CREATE TABLE audit_seals (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq_upto  bigint NOT NULL UNIQUE CHECK (seq_upto > 0),
    head_hash bytea NOT NULL CHECK (octet_length(head_hash) = 32),
    signature bytea NOT NULL CHECK (octet_length(signature) = 64),    -- Ed25519
    key_id    text NOT NULL REFERENCES audit_keys,
    sealed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON audit_seals
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

SELECT audit_ensure_partitions(3);


-- ===========================================================================
-- Settings
-- ===========================================================================

-- Small instance-wide facts, e.g. 'bootstrap_done' = 'true' (so --dev prints
-- the bootstrap token exactly once, whichever replica starts first:
-- INSERT ... ON CONFLICT DO NOTHING decides).
CREATE TABLE settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
