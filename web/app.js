// duet's web client, put together: a call session from "Call" to "Hang up".
// signaling.js talks to the server, peer.js to the partner's browser,
// camera.js to the local devices, ui.js draws; this module turns what they
// report into what the page says, and the server's refusals into notices.
// The extras of a call each have their module: screen.js (screen sharing),
// devices.js (device choice), stats.js (connection panel), chat.js (text
// chat over the data channel), verification.js (the safety code, from
// verify.js), panels.js (their side panels), names.js (ids for "New call"),
// ring.js (ring links: calling one, and being rung).
import { createSignaling } from './signaling.js';
import { createPeer } from './peer.js';
import { createCamera, cameraProblem } from './camera.js';
import { createUI, store } from './ui.js';
import { newCallIds } from './names.js';
import { createScreenShare, canShareScreen } from './screen.js';
import { createDevices } from './devices.js';
import { createStats } from './stats.js';
import { createChat } from './chat.js';
import { createVerification } from './verification.js';
import { loadCertificate, forgetCertificate, createRemembered, fingerprintText } from './identity.js';
import { createPanels } from './panels.js';
import { createRing } from './ring.js';
import { createPush } from './push.js';

let me = '';
let peerId = '';
let peerName = ''; // who a ring call is with, shown in place of its random id
let active = false; // between "Call" and "Hang up"
let session = 0; // bumped when a session ends: work begun before it is void
let peerLeft = false;
let tickTimer = 0;
let peer = null; // this session's peer.js, or null
const inCall = () => Boolean(peer && peer.exists); // a peer connection is up or being set up
const media = navigator.mediaDevices;
const camera = media ? createCamera(media, { onEnded: (kind, id) => devices.lost(kind, id) }) : null;
const screen = media ? createScreenShare({ mediaDevices: media, onEnded: () => backToCamera() }) : null;
const canPip = Boolean(document.pictureInPictureEnabled);

const ui = createUI({
  view: () => ({
    me,
    peer: peerName || peerId,
    connectedAt: peer ? peer.connectedAt : 0,
    reconnectAt: signaling.reconnectAt,
    micOn: camera ? camera.micOn : true,
    camOn: camera ? camera.camOn : true,
    cameras: camera ? camera.cameras : 0,
    canShare: Boolean(screen) && canShareScreen(media, navigator),
    sharing: Boolean(screen && screen.sharing),
    canPip,
    inPip: Boolean(document.pictureInPictureElement),
  }),
});
const { $, t } = ui;

// The call's video sender takes the camera's track unless the screen is shown.
const sendCameraVideo = (track) => (peer && !(screen && screen.sharing) ? peer.replaceVideoTrack(track) : undefined);
const devices = media ? createDevices({
  $,
  t,
  mediaDevices: media,
  camera,
  store,
  speaker: $('remote'),
  replace: {
    videoinput: sendCameraVideo,
    audioinput: (track) => (peer ? peer.replaceAudioTrack(track) : undefined),
  },
  notice: (key, params) => ui.showNotice(key, params),
}) : null;
const stats = createStats({ $, t, getStats: () => (peer ? peer.getStats() : Promise.resolve(null)) });
const chat = createChat({
  $,
  t,
  send: (text) => Boolean(peer && peer.sendChat(text)),
  onUnread: () => renderChatButton(),
});
// This browser's kept DTLS certificate (a promise; null where it cannot be
// kept), and the partners' devices verified on earlier calls.
const identity = { indexedDB: window.indexedDB, RTCPeerConnection: window.RTCPeerConnection };
let certificate = loadCertificate(identity);
const remembered = createRemembered(store);
let verified = null; // this connection's verify.js result, while it has a code
const verification = createVerification({
  $,
  t,
  peerName: () => peerName || peerId,
  hangUp: () => hangUp(),
  // Remembered only for a partner whose certificate is kept too (else its
  // next call would look changed), and by a chosen id (a ring call's ids are
  // for that call only).
  onMatch: () => { if (verified && verified.remoteStable && !peerName) remembered.remember(peerId, fingerprintText(verified.remoteFp)); },
  onChanged: () => panels.show('verify'),
});
const panels = createPanels($, ['devices', 'stats', 'verify', 'chat'], (name, open) => {
  if (name === 'chat') {
    chat.setOpen(open);
    renderChatButton();
  }
  if (name === 'stats' && open) stats.render();
});

function renderChatButton() {
  const n = chat.unread;
  const label = n ? t('ctl.chatUnread', { count: n }) : t('ctl.chat');
  $('chat-btn').setAttribute('aria-label', label);
  $('chat-btn').title = label;
  $('chat-badge').textContent = n ? String(n) : '';
  $('chat-badge').hidden = !n;
}

// While nobody is there yet, the call screen shows the link to send.
function renderCallInvite() {
  // A ring call's ids are the server's: no link to send, the other side is on its way.
  const waiting = active && !peerName && ['status.waiting', 'status.connectingServer', 'status.peerLeft'].includes(ui.status);
  ui.setCallInvite(waiting ? ui.inviteLink({ join: true }) : '');
}

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
    closedByAdmin() { if (ui.notice !== 'err.closedByAdmin') stopAfterRefusal('err.closedByAdmin', { detail: '' }); },
    message: onServerMessage,
  },
});

const ring = createRing({
  $,
  t,
  store,
  notice: (key, params) => ui.showNotice(key, params),
  clearNotice: () => ui.clearNotice(),
  startCall: ringCall,
  WebSocket: window.WebSocket,
  url: `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/`,
  AudioContextClass: window.AudioContext || window.webkitAudioContext,
  push: createPush(),
  lang: () => document.documentElement.lang || 'en',
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
  await joinAs(names);
}

// "New call": fresh readable ids for both sides, and straight in.
async function newCall() {
  const ids = newCallIds();
  ui.fillNames(ids.me, ids.peer);
  await joinAs(ids);
}

// A ring call (remember false) keeps the page's address and the names in
// the form: its ids are for this one call, and shown is the other's name.
async function joinAs(names, { remember = true, shown = '' } = {}) {
  ui.clearNotice();
  ui.setJoinInfo('');
  const problem = browserProblem();
  if (problem) {
    ui.showNotice(problem);
    return;
  }
  // A server run with --auth-secret wants a call token: it comes in the link (?token=...).
  const authToken = new URLSearchParams(location.search).get('token') || '';
  ({ me, peer: peerId } = names);
  peerName = shown;
  if (remember) {
    store.set('me', me);
    store.set('peer', peerId);
    const query = { me, peer: peerId, ...(authToken ? { token: authToken } : {}) };
    history.replaceState(null, '', `${location.pathname}?${new URLSearchParams(query)}`);
  }

  ui.showScreen('call');
  ui.setStatus('status.camera');
  let stream;
  const started = session;
  try {
    stream = await camera.start(devices.preferred());
  } catch (e) {
    if (started !== session) return;
    ui.showScreen('join');
    ui.setStatus('status.idle');
    ui.showNotice(cameraProblem(e), { detail: (e && (e.message || e.name)) || '?' });
    return;
  }
  const kept = await certificate;
  if (started !== session) {
    // Hung up while the browser asked for the camera.
    camera.stop();
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
    certificate: kept,
  });
  tickTimer = setInterval(ui.tick, 1000);
  chat.clear();
  chat.setPeerName(peerName || peerId);
  stats.start();
  devices.start();
  signaling.start({ local: me, remote: peerId, authToken });
}

const peerEvents = {
  connecting() { ui.setStatus('status.connectingCall'); },
  negotiated({ connected }) {
    if (!connected && ui.status !== 'status.reconnecting') ui.setStatus('status.connectingCall');
  },
  connected() {
    ui.setStatus(signaling.isOpen() ? 'status.connected' : 'status.reconnecting');
    verification.working();
  },
  chat(text) { chat.received(text); },
  channel(open) { if (open) verification.working(); },
  verify(result) {
    verified = result.code ? result : null;
    const seen = verified && !peerName ? remembered.check(peerId, fingerprintText(verified.remoteFp)) : '';
    verification.result(result, seen);
  },
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
  closed() {
    $('remote').srcObject = null;
    verified = null;
    verification.reset(); // a new connection, a new code
  },
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
    case 'closed-by-admin':
      stopAfterRefusal('err.closedByAdmin', { detail: err.message || '' });
      return;
    case 'server-draining':
      return; // the close (1012) follows, and the reconnect reaches another server
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
      // Every refused call token (a JWT's auth-bad-signature, auth-wrong-audience, …).
      if (code.startsWith('auth-')) stopAfterRefusal('err.auth');
      else ui.showNotice('err.protocol', { code: code || '?' });
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
  $(ring.isCaller ? 'ring-call-btn' : 'call-btn').focus();
}

// An accepted ring: the call with the two ids the server gave, in place of
// any call still running here.
function ringCall(local, remote, name) {
  if (active) {
    if (peer) peer.sayBye();
    endSession();
  }
  joinAs({ me: local, peer: remote }, { remember: false, shown: name });
}

function endSession() {
  active = false;
  session++;
  clearInterval(tickTimer);
  renderCallInvite();
  panels.close(false);
  stats.stop();
  if (devices) devices.stop();
  if (screen) screen.stop();
  if (document.pictureInPictureElement) document.exitPictureInPicture().catch(() => {});
  if (peer) peer.close();
  peer = null;
  signaling.stop();
  if (camera) camera.stop();
  $('local').srcObject = null;
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
}

async function switchCamera() {
  try {
    await camera.switchCamera(sendCameraVideo);
    devices.render();
  } catch (e) {
    ui.showNotice('err.cameraSwitch');
  }
}

async function toggleScreenShare() {
  if (screen.sharing) {
    screen.stop();
    await backToCamera();
    return;
  }
  let track;
  const started = session;
  try {
    track = await screen.start();
    if (started !== session) {
      // The call ended while the browser's picker was open.
      screen.stop();
      return;
    }
  } catch (e) {
    // Cancelling the browser's picker is a choice, not a failure.
    if (!e || e.name !== 'NotAllowedError') ui.showNotice('err.share', { detail: (e && (e.message || e.name)) || '?' });
    return;
  }
  if (peer) await peer.replaceVideoTrack(track);
  $('local').srcObject = new MediaStream([track]);
  ui.renderControls();
}

// Sharing ended (our button, or the browser's own "Stop sharing").
async function backToCamera() {
  const cam = camera && camera.stream;
  if (cam) {
    if (peer) await peer.replaceVideoTrack(cam.getVideoTracks()[0] || null);
    $('local').srcObject = cam;
  }
  ui.renderControls();
}

function togglePictureInPicture() {
  const p = document.pictureInPictureElement ? document.exitPictureInPicture() : $('remote').requestPictureInPicture();
  p.then(() => ui.renderControls(), () => {});
}

function toggleFullscreen() {
  const p = document.fullscreenElement ? document.exitFullscreen() : $('call').requestFullscreen();
  p.then(() => ui.renderControls(), () => ui.showNotice('err.fullscreen'));
}

// The installed app opens without a network (sw.js keeps the page): it says
// so, and looks again every few seconds until the server answers. Not
// navigator.onLine: a duetd on this machine or LAN works without internet.
// A HEAD of this page, which the worker lets through to the server.
let serverCheckTimer = 0;
async function checkServer() {
  clearTimeout(serverCheckTimer);
  let reachable = true;
  try {
    await fetch(location.pathname, { method: 'HEAD', cache: 'no-store' });
  } catch (e) {
    reachable = false;
  }
  if (reachable) {
    if (ui.notice === 'err.offline') ui.clearNotice();
    return;
  }
  if (!ui.notice || ui.notice === 'err.offline') ui.showNotice('err.offline');
  serverCheckTimer = setTimeout(checkServer, 5000);
}

function init() {
  ui.init();
  verification.render();
  ring.init();
  $('join-form').addEventListener('submit', startCall);
  $('new-call-btn').addEventListener('click', newCall);
  $('screen-btn').addEventListener('click', toggleScreenShare);
  $('pip-btn').addEventListener('click', togglePictureInPicture);
  for (const ev of ['enterpictureinpicture', 'leavepictureinpicture']) $('remote').addEventListener(ev, () => ui.renderControls());
  ui.onStatus(renderCallInvite);
  ui.onForget(() => {
    remembered.forget();
    // A new certificate from the next call on: nothing links it to this one.
    certificate = forgetCertificate(identity).then(() => loadCertificate(identity));
  });
  ui.onLanguage(() => {
    renderChatButton();
    chat.render();
    stats.render();
    if (devices) devices.render();
    verification.render();
    ring.render();
  });
  $('mic-btn').addEventListener('click', () => { camera.toggleMic(); ui.renderControls(); });
  $('cam-btn').addEventListener('click', () => { camera.toggleCam(); ui.renderControls(); });
  $('switch-btn').addEventListener('click', switchCamera);
  $('fs-btn').addEventListener('click', toggleFullscreen);
  $('hangup-btn').addEventListener('click', hangUp);
  window.addEventListener('offline', checkServer);
  window.addEventListener('online', () => {
    checkServer();
    signaling.reconnectNow();
    if (peer) peer.restartIce();
  });
  if (navigator.connection && navigator.connection.addEventListener) {
    navigator.connection.addEventListener('change', () => { if (peer && active) peer.restartIce(); });
  }
  window.addEventListener('pagehide', () => {
    if (peer) peer.sayBye();
    signaling.leave();
    ring.leave();
  });
  window.addEventListener('pageshow', (ev) => { if (ev.persisted) ring.resume(); });
  const problem = browserProblem();
  if (problem) ui.showNotice(problem);
  // A call's invite link (?join=1) gets the page ready: one press of Call
  // joins. Never the camera from a link alone: any page could send someone
  // to one, with a partner waiting to watch.
  else if (!ring.isCaller && new URLSearchParams(location.search).get('join') === '1' && ui.checkedNames()) {
    ui.setJoinInfo('join.invited');
    $('call-btn').focus();
  }
  // Only a page sw.js served may have come from its copy, without a server.
  if (!problem && navigator.serviceWorker && navigator.serviceWorker.controller) checkServer();
}

init();
renderChatButton();
