#!/usr/bin/env node
'use strict';
// Entry point: `npm start` / `node bin/gateway.js`. Configuration comes from the environment (README.md).
const { loadConfig, ConfigError } = require('../src/config');
const { Gateway } = require('../src/gateway');

async function main() {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const { createLogger } = require('../src/logger');
  const logger = createLogger({ level: config.logLevel, gatewayId: config.gatewayId });
  let fake = null;
  if (process.env.GATEWAY_FAKE_WHATSAPP === '1') {
    // End-to-end tests only: a fake WhatsApp driven through Redis (src/testing/fake-process.js).
    logger.warn('GATEWAY_FAKE_WHATSAPP=1: no real WhatsApp connection, for tests only');
    const { createDrivenFakeFactory } = require('../src/testing/fake-process');
    fake = createDrivenFakeFactory({ redisUrl: config.redisUrl, keyPrefix: config.keyPrefix, logger });
  }
  const gateway = new Gateway(config, fake ? { clientFactory: fake, logger } : { logger });
  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    gateway.logger.info({ signal }, 'shutting down');
    gateway.shutdown().then(() => (fake ? fake.close() : null)).then(() => process.exit(0), (err) => {
      gateway.logger.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await gateway.start();
  } catch (err) {
    gateway.logger.fatal({ err }, 'gateway failed to start');
    process.exit(1);
  }
}

main();
