// bench/scim/load.mjs — HTTP load for bench/scim/run (Node.js built-ins only).
//
//   node load.mjs create BASE TOKEN N CONCURRENCY
//       POST N users (bench.user<i>@example.com, externalId bench-ext-<i>)
//   node load.mjs filter BASE TOKEN N CONCURRENCY ATTR TOTAL_USERS
//       N filtered GETs, ATTR = userName | externalId, each naming a random
//       existing user among the TOTAL_USERS the run created (half from the
//       SCIM creates, half from the SQL bulk load); every reply must hold
//       exactly that user.
// Prints one JSON line: {"phase","n","errors","seconds","per_sec","p50_ms","p90_ms","p99_ms","max_ms"}.
import http from 'node:http';

const [phase, base, token, nStr, cStr, attr, totalStr] = process.argv.slice(2);
const n = Number(nStr), conc = Number(cStr), total = Number(totalStr || 0);
const url = new URL(base);
const agent = new http.Agent({ keepAlive: true, maxSockets: conc });

function request(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body ? Buffer.from(JSON.stringify(body)) : null;
    const req = http.request({
      host: url.hostname, port: url.port, method, path: url.pathname + path, agent,
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/scim+json',
        ...(data ? { 'content-type': 'application/scim+json', 'content-length': data.length } : {}),
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

// user i of the run: 0..9999 came through SCIM, the rest from the SQL bulk load
function who(i) {
  return i < 10000
    ? { userName: `bench.user${i}@example.com`, externalId: `bench-ext-${i}` }
    : { userName: `bulk.user${i}@example.com`, externalId: `bulk-ext-${i}` };
}

const lat = [];
let errors = 0, next = 0;
async function worker() {
  for (;;) {
    const i = next++;
    if (i >= n) return;
    const t0 = process.hrtime.bigint();
    let ok = false;
    try {
      if (phase === 'create') {
        const u = who(i);
        const r = await request('POST', '/Users', {
          schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: u.userName, externalId: u.externalId,
          name: { givenName: 'Bench', familyName: `User${i}` }, displayName: `Bench User ${i}`, active: true,
          emails: [{ value: u.userName, type: 'work', primary: true }],
        });
        ok = r.status === 201;
      } else {
        const k = Math.floor(Math.random() * total);
        const u = who(k);
        const f = `${attr} eq "${u[attr]}"`;
        const r = await request('GET', `/Users?filter=${encodeURIComponent(f)}`);
        ok = r.status === 200 && JSON.parse(r.body).totalResults === 1;
      }
    } catch (e) { ok = false; }
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (!ok) errors++;
  }
}

const start = process.hrtime.bigint();
await Promise.all(Array.from({ length: conc }, worker));
const secs = Number(process.hrtime.bigint() - start) / 1e9;
lat.sort((a, b) => a - b);
const pct = (p) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))];
console.log(JSON.stringify({
  phase: phase === 'create' ? 'create' : `filter ${attr}`, concurrency: conc, n, errors,
  seconds: +secs.toFixed(2), per_sec: +(n / secs).toFixed(0),
  p50_ms: +pct(50).toFixed(2), p90_ms: +pct(90).toFixed(2), p99_ms: +pct(99).toFixed(2), max_ms: +lat[lat.length - 1].toFixed(2),
}));
agent.destroy();
