// End-to-end: the official `openai` and `@anthropic-ai/sdk` clients pointed at
// tesserad's gateway, in front of the fake provider (tests/fakes/llm). The
// environment (PostgreSQL, fake upstream, tesserad, users, tokens) comes from
// gateway_env.sh. Proves: chat completion, streaming chat completion,
// Anthropic message, streaming message, embeddings; a revoked token raises
// the SDK's authentication error; a blocked secret raises its bad-request
// error naming the rule; the upstream saw the organisation's key and never
// a tsr_ token or a blocked secret.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const src = process.env.TESSERA_SRCDIR || path.resolve(import.meta.dirname, '../..');
let env, child;
const SECRET = 'AKIAIOSFODNN7EXAMPLE';

before(async () => {
  child = spawn('bash', [path.join(src, 'tests/e2e/gateway_env.sh')], {
    env: { ...process.env, TESSERA_SRCDIR: src },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const rl = createInterface({ input: child.stdout });
  env = await new Promise((resolve, reject) => {
    rl.once('line', (line) => resolve(JSON.parse(line)));
    child.once('exit', (code) => reject(new Error(`gateway_env.sh exited ${code} before it was ready`)));
  });
}, { timeout: 120000 });

after(async () => {
  if (!child) return;
  const done = new Promise((r) => child.once('exit', r));
  child.stdin.end();
  await done;
});

const openai = (key) => new OpenAI({ apiKey: key ?? env.token, baseURL: `${env.url}/openai/v1`, maxRetries: 0 });
const anthropic = (key) => new Anthropic({ apiKey: key ?? env.token, baseURL: `${env.url}/anthropic`, maxRetries: 0 });
const hello = 'Hello from the fake upstream.';

test('openai_chat_completion_through_the_gateway', async () => {
  const r = await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Say hi' }] });
  assert.equal(r.choices[0].message.content, hello);
  assert.equal(r.usage.completion_tokens, 5);
});

test('openai_streaming_chat_completion_arrives_chunk_by_chunk', async () => {
  const stream = await openai().chat.completions.create({
    model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'Say hi' }],
  });
  let text = '', chunks = 0;
  for await (const c of stream) {
    chunks++;
    text += c.choices[0]?.delta?.content ?? '';
  }
  assert.equal(text, hello);
  assert.ok(chunks >= 6, `expected one chunk per token, got ${chunks}`);
});

test('anthropic_message_through_the_gateway', async () => {
  const m = await anthropic().messages.create({
    model: 'claude-test', max_tokens: 64, messages: [{ role: 'user', content: 'Say hi' }],
  });
  assert.equal(m.content[0].text, hello);
  assert.equal(m.usage.output_tokens, 5);
});

test('anthropic_streaming_message_through_the_gateway', async () => {
  const stream = anthropic().messages.stream({
    model: 'claude-test', max_tokens: 64, messages: [{ role: 'user', content: 'Say hi' }],
  });
  let deltas = 0;
  stream.on('text', () => deltas++);
  const m = await stream.finalMessage();
  assert.equal(m.content[0].text, hello);
  assert.equal(deltas, 5);
  assert.equal(m.stop_reason, 'end_turn');
});

test('openai_embeddings_through_the_gateway', async () => {
  const r = await openai().embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'two'] });
  assert.equal(r.data.length, 2);
  assert.equal(r.data[1].index, 1);
});

test('anthropic_sdk_with_the_token_in_x_api_key_and_openai_count_tokens', async () => {
  const c = await anthropic().messages.countTokens({
    model: 'claude-test', messages: [{ role: 'user', content: 'Say hi' }],
  });
  assert.ok(c.input_tokens > 0);
});

test('revoked_token_raises_the_sdk_authentication_error', async () => {
  const mint = await fetch(`${env.url}/auth/v1/token`, {
    method: 'POST', headers: { authorization: `Bearer ${env.session}` }, body: JSON.stringify({ repo: 'acme/api' }),
  }).then((r) => r.json());
  assert.match(mint.token, /^tsr_/);
  const ok = await openai(mint.token).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] });
  assert.equal(ok.choices[0].message.content, hello);
  const rev = await fetch(`${env.url}/admin/v1/tokens/${mint.id}/revoke`, {
    method: 'POST', headers: { authorization: `Bearer ${env.boot}` },
  });
  assert.equal(rev.status, 200);
  // DESIGN.md: a revocation takes effect on every replica within 1 s at the latest (NOTIFY)
  const t0 = Date.now();
  let err;
  while (!err && Date.now() - t0 < 1000) {
    try {
      await openai(mint.token).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] });
      await new Promise((r) => setTimeout(r, 20));
    } catch (e) {
      err = e;
    }
  }
  assert.ok(err instanceof OpenAI.AuthenticationError, `openai SDK raised ${err?.constructor?.name}`);
  assert.match(err.message, /revoked/);
  await assert.rejects(
    anthropic(mint.token).messages.create({ model: 'claude-test', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof Anthropic.AuthenticationError && /revoked/.test(e.message),
  );
});

test('blocked_secret_raises_the_sdk_bad_request_error_naming_the_rule', async () => {
  await assert.rejects(
    openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `deploy with ${SECRET} please` }] }),
    (e) => e instanceof OpenAI.BadRequestError && /aws_access_key/.test(e.message) && !e.message.includes(SECRET),
  );
  await assert.rejects(
    anthropic().messages.create({
      model: 'claude-test', max_tokens: 8, messages: [{ role: 'user', content: `my token is ${env.token}` }],
    }),
    (e) => e instanceof Anthropic.BadRequestError && /tsr_token/.test(e.message),
  );
});

test('phi_repository_token_cannot_reach_a_non_baa_upstream', async () => {
  await assert.rejects(
    openai(env.tokenPhi).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.PermissionDeniedError && /classified_upstreams/.test(e.message) && /phi/.test(e.message),
  );
  const m = await anthropic(env.tokenPhi).messages.create({
    model: 'claude-test', max_tokens: 8, messages: [{ role: 'user', content: 'x' }],
  });
  assert.equal(m.content[0].text, hello, 'the BAA upstream serves the phi repository');
});

test('upstream_saw_the_org_key_and_never_a_tsr_token_or_a_blocked_secret', async () => {
  const seen = await fetch(`${env.fake}/__received`).then((r) => r.json());
  assert.ok(seen.length >= 8, `upstream saw ${seen.length} requests`);
  for (const r of seen) {
    const auth = r.headers['x-api-key'] ?? (r.headers.authorization || '').replace(/^Bearer /, '');
    assert.ok(auth === env.orgOpenai || auth === env.orgAnthropic, `request ${r.path} carried the org key`);
    const all = JSON.stringify(r);
    assert.ok(!all.includes('tsr_'), `no tsr_ token reached the upstream (${r.path})`);
    assert.ok(!all.includes(SECRET), `no blocked secret reached the upstream (${r.path})`);
  }
  assert.ok(seen.some((r) => r.headers.authorization === `Bearer ${env.orgOpenai}`));
  assert.ok(seen.some((r) => r.headers['x-api-key'] === env.orgAnthropic));
});
