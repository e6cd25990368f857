// Showing one's screen instead of the camera: getDisplayMedia gives a video
// track that the call sends in place of the camera's (replaceTrack, no new
// offer). The browser's own "Stop sharing" ends the track; onEnded then
// puts the camera back.

// Phones cannot share their screen from a web page (and some define
// getDisplayMedia only to refuse), so the button is not offered there.
export function canShareScreen(mediaDevices, nav) {
  if (!mediaDevices || typeof mediaDevices.getDisplayMedia !== 'function') return false;
  if (nav.userAgentData && typeof nav.userAgentData.mobile === 'boolean') return !nav.userAgentData.mobile;
  return !/Android|iPhone|iPad|iPod|Mobile/i.test(nav.userAgent || '');
}

export function createScreenShare({ mediaDevices, onEnded }) {
  let track = null;

  return {
    // Resolves to the screen's video track; rejects with getDisplayMedia's
    // error (NotAllowedError when the person cancels the browser's picker).
    async start() {
      const stream = await mediaDevices.getDisplayMedia({ video: true, audio: false });
      const fresh = stream.getVideoTracks()[0];
      for (const extra of stream.getAudioTracks()) extra.stop();
      // Text on a screen should stay sharp; fewer frames are the better loss.
      if ('contentHint' in fresh) fresh.contentHint = 'detail';
      fresh.addEventListener('ended', () => {
        if (fresh !== track) return;
        track = null;
        onEnded();
      });
      track = fresh;
      return fresh;
    },
    stop() {
      const t = track;
      track = null;
      if (t) t.stop();
    },
    get sharing() { return Boolean(track); },
    get track() { return track; },
  };
}
