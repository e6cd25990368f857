// The cluster (issue 12) in real Chromium: two duetd nodes on one Redis, and
// two people whose pages (and so their signaling WebSockets) come from
// different nodes still have a real call, and a hang-up reaches across.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const h = require('./harness.js');

let redis;
const nodes = [];
let browser;
const people = [];
let setupError = null;

before(async () => {
  if (!fs.existsSync(h.REDIS_SERVER)) {
    setupError = new Error(`${h.REDIS_SERVER} is missing: apt-get install redis-server (tools/install-deps installs it)`);
    return;
  }
  redis = await h.startRedis();
  for (const i of [0, 1]) {
    try {
      nodes.push(await h.startDuetd({ args: ['--cluster', redis.url, '--node-id', `browser-node-${i}`] }));
    } catch (e) {
      const missing = /not expected[^\n]*--cluster|unknown[^\n]*--cluster/i.test(e.message);
      setupError = new Error(missing
        ? `this duetd does not know --cluster: the server side of issue 12 is missing from this build\n${e.message}`
        : e.message);
      return;
    }
  }
  browser = await h.launchBrowser();
});

after(async () => {
  for (const p of people) await p.close().catch(() => {});
  if (browser) await browser.close();
  for (const n of nodes) await n.stop();
  if (redis) await redis.stop();
});

async function person(name) {
  const p = await h.person(browser, name);
  people.push(p);
  return p;
}

// The port a page's newest signaling WebSocket went to.
async function signalingPort(page) {
  return page.evaluate(() => new URL(window.__sockets[window.__sockets.length - 1].ws.url).port);
}

test('two people on different nodes see and hear each other, and a hang-up reaches across', { timeout: h.TEST_MS }, async () => {
  if (setupError) throw setupError;
  const [n0, n1] = nodes;
  const a = await person('alice-on-node-0');
  const b = await person('bob-on-node-1');
  await a.page.goto(h.joinUrl(n0, 'alice-cluster', 'bob-cluster'));
  // The invite link names node 0; bob opens the same link on node 1.
  const invite = new URL(await a.page.inputValue('#invite-link'));
  assert.strictEqual(invite.port, String(n0.port), 'the invite link points at the page\'s own node');
  invite.port = String(n1.port);
  await a.page.click('#call-btn');
  await h.waitStatus(a.page, 'waiting');
  await b.page.goto(invite.toString());
  await b.page.click('#call-btn');
  await h.waitStatus(a.page, 'connected');
  await h.waitStatus(b.page, 'connected');
  assert.strictEqual(await signalingPort(a.page), String(n0.port), 'alice signals through node 0');
  assert.strictEqual(await signalingPort(b.page), String(n1.port), 'bob signals through node 1');
  for (const p of [a, b]) {
    await h.remoteVideoPlays(p.page, p.name);
    const i = await h.info(p.page);
    assert.strictEqual(i.pc, 'connected', `${p.name}'s RTCPeerConnection is connected`);
    assert.ok(i.hasToken, `${p.name} got a resume token`);
    const errors = (await h.received(p.page)).filter((m) => 'error' in m);
    assert.deepStrictEqual(errors, [], `${p.name} got no error from the server`);
  }
  // Hanging up on node 0 is heard on node 1.
  await a.page.click('#hangup-btn');
  await h.waitStatus(b.page, 'peerLeft');
  assert.deepStrictEqual(h.problems.filter((x) => /alice-on|bob-on/.test(x)), [], 'no console errors');
  for (const n of nodes) assert.strictEqual(n.proc.exitCode, null, `a node exited:\n${n.log()}`);
});
