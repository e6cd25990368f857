// Small stand-ins for the browser objects web/signaling.js and web/peer.js
// take as parameters: a clock with timers that only move when a test says
// so, a WebSocket the test plays the server for, and an RTCPeerConnection
// that keeps the signaling states of the WebRTC specification.

// Timers run in time order when advance() passes their moment.
export function fakeClock(start = 1000000) {
  let time = start;
  let nextId = 1;
  const pending = new Map();
  const add = (fn, ms, every) => {
    const id = nextId++;
    pending.set(id, { at: time + Math.max(0, ms), fn, every });
    return id;
  };
  const remove = (id) => { pending.delete(id); };
  return {
    timers: {
      setTimeout: (fn, ms) => add(fn, ms, 0),
      clearTimeout: remove,
      setInterval: (fn, ms) => add(fn, ms, ms),
      clearInterval: remove,
    },
    now: () => time,
    advance(ms) {
      const end = time + ms;
      for (;;) {
        let id = 0;
        let due = null;
        for (const [k, t] of pending) if (t.at <= end && (!due || t.at < due.at)) { id = k; due = t; }
        if (!due) break;
        time = due.at;
        if (due.every) due.at += due.every;
        else pending.delete(id);
        due.fn();
      }
      time = end;
    },
  };
}

// Every socket made is kept in `sockets`; the test opens, feeds and closes
// them as the server would. close() reports its close event a tick later,
// as browsers do.
export function fakeWebSocket() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = FakeWebSocket.CONNECTING;
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }

    send(data) {
      if (this.readyState !== FakeWebSocket.OPEN) throw new Error('InvalidStateError: not open');
      this.sent.push(JSON.parse(data));
    }

    close(code, reason) {
      if (this.readyState >= FakeWebSocket.CLOSING) return;
      this.closedWith = { code, reason };
      this.readyState = FakeWebSocket.CLOSING;
      queueMicrotask(() => this.serverCloses(code === undefined ? 1005 : code));
    }

    serverOpens() {
      this.readyState = FakeWebSocket.OPEN;
      if (this.onopen) this.onopen({});
    }

    serverSends(message) {
      if (this.onmessage) this.onmessage({ data: JSON.stringify(message) });
    }

    serverCloses(code = 1006) {
      this.readyState = FakeWebSocket.CLOSED;
      if (this.onclose) this.onclose({ code });
    }
  }
  FakeWebSocket.CONNECTING = 0;
  FakeWebSocket.OPEN = 1;
  FakeWebSocket.CLOSING = 2;
  FakeWebSocket.CLOSED = 3;
  return { FakeWebSocket, sockets };
}

// Lets promise chains and queued microtasks run to their end.
export const settle = () => new Promise((resolve) => setImmediate(resolve));

export class FakeChannel {
  constructor(label) {
    this.label = label;
    this.readyState = 'connecting';
    this.sent = [];
  }

  send(data) { this.sent.push(JSON.parse(data)); }

  close() { this.readyState = 'closed'; }
}

// Every connection made is kept in `connections`. Descriptions follow the
// specification's signaling states (an offer applied in have-local-offer
// rolls the local one back, as browsers do); a description whose sdp is
// "unusable" is refused.
export function fakePeerConnection() {
  const connections = [];
  let made = 0;
  class FakePeerConnection {
    constructor(config) {
      this.config = config;
      this.signalingState = 'stable';
      this.iceConnectionState = 'new';
      this.connectionState = 'new';
      this.localDescription = null;
      this.remoteDescription = null;
      this.senders = [];
      this.candidates = [];
      this.channels = [];
      this.offerOptions = [];
      this.closed = false;
      connections.push(this);
    }

    addTrack(track) {
      const sender = { track, replaceTrack: async (t) => { sender.track = t; } };
      this.senders.push(sender);
      return sender;
    }

    getSenders() { return this.senders; }

    createDataChannel(label) {
      const channel = new FakeChannel(label);
      this.channels.push(channel);
      return channel;
    }

    async createOffer(options) {
      this.offerOptions.push(options);
      made++;
      return { type: 'offer', sdp: `offer ${made}${options && options.iceRestart ? ' ice-restart' : ''}` };
    }

    async createAnswer() {
      if (this.signalingState !== 'have-remote-offer') throw new Error('InvalidStateError: no remote offer');
      made++;
      return { type: 'answer', sdp: `answer ${made}` };
    }

    async setLocalDescription(desc) {
      if (this.closed) throw new Error('InvalidStateError: closed');
      if (desc.type === 'rollback') {
        if (this.signalingState !== 'have-local-offer') throw new Error('InvalidStateError: nothing to roll back');
        this.signalingState = 'stable';
        this.rolledBack = (this.rolledBack || 0) + 1;
        return;
      }
      if (desc.type === 'offer' && this.signalingState !== 'stable') throw new Error('InvalidStateError: not stable');
      if (desc.type === 'answer' && this.signalingState !== 'have-remote-offer') throw new Error('InvalidStateError: no remote offer');
      this.signalingState = desc.type === 'offer' ? 'have-local-offer' : 'stable';
      this.localDescription = desc;
    }

    async setRemoteDescription(desc) {
      if (this.closed) throw new Error('InvalidStateError: closed');
      if (desc.sdp === 'unusable') throw new Error('OperationError: cannot apply');
      if (desc.type === 'answer' && this.signalingState !== 'have-local-offer') throw new Error('InvalidStateError: no local offer');
      this.signalingState = desc.type === 'offer' ? 'have-remote-offer' : 'stable';
      this.remoteDescription = desc;
    }

    async addIceCandidate(candidate) {
      if (!this.remoteDescription) throw new Error('InvalidStateError: no remote description');
      this.candidates.push(candidate);
    }

    getConfiguration() { return { ...this.config }; }

    setConfiguration(config) { this.config = config; }

    close() {
      this.closed = true;
      this.signalingState = 'closed';
      this.connectionState = 'closed';
    }

    // Driven by the test: the ICE agent's state changes.
    iceState(state) {
      this.iceConnectionState = state;
      const overall = { checking: 'connecting', completed: 'connected' };
      this.connectionState = overall[state] || state;
      if (this.oniceconnectionstatechange) this.oniceconnectionstatechange();
    }
  }
  return { FakePeerConnection, connections };
}
