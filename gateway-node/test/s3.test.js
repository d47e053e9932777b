'use strict';
// The S3 media backend against a real S3-compatible server (`rclone serve s3`, or the one the CI
// script started; see TestS3 in helpers.js): the storage interface itself, then media through a
// real gateway with MEDIA_STORAGE=s3. The bucket is read back with an independent S3 client, as
// the Django side does with boto3.
const { test, before, after, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const fs = require('fs');
const { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } = require('@aws-sdk/client-s3');
const { World, TestS3, waitFor, readySession } = require('./helpers');
const { S3MediaStorage, LocalMediaStorage, inboundKey } = require('../src/storage');
const { sha256 } = require('../src/testing/fake-client');

const CUSTOMER = '15551234567@c.us';
let s3;
let world;
before(async () => { s3 = await TestS3.start(); });
after(async () => { if (s3) await s3.stop(); });
beforeEach(async () => { world = await new World().open(); });
afterEach(async () => { await world.close(); });

async function withStorage(settings, use) {
  const storage = new S3MediaStorage(settings);
  try {
    return await use(storage);
  } finally {
    await storage.close();
  }
}

async function objectKeys(bucket) {
  const page = await s3.client.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (page.Contents || []).map((o) => o.Key);
}

async function customerWrote(client) {
  const before = (await world.inbound('message')).length;
  client.receive({ from: CUSTOMER, body: 'hola' });
  await waitFor(async () => (await world.inbound('message')).length > before, { what: 'inbound message' });
}

test('S3 storage: put, read and exists round trip; the media key is the object key, with its content type', async () => {
  const bucket = await s3.bucket();
  await withStorage(s3.settings(bucket), async (storage) => {
    const audio = Buffer.concat([Buffer.from('OggS'), crypto.randomBytes(300 * 1024)]);
    const key = inboundKey({ tenantSchema: 'acme', sessionId: 'sess1', sha256: sha256(audio), mime: 'audio/ogg; codecs=opus' });
    assert.equal(LocalMediaStorage.inboundKey({ tenantSchema: 'acme', sessionId: 'sess1', sha256: sha256(audio), mime: 'audio/ogg' }), key, 'both backends lay keys out alike');

    const stored = await storage.put(key, audio, { contentType: 'audio/ogg; codecs=opus' });
    assert.deepEqual(stored, { key, size: audio.length, sha256: sha256(audio) });
    assert.ok((await storage.read(key)).equals(audio), 'the same bytes come back');
    assert.equal(await storage.exists(key), true);
    assert.deepEqual(await objectKeys(bucket), [key], 'no prefix, no temp object');
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    assert.equal(head.ContentType, 'audio/ogg; codecs=opus');
    assert.equal(head.ContentLength, audio.length);

    await storage.put('acme/outbound/no-type.bin', Buffer.alloc(0));
    assert.equal((await storage.read('acme/outbound/no-type.bin')).length, 0, 'an empty blob is a blob');
  });
});

test('S3 storage: a missing object is false for exists and media_not_found for read; a missing bucket is not disguised as one', async () => {
  const bucket = await s3.bucket();
  await withStorage(s3.settings(bucket), async (storage) => {
    assert.equal(await storage.exists('acme/missing.ogg'), false);
    await assert.rejects(storage.read('acme/missing.ogg'), (err) => err.code === 'media_not_found' && /acme\/missing\.ogg/.test(err.message));
  });
  await withStorage(s3.settings(`${bucket}-absent`), async (storage) => {
    await assert.rejects(storage.read('acme/missing.ogg'), (err) => err.code !== 'media_not_found' && err.name === 'NoSuchBucket');
  });
});

test('S3 storage: keys escaping the bucket root are refused before any request', async () => {
  // Nothing listens on port 1: a request would fail with a connection error, not invalid_media_key.
  await withStorage(s3.settings('never-reached', { endpoint: 'http://127.0.0.1:1' }), async (storage) => {
    for (const key of ['../x', '/abs', 'a/../../x', 'a//b/..', './x', 'a b', '']) {
      for (const attempt of [() => storage.put(key, Buffer.from('x')), () => storage.read(key), () => storage.exists(key)]) {
        await assert.rejects(attempt(), (err) => err.code === 'invalid_media_key', `key ${JSON.stringify(key)}`);
      }
    }
  });
});

test('S3 storage: a wrong secret key is an error on put, read and exists, never a silent success', async () => {
  const bucket = await s3.bucket();
  const key = 'acme/outbound/reply.ogg';
  await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from('OggS') }));
  const wrong = s3.settings(bucket, { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: 'not-the-secret' } });
  await withStorage(wrong, async (storage) => {
    const denied = (err) => err.$metadata.httpStatusCode === 403 && err.code !== 'media_not_found';
    await assert.rejects(storage.put('acme/x.ogg', Buffer.from('x')), denied);
    await assert.rejects(storage.read(key), denied);
    await assert.rejects(storage.exists(key), denied, 'a refused HEAD is not "missing"');
  });
  assert.deepEqual(await objectKeys(bucket), [key], 'nothing was written');
});

test('MEDIA_STORAGE=s3: an inbound voice note is stored in the bucket under the event\'s key, with its sha256', async () => {
  const bucket = await s3.bucket();
  const gw = await world.gateway(s3.env(bucket));
  assert.equal((await gw.health()).media_storage, 's3');
  const client = await readySession(world, gw);
  const audio = Buffer.concat([Buffer.from('OggS'), crypto.randomBytes(8192)]);
  client.receive({ from: CUSTOMER, type: 'ptt', hasMedia: true, media: { mimetype: 'audio/ogg; codecs=opus', data: audio } });

  const [event] = await waitFor(async () => { const m = await world.inbound('message'); return m.length ? m : null; }, { what: 'voice note event' });
  assert.equal(event.media_error, null);
  assert.match(event.media.key, /^acme\/whatsapp\/sess1\/\d{4}\/\d{2}\/[0-9a-f]{64}\.ogg$/);
  assert.deepEqual(await objectKeys(bucket), [event.media.key]);
  const reader = s3.makeClient();
  try {
    const object = await reader.send(new GetObjectCommand({ Bucket: bucket, Key: event.media.key }));
    const bytes = Buffer.from(await object.Body.transformToByteArray());
    assert.equal(sha256(bytes), event.media.sha256);
    assert.equal(bytes.length, event.media.size);
    assert.equal(object.ContentType, 'audio/ogg; codecs=opus');
  } finally {
    reader.destroy();
  }
  assert.equal(fs.existsSync(world.mediaRoot), false, 'nothing was written to MEDIA_ROOT');
});

test('MEDIA_STORAGE=s3: send_media sends the object Django put in the bucket', async () => {
  const bucket = await s3.bucket();
  const gw = await world.gateway(s3.env(bucket));
  const client = await readySession(world, gw);
  await customerWrote(client);
  const pdf = Buffer.concat([Buffer.from('%PDF-1.7\n'), crypto.randomBytes(4096)]);
  const key = 'acme/outbound/2026/11/quote.pdf';
  await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: pdf, ContentType: 'application/pdf' }));
  await world.command('sess1', 'send_media', {
    chat_id: CUSTOMER, as_document: true, caption: 'tu cotización',
    media: { key, mime: 'application/pdf', size: pdf.length, sha256: sha256(pdf), filename: 'cotizacion.pdf' },
  });

  await waitFor(() => client.calls.sendMessage.length === 1, { what: 'media send' });
  const call = client.calls.sendMessage[0];
  assert.equal(call.chatId, CUSTOMER);
  assert.equal(call.content.mimetype, 'application/pdf');
  assert.equal(call.content.filename, 'cotizacion.pdf');
  assert.ok(Buffer.from(call.content.data, 'base64').equals(pdf), 'the bytes of the object');
  assert.equal(call.options.sendMediaAsDocument, true);
  assert.equal(call.options.caption, 'tu cotización');
  await waitFor(async () => (await world.pendingCount(world.keys.outbound('sess1'), 'gateway')) === 0, { what: 'XACK' });
});

test('MEDIA_STORAGE=s3: send_media of a missing object is reported as media_not_found and the session keeps sending', async () => {
  const bucket = await s3.bucket();
  const gw = await world.gateway(s3.env(bucket));
  const client = await readySession(world, gw);
  await customerWrote(client);
  const { doc } = await world.command('sess1', 'send_media', {
    chat_id: CUSTOMER, media: { key: 'acme/outbound/never-written.ogg', mime: 'audio/ogg', size: 4, sha256: 'a'.repeat(64), filename: null },
  });
  await world.command('sess1', 'send_text', { chat_id: CUSTOMER, text: 'sigo aquí' });

  const [failed] = await waitFor(async () => { const f = await world.inbound('command_failed'); return f.length ? f : null; }, { what: 'command_failed' });
  assert.equal(failed.error.code, 'media_not_found');
  assert.match(failed.error.message, /acme\/outbound\/never-written\.ogg/);
  assert.equal(failed.command_event_id, doc.event_id);
  assert.equal(failed.deliveries, 1, 'failed at once: retrying will not make the object appear');
  assert.equal((await world.redis.xrange(world.keys.deadOutbound, '-', '+')).length, 1, 'kept as a dead letter');
  await waitFor(() => client.calls.sendMessage.length === 1, { what: 'the next command sent' });
  assert.equal(client.calls.sendMessage[0].content, 'sigo aquí');
  assert.equal(gw.sessions.get('sess1').state, 'ready');
});

test('MEDIA_STORAGE=s3: storage that refuses the gateway is retried, then dead-lettered after OUTBOUND_MAX_DELIVERIES', async () => {
  const bucket = await s3.bucket();
  const key = 'acme/outbound/reply.ogg';
  const audio = Buffer.from('OggS-reply');
  await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: audio }));
  const gw = await world.gateway({ ...s3.env(bucket), S3_SECRET_ACCESS_KEY: 'rotated-away', OUTBOUND_RETRY_IDLE_MS: '150', OUTBOUND_MAX_DELIVERIES: '3' });
  const client = await readySession(world, gw);
  await customerWrote(client);
  await world.command('sess1', 'send_media', { chat_id: CUSTOMER, media: { key, mime: 'audio/ogg', size: audio.length, sha256: sha256(audio), filename: null } });

  const [failed] = await waitFor(async () => { const f = await world.inbound('command_failed'); return f.length ? f : null; }, { what: 'dead letter', timeout: 8000 });
  assert.equal(failed.error.code, 'max_deliveries');
  assert.match(failed.error.message, /signature/i);
  assert.equal(failed.deliveries, 3);
  assert.equal(client.calls.sendMessage.length, 0);
});
