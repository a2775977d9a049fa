// WebRTC glue for calls: one RTCPeerConnection with the node's SFU, the local camera and
// microphone, and a tile (a <video>) per media stream the node sends. Signaling (offers and
// answers) goes through the app's WebSocket; this module only touches the browser's media APIs.
// Remote streams are named by the node "p<participant>": the app labels tiles with names.
// The in-call data channel ("veche": the whiteboard, reactions and tile sizes) carries JSON text
// messages that the app reads and writes; this module only moves the strings.
// Before joining, the pre-join view shows a preview of the camera and a level meter of the
// microphone (`callPreview`); joining takes that stream over. The camera is sent on its own
// sender: turned off, nothing is sent and the camera is released (its light goes out), so it can
// be turned on again without renegotiating. Remote tiles are paged by the app (`callLayout`), and
// how tall each shows its video is reported to the app (`callOnView`), which tells the node.
// A screen share goes on a sender of its own, reserved when the call starts (a video m-line
// without a track, which the node knows as the screen by `a=content:slides` in what we send it):
// sharing and stopping need no renegotiation. The node sends others' shares in streams
// "s<participant>"; they show on the stage (`callMount`), larger and uncropped.

let pc = null;
// What we send: the microphone's track, and the camera's while it is on.
let local = null;
// Our sender per kind, when we have that device (the camera's may have no track: camera off).
const senders = { audio: null, video: null, screen: null };
// The screen we share (a track from getDisplayMedia), and the app's handler of its end from the
// browser's own "stop sharing" bar.
let screen = null;
let onScreenEnded = null;
// The devices the call started with (the camera is opened again with it when turned back on).
let chosen = { camera: "", mic: "" };
// Turning the camera on or off takes a moment; a newer toggle wins.
let cameraToken = 0;
// The speaker remote tiles play through ("" = the default one).
let sink = "";
// The pre-join view's stream and elements, and its microphone meter.
let preview = null;
let previewCamera = false;
let previewToken = 0;
let previewVideo = null;
let previewMeter = null;
let meter = null;
// Remote tiles on the grid's page ("p<participant>" to its place); null: every tile shows.
let shown = null;
// The app's handlers of tile heights (track, device pixels) and of a fresh data channel.
let onView = null;
let onViewReset = null;
const resizes = typeof ResizeObserver === "function" ? new ResizeObserver(() => reportViews()) : null;
let grid = null;
let stage = null;
let corner = null;
let channel = null;
// The app's handler of every text message on the data channel.
let onSignal = null;
const labels = new Map();
const REACTION_MS = 3000;
// The tile of the loudest speaker ("self" or "p<participant>"), as the node last said.
let speaking = null;
const SPEAKING = ["ring-4", "ring-emerald-400"];

function markSpeaking(box, on) {
  if (on) {
    box.dataset.speaking = "true";
    box.classList.add(...SPEAKING);
  } else {
    delete box.dataset.speaking;
    box.classList.remove(...SPEAKING);
  }
}

function constraint(id) {
  return id ? { deviceId: { ideal: id } } : true;
}

// A camera is asked for 720p (most laptops' and phones' cameras give it), so that its three
// simulcast layers are 320×180, 640×360 and 1280×720.
function cameraConstraint(id) {
  return { ...(id ? { deviceId: { ideal: id } } : {}), width: { ideal: 1280 }, height: { ideal: 720 } };
}

// The camera is sent in three layers (simulcast), lowest first as the node takes them: the node
// forwards each receiver the one that fits the tile it shows and its bandwidth. The bitrates
// are the node's expectations (sfu/src/media/mod.rs SIMULCAST_BPS). A browser sends fewer
// layers for a smaller camera, and stops the top ones when its own estimate or CPU falls short;
// the node then moves receivers to a layer that still comes.
const SIMULCAST = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1500000 },
];

function stopStream(stream) {
  for (const t of stream?.getTracks() || []) t.stop();
}

// Why getUserMedia failed, as the app tells the member.
function reason(e) {
  switch (e?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "denied";
    case "NotFoundError":
    case "OverconstrainedError":
      return "none";
    case "NotReadableError":
    case "AbortError":
      return "busy";
    default:
      return "failed";
  }
}

// Opens the microphone and (with `withVideo`) the camera, whichever can be: both, then each
// alone. `camera`: whether the browser has a camera at all (to turn it on later).
async function open(camera, mic, withVideo) {
  const out = { stream: null, error: "", camera: false };
  if (!navigator.mediaDevices?.getUserMedia) return { ...out, error: "none" };
  const attempts = withVideo ? [[true, true], [true, false], [false, true]] : [[true, false]];
  for (const [audio, video] of attempts) {
    try {
      out.stream = await navigator.mediaDevices.getUserMedia({
        audio: audio ? constraint(mic) : false,
        video: video ? cameraConstraint(camera) : false,
      });
      break;
    } catch (e) {
      if (!out.error || out.error === "none") out.error = reason(e);
    }
  }
  // A camera it could not open for now may be turned on later, unless the browser refuses it.
  try {
    out.camera = !!out.stream?.getVideoTracks().length || (out.error !== "denied"
      && (await navigator.mediaDevices.enumerateDevices()).some((d) => d.kind === "videoinput"));
  } catch (e) {
    out.camera = false;
  }
  return out;
}

function applySink(video) {
  if (typeof video.setSinkId !== "function" || (video.sinkId || "") === sink) return;
  video.setSinkId(sink).catch(() => {});
}

// Where a tile goes in the grid's page: our own first, the others in the app's order, those on
// other pages hidden.
function place(box) {
  if (box.dataset.screen === "true") return;
  if (box.dataset.stream === "self") {
    // Small in a corner once others show; in the grid while alone.
    box.classList.toggle("veche-self-floating", shown !== null && shown.size > 0);
    box.style.order = "-1";
    return;
  }
  const at = shown ? shown.get(box.dataset.stream) : undefined;
  box.hidden = shown !== null && at === undefined;
  box.style.order = at === undefined ? "" : String(at);
}

// Tells the app how tall each remote video shows, in device pixels (0: on another page).
function reportViews() {
  if (!onView || !grid) return;
  const ratio = window.devicePixelRatio || 1;
  for (const box of tiles()) {
    if (box.dataset.stream === "self") continue;
    const height = box.hidden ? 0 : Math.round(box.getBoundingClientRect().height * ratio);
    for (const track of box.querySelector("video")?.srcObject?.getVideoTracks() || []) {
      const number = trackNumber(track);
      if (number !== null) onView(number, Math.min(height, 65535));
    }
  }
}

// The node's number of a remote track: "t<number>" in the a=msid of its m-line in the node's
// offer. The browser's track id says the same only while the m-line carries what it was made
// for: where the node sends someone's media on one of our own m-lines, or on one that carried
// someone who left, the track keeps its first id.
function trackNumber(track) {
  const mid = pc?.getTransceivers().find((t) => t.receiver.track === track)?.mid;
  const sdp = pc?.remoteDescription?.sdp;
  if (mid != null && sdp) {
    for (const section of sdp.split(/\r?\nm=/).slice(1)) {
      const lines = section.split(/\r?\n/);
      if (!lines.includes(`a=mid:${mid}`)) continue;
      const msid = lines.map((l) => /^a=msid:\S+ t(\d+)$/.exec(l)).find((m) => m);
      if (msid) return Number(msid[1]);
      break;
    }
  }
  const own = /^t(\d+)$/.exec(track.id);
  return own ? Number(own[1]) : null;
}

// Every tile: the grid's and the stage's.
function tiles() {
  return [...(grid?.querySelectorAll("figure[data-stream]") || []), ...(stage?.querySelectorAll("figure[data-stream]") || [])];
}

function findTile(id) {
  return tiles().find((box) => box.dataset.stream === id) || null;
}

// A stream the node sends: "s<participant>" is someone's screen share.
function isScreen(id) {
  return /^s\d+$/.test(id);
}

// The label of a tile: its participant's name (a screen share is named after its sharer).
function labelOf(id) {
  return labels.get(isScreen(id) ? `p${id.slice(1)}` : id) || "";
}

// Shows our own stream again after its tracks changed (the camera turned on or off).
function refreshSelf() {
  const video = grid?.querySelector('[data-stream="self"] video');
  if (!video) return;
  video.srcObject = null;
  video.srcObject = local;
  video.play().catch(() => {});
}

function tile(id, stream, { self = false } = {}) {
  const shared = !self && isScreen(id);
  const parent = shared ? stage : grid;
  if (!parent) return;
  let box = findTile(id);
  if (!box) {
    box = document.createElement("figure");
    box.dataset.stream = id;
    box.dataset.testid = self ? "call-tile-self" : shared ? "call-screen-tile" : "call-tile";
    if (shared) box.dataset.screen = "true";
    box.className = shared
      ? "relative aspect-video max-h-[60vh] w-full overflow-hidden rounded-xl bg-black"
      : "relative aspect-video overflow-hidden rounded-xl bg-slate-800";
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = self || shared; // never play our own microphone back; a share has no sound
    // A shared screen is shown whole (its text must stay readable), a camera fills its tile.
    video.className = shared ? "h-full w-full object-contain" : "h-full w-full object-cover";
    const caption = document.createElement("figcaption");
    caption.className = "absolute bottom-1 left-1 rounded bg-black/60 px-1.5 py-0.5 text-xs text-white";
    caption.textContent = labelOf(id);
    caption.hidden = !caption.textContent;
    box.append(video, caption);
    parent.append(box);
    markSpeaking(box, id === speaking);
    place(box);
    if (!self) {
      applySink(video);
      resizes?.observe(box);
    }
  }
  const video = box.querySelector("video");
  if (video.srcObject !== stream) video.srcObject = stream;
  video.play().catch(() => {});
}

function dropTile(id) {
  const box = findTile(id);
  if (!box) return;
  resizes?.unobserve(box);
  box.remove();
}

/// Where tiles go (the app's grid element), where others' screen shares go (`screens`, the
/// stage), and where reactions of someone without a tile show (`reactions`, a corner of the
/// call panel).
export function callMount(element, screens, reactions) {
  grid = element;
  stage = screens || null;
  corner = reactions || null;
  if (local) tile("self", local, { self: true });
}

/// The remote tiles on the grid's page, in their order: stream ids ("p<participant>") separated
/// by commas. The others are hidden (and reported 0 pixels tall). Tiles that come later are
/// placed by the last list.
export function callLayout(ids) {
  shown = new Map((ids ? ids.split(",") : []).map((id, i) => [id, i]));
  grid?.classList.toggle("veche-grid-many", shown.size >= 5);
  for (const box of tiles()) place(box);
  reportViews();
}

/// The app's handlers: `view(track, height)` with how tall a remote video track shows (device
/// pixels, 0: hidden), called whenever it may have changed (the app sends only changes); and
/// `reset()` when a new data channel opened (what was told before is forgotten by the node).
export function callOnView(view, reset) {
  onView = view;
  onViewReset = reset;
}

/// The app's handler of the data channel's text messages (called with each one, as a string).
export function callOnSignal(handler) {
  onSignal = handler;
}

/// Sends one text message on the data channel; false if it is not open.
export function callSignal(text) {
  if (!channel || channel.readyState !== "open") return false;
  try {
    channel.send(text);
    return true;
  } catch (e) {
    return false;
  }
}

/// Whether the data channel is open.
export function callSignalOpen() {
  return !!channel && channel.readyState === "open";
}

/// A reaction someone sent: it floats over their tile (or, without a tile, shows in the corner
/// with their name) for a few seconds. `emoji` is one the app checked against the list.
export function callReaction(participant, self, emoji) {
  const id = self ? "self" : `p${participant}`;
  const box = findTile(id);
  const el = document.createElement("span");
  el.dataset.testid = "call-reaction";
  el.dataset.by = String(participant);
  el.dataset.reaction = emoji;
  el.setAttribute("role", "img");
  const name = labels.get(id) || "";
  el.setAttribute("aria-label", name ? `${name}: ${emoji}` : emoji);
  if (box) {
    el.className = "veche-reaction pointer-events-none absolute bottom-8 left-1/2 -translate-x-1/2 text-4xl drop-shadow";
    el.textContent = emoji;
    box.append(el);
  } else if (corner) {
    el.className = "veche-reaction pointer-events-none flex items-center gap-1 rounded-full bg-black/60 px-2 py-0.5 text-sm text-white";
    const who = document.createElement("span");
    who.textContent = name;
    const what = document.createElement("span");
    what.className = "text-2xl";
    what.textContent = emoji;
    el.append(who, what);
    corner.append(el);
  } else {
    return;
  }
  setTimeout(() => el.remove(), REACTION_MS);
}

/// Names a participant's tiles, their screen share's too (`self`: our own).
export function callLabel(participant, name, self) {
  const id = self ? "self" : `p${participant}`;
  labels.set(id, name);
  if (self) labels.set(`p${participant}`, name);
  for (const box of [findTile(id), findTile(`s${participant}`)]) {
    const caption = box?.querySelector("figcaption");
    if (caption) {
      caption.textContent = name;
      caption.hidden = !name;
    }
  }
}

/// The node names the loudest speaker: its tile is ringed (`self`: it is us).
export function callSpeaking(participant, self) {
  speaking = self ? "self" : `p${participant}`;
  for (const box of grid?.querySelectorAll("figure[data-stream]") || []) markSpeaking(box, box.dataset.stream === speaking);
}

/// A participant left: its tiles go.
export function callForget(participant) {
  dropTile(`p${participant}`);
  dropTile(`s${participant}`);
}

/// A participant's screen share ended: its tile leaves the stage.
export function callDropScreen(participant) {
  dropTile(`s${participant}`);
}

/// Whether this browser can share a screen in the call (phones' browsers mostly cannot).
export function callScreenSupported() {
  return !!senders.screen;
}

/// The app's handler of the end of our screen share from the browser's own "stop sharing" bar
/// (or the shared window closing).
export function callOnScreenEnded(handler) {
  onScreenEnded = handler;
}

/// Shares a screen, window or tab (the browser asks which; this must run from a click). Resolves
/// with "" when it is shared, else why not: "denied" (refused or cancelled), "none" (nothing to
/// share or no such feature), "failed".
export async function callShareScreen() {
  const sender = senders.screen;
  if (!sender || !navigator.mediaDevices?.getDisplayMedia) return "none";
  let track = null;
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
    track = stream.getVideoTracks()[0];
  } catch (e) {
    return reason(e);
  }
  if (!track) return "none";
  if (senders.screen !== sender) {
    track.stop(); // the call ended meanwhile
    return "failed";
  }
  // Text and lines stay sharp; the frame rate gives way first.
  if ("contentHint" in track) track.contentHint = "detail";
  try {
    await sender.replaceTrack(track);
  } catch (e) {
    track.stop();
    return "failed";
  }
  screen?.stop();
  screen = track;
  track.onended = () => {
    if (screen !== track) return;
    onScreenEnded?.();
  };
  return "";
}

/// Stops sharing the screen: nothing more is sent, and the browser stops capturing it.
export function callStopScreen() {
  const track = screen;
  screen = null;
  if (!track) return;
  senders.screen?.replaceTrack(null).catch(() => {});
  track.stop();
}

/// Whether we share a screen.
export function callSharing() {
  return !!screen && screen.readyState === "live";
}

// What we send the node: our description, with the m-line of the screen share marked as one
// (`a=content:slides`, RFC 4796).
function described() {
  const sdp = pc.localDescription.sdp;
  const mid = pc.getTransceivers().find((t) => t.sender === senders.screen)?.mid;
  if (mid == null) return sdp;
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  const mark = `a=mid:${mid}${eol}`;
  const at = sdp.indexOf(mark);
  if (at < 0 || sdp.slice(at).split(/\r?\nm=/)[0].includes("a=content:slides")) return sdp;
  return `${sdp.slice(0, at + mark.length)}a=content:slides${eol}${sdp.slice(at + mark.length)}`;
}

/// The pre-join view's preview: opens the chosen microphone and (with `withVideo`) camera
/// (device ids, "" for the browser's default) in place of the last preview. Resolves with what it
/// got: `{ audio, video, camera, mic, hasCamera, error }` (`camera`, `mic`: the ids of the
/// devices in use; `error`: "denied", "none", "busy", "failed" or ""), or null when a newer
/// preview (or leaving the view) replaced it meanwhile.
export async function callPreview(camera, mic, withVideo) {
  stopPreview();
  const token = ++previewToken;
  const got = await open(camera, mic, withVideo);
  if (token !== previewToken) {
    stopStream(got.stream);
    return null;
  }
  preview = got.stream;
  previewCamera = got.camera;
  showPreview();
  const id = (tracks) => tracks[0]?.getSettings().deviceId || "";
  return {
    audio: !!preview?.getAudioTracks().length,
    video: !!preview?.getVideoTracks().length,
    camera: id(preview?.getVideoTracks() || []),
    mic: id(preview?.getAudioTracks() || []),
    hasCamera: got.camera,
    error: got.error,
  };
}

/// Where the preview shows: a muted <video>, and the microphone meter (an element whose first
/// child's width is the level; its `data-level` is the level from 0 to 100).
export function callPreviewMount(video, level) {
  previewVideo = video;
  previewMeter = level;
  showPreview();
}

/// Leaves the pre-join view: its camera and microphone are released.
export function callPreviewStop() {
  stopPreview();
  previewToken++;
  previewVideo = null;
  previewMeter = null;
}

function stopPreview() {
  stopMeter();
  stopStream(preview);
  preview = null;
  if (previewVideo) previewVideo.srcObject = null;
}

function showPreview() {
  if (previewVideo && previewVideo.srcObject !== preview) {
    previewVideo.srcObject = preview;
    previewVideo.play().catch(() => {});
  }
  startMeter(preview);
}

function setLevel(level) {
  if (!previewMeter) return;
  const pct = Math.round(level * 100);
  previewMeter.dataset.level = String(pct);
  previewMeter.setAttribute("aria-valuenow", String(pct));
  if (previewMeter.firstElementChild) previewMeter.firstElementChild.style.width = `${pct}%`;
}

// The microphone's level, ten times a second: its loudness from -60 dB (nothing) to 0 dB (full),
// held and let fall slowly so that a word stays visible.
function startMeter(stream) {
  stopMeter();
  const track = stream?.getAudioTracks()[0];
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!track || !previewMeter || !Context) {
    setLevel(0);
    return;
  }
  const ctx = new Context();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  ctx.resume().catch(() => {});
  const data = new Float32Array(analyser.fftSize);
  let level = 0;
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(data);
    let sum = 0;
    for (const x of data) sum += x * x;
    const db = 10 * Math.log10(sum / data.length || 1e-12);
    level = Math.max(Math.min(1, Math.max(0, (db + 60) / 60)), level * 0.85);
    setLevel(level);
  }, 100);
  meter = { ctx, timer };
}

function stopMeter() {
  if (!meter) return;
  clearInterval(meter.timer);
  meter.ctx.close().catch(() => {});
  meter = null;
  setLevel(0);
}

/// The browser's cameras, microphones and speakers: `[{ kind, id, label }]` (`kind`:
/// "videoinput", "audioinput", "audiooutput"; labels are empty until the browser allowed a
/// device).
export async function callDevices() {
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices
      .filter((d) => ["videoinput", "audioinput", "audiooutput"].includes(d.kind) && d.deviceId)
      .map((d) => ({ kind: d.kind, id: d.deviceId, label: d.label }));
  } catch (e) {
    return [];
  }
}

/// Calls `handler` when a device is plugged in or out.
export function callOnDevices(handler) {
  if (navigator.mediaDevices) navigator.mediaDevices.ondevicechange = () => handler();
}

/// Whether this browser can choose the speaker a tile plays through.
/// Whether this browser can take part in calls at all (WebKitGTK builds without WebRTC cannot).
export function callWebRtcSupported() {
  return typeof RTCPeerConnection === "function";
}

export function callSinkSupported() {
  return typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
}

/// Plays every remote tile (and those to come) through this speaker ("" = the default).
export function callSetSink(id) {
  sink = id || "";
  for (const video of grid?.querySelectorAll('figure[data-stream]:not([data-stream="self"]) video') || []) applySink(video);
}

/// Opens the peer connection with the microphone and camera: the pre-join preview's stream if
/// there is one, else the chosen devices (`camera`, `mic`: ids, "" for the default). Joins with
/// the microphone on or off (`withAudio`) and the camera on or off (`withVideo`; off, nothing is
/// sent until it is turned on). Whatever cannot be opened is left out (receive only at worst).
/// Resolves with the SDP offer to join with.
export async function callStart(camera, mic, withAudio, withVideo) {
  let stream = preview;
  let hasCamera = previewCamera;
  preview = null; // taken over: stopping the preview leaves it alone
  stopMeter();
  if (previewVideo) previewVideo.srcObject = null;
  previewToken++;
  callStop();
  chosen = { camera, mic };
  if (!stream) {
    const got = await open(camera, mic, withVideo);
    stream = got.stream;
    hasCamera = got.camera;
  }
  if (stream && !withVideo) {
    for (const t of stream.getVideoTracks()) {
      t.stop();
      stream.removeTrack(t);
    }
  }
  local = stream || new MediaStream();
  for (const t of local.getAudioTracks()) t.enabled = withAudio;
  pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
  // For tests and diagnostics (getStats).
  window.__vechePc = pc;
  // The in-call channel, before the first offer so that the offer carries it.
  channel = pc.createDataChannel("veche", { ordered: true });
  window.__vecheChannel = channel;
  channel.onmessage = (e) => {
    if (typeof e.data === "string" && onSignal) onSignal(e.data);
  };
  channel.onopen = () => {
    onViewReset?.();
    reportViews();
  };
  const audio = local.getAudioTracks()[0];
  const video = local.getVideoTracks()[0];
  if (audio) senders.audio = pc.addTransceiver(audio, { direction: "sendrecv", streams: [local] }).sender;
  const layered = { direction: "sendrecv", streams: [local], sendEncodings: SIMULCAST.map((e) => ({ ...e })) };
  if (video) senders.video = pc.addTransceiver(video, layered).sender;
  // Joining with the camera off: its sender is there, without a track until it is turned on.
  else if (hasCamera) senders.video = pc.addTransceiver("video", layered).sender;
  if (!senders.audio && !senders.video) pc.addTransceiver("audio", { direction: "recvonly" });
  // A sender for a screen share, without a track until the member shares one.
  if (navigator.mediaDevices?.getDisplayMedia) {
    senders.screen = pc.addTransceiver("video", { direction: "sendrecv", streams: [new MediaStream()] }).sender;
  }
  if (senders.audio || senders.video) tile("self", local, { self: true });
  pc.ontrack = (e) => {
    const stream = e.streams[0] || new MediaStream([e.track]);
    tile(stream.id, stream);
    e.track.onended = () => { if (stream.getTracks().every((t) => t.readyState === "ended")) dropTile(stream.id); };
    if (e.track.kind === "video") reportViews();
  };
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  return described();
}

/// The node's answer to our offer.
export async function callSetAnswer(sdp) {
  if (!pc) throw new Error("no call");
  await pc.setRemoteDescription({ type: "answer", sdp });
}

/// Answers an offer of the node (tracks to receive came or went).
export async function callAnswerOffer(sdp) {
  if (!pc) throw new Error("no call");
  await pc.setRemoteDescription({ type: "offer", sdp });
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  return described();
}

/// Turns our microphone or camera on or off; resolves with whether it is on now. The
/// microphone sends silence while off. The camera sends black for a moment (so nobody is left
/// with a frozen picture), then nothing, and is released; turned on, it is opened again.
export async function callSetEnabled(kind, on) {
  if (kind === "audio") {
    for (const t of local?.getAudioTracks() || []) t.enabled = on;
    return on && !!local?.getAudioTracks().length;
  }
  const sender = senders.video;
  if (!sender || !local) return false;
  const token = ++cameraToken;
  const current = local.getVideoTracks()[0];
  if (!on) {
    if (!current) return false;
    current.enabled = false;
    await new Promise((r) => setTimeout(r, 300));
    if (token !== cameraToken) return current.enabled;
    await sender.replaceTrack(null).catch(() => {});
    current.stop();
    local.removeTrack(current);
    refreshSelf();
    return false;
  }
  if (current) {
    current.enabled = true;
    return true;
  }
  let track = null;
  try {
    track = (await navigator.mediaDevices.getUserMedia({ video: cameraConstraint(chosen.camera) })).getVideoTracks()[0];
  } catch (e) {
    return false;
  }
  if (token !== cameraToken || senders.video !== sender || !track) {
    track?.stop();
    return false;
  }
  try {
    await sender.replaceTrack(track);
  } catch (e) {
    track.stop();
    return false;
  }
  local.addTrack(track);
  refreshSelf();
  return true;
}

/// Whether we have a microphone ("audio") or camera ("video") in the call, on or off.
export function callHas(kind) {
  return !!senders[kind];
}

/// Whether our microphone or camera is on.
export function callEnabled(kind) {
  const tracks = kind === "audio" ? local?.getAudioTracks() : local?.getVideoTracks();
  return !!tracks?.some((t) => t.enabled && t.readyState === "live");
}

/// What the peer connection measures now, for the connection-quality badge: the selected
/// candidate pair's round trip (`rtt`, seconds) and upload estimate (`upload`, bits per second),
/// -1 when unknown; packets lost and received so far by every inbound RTP stream; and whether
/// we send video (`sendingVideo`). Null outside a call.
export async function callStats() {
  if (!pc) return null;
  const report = await pc.getStats();
  let pair = null;
  report.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) pair = report.get(r.selectedCandidatePairId) || pair;
  });
  if (!pair) report.forEach((r) => { if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r; });
  let lost = 0;
  let received = 0;
  report.forEach((r) => {
    if (r.type !== "inbound-rtp") return;
    lost += r.packetsLost || 0;
    received += r.packetsReceived || 0;
  });
  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : -1);
  return {
    rtt: num(pair?.currentRoundTripTime),
    upload: num(pair?.availableOutgoingBitrate),
    lost,
    received,
    sendingVideo: !!senders.video?.track && callEnabled("video"),
  };
}

/// Ends the call on this side: the connection closes, the camera and microphone are released.
export function callStop() {
  channel?.close();
  channel = null;
  window.__vecheChannel = null;
  pc?.close();
  pc = null;
  window.__vechePc = null;
  stopStream(local);
  local = null;
  senders.audio = null;
  senders.video = null;
  senders.screen = null;
  screen?.stop();
  screen = null;
  cameraToken++;
  labels.clear();
  speaking = null;
  shown = null;
  resizes?.disconnect();
  if (grid) grid.replaceChildren();
  if (stage) stage.replaceChildren();
  if (corner) corner.replaceChildren();
}
