// web/peer.js in Node, without a browser: a fake RTCPeerConnection that
// keeps the specification's signaling states, a fake signaling channel and
// a fake clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPeer, cleanIceServers, ICE_RESTART_WAIT_MS, DISCONNECTED_GRACE_MS } from '../../web/peer.js';
import { fakeClock, fakePeerConnection, settle, FakeChannel } from './fakes.mjs';
import { PARTNER_ANSWER_MS } from '../../web/verify.js';

const stream = {
  tracks: [{ kind: 'audio' }, { kind: 'video' }],
  getTracks() { return this.tracks; },
};

function setup() {
  const clock = fakeClock();
  const { FakePeerConnection, connections } = fakePeerConnection();
  const signal = {
    open: true,
    sent: [],
    send(m) { if (!this.open) return false; this.sent.push(m); return true; },
    isOpen() { return this.open; },
  };
  const events = [];
  const on = {};
  for (const name of ['connecting', 'negotiated', 'connected', 'reconnecting', 'failed', 'gone', 'track', 'closed', 'verify']) {
    on[name] = (arg) => events.push(arg === undefined ? name : [name, arg]);
  }
  const peer = createPeer({
    RTCPeerConnection: FakePeerConnection, timers: clock.timers, now: clock.now, signal, remote: 'bob', localStream: stream, on,
  });
  const last = () => connections[connections.length - 1];
  const offers = () => signal.sent.filter((m) => m.sdp && m.sdp.type === 'offer');
  const answers = () => signal.sent.filter((m) => m.sdp && m.sdp.type === 'answer');
  return { clock, connections, signal, events, peer, last, offers, answers };
}

// An offerer whose offer was answered and whose ICE connected.
async function connectedOfferer() {
  const t = setup();
  t.peer.start('offer');
  await settle();
  await t.peer.onSdp({ type: 'answer', sdp: 'their answer' });
  t.last().iceState('connected');
  t.last().channels[0].readyState = 'open';
  return t;
}

test('only ICE server entries a browser accepts are kept', () => {
  assert.deepEqual(cleanIceServers([{ urls: 'stun:a' }, { urls: ['turn:b'], username: 'u' }, { url: 'x' }, null, 7]),
    [{ urls: 'stun:a' }, { urls: ['turn:b'], username: 'u' }]);
  assert.deepEqual(cleanIceServers('nonsense'), []);
});

test('the offerer sets up a connection with the ICE servers, its tracks and a data channel, and offers', async () => {
  const { connections, signal, events, peer, last } = setup();
  peer.setIceServers([{ urls: 'stun:stun.test' }, { bad: 1 }]);
  assert.equal(peer.start('offer'), false);
  await settle();
  assert.equal(connections.length, 1);
  assert.deepEqual(last().config, { iceServers: [{ urls: 'stun:stun.test' }] });
  assert.deepEqual(last().senders.map((s) => s.track.kind), ['audio', 'video']);
  assert.deepEqual(last().channels.map((c) => c.label), ['duet']);
  assert.deepEqual(signal.sent, [{ sdp: { type: 'offer', sdp: 'offer 1' }, remote: 'bob' }]);
  assert.deepEqual(last().offerOptions, [undefined], 'the first offer is no ICE restart');
  assert.ok(events.includes('connecting'));
});

test('the answerer waits for the offer, answers it, and keeps early candidates until then', async () => {
  const { signal, events, peer, last, answers } = setup();
  peer.start('answer');
  await settle();
  assert.deepEqual(signal.sent, [], 'the answerer does not offer');
  assert.equal(last().channels.length, 0, 'the offerer makes the data channel');
  peer.onIce({ candidate: 'early' });
  assert.deepEqual(last().candidates, []);
  await peer.onSdp({ type: 'offer', sdp: 'their offer' });
  assert.deepEqual(last().candidates, [{ candidate: 'early' }]);
  assert.deepEqual(answers(), [{ sdp: { type: 'answer', sdp: 'answer 1' }, remote: 'bob' }]);
  peer.onIce({ candidate: 'late' });
  await settle();
  assert.deepEqual(last().candidates, [{ candidate: 'early' }, { candidate: 'late' }]);
  assert.deepEqual(events.filter((e) => e[0] === 'negotiated'), [['negotiated', { connected: false }]]);
  last().onicecandidate({ candidate: { candidate: 'ours' } });
  assert.deepEqual(signal.sent[signal.sent.length - 1], { ice: { candidate: 'ours' }, remote: 'bob' });
});

test('when both offer at once, the offerer ignores the other offer and the answerer yields to it', async () => {
  const impolite = setup();
  impolite.peer.start('offer');
  await impolite.peer.onSdp({ type: 'offer', sdp: 'crossing offer' });
  await settle();
  assert.equal(impolite.last().signalingState, 'have-local-offer', 'the offerer keeps its own offer');
  assert.deepEqual(impolite.answers(), []);

  const polite = setup();
  polite.peer.start('answer');
  await polite.peer.onSdp({ type: 'offer', sdp: 'first offer' });
  polite.last().iceState('connected');
  polite.last().iceState('failed'); // the answerer offers an ICE restart
  await settle();
  assert.equal(polite.offers().length, 1);
  assert.equal(polite.last().signalingState, 'have-local-offer');
  await polite.peer.onSdp({ type: 'offer', sdp: 'crossing offer' });
  assert.equal(polite.answers().length, 2, 'the answerer answers the crossing offer');
  assert.equal(polite.last().signalingState, 'stable');
});

test('ICE that fails is restarted three times, then the call is given up', async () => {
  const { clock, events, last, offers, peer } = await connectedOfferer();
  const pc = last();
  pc.iceState('failed');
  for (let i = 1; i <= 3; i++) {
    await settle();
    assert.equal(offers().length, 1 + i, `restart ${i} sent an offer`);
    assert.deepEqual(pc.offerOptions[i], { iceRestart: true });
    await peer.onSdp({ type: 'answer', sdp: `answer to restart ${i}` });
    clock.advance(ICE_RESTART_WAIT_MS);
  }
  await settle();
  assert.equal(offers().length, 4, 'no fourth restart');
  assert.equal(events.filter((e) => e === 'reconnecting').length, 3);
  assert.deepEqual(events.filter((e) => e[0] === 'failed'), [['failed', 'reason.ice']]);
  assert.ok(pc.closed);
  assert.equal(peer.exists, false);
});

test('ICE that connects again after a restart ends the restarts', async () => {
  const { clock, last, offers, peer } = await connectedOfferer();
  last().iceState('failed');
  await settle();
  await peer.onSdp({ type: 'answer', sdp: 'answer to restart' });
  last().iceState('connected');
  clock.advance(ICE_RESTART_WAIT_MS * 5);
  await settle();
  assert.equal(offers().length, 2);
  assert.equal(peer.exists, true);
});

test('a short "disconnected" is waited out; one that lasts 4 s restarts ICE', async () => {
  const { clock, last, offers } = await connectedOfferer();
  last().iceState('disconnected');
  clock.advance(DISCONNECTED_GRACE_MS - 1);
  last().iceState('connected');
  clock.advance(DISCONNECTED_GRACE_MS * 3);
  await settle();
  assert.equal(offers().length, 1, 'no restart for a blip');
  last().iceState('disconnected');
  clock.advance(DISCONNECTED_GRACE_MS);
  await settle();
  assert.equal(offers().length, 2);
  assert.deepEqual(last().offerOptions[1], { iceRestart: true });
});

test('a restart while signaling is away is sent once the other side is back', async () => {
  const { signal, last, offers, peer } = await connectedOfferer();
  signal.open = false;
  last().iceState('failed');
  await settle();
  assert.equal(offers().length, 1, 'nothing can be sent now');
  signal.open = true;
  peer.resumed(false); // even the answering side sends the restart it owes
  await settle();
  assert.equal(offers().length, 2);
  assert.deepEqual(last().offerOptions[1], { iceRestart: true });
});

test('resumed: the offerer restarts ICE on the same connection; with none, a new one is set up', async () => {
  const t = await connectedOfferer();
  t.peer.resumed(true);
  await settle();
  assert.equal(t.connections.length, 1);
  assert.deepEqual(t.last().offerOptions[1], { iceRestart: true });
  assert.ok(t.events.includes('connected'));

  const fresh = setup();
  fresh.peer.resumed(true);
  await settle();
  assert.equal(fresh.connections.length, 1);
  assert.equal(fresh.offers().length, 1);
  assert.deepEqual(fresh.last().channels.map((c) => c.label), ['duet']);
});

test('resumed as the offerer with an offer unanswered (lost while a side moved): it is taken back and made anew', async () => {
  const t = await connectedOfferer();
  t.peer.restartIce();
  await settle();
  assert.equal(t.offers().length, 2);
  assert.equal(t.last().signalingState, 'have-local-offer', 'its answer never comes');
  t.peer.resumed(true);
  await settle();
  assert.equal(t.last().rolledBack, 1);
  assert.equal(t.offers().length, 3);
  assert.deepEqual(t.last().offerOptions[2], { iceRestart: true });
  assert.equal(t.connections.length, 1, 'the same connection: media goes on');
});

test('a new start while the data channel is open keeps the call (the server restarted)', async () => {
  const { connections, last, offers, peer } = await connectedOfferer();
  assert.equal(peer.start('offer'), true);
  await settle();
  assert.equal(connections.length, 1);
  assert.equal(offers().length, 2);
  assert.deepEqual(last().offerOptions[1], { iceRestart: true });

  last().channels[0].readyState = 'closed';
  assert.equal(peer.start('answer'), false, 'without the channel it starts over');
  assert.equal(connections.length, 2);
  assert.ok(connections[0].closed);
});

test('the safety code exchange waits for the answer when the channel opens first (DTLS runs ahead of signaling)', async () => {
  const { events, last, peer } = setup();
  peer.start('offer');
  await settle();
  const channel = last().channels[0];
  channel.readyState = 'open';
  channel.onopen();
  await settle();
  assert.deepEqual(events.filter((e) => e[0] === 'verify'), [], 'not started without the answer');
  await peer.onSdp({ type: 'answer', sdp: 'their answer' });
  await settle();
  // The fakes' descriptions name no fingerprint: the exchange ran, with both.
  assert.deepEqual(events.filter((e) => e[0] === 'verify'), [['verify', { problem: 'verify.problem.noFingerprint', suspicious: false }]]);
});

test('a partner whose offer brings no data channel (the tutorial\'s page) cannot be verified, said once connected', async () => {
  const { clock, events, last, peer } = setup();
  peer.start('answer');
  await settle();
  await peer.onSdp({ type: 'offer', sdp: 'their offer without m=application' });
  last().iceState('connected');
  clock.advance(PARTNER_ANSWER_MS - 1);
  assert.deepEqual(events.filter((e) => e[0] === 'verify'), []);
  clock.advance(1);
  assert.deepEqual(events.filter((e) => e[0] === 'verify'), [['verify', { problem: 'verify.problem.noAnswer', suspicious: false }]]);
});

test('the partner\'s "bye" on the data channel ends the call at once', async () => {
  const { events, last, peer } = await connectedOfferer();
  const pc = last();
  pc.channels[0].onmessage({ data: JSON.stringify({ bye: 1 }) });
  assert.ok(events.includes('gone'));
  assert.ok(events.includes('closed'));
  assert.ok(pc.closed);
  assert.equal(peer.exists, false);
});

test('the server\'s "close" is believed only when the data channel is not open', async () => {
  const { events, last, peer } = await connectedOfferer();
  peer.partnerClosed();
  assert.ok(!events.includes('gone'), 'an open channel says the partner is still there');
  last().channels[0].readyState = 'closed';
  peer.partnerClosed();
  assert.ok(events.includes('gone'));
});

test('the answerer learns of the partner leaving from the channel it was given', async () => {
  const { events, last, peer } = setup();
  peer.start('answer');
  await peer.onSdp({ type: 'offer', sdp: 'their offer' });
  const channel = new FakeChannel('duet');
  last().ondatachannel({ channel });
  channel.readyState = 'open';
  channel.onclose();
  assert.ok(events.includes('gone'));
});

test('an answer the connection cannot take starts over with a fresh connection and offer', async () => {
  const { connections, offers, peer } = setup();
  peer.start('offer');
  await settle();
  await peer.onSdp({ type: 'answer', sdp: 'unusable' });
  await settle();
  assert.equal(connections.length, 2);
  assert.ok(connections[0].closed);
  assert.equal(offers().length, 2);
});

test('an offer no fresh connection can take either fails with reason.negotiation', async () => {
  const { events, peer } = setup();
  peer.start('answer');
  await peer.onSdp({ type: 'offer', sdp: 'unusable' });
  assert.deepEqual(events.filter((e) => e[0] === 'failed'), [['failed', 'reason.negotiation']]);
});

test('after close nothing is sent and late events are ignored', async () => {
  const { signal, last, peer, events } = await connectedOfferer();
  const pc = last();
  const sent = signal.sent.length;
  peer.close();
  pc.onicecandidate && pc.onicecandidate({ candidate: { candidate: 'late' } });
  peer.restartIce();
  await peer.onSdp({ type: 'answer', sdp: 'late' });
  await settle();
  assert.equal(signal.sent.length, sent);
  assert.ok(!events.includes('gone'));
});

test('a camera switch replaces the video track on the connection', async () => {
  const { last, peer } = await connectedOfferer();
  await peer.replaceVideoTrack({ kind: 'video', id: 'back camera' });
  assert.deepEqual(last().senders.map((s) => s.track.id || s.track.kind), ['audio', 'back camera']);
});

test('relay only: the connection is made relay-only, and fresh servers keep the policy', async () => {
  const { peer, last } = setup();
  const turn = { urls: ['turn:relay.test'], username: '1:alice', credential: 'c1' };
  peer.setIceServers([turn], 'relay');
  peer.start('offer');
  await settle();
  assert.deepEqual(last().config, { iceServers: [turn], iceTransportPolicy: 'relay' });
  const fresh = { ...turn, username: '2:alice', credential: 'c2' };
  peer.setIceServers([fresh], 'relay');
  assert.deepEqual(last().config, { iceServers: [fresh], iceTransportPolicy: 'relay' });
});

test('relay only: a gathering that ends without a single candidate fails the call with the relay reason', async () => {
  const { peer, last, events } = setup();
  peer.setIceServers([{ urls: 'turn:relay.test', username: '1:a', credential: 'wrong' }], 'relay');
  peer.start('offer');
  await settle();
  const conn = last();
  conn.iceGatheringState = 'gathering';
  conn.onicegatheringstatechange();
  conn.onicecandidate({ candidate: null });
  assert.deepEqual(events.filter((e) => Array.isArray(e) && e[0] === 'failed'), [['failed', 'reason.relay']]);
});

test('relay only: candidates found before the end of gathering mean no failure; without relay-only none either', async () => {
  for (const policy of ['relay', undefined]) {
    const { peer, last, events } = setup();
    peer.setIceServers([{ urls: 'turn:relay.test', username: '1:a', credential: 'c' }], policy);
    peer.start('offer');
    await settle();
    const conn = last();
    if (policy) conn.onicecandidate({ candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 5000 typ relay' } });
    conn.onicecandidate({ candidate: null });
    assert.ok(!events.some((e) => Array.isArray(e) && e[0] === 'failed'), `policy ${policy}: ${JSON.stringify(events)}`);
  }
});
