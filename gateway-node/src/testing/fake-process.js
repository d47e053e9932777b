'use strict';
// Fake WhatsApp for a real gateway process (GATEWAY_FAKE_WHATSAPP=1), so cross-language
// end-to-end tests can run bin/gateway.js without a phone. Driven through Redis:
//
//   <prefix>:fakewa:in    (test -> fake)  entries with field "event" = JSON
//     {"session_id": "...", "action": "receive", "from": "155...@c.us", "body": "hi",
//      "type": "chat", "notify_name": "Ana", "media": {"mimetype": "...", "data_b64": "...", "filename": null}
//      | "media": "expired"}
//     {"session_id": "...", "action": "type_on_phone", "to": "...@c.us", "body": "..."}
//     {"session_id": "...", "action": "ack", "wa_id": "...", "chat_id": "...", "ack": 3}
//     {"session_id": "...", "action": "qr", "qr": "..."} | {"action": "scan"}
//     {"session_id": "...", "action": "disconnect", "reason": "NAVIGATION"} | {"action": "state", "state": "TOS_BLOCK"}
//   <prefix>:fakewa:sent  (fake -> test)  one entry per sendMessage, field "event" = JSON
//     {"session_id", "chat_id", "text" | "media": {"mimetype", "size", "sha256", "filename"}, "options", "wa_id"}
//
// FAKE_WA_REQUIRE_QR=1: clients wait for "qr"/"scan" actions instead of pairing at once.
// FAKE_WA_AUTO_DELIVER=0: no automatic "delivered" ack (ack 2) 50 ms after each send.
const crypto = require('crypto');
const Redis = require('ioredis');
const { createFakeClientFactory } = require('./fake-client');

function createDrivenFakeFactory({ redisUrl, keyPrefix, logger, env = process.env }) {
  const inKey = `${keyPrefix}:fakewa:in`;
  const sentKey = `${keyPrefix}:fakewa:sent`;
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const reader = redis.duplicate();
  const autoDeliver = env.FAKE_WA_AUTO_DELIVER !== '0';
  const factory = createFakeClientFactory(() => ({ autoReady: env.FAKE_WA_REQUIRE_QR !== '1', phone: env.FAKE_WA_PHONE || '15550000001' }));
  const build = factory;
  const wrapped = (options) => {
    const client = build(options);
    const send = client.sendMessage.bind(client);
    client.sendMessage = async (chatId, content, opts = {}) => {
      const msg = await send(chatId, content, opts);
      const record = { session_id: options.sessionId, chat_id: chatId, options: { ...opts }, wa_id: msg.id._serialized };
      if (typeof content === 'string') record.text = content;
      else {
        const data = Buffer.from(content.data, 'base64');
        record.media = { mimetype: content.mimetype, size: data.length, sha256: crypto.createHash('sha256').update(data).digest('hex'), filename: content.filename || null };
      }
      await redis.xadd(sentKey, '*', 'event', JSON.stringify(record));
      if (autoDeliver) setTimeout(() => client.emit('message_ack', msg, 2), 50);
      return msg;
    };
    return client;
  };
  wrapped.clients = factory.clients;
  wrapped.latest = factory.latest;

  let running = true;
  const act = (cmd) => {
    const client = factory.latest(cmd.session_id);
    if (!client) throw new Error(`no fake client for session ${cmd.session_id}`);
    switch (cmd.action) {
      case 'receive': {
        let media;
        if (cmd.media === 'expired') media = 'expired';
        else if (cmd.media) media = { mimetype: cmd.media.mimetype, data: Buffer.from(cmd.media.data_b64, 'base64'), filename: cmd.media.filename || null };
        client.receive({ from: cmd.from, author: cmd.author, body: cmd.body || '', type: cmd.type || (media ? 'ptt' : 'chat'), hasMedia: !!media, media, notifyName: cmd.notify_name || null, id: cmd.id });
        break;
      }
      case 'type_on_phone': client.typeOnPhone({ to: cmd.to, body: cmd.body || '' }); break;
      case 'ack': client.emit('message_ack', { id: { _serialized: cmd.wa_id }, fromMe: true, to: cmd.chat_id }, cmd.ack); break;
      case 'qr': client.emit('qr', cmd.qr); break;
      case 'scan': client.pair(); break;
      case 'disconnect': client.emit('disconnected', cmd.reason || 'NAVIGATION'); break;
      case 'state': client.emit('change_state', cmd.state); break;
      default: throw new Error(`unknown fake action ${cmd.action}`);
    }
  };
  const loop = (async () => {
    try {
      await redis.xgroup('CREATE', inKey, 'fakewa', '0', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test(err.message)) throw err;
    }
    while (running) {
      try {
        const res = await reader.xreadgroup('GROUP', 'fakewa', 'driver', 'COUNT', 10, 'BLOCK', 500, 'STREAMS', inKey, '>');
        for (const [, entries] of res || []) {
          for (const [id, fields] of entries) {
            try {
              act(JSON.parse(fields[1]));
            } catch (err) {
              logger.error({ err, entry_id: id }, 'fake whatsapp action failed');
            }
            await redis.xack(inKey, 'fakewa', id);
          }
        }
      } catch (err) {
        if (running) logger.error({ err }, 'fake whatsapp driver read failed');
      }
    }
  })();
  wrapped.close = async () => {
    running = false;
    reader.disconnect();
    await loop.catch(() => {});
    await redis.quit().catch(() => redis.disconnect());
  };
  return wrapped;
}

module.exports = { createDrivenFakeFactory };
