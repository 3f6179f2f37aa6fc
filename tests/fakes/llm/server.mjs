// A fake LLM provider speaking the OpenAI and Anthropic HTTP APIs, in the
// shapes the official SDKs parse (JSON and SSE streams), for tessera's tests.
//
// Usage: node server.mjs PORT KEYS [SLOW_MS] [--admin-key K --project P]
//   KEYS     comma-separated provider keys it accepts (OpenAI: Authorization:
//            Bearer K or Azure's api-key: K; Anthropic: x-api-key: K). Any
//            other key gets the provider's own 401.
//   SLOW_MS  how long models whose name contains "slow" wait before answering
//            (default 1500), for tests that need requests in flight.
// A model containing "drip" streams 40 chunks 100 ms apart (client-disconnect
// tests). Each request is recorded (method, path, headers, body as text, and
// "aborted": true when the caller closed the connection before the answer ended).
// Under the path prefix /onprem/ requests without any credential are accepted
// (a local inference server without authentication).
// With --admin-key K (or env TESSERA_FAKE_ADMIN_KEY) and --project P
// (TESSERA_FAKE_PROJECT) it
// also plays the OpenAI organisation Admin API for project P (admin key as
// Authorization: Bearer K), under any prefix (e.g. /v1):
//   POST   .../organization/projects/P/service_accounts {"name": N}
//          -> a service account whose api_key.value is a new key the LLM
//             routes accept from then on
//   DELETE .../organization/projects/P/service_accounts/ID
//          -> its key stops being accepted (401); 404 for an unknown ID
// Admin calls are not recorded in /__received.
// Control endpoints (no key needed):
//   GET  /__received   the recorded requests, as JSON
//   GET  /__count      {"count": N}
//   POST /__reset      forget them
//   GET  /__keys       {"accepted": [keys], "live": [service accounts: id, name, key,
//                       "deleted": false], "deleted": [the same with "deleted": true],
//                       "creates": N, "deletes": N, "admin_calls": [{method, path, status}]}
//   POST /__admin_fail {"count": N, "status": S}  the next N admin calls answer S
// Routes: POST /v1/chat/completions, /v1/responses, /v1/embeddings,
//         /v1/messages, /v1/messages/count_tokens (also under any prefix, for
//         Azure's /openai/deployments/NAME/...), GET /v1/models.
import http from 'node:http';

const positional = [];
let adminKey = process.env.TESSERA_FAKE_ADMIN_KEY || process.env.FAKE_ADMIN_KEY || '';
let project = process.env.TESSERA_FAKE_PROJECT || process.env.FAKE_PROJECT || '';
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--admin-key') adminKey = process.argv[++i] || '';
  else if (a === '--project') project = process.argv[++i] || '';
  else positional.push(a);
}
const port = Number(positional[0]);
const keys = new Set((positional[1] || '').split(',').filter(Boolean));
const slowMs = Number(positional[2] || 1500);
let received = [];
// the Admin API's state
const accounts = new Map(); // id -> {id, name, key, created_at}
const deleted = [];
const adminCalls = [];
let creates = 0, deletes = 0, failNext = 0, failStatus = 500, seq = 0;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const json = (res, status, obj) => {
  const s = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
};

function keyOf(req, anthropic) {
  if (anthropic) return req.headers['x-api-key'] || '';
  if (req.headers['api-key']) return req.headers['api-key'];
  return (req.headers.authorization || '').replace(/^Bearer /, '');
}

function tokensOf(body) {
  return Math.max(1, Math.ceil(JSON.stringify(body.messages || body.input || body.prompt || '').length / 4));
}

async function sse(res, events, interval) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const e of events) {
    if (res.destroyed) return;
    res.write(e);
    if (interval) await sleep(interval);
  }
  res.end();
}

async function openaiChat(req, res, body) {
  const id = 'chatcmpl-fake' + received.length;
  const text = ['Hello', ' from', ' the', ' fake', ' upstream.'];
  const pt = tokensOf(body), ct = text.length;
  if (!body.stream) {
    return json(res, 200, {
      id, object: 'chat.completion', created: 1700000000, model: body.model,
      choices: [{ index: 0, message: { role: 'assistant', content: text.join('') }, finish_reason: 'stop', logprobs: null }],
      usage: { prompt_tokens: pt, completion_tokens: ct, total_tokens: pt + ct },
    });
  }
  const drip = /drip/.test(body.model);
  const parts = drip ? Array.from({ length: 40 }, (_, i) => ` w${i}`) : text;
  const chunk = (delta, finish) => 'data: ' + JSON.stringify({
    id, object: 'chat.completion.chunk', created: 1700000000, model: body.model,
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
  }) + '\n\n';
  const events = [chunk({ role: 'assistant', content: '' }, null)];
  for (const p of parts) events.push(chunk({ content: p }, null));
  events.push(chunk({}, 'stop'));
  if (body.stream_options && body.stream_options.include_usage) {
    events.push('data: ' + JSON.stringify({ id, object: 'chat.completion.chunk', created: 1700000000, model: body.model,
      choices: [], usage: { prompt_tokens: pt, completion_tokens: parts.length, total_tokens: pt + parts.length } }) + '\n\n');
  }
  events.push('data: [DONE]\n\n');
  return sse(res, events, drip ? 100 : 0);
}

async function openaiResponses(req, res, body) {
  const id = 'resp_fake' + received.length;
  const text = 'Hello from the fake upstream.';
  const resp = (status) => ({
    id, object: 'response', created_at: 1700000000, status, model: body.model,
    output: status === 'completed' ? [{ type: 'message', id: 'msg_1', status: 'completed', role: 'assistant',
      content: [{ type: 'output_text', text, annotations: [] }] }] : [],
    usage: status === 'completed' ? { input_tokens: tokensOf(body), output_tokens: 6, total_tokens: tokensOf(body) + 6 } : null,
  });
  if (!body.stream) return json(res, 200, resp('completed'));
  const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  return sse(res, [
    ev('response.created', { response: resp('in_progress'), sequence_number: 0 }),
    ev('response.output_text.delta', { item_id: 'msg_1', output_index: 0, content_index: 0, delta: text, sequence_number: 1 }),
    ev('response.completed', { response: resp('completed'), sequence_number: 2 }),
  ], 0);
}

function openaiEmbeddings(req, res, body) {
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  return json(res, 200, {
    object: 'list', model: body.model,
    data: inputs.map((_, i) => ({ object: 'embedding', index: i, embedding: [0.1, 0.2, 0.3, 0.4] })),
    usage: { prompt_tokens: tokensOf(body), total_tokens: tokensOf(body) },
  });
}

async function anthropicMessages(req, res, body) {
  const id = 'msg_fake' + received.length;
  const text = ['Hello', ' from', ' the', ' fake', ' upstream.'];
  const it = tokensOf(body);
  if (!body.stream) {
    return json(res, 200, {
      id, type: 'message', role: 'assistant', model: body.model,
      content: [{ type: 'text', text: text.join('') }], stop_reason: 'end_turn', stop_sequence: null,
      usage: { input_tokens: it, output_tokens: text.length },
    });
  }
  const drip = /drip/.test(body.model);
  const parts = drip ? Array.from({ length: 40 }, (_, i) => ` w${i}`) : text;
  const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const events = [
    ev('message_start', { message: { id, type: 'message', role: 'assistant', model: body.model, content: [],
      stop_reason: null, stop_sequence: null, usage: { input_tokens: it, output_tokens: 1 } } }),
    ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    ev('ping', {}),
  ];
  for (const p of parts) events.push(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: p } }));
  events.push(ev('content_block_stop', { index: 0 }));
  events.push(ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: parts.length } }));
  events.push(ev('message_stop', {}));
  return sse(res, events, drip ? 100 : 0);
}

function randomHex(n) {
  let s = '';
  while (s.length < n) s += Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return s.slice(0, n);
}

// OpenAI organisation Admin API: project service accounts and their keys.
function adminApi(req, res, path, text) {
  const m = path.match(/\/organization\/projects\/([^/]+)\/service_accounts(?:\/([^/]+))?$/);
  const call = { method: req.method, path };
  adminCalls.push(call);
  const answer = (status, obj) => { call.status = status; return json(res, status, obj); };
  const auth = (req.headers.authorization || '').replace(/^Bearer /, '');
  if (auth !== adminKey) {
    return answer(401, { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
  }
  if (failNext > 0) {
    failNext--;
    return answer(failStatus, { error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } });
  }
  if (decodeURIComponent(m[1]) !== project) {
    return answer(404, { error: { message: `No such project: ${m[1]}`, type: 'invalid_request_error', param: null, code: null } });
  }
  const now = Math.floor(Date.now() / 1000);
  if (req.method === 'POST' && !m[2]) {
    let body;
    try { body = JSON.parse(text || '{}'); } catch { body = null; }
    if (!body || typeof body.name !== 'string' || !body.name) {
      return answer(400, { error: { message: 'name is required', type: 'invalid_request_error', param: 'name', code: null } });
    }
    const id = 'svc_acct_' + randomHex(24);
    const key = 'sk-svcacct-' + randomHex(40) + (++seq);
    accounts.set(id, { id, name: body.name, key, created_at: now, deleted: false });
    keys.add(key);
    creates++;
    return answer(200, {
      object: 'organization.project.service_account', id, name: body.name, role: 'member', created_at: now,
      api_key: { object: 'organization.project.service_account.api_key', value: key, name: 'Secret Key', created_at: now, id: 'key_' + randomHex(16) },
    });
  }
  if (req.method === 'DELETE' && m[2]) {
    const id = decodeURIComponent(m[2]);
    const a = accounts.get(id);
    if (!a) return answer(404, { error: { message: `No such service account: ${id}`, type: 'invalid_request_error', param: null, code: null } });
    accounts.delete(id);
    keys.delete(a.key);
    deleted.push({ ...a, deleted: true, deleted_at: now });
    deletes++;
    return answer(200, { object: 'organization.project.service_account.deleted', id, deleted: true });
  }
  return answer(405, { error: { message: 'method not allowed', type: 'invalid_request_error', param: null, code: null } });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const text = Buffer.concat(chunks).toString('utf8');
    const path = req.url.split('?')[0];
    if (path === '/__received') return json(res, 200, received);
    if (path === '/__count') return json(res, 200, { count: received.length });
    if (path === '/__reset') { received = []; return json(res, 200, { ok: true }); }
    if (path === '/__keys') {
      return json(res, 200, { accepted: [...keys], live: [...accounts.values()], deleted, creates, deletes, admin_calls: adminCalls });
    }
    if (path === '/__admin_fail') {
      let b = {};
      try { b = JSON.parse(text || '{}'); } catch { /* defaults */ }
      failNext = Number(b.count || 1);
      failStatus = Number(b.status || 500);
      return json(res, 200, { ok: true, count: failNext, status: failStatus });
    }
    if (adminKey && /\/organization\/projects\/[^/]+\/service_accounts(\/[^/]+)?$/.test(path)) {
      return adminApi(req, res, path, text);
    }
    const entry = { method: req.method, path: req.url, headers: req.headers, body: text };
    received.push(entry);
    res.on('close', () => { if (!res.writableFinished) entry.aborted = true; });
    const anthropic = path.endsWith('/messages') || path.endsWith('/messages/count_tokens');
    // under /onprem/ it plays a local vLLM server that needs no key (and must get none)
    const keyless = path.startsWith('/onprem/') && !req.headers.authorization && !req.headers['x-api-key'];
    if (!keyless && !keys.has(keyOf(req, anthropic))) {
      if (anthropic) return json(res, 401, { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } });
      return json(res, 401, { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    }
    if (req.method === 'GET' && path.endsWith('/models')) {
      return json(res, 200, { object: 'list', data: [{ id: 'fake-model', object: 'model', created: 0, owned_by: 'fake' }] });
    }
    let body;
    try { body = JSON.parse(text || '{}'); } catch {
      return json(res, 400, { error: { message: 'bad json', type: 'invalid_request_error', param: null, code: null } });
    }
    if (/slow/.test(body.model || '')) await sleep(slowMs);
    if (path.endsWith('/chat/completions')) return openaiChat(req, res, body);
    if (path.endsWith('/responses')) return openaiResponses(req, res, body);
    if (path.endsWith('/embeddings')) return openaiEmbeddings(req, res, body);
    if (path.endsWith('/messages/count_tokens')) return json(res, 200, { input_tokens: tokensOf(body) });
    if (path.endsWith('/messages')) return anthropicMessages(req, res, body);
    return json(res, 404, { error: { message: `no route ${path}`, type: 'invalid_request_error', param: null, code: null } });
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
