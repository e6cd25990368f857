// Ring links in real Chromium against the real duetd: a device page makes a
// line ("Let people ring me"), a caller page opens its ring link, and the
// two meet in an ordinary call when the device accepts. Everything goes
// through what the pages show (labels, roles, ids), as a person would.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert');
const h = require('./harness.js');

let server;
let browser;
const people = [];
let n = 0;

before(async () => {
  // A short ring time, so that "no answer" comes within the test; long
  // enough for a test's steps before Accept on a busy machine.
  server = await h.startDuetd({ args: ['--ring-time', '12'] });
  browser = await h.launchBrowser();
});

after(async () => {
  for (const p of people) await p.close().catch(() => {});
  if (browser) await browser.close();
  if (server) await server.stop();
});

async function person(name, options) {
  const p = await h.person(browser, name, options);
  people.push(p);
  return p;
}

async function closeAll(...ps) {
  for (const p of ps) await p.close().catch(() => {});
}

// A device page that pressed "Let people ring me" under `name`; resolves
// with the ring link it shows.
async function makeLine(name, options, page = null) {
  n++;
  const d = page || await person(`device${n}`, options);
  await d.page.goto(server.url);
  const button = d.page.getByRole('button', { name: 'Let people ring me', exact: true });
  // The first press shows the name field and moves focus there.
  await button.click();
  assert.strictEqual(await d.page.evaluate(() => document.activeElement.id), 'ring-line-name');
  await d.page.getByLabel('Your name, as callers see it').fill(name);
  await button.click();
  await d.page.waitForFunction(() => document.getElementById('ring-link').value !== '', null, { timeout: h.WAIT_MS });
  return { d, link: await d.page.inputValue('#ring-link') };
}

// A caller page on `link` that names itself and presses Call.
async function ring(link, name, options) {
  const c = await person(`caller-${name}`, options);
  await c.page.goto(link);
  await c.page.getByLabel('Your name', { exact: true }).fill(name);
  await c.page.getByRole('button', { name: 'Call', exact: true }).click();
  return c;
}

async function waitRingScreen(page, caller) {
  const dialog = page.getByRole('alertdialog');
  await dialog.waitFor({ state: 'visible', timeout: h.WAIT_MS });
  assert.strictEqual(await page.textContent('#ring-screen-text'), `${caller} is calling you`);
  return dialog;
}

async function waitRingScreenClosed(page) {
  await page.waitForSelector('#ring-screen', { state: 'hidden', timeout: h.WAIT_MS });
}


test('a caller rings a line through its link, the device accepts, and both are in a call', { timeout: h.TEST_MS }, async () => {
  const phone = { viewport: { width: 360, height: 740 } };
  const { d, link } = await makeLine('Alice', phone);
  assert.match(link, /\?ring=[a-z]+(-[a-z]+){3}-[a-z0-9]{7}$/, 'the ring link holds the readable line id');
  assert.match(await d.page.textContent('#ring-line-shown'), /Callers see: Alice/);
  assert.strictEqual(await d.page.locator('#ring-devices li').count(), 1, 'the line has this one device');
  assert.match(await d.page.textContent('#ring-devices'), /\(this device\)/);
  assert.ok(await d.page.isVisible('#ring-qr'), 'the QR code of the ring link is drawn');
  const stored = await d.page.evaluate(() => [localStorage.getItem('duet.lineDevice'), localStorage.getItem('duet.lineSecret')]);
  assert.ok(stored[0] && stored[1], 'the device keeps its credentials');
  await d.page.locator('#ring-line').screenshot({ path: h.artifact('ring-line-360.png') });

  const c = await ring(link, 'Bob');
  assert.ok(await c.page.isHidden('#join-form'), 'the ring link shows the ring card, not the join form');
  await h.waitText(c.page, '#ring-call-status', /^Ringing Alice…$/);
  assert.ok(await c.page.isVisible('#ring-cancel-btn'), 'a ringing caller can cancel');
  await c.page.screenshot({ path: h.artifact('ring-caller-1280.png') });

  await waitRingScreen(d.page, 'Bob');
  assert.strictEqual(await d.page.evaluate(() => document.activeElement.id), 'ring-accept-btn', 'focus is on Accept');
  const wide = await d.page.evaluate(() => document.documentElement.scrollWidth > innerWidth);
  assert.strictEqual(wide, false, 'the ring screen fits 360 px');
  await d.page.screenshot({ path: h.artifact('ring-screen-360.png') });
  await d.page.getByRole('button', { name: 'Accept', exact: true }).click();

  await h.waitStatus(d.page, 'connected');
  await h.waitStatus(c.page, 'connected');
  await waitRingScreenClosed(d.page);
  assert.match(await d.page.textContent('#status'), /^Connected with Bob · /, 'the device sees the caller\'s name');
  assert.match(await c.page.textContent('#status'), /^Connected with Alice · /, 'the caller sees the line\'s name');
  for (const p of [c, d]) await h.remoteVideoPlays(p.page, p.name);
  // The call ran on the ids the server gave, with the ordinary open.
  const opens = await c.page.evaluate(() => window.__signals.filter((x) => x.dir === 'out' && x.msg.open).map((x) => x.msg.open));
  const connect = (await h.received(c.page)).find((m) => 'ring-connect' in m)['ring-connect'];
  assert.deepStrictEqual(opens.map((o) => [o.local, o.remote]), [[connect.local, connect.remote]]);
  assert.ok(await c.page.evaluate(() => new URLSearchParams(location.search).has('ring')), 'the caller keeps the ring link in its address');
  await closeAll(c, d);
});

test('Decline stops the ring: the caller reads that it was declined, and Escape declines too', { timeout: h.TEST_MS }, async () => {
  const { d, link } = await makeLine('Carol');
  const c = await ring(link, 'Dan');
  await waitRingScreen(d.page, 'Dan');
  await d.page.getByRole('button', { name: 'Decline', exact: true }).click();
  await waitRingScreenClosed(d.page);
  await h.waitText(c.page, '#ring-call-status', /^Carol declined\.$/);
  assert.ok(await c.page.isVisible('#ring-call-btn'), 'the caller can call again');
  assert.match(await d.page.textContent('#ring-info'), /You declined the call/);

  await c.page.getByRole('button', { name: 'Call', exact: true }).click();
  await waitRingScreen(d.page, 'Dan');
  await d.page.keyboard.press('Escape');
  await waitRingScreenClosed(d.page);
  await h.waitText(c.page, '#ring-call-status', /^Carol declined\.$/);
  assert.ok(await c.page.isVisible('#join'), 'no call was started');
  assert.strictEqual(await d.page.evaluate(() => window.__peers.length), 0, 'the device opened no call');
  await closeAll(c, d);
});

test('the caller cancels: the ring screen closes and says the caller hung up', { timeout: h.TEST_MS }, async () => {
  const { d, link } = await makeLine('Erin');
  const c = await ring(link, 'Frank');
  await h.waitText(c.page, '#ring-call-status', /^Ringing Erin…$/);
  await waitRingScreen(d.page, 'Frank');
  await c.page.getByRole('button', { name: 'Cancel', exact: true }).click();
  await h.waitText(c.page, '#ring-call-status', /^Call cancelled\.$/);
  await waitRingScreenClosed(d.page);
  await h.waitText(d.page, '#ring-info', /^Frank hung up\.$/);
  await closeAll(c, d);
});

test('nobody answers: the caller hears "No answer", the device lists a missed call, and a reload keeps the line', { timeout: h.TEST_MS }, async () => {
  const { d, link } = await makeLine('Grace');
  const c = await ring(link, 'Heidi');
  await waitRingScreen(d.page, 'Heidi');
  await h.waitText(c.page, '#ring-call-status', /^No answer\.$/);
  await waitRingScreenClosed(d.page);
  await h.waitText(d.page, '#ring-info', /^Missed call from Heidi\.$/);
  await h.waitText(d.page, '#ring-missed', /^Heidi · /);
  assert.ok(await d.page.isHidden('#ring-missed-none'));

  await d.page.reload();
  await d.page.waitForFunction(() => document.getElementById('ring-link').value !== '', null, { timeout: h.WAIT_MS });
  assert.strictEqual(await d.page.inputValue('#ring-link'), link, 'the device attached to its line again');
  await h.waitText(d.page, '#ring-missed', /^Heidi · /);
  const sent = await d.page.evaluate(() => window.__signals.filter((x) => x.dir === 'out').map((x) => Object.keys(x.msg)[0]));
  assert.ok(sent.includes('line-attach') && !sent.includes('line-create'), `after the reload: ${sent.join(', ')}`);
  // Still rings after the reload.
  await c.page.getByRole('button', { name: 'Call', exact: true }).click();
  await waitRingScreen(d.page, 'Heidi');
  await c.page.getByRole('button', { name: 'Cancel', exact: true }).click();
  await waitRingScreenClosed(d.page);
  await closeAll(c, d);
});

test('a ring link that no line has any more says so in plain words', { timeout: h.TEST_MS }, async () => {
  const c = await ring(`${server.url}?ring=amber-fox-river-tulip-k7m2q9x`, 'Ivan');
  await h.waitText(c.page, '#notice', /This ring link does not work any more: ask for a new one/);
  assert.ok(await c.page.isVisible('#ring-call-btn'));
  assert.ok(await c.page.isHidden('#ring-cancel-btn'));
  await closeAll(c);
});

test('a device whose credentials the server does not know offers "Let people ring me" again', { timeout: h.TEST_MS }, async () => {
  const d = await person('unknown-device');
  await d.page.goto(server.url);
  await d.page.evaluate(() => {
    localStorage.setItem('duet.lineDevice', 'no-such-device');
    localStorage.setItem('duet.lineSecret', 'no-such-secret');
  });
  await d.page.reload();
  await h.waitText(d.page, '#ring-info', /no longer belongs to a ring link/);
  assert.ok(await d.page.isVisible('#ring-create-btn'));
  assert.strictEqual(await d.page.evaluate(() => localStorage.getItem('duet.lineDevice')), null, 'the credentials are forgotten');
  await closeAll(d);
});

test('the line card renames the line, replaces its link, and adds and removes devices, from the keyboard too', { timeout: h.TEST_MS }, async () => {
  const { d, link } = await makeLine('Kate');
  // Rename: the caller's page shows the new name while it rings.
  await d.page.getByText('Change the name or the link').click();
  await d.page.getByLabel('Name callers see').fill('Aunt Kate');
  await d.page.getByLabel('Name callers see').press('Enter');
  await h.waitText(d.page, '#ring-change-status', /^Saved: callers now see Aunt Kate\.$/);
  assert.match(await d.page.textContent('#ring-line-shown'), /Callers see: Aunt Kate/);
  const c = await ring(link, 'Leo');
  await h.waitText(c.page, '#ring-call-status', /^Ringing Aunt Kate…$/);
  await c.page.getByRole('button', { name: 'Cancel', exact: true }).click();
  await waitRingScreenClosed(d.page);

  // A second device joins with the "add a device" link.
  await d.page.getByRole('button', { name: 'Add another device', exact: true }).click();
  await d.page.waitForFunction(() => document.getElementById('ring-invite-link').value !== '', null, { timeout: h.WAIT_MS });
  assert.match(await d.page.textContent('#ring-invite-text'), /within 10 minutes/);
  assert.ok(await d.page.isVisible('#ring-invite-qr'), 'the link to add a device has its QR code');
  const second = await person('second-device');
  await second.page.goto(await d.page.inputValue('#ring-invite-link'));
  await second.page.getByRole('button', { name: 'Ring on this device too', exact: true }).click();
  await second.page.waitForFunction(() => document.getElementById('ring-link').value !== '', null, { timeout: h.WAIT_MS });
  await d.page.waitForFunction(() => document.querySelectorAll('#ring-devices li').length === 2, null, { timeout: h.WAIT_MS });
  // The same code does not work twice.
  const third = await person('third-device');
  await third.page.goto(await d.page.inputValue('#ring-invite-link'));
  await third.page.getByRole('button', { name: 'Ring on this device too', exact: true }).click();
  await h.waitText(third.page, '#notice', /does not work \(used, expired or mistyped\)/);

  // A new link: after the confirmation, the old one rings nobody.
  const asked = new Promise((resolve) => d.page.once('dialog', async (dialog) => {
    const text = dialog.message();
    await dialog.accept();
    resolve(text);
  }));
  await d.page.getByRole('button', { name: 'Replace the ring link', exact: true }).click();
  assert.match(await asked, /The old one stops working at once/);
  await h.waitText(d.page, '#ring-change-status', /^New ring link made: the old one rings nobody now\.$/);
  const fresh = await d.page.inputValue('#ring-link');
  assert.notStrictEqual(fresh, link);
  await second.page.waitForFunction((l) => document.getElementById('ring-link').value === l, fresh, { timeout: h.WAIT_MS });
  await c.page.getByRole('button', { name: 'Call', exact: true }).click();
  await h.waitText(c.page, '#notice', /This ring link does not work any more/);

  // Remove the second device, by keyboard: its page forgets the line.
  const remove = d.page.getByRole('button', { name: /^Remove .* from the ring link$/ }).nth(1);
  await remove.focus();
  await d.page.keyboard.press('Enter');
  await d.page.waitForFunction(() => document.querySelectorAll('#ring-devices li').length === 1, null, { timeout: h.WAIT_MS });
  await h.waitText(second.page, '#ring-info', /no longer belongs to a ring link/);
  assert.ok(await second.page.isVisible('#ring-create-btn'));
  await closeAll(c, d, second, third);
});

// A second device joins d's line through its "add a device" link.
async function addDevice(d) {
  await d.page.getByRole('button', { name: 'Add another device', exact: true }).click();
  await d.page.waitForFunction(() => document.getElementById('ring-invite-link').value !== '', null, { timeout: h.WAIT_MS });
  const second = await person(`device${++n}`);
  await second.page.goto(await d.page.inputValue('#ring-invite-link'));
  await second.page.getByRole('button', { name: 'Ring on this device too', exact: true }).click();
  await second.page.waitForFunction(() => document.getElementById('ring-link').value !== '', null, { timeout: h.WAIT_MS });
  await d.page.waitForFunction(() => document.querySelectorAll('#ring-devices li').length === 2, null, { timeout: h.WAIT_MS });
  return second;
}

// The page's WebSockets through a relay of the test's own (Playwright's
// routeWebSocket), so that the test can cut them as a network would:
// relay.drop(match) closes the socket when the server sends a message
// that matches; relay.down = true refuses new sockets and closes the open
// one; relay.rewrite(fn) changes what the page sends.
async function relayed(p) {
  const relay = { down: false, dropOn: null, rewrite: (m) => m, open: new Set() };
  await p.page.routeWebSocket(/.*/, (ws) => {
    if (relay.down) {
      ws.close();
      return;
    }
    const upstream = ws.connectToServer();
    relay.open.add(ws);
    ws.onMessage((m) => upstream.send(relay.rewrite(m)));
    upstream.onMessage((m) => {
      if (relay.dropOn && relay.dropOn.test(String(m))) {
        relay.dropOn = null;
        ws.close();
        upstream.close();
        return;
      }
      ws.send(m);
    });
    ws.onClose(() => { relay.open.delete(ws); upstream.close(); });
    upstream.onClose(() => ws.close());
  });
  relay.cut = () => { for (const ws of relay.open) ws.close(); };
  return relay;
}

test('the connection drops while the line is being made: no second line, and the page says so', { timeout: h.TEST_MS }, async () => {
  const d = await person(`device${++n}`);
  const relay = await relayed(d);
  const made = await h.metric(server, 'duet_ring_lines_created_total');
  // The server makes the line; its answer never reaches the page.
  relay.dropOn = /line-credentials/;
  await d.page.goto(server.url);
  const button = d.page.getByRole('button', { name: 'Let people ring me', exact: true });
  await button.click();
  await d.page.getByLabel('Your name, as callers see it').fill('Nell');
  await button.click();
  await h.waitText(d.page, '#notice', /^The connection dropped while the ring link was being made: press the button again\.$/);
  assert.ok(await d.page.isVisible('#ring-create-btn'), 'back at the button');
  assert.strictEqual(await h.metric(server, 'duet_ring_lines_created_total'), made + 1, 'the reconnect made no second line');
  // Pressed again, it works.
  await button.click();
  await d.page.waitForFunction(() => document.getElementById('ring-link').value !== '', null, { timeout: h.WAIT_MS });
  await closeAll(d);
});

test('"Stop ringing on this device" while the connection is down takes the device off the line once it is back', { timeout: h.TEST_MS }, async () => {
  const d = await person(`device${++n}`);
  const relay = await relayed(d);
  await makeLine('Olga', {}, d);
  const second = await addDevice(d);
  relay.down = true;
  relay.cut();
  await d.page.getByRole('button', { name: 'Stop ringing on this device', exact: true }).click();
  assert.ok(await d.page.isVisible('#ring-create-btn'), 'this page forgot the line at once');
  await h.sleep(500);
  assert.strictEqual(await second.page.locator('#ring-devices li').count(), 2, 'the server could not hear it yet');
  relay.down = false;
  await second.page.waitForFunction(() => document.querySelectorAll('#ring-devices li').length === 1, null, { timeout: h.WAIT_MS });
  await closeAll(d, second);
});

test('removing a device the server no longer has keeps this line, and "removed" is said only once it is', { timeout: h.TEST_MS }, async () => {
  const d = await person(`device${++n}`);
  const relay = await relayed(d);
  await makeLine('Pia', {}, d);
  const second = await addDevice(d);
  // A status said again is announced again: a render that changes nothing leaves it alone.
  await d.page.getByText('Change the name or the link').click();
  await d.page.getByLabel('Name callers see').fill('Aunt Pia');
  await d.page.getByLabel('Name callers see').press('Enter');
  await h.waitText(d.page, '#ring-change-status', /^Saved: callers now see Aunt Pia\.$/);
  await d.page.evaluate(() => {
    window.__statusChanges = 0;
    new MutationObserver((list) => { window.__statusChanges += list.length; })
      .observe(document.getElementById('ring-change-status'), { childList: true, characterData: true, subtree: true });
  });
  await second.page.getByText('Change the name or the link').click();
  await second.page.getByLabel('Name callers see').fill('Aunt Pia');
  await second.page.getByLabel('Name callers see').press('Enter');
  await h.waitText(second.page, '#ring-change-status', /^Saved/);
  await h.sleep(300); // d's page has had the same line again, and rendered it
  assert.strictEqual(await d.page.evaluate(() => window.__statusChanges), 0, 'the status was set again');

  // As if the other device had gone already: the removal names one the server does not know.
  relay.rewrite = (m) => String(m).replace(/("line-remove-device":\{"device":")[0-9a-f]+/, '$1ffffffffffffffff');
  await d.page.getByRole('button', { name: /^Remove .* from the ring link$/ }).nth(1).click();
  await h.sleep(500);
  assert.ok(await d.page.isVisible('#ring-link'), 'this device keeps its line');
  assert.doesNotMatch(await d.page.textContent('#ring-change-status'), /was removed/);
  assert.ok(await d.page.isHidden('#ring-info'), 'nothing says this device left its line');
  // For real now: said once the line no longer lists it.
  relay.rewrite = (m) => m;
  await d.page.getByRole('button', { name: /^Remove .* from the ring link$/ }).nth(1).click();
  await h.waitText(d.page, '#ring-change-status', /was removed: it no longer rings\.$/);
  assert.strictEqual(await d.page.locator('#ring-devices li').count(), 1);
  await closeAll(d, second);
});

test('no console errors and no CSP violations on these pages', { timeout: 10000 }, async () => {
  const { csp, errors } = await h.pageProblems(people);
  assert.deepStrictEqual(csp, [], 'CSP violations');
  assert.deepStrictEqual(errors, [], 'console errors');
});
