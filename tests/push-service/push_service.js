#!/usr/bin/env node
// A Web Push service of the tests' own (the push service side of RFC 8030):
// duetd sends its push messages here, and each one is checked with
// implementations that share nothing with duetd's: VAPID (RFC 8292) with
// jose, the aes128gcm payload (RFC 8188, RFC 8291) with http_ece.
//
//   node push_service.js --cert FILE --key FILE [--port N]
//
// HTTPS on 127.0.0.1 (port 0, an ephemeral one, unless --port). Everything it
// has to say is a JSON line on stdout, one per event, and nothing else goes
// there (diagnostics go to stderr):
//   {"event":"listening","port":N}          once, when it accepts connections
//   {"event":"connection"}                   each TCP connection, TLS or not
//   {"event":"tls_error","error":"..."}      a TLS handshake that failed
//   {"event":"push","id":..,"attempt":..,"status":..,"headers":{..},
//    "claims":{..},"vapid_key":"..","plaintext":"..","errors":[..]}
//
// POST /subscribe {"behaviour": B, "host": H} makes a subscription (a P-256
// key pair and an auth secret, as a browser's PushManager would) and answers
// {"id","endpoint","keys":{"p256dh","auth"}}; the endpoint names H (default
// 127.0.0.1). B says how its pushes are answered: ok (201), gone (410),
// notfound (404), bad-request (400), retry-after:N (429 with Retry-After: N
// the first time, 201 after), fail:K (500 the first K times, 201 after),
// never (no answer at all, the connection stays open).
// POST /push/ID is a push: every check that fails is one entry of "errors".
// GET /log answers every event so far, as a JSON array.
// SIGTERM closes the server and exits 0.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const ece = require('http_ece');

// jose 6 is ESM and uses the Web Crypto API through the global, which Node 18
// does not always have.
if (!globalThis.crypto) globalThis.crypto = crypto.webcrypto;

const MAX_BODY = 4096;           // RFC 8291 section 4: a push message's size limit
const MAX_READ = 1024 * 1024;    // what we read at most of a request body
const DAY = 24 * 60 * 60;
const URGENCIES = ['very-low', 'low', 'normal', 'high'];
const BEHAVIOURS = /^(ok|gone|notfound|never|bad-request|retry-after:\d+|fail:\d+)$/;

const events = [];
function emit(event) {
  events.push(event);
  // stdout to a pipe or a file is written synchronously on Linux: each line
  // is out before the next step.
  process.stdout.write(JSON.stringify(event) + '\n');
}

function warn(...args) {
  process.stderr.write('push_service: ' + args.join(' ') + '\n');
}

function parseArgs(argv) {
  const opts = { port: 0, cert: null, key: null };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    const value = argv[i + 1];
    if (name === '--port' && value !== undefined) opts.port = Number(value);
    else if (name === '--cert' && value !== undefined) opts.cert = value;
    else if (name === '--key' && value !== undefined) opts.key = value;
    else throw new Error('unknown argument ' + name + ' (usage: --cert FILE --key FILE [--port N])');
    i++;
  }
  if (!opts.cert || !opts.key) throw new Error('--cert FILE and --key FILE are required');
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error('bad --port');
  return opts;
}

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= MAX_READ) chunks.push(chunk);
    });
    req.on('end', () => resolve({ body: Buffer.concat(chunks), size }));
    req.on('error', reject);
  });
}

function answer(res, status, headers, body) {
  const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const all = Object.assign({ 'Content-Length': Buffer.byteLength(text) }, headers);
  if (body !== undefined && typeof body !== 'string') all['Content-Type'] = 'application/json';
  res.writeHead(status, all);
  res.end(text);
}

function hostPart(host) {
  return host.includes(':') ? '[' + host + ']' : host;
}

// ---- subscriptions -------------------------------------------------------

const subscriptions = new Map();

function subscribe(req, res, port, body) {
  let params = {};
  if (body.length) {
    try {
      params = JSON.parse(body.toString('utf8'));
    } catch (e) {
      return answer(res, 400, {}, { error: 'the body is not JSON' });
    }
  }
  const behaviour = params.behaviour === undefined ? 'ok' : params.behaviour;
  if (typeof behaviour !== 'string' || !BEHAVIOURS.test(behaviour)) {
    return answer(res, 400, {}, { error: 'unknown behaviour ' + JSON.stringify(behaviour) });
  }
  const host = params.host === undefined ? '127.0.0.1' : params.host;
  if (typeof host !== 'string' || !/^[A-Za-z0-9.:-]+$/.test(host)) {
    return answer(res, 400, {}, { error: 'bad host' });
  }
  const ecdh = crypto.createECDH('prime256v1');
  const publicKey = ecdh.generateKeys();
  const auth = crypto.randomBytes(16);
  const id = crypto.randomBytes(8).toString('hex');
  const origin = 'https://' + hostPart(host) + ':' + port;
  subscriptions.set(id, { id, behaviour, ecdh, auth, origin, attempts: 0 });
  answer(res, 200, {}, {
    id,
    endpoint: origin + '/push/' + id,
    keys: { p256dh: b64url(publicKey), auth: b64url(auth) },
  });
}

// ---- the checks of one push ----------------------------------------------

function checkHeaders(req, errors) {
  const h = req.headers;
  const got = {
    ttl: null,
    urgency: h.urgency === undefined ? null : h.urgency,
    topic: h.topic === undefined ? null : h.topic,
    content_encoding: h['content-encoding'] === undefined ? null : h['content-encoding'],
  };
  if (got.content_encoding !== 'aes128gcm') {
    errors.push('Content-Encoding is ' + JSON.stringify(got.content_encoding) + ', not aes128gcm');
  }
  if (h.ttl === undefined) {
    errors.push('no TTL header');
  } else if (!/^[0-9]+$/.test(h.ttl)) {
    got.ttl = h.ttl;
    errors.push('TTL ' + JSON.stringify(h.ttl) + ' is not a non-negative integer');
  } else {
    got.ttl = Number(h.ttl);
  }
  if (got.urgency !== null && !URGENCIES.includes(got.urgency)) {
    errors.push('Urgency ' + JSON.stringify(got.urgency) + ' is not one of ' + URGENCIES.join('|'));
  }
  if (got.topic !== null && !/^[A-Za-z0-9_-]{1,32}$/.test(got.topic)) {
    errors.push('Topic ' + JSON.stringify(got.topic) + ' is not 1 to 32 characters of base64url');
  }
  const type = h['content-type'];
  if (type !== undefined && type.split(';')[0].trim().toLowerCase() !== 'application/octet-stream') {
    errors.push('Content-Type ' + JSON.stringify(type) + ' (absent or application/octet-stream expected)');
  }
  return got;
}

// Authorization: vapid t=JWT, k=KEY (RFC 8292 section 3).
function parseVapid(header) {
  const m = /^vapid\s+(.*)$/is.exec(header || '');
  if (!m) return null;
  const params = {};
  const rx = /\s*([A-Za-z]+)\s*=\s*(?:"([^"]*)"|([^,\s]*))\s*(?:,|$)/gy;
  let p;
  while (rx.lastIndex < m[1].length && (p = rx.exec(m[1])) !== null) {
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2] : p[3];
  }
  return params;
}

async function checkVapid(jose, req, sub, errors) {
  const out = { claims: null, vapid_key: null };
  const params = parseVapid(req.headers.authorization);
  if (params === null) {
    errors.push('Authorization is ' + JSON.stringify(req.headers.authorization || null) + ', not "vapid t=..., k=..."');
    return out;
  }
  if (!params.t) errors.push('vapid: no t= (the JWT)');
  if (!params.k) errors.push('vapid: no k= (the public key)');
  if (!params.t || !params.k) return out;
  out.vapid_key = params.k;
  try {
    out.claims = jose.decodeJwt(params.t);
  } catch (e) {
    errors.push('vapid: t= is not a JWT: ' + e.message);
    return out;
  }
  const point = Buffer.from(params.k, 'base64url');
  if (point.length !== 65 || point[0] !== 4 || point.toString('base64url') !== params.k) {
    errors.push('vapid: k= is not the base64url (unpadded) of a 65-byte uncompressed P-256 point');
  } else {
    try {
      const key = await jose.importJWK(
        { kty: 'EC', crv: 'P-256', x: b64url(point.subarray(1, 33)), y: b64url(point.subarray(33)) }, 'ES256');
      await jose.jwtVerify(params.t, key, { algorithms: ['ES256'] });
    } catch (e) {
      errors.push('vapid: jose rejects the JWT: ' + (e.code ? e.code + ': ' : '') + e.message);
    }
  }
  const claims = out.claims;
  const now = Date.now() / 1000;
  if (claims.aud !== sub.origin) {
    errors.push('vapid: aud ' + JSON.stringify(claims.aud) + ' is not ' + JSON.stringify(sub.origin));
  }
  if (typeof claims.exp !== 'number') {
    errors.push('vapid: no numeric exp');
  } else if (claims.exp <= now) {
    errors.push('vapid: exp ' + claims.exp + ' is not in the future (now ' + Math.floor(now) + ')');
  } else if (claims.exp > now + DAY) {
    errors.push('vapid: exp ' + claims.exp + ' is more than 24 h from now (' + Math.floor(now) + ')');
  }
  if (typeof claims.sub !== 'string' || !/^(mailto:|https:)/.test(claims.sub)) {
    errors.push('vapid: sub ' + JSON.stringify(claims.sub === undefined ? null : claims.sub) +
                ' is not a mailto: or https: URI');
  }
  return out;
}

// The aes128gcm header (RFC 8188 section 2.1): salt(16) rs(4) idlen(1) keyid.
function decryptBody(body, size, sub, errors) {
  if (size > MAX_BODY) errors.push('the body is ' + size + ' bytes, more than ' + MAX_BODY);
  if (body.length < 21) {
    errors.push('the body (' + body.length + ' bytes) is shorter than an aes128gcm header');
    return null;
  }
  const rs = body.readUInt32BE(16);
  const idlen = body[20];
  if (rs < 18) errors.push('record size ' + rs + ' is less than 18');
  // RFC 8291 section 4: the keyid is the application server's public key,
  // and the message is a single record.
  if (idlen !== 65 || body.length < 21 + idlen || body[21] !== 4) {
    errors.push('the header keyid (' + idlen + ' bytes) is not a 65-byte uncompressed P-256 point');
  }
  if (body.length - 21 - idlen > rs) {
    errors.push('the message is more than one record (' + (body.length - 21 - idlen) + ' bytes, rs ' + rs + ')');
  }
  try {
    const plain = ece.decrypt(body, { version: 'aes128gcm', privateKey: sub.ecdh, authSecret: sub.auth });
    return plain.toString('utf8');
  } catch (e) {
    errors.push('http_ece cannot decrypt the body: ' + e.message);
    return null;
  }
}

// How the subscription's behaviour answers its attempt-th push: [status,
// headers], or null for no answer at all.
function behaviourAnswer(sub, attempt) {
  const created = [201, { Location: sub.origin + '/message/' + crypto.randomBytes(8).toString('hex') }];
  const b = sub.behaviour;
  if (b === 'ok') return created;
  if (b === 'gone') return [410, {}];
  if (b === 'notfound') return [404, {}];
  if (b === 'bad-request') return [400, {}];
  if (b === 'never') return null;
  let m = /^retry-after:(\d+)$/.exec(b);
  if (m) return attempt === 1 ? [429, { 'Retry-After': m[1] }] : created;
  m = /^fail:(\d+)$/.exec(b);
  if (m) return attempt <= Number(m[1]) ? [500, {}] : created;
  throw new Error('unknown behaviour ' + b);
}

async function push(jose, req, res, id, body, size) {
  const sub = subscriptions.get(id);
  const errors = [];
  const headers = checkHeaders(req, errors);
  if (!sub) {
    emit({ event: 'push', id, attempt: null, status: 404, headers, claims: null, vapid_key: null,
           plaintext: null, errors: ['unknown subscription'] });
    return answer(res, 404, {});
  }
  const attempt = ++sub.attempts;
  const vapid = await checkVapid(jose, req, sub, errors);
  const plaintext = decryptBody(body, size, sub, errors);
  const reply = behaviourAnswer(sub, attempt);
  emit({ event: 'push', id, attempt, status: reply ? reply[0] : null, headers, claims: vapid.claims,
         vapid_key: vapid.vapid_key, plaintext, errors, body_length: size,
         record_size: body.length >= 20 ? body.readUInt32BE(16) : null });
  if (reply) answer(res, reply[0], reply[1]);
}

// ---- the server ----------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const jose = await import('jose');
  const server = https.createServer({
    cert: fs.readFileSync(opts.cert),
    key: fs.readFileSync(opts.key),
  });
  const sockets = new Set();
  let port = 0;

  // The raw TCP connection, before TLS: counted even when the handshake fails.
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    emit({ event: 'connection' });
  });
  server.on('tlsClientError', (err) => {
    warn('TLS handshake failed:', err.message);
    emit({ event: 'tls_error', error: err.message });
  });
  server.on('request', (req, res) => {
    readBody(req).then(({ body, size }) => {
      const path = req.url.split('?')[0];
      const m = /^\/push\/([^/]+)$/.exec(path);
      if (req.method === 'POST' && path === '/subscribe') return subscribe(req, res, port, body);
      if (req.method === 'POST' && m) return push(jose, req, res, decodeURIComponent(m[1]), body, size);
      if (req.method === 'GET' && path === '/log') return answer(res, 200, {}, events);
      warn('no such resource:', req.method, req.url);
      return answer(res, 404, {}, { error: 'no such resource' });
    }).catch((e) => {
      warn('request failed:', e.stack || e.message);
      if (!res.headersSent) answer(res, 500, {}, { error: e.message });
    });
  });

  process.on('SIGTERM', () => {
    server.close(() => process.exit(0));
    for (const socket of sockets) socket.destroy();
    setTimeout(() => process.exit(0), 2000).unref();
  });

  server.listen(opts.port, '127.0.0.1', () => {
    port = server.address().port;
    emit({ event: 'listening', port });
  });
}

main().catch((e) => {
  warn(e.stack || e.message);
  process.exit(2);
});
