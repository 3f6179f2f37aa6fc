// Revocation propagation across two replicas: N times, mint a token on A,
// use it once on B (so B caches it), revoke it through A's admin API, then
// poll B until it answers 401. Prints median, p99 and max in milliseconds.
// Usage: node propagation.mjs URL_A URL_B SESSION ADMIN_TOKEN N
import http from 'node:http';

const [A, B, session, admin, nArg] = process.argv.slice(2);
const N = Number(nArg || 1000);
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function req(base, method, path, token, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(path, base);
    const r = http.request(u, { method, agent, headers: { authorization: `Bearer ${token}`,
      'content-type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: data }));
    });
    r.on('error', reject);
    if (body) r.write(JSON.stringify(body));
    r.end();
  });
}

const times = [];
for (let i = 0; i < N; i++) {
  const m = await req(A, 'POST', '/auth/v1/token', session, { repo: 'acme/api' });
  const { token, id } = JSON.parse(m.body);
  const first = await req(B, 'GET', '/admin/v1/whoami', token);
  if (first.status !== 200) throw new Error(`B refused a fresh token: ${first.status}`);
  const t0 = process.hrtime.bigint();
  const rv = await req(A, 'POST', `/admin/v1/tokens/${id}/revoke`, admin);
  if (rv.status !== 200) throw new Error(`revoke failed: ${rv.status} ${rv.body}`);
  for (;;) {
    const r = await req(B, 'GET', '/admin/v1/whoami', token);
    if (r.status === 401) break;
    if (Number(process.hrtime.bigint() - t0) > 5e9) throw new Error('not revoked on B after 5 s');
  }
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
times.sort((a, b) => a - b);
const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
console.log(`revocations: ${N}  (time from the revoke request on A to the first 401 on B)`);
console.log(`median: ${q(0.5).toFixed(2)} ms  p99: ${q(0.99).toFixed(2)} ms  max: ${times[times.length - 1].toFixed(2)} ms`);
agent.destroy();
