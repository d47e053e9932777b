'use strict';
// Shared test setup: real Redis/Valkey (REDIS_URL, required), real files in a temp dir, a unique
// key prefix per gateway so tests never see each other's streams, the fake WhatsApp client, and a
// real S3-compatible server for the S3 media backend.
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const net = require('net');
const path = require('path');
const crypto = require('crypto');
const { spawn } = require('child_process');
const Redis = require('ioredis');
const {
  S3Client, CreateBucketCommand, ListBucketsCommand, ListObjectsV2Command, DeleteObjectCommand, DeleteBucketCommand,
} = require('@aws-sdk/client-s3');
const pino = require('pino');
const { loadConfig } = require('../src/config');
const { Gateway } = require('../src/gateway');
const { keys: makeKeys } = require('../src/keys');
const { loadContract } = require('../src/contract');
const { createFakeClientFactory } = require('../src/testing/fake-client');

const REDIS_URL = process.env.REDIS_URL;
if (!REDIS_URL) {
  throw new Error('REDIS_URL is not set: the gateway tests need a real Redis/Valkey, e.g. REDIS_URL=redis://127.0.0.1:6390/0 npm test');
}

const CONTRACTS_DIR = path.resolve(__dirname, '..', '..', 'contracts', 'streams');
const contract = loadContract(CONTRACTS_DIR);

async function connectRedis() {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 3000 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(`Redis at REDIS_URL=${REDIS_URL} is unreachable: ${err.message}`);
  }
  return redis;
}

const TEST_ENV = {
  GATEWAY_HEALTH_PORT: '0',
  GATEWAY_HEALTH_HOST: '127.0.0.1',
  LOG_LEVEL: 'silent',
  SEND_MIN_INTERVAL_MS: '0',
  SEND_JITTER_MS: '0',
  SEND_PER_CHAT_INTERVAL_MS: '0',
  SEND_MAX_PER_MINUTE: '1000',
  TYPING_BEFORE_SEND: 'false',
  OUTBOUND_BLOCK_MS: '100',
  OUTBOUND_RETRY_IDLE_MS: '300',
  OUTBOUND_MAX_DELIVERIES: '3',
  RECONNECT_BASE_MS: '50',
  RECONNECT_MAX_MS: '400',
  LOCK_TTL_MS: '1500',
  READY_TIMEOUT_MS: '5000',
  SHUTDOWN_TIMEOUT_MS: '5000',
};

// A test "world": one key prefix, one media root, one session dir, shared by the gateways it makes.
class World {
  constructor() {
    this.prefix = `evatest-${crypto.randomUUID().slice(0, 8)}`;
    this.keys = makeKeys(this.prefix);
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eva-gw-'));
    this.mediaRoot = path.join(this.tmp, 'media');
    this.sessionDir = path.join(this.tmp, 'wa-sessions');
    this.gateways = [];
    this.contract = contract;
  }

  async open() {
    this.redis = await connectRedis();
    return this;
  }

  config(overrides = {}) {
    return loadConfig({
      ...TEST_ENV,
      REDIS_URL,
      REDIS_KEY_PREFIX: this.prefix,
      GATEWAY_ID: `gw-${this.gateways.length + 1}`,
      MEDIA_ROOT: this.mediaRoot,
      WA_SESSION_DIR: this.sessionDir,
      CONTRACTS_DIR,
      ...overrides,
    });
  }

  async gateway(envOverrides = {}, { behaviour = {}, factory } = {}) {
    const clientFactory = factory || createFakeClientFactory(behaviour);
    const gw = new Gateway(this.config(envOverrides), { clientFactory, logger: pino({ level: 'silent' }) });
    gw.fake = clientFactory;
    this.gateways.push(gw);
    await gw.start();
    return gw;
  }

  // Every entry on the inbound stream, parsed and validated against the contract.
  async inbound(type) {
    const entries = await this.redis.xrange(this.keys.inbound, '-', '+');
    const docs = entries.map(([id, fields]) => {
      assert.deepEqual(fields.filter((_, i) => i % 2 === 0), ['event'], 'an inbound entry has exactly one field, "event"');
      const doc = contract.parse(fields[1], { direction: 'inbound' });
      return { ...doc, _id: id };
    });
    return type ? docs.filter((d) => d.type === type) : docs;
  }

  async statuses(sessionId) {
    return (await this.inbound('session_status')).filter((d) => !sessionId || d.session_id === sessionId).map((d) => d.status);
  }

  async command(sessionId, type, fields, { tenantSchema = 'acme' } = {}) {
    const doc = contract.build(type, { sessionId, tenantSchema }, fields);
    const id = await this.redis.xadd(this.keys.outbound(sessionId), '*', 'event', JSON.stringify(doc));
    return { doc, id };
  }

  async control(sessionId, type, fields = {}, { tenantSchema = 'acme' } = {}) {
    const doc = contract.build(type, { sessionId, tenantSchema }, fields);
    await this.redis.xadd(this.keys.control, '*', 'event', JSON.stringify(doc));
    return doc;
  }

  async pendingCount(stream, group) {
    const [count] = await this.redis.xpending(stream, group);
    return Number(count);
  }

  async close() {
    for (const gw of this.gateways) await gw.shutdown();
    let cursor = '0';
    do {
      const [next, found] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (found.length) await this.redis.del(...found);
    } while (cursor !== '0');
    await this.redis.quit();
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

async function waitFor(check, { timeout = 5000, interval = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

// Start a session through the real control path and wait until the fake client is ready.
async function readySession(world, gw, sessionId = 'sess1', tenantSchema = 'acme') {
  await gw.startSession(sessionId, tenantSchema);
  await waitFor(() => gw.sessions.get(sessionId) && gw.sessions.get(sessionId).state === 'ready', { what: `${sessionId} ready` });
  return gw.fake.latest(sessionId);
}

// ---- S3-compatible server ---------------------------------------------------------------

const RCLONE_CANDIDATES = [path.resolve(__dirname, '..', '..', '.venv', 'bin', 'rclone'),
  ...(process.env.PATH || '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, 'rclone'))];

function findRclone() {
  return RCLONE_CANDIDATES.find((file) => {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// A real S3 server speaking the REST protocol with signature v4: the one the CI script started for
// the whole run (EVA_TEST_S3_ENDPOINT, EVA_TEST_S3_ACCESS_KEY, EVA_TEST_S3_SECRET_KEY), else an
// `rclone serve s3` spawned here on a temp folder (a bucket is a top-level folder). Each test makes
// its own bucket with bucket(); stop() deletes them and ends what was spawned.
class TestS3 {
  static async start() {
    const s3 = new TestS3();
    const { EVA_TEST_S3_ENDPOINT: endpoint, EVA_TEST_S3_ACCESS_KEY: accessKeyId, EVA_TEST_S3_SECRET_KEY: secretAccessKey } = process.env;
    if (endpoint) {
      if (!accessKeyId || !secretAccessKey) throw new Error('EVA_TEST_S3_ENDPOINT is set: EVA_TEST_S3_ACCESS_KEY and EVA_TEST_S3_SECRET_KEY must be set too');
      Object.assign(s3, { endpoint, accessKeyId, secretAccessKey });
    } else {
      await s3.spawnRclone();
    }
    s3.client = s3.makeClient();
    let answer;
    try {
      answer = await waitFor(() => (s3.rclone && !s3.child ? 'exited' : s3.client.send(new ListBucketsCommand({}))),
        { timeout: 15000, interval: 100, what: `the S3 server at ${s3.endpoint} to answer` });
    } catch (err) {
      await s3.stop();
      throw new Error(`${err.message}${s3.stderr ? `\nrclone said: ${s3.stderr.slice(-2000)}` : ''}`);
    }
    if (answer === 'exited') {
      await s3.stop();
      throw new Error(`${s3.rclone} exited instead of serving S3 (\`rclone serve s3\` needs rclone >= 1.65): ${s3.stderr.slice(-2000)}`);
    }
    return s3;
  }

  constructor() {
    this.buckets = [];
    this.child = null;
    this.rclone = null;
    this.stderr = '';
  }

  async spawnRclone() {
    const rclone = findRclone();
    this.rclone = rclone;
    if (!rclone) {
      throw new Error(`the S3 media tests need a real S3-compatible server: set EVA_TEST_S3_ENDPOINT, EVA_TEST_S3_ACCESS_KEY and EVA_TEST_S3_SECRET_KEY, or install rclone (looked for ${RCLONE_CANDIDATES[0]} and rclone on PATH; the Python dev dependencies install it in ../.venv)`);
    }
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'eva-s3-'));
    this.accessKeyId = 'evatestkey';
    this.secretAccessKey = crypto.randomBytes(16).toString('hex');
    const port = await freePort();
    this.endpoint = `http://127.0.0.1:${port}`;
    this.child = spawn(rclone, ['serve', 's3', '--auth-key', `${this.accessKeyId},${this.secretAccessKey}`, '--addr', `127.0.0.1:${port}`, this.root],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr.on('data', (chunk) => { this.stderr = (this.stderr + chunk).slice(-10000); });
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.exited.then(() => { this.child = null; });
    // Never leave an rclone behind, even when the test process dies without running `after`.
    this.killOnExit = () => { if (this.child) this.child.kill('SIGKILL'); };
    process.once('exit', this.killOnExit);
  }

  makeClient({ secretAccessKey = this.secretAccessKey } = {}) {
    return new S3Client({
      endpoint: this.endpoint, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: this.accessKeyId, secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  // Settings for S3MediaStorage, as config.js builds them.
  settings(bucket, overrides = {}) {
    return {
      bucket, endpoint: this.endpoint, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: this.accessKeyId, secretAccessKey: this.secretAccessKey }, ...overrides,
    };
  }

  // Environment of a gateway that stores its media in this bucket.
  env(bucket) {
    return {
      MEDIA_STORAGE: 's3', S3_BUCKET: bucket, S3_ENDPOINT: this.endpoint,
      S3_ACCESS_KEY_ID: this.accessKeyId, S3_SECRET_ACCESS_KEY: this.secretAccessKey,
    };
  }

  async bucket() {
    const name = `evatest-${crypto.randomUUID().slice(0, 8)}`;
    await this.client.send(new CreateBucketCommand({ Bucket: name }));
    this.buckets.push(name);
    return name;
  }

  async deleteBucket(name) {
    let token;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: name, ContinuationToken: token }));
      for (const { Key } of page.Contents || []) await this.client.send(new DeleteObjectCommand({ Bucket: name, Key }));
      token = page.NextContinuationToken;
    } while (token);
    await this.client.send(new DeleteBucketCommand({ Bucket: name }));
  }

  async stop() {
    if (this.client) {
      for (const name of this.buckets.splice(0)) await this.deleteBucket(name).catch(() => {});
      this.client.destroy();
    }
    if (this.child) {
      this.child.kill('SIGTERM');
      await this.exited;
    }
    if (this.killOnExit) process.removeListener('exit', this.killOnExit);
    if (this.root) fs.rmSync(this.root, { recursive: true, force: true });
  }
}

module.exports = { World, waitFor, readySession, contract, connectRedis, REDIS_URL, CONTRACTS_DIR, TestS3 };
