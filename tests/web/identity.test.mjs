// web/identity.js in Node: what a browser without IndexedDB or
// generateCertificate gets (no kept certificate: per-call codes), a kept
// certificate reused until a month before it ends, and the remembered
// partners' fingerprints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  loadCertificate, createRemembered, fingerprintText, RENEW_BEFORE_MS, CERTIFICATE_LIFE_MS,
} from '../../web/identity.js';

// An IndexedDB with one object store, as far as identity.js uses it.
function fakeIndexedDB() {
  const data = new Map();
  const done = (result) => {
    const req = { result };
    queueMicrotask(() => req.onsuccess && req.onsuccess());
    return req;
  };
  const db = {
    createObjectStore() {},
    transaction: () => ({
      objectStore: () => ({
        get: (k) => done(data.get(k)),
        put: (v, k) => { data.set(k, v); return done(k); },
        delete: (k) => { data.delete(k); return done(undefined); },
      }),
    }),
    close() {},
  };
  return {
    data,
    open() {
      const req = { result: db };
      queueMicrotask(() => { if (req.onupgradeneeded) req.onupgradeneeded(); req.onsuccess(); });
      return req;
    },
  };
}

function fakePeerConnectionClass() {
  const made = [];
  class PC {
    static async generateCertificate(keygen) {
      const cert = { keygen, expires: Date.now() + keygen.expires };
      made.push(cert);
      return cert;
    }
  }
  return { PC, made };
}

test('without IndexedDB or generateCertificate there is no kept certificate: each connection makes its own', async () => {
  const { PC } = fakePeerConnectionClass();
  assert.equal(await loadCertificate({ indexedDB: undefined, RTCPeerConnection: PC }), null);
  assert.equal(await loadCertificate({ indexedDB: fakeIndexedDB(), RTCPeerConnection: class {} }), null);
  const refusing = { open() { const req = {}; queueMicrotask(() => { req.error = new Error('refused'); req.onerror(); }); return req; } };
  assert.equal(await loadCertificate({ indexedDB: refusing, RTCPeerConnection: PC }), null, 'storage refused (private mode)');
});

test('a certificate is made once (ECDSA P-256, a year), kept, and renewed a month before it ends', async () => {
  const { PC, made } = fakePeerConnectionClass();
  const db = fakeIndexedDB();
  const first = await loadCertificate({ indexedDB: db, RTCPeerConnection: PC });
  assert.deepEqual(first.keygen, { name: 'ECDSA', namedCurve: 'P-256', expires: CERTIFICATE_LIFE_MS });
  assert.equal(await loadCertificate({ indexedDB: db, RTCPeerConnection: PC }), first, 'kept');
  const later = () => first.expires - RENEW_BEFORE_MS + 1;
  const renewed = await loadCertificate({ indexedDB: db, RTCPeerConnection: PC, now: later });
  assert.notEqual(renewed, first);
  assert.equal(made.length, 2);
  assert.equal(db.data.get('dtls-certificate'), renewed);
});

test('partners are remembered by id with the fingerprint verified; another one is "changed"; forget drops them', () => {
  const kept = new Map();
  const store = { get: (k) => kept.get(k) || '', set: (k, v) => kept.set(k, v), remove: (k) => kept.delete(k) };
  const remembered = createRemembered(store);
  const fp = fingerprintText(new Uint8Array([0, 1, 171, 255]));
  assert.equal(fp, '00:01:AB:FF');
  assert.equal(remembered.check('bob', fp), '');
  remembered.remember('bob', fp);
  assert.equal(remembered.check('bob', fp), 'same');
  assert.equal(remembered.check('bob', '00:01:AB:FE'), 'changed');
  assert.equal(remembered.check('carol', fp), '');
  assert.equal(remembered.check('__proto__', fp), '', 'an id is only a key');
  store.set('verifiedDevices', 'not json');
  assert.equal(remembered.check('bob', fp), '', 'a damaged record is no record');
  remembered.remember('bob', fp);
  remembered.forget();
  assert.equal(remembered.check('bob', fp), '');
});
