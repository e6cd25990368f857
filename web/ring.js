// Ring links (the server's ring plugin): a caller who opens /?ring=LINE
// rings every device of that line; a device that pressed "Let people ring
// me" holds a line, shows its link and rings when someone calls it.
// Each side talks over a WebSocket of its own, apart from the call's
// signaling: the caller's closes once the ring is over (closing it early is
// the same as Cancel), the device's stays open as a listener between and
// during calls. An accepted ring ends in two pairing ids, and the call
// itself is app.js's ordinary one (startCall).
import { backoffDelay } from './signaling.js';
import { drawQR } from './ui.js';

const RING_QUERY = 'ring';

// Words for the server's refusals; the rest get the generic protocol notice.
const CALLER_ERRORS = {
  'line-unknown': 'err.ring.lineUnknown',
  busy: 'err.ring.busy',
  'ring-rate-limited': 'err.ring.rateLimited',
  'line-rate-limited': 'err.ring.lineRateLimited',
  'lines-off': 'err.ring.linesOff',
  'name-too-long': 'err.ring.nameTooLong',
  'bad-request': 'err.ring.badName',
};
const DEVICE_ERRORS = {
  'create-rate-limited': 'err.ring.createRateLimited',
  'lines-off': 'err.ring.linesOff',
  'name-too-long': 'err.ring.nameTooLong',
  'bad-request': 'err.ring.badName',
};
const STOP_REASONS = {
  'answered-elsewhere': 'ring.stop.answered',
  declined: 'ring.stop.declined',
  cancelled: 'ring.stop.cancelled',
  missed: 'ring.stop.missed',
  removed: 'ring.stop.removed',
};
const ENDED_REASONS = {
  declined: 'ring.ended.declined',
  'no-answer': 'ring.ended.noAnswer',
  cancelled: 'ring.ended.cancelled',
};

// The ring tone: two short beeps every two seconds through WebAudio. A
// browser that will not start audio without a tap stays silent: the
// dialog still says who is calling.
function createRingTone(AudioContextClass) {
  let ctx = null;
  let timer = 0;
  function beep() {
    try {
      for (const offset of [0, 0.5]) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = 440;
        gain.gain.value = 0.15;
        osc.connect(gain).connect(ctx.destination);
        const at = ctx.currentTime + offset;
        osc.start(at);
        osc.stop(at + 0.35);
      }
    } catch (e) { /* no sound, the dialog is enough */ }
  }
  return {
    start() {
      this.stop();
      if (!AudioContextClass) return;
      try {
        ctx = new AudioContextClass();
        if (ctx.resume) ctx.resume().catch(() => {});
      } catch (e) {
        ctx = null;
        return;
      }
      beep();
      timer = setInterval(beep, 2000);
    },
    stop() {
      clearInterval(timer);
      timer = 0;
      if (ctx) {
        const c = ctx;
        ctx = null;
        try { c.close().catch(() => {}); } catch (e) { /* already closed */ }
      }
    },
  };
}

// A WebSocket that sends `hello()` when it opens and hands each message
// to `onMessage`; with `keep`, it comes back with backoff when it drops
// (the device's line), else it is done once closed (the caller's ring).
function createRingSocket({ url, WebSocket, hello, onMessage, onClosed = () => {}, keep = false }) {
  let ws = null;
  let active = false;
  let attempt = 0;
  let retryTimer = 0;
  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }
  function connect() {
    let sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      closed();
      return;
    }
    ws = sock;
    sock.onopen = () => {
      if (sock !== ws) return;
      attempt = 0;
      send(hello());
    };
    sock.onmessage = (ev) => {
      if (sock !== ws) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (!msg || typeof msg !== 'object') return;
      if ('ping' in msg) send({ pong: 1 });
      else onMessage(msg);
    };
    sock.onclose = () => {
      if (sock !== ws) return;
      ws = null;
      closed();
    };
  }
  function closed() {
    if (!active) return;
    if (!keep) {
      active = false;
      onClosed();
      return;
    }
    retryTimer = setTimeout(() => { if (active) connect(); }, backoffDelay(attempt++, Math.random));
  }
  return {
    start() {
      this.stop();
      active = true;
      attempt = 0;
      connect();
    },
    stop() {
      active = false;
      clearTimeout(retryTimer);
      if (ws) {
        const sock = ws;
        ws = null;
        try { sock.close(1000, 'done'); } catch (e) { /* already closed */ }
      }
    },
    send,
    get active() { return active; },
  };
}

// $, t: ui.js's; store: ui.js's localStorage wrapper; notice(key, params)
// and clearNotice(): the page's alert line; startCall(local, remote, name):
// the call with the ids an accepted ring gives, with the other's name.
export function createRing({ $, t, store, notice, clearNotice, startCall, WebSocket, url, AudioContextClass }) {
  const tone = createRingTone(AudioContextClass);
  const lineOf = new URLSearchParams(location.search).get(RING_QUERY) || '';

  // The caller: { key, params } of what the card says, and the ring's id.
  let callerState = { key: '', params: {} };
  let callerRing = '';
  let calleeName = '';
  const callerSocket = createRingSocket({
    url,
    WebSocket,
    hello: () => ({ ring: { line: lineOf, name: $('ring-caller-name').value.trim() } }),
    onMessage: onCallerMessage,
    onClosed: () => {
      // The socket went before the ring ended (the network, the server).
      if (callerRing) setCaller('ring.ended.lost');
      callerRing = '';
      renderCaller();
    },
  });

  // The device: the line as the server last told it, and the ringing call.
  let line = null; // { line, name, device, devices, missed }
  let incoming = null; // { ring, caller, at }
  let lineInfo = { key: '', params: {} };
  let focusBefore = null;
  const lineSocket = createRingSocket({
    url,
    WebSocket,
    keep: true,
    hello: () => {
      const device = store.get('lineDevice');
      const secret = store.get('lineSecret');
      if (device && secret) return { 'line-attach': { device, secret } };
      return { 'line-create': { name: $('ring-line-name').value.trim(), label: deviceLabel() } };
    },
    onMessage: onLineMessage,
  });

  // What the line's device list calls this device: the browser and system
  // in a few words, which the person can tell apart from their other ones.
  function deviceLabel() {
    const ua = navigator.userAgent || '';
    const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrome\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
    const system = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS X/.test(ua) ? 'macOS' : /Windows/.test(ua) ? 'Windows' : /Linux/.test(ua) ? 'Linux' : '';
    return system ? `${browser} on ${system}` : browser;
  }

  const formatTime = (ms) => {
    try {
      return new Date(ms).toLocaleString(document.documentElement.lang || undefined, { dateStyle: 'medium', timeStyle: 'short' });
    } catch (e) {
      return new Date(ms).toISOString();
    }
  };

  // ---- the caller ----

  function setCaller(key, params = {}) {
    callerState = { key, params };
    renderCaller();
  }

  function renderCaller() {
    const ringing = Boolean(callerRing) || callerSocket.active;
    const el = $('ring-call-status');
    el.textContent = callerState.key ? t(callerState.key, callerState.params) : '';
    el.hidden = !callerState.key;
    $('ring-call-btn').hidden = ringing;
    $('ring-cancel-btn').hidden = !ringing;
    $('ring-caller-name').disabled = ringing;
  }

  function ring(ev) {
    ev.preventDefault();
    const name = $('ring-caller-name').value.trim();
    if (!name) {
      $('ring-caller-error').textContent = t('ring.call.nameMissing');
      $('ring-caller-error').hidden = false;
      $('ring-caller-name').setAttribute('aria-invalid', 'true');
      $('ring-caller-name').focus();
      return;
    }
    $('ring-caller-error').hidden = true;
    $('ring-caller-name').setAttribute('aria-invalid', 'false');
    store.set('callerName', name);
    clearNotice();
    callerRing = '';
    setCaller('ring.call.connecting');
    callerSocket.start();
    renderCaller();
    $('ring-cancel-btn').focus();
  }

  function cancel() {
    if (callerRing) callerSocket.send({ 'ring-cancel': { ring: callerRing } });
    callerRing = '';
    callerSocket.stop();
    setCaller('ring.ended.cancelled');
    $('ring-call-btn').focus();
  }

  function onCallerMessage(msg) {
    if ('ringing' in msg) {
      callerRing = String(msg.ringing.ring || '');
      calleeName = String(msg.ringing.name || '');
      setCaller('ring.call.ringing', { name: calleeName });
    } else if ('ring-ended' in msg) {
      callerRing = '';
      callerSocket.stop();
      setCaller(ENDED_REASONS[msg['ring-ended'].reason] || 'ring.ended.cancelled', { name: calleeName });
      $('ring-call-btn').focus();
    } else if ('ring-connect' in msg) {
      const { local, remote } = msg['ring-connect'];
      callerRing = '';
      callerSocket.stop();
      setCaller('');
      startCall(String(local), String(remote), calleeName);
    } else if ('error' in msg) {
      const code = String((msg.error && msg.error.code) || '');
      callerRing = '';
      callerSocket.stop();
      setCaller('');
      notice(CALLER_ERRORS[code] || 'err.protocol', { code: code || '?' });
      $('ring-call-btn').focus();
    }
  }

  // ---- the device ----

  function setLineInfo(key, params = {}) {
    lineInfo = { key, params };
    renderLineInfo();
  }

  function renderLineInfo() {
    const el = $('ring-info');
    el.textContent = lineInfo.key ? t(lineInfo.key, lineInfo.params) : '';
    el.hidden = !lineInfo.key;
  }

  function renderLine() {
    const on = Boolean(line);
    const starting = !on && lineSocket.active;
    $('ring-line-off').hidden = on;
    $('ring-line-on').hidden = !on;
    $('ring-create-btn').disabled = starting;
    $('ring-line-status').textContent = starting ? t('ring.line.starting') : '';
    if (!on) return;
    const link = `${location.origin}${location.pathname}?${new URLSearchParams({ [RING_QUERY]: line.line })}`;
    $('ring-line-shown').textContent = t('ring.line.shownAs', { name: line.name });
    if ($('ring-link').value !== link) {
      $('ring-link').value = link;
      $('ring-copy-status').textContent = '';
      const drawn = drawQR($('ring-qr'), link, 200);
      $('ring-qr').hidden = !drawn;
    }
    const devices = $('ring-devices');
    devices.textContent = '';
    for (const d of line.devices || []) {
      const li = document.createElement('li');
      li.textContent = d.device === line.device ? t('ring.line.thisDevice', { label: d.label }) : String(d.label);
      devices.append(li);
    }
    const missed = $('ring-missed');
    missed.textContent = '';
    for (const m of line.missed || []) {
      const li = document.createElement('li');
      li.textContent = t('ring.line.missedItem', { caller: m.caller, time: formatTime(m.at) });
      missed.append(li);
    }
    $('ring-missed-none').hidden = (line.missed || []).length > 0;
  }

  // The first press shows the name field (filled in from last time), so
  // that the start page keeps one control for lines until it is wanted.
  function makeLine() {
    const name = $('ring-line-name').value.trim();
    if ($('ring-line-field').hidden) {
      $('ring-line-field').hidden = false;
      $('ring-line-name').focus();
      return;
    }
    if (!name) {
      $('ring-line-error').textContent = t('ring.line.nameMissing');
      $('ring-line-error').hidden = false;
      $('ring-line-name').setAttribute('aria-invalid', 'true');
      $('ring-line-name').focus();
      return;
    }
    $('ring-line-error').hidden = true;
    $('ring-line-name').setAttribute('aria-invalid', 'false');
    store.set('lineName', name);
    store.remove('lineDevice');
    store.remove('lineSecret');
    clearNotice();
    lineSocket.start();
    renderLine();
  }

  // Stops ringing on this device and forgets its line (the line itself
  // stays on the server for the other devices).
  function stopLine() {
    lineSocket.stop();
    store.remove('lineDevice');
    store.remove('lineSecret');
    line = null;
    closeRingScreen();
    setLineInfo('');
    renderLine();
    $('ring-create-btn').focus();
  }

  function onLineMessage(msg) {
    if ('line-credentials' in msg) {
      store.set('lineDevice', String(msg['line-credentials'].device || ''));
      store.set('lineSecret', String(msg['line-credentials'].secret || ''));
    } else if ('line' in msg) {
      line = msg.line;
      renderLine();
    } else if ('incoming' in msg) {
      openRingScreen(msg.incoming);
    } else if ('ring-stop' in msg) {
      const stop = msg['ring-stop'];
      if (!incoming || incoming.ring !== stop.ring) return;
      const caller = incoming.caller;
      closeRingScreen();
      setLineInfo(STOP_REASONS[stop.reason] || 'ring.stop.cancelled', { caller });
    } else if ('missed' in msg) {
      if (line) {
        line.missed = [{ caller: msg.missed.caller, at: msg.missed.at }, ...(line.missed || [])];
        renderLine();
      }
    } else if ('ring-connect' in msg) {
      const { local, remote } = msg['ring-connect'];
      const caller = incoming ? incoming.caller : '';
      closeRingScreen();
      setLineInfo('');
      startCall(String(local), String(remote), caller);
    } else if ('line-removed' in msg) {
      if (line && msg['line-removed'].device === line.device) stopLine();
    } else if ('error' in msg) {
      onLineError(String((msg.error && msg.error.code) || ''));
    }
  }

  function onLineError(code) {
    if (code === 'device-unknown') {
      // This device was removed from its line, or the line is gone.
      stopLine();
      setLineInfo('ring.line.forgotten');
      return;
    }
    if (code === 'ring-unknown') {
      // Answered too late: the ring ended on the server meanwhile.
      closeRingScreen();
      setLineInfo('ring.stop.gone');
      return;
    }
    if (!line) {
      // line-create refused: back to the button.
      lineSocket.stop();
      store.remove('lineDevice');
      store.remove('lineSecret');
      renderLine();
    }
    notice(DEVICE_ERRORS[code] || 'err.protocol', { code: code || '?' });
  }

  // ---- the ring screen ----

  function openRingScreen(call) {
    incoming = { ring: String(call.ring || ''), caller: String(call.caller || ''), at: call.at };
    setLineInfo('');
    if ($('ring-screen').hidden) focusBefore = document.activeElement;
    $('ring-screen-text').textContent = t('ring.screen.text', { caller: incoming.caller });
    $('ring-screen').hidden = false;
    $('ring-accept-btn').focus();
    tone.start();
  }

  function closeRingScreen() {
    incoming = null;
    tone.stop();
    if ($('ring-screen').hidden) return;
    $('ring-screen').hidden = true;
    if (focusBefore && document.contains(focusBefore) && !focusBefore.closest('[hidden]')) focusBefore.focus();
    focusBefore = null;
  }

  function answer(accept) {
    if (!incoming) return;
    lineSocket.send({ [accept ? 'ring-accept' : 'ring-decline']: { ring: incoming.ring } });
    tone.stop();
    if (!accept) {
      closeRingScreen();
      setLineInfo('ring.screen.declined');
    } else {
      $('ring-screen-text').textContent = t('ring.screen.accepting');
    }
  }

  // Escape declines; Tab stays between the two buttons while it rings.
  function onRingKey(ev) {
    if (ev.key === 'Escape') {
      ev.preventDefault();
      answer(false);
    } else if (ev.key === 'Tab') {
      ev.preventDefault();
      const next = document.activeElement === $('ring-accept-btn') ? 'ring-decline-btn' : 'ring-accept-btn';
      $(next).focus();
    }
  }

  async function copyRingLink() {
    try {
      await navigator.clipboard.writeText($('ring-link').value);
      $('ring-copy-status').textContent = t('ring.line.copied');
    } catch (e) {
      $('ring-link').select();
      $('ring-copy-status').textContent = t('join.invite.copyFailed');
    }
  }

  return {
    // True when the page was opened as a ring link: the caller's card
    // takes the place of the join form.
    get isCaller() { return Boolean(lineOf); },
    init() {
      document.body.dataset.ring = lineOf ? 'caller' : 'device';
      $('ring-call').hidden = !lineOf;
      $('ring-line').hidden = Boolean(lineOf);
      $('ring-caller-name').value = store.get('callerName');
      $('ring-line-name').value = store.get('lineName');
      $('ring-call').addEventListener('submit', ring);
      $('ring-cancel-btn').addEventListener('click', cancel);
      $('ring-line-off').addEventListener('submit', (ev) => { ev.preventDefault(); makeLine(); });
      $('ring-stop-btn').addEventListener('click', stopLine);
      $('ring-copy-btn').addEventListener('click', copyRingLink);
      $('ring-accept-btn').addEventListener('click', () => answer(true));
      $('ring-decline-btn').addEventListener('click', () => answer(false));
      $('ring-screen').addEventListener('keydown', onRingKey);
      renderCaller();
      renderLine();
      // A device that made a line before rings again after a reload.
      if (!lineOf && store.get('lineDevice') && store.get('lineSecret')) {
        lineSocket.start();
        renderLine();
      }
    },
    // Redraws its texts in the new language.
    render() {
      renderCaller();
      renderLine();
      renderLineInfo();
      if (incoming) $('ring-screen-text').textContent = t('ring.screen.text', { caller: incoming.caller });
    },
    // The page goes away: a ringing caller's ring ends with its socket.
    leave() {
      tone.stop();
      closeRingScreen();
      callerSocket.stop();
      callerRing = '';
      renderCaller();
      lineSocket.stop();
    },
    // Back from the back-forward cache: the device rings again.
    resume() {
      if (!lineOf && store.get('lineDevice') && store.get('lineSecret') && !lineSocket.active) {
        lineSocket.start();
        renderLine();
      }
    },
  };
}
