// The baseline bench/github-sync/run compares against: list every
// repository of the org, then list each repository's collaborators with
// affiliation=all (GitHub's own "everyone with access" answer), following
// Link rel="next", one request at a time over a keep-alive connection —
// the straightforward one-call-per-repo way to learn who can reach what.
//
//   node naive.mjs API_URL TOKEN ORG
// prints {"calls":N,"pages_beyond_first":N,"ms":N,"pairs":N}
import http from 'node:http';

const [api, token, org] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let calls = 0;

function get(url) {
  return new Promise((resolve, reject) => {
    calls++;
    const req = http.get(url, { agent, headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.github+json' } }, (res) => {
      let d = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { d += c; });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`${res.statusCode} ${url}`));
        const m = /<([^>]+)>;\s*rel="next"/.exec(res.headers.link || '');
        resolve({ body: JSON.parse(d), next: m ? m[1] : null });
      });
    });
    req.on('error', reject);
  });
}

async function all(url) {
  const out = [];
  let pages = 0;
  for (let u = url; u; pages++) {
    const r = await get(u);
    out.push(...r.body);
    u = r.next;
  }
  return { items: out, pages };
}

const t0 = Date.now();
const repos = await all(`${api}/orgs/${org}/repos?type=all&per_page=100`);
let pairs = 0, extra = 0;
for (const r of repos.items) {
  const c = await all(`${api}/repos/${org}/${r.name}/collaborators?affiliation=all&per_page=100`);
  pairs += c.items.length;
  extra += c.pages - 1;
}
console.log(JSON.stringify({ calls, pages_beyond_first: extra, ms: Date.now() - t0, pairs, repos: repos.items.length }));
agent.destroy();
