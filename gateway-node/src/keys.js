'use strict';
// Every Redis key the gateway touches, in one place. The prefix is "eva" in every real deployment;
// tests use a unique prefix per run so they never collide.

function keys(prefix = 'eva') {
  return {
    inbound: `${prefix}:inbound`,
    control: `${prefix}:control`,
    outbound: (sessionId) => `${prefix}:outbound:${sessionId}`,
    deadOutbound: `${prefix}:dead:outbound`,
    deadControl: `${prefix}:dead:control`,
    outboundGroup: 'gateway',
    controlGroup: (gatewayId) => `gateway:${gatewayId}`,
    inboundGroup: 'inbound-consumers',
    lock: (sessionId) => `${prefix}:gateway:lock:${sessionId}`,
    ownedSessions: (gatewayId) => `${prefix}:gateway:${gatewayId}:sessions`,
    contacted: (sessionId) => `${prefix}:gateway:contacted:${sessionId}`,
    sent: (sessionId, eventId) => `${prefix}:gateway:sent:${sessionId}:${eventId}`,
  };
}

module.exports = { keys };
