// What a call sends, changed live (issue 14): the screen instead of the
// camera, another camera, microphone or speaker, a camera that goes away,
// and the remote video in picture-in-picture. Each browser has three fake
// cameras; a shared (fake) screen is 16:9 where the cameras are 4:3, so the
// far side sees that change. Chromium's fake cameras all paint the same
// picture, and its second one (fake_device_1) delivers Y16 frames that
// WebRTC does not send at all, so the camera tests use fake_device_0 and
// fake_device_2 and check what the call's sender carries and that the far
// side goes on decoding new frames from it.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert');
const h = require('./harness.js');

let server;
let browser;
const people = [];
let n = 0;

before(async () => {
  server = await h.startDuetd();
  browser = await h.launchBrowser(['--use-fake-device-for-media-stream=device-count=3']);
});

after(async () => {
  for (const p of people) await p.close().catch(() => {});
  if (browser) await browser.close();
  if (server) await server.stop();
});

async function call() {
  n++;
  const a = await h.person(browser, `media-alice${n}`);
  const b = await h.person(browser, `media-bob${n}`);
  people.push(a, b);
  await h.callByInvite(a, b, server, `media-a-${n}`, `media-b-${n}`);
  await h.remoteVideoPlays(b.page, 'bob');
  return { a, b };
}

// Waits until the remote video's shape is wide (16:9) or not (4:3).
async function waitShape(page, wide, what) {
  await page.waitForFunction((w) => {
    const v = document.getElementById('remote');
    return v.videoHeight > 0 && (v.videoWidth / v.videoHeight > 1.6) === w;
  }, wide, { timeout: h.WAIT_MS }).catch(async () => {
    const s = await page.evaluate(() => `${document.getElementById('remote').videoWidth}x${document.getElementById('remote').videoHeight}`);
    throw new Error(`${what}: the other side's video stayed ${s}`);
  });
}

// Waits until the far side has decoded more video frames than it had.
async function waitNewFrames(page, what) {
  const framesDecoded = () => page.evaluate(async () => {
    const peer = window.__peers[window.__peers.length - 1];
    let n = 0;
    (await peer.pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n = s.framesDecoded; });
    return n;
  });
  const before = await framesDecoded();
  const deadline = Date.now() + h.WAIT_MS;
  while ((await framesDecoded()) <= before + 10) {
    if (Date.now() > deadline) throw new Error(`${what}: the far side decoded no new frames`);
    await h.sleep(200);
  }
}

test('screen sharing replaces the outgoing video track without a new offer, and stopping returns to the camera', { timeout: h.TEST_MS }, async () => {
  const { a, b } = await call();
  await waitShape(b.page, false, 'before sharing');
  const offers = await h.offersSent(a.page);
  assert.ok(await a.page.isVisible('#screen-btn'), 'desktop Chromium offers screen sharing');
  assert.strictEqual(await a.page.getAttribute('#screen-btn', 'aria-label'), 'Share your screen');

  await a.page.click('#screen-btn');
  await a.page.waitForFunction(() => document.getElementById('screen-btn').getAttribute('aria-label') === 'Stop sharing your screen', null, { timeout: h.WAIT_MS });
  const shared = await h.sentTrack(a.page, 'video');
  assert.match(shared.label, /^screen/, `the call sends the screen (${shared.label})`);
  await waitShape(b.page, true, 'while sharing');
  assert.strictEqual(await h.offersSent(a.page), offers, 'no renegotiation for the screen');
  assert.match(await a.page.evaluate(() => document.getElementById('local').srcObject.getVideoTracks()[0].label), /^screen/, 'the preview shows what is shared');

  await a.page.click('#screen-btn');
  await waitShape(b.page, false, 'after stopping');
  const back = await h.sentTrack(a.page, 'video');
  assert.strictEqual(back.label, 'fake_device_0', 'the camera is sent again');
  assert.strictEqual(back.state, 'live');
  assert.strictEqual(await a.page.getAttribute('#screen-btn', 'aria-label'), 'Share your screen');

  // The browser's own "Stop sharing" ends the screen's track; headless
  // Chromium has no such bar, so the track is ended here as it would.
  await a.page.click('#screen-btn');
  await waitShape(b.page, true, 'sharing again');
  await a.page.evaluate(() => {
    const s = window.__peers[window.__peers.length - 1].pc.getSenders().find((x) => x.track && x.track.kind === 'video');
    s.track.stop();
    s.track.dispatchEvent(new Event('ended'));
  });
  await waitShape(b.page, false, 'after the browser stopped the sharing');
  assert.strictEqual((await h.sentTrack(a.page, 'video')).label, 'fake_device_0');
  assert.strictEqual(await a.page.getAttribute('#screen-btn', 'aria-label'), 'Share your screen');
  assert.strictEqual(await h.offersSent(a.page), offers, 'still no renegotiation');
  await h.remoteVideoPlays(b.page, 'bob after sharing');
});

test('choosing another camera, microphone and speaker mid-call changes what is sent, and the choice is remembered', { timeout: h.TEST_MS }, async () => {
  const { a, b } = await call();
  await a.page.click('#devices-btn');
  assert.strictEqual(await a.page.getAttribute('#devices-btn', 'aria-expanded'), 'true');
  const cams = await a.page.$$eval('#cam-select option', (os) => os.map((o) => ({ v: o.value, t: o.textContent, s: o.selected })));
  assert.deepStrictEqual(cams.map((c) => c.t), ['fake_device_0', 'fake_device_1', 'fake_device_2']);
  assert.ok(cams[0].s, 'the camera in use is selected');
  const offers = await h.offersSent(a.page);

  await a.page.selectOption('#cam-select', cams[2].v);
  await a.page.waitForFunction(() => {
    const s = window.__peers[window.__peers.length - 1].pc.getSenders().find((x) => x.track && x.track.kind === 'video');
    return s.track.label === 'fake_device_2' && s.track.readyState === 'live';
  }, null, { timeout: h.WAIT_MS });
  await waitNewFrames(b.page, 'after choosing the second camera');
  assert.strictEqual(await a.page.evaluate(() => document.getElementById('local').srcObject.getVideoTracks()[0].label), 'fake_device_2', 'the preview shows the new camera');
  assert.strictEqual(await a.page.evaluate(() => localStorage.getItem('duet.camera')), cams[2].v);

  const mics = await a.page.$$eval('#mic-select option', (os) => os.map((o) => ({ v: o.value, t: o.textContent })));
  const otherMic = mics.find((m) => m.t === 'Fake Audio Input 2');
  assert.ok(otherMic, `a second microphone is listed (${mics.map((m) => m.t).join(', ')})`);
  await a.page.selectOption('#mic-select', otherMic.v);
  await a.page.waitForFunction(() => {
    const s = window.__peers[window.__peers.length - 1].pc.getSenders().find((x) => x.track && x.track.kind === 'audio');
    return s.track.label === 'Fake Audio Input 2';
  }, null, { timeout: h.WAIT_MS });
  assert.strictEqual(await h.offersSent(a.page), offers, 'no renegotiation for new devices');

  assert.ok(await a.page.isVisible('#speaker-select'), 'Chromium can choose the speaker (setSinkId)');
  const outs = await a.page.$$eval('#speaker-select option', (os) => os.map((o) => ({ v: o.value, t: o.textContent })));
  const otherOut = outs.find((o) => o.t === 'Fake Audio Output 2');
  await a.page.selectOption('#speaker-select', otherOut.v);
  await a.page.waitForFunction((id) => document.getElementById('remote').sinkId === id, otherOut.v, { timeout: h.WAIT_MS });

  // The next call starts with the same devices.
  await a.page.click('#hangup-btn');
  await a.page.click('#call-btn');
  await h.waitStatus(a.page, 'connected');
  assert.strictEqual((await h.sentTrack(a.page, 'video')).label, 'fake_device_2', 'the chosen camera is remembered');
  assert.strictEqual((await h.sentTrack(a.page, 'audio')).label, 'Fake Audio Input 2', 'the chosen microphone is remembered');
  await a.page.waitForFunction((id) => document.getElementById('remote').sinkId === id, otherOut.v, { timeout: h.WAIT_MS });
  await h.remoteVideoPlays(b.page, 'bob in the next call');
});

test('a camera that goes away mid-call is replaced by the other one, with a notice', { timeout: h.TEST_MS }, async () => {
  const { a, b } = await call();
  await a.page.click('#devices-btn');
  const cams = await a.page.$$eval('#cam-select option', (os) => os.map((o) => o.value));
  await a.page.selectOption('#cam-select', cams[2]);
  await a.page.waitForFunction(() => document.getElementById('local').srcObject.getVideoTracks()[0].label === 'fake_device_2', null, { timeout: h.WAIT_MS });
  // A fake camera cannot be unplugged; its track ends as an unplugged one's would.
  await a.page.evaluate(() => {
    const track = document.getElementById('local').srcObject.getVideoTracks()[0];
    track.stop();
    track.dispatchEvent(new Event('ended'));
  });
  await a.page.waitForSelector('#notice:not([hidden])', { timeout: h.WAIT_MS });
  assert.strictEqual(await a.page.textContent('#notice'), 'Your camera was disconnected; now using "fake_device_0".');
  const now = await h.sentTrack(a.page, 'video');
  assert.deepStrictEqual([now.label, now.state], ['fake_device_0', 'live'], 'the call sends the first other camera');
  await waitNewFrames(b.page, 'after the camera went away');
  await h.remoteVideoPlays(b.page, 'bob');
});

test('quick camera changes end with one live camera, and a hang-up mid-change leaves none running', { timeout: h.TEST_MS }, async () => {
  const { a } = await call();
  await a.page.click('#devices-btn');
  const cams = await a.page.$$eval('#cam-select option', (os) => os.map((o) => o.value));
  // Two changes fired back to back, as arrowing through the list does.
  await a.page.evaluate((ids) => {
    const sel = document.getElementById('cam-select');
    for (const id of ids) {
      sel.value = id;
      sel.dispatchEvent(new Event('change'));
    }
  }, [cams[2], cams[0]]);
  await a.page.waitForFunction(() => {
    const s = window.__peers[window.__peers.length - 1].pc.getSenders().find((x) => x.track && x.track.kind === 'video');
    return s.track.label === 'fake_device_0' && document.getElementById('local').srcObject.getVideoTracks()[0].label === 'fake_device_0';
  }, null, { timeout: h.WAIT_MS });
  await h.sleep(500);
  assert.strictEqual(await a.page.evaluate(() => document.getElementById('local').srcObject.getVideoTracks().length), 1,
    'the preview holds one camera track');

  // A change still under way when the call is hung up: the camera it
  // brings is stopped, none stays on at the join page.
  await a.page.evaluate(() => {
    window.__liveTracks = [];
    window.__asked = 0;
    const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = async (c) => {
      window.__asked++;
      const st = await gum(c);
      // A slow camera: the hang-up comes first.
      await new Promise((r) => setTimeout(r, 700));
      window.__liveTracks.push(...st.getTracks());
      return st;
    };
  });
  await a.page.evaluate((id) => {
    const sel = document.getElementById('cam-select');
    sel.value = id;
    sel.dispatchEvent(new Event('change'));
  }, cams[2]);
  await a.page.waitForFunction(() => window.__asked > 0, null, { timeout: h.WAIT_MS });
  await a.page.click('#hangup-btn');
  // Polls until the track the slow camera brought is stopped (or WAIT_MS
  // passes: then the assertion below says what it is).
  await a.page.waitForFunction(() => window.__liveTracks.length > 0 && window.__liveTracks.every((t) => t.readyState === 'ended'),
    null, { timeout: h.WAIT_MS }).catch(() => {});
  // Every camera that arrived after the hang-up was stopped (on a loaded
  // machine the change may have asked twice: each answer counts).
  const states = await a.page.evaluate(() => window.__liveTracks.map((t) => t.readyState));
  assert.ok(states.length >= 1, 'the slow camera answered');
  assert.deepStrictEqual(states, states.map(() => 'ended'), 'the camera that arrived after the hang-up was stopped');
});

test('the remote video goes into picture-in-picture and back', { timeout: h.TEST_MS }, async () => {
  const { b } = await call();
  assert.ok(await b.page.isVisible('#pip-btn'));
  assert.strictEqual(await b.page.getAttribute('#pip-btn', 'aria-label'), 'Picture in picture');
  await b.page.click('#pip-btn');
  await b.page.waitForFunction(() => document.pictureInPictureElement === document.getElementById('remote'), null, { timeout: h.WAIT_MS });
  await b.page.waitForFunction(() => document.getElementById('pip-btn').getAttribute('aria-label') === 'Leave picture in picture', null, { timeout: h.WAIT_MS });
  await b.page.click('#pip-btn');
  await b.page.waitForFunction(() => !document.pictureInPictureElement, null, { timeout: h.WAIT_MS });
  assert.strictEqual(await b.page.getAttribute('#pip-btn', 'aria-label'), 'Picture in picture');
});

test('no console errors and no CSP violations in these calls', { timeout: 10000 }, async () => {
  const { csp, errors } = await h.pageProblems(people);
  assert.deepStrictEqual(csp, [], 'CSP violations');
  assert.deepStrictEqual(errors, [], 'console errors');
});
