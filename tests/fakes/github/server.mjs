// A fake of the GitHub REST API (github.com / GHES /api/v3 shapes), for
// tessera's GitHub sync tests and benchmark. Node.js built-ins only.
//
//   node server.mjs PORT SEED.json
//
// prints "listening PORT" once ready. SEED.json describes the world (see
// README.md next to this file): organisations with owners, members, base
// permission, nested teams (members, repository grants), repositories
// (visibility, archived, topics, direct collaborators), API tokens, a GitHub
// App and its installations, or a "generate" block for a large org.
//
// Speaks, like GitHub:
//   GET  /orgs/{org}                                 default_repository_permission
//   GET  /orgs/{org}/members?role=all|admin|member
//   GET  /orgs/{org}/outside_collaborators
//   GET  /orgs/{org}/teams                           with parent
//   GET  /orgs/{org}/teams/{slug}/members            includes child teams' members
//   GET  /orgs/{org}/teams/{slug}/repos              permissions + role_name
//   GET  /orgs/{org}/repos?type=all
//   GET  /repos/{org}/{repo}
//   GET  /repos/{org}/{repo}/collaborators?affiliation=direct|outside|all
//   GET  /repos/{org}/{repo}/teams
//   GET  /user                                       (token's login, for login tests)
//   PATCH /orgs/{org}/hooks/{id}/config              secret, content_type, url (answer without the secret)
//   GET  /orgs/{org}/installation                    App JWT (RS256) auth
//   POST /app/installations/{id}/access_tokens       App JWT -> installation token
// with per_page (max 100) / page and Link headers (next, last, prev, first);
// ETag on every 200 and 304 for a matching If-None-Match (a 304 does not
// count against the rate limit); X-RateLimit-Limit/Remaining/Reset/Used;
// 403 "API rate limit exceeded" when exhausted; optional secondary limits
// (403 or 429 with Retry-After every Nth request).
//
// Control API for tests (never part of GitHub):
//   GET  /_fake/calls[?since=N]   calls received: {"total","not_modified","limited","calls":[…]}
//   POST /_fake/calls/reset
//   POST /_fake/ratelimit         {"limit","remaining","window_s","secondary":{"every","status","retry_after"}}
//   POST /_fake/hook              {"url","secret"}: where mutations deliver webhooks
//   POST /_fake/mutate            {"op",…}: change the org like GitHub would, deliver the event
//   POST /_fake/deliver           {"event","payload","secret"?,"signature"?,"delivery"?}: send one delivery
//   GET  /_fake/stats             sizes, and the page count of a per-repo affiliation=all listing
//   POST /_fake/org_hook          {"org","id","url","secret"}: create or replace an organisation webhook
//   GET  /_fake/org_hooks         the organisation webhooks, with their secrets and PATCH counts
//   POST /_fake/org_hook/deliver  {"org","id","event","payload"?}: deliver, signed with the hook's current secret
//   POST /_fake/fail              {"method","status","count"}: answer the next count such API requests with status
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';

const port = Number(process.argv[2]);
const seedPath = process.argv[3];
if (!port || !seedPath) {
  console.error('usage: node server.mjs PORT SEED.json');
  process.exit(2);
}
const seed = JSON.parse(fs.readFileSync(seedPath, 'utf8'));

// ---------------------------------------------------------------- the world

const PERMS = ['read', 'triage', 'write', 'maintain', 'admin'];
const userIds = new Map(); // login(lower) -> {login, id}
let nextUserId = 10000;
function user(login) {
  const k = login.toLowerCase();
  let u = userIds.get(k);
  if (!u) {
    const given = seed.users && seed.users[login];
    u = { login, id: given || nextUserId++ };
    userIds.set(k, u);
  }
  return u;
}
let nextId = 500000;

const orgs = new Map(); // lower login -> org
function addOrg(o) {
  const org = {
    login: o.login,
    id: o.id || nextId++,
    base: o.default_repository_permission || 'none',
    owners: new Set((o.owners || []).map((l) => user(l).login)),
    members: new Set(),
    teams: new Map(),
    repos: new Map(),
  };
  for (const l of o.members || []) org.members.add(user(l).login);
  for (const l of org.owners) org.members.add(l);
  for (const t of o.teams || []) {
    org.teams.set(t.slug, {
      id: t.id || nextId++,
      slug: t.slug,
      name: t.name || t.slug,
      parent: t.parent || null,
      members: new Set((t.members || []).map((l) => user(l).login)),
      repos: new Map(Object.entries(t.repos || {})),
    });
  }
  for (const r of o.repos || []) {
    org.repos.set(r.name, {
      id: r.id || nextId++,
      name: r.name,
      visibility: r.visibility || 'private',
      archived: !!r.archived,
      topics: r.topics || [],
      collaborators: new Map(Object.entries(r.collaborators || {}).map(([l, p]) => [user(l).login, p])),
    });
  }
  orgs.set(org.login.toLowerCase(), org);
}
for (const o of seed.orgs || []) addOrg(o);

// Deterministic large org for the benchmark.
function generate(g) {
  let s = g.seed || 1;
  const rnd = () => { // mulberry32
    s |= 0; s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const nU = g.users || 5000, nT = g.teams || 500, nR = g.repos || 10000, tops = Math.min(100, nT);
  const pad = (n, w) => String(n).padStart(w, '0');
  const users = [];
  for (let i = 0; i < nU; i++) users.push(`u${pad(i, 5)}`);
  const teams = [];
  for (let i = 0; i < nT; i++) {
    teams.push({ slug: `t${pad(i, 3)}`, parent: i >= tops ? `t${pad(i - tops, 3)}` : null, members: [], repos: {} });
  }
  users.forEach((u, j) => {
    teams[j % nT].members.push(u);
    if (rnd() < 0.3) teams[Math.floor(rnd() * nT)].members.push(u);
  });
  const weights = ['read', 'read', 'write', 'write', 'write', 'triage', 'maintain', 'admin'];
  const repos = [];
  for (let k = 0; k < nR; k++) {
    const topics = [];
    if (rnd() < 0.05) topics.push('hipaa');
    if (rnd() < 0.03) topics.push('pci');
    const r = { name: `r${pad(k, 5)}`, visibility: rnd() < 0.1 ? 'internal' : 'private', archived: rnd() < 0.02, topics, collaborators: {} };
    teams[k % nT].repos[r.name] = weights[Math.floor(rnd() * weights.length)];
    if (rnd() < 0.2) teams[Math.floor(rnd() * nT)].repos[r.name] = weights[Math.floor(rnd() * weights.length)];
    if (rnd() < 0.1) {
      const n = 1 + Math.floor(rnd() * 3);
      for (let c = 0; c < n; c++) r.collaborators[users[Math.floor(rnd() * nU)]] = weights[Math.floor(rnd() * weights.length)];
    }
    if (rnd() < 0.02) r.collaborators[`x${pad(Math.floor(rnd() * 200), 4)}`] = 'read';
    repos.push(r);
  }
  addOrg({
    login: g.org || 'bigco',
    default_repository_permission: g.base || 'none',
    owners: users.slice(0, 3),
    members: users,
    teams,
    repos,
  });
}
if (seed.generate) generate(seed.generate);

const apiTokens = new Map(); // token -> login (or '' for a service token)
if (Array.isArray(seed.tokens)) for (const t of seed.tokens) apiTokens.set(t, '');
else for (const [t, l] of Object.entries(seed.tokens || {})) apiTokens.set(t, l);

const app = seed.app || null;
let appKey = null;
if (app) appKey = crypto.createPublicKey(app.public_key || fs.readFileSync(app.public_key_file, 'utf8'));
const installations = new Map(Object.entries((app && app.installations) || {}).map(([o, id]) => [String(id), o.toLowerCase()]));
const instTokens = new Map(); // token -> {expires, org}

// ---------------------------------------------------------------- state for tests

let version = 0; // bumped by every mutation: invalidates memoised lists
const memo = new Map();
const calls = [];
const counters = { total: 0, not_modified: 0, limited: 0, ok: 0 };
const MAX_LOGGED = 300000;
const rl = { limit: 5000, remaining: 5000, window: 3600, reset: 0, secondary: null, n: 0 };
rl.reset = Math.floor(Date.now() / 1000) + rl.window;
let hook = null; // {url, secret}
const orgHooks = new Map(); // "org/id" (org lower case) -> {org, id, url, secret, content_type, patches}
for (const o of seed.orgs || []) {
  for (const h of o.hooks || []) orgHooks.set(`${o.login.toLowerCase()}/${h.id}`, { org: o.login, id: h.id, url: h.url || '', secret: h.secret || '', content_type: 'json', patches: 0 });
}
const failNext = { method: '', status: 0, count: 0 }; // injected failures of API requests

// ---------------------------------------------------------------- helpers

function send(res, status, body, headers = {}) {
  const data = body === null ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(data);
  return status;
}
const userObj = (login) => {
  const u = user(login);
  return { login: u.login, id: u.id, node_id: `U_${u.id}`, type: 'User', site_admin: false, url: `/users/${u.login}` };
};
const permsObj = (p) => {
  const i = PERMS.indexOf(p);
  return { admin: i >= 4, maintain: i >= 3, push: i >= 2, triage: i >= 1, pull: i >= 0 };
};
const roleName = (p) => p;
const legacyPerm = (p) => ({ read: 'pull', triage: 'triage', write: 'push', maintain: 'maintain', admin: 'admin' })[p];
function repoObj(org, r) {
  return {
    id: r.id, node_id: `R_${r.id}`, name: r.name, full_name: `${org.login}/${r.name}`,
    owner: { login: org.login, id: org.id, type: 'Organization' },
    private: r.visibility !== 'public', visibility: r.visibility, archived: r.archived, disabled: false,
    topics: r.topics, default_branch: 'main', fork: false,
  };
}
function teamObj(org, t) {
  const p = t.parent ? org.teams.get(t.parent) : null;
  return {
    id: t.id, node_id: `T_${t.id}`, slug: t.slug, name: t.name, privacy: 'closed', permission: 'pull',
    parent: p ? { id: p.id, slug: p.slug, name: p.name } : null,
  };
}
// members of t and of every descendant team
function teamClosure(org, t) {
  const out = new Set(t.members);
  const stack = [t.slug];
  const seen = new Set(stack);
  while (stack.length) {
    const s = stack.pop();
    for (const c of org.teams.values()) {
      if (c.parent === s && !seen.has(c.slug)) {
        seen.add(c.slug);
        stack.push(c.slug);
        for (const m of c.members) out.add(m);
      }
    }
  }
  return out;
}
function ancestors(org, t) {
  const out = [];
  for (let p = t.parent; p && out.length < 64; p = org.teams.get(p)?.parent) {
    const pt = org.teams.get(p);
    if (!pt) break;
    out.push(pt);
  }
  return out;
}
const maxPerm = (a, b) => (!a ? b : !b ? a : PERMS.indexOf(a) >= PERMS.indexOf(b) ? a : b);
// effective permission of everyone with access to repo r (affiliation=all)
function effective(org, r) {
  const eff = new Map();
  const give = (l, p) => eff.set(l, maxPerm(eff.get(l), p));
  if (org.base !== 'none') for (const m of org.members) give(m, org.base);
  for (const o of org.owners) give(o, 'admin');
  for (const t of org.teams.values()) {
    const p = t.repos.get(r.name);
    if (p) for (const m of teamClosure(org, t)) give(m, p);
  }
  for (const [l, p] of r.collaborators) give(l, p);
  return eff;
}
function memoList(key, build) {
  const k = `${version}:${key}`;
  let v = memo.get(k);
  if (!v) {
    if (memo.size > 50000) memo.clear();
    v = build();
    memo.set(k, v);
  }
  return v;
}

// ---------------------------------------------------------------- auth

function b64urlJson(s) {
  return JSON.parse(Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
}
function verifyJwt(tok) {
  if (!app || !appKey) return 'no app configured';
  const parts = tok.split('.');
  if (parts.length !== 3) return 'malformed JWT';
  let hdr, pl;
  try { hdr = b64urlJson(parts[0]); pl = b64urlJson(parts[1]); } catch { return 'malformed JWT'; }
  if (hdr.alg !== 'RS256') return 'alg must be RS256';
  const sig = Buffer.from(parts[2].replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (!crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), appKey, sig)) return 'bad JWT signature';
  const now = Math.floor(Date.now() / 1000);
  if (String(pl.iss) !== String(app.id)) return 'wrong iss';
  if (!(pl.exp > now) || pl.exp - pl.iat > 660 || pl.iat > now + 60) return 'JWT expired or too long';
  return null;
}
// -> {kind, login?, org?} or {error}
function authenticate(req) {
  const h = req.headers.authorization || '';
  const m = /^(Bearer|token) (.+)$/i.exec(h);
  if (!m) return { error: 'Requires authentication' };
  const tok = m[2].trim();
  if (tok.split('.').length === 3) {
    const e = verifyJwt(tok);
    return e ? { error: e } : { kind: 'app-jwt' };
  }
  if (apiTokens.has(tok)) return { kind: 'token', login: apiTokens.get(tok) };
  const it = instTokens.get(tok);
  if (it) {
    if (it.expires <= Date.now()) return { error: 'Bad credentials (installation token expired)' };
    return { kind: 'installation', org: it.org };
  }
  return { error: 'Bad credentials' };
}

// ---------------------------------------------------------------- rate limits

function rateHeaders() {
  return {
    'x-ratelimit-limit': String(rl.limit),
    'x-ratelimit-remaining': String(rl.remaining),
    'x-ratelimit-reset': String(rl.reset),
    'x-ratelimit-used': String(rl.limit - rl.remaining),
    'x-ratelimit-resource': 'core',
  };
}
// every answer but a 304 takes one from the budget, as on GitHub
function spend() {
  if (rl.remaining > 0) rl.remaining--;
}
function rateRoll() {
  const now = Math.floor(Date.now() / 1000);
  if (now >= rl.reset) {
    rl.remaining = rl.limit;
    rl.reset = now + rl.window;
  }
}

// ---------------------------------------------------------------- routing

function paginate(req, res, url, list, mapItem) {
  const perPage = Math.min(100, Math.max(1, Number(url.searchParams.get('per_page')) || 30));
  const page = Math.max(1, Number(url.searchParams.get('page')) || 1);
  const last = Math.max(1, Math.ceil(list.length / perPage));
  const items = list.slice((page - 1) * perPage, page * perPage).map(mapItem);
  const links = [];
  const link = (p, rel) => {
    const u = new URL(url.toString());
    u.searchParams.set('per_page', String(perPage));
    u.searchParams.set('page', String(p));
    links.push(`<${u.toString()}>; rel="${rel}"`);
  };
  if (page < last) { link(page + 1, 'next'); link(last, 'last'); }
  if (page > 1) { link(1, 'first'); link(page - 1, 'prev'); }
  return conditional(req, res, items, links.length ? { link: links.join(', ') } : {});
}

function conditional(req, res, body, headers = {}) {
  const data = JSON.stringify(body);
  const etag = `W/"${crypto.createHash('sha256').update(data).digest('hex').slice(0, 40)}"`;
  const inm = req.headers['if-none-match'];
  if (inm && inm.split(',').map((s) => s.trim()).includes(etag)) {
    res.writeHead(304, { etag, ...rateHeaders(), ...headers });
    res.end();
    return 304;
  }
  spend();
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', etag, ...rateHeaders(), ...headers });
  res.end(data);
  return 200;
}

function api(req, res, url, who, body) {
  const p = url.pathname.replace(/^\/api\/v3/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const notFound = () => {
    spend();
    return send(res, 404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' }, rateHeaders());
  };
  if (req.method === 'GET' && p.length === 1 && p[0] === 'user') {
    if (who.kind !== 'token' || !who.login) return send(res, 401, { message: 'Bad credentials' });
    spend();
    return send(res, 200, userObj(who.login), rateHeaders());
  }
  if (p[0] === 'app' && p[1] === 'installations' && p[3] === 'access_tokens' && req.method === 'POST') {
    if (who.kind !== 'app-jwt') return send(res, 401, { message: 'A JSON web token could not be decoded' });
    const org = installations.get(p[2]);
    if (!org) return notFound();
    const token = `ghs_${crypto.randomBytes(18).toString('hex')}`;
    const ttl = (app.token_ttl_s || 3600) * 1000;
    instTokens.set(token, { expires: Date.now() + ttl, org });
    return send(res, 201, { token, expires_at: new Date(Date.now() + ttl).toISOString().replace(/\.\d+Z$/, 'Z'), permissions: { members: 'read', metadata: 'read' } });
  }
  if (p[0] === 'orgs' && p[2] === 'installation' && p.length === 3 && req.method === 'GET') {
    if (who.kind !== 'app-jwt') return send(res, 401, { message: 'A JSON web token could not be decoded' });
    for (const [id, o] of installations) if (o === p[1].toLowerCase()) return send(res, 200, { id: Number(id), account: { login: p[1] } });
    return notFound();
  }
  if (who.kind === 'app-jwt') return send(res, 403, { message: 'Resource not accessible by integration' });
  if (req.method === 'PATCH' && p[0] === 'orgs' && p[2] === 'hooks' && p[4] === 'config' && p.length === 5) {
    // "Update a webhook configuration for an organization" (admin:org_hook)
    const h = orgHooks.get(`${p[1].toLowerCase()}/${p[3]}`);
    if (!h || (who.kind === 'installation' && who.org !== p[1].toLowerCase())) return notFound();
    let j;
    try { j = JSON.parse(body || '{}'); } catch { j = null; }
    if (!j || typeof j !== 'object' || Array.isArray(j)) { spend(); return send(res, 400, { message: 'Problems parsing JSON' }, rateHeaders()); }
    for (const k of ['url', 'content_type', 'secret', 'insecure_ssl']) {
      if (j[k] !== undefined && typeof j[k] !== 'string') { spend(); return send(res, 422, { message: 'Invalid request.', errors: [`${k} is not a string`] }, rateHeaders()); }
    }
    if (j.secret !== undefined) h.secret = j.secret;
    if (j.url !== undefined) h.url = j.url;
    if (j.content_type !== undefined) h.content_type = j.content_type;
    h.patches++;
    spend();
    return send(res, 200, { content_type: h.content_type, insecure_ssl: '0', url: h.url }, rateHeaders());
  }
  if (req.method !== 'GET') return notFound();

  if (p[0] === 'orgs' && p[1]) {
    const org = orgs.get(p[1].toLowerCase());
    if (!org || (who.kind === 'installation' && who.org !== p[1].toLowerCase())) return notFound();
    if (p.length === 2) {
      return conditional(req, res, { login: org.login, id: org.id, type: 'Organization', default_repository_permission: org.base, members_can_create_repositories: true });
    }
    if (p.length === 3 && p[2] === 'members') {
      const role = url.searchParams.get('role') || 'all';
      const list = memoList(`members:${org.login}:${role}`, () => [...org.members].filter((l) => role === 'all' || (role === 'admin') === org.owners.has(l)).sort());
      return paginate(req, res, url, list, userObj);
    }
    if (p.length === 3 && p[2] === 'outside_collaborators') {
      const list = memoList(`outside:${org.login}`, () => {
        const s = new Set();
        for (const r of org.repos.values()) for (const l of r.collaborators.keys()) if (!org.members.has(l)) s.add(l);
        return [...s].sort();
      });
      return paginate(req, res, url, list, userObj);
    }
    if (p.length === 3 && p[2] === 'teams') {
      const list = memoList(`teams:${org.login}`, () => [...org.teams.values()].sort((a, b) => a.id - b.id));
      return paginate(req, res, url, list, (t) => teamObj(org, t));
    }
    if (p.length === 5 && p[2] === 'teams') {
      const t = org.teams.get(p[3]);
      if (!t) return notFound();
      if (p[4] === 'members') {
        const list = memoList(`tmembers:${org.login}:${t.slug}`, () => [...teamClosure(org, t)].sort());
        return paginate(req, res, url, list, userObj);
      }
      if (p[4] === 'repos') {
        const list = memoList(`trepos:${org.login}:${t.slug}`, () => [...t.repos.entries()].filter(([n]) => org.repos.has(n)).sort());
        return paginate(req, res, url, list, ([n, perm]) => ({ ...repoObj(org, org.repos.get(n)), permissions: permsObj(perm), role_name: roleName(perm) }));
      }
    }
    if (p.length === 3 && p[2] === 'repos') {
      const list = memoList(`repos:${org.login}`, () => [...org.repos.values()].sort((a, b) => a.id - b.id));
      return paginate(req, res, url, list, (r) => repoObj(org, r));
    }
    return notFound();
  }
  if (p[0] === 'repos' && p.length >= 3) {
    const org = orgs.get(p[1].toLowerCase());
    const r = org && org.repos.get(p[2]);
    if (!r || (who.kind === 'installation' && who.org !== p[1].toLowerCase())) return notFound();
    if (p.length === 3) return conditional(req, res, repoObj(org, r));
    if (p.length === 4 && p[3] === 'collaborators') {
      const aff = url.searchParams.get('affiliation') || 'all';
      const list = memoList(`collab:${org.login}:${r.name}:${aff}`, () => {
        if (aff === 'all') return [...effective(org, r).entries()].sort();
        return [...r.collaborators.entries()].filter(([l]) => aff === 'direct' || !org.members.has(l)).sort();
      });
      return paginate(req, res, url, list, ([l, perm]) => ({ ...userObj(l), permissions: permsObj(perm), role_name: roleName(perm) }));
    }
    if (p.length === 4 && p[3] === 'teams') {
      const list = memoList(`rteams:${org.login}:${r.name}`, () => [...org.teams.values()].filter((t) => t.repos.has(r.name)).sort((a, b) => a.id - b.id));
      return paginate(req, res, url, list, (t) => ({ ...teamObj(org, t), permission: legacyPerm(t.repos.get(r.name)), permissions: permsObj(t.repos.get(r.name)), role_name: t.repos.get(r.name) }));
    }
  }
  return notFound();
}

// ---------------------------------------------------------------- webhooks

function deliver(event, payload, opts = {}) {
  return new Promise((resolve) => {
    const target = opts.url || (hook && hook.url);
    if (!target) return resolve({ status: 0, error: 'no webhook configured' });
    const secret = opts.secret !== undefined ? opts.secret : hook && hook.secret;
    const body = Buffer.from(JSON.stringify(payload));
    const delivery = opts.delivery || crypto.randomUUID();
    const sig = opts.signature !== undefined ? opts.signature
      : `sha256=${crypto.createHmac('sha256', secret || '').update(body).digest('hex')}`;
    const headers = {
      'content-type': 'application/json', 'content-length': body.length, 'user-agent': 'GitHub-Hookshot/fake',
      'x-github-event': event, 'x-github-delivery': delivery, 'x-github-hook-id': '1',
      'x-hub-signature': `sha1=${crypto.createHmac('sha1', secret || '').update(body).digest('hex')}`,
    };
    if (sig !== null) headers['x-hub-signature-256'] = sig;
    const u = new URL(target);
    const rq = http.request({ hostname: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers }, (rs) => {
      let d = '';
      rs.on('data', (c) => { d += c; });
      rs.on('end', () => {
        let parsed = d;
        try { parsed = JSON.parse(d); } catch { /* keep text */ }
        resolve({ status: rs.statusCode, body: parsed, delivery });
      });
    });
    rq.on('error', (e) => resolve({ status: 0, error: String(e), delivery }));
    rq.end(body);
  });
}

const sender = { login: 'octo-admin', id: 1, type: 'User' };
const orgObj = (org) => ({ login: org.login, id: org.id });

// apply a mutation; returns [event, payload] or throws
function mutate(m) {
  const org = orgs.get(String(m.org || '').toLowerCase());
  if (!org) throw new Error('unknown org');
  const team = m.team !== undefined ? org.teams.get(m.team) : null;
  const repo = m.repo !== undefined ? org.repos.get(m.repo) : null;
  if (m.team !== undefined && !team && m.op !== 'team_create') throw new Error('unknown team');
  if (m.repo !== undefined && !repo && m.op !== 'repo_create') throw new Error('unknown repo');
  const login = m.login ? user(m.login).login : null;
  version++;
  switch (m.op) {
    case 'team_add_member':
      org.members.add(login);
      team.members.add(login);
      return ['membership', { action: 'added', scope: 'team', member: userObj(login), team: teamObj(org, team), organization: orgObj(org), sender }];
    case 'team_remove_member':
      team.members.delete(login);
      return ['membership', { action: 'removed', scope: 'team', member: userObj(login), team: teamObj(org, team), organization: orgObj(org), sender }];
    case 'team_add_repo':
      team.repos.set(repo.name, m.permission || 'read');
      return ['team_add', { team: teamObj(org, team), repository: repoObj(org, repo), organization: orgObj(org), sender }];
    case 'team_remove_repo':
      team.repos.delete(repo.name);
      return ['team', { action: 'removed_from_repository', team: teamObj(org, team), repository: repoObj(org, repo), organization: orgObj(org), sender }];
    case 'team_delete': {
      const gone = [team.slug];
      for (let i = 0; i < gone.length; i++) for (const t of org.teams.values()) if (t.parent === gone[i]) gone.push(t.slug);
      const payload = { action: 'deleted', team: teamObj(org, team), organization: orgObj(org), sender };
      for (const s of gone) org.teams.delete(s);
      return ['team', payload];
    }
    case 'collaborator_add':
      repo.collaborators.set(login, m.permission || 'read');
      return ['member', { action: 'added', member: userObj(login), repository: repoObj(org, repo), organization: orgObj(org), changes: { permission: { to: m.permission || 'read' } }, sender }];
    case 'collaborator_remove':
      repo.collaborators.delete(login);
      return ['member', { action: 'removed', member: userObj(login), repository: repoObj(org, repo), organization: orgObj(org), sender }];
    case 'org_add_member':
      org.members.add(login);
      if (m.role === 'admin') org.owners.add(login);
      return ['organization', { action: 'member_added', membership: { user: userObj(login), role: m.role || 'member', state: 'active' }, organization: orgObj(org), sender }];
    case 'org_remove_member': {
      org.members.delete(login);
      org.owners.delete(login);
      for (const t of org.teams.values()) t.members.delete(login);
      for (const r of org.repos.values()) r.collaborators.delete(login);
      return ['organization', { action: 'member_removed', membership: { user: userObj(login), role: 'member', state: 'active' }, organization: orgObj(org), sender }];
    }
    case 'repo_archive':
      repo.archived = m.archived !== false;
      return ['repository', { action: repo.archived ? 'archived' : 'unarchived', repository: repoObj(org, repo), organization: orgObj(org), sender }];
    case 'repo_topics':
      repo.topics = m.topics || [];
      return ['repository', { action: 'edited', repository: repoObj(org, repo), organization: orgObj(org), changes: {}, sender }];
    case 'repo_delete': {
      const payload = { action: 'deleted', repository: repoObj(org, repo), organization: orgObj(org), sender };
      org.repos.delete(repo.name);
      return ['repository', payload];
    }
    case 'repo_create': {
      const r = { id: nextId++, name: m.repo, visibility: m.visibility || 'private', archived: false, topics: m.topics || [], collaborators: new Map() };
      org.repos.set(r.name, r);
      return ['repository', { action: 'created', repository: repoObj(org, r), organization: orgObj(org), sender }];
    }
    case 'base_permission':
      org.base = m.permission;
      return ['organization', { action: 'renamed', organization: orgObj(org), sender }];
    default:
      version--;
      throw new Error(`unknown op ${m.op}`);
  }
}

// ---------------------------------------------------------------- server

function readBody(req) {
  return new Promise((resolve) => {
    let d = '';
    req.on('data', (c) => { d += c; });
    req.on('end', () => resolve(d));
  });
}

async function control(req, res, url) {
  const path = url.pathname;
  const body = req.method === 'POST' ? await readBody(req) : '';
  let j = {};
  if (body) {
    try { j = JSON.parse(body); } catch { return send(res, 400, { message: 'bad JSON' }); }
  }
  if (path === '/_fake/calls' && req.method === 'GET') {
    const since = Number(url.searchParams.get('since')) || 0;
    return send(res, 200, { ...counters, logged: calls.length, calls: url.searchParams.get('summary') ? [] : calls.slice(since) });
  }
  if (path === '/_fake/calls/reset' && req.method === 'POST') {
    calls.length = 0;
    for (const k of Object.keys(counters)) counters[k] = 0;
    return send(res, 200, { ok: true });
  }
  if (path === '/_fake/ratelimit' && req.method === 'POST') {
    if (j.limit !== undefined) rl.limit = j.limit;
    if (j.window_s !== undefined) rl.window = j.window_s;
    if (j.remaining !== undefined) rl.remaining = j.remaining;
    rl.reset = Math.floor(Date.now() / 1000) + (j.reset_in_s !== undefined ? j.reset_in_s : rl.window);
    rl.secondary = j.secondary || null;
    rl.n = 0;
    return send(res, 200, { limit: rl.limit, remaining: rl.remaining, reset: rl.reset, secondary: rl.secondary });
  }
  if (path === '/_fake/hook' && req.method === 'POST') {
    hook = { url: j.url, secret: j.secret };
    return send(res, 200, { ok: true });
  }
  if (path === '/_fake/mutate' && req.method === 'POST') {
    let ev;
    try { ev = mutate(j); } catch (e) { return send(res, 400, { message: String(e.message) }); }
    const out = { event: ev[0], action: ev[1].action || null };
    if (j.deliver !== false && hook) out.delivery = await deliver(ev[0], ev[1]);
    return send(res, 200, out);
  }
  if (path === '/_fake/deliver' && req.method === 'POST') {
    const r = await deliver(j.event, j.payload, { secret: j.secret, signature: j.signature, delivery: j.delivery, url: j.url });
    return send(res, 200, r);
  }
  if (path === '/_fake/org_hook' && req.method === 'POST') {
    if (!j.org || !j.id) return send(res, 400, { message: 'org and id are required' });
    orgHooks.set(`${String(j.org).toLowerCase()}/${j.id}`, { org: j.org, id: j.id, url: j.url || '', secret: j.secret || '', content_type: 'json', patches: 0 });
    return send(res, 200, { ok: true });
  }
  if (path === '/_fake/org_hooks' && req.method === 'GET') {
    return send(res, 200, [...orgHooks.values()]);
  }
  if (path === '/_fake/org_hook/deliver' && req.method === 'POST') {
    const h = orgHooks.get(`${String(j.org || '').toLowerCase()}/${j.id}`);
    if (!h) return send(res, 404, { message: 'no such hook' });
    const payload = j.payload || { zen: 'Keep it logically awesome.', hook_id: Number(h.id), organization: { login: h.org } };
    const r = await deliver(j.event || 'ping', payload, { url: h.url, secret: h.secret });
    return send(res, 200, r);
  }
  if (path === '/_fake/fail' && req.method === 'POST') {
    failNext.method = String(j.method || '').toUpperCase();
    failNext.status = j.status || 500;
    failNext.count = j.count !== undefined ? j.count : 1;
    return send(res, 200, { ...failNext });
  }
  if (path === '/_fake/stats' && req.method === 'GET') {
    const out = {};
    for (const org of orgs.values()) {
      let pagesAll = 0, pagesAllBaseRead = 0, accessRows = 0;
      if (url.searchParams.get('naive')) {
        for (const r of org.repos.values()) {
          const n = effective(org, r).size;
          accessRows += n;
          pagesAll += Math.max(1, Math.ceil(n / 100));
          const withBase = new Set([...effective(org, r).keys(), ...org.members]).size;
          pagesAllBaseRead += Math.max(1, Math.ceil(withBase / 100));
        }
      }
      out[org.login] = { members: org.members.size, teams: org.teams.size, repos: org.repos.size, base: org.base, naive_pages_affiliation_all: pagesAll, naive_pages_if_base_read: pagesAllBaseRead, effective_pairs: accessRows };
    }
    return send(res, 200, out);
  }
  return send(res, 404, { message: 'unknown control path' });
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, `http://${req.headers.host || `127.0.0.1:${port}`}`);
  if (url.pathname.startsWith('/_fake/')) return control(req, res, url);
  const body = await readBody(req);
  const t = Date.now();
  const rec = { t, method: req.method, path: url.pathname + url.search, inm: !!req.headers['if-none-match'], status: 0, auth: '' };
  counters.total++;
  const who = authenticate(req);
  rec.auth = who.kind || 'none';
  let status;
  if (who.error) {
    status = send(res, 401, { message: who.error, documentation_url: 'https://docs.github.com/rest' });
  } else if (failNext.count > 0 && (!failNext.method || failNext.method === req.method)) {
    failNext.count--;
    status = send(res, failNext.status, { message: 'Server Error (injected by the fake)' });
  } else {
    rateRoll();
    rl.n++;
    const sec = rl.secondary;
    if (sec && sec.every && rl.n % sec.every === 0) {
      status = send(res, sec.status || 403, { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.' },
        { ...rateHeaders(), 'retry-after': String(sec.retry_after !== undefined ? sec.retry_after : 1) });
    } else if (rl.remaining <= 0) {
      status = send(res, 403, { message: 'API rate limit exceeded for installation.', documentation_url: 'https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting' }, rateHeaders());
    } else {
      status = api(req, res, url, who, body);
    }
  }
  rec.status = status;
  if (status === 304) counters.not_modified++;
  else if (status === 403 || status === 429) counters.limited++;
  else if (status >= 200 && status < 300) counters.ok++;
  if (calls.length < MAX_LOGGED) calls.push(rec);
});
server.keepAliveTimeout = 30000;
server.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
