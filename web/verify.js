// The safety code of a call: a short number both people read aloud. The
// same number on both screens means each browser's DTLS session (which
// carries the media) ends at the other's browser, not at somebody in the
// middle: not at the signaling server, which passes the SDP and so the
// fingerprints DTLS trusts.
//
// Construction, version 1 (README "Verify a call" says the same):
//   fp      the SHA-256 fingerprint of a side's DTLS certificate, 32 bytes,
//           from its SDP (every a=fingerprint line of a side must name
//           sha-256 and agree; else the call cannot be verified)
//   role    the DTLS roles: client is the side whose answer says (or whose
//           partner's answer says) it is a=setup:active
//   nonce   32 random bytes of each side, for this connection
//   commit  SHA-256("duet-verify-v1 commit" || 0x00 || fp || nonce)
//   code    HKDF-SHA-256(salt = nonce_client || nonce_server,
//                        ikm = fp_client || fp_server,
//                        info = "duet-verify-v1 code", 8 bytes)
//           as a big-endian integer mod 10^8: 8 digits, "1234 5678"
// Over the call's data channel each side sends its commit first, and its
// nonce only once it has the partner's commit: whoever is in the middle must
// commit to its nonces on both legs before it learns either person's, so it
// gets one guess per call, 1 in 10^8, and cannot grind certificates or nonces
// towards two equal codes.

const text = new TextEncoder();
export const VERIFY_VERSION = 1;
export const CODE_DIGITS = 8;
const COMMIT_LABEL = text.encode('duet-verify-v1 commit');
const CODE_INFO = text.encode('duet-verify-v1 code');
const NONCE_BYTES = 32;
const HASH_BYTES = 32;
// A partner page that never answers (the tutorial's client has no data
// channel; an old duet page ignores these messages) cannot be verified.
export const PARTNER_ANSWER_MS = 15000;

const FINGERPRINT_LINE = /^a=fingerprint:(\S+) (\S+)$/;
const SHA256_HEX = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;

// The 32 bytes of a side's certificate fingerprint in its SDP, as
// { fp } or { problem } (an i18n key that says why not).
export function sdpFingerprint(sdp) {
  const lines = String(sdp || '').split(/\r?\n/).map((l) => l.trim()).filter((l) => l.startsWith('a=fingerprint:'));
  if (!lines.length) return { problem: 'verify.problem.noFingerprint' };
  let seen = '';
  for (const line of lines) {
    const m = FINGERPRINT_LINE.exec(line);
    if (!m) return { problem: 'verify.problem.badFingerprint' };
    if (m[1].toLowerCase() !== 'sha-256') return { problem: 'verify.problem.notSha256' };
    const value = m[2].toUpperCase();
    if (!SHA256_HEX.test(value)) return { problem: 'verify.problem.badFingerprint' };
    if (seen && value !== seen) return { problem: 'verify.problem.fingerprintsDisagree' };
    seen = value;
  }
  return { fp: Uint8Array.from(seen.split(':'), (h) => parseInt(h, 16)) };
}

function setupOf(sdp) {
  const values = new Set(String(sdp || '').split(/\r?\n/).map((l) => l.trim())
    .filter((l) => l.startsWith('a=setup:')).map((l) => l.slice('a=setup:'.length).toLowerCase()));
  return values.size === 1 ? [...values][0] : '';
}

// This side's DTLS role, 'client' or 'server', from the negotiated offer
// and answer ({ type, sdp } each); '' when they do not say.
export function dtlsRole(local, remote) {
  const answerIsLocal = local && local.type === 'answer';
  const answer = answerIsLocal ? local : remote;
  if (!answer || answer.type !== 'answer') return '';
  const setup = setupOf(answer.sdp);
  if (setup !== 'active' && setup !== 'passive') return '';
  const answererIsClient = setup === 'active';
  return answerIsLocal === answererIsClient ? 'client' : 'server';
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const equalBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

export function toBase64Url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// null unless `s` is base64url of exactly `length` bytes.
export function fromBase64Url(s, length) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s)) return null;
  let bin;
  try {
    bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  } catch (e) {
    return null;
  }
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return bytes.length === length ? bytes : null;
}

export async function commitment(subtle, fp, nonce) {
  return new Uint8Array(await subtle.digest('SHA-256', concat(COMMIT_LABEL, new Uint8Array([0]), fp, nonce)));
}

export async function deriveCode(subtle, { clientFp, serverFp, clientNonce, serverNonce }) {
  const key = await subtle.importKey('raw', concat(clientFp, serverFp), 'HKDF', false, ['deriveBits']);
  const bits = await subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: concat(clientNonce, serverNonce), info: CODE_INFO }, key, 64);
  const n = new DataView(bits).getBigUint64(0) % (10n ** BigInt(CODE_DIGITS));
  const digits = n.toString().padStart(CODE_DIGITS, '0');
  return `${digits.slice(0, 4)} ${digits.slice(4)}`;
}

// One exchange, for one peer connection. send(msg) puts a message on the
// data channel; on.result(r) is called once, with { code, localFp,
// remoteFp, remoteStable } or { problem, suspicious } (suspicious: the
// partner broke the protocol, as a forwarder in the middle does; else the
// call merely cannot be verified). crypto: { subtle, getRandomValues }.
// stable: this side's certificate is kept from call to call (identity.js),
// said with the commitment so that the partner may remember it; the code
// does not depend on it.
export function createVerifier({ crypto, send, timers = globalThis, on = {}, stable = false }) {
  const { subtle } = crypto;
  let own = null; // { fp, nonce, commit }
  let remoteFp = null;
  let role = '';
  let theirCommit = null;
  let theirStable = false;
  let theirNonce = null;
  let revealed = false;
  let result = null;
  let answerTimer = 0;
  let queue = Promise.resolve(); // messages are handled one at a time, in order
  const early = [];

  function finish(r) {
    if (result) return;
    result = r;
    timers.clearTimeout(answerTimer);
    if (on.result) on.result(r);
  }
  const fail = (problem) => finish({ problem, suspicious: true });
  // No WebCrypto (an insecure page) or a failing digest.
  const unsupported = () => finish({ problem: 'verify.problem.unsupported', suspicious: false });

  function reveal() {
    if (!own || !theirCommit || revealed || result) return;
    revealed = true;
    send({ verify: { v: VERIFY_VERSION, nonce: toBase64Url(own.nonce) } });
  }

  async function complete() {
    if (!own || !theirNonce || result) return;
    const mine = { fp: own.fp, nonce: own.nonce };
    const theirs = { fp: remoteFp, nonce: theirNonce };
    const [client, server] = role === 'client' ? [mine, theirs] : [theirs, mine];
    const code = await deriveCode(subtle, {
      clientFp: client.fp, serverFp: server.fp, clientNonce: client.nonce, serverNonce: server.nonce,
    });
    finish({ code, localFp: own.fp, remoteFp, remoteStable: theirStable });
  }

  async function handle(v) {
    if (result) return;
    if (!v || typeof v !== 'object') return fail('verify.problem.malformed');
    if (v.v !== VERIFY_VERSION) return finish({ problem: 'verify.problem.version', suspicious: false });
    if ('commit' in v) {
      const commit = fromBase64Url(v.commit, HASH_BYTES);
      if (!commit) return fail('verify.problem.malformed');
      if (theirCommit) return fail('verify.problem.twice');
      if (equalBytes(commit, own.commit)) return fail('verify.problem.repeated');
      theirCommit = commit;
      theirStable = v.stable === true;
      reveal();
    } else if ('nonce' in v) {
      const nonce = fromBase64Url(v.nonce, NONCE_BYTES);
      if (!nonce) return fail('verify.problem.malformed');
      if (!theirCommit) return fail('verify.problem.early');
      if (theirNonce) return fail('verify.problem.twice');
      if (equalBytes(nonce, own.nonce)) return fail('verify.problem.repeated');
      if (!equalBytes(await commitment(subtle, remoteFp, nonce), theirCommit)) return fail('verify.problem.mismatch');
      theirNonce = nonce;
      await complete();
    } else {
      fail('verify.problem.malformed');
    }
    return undefined;
  }

  return {
    // The connection's negotiated descriptions, once its data channel is
    // open (DTLS is up by then).
    start(local, remote) {
      queue = queue.then(async () => {
        if (own || result) return;
        const mine = sdpFingerprint(local && local.sdp);
        const theirs = sdpFingerprint(remote && remote.sdp);
        role = dtlsRole(local, remote);
        const problem = mine.problem || theirs.problem || (role ? '' : 'verify.problem.noRole');
        if (problem) {
          finish({ problem, suspicious: false });
          return;
        }
        remoteFp = theirs.fp;
        const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
        own = { fp: mine.fp, nonce, commit: await commitment(subtle, mine.fp, nonce) };
        send({ verify: { v: VERIFY_VERSION, commit: toBase64Url(own.commit), ...(stable ? { stable: true } : {}) } });
        // Until its nonce has come: a partner that commits and then goes
        // quiet leaves no code "being worked out" for ever either.
        answerTimer = timers.setTimeout(() => finish({ problem: 'verify.problem.noAnswer', suspicious: false }), PARTNER_ANSWER_MS);
        for (const v of early.splice(0)) await handle(v);
      }).catch(unsupported);
    },
    // A {verify} message from the data channel. The partner's may come
    // before our own start (its channel opened first): kept until then.
    receive(v) {
      queue = queue.then(() => {
        if (own || result) return handle(v);
        // An honest partner sends one message before it has ours: its commit.
        if (early.length >= 1) return fail('verify.problem.twice');
        early.push(v);
        return undefined;
      }).catch(unsupported);
    },
    stop() {
      timers.clearTimeout(answerTimer);
      result = result || { problem: 'verify.problem.closed', suspicious: false };
    },
    // Resolves once what was given so far has been handled (for tests).
    whenIdle() { return queue; },
    get result() { return result; },
  };
}
