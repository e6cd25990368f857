// The peer connection of one call: perfect negotiation of offers and
// answers, ICE candidates (kept until the remote description is there),
// ICE restarts when the network path breaks, and the data channel that
// tells whether the partner is still there while signaling is away (and
// carries the chat: peer to peer, never through the server).
// It also runs the call's safety code exchange (verify.js) over that
// channel, once per connection.
// RTCPeerConnection, timers and the way out to signaling come in as
// parameters so that Node can drive this module with fakes.

import { createVerifier, PARTNER_ANSWER_MS } from './verify.js';

export const ICE_RESTART_TRIES = 3;
export const ICE_RESTART_WAIT_MS = 10000;
export const DISCONNECTED_GRACE_MS = 4000;

// Only entries a browser accepts; anything else from the server is dropped.
export function cleanIceServers(list) {
  return Array.isArray(list) ? list.filter((x) => x && (typeof x.urls === 'string' || Array.isArray(x.urls))) : [];
}

// signal: { send(msg) -> bool, isOpen() -> bool }, to the partner `remote`.
// localStream: what we send (its tracks are added to each connection).
// Callbacks in `on` (all optional):
//   connecting()            a connection to the partner is being set up
//   negotiated({ connected }) an offer or answer was applied
//   connected()             ICE connected (again)
//   reconnecting()          an ICE restart is under way
//   failed(reasonKey)       the connection was given up (reason.ice, reason.relay, reason.negotiation)
//   gone()                  the partner left (said bye, or its channel closed)
//   track(ev)               a remote track arrived
//   closed()                the connection was closed; nothing is received any more
//   chat(text)              the partner sent a chat message
//   channel(open)           the data channel opened (true) or went away (false)
//   verify(result)          this connection's safety code ({ code, remoteFp,
//                           remoteStable }) or why there is none ({ problem,
//                           suspicious }): verify.js
export function createPeer({
  RTCPeerConnection, timers = globalThis, now = Date.now, signal, remote, localStream, on = {},
  crypto = globalThis.crypto, certificate = null,
}) {
  const emit = (name, arg) => { if (on[name]) on[name](arg); };
  let iceServers = [];
  let relayOnly = false;
  let pc = null;
  let dc = null;
  let verifier = null; // the safety code exchange on dc
  let verifyWaiting = null; // verifier, when dc opened before the answer came
  let role = '';
  let pendingIce = [];
  let makingOffer = false;
  let pendingRestart = false;
  let restartTries = 0;
  let restartTimer = 0;
  let disconnectedTimer = 0;
  let channelTimer = 0; // a partner without a data channel (the tutorial's page)
  let connectedAt = 0;
  let videoTrack = null; // what replaceVideoTrack put in place of the camera's

  const send = (message) => signal.send({ ...message, remote });

  function isConnected() {
    return Boolean(pc) && (pc.iceConnectionState === 'connected' || pc.iceConnectionState === 'completed');
  }

  // With a data channel still open the partner is demonstrably there (the
  // server restarted, or their signaling is coming back).
  function partnerStillThere() {
    return Boolean(pc && dc && dc.readyState === 'open' && pc.connectionState !== 'failed' && pc.connectionState !== 'closed');
  }

  function open() {
    // This browser's kept certificate (identity.js), so that its fingerprint
    // is the one a partner verified before.
    const certificates = certificate ? { certificates: [certificate] } : {};
    const conn = new RTCPeerConnection(relayOnly ? { iceServers, iceTransportPolicy: 'relay', ...certificates } : { iceServers, ...certificates });
    pc = conn;
    pendingIce = [];
    makingOffer = false;
    pendingRestart = false;
    restartTries = 0;
    // A shared screen or another camera stays what we send on a new connection.
    for (const track of localStream.getTracks()) conn.addTrack(track.kind === 'video' && videoTrack ? videoTrack : track, localStream);
    conn.ontrack = (ev) => { if (conn === pc) emit('track', ev); };
    // Relay-only, a gathering that ends with no candidate means the TURN
    // server refused us (credentials) or never answered: no path can come of
    // it, so say so instead of waiting on "connecting" forever.
    let found = 0;
    conn.onicegatheringstatechange = () => { if (conn.iceGatheringState === 'gathering') found = 0; };
    conn.onicecandidate = (ev) => {
      if (conn !== pc) return;
      if (ev.candidate) {
        // Firefox ends its gathering with an empty candidate: not a path.
        if (ev.candidate.candidate) found++;
        send({ ice: ev.candidate });
      } else if (relayOnly && found === 0) {
        fail('reason.relay');
      }
    };
    conn.oniceconnectionstatechange = () => { if (conn === pc) onIceState(); };
    if (role === 'offer') watchChannel(conn.createDataChannel('duet'));
    conn.ondatachannel = (ev) => { if (conn === pc) watchChannel(ev.channel); };
  }

  function watchChannel(channel) {
    const conn = pc;
    dc = channel;
    verifier = crypto && crypto.subtle ? createVerifier({
      crypto,
      timers,
      stable: Boolean(certificate),
      send: (msg) => { if (channel === dc && channel.readyState === 'open') channel.send(JSON.stringify(msg)); },
      on: { result: (r) => { if (channel === dc) emit('verify', r); } },
    }) : null;
    const mine = verifier;
    const opened = () => {
      if (channel !== dc) return;
      emit('channel', true);
      if (!mine) {
        emit('verify', { problem: 'verify.problem.unsupported', suspicious: false });
        return;
      }
      verifyWaiting = mine;
      startVerify(conn);
    };
    channel.onopen = opened;
    if (channel.readyState === 'open') opened();
    channel.onmessage = (ev) => {
      let msg = null;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (!msg || channel !== dc) return;
      if (msg.bye) partnerGone();
      else if (typeof msg.chat === 'string') emit('chat', msg.chat);
      else if (msg.verify && mine) mine.receive(msg.verify);
    };
    channel.onclose = () => {
      if (channel === dc) partnerGone();
    };
  }

  // The exchange starts once the connection has both descriptions: the
  // channel can open before the partner's answer has come through signaling
  // (DTLS runs on the direct path and checks the fingerprint once it has it).
  function startVerify(conn) {
    if (!verifyWaiting || conn !== pc) return;
    const local = conn.currentLocalDescription || conn.localDescription;
    const remote = conn.currentRemoteDescription || conn.remoteDescription;
    if (!local || !remote) return;
    verifyWaiting.start(local, remote);
    verifyWaiting = null;
  }

  function close() {
    timers.clearTimeout(restartTimer);
    timers.clearTimeout(disconnectedTimer);
    timers.clearTimeout(channelTimer);
    channelTimer = 0;
    const conn = pc;
    const channel = dc;
    pc = null;
    dc = null;
    if (verifier) verifier.stop();
    verifier = null;
    verifyWaiting = null;
    pendingIce = [];
    connectedAt = 0;
    if (channel) { channel.onopen = null; channel.onclose = null; channel.onmessage = null; try { channel.close(); } catch (e) { /* closed */ } }
    if (conn) {
      conn.ontrack = null; conn.onicecandidate = null; conn.onicegatheringstatechange = null;
      conn.oniceconnectionstatechange = null; conn.close();
    }
    if (channel) emit('channel', false);
    emit('closed');
  }

  function partnerGone() {
    close();
    emit('gone');
  }

  function fail(reasonKey) {
    close();
    emit('failed', reasonKey);
  }

  async function makeOffer(iceRestart) {
    const conn = pc;
    if (!conn) return;
    if (conn.signalingState !== 'stable' || makingOffer || !signal.isOpen()) {
      pendingRestart = pendingRestart || iceRestart;
      return;
    }
    pendingRestart = false;
    makingOffer = true;
    try {
      const offer = await conn.createOffer(iceRestart ? { iceRestart: true } : undefined);
      if (conn !== pc) return;
      await conn.setLocalDescription(offer);
      if (conn !== pc) return;
      send({ sdp: conn.localDescription });
    } catch (e) {
      if (conn === pc) fail('reason.negotiation');
    } finally {
      makingOffer = false;
    }
  }

  // Perfect negotiation, in short: the side that got "answer" from the
  // server is polite and yields when both offer at once.
  async function onSdp(desc) {
    if (!desc || (desc.type !== 'offer' && desc.type !== 'answer')) return;
    if (!pc) {
      if (desc.type !== 'offer') return;
      open();
    }
    const conn = pc;
    const collision = desc.type === 'offer' && (makingOffer || conn.signalingState !== 'stable');
    if (role === 'offer' && collision) return;
    try {
      await conn.setRemoteDescription(desc);
    } catch (e) {
      if (conn !== pc) return;
      // A description this connection cannot take (the partner started over
      // with a new connection): start over too.
      close();
      open();
      if (desc.type === 'offer') {
        try { await pc.setRemoteDescription(desc); } catch (e2) { fail('reason.negotiation'); return; }
      } else {
        makeOffer(false);
        return;
      }
    }
    const current = pc;
    if (!current) return;
    for (const cand of pendingIce.splice(0)) current.addIceCandidate(cand).catch(() => {});
    if (desc.type === 'offer') {
      try {
        const answer = await current.createAnswer();
        if (current !== pc) return;
        await current.setLocalDescription(answer);
        if (current !== pc) return;
        send({ sdp: current.localDescription });
      } catch (e) {
        if (current === pc) fail('reason.negotiation');
        return;
      }
    }
    emit('negotiated', { connected: isConnected() });
    startVerify(current);
    if (pendingRestart && current.signalingState === 'stable') makeOffer(true);
  }

  function onIce(cand) {
    if (!cand) return;
    if (!pc || !pc.remoteDescription) {
      pendingIce.push(cand); // before the remote description: keep for later
      return;
    }
    pc.addIceCandidate(cand).catch(() => { /* a candidate of an ignored offer */ });
  }

  function onIceState() {
    const state = pc.iceConnectionState;
    if (state === 'connected' || state === 'completed') {
      timers.clearTimeout(restartTimer);
      timers.clearTimeout(disconnectedTimer);
      restartTries = 0;
      if (!connectedAt) connectedAt = now();
      if (!dc && !channelTimer) {
        const conn = pc;
        channelTimer = timers.setTimeout(() => {
          if (conn === pc && !dc) emit('verify', { problem: 'verify.problem.noAnswer', suspicious: false });
        }, PARTNER_ANSWER_MS);
      }
      emit('connected');
    } else if (state === 'disconnected') {
      timers.clearTimeout(disconnectedTimer);
      disconnectedTimer = timers.setTimeout(() => {
        if (pc && pc.iceConnectionState === 'disconnected') restartIce();
      }, DISCONNECTED_GRACE_MS);
    } else if (state === 'failed') {
      restartIce();
    }
  }

  // Tries a fresh set of ICE candidates a few times before giving up.
  function restartIce() {
    if (!pc) return;
    if (restartTries >= ICE_RESTART_TRIES) {
      fail('reason.ice');
      return;
    }
    restartTries++;
    emit('reconnecting');
    makeOffer(true);
    timers.clearTimeout(restartTimer);
    restartTimer = timers.setTimeout(() => { if (pc && !isConnected()) restartIce(); }, ICE_RESTART_WAIT_MS);
  }

  async function replaceSenderTrack(kind, track) {
    if (!pc) return;
    const sender = pc.getSenders().find((x) => x.track && x.track.kind === kind);
    if (sender) await sender.replaceTrack(track);
  }

  return {
    // The server paired us: `offer` makes the offer, `answer` waits for it.
    // Returns true when the running connection was kept.
    start(newRole) {
      role = newRole === 'offer' ? 'offer' : 'answer';
      if (pc && partnerStillThere()) {
        // The server lost us both (restart) but the media never stopped: keep
        // the call and renegotiate on the same connection.
        if (role === 'offer') makeOffer(true);
        return true;
      }
      close();
      open();
      emit('connecting');
      if (role === 'offer') makeOffer(false);
      return false;
    },
    // Both sides are back after a signaling drop.
    resumed(offerer) {
      if (!pc) {
        role = offerer ? 'offer' : 'answer';
        open();
        emit('connecting');
        if (offerer) makeOffer(false);
        return;
      }
      if (isConnected()) emit('connected');
      // An offer still unanswered may have been lost while a side moved to
      // another server (its answer met partner-away): take it back, offer anew.
      if (offerer && pc.signalingState === 'have-local-offer' && !makingOffer) {
        const conn = pc;
        conn.setLocalDescription({ type: 'rollback' }).then(() => { if (conn === pc) makeOffer(true); }, () => {});
        return;
      }
      if (offerer || pendingRestart) makeOffer(true);
    },
    // The server says the partner closed; believed only when the data
    // channel says so too.
    partnerClosed() {
      if (partnerStillThere()) return;
      partnerGone();
    },
    onSdp,
    onIce,
    restartIce,
    // The server's {"iceServers":[...]} (again before TURN credentials
    // expire, so that an ICE restart late in a call can still allocate);
    // policy 'relay' keeps every path on the TURN relay.
    setIceServers(list, policy) {
      iceServers = cleanIceServers(list);
      relayOnly = policy === 'relay';
      if (pc) {
        const config = { ...pc.getConfiguration(), iceServers, iceTransportPolicy: relayOnly ? 'relay' : 'all' };
        try { pc.setConfiguration(config); } catch (e) { /* used by the next connection */ }
      }
    },
    // Tells the partner at once that we are leaving.
    sayBye() {
      if (dc && dc.readyState === 'open') {
        try { dc.send(JSON.stringify({ bye: 1 })); } catch (e) { /* leaving anyway */ }
      }
    },
    // Sends another video track (camera, screen) without renegotiating;
    // kept for connections opened later.
    async replaceVideoTrack(track) {
      videoTrack = track;
      await replaceSenderTrack('video', track);
    },
    async replaceAudioTrack(track) {
      await replaceSenderTrack('audio', track);
    },
    // Returns false when there is no open channel to the partner.
    sendChat(text) {
      if (!dc || dc.readyState !== 'open') return false;
      try { dc.send(JSON.stringify({ chat: String(text) })); } catch (e) { return false; }
      return true;
    },
    getStats() { return pc ? pc.getStats() : Promise.resolve(null); },
    close,
    isConnected,
    get exists() { return Boolean(pc); },
    get connectedAt() { return connectedAt; },
  };
}
