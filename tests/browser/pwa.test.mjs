// The installable app: a web app manifest Chromium accepts, a service worker that controls the
// page, and the app opening with its history while the node is down (the page reloaded with the
// node stopped), with a message typed then delivered once the node is back; a node that does not
// answer does not hold up what the member types.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startNode, launchBrowser, groupOfTwo, send, message, tid, until, artifacts } from "./harness.mjs";

/// The page's service worker once it is active and controls the page: its script URL and state.
async function controller(page) {
  return until("the service worker controls the page", () => page.evaluate(() => {
    const sw = navigator.serviceWorker.controller;
    return sw && sw.state === "activated" ? { script: sw.scriptURL, state: sw.state } : null;
  }), 30000);
}

test("installable app: manifest, service worker, opens offline with its history and outbox", { timeout: 240000 }, async () => {
  let node = await startNode();
  const browser = await launchBrowser();
  try {
    const { a, b } = await groupOfTwo(browser, node, "Harbour watch");

    // What the node serves at the root, with the types browsers check.
    const served = await a.evaluate(async () => {
      const out = {};
      for (const path of ["/manifest.webmanifest", "/sw.js", "/icon-192.png", "/icon-512.png", "/icon-maskable-512.png"]) {
        const r = await fetch(path, { cache: "no-store" });
        out[path] = { status: r.status, type: r.headers.get("content-type") };
      }
      return out;
    });
    assert.equal(served["/manifest.webmanifest"].status, 200);
    assert.match(served["/manifest.webmanifest"].type, /^application\/manifest\+json/);
    assert.match(served["/sw.js"].type, /^(text|application)\/javascript/);
    for (const icon of ["/icon-192.png", "/icon-512.png", "/icon-maskable-512.png"]) {
      assert.deepEqual(served[icon], { status: 200, type: "image/png" }, icon);
    }

    // The service worker is active and controls the page (it claims the page that registered it).
    const sw = await controller(a);
    assert.equal(sw.script, `${node.url}/sw.js`);

    // Chromium finds the page installable and reads the manifest without errors.
    const cdp = await a.context().newCDPSession(a);
    const manifest = await cdp.send("Page.getAppManifest");
    assert.equal(manifest.url, `${node.url}/manifest.webmanifest`);
    assert.deepEqual(manifest.errors, [], "manifest errors");
    const parsed = JSON.parse(manifest.data);
    // Named after the node, so the installed app shows the community's name.
    assert.equal(parsed.name, "Town Library · Veche");
    assert.equal(parsed.short_name, "Town Library");
    assert.equal(parsed.display, "standalone");
    const { installabilityErrors } = await cdp.send("Page.getInstallabilityErrors");
    // Playwright's contexts are always incognito-like, and Chromium never installs from those;
    // that one error is about the test's browser profile, not the app, so it alone is left out.
    const errors = installabilityErrors.map((e) => e.errorId).filter((id) => id !== "in-incognito");
    assert.deepEqual(errors, [], `installability errors: ${JSON.stringify(installabilityErrors)}`);

    // Both members have the chat's history: one message each way.
    const fromAlice = `Tide at 6 ${Date.now()}`;
    const fromBob = `Boats are in ${Date.now()}`;
    await send(a, fromAlice);
    await message(b, fromAlice).waitFor({ timeout: 20000 });
    await send(b, fromBob);
    await message(a, fromBob).waitFor({ timeout: 20000 });
    await message(a, fromAlice, true).locator(tid("msg-delivery") + '[data-state="stored"]').waitFor();
    await controller(b);

    // The node stops. Alice reloads the chat's page (/chat/<id>) and Bob opens the app's root:
    // both get the app from the service worker (without it the reload fails with
    // ERR_CONNECTION_REFUSED), with the history kept in the browser.
    node.stop();
    await node.stopped();
    const chatUrl = a.url();
    assert.match(chatUrl, /\/chat\/[0-9a-f]+$/);
    await a.reload();
    assert.equal(a.url(), chatUrl);
    await a.locator(tid("chat-name")).filter({ hasText: "Harbour watch" }).waitFor({ timeout: 20000 });
    await message(a, fromAlice, true).waitFor();
    await message(a, fromBob).waitFor();
    await a.locator(tid("conn-state") + '[data-state="offline"]').first().waitFor({ timeout: 15000 });
    await b.goto(node.url + "/");
    await b.locator(tid("chat-row")).filter({ hasText: "Harbour watch" }).waitFor({ timeout: 20000 });
    await b.locator(tid("chat-row")).filter({ hasText: "Harbour watch" }).click();
    await message(b, fromAlice).waitFor();
    await message(b, fromBob, true).waitFor();
    assert.ok(await a.evaluate(() => navigator.serviceWorker.controller !== null), "the offline page is controlled");
    await a.screenshot({ path: join(artifacts, "pwa-offline-reload.png") });

    // Alice types while the node is down: the message waits in the outbox ...
    const offline = `Storm coming ${Date.now()}`;
    await send(a, offline);
    const mine = message(a, offline, true);
    await mine.locator(tid("msg-delivery") + '[data-state="sending"]').waitFor();
    // ... and survives another offline reload ...
    await a.reload();
    await mine.locator(tid("msg-delivery") + '[data-state="sending"]').waitFor({ timeout: 20000 });

    // ... and is sent when the node is back; Bob gets it.
    node = await node.restart();
    await mine.locator(tid("msg-delivery") + '[data-state="stored"]').waitFor({ timeout: 45000 });
    await message(b, offline).waitFor({ timeout: 45000 });
    await a.locator(tid("conn-state") + '[data-state="online"]').first().waitFor();

    // A node that does not answer at all (as when the phone is away from the LAN: the socket
    // neither opens nor fails for a while): Bob's app opens, and what he types is in the outbox
    // at once, not only once the connection attempt gives up.
    await b.routeWebSocket(/\/api\/ws$/, () => {});
    await b.reload();
    await message(b, offline).waitFor({ timeout: 20000 });
    const unanswered = `Anyone there? ${Date.now()}`;
    await send(b, unanswered);
    await message(b, unanswered, true).locator(tid("msg-delivery") + '[data-state="sending"]').waitFor({ timeout: 3000 });
  } finally {
    await browser.close();
    node.stop();
  }
});
