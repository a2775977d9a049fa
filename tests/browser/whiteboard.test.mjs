// Browser end-to-end: the call's whiteboard and reactions over the call's data channel. Alice
// and Bob are in their group's call; Alice draws a red stroke and a blue rectangle with the
// mouse, and Bob's canvas shows both (its item count, and the colours of its pixels where they
// were drawn). Carol, on a phone (390x844), joins later and gets the board, and draws a green
// ellipse that reaches the others. Alice writes a word, draws a line and erases it. Alice sends
// a reaction: it floats over her tile on Bob's screen and goes. Junk on the channel changes
// nothing. In a webinar Bob may not draw: he is told why and nothing reaches the board. Alice
// ends the call for everyone: each of the three chats shows the saved whiteboard, drawn as SVG
// with the four items left, still there after a reload, and downloadable as an .svg file. In a
// second call Bob (organizing) draws, clears, draws again and leaves last: his board is saved.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { startNode, launchBrowser, member, onboardWithLink, createGroup, createInvite, joinByLink, artifacts, tid, until, joinCall, callTool } from "./harness.mjs";

const RED = "dc2626";
const BLUE = "2563eb";
const GREEN = "16a34a";
const PURPLE = "9333ea";

/// Drags the mouse over the canvas from one point to another, given as fractions of its size.
async function drag(page, [fx0, fy0], [fx1, fy1], steps = 20) {
  await page.locator(tid("wb-canvas")).scrollIntoViewIfNeeded();
  const box = await page.locator(tid("wb-canvas")).boundingBox();
  await page.mouse.move(box.x + fx0 * box.width, box.y + fy0 * box.height);
  await page.mouse.down();
  await page.mouse.move(box.x + fx1 * box.width, box.y + fy1 * box.height, { steps });
  await page.mouse.up();
}

async function click(page, [fx, fy]) {
  await page.locator(tid("wb-canvas")).scrollIntoViewIfNeeded();
  const box = await page.locator(tid("wb-canvas")).boundingBox();
  await page.mouse.click(box.x + fx * box.width, box.y + fy * box.height);
}

async function pick(page, tool, color) {
  if (tool) await page.locator(tid("wb-tool") + `[data-tool="${tool}"]`).click();
  if (color) await page.locator(tid("wb-color") + `[data-color="${color}"]`).click();
}

/// The colours of the canvas's pixels within `r` pixels of a point (fractions of its size).
async function pixelsNear(page, [fx, fy], r = 3) {
  return page.locator(tid("wb-canvas")).evaluate((canvas, [fx, fy, r]) => {
    const ctx = canvas.getContext("2d");
    const x = Math.round(fx * canvas.width), y = Math.round(fy * canvas.height);
    const data = ctx.getImageData(x - r, y - r, 2 * r + 1, 2 * r + 1).data;
    const out = [];
    for (let i = 0; i < data.length; i += 4) out.push([data[i], data[i + 1], data[i + 2]]);
    return out;
  }, [fx, fy, r]);
}

/// Whether some pixel within `r` pixels of the point is close to `hex`.
async function drawnAt(page, point, hex, r = 3) {
  const want = [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const pixels = await pixelsNear(page, point, r);
  return pixels.some((p) => p.every((v, i) => Math.abs(v - want[i]) <= 40));
}

async function items(page) {
  return Number(await page.locator(tid("wb-canvas")).getAttribute("data-items"));
}

async function itemsBecome(page, who, n) {
  await until(`${who}'s board holds ${n} items`, async () => (await items(page)) === n, 15000);
}

test("a call's whiteboard and reactions reach everyone, and the board is saved in the chat", { timeout: 300000 }, async () => {
  const started = Date.now();
  const node = await startNode();
  const browser = await launchBrowser();
  try {
    const { page: a } = await member(browser, "Alice");
    const { page: b } = await member(browser, "Bob");
    const { page: c } = await member(browser, "Carol", { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await onboardWithLink(a, node.adminLink.replace(/^http:\/\/[^/]+/, node.url), "Alice");
    await a.locator(tid("chat-list")).waitFor();
    await createGroup(a, "Studio");
    const link = await createInvite(a);
    await joinByLink(b, link, "Bob");
    await joinByLink(c, link, "Carol");

    // Alice and Bob are in the call, each with the whiteboard open.
    await joinCall(a);
    await a.locator(tid("call-panel")).waitFor();
    await joinCall(b);
    for (const page of [a, b]) {
      await page.locator(tid("call-participants") + '[data-count="2"]').waitFor({ timeout: 15000 });
      await page.locator(tid("call-whiteboard")).click();
      await page.locator(tid("wb-canvas")).waitFor();
    }
    assert.equal(await items(b), 0);

    // Alice draws a red stroke and a blue rectangle.
    const stroke = [[0.1, 0.2], [0.4, 0.3]];
    const rect = [[0.55, 0.45], [0.85, 0.8]];
    await pick(a, "pen", RED);
    await drag(a, ...stroke);
    await pick(a, "rect", BLUE);
    await drag(a, ...rect);
    await itemsBecome(a, "Alice", 2);
    assert.equal(await a.locator(tid("wb-canvas")).getAttribute("data-pending"), "0", "the node took both");
    // Bob's canvas shows both, in their colours, where Alice drew them.
    await itemsBecome(b, "Bob", 2);
    const strokeMiddle = [0.25, 0.25];
    const rectLeftEdge = [0.55, 0.6];
    await a.screenshot({ path: join(artifacts, "whiteboard-alice.png") });
    await b.screenshot({ path: join(artifacts, "whiteboard-bob.png") });
    assert.ok(await drawnAt(b, strokeMiddle, RED), "Bob sees the red stroke");
    assert.ok(await drawnAt(b, rectLeftEdge, BLUE), "Bob sees the blue rectangle's edge");
    assert.ok(!(await drawnAt(b, [0.7, 0.6], BLUE)), "the rectangle is an outline");
    assert.deepEqual((await pixelsNear(b, [0.3, 0.85]))[0], [255, 255, 255], "the rest is white");
    await b.screenshot({ path: join(artifacts, "whiteboard-bob.png") });

    // Only the organizer (and moderators) may clear the board.
    assert.equal(await a.locator(tid("wb-clear")).count(), 1);
    assert.equal(await b.locator(tid("wb-clear")).count(), 0, "a participant has no Clear");

    // Carol joins the call later, on her phone: she gets the board as it is.
    await joinCall(c);
    await c.locator(tid("call-participants") + '[data-count="3"]').waitFor({ timeout: 20000 });
    await c.locator(tid("call-whiteboard")).click();
    await itemsBecome(c, "Carol", 2);
    const phone = await c.locator(tid("wb-canvas")).boundingBox();
    console.log(`Carol's canvas on a 390 px wide phone: ${phone.width.toFixed(0)}x${phone.height.toFixed(0)} px at x=${phone.x.toFixed(0)}`);
    assert.ok(phone.x >= 0 && phone.x + phone.width <= 390 && phone.width > 300, "the canvas fits the phone's width");
    assert.ok(Math.abs(phone.width / phone.height - 16 / 9) < 0.02, "and is 16:9");
    for (const button of await c.locator(tid("wb-tool")).all()) {
      const box = await button.boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= 390, "every tool is on the screen");
    }
    assert.ok(await drawnAt(c, strokeMiddle, RED), "Carol sees the red stroke");
    // She draws a green ellipse; it reaches Alice and Bob.
    await pick(c, "ellipse", GREEN);
    await drag(c, [0.1, 0.5], [0.4, 0.9]);
    for (const [who, page] of [["Alice", a], ["Bob", b], ["Carol", c]]) await itemsBecome(page, who, 3);
    assert.ok(await drawnAt(a, [0.4, 0.7], GREEN), "Alice sees Carol's ellipse");
    await c.screenshot({ path: join(artifacts, "whiteboard-carol-phone.png") });

    // Alice writes a word, then draws a line and erases it.
    await pick(a, "text", PURPLE);
    await click(a, [0.6, 0.2]);
    await a.locator(tid("wb-text-input")).fill("Plan");
    await a.locator(tid("wb-text-input")).press("Enter");
    await itemsBecome(b, "Bob", 4);
    assert.ok(await drawnAt(b, [0.61, 0.18], PURPLE, 12), "Bob sees the text");
    await pick(a, "line", RED);
    await drag(a, [0.1, 0.05], [0.9, 0.05]);
    await itemsBecome(b, "Bob", 5);
    assert.ok(await drawnAt(b, [0.5, 0.05], RED));
    await pick(a, "eraser");
    await click(a, [0.5, 0.05]);
    for (const [who, page] of [["Alice", a], ["Bob", b], ["Carol", c]]) await itemsBecome(page, who, 4);
    assert.ok(!(await drawnAt(b, [0.5, 0.05], RED)), "the line is gone from Bob's board");

    // Alice reacts: the emoji floats over her tile on Bob's screen, then goes.
    await a.locator(tid("call-react")).click();
    await a.locator(tid("call-reaction-pick") + '[data-reaction="👏"]').click();
    const reacted = Date.now();
    const onTile = b.locator(tid("call-tile") + " " + tid("call-reaction") + '[data-reaction="👏"]');
    await onTile.waitFor({ timeout: 10000 });
    assert.equal(await onTile.innerText(), "👏");
    await b.screenshot({ path: join(artifacts, "whiteboard-reaction-bob.png") });
    await onTile.waitFor({ state: "detached", timeout: 10000 });
    console.log(`Alice's reaction showed on Bob's screen for about ${Date.now() - reacted} ms`);

    // Whatever arrives on the channel that is not a valid message changes nothing and breaks
    // nothing: Bob's page ignores it (as if the node had sent it) and goes on.
    const junk = ["{", "null", '{"t":"explode"}', "x".repeat(70000),
      JSON.stringify({ t: "drawn", by: 1, item: { id: 9, color: 255, width: 10, shape: { line: { from: [0, 0], to: [60000, 5] } } } }),
      JSON.stringify({ t: "reacted", by: 1, reaction: "<img src=x>" }),
      JSON.stringify({ t: "erased", by: "1", id: -4, who: 1 })];
    const ignored = await b.evaluate((junk) => {
      for (const data of junk) window.__vecheChannel.dispatchEvent(new MessageEvent("message", { data }));
      return junk.length;
    }, junk);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await items(b), 4, `${ignored} bad messages changed nothing`);
    assert.equal(await b.locator(tid("call-reaction")).count(), 0);
    assert.equal(await b.locator(tid("call-panel")).count(), 1, "Bob is still in the call");

    // In a webinar Bob (a participant) may not draw: he is told, and the board stays as it was.
    await callTool(a, "call-mode");
    await b.locator(tid("call-mode-badge") + '[data-mode="webinar"]').waitFor({ timeout: 10000 });
    await pick(b, "pen", GREEN);
    await drag(b, [0.1, 0.95], [0.5, 0.95]);
    await b.locator(tid("toast")).filter({ hasText: /only presenters draw on the whiteboard/i }).waitFor({ timeout: 10000 });
    await until("Bob's refused stroke leaves his canvas", async () =>
      (await b.locator(tid("wb-canvas")).getAttribute("data-pending")) === "0", 10000);
    assert.equal(await items(b), 4);
    assert.equal(await items(a), 4, "nothing of Bob's reached Alice's board");
    await callTool(a, "call-mode");
    await a.locator(tid("call-mode-badge") + '[data-mode="meeting"]').waitFor({ timeout: 10000 });

    // Alice ends the call for everyone: every member's chat shows the board she saved.
    await callTool(a, "call-end");
    for (const [who, page] of [["Alice", a], ["Bob", b], ["Carol", c]]) {
      await page.locator(tid("call-panel")).waitFor({ state: "detached", timeout: 15000 });
      const saved = page.locator(tid("whiteboard-message"));
      await saved.waitFor({ timeout: 15000 });
      assert.equal(await saved.count(), 1, `${who} has one saved board`);
      assert.equal(await saved.locator(tid("whiteboard-title")).innerText(), "Whiteboard");
      assert.equal(await saved.locator(tid("whiteboard-sender")).innerText(), "Alice");
      const kinds = await saved.locator("svg [data-item]").evaluateAll((els) => els.map((e) => `${e.tagName}:${e.dataset.item}`));
      console.log(`${who}'s saved whiteboard: ${kinds.join(", ")}`);
      assert.deepEqual(kinds, ["polyline:stroke", "rect:rect", "ellipse:ellipse", "text:text"]);
      assert.equal(await saved.locator('svg [data-item="stroke"]').getAttribute("stroke"), `#${RED}`);
      assert.equal(await saved.locator('svg [data-item="rect"]').getAttribute("stroke"), `#${BLUE}`);
      assert.equal(await saved.locator('svg [data-item="ellipse"]').getAttribute("stroke"), `#${GREEN}`);
      assert.equal(await saved.locator('svg [data-item="text"]').textContent(), "Plan");
    }
    await a.screenshot({ path: join(artifacts, "whiteboard-saved-alice.png") });
    await c.screenshot({ path: join(artifacts, "whiteboard-saved-carol-phone.png") });

    // It is in Bob's history after a reload, and downloads as an SVG file.
    await b.reload();
    await b.locator(tid("whiteboard-message")).waitFor({ timeout: 20000 });
    assert.equal(await b.locator(tid("whiteboard-message") + " svg [data-item]").count(), 4);
    const [download] = await Promise.all([b.waitForEvent("download"), b.locator(tid("whiteboard-download")).click()]);
    assert.match(download.suggestedFilename(), /^whiteboard-\d+\.svg$/);
    const file = readFileSync(await download.path(), "utf8");
    assert.match(file, /<svg[^>]+xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.equal((file.match(/data-item=/g) || []).length, 4);
    assert.match(file, />Plan<\/text>/);

    // Another call, which Bob starts and so organizes: he draws, clears the board, draws again
    // and leaves as the last one in: his device saves the board as it was then.
    await joinCall(b);
    await b.locator(tid("call-participants") + '[data-count="1"]').waitFor({ timeout: 15000 });
    await b.locator(tid("call-whiteboard")).click();
    assert.equal(await items(b), 0, "a new call starts with an empty board");
    await pick(b, "line", BLUE);
    await drag(b, [0.1, 0.1], [0.9, 0.9]);
    await itemsBecome(b, "Bob", 1);
    await b.locator(tid("wb-clear")).click();
    await itemsBecome(b, "Bob", 0);
    await pick(b, "pen", GREEN);
    await drag(b, [0.2, 0.5], [0.8, 0.5]);
    await itemsBecome(b, "Bob", 1);
    await b.locator(tid("call-leave")).click();
    for (const [who, page] of [["Alice", a], ["Bob", b], ["Carol", c]]) {
      await until(`${who} has the second saved board`, async () => (await page.locator(tid("whiteboard-message")).count()) === 2, 15000);
      const second = page.locator(tid("whiteboard-message")).nth(1);
      assert.equal(await second.locator(tid("whiteboard-sender")).innerText(), "Bob");
      const kinds = await second.locator("svg [data-item]").evaluateAll((els) => els.map((e) => e.dataset.item));
      assert.deepEqual(kinds, ["stroke"], `${who}: only what was on the board when Bob left`);
    }
    console.log(`whiteboard test: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await browser.close();
    node.stop();
  }
});
