// The web client in real Chromium against the real duetd: two people (two
// browser contexts) with fake cameras call each other over loopback.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const h = require('./harness.js');

let server;
let browser;
const people = [];
let n = 0;

before(async () => {
  server = await h.startDuetd();
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

// Two people with fresh ids, joined through the invite link like real users.
async function call(options = {}) {
  n++;
  const me = options.me || `alice-${n}`;
  const peer = options.peer || `bob-${n}`;
  const srv = options.server || server;
  const a = await person(`alice${n}`, options.a);
  const b = await person(`bob${n}`, options.b);
  await a.page.goto(h.joinUrl(srv, me, peer));
  const invite = await a.page.inputValue('#invite-link');
  await a.page.click('#call-btn');
  await h.waitStatus(a.page, 'waiting');
  await b.page.goto(invite);
  await b.page.click('#call-btn');
  await h.waitStatus(a.page, 'connected');
  await h.waitStatus(b.page, 'connected');
  return { a, b, me, peer, invite };
}

async function hangUpAll(...ps) {
  for (const p of ps) await p.close().catch(() => {});
}

test('two people joined by invite link see and hear each other', { timeout: h.TEST_MS }, async () => {
  const { a, b, me, peer, invite } = await call();
  const u = new URL(invite);
  assert.strictEqual(u.searchParams.get('me'), peer, 'the invite link names the other person as "me"');
  assert.strictEqual(u.searchParams.get('peer'), me);
  assert.strictEqual(await b.page.inputValue('#me'), peer, 'the invite link fills in the form');
  assert.strictEqual(await b.page.inputValue('#peer'), me);
  for (const p of [a, b]) {
    await h.remoteVideoPlays(p.page, p.name);
    const tracks = await p.page.evaluate(() => {
      const s = document.getElementById('remote').srcObject;
      return { audio: s.getAudioTracks().length, video: s.getVideoTracks().length };
    });
    assert.deepStrictEqual(tracks, { audio: 1, video: 1 }, `${p.name} receives audio and video`);
    const i = await h.info(p.page);
    assert.strictEqual(i.pc, 'connected', `${p.name}'s RTCPeerConnection is connected`);
    assert.ok(i.hasToken, `${p.name} got a resume token`);
    assert.deepStrictEqual(i.iceServers, [], 'with no STUN/TURN configured the list is empty');
  }
  await hangUpAll(a, b);
});

test('the status line says where things stand, from connecting to a running call timer', { timeout: h.TEST_MS }, async () => {
  const { a, b, peer } = await call();
  const logA = await a.page.evaluate(() => window.__statusLog);
  const logB = await b.page.evaluate(() => window.__statusLog);
  const inOrder = (log, want) => {
    let i = 0;
    for (const s of log) if (s === want[i]) i++;
    return i === want.length;
  };
  assert.ok(inOrder(logA, ['camera', 'connectingServer', 'waiting', 'connectingCall', 'connected']), `alice saw ${logA.join(' → ')}`);
  assert.ok(inOrder(logB, ['camera', 'connectingServer', 'connected']), `bob saw ${logB.join(' → ')}`);
  const text1 = await a.page.textContent('#status');
  assert.match(text1, new RegExp(`Connected with ${peer} · 0:\\d\\d`));
  await a.page.waitForFunction((t) => document.getElementById('status').textContent !== t, text1, { timeout: h.WAIT_MS })
    .catch(() => assert.fail(`the call timer stands still at "${text1}"`));
  assert.match(await a.page.textContent('#status'), new RegExp(`Connected with ${peer} · 0:\\d\\d`), 'the call timer runs');
  await hangUpAll(a, b);
});

test('hanging up ends the call on both sides, and a second call connects without a reload', { timeout: h.TEST_MS }, async () => {
  const { a, b } = await call();
  await a.page.click('#hangup-btn');
  assert.ok(await a.page.isVisible('#join'), 'the one who hung up is back at the join form');
  assert.match(await a.page.textContent('#join-info'), /Call ended/);
  await h.waitStatus(b.page, 'peerLeft');
  assert.match(await b.page.textContent('#status'), /left the call/);
  assert.strictEqual(await b.page.evaluate(() => document.getElementById('remote').srcObject), null, 'the remote video is cleared');
  const cameraOff = await a.page.evaluate(() => document.getElementById('local').srcObject === null);
  assert.ok(cameraOff, 'the camera is released after hanging up');

  const loads = await a.page.evaluate(() => performance.getEntriesByType('navigation').length);
  await a.page.click('#call-btn');
  await h.waitStatus(a.page, 'connected');
  await h.waitStatus(b.page, 'connected');
  await h.remoteVideoPlays(a.page, 'alice');
  await h.remoteVideoPlays(b.page, 'bob');
  assert.strictEqual(await a.page.evaluate(() => performance.getEntriesByType('navigation').length), loads);
  await hangUpAll(a, b);
});

test('when the other person closes their page, "left" shows, and their rejoin connects again', { timeout: h.TEST_MS }, async () => {
  const { a, b, invite } = await call();
  await b.page.close();
  await h.waitStatus(a.page, 'peerLeft');
  assert.match(await a.page.textContent('#status'), /bob-\d+ left the call/);

  const b2 = await person('bob-again');
  await b2.page.goto(invite);
  await b2.page.click('#call-btn');
  await h.waitStatus(a.page, 'connected');
  await h.waitStatus(b2.page, 'connected');
  await h.remoteVideoPlays(a.page, 'alice');
  await h.remoteVideoPlays(b2.page, 'bob again');
  await hangUpAll(a, b, b2);
});

test('a signaling drop resumes with the token and the call never stops', { timeout: h.TEST_MS }, async () => {
  const { a, b } = await call();
  await h.remoteVideoPlays(b.page, 'bob');
  for (const [who, other] of [[a, b], [b, a]]) {
    const before = await h.info(who.page);
    await h.dropSignaling(who.page);
    await h.waitSocketOpened(who.page, before.opens);
    await h.waitStatus(who.page, 'connected');
    const log = await who.page.evaluate(() => window.__statusLog);
    assert.ok(log.includes('reconnecting'), `${who.name} showed reconnecting (${log.join(' → ')})`);
    // Both sides heard "resumed", and the ICE restart that follows is done.
    for (const p of [a, b]) await h.waitRenegotiated(p.page, p.name);
    for (const p of [a, b]) {
      await h.remoteVideoPlays(p.page, p.name);
      const i = await h.info(p.page);
      assert.strictEqual(i.pc, 'connected', `${p.name}'s call is still up`);
      const plog = await p.page.evaluate(() => window.__statusLog);
      assert.ok(!plog.includes('peerLeft'), `${p.name} never saw "left" (${plog.join(' → ')})`);
    }
    assert.strictEqual(await h.status(other.page), 'connected');
  }
  // The call still carries signaling: a fresh ICE restart from alice goes through.
  await hangUpAll(a, b);
});

test('a name already in use is explained in plain words and the running call goes on', { timeout: h.TEST_MS }, async () => {
  const refuse = await h.startDuetd({ args: ['--plugin-opt', 'pairing.takeover=refuse'] });
  try {
    n++;
    const { a, b } = await call({ server: refuse });
    const c = await person('intruder');
    await c.page.goto(h.joinUrl(refuse, `alice-${n}`, `bob-${n}`));
    await c.page.click('#call-btn');
    await c.page.waitForSelector('#notice:not([hidden])', { timeout: h.WAIT_MS });
    const text = await c.page.textContent('#notice');
    assert.match(text, /already in use/);
    assert.ok(await c.page.isVisible('#join'), 'the form is back so another name can be chosen');
    for (const p of [a, b]) {
      assert.strictEqual(await h.status(p.page), 'connected', `${p.name} is still in the call`);
      await h.remoteVideoPlays(p.page, p.name);
      assert.strictEqual((await h.info(p.page)).opens, 1, `${p.name} kept its one signaling socket`);
      const told = (await h.received(p.page)).filter((m) => 'close' in m || 'error' in m || 'start' in m || 'resumed' in m);
      assert.deepStrictEqual(told.map((m) => ('start' in m ? 'start' : JSON.stringify(m))), ['start'], `${p.name} heard of nobody else`);
    }
    await hangUpAll(a, b, c);
  } finally {
    await refuse.stop();
  }
});

test('with the default policy a newer tab takes the name over and the older tab says so', { timeout: h.TEST_MS }, async () => {
  const { a, b, me, peer } = await call();
  const a2 = await person('alice-second-tab');
  await a2.page.goto(h.joinUrl(server, me, peer));
  await a2.page.click('#call-btn');
  await a.page.waitForSelector('#notice:not([hidden])', { timeout: h.WAIT_MS });
  assert.match(await a.page.textContent('#notice'), /another tab or on another device/);
  await h.waitStatus(a2.page, 'connected');
  await h.waitStatus(b.page, 'connected');
  await h.remoteVideoPlays(b.page, 'bob');
  assert.ok(await a.page.isVisible('#join'), 'the older tab stays stopped');
  assert.strictEqual((await h.info(a.page)).opens, 1, 'the older tab never reconnects (no fight over the name)');
  await hangUpAll(a, b, a2);
});

test('a Japanese browser gets the page in Japanese, and the switch changes the language', { timeout: h.TEST_MS }, async () => {
  n++;
  const ja = { locale: 'ja-JP' };
  const a = await person('hanako', ja);
  await a.page.goto(h.joinUrl(server, `花子-${n}`, `太郎-${n}`));
  assert.strictEqual(await a.page.getAttribute('html', 'lang'), 'ja');
  assert.strictEqual(await a.page.textContent('#join-h'), '通話をはじめる');
  assert.strictEqual(await a.page.textContent('label[for=me]'), 'あなたの名前/ID');
  assert.strictEqual(await a.page.textContent('#call-btn'), '発信');
  assert.strictEqual(await a.page.title(), 'duet — ビデオ通話');
  await a.page.screenshot({ path: h.artifact('join-ja-1280.png') });
  await a.page.click('#call-btn');
  await h.waitStatus(a.page, 'waiting');
  assert.match(await a.page.textContent('#status'), /さんの参加を待っています/);
  const b = await person('taro', ja);
  await b.page.goto(await a.page.evaluate(() => `${location.origin}/?me=${encodeURIComponent(new URLSearchParams(location.search).get('peer'))}&peer=${encodeURIComponent(new URLSearchParams(location.search).get('me'))}`));
  await b.page.click('#call-btn');
  await h.waitStatus(a.page, 'connected');
  assert.match(await a.page.textContent('#status'), /さんと通話中/);
  assert.strictEqual(await a.page.getAttribute('#hangup-btn', 'aria-label'), '通話を終了');
  await a.page.screenshot({ path: h.artifact('call-ja-1280.png') });

  await a.page.selectOption('#lang', 'en');
  assert.strictEqual(await a.page.getAttribute('html', 'lang'), 'en');
  assert.match(await a.page.textContent('#status'), /^Connected with 太郎-\d+/);
  assert.strictEqual(await a.page.getAttribute('#hangup-btn', 'aria-label'), 'Hang up');
  await a.page.click('#hangup-btn');
  assert.strictEqual(await a.page.textContent('#join-h'), 'Start a call');
  await a.page.reload();
  assert.strictEqual(await a.page.textContent('#join-h'), 'Start a call', 'the chosen language is remembered');
  // No message key ever leaks into the page.
  for (const p of [a, b]) {
    const leaked = await p.page.evaluate(() => document.body.innerText.match(/\b(join|status|err|ctl|valid|call|app)\.[a-zA-Z.]+/));
    assert.strictEqual(leaked, null);
  }
  await hangUpAll(a, b);
});

test('at 360 px wide nothing scrolls sideways and every control is on screen', { timeout: h.TEST_MS }, async () => {
  const phone = { viewport: { width: 360, height: 740 } };
  const { a, b } = await call({ a: phone, b: { ...phone, locale: 'ja-JP' } });
  for (const p of [a, b]) {
    const fit = await p.page.evaluate(() => {
      const out = [];
      for (const el of document.querySelectorAll('#call button, #status, #remote, #local')) {
        if (el.hidden || el.closest('[hidden]')) continue;
        const r = el.getBoundingClientRect();
        if (r.left < 0 || r.right > innerWidth || r.top < 0 || r.bottom > innerHeight) out.push(`${el.id} ${JSON.stringify(r)}`);
      }
      return { wide: document.documentElement.scrollWidth > innerWidth, outside: out };
    });
    assert.strictEqual(fit.wide, false, `${p.name}: the call screen scrolls sideways`);
    assert.deepStrictEqual(fit.outside, [], `${p.name}: controls outside the screen`);
    await p.page.screenshot({ path: h.artifact(`call-360-${p.name}.png`) });
  }
  for (const p of [a, b]) await p.page.click('#hangup-btn');
  for (const p of [a, b]) {
    await p.page.fill('#me', 'someone-with-a-rather-long-name-indeed@example.org');
    const wide = await p.page.evaluate(() => document.documentElement.scrollWidth > innerWidth);
    assert.strictEqual(wide, false, `${p.name}: the join form scrolls sideways`);
    await p.page.screenshot({ path: h.artifact(`join-360-${p.name}.png`), fullPage: true });
  }
  await hangUpAll(a, b);
});

test('the keyboard reaches every control, and each has a name for screen readers', { timeout: h.TEST_MS }, async () => {
  const { a, b } = await call();
  const nameOf = () => {
    const el = document.activeElement;
    const label = el.labels && el.labels[0] ? el.labels[0].textContent : '';
    const by = (el.getAttribute('aria-labelledby') || '').split(' ').map((id) => document.getElementById(id)).filter(Boolean).map((x) => x.textContent).join(' ');
    return { id: el.id, name: (el.getAttribute('aria-label') || by || label || el.textContent || '').trim() };
  };
  await a.page.evaluate(() => document.activeElement && document.activeElement.blur());
  const reached = [];
  for (let i = 0; i < 12; i++) {
    await a.page.keyboard.press('Tab');
    reached.push(await a.page.evaluate(nameOf));
  }
  const ids = reached.map((r) => r.id);
  for (const id of ['lang', 'mic-btn', 'cam-btn', 'fs-btn', 'hangup-btn']) assert.ok(ids.includes(id), `Tab reaches #${id} (reached ${ids.join(', ')})`);
  for (const r of reached) if (r.id) assert.ok(r.name.length > 0, `#${r.id} has an accessible name`);
  // The same names as the accessibility tree sees them.
  for (const name of ['Mute microphone', 'Turn camera off', 'Full screen', 'Hang up']) {
    assert.strictEqual(await a.page.getByRole('button', { name, exact: true }).count(), 1, `a button named "${name}"`);
  }
  // Space toggles the microphone from the keyboard.
  await a.page.focus('#mic-btn');
  await a.page.keyboard.press('Space');
  assert.strictEqual(await a.page.getAttribute('#mic-btn', 'aria-label'), 'Unmute microphone');
  assert.strictEqual(await a.page.evaluate(() => document.getElementById('local').srcObject.getAudioTracks()[0].enabled), false);
  await a.page.keyboard.press('Enter');
  assert.strictEqual(await a.page.getAttribute('#mic-btn', 'aria-label'), 'Mute microphone');
  // The camera goes off and on again, and the preview says so.
  await a.page.focus('#cam-btn');
  await a.page.keyboard.press('Enter');
  assert.strictEqual(await a.page.getAttribute('#cam-btn', 'aria-label'), 'Turn camera on');
  assert.strictEqual(await a.page.evaluate(() => document.getElementById('local').srcObject.getVideoTracks()[0].enabled), false);
  assert.ok(await a.page.evaluate(() => document.getElementById('local-wrap').classList.contains('cam-off')));
  await a.page.keyboard.press('Enter');
  assert.strictEqual(await a.page.getAttribute('#cam-btn', 'aria-label'), 'Turn camera off');
  assert.strictEqual(await a.page.evaluate(() => document.getElementById('local').srcObject.getVideoTracks()[0].enabled), true);
  // Full screen and back; the button's name follows.
  await a.page.focus('#fs-btn');
  await a.page.keyboard.press('Enter');
  await a.page.waitForFunction(() => document.fullscreenElement && document.getElementById('fs-btn').getAttribute('aria-label') === 'Leave full screen', null, { timeout: h.WAIT_MS });
  await a.page.keyboard.press('Enter');
  await a.page.waitForFunction(() => !document.fullscreenElement && document.getElementById('fs-btn').getAttribute('aria-label') === 'Full screen', null, { timeout: h.WAIT_MS });
  await a.page.focus('#hangup-btn');
  await a.page.keyboard.press('Enter');
  assert.ok(await a.page.isVisible('#join'));
  // The join form, from the top.
  await a.page.evaluate(() => document.activeElement && document.activeElement.blur());
  const formIds = [];
  for (let i = 0; i < 10; i++) {
    await a.page.keyboard.press('Tab');
    const r = await a.page.evaluate(nameOf);
    formIds.push(r.id);
    if (r.id) assert.ok(r.name.length > 0, `#${r.id} has an accessible name`);
  }
  for (const id of ['lang', 'new-call-btn', 'me', 'peer', 'call-btn', 'forget-btn', 'invite-link', 'copy-btn']) assert.ok(formIds.includes(id), `Tab reaches #${id} (reached ${formIds.join(', ')})`);
  await hangUpAll(a, b);
});

test('the QR code on the page decodes to the invite link', { timeout: h.TEST_MS }, async (t) => {
  n++;
  const a = await person('qr');
  await a.page.goto(h.joinUrl(server, `たなか-${n}`, `suzuki-${n}`));
  const link = await a.page.inputValue('#invite-link');
  const png = h.artifact('qr.png');
  await a.page.locator('#qr').screenshot({ path: png });
  const decoded = h.zbarDecode(png);
  if (decoded === null) {
    t.skip('zbarimg (zbar-tools) is not installed');
  } else {
    assert.strictEqual(decoded, link);
  }
  // Typing updates the link and the code.
  await a.page.fill('#me', 'someone-else');
  const link2 = await a.page.inputValue('#invite-link');
  assert.match(link2, /peer=someone-else/);
  await a.page.locator('#qr').screenshot({ path: png });
  if (decoded !== null) assert.strictEqual(h.zbarDecode(png), link2);
  await a.close();
});

test('the form refuses the ids the server refuses, in plain words', { timeout: h.TEST_MS }, async () => {
  const a = await person('validator');
  await a.page.goto(`${server.url}?me=&peer=`);
  await a.page.click('#call-btn');
  assert.match(await a.page.textContent('#me-error'), /fill in/);
  await a.page.fill('#me', 'same');
  await a.page.fill('#peer', 'same');
  await a.page.click('#call-btn');
  assert.match(await a.page.textContent('#peer-error'), /cannot call yourself/);
  await a.page.fill('#peer', 'あ'.repeat(86)); // 258 bytes of UTF-8
  assert.match(await a.page.textContent('#peer-error'), /too long/);
  await a.page.fill('#peer', 'a\u0007b');
  assert.match(await a.page.textContent('#peer-error'), /control characters/);
  assert.ok(await a.page.isVisible('#join'), 'no call was started');
  assert.strictEqual(await a.page.getAttribute('#peer', 'aria-invalid'), 'true');
  await a.close();
});

test('a blocked camera is explained with how to allow it', { timeout: h.TEST_MS }, async () => {
  // A browser without the fake permission prompt: headless Chromium denies.
  const denying = await require('playwright-core').chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--use-fake-device-for-media-stream', '--deny-permission-prompts'],
  });
  try {
    const ctx = await denying.newContext({ ignoreHTTPSErrors: true, locale: 'en-US' });
    const page = await ctx.newPage();
    await page.goto(h.joinUrl(server, 'blocked-a', 'blocked-b'));
    await page.click('#call-btn');
    await page.waitForSelector('#notice:not([hidden])', { timeout: h.WAIT_MS });
    const text = await page.textContent('#notice');
    assert.match(text, /camera or microphone is blocked/);
    assert.match(text, /allow the camera and microphone/);
    assert.ok(await page.isVisible('#join'));
  } finally {
    await denying.close();
  }
});

test('duetd killed and restarted mid-call: media keeps flowing and signaling comes back by itself', { timeout: h.TEST_MS }, async () => {
  const own = await h.startDuetd();
  const { a, b } = await call({ server: own });
  const mark = h.problems.length;
  await own.stop('SIGKILL');
  await h.waitStatus(a.page, 'reconnecting');
  await h.remoteVideoPlays(a.page, 'alice while the server is down');
  await h.remoteVideoPlays(b.page, 'bob while the server is down');
  const again = await h.startDuetd({ port: own.port, stateDir: own.dir });
  try {
    await h.waitStatus(a.page, 'connected');
    await h.waitStatus(b.page, 'connected');
    // The server lost both: each got a fresh "start", and the offerer
    // restarted ICE on the connection it kept.
    for (const p of [a, b]) await h.waitRenegotiated(p.page, p.name);
    for (const p of [a, b]) {
      await h.remoteVideoPlays(p.page, p.name);
      assert.strictEqual((await h.info(p.page)).wsOpen, true);
      const log = await p.page.evaluate(() => window.__statusLog);
      assert.ok(!log.includes('peerLeft'), `${p.name} never saw "left" (${log.join(' → ')})`);
    }
    await hangUpAll(a, b);
  } finally {
    await again.stop();
    // Chromium itself logs each refused WebSocket while the server is down.
    const added = h.problems.splice(mark);
    h.problems.push(...added.filter((m) => !/WebSocket connection to .* failed: .*ERR_CONNECTION_REFUSED/.test(m)));
  }
});

test('desktop screenshots of the join form and the call, for people to look at', { timeout: h.TEST_MS }, async () => {
  const { a, b } = await call();
  await h.remoteVideoPlays(a.page, 'alice');
  await a.page.screenshot({ path: h.artifact('call-en-1280.png') });
  const c = await person('viewer', { viewport: { width: 375, height: 812 } });
  await c.page.goto(h.joinUrl(server, 'carol', 'dave'));
  await c.page.screenshot({ path: h.artifact('join-en-375.png'), fullPage: true });
  await c.page.setViewportSize({ width: 1280, height: 800 });
  await c.page.screenshot({ path: h.artifact('join-en-1280.png') });
  await hangUpAll(a, b, c);
});

// Users get the client and nothing else: no globals of its own (the modules
// keep everything inside) and no test hooks. The baseline is a page of the
// same origin without the client, in the same kind of browser context.
test('the page adds nothing to window: no globals and no test hooks', { timeout: h.TEST_MS }, async () => {
  const a = await person('globals');
  const names = () => Object.getOwnPropertyNames(window).filter((k) => !k.startsWith('__'));
  // Shown as a page of its own, the icon makes Chromium ask for /favicon.ico,
  // which duet does not have: answer that in the browser, not with a 404.
  await a.page.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));
  await a.page.goto(`${server.url}favicon.svg`);
  const baseline = new Set(await a.page.evaluate(names));
  await a.page.goto(h.joinUrl(server, 'globals-a', 'globals-b'));
  await a.page.waitForFunction(() => document.getElementById('invite-link').value !== '');
  await a.page.click('#call-btn');
  await h.waitStatus(a.page, 'waiting');
  const added = (await a.page.evaluate(names)).filter((k) => !baseline.has(k));
  assert.deepStrictEqual(added, [], 'names the page put on window');
  assert.strictEqual(await a.page.evaluate(() => typeof window.__duetTest), 'undefined');
  await a.close();
});

test('no console errors and no CSP violations in any of these calls', { timeout: 10000 }, async () => {
  const csp = [];
  for (const p of people) csp.push(...(await h.cspViolations(p.page).catch(() => [])));
  assert.deepStrictEqual(csp, [], 'CSP violations');
  const errors = h.problems.filter((m) => !/Failed to load resource: net::ERR_/.test(m));
  assert.deepStrictEqual(errors, [], 'console errors');
  assert.ok(fs.existsSync(h.ARTIFACTS));
});
