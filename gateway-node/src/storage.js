'use strict';
// Shared media storage. Blobs are written here first; stream events carry only a reference
// ({key, mime, size, sha256, filename}) where key is relative to the storage root.
//
// Only a local-filesystem backend exists (MEDIA_ROOT, a volume shared with the Django side).
// An S3-compatible backend would implement the same three methods (put, read, exists) with the
// same key layout; it is not written yet because no S3 client is a dependency of this package.
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

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

const KEY_RE = /^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._/-]+$/;

class LocalMediaStorage {
  constructor(root) {
    this.root = path.resolve(root);
  }

  resolve(key) {
    if (!KEY_RE.test(key)) throw Object.assign(new Error(`invalid media key ${JSON.stringify(key)}`), { code: 'invalid_media_key' });
    const full = path.resolve(this.root, key);
    if (!full.startsWith(this.root + path.sep)) throw Object.assign(new Error('media key escapes MEDIA_ROOT'), { code: 'invalid_media_key' });
    return full;
  }

  // Content-addressed key: a redelivered message writes the same file, never a second copy.
  // Per-tenant prefix, as every tenant-owned file in EVA.
  static inboundKey({ tenantSchema, sessionId, sha256, mime, date = new Date() }) {
    const y = date.getUTCFullYear();
    const m = String(date.getUTCMonth() + 1).padStart(2, '0');
    return `${tenantSchema}/whatsapp/${sessionId}/${y}/${m}/${sha256}.${extensionFor(mime)}`;
  }

  // Write atomically (temp file + rename) so a reader never sees a half-written blob.
  async put(key, buffer) {
    const full = this.resolve(key);
    await fs.promises.mkdir(path.dirname(full), { recursive: true });
    const tmp = `${full}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    await fs.promises.writeFile(tmp, buffer);
    await fs.promises.rename(tmp, full);
    return { key, size: buffer.length, sha256: sha256Hex(buffer) };
  }

  async read(key) {
    return fs.promises.readFile(this.resolve(key));
  }

  async exists(key) {
    try {
      await fs.promises.access(this.resolve(key));
      return true;
    } catch {
      return false;
    }
  }
}

module.exports = { LocalMediaStorage, extensionFor, sha256Hex };
