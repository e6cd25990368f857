'use strict';
// The benchmark's second reference: the same server as ../reference/server.js
// (protocol v1, duetd's pairing semantics) on uWebSockets.js instead of
// Node's https + ws, to compare duetd with a fast C++ WebSocket stack too:
//   - only mutual requests pair: alice names bob and bob names alice;
//   - sdp/ice go only to the sender's own partner, forwarded unchanged;
//   - a second open with an id in use replaces the older connection (4001);
//   - when a connection goes, its partner hears {"close":1};
//   - {"ping":1} is answered with {"pong":1}; the server pings every 30 s.
//
// usage: node server.js --cert FILE --key FILE [--port N] [--address A] [--ping-seconds N]
// It logs "listening on https://ADDRESS:PORT/" on stderr when ready.
const uWS = require('uwebsockets');

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
      console.error(`reference-uws: unknown option ${name}`);
      process.exit(2);
    }
    i++;
  }
  if (!opt.cert || !opt.key) {
    console.error('reference-uws: --cert FILE and --key FILE are required');
    process.exit(2);
  }
  return opt;
}

const opt = parseArgs(process.argv);
const byLocal = new Map(); // local id -> the state of the connection that opened with it
const open = new Set(); // every open connection's state, for the pinger and shutdown
const decoder = new TextDecoder();

// uWS hands each connection a plain user-data object; it holds our state:
// { ws, local, remote, partner } where partner is the partner's state.
function send(st, text) {
  if (!st.closed) st.ws.send(text, false);
}

function sendError(st, code, message) {
  send(st, JSON.stringify({ error: { code, message } }));
}

function isId(s) {
  return typeof s === 'string' && s.length > 0 && s.length <= 256;
}

function onOpen(st, msg) {
  const o = msg.open;
  if (!o || !isId(o.local) || !isId(o.remote) || o.local === o.remote)
    return sendError(st, 'bad-request', 'open needs distinct string ids local and remote.');
  if (st.local !== undefined) return sendError(st, 'already-open', 'This connection already sent open.');
  const older = byLocal.get(o.local);
  if (older) {
    sendError(older, 'replaced', 'A newer connection opened with your id; this one is closed.');
    drop(older);
    older.ws.end(4001, 'replaced by a newer connection'); // runs its close handler at once
  }
  st.local = o.local;
  st.remote = o.remote;
  byLocal.set(st.local, st);
  const waiting = byLocal.get(st.remote);
  if (waiting && waiting.remote === st.local && !waiting.partner) {
    st.partner = waiting;
    waiting.partner = st;
    send(waiting, '{"start":"answer"}');
    send(st, '{"start":"offer"}');
  }
  return undefined;
}

// Ends the connection's part: its partner hears close, its id comes free.
function drop(st) {
  if (st.partner) {
    const partner = st.partner;
    partner.partner = null;
    st.partner = null;
    send(partner, '{"close":1}');
  }
  if (st.local !== undefined && byLocal.get(st.local) === st) byLocal.delete(st.local);
  st.local = undefined;
}

function onMessage(ws, data, isBinary) {
  const st = ws.getUserData();
  if (isBinary) return sendError(st, 'binary-unsupported', 'Send each message as a text frame.');
  // data is only valid during this callback: decode it now (uWS has checked the UTF-8).
  const text = decoder.decode(data);
  let msg;
  try {
    msg = JSON.parse(text);
  } catch (e) {
    return sendError(st, 'malformed', 'The message is not valid JSON.');
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg))
    return sendError(st, 'malformed', 'The message is not a JSON object.');
  if (msg.open !== undefined) return onOpen(st, msg);
  if (msg.sdp !== undefined || msg.ice !== undefined) {
    if (!st.partner) return sendError(st, 'not-paired', 'There is no call to send this to yet.');
    if (msg.remote !== st.partner.local)
      return sendError(st, 'not-your-partner', 'You can only send to the person you are paired with.');
    // The received bytes, unchanged (still valid here), as the ws reference sends its text.
    return send(st.partner, data);
  }
  if (msg.ping !== undefined) return send(st, '{"pong":1}');
  if (msg.pong !== undefined) return undefined;
  return sendError(st, 'unknown-type', 'Unknown message type.');
}

const app = uWS.SSLApp({ key_file_name: opt.key, cert_file_name: opt.cert });
app.ws('/*', {
  compression: uWS.DISABLED,
  maxPayloadLength: 65536, // as the ws reference's maxPayload
  // ws neither times out idle connections nor drops on backpressure: nor does this.
  idleTimeout: 0,
  sendPingsAutomatically: false,
  maxBackpressure: 64 * 1024 * 1024,
  open: (ws) => {
    const st = ws.getUserData();
    st.ws = ws;
    st.partner = null;
    st.closed = false;
    open.add(st);
  },
  message: onMessage,
  close: (ws) => {
    const st = ws.getUserData();
    st.closed = true; // the ws object must not be used after this
    open.delete(st);
    drop(st);
  },
});

let listenSocket = null;
const pinger = setInterval(() => {
  for (const st of open) send(st, '{"ping":1}');
}, opt.pingSeconds * 1000);

function shutdown() {
  clearInterval(pinger);
  if (listenSocket) uWS.us_listen_socket_close(listenSocket);
  listenSocket = null;
  // Tell every partnered connection first: end() runs close handlers at once,
  // which would otherwise send a second close to partners still open.
  const all = [...open];
  for (const st of all) {
    if (st.partner) send(st, '{"close":1}');
    st.partner = null;
  }
  for (const st of all) if (!st.closed) st.ws.end(1001, 'server shutting down');
  setTimeout(() => process.exit(0), 500).unref();
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

app.listen(opt.address, opt.port, (ls) => {
  if (!ls) {
    console.error(`reference-uws: cannot listen on ${opt.address}:${opt.port}`);
    process.exit(1);
  }
  listenSocket = ls;
  console.error(`listening on https://${opt.address}:${uWS.us_socket_local_port(ls)}/`);
});
