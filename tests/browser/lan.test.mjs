// Members on the LAN, as they really use the node: the node in one network namespace, Alice's and
// Bob's Chromium each in another, reaching the node at its LAN address over HTTPS (the node's own
// CA, trusted as after "Secure this device"). A plain http:// address is redirected to https; the
// page is a secure context with a camera, a microphone, Web Locks and a service worker; Chromium
// finds the app installable; both members chat, then call each other and each decodes the other's
// video and receives the other's audio through the node's SFU; with the node stopped, a reload
// opens the app with its history. All of it under the node's Content-Security-Policy, with no
// violation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startNode, launchBrowser, member, onboardWithLink, createGroup, createInvite, joinByLink, send, message, tid, until, inbound, joinCall, artifacts } from "./harness.mjs";
import { Lan, netnsUnavailable } from "./lan.mjs";

test("two members on different LAN hosts chat and call over HTTPS", { timeout: 300000 }, async (t) => {
  const why = netnsUnavailable();
  if (why) { t.skip(`needs network namespaces (root and iproute2): ${why}`); return; }
  const lan = new Lan(90, 3);
  let node;
  const browsers = [];
  try {
    node = await startNode({ host: lan.addr(1), netns: lan.host(1), args: ["--media-address", lan.addr(1), "--mdns", "false"] });
    assert.ok(node.url.startsWith(`https://${lan.addr(1)}:`), node.url);
    assert.ok(node.adminLink.startsWith(`${node.url}/join#`) && node.adminLink.includes("&f="), `admin link: ${node.adminLink}`);
    for (const n of [2, 3]) browsers.push(await launchBrowser({ executablePath: lan.chromium(n) }));
    const { page: a } = await member(browsers[0], "Alice");
    const { page: b } = await member(browsers[1], "Bob");
    // The app runs under the node's Content-Security-Policy: any violation is collected.
    const violations = [];
    for (const [name, page] of [["Alice", a], ["Bob", b]]) {
      await page.context().addInitScript(() => document.addEventListener("securitypolicyviolation",
        (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`)));
      page.on("console", (m) => { if (/CSP violation|Content Security Policy/.test(m.text())) violations.push(`${name}: ${m.text()}`); });
    }

    // An old http:// address still works: the node redirects it to https.
    await a.goto(node.url.replace("https://", "http://") + "/");
    assert.equal(new URL(a.url()).protocol, "https:", `redirected: ${a.url()}`);

    const response = await a.goto(node.url + "/");
    const csp = (await response.allHeaders())["content-security-policy"] ?? "";
    assert.match(csp, /script-src 'self' 'wasm-unsafe-eval';/, `the app's CSP: ${csp}`);
    assert.doesNotMatch(csp, /unsafe-inline'[^;]*;.*script|script-src[^;]*unsafe-inline/, "no inline scripts allowed");

    // Alice registers with the admin link; the page has what calls and the app need.
    await onboardWithLink(a, node.adminLink, "Alice");
    await a.locator(tid("chat-list")).waitFor();
    const context = await a.evaluate(() => ({
      secure: window.isSecureContext,
      media: !!navigator.mediaDevices?.getUserMedia,
      locks: !!navigator.locks,
      serviceWorker: "serviceWorker" in navigator,
      clipboard: !!navigator.clipboard?.writeText,
    }));
    assert.deepEqual(context, { secure: true, media: true, locks: true, serviceWorker: true, clipboard: true });
    const sw = await until("the service worker controls the page", () => a.evaluate(() => {
      const c = navigator.serviceWorker.controller;
      return c && c.state === "activated" ? c.scriptURL : null;
    }), 30000).catch(async (e) => {
      // What the registration looked like, for the log.
      const state = await a.evaluate(async () => {
        const r = await navigator.serviceWorker.getRegistration();
        const s = (w) => w && w.state;
        return r ? { installing: s(r.installing), waiting: s(r.waiting), active: s(r.active) } : "no registration";
      }).catch((err) => String(err));
      console.log(`service worker registration: ${JSON.stringify(state)}`);
      throw e;
    });
    assert.equal(sw, `${node.url}/sw.js`);
    const cdp = await a.context().newCDPSession(a);
    const { installabilityErrors } = await cdp.send("Page.getInstallabilityErrors");
    // Playwright's contexts are incognito-like, and Chromium never installs from those: that one
    // error is about the test's browser profile, not the app.
    const errors = installabilityErrors.map((e) => e.errorId).filter((id) => id !== "in-incognito");
    assert.deepEqual(errors, [], `installability errors: ${JSON.stringify(installabilityErrors)}`);

    // A chat between the two hosts.
    await createGroup(a, "Reading room");
    const link = await createInvite(a);
    assert.ok(link.startsWith(`${node.url}/join#`), link);
    await joinByLink(b, link, "Bob");
    await a.locator(tid("chat-name")).filter({ hasText: "Reading room" }).waitFor();
    const text = `Open until 8 tonight ${Date.now()}`;
    await send(a, text);
    await message(b, text).waitFor({ timeout: 20000 });

    // A call: each decodes the other's video and receives the other's audio, across the LAN.
    await joinCall(a);
    await a.locator(tid("call-panel")).waitFor();
    await joinCall(b);
    for (const page of [a, b]) await page.locator(tid("call-participants") + '[data-count="2"]').waitFor({ timeout: 20000 });
    for (const [name, page] of [["Alice", a], ["Bob", b]]) {
      const first = await until(`${name} decodes video and receives audio`, async () => {
        const s = await inbound(page);
        return s && s.framesDecoded > 0 && s.audioPackets > 0 ? s : null;
      }, 40000);
      await new Promise((r) => setTimeout(r, 2000));
      const later = await inbound(page);
      console.log(`${name} (LAN host): frames decoded ${first.framesDecoded} -> ${later.framesDecoded}, audio packets ${first.audioPackets} -> ${later.audioPackets}`);
      assert.ok(later.framesDecoded > first.framesDecoded, `${name}'s decoded frames rise`);
      assert.ok(later.audioPackets > first.audioPackets, `${name}'s audio packets rise`);
    }
    await a.screenshot({ path: join(artifacts, "lan-call-alice.png") });
    await a.locator(tid("call-leave")).click();
    await b.locator(tid("call-leave")).click();

    // The node stops: Bob's reload still opens the app (from the service worker) with the chat.
    await until("Bob's service worker controls his page", () => b.evaluate(() => navigator.serviceWorker.controller?.state === "activated"), 30000);
    node.stop();
    await node.stopped();
    await b.reload();
    await b.locator(tid("chat-name")).filter({ hasText: "Reading room" }).first().waitFor({ timeout: 20000 });
    await b.locator(tid("chat-name")).filter({ hasText: "Reading room" }).first().click();
    await message(b, text).waitFor({ timeout: 20000 });
    assert.deepEqual(violations, [], "no Content-Security-Policy violations");
  } finally {
    for (const browser of browsers) await browser.close().catch(() => {});
    if (node) { node.stop(); await node.stopped(); }
    lan.close();
  }
});
