'use strict';
const { test, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { World, waitFor, readySession } = require('./helpers');
const { sha256 } = require('../src/testing/fake-client');

let world;
beforeEach(async () => { world = await new World().open(); });
afterEach(async () => { await world.close(); });

test('inbound text message becomes exactly one valid message event on the inbound stream', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  const msg = client.receive({ from: '15551234567@c.us', body: 'Hola, ¿cuánto cuesta?', notifyName: 'Ana' });

  const [event] = await waitFor(async () => { const m = await world.inbound('message'); return m.length ? m : null; }, { what: 'message event' });
  await new Promise((r) => setTimeout(r, 100)); // nothing else should follow
  assert.equal((await world.inbound('message')).length, 1);
  assert.equal((await world.inbound('outgoing_from_phone')).length, 0, 'a customer message is not a handoff signal');
  assert.equal(event.v, 1);
  assert.equal(event.session_id, 'sess1');
  assert.equal(event.tenant_schema, 'acme');
  assert.equal(event.wa_id, msg.id._serialized);
  assert.equal(event.chat_id, '15551234567@c.us');
  assert.equal(event.from_phone, '15551234567');
  assert.equal(event.body, 'Hola, ¿cuánto cuesta?');
  assert.equal(event.push_name, 'Ana');
  assert.equal(event.has_media, false);
  assert.equal(event.media, null);
  assert.equal(event.is_group, false);
  assert.ok(await world.redis.sismember(world.keys.contacted('sess1'), '15551234567@c.us'), 'the chat is remembered as one that wrote first');
});

test('voice note is stored in media storage first and referenced with its sha256', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  const audio = Buffer.concat([Buffer.from('OggS'), Buffer.alloc(4096, 7)]);
  client.receive({ from: '15551234567@c.us', type: 'ptt', hasMedia: true, media: { mimetype: 'audio/ogg; codecs=opus', data: audio } });

  const [event] = await waitFor(async () => { const m = await world.inbound('message'); return m.length ? m : null; }, { what: 'voice note event' });
  assert.equal(event.msg_type, 'ptt');
  assert.equal(event.has_media, true);
  assert.equal(event.media_error, null);
  assert.equal(event.media.mime, 'audio/ogg; codecs=opus');
  assert.equal(event.media.size, audio.length);
  assert.equal(event.media.sha256, sha256(audio));
  assert.match(event.media.key, /^acme\/whatsapp\/sess1\/\d{4}\/\d{2}\/[0-9a-f]{64}\.ogg$/);
  const onDisk = fs.readFileSync(path.join(world.mediaRoot, event.media.key));
  assert.equal(sha256(onDisk), event.media.sha256, 'the file on disk is the one referenced');
  const raw = (await world.redis.xrange(world.keys.inbound, '-', '+')).map(([, f]) => f[1]).join('');
  assert.ok(!raw.includes(audio.toString('base64').slice(0, 64)), 'the bytes never travel on the stream');
});

test('expired media is reported on the event, the gateway keeps running', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  client.receive({ from: '15551234567@c.us', type: 'image', body: 'mira', hasMedia: true, media: 'expired' });
  client.receive({ from: '15551234567@c.us', type: 'document', hasMedia: true, media: new Error('socket hang up') });
  client.receive({ from: '15551234567@c.us', body: 'still here' });

  const events = await waitFor(async () => { const m = await world.inbound('message'); return m.length === 3 ? m : null; }, { what: 'three events' });
  assert.deepEqual(events.map((e) => [e.has_media, e.media, e.media_error && e.media_error.code, e.body]), [
    [true, null, 'media_expired', 'mira'],
    [true, null, 'media_download_failed', ''],
    [false, null, null, 'still here'],
  ], 'published in the order received, with the reason for missing media');
  assert.equal(gw.sessions.get('sess1').state, 'ready');
});

test('an @lid sender is resolved to a phone number when the library knows it', async () => {
  const gw = await world.gateway({}, { behaviour: { lidMap: { '987654321@lid': '15557654321@c.us' } } });
  const client = await readySession(world, gw);
  client.receive({ from: '987654321@lid', body: 'hi' });
  client.receive({ from: '111111@lid', body: 'unknown lid' });
  const events = await waitFor(async () => { const m = await world.inbound('message'); return m.length === 2 ? m : null; }, { what: 'two events' });
  assert.equal(events[0].from, '987654321@lid');
  assert.equal(events[0].from_phone, '15557654321');
  assert.equal(events[1].from_phone, null);
});

test('a group message carries the group chat and the author', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  client.receive({ from: '120363000000000001@g.us', author: '15551112222@c.us', body: 'hola grupo' });
  const [event] = await waitFor(async () => { const m = await world.inbound('message'); return m.length ? m : null; }, { what: 'group event' });
  assert.equal(event.chat_id, '120363000000000001@g.us');
  assert.equal(event.from, '15551112222@c.us');
  assert.equal(event.from_phone, '15551112222');
  assert.equal(event.is_group, true);
});

test('a message typed on the business phone is published as outgoing_from_phone; the gateway\'s own sends are not', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  client.receive({ from: '15551234567@c.us', body: 'hola' });
  await waitFor(async () => (await world.inbound('message')).length === 1, { what: 'inbound' });
  await world.command('sess1', 'send_text', { chat_id: '15551234567@c.us', text: 'Hola, soy EVA' });
  await waitFor(() => client.calls.sendMessage.length === 1, { what: 'send' });
  const typed = client.typeOnPhone({ to: '15551234567@c.us', body: 'Te atiendo yo, Carlos' });

  const [event] = await waitFor(async () => { const m = await world.inbound('outgoing_from_phone'); return m.length ? m : null; }, { what: 'outgoing_from_phone' });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await world.inbound('outgoing_from_phone')).length, 1, 'only the message typed on the phone');
  assert.equal(event.wa_id, typed.id._serialized);
  assert.equal(event.to, '15551234567@c.us');
  assert.equal(event.to_phone, '15551234567');
  assert.equal(event.body, 'Te atiendo yo, Carlos');
});

test('WhatsApp delivery acks are published as message_ack', async () => {
  const gw = await world.gateway();
  const client = await readySession(world, gw);
  const sent = client.typeOnPhone({ to: '15551234567@c.us', body: 'x' });
  client.emit('message_ack', sent, 2);
  client.emit('message_ack', sent, 3);
  const acks = await waitFor(async () => { const m = await world.inbound('message_ack'); return m.length === 2 ? m : null; }, { what: 'acks' });
  assert.deepEqual(acks.map((a) => [a.wa_id, a.status, a.ack, a.command_event_id]), [
    [sent.id._serialized, 'delivered', 2, null],
    [sent.id._serialized, 'read', 3, null],
  ]);
});
