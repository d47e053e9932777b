'use strict';
// Shared test setup: real Redis/Valkey (REDIS_URL, required), real files in a temp dir, a unique
// key prefix per gateway so tests never see each other's streams, and the fake WhatsApp client.
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const Redis = require('ioredis');
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

module.exports = { World, waitFor, readySession, contract, connectRedis, REDIS_URL, CONTRACTS_DIR };
