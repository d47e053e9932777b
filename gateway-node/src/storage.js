'use strict';
// Shared media storage. Blobs are written here first; stream events carry only a reference
// ({key, mime, size, sha256, filename}) where key is relative to the storage root.
//
// Two backends with the same interface and the same keys, chosen by MEDIA_STORAGE:
// - LocalMediaStorage: a folder (MEDIA_ROOT, a volume shared with the Django side);
// - S3MediaStorage: a bucket of any S3-compatible service (AWS S3, Cloudflare R2, MinIO...), where
//   a key is the object key as is, so Django reads the same keys from the same bucket.
// put(key, buffer, {contentType}) -> {key, size, sha256}; read(key) -> Buffer; exists(key) -> boolean.
// Errors carry a code: invalid_media_key (refused before any I/O), media_not_found (read of a
// missing blob: retrying will not make it appear). Any other error (storage unreachable, denied)
// is thrown as it comes, since it may pass.
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { S3Client, PutObjectCommand, GetObjectCommand, HeadObjectCommand } = require('@aws-sdk/client-s3');

const EXTENSIONS = {
  'audio/ogg': 'ogg', 'audio/mpeg': 'mp3', 'audio/mp4': 'm4a', 'audio/aac': 'aac', 'audio/amr': 'amr', 'audio/wav': 'wav',
  'image/jpeg': 'jpg', 'image/png': 'png', 'image/webp': 'webp', 'image/gif': 'gif',
  'video/mp4': 'mp4', 'video/3gpp': '3gp', 'video/quicktime': 'mov',
  'application/pdf': 'pdf', 'text/plain': 'txt', 'text/csv': 'csv',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
  'application/msword': 'doc', 'application/vnd.ms-excel': 'xls', 'application/zip': 'zip',
};

function extensionFor(mime) {
  const base = String(mime || '').split(';')[0].trim().toLowerCase();
  return EXTENSIONS[base] || 'bin';
}

function sha256Hex(buffer) {
  return crypto.createHash('sha256').update(buffer).digest('hex');
}

// The media_ref key pattern of the stream contract: relative, '/'-separated, no '.' or '..' segment.
const KEY_RE = /^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._/-]+$/;

function mediaError(code, message) {
  return Object.assign(new Error(message), { code });
}

function checkKey(key) {
  if (typeof key !== 'string' || !KEY_RE.test(key)) throw mediaError('invalid_media_key', `invalid media key ${JSON.stringify(key)}`);
  return key;
}

// Content-addressed key: a redelivered message writes the same blob, never a second copy.
// Per-tenant prefix, as every tenant-owned file in EVA.
function inboundKey({ tenantSchema, sessionId, sha256, mime, date = new Date() }) {
  const y = date.getUTCFullYear();
  const m = String(date.getUTCMonth() + 1).padStart(2, '0');
  return `${tenantSchema}/whatsapp/${sessionId}/${y}/${m}/${sha256}.${extensionFor(mime)}`;
}

class LocalMediaStorage {
  constructor(root) {
    this.root = path.resolve(root);
    this.kind = 'local';
  }

  static inboundKey(fields) {
    return inboundKey(fields);
  }

  describe() {
    return { kind: this.kind, root: this.root };
  }

  resolve(key) {
    checkKey(key);
    const full = path.resolve(this.root, key);
    if (!full.startsWith(this.root + path.sep)) throw mediaError('invalid_media_key', 'media key escapes MEDIA_ROOT');
    return full;
  }

  // Write atomically (temp file + rename) so a reader never sees a half-written blob.
  // The content type is not kept: on a filesystem the extension of the key says it.
  async put(key, buffer) {
    const full = this.resolve(key);
    await fs.promises.mkdir(path.dirname(full), { recursive: true });
    const tmp = `${full}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    await fs.promises.writeFile(tmp, buffer);
    await fs.promises.rename(tmp, full);
    return { key, size: buffer.length, sha256: sha256Hex(buffer) };
  }

  async read(key) {
    const full = this.resolve(key);
    try {
      return await fs.promises.readFile(full);
    } catch (err) {
      if (['ENOENT', 'ENOTDIR', 'EISDIR'].includes(err.code)) throw mediaError('media_not_found', `media ${key} not found under MEDIA_ROOT`);
      throw err;
    }
  }

  async exists(key) {
    const full = this.resolve(key);
    try {
      return (await fs.promises.stat(full)).isFile();
    } catch (err) {
      if (['ENOENT', 'ENOTDIR'].includes(err.code)) return false;
      throw err;
    }
  }

  async close() {}
}

// A stalled connection must not hold a chat's inbound chain or an outbound send forever; the SDK
// sets no timeout of its own. Idle rather than total time, so a large blob on a slow link still
// gets through.
const S3_CONNECT_TIMEOUT_MS = 10000;
const S3_IDLE_TIMEOUT_MS = 60000;

// A 404 is a missing object, except a missing bucket (a configuration error, not a missing blob).
// HEAD responses have no body, so a missing bucket there cannot be told apart and reads as missing.
function isMissingObject(err) {
  return Boolean(err && err.$metadata && err.$metadata.httpStatusCode === 404 && err.name !== 'NoSuchBucket');
}

class S3MediaStorage {
  // bucket (required); endpoint: null for AWS, a base URL for R2, MinIO and others; region;
  // forcePathStyle; credentials: {accessKeyId, secretAccessKey} or null for the SDK's default chain.
  constructor({ bucket, endpoint = null, region = 'us-east-1', forcePathStyle = false, credentials = null }) {
    this.bucket = bucket;
    this.endpoint = endpoint;
    this.region = region;
    this.kind = 's3';
    this.client = new S3Client({
      region,
      forcePathStyle,
      ...(endpoint ? {
        endpoint,
        // Since 2025 the SDK adds CRC checksums to every upload, which several S3-compatible
        // services reject; the blob's integrity is covered end to end by the sha256 of the event.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      } : {}),
      ...(credentials ? { credentials } : {}),
      requestHandler: { connectionTimeout: S3_CONNECT_TIMEOUT_MS, socketTimeout: S3_IDLE_TIMEOUT_MS },
    });
  }

  describe() {
    return { kind: this.kind, bucket: this.bucket, endpoint: this.endpoint || 'aws', region: this.region };
  }

  // A PUT is atomic in S3: a reader sees the whole previous object or the whole new one.
  async put(key, buffer, { contentType } = {}) {
    checkKey(key);
    await this.client.send(new PutObjectCommand({
      Bucket: this.bucket, Key: key, Body: buffer,
      ...(contentType ? { ContentType: contentType } : {}),
    }));
    return { key, size: buffer.length, sha256: sha256Hex(buffer) };
  }

  async read(key) {
    checkKey(key);
    let response;
    try {
      response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (isMissingObject(err)) throw mediaError('media_not_found', `media ${key} not found in bucket ${this.bucket}`);
      throw err;
    }
    const bytes = await response.Body.transformToByteArray();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  async exists(key) {
    checkKey(key);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (err) {
      if (isMissingObject(err)) return false;
      throw err;
    }
  }

  // Closes the client's kept-alive sockets.
  async close() {
    this.client.destroy();
  }
}

function createMediaStorage(config) {
  if (config.mediaStorage === 's3') return new S3MediaStorage(config.s3);
  return new LocalMediaStorage(config.mediaRoot);
}

module.exports = { LocalMediaStorage, S3MediaStorage, createMediaStorage, inboundKey, extensionFor, sha256Hex };
