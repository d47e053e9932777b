'use strict';
// Configuration from the environment. Every variable is documented in README.md.
// A bad value fails loudly at start-up instead of being silently replaced by a default.
const fs = require('fs');
const os = require('os');
const path = require('path');

class ConfigError extends Error {}

function str(env, name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (fallback === undefined) throw new ConfigError(`${name} must be set`);
    return fallback;
  }
  return raw;
}

function int(env, name, fallback, { min = 0 } = {}) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  const value = Number(raw);
  if (value < min) throw new ConfigError(`${name} must be >= ${min}, got ${value}`);
  return value;
}

function bool(env, name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = raw.toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(`${name} must be a boolean (true/false), got ${JSON.stringify(raw)}`);
}

function choice(env, name, options, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!options.includes(raw)) throw new ConfigError(`${name} must be one of ${options.join(', ')}, got ${JSON.stringify(raw)}`);
  return raw;
}

// A secret comes from NAME or from the file NAME_FILE names (Docker secrets), never both.
// Its value never appears in an error message.
function secret(env, name) {
  const direct = env[name];
  const file = env[`${name}_FILE`];
  if (direct && file) throw new ConfigError(`set ${name} or ${name}_FILE, not both`);
  if (!file) return direct || null;
  let value;
  try {
    value = fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`${name}_FILE: cannot read ${file} (${err.code || err.message})`);
  }
  if (!value) throw new ConfigError(`${name}_FILE: ${file} is empty`);
  return value;
}

// The S3-compatible bucket of MEDIA_STORAGE=s3. The keys are the object keys as is (no prefix),
// since the Django side reads the same keys from the same bucket.
function s3Settings(env) {
  const bucket = str(env, 'S3_BUCKET', '');
  if (!bucket) throw new ConfigError('S3_BUCKET must be set when MEDIA_STORAGE=s3');
  // Letters, digits, '.', '-', '_' (legacy AWS names included): catches a URL or a path given as a bucket.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$/.test(bucket)) {
    throw new ConfigError(`S3_BUCKET must be a bucket name (3-255 letters, digits, '.', '-', '_'), got ${JSON.stringify(bucket)}`);
  }
  const endpoint = str(env, 'S3_ENDPOINT', '') || null;
  if (endpoint) {
    let url;
    try { url = new URL(endpoint); } catch { url = null; }
    // No credentials in the URL (they would end up in logs) and no path (the bucket goes in S3_BUCKET).
    if (!url || !['http:', 'https:'].includes(url.protocol) || url.username || url.password || url.search || url.hash || url.pathname !== '/') {
      throw new ConfigError('S3_ENDPOINT must be a base URL such as https://s3.example.com or http://minio:9000 (no path, no credentials)');
    }
  }
  const region = str(env, 'S3_REGION', 'us-east-1');
  if (!/^[a-z0-9-]{1,64}$/.test(region)) throw new ConfigError(`S3_REGION must look like us-east-1 (or auto), got ${JSON.stringify(region)}`);
  const accessKeyId = secret(env, 'S3_ACCESS_KEY_ID');
  const secretAccessKey = secret(env, 'S3_SECRET_ACCESS_KEY');
  if (!accessKeyId !== !secretAccessKey) {
    throw new ConfigError('S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set together (or neither, for the AWS SDK\'s default credential chain)');
  }
  return {
    bucket,
    endpoint,
    region,
    // AWS prefers virtual-hosted addressing (bucket.s3.amazonaws.com); MinIO and most self-hosted
    // services only answer path-style (host/bucket).
    forcePathStyle: bool(env, 'S3_FORCE_PATH_STYLE', Boolean(endpoint)),
    credentials: accessKeyId ? { accessKeyId, secretAccessKey } : null,
  };
}

// SESSIONS="session_id:tenant_schema,session_id2:tenant_schema2"
function sessionsList(env) {
  const raw = (env.SESSIONS || '').trim();
  if (!raw) return [];
  return raw.split(',').map((item) => item.trim()).filter(Boolean).map((item) => {
    const m = /^([A-Za-z0-9_-]{1,64}):([_a-zA-Z0-9]{1,63})$/.exec(item);
    if (!m) throw new ConfigError(`SESSIONS entry ${JSON.stringify(item)} must look like session_id:tenant_schema`);
    return { sessionId: m[1], tenantSchema: m[2] };
  });
}

function loadConfig(env = process.env) {
  const gatewayId = str(env, 'GATEWAY_ID', os.hostname());
  if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(gatewayId)) throw new ConfigError('GATEWAY_ID may only contain letters, digits and _.:-');
  const keyPrefix = str(env, 'REDIS_KEY_PREFIX', 'eva');
  if (!/^[A-Za-z0-9_.-]+$/.test(keyPrefix)) throw new ConfigError('REDIS_KEY_PREFIX may only contain letters, digits and _.-');
  const mediaStorage = choice(env, 'MEDIA_STORAGE', ['local', 's3'], 'local');
  return {
    redisUrl: str(env, 'REDIS_URL'),
    keyPrefix,
    gatewayId,
    healthHost: str(env, 'GATEWAY_HEALTH_HOST', '0.0.0.0'),
    healthPort: int(env, 'GATEWAY_HEALTH_PORT', 3001),
    logLevel: str(env, 'LOG_LEVEL', 'info'),
    mediaStorage,
    mediaRoot: path.resolve(str(env, 'MEDIA_ROOT', path.join(process.cwd(), 'media'))),
    s3: mediaStorage === 's3' ? s3Settings(env) : null,
    mediaMaxBytes: int(env, 'MEDIA_MAX_BYTES', 64 * 1024 * 1024, { min: 1 }),
    mediaDownloadTimeoutMs: int(env, 'MEDIA_DOWNLOAD_TIMEOUT_MS', 60000, { min: 1 }),
    sessionDir: path.resolve(str(env, 'WA_SESSION_DIR', path.join(process.cwd(), '.wwebjs_auth'))),
    chromiumPath: str(env, 'CHROMIUM_PATH', '/usr/bin/chromium'),
    chromiumArgs: (env.CHROMIUM_ARGS || '').split(/\s+/).filter(Boolean),
    headless: bool(env, 'HEADLESS', true),
    qrMaxRetries: int(env, 'QR_MAX_RETRIES', 0),
    sessions: sessionsList(env),
    contractsDir: path.resolve(str(env, 'CONTRACTS_DIR', path.join(__dirname, '..', '..', 'contracts', 'streams'))),
    readyTimeoutMs: int(env, 'READY_TIMEOUT_MS', 120000, { min: 1 }),
    reconnectBaseMs: int(env, 'RECONNECT_BASE_MS', 2000, { min: 1 }),
    reconnectMaxMs: int(env, 'RECONNECT_MAX_MS', 300000, { min: 1 }),
    lockTtlMs: int(env, 'LOCK_TTL_MS', 30000, { min: 100 }),
    outboundBlockMs: int(env, 'OUTBOUND_BLOCK_MS', 2000, { min: 1 }),
    outboundRetryIdleMs: int(env, 'OUTBOUND_RETRY_IDLE_MS', 30000, { min: 1 }),
    outboundMaxDeliveries: int(env, 'OUTBOUND_MAX_DELIVERIES', 5, { min: 1 }),
    outboundTrimEveryMs: int(env, 'OUTBOUND_TRIM_EVERY_MS', 60000),
    sentDedupeTtlS: int(env, 'SENT_DEDUPE_TTL_S', 7 * 24 * 3600, { min: 1 }),
    replyOnly: bool(env, 'REPLY_ONLY', true),
    pacing: {
      minIntervalMs: int(env, 'SEND_MIN_INTERVAL_MS', 2000),
      jitterMs: int(env, 'SEND_JITTER_MS', 1500),
      perChatIntervalMs: int(env, 'SEND_PER_CHAT_INTERVAL_MS', 4000),
      maxPerMinute: int(env, 'SEND_MAX_PER_MINUTE', 20, { min: 1 }),
      typingBeforeSend: bool(env, 'TYPING_BEFORE_SEND', true),
      typingMsPerChar: int(env, 'TYPING_MS_PER_CHAR', 40),
      typingMaxMs: int(env, 'TYPING_MAX_MS', 4000),
    },
    shutdownTimeoutMs: int(env, 'SHUTDOWN_TIMEOUT_MS', 15000, { min: 1 }),
  };
}

module.exports = { loadConfig, ConfigError };
