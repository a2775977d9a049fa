// Browser end-to-end: sharing a screen in a call (Debian chromium: its fake capture gives a
// 1280×720 "screen" without asking). Bob shares his screen: Alice sees it on the stage above the
// grid, uncropped and at its own size, decoding its frames, with his camera still in the grid and
// "sharing" by his name. Bob stops from his banner: Alice's stage closes. He shares again on the
// same stream: it is back. Alice, who organizes the call, stops Bob's share from his menu: it
// closes for both, Bob is told, and his next try is refused until Alice allows it again. The
// browser's own "stop sharing" bar ends a share too. In a webinar a viewer has no share button.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startNode, launchBrowser, artifacts, until, tid, joinCall, groupOfTwo, callTool } from "./harness.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// What the page shows of a screen share on its stage: the video's size, and the frames its
/// peer connection decoded of that track (getStats inbound-rtp of the stage video's track).
async function stageVideo(page) {
  return page.evaluate(async () => {
    const video = document.querySelector('[data-testid="call-stage"] [data-testid="call-screen-tile"] video');
    const track = video?.srcObject?.getVideoTracks()[0];
    if (!video || !track || !window.__vechePc) return null;
    let frames = 0;
    (await window.__vechePc.getStats(track)).forEach((r) => {
      if (r.type === "inbound-rtp") frames += r.framesDecoded || 0;
    });
    return { width: video.videoWidth, height: video.videoHeight, fit: getComputedStyle(video).objectFit, frames };
  });
}

/// Waits until the page's stage plays a screen share whose decoded frames rise; returns what it
/// measured over two seconds.
async function seesScreen(page, who) {
  await page.locator(tid("call-screen-tile")).waitFor({ timeout: 20000 });
  const first = await until(`${who} decodes the shared screen`, async () => {
    const s = await stageVideo(page);
    return s && s.frames > 0 && s.width > 0 ? s : null;
  }, 20000);
  await sleep(2000);
  const later = await stageVideo(page);
  return { ...later, rate: (later.frames - first.frames) / 2 };
}

async function seesNoScreen(page, who) {
  await until(`${who}'s stage closes`, async () => (await page.locator(tid("call-screen-tile")).count()) === 0, 15000);
  assert.equal(await page.locator(tid("call-stage-title")).count(), 0, `${who} is told of no share`);
}

test("screen sharing: the stage, stop and again, a moderator stops it, a webinar viewer cannot", { timeout: 240000 }, async () => {
  const node = await startNode();
  const browser = await launchBrowser();
  try {
    const { a, b } = await groupOfTwo(browser, node, "Library board");

    await joinCall(a);
    await a.locator(tid("call-panel")).waitFor();
    await joinCall(b);
    await a.locator(tid("call-tile")).first().waitFor({ timeout: 20000 });
    assert.equal(await a.locator(tid("call-screen-tile")).count(), 0, "no share on the stage before one starts");

    // Bob shares his screen: his banner says so, Alice's stage plays it.
    await b.locator(tid("call-screen")).click();
    await b.locator(tid("call-sharing")).waitFor({ timeout: 10000 });
    assert.equal(await b.locator(tid("call-screen")).getAttribute("aria-pressed"), "true");
    const shown = await seesScreen(a, "Alice");
    console.log(`Alice's stage: ${shown.width}x${shown.height}, object-fit ${shown.fit}, ${shown.rate} frames/s decoded`);
    assert.deepEqual([shown.width, shown.height], [1280, 720], "the screen arrives at its own size");
    assert.equal(shown.fit, "contain", "a shared screen is shown whole, not cropped");
    assert.ok(shown.rate >= 3, `the share plays (${shown.rate} frames/s)`);
    assert.match(await a.locator(tid("call-stage-title")).innerText(), /Bob/);
    await a.locator(tid("call-person") + '[data-name="Bob"][data-sharing="true"]').waitFor();
    assert.equal(await a.locator(tid("call-grid") + " " + tid("call-tile")).count(), 1, "Bob's camera stays in the grid");
    assert.equal(await b.locator(tid("call-screen-tile")).count(), 0, "Bob is not shown his own screen");
    await a.screenshot({ path: join(artifacts, "screen-share-alice.png") });

    // Bob stops from his banner: Alice's stage closes.
    await b.locator(tid("call-sharing-stop")).click();
    await b.locator(tid("call-sharing")).waitFor({ state: "detached", timeout: 10000 });
    await seesNoScreen(a, "Alice");
    await a.locator(tid("call-person") + '[data-name="Bob"][data-sharing="false"]').waitFor();
    const senderTrack = await b.evaluate(() => window.__vechePc.getTransceivers().filter((t) => t.sender.track?.kind === "video").length);
    assert.equal(senderTrack, 1, "Bob sends only his camera once he stopped");

    // He shares again, on the same stream: it is back on Alice's stage.
    await b.locator(tid("call-screen")).click();
    await b.locator(tid("call-sharing")).waitFor({ timeout: 10000 });
    const again = await seesScreen(a, "Alice");
    console.log(`shared again: ${again.rate} frames/s decoded`);
    assert.ok(again.rate >= 3, "the second share plays");

    // Alice stops it from Bob's menu: both see it end, Bob is told.
    await a.locator(tid("call-person") + '[data-name="Bob"] ' + tid("call-person-menu")).click();
    await a.locator(tid("call-stop-screen")).click();
    await b.locator(tid("toast")).filter({ hasText: /stopped your screen share/i }).waitFor({ timeout: 10000 });
    await b.locator(tid("call-sharing")).waitFor({ state: "detached", timeout: 10000 });
    await seesNoScreen(a, "Alice");
    // Until Alice allows it, his next share is refused.
    await b.locator(tid("call-screen")).click();
    await b.locator(tid("toast")).filter({ hasText: /wait until you are asked/i }).waitFor({ timeout: 10000 });
    await b.locator(tid("call-screen") + '[aria-pressed="false"]').waitFor({ timeout: 10000 });
    await sleep(1500);
    assert.equal(await a.locator(tid("call-screen-tile")).count(), 0, "a refused share never reaches Alice");
    await a.locator(tid("call-person") + '[data-name="Bob"] ' + tid("call-person-menu")).click();
    await a.locator(tid("call-ask-unmute") + '[data-media="screen"]').click();
    await b.locator(tid("toast")).filter({ hasText: /asks you to turn/i }).waitFor({ timeout: 10000 });
    await b.locator(tid("call-screen")).click();
    const allowed = await seesScreen(a, "Alice");
    assert.ok(allowed.rate >= 3, "allowed again, the share plays");

    // The browser's own "stop sharing" bar (the capture ends) closes the share as well.
    await b.evaluate(() => {
      const track = window.__vechePc.getSenders().find((s) => s.track?.label.startsWith("screen"))?.track;
      track.dispatchEvent(new Event("ended"));
    });
    await b.locator(tid("call-sharing")).waitFor({ state: "detached", timeout: 10000 });
    await seesNoScreen(a, "Alice");

    // In a webinar Bob only watches: no share button; back in a meeting he has it again.
    await callTool(a, "call-mode");
    await b.locator(tid("call-viewer-badge")).waitFor({ timeout: 10000 });
    assert.equal(await b.locator(tid("call-screen")).count(), 0, "a webinar viewer has no share button");
    await callTool(a, "call-mode");
    await b.locator(tid("call-screen")).waitFor({ timeout: 10000 });
  } finally {
    await browser.close();
    node.stop();
  }
});
