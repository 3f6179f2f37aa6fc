-- 0003_scim.sql -- what the SCIM 2.0 service provider (broker/scim*.c,
-- db/scim_store.c) needs beyond 0001.
--
-- 0001 already holds everything SCIM stores: users (+ enterprise), user_sources
-- (source 'scim': externalId, the IdP's view of active, other attributes),
-- user_emails (source 'scim'), groups (source 'scim'), group_members, and
-- scim_tokens. This file only adds indexes for the SCIM access paths.

-- SCIM lists only users linked to the IdP (a live 'scim' source row): an
-- unfiltered GET /Users pages through this in user_id order instead of
-- scanning every source row. The (source, external_id) index of 0001 serves
-- filter=externalId eq "...", users_user_name_key serves userName eq.
CREATE INDEX user_sources_scim_user_idx ON user_sources (user_id) WHERE source = 'scim';

-- GET /Groups pages SCIM groups in id order.
CREATE INDEX groups_scim_idx ON groups (id) WHERE source = 'scim';

-- Rotation: "every live token without an expiry yet" and the token check
-- both start from the few live rows.
CREATE INDEX scim_tokens_live_idx ON scim_tokens (id) WHERE revoked_at IS NULL;
