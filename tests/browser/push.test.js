// Ringing a device whose page is closed, in real Chromium against the real
// duetd and the tests' own push service (tests/push-service), and the page
// as an installable app that opens without a network.
//
// Headless Chromium has no push service of its own, so each device's context
// wraps PushManager.prototype.subscribe/getSubscription (an init script, as
// the other tests wrap WebSocket) to hand out a subscription the tests' push
// service made. duetd encrypts and signs its pushes for it; the service
// checks the VAPID JWT and decrypts the body with independent code; the test
// gives the plaintext to the service worker with the DevTools protocol's
// ServiceWorker.deliverPushMessage, and reads the notifications it shows
// with registration.getNotifications().
//
// No DevTools method clicks a notification. A click is a NotificationEvent,
// built from the notification the worker really showed, dispatched in the
// worker (Playwright's worker.evaluate): the worker's own handler runs and
// talks to duetd. An event made by script may neither open nor focus a
// window, nor extend the worker's life (waitUntil throws InvalidStateError
// after the handler's work has started; the worker logs it). So for Accept
// the handler runs (it leaves the page its token), its clients.openWindow
// fails, and the test opens, in the device's browser, the URL the
// notification's Accept opens (its data.open.accept), as the click would.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./harness.js');

let server; // the duetd the helpers below talk to: longRing but in the missed call
let longRing; // a minute to answer: a test's steps fit in it on a busy machine
let shortRing; // 8 s, for a ring nobody answers
let push;
let browser;
const people = [];

const ringServer = (seconds) => h.startDuetd({
  args: ['--ring-time', String(seconds), '--ring-push-subject', 'mailto:ops@example.org',
    '--plugin-opt', 'ring.push-allow-private=on', '--plugin-opt', `ring.push-ca-file=${push.cert}`],
});

before(async () => {
  push = await h.startPushService();
  longRing = await ringServer(60);
  shortRing = await ringServer(8);
  server = longRing;
  browser = await h.launchBrowser();
});

after(async () => {
  for (const p of people) await p.close().catch(() => {});
  if (browser) await browser.close();
  for (const s of [longRing, shortRing]) if (s) await s.stop();
  if (push) await push.stop();
});

const origin = () => new URL(server.url).origin;

// A person whose browser may notify (granted as a person would on the
// prompt) and whose PushManager hands out `subscription`.
async function device(name, subscription, options = {}) {
  const p = await h.person(browser, name, options);
  people.push(p);
  // Granting one permission denies those not named: the call needs these too.
  if (options.grant !== false) await p.context.grantPermissions(['notifications', 'camera', 'microphone'], { origin: origin() });
  await p.context.addInitScript((sub) => {
    window.__permissionAsks = 0;
    const ask = Notification.requestPermission.bind(Notification);
    Notification.requestPermission = (...args) => { window.__permissionAsks++; return ask(...args); };
    if (!sub) return;
    let current = null;
    PushManager.prototype.subscribe = async function subscribe(options) {
      current = {
        endpoint: sub.endpoint,
        expirationTime: null,
        options: { userVisibleOnly: true, applicationServerKey: new Uint8Array(options.applicationServerKey).buffer },
        toJSON: () => ({ endpoint: sub.endpoint, expirationTime: null, keys: sub.keys }),
        unsubscribe: async () => { current = null; return true; },
      };
      return current;
    };
    PushManager.prototype.getSubscription = async function getSubscription() { return current; };
  }, subscription || null);
  return p;
}

async function caller(name) {
  const c = await h.person(browser, `caller-${name}`);
  people.push(c);
  return c;
}

// "Let people ring me" (by id: some of these pages speak Japanese).
async function makeLine(p, name) {
  await p.page.goto(server.url);
  await p.page.click('#ring-create-btn');
  await p.page.fill('#ring-line-name', name);
  await p.page.click('#ring-create-btn');
  await p.page.waitForFunction(() => document.getElementById('ring-link').value !== '', null, { timeout: h.WAIT_MS });
  return p.page.inputValue('#ring-link');
}


async function ring(link, name) {
  const c = await caller(name);
  await c.page.goto(link);
  await c.page.getByLabel('Your name', { exact: true }).fill(name);
  await c.page.getByRole('button', { name: 'Call', exact: true }).click();
  await h.waitText(c.page, '#ring-call-status', /^Ringing /);
  return c;
}

// Devices with a page open now, from duetd's /metrics.
const attachedDevices = () => h.metric(server, 'duet_ring_devices_attached');

// The device's app page goes away, and its line socket with it (the tab
// stays, on about:blank, for the DevTools session); returns once duetd
// has seen the socket go, so the next ring pushes.
async function closeApp(p) {
  const before = await attachedDevices();
  await p.page.goto('about:blank');
  const deadline = Date.now() + h.WAIT_MS;
  while (await attachedDevices() >= before) {
    assert.ok(Date.now() < deadline, 'duetd never saw the page go');
    await h.sleep(50);
  }
}

// A click on the notification's button `action`, dispatched in the worker.
async function click(p, action) {
  /* global NotificationEvent */ // the worker's, where this function runs
  await (await worker(p)).evaluate((which) => self.registration.getNotifications().then(([n]) => {
    self.dispatchEvent(new NotificationEvent('notificationclick', { notification: n, action: which }));
  }), action);
}

// The device's service worker, running (a push or a click starts it).
async function worker(p) {
  const found = p.context.serviceWorkers();
  return found.length ? found[0] : p.context.waitForEvent('serviceworker', { timeout: h.WAIT_MS });
}

// Hands a push's plaintext to the device's service worker, as the browser's
// push service would, and returns once the worker's handler has finished
// with it (its notification stored and shown). Notifications are read only
// after that: a getNotifications() that runs while a showNotification() is
// still being stored takes the stored notification for one the person
// closed, deletes it, and it is never listed again (Chromium; beside busy
// loops 11 of 30 notifications were lost to a loop of getNotifications(),
// none of 30 without it).
async function deliver(p, plaintext) {
  const cdp = await p.context.newCDPSession(p.page);
  const registered = new Promise((resolve) => {
    cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
      const r = registrations.find((x) => !x.isDeleted && x.scopeURL.startsWith(origin()));
      if (r) resolve(r);
    });
  });
  await cdp.send('ServiceWorker.enable');
  const { registrationId, scopeURL } = await registered;
  // Running before the push, so its handler's end can be counted.
  await cdp.send('ServiceWorker.startWorker', { scopeURL });
  const w = await worker(p);
  /* global ExtendableEvent */ // the worker's, where these functions run
  const handled = await w.evaluate(() => {
    if (self.__pushesHandled === undefined) {
      self.__pushesHandled = 0;
      const waitUntil = ExtendableEvent.prototype.waitUntil;
      ExtendableEvent.prototype.waitUntil = function counted(work) {
        const done = () => { self.__pushesHandled++; };
        if (this.type === 'push') Promise.resolve(work).then(done, done);
        return waitUntil.call(this, work);
      };
    }
    return self.__pushesHandled;
  });
  await cdp.send('ServiceWorker.deliverPushMessage', { origin: origin(), registrationId, data: plaintext });
  await cdp.detach();
  const finished = await w.evaluate(async ({ handled, ms }) => {
    const deadline = Date.now() + ms;
    while (self.__pushesHandled <= handled && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return self.__pushesHandled > handled;
  }, { handled, ms: h.WAIT_MS });
  assert.ok(finished, 'the worker handled the push');
}

async function notifications(p) {
  return (await worker(p)).evaluate(async () => {
    return (await self.registration.getNotifications()).map((n) => ({
      title: n.title, body: n.body, tag: n.tag, silent: n.silent, data: n.data,
      actions: n.actions.map((a) => `${a.action}:${a.title}`),
    }));
  });
}

async function waitNotifications(p, check) {
  const deadline = Date.now() + h.WAIT_MS;
  for (;;) {
    // The browser may stop an idle worker between two looks: look again.
    const got = await notifications(p).catch(() => null);
    if (got && check(got)) return got;
    if (Date.now() > deadline) throw new Error(`the notifications never matched: ${JSON.stringify(got)}`);
    await h.sleep(50);
  }
}

// A push that arrived checked out, as plaintext.
async function pushed(sub, n) {
  const event = await push.waitPush(sub.id, n);
  assert.deepStrictEqual(event.errors, [], 'the push verifies (VAPID JWT, aes128gcm, headers)');
  return event.plaintext;
}

test('the page asks to notify only when "Let people ring me" is pressed, and says where ringing works', { timeout: h.TEST_MS }, async () => {
  const d = await device('asked', null, { grant: false });
  await d.page.goto(server.url);
  assert.strictEqual(await d.page.evaluate(() => window.__permissionAsks), 0, 'nothing asked on load');
  await makeLine(d, 'Quiet');
  assert.strictEqual(await d.page.evaluate(() => window.__permissionAsks), 1, 'asked once, on the press');
  // Not granted (headless Chromium answers the prompt itself, "denied" or
  // no answer): the card says this device rings only while open.
  await h.waitText(d.page, '#ring-push-status', /rings only while this page is open/);
});

test('a closed device rings by push: a notification with Accept and Decline; Decline there tells the caller', { timeout: h.TEST_MS }, async () => {
  const sub = await push.subscribe();
  const d = await device('closed', sub);
  const link = await makeLine(d, 'Alice');
  await h.waitText(d.page, '#ring-push-status', /^This device rings even while this page is closed/);
  assert.strictEqual(await d.page.evaluate(() => window.__permissionAsks), 0, 'already granted: not asked again');
  await closeApp(d);

  const c = await ring(link, 'Bob');
  const incoming = JSON.parse(await pushed(sub, 1)).incoming;
  assert.strictEqual(incoming.caller, 'Bob');
  await deliver(d, JSON.stringify({ incoming }));
  const [shown] = await waitNotifications(d, (n) => n.length === 1);
  assert.strictEqual(shown.title, 'Bob is calling');
  assert.strictEqual(shown.body, 'To Alice, on duet');
  assert.strictEqual(shown.tag, `ring-${incoming.ring}`);
  assert.deepStrictEqual(shown.actions, ['accept:Accept', 'decline:Decline']);

  // Decline on the notification: the worker tells duetd, no window opens.
  const pages = d.context.pages().length;
  await click(d, 'decline');
  await h.waitText(c.page, '#ring-call-status', /^Alice declined\.$/);
  await waitNotifications(d, (n) => n.length === 0);
  assert.strictEqual(d.context.pages().length, pages, 'Decline opened no window');
});

test('Accept from a notification answers on that device: a call both ways; the other device reads "answered on another device"', { timeout: h.TEST_MS }, async () => {
  const sub = await push.subscribe();
  const d1 = await device('phone', sub, { viewport: { width: 360, height: 740 } });
  const link = await makeLine(d1, 'Grace');
  await h.waitText(d1.page, '#ring-push-status', /^This device rings even while this page is closed/);

  // A second device joins through the "add a device" link the first shows.
  await d1.page.getByRole('button', { name: 'Add another device', exact: true }).click();
  await d1.page.waitForFunction(() => document.getElementById('ring-invite-link').value !== '', null, { timeout: h.WAIT_MS });
  const addLink = await d1.page.inputValue('#ring-invite-link');
  assert.match(addLink, /\?add=/);
  const d2 = await device('laptop', await push.subscribe());
  await d2.page.goto(addLink);
  assert.match(await d2.page.textContent('#ring-line-h'), /Add this device to a ring link/);
  await d2.page.getByRole('button', { name: 'Ring on this device too', exact: true }).click();
  await d2.page.waitForFunction(() => document.getElementById('ring-link').value !== '', null, { timeout: h.WAIT_MS });
  assert.strictEqual(await d2.page.inputValue('#ring-link'), link, 'the same ring link');
  assert.ok(!(await d2.page.evaluate(() => location.search.includes('add='))), 'the used code left the address');
  await d1.page.waitForFunction(() => document.querySelectorAll('#ring-devices li').length === 2, null, { timeout: h.WAIT_MS });

  await closeApp(d1);
  const c = await ring(link, 'Heidi');
  // d2 has its page open: it rings there. d1 rings by push.
  await d2.page.getByRole('alertdialog').waitFor({ state: 'visible', timeout: h.WAIT_MS });
  const incoming = JSON.parse(await pushed(sub, 1)).incoming;
  await deliver(d1, JSON.stringify({ incoming }));
  const [shown] = await waitNotifications(d1, (n) => n.length === 1);
  assert.strictEqual(shown.title, 'Heidi is calling');

  // The URL alone answers nothing: a page opened on it rings like any
  // other (and takes the notification down), until a press.
  const bare = await d1.context.newPage();
  await bare.goto(new URL(shown.data.open.accept, server.url).href);
  await bare.getByRole('alertdialog').waitFor({ state: 'visible', timeout: h.WAIT_MS });
  assert.ok(await bare.isEnabled('#ring-accept-btn'), 'Accept waits for a press');
  await waitNotifications(d1, (n) => n.length === 0);
  await h.sleep(500);
  const sent = await bare.evaluate(() => window.__signals.filter((x) => x.dir === 'out').map((x) => Object.keys(x.msg)[0]));
  assert.ok(!sent.includes('ring-accept'), `no accept from a link alone: ${sent.join(', ')}`);
  await bare.close();

  // Accept on the notification (shown again): the worker leaves its token,
  // and the page opened on the URL answers at once.
  await deliver(d1, JSON.stringify({ incoming }));
  await waitNotifications(d1, (n) => n.length === 1);
  await click(d1, 'accept');
  await waitNotifications(d1, (n) => n.length === 0);
  const accepted = await d1.context.newPage();
  await accepted.goto(new URL(shown.data.open.accept, server.url).href);
  await h.waitStatus(accepted, 'connected');
  await h.waitStatus(c.page, 'connected');
  assert.match(await accepted.textContent('#status'), /^Connected with Heidi · /);
  assert.match(await c.page.textContent('#status'), /^Connected with Grace · /);
  await h.remoteVideoPlays(accepted, 'phone');
  await h.remoteVideoPlays(c.page, 'caller');
  await h.waitText(d2.page, '#ring-info', /^Answered on another device\.$/);
  assert.ok(await d2.page.isHidden('#ring-screen'));
  assert.ok(!(await accepted.evaluate(() => location.search.includes('answer='))), 'the answer left the address');
  await accepted.close();
});

test('a ring nobody answers becomes a missed call with the caller and the time', { timeout: h.TEST_MS }, async () => {
  server = shortRing;
  try {
    const sub = await push.subscribe();
    const d = await device('missing', sub, { locale: 'ja-JP' });
    const link = await makeLine(d, 'Ivan');
    await h.waitText(d.page, '#ring-push-status', /ページを閉じていても/);
    await closeApp(d);

    const c = await ring(link, 'Judy');
    await deliver(d, await pushed(sub, 1));
    await waitNotifications(d, (n) => n.length === 1 && n[0].title === 'Judy さんから着信');
    const missed = await pushed(sub, 2); // no answer within --ring-time
    assert.ok(JSON.parse(missed).missed, missed);
    await deliver(d, missed);
    const [shown] = await waitNotifications(d, (n) => n.length === 1 && n[0].title !== 'Judy さんから着信');
    assert.strictEqual(shown.title, 'Judy さんからの不在着信');
    assert.match(shown.body, /\d{1,2}:\d{2}/, 'the time of the call');
    assert.deepStrictEqual(shown.actions, [], 'nothing to answer any more');
    await h.waitText(c.page, '#ring-call-status', /^No answer\.$/);
  } finally {
    server = longRing;
  }
});

test('a caller who hangs up first turns the ring\'s notification into "… hung up", quietly', { timeout: h.TEST_MS }, async () => {
  const sub = await push.subscribe();
  const d = await device('hung-up', sub, { locale: 'ja-JP' });
  const link = await makeLine(d, 'Ivan');
  await h.waitText(d.page, '#ring-push-status', /ページを閉じていても/);
  await closeApp(d);

  const c = await ring(link, 'Judy');
  await deliver(d, await pushed(sub, 1));
  await waitNotifications(d, (n) => n.some((x) => x.title === 'Judy さんから着信'));
  await c.page.getByRole('button', { name: 'Cancel', exact: true }).click();
  const stopped = await pushed(sub, 2);
  assert.ok(JSON.parse(stopped)['ring-stop'], stopped);
  await deliver(d, stopped);
  const after = await waitNotifications(d, (n) => n.some((x) => /発信をやめました/.test(x.title)));
  assert.ok(after.find((x) => /発信をやめました/.test(x.title)).silent, 'the end of a ring makes no sound');
});

test('a subscription the browser replaces while the page is closed reaches the line from the worker', { timeout: h.TEST_MS }, async () => {
  const first = await push.subscribe();
  const d = await device('renewed', first);
  const link = await makeLine(d, 'Kim');
  await h.waitText(d.page, '#ring-push-status', /^This device rings even while this page is closed/);
  await closeApp(d);
  // The browser's push service dropped the old subscription: the worker's
  // PushManager now hands out a new one (wrapped here as in the pages), and
  // the browser fires pushsubscriptionchange, dispatched here in the worker.
  const second = await push.subscribe();
  await deliver(d, JSON.stringify({})); // starts the worker
  const sw = await worker(d);
  await sw.evaluate((sub) => {
    PushManager.prototype.subscribe = async () => ({
      endpoint: sub.endpoint,
      toJSON: () => ({ endpoint: sub.endpoint, expirationTime: null, keys: sub.keys }),
    });
    // What duetd answers the worker, seen as the pages' sockets are; the
    // socket's story is kept for a failure's message.
    self.__socketLog = [];
    const NativeWebSocket = WebSocket;
    self.WebSocket = class extends NativeWebSocket {
      constructor(...args) {
        super(...args);
        const note = (what) => self.__socketLog.push(`${Date.now() % 100000} ${what}`);
        note('made');
        for (const name of ['open', 'close', 'error']) this.addEventListener(name, () => note(name));
        this.addEventListener('message', (ev) => {
          note(`in ${String(ev.data).slice(0, 40)}`);
          if (ev.data.includes('"line-push"')) self.__linePush = ev.data;
        });
      }
    };
    self.dispatchEvent(new ExtendableEvent('pushsubscriptionchange'));
  }, second);
  const answer = await sw.evaluate(async (ms) => {
    const deadline = Date.now() + ms;
    while (!self.__linePush && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    return self.__linePush || '';
  }, h.WAIT_MS);
  const story = async () => JSON.stringify(await sw.evaluate(async () => ({
    socket: self.__socketLog,
    record: Boolean(await (await caches.open('duet-device')).match(new URL('device', self.registration.scope).href)),
  })));
  assert.strictEqual(answer, '{"line-push":{"push":true}}', `the worker's socket and device record: ${answer ? '' : await story()}`);
  // The next ring goes to the new subscription, none to the old.
  const c = await ring(link, 'Lee');
  await push.waitPush(second.id, 1);
  assert.deepStrictEqual(await push.pushes(first.id), []);
  await c.page.getByRole('button', { name: 'Cancel', exact: true }).click();
  const plaintext = (await push.pushes(second.id))[0].plaintext;
  assert.strictEqual(JSON.parse(plaintext).incoming.line, 'Kim');
});

test('the installed app opens without a network and says so; every file of the page is in its shell', { timeout: h.TEST_MS }, async () => {
  const own = await h.startDuetd();
  let again = null;
  try {
    const p = await h.person(browser, 'offline');
    people.push(p);
    await p.page.goto(own.url);
    await p.page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: h.WAIT_MS });
    assert.ok(await p.page.isHidden('#notice'), 'online, nothing to say');
    await own.stop();
    await p.context.setOffline(true);
    await p.page.reload();
    await h.waitText(p.page, '#notice', /^No connection to the server: this is the page kept from your last visit/);
    assert.ok(await p.page.isVisible('#join-form'), 'the start page is there');
    assert.strictEqual(await p.page.title(), 'duet — video calls');
    // The network and the server come back: the page notices by itself.
    await p.context.setOffline(false);
    again = await h.startDuetd({ port: own.port, stateDir: own.dir });
    await p.page.waitForFunction(() => document.getElementById('notice').hidden, null, { timeout: h.WAIT_MS });
    // A page the worker serves is the page: an invite link still gets it
    // ready for one press of Call.
    await p.page.goto(`${again.url}?me=ann&peer=ben&join=1`);
    assert.ok(await p.page.evaluate(() => navigator.serviceWorker.controller !== null), 'served through the worker');
    await h.waitText(p.page, '#join-info', /^You are invited to this call/);
    assert.strictEqual(await p.page.evaluate(() => document.activeElement.id), 'call-btn');
  } finally {
    await own.stop();
    if (again) await again.stop();
  }
  // The shell the worker keeps lists every file the page may load.
  const web = path.join(h.REPO, 'web');
  const files = [];
  for (const entry of fs.readdirSync(web, { recursive: true })) {
    if (/\.(js|css|html|svg|png|webmanifest)$/.test(entry) && entry !== 'sw.js') files.push(entry);
  }
  const shell = /const SHELL = \[([^\]]*)\]/.exec(fs.readFileSync(path.join(web, 'sw.js'), 'utf8'))[1];
  for (const f of files) assert.ok(shell.includes(`'${f}'`), `sw.js's SHELL lists ${f}`);
});

test('no console errors and no CSP violations on these pages', { timeout: 10000 }, async () => {
  const { csp, errors } = await h.pageProblems(people);
  assert.deepStrictEqual(csp, [], 'CSP violations');
  assert.deepStrictEqual(errors, [], 'console errors');
});
