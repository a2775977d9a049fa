// Browser end-to-end: roles in a call. Alice starts her group chat's call and makes it a webinar;
// Bob joins with camera and microphone and is only a viewer: he is told, his panel says so, and
// the node forwards nothing of his (Alice decodes no video of his while his browser sends). He
// raises his hand, Alice sees it and makes him a presenter: his role changes, his hand goes down
// and Alice starts decoding his video. Alice locks the call and ends it for everyone: Bob's call
// panel closes. Second test: a meeting with a lobby; its guest waits until the organizer lets
// her in, and, waiting again, is turned away.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startNode, launchBrowser, member, onboardWithLink, artifacts, tid, until, joinCall, groupOfTwo, callTool, openCallMore } from "./harness.mjs";

/// What this page's peer connection receives (video frames decoded) and sends (video).
async function stats(page) {
  return page.evaluate(async () => {
    const pc = window.__vechePc;
    if (!pc) return null;
    const out = { framesDecoded: 0, inboundVideo: 0, framesSent: 0, bytesSent: 0 };
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") {
        out.inboundVideo += 1;
        out.framesDecoded += r.framesDecoded || 0;
      }
      if (r.type === "outbound-rtp" && r.kind === "video") {
        out.framesSent += r.framesSent || 0;
        out.bytesSent += r.bytesSent || 0;
      }
    });
    return out;
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("webinar roles: a viewer raises a hand, is made presenter, and the call is locked and ended", { timeout: 240000 }, async () => {
  const started = Date.now();
  const node = await startNode();
  const browser = await launchBrowser();
  try {
    const { a, b } = await groupOfTwo(browser, node, "Family");

    // Alice starts the call: she organizes it, and it is a meeting.
    await joinCall(a);
    await a.locator(tid("call-panel")).waitFor();
    const aliceSelf = a.locator(tid("call-person") + '[data-name="Alice"]');
    await aliceSelf.waitFor();
    assert.equal(await aliceSelf.getAttribute("data-role"), "organizer");
    assert.equal(await a.locator(tid("call-mode-badge")).getAttribute("data-mode"), "meeting");
    // She makes it a webinar.
    await callTool(a, "call-mode");
    await a.locator(tid("call-mode-badge") + '[data-mode="webinar"]').waitFor({ timeout: 10000 });

    // Bob joins with his camera and microphone: a participant, so only a viewer.
    await joinCall(b);
    await b.locator(tid("call-panel")).waitFor();
    for (const page of [a, b]) {
      await page.locator(tid("call-participants") + '[data-count="2"]').waitFor({ timeout: 15000 });
    }
    await b.locator(tid("call-mode-badge") + '[data-mode="webinar"]').waitFor();
    assert.equal(await b.locator(tid("call-mode")).count(), 0, "a participant does not switch the mode");
    assert.equal(await b.locator(tid("call-end")).count(), 0, "a participant does not end the call");
    assert.equal(await b.locator(tid("call-person-menu")).count(), 0, "a participant moderates nobody");
    const bobOnAlice = a.locator(tid("call-person") + '[data-name="Bob"]');
    await bobOnAlice.waitFor();
    assert.equal(await bobOnAlice.getAttribute("data-role"), "participant");
    // He is told he cannot publish (the node's refusal, in his language) and his panel says so.
    await b.locator(tid("toast")).filter({ hasText: /only presenters/i }).first().waitFor({ timeout: 20000 });
    await b.locator(tid("call-panel") + '[data-viewer="true"]').waitFor();
    await b.locator(tid("call-viewer-badge")).waitFor();

    // Bob's browser sends video, yet nothing of it reaches Alice: she decodes no frame of his.
    await until("Bob sends video", async () => {
      const s = await stats(b);
      return s && s.framesSent > 30 ? s : null;
    });
    // Bob decodes Alice's (the organizer presents).
    await until("Bob decodes Alice's video", async () => ((await stats(b))?.framesDecoded || 0) > 0);
    await sleep(3000);
    const viewerAlice = await stats(a);
    const viewerBob = await stats(b);
    console.log(`webinar viewer: Alice inbound video streams ${viewerAlice.inboundVideo}, frames decoded ${viewerAlice.framesDecoded}; Bob frames sent ${viewerBob.framesSent}, bytes sent ${viewerBob.bytesSent}`);
    assert.equal(viewerAlice.framesDecoded, 0, "Alice decodes nothing of a webinar viewer");
    assert.ok(viewerBob.framesSent > 30 && viewerBob.bytesSent > 10000, "Bob's browser does send");
    assert.equal(await a.locator(tid("call-tile")).count(), 0, "Alice has no tile of Bob");

    // Bob raises his hand; Alice sees it.
    assert.equal(await b.locator(tid("call-hand")).getAttribute("aria-pressed"), "false");
    await b.locator(tid("call-hand")).click();
    await b.locator(tid("call-hand") + '[aria-pressed="true"]').waitFor({ timeout: 10000 });
    await a.locator(tid("call-person") + '[data-name="Bob"][data-hand="true"]').waitFor({ timeout: 10000 });
    await a.screenshot({ path: join(artifacts, "call-roles-hand-alice.png") });
    await b.screenshot({ path: join(artifacts, "call-roles-viewer-bob.png") });

    // Alice makes him a presenter from his menu.
    await bobOnAlice.locator(tid("call-person-menu")).click();
    await bobOnAlice.locator(tid("call-promote")).click();
    await a.locator(tid("call-person") + '[data-name="Bob"][data-role="presenter"]').waitFor({ timeout: 10000 });
    await b.locator(tid("call-person") + '[data-name="Bob"][data-role="presenter"]').waitFor({ timeout: 10000 });
    // His hand is down, on both sides; he is no longer only a viewer.
    await a.locator(tid("call-person") + '[data-name="Bob"][data-hand="false"]').waitFor({ timeout: 10000 });
    await b.locator(tid("call-hand") + '[aria-pressed="false"]').waitFor({ timeout: 10000 });
    await b.locator(tid("call-panel") + '[data-viewer="false"]').waitFor({ timeout: 10000 });
    // Alice now decodes Bob's video, and it keeps coming.
    await a.locator(tid("call-tile")).first().waitFor({ timeout: 20000 });
    const first = await until("Alice decodes Bob's video", async () => {
      const s = await stats(a);
      return s && s.framesDecoded > 0 ? s : null;
    });
    await sleep(2000);
    const later = await stats(a);
    console.log(`after promotion: Alice frames decoded ${viewerAlice.framesDecoded} (viewer) -> ${first.framesDecoded} -> ${later.framesDecoded} two seconds later`);
    assert.ok(later.framesDecoded > first.framesDecoded, "Alice's decoded frames of Bob rise");
    await a.screenshot({ path: join(artifacts, "call-roles-presenter-alice.png") });

    // Alice locks the call: everyone sees it is locked.
    await openCallMore(a);
    assert.equal(await a.locator(tid("call-lock")).getAttribute("aria-pressed"), "false");
    await callTool(a, "call-lock");
    await openCallMore(a);
    await a.locator(tid("call-lock") + '[aria-pressed="true"]').waitFor({ timeout: 10000 });
    await a.locator(tid("call-more")).click();
    await b.locator(tid("call-lock-badge")).waitFor({ timeout: 10000 });

    // Alice ends the call for everyone: both panels close, Bob is told.
    await callTool(a, "call-end");
    await b.locator(tid("call-panel")).waitFor({ state: "detached", timeout: 10000 });
    await a.locator(tid("call-panel")).waitFor({ state: "detached", timeout: 10000 });
    await b.locator(tid("toast")).filter({ hasText: /ended for everyone/i }).waitFor({ timeout: 10000 });
    assert.equal(await b.evaluate(() => window.__vechePc), null, "Bob's peer connection is closed");
    await b.locator(tid("call-start")).waitFor();
    console.log(`call roles test: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await browser.close();
    node.stop();
  }
});

test("a meeting's lobby: a guest waits, is let in, and waiting again is turned away", { timeout: 240000 }, async () => {
  const started = Date.now();
  const node = await startNode();
  const browser = await launchBrowser();
  try {
    const { page: a } = await member(browser, "Alice");
    const { page: g } = await member(browser, "Gina");
    await onboardWithLink(a, node.adminLink.replace(/^http:\/\/[^/]+/, node.url), "Alice");
    await a.locator(tid("chat-list")).waitFor();
    await a.locator(tid("new-meeting")).click();
    await a.locator(tid("meeting-title")).fill("Open day");
    await a.locator(tid("meeting-lobby")).check();
    await a.locator(tid("create-meeting-submit")).click();
    await a.locator(tid("meeting-card")).waitFor();
    const link = await a.locator(tid("meeting-copy-link")).getAttribute("data-link");
    await g.goto(link);
    await g.locator(tid("join-name")).fill("Gina");
    await g.locator(tid("join-submit")).click();
    await g.locator(tid("composer")).waitFor({ timeout: 30000 });

    await joinCall(a);
    await a.locator(tid("call-panel")).waitFor();
    // Gina, a guest, waits in the lobby; Alice sees her waiting.
    await joinCall(g);
    await g.locator(tid("call-lobby-waiting")).waitFor({ timeout: 15000 });
    assert.match(await g.locator(tid("call-lobby-waiting")).innerText(), /waiting for the organizer/i);
    assert.equal(await g.locator(tid("call-participants")).count(), 0, "a waiting guest sees nobody in the call");
    const waiting = a.locator(tid("call-waiting-person") + '[data-name="Gina"]');
    await waiting.waitFor({ timeout: 10000 });
    assert.equal(await a.locator(tid("call-participants")).getAttribute("data-count"), "1");
    // Alice lets her in: Gina joins with a fresh peer connection and both see two in the call.
    await waiting.locator(tid("call-admit")).click();
    await g.locator(tid("call-lobby-waiting")).waitFor({ state: "detached", timeout: 15000 });
    for (const page of [a, g]) {
      await page.locator(tid("call-participants") + '[data-count="2"]').waitFor({ timeout: 15000 });
    }
    await a.locator(tid("call-waiting-person")).waitFor({ state: "detached" });
    const gina = a.locator(tid("call-person") + '[data-name="Gina"]');
    assert.equal(await gina.getAttribute("data-role"), "guest");
    assert.match(await gina.locator(tid("call-role-badge")).innerText(), /guest/i);
    await until("Alice decodes Gina's video", async () => ((await stats(a))?.framesDecoded || 0) > 0);
    await a.screenshot({ path: join(artifacts, "call-roles-lobby-alice.png") });

    // Gina leaves and asks again; this time Alice turns her away.
    await g.locator(tid("call-leave")).click();
    await a.locator(tid("call-participants") + '[data-count="1"]').waitFor({ timeout: 10000 });
    await joinCall(g);
    await g.locator(tid("call-lobby-waiting")).waitFor({ timeout: 15000 });
    await waiting.locator(tid("call-turn-away")).click();
    await g.locator(tid("call-panel")).waitFor({ state: "detached", timeout: 10000 });
    await g.locator(tid("toast")).filter({ hasText: /did not let you in/i }).waitFor({ timeout: 10000 });
    await a.locator(tid("call-waiting-person")).waitFor({ state: "detached", timeout: 10000 });
    assert.equal(await a.locator(tid("call-participants")).getAttribute("data-count"), "1");
    console.log(`lobby test: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await browser.close();
    node.stop();
  }
});
