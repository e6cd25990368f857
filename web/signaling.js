// The signaling socket: one WebSocket to duetd at a time, opened again with
// backoff when it drops, kept alive with pings, and holding the resume token
// that gets our place back after a drop. It knows the wire protocol's
// housekeeping (open, ping/pong, resume) and hands every other message on.
// The browser's WebSocket, timers, clock and randomness come in as
// parameters so that Node can drive this module with fakes.

export const PING_EVERY_MS = 20000;
export const SILENCE_LIMIT_MS = 50000;
export const BACKOFF_FIRST_MS = 500;
export const BACKOFF_MAX_MS = 30000;

// Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... up to 30 s, each
// scaled by a random 50-100 % so a crowd does not come back in step.
export function backoffDelay(attempt, random) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  return Math.round(base * (0.5 + random() * 0.5));
}

// Callbacks in `on` (all optional):
//   connecting({ first })   a socket is being opened; first: none has opened yet
//   open({ opens })         the socket is open and `open` has been sent
//   message(msg)            any other message from the server
//   retry({ at, attempt, everOpened, code })
//                           the socket closed; the next try is at `at` (ms)
//   replaced()              a newer connection took our id (close 4001); no retry
//   closedByAdmin()         the server's operator closed us (close 4403); no retry
export function createSignaling({
  url, WebSocket, timers = globalThis, now = Date.now, random = Math.random, on = {},
}) {
  const emit = (name, arg) => { if (on[name]) on[name](arg); };
  let ws = null;
  let active = false;
  let opened = false; // the current socket reached "open"
  let everOpened = false; // some socket since start() did
  let opens = 0;
  let attempt = 0;
  let reconnectTimer = 0;
  let reconnectAt = 0;
  let pingTimer = 0;
  let lastHeard = 0;
  let token = '';
  let hello = null; // the `open` message's members: local, remote, token

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  function connect() {
    timers.clearTimeout(reconnectTimer);
    let sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      scheduleRetry(0);
      return;
    }
    ws = sock;
    opened = false;
    emit('connecting', { first: !everOpened });
    sock.onopen = () => {
      if (sock !== ws) return;
      opened = true;
      everOpened = true;
      opens++;
      lastHeard = now();
      // resume "" asks for a token; a token we hold asks for our place back.
      const open = { local: hello.local, remote: hello.remote, resume: token };
      if (hello.token) open.token = hello.token;
      send({ open });
      timers.clearInterval(pingTimer);
      pingTimer = timers.setInterval(keepAlive, PING_EVERY_MS);
      emit('open', { opens });
    };
    sock.onmessage = (ev) => {
      if (sock !== ws) return;
      lastHeard = now();
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg && typeof msg === 'object') receive(msg);
    };
    sock.onclose = (ev) => {
      if (sock !== ws) return;
      ws = null;
      opened = false;
      timers.clearInterval(pingTimer);
      if (!active) return;
      if (ev.code === 4001 || ev.code === 4403) {
        stop();
        emit(ev.code === 4001 ? 'replaced' : 'closedByAdmin');
        return;
      }
      scheduleRetry(ev.code);
    };
  }

  function receive(msg) {
    if ('ping' in msg) {
      send({ pong: 1 });
      return;
    }
    if ('start' in msg) token = typeof msg.resume === 'string' ? msg.resume : '';
    if ('resumed' in msg && typeof msg.resume === 'string' && msg.resume) token = msg.resume;
    if ('error' in msg && msg.error && msg.error.code === 'id-taken' && token) {
      // Our own old connection still holds the id: try again soon.
      drop();
      return;
    }
    emit('message', msg);
  }

  function keepAlive() {
    if (now() - lastHeard > SILENCE_LIMIT_MS && ws) {
      // The server has said nothing for too long: the socket is dead.
      drop();
      return;
    }
    send({ ping: 1 });
  }

  function scheduleRetry(code) {
    timers.clearTimeout(reconnectTimer);
    const delay = backoffDelay(attempt, random);
    attempt++;
    reconnectAt = now() + delay;
    reconnectTimer = timers.setTimeout(() => { if (active) connect(); }, delay);
    emit('retry', { at: reconnectAt, attempt, everOpened, code });
  }

  // Closes the current socket as if the network had dropped it; the usual
  // retry follows.
  function drop() {
    if (ws) ws.close();
  }

  function stop() {
    active = false;
    timers.clearTimeout(reconnectTimer);
    timers.clearInterval(pingTimer);
    token = '';
    if (ws) {
      const sock = ws;
      ws = null;
      try { sock.close(1000, 'hang up'); } catch (e) { /* already closed */ }
    }
  }

  return {
    // Joins as `local` asking for `remote`; authToken is a server call token.
    start({ local, remote, authToken = '' }) {
      stop();
      hello = { local, remote, token: authToken };
      active = true;
      everOpened = false;
      attempt = 0;
      token = '';
      connect();
    },
    stop,
    send,
    drop,
    // Tries at once (the network came back) instead of waiting out the backoff.
    reconnectNow() {
      if (active && !ws) {
        attempt = 0;
        connect();
      }
    },
    // Says goodbye as the page goes away (it may come back from the
    // back-forward cache, and then reconnects as after any drop).
    leave() {
      if (ws) ws.close(1000, 'page closed');
    },
    isOpen: () => Boolean(ws && opened && ws.readyState === WebSocket.OPEN),
    get token() { return token; },
    get reconnectAt() { return reconnectAt; },
  };
}
