// Draining a node (SIGUSR1) in real Chromium, behind a real load balancer:
// two duetd nodes with --cluster on a Redis of the test's own, and Debian's
// HAProxy in TCP mode in front of them, checking each node's /healthz on its
// admin port (README: "Operating duet: the admin API, closing a connection,
// draining a node" and "Two machines behind a TCP load balancer";
// tests/integration/test_cluster.py DrainTest does the same with Python
// clients). Alice and bob are in a call, both signaling through node 0; node 0
// is drained; both pages move their signaling through HAProxy to node 1, one
// after the other, while the call's media (peer to peer) goes on untouched;
// node 0 exits 0 by itself; the ICE restart that follows the resume
// finishes through node 1, and a hang-up still reaches across node 1.
// Needs Debian's haproxy (skipped without it) and redis-server.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const h = require('./harness.js');

const HAPROXY = process.env.HAPROXY || '/usr/sbin/haproxy';
const HAPROXY_MISSING = fs.existsSync(HAPROXY)
  ? false
  : `${HAPROXY} is missing: apt-get install haproxy (Debian's HAProxy 2.6) to run the drain test behind a load balancer`;
const RESUME_GRACE_S = 15;
const DRAIN_TIMEOUT_S = 60;

let redis;
let haproxy;
const nodes = []; // { server, adminPort, tlsPort }
let browser;
const people = [];
let setupError = null;
let tmp;
let tokenFile;
let token;

// A TCP port nothing listens on now (the kernel's pick, let go at once):
// HAProxy's config names node 1's ports before node 1 starts.
function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// One plain-HTTP request to a node's admin port: { status, body } (body
// parsed as JSON when it is JSON).
function admin(port, method, urlPath, { auth = true } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, method, path: urlPath, timeout: 5000,
      headers: auth ? { Authorization: `Bearer ${token}` } : {},
    }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let body = text;
        try { body = JSON.parse(text); } catch (e) { /* not JSON: kept as text */ }
        resolve({ status: res.statusCode, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath} on port ${port}: no answer in 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

// The ids (the pairing plugin's "local") connected to node i, from its admin API.
async function idsOn(i) {
  const res = await admin(nodes[i].adminPort, 'GET', '/admin/connections');
  assert.strictEqual(res.status, 200, `GET /admin/connections on node ${i}: ${JSON.stringify(res.body)}`);
  return res.body.connections.map((c) => (c.pairing ? c.pairing.local : '')).filter(Boolean).sort();
}

// Waits until fn() is true (it may be async); what() says what was awaited.
async function until(fn, what, timeout = h.WAIT_MS) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`${typeof what === 'function' ? await what() : what} (waited ${timeout} ms)`);
    await h.sleep(100);
  }
}

// Debian's HAProxy in the foreground (-db) with its own config in a fresh
// folder: TCP mode on one front port, the two nodes' TLS ports behind it,
// each checked with GET /healthz on its admin port. Its stats socket tells
// each server's state. Stopped by its PID only.
async function startHaproxy(backends) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'duet-browser-haproxy-'));
  const front = await freeTcpPort();
  const sock = path.join(dir, 'haproxy.sock');
  const config = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(config, [
    'global',
    '    log stdout format iso local0 info',
    `    stats socket ${sock} mode 600 level admin`,
    'defaults',
    '    mode tcp',
    '    log global',
    '    option tcplog',
    '    timeout connect 5s',
    // The signaling WebSockets stay open for the whole test.
    '    timeout client 1h',
    '    timeout server 1h',
    '    timeout check 2s',
    'frontend duet',
    `    bind 127.0.0.1:${front}`,
    '    default_backend nodes',
    'backend nodes',
    '    balance leastconn',
    '    option httpchk GET /healthz',
    ...backends.map((b, i) => `    server n${i} 127.0.0.1:${b.tlsPort} check port ${b.adminPort} inter 500 fall 1 rise 2`),
    '',
  ].join('\n'));
  const proc = spawn(HAPROXY, ['-db', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.on('error', () => {}); // a missing haproxy: said below
  if (proc.pid === undefined) throw new Error(`cannot run ${HAPROXY}`);
  proc.stdout.on('data', (c) => { log += c; });
  proc.stderr.on('data', (c) => { log += c; });
  proc.on('exit', () => fs.writeFileSync(h.artifact(`haproxy-${front}-${proc.pid}.log`), log));
  const lb = {
    proc, dir, config, front, url: `https://127.0.0.1:${front}/`,
    log: () => log,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const done = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([done, h.sleep(5000)]);
      if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGKILL'); await done; }
    },
    // One command on the stats socket; its whole answer.
    command: (cmd) => new Promise((resolve, reject) => {
      const c = net.connect(sock);
      let out = '';
      c.setTimeout(5000, () => { c.destroy(); reject(new Error(`haproxy's stats socket did not answer "${cmd}" in 5 s`)); });
      c.on('error', reject);
      c.on('connect', () => c.write(`${cmd}\n`));
      c.on('data', (d) => { out += d; });
      c.on('end', () => resolve(out));
    }),
    // Each server's state as HAProxy sees it: { n0: 'UP', n1: 'DOWN', ... }.
    async states() {
      const lines = (await lb.command('show stat')).split('\n').filter(Boolean);
      const head = lines[0].replace(/^# /, '').split(',');
      const out = {};
      for (const line of lines.slice(1)) {
        const row = line.split(',');
        if (row[head.indexOf('pxname')] === 'nodes' && /^n\d+$/.test(row[head.indexOf('svname')])) {
          out[row[head.indexOf('svname')]] = `${row[head.indexOf('status')]} (${row[head.indexOf('check_status')]})`;
        }
      }
      return out;
    },
  };
  await until(async () => {
    if (proc.exitCode !== null) throw new Error(`haproxy exited with ${proc.exitCode}:\n${log}`);
    return fs.existsSync(sock) && lb.command('show info').then(() => true, () => false);
  }, () => `haproxy did not open its stats socket:\n${log}`, 30000);
  return lb;
}

async function startNode(i, { tlsPort = 0, adminPort, cert } = {}) {
  const args = ['--cluster', redis.url, '--node-id', `drain-node-${i}`,
    '--plugin-opt', `pairing.resume-grace=${RESUME_GRACE_S}`, '--drain-timeout', String(DRAIN_TIMEOUT_S),
    '--admin-listen', `127.0.0.1:${adminPort}`, '--admin-token-file', tokenFile];
  // Behind a TCP balancer every node has the same certificate (README): node
  // 1 gets the development certificate node 0 made.
  if (cert) args.push('--cert', cert.cert, '--key', cert.key);
  const server = await h.startDuetd({ args, port: tlsPort });
  return { server, adminPort, tlsPort: server.port };
}

before(async () => {
  if (HAPROXY_MISSING) return;
  if (!fs.existsSync(h.REDIS_SERVER)) {
    setupError = new Error(`${h.REDIS_SERVER} is missing: apt-get install redis-server (tools/install-deps installs it)`);
    return;
  }
  try {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'duet-browser-drain-'));
    token = crypto.randomBytes(32).toString('hex');
    tokenFile = path.join(tmp, 'admin-token');
    fs.writeFileSync(tokenFile, token, { mode: 0o600 });
    redis = await h.startRedis();
    // Node 0 now; node 1's ports are chosen now and it starts later, once
    // both people are on node 0, so the drain has somewhere to move them.
    nodes.push(await startNode(0, { adminPort: await freeTcpPort() }));
    nodes.push({ server: null, adminPort: await freeTcpPort(), tlsPort: await freeTcpPort() });
    haproxy = await startHaproxy(nodes);
    await until(async () => {
      const s = await haproxy.states();
      return /^UP/.test(s.n0) && /^DOWN/.test(s.n1);
    }, async () => `haproxy never saw node 0 up and node 1 down: ${JSON.stringify(await haproxy.states())}`);
    browser = await h.launchBrowser();
  } catch (e) {
    setupError = e;
  }
});

after(async () => {
  for (const p of people) await p.close().catch(() => {});
  if (browser) await browser.close();
  if (haproxy) await haproxy.stop();
  for (const n of nodes) if (n.server) await n.server.stop();
  if (redis) await redis.stop();
});

async function person(name) {
  const p = await h.person(browser, name);
  people.push(p);
  return p;
}

// Samples, every 250 ms in the page, how many video frames it has decoded and
// audio samples it has received from its call, with the page's clock.
async function startSampling(page) {
  await page.evaluate(() => {
    const peer = window.__peers[window.__peers.length - 1];
    window.__media = [];
    setInterval(async () => {
      let video = 0;
      let audio = 0;
      (await peer.pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') video = s.framesDecoded;
        if (s.type === 'inbound-rtp' && s.kind === 'audio') audio = s.totalSamplesReceived;
      });
      window.__media.push({ t: Date.now(), video, audio });
    }, 250);
  });
}

// From the samples between from and to (ms since the epoch): how far the
// counters went, and the longest time without a new video frame.
async function mediaBetween(page, from, to) {
  const samples = (await page.evaluate(() => window.__media)).filter((s) => s.t >= from && s.t <= to);
  if (samples.length < 2) return { samples: samples.length, video: 0, audio: 0, stallMs: to - from };
  let stallMs = 0;
  let last = samples[0];
  for (const s of samples) {
    if (s.video > last.video) last = s;
    else stallMs = Math.max(stallMs, s.t - last.t);
  }
  const first = samples[0];
  const end = samples[samples.length - 1];
  return { samples: samples.length, video: end.video - first.video, audio: end.audio - first.audio, stallMs };
}

// The messages the page's newest signaling socket got.
async function receivedOnNewest(page) {
  return page.evaluate(() => window.__sockets[window.__sockets.length - 1].received);
}

// The last lines of each process's log and what each page's signaling said
// and heard, for a failure's post-mortem.
async function postMortem() {
  const tail = (text, n = 40) => text.split('\n').slice(-n).join('\n');
  const parts = [];
  for (const p of people) {
    const seen = await p.page.evaluate(() => ({
      signals: window.__signals.map((x) => {
        const key = Object.keys(x.msg)[0];
        const detail = key === 'sdp' ? x.msg.sdp.type : key === 'error' ? x.msg.error.code : key === 'resumed' ? x.msg.resumed : key === 'start' ? x.msg.start : '';
        return `${x.dir === 'in' ? '<' : '>'}${key}${detail ? `:${detail}` : ''}`;
      }).filter((x) => !/ice$|ping|pong/.test(x)).join(' '),
      sockets: window.__sockets.map((x) => `${x.opened ? 'opened' : 'never opened'}/${x.ws.readyState}`).join(' '),
      statuses: window.__statusLog.join(' → '),
      pc: (() => { const q = window.__peers[window.__peers.length - 1]; return q ? `${q.pc.signalingState}/${q.pc.connectionState}/${q.pc.iceConnectionState}` : 'none'; })(),
    })).catch((e) => ({ error: e.message }));
    parts.push(`---- page ${p.name}: ${JSON.stringify(seen)}`);
  }
  nodes.forEach((n, i) => { if (n.server) parts.push(`---- duetd node ${i} (pid ${n.server.proc.pid}, exit ${n.server.proc.exitCode})\n${tail(n.server.log())}`); });
  if (haproxy) parts.push(`---- haproxy (pid ${haproxy.proc.pid})\n${tail(haproxy.log())}`);
  return parts.join('\n');
}

test('a drained node hands its call over to the other node behind HAProxy, the media never stops, and it exits 0', { timeout: h.TEST_MS * 2, skip: HAPROXY_MISSING }, async () => {
  if (setupError) throw setupError;
  try {
    await drainScenario();
  } catch (e) {
    if (e.told) throw e;
    // A new error: node's reporter prints an AssertionError's stack, made
    // before a message appended to it.
    throw new Error(`${e.message}\n${await postMortem()}`, { cause: e });
  }
});

async function drainScenario() {
  const [alice, bob] = ['drain-alice', 'drain-bob'];
  const a = await person('alice-drain');
  const b = await person('bob-drain');
  // Both open the page through HAProxy's front port; only node 0 is up.
  await h.callByInvite(a, b, haproxy, alice, bob);
  for (const p of [a, b]) {
    await h.remoteVideoPlays(p.page, p.name);
    const i = await h.info(p.page);
    assert.strictEqual(i.pc, 'connected', `${p.name}'s RTCPeerConnection is connected`);
    assert.ok(i.hasToken, `${p.name} got a resume token`);
    assert.strictEqual(i.opens, 1, `${p.name} opened one signaling socket`);
  }
  assert.deepStrictEqual(await idsOn(0), [alice, bob].sort(), 'both signal through node 0');

  // Node 1 starts with the same certificate; HAProxy marks it up after two checks.
  const dir0 = nodes[0].server.dir;
  nodes[1] = await startNode(1, {
    tlsPort: nodes[1].tlsPort, adminPort: nodes[1].adminPort,
    cert: { cert: path.join(dir0, 'dev-cert.pem'), key: path.join(dir0, 'dev-key.pem') },
  });
  await until(async () => /^UP/.test((await haproxy.states()).n1),
    async () => `haproxy never marked node 1 up: ${JSON.stringify(await haproxy.states())}`);
  assert.deepStrictEqual(await idsOn(1), [], 'nobody is on node 1 yet');

  for (const p of [a, b]) await startSampling(p.page);
  await h.sleep(2000); // a stretch of media before the drain, to compare with
  const node0 = nodes[0].server.proc;
  const exited = new Promise((resolve) => node0.once('exit', (code, signal) => resolve({ code, signal })));
  const drainedAt = Date.now();
  process.kill(node0.pid, 'SIGUSR1');

  // Node 0 says it is draining, so HAProxy takes it out.
  let health = null;
  await until(async () => {
    health = await admin(nodes[0].adminPort, 'GET', '/healthz', { auth: false }).catch((e) => ({ status: 0, body: e.message }));
    return health.status !== 200;
  }, () => `node 0's /healthz still answers ${health && health.status} ${JSON.stringify(health && health.body)} after SIGUSR1`);
  assert.strictEqual(health.status, 503, `node 0's /healthz: ${JSON.stringify(health.body)}`);
  assert.strictEqual(health.body.status, 'draining');

  // Both pages move their signaling to node 1 (through HAProxy) and resume.
  for (const p of [a, b]) {
    await h.waitSocketOpened(p.page, 1).catch(async () => {
      throw new Error(`${p.name} never opened a new signaling socket after the drain (${JSON.stringify(await h.info(p.page))})`);
    });
    await h.waitStatus(p.page, 'connected');
    await p.page.waitForFunction(() => window.__sockets[window.__sockets.length - 1].received.some((m) => 'resumed' in m),
      null, { timeout: h.WAIT_MS }).catch(async () => {
      throw new Error(`${p.name}'s new socket never heard "resumed": ${JSON.stringify(await receivedOnNewest(p.page))}`);
    });
  }
  let timer;
  const exit = await Promise.race([exited, new Promise((r) => { timer = setTimeout(() => r(null), h.WAIT_MS * 0.75); })]);
  clearTimeout(timer);
  assert.ok(exit, `node 0 was still running ${h.WAIT_MS * 0.75} ms after the drain although both had moved (its drain timeout is ${DRAIN_TIMEOUT_S} s)`);
  const exitedAfterMs = Date.now() - drainedAt;
  assert.deepStrictEqual(exit, { code: 0, signal: null }, 'node 0 exits 0 by itself once both have moved');
  assert.ok(exitedAfterMs < DRAIN_TIMEOUT_S * 1000, `node 0 left after ${exitedAfterMs} ms, not at its drain timeout`);
  assert.deepStrictEqual(await idsOn(1), [alice, bob].sort(), 'both signal through node 1 now');
  assert.match(haproxy.log(), /n0 is DOWN/, 'haproxy took node 0 out');

  // The call is the same RTCPeerConnection, never ended, and its media kept
  // flowing all along.
  await h.sleep(2000); // a stretch of media after the move
  const doneAt = Date.now();
  for (const p of [a, b]) {
    await h.remoteVideoPlays(p.page, p.name);
    const i = await h.info(p.page);
    assert.strictEqual(i.pc, 'connected', `${p.name}'s call is still up`);
    assert.strictEqual(await p.page.evaluate(() => window.__peers.length), 1, `${p.name} kept its one RTCPeerConnection`);
    const log = await p.page.evaluate(() => window.__statusLog);
    const ended = log.slice(log.indexOf('connected')).filter((s) => ['peerLeft', 'ended', 'failed', 'idle', 'waiting'].includes(s));
    assert.deepStrictEqual(ended, [], `${p.name}'s status never said the call ended (${log.join(' → ')})`);
    const told = (await h.received(p.page)).filter((m) => 'start' in m || 'close' in m);
    assert.deepStrictEqual(told.map((m) => Object.keys(m)[0]), ['start'], `${p.name} heard of no new call and no close`);
    // server-draining comes with the close that moves a page; partner-away
    // answers what a page sent while its partner was between nodes.
    const errors = (await h.received(p.page)).filter((m) => 'error' in m && !['server-draining', 'partner-away'].includes(m.error.code));
    assert.deepStrictEqual(errors, [], `${p.name} got no other error`);
    const during = await mediaBetween(p.page, drainedAt, doneAt);
    const beforeDrain = await mediaBetween(p.page, drainedAt - 2000, drainedAt);
    const summary = `${p.name}: before the drain ${JSON.stringify(beforeDrain)}; from the drain to after the move ${JSON.stringify(during)}`;
    console.log(`# ${summary}`);
    assert.ok(during.video > 0 && during.audio > 0, `${p.name} decoded media all through the drain: ${summary}`);
    // The media is peer to peer: a move of signaling does not stop it. The
    // bound is loose for a loaded machine, far below a call that stopped.
    assert.ok(during.stallMs < 10000, `${p.name}'s video stalled for ${during.stallMs} ms during the drain: ${summary}`);
  }

  // The resume's ICE restart (the offerer's new offer and its answer) goes
  // through node 1 and finishes: each connection is back in "stable". Checked
  // here and told at the end, so that a stuck negotiation does not hide how
  // the rest went.
  const renegotiation = await Promise.all([a, b].map((p) => h.waitRenegotiated(p.page, p.name)))
    .then(() => null, async (e) => Object.assign(new Error(`${e.message}\n${await postMortem()}`), { told: true }));

  // Signaling on node 1 still works: alice's hang-up reaches bob as the
  // server's {"close":1} on his socket to node 1.
  await a.page.click('#hangup-btn');
  await h.waitStatus(b.page, 'peerLeft');
  await b.page.waitForFunction(() => window.__sockets[window.__sockets.length - 1].received.some((m) => 'close' in m),
    null, { timeout: h.WAIT_MS }).catch(async () => {
    throw new Error(`bob never heard {"close":1} from node 1: ${JSON.stringify(await receivedOnNewest(b.page))}`);
  });
  await until(async () => JSON.stringify(await idsOn(1)) === JSON.stringify([bob]),
    async () => `node 1 should hold only bob after alice hung up: ${JSON.stringify(await idsOn(1))}`);
  const { csp, errors } = await h.pageProblems(people);
  assert.deepStrictEqual(csp, []);
  assert.deepStrictEqual(errors.filter((x) => /-drain:/.test(x)), [], 'no console errors');
  assert.strictEqual(nodes[1].server.proc.exitCode, null, 'node 1 is still running');
  if (renegotiation) throw renegotiation;
}
