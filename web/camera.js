// The local camera and microphone: asking for them, muting, turning the
// camera off, switching between cameras, and letting them go.

// The notice that explains why getUserMedia failed, by the error's name.
export function cameraProblem(e) {
  const name = e && e.name;
  if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') return 'err.cameraBlocked';
  if (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'DevicesNotFoundError') return 'err.cameraMissing';
  if (name === 'NotReadableError' || name === 'AbortError' || name === 'TrackStartError') return 'err.cameraBusy';
  return 'err.cameraOther';
}

export function createCamera(mediaDevices) {
  let stream = null;
  let videoInputs = [];
  let videoIndex = 0;
  let micOn = true;
  let camOn = true;

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
    // Resolves to the stream; rejects with getUserMedia's error.
    async start() {
      stream = await mediaDevices.getUserMedia({ audio: true, video: { facingMode: 'user' } });
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
    // Moves to the next camera; replaceTrack(track) hands it to the call.
    async switchCamera(replaceTrack) {
      if (!stream || videoInputs.length < 2) return;
      const next = (videoIndex + 1) % videoInputs.length;
      const fresh = await mediaDevices.getUserMedia({ video: { deviceId: { exact: videoInputs[next].deviceId } } });
      const track = fresh.getVideoTracks()[0];
      track.enabled = camOn;
      const old = stream.getVideoTracks()[0];
      await replaceTrack(track);
      if (old) { stream.removeTrack(old); old.stop(); }
      stream.addTrack(track);
      videoIndex = next;
    },
    get stream() { return stream; },
    get micOn() { return micOn; },
    get camOn() { return camOn; },
    get cameras() { return videoInputs.length; },
  };
}
