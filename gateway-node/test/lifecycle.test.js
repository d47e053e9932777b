'use strict';
const { test, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const http = require('http');
const { World, waitFor, readySession } = require('./helpers');

let world;
beforeEach(async () => { world = await new World().open(); });
afterEach(async () => { await world.close(); });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function getJson(port, urlPath) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: urlPath }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
    }).on('error', reject);
  });
}

test('QR codes are published (and refreshed) until the phone pairs, then the session is ready', async () => {
  const gw = await world.gateway({}, { behaviour: { autoReady: false, phone: '5215512345678' } });
  await gw.startSession('sess1', 'acme');
  const client = gw.fake.latest('sess1');
  await waitFor(() => client.calls.initialize === 1, { what: 'initialize' });
  client.emit('qr', '2@first-qr-payload');
  client.emit('qr', '2@second-qr-payload');
  await waitFor(async () => (await world.inbound('qr')).length === 2, { what: 'two qr events' });
  client.pair();
  await waitFor(async () => (await world.statuses()).includes('ready'), { what: 'ready' });

  const qrs = await world.inbound('qr');
  assert.deepEqual(qrs.map((q) => [q.qr, q.attempt, q.gateway_id]), [['2@first-qr-payload', 1, 'gw-1'], ['2@second-qr-payload', 2, 'gw-1']]);
  assert.deepEqual(await world.statuses(), ['starting', 'qr', 'qr', 'authenticated', 'ready']);
  const ready = (await world.inbound('session_status')).pop();
  assert.equal(ready.phone, '5215512345678');
  assert.equal(ready.wa_state, 'CONNECTED');
});

test('the session lock keeps a session in one process: a second gateway refuses to start it', async () => {
  const gw1 = await world.gateway();
  const gw2 = await world.gateway();
  await readySession(world, gw1);
  const second = await gw2.startSession('sess1', 'acme');
  assert.equal(second, null);
  assert.equal(gw2.fake.clients.length, 0, 'no second Chromium was launched');
  const conflict = (await world.inbound('session_status')).find((s) => s.status === 'lock_conflict');
  assert.equal(conflict.gateway_id, 'gw-2');
  assert.match(conflict.reason, /gw-1\|/);

  // Once the first instance stops the session, the second may take it.
  await gw1.stopSession('sess1');
  await readySession(world, gw2);
  assert.equal(gw2.fake.clients.length, 1);
});

test('a lost lock stops this copy of the session', async () => {
  const gw = await world.gateway({ LOCK_TTL_MS: '300' });
  await readySession(world, gw);
  await world.redis.set(world.keys.lock('sess1'), 'someone-else|1|x');
  await waitFor(async () => (await world.statuses()).includes('lock_lost'), { what: 'lock_lost' });
  assert.equal(gw.fake.latest('sess1').calls.destroy, 1);
  assert.equal(await world.redis.get(world.keys.lock('sess1')), 'someone-else|1|x', 'the other holder keeps its lock');
});

test('disconnected: the client is rebuilt and reconnects with exponential backoff', async () => {
  // Builds 2 and 3 fail to initialize, build 4 works: three reconnects with growing delays.
  const gw = await world.gateway({ RECONNECT_BASE_MS: '40', RECONNECT_MAX_MS: '10000' }, {
    behaviour: (opts, n) => (n === 1 || n === 2 ? { initializeError: new Error('Failed to launch the browser process') } : {}),
  });
  const first = await readySession(world, gw);
  first.emit('disconnected', 'NAVIGATION');
  await waitFor(() => gw.fake.clients.length === 4 && gw.sessions.get('sess1').state === 'ready', { what: 'reconnected', timeout: 5000 });

  assert.equal(first.calls.destroy, 1, 'the dropped client was closed');
  const statuses = (await world.inbound('session_status')).map((s) => s.status);
  assert.deepEqual(statuses, ['starting', 'authenticated', 'ready', 'disconnected', 'reconnecting', 'starting', 'failed', 'reconnecting', 'starting', 'failed', 'reconnecting', 'starting', 'authenticated', 'ready']);
  const delays = (await world.inbound('session_status')).filter((s) => s.status === 'reconnecting').map((s) => s.retry_in_ms);
  assert.ok(delays[0] < delays[1] && delays[1] < delays[2], `backoff grows: ${delays}`);
  const last = (await world.inbound('session_status')).pop();
  assert.equal(last.attempt, 0, 'attempts reset once ready');
  // Outbound works on the rebuilt client.
  await world.redis.sadd(world.keys.contacted('sess1'), '15551234567@c.us');
  await world.command('sess1', 'send_text', { chat_id: '15551234567@c.us', text: 'de vuelta' });
  await waitFor(() => gw.fake.clients[3].calls.sendMessage.length === 1, { what: 'send on new client' });
  assert.equal(first.calls.sendMessage.length, 0);
});

test('"not ready within N seconds" raises an alarm and rebuilds the client', async () => {
  const gw = await world.gateway({ READY_TIMEOUT_MS: '150' }, { behaviour: (opts, n) => ({ autoReady: n > 0 }) });
  await gw.startSession('sess1', 'acme');
  await waitFor(() => gw.sessions.get('sess1').state === 'ready', { what: 'ready after rebuild' });
  const statuses = await world.statuses();
  assert.deepEqual(statuses.slice(0, 3), ['starting', 'not_ready', 'reconnecting']);
  const alarm = (await world.inbound('session_status')).find((s) => s.status === 'not_ready');
  assert.match(alarm.reason, /not ready within 150 ms/);
});

test('TOS_BLOCK is reported and the banned number is not reconnected; UNPAIRED is reported and reconnects', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  await readySession(world, gw, 'sess2');
  client.emit('change_state', 'TOS_BLOCK');
  client.emit('disconnected', 'TOS_BLOCK');
  const other = gw.fake.latest('sess2');
  other.emit('change_state', 'UNPAIRED');
  other.emit('disconnected', 'UNPAIRED');
  await waitFor(() => gw.fake.forSession('sess2').length === 2 && gw.sessions.get('sess2').state === 'ready', { what: 'sess2 reconnected' });
  await sleep(200);
  assert.equal(gw.fake.forSession('sess1').length, 1, 'no rebuild for a blocked number');
  assert.equal(gw.sessions.get('sess1').state, 'blocked');
  const s1 = (await world.inbound('session_status')).filter((s) => s.session_id === 'sess1');
  assert.deepEqual(s1.slice(-2).map((s) => [s.status, s.wa_state]), [['tos_block', 'TOS_BLOCK'], ['disconnected', 'TOS_BLOCK']]);
  assert.ok((await world.statuses('sess2')).includes('unpaired'));
});

test('stale Chromium profile locks are removed before launch', async () => {
  const profile = path.join(world.sessionDir, 'session-sess1');
  fs.mkdirSync(profile, { recursive: true });
  fs.symlinkSync('dead-host-12345', path.join(profile, 'SingletonLock')); // dangling, as Chromium leaves it
  fs.symlinkSync('/tmp/nowhere/SingletonSocket', path.join(profile, 'SingletonSocket'));
  fs.writeFileSync(path.join(profile, 'Cookies'), 'keep me');
  const gw = await world.gateway();
  await readySession(world, gw);
  assert.deepEqual(fs.readdirSync(profile).sort(), ['Cookies']);
});

test('control stream: start, stop and logout; commands for another instance are ignored', async () => {
  const gw = await world.gateway();
  await world.control('sess9', 'start', { gateway_id: 'gw-other' });
  await world.control('sess1', 'start');
  await waitFor(() => gw.sessions.get('sess1') && gw.sessions.get('sess1').state === 'ready', { what: 'started via control' });
  assert.equal(gw.sessions.has('sess9'), false);
  assert.deepEqual(await world.redis.hgetall(world.keys.ownedSessions('gw-1')), { sess1: 'acme' });

  await world.control('sess1', 'stop');
  await waitFor(() => !gw.sessions.has('sess1'), { what: 'stopped' });
  const first = gw.fake.latest('sess1');
  assert.equal(first.calls.destroy, 1);
  assert.equal(first.calls.logout, 0);
  assert.equal(await world.redis.get(world.keys.lock('sess1')), null, 'lock released');
  assert.deepEqual(await world.redis.hgetall(world.keys.ownedSessions('gw-1')), {});

  await world.control('sess1', 'start');
  await waitFor(() => gw.sessions.get('sess1') && gw.sessions.get('sess1').state === 'ready', { what: 'restarted' });
  const profile = path.join(world.sessionDir, 'session-sess1');
  fs.mkdirSync(profile, { recursive: true });
  fs.writeFileSync(path.join(profile, 'Cookies'), 'pairing');
  await world.control('sess1', 'logout');
  await waitFor(async () => (await world.statuses('sess1')).includes('logged_out'), { what: 'logged out' });
  assert.equal(gw.fake.latest('sess1').calls.logout, 1);
  assert.equal(fs.existsSync(profile), false, 'the pairing (LocalAuth profile) is gone');
  const [group] = await world.redis.xinfo('GROUPS', world.keys.control);
  assert.equal(group[1], 'gateway:gw-1');
});

test('an invalid control command is dead-lettered, reported when its session is known, and the next one still runs', async () => {
  const gw = await world.gateway();
  await world.redis.xadd(world.keys.control, '*', 'event', 'garbage');
  const bad = world.contract.build('start', { sessionId: 'sess1', tenantSchema: 'acme' }, {});
  bad.v = 2;
  await world.redis.xadd(world.keys.control, '*', 'event', JSON.stringify(bad));
  await world.control('sess1', 'start');
  await waitFor(() => gw.sessions.get('sess1') && gw.sessions.get('sess1').state === 'ready', { what: 'valid start ran' });
  const dead = await waitFor(async () => { const d = await world.redis.xrange(world.keys.deadControl, '-', '+'); return d.length === 2 ? d : null; }, { what: 'dead letters' });
  assert.equal(dead[0][1][1], 'garbage');
  const failed = await world.inbound('command_failed');
  assert.equal(failed.length, 1, 'garbage has no session to report to; the v=2 start does');
  assert.equal(failed[0].command_event_id, bad.event_id);
  assert.equal(failed[0].error.code, 'invalid_command');
});

test('/healthz reports Redis and per-session state', async () => {
  const gw = await world.gateway();
  await readySession(world, gw);
  const { status, body } = await getJson(gw.healthPort, '/healthz');
  assert.equal(status, 200);
  assert.equal(body.status, 'ok');
  assert.equal(body.gateway_id, 'gw-1');
  assert.equal(body.redis, 'ok');
  assert.deepEqual(body.sessions.map((s) => [s.session_id, s.tenant_schema, s.state, s.phone]), [['sess1', 'acme', 'ready', '15550000001']]);
  assert.equal((await getJson(gw.healthPort, '/nope')).status, 404);
});

test('SIGTERM-style shutdown finishes the in-flight send, closes clients, releases locks, and resumes at restart', async () => {
  const gw = await world.gateway({}, { behaviour: { sendDelayMs: 300 } });
  const client = await readySession(world, gw);
  await world.redis.sadd(world.keys.contacted('sess1'), '15551234567@c.us');
  await world.command('sess1', 'send_text', { chat_id: '15551234567@c.us', text: 'en vuelo' });
  await waitFor(() => gw.sessions.get('sess1').outbound.inFlight === 1, { what: 'send in flight' });
  await gw.shutdown();

  assert.equal(client.calls.sendMessage.length, 1, 'the in-flight send completed');
  assert.equal(await world.pendingCount(world.keys.outbound('sess1'), 'gateway'), 0, 'and was acknowledged');
  assert.equal(client.calls.destroy, 1);
  assert.equal(await world.redis.get(world.keys.lock('sess1')), null);
  const last = (await world.inbound('session_status')).pop();
  assert.deepEqual([last.status, last.reason], ['stopped', 'gateway shutdown']);

  // Same GATEWAY_ID restarted: it resumes the sessions it ran, plus those in SESSIONS.
  const again = await world.gateway({ GATEWAY_ID: 'gw-1', SESSIONS: 'sess7:globex' });
  await waitFor(() => ['sess1', 'sess7'].every((id) => again.sessions.get(id) && again.sessions.get(id).state === 'ready'), { what: 'resumed' });
  assert.equal(again.sessions.get('sess7').tenantSchema, 'globex');
});

test('after a crash, the same instance takes its own stale lock over once it expires', async () => {
  await world.redis.set(world.keys.lock('sess1'), 'gw-1|99999|stale', 'PX', 300);
  const gw = await world.gateway({ LOCK_TTL_MS: '300', SESSIONS: 'sess1:acme' });
  assert.equal(gw.sessions.has('sess1'), false);
  await waitFor(() => gw.sessions.get('sess1') && gw.sessions.get('sess1').state === 'ready', { what: 'taken over', timeout: 3000 });
  assert.deepEqual((await world.statuses('sess1')).slice(0, 2), ['lock_conflict', 'starting']);
});

test('an explicit start rebuilds a session that WhatsApp blocked', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  client.emit('disconnected', 'TOS_BLOCK');
  await waitFor(() => gw.sessions.get('sess1').state === 'blocked', { what: 'blocked' });
  await world.control('sess1', 'start');
  await waitFor(() => gw.fake.forSession('sess1').length === 2 && gw.sessions.get('sess1').state === 'ready', { what: 'restarted' });
});

// Hold back the publishing of one session status until release() is called.
function holdStatus(gw, status) {
  const publish = gw.publish.bind(gw);
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  gw.publish = async (doc) => {
    if (doc.type === 'session_status' && doc.status === status) await held;
    return publish(doc);
  };
  return release;
}

test('a session stopped while its "ready" status is being published does not start consuming', async () => {
  const gw = await world.gateway({}, { behaviour: { autoReady: false } });
  await gw.startSession('sess1', 'acme');
  const client = gw.fake.latest('sess1');
  await waitFor(() => client.calls.initialize === 1, { what: 'initialize' });
  const release = holdStatus(gw, 'ready');
  const session = gw.sessions.get('sess1');
  client.pair();
  await waitFor(() => session.state === 'ready', { what: 'ready (its status not published yet)' });
  const stopped = session.stop({ status: 'stopped', reason: 'test' });
  release();
  await stopped;
  await sleep(100); // the ready handler has resumed by now
  assert.equal(session.outbound.running, false, 'no outbound consumer after stop');
  assert.equal(session.outbound.blocking, null, 'and no Redis connection left open for it');
});

test('a session stopped while its "starting" status is being published never initializes its client', async () => {
  const gw = await world.gateway({}, { behaviour: { autoReady: false } });
  const release = holdStatus(gw, 'starting');
  const starting = gw.startSession('sess1', 'acme');
  await waitFor(() => gw.sessions.get('sess1') && gw.sessions.get('sess1').state === 'starting', { what: 'starting' });
  const session = gw.sessions.get('sess1');
  const client = gw.fake.latest('sess1');
  const stopped = session.stop({ status: 'stopped', reason: 'test' });
  release();
  await Promise.allSettled([starting, stopped]);
  await sleep(100);
  assert.equal(client.calls.initialize || 0, 0, 'the browser was never started');
  assert.equal(client.calls.destroy, 1);
});
