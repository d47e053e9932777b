'use strict';
// Small pure pieces: configuration errors, storage key safety, pacing arithmetic, backoff.
// (The S3 media backend is tested against a real S3 server in s3.test.js.)
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { loadConfig, ConfigError } = require('../src/config');
const { LocalMediaStorage, extensionFor } = require('../src/storage');
const { Pacer, backoffDelay } = require('../src/pacing');
const { phoneFromJid } = require('../src/session');
require('./helpers'); // fails the run loudly when REDIS_URL is missing

test('configuration fails loudly on missing or malformed values', () => {
  assert.throws(() => loadConfig({}), (e) => e instanceof ConfigError && /REDIS_URL must be set/.test(e.message));
  const base = { REDIS_URL: 'redis://127.0.0.1:1/0' };
  assert.throws(() => loadConfig({ ...base, OUTBOUND_MAX_DELIVERIES: 'five' }), /must be an integer/);
  assert.throws(() => loadConfig({ ...base, REPLY_ONLY: 'maybe' }), /must be a boolean/);
  assert.throws(() => loadConfig({ ...base, SESSIONS: 'no-tenant' }), /session_id:tenant_schema/);
  const cfg = loadConfig({ ...base, SESSIONS: 'a1:acme, b2:globex', GATEWAY_ID: 'gw-a' });
  assert.deepEqual(cfg.sessions, [{ sessionId: 'a1', tenantSchema: 'acme' }, { sessionId: 'b2', tenantSchema: 'globex' }]);
  assert.equal(cfg.chromiumPath, '/usr/bin/chromium');
  assert.equal(cfg.replyOnly, true);
  assert.equal(cfg.healthPort, 3001);
  assert.equal(cfg.mediaStorage, 'local');
  assert.equal(cfg.s3, null);
});

test('MEDIA_STORAGE=s3 settings: defaults, path style, credentials in pairs or from files, loud errors', () => {
  const base = { REDIS_URL: 'redis://127.0.0.1:1/0', MEDIA_STORAGE: 's3' };
  assert.throws(() => loadConfig({ ...base }), (e) => e instanceof ConfigError && /S3_BUCKET must be set when MEDIA_STORAGE=s3/.test(e.message));
  assert.throws(() => loadConfig({ ...base, MEDIA_STORAGE: 'gcs' }), /MEDIA_STORAGE must be one of local, s3/);
  assert.throws(() => loadConfig({ ...base, S3_BUCKET: 's3://media/acme' }), /S3_BUCKET must be a bucket name/);
  assert.throws(() => loadConfig({ ...base, S3_BUCKET: 'media', S3_FORCE_PATH_STYLE: 'sometimes' }), /S3_FORCE_PATH_STYLE must be a boolean/);
  for (const endpoint of ['minio:9000', 'ftp://minio', 'http://minio:9000/media', 'https://key:secret@r2.example.com']) {
    assert.throws(() => loadConfig({ ...base, S3_BUCKET: 'media', S3_ENDPOINT: endpoint }), /S3_ENDPOINT must be a base URL/, endpoint);
  }
  assert.throws(() => loadConfig({ ...base, S3_BUCKET: 'media', S3_REGION: 'EU West' }), /S3_REGION/);
  assert.throws(() => loadConfig({ ...base, S3_BUCKET: 'media', S3_ACCESS_KEY_ID: 'AKIA1' }), /must be set together/);
  assert.throws(() => loadConfig({ ...base, S3_BUCKET: 'media', S3_SECRET_ACCESS_KEY: 'hunter2' }), (e) => /must be set together/.test(e.message) && !e.message.includes('hunter2'));

  const aws = loadConfig({ ...base, S3_BUCKET: 'media' }).s3;
  assert.deepEqual(aws, { bucket: 'media', endpoint: null, region: 'us-east-1', forcePathStyle: false, credentials: null }, 'AWS, default credential chain');
  const minio = loadConfig({ ...base, S3_BUCKET: 'media', S3_ENDPOINT: 'http://minio:9000', S3_ACCESS_KEY_ID: 'k', S3_SECRET_ACCESS_KEY: 's' }).s3;
  assert.equal(minio.forcePathStyle, true, 'path style by default with an endpoint');
  assert.deepEqual(minio.credentials, { accessKeyId: 'k', secretAccessKey: 's' });
  const r2 = loadConfig({ ...base, S3_BUCKET: 'media', S3_ENDPOINT: 'https://acct.r2.cloudflarestorage.com', S3_REGION: 'auto', S3_FORCE_PATH_STYLE: 'false' }).s3;
  assert.deepEqual([r2.region, r2.forcePathStyle], ['auto', false]);
  assert.equal(loadConfig({ REDIS_URL: base.REDIS_URL, S3_BUCKET: 'not used' }).s3, null, 'S3 settings are ignored by the local backend');

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eva-secret-'));
  fs.writeFileSync(path.join(dir, 'secret'), 'from-a-file\n');
  fs.writeFileSync(path.join(dir, 'empty'), '');
  const fromFile = loadConfig({ ...base, S3_BUCKET: 'media', S3_ACCESS_KEY_ID: 'k', S3_SECRET_ACCESS_KEY_FILE: path.join(dir, 'secret') }).s3;
  assert.equal(fromFile.credentials.secretAccessKey, 'from-a-file');
  assert.throws(() => loadConfig({ ...base, S3_BUCKET: 'media', S3_ACCESS_KEY_ID: 'k', S3_SECRET_ACCESS_KEY: 's', S3_SECRET_ACCESS_KEY_FILE: path.join(dir, 'secret') }), /not both/);
  assert.throws(() => loadConfig({ ...base, S3_BUCKET: 'media', S3_ACCESS_KEY_ID: 'k', S3_SECRET_ACCESS_KEY_FILE: path.join(dir, 'empty') }), /is empty/);
  assert.throws(() => loadConfig({ ...base, S3_BUCKET: 'media', S3_ACCESS_KEY_ID: 'k', S3_SECRET_ACCESS_KEY_FILE: path.join(dir, 'absent') }), /cannot read/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('media storage writes atomically under the root and refuses keys that escape it', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'eva-media-'));
  const storage = new LocalMediaStorage(root);
  const stored = await storage.put('acme/a/b.ogg', Buffer.from('hello'));
  assert.equal(stored.sha256, '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  assert.equal((await storage.read('acme/a/b.ogg')).toString(), 'hello');
  assert.deepEqual(fs.readdirSync(path.join(root, 'acme/a')), ['b.ogg'], 'no temp file left behind');
  for (const key of ['../x', '/abs', 'a/../../x', 'a//b/..']) await assert.rejects(storage.put(key, Buffer.from('x')), /invalid media key/);
  assert.equal(await storage.exists('acme/a/b.ogg'), true);
  assert.equal(await storage.exists('acme/a/missing.ogg'), false);
  assert.equal(await storage.exists('acme/a'), false, 'a folder is not a blob');
  await assert.rejects(storage.exists('../x'), (e) => e.code === 'invalid_media_key');
  await assert.rejects(storage.read('acme/a/missing.ogg'), (e) => e.code === 'media_not_found', 'the same code as the S3 backend');
  assert.equal(extensionFor('audio/ogg; codecs=opus'), 'ogg');
  assert.equal(extensionFor('application/x-unknown'), 'bin');
  fs.rmSync(root, { recursive: true, force: true });
});

test('pacer: per-number interval with jitter, per-chat spacing, per-minute cap, typing length', () => {
  let now = 1_000_000;
  const pacer = new Pacer({ minIntervalMs: 1000, jitterMs: 500, perChatIntervalMs: 5000, maxPerMinute: 3, typingBeforeSend: true, typingMsPerChar: 50, typingMaxMs: 3000 }, { random: () => 0.5, now: () => now });
  assert.equal(pacer.delayFor('a'), 0, 'first send goes at once');
  pacer.recordSend('a');
  assert.equal(pacer.delayFor('b'), 1250, 'min interval + jitter');
  assert.equal(pacer.delayFor('a'), 5000, 'same chat waits the per-chat spacing');
  now += 1250; pacer.recordSend('b');
  now += 1250; pacer.recordSend('c');
  assert.equal(pacer.delayFor('d'), 60000 - 2500, 'per-minute cap');
  assert.equal(pacer.typingMsFor('hola'), 200);
  assert.equal(pacer.typingMsFor('x'.repeat(1000)), 3000);
});

test('backoff doubles per attempt, is capped, and jitters within +-20%', () => {
  const at = (attempt, r) => backoffDelay(attempt, { baseMs: 1000, maxMs: 60000, random: () => r });
  assert.equal(at(0, 0.5), 1000);
  assert.equal(at(3, 0.5), 8000);
  assert.equal(at(20, 0.5), 60000);
  assert.equal(at(0, 0), 800);
  assert.equal(at(0, 1), 1200);
});

test('phone numbers come from c.us ids, never from lid or group ids', () => {
  assert.equal(phoneFromJid('5215512345678@c.us'), '5215512345678');
  assert.equal(phoneFromJid('5215512345678:12@s.whatsapp.net'), '5215512345678');
  assert.equal(phoneFromJid('123456789@lid'), null);
  assert.equal(phoneFromJid('120363000000000001@g.us'), null);
});

test('the real whatsapp-web.js client is built with LocalAuth on WA_SESSION_DIR and the configured Chromium (not launched)', () => {
  const { createClient } = require('../src/wwebjs');
  const { Client, LocalAuth } = require('whatsapp-web.js');
  const client = createClient({ sessionId: 'acme-1', sessionDir: '/data/session', chromiumPath: '/opt/chromium/chrome', chromiumArgs: ['--lang=es'] });
  assert.ok(client instanceof Client);
  assert.ok(client.authStrategy instanceof LocalAuth);
  assert.equal(client.authStrategy.dataPath, '/data/session');
  assert.equal(client.authStrategy.clientId, 'acme-1');
  assert.equal(client.options.puppeteer.executablePath, '/opt/chromium/chrome');
  assert.ok(client.options.puppeteer.args.includes('--lang=es'));
  for (const method of ['initialize', 'sendMessage', 'sendSeen', 'destroy', 'logout', 'getState', 'getChatById', 'getContactLidAndPhone']) {
    assert.equal(typeof client[method], 'function', `whatsapp-web.js Client has ${method}, which the fake mirrors`);
  }
});
