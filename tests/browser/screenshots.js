#!/usr/bin/env node
// Makes the README's screenshots of the web client: the join page, a call
// with the connection panel open, and the chat, each at desktop size
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

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const server = await h.startDuetd();
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
      await a.close();
      await b.close();
    }
  } finally {
    await browser.close();
    await server.stop();
  }
  for (const f of fs.readdirSync(OUT)) console.log(path.join(OUT, f), fs.statSync(path.join(OUT, f)).size);
}

main().catch((e) => { console.error(e); process.exit(1); });
