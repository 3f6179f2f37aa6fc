-- 0004_github.sql -- what the GitHub sync knows about an organisation's
-- structure, so permissions can be recomputed in SQL without the API.
--
-- The sync (sync/sync_github.c) mirrors here the inputs GitHub reports --
-- org members and their role, the org's base permission, teams and their
-- parents, team members, team repository grants, direct and outside
-- collaborators -- and derives repo_permission_sources from them with one
-- query (db/repo_perm.c). Keeping the inputs, not only the result, lets a
-- webhook apply a removal at once ("bob left team infra") by deleting one
-- input row and recomputing the affected users or repos, with no API call.
--
-- Everything is keyed by GitHub's numeric ids (users, teams and repositories
-- keep them across renames; team and repository ids are unique across
-- organisations): account_id = repo_accounts.external_id, repo_id =
-- repositories.external_id, team_id = the team's id. No foreign keys: the
-- tables are replaced in bulk by each sync run, inside its transaction,
-- and hold whatever GitHub said, including accounts that match no user.
-- All rows are for the one configured repo host (repositories.host 'github').
-- org is the organisation's login in lower case.

-- One row per synced organisation. base_permission NULL = 'none'.
CREATE TABLE github_orgs (
    org             text PRIMARY KEY CHECK (org <> '' AND org = lower(org)),
    login           text NOT NULL,
    external_id     bigint,
    base_permission repo_permission,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Org members; role 'admin' = organisation owner (admin on every repository).
CREATE TABLE github_org_members (
    org        text NOT NULL,
    account_id bigint NOT NULL,
    role       text NOT NULL CHECK (role IN ('admin', 'member')),
    PRIMARY KEY (org, account_id)
);
CREATE INDEX github_org_members_account_idx ON github_org_members (account_id);

-- Teams; parent_id is the parent team's id (nested teams), NULL at the top.
-- Members of a child team inherit the parent team's repository grants.
CREATE TABLE github_teams (
    id         bigint PRIMARY KEY,
    org        text NOT NULL,
    slug       text NOT NULL CHECK (slug <> ''),
    name       text,
    parent_id  bigint
);
CREATE INDEX github_teams_org_idx ON github_teams (org);
CREATE INDEX github_teams_parent_idx ON github_teams (parent_id) WHERE parent_id IS NOT NULL;

-- Team members as GitHub lists them (GitHub's list includes the members of
-- child teams; the recompute takes the closure anyway, so either is right).
CREATE TABLE github_team_members (
    team_id    bigint NOT NULL,
    account_id bigint NOT NULL,
    PRIMARY KEY (team_id, account_id)
);
CREATE INDEX github_team_members_account_idx ON github_team_members (account_id);

-- A team's grant on a repository.
CREATE TABLE github_team_repos (
    team_id    bigint NOT NULL,
    repo_id    bigint NOT NULL,
    permission repo_permission NOT NULL,
    PRIMARY KEY (team_id, repo_id)
);
CREATE INDEX github_team_repos_repo_idx ON github_team_repos (repo_id);

-- Collaborators added to a repository directly (affiliation=direct). Whether
-- one is an outside collaborator (via 'outside') or a member with a direct
-- grant (via 'direct') is decided when sources are derived: outside = not in
-- github_org_members of the repository's organisation.
CREATE TABLE github_repo_collaborators (
    repo_id    bigint NOT NULL,
    account_id bigint NOT NULL,
    permission repo_permission NOT NULL,
    PRIMARY KEY (repo_id, account_id)
);
CREATE INDEX github_repo_collaborators_account_idx ON github_repo_collaborators (account_id);

-- Targeted work requested by webhook deliveries, drained by the job
-- "sync.github.queue" (on whichever replica holds its lock): re-read one
-- repository, one team, or the org's member lists from the API and
-- recompute what depends on them. Removals are applied by the webhook
-- itself before the row is queued; the queue confirms them and applies
-- additions. Rows are deleted when processed.
CREATE TABLE github_sync_queue (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org       text NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('repo', 'team', 'members', 'org')),
    ref_id    bigint,           -- repository or team id
    ref       text,             -- repository name or team slug
    event     text,             -- the webhook event that asked, for the run's record
    queued_at timestamptz NOT NULL DEFAULT now()
);
