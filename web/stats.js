// The connection panel and the quality indicator: once a second the call's
// getStats() report is boiled down to what a person can act on (is it
// direct or relayed, how late, how much gets through, how sharp), and a
// poor connection is said in words on the call screen, not only in colour.

export const STATS_EVERY_MS = 1000;
// Past these, people notice: lips out of step from ~250 ms, frozen or
// smeared frames from a few percent of packets lost.
const FAIR = { rttMs: 250, lossPct: 2 };
const POOR = { rttMs: 500, lossPct: 8 };

const sum = (list, field) => list.reduce((n, s) => n + (Number(s[field]) || 0), 0);
const round1 = (x) => Math.round(x * 10) / 10;

function videoOf(s) {
  if (!s || !s.frameWidth) return null;
  return { width: s.frameWidth, height: s.frameHeight, fps: Math.round(s.framesPerSecond || 0) };
}

// report: an RTCStatsReport (or any Map of stats objects); prev: the
// previous summary, for the rates (null at first).
export function summarize(report, prev, now = Date.now()) {
  const all = [...report.values()];
  const transport = all.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
  const pair = transport ? report.get(transport.selectedCandidatePairId)
    : all.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
  const local = pair && report.get(pair.localCandidateId);
  const outbound = all.filter((s) => s.type === 'outbound-rtp');
  const inbound = all.filter((s) => s.type === 'inbound-rtp');
  const remoteIn = all.filter((s) => s.type === 'remote-inbound-rtp');
  const counters = {
    at: now,
    sent: sum(outbound, 'bytesSent'),
    received: sum(inbound, 'bytesReceived'),
    inPackets: sum(inbound, 'packetsReceived'),
    inLost: sum(inbound, 'packetsLost'),
    outPackets: sum(outbound, 'packetsSent'),
    outLost: sum(remoteIn, 'packetsLost'),
  };
  const out = {
    connected: Boolean(pair),
    candidateType: local ? local.candidateType || '' : '',
    relayProtocol: local ? local.relayProtocol || local.protocol || '' : '',
    rttMs: pair && typeof pair.currentRoundTripTime === 'number' ? Math.round(pair.currentRoundTripTime * 1000) : null,
    sendKbps: null,
    receiveKbps: null,
    lossInPct: null,
    lossOutPct: null,
    videoOut: videoOf(outbound.find((s) => s.kind === 'video')),
    videoIn: videoOf(inbound.find((s) => s.kind === 'video')),
    counters,
  };
  const p = prev && prev.counters;
  const seconds = p ? (now - p.at) / 1000 : 0;
  if (p && seconds > 0) {
    out.sendKbps = Math.max(0, Math.round(((counters.sent - p.sent) * 8) / 1000 / seconds));
    out.receiveKbps = Math.max(0, Math.round(((counters.received - p.received) * 8) / 1000 / seconds));
    const lostIn = Math.max(0, counters.inLost - p.inLost);
    const gotIn = Math.max(0, counters.inPackets - p.inPackets);
    out.lossInPct = lostIn + gotIn ? round1((100 * lostIn) / (lostIn + gotIn)) : 0;
    const lostOut = Math.max(0, counters.outLost - p.outLost);
    const sentOut = Math.max(0, counters.outPackets - p.outPackets);
    out.lossOutPct = sentOut ? round1(Math.min(100, (100 * lostOut) / sentOut)) : 0;
  }
  return out;
}

// 'good', 'fair' or 'poor' ('' while there is nothing to judge).
export function quality(s) {
  if (!s || !s.connected) return '';
  const loss = Math.max(s.lossInPct || 0, s.lossOutPct || 0);
  const rtt = s.rttMs || 0;
  if (loss >= POOR.lossPct || rtt >= POOR.rttMs) return 'poor';
  if (loss >= FAIR.lossPct || rtt >= FAIR.rttMs) return 'fair';
  return 'good';
}

// The panel's rows, as [label key, text] pairs; t() gives the texts.
export function rows(s, t) {
  const unknown = t('stats.unknown');
  const known = (x) => x !== null && x !== undefined;
  let path = unknown;
  if (s.candidateType === 'relay') path = t('stats.path.relay', { protocol: s.relayProtocol || '?' });
  else if (s.candidateType) {
    const type = ['host', 'srflx', 'prflx'].includes(s.candidateType) ? s.candidateType : 'unknown';
    path = t('stats.path.direct', { type: t(`stats.cand.${type}`) });
  }
  const video = (v) => (v ? t('stats.video.value', v) : unknown);
  return [
    ['stats.path', path, 'path'],
    ['stats.rtt', known(s.rttMs) ? t('stats.rtt.value', { ms: s.rttMs }) : unknown, 'rtt'],
    ['stats.bitrate', known(s.sendKbps) ? t('stats.bitrate.value', { up: s.sendKbps, down: s.receiveKbps }) : unknown, 'bitrate'],
    ['stats.loss', known(s.lossInPct) ? t('stats.loss.value', { up: s.lossOutPct, down: s.lossInPct }) : unknown, 'loss'],
    ['stats.videoOut', video(s.videoOut), 'video-out'],
    ['stats.videoIn', video(s.videoIn), 'video-in'],
  ];
}

// getStats() resolves to the call's report, or null when there is no call.
export function createStats({ $, t, getStats, timers = globalThis }) {
  let timer = 0;
  let last = null;
  let busy = false;
  let run = 0; // bumped by start() and stop(): a sample from before is dropped

  function renderPanel() {
    const list = $('stats-list');
    if (!last || !last.connected) {
      const p = document.createElement('p');
      p.className = 'hint';
      p.textContent = t('stats.waiting');
      list.replaceChildren(p);
      return;
    }
    const nodes = [];
    for (const [key, text, name] of rows(last, t)) {
      const dt = document.createElement('dt');
      dt.textContent = t(key);
      const dd = document.createElement('dd');
      dd.textContent = text;
      dd.dataset.stat = name;
      nodes.push(dt, dd);
    }
    list.replaceChildren(...nodes);
  }

  function renderQuality() {
    const el = $('quality');
    const level = quality(last);
    el.hidden = !level;
    el.dataset.level = level;
    $('quality-text').textContent = level ? t(`quality.${level}`) : '';
  }

  async function sample() {
    if (busy) return;
    busy = true;
    const started = run;
    try {
      const report = await getStats();
      // A sample begun before stop() (or a new start) says nothing now.
      if (started !== run) return;
      last = report ? summarize(report, last) : null;
    } catch (e) {
      if (started !== run) return;
      last = null;
    } finally {
      busy = false;
    }
    render();
  }

  function render() {
    if (!$('stats-panel').hidden) renderPanel();
    renderQuality();
  }

  return {
    start() {
      run++;
      timers.clearInterval(timer);
      last = null;
      timer = timers.setInterval(sample, STATS_EVERY_MS);
      render();
    },
    stop() {
      run++;
      timers.clearInterval(timer);
      timer = 0;
      last = null;
      render();
    },
    render,
  };
}
