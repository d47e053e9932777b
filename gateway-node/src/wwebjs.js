'use strict';
// The only module that touches whatsapp-web.js. Tests replace createClient with a fake that has the
// same methods and events; everything behind this boundary is exercised for real.
const fs = require('fs');
const path = require('path');

// Chromium leaves these in the profile when it is killed; with them present a new Chromium
// refuses the profile ("profile in use by another process") and the session never starts.
const PROFILE_LOCKS = ['SingletonLock', 'SingletonSocket', 'SingletonCookie', 'DevToolsActivePort'];

function profileDir(sessionDir, sessionId) {
  // LocalAuth stores the profile in <dataPath>/session-<clientId>.
  return path.join(sessionDir, `session-${sessionId}`);
}

// Only call this while holding the session's Redis lock: then no live Chromium owns the profile.
function removeStaleProfileLocks(dir) {
  const removed = [];
  for (const name of PROFILE_LOCKS) {
    const file = path.join(dir, name);
    try {
      fs.lstatSync(file); // the Singleton* entries are (possibly dangling) symlinks
    } catch {
      continue;
    }
    fs.rmSync(file, { force: true });
    removed.push(name);
  }
  return removed;
}

function createClient({ sessionId, sessionDir, chromiumPath, chromiumArgs = [], headless = true, qrMaxRetries = 0 }) {
  const { Client, LocalAuth } = require('whatsapp-web.js');
  return new Client({
    authStrategy: new LocalAuth({ clientId: sessionId, dataPath: sessionDir }),
    qrMaxRetries,
    puppeteer: {
      executablePath: chromiumPath,
      headless,
      // No sandbox: the gateway runs as an unprivileged user in a container without user namespaces.
      args: ['--no-sandbox', '--disable-setuid-sandbox', '--disable-dev-shm-usage', '--no-first-run', ...chromiumArgs],
    },
  });
}

function MessageMedia(...args) {
  const { MessageMedia: Real } = require('whatsapp-web.js');
  return new Real(...args);
}

module.exports = { createClient, removeStaleProfileLocks, profileDir, MessageMedia, PROFILE_LOCKS };
