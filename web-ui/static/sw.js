// Veche's service worker: keeps the app shell (index.html) and this build's files in a cache, so
// the app opens while the node is unreachable and shows what the browser keeps (IndexedDB).
// Made by scripts/build-ui.sh from web-ui/static/sw.js, which fills in the build's hash and files.
"use strict";

const CACHE = "veche-@BUILD@";
const SHELL = "/";
const FILES = @FILES@;
// How long a page load waits for the node before the cached app is shown instead.
const NAVIGATION_TIMEOUT_MS = 5000;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => cache.addAll([SHELL, ...FILES]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("veche-") && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

// A page that loaded while this worker was installing asks to be claimed (boot.js).
self.addEventListener("message", (event) => {
  if (event.data === "claim") event.waitUntil(self.clients.claim());
});

// The node's own endpoints, never answered from the cache.
function passThrough(path) {
  return path.startsWith("/api/") || path === "/api" || path === "/healthz" || path === "/metrics"
    || path.startsWith("/.well-known/");
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || passThrough(url.pathname)) return;
  if (request.mode === "navigate") {
    // Every path of the app (/, /chat/<id>, /join, /settings) is index.html: the node's when it
    // answers, else the cached one.
    event.respondWith(navigation(request));
  } else if (url.pathname.startsWith("/assets/") || FILES.includes(url.pathname)) {
    event.respondWith(cacheFirst(request));
  }
});

async function navigation(request) {
  const network = fetch(request);
  network.catch(() => {}); // when it fails after the timeout, the cached app is already shown
  const timeout = new Promise((resolve) => setTimeout(resolve, NAVIGATION_TIMEOUT_MS));
  try {
    const response = await Promise.race([network, timeout]);
    // A proxy in front of a stopped node answers 502/503/504: the cached app then too.
    if (response && response.status < 500) return response;
  } catch {
    // Unreachable: the cached app below.
  }
  const cached = await caches.match(SHELL, { cacheName: CACHE });
  return cached || network;
}

// Hashed files never change; one missing from the cache (a build newer than this worker) is
// fetched and kept.
async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request, { ignoreVary: true });
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok && new URL(request.url).pathname.startsWith("/assets/")) {
    cache.put(request, response.clone()).catch(() => {});
  }
  return response;
}

// A click on a notification the page showed (notify.js): the app comes to the front at the chat,
// and the page is told what was chosen ("open", or "answer"/"decline" for a ringing call). With
// no window of the app open, one is opened at the chat (`?notification=<action>` tells it).
self.addEventListener("notificationclick", (event) => {
  const notification = event.notification;
  const data = notification.data || {};
  const action = event.action || "open";
  notification.close();
  event.waitUntil(notificationClicked(action, data));
});

async function notificationClicked(action, data) {
  const group = typeof data.group === "string" ? data.group : "";
  const path = typeof data.path === "string" && data.path.startsWith("/") ? data.path : "/";
  const windows = (await self.clients.matchAll({ type: "window", includeUncontrolled: true }))
    .filter((c) => new URL(c.url).origin === self.location.origin);
  const message = { type: "veche-notification", action, group };
  if (windows.length === 0) {
    // Declining needs no window; a closed app has nothing ringing to decline anyway.
    if (action === "decline") return;
    await self.clients.openWindow(path + "?notification=" + encodeURIComponent(action));
    return;
  }
  // Every window hears it; only the tab driving the device acts. The most recently focused one
  // (first in the list) comes to the front unless the call was declined.
  for (const client of windows) client.postMessage(message);
  if (action !== "decline") {
    try {
      await windows[0].focus();
    } catch {
      // Focusing is refused without the click's activation; the page still opens the chat.
    }
  }
}
