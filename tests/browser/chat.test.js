// Text chat during a call (issue 14): over the call's own data channel,
// browser to browser; the server never sees it, and whatever is typed,
// markup included, arrives as the same characters.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert');
const h = require('./harness.js');

let server;
let browser;
const people = [];

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

const NASTY = 'hi <script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold</b> '
  + 'see https://example.org/a?b=1&c=2. not javascript:alert(1) nor <a href="javascript:alert(3)">this</a>';

test('chat text sent one way arrives the other way, as text, with only http(s) links made clickable', { timeout: h.TEST_MS }, async () => {
  const a = await person('chat-alice');
  const b = await person('chat-bob');
  await h.callByInvite(a, b, server, 'chat-a', 'chat-b');
  assert.strictEqual(await b.page.getAttribute('#chat-btn', 'aria-label'), 'Chat');
  assert.ok(await b.page.isHidden('#chat-badge'), 'no unread badge before any message');

  await a.page.click('#chat-btn');
  assert.strictEqual(await a.page.getAttribute('#chat-btn', 'aria-expanded'), 'true');
  assert.strictEqual(await a.page.evaluate(() => document.activeElement.id), 'chat-input', 'focus goes to the message field');
  await a.page.keyboard.type(NASTY);
  await a.page.keyboard.press('Enter');
  assert.strictEqual(await a.page.inputValue('#chat-input'), '', 'the field is emptied after sending');

  // The other side: an unread badge, in words for screen readers too.
  await b.page.waitForSelector('#chat-badge:not([hidden])', { timeout: h.WAIT_MS });
  assert.strictEqual(await b.page.textContent('#chat-badge'), '1');
  assert.strictEqual(await b.page.getAttribute('#chat-btn', 'aria-label'), 'Chat (1 unread)');
  // The panel is closed: a live region outside it reads the message out.
  assert.strictEqual(await b.page.getAttribute('#chat-announce', 'aria-live'), 'polite');
  assert.strictEqual(await b.page.textContent('#chat-announce'), `Message from chat-a: ${NASTY}`);
  assert.strictEqual(await b.page.evaluate(() => document.getElementById('chat-announce').children.length), 0,
    'read out as text, no markup');
  await b.page.click('#chat-btn');
  assert.ok(await b.page.isHidden('#chat-badge'), 'opening the chat clears the badge');
  assert.strictEqual(await b.page.getAttribute('#chat-btn', 'aria-label'), 'Chat');

  const got = await b.page.evaluate(() => {
    const msg = document.querySelector('#chat-log .msg.peer');
    return {
      who: msg.querySelector('.who').textContent,
      text: msg.querySelector('p').textContent,
      elements: [...msg.querySelectorAll('p *')].map((el) => el.tagName),
      links: [...msg.querySelectorAll('a')].map((el) => ({ href: el.getAttribute('href'), rel: el.rel, target: el.target, text: el.textContent })),
      pwned: window.__pwned,
    };
  });
  assert.strictEqual(got.who, 'chat-a');
  assert.strictEqual(got.text, NASTY, 'the text arrives exactly as typed');
  assert.deepStrictEqual(got.elements, ['A'], 'the only element made from the text is one link');
  assert.deepStrictEqual(got.links, [{ href: 'https://example.org/a?b=1&c=2', rel: 'noopener noreferrer', target: '_blank', text: 'https://example.org/a?b=1&c=2' }]);
  assert.strictEqual(got.pwned, undefined, 'no script ran');
  assert.strictEqual(await a.page.evaluate(() => window.__pwned), undefined);

  // And back the other way.
  await b.page.fill('#chat-input', 'ありがとう');
  await b.page.click('#chat-send');
  await a.page.waitForFunction(() => [...document.querySelectorAll('#chat-log .msg.peer p')].some((p) => p.textContent === 'ありがとう'), null, { timeout: h.WAIT_MS });
  assert.ok(await a.page.isHidden('#chat-badge'), 'no badge while the chat is open');
  assert.deepStrictEqual(await a.page.$$eval('#chat-log .msg', (els) => els.map((e) => e.className)), ['msg me', 'msg peer']);

  // Peer to peer: neither text ever passed through the server.
  for (const p of [a, b]) {
    const signals = JSON.stringify(await p.page.evaluate(() => window.__signals));
    assert.ok(!signals.includes('ありがとう') && !signals.includes('__pwned'), `${p.name}: chat text went through signaling`);
  }

  // Escape closes the panel and gives the focus back to its button.
  await a.page.focus('#chat-input');
  await a.page.keyboard.press('Escape');
  assert.ok(await a.page.isHidden('#chat-panel'));
  assert.strictEqual(await a.page.evaluate(() => document.activeElement.id), 'chat-btn');
  assert.strictEqual(await a.page.getAttribute('#chat-btn', 'aria-expanded'), 'false');

  // With the other person gone, a message is not sent, and the page says so.
  await b.page.click('#hangup-btn');
  await h.waitStatus(a.page, 'peerLeft');
  await a.page.click('#chat-btn');
  await a.page.fill('#chat-input', 'anyone?');
  await a.page.press('#chat-input', 'Enter');
  assert.match(await a.page.textContent('#chat-log .msg.note'), /Not sent/);
  await a.page.screenshot({ path: h.artifact('chat-after-leave.png') });
});

test('the chat speaks Japanese too, and a new call starts with an empty chat', { timeout: h.TEST_MS }, async () => {
  const ja = { locale: 'ja-JP' };
  const a = await person('chat-hanako', ja);
  const b = await person('chat-taro', ja);
  await h.callByInvite(a, b, server, 'chat-花子', 'chat-太郎');
  assert.strictEqual(await a.page.getAttribute('#chat-btn', 'aria-label'), 'チャット');
  await a.page.click('#chat-btn');
  assert.strictEqual(await a.page.textContent('#chat-h'), 'チャット');
  assert.strictEqual(await a.page.textContent('#chat-send'), '送信');
  assert.strictEqual(await a.page.evaluate(() => document.getElementById('chat-log').children.length), 0);
  await a.page.fill('#chat-input', 'こんにちは');
  await a.page.press('#chat-input', 'Enter');
  await b.page.waitForSelector('#chat-badge:not([hidden])', { timeout: h.WAIT_MS });
  assert.strictEqual(await b.page.getAttribute('#chat-btn', 'aria-label'), 'チャット（未読 1 件）');
  assert.strictEqual(await a.page.textContent('#chat-log .msg.me .who'), 'あなた');
  await a.page.selectOption('#lang', 'en');
  assert.strictEqual(await a.page.textContent('#chat-log .msg.me .who'), 'You', 'the chat follows the language switch');
});

test('a partner flooding the chat keeps the page at the last 500 messages', { timeout: h.TEST_MS }, async () => {
  const a = await person('chat-flood-a');
  const b = await person('chat-flood-b');
  await h.callByInvite(a, b, server, 'chat-flood-1', 'chat-flood-2');
  await a.page.click('#chat-btn');
  await b.page.evaluate(() => {
    const input = document.getElementById('chat-input');
    for (let i = 1; i <= 520; i++) {
      input.value = `flood ${i}`;
      document.getElementById('chat-send').click();
    }
  });
  await a.page.waitForFunction(() => {
    const last = document.querySelector('#chat-log .msg.peer:last-child p');
    return last && last.textContent === 'flood 520';
  }, null, { timeout: h.WAIT_MS });
  const kept = await a.page.$$eval('#chat-log .msg p', (ps) => ps.map((p) => p.textContent));
  assert.strictEqual(kept.length, 500);
  assert.deepStrictEqual([kept[0], kept[499]], ['flood 21', 'flood 520'], 'the oldest go first, the order is kept');
});

test('no console errors and no CSP violations in the chat calls', { timeout: 10000 }, async () => {
  const { csp, errors } = await h.pageProblems(people);
  assert.deepStrictEqual(csp, [], 'CSP violations');
  assert.deepStrictEqual(errors, [], 'console errors');
});
