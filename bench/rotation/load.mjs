// bench/rotation/load.mjs — open-loop gateway load at a fixed rate (Node.js built-ins only).
//
//   node load.mjs URL TOKEN RATE SECONDS [MAX_IN_FLIGHT]
//
// Starts RATE requests per second for SECONDS seconds (a tick every 10 ms
// starts the requests due by then, whether or not earlier ones have
// answered: open loop, so a stall shows as latency and in-flight growth, not
// as a lower rate). Each request is a small chat completion through
// tesserad's OpenAI route. A request that cannot start because MAX_IN_FLIGHT
// (default 512) are already outstanding counts as "shed" (a failure).
// Prints one line per second ("t=12s sent=1000 2xx=1000 other=0 inflight=3
// p99_ms=4.1") on stderr and one JSON summary line on stdout:
// {"rate","seconds","sent","ok","non2xx","errors","shed","statuses":{...},
//  "p50_ms","p99_ms","max_ms","achieved_per_sec"}.
import http from 'node:http';

const [urlStr, token, rateStr, secsStr, maxStr] = process.argv.slice(2);
const rate = Number(rateStr), secs = Number(secsStr), maxInFlight = Number(maxStr || 512);
if (!urlStr || !token || !(rate > 0) || !(secs > 0)) {
  console.error('usage: node load.mjs URL TOKEN RATE SECONDS [MAX_IN_FLIGHT]');
  process.exit(2);
}
const url = new URL(urlStr);
const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight });
const body = Buffer.from(JSON.stringify({
  model: 'gpt-4o',
  messages: [{ role: 'user', content: 'Rename the variable tmp to retries in this loop.' }],
}));

const statuses = {};
const lat = [];
let sent = 0, ok = 0, non2xx = 0, errors = 0, shed = 0, inflight = 0;
let secOk = 0, secOther = 0, secLat = [];
const firstError = {};

function one() {
  if (inflight >= maxInFlight) {
    shed++;
    secOther++;
    return;
  }
  inflight++;
  sent++;
  const t0 = process.hrtime.bigint();
  const req = http.request({
    host: url.hostname, port: url.port, method: 'POST', path: url.pathname, agent,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': body.length },
  }, (res) => {
    res.resume();
    res.on('end', () => {
      inflight--;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      lat.push(ms);
      secLat.push(ms);
      statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
      if (res.statusCode >= 200 && res.statusCode < 300) {
        ok++;
        secOk++;
      } else {
        non2xx++;
        secOther++;
      }
    });
  });
  req.on('error', (e) => {
    inflight--;
    errors++;
    secOther++;
    firstError[e.code || e.message] = (firstError[e.code || e.message] || 0) + 1;
  });
  req.end(body);
}

const pct = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.floor(a.length * p))] : 0);
const start = process.hrtime.bigint();
let started = 0, lastSec = 0;
const total = Math.round(rate * secs);
const timer = setInterval(() => {
  const el = Number(process.hrtime.bigint() - start) / 1e9;
  const due = Math.min(total, Math.floor(el * rate));
  while (started < due) {
    started++;
    one();
  }
  const sec = Math.floor(el);
  if (sec > lastSec) {
    secLat.sort((a, b) => a - b);
    console.error(`t=${sec}s 2xx=${secOk} other=${secOther} inflight=${inflight} p99_ms=${pct(secLat, 0.99).toFixed(1)}`);
    secOk = secOther = 0;
    secLat = [];
    lastSec = sec;
  }
  if (started >= total) {
    clearInterval(timer);
    const done = () => {
      if (inflight > 0) return setTimeout(done, 20);
      const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
      lat.sort((a, b) => a - b);
      console.log(JSON.stringify({
        rate, seconds: secs, sent, ok, non2xx, errors, shed, statuses, network_errors: firstError,
        p50_ms: +pct(lat, 0.5).toFixed(2), p99_ms: +pct(lat, 0.99).toFixed(2), max_ms: +(lat.at(-1) || 0).toFixed(2),
        achieved_per_sec: +(sent / elapsed).toFixed(1),
      }));
      agent.destroy();
    };
    done();
  }
}, 10);
