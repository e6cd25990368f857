// duet's web client, put together: a call session from "Call" to "Hang up".
// signaling.js talks to the server, peer.js to the partner's browser,
// camera.js to the local devices, ui.js draws; this module turns what they
// report into what the page says, and the server's refusals into notices.
import { createSignaling } from './signaling.js';
import { createPeer } from './peer.js';
import { createCamera, cameraProblem } from './camera.js';
import { createUI, store } from './ui.js';

let me = '';
let peerId = '';
let active = false; // between "Call" and "Hang up"
let peerLeft = false;
let tickTimer = 0;
let peer = null; // this session's peer.js, or null
const inCall = () => Boolean(peer && peer.exists); // a peer connection is up or being set up
const camera = navigator.mediaDevices ? createCamera(navigator.mediaDevices) : null;

const ui = createUI({
  view: () => ({
    me,
    peer: peerId,
    connectedAt: peer ? peer.connectedAt : 0,
    reconnectAt: signaling.reconnectAt,
    micOn: camera ? camera.micOn : true,
    camOn: camera ? camera.camOn : true,
    cameras: camera ? camera.cameras : 0,
  }),
});
const { $ } = ui;

const signaling = createSignaling({
  url: `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/`,
  WebSocket: window.WebSocket,
  on: {
    connecting({ first }) {
      if (!inCall()) ui.setStatus(first ? 'status.connectingServer' : 'status.reconnecting');
    },
    open() {
      if (['err.serverUnreachable', 'err.serverFull'].includes(ui.notice)) ui.clearNotice();
      if (!inCall()) ui.setStatus(peerLeft ? 'status.peerLeft' : 'status.waiting');
      else if (peer.isConnected()) ui.setStatus('status.connected');
    },
    retry({ attempt, everOpened, code }) {
      if (code === 1013 || code === 1008) ui.showNotice('err.serverFull');
      if (!everOpened && attempt >= 2 && ui.notice !== 'err.serverFull') ui.showNotice('err.serverUnreachable');
      ui.setStatus(inCall() ? 'status.reconnecting' : 'status.reconnectingServer');
    },
    replaced() { stopAfterRefusal('err.replaced'); },
    message: onServerMessage,
  },
});

function browserProblem() {
  if (!window.isSecureContext) return 'err.insecure';
  if (!window.RTCPeerConnection || !window.WebSocket || !camera || !navigator.mediaDevices.getUserMedia) return 'err.unsupported';
  return '';
}

async function startCall(ev) {
  ev.preventDefault();
  const names = ui.checkedNames();
  if (!names) return;
  ui.clearNotice();
  ui.setJoinInfo('');
  const problem = browserProblem();
  if (problem) {
    ui.showNotice(problem);
    return;
  }
  ({ me, peer: peerId } = names);
  store.set('me', me);
  store.set('peer', peerId);
  history.replaceState(null, '', `${location.pathname}?${new URLSearchParams({ me, peer: peerId })}`);

  ui.showScreen('call');
  ui.setStatus('status.camera');
  let stream;
  try {
    stream = await camera.start();
  } catch (e) {
    ui.showScreen('join');
    ui.setStatus('status.idle');
    ui.showNotice(cameraProblem(e), { detail: (e && (e.message || e.name)) || '?' });
    return;
  }
  $('local').srcObject = stream;
  ui.renderControls();
  active = true;
  peerLeft = false;
  peer = createPeer({
    RTCPeerConnection: window.RTCPeerConnection,
    signal: signaling,
    remote: peerId,
    localStream: stream,
    on: peerEvents,
  });
  tickTimer = setInterval(ui.tick, 1000);
  // A server run with --auth-secret wants a call token: it comes in the link (?token=...).
  const authToken = new URLSearchParams(location.search).get('token') || '';
  signaling.start({ local: me, remote: peerId, authToken });
}

const peerEvents = {
  connecting() { ui.setStatus('status.connectingCall'); },
  negotiated({ connected }) {
    if (!connected && ui.status !== 'status.reconnecting') ui.setStatus('status.connectingCall');
  },
  connected() { ui.setStatus(signaling.isOpen() ? 'status.connected' : 'status.reconnecting'); },
  reconnecting() { ui.setStatus('status.reconnecting'); },
  failed(reasonKey) { ui.setStatus('status.failed', { reasonKey }); },
  gone() {
    if (!active) return;
    peerLeft = true;
    ui.setStatus('status.peerLeft');
  },
  track(ev) {
    const remote = $('remote');
    const stream = ev.streams[0] || new MediaStream([ev.track]);
    if (remote.srcObject !== stream) remote.srcObject = stream;
  },
  closed() { $('remote').srcObject = null; },
};

function onServerMessage(msg) {
  if ('iceServers' in msg) peer.setIceServers(msg.iceServers, msg.iceTransportPolicy);
  if ('start' in msg) {
    peerLeft = false;
    ui.clearNotice();
    peer.start(msg.start);
  } else if ('resumed' in msg) {
    peer.resumed(msg.resumed === 'offer');
  } else if ('sdp' in msg) {
    peer.onSdp(msg.sdp);
  } else if ('ice' in msg) {
    peer.onIce(msg.ice);
  } else if ('close' in msg) {
    peer.partnerClosed();
  } else if ('error' in msg) {
    onServerError(msg.error || {});
  }
}

function onServerError(err) {
  const code = String(err.code || '');
  switch (code) {
    case 'id-taken':
      stopAfterRefusal('err.idTaken');
      return;
    case 'replaced':
      stopAfterRefusal('err.replaced');
      return;
    case 'bad-request':
      stopAfterRefusal('err.badRequest', { detail: err.message || code });
      return;
    case 'auth-missing':
    case 'auth-invalid':
    case 'auth-expired':
    case 'auth-wrong-id':
      stopAfterRefusal('err.auth');
      return;
    case 'server-full':
    case 'too-many-connections':
      ui.showNotice('err.serverFull');
      return;
    case 'open-timeout':
    case 'rate-limited':
    case 'not-paired':
    case 'not-your-partner':
    case 'partner-away':
      return; // passing trouble: the close, resume or next start sorts it out
    default:
      ui.showNotice('err.protocol', { code: code || '?' });
  }
}

function stopAfterRefusal(noticeKey, params) {
  endSession();
  ui.setStatus('status.idle');
  ui.showScreen('join');
  ui.showNotice(noticeKey, params);
}

// Ends the session from this side: the partner hears "bye" over the data
// channel at once (the server holds a resumable place for a while).
function hangUp() {
  if (peer) peer.sayBye();
  endSession();
  ui.setJoinInfo('status.ended');
  ui.setStatus('status.ended');
  ui.showScreen('join');
  $('call-btn').focus();
}

function endSession() {
  active = false;
  clearInterval(tickTimer);
  if (peer) peer.close();
  peer = null;
  signaling.stop();
  if (camera) camera.stop();
  $('local').srcObject = null;
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
}

async function switchCamera() {
  try {
    await camera.switchCamera((track) => (peer ? peer.replaceVideoTrack(track) : undefined));
    $('local').srcObject = camera.stream;
  } catch (e) {
    ui.showNotice('err.cameraSwitch');
  }
}

function toggleFullscreen() {
  const p = document.fullscreenElement ? document.exitFullscreen() : $('call').requestFullscreen();
  p.then(() => ui.renderControls(), () => ui.showNotice('err.fullscreen'));
}

function init() {
  ui.init();
  $('join-form').addEventListener('submit', startCall);
  $('mic-btn').addEventListener('click', () => { camera.toggleMic(); ui.renderControls(); });
  $('cam-btn').addEventListener('click', () => { camera.toggleCam(); ui.renderControls(); });
  $('switch-btn').addEventListener('click', switchCamera);
  $('fs-btn').addEventListener('click', toggleFullscreen);
  $('hangup-btn').addEventListener('click', hangUp);
  window.addEventListener('online', () => {
    signaling.reconnectNow();
    if (peer) peer.restartIce();
  });
  if (navigator.connection && navigator.connection.addEventListener) {
    navigator.connection.addEventListener('change', () => { if (peer && active) peer.restartIce(); });
  }
  window.addEventListener('pagehide', () => {
    if (peer) peer.sayBye();
    signaling.leave();
  });
  const problem = browserProblem();
  if (problem) ui.showNotice(problem);
}

init();
