// The safety code (web/verify.js): two people in a call read the same 8
// digits, and a man in the middle cannot make the two codes match. The
// middle here is real: a third Chromium page ("mallory") that holds one
// RTCPeerConnection towards each person and passes media and data channel
// messages across, with the signaling rerouted to it, as a dishonest
// signaling server could.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert');
const nodeCrypto = require('node:crypto');
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

async function closeAll(...ps) {
  for (const p of ps) await p.close().catch(() => {});
}

const CODE = /^\d{4} \d{4}$/;

// ---- mallory ----

// Runs in mallory's page. Two legs, one per person: the leg towards the
// person whose server said "offer" answers that offer; the leg towards the
// other makes an offer of its own, carrying the first person's tracks. The
// first person's answer is held back until the second person's tracks are
// there to send, so both directions carry media without renegotiating.
// Every data channel message crosses verbatim, except that with `ownVerify`
// mallory keeps the {verify} messages and runs web/verify.js on each leg
// itself, with its own nonces and its own fingerprint.
function installMallory({ ownVerify }) {
  const verifyModule = ownVerify ? import('/verify.js') : null;
  const out = (side, msg) => window.__malloryOut(side, msg);
  const other = (side) => (side === 'alice' ? 'bob' : 'alice');
  const deferred = () => {
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    return { promise, resolve };
  };
  // One certificate for both legs: both people see the same face, the
  // strongest a relay in the middle can do.
  const certificate = RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' });
  const leg = (side) => ({
    side,
    role: deferred(), // what duetd told this person to be: 'offer' or 'answer'
    pc: null,
    remoteSet: deferred(),
    negotiated: deferred(), // offer and answer both applied
    tracks: deferred(), // what the person mallory offered to sends, once they answered
    channel: null,
    unsent: [], // messages for this person before their channel opened
    verifier: null,
    code: deferred(), // mallory's own code on this leg (ownVerify)
    busy: Promise.resolve(), // this person's messages, one at a time
    log: [],
  });
  const legs = { alice: leg('alice'), bob: leg('bob') };
  const errors = [];

  async function newPc(l) {
    const pc = new RTCPeerConnection({ iceServers: [], certificates: [await certificate] });
    l.pc = pc;
    pc.onicecandidate = (ev) => { if (ev.candidate) out(l.side, { ice: ev.candidate.toJSON() }); };
    pc.ondatachannel = (ev) => useChannel(l, ev.channel);
    return pc;
  }

  function deliver(l, data) {
    if (l.channel && l.channel.readyState === 'open') l.channel.send(data);
    else l.unsent.push(data);
  }

  // Mallory's own exchange on a leg: honest commit and reveal, with its
  // own nonce and the fingerprint that leg sees.
  async function ownVerifier(l) {
    const { createVerifier } = await verifyModule;
    // Chromium can open the channel before setRemoteDescription(answer)
    // has resolved: the descriptions are not all there yet.
    await l.negotiated.promise;
    if (!l.verifier) {
      l.verifier = createVerifier({
        crypto: window.crypto,
        send: (msg) => l.channel.send(JSON.stringify(msg)),
        on: { result: (r) => l.code.resolve(r) },
      });
      l.verifier.start(l.pc.localDescription, l.pc.remoteDescription);
    }
    return l.verifier;
  }

  function useChannel(l, channel) {
    l.channel = channel;
    const opened = () => {
      for (const data of l.unsent.splice(0)) channel.send(data);
      if (verifyModule) ownVerifier(l).catch((e) => errors.push(`${l.side} verify: ${e}`));
    };
    channel.onopen = opened;
    // A channel the person opened may be open already when it is announced.
    if (channel.readyState === 'open') opened();
    channel.onmessage = async (ev) => {
      l.log.push(ev.data);
      let msg = null;
      try { msg = JSON.parse(ev.data); } catch (e) { /* passed on as it came */ }
      if (verifyModule && msg && msg.verify) {
        (await ownVerifier(l)).receive(msg.verify);
        return;
      }
      deliver(legs[other(l.side)], ev.data);
    };
  }

  function remoteTracks(pc) {
    const tracks = pc.getReceivers().map((r) => r.track).filter((t) => t && t.readyState === 'live');
    return { tracks, stream: new MediaStream(tracks) };
  }

  async function onSdp(l, desc) {
    const far = legs[other(l.side)];
    if (desc.type === 'offer') {
      if (l.pc) {
        // A later offer (an ICE restart, from either person): answered on the same connection.
        await l.pc.setRemoteDescription(desc);
        await l.pc.setLocalDescription(await l.pc.createAnswer());
        out(l.side, { sdp: l.pc.localDescription.toJSON() });
        return;
      }
      const pc = await newPc(l);
      await pc.setRemoteDescription(desc);
      l.remoteSet.resolve();
      const mine = remoteTracks(pc);
      // Towards the other person, who waits for an offer.
      if ((await far.role.promise) !== 'answer') throw new Error(`${far.side} was told to offer too`);
      const farPc = await newPc(far);
      for (const t of mine.tracks) farPc.addTrack(t, mine.stream);
      useChannel(far, farPc.createDataChannel('duet'));
      await farPc.setLocalDescription(await farPc.createOffer());
      out(far.side, { sdp: farPc.localDescription.toJSON() });
      // Answer the first person once the second's tracks can go back.
      const theirs = await far.tracks.promise;
      for (const t of theirs.tracks) pc.addTrack(t, theirs.stream);
      await pc.setLocalDescription(await pc.createAnswer());
      l.negotiated.resolve();
      out(l.side, { sdp: pc.localDescription.toJSON() });
    } else if (desc.type === 'answer' && l.pc) {
      await l.pc.setRemoteDescription(desc);
      l.remoteSet.resolve();
      l.negotiated.resolve();
      l.tracks.resolve(remoteTracks(l.pc));
    }
  }

  window.__mallory = {
    errors,
    // Whatever a person's page sent duetd about the call, or the start duetd sent it.
    fromPage(side, msg) {
      const l = legs[side];
      if ('start' in msg) {
        l.role.resolve(msg.start);
        return;
      }
      if ('ice' in msg) {
        // Candidates wait for the description they belong to, not in line
        // behind the offer's long wait for the other person.
        l.remoteSet.promise.then(() => l.pc.addIceCandidate(msg.ice)).catch((e) => errors.push(`${side} ice: ${e}`));
        return;
      }
      if ('sdp' in msg) {
        l.busy = l.busy.then(() => onSdp(l, msg.sdp)).catch((e) => errors.push(`${side} sdp: ${e}`));
      }
    },
    // What mallory's own exchange on that leg came to: { code } or { problem }.
    async code(side) {
      const r = await legs[side].code.promise;
      return r.code ? { code: r.code } : { problem: r.problem };
    },
    // The data channel messages each person sent mallory, as they came.
    sent: (side) => legs[side].log,
    // For a failure's message: where each leg stands.
    state: () => Object.values(legs).map((l) => ({
      side: l.side,
      pc: l.pc ? `${l.pc.signalingState}/${l.pc.connectionState}` : 'none',
      channel: l.channel ? l.channel.readyState : 'none',
      unsent: l.unsent.length,
      got: l.log,
      verifier: Boolean(l.verifier),
      result: l.verifier ? l.verifier.result : null,
    })),
  };
}

// A third person's page, on duetd's origin (so that it can import
// /verify.js), that sits in the middle of whoever is routed through it.
async function startMallory({ ownVerify = false } = {}) {
  const m = await person(`mallory${n}`);
  const toPerson = {};
  await m.page.exposeFunction('__malloryOut', (side, msg) => toPerson[side](msg));
  await m.page.goto(server.url);
  await m.page.evaluate(installMallory, { ownVerify });
  return {
    ...m,
    toPerson,
    fromPage: (side, msg) => m.page.evaluate(([s, x]) => window.__mallory.fromPage(s, x), [side, msg]),
    errors: () => m.page.evaluate(() => window.__mallory.errors),
    code: (side) => m.page.evaluate((s) => window.__mallory.code(s), side),
    sent: (side) => m.page.evaluate((s) => window.__mallory.sent(s), side),
    state: () => m.page.evaluate(() => JSON.stringify({ legs: window.__mallory.state(), errors: window.__mallory.errors })),
  };
}

// p's signaling socket still reaches duetd (open, start, resume, ping), but
// what p says about the call (sdp, ice) goes to mallory instead, and what
// mallory says comes back as if from duetd. duetd pairs the two people as
// usual and never sees a description.
async function routeThrough(p, side, mallory) {
  await p.page.routeWebSocket(/.*/, (ws) => {
    const upstream = ws.connectToServer();
    mallory.toPerson[side] = (msg) => ws.send(JSON.stringify(msg));
    const parse = (m) => { try { return JSON.parse(String(m)); } catch (e) { return null; } };
    ws.onMessage((m) => {
      const msg = parse(m);
      if (msg && ('sdp' in msg || 'ice' in msg)) mallory.fromPage(side, msg).catch(() => {});
      else upstream.send(m);
    });
    upstream.onMessage((m) => {
      const msg = parse(m);
      if (msg && 'start' in msg) mallory.fromPage(side, { start: msg.start }).catch(() => {});
      ws.send(m);
    });
    ws.onClose(() => upstream.close());
    upstream.onClose(() => ws.close());
  });
}

// alice and bob in a call with mallory in the middle; resolves once both
// pages say connected.
async function callThroughMallory(options) {
  n++;
  const mallory = await startMallory(options);
  const a = await person(`alice${n}`);
  const b = await person(`bob${n}`);
  await routeThrough(a, 'alice', mallory);
  await routeThrough(b, 'bob', mallory);
  for (const p of [a, b]) await recordChannel(p);
  await h.callByInvite(a, b, server, `mitm-alice-${n}`, `mitm-bob-${n}`);
  return { a, b, mallory };
}

// ---- the pages' side ----

// What a person's page puts on its data channel, recorded so that the
// exchange can be checked against the construction from outside web/verify.js.
async function recordChannel(p) {
  await p.context.addInitScript(() => {
    window.__channelSent = [];
    const send = RTCDataChannel.prototype.send;
    RTCDataChannel.prototype.send = function (data) {
      if (typeof data === 'string') window.__channelSent.push(data);
      return send.call(this, data);
    };
  });
}

// Opens the safety code panel and waits for the exchange to come to
// something: { state, code, words }.
async function verifyOutcome(p) {
  await p.page.click('#verify-btn');
  await p.page.waitForSelector('#verify-panel', { state: 'visible', timeout: h.WAIT_MS });
  await p.page.waitForFunction(() => {
    const s = document.getElementById('verify-state').dataset.state;
    return Boolean(s) && s !== 'working';
  }, null, { timeout: h.WAIT_MS }).catch(async () => {
    throw new Error(`${p.name}: the safety code never left "working": "${await p.page.textContent('#verify-state')}"`);
  });
  return p.page.evaluate(() => ({
    state: document.getElementById('verify-state').dataset.state,
    code: document.getElementById('verify-code').textContent.trim(),
    words: document.getElementById('verify-state').textContent.trim(),
  }));
}

async function waitVerifyState(p, want) {
  await p.page.waitForFunction((w) => document.getElementById('verify-state').dataset.state === w, want, { timeout: h.WAIT_MS })
    .catch(async () => {
      throw new Error(`${p.name}: the safety code never became "${want}": ${await p.page.getAttribute('#verify-state', 'data-state')}`);
    });
}

// The call as the page's RTCPeerConnection negotiated it, and the
// {verify} messages the page sent.
async function exchangeOf(p) {
  return p.page.evaluate(() => {
    const pc = window.__peers[window.__peers.length - 1].pc;
    return {
      local: pc.localDescription.toJSON(),
      remote: pc.remoteDescription.toJSON(),
      verify: window.__channelSent.map((d) => JSON.parse(d)).filter((m) => m.verify).map((m) => m.verify),
    };
  });
}

// ---- the construction, written out again with Node's crypto ----

const fromB64url = (s) => Buffer.from(s, 'base64url');
function fingerprintOf(sdp) {
  const m = /^a=fingerprint:sha-256 (\S+)\r?$/im.exec(sdp);
  return Buffer.from(m[1].replace(/:/g, ''), 'hex');
}
// True when the side with these descriptions is the DTLS client.
function isDtlsClient(local, remote) {
  const answer = local.type === 'answer' ? local : remote;
  const answererIsClient = /^a=setup:active\r?$/m.test(answer.sdp);
  return (local.type === 'answer') === answererIsClient;
}
const commitOf = (fp, nonce) => nodeCrypto.createHash('sha256')
  .update(Buffer.concat([Buffer.from('duet-verify-v1 commit'), Buffer.from([0]), fp, nonce])).digest();
function codeOf({ clientFp, serverFp, clientNonce, serverNonce }) {
  const okm = Buffer.from(nodeCrypto.hkdfSync('sha256', Buffer.concat([clientFp, serverFp]),
    Buffer.concat([clientNonce, serverNonce]), 'duet-verify-v1 code', 8));
  const digits = (okm.readBigUInt64BE(0) % 100000000n).toString().padStart(8, '0');
  return `${digits.slice(0, 4)} ${digits.slice(4)}`;
}

// Both people see mallory's certificate, not each other's.
async function assertMalloryInTheMiddle(a, b) {
  const [xa, xb] = await Promise.all([exchangeOf(a), exchangeOf(b)]);
  const [localA, remoteA, localB, remoteB] = [xa.local, xa.remote, xb.local, xb.remote].map((d) => fingerprintOf(d.sdp).toString('hex'));
  assert.notStrictEqual(remoteA, localB, 'alice does not see bob\'s certificate');
  assert.notStrictEqual(remoteB, localA, 'bob does not see alice\'s certificate');
  assert.strictEqual(remoteA, remoteB, 'both see mallory\'s one certificate');
}

test('without a middle both people read the same code, and "They match" marks the call verified', { timeout: h.TEST_MS }, async () => {
  n++;
  const a = await person(`alice${n}`);
  const b = await person(`bob${n}`);
  for (const p of [a, b]) await recordChannel(p);
  await h.callByInvite(a, b, server, `verify-alice-${n}`, `verify-bob-${n}`);
  assert.ok(await a.page.isHidden('#verified-badge'), 'no badge before anyone compared');
  assert.strictEqual(await a.page.getAttribute('#verify-btn', 'aria-label'), 'Verify this call');
  const [ofA, ofB] = await Promise.all([verifyOutcome(a), verifyOutcome(b)]);
  assert.strictEqual(ofA.state, 'ready', `alice: ${ofA.words}`);
  assert.strictEqual(ofB.state, 'ready', `bob: ${ofB.words}`);
  assert.match(ofA.code, CODE);
  assert.strictEqual(ofA.code, ofB.code, 'both read the same code');

  // The code is the construction's, from what went over the wire: each
  // commit binds its sender's own fingerprint, and HKDF of both gives the code.
  const sides = [];
  for (const p of [a, b]) {
    const x = await exchangeOf(p);
    const commit = x.verify.find((v) => 'commit' in v);
    const nonce = x.verify.find((v) => 'nonce' in v);
    assert.ok(commit && nonce, `${p.name} sent a commit and a nonce: ${JSON.stringify(x.verify)}`);
    assert.deepStrictEqual(x.verify.map((v) => v.v), [1, 1], `${p.name}: version 1, one commit and one nonce`);
    const fp = fingerprintOf(x.local.sdp);
    assert.strictEqual(fromB64url(nonce.nonce).length, 32);
    assert.deepStrictEqual(fromB64url(commit.commit), commitOf(fp, fromB64url(nonce.nonce)), `${p.name}'s commit`);
    sides.push({ fp, nonce: fromB64url(nonce.nonce), client: isDtlsClient(x.local, x.remote) });
  }
  assert.notStrictEqual(sides[0].client, sides[1].client, 'one DTLS client, one server');
  const [clientSide, serverSide] = sides[0].client ? sides : [sides[1], sides[0]];
  assert.strictEqual(ofA.code, codeOf({
    clientFp: clientSide.fp, serverFp: serverSide.fp, clientNonce: clientSide.nonce, serverNonce: serverSide.nonce,
  }), 'the code is HKDF-SHA-256 of the fingerprints and nonces, in DTLS role order');

  // The connection panel shows it too.
  await a.page.click('#stats-btn');
  await a.page.waitForSelector('#stats-panel', { state: 'visible', timeout: h.WAIT_MS });
  assert.strictEqual(await a.page.textContent('#stats-panel dd[data-stat="safety"]'), ofA.code);
  assert.ok(await a.page.isVisible('#stats-panel dd[data-stat="safety"]'), 'the safety code line is shown');

  await a.page.click('#verify-btn'); // the connection panel took its place
  await a.page.click('#verify-match');
  await waitVerifyState(a, 'verified');
  await a.page.waitForSelector('#verified-badge', { state: 'visible', timeout: h.WAIT_MS });
  assert.strictEqual(await a.page.textContent('#stats-panel dd[data-stat="safety"]'), `${ofA.code} · Verified`);
  // Only alice said they match.
  assert.strictEqual(await b.page.getAttribute('#verify-state', 'data-state'), 'ready');
  assert.ok(await b.page.isHidden('#verified-badge'));
  await closeAll(a, b);
});

const TRIES = 3;

test('mallory passing every message across verbatim: the commitment check fails on both sides, every time', { timeout: TRIES * h.TEST_MS }, async () => {
  for (let i = 1; i <= TRIES; i++) {
    const { a, b, mallory } = await callThroughMallory();
    await h.remoteVideoPlays(a.page, `alice, try ${i}`);
    await h.remoteVideoPlays(b.page, `bob, try ${i}`);
    await assertMalloryInTheMiddle(a, b);
    const [ofA, ofB] = await Promise.all([verifyOutcome(a), verifyOutcome(b)]);
    // The exchange ran to its end through mallory (it did not time out):
    // each person's commit and nonce went across.
    for (const side of ['alice', 'bob']) {
      const sent = (await mallory.sent(side)).map((d) => JSON.parse(d)).filter((m) => m.verify)
        .map((m) => ['commit', 'nonce'].filter((k) => k in m.verify).join());
      assert.deepStrictEqual(sent, ['commit', 'nonce'], `try ${i}: what ${side} sent mallory`);
    }
    for (const [p, of] of [[a, ofA], [b, ofB]]) {
      assert.strictEqual(of.state, 'failed', `try ${i}, ${p.name}: ${of.state} "${of.words}" ${of.code} (mallory: ${await mallory.state()})`);
      assert.strictEqual(of.code, '', `try ${i}, ${p.name}: no code to read out`);
      assert.match(of.words, /^Cannot verify this call: the other side's answer does not match what it promised\. Someone may be in the middle/,
        `try ${i}, ${p.name}: the failure and its reason in words`);
      assert.ok(await p.page.isVisible('#verify-hangup'), `try ${i}, ${p.name}: hanging up is offered`);
      assert.ok(await p.page.isHidden('#verify-match'), `try ${i}, ${p.name}: nothing to compare`);
    }
    assert.deepStrictEqual(await mallory.errors(), []);
    await closeAll(a, b, mallory);
  }
});

test('mallory running its own honest exchange on each leg: both sides get a code, and the two differ, every time', { timeout: TRIES * h.TEST_MS }, async () => {
  for (let i = 1; i <= TRIES; i++) {
    const { a, b, mallory } = await callThroughMallory({ ownVerify: true });
    await h.remoteVideoPlays(a.page, `alice, try ${i}`);
    await h.remoteVideoPlays(b.page, `bob, try ${i}`);
    await assertMalloryInTheMiddle(a, b);
    const [ofA, ofB] = await Promise.all([verifyOutcome(a), verifyOutcome(b)]);
    assert.strictEqual(ofA.state, 'ready', `try ${i}, alice: ${ofA.words} (mallory: ${await mallory.state()})`);
    assert.strictEqual(ofB.state, 'ready', `try ${i}, bob: ${ofB.words} (mallory: ${await mallory.state()})`);
    assert.match(ofA.code, CODE);
    assert.match(ofB.code, CODE);
    // Each person agrees with mallory on their own leg: the exchange passed
    // its checks, and only reading the codes aloud gives mallory away.
    assert.deepStrictEqual(await mallory.code('alice'), { code: ofA.code }, `try ${i}: alice's leg`);
    assert.deepStrictEqual(await mallory.code('bob'), { code: ofB.code }, `try ${i}: bob's leg`);
    assert.notStrictEqual(ofA.code, ofB.code, `try ${i}: the two codes differ`);
    // They read them out, and one of them says so.
    await b.page.click('#verify-differ');
    await waitVerifyState(b, 'differ');
    assert.ok(await b.page.isVisible('#verify-hangup'), `try ${i}: hanging up is offered`);
    assert.ok(await b.page.isHidden('#verified-badge'));
    assert.deepStrictEqual(await mallory.errors(), []);
    await closeAll(a, b, mallory);
  }
});

// ---- remembered devices ----

// The verify panel's state: '' working ready changed verified differ failed.
const verifyState = (p) => p.page.evaluate(() => document.getElementById('verify-state').dataset.state);

// A call between two people who keep their pages' storage from call to call
// (one browser context each), once both pages have a safety code result.
async function callAgain(a, b, ids) {
  await h.join(a, h.joinUrl(server, ids[0], ids[1]));
  await h.join(b, h.joinUrl(server, ids[1], ids[0]));
  for (const p of [a, b]) await h.waitStatus(p.page, 'connected');
  for (const p of [a, b]) {
    await p.page.waitForFunction(() => ['ready', 'changed', 'verified', 'failed'].includes(document.getElementById('verify-state').dataset.state),
      null, { timeout: h.WAIT_MS });
  }
}

async function hangUpBoth(a, b) {
  for (const p of [a, b]) await p.page.click('#hangup-btn');
}

// What a browser keeps in IndexedDB for its calls, replaced by another
// certificate (as a new browser profile, or another device, would have).
async function replaceKeptCertificate(p) {
  await p.page.evaluate(async () => {
    const cert = await RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' });
    const db = await new Promise((resolve, reject) => {
      const req = indexedDB.open('duet', 1);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    await new Promise((resolve, reject) => {
      const req = db.transaction('identity', 'readwrite').objectStore('identity').put(cert, 'dtls-certificate');
      req.onsuccess = resolve;
      req.onerror = () => reject(req.error);
    });
    db.close();
  });
}

test('a device verified once is recognised on the next call; another certificate under the same name is said first', { timeout: h.TEST_MS }, async () => {
  n++;
  const a = await person(`carol${n}`);
  const b = await person(`dave${n}`);
  const ids = [`carol-${n}`, `dave-${n}`];
  await callAgain(a, b, ids);
  assert.deepEqual([await verifyState(a), await verifyState(b)], ['ready', 'ready']);
  for (const p of [a, b]) {
    await p.page.click('#verify-btn');
    await p.page.click('#verify-match');
  }
  await hangUpBoth(a, b);

  // The same two browsers again: nothing to compare, both say so at once.
  await callAgain(a, b, ids);
  assert.deepEqual([await verifyState(a), await verifyState(b)], ['verified', 'verified']);
  assert.strictEqual((await a.page.textContent('#verified-badge')).trim(), 'Verified device');
  assert.match(await a.page.textContent('#verify-state'), /^Verified device: this is the device of dave-\d+ you verified on an earlier call\.$/);
  await hangUpBoth(a, b);

  // dave's browser now holds another certificate: carol is warned before
  // anything else (the panel opens by itself), dave's side is unchanged.
  await replaceKeptCertificate(b);
  await callAgain(a, b, ids);
  assert.strictEqual(await verifyState(a), 'changed');
  assert.ok(await a.page.isVisible('#verify-panel'), 'the panel opened by itself');
  assert.match(await a.page.textContent('#verify-state'), /^This is not the device of dave-\d+ you verified before/);
  assert.ok(await a.page.isHidden('#verified-badge'));
  assert.strictEqual(await verifyState(b), 'verified');
  // Compared again and matching: remembered anew.
  await a.page.click('#verify-match');
  await hangUpBoth(a, b);
  await callAgain(a, b, ids);
  assert.strictEqual(await verifyState(a), 'verified');
  await hangUpBoth(a, b);

  // "Forget my name on this device" forgets the verified devices and the
  // certificate: carol compares again, and dave sees a new certificate.
  await a.page.click('#forget-btn');
  await callAgain(a, b, ids);
  assert.deepEqual([await verifyState(a), await verifyState(b)], ['ready', 'changed']);
  await hangUpBoth(a, b);
  await closeAll(a, b);
});

test('mallory in the middle of a call between devices verified before: both are warned first, and no badge shows', { timeout: h.TEST_MS }, async () => {
  n++;
  const a = await person(`erin${n}`);
  const b = await person(`frank${n}`);
  const ids = [`erin-${n}`, `frank-${n}`];
  for (const p of [a, b]) await recordChannel(p);
  await callAgain(a, b, ids);
  for (const p of [a, b]) {
    await p.page.click('#verify-btn');
    await p.page.click('#verify-match');
  }
  await hangUpBoth(a, b);
  // The next call goes through mallory, who runs an honest exchange on
  // each leg: each person gets a code, made with mallory's certificate.
  const mallory = await startMallory({ ownVerify: true });
  await routeThrough(a, 'alice', mallory);
  await routeThrough(b, 'bob', mallory);
  await callAgain(a, b, ids);
  await assertMalloryInTheMiddle(a, b);
  for (const p of [a, b]) {
    assert.strictEqual(await verifyState(p), 'changed', `${p.name}: ${await p.page.textContent('#verify-state')}`);
    assert.ok(await p.page.isVisible('#verify-panel'), `${p.name}: the panel opened by itself`);
    assert.ok(await p.page.isHidden('#verified-badge'), `${p.name}: no badge`);
  }
  assert.deepStrictEqual(await mallory.errors(), []);
  await closeAll(a, b, mallory);
});

test('an ICE restart keeps the code and the mark; a new connection brings a new code and clears it', { timeout: h.TEST_MS }, async () => {
  n++;
  const a = await person(`gina${n}`);
  const b = await person(`hal${n}`);
  const ids = [`gina-${n}`, `hal-${n}`];
  await callAgain(a, b, ids);
  await a.page.click('#verify-btn');
  await a.page.click('#verify-match');
  const code = await a.page.textContent('#verify-code');
  const connections = () => a.page.evaluate(() => window.__peers.length);
  const before = await connections();
  const localUfrag = () => a.page.evaluate(() => /a=ice-ufrag:(\S+)/.exec(window.__peers[window.__peers.length - 1].pc.localDescription.sdp)[1]);
  const ufrag = await localUfrag();

  // The network changed: gina's page restarts ICE on the same connection.
  const offers = await h.offersSent(a.page);
  await a.page.evaluate(() => window.dispatchEvent(new Event('online')));
  await a.page.waitForFunction((n) => {
    const log = window.__signals;
    const outs = log.filter((x) => x.dir === 'out' && x.msg.sdp && x.msg.sdp.type === 'offer');
    if (outs.length <= n) return false;
    const answered = log.slice(log.lastIndexOf(outs[outs.length - 1]) + 1).some((x) => x.dir === 'in' && x.msg.sdp && x.msg.sdp.type === 'answer');
    const { pc } = window.__peers[window.__peers.length - 1];
    return answered && pc.signalingState === 'stable' && pc.connectionState === 'connected';
  }, offers, { timeout: h.WAIT_MS });
  assert.notStrictEqual(await localUfrag(), ufrag, 'an ICE restart: new ICE credentials');
  assert.strictEqual(await connections(), before, 'the same connection');
  assert.strictEqual(await verifyState(a), 'verified');
  assert.strictEqual(await a.page.textContent('#verify-code'), code);
  assert.ok(await a.page.isVisible('#verified-badge'));

  // hal's page goes and comes back: a new connection. What gina's device
  // remembers of hal is dropped first, so that only the mark is seen.
  await a.page.evaluate(() => localStorage.removeItem('duet.verifiedDevices'));
  await b.page.reload();
  await b.page.click('#call-btn');
  await a.page.waitForFunction((c) => window.__peers.length > c, before, { timeout: h.WAIT_MS });
  await a.page.waitForFunction(() => document.getElementById('verify-state').dataset.state === 'ready', null, { timeout: h.WAIT_MS });
  assert.notStrictEqual(await a.page.textContent('#verify-code'), code, 'a new code (1 in 10^8 that it is the same by chance)');
  assert.ok(await a.page.isHidden('#verified-badge'), 'the mark is gone');
  await closeAll(a, b);
});

test('no console errors and no CSP violations on these pages', { timeout: 10000 }, async () => {
  const { csp, errors } = await h.pageProblems(people);
  assert.deepStrictEqual(csp, [], 'CSP violations');
  assert.deepStrictEqual(errors, [], 'console errors');
});
