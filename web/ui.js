// What the page shows: the two screens, the status line, notices, the join
// form with its checks, the invite link and its QR code, the call controls,
// and the language of all of it. It draws from the state it is given and
// decides nothing about the call.
import { format, pickLanguage } from './i18n.js';
import { encode as encodeQR } from './qr.js';

const MAX_ID_BYTES = 256;
// eslint-disable-next-line no-control-regex -- finding control characters is its purpose
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
const COUNTDOWN_NOTICES = ['err.serverUnreachable', 'err.serverFull'];

// The server's id rules: non-empty, at most 256 bytes of UTF-8, no control
// characters.
export function idProblem(id) {
  if (id.length === 0) return 'valid.empty';
  if (new TextEncoder().encode(id).length > MAX_ID_BYTES) return 'valid.tooLong';
  if (CONTROL_CHARS.test(id)) return 'valid.control';
  return '';
}

export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

// Draws `link` as a QR code on `canvas`; false when the link is too long.
export function drawQR(canvas, link, size = 232) {
  const code = encodeQR(link);
  if (!code) return false;
  const quiet = 4;
  const scale = Math.max(2, Math.floor(size / (code.size + 2 * quiet)));
  const px = (code.size + 2 * quiet) * scale;
  canvas.width = px;
  canvas.height = px;
  canvas.dataset.version = String(code.version);
  const g = canvas.getContext('2d');
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, px, px);
  g.fillStyle = '#000000';
  for (let r = 0; r < code.size; r++) {
    for (let c = 0; c < code.size; c++) if (code.modules[r][c]) g.fillRect((c + quiet) * scale, (r + quiet) * scale, scale, scale);
  }
  return true;
}

// Remembers the form and the language between visits; private mode
// remembers nothing.
export const store = {
  get(key) {
    try { return localStorage.getItem(`duet.${key}`) || ''; } catch (e) { return ''; }
  },
  set(key, value) {
    try { localStorage.setItem(`duet.${key}`, value); } catch (e) { /* nothing to remember */ }
  },
  remove(key) {
    try { localStorage.removeItem(`duet.${key}`); } catch (e) { /* nothing was remembered */ }
  },
};

// view() tells what the texts need: { me, peer, connectedAt, reconnectAt,
// micOn, camOn, cameras, canShare, sharing, canPip, inPip }.
export function createUI({ view }) {
  const $ = (id) => document.getElementById(id);
  let lang = 'en';
  let status = { key: 'status.idle', params: {} };
  let notice = null; // { key, params }
  let joinInfo = '';
  let showValidation = false;
  let callInvite = ''; // the link shown on the call screen while waiting
  const languageListeners = [];
  const forgetListeners = [];
  const statusListeners = [];

  const t = (key, params) => format(lang, key, params);
  const secondsUntil = (at) => Math.max(0, Math.ceil((at - Date.now()) / 1000));

  function renderStatus() {
    const { key, params } = status;
    const v = view();
    const all = { peer: v.peer, ...params };
    if (key === 'status.connected') all.time = formatDuration(Date.now() - v.connectedAt);
    if (key === 'status.reconnectingServer') all.seconds = secondsUntil(v.reconnectAt);
    if (params.reasonKey) all.reason = t(params.reasonKey);
    const el = $('status');
    el.textContent = t(key, all);
    el.dataset.status = key.replace('status.', '');
  }

  function renderNotice() {
    const el = $('notice');
    if (!notice) {
      el.hidden = true;
      el.textContent = '';
      delete el.dataset.code;
      return;
    }
    const v = view();
    const params = { me: v.me, peer: v.peer, ...notice.params };
    if (COUNTDOWN_NOTICES.includes(notice.key)) params.seconds = secondsUntil(v.reconnectAt);
    el.textContent = t(notice.key, params);
    el.dataset.code = notice.key;
    el.hidden = false;
  }

  function renderJoinInfo() {
    const el = $('join-info');
    el.textContent = joinInfo ? t(joinInfo) : '';
    el.hidden = !joinInfo;
  }

  function problems() {
    const me = $('me').value;
    const peer = $('peer').value;
    const found = { me: idProblem(me), peer: idProblem(peer) };
    if (!found.me && !found.peer && me === peer) found.peer = 'valid.same';
    return found;
  }

  function renderValidation(focus) {
    const found = problems();
    for (const field of ['me', 'peer']) {
      const problem = showValidation ? found[field] : '';
      const err = $(`${field}-error`);
      $(field).setAttribute('aria-invalid', problem ? 'true' : 'false');
      err.textContent = problem ? t(problem) : '';
      err.hidden = !problem;
    }
    if (focus) {
      if (found.me) $('me').focus();
      else if (found.peer) $('peer').focus();
    }
    return !found.me && !found.peer;
  }

  // The link that opens this page for the other person: the names swapped.
  // With join, the page it opens says that a call is waiting (the link a
  // call shows).
  function inviteLink({ join = false } = {}) {
    const found = problems();
    if (found.me || found.peer) return '';
    const q = new URLSearchParams({ me: $('peer').value, peer: $('me').value, ...(join ? { join: '1' } : {}) });
    return `${location.origin}${location.pathname}?${q}`;
  }

  function renderInvite() {
    const link = inviteLink();
    $('invite-empty').hidden = Boolean(link);
    $('invite-box').hidden = !link;
    $('invite-link').value = link;
    $('forget-btn').hidden = !store.get('me') && !store.get('peer');
    const tooLong = $('qr-too-long');
    tooLong.hidden = true;
    if (!link) return;
    const drawn = drawQR($('qr'), link);
    $('qr').hidden = !drawn;
    tooLong.hidden = drawn;
  }

  function renderCallInvite() {
    $('call-invite').hidden = !callInvite;
    $('call-invite-link').value = callInvite;
    if (callInvite) $('call-qr').hidden = !drawQR($('call-qr'), callInvite, 160);
  }

  async function copyLink(link, input, statusEl) {
    if (!link) return;
    try {
      await navigator.clipboard.writeText(link);
      statusEl.textContent = t('join.invite.copied');
    } catch (e) {
      input.select();
      statusEl.textContent = t('join.invite.copyFailed');
    }
  }
  const copyInvite = () => copyLink(inviteLink(), $('invite-link'), $('copy-status'));
  const copyCallInvite = () => copyLink(callInvite, $('call-invite-link'), $('call-copy-status'));

  // The names stay in the form of this visit; only the device forgets them.
  function forgetNames() {
    store.remove('me');
    store.remove('peer');
    $('me').value = '';
    $('peer').value = '';
    showValidation = false;
    renderValidation(false);
    renderInvite();
    for (const fn of forgetListeners) fn();
    joinInfo = 'join.forgotten';
    renderJoinInfo();
    $('me').focus();
  }

  function setButton(id, key, on) {
    const b = $(id);
    const label = t(key);
    b.setAttribute('aria-label', label);
    b.title = label;
    if (on !== undefined) b.classList.toggle('off', !on);
  }

  function renderControls() {
    const v = view();
    setButton('mic-btn', v.micOn ? 'ctl.mute' : 'ctl.unmute', v.micOn);
    setButton('cam-btn', v.camOn ? 'ctl.camOff' : 'ctl.camOn', v.camOn);
    setButton('switch-btn', 'ctl.switch');
    setButton('fs-btn', document.fullscreenElement ? 'ctl.exitFullscreen' : 'ctl.fullscreen');
    setButton('hangup-btn', 'ctl.hangup');
    setButton('screen-btn', v.sharing ? 'ctl.stopShare' : 'ctl.share');
    $('screen-btn').classList.toggle('active', Boolean(v.sharing));
    $('screen-btn').hidden = !v.canShare;
    setButton('pip-btn', v.inPip ? 'ctl.exitPip' : 'ctl.pip');
    $('pip-btn').hidden = !v.canPip;
    setButton('devices-btn', 'ctl.devices');
    setButton('stats-btn', 'ctl.stats');
    setButton('verify-btn', 'ctl.verify');
    $('local-wrap').classList.toggle('screen', Boolean(v.sharing));
    $('switch-btn').hidden = v.cameras < 2;
    $('fs-btn').hidden = !document.fullscreenEnabled;
    $('local-wrap').classList.toggle('cam-off', !v.camOn);
  }

  function applyLanguage(next) {
    lang = next;
    document.documentElement.lang = lang;
    for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll('[data-i18n-attr]')) {
      for (const pair of el.dataset.i18nAttr.split(';')) {
        const [attr, key] = pair.split(':');
        el.setAttribute(attr.trim(), t(key.trim()));
      }
    }
    $('lang').value = lang;
    renderStatus();
    renderNotice();
    renderControls();
    renderValidation(false);
    renderJoinInfo();
    renderInvite();
    renderCallInvite();
    for (const fn of languageListeners) fn();
  }

  return {
    $,
    // Fills the form from the link (?me=&peer=) or from the last visit, and
    // picks the language: the one chosen before, else the browser's.
    init() {
      const params = new URLSearchParams(location.search);
      $('me').value = params.get('me') ?? store.get('me');
      $('peer').value = params.get('peer') ?? store.get('peer');
      $('lang').addEventListener('change', () => {
        store.set('lang', $('lang').value);
        applyLanguage($('lang').value);
      });
      $('me').addEventListener('input', onFormInput);
      $('peer').addEventListener('input', onFormInput);
      $('copy-btn').addEventListener('click', copyInvite);
      $('call-copy-btn').addEventListener('click', copyCallInvite);
      $('forget-btn').addEventListener('click', forgetNames);
      document.addEventListener('fullscreenchange', renderControls);
      this.showScreen('join');
      applyLanguage(pickLanguage(store.get('lang'), navigator.languages || [navigator.language]));
    },
    // The names in the form, once they pass the server's rules (else null,
    // with the problems shown and the first bad field focused).
    checkedNames() {
      showValidation = true;
      if (!renderValidation(true)) return null;
      return { me: $('me').value, peer: $('peer').value };
    },
    showScreen(name) {
      // A call stores the names: back at the form they can be forgotten.
      if (name === 'join') $('forget-btn').hidden = !store.get('me') && !store.get('peer');
      $('join').hidden = name !== 'join';
      $('call').hidden = name !== 'call';
      document.body.dataset.screen = name;
    },
    setStatus(key, params = {}) {
      status = { key, params };
      renderStatus();
      for (const fn of statusListeners) fn(key);
    },
    // fn(key) runs after each change of the status line.
    onStatus(fn) { statusListeners.push(fn); },
    get status() { return status.key; },
    showNotice(key, params = {}) {
      notice = { key, params };
      renderNotice();
    },
    clearNotice() {
      notice = null;
      renderNotice();
    },
    get notice() { return notice ? notice.key : ''; },
    setJoinInfo(key) {
      joinInfo = key;
      renderJoinInfo();
    },
    renderControls,
    t,
    // fn() runs after each change of language, to redraw what it owns.
    onLanguage(fn) { languageListeners.push(fn); },
    // "Forget my name on this device" was pressed.
    onForget(fn) { forgetListeners.push(fn); },
    // Fills the form with names chosen elsewhere ("New call").
    fillNames(me, peer) {
      $('me').value = me;
      $('peer').value = peer;
      onFormInput();
    },
    // The invite link on the call screen, '' to hide it.
    setCallInvite(link) {
      if (link === callInvite) return;
      callInvite = link;
      $('call-copy-status').textContent = '';
      renderCallInvite();
    },
    inviteLink,
    // Seconds-counting texts and the call timer are redrawn every second.
    tick() {
      if (['status.connected', 'status.reconnectingServer'].includes(status.key)) renderStatus();
      if (notice && COUNTDOWN_NOTICES.includes(notice.key)) renderNotice();
    },
  };

  function onFormInput() {
    store.set('me', $('me').value);
    store.set('peer', $('peer').value);
    $('copy-status').textContent = '';
    renderValidation(false);
    renderInvite();
  }
}
