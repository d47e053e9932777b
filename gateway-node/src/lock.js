'use strict';
// Redis lock that keeps one session in one process across all gateway instances: two Chromium
// instances on the same WhatsApp session make WhatsApp log one of them out (CONFLICT) and corrupt
// the LocalAuth profile. The lock has a TTL and is refreshed, so a crashed holder frees it.
const crypto = require('crypto');

const REFRESH = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

class SessionLock {
  constructor({ redis, key, gatewayId, ttlMs }) {
    this.redis = redis;
    this.key = key;
    this.ttlMs = ttlMs;
    this.gatewayId = gatewayId;
    this.token = `${gatewayId}|${process.pid}|${crypto.randomUUID()}`;
  }

  async acquire() {
    const ok = await this.redis.set(this.key, this.token, 'PX', this.ttlMs, 'NX');
    return ok === 'OK';
  }

  // Value of the current holder, e.g. "gw-1|1234|uuid", or null.
  async holder() {
    return this.redis.get(this.key);
  }

  async refresh() {
    return (await this.redis.eval(REFRESH, 1, this.key, this.token, this.ttlMs)) === 1;
  }

  async release() {
    return (await this.redis.eval(RELEASE, 1, this.key, this.token)) === 1;
  }
}

module.exports = { SessionLock };
