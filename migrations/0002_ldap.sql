-- 0002_ldap.sql -- bookkeeping of the LDAP directory sync (sync/sync_ldap.c, db/directory.c).
--
-- The identity itself lives in 0001's tables: users, user_sources (source
-- 'ldap': external_id = entryUUID or objectGUID, dn = the entry's DN exactly as
-- the directory spells it, active = the directory's view), user_emails (source
-- 'ldap'), groups (source 'ldap', external_id, dn) and group_members. The
-- tables below hold only what the sync needs to decide, without trusting a
-- re-read of everything, what changed:
--   * a digest of what was last written for each entry, so a run that finds
--     nothing new writes nothing;
--   * DN comparison keys (RFC 4514: parsed, attribute types and ASCII case
--     folded, re-serialised by ldap_dn_key(), then lower()ed here so non-ASCII
--     case folds too), because a group's member values and the member's own DN
--     are spelled independently;
--   * each group's member references as read (member/uniqueMember DNs,
--     memberUid names) and each user's memberOf values, so an incremental run
--     that sees a user renamed (modrdn), added or removed re-resolves the
--     memberships of groups that did not change themselves.
-- A user has an ldap_users row while their entry is in the directory (and in
-- scope). An entry that disappears loses the row, and with it every reference
-- that resolved to it, but keeps its user_sources row (external_id, last dn,
-- active = false) as evidence; if the same entry comes back it is re-attached
-- to the same user.

CREATE TABLE ldap_users (
    user_id          bigint PRIMARY KEY REFERENCES users ON DELETE CASCADE,
    external_id      text NOT NULL UNIQUE CHECK (external_id <> ''),
    dn_key           text NOT NULL CHECK (dn_key <> ''),
    -- the login_attr value (users.user_name), which posixGroup memberUid names
    login            text NOT NULL CHECK (login <> ''),
    -- the entry matches [ldap] disabled_filter
    disabled         boolean NOT NULL DEFAULT false,
    -- SHA-256 over dn, login, names, repo login and mails as last written
    digest           bytea NOT NULL CHECK (octet_length(digest) = 32),
    -- SHA-256 over the sorted memberOf keys; NULL when memberOf is not read
    memberof_digest  bytea CHECK (octet_length(memberof_digest) = 32)
);
-- No index on dn_key or login: memberships are always resolved for every
-- group at once (dir_memberships_resolve), where hash joins over whole tables
-- beat index lookups, and every index slows the first sync's bulk insert.

CREATE TABLE ldap_groups (
    group_id     bigint PRIMARY KEY REFERENCES groups ON DELETE CASCADE,
    external_id  text NOT NULL UNIQUE CHECK (external_id <> ''),
    dn_key       text NOT NULL CHECK (dn_key <> ''),
    -- SHA-256 over dn, name and the sorted member references as last written
    digest       bytea NOT NULL CHECK (octet_length(digest) = 32)
);

-- What a group entry says about its members, as read. kind 'dn': a member or
-- uniqueMember value (its DN key; a uniqueMember's optional #'bitstring' UID
-- is dropped); kind 'uid': a posixGroup memberUid, lower()ed. A reference that
-- resolves to no synced user or group is kept: the entry it names may appear
-- later (or be renamed into it), and the next run then resolves it.
-- Like 0001's permission tables, the two reference tables are bulk tables
-- (a first sync writes ~200k rows into ldap_group_refs at the design point)
-- and have no foreign keys and no unique key: the sync writes a group's (or
-- user's) rows from a de-duplicated list in the transaction that wrote the
-- parent and deletes them with the parent (groups are deleted, users never
-- are), and resolution de-duplicates anyway (UNION). A per-row foreign-key
-- check and a unique text index would cost more than the insert itself.
-- Tests assert there are no orphans.
CREATE TABLE ldap_group_refs (
    group_id  bigint NOT NULL,     -- groups.id (no FK: see above)
    kind      text NOT NULL CHECK (kind IN ('dn', 'uid')),
    value     text NOT NULL CHECK (value <> '')
);
CREATE INDEX ldap_group_refs_group_idx ON ldap_group_refs (group_id);

-- memberOf values of user entries ([ldap] member_of = true): the group's DN key.
CREATE TABLE ldap_user_memberof (
    user_id    bigint NOT NULL,    -- users.id (no FK: see above)
    group_key  text NOT NULL CHECK (group_key <> '')
);
CREATE INDEX ldap_user_memberof_user_idx ON ldap_user_memberof (user_id);
