// WebRTC glue for calls: one RTCPeerConnection with the node's SFU, the local camera and
// microphone, and a tile (a <video>) per media stream the node sends. Signaling (offers and
// answers) goes through the app's WebSocket; this module only touches the browser's media APIs.
// Remote streams are named by the node "p<participant>": the app labels tiles with names.
// The in-call data channel ("veche": the whiteboard and reactions) carries JSON text messages
// that the app reads and writes; this module only moves the strings.

let pc = null;
let local = null;
let grid = null;
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

function tile(id, stream, { self = false } = {}) {
  if (!grid) return;
  let box = grid.querySelector(`[data-stream="${id}"]`);
  if (!box) {
    box = document.createElement("figure");
    box.dataset.stream = id;
    box.dataset.testid = self ? "call-tile-self" : "call-tile";
    box.className = "relative aspect-video overflow-hidden rounded-xl bg-slate-800";
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = self; // never play our own microphone back
    video.className = "h-full w-full object-cover";
    const caption = document.createElement("figcaption");
    caption.className = "absolute bottom-1 left-1 rounded bg-black/60 px-1.5 py-0.5 text-xs text-white";
    caption.textContent = labels.get(id) || "";
    caption.hidden = !caption.textContent;
    box.append(video, caption);
    grid.append(box);
    markSpeaking(box, id === speaking);
  }
  const video = box.querySelector("video");
  if (video.srcObject !== stream) video.srcObject = stream;
  video.play().catch(() => {});
}

function dropTile(id) {
  grid?.querySelector(`[data-stream="${id}"]`)?.remove();
}

/// Where tiles go (the app's grid element), and where reactions of someone without a tile show
/// (`reactions`, a corner of the call panel).
export function callMount(element, reactions) {
  grid = element;
  corner = reactions || null;
  if (local) tile("self", local, { self: true });
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
  const box = grid?.querySelector(`[data-stream="${id}"]`);
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

/// Names a participant's tile (`self`: our own).
export function callLabel(participant, name, self) {
  const id = self ? "self" : `p${participant}`;
  labels.set(id, name);
  const caption = grid?.querySelector(`[data-stream="${id}"] figcaption`);
  if (caption) {
    caption.textContent = name;
    caption.hidden = !name;
  }
}

/// The node names the loudest speaker: its tile is ringed (`self`: it is us).
export function callSpeaking(participant, self) {
  speaking = self ? "self" : `p${participant}`;
  for (const box of grid?.querySelectorAll("figure[data-stream]") || []) markSpeaking(box, box.dataset.stream === speaking);
}

/// A participant left: its tile goes.
export function callForget(participant) {
  dropTile(`p${participant}`);
}

/// Opens the camera and microphone (what is available) and the peer connection; resolves with
/// the SDP offer to join with.
export async function callStart(withVideo) {
  callStop();
  try {
    local = await navigator.mediaDevices.getUserMedia({ audio: true, video: withVideo });
  } catch (e) {
    // No camera (or refused): try the microphone alone, then nothing (receive only).
    try {
      local = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    } catch (e2) {
      local = null;
    }
  }
  pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
  // For tests and diagnostics (getStats).
  window.__vechePc = pc;
  // The in-call channel, before the first offer so that the offer carries it.
  channel = pc.createDataChannel("veche", { ordered: true });
  window.__vecheChannel = channel;
  channel.onmessage = (e) => {
    if (typeof e.data === "string" && onSignal) onSignal(e.data);
  };
  if (local) {
    for (const track of local.getTracks()) pc.addTransceiver(track, { direction: "sendrecv", streams: [local] });
    tile("self", local, { self: true });
  } else {
    pc.addTransceiver("audio", { direction: "recvonly" });
  }
  pc.ontrack = (e) => {
    const stream = e.streams[0] || new MediaStream([e.track]);
    tile(stream.id, stream);
    e.track.onended = () => { if (stream.getTracks().every((t) => t.readyState === "ended")) dropTile(stream.id); };
  };
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  return pc.localDescription.sdp;
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
  return pc.localDescription.sdp;
}

/// Turns our microphone or camera on or off (the track stays negotiated; it sends silence or
/// black while off).
export function callSetEnabled(kind, on) {
  for (const t of local?.getTracks() || []) if (t.kind === kind) t.enabled = on;
}

/// Whether we have a track of this kind ("audio", "video").
export function callHas(kind) {
  return !!local?.getTracks().some((t) => t.kind === kind);
}

/// Ends the call on this side: the connection closes, the camera and microphone are released.
export function callStop() {
  channel?.close();
  channel = null;
  window.__vecheChannel = null;
  pc?.close();
  pc = null;
  window.__vechePc = null;
  for (const t of local?.getTracks() || []) t.stop();
  local = null;
  labels.clear();
  speaking = null;
  if (grid) grid.replaceChildren();
  if (corner) corner.replaceChildren();
}
