// The devices panel: which camera, microphone and (where the browser lets a
// page choose, setSinkId) speaker the call uses, changed live without a new
// offer, remembered on this device; and what happens when one is unplugged
// mid-call: another of the same kind takes over, and a notice says which.

const KINDS = { videoinput: 'cam-select', audioinput: 'mic-select', audiooutput: 'speaker-select' };
const STORE_KEYS = { videoinput: 'camera', audioinput: 'mic', audiooutput: 'speaker' };

export const canChooseSpeaker = (media) => typeof media.setSinkId === 'function';

// A device list of one kind as the select shows it: browsers list the
// default device twice ("default" and its own id) and some give no labels.
export function choices(devices, kind, unnamed) {
  const out = [];
  for (const d of devices) {
    if (d.kind !== kind || !d.deviceId || d.deviceId === 'communications') continue;
    out.push({ id: d.deviceId, label: d.label || unnamed(out.length + 1) });
  }
  return out;
}

// camera: camera.js; replace: { videoinput(track), audioinput(track) } hands
// a new track to the call; speaker: the <video> whose sound to route;
// notice(key, params) tells the person.
export function createDevices({ $, t, mediaDevices, camera, store, replace, speaker, notice }) {
  let devices = [];
  let active = false;

  async function refresh() {
    try {
      devices = await mediaDevices.enumerateDevices();
    } catch (e) {
      devices = [];
    }
    render();
  }

  function selected(kind) {
    if (kind === 'audiooutput') return speaker.sinkId || store.get(STORE_KEYS[kind]) || '';
    return camera.deviceId(kind);
  }

  function render() {
    for (const [kind, id] of Object.entries(KINDS)) {
      const select = $(id);
      const list = choices(devices, kind, (n) => t('devices.unnamed', { n }));
      const current = selected(kind);
      select.replaceChildren(...list.map((c) => new Option(c.label, c.id, false, c.id === current)));
      select.disabled = list.length < 2 && kind !== 'audiooutput';
    }
    $('speaker-field').hidden = !canChooseSpeaker(speaker) || choices(devices, 'audiooutput', String).length === 0;
  }

  async function use(kind, id) {
    try {
      if (kind === 'audiooutput') await speaker.setSinkId(id);
      else await camera.useDevice(kind, id, replace[kind]);
      store.set(STORE_KEYS[kind], id);
    } catch (e) {
      notice('err.deviceSwitch', { detail: (e && (e.message || e.name)) || '?' });
    }
    await refresh();
  }

  // The device `goneId` of `kind` stopped: the first other one takes over.
  async function lost(kind, goneId) {
    if (!active) return;
    await refresh();
    const others = choices(devices, kind, String).filter((c) => c.id !== goneId);
    const next = others.find((c) => c.id !== 'default') || others[0];
    if (!next) {
      notice(`devices.gone.${kind}`);
      return;
    }
    try {
      await camera.useDevice(kind, next.id, replace[kind]);
      notice(`devices.lost.${kind}`, { name: next.label || t('devices.unnamed', { n: 1 }) });
    } catch (e) {
      notice(`devices.gone.${kind}`);
    }
    await refresh();
  }

  for (const [kind, id] of Object.entries(KINDS)) $(id).addEventListener('change', () => use(kind, $(id).value));
  if (mediaDevices.addEventListener) {
    // An unplugged device also ends its track (camera.js reports that):
    // here only the lists change.
    mediaDevices.addEventListener('devicechange', () => { if (active) refresh(); });
  }

  return {
    // The devices chosen on this device before, for camera.start().
    preferred() {
      return { camera: store.get(STORE_KEYS.videoinput), mic: store.get(STORE_KEYS.audioinput) };
    },
    // The call has its tracks: list what there is, and route the sound.
    async start() {
      active = true;
      const sink = store.get(STORE_KEYS.audiooutput);
      if (sink && canChooseSpeaker(speaker)) await speaker.setSinkId(sink).catch(() => {});
      await refresh();
    },
    stop() { active = false; },
    lost,
    render,
  };
}
