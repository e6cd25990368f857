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
  // A short ring time, so that "no answer" comes within the test.
  server = await h.startDuetd({ args: ['--ring-time', '5'] });
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
async function makeLine(name, options) {
  n++;
  const d = await person(`device${n}`, options);
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

async function waitText(page, selector, re) {
  await page.waitForFunction(([s, src]) => {
    const el = document.querySelector(s);
    return el && !el.hidden && new RegExp(src).test(el.textContent);
  }, [selector, re.source], { timeout: h.WAIT_MS }).catch(async () => {
    throw new Error(`${selector} never matched ${re}; it says "${await page.textContent(selector)}"`);
  });
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
  await waitText(c.page, '#ring-call-status', /^Ringing Alice…$/);
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
  await waitText(c.page, '#ring-call-status', /^Carol declined\.$/);
  assert.ok(await c.page.isVisible('#ring-call-btn'), 'the caller can call again');
  assert.match(await d.page.textContent('#ring-info'), /You declined the call/);

  await c.page.getByRole('button', { name: 'Call', exact: true }).click();
  await waitRingScreen(d.page, 'Dan');
  await d.page.keyboard.press('Escape');
  await waitRingScreenClosed(d.page);
  await waitText(c.page, '#ring-call-status', /^Carol declined\.$/);
  assert.ok(await c.page.isVisible('#join'), 'no call was started');
  assert.strictEqual(await d.page.evaluate(() => window.__peers.length), 0, 'the device opened no call');
  await closeAll(c, d);
});

test('the caller cancels: the ring screen closes and says the caller hung up', { timeout: h.TEST_MS }, async () => {
  const { d, link } = await makeLine('Erin');
  const c = await ring(link, 'Frank');
  await waitText(c.page, '#ring-call-status', /^Ringing Erin…$/);
  await waitRingScreen(d.page, 'Frank');
  await c.page.getByRole('button', { name: 'Cancel', exact: true }).click();
  await waitText(c.page, '#ring-call-status', /^Call cancelled\.$/);
  await waitRingScreenClosed(d.page);
  await waitText(d.page, '#ring-info', /^Frank hung up\.$/);
  await closeAll(c, d);
});

test('nobody answers: the caller hears "No answer", the device lists a missed call, and a reload keeps the line', { timeout: h.TEST_MS }, async () => {
  const { d, link } = await makeLine('Grace');
  const c = await ring(link, 'Heidi');
  await waitRingScreen(d.page, 'Heidi');
  await waitText(c.page, '#ring-call-status', /^No answer\.$/);
  await waitRingScreenClosed(d.page);
  await waitText(d.page, '#ring-info', /^Missed call from Heidi\.$/);
  await waitText(d.page, '#ring-missed', /^Heidi · /);
  assert.ok(await d.page.isHidden('#ring-missed-none'));

  await d.page.reload();
  await d.page.waitForFunction(() => document.getElementById('ring-link').value !== '', null, { timeout: h.WAIT_MS });
  assert.strictEqual(await d.page.inputValue('#ring-link'), link, 'the device attached to its line again');
  await waitText(d.page, '#ring-missed', /^Heidi · /);
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
  await waitText(c.page, '#notice', /This ring link does not work any more: ask for a new one/);
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
  await waitText(d.page, '#ring-info', /no longer belongs to a ring link/);
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
  await waitText(d.page, '#ring-change-status', /^Saved: callers now see Aunt Kate\.$/);
  assert.match(await d.page.textContent('#ring-line-shown'), /Callers see: Aunt Kate/);
  const c = await ring(link, 'Leo');
  await waitText(c.page, '#ring-call-status', /^Ringing Aunt Kate…$/);
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
  await waitText(third.page, '#notice', /does not work \(used, expired or mistyped\)/);

  // A new link: after the confirmation, the old one rings nobody.
  const asked = new Promise((resolve) => d.page.once('dialog', async (dialog) => {
    const text = dialog.message();
    await dialog.accept();
    resolve(text);
  }));
  await d.page.getByRole('button', { name: 'Replace the ring link', exact: true }).click();
  assert.match(await asked, /The old one stops working at once/);
  await waitText(d.page, '#ring-change-status', /^New ring link made: the old one rings nobody now\.$/);
  const fresh = await d.page.inputValue('#ring-link');
  assert.notStrictEqual(fresh, link);
  await second.page.waitForFunction((l) => document.getElementById('ring-link').value === l, fresh, { timeout: h.WAIT_MS });
  await c.page.getByRole('button', { name: 'Call', exact: true }).click();
  await waitText(c.page, '#notice', /This ring link does not work any more/);

  // Remove the second device, by keyboard: its page forgets the line.
  const remove = d.page.getByRole('button', { name: /^Remove .* from the ring link$/ }).nth(1);
  await remove.focus();
  await d.page.keyboard.press('Enter');
  await d.page.waitForFunction(() => document.querySelectorAll('#ring-devices li').length === 1, null, { timeout: h.WAIT_MS });
  await waitText(second.page, '#ring-info', /no longer belongs to a ring link/);
  assert.ok(await second.page.isVisible('#ring-create-btn'));
  await closeAll(c, d, second, third);
});

test('no console errors and no CSP violations on these pages', { timeout: 10000 }, async () => {
  const { csp, errors } = await h.pageProblems(people);
  assert.deepStrictEqual(csp, [], 'CSP violations');
  assert.deepStrictEqual(errors, [], 'console errors');
});
