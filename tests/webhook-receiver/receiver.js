#!/usr/bin/env node
// A webhook receiver of the tests' own: duetd's webhooks plugin posts its
// events here, and each request is checked with the Standard Webhooks
// reference library (the standardwebhooks npm package), which shares no code
// with duetd's signing.
//
//   node receiver.js --cert FILE --key FILE --secret-file FILE [--port N] [--mode M]
//
// HTTPS on 127.0.0.1 (port 0, an ephemeral one, unless --port); the secret
// file holds the whsec_... secret duetd signs with. Everything it has to say
// is a JSON line on stdout, one per event, and nothing else goes there
// (diagnostics go to stderr):
//   {"event":"listening","port":N}          once, when it accepts connections
//   {"event":"mode","mode":M}               each change of mode
//   {"event":"request","id":..,"timestamp":..,"verified":bool,"error":..,
//    "status":..,"body":..,"received_ms":..,"content_type":..,"path":..}
//                                           each webhook request
// id and timestamp are the webhook-id and webhook-timestamp headers as sent;
// body is the parsed JSON body (null if it is not JSON); status is what was
// answered (null: no answer); received_ms is Date.now() when the whole body
// was in.
//
// The mode says how webhooks are answered: ok (200, or 401 for one that does
// not verify), fail (503), drop (the connection is closed without an answer),
// hang (no answer at all; the connection stays open until duetd gives up) or
// redirect (307 to /redirected on this receiver, which a client that follows
// redirects would POST to next: that path is answered as in ok, so a request
// there, a path a sender is never given, shows the redirect was followed).
// POST /control {"mode": M} changes it and answers {"mode": M}; every other
// request is a webhook. SIGTERM closes the server and exits 0.
'use strict';

const fs = require('node:fs');
const https = require('node:https');
const { Webhook } = require('standardwebhooks');

const MODES = ['ok', 'fail', 'drop', 'hang', 'redirect'];
const REDIRECT_PATH = '/redirected';  // where redirect sends requests
const MAX_READ = 1024 * 1024;  // a webhook body is small; more is read and dropped

function emit(event) {
  // stdout to a pipe is written synchronously on Linux: each line is out
  // before the next step, so the test never waits on a buffered event.
  process.stdout.write(JSON.stringify(event) + '\n');
}

function warn(...args) {
  process.stderr.write('webhook receiver: ' + args.join(' ') + '\n');
}

function parseArgs(argv) {
  const opts = { port: 0, cert: null, key: null, secretFile: null, mode: 'ok' };
  const names = { '--port': 'port', '--cert': 'cert', '--key': 'key', '--secret-file': 'secretFile', '--mode': 'mode' };
  for (let i = 0; i < argv.length; i += 2) {
    const name = names[argv[i]];
    if (!name || argv[i + 1] === undefined) {
      throw new Error('bad argument ' + argv[i] + ' (usage: --cert FILE --key FILE --secret-file FILE [--port N] [--mode M])');
    }
    opts[name] = argv[i + 1];
  }
  if (!opts.cert || !opts.key || !opts.secretFile) throw new Error('--cert, --key and --secret-file are required');
  opts.port = Number(opts.port);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error('bad --port');
  if (!MODES.includes(opts.mode)) throw new Error('--mode is one of ' + MODES.join(', '));
  return opts;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= MAX_READ) chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function answer(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function parseJson(buf) {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (e) {
    return null;
  }
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  // The secret as a receiver would keep it: the whsec_ string, given to the
  // library unchanged (it strips the prefix and decodes the base64 itself).
  const hook = new Webhook(fs.readFileSync(opts.secretFile, 'utf8').trim());
  let mode = opts.mode;
  const sockets = new Set();

  const server = https.createServer({ cert: fs.readFileSync(opts.cert), key: fs.readFileSync(opts.key) });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', (err) => warn('TLS handshake failed:', err.message));

  server.on('request', (req, res) => {
    readBody(req).then((body) => {
      const receivedMs = Date.now();
      const path = req.url.split('?')[0];
      if (req.method === 'POST' && path === '/control') {
        const wanted = (parseJson(body) || {}).mode;
        if (!MODES.includes(wanted)) return answer(res, 400, { error: 'mode is one of ' + MODES.join(', ') });
        mode = wanted;
        emit({ event: 'mode', mode });
        return answer(res, 200, { mode });
      }
      // Verified first, whatever the mode: a test of retries still checks
      // that every attempt is signed right (a fresh timestamp each time).
      let verified = false;
      let error = null;
      let parsed = null;
      try {
        parsed = hook.verify(body, req.headers);
        verified = true;
      } catch (e) {
        error = (e.name || 'Error') + ': ' + e.message;
        parsed = parseJson(body);
      }
      // ok answers 401 to what does not verify, as a real receiver must: it
      // cannot tell a forged event from duetd's.
      // redirect: the redirect's target is answered as in ok (a sender that
      // followed would be taken), every other path is sent there.
      const redirected = mode === 'redirect' && path !== REDIRECT_PATH;
      const okStatus = verified ? 200 : 401;
      const status = { ok: okStatus, fail: 503, drop: null, hang: null,
                       redirect: redirected ? 307 : okStatus }[mode];
      emit({ event: 'request', id: req.headers['webhook-id'] || null,
             timestamp: req.headers['webhook-timestamp'] || null, verified, error, status,
             body: parsed, received_ms: receivedMs, content_type: req.headers['content-type'] || null,
             method: req.method, path });
      if (status === 200) return answer(res, status, { ok: true });
      if (status === 307) {
        const location = 'https://127.0.0.1:' + server.address().port + REDIRECT_PATH;
        return answer(res, status, { redirect: location }, { Location: location });
      }
      if (status !== null) return answer(res, status, { error: error || 'failing on purpose (mode ' + mode + ')' });
      // drop: the connection goes without an answer (a receiver that crashed
      // mid-request); hang: the request is left open (one that stopped).
      if (mode === 'drop') req.socket.destroy();
      return undefined;
    }).catch((e) => {
      warn('request failed:', e.stack || e.message);
      if (!res.headersSent) answer(res, 500, { error: e.message });
    });
  });

  process.on('SIGTERM', () => {
    server.close(() => process.exit(0));
    // Hung requests and idle keep-alive connections would hold close() open.
    for (const socket of sockets) socket.destroy();
    setTimeout(() => process.exit(0), 2000).unref();
  });

  server.listen(opts.port, '127.0.0.1', () => emit({ event: 'listening', port: server.address().port }));
}

try {
  main();
} catch (e) {
  warn(e.stack || e.message);
  process.exit(2);
}
