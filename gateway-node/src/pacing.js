'use strict';
// Outbound pacing for one session (one WhatsApp number). whatsapp-web.js is not an official API:
// bursts of identical-looking, instant, machine-speed messages are what gets numbers banned, so
// sends are spaced per number (with random jitter), spaced per recipient, capped per minute, and
// preceded by a "typing..." state whose length follows the reply length.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class Pacer {
  constructor(opts, { random = Math.random, now = Date.now } = {}) {
    this.opts = opts;
    this.random = random;
    this.now = now;
    this.lastSendAt = 0;
    this.lastByChat = new Map();
    this.recent = []; // send times within the last minute
  }

  // Milliseconds to wait before a send to chatId may start.
  delayFor(chatId) {
    const { minIntervalMs, jitterMs, perChatIntervalMs, maxPerMinute } = this.opts;
    const now = this.now();
    const jitter = jitterMs > 0 ? Math.floor(this.random() * jitterMs) : 0;
    let at = this.lastSendAt ? this.lastSendAt + minIntervalMs + jitter : now;
    const lastChat = this.lastByChat.get(chatId);
    if (lastChat) at = Math.max(at, lastChat + perChatIntervalMs);
    this.recent = this.recent.filter((t) => t > now - 60000);
    if (this.recent.length >= maxPerMinute) at = Math.max(at, this.recent[this.recent.length - maxPerMinute] + 60000);
    return Math.max(0, at - now);
  }

  typingMsFor(text) {
    const { typingBeforeSend, typingMsPerChar, typingMaxMs } = this.opts;
    if (!typingBeforeSend) return 0;
    return Math.min(typingMaxMs, (text || '').length * typingMsPerChar);
  }

  async waitTurn(chatId) {
    const delay = this.delayFor(chatId);
    if (delay > 0) await sleep(delay);
  }

  recordSend(chatId) {
    const now = this.now();
    this.lastSendAt = now;
    this.lastByChat.set(chatId, now);
    this.recent.push(now);
    if (this.lastByChat.size > 10000) this.lastByChat.clear(); // bound memory; spacing is best-effort
  }
}

function backoffDelay(attempt, { baseMs, maxMs, random = Math.random }) {
  // Exponential backoff with +-20% jitter so many sessions that dropped together do not reconnect in lockstep.
  const raw = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.max(1, Math.round(raw * (0.8 + 0.4 * random())));
}

module.exports = { Pacer, backoffDelay, sleep };
