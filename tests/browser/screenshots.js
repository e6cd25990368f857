#!/usr/bin/env node
// Makes the README's screenshots of the web client: the join page, a call
// with the connection panel open, the chat, the safety code, and ringing (a line's card, a
// caller ringing, the ring screen, a missed call), each at desktop size
// (1280×800) and phone size (360×740), into tests/browser/screenshots/.
// Run by hand (not part of the suite), as root, from the repository top:
//   unshare -n sh -c 'ip link set lo up && DUETD=$PWD/build/core/duetd node tests/browser/screenshots.js'
// It starts its own duetd and two Chromiums with fake cameras, like the tests.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const h = require('./harness.js');

const OUT = path.join(__dirname, 'screenshots');
const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 360, height: 740 } };

// A device makes a line, a caller rings it, the device does not answer.
async function ringShots(server, browser, size, viewport) {
  const shot = (page, name) => page.screenshot({ path: path.join(OUT, `${name}-${size}.png`), fullPage: size === 'phone' });
  const d = await h.person(browser, `ring-device-${size}`, { viewport });
  const c = await h.person(browser, `ring-caller-${size}`, { viewport });
  // The card as a browser with Web Push shows it: notifications allowed, and
  // a subscription from a push service (headless Chromium has none: a
  // stand-in that names one, as the push tests do).
  await d.context.grantPermissions(['notifications', 'camera', 'microphone'], { origin: new URL(server.url).origin });
  await d.context.addInitScript(() => {
    const sub = { endpoint: 'https://push.example.net/send/screenshot', expirationTime: null,
      keys: { p256dh: 'BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4', auth: 'BTBZMqHH6r4Tts7J_aSIgg' } };
    PushManager.prototype.subscribe = async (options) => ({ ...sub, options, toJSON: () => sub });
    PushManager.prototype.getSubscription = async () => null;
  });
  await d.page.goto(server.url);
  await d.page.click('#ring-create-btn');
  await d.page.fill('#ring-line-name', 'Grandma');
  await d.page.click('#ring-create-btn');
  await d.page.waitForFunction(() => document.getElementById('ring-link').value !== '', null, { timeout: h.WAIT_MS });
  await d.page.locator('#ring-line').scrollIntoViewIfNeeded();
  await d.page.locator('#ring-line').screenshot({ path: path.join(OUT, `ring-line-${size}.png`) });
  await c.page.goto(await d.page.inputValue('#ring-link'));
  await c.page.fill('#ring-caller-name', 'Sam');
  await c.page.click('#ring-call-btn');
  await d.page.waitForSelector('#ring-screen', { state: 'visible', timeout: h.WAIT_MS });
  await shot(c.page, 'ring-caller');
  await d.page.screenshot({ path: path.join(OUT, `ring-screen-${size}.png`) });
  await d.page.waitForSelector('#ring-screen', { state: 'hidden', timeout: h.WAIT_MS });
  await d.page.waitForFunction(() => document.querySelectorAll('#ring-missed li').length > 0, null, { timeout: h.WAIT_MS });
  await shot(d.page, 'ring-missed');
  await d.close();
  await c.close();
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  // A short ring time, for the missed call.
  const server = await h.startDuetd({ args: ['--ring-time', '3'] });
  const browser = await h.launchBrowser();
  try {
    for (const [size, viewport] of Object.entries(SIZES)) {
      const a = await h.person(browser, `shot-a-${size}`, { viewport });
      const b = await h.person(browser, `shot-b-${size}`, { viewport });
      await a.page.goto(h.joinUrl(server, 'alice', `bob-${size}`));
      await a.page.screenshot({ path: path.join(OUT, `join-${size}.png`), fullPage: size === 'phone' });
      await h.callByInvite(a, b, server, 'alice', `bob-${size}`);
      await h.remoteVideoPlays(a.page, 'alice');
      await a.page.click('#stats-btn');
      await a.page.waitForFunction(() => /kbit/.test(document.getElementById('stats-list').textContent), null, { timeout: h.WAIT_MS });
      await a.page.screenshot({ path: path.join(OUT, `call-panel-${size}.png`) });
      await b.page.click('#chat-btn');
      await b.page.fill('#chat-input', 'Hi! The slides: https://example.org/slides');
      await b.page.press('#chat-input', 'Enter');
      await a.page.click('#chat-btn');
      await a.page.waitForSelector('#chat-log .msg.peer');
      await a.page.fill('#chat-input', 'Got them, thanks. <b>tags</b> stay text.');
      await a.page.press('#chat-input', 'Enter');
      await a.page.screenshot({ path: path.join(OUT, `chat-${size}.png`) });
      await a.page.click('#verify-btn');
      await a.page.waitForFunction(() => document.getElementById('verify-state').dataset.state === 'ready', null, { timeout: h.WAIT_MS });
      await a.page.screenshot({ path: path.join(OUT, `verify-${size}.png`) });
      await a.close();
      await b.close();
      await ringShots(server, browser, size, viewport);
    }
  } finally {
    await browser.close();
    await server.stop();
  }
  for (const f of fs.readdirSync(OUT)) console.log(path.join(OUT, f), fs.statSync(path.join(OUT, f)).size);
}

main().catch((e) => { console.error(e); process.exit(1); });
