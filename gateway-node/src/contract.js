'use strict';
// The Redis stream contract (contracts/streams/*.schema.json), loaded once and used to validate
// every entry the gateway writes and every command it reads. Python validates against the same files.
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');

const VERSION = 1;

class ContractError extends Error {
  constructor(message, errors) {
    super(message);
    this.code = 'invalid_contract';
    this.errors = errors || [];
  }
}

function listSchemaFiles(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listSchemaFiles(full));
    else if (entry.name.endsWith('.schema.json')) out.push(full);
  }
  return out.sort();
}

function formatErrors(errors) {
  return (errors || []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params && e.params.unevaluatedProperty ? ` (${e.params.unevaluatedProperty})` : ''}`).join('; ');
}

function loadContract(contractsDir) {
  const indexPath = path.join(contractsDir, 'index.json');
  if (!fs.existsSync(indexPath)) throw new Error(`contract index not found at ${indexPath} (set CONTRACTS_DIR)`);
  const index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  addFormats(ajv);
  for (const file of listSchemaFiles(contractsDir)) ajv.addSchema(JSON.parse(fs.readFileSync(file, 'utf8')));

  const byType = new Map();
  for (const t of index.types) {
    const validate = ajv.getSchema(t.$id);
    if (!validate) throw new Error(`schema ${t.$id} listed in index.json was not loaded`);
    byType.set(t.type, { ...t, validate });
  }

  function validate(doc, { direction } = {}) {
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
      throw new ContractError('entry is not a JSON object');
    }
    const entry = byType.get(doc.type);
    if (!entry) throw new ContractError(`unknown type ${JSON.stringify(doc.type)}`);
    if (direction && entry.direction !== direction) {
      throw new ContractError(`type ${doc.type} is a ${entry.direction} entry, expected ${direction}`);
    }
    if (!entry.validate(doc)) {
      throw new ContractError(`${doc.type}: ${formatErrors(entry.validate.errors)}`, entry.validate.errors);
    }
    return doc;
  }

  // Parse the "event" field of a stream entry and validate it.
  function parse(raw, opts) {
    if (typeof raw !== 'string') throw new ContractError('entry has no "event" field');
    let doc;
    try {
      doc = JSON.parse(raw);
    } catch (err) {
      const e = new ContractError(`event is not valid JSON: ${err.message}`);
      e.code = 'invalid_json';
      throw e;
    }
    return validate(doc, opts);
  }

  // Build and validate an event: a bug that would publish an off-contract event fails here, in the gateway.
  function build(type, { sessionId, tenantSchema }, fields) {
    const doc = {
      v: VERSION,
      type,
      session_id: sessionId,
      tenant_schema: tenantSchema,
      event_id: crypto.randomUUID(),
      ts: new Date().toISOString(),
      ...fields,
    };
    return validate(doc);
  }

  return { index, validate, parse, build, types: byType };
}

module.exports = { loadContract, ContractError, VERSION, formatErrors };
