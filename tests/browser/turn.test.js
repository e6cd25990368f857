// Calls through a real TURN relay (issue 16): Debian's coturn on 127.0.0.1,
// duetd handing out its REST-API credentials, and two Chromiums told to use
// relayed candidates only (--ice-transport-policy relay). getStats shows
// which candidate pair carries the call. The times to connect (relayed and
// direct) are printed for people to read, never asserted.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness.js');

const SECRET = 'turn-test-secret-5d1f';
let browser;
let turn;
const cleanups = [];
let n = 0;

before(async () => {
  turn = await h.startCoturn({ secret: SECRET });
  browser = await h.launchBrowser();
});

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  if (browser) await browser.close();
  if (turn) await turn.stop();
});

function secretFile(text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'duet-browser-turn-secret-'));
  const file = path.join(dir, 'turn-secret');
  fs.writeFileSync(file, `${text}\n`);
  return file;
}

async function server(args) {
  const s = await h.startDuetd({ args });
  cleanups.push(() => s.stop());
  return s;
}

// Two people join the same call; resolves when both pages say "connected"
// (or, with expectConnected false, once the second has pressed Call), with
// the milliseconds from the second press of Call to both being connected.
async function call(srv, { expectConnected = true } = {}) {
  n++;
  const a = await h.person(browser, `alice${n}`);
  const b = await h.person(browser, `bob${n}`);
  cleanups.push(() => a.close(), () => b.close());
  await a.page.goto(h.joinUrl(srv, `alice-${n}`, `bob-${n}`));
  await a.page.click('#call-btn');
  await h.waitStatus(a.page, 'waiting');
  await b.page.goto(h.joinUrl(srv, `bob-${n}`, `alice-${n}`));
  const t0 = Date.now();
  await b.page.click('#call-btn');
  if (!expectConnected) return { a, b };
  await h.waitStatus(a.page, 'connected');
  await h.waitStatus(b.page, 'connected');
  return { a, b, ms: Date.now() - t0 };
}

test('relay only: a call flows both ways through coturn, and both ends of the selected pair are relay candidates',
  { timeout: h.TEST_MS }, async (t) => {
    const srv = await server(['--turn', turn.url, '--turn-secret', secretFile(SECRET), '--ice-transport-policy', 'relay']);
    const { a, b, ms } = await call(srv);
    for (const p of [a, b]) {
      await h.remoteVideoPlays(p.page, p.name);
      const i = await h.info(p.page);
      assert.strictEqual(i.pc, 'connected', `${p.name}'s RTCPeerConnection is connected`);
      const config = await p.page.evaluate(() => window.__peers[window.__peers.length - 1].config);
      assert.strictEqual(config.iceTransportPolicy, 'relay', `${p.name} made its connection relay-only`);
      assert.deepStrictEqual(config.iceServers[0].urls, [turn.url]);
      assert.match(config.iceServers[0].username, /^\d+:/, 'the TURN username is "expiry:id"');
      const pair = await h.selectedPair(p.page);
      assert.ok(pair, `${p.name} has a selected candidate pair`);
      assert.deepStrictEqual([pair.local, pair.remote], ['relay', 'relay'],
        `${p.name}'s selected pair: ${JSON.stringify(pair)}`);
      // What each browser told its partner: relay candidates only, so the
      // partner never learned a host address.
      const sent = await p.page.evaluate(() => window.__signals.filter((x) => x.dir === 'out' && x.msg.ice)
        .map((x) => / typ (\w+)/.exec(x.msg.ice.candidate)[1]));
      assert.ok(sent.length > 0 && sent.every((type) => type === 'relay'), `${p.name} sent only relay candidates: ${sent}`);
      t.diagnostic(`${p.name}: selected pair ${pair.local} ${pair.localAddress} <-> ${pair.remote} ${pair.remoteAddress} over ${pair.relayProtocol}; candidates sent: ${[...new Set(sent)]}`);
    }
    assert.match(turn.log(), /ALLOCATE processed, success/, 'coturn logged the allocations');
    t.diagnostic(`relayed call: connected ${ms} ms after the second person pressed Call`);
    await a.close();
    await b.close();
  });

test('for comparison, the same call without TURN connects directly (host candidates)', { timeout: h.TEST_MS }, async (t) => {
  const srv = await server([]);
  const { a, b, ms } = await call(srv);
  for (const p of [a, b]) {
    await h.remoteVideoPlays(p.page, p.name);
    const pair = await h.selectedPair(p.page);
    assert.deepStrictEqual([pair.local, pair.remote], ['host', 'host'], `${p.name}'s selected pair: ${JSON.stringify(pair)}`);
  }
  t.diagnostic(`direct call: connected ${ms} ms after the second person pressed Call`);
  await a.close();
  await b.close();
});

test('relay only with a secret coturn does not share: the call cannot connect, and the page says why in words',
  { timeout: h.TEST_MS }, async () => {
    const srv = await server(['--turn', turn.url, '--turn-secret', secretFile('not-the-coturn-secret'),
      '--ice-transport-policy', 'relay']);
    const { a, b } = await call(srv, { expectConnected: false });
    for (const p of [a, b]) {
      await h.waitStatus(p.page, 'failed');
      const text = await p.page.textContent('#status');
      assert.match(text, /relay \(TURN\) server/, `${p.name} reads: ${text}`);
      const i = await h.info(p.page);
      assert.notStrictEqual(i.pc, 'connected', `${p.name} never connected`);
    }
    assert.match(turn.log(), /error 401/, 'coturn refused the credentials');
    await a.close();
    await b.close();
  });
