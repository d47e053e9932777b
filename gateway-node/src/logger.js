'use strict';
const pino = require('pino');

function createLogger({ level = 'info', gatewayId } = {}) {
  return pino({ level, base: { service: 'gateway-node', gateway_id: gatewayId }, timestamp: pino.stdTimeFunctions.isoTime });
}

module.exports = { createLogger };
