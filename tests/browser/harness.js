// Helpers for the browser tests: a real duetd on a free port, Debian's
// Chromium through playwright-core, and "people" (one browser context each).
'use strict';

const { spawn, execFileSync } = require('node:child_process');
const dgram = require('node:dgram');
const fs = require('node:fs');
const https = require('node:https');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const REPO = path.resolve(__dirname, '..', '..');
const DUETD = process.env.DUETD || '/work/main/build/core/duetd';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.DUET_ARTIFACTS || path.join(os.tmpdir(), 'duet-browser-artifacts');

const CHROMIUM_FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  // duetd's self-signed development certificate: without this, Chromium
  // refuses to register a service worker from it, as it would with a real one.
  '--ignore-certificate-errors',
];

// Stops a process we started, by its PID: signal, then SIGKILL after 5 s.
async function stopProcess(proc, signal = 'SIGTERM') {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = new Promise((r) => proc.once('exit', r));
  proc.kill(signal);
  await Promise.race([done, sleep(5000)]);
  if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGKILL'); await done; }
}

// Starts duetd on 127.0.0.1 with a fresh state folder; resolves once it logs
// the address it listens on. port 0 lets the kernel pick.
function startDuetd({ args = [], port = 0, stateDir } = {}) {
  const dir = stateDir || fs.mkdtempSync(path.join(os.tmpdir(), 'duet-browser-'));
  const proc = spawn(DUETD, ['--address', '127.0.0.1', '--port', String(port), '--state-dir', dir,
    '--web-root', path.join(REPO, 'web'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`duetd did not start in 30 s:\n${log}`)); }, 30000);
    proc.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot run duetd at ${DUETD}: ${e.message}`)); });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`duetd exited with ${code} before listening:\n${log}`)); });
    proc.stderr.on('data', (chunk) => {
      log += chunk;
      const m = /listening on (https?:\/\/[^\s]+:(\d+)\/)/.exec(log);
      if (m && !server.url) {
        clearTimeout(timer);
        server.url = m[1];
        server.port = Number(m[2]);
        proc.removeAllListeners('exit');
        // Kept for a failure's post-mortem (tests/browser/run prints the tails).
        proc.on('exit', () => fs.writeFileSync(artifact(`duetd-${server.port}-${proc.pid}.log`), log));
        resolve(server);
      }
    });
    const server = {
      proc, dir, url: '', port: 0,
      log: () => log,
      stop: (signal = 'SIGTERM') => stopProcess(proc, signal),
    };
  });
}

// A redis-server of our own on a unix socket in a fresh folder (the cluster,
// issue 12); resolves once it answers PING. Stopped by its PID only.
const REDIS_SERVER = process.env.REDIS_SERVER || '/usr/bin/redis-server';
function startRedis() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'duet-browser-redis-'));
  const sock = path.join(dir, 'redis.sock');
  const proc = spawn(REDIS_SERVER, ['--port', '0', '--unixsocket', sock, '--unixsocketperm', '700', '--save', '',
    '--appendonly', 'no', '--daemonize', 'no', '--dir', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (c) => { log += c; });
  const redis = {
    proc, dir, url: `unix://${sock}`,
    stop: () => stopProcess(proc),
  };
  const ping = () => new Promise((resolve) => {
    const c = net.connect(sock);
    c.setTimeout(1000, () => { c.destroy(); resolve(false); });
    c.on('error', () => resolve(false));
    c.on('connect', () => c.write('*1\r\n$4\r\nPING\r\n'));
    c.on('data', (d) => { c.destroy(); resolve(d.toString().startsWith('+PONG')); });
  });
  return (async () => {
    const deadline = Date.now() + 30000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}:\n${log}`);
      if (await ping()) return redis;
      if (Date.now() > deadline) { await redis.stop(); throw new Error(`redis-server did not answer PING in 30 s:\n${log}`); }
      await sleep(50);
    }
  })();
}

// The tests' own Web Push service (tests/push-service/push_service.js) on
// 127.0.0.1 with a throwaway certificate: duetd pushes there, the service
// checks and decrypts each push, and a test hands the plaintext to the
// service worker (ServiceWorker.deliverPushMessage). Stopped by its PID.
const PUSH_SERVICE = path.join(REPO, 'tests', 'push-service', 'push_service.js');
async function startPushService() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'duet-browser-push-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert],
  { stdio: 'ignore' });
  const proc = spawn(process.execPath, [PUSH_SERVICE, '--cert', cert, '--key', key],
    { cwd: path.dirname(PUSH_SERVICE), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (c) => { err += c; });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the push service did not listen in 30 s:\n${err}`)), 30000);
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`the push service exited with ${code}:\n${err}`)); });
    proc.stdout.on('data', (c) => {
      out += c;
      const m = /"event":"listening","port":(\d+)/.exec(out);
      if (m) { clearTimeout(timer); proc.removeAllListeners('exit'); resolve(Number(m[1])); }
    });
  });
  const ca = fs.readFileSync(cert);
  const request = (method, urlPath, body) => new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, method, path: urlPath, ca, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`${method} ${urlPath}: ${res.statusCode} ${text}`))));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
  const service = {
    proc, cert, port,
    // A subscription as a browser's PushManager would make it: {id, endpoint, keys}.
    subscribe: (behaviour = 'ok') => request('POST', '/subscribe', { behaviour }),
    // The pushes that reached subscription id so far, checked and decrypted.
    async pushes(id) {
      return (await request('GET', '/log')).filter((e) => e.event === 'push' && e.id === id);
    },
    // Waits for the n-th push to id; returns it (its errors must be none).
    async waitPush(id, n = 1) {
      const deadline = Date.now() + WAIT_MS;
      for (;;) {
        const got = await service.pushes(id);
        if (got.length >= n) return got[n - 1];
        if (Date.now() > deadline) throw new Error(`push ${n} to ${id} never came; got ${JSON.stringify(got)}`);
        await sleep(50);
      }
    },
    stop: () => stopProcess(proc),
  };
  return service;
}

// A coturn of our own (Debian's turnserver) on 127.0.0.1 with the REST-API
// secret duetd gets through --turn-secret: its own config file in a fresh
// folder, in the foreground, stopped by its PID only. Loopback peers are
// allowed because here both browsers' relay addresses are 127.0.0.1; a real
// deployment must not allow them. Resolves once it answers a STUN Binding
// request.
const TURNSERVER = process.env.TURNSERVER || '/usr/bin/turnserver';
async function startCoturn({ secret, extraConfig = [] }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'duet-browser-coturn-'));
  const port = await freeUdpPort();
  const conf = path.join(dir, 'turnserver.conf');
  fs.writeFileSync(conf, [
    'listening-ip=127.0.0.1', 'relay-ip=127.0.0.1', `listening-port=${port}`,
    'min-port=49152', 'max-port=65535',
    'use-auth-secret', `static-auth-secret=${secret}`, 'realm=duet.test',
    // no-tcp: the calls relay over UDP only, and the port was found free for
    // UDP; a TCP listener on it could collide with another connection.
    'allow-loopback-peers', 'no-cli', 'no-tcp', 'no-tls', 'no-dtls', 'no-tcp-relay', 'no-software-attribute',
    'log-file=stdout', 'simple-log', 'verbose', `pidfile=${path.join(dir, 'turnserver.pid')}`,
    `userdb=${path.join(dir, 'turndb')}`, ...extraConfig, '',
  ].join('\n'));
  const proc = spawn(TURNSERVER, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.on('error', () => {}); // a missing turnserver: said below
  if (proc.pid === undefined) throw new Error(`cannot run ${TURNSERVER}: apt-get install coturn (tools/install-deps --tests installs it)`);
  proc.stdout.on('data', (c) => { log += c; });
  proc.stderr.on('data', (c) => { log += c; });
  const turn = {
    proc, dir, port, url: `turn:127.0.0.1:${port}?transport=udp`,
    log: () => log,
    stop: () => stopProcess(proc),
  };
  const deadline = Date.now() + 30000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`turnserver exited with ${proc.exitCode}:\n${log}`);
    if (await stunAnswers(port)) return turn;
    if (Date.now() > deadline) { await turn.stop(); throw new Error(`turnserver did not answer STUN in 30 s:\n${log}`); }
    await sleep(50);
  }
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.on('error', reject);
    s.bind(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// One STUN Binding request (RFC 5389: type 1, no attributes, the magic
// cookie, a random transaction id); true when anything answers in 500 ms.
function stunAnswers(port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const req = Buffer.alloc(20);
    req.writeUInt16BE(0x0001, 0);
    req.writeUInt32BE(0x2112a442, 4);
    require('node:crypto').randomFillSync(req, 8, 12);
    const finish = (ok) => { clearTimeout(timer); s.close(); resolve(ok); };
    const timer = setTimeout(() => finish(false), 500);
    s.on('message', () => finish(true));
    s.on('error', () => finish(false));
    s.send(req, port, '127.0.0.1');
  });
}

// The candidate pair ICE selected, from getStats: the types of its two ends
// ("host", "srflx", "prflx", "relay"), or null before one is selected.
async function selectedPair(page) {
  return page.evaluate(async () => {
    const peer = window.__peers[window.__peers.length - 1];
    if (!peer) return null;
    const stats = await peer.pc.getStats();
    let pairId = '';
    stats.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId; });
    const pair = pairId && stats.get(pairId);
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return {
      local: local.candidateType, remote: remote.candidateType,
      localAddress: `${local.address}:${local.port}`, remoteAddress: `${remote.address}:${remote.port}`,
      relayProtocol: local.relayProtocol || '',
    };
  });
}

async function launchBrowser(extraFlags = []) {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_FLAGS, ...extraFlags] });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Time limits. The tests wait for events, never for a fixed time; these only
// bound how long an event may take, so a pass takes no longer for them.
// Each is many times what it takes on an idle machine: with both cores
// busy beside the suite (two busy loops), a notification after a push once
// took over 30 s to show.
const WAIT_MS = 60000; // one thing the page should do: a status, a frame, a notice
const TEST_MS = 240000; // one test, from opening its pages to closing them

// Everything a page complains about, for the "no console errors" checks.
const problems = [];

// A person: a browser context (their own storage and locale) with one page.
async function person(browser, name, options = {}) {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    locale: options.locale || 'en-US',
    viewport: options.viewport || { width: 1280, height: 800 },
  });
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
    window.__statusLog = [];
    const watch = () => {
      const el = document.getElementById('status');
      if (!el) return;
      const note = () => {
        const v = el.dataset.status;
        if (v && window.__statusLog[window.__statusLog.length - 1] !== v) window.__statusLog.push(v);
      };
      new MutationObserver(note).observe(el, { attributes: true, attributeFilter: ['data-status'] });
      note();
    };
    document.addEventListener('DOMContentLoaded', watch);
    // The page ships no test hooks. What it does with its WebSocket and its
    // RTCPeerConnection is seen by wrapping the two constructors before any
    // of its scripts run, the way a browser extension could.
    window.__sockets = [];
    window.__peers = [];
    window.__signals = []; // every message in and out, in order: { dir, msg }
    const NativeWebSocket = window.WebSocket;
    window.WebSocket = class extends NativeWebSocket {
      constructor(...args) {
        super(...args);
        const seen = { ws: this, opened: false, received: [] };
        window.__sockets.push(seen);
        this.addEventListener('open', () => { seen.opened = true; });
        this.addEventListener('message', (ev) => {
          try {
            const msg = JSON.parse(ev.data);
            seen.received.push(msg);
            window.__signals.push({ dir: 'in', msg });
          } catch (e) { /* not JSON: not ours to judge */ }
        });
      }

      send(data) {
        try { window.__signals.push({ dir: 'out', msg: JSON.parse(data) }); } catch (e) { /* as above */ }
        return super.send(data);
      }
    };
    const NativePeerConnection = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends NativePeerConnection {
      constructor(config, ...rest) {
        super(config, ...rest);
        window.__peers.push({ pc: this, config: JSON.parse(JSON.stringify(config || {})) });
      }
    };
  });
  // A page load is one thing the page should do (WAIT_MS), not Playwright's
  // 30 s: two whole test runs at once here (load average 43) took longer.
  context.setDefaultNavigationTimeout(WAIT_MS);
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`${name}: console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`${name}: uncaught: ${err.message}`));
  page.on('close', () => {});
  return { name, context, page, close: () => context.close() };
}

async function cspViolations(page) {
  if (page.isClosed()) return [];
  return page.evaluate(() => window.__csp);
}

function joinUrl(server, me, peer) {
  return `${server.url}?${new URLSearchParams({ me, peer })}`;
}

async function join(p, url) {
  await p.page.goto(url);
  await p.page.click('#call-btn');
}

async function status(page) {
  return page.evaluate(() => document.getElementById('status').dataset.status);
}

async function waitStatus(page, want, timeout = WAIT_MS) {
  try {
    await page.waitForFunction((w) => document.getElementById('status').dataset.status === w, want, { timeout });
  } catch (e) {
    const now = await page.evaluate(() => ({ s: document.getElementById('status').textContent, log: window.__statusLog }));
    throw new Error(`status never became "${want}" within ${timeout} ms; it says "${now.s}" (history: ${now.log.join(' → ')})`);
  }
}

// The remote video shows frames and its clock advances.
async function remoteVideoPlays(page, name = '') {
  await page.waitForFunction(() => {
    const v = document.getElementById('remote');
    return v.srcObject && v.videoWidth > 0 && v.readyState >= 2;
  }, null, { timeout: WAIT_MS }).catch(async () => {
    throw new Error(`${name}: remote video never showed a frame`);
  });
  const t0 = await page.evaluate(() => document.getElementById('remote').currentTime);
  await page.waitForFunction((t) => document.getElementById('remote').currentTime > t + 0.3, t0, { timeout: WAIT_MS })
    .catch(() => { throw new Error(`${name}: remote video is frozen at currentTime ${t0}`); });
  const t1 = await page.evaluate(() => document.getElementById('remote').currentTime);
  return { t0, t1 };
}

// The page's signaling socket and peer connection as the wrapped
// constructors saw them: the newest of each.
async function info(page) {
  return page.evaluate(() => {
    const ws = window.__sockets[window.__sockets.length - 1];
    const peer = window.__peers[window.__peers.length - 1];
    return {
      wsOpen: Boolean(ws && ws.ws.readyState === WebSocket.OPEN),
      opens: window.__sockets.filter((x) => x.opened).length,
      hasToken: window.__sockets.some((x) => x.received.some((m) => ('start' in m || 'resumed' in m) && typeof m.resume === 'string' && m.resume !== '')),
      pc: peer ? peer.pc.connectionState : 'none',
      ice: peer ? peer.pc.iceConnectionState : 'none',
      iceServers: peer ? peer.config.iceServers : null,
    };
  });
}

// Closes the page's signaling socket from its side, as a network drop would.
async function dropSignaling(page) {
  await page.evaluate(() => window.__sockets[window.__sockets.length - 1].ws.close());
}

// Waits until more than `opens` signaling sockets have opened and the newest is open.
async function waitSocketOpened(page, opens, timeout = WAIT_MS) {
  await page.waitForFunction((o) => {
    const open = window.__sockets.filter((x) => x.opened);
    const last = window.__sockets[window.__sockets.length - 1];
    return open.length > o && last.ws.readyState === WebSocket.OPEN;
  }, opens, { timeout });
}

// Waits until the offer/answer that follows the server's newest "start" or
// "resumed" (an ICE restart, when the call was kept) is done: an answer went
// out or came in after it, and the connection is stable and connected.
async function waitRenegotiated(page, name = '') {
  await page.waitForFunction(() => {
    const log = window.__signals;
    let i = log.length - 1;
    while (i >= 0 && !(log[i].dir === 'in' && ('start' in log[i].msg || 'resumed' in log[i].msg))) i--;
    if (i < 0) return false;
    const answered = log.slice(i + 1).some((x) => x.msg.sdp && x.msg.sdp.type === 'answer');
    const peer = window.__peers[window.__peers.length - 1];
    return answered && peer && peer.pc.signalingState === 'stable' && peer.pc.connectionState === 'connected';
  }, null, { timeout: WAIT_MS }).catch(() => { throw new Error(`${name}: no renegotiation finished after the server's start/resumed`); });
}

// The messages a page's signaling got from the server, all sockets together.
async function received(page) {
  return page.evaluate(() => window.__signals.filter((x) => x.dir === 'in').map((x) => x.msg));
}

// Decodes a PNG QR code with zbarimg; null when zbarimg is not installed.
function zbarDecode(pngPath) {
  try {
    execFileSync('zbarimg', ['--version'], { stdio: 'ignore' });
  } catch (e) {
    return null;
  }
  try {
    return execFileSync('zbarimg', ['-q', '--raw', pngPath], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().replace(/\n$/, '');
  } catch (e) {
    return '';
  }
}

function artifact(name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

// Two people in a call the way users get there: `a` fills in both names and
// presses Call, `b` opens the invite link and presses Call.
async function callByInvite(a, b, server, me, peer) {
  await a.page.goto(joinUrl(server, me, peer));
  const invite = await a.page.inputValue('#invite-link');
  await a.page.click('#call-btn');
  await waitStatus(a.page, 'waiting');
  await b.page.goto(invite);
  await b.page.click('#call-btn');
  await waitStatus(a.page, 'connected');
  await waitStatus(b.page, 'connected');
  return invite;
}

// The mean colour saturation (0-255) of what a <video> shows: Chromium's
// first fake camera paints in colour, its second in grey, which tells
// from the far side which camera is being sent.
async function videoSaturation(page, id = 'remote') {
  return page.evaluate((vid) => {
    const v = document.getElementById(vid);
    const c = document.createElement('canvas');
    c.width = 64;
    c.height = 48;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0, 64, 48);
    const px = g.getImageData(0, 0, 64, 48).data;
    let sat = 0;
    for (let i = 0; i < px.length; i += 4) sat += Math.max(px[i], px[i + 1], px[i + 2]) - Math.min(px[i], px[i + 1], px[i + 2]);
    return sat / (px.length / 4);
  }, id);
}

// The track a page's call sends for `kind`, as its RTCPeerConnection has it.
async function sentTrack(page, kind) {
  return page.evaluate((k) => {
    const peer = window.__peers[window.__peers.length - 1];
    const s = peer.pc.getSenders().find((x) => x.track && x.track.kind === k);
    return s ? { label: s.track.label, state: s.track.readyState, id: s.track.getSettings().deviceId } : null;
  }, kind);
}

// How many SDP offers a page has sent so far.
async function offersSent(page) {
  return page.evaluate(() => window.__signals.filter((x) => x.dir === 'out' && x.msg.sdp && x.msg.sdp.type === 'offer').length);
}

// The console errors and CSP violations of these people's pages, for each
// file's closing "no console errors" test.
// Waits until the element at selector is shown and its text matches re.
async function waitText(page, selector, re) {
  await page.waitForFunction(([s, src]) => {
    const el = document.querySelector(s);
    return el && !el.hidden && new RegExp(src).test(el.textContent);
  }, [selector, re.source], { timeout: WAIT_MS }).catch(async () => {
    throw new Error(`${selector} never matched ${re}; it says "${await page.textContent(selector).catch(() => '?')}"`);
  });
}

// A series' value on duetd's /metrics (the first sample of that name).
async function metric(server, name) {
  const text = await new Promise((resolve, reject) => {
    https.get(`${server.url}metrics`, { rejectUnauthorized: false }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  const found = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text);
  if (!found) throw new Error(`no ${name} on /metrics`);
  return Number(found[1]);
}

async function pageProblems(people) {
  const csp = [];
  for (const p of people) csp.push(...(await cspViolations(p.page).catch(() => [])));
  return { csp, errors: problems.filter((m) => !/Failed to load resource: net::ERR_/.test(m)) };
}

module.exports = {
  callByInvite, videoSaturation, sentTrack, offersSent, pageProblems,
  REPO, DUETD, ARTIFACTS, REDIS_SERVER, TURNSERVER, startDuetd, startRedis, startCoturn, startPushService, selectedPair, launchBrowser, person, join, joinUrl, status, waitStatus,
  remoteVideoPlays, info, dropSignaling, waitSocketOpened, waitRenegotiated, received, sleep,
  WAIT_MS, TEST_MS, problems, cspViolations, zbarDecode, artifact, waitText, metric,
};
