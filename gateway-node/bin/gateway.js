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
  let clientFactory;
  if (process.env.GATEWAY_FAKE_CLIENT) {
    // Cross-language end-to-end tests run the real process with a scripted fake WhatsApp client.
    clientFactory = require(require('path').resolve(process.env.GATEWAY_FAKE_CLIENT)).createClientFactory();
  }
  const gateway = new Gateway(config, clientFactory ? { clientFactory } : {});
  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    gateway.logger.info({ signal }, 'shutting down');
    gateway.shutdown().then(() => process.exit(0), (err) => {
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
