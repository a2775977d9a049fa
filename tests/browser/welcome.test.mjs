// Browser end-to-end: a newcomer who takes their time on the join page still registers.
//
// The node closes a socket that has not signed in within 5 s (node/src/api/ws.rs), so a page
// left open on the join page must not depend on the socket it opened at load. Dana opens the
// node's admin link, reads the page for 8 s, then registers and creates a group; the page never
// showed an error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startNode, launchBrowser, member, createGroup, tid } from "./harness.mjs";

test("a newcomer who waits on the join page still registers", { timeout: 120000 }, async () => {
  const node = await startNode();
  const browser = await launchBrowser();
  try {
    const { page } = await member(browser, "Dana");
    const errors = [];
    page.on("console", (m) => { if (m.type() === "error" && !m.text().includes("WebSocket")) errors.push(m.text()); });
    await page.goto(node.adminLink);
    await page.locator(tid("join-name")).waitFor();
    await new Promise((r) => setTimeout(r, 8000));
    // Registers from the page as it is, without loading it again.
    await page.locator(tid("join-name")).fill("Dana");
    await page.locator(tid("join-submit")).click();
    await page.locator(tid("chat-list")).waitFor({ timeout: 20000 });
    await createGroup(page, "Garden club");
    assert.equal(await page.locator(tid("toast")).count(), 0, "no error shown");
    assert.deepEqual(errors, []);
  } finally {
    await browser.close().catch(() => {});
    node.stop();
    await node.stopped();
  }
});
