// The connection panel and indicator (issue 14): on loopback the panel must
// say "direct (host candidate)" and show plausible numbers from getStats.
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

const stat = (page, name) => page.textContent(`#stats-list dd[data-stat="${name}"]`);

test('the connection panel shows a direct connection on loopback and plausible numbers', { timeout: h.TEST_MS }, async () => {
  const a = await h.person(browser, 'stats-alice');
  const b = await h.person(browser, 'stats-bob');
  people.push(a, b);
  await h.callByInvite(a, b, server, 'stats-a', 'stats-b');
  await h.remoteVideoPlays(a.page, 'alice');

  // The indicator: words, not only a colour.
  await a.page.waitForSelector('#quality:not([hidden])', { timeout: h.WAIT_MS });
  assert.strictEqual(await a.page.getAttribute('#quality', 'data-level'), 'good');
  assert.strictEqual(await a.page.textContent('#quality-text'), 'Connection good');

  await a.page.click('#stats-btn');
  assert.strictEqual(await a.page.getAttribute('#stats-btn', 'aria-expanded'), 'true');
  await a.page.waitForFunction(() => {
    const dd = document.querySelector('#stats-list dd[data-stat="bitrate"]');
    return dd && /sending [1-9]\d* kbit\/s · receiving [1-9]\d* kbit\/s/.test(dd.textContent);
  }, null, { timeout: h.WAIT_MS });
  assert.strictEqual(await stat(a.page, 'path'), 'direct (host candidate)');
  const rtt = Number((await stat(a.page, 'rtt')).match(/^(\d+) ms$/)[1]);
  assert.ok(rtt >= 0 && rtt < 1000, `round trip on loopback: ${rtt} ms`);
  const [, up, down] = (await stat(a.page, 'bitrate')).match(/sending (\d+) kbit\/s · receiving (\d+) kbit\/s/).map(Number);
  assert.ok(up > 10 && up < 20000 && down > 10 && down < 20000, `bitrates ${up} / ${down} kbit/s`);
  const loss = (await stat(a.page, 'loss')).match(/sending ([\d.]+) % · receiving ([\d.]+) %/);
  assert.ok(loss && Number(loss[1]) < 5 && Number(loss[2]) < 5, `packet loss on loopback: ${await stat(a.page, 'loss')}`);
  for (const name of ['video-out', 'video-in']) {
    const m = (await stat(a.page, name)).match(/^(\d+)×(\d+) · (\d+) fps$/);
    assert.ok(m, `${name}: ${await stat(a.page, name)}`);
    assert.ok(Number(m[1]) > 0 && Number(m[1]) <= 640 && Number(m[2]) <= 480, `${name}: the fake camera is 640×480 at most`);
  }

  // The panel's candidate type agrees with the browser's own report.
  const types = await a.page.evaluate(async () => {
    const pc = window.__peers[window.__peers.length - 1].pc;
    const r = await pc.getStats();
    const out = [];
    r.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) out.push(r.get(r.get(s.selectedCandidatePairId).localCandidateId).candidateType); });
    return out;
  });
  assert.deepStrictEqual(types, ['host']);

  // In Japanese too.
  await a.page.selectOption('#lang', 'ja');
  await a.page.waitForFunction(() => document.querySelector('#stats-list dd[data-stat="path"]').textContent === '直接（ホスト候補）', null, { timeout: h.WAIT_MS });
  assert.strictEqual(await a.page.textContent('#quality-text'), '接続良好');
  await a.page.screenshot({ path: h.artifact('stats-ja-1280.png') });
  await a.page.selectOption('#lang', 'en');

  // Escape closes it; the focus is back on its button.
  await a.page.focus('#stats-panel .panel-close');
  await a.page.keyboard.press('Escape');
  assert.ok(await a.page.isHidden('#stats-panel'));
  assert.strictEqual(await a.page.evaluate(() => document.activeElement.id), 'stats-btn');
  assert.strictEqual(await a.page.getAttribute('#stats-btn', 'aria-expanded'), 'false');

  await a.page.click('#hangup-btn');
  assert.ok(await a.page.isHidden('#quality'), 'no indicator outside a call');
});

test('no console errors and no CSP violations with the panel', { timeout: 10000 }, async () => {
  const { csp, errors } = await h.pageProblems(people);
  assert.deepStrictEqual(csp, [], 'CSP violations');
  assert.deepStrictEqual(errors, [], 'console errors');
});
