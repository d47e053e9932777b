'use strict';
const { test, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { World, waitFor, readySession } = require('./helpers');
const { LocalMediaStorage } = require('../src/storage');
const { sha256 } = require('../src/testing/fake-client');

const CUSTOMER = '15551234567@c.us';
let world;
beforeEach(async () => { world = await new World().open(); });
afterEach(async () => { await world.close(); });

// The customer writes first: with REPLY_ONLY (the default) EVA only answers chats that wrote to it.
async function customerWrote(client, chatId = CUSTOMER) {
  const before = (await world.inbound('message')).length;
  client.receive({ from: chatId, body: 'hola' });
  await waitFor(async () => (await world.inbound('message')).length > before, { what: 'inbound message' });
}

test('send_text is consumed, sent through the client, XACKed, and acknowledged on the inbound stream', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  await customerWrote(client);
  const { doc } = await world.command('sess1', 'send_text', { chat_id: CUSTOMER, text: 'Claro, el plan Pro cuesta 20 USD.' });

  const [ack] = await waitFor(async () => { const a = await world.inbound('message_ack'); return a.length ? a : null; }, { what: 'message_ack' });
  assert.equal(client.calls.sendMessage.length, 1);
  assert.equal(client.calls.sendMessage[0].chatId, CUSTOMER);
  assert.equal(client.calls.sendMessage[0].content, 'Claro, el plan Pro cuesta 20 USD.');
  assert.equal(ack.command_event_id, doc.event_id, 'the first ack links the command to the WhatsApp message id');
  assert.equal(ack.wa_id, client.calls.sendMessage[0].wa_id);
  assert.equal(ack.status, 'sent');
  await waitFor(async () => (await world.pendingCount(world.keys.outbound('sess1'), 'gateway')) === 0, { what: 'XACK' });
  const [group] = await world.redis.xinfo('GROUPS', world.keys.outbound('sess1'));
  assert.equal(group[1], 'gateway', 'consumer group name is "gateway"');

  // Later delivery ack from WhatsApp for the same message.
  const sent = { id: { _serialized: ack.wa_id }, fromMe: true, to: CUSTOMER };
  client.emit('message_ack', sent, 2);
  await waitFor(async () => (await world.inbound('message_ack')).some((a) => a.status === 'delivered' && a.wa_id === ack.wa_id), { what: 'delivered ack' });
});

test('send_media reads the stored blob, checks its sha256 and sends it as a voice note', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  await customerWrote(client);
  const storage = new LocalMediaStorage(world.mediaRoot);
  const audio = Buffer.from('OggS-reply-audio');
  const key = 'acme/outbound/reply.ogg';
  await storage.put(key, audio);
  await world.command('sess1', 'send_media', {
    chat_id: CUSTOMER, as_voice: true, caption: 'escucha',
    media: { key, mime: 'audio/ogg; codecs=opus', size: audio.length, sha256: sha256(audio), filename: null },
  });
  await waitFor(() => client.calls.sendMessage.length === 1, { what: 'media send' });
  const call = client.calls.sendMessage[0];
  assert.equal(call.content.mimetype, 'audio/ogg; codecs=opus');
  assert.equal(Buffer.from(call.content.data, 'base64').toString(), 'OggS-reply-audio');
  assert.equal(call.options.sendAudioAsVoice, true);
  assert.equal(call.options.caption, 'escucha');
});

test('invalid commands are dead-lettered with a command_failed event and the stream keeps flowing', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  await customerWrote(client);
  const stream = world.keys.outbound('sess1');
  await world.redis.xadd(stream, '*', 'event', '{not json');
  const bad = world.contract.build('send_text', { sessionId: 'sess1', tenantSchema: 'acme' }, { chat_id: CUSTOMER, text: 'x' });
  delete bad.text; // off-contract
  await world.redis.xadd(stream, '*', 'event', JSON.stringify(bad));
  await world.command('sess1', 'send_text', { chat_id: CUSTOMER, text: 'other tenant!' }, { tenantSchema: 'globex' });
  await world.command('sess1', 'send_media', { chat_id: CUSTOMER, media: { key: 'acme/missing.ogg', mime: 'audio/ogg', size: 1, sha256: 'a'.repeat(64), filename: null } });
  await world.command('sess1', 'send_text', { chat_id: CUSTOMER, text: 'valid one' });

  const failed = await waitFor(async () => { const f = await world.inbound('command_failed'); return f.length === 4 ? f : null; }, { what: 'four command_failed' });
  assert.deepEqual(failed.map((f) => f.error.code), ['invalid_json', 'invalid_command', 'wrong_tenant', 'media_not_found']);
  assert.equal(failed[1].command_event_id, bad.event_id);
  assert.equal(failed[1].command_type, 'send_text');
  assert.equal(failed[0].command_event_id, null);
  for (const f of failed) {
    assert.equal(f.session_id, 'sess1');
    assert.equal(f.tenant_schema, 'acme', 'reported to the tenant that owns the session');
    assert.equal(f.stream, stream);
  }
  const dead = await world.redis.xrange(world.keys.deadOutbound, '-', '+');
  assert.equal(dead.length, 4);
  assert.equal(dead[0][1][1], '{not json', 'the raw entry is kept');
  assert.deepEqual(failed.map((f) => f.dead_letter_id), dead.map(([id]) => id));
  await waitFor(() => client.calls.sendMessage.length === 1, { what: 'valid command sent' });
  assert.equal(client.calls.sendMessage[0].content, 'valid one', 'the tenant mismatch was never sent');
  await waitFor(async () => (await world.pendingCount(stream, 'gateway')) === 0, { what: 'all acked' });
  assert.equal(gw.sessions.get('sess1').state, 'ready');
});

test('reply-only: a chat that never wrote is not messaged', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  await world.command('sess1', 'send_text', { chat_id: '15559999999@c.us', text: 'Oferta!' });
  const [failed] = await waitFor(async () => { const f = await world.inbound('command_failed'); return f.length ? f : null; }, { what: 'command_failed' });
  assert.equal(failed.error.code, 'cold_outreach_blocked');
  assert.equal(failed.chat_id, '15559999999@c.us');
  assert.equal(client.calls.sendMessage.length, 0);
});

test('entries left pending by a crashed consumer are reclaimed and sent exactly once', async () => {
  const stream = world.keys.outbound('sess1');
  // A gateway process that read two commands and died before sending them.
  await world.redis.xgroup('CREATE', stream, 'gateway', '0', 'MKSTREAM');
  const { doc: first } = await world.command('sess1', 'send_text', { chat_id: CUSTOMER, text: 'uno' });
  await world.command('sess1', 'send_text', { chat_id: CUSTOMER, text: 'dos' });
  const crashed = await world.redis.xreadgroup('GROUP', 'gateway', 'gw-dead', 'COUNT', 10, 'STREAMS', stream, '>');
  assert.equal(crashed[0][1].length, 2);
  await world.redis.sadd(world.keys.contacted('sess1'), CUSTOMER);

  const gw = await world.gateway({ OUTBOUND_RETRY_IDLE_MS: '200' });
  const client = await readySession(world, gw);
  await waitFor(() => client.calls.sendMessage.length === 2, { what: 'reclaimed sends' });
  assert.deepEqual(client.calls.sendMessage.map((c) => c.content), ['uno', 'dos']);
  await waitFor(async () => (await world.pendingCount(stream, 'gateway')) === 0, { what: 'reclaimed entries acked' });
  const acks = await world.inbound('message_ack');
  assert.equal(acks.filter((a) => a.command_event_id === first.event_id).length, 1);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(client.calls.sendMessage.length, 2, 'not sent twice');
});

test('a command sent just before a crash (not yet XACKed) is not sent again on redelivery', async () => {
  const gw = await world.gateway({ OUTBOUND_RETRY_IDLE_MS: '200' });
  const client = await readySession(world, gw);
  await customerWrote(client);
  const session = gw.sessions.get('sess1');
  // Simulate the crash window: the send succeeds but the process dies before XACK.
  let dropAck = true;
  const origProcess = session.outbound.process.bind(session.outbound);
  session.outbound.process = async (id, fields, deliveries) => {
    if (dropAck) {
      dropAck = false;
      await session.executeCommand({ id, fields: { [fields[0]]: fields[1] }, deliveries });
      return; // no XACK: left pending like a crash would
    }
    return origProcess(id, fields, deliveries);
  };
  const { doc } = await world.command('sess1', 'send_text', { chat_id: CUSTOMER, text: 'una sola vez' });
  await waitFor(async () => (await world.pendingCount(world.keys.outbound('sess1'), 'gateway')) === 0, { what: 'reclaimed and acked', timeout: 5000 });
  assert.equal(client.calls.sendMessage.length, 1, 'sent once');
  const acks = (await world.inbound('message_ack')).filter((a) => a.command_event_id === doc.event_id);
  assert.equal(acks.length, 2, 'the ack is re-published on redelivery (idempotent for Django)');
  assert.equal(acks[0].wa_id, acks[1].wa_id);
});

test('a send that keeps failing is retried, then dead-lettered after OUTBOUND_MAX_DELIVERIES', async () => {
  let failures = 0;
  const gw = await world.gateway({ OUTBOUND_RETRY_IDLE_MS: '150', OUTBOUND_MAX_DELIVERIES: '3' }, {
    behaviour: { sendError: () => { failures += 1; return new Error('Evaluation failed: rate-overlimit'); } },
  });
  const client = await readySession(world, gw);
  await customerWrote(client);
  const { doc } = await world.command('sess1', 'send_text', { chat_id: CUSTOMER, text: 'hola' });
  const [failed] = await waitFor(async () => { const f = await world.inbound('command_failed'); return f.length ? f : null; }, { what: 'dead letter', timeout: 8000 });
  assert.equal(failures, 3);
  assert.equal(failed.error.code, 'max_deliveries');
  assert.match(failed.error.message, /rate-overlimit/);
  assert.equal(failed.deliveries, 3);
  assert.equal(failed.command_event_id, doc.event_id);
  await waitFor(async () => (await world.pendingCount(world.keys.outbound('sess1'), 'gateway')) === 0, { what: 'acked after dead-lettering' });
});

test('pacing: sends to one chat are spaced, typing state is shown first', async () => {
  const gw = await world.gateway({ SEND_PER_CHAT_INTERVAL_MS: '300', SEND_MIN_INTERVAL_MS: '100', SEND_JITTER_MS: '50', TYPING_BEFORE_SEND: 'true', TYPING_MS_PER_CHAR: '10', TYPING_MAX_MS: '60' });
  const client = await readySession(world, gw);
  await customerWrote(client);
  await customerWrote(client, '15557777777@c.us');
  await world.command('sess1', 'send_text', { chat_id: CUSTOMER, text: 'primero' });
  await world.command('sess1', 'send_text', { chat_id: CUSTOMER, text: 'segundo' });
  await world.command('sess1', 'send_text', { chat_id: '15557777777@c.us', text: 'otro chat' });
  await waitFor(() => client.calls.sendMessage.length === 3, { what: 'three sends', timeout: 5000 });
  const [a, b, c] = client.calls.sendMessage;
  assert.ok(b.at - a.at >= 300, `same chat spaced by >= 300 ms (was ${b.at - a.at})`);
  assert.ok(c.at - b.at >= 100, `any two sends spaced by >= 100 ms (was ${c.at - b.at})`);
  assert.deepEqual(client.calls.chatState.map((s) => s.state), ['typing', 'typing', 'typing']);
});

test('mark_read and typing commands reach the client', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  await world.command('sess1', 'mark_read', { chat_id: CUSTOMER });
  await world.command('sess1', 'typing', { chat_id: CUSTOMER, state: 'recording' });
  await world.command('sess1', 'typing', { chat_id: CUSTOMER, state: 'paused' });
  await waitFor(() => client.calls.chatState.length === 2, { what: 'chat states' });
  assert.deepEqual(client.calls.sendSeen, [CUSTOMER]);
  assert.deepEqual(client.calls.chatState.map((s) => s.state), ['recording', 'paused']);
});

test('an expired command is reported, not sent late', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  await customerWrote(client);
  await world.command('sess1', 'send_text', { chat_id: CUSTOMER, text: 'tarde', expires_at: new Date(Date.now() - 1000).toISOString() });
  const [failed] = await waitFor(async () => { const f = await world.inbound('command_failed'); return f.length ? f : null; }, { what: 'expired' });
  assert.equal(failed.error.code, 'expired');
  assert.equal(client.calls.sendMessage.length, 0);
});


test('the outbound stream is trimmed of handled entries only, never of unread or pending ones', async () => {
  const { trimConsumed } = require('../src/streams');
  const stream = world.keys.outbound('sess1');
  await world.redis.xgroup('CREATE', stream, 'gateway', '0', 'MKSTREAM');
  const ids = [];
  for (let i = 0; i < 5; i += 1) ids.push((await world.command('sess1', 'mark_read', { chat_id: CUSTOMER })).id);
  // Entries 0-2 delivered; 0 and 2 acked, 1 still pending; 3-4 unread.
  await world.redis.xreadgroup('GROUP', 'gateway', 'c1', 'COUNT', 3, 'STREAMS', stream, '>');
  await world.redis.xack(stream, 'gateway', ids[0], ids[2]);
  assert.equal(await trimConsumed(world.redis, stream), 1);
  assert.deepEqual((await world.redis.xrange(stream, '-', '+')).map(([id]) => id), ids.slice(1));
  await world.redis.xack(stream, 'gateway', ids[1]);
  await trimConsumed(world.redis, stream);
  assert.deepEqual((await world.redis.xrange(stream, '-', '+')).map(([id]) => id), ids.slice(2), 'keeps the last delivered entry and everything unread');
  // A second group that has read nothing holds everything back.
  await world.redis.xgroup('CREATE', stream, 'audit', '0');
  assert.equal(await trimConsumed(world.redis, stream), 0);
});
