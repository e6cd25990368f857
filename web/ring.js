// Ring links (the server's ring plugin): a caller who opens /?ring=LINE
// rings every device of that line; a device that pressed "Let people ring
// me" holds a line, shows its link and rings when someone calls it.
// Each side talks over a WebSocket of its own, apart from the call's
// signaling: the caller's closes once the ring is over (closing it early is
// the same as Cancel), the device's stays open as a listener between and
// during calls. An accepted ring ends in two pairing ids, and the call
// itself is app.js's ordinary one (startCall). While no page of the device
// is open it rings by Web Push (push.js here, sw.js in the background).
import { backoffDelay } from './signaling.js';
import { drawQR } from './ui.js';

const RING_QUERY = 'ring';
const ADD_QUERY = 'add';

// Words for the server's refusals; the rest get the generic protocol notice.
const CALLER_ERRORS = {
  'line-unknown': 'err.ring.lineUnknown',
  busy: 'err.ring.busy',
  'ring-rate-limited': 'err.ring.rateLimited',
  'line-rate-limited': 'err.ring.lineRateLimited',
  'lines-off': 'err.ring.linesOff',
  'name-too-long': 'err.ring.nameTooLong',
  'bad-request': 'err.ring.badName',
  'cluster-unavailable': 'err.ring.tryAgain',
  'store-failed': 'err.ring.tryAgain',
};
const DEVICE_ERRORS = {
  'create-rate-limited': 'err.ring.createRateLimited',
  'lines-full': 'err.ring.linesFull',
  'change-rate-limited': 'err.ring.changeRateLimited',
  'code-invalid': 'err.ring.codeInvalid',
  'join-rate-limited': 'err.ring.joinRateLimited',
  'too-many-devices': 'err.ring.tooManyDevices',
  'lines-off': 'err.ring.linesOff',
  'name-too-long': 'err.ring.nameTooLong',
  'bad-request': 'err.ring.badName',
  'cluster-unavailable': 'err.ring.tryAgain',
  'store-failed': 'err.ring.tryAgain',
};
const STOP_REASONS = {
  'answered-elsewhere': 'ring.stop.answered',
  declined: 'ring.stop.declined',
  cancelled: 'ring.stop.cancelled',
  missed: 'ring.stop.missed',
  removed: 'ring.stop.removed',
};
// A refused subscription: this device rings only while its page is open.
const PUSH_ERRORS = {
  'push-host-refused': 'ring.push.hostRefused',
  'push-endpoint-invalid': 'ring.push.failed',
  'push-keys-invalid': 'ring.push.failed',
  'push-off': 'ring.push.serverOff',
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
      const first = hello(); // null: nothing to say (the page stops this socket)
      if (first) send(first);
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
// push: push.js's; lang(): the page's language, for the notifications.
export function createRing({ $, t, store, notice, clearNotice, startCall, WebSocket, url, AudioContextClass, push, lang }) {
  const tone = createRingTone(AudioContextClass);
  const query = new URLSearchParams(location.search);
  const lineOf = query.get(RING_QUERY) || '';
  // Accept on a push notification opens the app with ?answer=RING; the
  // page answers only if the worker left a token for that ring (a link
  // alone never starts the camera). answering: the ring this page accepted,
  // until ring-connect, its end or a refusal.
  const answerRing = lineOf ? '' : query.get('answer') || '';
  let answering = '';
  // An "add a device" link (?add=CODE) joins this device to a line.
  let addCode = lineOf ? '' : query.get(ADD_QUERY) || '';
  let joining = false;
  let changed = { key: '', params: {} }; // what the last rename, new link or removal did
  let pendingRename = '';
  let pendingRemoval = null; // { device, label } until the line no longer lists it
  let lineIdBefore = '';
  // A line-create or line-join went out and its answer has not come.
  let requested = false;

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
  // Ringing while closed: '' (not known yet), 'asking', 'on', or the key of
  // what the line card says instead.
  let pushState = '';
  let permissionAsked = null; // the permission prompt's promise, from the click
  let fresh = false; // no `line` yet since this socket attached

  const lineSocket = createRingSocket({
    url,
    WebSocket,
    keep: true,
    hello: () => {
      fresh = true;
      const device = store.get('lineDevice');
      const secret = store.get('lineSecret');
      if (device && secret) return { 'line-attach': { device, secret } };
      if (requested) {
        // The socket went before the answer: the line may have been made (or
        // the code used). Sent again, it would make a second line.
        setTimeout(interrupted);
        return null;
      }
      requested = true;
      if (joining) return { 'line-join': { code: addCode, label: deviceLabel() } };
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

  // A live region announces every change of its text: set it only when it
  // changes, so that a render does not say the same thing again.
  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  const formatTime = (ms) => {
    try {
      return new Date(ms).toLocaleString(document.documentElement.lang || undefined, { dateStyle: 'medium', timeStyle: 'short' });
    } catch (e) {
      return new Date(ms).toISOString();
    }
  };

  // The name typed in the field inputId, trimmed; or '' once the field says
  // (errorId, the text key missingKey) that it must not be empty.
  function typedName(inputId, errorId, missingKey) {
    const input = $(inputId);
    const name = input.value.trim();
    $(errorId).textContent = name ? '' : t(missingKey);
    $(errorId).hidden = Boolean(name);
    input.setAttribute('aria-invalid', name ? 'false' : 'true');
    if (!name) input.focus();
    return name;
  }

  // ---- the caller ----

  function setCaller(key, params = {}) {
    callerState = { key, params };
    renderCaller();
  }

  function renderCaller() {
    const ringing = Boolean(callerRing) || callerSocket.active;
    const el = $('ring-call-status');
    setText(el, callerState.key ? t(callerState.key, callerState.params) : '');
    el.hidden = !callerState.key;
    $('ring-call-btn').hidden = ringing;
    $('ring-cancel-btn').hidden = !ringing;
    $('ring-caller-name').disabled = ringing;
  }

  function ring(ev) {
    ev.preventDefault();
    const name = typedName('ring-caller-name', 'ring-caller-error', 'ring.call.nameMissing');
    if (!name) return;
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
    setText(el, lineInfo.key ? t(lineInfo.key, lineInfo.params) : '');
    el.hidden = !lineInfo.key;
  }

  function renderLine() {
    const on = Boolean(line);
    const starting = !on && lineSocket.active;
    const join = !on && Boolean(addCode);
    $('ring-line-h').textContent = t(join ? 'ring.join.heading' : 'ring.line.heading');
    $('ring-join').hidden = !join;
    $('ring-line-off').hidden = on || join;
    $('ring-line-on').hidden = !on;
    $('ring-create-btn').disabled = starting;
    $('ring-join-btn').disabled = starting;
    setText($('ring-line-status'), starting ? t('ring.line.starting') : '');
    setText($('ring-join-status'), starting ? t('ring.line.starting') : '');
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
    // A rebuilt list drops the focused button: focus stays in the card.
    const hadFocus = devices.contains(document.activeElement);
    devices.textContent = '';
    for (const d of line.devices || []) {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.textContent = d.device === line.device ? t('ring.line.thisDevice', { label: d.label }) : String(d.label);
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = t('ring.line.remove');
      remove.setAttribute('aria-label', t('ring.line.removeLabel', { label: d.label }));
      remove.addEventListener('click', () => removeDevice(d));
      li.append(name, remove);
      devices.append(li);
    }
    if (hadFocus) $('ring-invite-btn').focus();
    setText($('ring-change-status'), changed.key ? t(changed.key, changed.params) : '');
    renderPush();
    const missed = $('ring-missed');
    missed.textContent = '';
    for (const m of line.missed || []) {
      const li = document.createElement('li');
      li.textContent = t('ring.line.missedItem', { caller: m.caller, time: formatTime(m.at) });
      missed.append(li);
    }
    $('ring-missed-none').hidden = (line.missed || []).length > 0;
  }

  function renderPush() {
    let key = push.problem || pushState;
    if (!key && push.permission === 'denied') key = 'ring.push.denied';
    if (!key && push.permission === 'default') key = 'ring.push.off';
    const words = { on: 'ring.push.on', asking: 'ring.push.asking' }[key] || key;
    setText($('ring-push-status'), words ? t(words) : '');
    $('ring-push-btn').hidden = !(key === 'ring.push.off');
  }

  // What the worker needs to decline a ring or hand on a new subscription.
  async function rememberDevice(pushKey = store.get('linePushKey')) {
    const device = store.get('lineDevice');
    const secret = store.get('lineSecret');
    if (device && secret) await push.remember({ device, secret, pushKey, lang: lang() });
  }

  // Once attached: a device that may notify asks for the server's key and
  // (re)sends its subscription, so that the line always has the current one.
  async function syncPush() {
    if (push.problem) return;
    if (permissionAsked) await permissionAsked;
    permissionAsked = null;
    if (push.permission !== 'granted') {
      pushState = '';
      renderPush();
      return;
    }
    pushState = 'asking';
    renderPush();
    lineSocket.send({ 'line-push-key': {} });
  }

  async function subscribe(serverKey) {
    store.set('linePushKey', serverKey);
    // Stored before the line learns the subscription (and the page says
    // pushes work): a page closed at once must leave the worker what it needs.
    await rememberDevice(serverKey);
    try {
      const subscription = await push.subscribe(serverKey);
      if (!lineSocket.send({ 'line-push': subscription })) pushState = '';
    } catch (e) {
      pushState = 'ring.push.failed';
    }
    renderPush();
  }

  function turnOnPush() {
    permissionAsked = push.askPermission();
    syncPush();
  }

  // ?add=CODE: this device joins the line that showed the code.
  function joinLine(ev) {
    ev.preventDefault();
    store.remove('lineDevice');
    store.remove('lineSecret');
    clearNotice();
    if (push.permission === 'default') permissionAsked = push.askPermission();
    joining = true;
    lineSocket.start();
    renderLine();
  }

  function invite() {
    lineSocket.send({ 'line-invite': {} });
  }

  function showInvite({ code, expires_in_s: seconds }) {
    const link = `${location.origin}${location.pathname}?${new URLSearchParams({ [ADD_QUERY]: code })}`;
    $('ring-invite').hidden = false;
    $('ring-invite-link').value = link;
    $('ring-invite-text').textContent = t('ring.invite.text', { minutes: Math.max(1, Math.round((Number(seconds) || 600) / 60)) });
    $('ring-invite-status').textContent = '';
    $('ring-invite-qr').hidden = !drawQR($('ring-invite-qr'), link, 200);
    $('ring-invite-link').focus();
    $('ring-invite-link').select();
  }

  function removeDevice(d) {
    if (d.device === line.device) {
      stopLine();
      return;
    }
    // Said once the line no longer lists it (noteChange), not before.
    if (lineSocket.send({ 'line-remove-device': { device: d.device } })) pendingRemoval = { device: d.device, label: d.label };
    else notice('err.ring.tryAgain');
    $('ring-invite-btn').focus();
  }

  function rename(ev) {
    ev.preventDefault();
    const name = typedName('ring-rename', 'ring-rename-error', 'ring.line.nameMissing');
    if (!name) return;
    pendingRename = name;
    lineSocket.send({ 'line-rename': { name } });
  }

  function newLink() {
    if (!window.confirm(t('ring.change.newLinkConfirm'))) return;
    lineIdBefore = line.line;
    lineSocket.send({ 'line-new-link': {} });
  }

  // A `line` that follows a change of ours says it was made.
  function noteChange() {
    if (pendingRemoval && !(line.devices || []).some((x) => x.device === pendingRemoval.device)) {
      changed = { key: 'ring.line.removed', params: { label: pendingRemoval.label } };
      pendingRemoval = null;
    }
    if (pendingRename && line.name === pendingRename) {
      changed = { key: 'ring.change.saved', params: { name: line.name } };
      store.set('lineName', line.name);
      pendingRename = '';
    } else if (lineIdBefore && line.line !== lineIdBefore) {
      changed = { key: 'ring.change.newLinkDone', params: {} };
      lineIdBefore = '';
    }
  }

  // The first press shows the name field (filled in from last time), so
  // that the start page keeps one control for lines until it is wanted.
  function makeLine() {
    if ($('ring-line-field').hidden) {
      $('ring-line-field').hidden = false;
      $('ring-line-name').focus();
      return;
    }
    const name = typedName('ring-line-name', 'ring-line-error', 'ring.line.nameMissing');
    if (!name) return;
    store.set('lineName', name);
    store.remove('lineDevice');
    store.remove('lineSecret');
    clearNotice();
    // Asked now, from the press, and never before.
    if (push.permission === 'default') permissionAsked = push.askPermission();
    lineSocket.start();
    renderLine();
  }

  // Takes this device off its line (the line itself stays on the server for
  // the other devices) and forgets it: no ringing here, open or closed.
  function stopLine() {
    const device = store.get('lineDevice');
    const secret = store.get('lineSecret');
    if (line && !lineSocket.send({ 'line-remove-device': { device: line.device } }) && device && secret) removeLater(device, secret);
    forgetLine(true);
  }

  // The line's socket is down (reconnecting): a socket of its own removes
  // this device once the server is back, so that no stale device stays on
  // the line. It goes at the first answer.
  function removeLater(device, secret) {
    const once = createRingSocket({
      url,
      WebSocket,
      keep: true,
      hello: () => ({ 'line-attach': { device, secret } }),
      onMessage: (msg) => {
        if ('line' in msg) once.send({ 'line-remove-device': { device } });
        else if ('line-removed' in msg || 'error' in msg) once.stop();
      },
    });
    once.start();
  }

  // The socket went while a line was being made or joined: back to the
  // button, saying so (press again; a used code needs a new link).
  function interrupted() {
    const wasJoining = joining;
    forgetLine();
    notice(wasJoining ? 'err.ring.joinInterrupted' : 'err.ring.createInterrupted');
  }

  // focus: the person asked for it, so focus goes back to the button that
  // makes a line (not when the server says so, e.g. at page load).
  function forgetLine(focus = false) {
    lineSocket.stop();
    store.remove('lineDevice');
    store.remove('lineSecret');
    store.remove('linePushKey');
    push.forget();
    pushState = '';
    line = null;
    answering = '';
    joining = false;
    requested = false;
    pendingRename = '';
    pendingRemoval = null;
    lineIdBefore = '';
    permissionAsked = null;
    changed = { key: '', params: {} };
    $('ring-invite').hidden = true;
    closeRingScreen();
    setLineInfo('');
    renderLine();
    if (focus) $('ring-create-btn').focus();
  }

  function onLineMessage(msg) {
    if ('line-credentials' in msg) {
      requested = false;
      store.set('lineDevice', String(msg['line-credentials'].device || ''));
      store.set('lineSecret', String(msg['line-credentials'].secret || ''));
      rememberDevice();
    } else if ('line' in msg) {
      const first = !line;
      line = msg.line;
      noteChange();
      if (first) $('ring-rename').value = line.name;
      if (joining) {
        joining = false;
        addCode = '';
        history.replaceState(null, '', location.pathname);
      }
      renderLine();
      if (fresh) {
        fresh = false;
        rememberDevice();
        syncPush();
        // Again after a reconnect: the accept may not have reached the server.
        if (answering) lineSocket.send({ 'ring-accept': { ring: answering } });
      }
    } else if ('line-invite' in msg) {
      showInvite(msg['line-invite']);
    } else if ('line-push-key' in msg) {
      subscribe(String(msg['line-push-key'].key || ''));
    } else if ('line-push' in msg) {
      pushState = msg['line-push'].push ? 'on' : '';
      renderPush();
    } else if ('incoming' in msg) {
      push.closeNotifications(String(msg.incoming.ring || ''));
      if (incoming && incoming.ring === msg.incoming.ring) {
        incoming.caller = String(msg.incoming.caller || '');
        return;
      }
      openRingScreen(msg.incoming);
    } else if ('ring-stop' in msg) {
      const stop = msg['ring-stop'];
      push.closeNotifications(String(stop.ring || ''));
      if (!incoming || incoming.ring !== stop.ring) return;
      const caller = incoming.caller;
      answering = '';
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
      answering = '';
      closeRingScreen();
      setLineInfo('');
      startCall(String(local), String(remote), caller);
    } else if ('line-removed' in msg) {
      // Another device removed this one.
      if (line && msg['line-removed'].device === line.device) {
        forgetLine();
        setLineInfo('ring.line.forgotten');
      }
    } else if ('error' in msg) {
      onLineError(String((msg.error && msg.error.code) || ''));
    }
  }

  function onLineError(code) {
    if (code === 'device-unknown' && pendingRemoval) {
      // The device this one removed was gone already.
      pendingRemoval = null;
      return;
    }
    if (code === 'device-unknown') {
      // This device was removed from its line, or the line is gone.
      forgetLine();
      setLineInfo('ring.line.forgotten');
      return;
    }
    if (PUSH_ERRORS[code]) {
      pushState = PUSH_ERRORS[code];
      renderPush();
      return;
    }
    if (code === 'ring-unknown') {
      // Answered too late: the ring ended on the server meanwhile.
      answering = '';
      closeRingScreen();
      setLineInfo('ring.stop.gone');
      return;
    }
    if (!line) {
      // line-create or line-join refused: back to the button.
      joining = false;
      requested = false;
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
    setAccepting(false);
    $('ring-accept-btn').focus();
    tone.start();
  }

  // While an accept is on its way both buttons rest: a second press would
  // only hear "ring-unknown", and a Decline could not undo it.
  function setAccepting(on) {
    $('ring-accept-btn').disabled = on;
    $('ring-decline-btn').disabled = on;
    if (on) $('ring-screen-text').textContent = t('ring.screen.accepting');
  }

  function closeRingScreen() {
    incoming = null;
    tone.stop();
    if ($('ring-screen').hidden) return;
    $('ring-screen').hidden = true;
    if (focusBefore && document.contains(focusBefore) && !focusBefore.closest('[hidden]')) focusBefore.focus();
    focusBefore = null;
  }

  // Accept pressed on a notification: this page answers that ring, sent
  // now if the line is attached, else (and again) when it attaches.
  function answerFromNotification(ring) {
    if (answering === ring) return;
    answering = ring;
    tone.stop();
    if (!incoming || incoming.ring !== ring) {
      if ($('ring-screen').hidden) focusBefore = document.activeElement;
      incoming = { ring, caller: '' };
      $('ring-screen').hidden = false;
    }
    setAccepting(true);
    $('ring-screen').focus();
    if (line) lineSocket.send({ 'ring-accept': { ring } });
  }

  function answer(accept) {
    if (!incoming || answering) return;
    lineSocket.send({ [accept ? 'ring-accept' : 'ring-decline']: { ring: incoming.ring } });
    push.closeNotifications(incoming.ring);
    tone.stop();
    if (!accept) {
      closeRingScreen();
      setLineInfo('ring.screen.declined');
    } else {
      answering = incoming.ring;
      setAccepting(true);
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

  async function copyText(input, status, done) {
    try {
      await navigator.clipboard.writeText(input.value);
      status.textContent = t(done);
    } catch (e) {
      input.select();
      status.textContent = t('join.invite.copyFailed');
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
      $('ring-copy-btn').addEventListener('click', () => copyText($('ring-link'), $('ring-copy-status'), 'ring.line.copied'));
      $('ring-accept-btn').addEventListener('click', () => answer(true));
      $('ring-decline-btn').addEventListener('click', () => answer(false));
      $('ring-screen').addEventListener('keydown', onRingKey);
      $('ring-push-btn').addEventListener('click', turnOnPush);
      $('ring-join').addEventListener('submit', joinLine);
      $('ring-invite-btn').addEventListener('click', invite);
      $('ring-invite-copy-btn').addEventListener('click', () => copyText($('ring-invite-link'), $('ring-invite-status'), 'ring.invite.copied'));
      $('ring-rename-form').addEventListener('submit', rename);
      $('ring-new-link-btn').addEventListener('click', newLink);
      if (!lineOf) push.register();
      // A page already open when Accept is pressed on a notification: the
      // worker says so (only the page's own worker can).
      if (navigator.serviceWorker) {
        navigator.serviceWorker.addEventListener('message', (ev) => {
          const ring = ev.data && typeof ev.data.answer === 'string' ? ev.data.answer : '';
          if (ring && store.get('lineDevice')) answerFromNotification(ring);
        });
      }
      // Opened by Accept on a notification: only with the worker's token.
      if (answerRing) {
        history.replaceState(null, '', location.pathname);
        push.takeAnswer(answerRing).then((ok) => { if (ok) answerFromNotification(answerRing); });
      }
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
      rememberDevice();
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
