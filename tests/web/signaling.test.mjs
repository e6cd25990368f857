// web/signaling.js in Node, without a browser: the test plays the server
// through a fake WebSocket and moves a fake clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSignaling, backoffDelay, PING_EVERY_MS, SILENCE_LIMIT_MS } from '../../web/signaling.js';
import { fakeClock, fakeWebSocket, settle } from './fakes.mjs';

const URL = 'wss://duet.test/';

// A signaling object wired to fakes; `events` lists what it reported.
function setup({ random = () => 1 } = {}) {
  const clock = fakeClock();
  const { FakeWebSocket, sockets } = fakeWebSocket();
  const events = [];
  const record = (name) => (arg) => events.push(arg === undefined ? [name] : [name, arg]);
  const on = {};
  for (const name of ['connecting', 'open', 'message', 'retry', 'replaced', 'closedByAdmin']) on[name] = record(name);
  const signaling = createSignaling({ url: URL, WebSocket: FakeWebSocket, timers: clock.timers, now: clock.now, random, on });
  const last = () => sockets[sockets.length - 1];
  const named = (name) => events.filter((e) => e[0] === name).map((e) => e[1]);
  return { clock, sockets, events, signaling, last, named };
}

test('joins with open as soon as the socket opens, asking for a resume token', () => {
  const { sockets, signaling, last, named } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  assert.equal(sockets.length, 1);
  assert.equal(last().url, URL);
  assert.deepEqual(named('connecting'), [{ first: true }]);
  assert.equal(signaling.isOpen(), false);
  assert.equal(signaling.send({ ping: 1 }), false, 'nothing is sent before the socket opens');
  last().serverOpens();
  assert.deepEqual(last().sent, [{ open: { local: 'alice', remote: 'bob', resume: '' } }]);
  assert.deepEqual(named('open'), [{ opens: 1 }]);
  assert.equal(signaling.isOpen(), true);
});

test('a call token from the invite link goes into open', () => {
  const { signaling, last } = setup();
  signaling.start({ local: 'alice', remote: 'bob', authToken: 'T0K' });
  last().serverOpens();
  assert.deepEqual(last().sent[0], { open: { local: 'alice', remote: 'bob', resume: '', token: 'T0K' } });
});

test('after a drop it comes back with the resume token it was given, then with the newer one', async () => {
  const { clock, sockets, signaling, last, named } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  last().serverOpens();
  last().serverSends({ start: 'offer', resume: 'R1' });
  assert.deepEqual(named('message'), [{ start: 'offer', resume: 'R1' }], 'start still reaches the call');
  assert.equal(signaling.token, 'R1');

  last().serverCloses(1006);
  assert.equal(named('retry').length, 1);
  assert.equal(named('retry')[0].everOpened, true);
  clock.advance(500);
  assert.equal(sockets.length, 2);
  assert.deepEqual(named('connecting')[1], { first: false });
  last().serverOpens();
  assert.deepEqual(last().sent[0], { open: { local: 'alice', remote: 'bob', resume: 'R1' } });

  last().serverSends({ resumed: 'answer', resume: 'R2' });
  last().serverCloses(1006);
  clock.advance(1000);
  last().serverOpens();
  assert.deepEqual(last().sent[0], { open: { local: 'alice', remote: 'bob', resume: 'R2' } });
  await settle();
});

test('the backoff doubles from 0.5 s to at most 30 s, scaled by a random 50-100 %', () => {
  assert.equal(backoffDelay(0, () => 0), 250);
  assert.equal(backoffDelay(0, () => 1), 500);
  assert.equal(backoffDelay(3, () => 0.5), 3000);
  assert.equal(backoffDelay(6, () => 1), 30000);
  assert.equal(backoffDelay(20, () => 1), 30000);
  assert.equal(backoffDelay(20, () => 0), 15000);
});

test('a server that stays away is tried again later and later, and only after each delay', () => {
  const { clock, sockets, signaling, last, named } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  const delays = [];
  for (let i = 0; i < 9; i++) {
    const before = clock.now();
    last().serverCloses(1006);
    const { at } = named('retry')[i];
    delays.push(at - before);
    const count = sockets.length;
    clock.advance(at - before - 1);
    assert.equal(sockets.length, count, 'no new socket before the delay is over');
    clock.advance(1);
    assert.equal(sockets.length, count + 1, 'a new socket once it is');
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.ok(named('retry').every((r) => r.everOpened === false));
  assert.deepEqual(named('retry').map((r) => r.attempt), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

// A full server accepts the socket and then closes it (1013): an open alone
// must not start the backoff over, or such a server would be asked twice a
// second.
test('the backoff keeps growing across sockets that open and close; reconnectNow starts it over', () => {
  const { clock, signaling, last, named } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  last().serverCloses(1006);
  clock.advance(500);
  last().serverCloses(1006);
  clock.advance(1000);
  last().serverOpens();
  const before = clock.now();
  signaling.reconnectNow(); // a socket is open: nothing to do
  last().serverCloses(1006);
  const retry = named('retry')[2];
  assert.equal(retry.at - before, 2000, 'the third try waits 2 s although the second one opened');
  assert.equal(named('connecting').length, 3, 'reconnectNow did nothing while a socket was there');
  signaling.reconnectNow();
  assert.equal(named('connecting').length, 4, 'reconnectNow opens at once when no socket is there');
  last().serverCloses(1006);
  assert.equal(named('retry')[3].at - clock.now(), 500, 'and starts the backoff over');
});

test('it pings every 20 s, answers the server\'s ping, and keeps a server that talks', () => {
  const { clock, sockets, signaling, last } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  last().serverOpens();
  last().serverSends({ ping: 1 });
  assert.deepEqual(last().sent.slice(1), [{ pong: 1 }]);
  for (let i = 0; i < 10; i++) {
    clock.advance(PING_EVERY_MS - 1000);
    last().serverSends({ pong: 1 });
    clock.advance(1000);
  }
  assert.equal(last().sent.filter((m) => m.ping).length, 10);
  assert.equal(sockets.length, 1);
  assert.equal(last().closedWith, null);
});

test('a server silent for more than 50 s is taken for dead: the socket is closed and opened again', async () => {
  const { clock, sockets, signaling, last, named } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  last().serverOpens();
  clock.advance(SILENCE_LIMIT_MS);
  assert.equal(last().closedWith, null, 'not yet at 50 s');
  clock.advance(PING_EVERY_MS);
  assert.notEqual(sockets[0].closedWith, null, 'closed by 60 s');
  await settle();
  assert.equal(named('retry').length, 1);
  clock.advance(500);
  assert.equal(sockets.length, 2);
});

test('close 4001 (a newer tab took the id) stops for good', async () => {
  const { clock, sockets, signaling, last, named } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  last().serverOpens();
  last().serverCloses(4001);
  assert.equal(named('replaced').length, 1);
  assert.equal(named('retry').length, 0);
  clock.advance(120000);
  assert.equal(sockets.length, 1);
  await settle();
});

test('close 4403 (the operator closed us, duetd admin close) stops for good', async () => {
  const { clock, sockets, signaling, last, named } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  last().serverOpens();
  last().serverCloses(4403);
  assert.equal(named('closedByAdmin').length, 1);
  assert.equal(named('retry').length, 0);
  clock.advance(120000);
  assert.equal(sockets.length, 1);
  await settle();
});

test('close 1012 (a draining server) is tried again', async () => {
  const { clock, sockets, signaling, last, named } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  last().serverOpens();
  last().serverCloses(1012);
  await settle();
  assert.equal(named('retry').length, 1);
  clock.advance(120000);
  assert.equal(sockets.length, 2);
});

test('stop() closes with 1000 and never comes back', async () => {
  const { clock, sockets, signaling, last, named } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  last().serverOpens();
  last().serverSends({ start: 'answer', resume: 'R' });
  signaling.stop();
  assert.deepEqual(sockets[0].closedWith, { code: 1000, reason: 'hang up' });
  await settle();
  clock.advance(120000);
  assert.equal(sockets.length, 1);
  assert.equal(named('retry').length, 0);
  assert.equal(signaling.token, '', 'the token is forgotten');
  assert.equal(signaling.send({ ping: 1 }), false);
  assert.equal(sockets[0].sent.filter((m) => m.ping).length, 0, 'no keepalive after stop');
});

test('id-taken while holding a token means our old connection still holds the id: retry', async () => {
  const { clock, sockets, signaling, last, named } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  last().serverOpens();
  last().serverSends({ start: 'offer', resume: 'R1' });
  last().serverCloses(1006);
  clock.advance(500);
  last().serverOpens();
  last().serverSends({ error: { code: 'id-taken', message: 'in use' } });
  assert.equal(named('message').length, 1, 'the app does not hear of it');
  assert.notEqual(sockets[1].closedWith, null);
  await settle();
  clock.advance(1000);
  assert.equal(sockets.length, 3);
  last().serverOpens();
  assert.equal(last().sent[0].open.resume, 'R1');
});

test('id-taken without a token goes to the app, which decides', () => {
  const { sockets, signaling, last, named } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  last().serverOpens();
  last().serverSends({ error: { code: 'id-taken', message: 'in use' } });
  assert.deepEqual(named('message'), [{ error: { code: 'id-taken', message: 'in use' } }]);
  assert.equal(sockets[0].closedWith, null);
});

test('the close code reaches the app, and an old socket\'s late messages are ignored', async () => {
  const { clock, sockets, signaling, last, named } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  last().serverOpens();
  last().serverCloses(1013);
  assert.equal(named('retry')[0].code, 1013);
  clock.advance(500);
  sockets[0].serverSends({ sdp: { type: 'offer', sdp: 'stale' }, remote: 'alice' });
  last().serverOpens();
  last().serverSends({ sdp: { type: 'offer', sdp: 'fresh' }, remote: 'alice' });
  assert.deepEqual(named('message').map((m) => m.sdp.sdp), ['fresh']);
  await settle();
});

test('text that is not a JSON object is ignored', () => {
  const { signaling, last, named } = setup();
  signaling.start({ local: 'alice', remote: 'bob' });
  last().serverOpens();
  last().onmessage({ data: 'not json' });
  last().onmessage({ data: '42' });
  last().serverSends({ close: 1 });
  assert.deepEqual(named('message'), [{ close: 1 }]);
});
