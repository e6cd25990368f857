// The service worker: the app shell for when there is no network, and the
// ring notifications a device gets by Web Push while no page of it is open
// (the ring plugin pushes the same JSON messages it sends over a WebSocket).
// A module worker, so that notifications speak the page's languages from
// i18n.js. It keeps nothing in memory between events (the browser stops it
// when idle): what it needs of the device (its id and secret, the language)
// the page leaves in the DEVICE_CACHE.
import { format, pickLanguage } from './i18n.js';

const SHELL_CACHE = 'duet-shell';
const DEVICE_CACHE = 'duet-device';
const DEVICE_ENTRY = 'device'; // a URL relative to the scope, never fetched
const ANSWER_ENTRY = 'answer'; // the token Accept leaves for the page it opens (push.js)
const SHELL = [
  './', 'index.html', 'style.css', 'manifest.webmanifest', 'favicon.svg',
  'icons/duet-192.png', 'icons/duet-512.png', 'icons/duet-maskable-512.png',
  'app.js', 'camera.js', 'chat.js', 'devices.js', 'i18n.js', 'names.js', 'panels.js', 'peer.js',
  'identity.js', 'push.js', 'qr.js', 'ring.js', 'screen.js', 'signaling.js', 'stats.js', 'ui.js', 'verification.js',
  'verify.js',
];
const SOCKET_MS = 30000; // a Decline (or a new subscription) that cannot reach the server in this time gives up
const tagOf = (ring) => `ring-${ring}`;

const scopeUrl = (path) => new URL(path, self.registration.scope).href;
const shellUrls = new Set(SHELL.map(scopeUrl));

// ---- the app shell --------------------------------------------------------

// Each file on its own: a web root that lacks one (an operator's own page)
// still gets a worker, and so its notifications.
self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(SHELL_CACHE)
    .then((cache) => Promise.all(SHELL.map((file) => cache.add(file).catch(() => {}))))
    .catch(() => { /* no cache (storage full, private mode): no offline page, pushes still */ })
    .then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

// The network first, so that a new version shows at once (duetd answers
// with ETags, cheap to revalidate); the copy kept from the last good answer
// when the network is not there. Everything outside the shell (metrics, a
// ring link's query) passes by, except page loads, which get the shell.
self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  const page = request.mode === 'navigate' && url.href.startsWith(self.registration.scope);
  const shellUrl = page ? scopeUrl('./') : `${url.origin}${url.pathname}`;
  if (!page && !shellUrls.has(shellUrl)) return;
  event.respondWith(fromNetwork(request, shellUrl));
});

async function fromNetwork(request, shellUrl) {
  try {
    const response = await fetch(request);
    if (response.ok && response.type === 'basic' && request.url.split('?')[0] === shellUrl) {
      const copy = response.clone();
      caches.open(SHELL_CACHE).then((cache) => cache.put(shellUrl, copy)).catch(() => {});
    }
    return response;
  } catch (e) {
    const kept = await caches.match(shellUrl, { cacheName: SHELL_CACHE });
    if (kept) return kept;
    throw e;
  }
}

// ---- what the page left for the worker -------------------------------------

async function deviceRecord() {
  try {
    const cache = await caches.open(DEVICE_CACHE);
    const response = await cache.match(scopeUrl(DEVICE_ENTRY));
    return response ? await response.json() : null;
  } catch (e) {
    return null;
  }
}

// t(key, params) in the page's language, and the language.
async function translator() {
  const device = await deviceRecord();
  const lang = pickLanguage(device && device.lang, self.navigator.languages);
  const t = (key, params) => format(lang, key, params);
  t.lang = lang;
  return t;
}

// ---- pushes -----------------------------------------------------------------

self.addEventListener('push', (event) => {
  let msg = null;
  try {
    msg = event.data ? event.data.json() : null;
  } catch (e) { /* not ours: nothing to show */ }
  event.waitUntil(onPush(msg));
});

async function onPush(msg) {
  const t = await translator();
  if (msg && msg.incoming) return showIncoming(t, msg.incoming);
  if (msg && msg['ring-stop']) return showStopped(t, msg['ring-stop']);
  if (msg && msg.missed) return showMissed(t, msg.missed);
  // A push must show something (else the browser shows its own notice).
  return self.registration.showNotification(t('app.name'), { tag: 'duet', silent: true, icon: 'icons/duet-192.png' });
}

async function showIncoming(t, { ring, caller, line, at }) {
  ring = String(ring || '');
  // Pushes may arrive out of order: a ring that already ended stays ended.
  const [shown] = await self.registration.getNotifications({ tag: tagOf(ring) });
  if (shown && shown.data && shown.data.kind !== 'incoming') return undefined;
  return self.registration.showNotification(t('ring.notify.incoming', { caller }), {
    body: t('ring.notify.incomingBody', { line }),
    tag: tagOf(ring),
    renotify: true,
    requireInteraction: true,
    icon: 'icons/duet-192.png',
    vibrate: [400, 200, 400, 200, 400],
    timestamp: Number(at) || Date.now(),
    actions: [
      { action: 'accept', title: t('ring.screen.accept') },
      { action: 'decline', title: t('ring.screen.decline') },
    ],
    // What a click opens: Accept answers the call in the app; the body
    // opens the app, which rings there while the call still rings.
    data: { kind: 'incoming', ring, caller: String(caller || ''), open: { accept: `./?answer=${encodeURIComponent(ring)}`, '': './' } },
  });
}

const STOPPED = {
  'answered-elsewhere': 'ring.stop.answered',
  declined: 'ring.stop.declined',
  cancelled: 'ring.stop.cancelled',
  removed: 'ring.stop.removed',
};

// The ringing notification becomes how the ring ended, without a sound (a
// push must show something, and "answered on another device" is news).
async function showStopped(t, { ring, reason }) {
  const tag = tagOf(String(ring || ''));
  const [ringing] = await self.registration.getNotifications({ tag });
  const caller = ringing && ringing.data ? ringing.data.caller : '';
  return self.registration.showNotification(t(STOPPED[reason] || 'ring.stop.cancelled', { caller }), {
    tag,
    silent: true,
    icon: 'icons/duet-192.png',
    data: { kind: 'ended', open: { '': './' } },
  });
}

function showMissed(t, { ring, caller, at }) {
  const when = new Date(Number(at) || Date.now());
  let time;
  try {
    time = when.toLocaleTimeString(t.lang, { timeStyle: 'short' });
  } catch (e) {
    time = when.toISOString();
  }
  return self.registration.showNotification(t('ring.notify.missed', { caller }), {
    body: t('ring.notify.missedBody', { time }),
    tag: tagOf(String(ring || '')),
    renotify: false,
    icon: 'icons/duet-192.png',
    timestamp: when.getTime(),
    data: { kind: 'missed', open: { '': './' } },
  });
}

// ---- clicks -------------------------------------------------------------------

self.addEventListener('notificationclick', (event) => {
  const { notification, action } = event;
  notification.close();
  const data = notification.data || {};
  const accept = data.kind === 'incoming' && action === 'accept';
  event.waitUntil(action === 'decline' && data.kind === 'incoming'
    ? decline(data.ring)
    : openApp((data.open && (data.open[action] || data.open[''])) || './', accept ? data.ring : ''));
});

// A page of the app already open (not a caller's ?ring= page) answers the
// call itself (it is told to); else a new window opens on the app, with
// ?answer=R when accepting, and a token that tells that page the press was
// real (a link alone must never start the camera).
async function openApp(path, answerRing) {
  const windows = await self.clients.matchAll({ type: 'window' });
  const app = windows.find((c) => {
    const url = new URL(c.url);
    return url.pathname === new URL(self.registration.scope).pathname && !url.searchParams.has('ring');
  });
  if (app) {
    if (answerRing) app.postMessage({ answer: answerRing });
    return app.focus();
  }
  if (answerRing) await leaveAnswerToken(answerRing);
  return self.clients.openWindow(scopeUrl(path));
}

async function leaveAnswerToken(ring) {
  try {
    const cache = await caches.open(DEVICE_CACHE);
    await cache.put(scopeUrl(ANSWER_ENTRY), new Response(JSON.stringify({ ring, at: Date.now() }),
      { headers: { 'content-type': 'application/json' } }));
  } catch (e) { /* no token: the page rings and waits for a press */ }
}

// Decline without opening a window: the worker speaks for the device over a
// WebSocket of its own (attach, decline, done).
async function decline(ring) {
  const device = await deviceRecord();
  if (!device || !device.device || !device.secret) return;
  await talk(device, (msg, send) => {
    if ('line' in msg) send({ 'ring-decline': { ring } });
    return ('ring-stop' in msg && msg['ring-stop'].ring === ring) || 'error' in msg;
  });
}

// pushsubscriptionchange: the browser replaced (or dropped) the
// subscription; the line must learn the new one, or pushes stop coming.
self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil(resubscribe(event.newSubscription));
});

async function resubscribe(given) {
  const device = await deviceRecord();
  if (!device || !device.device || !device.secret || !device.pushKey) return;
  let subscription = given;
  if (!subscription) {
    subscription = await self.registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: device.pushKey,
    });
  }
  const json = subscription.toJSON();
  await talk(device, (msg, send) => {
    if ('line' in msg) send({ 'line-push': { endpoint: json.endpoint, keys: json.keys } });
    return 'line-push' in msg || 'error' in msg;
  });
}

// Attaches as the device and hands every message to step(msg, send) until
// it says done, the socket closes, or SOCKET_MS pass.
function talk(device, step) {
  return new Promise((resolve) => {
    const origin = new URL(self.registration.scope);
    const ws = new WebSocket(`${origin.protocol === 'https:' ? 'wss:' : 'ws:'}//${origin.host}/`);
    const send = (m) => ws.send(JSON.stringify(m));
    const finish = () => {
      clearTimeout(timer);
      try { ws.close(1000, 'done'); } catch (e) { /* already closed */ }
      resolve();
    };
    const timer = setTimeout(finish, SOCKET_MS);
    ws.onopen = () => send({ 'line-attach': { device: device.device, secret: device.secret } });
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (!msg || typeof msg !== 'object') return;
      if ('ping' in msg) send({ pong: 1 });
      else if (step(msg, send)) finish();
    };
    ws.onclose = finish;
    ws.onerror = finish;
  });
}
