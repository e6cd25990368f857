// What makes a verified device recognisable on the next call: this
// browser's own DTLS certificate, kept in IndexedDB so that its fingerprint
// stays the same from call to call (renewed a month before it expires), and
// the fingerprints of the partners this device verified, by their id. A
// browser without IndexedDB or RTCPeerConnection.generateCertificate gets a
// new certificate for each connection, as before: per-call codes only.

export const CERTIFICATE_LIFE_MS = 365 * 24 * 3600 * 1000; // what Chromium allows at most
export const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;
const DB_NAME = 'duet';
const DB_STORE = 'identity';
const CERTIFICATE_KEY = 'dtls-certificate';
const PARTNERS_KEY = 'verifiedDevices';

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function openDb(indexedDB) {
  const req = indexedDB.open(DB_NAME, 1);
  req.onupgradeneeded = () => req.result.createObjectStore(DB_STORE);
  return request(req);
}

async function withStore(indexedDB, mode, fn) {
  const db = await openDb(indexedDB);
  try {
    return await request(fn(db.transaction(DB_STORE, mode).objectStore(DB_STORE)));
  } finally {
    db.close();
  }
}

// The certificate this browser's calls use, made and kept on first use;
// null where it cannot be kept (then each connection makes its own).
export async function loadCertificate({ indexedDB, RTCPeerConnection, now = Date.now }) {
  if (!indexedDB || !RTCPeerConnection || !RTCPeerConnection.generateCertificate) return null;
  try {
    const kept = await withStore(indexedDB, 'readonly', (s) => s.get(CERTIFICATE_KEY));
    if (kept && kept.expires - now() > RENEW_BEFORE_MS) return kept;
    const made = await RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256', expires: CERTIFICATE_LIFE_MS });
    await withStore(indexedDB, 'readwrite', (s) => s.put(made, CERTIFICATE_KEY));
    return made;
  } catch (e) {
    return null; // private mode, storage full or refused
  }
}

export async function forgetCertificate({ indexedDB }) {
  if (!indexedDB) return;
  try {
    await withStore(indexedDB, 'readwrite', (s) => s.delete(CERTIFICATE_KEY));
  } catch (e) { /* nothing was kept */ }
}

// "AB:CD:…", as in SDP.
export function fingerprintText(bytes) {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
}

// The partners this device verified: id -> the fingerprint it verified.
// store: ui.js's (localStorage).
export function createRemembered(store) {
  const all = () => {
    try {
      const parsed = JSON.parse(store.get(PARTNERS_KEY) || '{}');
      return parsed && typeof parsed === 'object' ? parsed : {};
    } catch (e) {
      return {};
    }
  };
  return {
    // 'same', 'changed' (this id was verified with another certificate), or
    // '' (never verified here).
    check(id, fingerprint) {
      const known = Object.prototype.hasOwnProperty.call(all(), id) ? all()[id] : '';
      if (!known) return '';
      return known === fingerprint ? 'same' : 'changed';
    },
    remember(id, fingerprint) {
      store.set(PARTNERS_KEY, JSON.stringify({ ...all(), [id]: fingerprint }));
    },
    forget() { store.remove(PARTNERS_KEY); },
  };
}
