'use strict';
// The contract files themselves: every schema is listed, every example is valid, and the rules
// the Python side relies on are actually enforced. (Needs no Redis, but shares the test run.)
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { contract, CONTRACTS_DIR } = require('./helpers');

const example = (t) => JSON.parse(fs.readFileSync(path.join(CONTRACTS_DIR, t.example), 'utf8'));
const rejects = (doc, pattern) => assert.throws(() => contract.validate(doc), pattern);

test('index.json lists every schema file exactly once, and each has a valid example', () => {
  const listed = contract.index.types.map((t) => t.schema).sort();
  const onDisk = [];
  for (const dir of ['inbound', 'outbound', 'control']) {
    for (const f of fs.readdirSync(path.join(CONTRACTS_DIR, dir))) onDisk.push(`${dir}/${f}`);
  }
  assert.deepEqual(listed, onDisk.sort());
  assert.deepEqual(contract.index.types.filter((t) => t.direction === 'inbound').map((t) => t.type).sort(),
    ['command_failed', 'message', 'message_ack', 'outgoing_from_phone', 'qr', 'session_status']);
  assert.deepEqual(contract.index.types.filter((t) => t.direction === 'outbound').map((t) => t.type).sort(), ['mark_read', 'send_media', 'send_text', 'typing']);
  assert.deepEqual(contract.index.types.filter((t) => t.direction === 'control').map((t) => t.type).sort(), ['logout', 'start', 'stop']);
  for (const t of contract.index.types) {
    const doc = example(t);
    assert.equal(doc.type, t.type);
    contract.validate(doc, { direction: t.direction });
  }
});

test('every entry carries v=1, type, session_id, tenant_schema, event_id (uuid) and a UTC ts', () => {
  for (const t of contract.index.types) {
    for (const field of ['v', 'session_id', 'tenant_schema', 'event_id', 'ts']) {
      const doc = example(t);
      delete doc[field];
      rejects(doc, new RegExp(`must have required property '${field}'`));
    }
    rejects({ ...example(t), v: 2 }, /must be equal to constant/);
    rejects({ ...example(t), event_id: 'not-a-uuid' }, /must match format "uuid"/);
    rejects({ ...example(t), ts: '2026-11-25T22:30:00+02:00' }, /must match pattern/);
  }
});

test('unknown fields and unknown types are rejected (a typo never passes silently)', () => {
  rejects({ ...example(contract.types.get('send_text')), txt: 'typo' }, /unevaluated properties \(txt\)/);
  rejects({ ...example(contract.types.get('send_text')), type: 'send_sms' }, /unknown type/);
  assert.throws(() => contract.parse('{"v":1', {}), /not valid JSON/);
  assert.throws(() => contract.validate(example(contract.types.get('send_text')), { direction: 'inbound' }), /is a outbound entry/);
});

test('media travels as a reference, never as bytes, and keys cannot escape the storage root', () => {
  const msg = example(contract.types.get('message'));
  rejects({ ...msg, media: { ...msg.media, data: 'T2dnUw==' } }, /unevaluated|additional/);
  for (const key of ['/etc/passwd', '../other-tenant/x.ogg', 'acme/../../x', 'acme/./x']) {
    rejects({ ...msg, media: { ...msg.media, key } }, /must match pattern/);
  }
  rejects({ ...msg, media: { ...msg.media, sha256: 'ABC' } }, /must match pattern/);
});

test('commands: optional fields may be omitted, events: every field is present (null when unknown)', () => {
  contract.validate({ v: 1, type: 'send_text', session_id: 's', tenant_schema: 't', event_id: '6f1c2a3e-8b7d-4c21-9a0e-000000000001', ts: '2026-11-25T22:30:00Z', chat_id: '1@c.us', text: 'x' });
  const msg = example(contract.types.get('message'));
  delete msg.quoted_wa_id;
  rejects(msg, /required property 'quoted_wa_id'/);
});
