// "New call" (issue 14): one press makes readable random ids for both
// sides and joins; the link (or its QR code) on the waiting call screen
// brings the other person in. The own id is remembered, and can be forgotten.
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

const READABLE = /^[a-z]+-[a-z]+-[a-z]+$/;

test('"New call" makes a link with fresh readable ids, and the link opened in a second browser gives a call', { timeout: h.TEST_MS }, async (t) => {
  const a = await person('newcall-alice');
  await a.page.goto(server.url);
  assert.strictEqual(await a.page.getByRole('button', { name: 'New call', exact: true }).count(), 1);
  await a.page.click('#new-call-btn');
  await h.waitStatus(a.page, 'waiting');
  const me = await a.page.inputValue('#me');
  const peer = await a.page.inputValue('#peer');
  assert.match(me, READABLE);
  assert.match(peer, READABLE);
  assert.notStrictEqual(me, peer);

  // The waiting call screen shows the link to send, and its QR code.
  assert.ok(await a.page.isVisible('#call-invite'), 'the invite is on the call screen while waiting');
  const link = await a.page.inputValue('#call-invite-link');
  const u = new URL(link);
  assert.strictEqual(u.searchParams.get('me'), peer);
  assert.strictEqual(u.searchParams.get('peer'), me);
  assert.ok(await a.page.isVisible('#call-qr'));
  const png = h.artifact('newcall-qr.png');
  await a.page.locator('#call-qr').screenshot({ path: png });
  const decoded = h.zbarDecode(png);
  if (decoded === null) t.diagnostic('zbarimg is not installed: the QR code was not decoded');
  else assert.strictEqual(decoded, link, 'the QR code on the call screen decodes to the link');

  const b = await person('newcall-bob');
  await b.page.goto(link);
  await b.page.click('#call-btn');
  await h.waitStatus(a.page, 'connected');
  await h.waitStatus(b.page, 'connected');
  await h.remoteVideoPlays(a.page, 'alice');
  await h.remoteVideoPlays(b.page, 'bob');
  assert.ok(await a.page.isHidden('#call-invite'), 'the invite goes away once the other person is in');

  // A second New call gives other ids.
  await a.page.click('#hangup-btn');
  await a.page.click('#new-call-btn');
  await h.waitStatus(a.page, 'waiting');
  assert.notStrictEqual(await a.page.inputValue('#me'), me);
  await a.page.click('#hangup-btn');
});

test('the own id is remembered on the device, and "Forget" clears it', { timeout: h.TEST_MS }, async () => {
  const a = await person('remember');
  await a.page.goto(server.url);
  assert.ok(await a.page.isHidden('#forget-btn'), 'nothing to forget on a first visit');
  await a.page.click('#new-call-btn');
  await h.waitStatus(a.page, 'waiting');
  const me = await a.page.inputValue('#me');
  await a.page.click('#hangup-btn');
  await a.page.goto(server.url);
  assert.strictEqual(await a.page.inputValue('#me'), me, 'the last own id is filled in on the next visit');
  assert.ok(await a.page.isVisible('#forget-btn'));
  await a.page.click('#forget-btn');
  assert.strictEqual(await a.page.inputValue('#me'), '');
  assert.match(await a.page.textContent('#join-info'), /no longer stored/);
  assert.strictEqual(await a.page.evaluate(() => localStorage.getItem('duet.me')), null);
  assert.strictEqual(await a.page.evaluate(() => document.activeElement.id), 'me');
  await a.page.goto(server.url);
  assert.strictEqual(await a.page.inputValue('#me'), '', 'forgotten after a reload too');
  assert.ok(await a.page.isHidden('#forget-btn'));
});

test('the join page in Japanese offers "New call" and the forget button in Japanese', { timeout: h.TEST_MS }, async () => {
  const a = await person('newcall-ja', { locale: 'ja-JP' });
  await a.page.goto(h.joinUrl(server, '花子', '太郎'));
  assert.strictEqual(await a.page.textContent('#new-call-btn'), '新しい通話');
  assert.strictEqual(await a.page.textContent('#forget-btn'), 'この端末に保存した名前を消去');
  await a.page.click('#new-call-btn');
  await h.waitStatus(a.page, 'waiting');
  assert.strictEqual(await a.page.textContent('#call-invite-h'), '相手を招待する');
  await a.page.click('#hangup-btn');
});

test('no console errors and no CSP violations around New call', { timeout: 10000 }, async () => {
  const { csp, errors } = await h.pageProblems(people);
  assert.deepStrictEqual(csp, [], 'CSP violations');
  assert.deepStrictEqual(errors, [], 'console errors');
});
