// web/verify.js in Node: the safety code's derivation against fixed vectors,
// the SDP fingerprint and DTLS role rules, and the commit-then-reveal
// exchange between two verifiers (and what each refuses), with Node's
// WebCrypto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import {
  sdpFingerprint, dtlsRole, commitment, deriveCode, createVerifier, toBase64Url, PARTNER_ANSWER_MS,
} from '../../web/verify.js';
import { fakeClock } from './fakes.mjs';

const { subtle } = webcrypto;
const hex = (s) => Uint8Array.from(s.match(/../g), (h) => parseInt(h, 16));
const colons = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
const filled = (byte) => new Uint8Array(32).fill(byte);
const counting = (from) => Uint8Array.from({ length: 32 }, (_, i) => from + i);

// The vectors come from an independent implementation (Python's hashlib and
// hmac, HKDF written out from RFC 5869):
//   prk = hmac(salt, ikm); okm = hmac(prk, info || 0x01)[:8]
//   code = "%08d" % (int.from_bytes(okm, "big") % 10**8)
const VECTORS = [
  {
    clientFp: counting(0), serverFp: counting(32), clientNonce: filled(0xaa), serverNonce: filled(0x55),
    code: '6151 4639', swapped: '0780 4619',
  },
  { clientFp: filled(0), serverFp: filled(0xff), clientNonce: filled(0), serverNonce: filled(0), code: '8186 7442', swapped: '7877 6440' },
  {
    clientFp: hex('f3d96085c52a8743344c1077cd9ada3c38b5ef1b9a60fed13829e7ef3d4f24a3'),
    serverFp: hex('f9108438b45d8330787486ebd3e4a7aabcf6926c8fb7f42f29b248606f82bec8'),
    clientNonce: hex('676b8bb84ce7267dd520deca4811c8f10a53e636352f06987f42fe425acedd80'),
    serverNonce: hex('0480a93d2e9b094b89e08e01976089ac18193af802c66b631cc8d2dc1bae8c88'),
    code: '7757 0705',
    swapped: '1683 4870',
  },
];

test('the code is HKDF-SHA-256 of both fingerprints and nonces, 8 digits in two groups, in DTLS role order', async () => {
  for (const v of VECTORS) {
    assert.equal(await deriveCode(subtle, v), v.code);
    // The roles swapped: another code (the order is part of the construction).
    assert.equal(await deriveCode(subtle, {
      clientFp: v.serverFp, serverFp: v.clientFp, clientNonce: v.serverNonce, serverNonce: v.clientNonce,
    }), v.swapped);
  }
});

test('the commitment is SHA-256 of the label, a zero byte, the fingerprint and the nonce', async () => {
  assert.deepEqual(await commitment(subtle, counting(0), filled(0xaa)),
    hex('7a11d47b14859def7d4fe65906b118c9fb95a219f16d99cda2fa21a1ccfeacc0'));
  assert.deepEqual(await commitment(subtle, filled(0), filled(0)),
    hex('737402d6ec6e75b0b99030bda73136e443025a303f446547cd688e9c94d381ef'));
});

const FP_A = colons(counting(0));
const FP_B = colons(counting(100));

// A description as a browser writes one: a session part and two media
// sections, the fingerprint at the media level unless `at` says 'session'.
function sdp({ fp = [FP_A], setup = 'actpass', at = 'media' } = {}) {
  const lines = ['v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0 1'];
  if (at === 'session') lines.push(...fp.map((f) => `a=fingerprint:${f}`));
  for (const mid of ['0', '1']) {
    lines.push(`m=${mid === '0' ? 'audio' : 'video'} 9 UDP/TLS/RTP/SAVPF 111`, 'c=IN IP4 0.0.0.0', `a=mid:${mid}`);
    if (at === 'media' && fp.length) lines.push(`a=fingerprint:${fp[Number(mid) % fp.length]}`);
    lines.push(`a=setup:${setup}`);
  }
  return `${lines.join('\r\n')}\r\n`;
}
const withFp = (f) => [`sha-256 ${f}`];

test('the fingerprint is read from every a=fingerprint line of a side, session or media level, and they must agree', () => {
  assert.deepEqual(sdpFingerprint(sdp({ fp: withFp(FP_A) })), { fp: counting(0) });
  assert.deepEqual(sdpFingerprint(sdp({ fp: withFp(FP_A), at: 'session' })), { fp: counting(0) });
  assert.deepEqual(sdpFingerprint(sdp({ fp: [`SHA-256 ${FP_A.toLowerCase()}`] })), { fp: counting(0) }, 'case does not matter');
  assert.deepEqual(sdpFingerprint(sdp({ fp: [`sha-256 ${FP_A}`, `sha-256 ${FP_B}`] })),
    { problem: 'verify.problem.fingerprintsDisagree' });
  assert.deepEqual(sdpFingerprint(sdp({ fp: [`sha-1 ${FP_A.slice(0, 59)}`] })), { problem: 'verify.problem.notSha256' });
  assert.deepEqual(sdpFingerprint(sdp({ fp: [`sha-256 ${FP_A}`, `sha-384 ${FP_A}`] })), { problem: 'verify.problem.notSha256' },
    'another algorithm beside sha-256 is not ignored');
  assert.deepEqual(sdpFingerprint(sdp({ fp: [`sha-256 ${FP_A.slice(3)}`] })), { problem: 'verify.problem.badFingerprint' });
  assert.deepEqual(sdpFingerprint(sdp({ fp: [] })), { problem: 'verify.problem.noFingerprint' });
  assert.deepEqual(sdpFingerprint(undefined), { problem: 'verify.problem.noFingerprint' });
});

test('the DTLS role comes from the answer\'s a=setup', () => {
  const offer = { type: 'offer', sdp: sdp({ setup: 'actpass' }) };
  const active = { type: 'answer', sdp: sdp({ setup: 'active' }) };
  const passive = { type: 'answer', sdp: sdp({ setup: 'passive' }) };
  assert.equal(dtlsRole(active, offer), 'client');
  assert.equal(dtlsRole(passive, offer), 'server');
  assert.equal(dtlsRole(offer, active), 'server');
  assert.equal(dtlsRole(offer, passive), 'client');
  assert.equal(dtlsRole(offer, { type: 'answer', sdp: sdp({ setup: 'actpass' }) }), '');
  assert.equal(dtlsRole(offer, offer), '');
  assert.equal(dtlsRole(null, null), '');
});

// Two sides of one connection: what each negotiated (the offerer's local
// offer is the answerer's remote one), fingerprints as each sees them.
function descriptions({ seenByA = FP_B, seenByB = FP_A } = {}) {
  return {
    a: { local: { type: 'offer', sdp: sdp({ fp: withFp(FP_A) }) }, remote: { type: 'answer', sdp: sdp({ fp: withFp(seenByA), setup: 'active' }) } },
    b: { local: { type: 'answer', sdp: sdp({ fp: withFp(FP_B), setup: 'active' }) }, remote: { type: 'offer', sdp: sdp({ fp: withFp(seenByB) }) } },
  };
}

function side(name, clock) {
  const s = { name, sent: [], result: null, deliver: () => {} };
  s.verifier = createVerifier({
    crypto: webcrypto,
    timers: clock.timers,
    send: (msg) => { s.sent.push(msg); s.deliver(msg); },
    on: { result: (r) => { s.result = r; } },
  });
  return s;
}

// Waits until the verifiers have handled everything sent so far, replies
// to replies included.
async function idle(...sides) {
  for (let i = 0; i < 8; i++) await Promise.all(sides.map((s) => s.verifier.whenIdle()));
}

test('two sides that see each other\'s fingerprints get the same code; each reveals only after the other\'s commit', async () => {
  const clock = fakeClock();
  const a = side('a', clock);
  const b = side('b', clock);
  const d = descriptions();
  a.verifier.start(d.a.local, d.a.remote);
  await idle(a);
  assert.equal(a.sent.length, 1, 'a commits, and waits');
  assert.ok(a.sent[0].verify.commit);
  a.deliver = (m) => b.verifier.receive(m.verify);
  b.deliver = (m) => a.verifier.receive(m.verify);
  b.verifier.receive(a.sent[0].verify); // b's channel opened later: kept until its start
  await idle(b);
  assert.equal(b.sent.length, 0);
  b.verifier.start(d.b.local, d.b.remote);
  await idle(a, b);
  assert.deepEqual(b.sent.map((m) => Object.keys(m.verify).sort()), [['commit', 'v'], ['nonce', 'v']]);
  assert.deepEqual(a.sent.map((m) => Object.keys(m.verify).sort()), [['commit', 'v'], ['nonce', 'v']]);
  assert.match(a.result.code, /^\d{4} \d{4}$/);
  assert.equal(a.result.code, b.result.code);
  assert.deepEqual(a.result.remoteFp, counting(100));
});

test('a forwarder in the middle (its own DTLS to each side) fails the commitment check on both sides', async () => {
  const clock = fakeClock();
  const a = side('a', clock);
  const b = side('b', clock);
  const mallory = { toA: colons(counting(50)), toB: colons(counting(150)) };
  const d = descriptions({ seenByA: mallory.toA, seenByB: mallory.toB });
  a.deliver = (m) => b.verifier.receive(m.verify);
  b.deliver = (m) => a.verifier.receive(m.verify);
  a.verifier.start(d.a.local, d.a.remote);
  b.verifier.start(d.b.local, d.b.remote);
  await idle(a, b);
  assert.deepEqual(a.result, { problem: 'verify.problem.mismatch', suspicious: true });
  assert.deepEqual(b.result, { problem: 'verify.problem.mismatch', suspicious: true });
});

// One verifier, with the test as its partner.
async function alone() {
  const clock = fakeClock();
  const a = side('a', clock);
  const d = descriptions();
  a.verifier.start(d.a.local, d.a.remote);
  await idle(a);
  return { a, clock, own: a.sent[0].verify.commit };
}
const nonce = toBase64Url(filled(7));

test('refused, with a reason: a reveal before the commitment, a reveal that does not match it, a repeated nonce or commitment, a second message', async () => {
  let { a } = await alone();
  a.verifier.receive({ v: 1, nonce });
  await idle(a);
  assert.deepEqual(a.result, { problem: 'verify.problem.early', suspicious: true });

  ({ a } = await alone());
  a.verifier.receive({ v: 1, commit: toBase64Url(await commitment(subtle, counting(100), filled(8))) });
  a.verifier.receive({ v: 1, nonce });
  await idle(a);
  assert.deepEqual(a.result, { problem: 'verify.problem.mismatch', suspicious: true });

  // Its own commitment sent back (a reflection): refused at once.
  let own;
  ({ a, own } = await alone());
  a.verifier.receive({ v: 1, commit: own });
  await idle(a);
  assert.deepEqual(a.result, { problem: 'verify.problem.repeated', suspicious: true });
  assert.equal(a.sent.length, 1, 'nothing revealed to a reflection');

  // Its own nonce sent back, behind a commitment the test made for it.
  ({ a } = await alone());
  a.verifier.receive({ v: 1, commit: toBase64Url(filled(9)) });
  await idle(a);
  const revealed = a.sent[1].verify.nonce;
  a.verifier.receive({ v: 1, nonce: revealed });
  await idle(a);
  assert.deepEqual(a.result, { problem: 'verify.problem.repeated', suspicious: true });

  ({ a } = await alone());
  a.verifier.receive({ v: 1, commit: toBase64Url(filled(9)) });
  a.verifier.receive({ v: 1, commit: toBase64Url(filled(10)) });
  await idle(a);
  assert.deepEqual(a.result, { problem: 'verify.problem.twice', suspicious: true });

  // More than a commitment before this side has started: not a partner's way.
  const early = side('early', fakeClock());
  early.verifier.receive({ v: 1, commit: toBase64Url(filled(9)) });
  early.verifier.receive({ v: 1, nonce });
  await idle(early);
  assert.deepEqual(early.result, { problem: 'verify.problem.twice', suspicious: true });

  ({ a } = await alone());
  a.verifier.receive({ v: 1, commit: 'short' });
  await idle(a);
  assert.deepEqual(a.result, { problem: 'verify.problem.malformed', suspicious: true });

  ({ a } = await alone());
  a.verifier.receive({ v: 2, commit: toBase64Url(filled(9)) });
  await idle(a);
  assert.deepEqual(a.result, { problem: 'verify.problem.version', suspicious: false });
});

test('a partner that never answers, or a description without a sha-256 fingerprint, cannot be verified', async () => {
  const { a, clock } = await alone();
  clock.advance(PARTNER_ANSWER_MS - 1);
  assert.equal(a.result, null);
  clock.advance(1);
  assert.deepEqual(a.result, { problem: 'verify.problem.noAnswer', suspicious: false });

  // One that commits and then goes quiet.
  const quiet = await alone();
  quiet.a.verifier.receive({ v: 1, commit: toBase64Url(filled(9)) });
  await idle(quiet.a);
  assert.equal(quiet.a.sent.length, 2, 'revealed to the commitment');
  quiet.clock.advance(PARTNER_ANSWER_MS);
  assert.deepEqual(quiet.a.result, { problem: 'verify.problem.noAnswer', suspicious: false });

  const b = side('b', fakeClock());
  const d = descriptions({ seenByA: `${FP_B}`.replace(/^../, 'ZZ') });
  b.verifier.start(d.a.local, d.a.remote);
  await idle(b);
  assert.deepEqual(b.result, { problem: 'verify.problem.badFingerprint', suspicious: false });
  assert.equal(b.sent.length, 0, 'nothing sent');
});
