'use strict';
// A consumer-group reader for one Redis stream: XREADGROUP, XACK after the handler succeeded,
// XAUTOCLAIM for entries left pending by a crashed consumer (or by a transient failure here),
// and a failure hook for entries that fail permanently or too many times. An entry is only
// acknowledged once it was handled or handed to the failure hook: nothing is silently dropped.

class PermanentError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
    this.permanent = true;
  }
}

function fieldsToObject(fields) {
  const out = {};
  for (let i = 0; fields && i < fields.length; i += 2) out[fields[i]] = fields[i + 1];
  return out;
}

function isBusyGroup(err) {
  return err && /BUSYGROUP/.test(err.message);
}

async function ensureGroup(redis, stream, group, startId) {
  try {
    await redis.xgroup('CREATE', stream, group, startId, 'MKSTREAM');
  } catch (err) {
    if (!isBusyGroup(err)) throw err;
  }
}

function compareIds(a, b) {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}

// Trim entries every consumer group of the stream is done with: older than each group's
// last-delivered id and than its oldest pending entry. Unread or unacknowledged entries are never
// dropped (MAXLEN would drop them when a consumer is down). Returns the number of entries removed.
async function trimConsumed(redis, stream) {
  let groups;
  try {
    groups = await redis.xinfo('GROUPS', stream);
  } catch (err) {
    if (/no such key/i.test(err.message)) return 0;
    throw err;
  }
  if (!groups.length) return 0;
  let minId = null;
  for (const g of groups) {
    const info = fieldsToObject(g);
    let bound = info['last-delivered-id'];
    const [count, smallest] = await redis.xpending(stream, info.name);
    if (Number(count) > 0 && compareIds(smallest, bound) < 0) bound = smallest;
    if (minId === null || compareIds(bound, minId) < 0) minId = bound;
  }
  if (!minId || minId === '0-0') return 0;
  return redis.xtrim(stream, 'MINID', minId);
}

class StreamConsumer {
  constructor({ redis, stream, group, consumer, groupStartId = '0', blockMs = 2000, retryIdleMs = 30000, maxDeliveries = 5, batch = 10, trimEveryMs = 0, handle, onFailure, logger }) {
    Object.assign(this, { redis, stream, group, consumer, groupStartId, blockMs, retryIdleMs, maxDeliveries, batch, trimEveryMs, handle, onFailure, logger });
    this.running = false;
    this.loopPromise = null;
    this.blocking = null;
    this.inFlight = 0;
  }

  start() {
    if (this.running) return;
    this.running = true;
    // Blocking reads hold their connection, so each consumer gets its own.
    this.blocking = this.redis.duplicate();
    this.loopPromise = this.loop().catch((err) => {
      this.logger.error({ err, stream: this.stream }, 'stream consumer crashed');
    });
  }

  async stop() {
    if (!this.running) return;
    this.running = false;
    // Disconnecting interrupts a pending BLOCK; an entry delivered in that instant stays pending
    // for this consumer name and is re-read at the next start (or reclaimed by another).
    this.blocking.disconnect();
    await this.loopPromise;
    this.blocking = null;
  }

  async loop() {
    let prepared = false;
    let lastClaim = 0;
    let lastTrim = Date.now();
    const claimEvery = Math.max(50, Math.min(5000, Math.floor(this.retryIdleMs / 2)));
    while (this.running) {
      try {
        if (!prepared) {
          await ensureGroup(this.redis, this.stream, this.group, this.groupStartId);
          await this.drainOwnPending();
          prepared = true;
        }
        if (Date.now() - lastClaim >= claimEvery) {
          lastClaim = Date.now();
          await this.reclaim();
        }
        if (this.trimEveryMs > 0 && Date.now() - lastTrim >= this.trimEveryMs) {
          lastTrim = Date.now();
          await trimConsumed(this.redis, this.stream);
        }
        const res = await this.blocking.xreadgroup('GROUP', this.group, this.consumer, 'COUNT', this.batch, 'BLOCK', Math.min(this.blockMs, claimEvery), 'STREAMS', this.stream, '>');
        if (!res) continue;
        for (const [, entries] of res) {
          for (const [id, fields] of entries) await this.process(id, fields, 1);
        }
      } catch (err) {
        if (!this.running) break;
        this.logger.error({ err, stream: this.stream }, 'stream read failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  // Entries this consumer name read before a restart and never acknowledged.
  async drainOwnPending() {
    let cursor = '0';
    while (this.running) {
      const res = await this.blocking.xreadgroup('GROUP', this.group, this.consumer, 'COUNT', 100, 'STREAMS', this.stream, cursor);
      const entries = res && res[0] ? res[0][1] : [];
      if (!entries.length) return;
      for (const [id, fields] of entries) {
        cursor = id;
        if (!fields) { await this.redis.xack(this.stream, this.group, id); continue; } // deleted meanwhile
        await this.process(id, fields, await this.deliveries(id));
      }
    }
  }

  async deliveries(id) {
    const rows = await this.redis.xpending(this.stream, this.group, id, id, 1);
    return rows && rows[0] ? Number(rows[0][3]) : 1;
  }

  // Take over entries pending longer than retryIdleMs (a dead consumer's, or our own failed ones).
  async reclaim() {
    let cursor = '0-0';
    do {
      const [next, entries] = await this.redis.xautoclaim(this.stream, this.group, this.consumer, this.retryIdleMs, cursor, 'COUNT', 50);
      cursor = next;
      for (const [id, fields] of entries) {
        if (!this.running) return;
        if (!fields) { await this.redis.xack(this.stream, this.group, id); continue; }
        await this.process(id, fields, await this.deliveries(id));
      }
    } while (cursor !== '0-0' && this.running);
  }

  async process(id, fields, deliveries) {
    const entry = { id, stream: this.stream, fields: fieldsToObject(fields), deliveries };
    this.inFlight += 1;
    try {
      await this.handle(entry);
      await this.redis.xack(this.stream, this.group, id);
    } catch (err) {
      if (err.permanent || deliveries >= this.maxDeliveries) {
        const reason = err.permanent ? err : Object.assign(new PermanentError('max_deliveries', `failed ${deliveries} times; last error: ${err.message}`), { cause: err });
        try {
          await this.onFailure(entry, reason);
          await this.redis.xack(this.stream, this.group, id);
        } catch (hookErr) {
          // Leave it pending: it is retried by the next reclaim rather than lost.
          this.logger.error({ err: hookErr, stream: this.stream, entry_id: id }, 'failure hook failed; entry left pending');
        }
      } else {
        this.logger.warn({ err, stream: this.stream, entry_id: id, deliveries }, 'entry failed; left pending for retry');
      }
    } finally {
      this.inFlight -= 1;
    }
  }
}

module.exports = { StreamConsumer, PermanentError, ensureGroup, fieldsToObject, trimConsumed, compareIds };
