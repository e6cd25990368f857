'use strict';
// The benchmark's reference server: the tutorial's stack (Node.js https +
// the `ws` package) speaking protocol v1 with the same semantics as duetd's
// pairing plugin, so both do the same work per message:
//   - only mutual requests pair: alice names bob and bob names alice;
//   - sdp/ice go only to the sender's own partner, forwarded unchanged;
//   - a second open with an id in use replaces the older connection;
//   - when a connection goes, its partner hears {"close":1};
//   - {"ping":1} is answered with {"pong":1}; the server pings every 30 s.
//
// usage: node server.js --cert FILE --key FILE [--port N] [--address A]
// It logs "listening on https://ADDRESS:PORT/" on stderr when ready.
const fs = require('fs');
const https = require('https');
const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const opt = { port: 0, address: '127.0.0.1', cert: null, key: null, pingSeconds: 30 };
  for (let i = 2; i < argv.length; i++) {
    const name = argv[i];
    const value = argv[i + 1];
    if (name === '--port') opt.port = Number(value);
    else if (name === '--address') opt.address = value;
    else if (name === '--cert') opt.cert = value;
    else if (name === '--key') opt.key = value;
    else if (name === '--ping-seconds') opt.pingSeconds = Number(value);
    else {
      console.error(`reference: unknown option ${name}`);
      process.exit(2);
    }
    i++;
  }
  if (!opt.cert || !opt.key) {
    console.error('reference: --cert FILE and --key FILE are required');
    process.exit(2);
  }
  return opt;
}

const opt = parseArgs(process.argv);
const server = https.createServer({ cert: fs.readFileSync(opt.cert), key: fs.readFileSync(opt.key) });
const wss = new WebSocketServer({ server, maxPayload: 65536 });
const byLocal = new Map(); // local id -> the connection that opened with it

function sendError(ws, code, message) {
  ws.send(JSON.stringify({ error: { code, message } }));
}

function isId(s) {
  return typeof s === 'string' && s.length > 0 && s.length <= 256;
}

function onOpen(ws, msg) {
  const open = msg.open;
  if (!open || !isId(open.local) || !isId(open.remote) || open.local === open.remote)
    return sendError(ws, 'bad-request', 'open needs distinct string ids local and remote.');
  if (ws.local !== undefined) return sendError(ws, 'already-open', 'This connection already sent open.');
  const older = byLocal.get(open.local);
  if (older) {
    sendError(older, 'replaced', 'A newer connection opened with your id; this one is closed.');
    drop(older);
    older.close(4001, 'replaced by a newer connection');
  }
  ws.local = open.local;
  ws.remote = open.remote;
  byLocal.set(ws.local, ws);
  const waiting = byLocal.get(ws.remote);
  if (waiting && waiting.remote === ws.local && !waiting.partner) {
    ws.partner = waiting;
    waiting.partner = ws;
    waiting.send('{"start":"answer"}');
    ws.send('{"start":"offer"}');
  }
}

// Ends the connection's part: its partner hears close, its id comes free.
function drop(ws) {
  if (ws.partner) {
    const partner = ws.partner;
    partner.partner = null;
    ws.partner = null;
    partner.send('{"close":1}');
  }
  if (ws.local !== undefined && byLocal.get(ws.local) === ws) byLocal.delete(ws.local);
  ws.local = undefined;
}

wss.on('connection', (ws) => {
  ws.partner = null;
  ws.on('message', (data, isBinary) => {
    if (isBinary) return sendError(ws, 'binary-unsupported', 'Send each message as a text frame.');
    const text = data.toString();
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      return sendError(ws, 'malformed', 'The message is not valid JSON.');
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg))
      return sendError(ws, 'malformed', 'The message is not a JSON object.');
    if (msg.open !== undefined) return onOpen(ws, msg);
    if (msg.sdp !== undefined || msg.ice !== undefined) {
      if (!ws.partner) return sendError(ws, 'not-paired', 'There is no call to send this to yet.');
      if (msg.remote !== ws.partner.local)
        return sendError(ws, 'not-your-partner', 'You can only send to the person you are paired with.');
      return ws.partner.send(text); // the whole message, unchanged
    }
    if (msg.ping !== undefined) return ws.send('{"pong":1}');
    if (msg.pong !== undefined) return undefined;
    return sendError(ws, 'unknown-type', 'Unknown message type.');
  });
  ws.on('close', () => drop(ws));
  ws.on('error', () => {});
});

const pinger = setInterval(() => {
  for (const ws of wss.clients) ws.send('{"ping":1}');
}, opt.pingSeconds * 1000);

function shutdown() {
  clearInterval(pinger);
  for (const ws of wss.clients) {
    if (ws.partner) ws.send('{"close":1}');
    ws.close(1001, 'server shutting down');
  }
  server.close();
  setTimeout(() => process.exit(0), 500).unref();
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

server.listen(opt.port, opt.address, () => {
  const a = server.address();
  console.error(`listening on https://${a.address}:${a.port}/`);
});
