// duet's web client: the join form, the call screen, and the signaling of
// protocol v1 (open/start/sdp/ice/close/ping) with duet's additions (error,
// resume tokens, iceServers). All text comes from i18n.js.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const MAX_ID_BYTES = 256;
  const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
  const PING_EVERY_MS = 20000;
  const SILENCE_LIMIT_MS = 50000;
  const ICE_RESTART_TRIES = 3;
  const ICE_RESTART_WAIT_MS = 10000;
  const DISCONNECTED_GRACE_MS = 4000;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 30000;

  const store = {
    get(key) {
      try { return localStorage.getItem(`duet.${key}`) || ''; } catch (e) { return ''; }
    },
    set(key, value) {
      try { localStorage.setItem(`duet.${key}`, value); } catch (e) { /* private mode: nothing to remember */ }
    },
  };

  const s = {
    lang: 'en',
    me: '',
    peer: '',
    active: false, // between "Call" and "Hang up"
    ws: null,
    wsOpened: false, // the current socket reached onopen
    everOpened: false, // some socket of this session reached onopen
    attempt: 0,
    reconnectTimer: 0,
    reconnectAt: 0,
    pingTimer: 0,
    lastHeard: 0,
    token: '',
    iceServers: [],
    pc: null,
    dc: null,
    role: '',
    pendingIce: [],
    makingOffer: false,
    ignoreOffer: false,
    pendingRestart: false,
    restartTries: 0,
    restartTimer: 0,
    disconnectedTimer: 0,
    connectedAt: 0,
    tickTimer: 0,
    localStream: null,
    videoInputs: [],
    videoIndex: 0,
    micOn: true,
    camOn: true,
    status: { key: 'status.idle', params: {} },
    notice: null, // {key, params}
    joinInfo: null,
    opens: 0,
    peerLeft: false,
  };

  // ---- text -------------------------------------------------------------
  const t = (key, params) => duetFormat(s.lang, key, params);

  function applyLanguage(lang) {
    s.lang = lang;
    document.documentElement.lang = lang;
    for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll('[data-i18n-attr]')) {
      for (const pair of el.dataset.i18nAttr.split(';')) {
        const [attr, key] = pair.split(':');
        el.setAttribute(attr.trim(), t(key.trim()));
      }
    }
    $('lang').value = lang;
    renderStatus();
    renderNotice();
    renderControls();
    renderValidation(false);
    renderJoinInfo();
    renderInvite();
  }

  function setStatus(key, params = {}) {
    s.status = { key, params };
    renderStatus();
  }

  function renderStatus() {
    const { key, params } = s.status;
    const all = { peer: s.peer, ...params };
    if (key === 'status.connected') all.time = formatDuration(Date.now() - s.connectedAt);
    if (key === 'status.reconnectingServer') all.seconds = Math.max(0, Math.ceil((s.reconnectAt - Date.now()) / 1000));
    if (params.reasonKey) all.reason = t(params.reasonKey);
    const el = $('status');
    el.textContent = t(key, all);
    el.dataset.status = key.replace('status.', '');
  }

  function formatDuration(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const sec = String(total % 60).padStart(2, '0');
    return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
  }

  function showNotice(key, params = {}) {
    s.notice = { key, params };
    renderNotice();
  }

  function clearNotice() {
    s.notice = null;
    renderNotice();
  }

  function renderNotice() {
    const el = $('notice');
    if (!s.notice) {
      el.hidden = true;
      el.textContent = '';
      delete el.dataset.code;
      return;
    }
    const params = { me: s.me, peer: s.peer, ...s.notice.params };
    if (s.notice.key === 'err.serverUnreachable' || s.notice.key === 'err.serverFull') {
      params.seconds = Math.max(0, Math.ceil((s.reconnectAt - Date.now()) / 1000));
    }
    el.textContent = t(s.notice.key, params);
    el.dataset.code = s.notice.key;
    el.hidden = false;
  }

  function renderJoinInfo() {
    const el = $('join-info');
    el.textContent = s.joinInfo ? t(s.joinInfo) : '';
    el.hidden = !s.joinInfo;
  }

  // Seconds-counting texts and the call timer are redrawn every second.
  function tick() {
    if (['status.connected', 'status.reconnectingServer'].includes(s.status.key)) renderStatus();
    if (s.notice && ['err.serverUnreachable', 'err.serverFull'].includes(s.notice.key)) renderNotice();
  }

  // ---- the join form ------------------------------------------------------
  // The server's id rules: non-empty, at most 256 bytes of UTF-8, no control
  // characters, and the two ids different.
  function idProblem(id) {
    if (id.length === 0) return 'valid.empty';
    if (new TextEncoder().encode(id).length > MAX_ID_BYTES) return 'valid.tooLong';
    if (CONTROL_CHARS.test(id)) return 'valid.control';
    return '';
  }

  function validate() {
    const me = $('me').value;
    const peer = $('peer').value;
    const problems = { me: idProblem(me), peer: idProblem(peer) };
    if (!problems.me && !problems.peer && me === peer) problems.peer = 'valid.same';
    return problems;
  }

  let showValidation = false;
  function renderValidation(focus) {
    const problems = validate();
    for (const field of ['me', 'peer']) {
      const input = $(field);
      const err = $(`${field}-error`);
      const problem = showValidation ? problems[field] : '';
      input.setAttribute('aria-invalid', problem ? 'true' : 'false');
      err.textContent = problem ? t(problem) : '';
      err.hidden = !problem;
    }
    if (focus) {
      if (problems.me) $('me').focus();
      else if (problems.peer) $('peer').focus();
    }
    return !problems.me && !problems.peer;
  }

  function inviteLink() {
    const me = $('me').value;
    const peer = $('peer').value;
    if (idProblem(me) || idProblem(peer) || me === peer) return '';
    const q = new URLSearchParams({ me: peer, peer: me });
    return `${location.origin}${location.pathname}?${q}`;
  }

  function renderInvite() {
    const link = inviteLink();
    $('invite-empty').hidden = Boolean(link);
    $('invite-box').hidden = !link;
    $('invite-link').value = link;
    const canvas = $('qr');
    const tooLong = $('qr-too-long');
    tooLong.hidden = true;
    if (!link) return;
    const code = DuetQR.encode(link);
    if (!code) {
      canvas.hidden = true;
      tooLong.hidden = false;
      return;
    }
    canvas.hidden = false;
    const quiet = 4;
    const scale = Math.max(2, Math.floor(232 / (code.size + 2 * quiet)));
    const px = (code.size + 2 * quiet) * scale;
    canvas.width = px;
    canvas.height = px;
    canvas.dataset.version = String(code.version);
    const g = canvas.getContext('2d');
    g.fillStyle = '#ffffff';
    g.fillRect(0, 0, px, px);
    g.fillStyle = '#000000';
    for (let r = 0; r < code.size; r++) {
      for (let c = 0; c < code.size; c++) if (code.modules[r][c]) g.fillRect((c + quiet) * scale, (r + quiet) * scale, scale, scale);
    }
  }

  async function copyInvite() {
    const link = inviteLink();
    if (!link) return;
    const status = $('copy-status');
    try {
      await navigator.clipboard.writeText(link);
      status.textContent = t('join.invite.copied');
    } catch (e) {
      $('invite-link').select();
      status.textContent = t('join.invite.copyFailed');
    }
  }

  function onFormInput() {
    store.set('me', $('me').value);
    store.set('peer', $('peer').value);
    $('copy-status').textContent = '';
    renderValidation(false);
    renderInvite();
  }

  // ---- the call -------------------------------------------------------------
  function browserProblem() {
    if (!window.isSecureContext) return 'err.insecure';
    if (!window.RTCPeerConnection || !window.WebSocket || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return 'err.unsupported';
    return '';
  }

  function cameraProblem(e) {
    const name = e && e.name;
    if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') return 'err.cameraBlocked';
    if (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'DevicesNotFoundError') return 'err.cameraMissing';
    if (name === 'NotReadableError' || name === 'AbortError' || name === 'TrackStartError') return 'err.cameraBusy';
    return 'err.cameraOther';
  }

  async function startCall(ev) {
    ev.preventDefault();
    showValidation = true;
    if (!renderValidation(true)) return;
    clearNotice();
    s.joinInfo = null;
    renderJoinInfo();
    const problem = browserProblem();
    if (problem) {
      showNotice(problem);
      return;
    }
    s.me = $('me').value;
    s.peer = $('peer').value;
    store.set('me', s.me);
    store.set('peer', s.peer);
    history.replaceState(null, '', `${location.pathname}?${new URLSearchParams({ me: s.me, peer: s.peer })}`);

    showScreen('call');
    setStatus('status.camera');
    try {
      s.localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { facingMode: 'user' } });
    } catch (e) {
      showScreen('join');
      setStatus('status.idle');
      showNotice(cameraProblem(e), { detail: (e && (e.message || e.name)) || '?' });
      return;
    }
    s.micOn = true;
    s.camOn = true;
    $('local').srcObject = s.localStream;
    await findCameras();
    renderControls();
    s.active = true;
    s.everOpened = false;
    s.attempt = 0;
    s.token = '';
    s.connectedAt = 0;
    s.tickTimer = setInterval(tick, 1000);
    openSocket();
  }

  function showScreen(name) {
    $('join').hidden = name !== 'join';
    $('call').hidden = name !== 'call';
    document.body.dataset.screen = name;
  }

  // Ends the session from this side: the partner hears "bye" over the data
  // channel at once (the server holds a resumable place for a while).
  function hangUp() {
    if (s.dc && s.dc.readyState === 'open') {
      try { s.dc.send(JSON.stringify({ bye: 1 })); } catch (e) { /* closing anyway */ }
    }
    endSession();
    s.joinInfo = 'status.ended';
    setStatus('status.ended');
    showScreen('join');
    renderJoinInfo();
    $('call-btn').focus();
  }

  function endSession() {
    s.active = false;
    closePeer();
    clearTimeout(s.reconnectTimer);
    clearInterval(s.pingTimer);
    clearInterval(s.tickTimer);
    if (s.ws) {
      const ws = s.ws;
      s.ws = null;
      try { ws.close(1000, 'hang up'); } catch (e) { /* already closed */ }
    }
    if (s.localStream) for (const track of s.localStream.getTracks()) track.stop();
    s.localStream = null;
    $('local').srcObject = null;
    s.token = '';
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  }

  // ---- signaling ----------------------------------------------------------
  function send(message) {
    if (s.ws && s.ws.readyState === WebSocket.OPEN) {
      s.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  function openSocket() {
    clearTimeout(s.reconnectTimer);
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/`);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    s.ws = ws;
    s.wsOpened = false;
    if (!s.pc) setStatus(s.everOpened ? 'status.reconnecting' : 'status.connectingServer');
    ws.onopen = () => {
      if (ws !== s.ws) return;
      s.wsOpened = true;
      s.everOpened = true;
      s.opens++;
      s.lastHeard = Date.now();
      if (s.notice && ['err.serverUnreachable', 'err.serverFull'].includes(s.notice.key)) clearNotice();
      // resume "" asks for a token; a token we hold asks for our place back.
      const open = { local: s.me, remote: s.peer, resume: s.token };
      // A server run with --auth-secret wants a call token: it comes in the link (?token=...).
      const authToken = new URLSearchParams(location.search).get('token');
      if (authToken) open.token = authToken;
      send({ open });
      clearInterval(s.pingTimer);
      s.pingTimer = setInterval(keepAlive, PING_EVERY_MS);
      if (!s.pc) setStatus(s.peerLeft ? 'status.peerLeft' : 'status.waiting');
      else if (isConnected()) setStatus('status.connected');
    };
    ws.onmessage = (ev) => {
      if (ws !== s.ws) return;
      s.lastHeard = Date.now();
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg && typeof msg === 'object') onSignal(msg);
    };
    ws.onclose = (ev) => {
      if (ws !== s.ws) return;
      s.ws = null;
      clearInterval(s.pingTimer);
      if (!s.active) return;
      if (ev.code === 4001) { // replaced by a newer connection with our id
        stopAfterServerRefusal('err.replaced');
        return;
      }
      if (ev.code === 1013 || ev.code === 1008) showNotice('err.serverFull');
      scheduleReconnect();
    };
  }

  function keepAlive() {
    if (Date.now() - s.lastHeard > SILENCE_LIMIT_MS && s.ws) {
      // The server has said nothing for too long: the socket is dead.
      s.ws.close();
      return;
    }
    send({ ping: 1 });
  }

  // Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... up to 30 s, each
  // scaled by a random 50-100 % so a crowd does not come back in step.
  function scheduleReconnect() {
    clearTimeout(s.reconnectTimer);
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** s.attempt);
    const delay = Math.round(base * (0.5 + Math.random() * 0.5));
    s.attempt++;
    s.reconnectAt = Date.now() + delay;
    s.reconnectTimer = setTimeout(() => { if (s.active) openSocket(); }, delay);
    if (!s.everOpened && s.attempt >= 2 && !(s.notice && s.notice.key === 'err.serverFull')) showNotice('err.serverUnreachable');
    if (s.pc) setStatus('status.reconnecting');
    else setStatus('status.reconnectingServer');
  }

  function reconnectNow() {
    if (s.active && !s.ws) {
      s.attempt = 0;
      openSocket();
    }
  }

  function stopAfterServerRefusal(noticeKey, params) {
    endSession();
    setStatus('status.idle');
    showScreen('join');
    showNotice(noticeKey, params);
  }

  function onSignal(msg) {
    if ('iceServers' in msg) onIceServers(msg.iceServers);
    if ('start' in msg) onStart(msg);
    else if ('resumed' in msg) onResumed(msg);
    else if ('sdp' in msg) onSdp(msg.sdp);
    else if ('ice' in msg) onIce(msg.ice);
    else if ('close' in msg) onPartnerClosed();
    else if ('ping' in msg) send({ pong: 1 });
    else if ('error' in msg) onError(msg.error || {});
  }

  function onIceServers(list) {
    s.iceServers = Array.isArray(list) ? list.filter((x) => x && (typeof x.urls === 'string' || Array.isArray(x.urls))) : [];
    if (s.pc) {
      try { s.pc.setConfiguration({ ...s.pc.getConfiguration(), iceServers: s.iceServers }); } catch (e) { /* used by the next call */ }
    }
  }

  function onError(err) {
    const code = String(err.code || '');
    switch (code) {
      case 'id-taken':
        if (s.token) { // our own old connection still holds the id: try again soon
          if (s.ws) s.ws.close();
          return;
        }
        stopAfterServerRefusal('err.idTaken');
        return;
      case 'replaced':
        stopAfterServerRefusal('err.replaced');
        return;
      case 'bad-request':
        stopAfterServerRefusal('err.badRequest', { detail: err.message || code });
        return;
      case 'auth-missing':
      case 'auth-invalid':
      case 'auth-expired':
      case 'auth-wrong-id':
        stopAfterServerRefusal('err.auth');
        return;
      case 'server-full':
      case 'too-many-connections':
        showNotice('err.serverFull');
        return;
      case 'open-timeout':
      case 'rate-limited':
      case 'not-paired':
      case 'not-your-partner':
      case 'partner-away':
        return; // passing trouble: the close, resume or next start sorts it out
      default:
        showNotice('err.protocol', { code: code || '?' });
    }
  }

  function onStart(msg) {
    s.role = msg.start === 'offer' ? 'offer' : 'answer';
    s.token = typeof msg.resume === 'string' ? msg.resume : '';
    s.peerLeft = false;
    clearNotice();
    if (s.pc && peerStillThere()) {
      // The server lost us both (restart) but the media never stopped: keep
      // the call and renegotiate on the same connection.
      if (s.role === 'offer') makeOffer(true);
      return;
    }
    closePeer();
    newPeer();
    setStatus('status.connectingCall');
    if (s.role === 'offer') makeOffer(false);
  }

  function onResumed(msg) {
    if (typeof msg.resume === 'string' && msg.resume) s.token = msg.resume;
    const offerer = msg.resumed === 'offer';
    if (!s.pc) {
      s.role = offerer ? 'offer' : 'answer';
      newPeer();
      setStatus('status.connectingCall');
      if (offerer) makeOffer(false);
      return;
    }
    if (isConnected()) setStatus('status.connected');
    if (offerer) makeOffer(true);
    else if (s.pendingRestart) makeOffer(true);
  }

  function onPartnerClosed() {
    // With a data channel still open the partner is demonstrably there (the
    // server restarted, or their signaling is coming back): keep the media.
    if (peerStillThere()) return;
    partnerGone();
  }

  function partnerGone() {
    if (!s.active) return;
    closePeer();
    s.peerLeft = true;
    setStatus('status.peerLeft');
  }

  // ---- the peer connection ------------------------------------------------
  function isConnected() {
    return Boolean(s.pc) && (s.pc.iceConnectionState === 'connected' || s.pc.iceConnectionState === 'completed');
  }

  function peerStillThere() {
    return Boolean(s.pc && s.dc && s.dc.readyState === 'open' && s.pc.connectionState !== 'failed' && s.pc.connectionState !== 'closed');
  }

  function newPeer() {
    const pc = new RTCPeerConnection({ iceServers: s.iceServers });
    s.pc = pc;
    s.pendingIce = [];
    s.makingOffer = false;
    s.ignoreOffer = false;
    s.pendingRestart = false;
    s.restartTries = 0;
    for (const track of s.localStream.getTracks()) pc.addTrack(track, s.localStream);
    pc.ontrack = (ev) => {
      if (pc !== s.pc) return;
      const remote = $('remote');
      const stream = ev.streams[0] || new MediaStream([ev.track]);
      if (remote.srcObject !== stream) remote.srcObject = stream;
    };
    pc.onicecandidate = (ev) => {
      if (pc === s.pc && ev.candidate) send({ ice: ev.candidate, remote: s.peer });
    };
    pc.oniceconnectionstatechange = () => { if (pc === s.pc) onIceState(); };
    if (s.role === 'offer') setupDataChannel(pc.createDataChannel('duet'));
    pc.ondatachannel = (ev) => { if (pc === s.pc) setupDataChannel(ev.channel); };
  }

  function setupDataChannel(dc) {
    s.dc = dc;
    dc.onmessage = (ev) => {
      let msg = null;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg && msg.bye && dc === s.dc) partnerGone();
    };
    dc.onclose = () => {
      if (dc === s.dc && s.active) partnerGone();
    };
  }

  function closePeer() {
    clearTimeout(s.restartTimer);
    clearTimeout(s.disconnectedTimer);
    const { pc, dc } = s;
    s.pc = null;
    s.dc = null;
    s.pendingIce = [];
    s.connectedAt = 0;
    if (dc) { dc.onclose = null; dc.onmessage = null; try { dc.close(); } catch (e) { /* closed */ } }
    if (pc) { pc.ontrack = null; pc.onicecandidate = null; pc.oniceconnectionstatechange = null; pc.close(); }
    $('remote').srcObject = null;
  }

  async function makeOffer(iceRestart) {
    const pc = s.pc;
    if (!pc) return;
    if (pc.signalingState !== 'stable' || s.makingOffer || !s.ws || s.ws.readyState !== WebSocket.OPEN) {
      s.pendingRestart = s.pendingRestart || iceRestart;
      return;
    }
    s.pendingRestart = false;
    s.makingOffer = true;
    try {
      const offer = await pc.createOffer(iceRestart ? { iceRestart: true } : undefined);
      if (pc !== s.pc) return;
      await pc.setLocalDescription(offer);
      if (pc !== s.pc) return;
      send({ sdp: pc.localDescription, remote: s.peer });
    } catch (e) {
      if (pc === s.pc) fail('reason.negotiation');
    } finally {
      s.makingOffer = false;
    }
  }

  // Perfect negotiation, in short: the side that got "answer" from the
  // server is polite and yields when both offer at once.
  async function onSdp(desc) {
    if (!desc || (desc.type !== 'offer' && desc.type !== 'answer')) return;
    if (!s.pc) {
      if (desc.type !== 'offer' || !s.localStream) return;
      newPeer();
    }
    const pc = s.pc;
    const collision = desc.type === 'offer' && (s.makingOffer || pc.signalingState !== 'stable');
    s.ignoreOffer = s.role === 'offer' && collision;
    if (s.ignoreOffer) return;
    try {
      await pc.setRemoteDescription(desc);
    } catch (e) {
      if (pc !== s.pc) return;
      // A description this connection cannot take (the partner started over
      // with a new connection): start over too.
      closePeer();
      newPeer();
      if (desc.type === 'offer') {
        try { await s.pc.setRemoteDescription(desc); } catch (e2) { fail('reason.negotiation'); return; }
      } else {
        makeOffer(false);
        return;
      }
    }
    if (pc !== s.pc && s.pc === null) return;
    const now = s.pc;
    for (const cand of s.pendingIce.splice(0)) now.addIceCandidate(cand).catch(() => {});
    if (desc.type === 'offer') {
      try {
        const answer = await now.createAnswer();
        if (now !== s.pc) return;
        await now.setLocalDescription(answer);
        if (now !== s.pc) return;
        send({ sdp: now.localDescription, remote: s.peer });
      } catch (e) {
        if (now === s.pc) fail('reason.negotiation');
        return;
      }
    }
    if (!isConnected() && s.status.key !== 'status.reconnecting') setStatus('status.connectingCall');
    if (s.pendingRestart && now.signalingState === 'stable') makeOffer(true);
  }

  function onIce(cand) {
    if (!cand) return;
    if (!s.pc || !s.pc.remoteDescription) {
      s.pendingIce.push(cand); // before the remote description: keep for later
      return;
    }
    s.pc.addIceCandidate(cand).catch(() => { /* a candidate of an ignored offer */ });
  }

  function onIceState() {
    const state = s.pc.iceConnectionState;
    if (state === 'connected' || state === 'completed') {
      clearTimeout(s.restartTimer);
      clearTimeout(s.disconnectedTimer);
      s.restartTries = 0;
      if (!s.connectedAt) s.connectedAt = Date.now();
      if (s.ws && s.wsOpened) setStatus('status.connected');
      else setStatus('status.reconnecting');
    } else if (state === 'disconnected') {
      clearTimeout(s.disconnectedTimer);
      s.disconnectedTimer = setTimeout(() => {
        if (s.pc && s.pc.iceConnectionState === 'disconnected') restartIce();
      }, DISCONNECTED_GRACE_MS);
    } else if (state === 'failed') {
      restartIce();
    }
  }

  // Tries a fresh set of ICE candidates a few times before giving up.
  function restartIce() {
    if (!s.pc || !s.active) return;
    if (s.restartTries >= ICE_RESTART_TRIES) {
      fail('reason.ice');
      return;
    }
    s.restartTries++;
    setStatus('status.reconnecting');
    makeOffer(true);
    clearTimeout(s.restartTimer);
    s.restartTimer = setTimeout(() => { if (s.pc && !isConnected()) restartIce(); }, ICE_RESTART_WAIT_MS);
  }

  function fail(reasonKey) {
    closePeer();
    setStatus('status.failed', { reasonKey });
  }

  // ---- controls -------------------------------------------------------------
  async function findCameras() {
    try {
      const devices = await navigator.mediaDevices.enumerateDevices();
      s.videoInputs = devices.filter((d) => d.kind === 'videoinput');
      const current = s.localStream && s.localStream.getVideoTracks()[0];
      const id = current && current.getSettings().deviceId;
      s.videoIndex = Math.max(0, s.videoInputs.findIndex((d) => d.deviceId === id));
    } catch (e) {
      s.videoInputs = [];
    }
  }

  function setButton(id, key, on) {
    const b = $(id);
    const label = t(key);
    b.setAttribute('aria-label', label);
    b.title = label;
    if (on !== undefined) b.classList.toggle('off', !on);
  }

  function renderControls() {
    setButton('mic-btn', s.micOn ? 'ctl.mute' : 'ctl.unmute', s.micOn);
    setButton('cam-btn', s.camOn ? 'ctl.camOff' : 'ctl.camOn', s.camOn);
    setButton('switch-btn', 'ctl.switch');
    setButton('fs-btn', document.fullscreenElement ? 'ctl.exitFullscreen' : 'ctl.fullscreen');
    setButton('hangup-btn', 'ctl.hangup');
    $('switch-btn').hidden = s.videoInputs.length < 2;
    $('fs-btn').hidden = !document.fullscreenEnabled;
    $('local-wrap').classList.toggle('cam-off', !s.camOn);
  }

  function toggleMic() {
    s.micOn = !s.micOn;
    if (s.localStream) for (const track of s.localStream.getAudioTracks()) track.enabled = s.micOn;
    renderControls();
  }

  function toggleCam() {
    s.camOn = !s.camOn;
    if (s.localStream) for (const track of s.localStream.getVideoTracks()) track.enabled = s.camOn;
    renderControls();
  }

  async function switchCamera() {
    if (!s.localStream || s.videoInputs.length < 2) return;
    const next = (s.videoIndex + 1) % s.videoInputs.length;
    try {
      const fresh = await navigator.mediaDevices.getUserMedia({ video: { deviceId: { exact: s.videoInputs[next].deviceId } } });
      const track = fresh.getVideoTracks()[0];
      track.enabled = s.camOn;
      const old = s.localStream.getVideoTracks()[0];
      if (s.pc) {
        const sender = s.pc.getSenders().find((x) => x.track && x.track.kind === 'video');
        if (sender) await sender.replaceTrack(track);
      }
      if (old) { s.localStream.removeTrack(old); old.stop(); }
      s.localStream.addTrack(track);
      $('local').srcObject = s.localStream;
      s.videoIndex = next;
    } catch (e) {
      showNotice('err.cameraSwitch');
    }
  }

  function toggleFullscreen() {
    const done = () => renderControls();
    const p = document.fullscreenElement ? document.exitFullscreen() : $('call').requestFullscreen();
    p.then(done, () => showNotice('err.fullscreen'));
  }

  // ---- start-up -------------------------------------------------------------
  function init() {
    const params = new URLSearchParams(location.search);
    $('me').value = params.get('me') ?? store.get('me');
    $('peer').value = params.get('peer') ?? store.get('peer');
    const lang = duetPickLanguage(store.get('lang'), navigator.languages || [navigator.language]);
    $('lang').addEventListener('change', () => {
      store.set('lang', $('lang').value);
      applyLanguage($('lang').value);
    });
    $('join-form').addEventListener('submit', startCall);
    $('me').addEventListener('input', onFormInput);
    $('peer').addEventListener('input', onFormInput);
    $('copy-btn').addEventListener('click', copyInvite);
    $('mic-btn').addEventListener('click', toggleMic);
    $('cam-btn').addEventListener('click', toggleCam);
    $('switch-btn').addEventListener('click', switchCamera);
    $('fs-btn').addEventListener('click', toggleFullscreen);
    $('hangup-btn').addEventListener('click', hangUp);
    document.addEventListener('fullscreenchange', renderControls);
    window.addEventListener('online', () => {
      reconnectNow();
      if (s.pc) restartIce();
    });
    if (navigator.connection && navigator.connection.addEventListener) {
      navigator.connection.addEventListener('change', () => { if (s.pc && s.active) restartIce(); });
    }
    window.addEventListener('pagehide', () => {
      if (s.dc && s.dc.readyState === 'open') {
        try { s.dc.send(JSON.stringify({ bye: 1 })); } catch (e) { /* leaving anyway */ }
      }
      if (s.ws) s.ws.close(1000, 'page closed');
    });
    showScreen('join');
    applyLanguage(lang);
    const problem = browserProblem();
    if (problem) showNotice(problem);
  }

  // Test hooks for tests/browser: they only reach what a user could do
  // with the developer tools anyway.
  window.__duetTest = {
    dropSignaling() { if (s.ws) s.ws.close(); },
    info() {
      return {
        status: s.status.key,
        wsOpen: Boolean(s.ws && s.ws.readyState === WebSocket.OPEN),
        opens: s.opens,
        hasToken: Boolean(s.token),
        role: s.role,
        pc: s.pc ? s.pc.connectionState : 'none',
        ice: s.pc ? s.pc.iceConnectionState : 'none',
        iceServers: s.iceServers,
        dc: s.dc ? s.dc.readyState : 'none',
      };
    },
  };

  init();
})();
