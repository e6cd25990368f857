// The local camera and microphone: asking for them, muting, turning the
// camera off, changing to another camera or microphone mid-call, and
// letting them go.

// The notice that explains why getUserMedia failed, by the error's name.
export function cameraProblem(e) {
  const name = e && e.name;
  if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') return 'err.cameraBlocked';
  if (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'DevicesNotFoundError') return 'err.cameraMissing';
  if (name === 'NotReadableError' || name === 'AbortError' || name === 'TrackStartError') return 'err.cameraBusy';
  return 'err.cameraOther';
}

// onEnded(kind, deviceId) runs when a track we use ends by itself (kind
// 'videoinput' or 'audioinput'): the device was unplugged or taken away.
export function createCamera(mediaDevices, { onEnded = () => {} } = {}) {
  let stream = null;
  let videoInputs = [];
  let videoIndex = 0;
  let micOn = true;
  let camOn = true;

  const kindOf = (track) => (track.kind === 'video' ? 'videoinput' : 'audioinput');
  function watch(track) {
    const id = track.getSettings().deviceId || '';
    track.addEventListener('ended', () => {
      if (stream && stream.getTracks().includes(track)) onEnded(kindOf(track), id);
    });
  }

  async function findCameras() {
    try {
      const devices = await mediaDevices.enumerateDevices();
      videoInputs = devices.filter((d) => d.kind === 'videoinput');
      const current = stream && stream.getVideoTracks()[0];
      const id = current && current.getSettings().deviceId;
      videoIndex = Math.max(0, videoInputs.findIndex((d) => d.deviceId === id));
    } catch (e) {
      videoInputs = [];
    }
  }

  return {
    // Resolves to the stream; rejects with getUserMedia's error. The
    // devices chosen last time are asked for, but any other will do.
    async start({ camera = '', mic = '' } = {}) {
      const ask = (cam, mi) => mediaDevices.getUserMedia({
        audio: mi ? { deviceId: { exact: mi } } : true,
        video: cam ? { deviceId: { exact: cam } } : { facingMode: 'user' },
      });
      try {
        stream = await ask(camera, mic);
      } catch (e) {
        // The devices of last time are gone (or never were on this browser).
        if (!(camera || mic) || !['OverconstrainedError', 'NotFoundError', 'NotReadableError'].includes(e && e.name)) throw e;
        stream = await ask('', '');
      }
      for (const track of stream.getTracks()) watch(track);
      micOn = true;
      camOn = true;
      await findCameras();
      return stream;
    },
    stop() {
      if (stream) for (const track of stream.getTracks()) track.stop();
      stream = null;
    },
    toggleMic() {
      micOn = !micOn;
      if (stream) for (const track of stream.getAudioTracks()) track.enabled = micOn;
    },
    toggleCam() {
      camOn = !camOn;
      if (stream) for (const track of stream.getVideoTracks()) track.enabled = camOn;
    },
    // Changes to the device `deviceId` of `kind` ('videoinput' or
    // 'audioinput'); replaceTrack(track) hands the new track to the call.
    async useDevice(kind, deviceId, replaceTrack) {
      if (!stream) return;
      const video = kind === 'videoinput';
      const want = { deviceId: { exact: deviceId } };
      const old = video ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
      const fresh = await mediaDevices.getUserMedia(video ? { video: want } : { audio: want });
      const track = video ? fresh.getVideoTracks()[0] : fresh.getAudioTracks()[0];
      track.enabled = video ? camOn : micOn;
      watch(track);
      await replaceTrack(track);
      if (old) { stream.removeTrack(old); old.stop(); }
      stream.addTrack(track);
      if (video) await findCameras();
    },
    // Moves to the next camera.
    async switchCamera(replaceTrack) {
      if (!stream || videoInputs.length < 2) return;
      await this.useDevice('videoinput', videoInputs[(videoIndex + 1) % videoInputs.length].deviceId, replaceTrack);
    },
    // The device id behind the track of `kind` in use, '' when none.
    deviceId(kind) {
      const track = stream && (kind === 'videoinput' ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0]);
      return track && track.readyState === 'live' ? track.getSettings().deviceId || '' : '';
    },
    get stream() { return stream; },
    get micOn() { return micOn; },
    get camOn() { return camOn; },
    get cameras() { return videoInputs.length; },
  };
}
