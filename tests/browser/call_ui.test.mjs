// Browser end-to-end: the call's pre-join view and the grid, as members use them (Debian
// chromium with its fake camera and microphones, a real `veche` node).
// 1. Pre-join: the camera's picture plays and the microphone's meter moves before joining; the
//    browser's cameras and microphones are listed, the one picked is remembered after a reload;
//    a member who joins with the camera off sends no video (the other receives their audio and no
//    frames) until they turn it on, and nothing again once they turn it off; the connection
//    quality badge says how the connection is, with the round trip measured.
// 2. A phone: four tiles to a page; the member on the second page is not sent to the phone
//    (no frames decoded) until the phone turns to that page, and then is; paging back stops it,
//    paging forward again resumes it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  startNode, launchBrowser, member, onboardWithLink, createGroup, createInvite, joinByLink, artifacts, inbound, until, tid, groupOfTwo,
  joinCallWith,
} from "./harness.mjs";
import { launchFirefox, firefoxMember, click, waitFor } from "./engines.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Frames decoded by this page over `ms` (after what was on its way has arrived).
async function framesOver(page, ms) {
  const before = await inbound(page);
  await sleep(ms);
  const after = await inbound(page);
  return { before, after, frames: after.framesDecoded - before.framesDecoded, audio: after.audioPackets - before.audioPackets };
}

test("pre-join: preview, devices remembered, joining with the camera off", { timeout: 240000 }, async () => {
  const node = await startNode();
  const browser = await launchBrowser();
  try {
    const { a, b } = await groupOfTwo(browser, node, "Choir");

    // Bob opens the pre-join view: his camera's picture plays, the meter follows his microphone.
    await b.locator(tid("call-start")).click();
    await b.locator(tid("call-prejoin")).waitFor();
    await b.locator(tid("prejoin-status") + '[data-state="ok"]').waitFor({ timeout: 15000 });
    await until("the preview plays the camera", () =>
      b.locator(tid("prejoin-preview")).evaluate((v) => v.videoWidth > 0 && !v.paused && v.currentTime > 0), 15000);
    assert.equal(await b.locator(tid("call-panel")).count(), 0, "not in the call before joining");
    const peak = await until("the microphone meter moves", async () => {
      const level = Number(await b.locator(tid("prejoin-mic-level")).getAttribute("data-level"));
      return level > 0 ? level : null;
    }, 15000);
    console.log(`Bob's microphone meter reached ${peak}%`);

    // The browser's devices are listed by name; Bob picks another microphone.
    const mics = await b.locator(tid("prejoin-mic") + " option").evaluateAll((os) => os.map((o) => ({ id: o.value, label: o.textContent.trim() })));
    const cameras = await b.locator(tid("prejoin-camera") + " option").evaluateAll((os) => os.map((o) => o.textContent.trim()));
    console.log(`Bob's microphones: ${mics.map((m) => m.label).join(", ")}; cameras: ${cameras.join(", ")}`);
    assert.ok(cameras.length >= 1 && cameras.every((c) => c.length > 0), "the camera is listed by name");
    assert.ok(mics.length >= 2, "the fake microphones are listed");
    const other = mics.find((m) => m.id !== "" && m.id !== "default" && m.id !== mics[0].id) || mics[1];
    await b.locator(tid("prejoin-mic")).selectOption(other.id);
    await b.locator(tid("prejoin-status") + '[data-state="ok"]').waitFor({ timeout: 15000 });
    await until("the preview opens the picked microphone", () => b.evaluate((id) => {
      const m = document.querySelector('[data-testid="prejoin-mic"]');
      return m.value === id;
    }, other.id), 10000);

    // Reloaded, the pick is still there.
    await b.reload();
    await b.locator(tid("chat-name")).filter({ hasText: "Choir" }).first().waitFor();
    await b.locator(tid("call-start")).click();
    await b.locator(tid("prejoin-status") + '[data-state="ok"]').waitFor({ timeout: 15000 });
    await until("the remembered microphone is selected", async () => (await b.locator(tid("prejoin-mic")).inputValue()) === other.id, 10000);
    // He goes back: the view closes and he is not in the call.
    await b.locator(tid("prejoin-cancel")).click();
    await b.locator(tid("call-prejoin")).waitFor({ state: "detached" });
    assert.equal(await b.locator(tid("call-panel")).count(), 0);

    // Alice joins with her camera; Bob joins with his camera off.
    await joinCallWith(a);
    await b.locator(tid("call-start")).click();
    await b.locator(tid("prejoin-status") + ':not([data-state="opening"])').waitFor({ timeout: 15000 });
    await b.locator(tid("prejoin-with-camera")).setChecked(false);
    await b.locator(tid("prejoin-camera-off")).waitFor();
    await b.locator(tid("prejoin-join")).click();
    await b.locator(tid("call-panel")).waitFor();
    for (const page of [a, b]) await page.locator(tid("call-participants") + '[data-count="2"]').waitFor({ timeout: 15000 });
    assert.equal(await b.locator(tid("call-camera")).getAttribute("aria-pressed"), "true", "Bob's camera button says it is off");
    const bobCamera = () => b.evaluate(() => window.__vechePc.getSenders().some((s) => s.track?.kind === "video" && s.track.readyState === "live"));
    assert.equal(await bobCamera(), false, "Bob's camera is not open");

    // Alice hears Bob and gets no picture from him; Bob sees Alice.
    await until("Alice receives Bob's audio", async () => (await inbound(a))?.audioPackets > 0, 20000);
    await until("Bob decodes Alice's video", async () => (await inbound(b))?.framesDecoded > 0, 20000);
    const off = await framesOver(a, 2000);
    console.log(`Alice, Bob's camera off: ${off.frames} frames, ${off.audio} audio packets in 2 s`);
    assert.equal(off.after.framesDecoded, 0, "no video from Bob while his camera is off");
    assert.ok(off.audio > 0, "Bob's audio keeps arriving");

    // Bob turns his camera on: Alice decodes it.
    await b.locator(tid("call-camera")).click();
    await b.locator(tid("call-camera") + '[aria-pressed="false"]').waitFor({ timeout: 10000 });
    await until("Bob's camera opens", bobCamera, 10000);
    await until("Alice decodes Bob's video", async () => (await inbound(a)).framesDecoded > 0, 20000);
    const on = await framesOver(a, 2000);
    console.log(`Alice, Bob's camera on: ${on.frames} frames in 2 s`);
    assert.ok(on.frames > 5, "Bob's video flows once his camera is on");

    // Bob turns it off again: the camera is released and nothing more comes.
    await b.locator(tid("call-camera")).click();
    await b.locator(tid("call-camera") + '[aria-pressed="true"]').waitFor({ timeout: 10000 });
    await until("Bob's camera is released", async () => !(await bobCamera()), 5000);
    await sleep(1000);
    const offAgain = await framesOver(a, 2000);
    console.log(`Alice, Bob's camera off again: ${offAgain.frames} frames in 2 s`);
    assert.ok(offAgain.frames <= 1, "no video from Bob once he turned his camera off");

    // The connection quality badge: good on loopback, with the round trip measured.
    const badge = a.locator(tid("call-quality"));
    await badge.waitFor({ timeout: 15000 });
    const label = await until("the round trip is measured", async () => {
      const l = await badge.getAttribute("aria-label");
      return /round trip \d+ ms/.test(l || "") ? l : null;
    }, 15000);
    console.log(`Alice's quality badge: ${label}`);
    assert.equal(await badge.getAttribute("data-quality"), "good");
    await b.screenshot({ path: join(artifacts, "call-ui-bob.png") });
  } finally {
    await browser.close();
    node.stop();
  }
});

/// The remote tiles the page shows now (not hidden on another page of the grid).
async function visibleTiles(page) {
  return page.evaluate(() => [...document.querySelectorAll('[data-testid="call-tile"]')]
    .filter((e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length);
}

for (const engine of ["chromium", "firefox"]) {
  test(`a phone pages the grid and is sent only the videos on its page (the phone in ${engine})`, { timeout: 300000 }, async () => {
    const node = await startNode();
    const browser = await launchBrowser();
    const firefox = engine === "firefox" ? await launchFirefox() : null;
    try {
      const { page: v } = engine === "firefox"
        ? await firefoxMember(firefox, "Vera", { viewport: { width: 390, height: 844 } })
        : await member(browser, "Vera", { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
      await onboardWithLink(v, node.adminLink.replace(/^http:\/\/[^/]+/, node.url), "Vera");
      await waitFor(v, tid("chat-list"));
      await createGroup(v, "Council");
      const link = await createInvite(v);
      const quiet = [];
      for (const name of ["Boris", "Galina", "Dmitri", "Elena"]) {
        const { page } = await member(browser, name);
        await joinByLink(page, link, name);
        quiet.push(page);
      }
      const { page: a } = await member(browser, "Alice");
      await joinByLink(a, link, "Alice");
      await waitFor(v, tid("chat-name"), { hasText: "Council" });

      // Vera and four members with their cameras and microphones off join, then Alice with her
      // camera: on the phone, four tiles to a page, so Alice's is on the second.
      await joinCallWith(v, { mic: false, camera: false });
      for (const page of quiet) await joinCallWith(page, { mic: false, camera: false });
      await joinCallWith(a, { mic: false, camera: true });
      await waitFor(v, tid("call-participants") + '[data-count="6"]', { timeout: 30000 });
      await waitFor(v, tid("call-page") + '[data-pages="2"][data-page="1"]', { timeout: 30000 });
      await until("four tiles show on the first page", async () => (await visibleTiles(v)) === 4, 15000);
      await until("everyone's audio reaches Vera", async () => (await inbound(v))?.audioPackets > 0, 20000);
      await until("Bob sees Alice's video (she sends it)", async () => (await inbound(quiet[0]))?.framesDecoded > 0, 20000);
      await sleep(1500); // the phone told the node what it shows
      const hidden = await framesOver(v, 3000);
      console.log(`${engine}: Vera on page 1: ${hidden.frames} frames decoded in 3 s (total ${hidden.after.framesDecoded})`);
      assert.ok(hidden.frames <= 1, "Alice's video is not sent to a phone that does not show it");
      await v.screenshot({ path: join(artifacts, `call-phone-page1-${engine}.png`) });

      // Vera turns to the second page: Alice's tile shows and her video arrives.
      await click(v, tid("call-page-next"));
      await waitFor(v, tid("call-page") + '[data-page="2"]');
      await until("one tile shows on the second page", async () => (await visibleTiles(v)) === 1, 10000);
      await until("Vera decodes Alice's video", async () => (await inbound(v)).framesDecoded > hidden.after.framesDecoded + 5, 20000);
      const shown = await framesOver(v, 2000);
      console.log(`${engine}: Vera on page 2: ${shown.frames} frames decoded in 2 s`);
      assert.ok(shown.frames > 5, "Alice's video flows to the page that shows it");
      await v.screenshot({ path: join(artifacts, `call-phone-page2-${engine}.png`) });

      // Back on the first page, it stops again.
      await click(v, tid("call-page-prev"));
      await waitFor(v, tid("call-page") + '[data-page="1"]');
      await sleep(1500);
      const again = await framesOver(v, 3000);
      console.log(`${engine}: Vera back on page 1: ${again.frames} frames decoded in 3 s`);
      assert.ok(again.frames <= 1, "Alice's video stops once her tile is off the page");

      // And forward again: her video resumes a second time (a paused video resumes at a fresh key
      // frame however often the phone pages).
      await click(v, tid("call-page-next"));
      await waitFor(v, tid("call-page") + '[data-page="2"]');
      const resumed = await until("Vera decodes Alice's video again", async () => {
        const r = await framesOver(v, 2000);
        return r.frames > 5 ? r : null;
      }, 20000);
      console.log(`${engine}: Vera on page 2 again: ${resumed.frames} frames decoded in 2 s`);
    } finally {
      if (firefox) await firefox.close();
      await browser.close();
      node.stop();
    }
  });
}
