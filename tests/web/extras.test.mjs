// The rule-like parts of issue 14's modules, without a browser: readable
// ids (web/names.js), chat links (web/chat.js), the connection summary and
// its quality levels (web/stats.js), and where screen sharing is offered
// (web/screen.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readableId, newCallIds, WORD_COUNT } from '../../web/names.js';
import { linkSegments } from '../../web/chat.js';
import { summarize, quality, rows } from '../../web/stats.js';
import { canShareScreen } from '../../web/screen.js';
import { format } from '../../web/i18n.js';

test('readable ids are three words, one random byte each', () => {
  assert.equal(WORD_COUNT, 256, 'one byte picks a word without bias');
  assert.match(readableId(), /^[a-z]+-[a-z]+-[a-z]+$/);
  const fixed = (values) => () => Uint8Array.from(values);
  assert.equal(readableId(fixed([0, 0, 255])), 'acorn-acorn-zinc');
  let call = 0;
  const seq = () => Uint8Array.from(call++ < 2 ? [1, 2, 3] : [4, 5, 6]);
  const ids = newCallIds(seq);
  assert.notEqual(ids.me, ids.peer, 'the two sides never get the same id');
});

test('chat text: only well-formed http(s) URLs become links', () => {
  assert.deepEqual(linkSegments('see https://example.org/a?b=1. ok'), [
    { text: 'see ' }, { text: 'https://example.org/a?b=1', url: 'https://example.org/a?b=1' }, { text: '. ok' }]);
  assert.deepEqual(linkSegments('javascript:alert(1) data:text/html,x ftp://x.y'), [{ text: 'javascript:alert(1) data:text/html,x ftp://x.y' }]);
  assert.deepEqual(linkSegments('<a href="http://x.y">'), [{ text: '<a href="' }, { text: 'http://x.y', url: 'http://x.y/' }, { text: '">' }]);
  assert.deepEqual(linkSegments(''), []);
});

function report(list) {
  return new Map(list.map((s) => [s.id, s]));
}
const base = (sent, received, lost, rtt, type = 'host') => report([
  { id: 'T', type: 'transport', selectedCandidatePairId: 'P' },
  { id: 'P', type: 'candidate-pair', localCandidateId: 'L', currentRoundTripTime: rtt },
  { id: 'L', type: 'local-candidate', candidateType: type, relayProtocol: type === 'relay' ? 'udp' : undefined },
  { id: 'O', type: 'outbound-rtp', kind: 'video', bytesSent: sent, packetsSent: sent / 1000, frameWidth: 640, frameHeight: 480, framesPerSecond: 20 },
  { id: 'I', type: 'inbound-rtp', kind: 'video', bytesReceived: received, packetsReceived: received / 1000, packetsLost: lost },
]);

test('the summary: path, round trip, rates and loss between two samples', () => {
  const first = summarize(base(100000, 100000, 0, 0.002), null, 1000);
  assert.equal(first.candidateType, 'host');
  assert.equal(first.rttMs, 2);
  assert.equal(first.sendKbps, null, 'no rate from one sample');
  const second = summarize(base(225000, 200000, 5, 0.002), first, 2000);
  assert.equal(second.sendKbps, 1000);
  assert.equal(second.receiveKbps, 800);
  assert.equal(second.lossInPct, 4.8);
  assert.deepEqual(second.videoOut, { width: 640, height: 480, fps: 20 });
  assert.equal(quality(second), 'fair');
});

test('quality levels: good, fair, poor', () => {
  const s = (rttMs, lossInPct) => ({ connected: true, rttMs, lossInPct, lossOutPct: 0 });
  assert.equal(quality(s(20, 0)), 'good');
  assert.equal(quality(s(300, 0)), 'fair');
  assert.equal(quality(s(20, 3)), 'fair');
  assert.equal(quality(s(600, 0)), 'poor');
  assert.equal(quality(s(20, 10)), 'poor');
  assert.equal(quality(null), '');
});

test('a TURN relay is shown as "relayed (TURN)"', () => {
  const s = summarize(base(1, 1, 0, 0.05, 'relay'), null, 0);
  const t = (key, params) => format('en', key, params);
  assert.equal(rows(s, t)[0][1], 'relayed (TURN, udp)');
  assert.equal(rows(summarize(base(1, 1, 0, 0.05, 'srflx'), null, 0), t)[0][1], 'direct (server-reflexive candidate, through NAT)');
});

test('screen sharing is offered on desktops with getDisplayMedia, not on phones', () => {
  const md = { getDisplayMedia() {} };
  assert.equal(canShareScreen(md, { userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Chrome/126' }), true);
  assert.equal(canShareScreen(md, { userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/126 Mobile' }), false);
  assert.equal(canShareScreen(md, { userAgentData: { mobile: true }, userAgent: '' }), false);
  assert.equal(canShareScreen({}, { userAgent: 'Mozilla/5.0 (X11; Linux x86_64)' }), false);
});
