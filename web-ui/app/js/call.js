// WebRTC glue for calls: one RTCPeerConnection with the node's SFU, the local camera and
// microphone, and a tile (a <video>) per media stream the node sends. Signaling (offers and
// answers) goes through the app's WebSocket; this module only touches the browser's media APIs.
// Remote streams are named by the node "p<participant>": the app labels tiles with names.

let pc = null;
let local = null;
let grid = null;
const labels = new Map();
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

/// Where tiles go (the app's grid element).
export function callMount(element) {
  grid = element;
  if (local) tile("self", local, { self: true });
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
  pc?.close();
  pc = null;
  window.__vechePc = null;
  for (const t of local?.getTracks() || []) t.stop();
  local = null;
  labels.clear();
  speaking = null;
  if (grid) grid.replaceChildren();
}
