// The page's side of ringing while it is closed: the service worker
// (sw.js, also the app shell offline), notification permission, the push
// subscription, and what the worker needs to know of this device. ring.js
// decides when; this module knows how, and says plainly why it cannot.
const DEVICE_CACHE = 'duet-device';
const DEVICE_ENTRY = 'device'; // sw.js reads it under the same name
const ANSWER_ENTRY = 'answer'; // sw.js writes it when Accept is pressed
const ANSWER_LIFE_MS = 120000;

// Why this browser cannot ring with its pages closed, or '' if it can.
export function pushProblem(nav, win) {
  const apple = /iPhone|iPad|iPod/.test(nav.userAgent) || (nav.platform === 'MacIntel' && nav.maxTouchPoints > 1);
  const standalone = nav.standalone === true || (win.matchMedia && win.matchMedia('(display-mode: standalone)').matches);
  // iOS and iPadOS have push only in an app added to the Home Screen (16.4+).
  if (apple && !standalone) return 'ring.push.ios';
  if (!win.isSecureContext || !nav.serviceWorker || !win.PushManager || !win.Notification) return 'ring.push.unsupported';
  return '';
}

function keyBytes(base64url) {
  const b64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function sameBytes(a, b) {
  if (!a || !b) return false;
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

export function createPush({ nav = navigator, win = window } = {}) {
  let problem = pushProblem(nav, win);
  let registration = null;
  let registering = null;
  const entry = (name) => new URL(name, location.href).href;

  // The worker also keeps the app shell, so every page registers it; a
  // browser without service workers just has no offline page.
  function register() {
    if (!nav.serviceWorker || !win.isSecureContext) return Promise.resolve(null);
    if (!registering) {
      registering = nav.serviceWorker.register('sw.js', { type: 'module' })
        .then(() => nav.serviceWorker.ready)
        .then((r) => { registration = r; return r; })
        .catch(() => {
          // No worker (an older browser refuses module workers): no pushes.
          problem = problem || 'ring.push.unsupported';
          return null;
        });
    }
    return registering;
  }

  return {
    get problem() { return problem; },
    register,
    // 'granted', 'denied', 'default', or '' where there is no push.
    get permission() { return problem ? '' : win.Notification.permission; },
    // Only from a click (browsers ignore or punish asking otherwise).
    askPermission() {
      if (problem) return Promise.resolve('');
      return Promise.resolve(win.Notification.requestPermission()).catch(() => win.Notification.permission);
    },
    // The subscription for the server's key, as PushSubscription.toJSON():
    // the one there is if made with this key, else a new one.
    async subscribe(serverKey) {
      const r = registration || (await register());
      if (!r) throw new Error('no service worker');
      const key = keyBytes(serverKey);
      let sub = await r.pushManager.getSubscription();
      if (sub && !sameBytes(sub.options && sub.options.applicationServerKey, key)) {
        await sub.unsubscribe().catch(() => {});
        sub = null;
      }
      if (!sub) sub = await r.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
      const json = sub.toJSON();
      return { endpoint: json.endpoint, keys: json.keys };
    },
    // What sw.js needs to speak for this device: its id and secret (to
    // decline, or to hand on a changed subscription), the server's key, the
    // language for the notifications.
    async remember(record) {
      if (!win.caches) return;
      try {
        const cache = await win.caches.open(DEVICE_CACHE);
        await cache.put(entry(DEVICE_ENTRY), new Response(JSON.stringify(record),
          { headers: { 'content-type': 'application/json' } }));
      } catch (e) { /* private mode: no pushes to speak for */ }
    },
    // Whether the worker, on a press of Accept, left the token for ring
    // (used up here): what lets ?answer=RING answer without another press.
    async takeAnswer(ring) {
      if (!win.caches) return false;
      try {
        const cache = await win.caches.open(DEVICE_CACHE);
        const response = await cache.match(entry(ANSWER_ENTRY));
        if (!response) return false;
        const token = await response.json();
        await cache.delete(entry(ANSWER_ENTRY));
        return token.ring === ring && Date.now() - token.at < ANSWER_LIFE_MS;
      } catch (e) {
        return false;
      }
    },
    // The page rings (or the ring ended) itself: its notification goes.
    async closeNotifications(ring) {
      const r = registration;
      if (!r || !ring || !r.getNotifications) return;
      try {
        for (const n of await r.getNotifications({ tag: `ring-${ring}` })) n.close();
      } catch (e) { /* nothing to close */ }
    },
    // This device left its line: no more pushes, nothing left behind.
    async forget() {
      if (win.caches) await win.caches.delete(DEVICE_CACHE).catch(() => {});
      const r = registration || (nav.serviceWorker && win.isSecureContext ? await register() : null);
      if (!r || !r.pushManager) return;
      const sub = await r.pushManager.getSubscription().catch(() => null);
      if (sub) await sub.unsubscribe().catch(() => {});
    },
  };
}
