// Notifications through the service worker's registration (so they show in an installed app too),
// and the clipboard. The page decides what to show (it decrypts); sw.js handles the clicks and
// tells the page what was chosen (a "veche-notification" message).

// "granted", "denied", "default", or "unsupported" (no Notifications API, no service worker, or
// not a secure context: plain http on the LAN, iOS Safari outside the installed app).
export function notifyPermission() {
  if (typeof Notification === "undefined" || !("serviceWorker" in navigator) || !window.isSecureContext) {
    return "unsupported";
  }
  return Notification.permission;
}

// Asks the browser (must run in a click); resolves to the permission as notifyPermission says it.
export async function notifyRequest() {
  if (notifyPermission() === "unsupported") return "unsupported";
  try {
    const result = await Notification.requestPermission();
    return result || Notification.permission;
  } catch {
    return Notification.permission;
  }
}

// Whether the member does not see the page: another tab or app in front, minimised, or the
// window without focus.
export function pageInBackground() {
  return document.visibilityState === "hidden" || !document.hasFocus();
}

// The service worker's registration, or null when there is none within a second and a half (the
// worker installs after the page's load event; an old browser has none).
async function registration() {
  if (!("serviceWorker" in navigator)) return null;
  const ready = navigator.serviceWorker.ready;
  const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 1500));
  try {
    return await Promise.race([ready, timeout]);
  } catch {
    return null;
  }
}

// Shows a notification. `kind`: "message" or "call" (stays until answered, with answer and decline
// actions labelled `answer`/`decline`). `tag`: one per chat, so a newer one replaces the older.
// `group`: the chat's id (hex), `path`: where clicking it opens the app.
export async function notifyShow(kind, tag, title, body, group, path, answer, decline) {
  if (notifyPermission() !== "granted") return false;
  const options = {
    body,
    tag,
    renotify: true,
    icon: "/icon-192.png",
    badge: "/icon-192.png",
    lang: document.documentElement.lang || undefined,
    timestamp: Date.now(),
    data: { kind, group, path },
  };
  if (kind === "call") {
    options.requireInteraction = true;
    options.actions = [
      { action: "answer", title: answer },
      { action: "decline", title: decline },
    ];
    options.vibrate = [400, 200, 400, 200, 400];
  }
  const reg = await registration();
  try {
    if (reg) {
      await reg.showNotification(title, options);
      return true;
    }
    // No service worker (an old browser): a page notification, which only opens the chat.
    delete options.actions;
    const n = new Notification(title, options);
    n.onclick = () => {
      window.focus();
      deliver({ action: "open", group, path });
      n.close();
    };
    return true;
  } catch (e) {
    console.warn("notification not shown:", e);
    return false;
  }
}

// Closes this page's notifications with `tag` (a ring that ended, a chat opened again). `kind`:
// only those of that kind, or all when empty.
export async function notifyClose(tag, kind) {
  const reg = await registration();
  if (!reg || !reg.getNotifications) return;
  try {
    for (const n of await reg.getNotifications({ tag })) {
      if (!kind || (n.data && n.data.kind === kind)) n.close();
    }
  } catch {
    // Nothing to close.
  }
}

let handler = null;
const early = [];

function deliver(message) {
  if (handler) handler(message.action || "open", message.group || "");
  else early.push(message);
}

// What a click on a notification asks of the page: `callback(action, groupHex)` with action
// "open", "answer" or "decline". Messages from the worker that came before are delivered now.
export function notifyListen(callback) {
  handler = callback;
  for (const m of early.splice(0)) deliver(m);
}

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.addEventListener("message", (event) => {
    const data = event.data;
    if (data && data.type === "veche-notification") deliver(data);
  });
  // Messages sent before this listener existed are queued until the page starts taking them.
  navigator.serviceWorker.startMessages();
}

// A notification click that opened this page (the worker had no window to send it to):
// `?notification=<action>` on the chat's path.
{
  const params = new URLSearchParams(location.search);
  const action = params.get("notification");
  const m = location.pathname.match(/^\/chat\/([0-9a-f]+)/);
  if (action && m) {
    early.push({ action, group: m[1] });
    params.delete("notification");
    const rest = params.toString();
    history.replaceState(history.state, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
}

// Copies text: the Clipboard API where the browser offers it (a secure context), else the old
// way through a selected, hidden text area. Resolves to whether it was copied.
export async function copyText(text) {
  if (navigator.clipboard && navigator.clipboard.writeText) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Refused (no permission, page without focus): the old way below.
    }
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.top = "0";
  area.style.left = "0";
  area.style.opacity = "0";
  document.body.appendChild(area);
  const focused = document.activeElement;
  area.select();
  area.setSelectionRange(0, text.length);
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  if (focused && focused.focus) focused.focus();
  return ok;
}

// The ring of an incoming 1:1 call: a two-tone burst (440 + 480 Hz, 2 s on, 4 s off) from Web
// Audio, so it needs no sound file. Browsers let a page play sound once the member has interacted
// with it, which a signed-in member has; if the browser refuses, the call still shows (and
// notifies). `document.documentElement.dataset.ringTone` says whether it is sounding.
let ringContext = null;
let ringTimer = null;

export function ringTone(on) {
  if (!on) {
    if (ringTimer) clearInterval(ringTimer);
    ringTimer = null;
    if (ringContext) ringContext.close().catch(() => {});
    ringContext = null;
    delete document.documentElement.dataset.ringTone;
    return;
  }
  if (ringContext) return;
  try {
    ringContext = new AudioContext();
  } catch {
    return;
  }
  const burst = () => {
    if (!ringContext) return;
    const t = ringContext.currentTime;
    for (const frequency of [440, 480]) {
      const tone = ringContext.createOscillator();
      const gain = ringContext.createGain();
      tone.frequency.value = frequency;
      gain.gain.setValueAtTime(0, t);
      gain.gain.linearRampToValueAtTime(0.08, t + 0.05);
      gain.gain.setValueAtTime(0.08, t + 1.9);
      gain.gain.linearRampToValueAtTime(0, t + 2);
      tone.connect(gain).connect(ringContext.destination);
      tone.start(t);
      tone.stop(t + 2.05);
    }
  };
  ringContext.resume().catch(() => {});
  burst();
  ringTimer = setInterval(burst, 6000);
  document.documentElement.dataset.ringTone = ringContext.state;
  ringContext.onstatechange = () => {
    if (ringContext) document.documentElement.dataset.ringTone = ringContext.state;
  };
}
