// Starts the app: loads the wasm-bindgen module and its wasm, and registers the service worker.
// A file rather than an inline script, so the node's Content-Security-Policy needs no
// 'unsafe-inline' for scripts. scripts/build-ui.sh fills in this build's file names and serves it
// as /assets/boot-<hash>.js.
import init from "/assets/@JS@";

init({ module_or_path: "/assets/@WASM@" });
// The service worker (sw.js) keeps the app opening while the node is unreachable. Browsers offer
// it only in a secure context (https, or localhost).
if ("serviceWorker" in navigator) {
  addEventListener("load", () => {
    navigator.serviceWorker.register("/sw.js", { scope: "/" })
      .catch((e) => console.warn("service worker not registered:", e));
    // A page loaded while the worker was still installing is not among the clients it claimed
    // when it activated: ask it to claim this one too, so the page works offline without a reload.
    navigator.serviceWorker.ready.then((registration) => {
      if (!navigator.serviceWorker.controller && registration.active) registration.active.postMessage("claim");
    });
  });
}
