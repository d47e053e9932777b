'use strict';
// A stand-in for whatsapp-web.js's Client, used at the library boundary in tests: same method
// names, same events, message objects with the same fields (id._serialized, from, to, author,
// body, type, timestamp, hasMedia, downloadMedia(), fromMe, ack, _data.notifyName).
// Nothing here talks to WhatsApp.
const { EventEmitter } = require('events');
const crypto = require('crypto');

let counter = 0;
const nextId = () => `${Date.now().toString(16).toUpperCase()}${(counter += 1).toString(16).toUpperCase()}`;

class FakeMessage {
  constructor({ fromMe = false, from, to, author, body = '', type = 'chat', timestamp, hasMedia = false, media, ack = 0, notifyName = null, id }) {
    const remote = fromMe ? to : from;
    const raw = id || nextId();
    this.id = { fromMe, remote, id: raw, _serialized: `${fromMe}_${remote}_${raw}` };
    Object.assign(this, { fromMe, from, to, author, body, type, hasMedia, ack });
    this.timestamp = timestamp || Math.floor(Date.now() / 1000);
    this.hasQuotedMsg = false;
    this.isStatus = false;
    this._data = { notifyName };
    this._media = media; // Buffer-like {mimetype, data: Buffer, filename} | 'expired' | Error
  }

  async downloadMedia() {
    if (!this.hasMedia) return undefined;
    if (this._media === 'expired' || this._media === undefined) return undefined;
    if (this._media instanceof Error) throw this._media;
    const { mimetype, data, filename = null } = this._media;
    return { mimetype, data: Buffer.from(data).toString('base64'), filename, filesize: data.length };
  }
}

class FakeChat {
  constructor(client, id) {
    this.client = client;
    this.id = { _serialized: id };
  }

  async sendStateTyping() { this.client.calls.chatState.push({ chatId: this.id._serialized, state: 'typing' }); }
  async sendStateRecording() { this.client.calls.chatState.push({ chatId: this.id._serialized, state: 'recording' }); }
  async clearState() { this.client.calls.chatState.push({ chatId: this.id._serialized, state: 'paused' }); }
}

class FakeClient extends EventEmitter {
  // behaviour: { autoReady: bool (default true), phone, sendError: fn(chatId, content) -> Error|null,
  //   sendDelayMs, lidMap: {lid: pn}, initializeError }
  constructor(options = {}, behaviour = {}) {
    super();
    this.options = options;
    this.behaviour = { autoReady: true, phone: '15550000001', lidMap: {}, ...behaviour };
    this.calls = { initialize: 0, sendMessage: [], sendSeen: [], destroy: 0, logout: 0, chatState: [] };
    this.info = null;
    this.state = null;
  }

  async initialize() {
    this.calls.initialize += 1;
    if (this.behaviour.initializeError) throw this.behaviour.initializeError;
    if (this.behaviour.autoReady) setImmediate(() => this.pair());
  }

  // What WhatsApp Web does after a QR scan (or with a saved session).
  pair() {
    this.emit('authenticated');
    this.info = { wid: { user: this.behaviour.phone, _serialized: `${this.behaviour.phone}@c.us` }, pushname: 'EVA test' };
    this.state = 'CONNECTED';
    this.emit('ready');
  }

  async sendMessage(chatId, content, options = {}) {
    if (this.behaviour.sendDelayMs) await new Promise((r) => setTimeout(r, this.behaviour.sendDelayMs));
    const err = this.behaviour.sendError && this.behaviour.sendError(chatId, content);
    if (err) throw err;
    const isMedia = typeof content !== 'string';
    const msg = new FakeMessage({
      fromMe: true, from: this.info ? this.info.wid._serialized : undefined, to: chatId,
      body: isMedia ? options.caption || '' : content, type: isMedia ? (options.sendAudioAsVoice ? 'ptt' : 'document') : 'chat',
      hasMedia: isMedia, ack: 1,
    });
    this.calls.sendMessage.push({ chatId, content, options, at: Date.now(), wa_id: msg.id._serialized });
    // Like WhatsApp Web, the client's own message also shows up as message_create.
    setImmediate(() => this.emit('message_create', msg));
    return msg;
  }

  async sendSeen(chatId) {
    this.calls.sendSeen.push(chatId);
    return true;
  }

  async getChatById(chatId) {
    return new FakeChat(this, chatId);
  }

  async getState() {
    return this.state;
  }

  async getContactLidAndPhone(userIds) {
    return userIds.map((lid) => ({ lid, pn: this.behaviour.lidMap[lid] }));
  }

  async destroy() {
    this.calls.destroy += 1;
  }

  async logout() {
    this.calls.logout += 1;
  }

  // ---- test helpers: the customer's side ----
  receive(fields) {
    const msg = new FakeMessage({ to: this.info ? this.info.wid._serialized : undefined, ...fields });
    this.emit('message', msg);
    this.emit('message_create', msg);
    return msg;
  }

  // The business typing on its own phone.
  typeOnPhone(fields) {
    const msg = new FakeMessage({ fromMe: true, from: this.info && this.info.wid._serialized, ack: 1, ...fields });
    this.emit('message_create', msg);
    return msg;
  }
}

// Returns a client factory with the Gateway's signature; every client built is kept in .clients.
function createFakeClientFactory(behaviour = {}) {
  const factory = (options) => {
    const b = typeof behaviour === 'function' ? behaviour(options, factory.clients.length) : behaviour;
    const client = new FakeClient(options, b);
    factory.clients.push(client);
    return client;
  };
  factory.clients = [];
  factory.forSession = (sessionId) => factory.clients.filter((c) => c.options.sessionId === sessionId);
  factory.latest = (sessionId) => factory.forSession(sessionId).slice(-1)[0];
  return factory;
}

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

module.exports = { FakeClient, FakeMessage, FakeChat, createFakeClientFactory, sha256 };
