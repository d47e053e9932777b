'use strict';
// One WhatsApp session (one connected number) inside this gateway instance: owns the session lock,
// one whatsapp-web.js client at a time (rebuilt on disconnect with backoff), the inbound publishing
// and the consumer of the session's outbound stream.
const fs = require('fs');
const { SessionLock } = require('./lock');
const { StreamConsumer, PermanentError } = require('./streams');
const { ContractError } = require('./contract');
const { inboundKey, sha256Hex } = require('./storage');
const { Pacer, backoffDelay, sleep } = require('./pacing');
const { removeStaleProfileLocks, profileDir } = require('./wwebjs');

const ACK_STATUS = { '-1': 'error', 0: 'pending', 1: 'sent', 2: 'delivered', 3: 'read', 4: 'played' };
const TOS_STATES = new Set(['TOS_BLOCK', 'SMB_TOS_BLOCK']);
const UNPAIRED_STATES = new Set(['UNPAIRED', 'UNPAIRED_IDLE']);
const PHONE_RE = /^[0-9]{5,20}$/;

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

function isoFromEpochSeconds(seconds) {
  return Number.isFinite(seconds) && seconds > 0 ? new Date(seconds * 1000).toISOString() : new Date().toISOString();
}

function phoneFromJid(jid) {
  const m = /^(\d+)(?::\d+)?@(c\.us|s\.whatsapp\.net)$/.exec(jid || '');
  return m && PHONE_RE.test(m[1]) ? m[1] : null;
}

class Session {
  constructor(ctx, { sessionId, tenantSchema }) {
    this.ctx = ctx; // { config, redis, keys, contract, storage, logger, clientFactory, MessageMedia, publish, failCommand }
    this.sessionId = sessionId;
    this.tenantSchema = tenantSchema;
    this.log = ctx.logger.child({ session_id: sessionId, tenant_schema: tenantSchema });
    this.state = 'idle';
    this.waState = null;
    this.phone = null;
    this.attempt = 0;
    this.generation = 0;
    this.client = null;
    this.stopping = false;
    this.blocked = false;
    this.lastError = null;
    this.readySince = null;
    this.pacer = new Pacer(ctx.config.pacing);
    this.pendingSends = new Map(); // chat_id -> promise of an in-flight sendMessage
    this.sentIds = new Set(); // wa_ids the gateway sent (to tell them from messages typed on the phone)
    this.chatTails = new Map(); // chat_id -> tail of that chat's inbound processing chain
    this.timers = { ready: null, reconnect: null, lock: null };
    this.reconnectScheduled = false;
    const { config, keys } = ctx;
    this.outbound = new StreamConsumer({
      redis: ctx.redis,
      stream: keys.outbound(sessionId),
      group: keys.outboundGroup,
      consumer: config.gatewayId,
      groupStartId: '0', // commands written before the gateway first ran are still delivered
      blockMs: config.outboundBlockMs,
      retryIdleMs: config.outboundRetryIdleMs,
      maxDeliveries: config.outboundMaxDeliveries,
      trimEveryMs: config.outboundTrimEveryMs,
      handle: (entry) => this.executeCommand(entry),
      onFailure: (entry, err) => ctx.failCommand(entry, err, { sessionId, tenantSchema, deadStream: keys.deadOutbound }),
      logger: this.log,
    });
  }

  get ids() {
    return { sessionId: this.sessionId, tenantSchema: this.tenantSchema };
  }

  // ---- lifecycle -------------------------------------------------------------------------

  // Returns {started: true} or {started: false, holder} when another process holds the session.
  async start() {
    const { redis, keys, config } = this.ctx;
    this.lock = new SessionLock({ redis, key: keys.lock(this.sessionId), gatewayId: config.gatewayId, ttlMs: config.lockTtlMs });
    if (!(await this.lock.acquire())) {
      const holder = await this.lock.holder();
      await this.publishStatus('lock_conflict', { reason: `session is running elsewhere (lock holder ${holder})` });
      this.state = 'stopped';
      return { started: false, holder };
    }
    this.timers.lock = setInterval(() => this.refreshLock(), Math.max(50, Math.floor(config.lockTtlMs / 3)));
    await this.build();
    return { started: true };
  }

  async refreshLock() {
    try {
      if (await this.lock.refresh()) return;
      this.log.error('session lock lost; stopping this copy of the session');
      this.lockLost = true;
      await this.stop({ status: 'lock_lost', reason: 'session lock expired or was taken by another process' });
    } catch (err) {
      // Redis hiccup: the TTL leaves room for the next refresh.
      this.log.warn({ err }, 'session lock refresh failed');
    }
  }

  async build() {
    const { config, clientFactory } = this.ctx;
    const gen = ++this.generation;
    this.reconnectScheduled = false;
    // Safe only because we hold the session lock: no live Chromium of ours owns this profile.
    const removed = removeStaleProfileLocks(profileDir(config.sessionDir, this.sessionId));
    if (removed.length) this.log.warn({ removed }, 'removed stale Chromium profile locks');
    const client = clientFactory({
      sessionId: this.sessionId, sessionDir: config.sessionDir, chromiumPath: config.chromiumPath,
      chromiumArgs: config.chromiumArgs, headless: config.headless, qrMaxRetries: config.qrMaxRetries,
    });
    this.client = client;
    this.qrCount = 0;
    const on = (event, fn) => client.on(event, (...args) => {
      if (gen !== this.generation || this.stopping) return; // late event of a client we already dropped
      Promise.resolve().then(() => fn(...args)).catch((err) => this.log.error({ err, event }, 'client event handler failed'));
    });
    on('qr', (qr) => this.onQr(qr));
    on('authenticated', () => this.onAuthenticated());
    on('auth_failure', (msg) => this.onAuthFailure(msg));
    on('ready', () => this.onReady());
    on('change_state', (state) => this.onChangeState(state));
    on('disconnected', (reason) => this.onDisconnected(reason));
    on('message', (msg) => this.onMessage(msg));
    on('message_create', (msg) => this.onMessageCreate(msg));
    on('message_ack', (msg, ack) => this.onMessageAck(msg, ack));
    this.state = 'starting';
    await this.publishStatus('starting');
    // Stopped (or rebuilt) while the status was being published: stop() has closed this client
    // already; initializing it now would launch a browser nobody closes.
    if (gen !== this.generation || this.stopping) return;
    this.armReadyTimer();
    Promise.resolve()
      .then(() => client.initialize())
      .catch((err) => {
        if (gen !== this.generation || this.stopping) return;
        this.lastError = err.message;
        this.log.error({ err }, 'client initialize failed');
        this.publishStatus('failed', { reason: `initialize failed: ${err.message}` })
          .finally(() => this.scheduleReconnect(`initialize failed: ${err.message}`));
      });
  }

  armReadyTimer() {
    clearTimeout(this.timers.ready);
    const ms = this.ctx.config.readyTimeoutMs;
    this.timers.ready = setTimeout(() => {
      if (this.stopping || this.state === 'ready') return;
      this.log.error({ ready_timeout_ms: ms }, 'session not ready in time');
      this.publishStatus('not_ready', { reason: `not ready within ${ms} ms` })
        .finally(() => this.scheduleReconnect('not_ready'));
    }, ms);
  }

  async onQr(qr) {
    // Waiting for a person to scan is not a stuck browser: no alarm while a QR is up.
    clearTimeout(this.timers.ready);
    this.qrCount += 1;
    this.state = 'qr';
    await this.ctx.publish(this.ctx.contract.build('qr', this.ids, { qr, attempt: this.qrCount, gateway_id: this.ctx.config.gatewayId }));
    await this.publishStatus('qr');
  }

  async onAuthenticated() {
    this.state = 'authenticated';
    this.armReadyTimer();
    await this.publishStatus('authenticated');
  }

  async onAuthFailure(message) {
    this.lastError = String(message || 'auth failure');
    await this.publishStatus('auth_failure', { reason: this.lastError });
    await this.scheduleReconnect('auth_failure');
  }

  async onReady() {
    clearTimeout(this.timers.ready);
    const generation = this.generation;
    this.state = 'ready';
    this.attempt = 0;
    this.readySince = new Date().toISOString();
    this.waState = 'CONNECTED';
    const user = this.client && this.client.info && this.client.info.wid && this.client.info.wid.user;
    this.phone = PHONE_RE.test(user || '') ? user : null;
    await this.publishStatus('ready');
    // Stopped or torn down while the status was being published: their outbound.stop() has run
    // already, and a consumer started now would hold a Redis connection nobody closes.
    if (this.stopping || generation !== this.generation) return;
    this.outbound.start();
  }

  async onChangeState(state) {
    this.waState = String(state);
    let status = 'state_changed';
    if (TOS_STATES.has(this.waState)) {
      status = 'tos_block';
      this.blocked = true;
    } else if (UNPAIRED_STATES.has(this.waState)) {
      status = 'unpaired';
    }
    await this.publishStatus(status);
  }

  async onDisconnected(reason) {
    const text = String(reason || 'unknown');
    await this.publishStatus('disconnected', { reason: text });
    if (TOS_STATES.has(text) || this.blocked) {
      // A banned number must not be hammered with reconnects: an operator decides (stop/start).
      this.blocked = true;
      await this.teardownClient();
      this.state = 'blocked';
      this.log.error({ reason: text }, 'number blocked by WhatsApp; not reconnecting');
      return;
    }
    await this.scheduleReconnect(text);
  }

  async scheduleReconnect(reason) {
    if (this.stopping || this.reconnectScheduled) return;
    this.reconnectScheduled = true;
    clearTimeout(this.timers.ready);
    await this.teardownClient();
    if (this.stopping) return;
    const { reconnectBaseMs, reconnectMaxMs } = this.ctx.config;
    const delay = backoffDelay(this.attempt, { baseMs: reconnectBaseMs, maxMs: reconnectMaxMs });
    this.attempt += 1;
    this.state = 'reconnecting';
    this.lastError = reason;
    await this.publishStatus('reconnecting', { reason, retry_in_ms: delay });
    this.log.warn({ reason, attempt: this.attempt, retry_in_ms: delay }, 'rebuilding client after backoff');
    this.timers.reconnect = setTimeout(() => {
      this.timers.reconnect = null;
      if (this.stopping) return;
      this.build().catch((err) => {
        this.log.error({ err }, 'client rebuild failed');
        this.reconnectScheduled = false;
        this.scheduleReconnect(`rebuild failed: ${err.message}`);
      });
    }, delay);
  }

  // Drop the current client: stop consuming outbound (in-flight sends finish first), ignore its late events, close it.
  async teardownClient() {
    this.generation += 1;
    this.readySince = null;
    await this.outbound.stop();
    const client = this.client;
    this.client = null;
    if (!client) return;
    try {
      await withTimeout(Promise.resolve(client.destroy()), 10000, 'client.destroy');
    } catch (err) {
      this.log.warn({ err }, 'client destroy failed');
    }
  }

  async stop({ logout = false, status, reason = null } = {}) {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.timers.ready);
    clearTimeout(this.timers.reconnect);
    clearInterval(this.timers.lock);
    await this.outbound.stop();
    await Promise.allSettled([...this.chatTails.values()]);
    const client = this.client;
    this.client = null;
    this.generation += 1;
    if (client) {
      if (logout) {
        try {
          await withTimeout(Promise.resolve(client.logout()), 15000, 'client.logout');
        } catch (err) {
          this.log.warn({ err }, 'client logout failed');
        }
      }
      try {
        await withTimeout(Promise.resolve(client.destroy()), 10000, 'client.destroy');
      } catch (err) {
        this.log.warn({ err }, 'client destroy failed');
      }
    }
    if (logout && !this.lockLost) {
      // Logout means "forget this pairing", even when WhatsApp Web was not up to hear it (client
      // still starting, QR on screen): otherwise the next start would reuse the old profile.
      try {
        await fs.promises.rm(profileDir(this.ctx.config.sessionDir, this.sessionId), { recursive: true, force: true });
      } catch (err) {
        this.log.warn({ err }, 'could not remove the LocalAuth profile');
      }
    }
    if (this.lock && !this.lockLost) {
      try {
        await this.lock.release();
      } catch (err) {
        this.log.warn({ err }, 'lock release failed (it expires by itself)');
      }
    }
    this.state = logout ? 'logged_out' : 'stopped';
    await this.publishStatus(status || this.state, { reason });
  }

  health() {
    return {
      session_id: this.sessionId,
      tenant_schema: this.tenantSchema,
      state: this.state,
      wa_state: this.waState,
      phone: this.phone,
      ready_since: this.readySince,
      reconnect_attempt: this.attempt,
      last_error: this.lastError,
      outbound_in_flight: this.outbound.inFlight,
    };
  }

  async publishStatus(status, { reason = null, retry_in_ms = null } = {}) {
    const doc = this.ctx.contract.build('session_status', this.ids, {
      status, wa_state: this.waState, reason: reason === null ? null : String(reason).slice(0, 2000), phone: this.phone,
      gateway_id: this.ctx.config.gatewayId, attempt: this.attempt, retry_in_ms,
    });
    this.log.info({ status, wa_state: this.waState, reason }, 'session status');
    try {
      await this.ctx.publish(doc);
    } catch (err) {
      this.log.error({ err, status }, 'could not publish session status');
    }
  }

  // ---- inbound ---------------------------------------------------------------------------

  // Messages of one chat are published in the order WhatsApp delivered them, while a slow media
  // download in one chat does not hold up the others.
  inChatOrder(chatId, fn) {
    const prev = this.chatTails.get(chatId) || Promise.resolve();
    const next = prev.then(fn).catch((err) => this.log.error({ err, chat_id: chatId }, 'inbound processing failed'));
    this.chatTails.set(chatId, next);
    next.finally(() => { if (this.chatTails.get(chatId) === next) this.chatTails.delete(chatId); });
    return next;
  }

  onMessage(msg) {
    if (msg.fromMe || msg.isStatus || msg.from === 'status@broadcast') return undefined;
    return this.inChatOrder(msg.from, () => this.publishMessage(msg));
  }

  async publishMessage(msg) {
    const { redis, keys, contract } = this.ctx;
    const chatId = msg.from;
    // Remembered so reply-only pacing can tell a reply from cold outreach.
    await redis.sadd(keys.contacted(this.sessionId), chatId);
    const sender = msg.author || msg.from;
    const doc = contract.build('message', this.ids, {
      ...(await this.messageFields(msg, chatId)),
      from: sender,
      from_phone: await this.resolvePhone(sender),
      push_name: (msg._data && msg._data.notifyName) || null,
    });
    await this.ctx.publish(doc);
    this.log.info({ wa_id: doc.wa_id, msg_type: doc.msg_type, media: !!doc.media, media_error: doc.media_error && doc.media_error.code }, 'inbound message published');
  }

  onMessageCreate(msg) {
    if (!msg.fromMe) return undefined;
    const chatId = msg.to;
    return this.inChatOrder(chatId, async () => {
      // message_create also fires for messages the gateway itself sends, possibly before
      // sendMessage resolved: wait for that send, then compare ids.
      const pending = this.pendingSends.get(chatId);
      if (pending) await pending.catch(() => {});
      if (this.sentIds.has(msg.id._serialized)) return;
      const doc = this.ctx.contract.build('outgoing_from_phone', this.ids, {
        ...(await this.messageFields(msg, chatId)),
        to: chatId,
        to_phone: await this.resolvePhone(chatId),
      });
      await this.ctx.publish(doc);
      this.log.info({ wa_id: doc.wa_id }, 'message sent from the phone published (handoff signal)');
    });
  }

  async messageFields(msg, chatId) {
    const { media, media_error } = await this.storeMedia(msg);
    let quoted = null;
    if (msg.hasQuotedMsg && typeof msg.getQuotedMessage === 'function') {
      try {
        const q = await msg.getQuotedMessage();
        quoted = (q && q.id && q.id._serialized) || null;
      } catch (err) {
        this.log.warn({ err }, 'could not read quoted message');
      }
    }
    return {
      wa_id: msg.id._serialized,
      chat_id: chatId,
      msg_type: msg.type || 'chat',
      body: typeof msg.body === 'string' ? msg.body : '',
      wa_timestamp: isoFromEpochSeconds(msg.timestamp),
      has_media: !!msg.hasMedia,
      media,
      media_error,
      quoted_wa_id: quoted,
      is_group: chatId.endsWith('@g.us'),
    };
  }

  async resolvePhone(jid) {
    const direct = phoneFromJid(jid);
    if (direct) return direct;
    if (!/@lid$/.test(jid || '') || !this.client || typeof this.client.getContactLidAndPhone !== 'function') return null;
    try {
      const [row] = await this.client.getContactLidAndPhone([jid]);
      return phoneFromJid(row && row.pn);
    } catch (err) {
      this.log.warn({ err, jid }, 'could not resolve @lid to a phone number');
      return null;
    }
  }

  async storeMedia(msg) {
    if (!msg.hasMedia) return { media: null, media_error: null };
    const { config, storage } = this.ctx;
    let downloaded;
    try {
      downloaded = await withTimeout(Promise.resolve(msg.downloadMedia()), config.mediaDownloadTimeoutMs, 'media download');
    } catch (err) {
      this.log.warn({ err, wa_id: msg.id._serialized }, 'media download failed');
      return { media: null, media_error: { code: 'media_download_failed', message: String(err.message).slice(0, 2000) } };
    }
    // whatsapp-web.js resolves undefined when WhatsApp no longer has the media (expired, deleted, 404).
    if (!downloaded || !downloaded.data) {
      return { media: null, media_error: { code: 'media_expired', message: 'WhatsApp no longer has this media (expired or deleted); ask the customer to send it again' } };
    }
    const buffer = Buffer.from(downloaded.data, 'base64');
    if (buffer.length > config.mediaMaxBytes) {
      return { media: null, media_error: { code: 'media_too_large', message: `media is ${buffer.length} bytes, limit is ${config.mediaMaxBytes}` } };
    }
    const mime = downloaded.mimetype || 'application/octet-stream';
    const sha256 = sha256Hex(buffer);
    try {
      const key = inboundKey({ tenantSchema: this.tenantSchema, sessionId: this.sessionId, sha256, mime });
      const stored = await storage.put(key, buffer, { contentType: mime });
      return { media: { key, mime, size: stored.size, sha256: stored.sha256, filename: downloaded.filename || null }, media_error: null };
    } catch (err) {
      // The message itself still goes through, with the reason, rather than being lost.
      this.log.error({ err }, 'media storage write failed');
      return { media: null, media_error: { code: 'media_store_failed', message: String(err.message).slice(0, 2000) } };
    }
  }

  async onMessageAck(msg, ack) {
    await this.publishAck({ waId: msg.id._serialized, chatId: msg.fromMe ? msg.to : msg.from, ack, commandEventId: null });
  }

  async publishAck({ waId, chatId, ack, commandEventId }) {
    const level = Number.isInteger(ack) && ack >= -1 && ack <= 4 ? ack : 0;
    const doc = this.ctx.contract.build('message_ack', this.ids, {
      wa_id: waId, chat_id: chatId, ack: level, status: ACK_STATUS[level], command_event_id: commandEventId,
    });
    await this.ctx.publish(doc);
  }

  // ---- outbound --------------------------------------------------------------------------

  async executeCommand(entry) {
    let doc;
    try {
      doc = this.ctx.contract.parse(entry.fields.event, { direction: 'outbound' });
    } catch (err) {
      if (err instanceof ContractError) throw new PermanentError(err.code === 'invalid_json' ? 'invalid_json' : 'invalid_command', err.message);
      throw err;
    }
    if (doc.session_id !== this.sessionId) throw new PermanentError('wrong_session', `command for session ${doc.session_id} on the stream of ${this.sessionId}`);
    // A command must never reach another tenant's customers.
    if (doc.tenant_schema !== this.tenantSchema) throw new PermanentError('wrong_tenant', `command for tenant ${doc.tenant_schema}, session belongs to ${this.tenantSchema}`);
    if (doc.expires_at && Date.parse(doc.expires_at) < Date.now()) throw new PermanentError('expired', `command expired at ${doc.expires_at}`);
    const client = this.client;
    if (!client || this.state !== 'ready') throw new Error(`session not ready (${this.state})`);
    switch (doc.type) {
      case 'mark_read':
        await client.sendSeen(doc.chat_id);
        return;
      case 'typing': {
        const chat = await client.getChatById(doc.chat_id);
        if (doc.state === 'typing') await chat.sendStateTyping();
        else if (doc.state === 'recording') await chat.sendStateRecording();
        else await chat.clearState();
        return;
      }
      case 'send_text':
      case 'send_media':
        await this.send(client, doc);
        return;
      default:
        throw new PermanentError('invalid_command', `unsupported command ${doc.type}`);
    }
  }

  async send(client, doc) {
    const { redis, keys, config, storage, MessageMedia } = this.ctx;
    const sentKey = keys.sent(this.sessionId, doc.event_id);
    // Redelivery after a crash between sendMessage and XACK: do not message the customer twice.
    const already = await redis.get(sentKey);
    if (already) {
      const prior = JSON.parse(already);
      this.log.warn({ command_event_id: doc.event_id, wa_id: prior.wa_id }, 'command already sent; acknowledging without resending');
      await this.publishAck({ waId: prior.wa_id, chatId: doc.chat_id, ack: prior.ack, commandEventId: doc.event_id });
      return;
    }
    if (config.replyOnly && !(await redis.sismember(keys.contacted(this.sessionId), doc.chat_id))) {
      throw new PermanentError('cold_outreach_blocked', `REPLY_ONLY: ${doc.chat_id} never wrote to this number`);
    }
    let content;
    const options = {};
    if (doc.quoted_wa_id) options.quotedMessageId = doc.quoted_wa_id;
    if (doc.type === 'send_text') {
      content = doc.text;
    } else {
      let buffer;
      try {
        buffer = await storage.read(doc.media.key);
      } catch (err) {
        // A missing blob will not appear by retrying: fail now. Storage that is unreachable or
        // refuses us may come back: retried, then dead-lettered after OUTBOUND_MAX_DELIVERIES.
        if (err.code === 'media_not_found' || err.code === 'invalid_media_key') throw new PermanentError('media_not_found', err.message);
        throw err;
      }
      if (buffer.length !== doc.media.size || sha256Hex(buffer) !== doc.media.sha256) {
        throw new PermanentError('media_checksum_mismatch', `media ${doc.media.key} does not match its size/sha256`);
      }
      content = MessageMedia(doc.media.mime, buffer.toString('base64'), doc.media.filename, buffer.length);
      if (doc.caption) options.caption = doc.caption;
      if (doc.as_voice) options.sendAudioAsVoice = true;
      if (doc.as_document) options.sendMediaAsDocument = true;
    }
    await this.pacer.waitTurn(doc.chat_id);
    const typingMs = this.pacer.typingMsFor(doc.type === 'send_text' ? doc.text : doc.caption || 'media');
    if (typingMs > 0) {
      try {
        const chat = await client.getChatById(doc.chat_id);
        await (doc.as_voice ? chat.sendStateRecording() : chat.sendStateTyping());
        await sleep(typingMs);
      } catch (err) {
        this.log.warn({ err }, 'typing state failed; sending anyway');
      }
    }
    const sending = Promise.resolve(client.sendMessage(doc.chat_id, content, options));
    this.pendingSends.set(doc.chat_id, sending);
    let msg;
    try {
      msg = await sending;
    } finally {
      if (this.pendingSends.get(doc.chat_id) === sending) this.pendingSends.delete(doc.chat_id);
    }
    this.pacer.recordSend(doc.chat_id);
    const waId = msg.id._serialized;
    this.sentIds.add(waId);
    if (this.sentIds.size > 5000) this.sentIds.delete(this.sentIds.values().next().value);
    const ack = Number.isInteger(msg.ack) ? msg.ack : 0;
    await redis.set(sentKey, JSON.stringify({ wa_id: waId, ack }), 'EX', config.sentDedupeTtlS);
    await this.publishAck({ waId, chatId: doc.chat_id, ack, commandEventId: doc.event_id });
    this.log.info({ command_event_id: doc.event_id, wa_id: waId, type: doc.type }, 'outbound message sent');
  }
}

module.exports = { Session, phoneFromJid, ACK_STATUS };
