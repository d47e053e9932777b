'use strict';
// A gateway-node instance: Redis connection, the contract, media storage, the control-stream
// consumer, the sessions it runs, and the /healthz endpoint.
const http = require('http');
const Redis = require('ioredis');
const { keys: makeKeys } = require('./keys');
const { loadContract, ContractError } = require('./contract');
const { createMediaStorage } = require('./storage');
const { StreamConsumer, PermanentError } = require('./streams');
const { Session } = require('./session');
const wwebjs = require('./wwebjs');
const { createLogger } = require('./logger');

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SESSION_RE = /^[A-Za-z0-9_-]{1,64}$/;
const TENANT_RE = /^[_a-zA-Z0-9]{1,63}$/;
const CHAT_RE = /^[^@\s]+@[a-z.]+$/;

// Fields of a command that could not be parsed or validated, kept only where they are well formed.
function salvage(raw) {
  let doc = null;
  try { doc = JSON.parse(raw); } catch { /* not JSON */ }
  const pick = (v, re, max = 128) => (typeof v === 'string' && v.length <= max && re.test(v) ? v : null);
  if (!doc || typeof doc !== 'object') return { eventId: null, type: null, chatId: null, sessionId: null, tenantSchema: null };
  return {
    eventId: pick(doc.event_id, UUID_RE),
    type: pick(doc.type, /^[a-z_]{1,64}$/),
    chatId: pick(doc.chat_id, CHAT_RE),
    sessionId: pick(doc.session_id, SESSION_RE),
    tenantSchema: pick(doc.tenant_schema, TENANT_RE),
  };
}

class Gateway {
  constructor(config, { clientFactory = wwebjs.createClient, MessageMedia = wwebjs.MessageMedia, logger } = {}) {
    this.config = config;
    this.clientFactory = clientFactory;
    this.MessageMedia = MessageMedia;
    this.logger = logger || createLogger({ level: config.logLevel, gatewayId: config.gatewayId });
    this.keys = makeKeys(config.keyPrefix);
    this.sessions = new Map();
    this.retryTimers = new Map();
    this.shuttingDown = false;
  }

  async start() {
    const { config } = this;
    this.contract = loadContract(config.contractsDir);
    this.storage = createMediaStorage(config);
    this.redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
    this.redis.on('error', (err) => this.logger.error({ err: { message: err.message } }, 'redis connection error'));
    await this.redis.connect();
    await this.redis.ping();
    this.ctx = {
      config, redis: this.redis, keys: this.keys, contract: this.contract, storage: this.storage, logger: this.logger,
      clientFactory: this.clientFactory, MessageMedia: this.MessageMedia,
      publish: (doc) => this.publish(doc),
      failCommand: (entry, err, where) => this.failCommand(entry, err, where),
    };
    this.control = new StreamConsumer({
      redis: this.redis,
      stream: this.keys.control,
      group: this.keys.controlGroup(config.gatewayId),
      consumer: config.gatewayId,
      // A new instance acts on commands from now on, not on the whole history of the stream.
      groupStartId: '$',
      blockMs: config.outboundBlockMs,
      retryIdleMs: config.outboundRetryIdleMs,
      maxDeliveries: 3,
      handle: (entry) => this.handleControl(entry),
      onFailure: (entry, err) => this.failCommand(entry, err, { deadStream: this.keys.deadControl }),
      logger: this.logger.child({ stream: this.keys.control }),
    });
    this.control.start();
    await this.startHealthServer();
    // Sessions to run at boot: SESSIONS plus those this instance was running before a restart.
    const owned = await this.redis.hgetall(this.keys.ownedSessions(config.gatewayId));
    const boot = new Map(Object.entries(owned));
    for (const { sessionId, tenantSchema } of config.sessions) boot.set(sessionId, tenantSchema);
    for (const [sessionId, tenantSchema] of boot) {
      await this.startSession(sessionId, tenantSchema).catch((err) => this.logger.error({ err, session_id: sessionId }, 'boot start failed'));
    }
    this.logger.info({ sessions: [...boot.keys()], health_port: this.healthPort, media_storage: this.storage.describe() }, 'gateway started');
  }

  async publish(doc) {
    return this.redis.xadd(this.keys.inbound, '*', 'event', JSON.stringify(doc));
  }

  async startSession(sessionId, tenantSchema) {
    let existing = this.sessions.get(sessionId);
    if (existing && !existing.stopping && existing.state === 'blocked') {
      // An operator's explicit start after a TOS block: try again from scratch.
      await existing.stop({ reason: 'restart requested' });
      existing = null;
    }
    if (existing && !existing.stopping) {
      if (existing.tenantSchema !== tenantSchema) {
        throw new PermanentError('wrong_tenant', `session ${sessionId} runs for tenant ${existing.tenantSchema}`);
      }
      await existing.publishStatus(existing.state === 'ready' ? 'ready' : 'starting', { reason: 'already running in this instance' });
      return existing;
    }
    clearTimeout(this.retryTimers.get(sessionId));
    this.retryTimers.delete(sessionId);
    const session = new Session(this.ctx, { sessionId, tenantSchema });
    this.sessions.set(sessionId, session);
    const result = await session.start();
    if (!result.started) {
      this.sessions.delete(sessionId);
      // Our own lock from before a crash/restart: it expires within LOCK_TTL_MS, then take over.
      if (result.holder && result.holder.startsWith(`${this.config.gatewayId}|`) && !this.shuttingDown) {
        const timer = setTimeout(() => {
          this.retryTimers.delete(sessionId);
          this.startSession(sessionId, tenantSchema).catch((err) => this.logger.error({ err }, 'session start retry failed'));
        }, this.config.lockTtlMs);
        timer.unref();
        this.retryTimers.set(sessionId, timer);
      }
      return null;
    }
    await this.redis.hset(this.keys.ownedSessions(this.config.gatewayId), sessionId, tenantSchema);
    return session;
  }

  async stopSession(sessionId, { logout = false } = {}) {
    clearTimeout(this.retryTimers.get(sessionId));
    this.retryTimers.delete(sessionId);
    const session = this.sessions.get(sessionId);
    if (!session) return false;
    await session.stop({ logout });
    this.sessions.delete(sessionId);
    await this.redis.hdel(this.keys.ownedSessions(this.config.gatewayId), sessionId);
    return true;
  }

  async handleControl(entry) {
    let doc;
    try {
      doc = this.contract.parse(entry.fields.event, { direction: 'control' });
    } catch (err) {
      if (err instanceof ContractError) throw new PermanentError(err.code === 'invalid_json' ? 'invalid_json' : 'invalid_command', err.message);
      throw err;
    }
    if (doc.gateway_id && doc.gateway_id !== this.config.gatewayId) return; // addressed to another instance
    this.logger.info({ type: doc.type, session_id: doc.session_id, tenant_schema: doc.tenant_schema }, 'control command');
    if (doc.type === 'start') {
      await this.startSession(doc.session_id, doc.tenant_schema);
    } else {
      const session = this.sessions.get(doc.session_id);
      if (!session) return; // running in another instance (or nowhere): that instance acts on it
      if (session.tenantSchema !== doc.tenant_schema) {
        throw new PermanentError('wrong_tenant', `session ${doc.session_id} belongs to another tenant`);
      }
      await this.stopSession(doc.session_id, { logout: doc.type === 'logout' });
    }
  }

  // A command that will not be executed: keep the raw entry in a dead-letter stream, tell Django
  // through command_failed (when the session and tenant are known), and log it.
  async failCommand(entry, err, { sessionId, tenantSchema, deadStream }) {
    const raw = typeof entry.fields.event === 'string' ? entry.fields.event : '';
    const error = { code: err.code && /^[a-z][a-z0-9_]{0,63}$/.test(err.code) ? err.code : 'command_failed', message: String(err.message).slice(0, 2000) };
    const deadId = await this.redis.xadd(deadStream, '*',
      'event', raw, 'error', JSON.stringify(error), 'source_stream', entry.stream, 'source_id', entry.id,
      'deliveries', String(entry.deliveries), 'gateway_id', this.config.gatewayId);
    const found = salvage(raw);
    const sid = sessionId || found.sessionId;
    const tenant = tenantSchema || found.tenantSchema;
    this.logger.warn({ stream: entry.stream, entry_id: entry.id, error, dead_letter_id: deadId }, 'command dead-lettered');
    if (!sid || !tenant) return;
    await this.publish(this.contract.build('command_failed', { sessionId: sid, tenantSchema: tenant }, {
      command_event_id: found.eventId, command_type: found.type, chat_id: found.chatId, stream: entry.stream, entry_id: entry.id,
      deliveries: Math.max(1, entry.deliveries), error, dead_letter_id: deadId, gateway_id: this.config.gatewayId,
    }));
  }

  async health() {
    let redis = 'ok';
    try {
      await Promise.race([this.redis.ping(), new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 1000))]);
    } catch {
      redis = 'unreachable';
    }
    const sessions = [...this.sessions.values()].map((s) => s.health());
    return {
      status: redis === 'ok' && !this.shuttingDown ? 'ok' : 'unhealthy',
      gateway_id: this.config.gatewayId,
      redis,
      media_storage: this.storage.kind,
      sessions,
    };
  }

  startHealthServer() {
    this.httpServer = http.createServer((req, res) => {
      if (req.method !== 'GET' || req.url.split('?')[0] !== '/healthz') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"error":"not found"}');
        return;
      }
      this.health().then((body) => {
        // Sessions waiting for a QR scan are not a reason to restart the container: only Redis is.
        res.writeHead(body.status === 'ok' ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      });
    });
    return new Promise((resolve, reject) => {
      this.httpServer.once('error', reject);
      this.httpServer.listen(this.config.healthPort, this.config.healthHost, () => {
        this.healthPort = this.httpServer.address().port;
        resolve();
      });
    });
  }

  // SIGTERM: stop taking commands, let in-flight sends finish, close clients (keeping their
  // pairing and their place in the owned-sessions list, so a restart resumes them), release locks.
  async shutdown() {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const timer of this.retryTimers.values()) clearTimeout(timer);
    const work = (async () => {
      if (this.control) await this.control.stop();
      await Promise.allSettled([...this.sessions.values()].map((s) => s.stop({ status: 'stopped', reason: 'gateway shutdown' })));
      this.sessions.clear();
    })();
    let timer;
    await Promise.race([work, new Promise((resolve) => { timer = setTimeout(() => { this.logger.error('shutdown timed out'); resolve(); }, this.config.shutdownTimeoutMs); })]);
    clearTimeout(timer);
    if (this.httpServer) await new Promise((resolve) => this.httpServer.close(() => resolve()));
    if (this.redis) await this.redis.quit().catch(() => this.redis.disconnect());
    if (this.storage) await this.storage.close();
    this.logger.info('gateway stopped');
  }
}

module.exports = { Gateway, salvage };
