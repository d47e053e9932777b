'use strict';
// The real entry point (bin/gateway.js) as a separate process, with the Redis-driven fake
// WhatsApp: what the cross-language end-to-end test and the operators run, including SIGTERM.
const { test, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const http = require('http');
const { spawn } = require('child_process');
const { World, waitFor, REDIS_URL, CONTRACTS_DIR } = require('./helpers');

let world;
let child;
beforeEach(async () => { world = await new World().open(); });
afterEach(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await world.close();
});

function startProcess(extraEnv = {}) {
  const proc = spawn(process.execPath, [path.join(__dirname, '..', 'bin', 'gateway.js')], {
    env: {
      PATH: process.env.PATH,
      REDIS_URL, REDIS_KEY_PREFIX: world.prefix, GATEWAY_ID: 'gw-proc', GATEWAY_HEALTH_HOST: '127.0.0.1', GATEWAY_HEALTH_PORT: '0',
      MEDIA_ROOT: world.mediaRoot, WA_SESSION_DIR: world.sessionDir, CONTRACTS_DIR, LOG_LEVEL: 'info',
      GATEWAY_FAKE_WHATSAPP: '1', SESSIONS: 'sess1:acme', OUTBOUND_BLOCK_MS: '100',
      SEND_MIN_INTERVAL_MS: '0', SEND_JITTER_MS: '0', SEND_PER_CHAT_INTERVAL_MS: '0', TYPING_BEFORE_SEND: 'false',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.logs = [];
  let buf = '';
  proc.stdout.on('data', (chunk) => {
    buf += chunk;
    const lines = buf.split('\n');
    buf = lines.pop();
    for (const line of lines) { try { proc.logs.push(JSON.parse(line)); } catch { proc.logs.push({ raw: line }); } }
  });
  proc.stderr.on('data', (chunk) => proc.logs.push({ stderr: String(chunk) }));
  proc.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return proc;
}

const driver = (cmd) => world.redis.xadd(`${world.prefix}:fakewa:in`, '*', 'event', JSON.stringify(cmd));

test('bin/gateway.js: customer text in, reply out with a delivered ack, JSON logs, /healthz, clean exit on SIGTERM', async () => {
  child = startProcess();
  const started = await waitFor(() => child.logs.find((l) => l.msg === 'gateway started'), { what: 'gateway started log', timeout: 10000 });
  await waitFor(async () => (await world.statuses('sess1')).includes('ready'), { what: 'session ready', timeout: 10000 });

  await driver({ session_id: 'sess1', action: 'receive', from: '15551234567@c.us', body: 'hola, precio?' });
  const [inbound] = await waitFor(async () => { const m = await world.inbound('message'); return m.length ? m : null; }, { what: 'inbound message' });
  assert.equal(inbound.body, 'hola, precio?');

  const { doc } = await world.command('sess1', 'send_text', { chat_id: '15551234567@c.us', text: '20 USD al mes' });
  const sent = await waitFor(async () => { const s = await world.redis.xrange(`${world.prefix}:fakewa:sent`, '-', '+'); return s.length ? s : null; }, { what: 'fake send' });
  const record = JSON.parse(sent[0][1][1]);
  assert.deepEqual([record.session_id, record.chat_id, record.text], ['sess1', '15551234567@c.us', '20 USD al mes']);
  await waitFor(async () => (await world.inbound('message_ack')).some((a) => a.wa_id === record.wa_id && a.status === 'delivered'), { what: 'delivered ack' });
  const first = (await world.inbound('message_ack')).find((a) => a.command_event_id === doc.event_id);
  assert.equal(first.wa_id, record.wa_id);

  const health = await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: started.health_port, path: '/healthz' }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
    }).on('error', reject);
  });
  assert.equal(health.status, 200);
  assert.equal(health.body.sessions[0].state, 'ready');
  assert.ok(child.logs.every((l) => !l.raw), 'every stdout line is JSON');

  child.kill('SIGTERM');
  const { code } = await child.exited;
  assert.equal(code, 0);
  const last = (await world.inbound('session_status')).pop();
  assert.deepEqual([last.status, last.reason], ['stopped', 'gateway shutdown']);
  assert.equal(await world.redis.get(world.keys.lock('sess1')), null);
});

test('bin/gateway.js refuses to start without REDIS_URL', async () => {
  child = startProcess({ REDIS_URL: '' });
  const { code } = await child.exited;
  assert.equal(code, 2);
  assert.ok(child.logs.some((l) => l.stderr && /REDIS_URL must be set/.test(l.stderr)));
});

test('bin/gateway.js refuses to start with MEDIA_STORAGE=s3 and no bucket', async () => {
  child = startProcess({ MEDIA_STORAGE: 's3' });
  const { code } = await child.exited;
  assert.equal(code, 2);
  assert.ok(child.logs.some((l) => l.stderr && /configuration error: S3_BUCKET must be set/.test(l.stderr)));
});
