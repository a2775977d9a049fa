// The node admin's page of other nodes: two nodes on this machine find each other by mDNS; the
// admin of one links from the settings page, the other admin (native client) approves, the
// page shows the link up; unlinking is seen by the other node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startNode, launchBrowser, client, tempDir, artifacts, tid, member, onboardWithLink } from "./harness.mjs";

test("a node admin links with a nearby node from the settings page", { timeout: 180000 }, async () => {
  const north = await startNode({ name: "North library" });
  const south = await startNode({ name: "South library" });
  const browser = await launchBrowser();
  try {
    const peerOf = async (node) => (await (await fetch(node.url + "/healthz")).json()).peer_id;
    const northPeer = await peerOf(north);

    const { page: a } = await member(browser, "A");
    await onboardWithLink(a, north.adminLink, "Nadia");
    await a.locator(tid("chat-list")).waitFor();
    await a.goto(north.url + "/settings");
    await a.locator(tid("nodes-admin")).waitFor();
    await a.locator(tid("node-address")).first().waitFor();
    const own = await a.locator(tid("node-address")).allInnerTexts();
    assert.ok(own.length > 0 && own.every((x) => x.endsWith(`/p2p/${northPeer}`)), `own addresses: ${own}`);

    // South is found on this machine's network and linked from North's page.
    const row = a.locator(tid("nearby-row")).filter({ hasText: "South library" });
    await row.waitFor({ timeout: 20000 });
    await row.locator(tid("nearby-link")).click();
    await a.locator(tid("link-row") + '[data-state="waiting-for-them"]').filter({ hasText: "South library" }).waitFor();

    // South's admin sees the request and approves it.
    const sam = tempDir("veche-e2e-south-");
    client(sam, "register", "--name", "Sam", "--invite", south.adminLink);
    const waiting = JSON.parse(client(sam, "admin", "links")).links;
    assert.deepEqual(waiting.map((l) => [l.peer_id, l.state]), [[northPeer, "waiting-for-us"]]);
    assert.equal(JSON.parse(client(sam, "admin", "link", northPeer)).state, "linked");
    await a.locator(tid("link-row") + '[data-state="linked"]').filter({ hasText: "South library" }).waitFor({ timeout: 10000 });
    await a.screenshot({ path: join(artifacts, "en-nodes-admin.png"), fullPage: true });

    // North unlinks: South sees that North no longer approves.
    await a.locator(tid("link-row")).filter({ hasText: "South library" }).locator(tid("link-unlink")).click();
    await a.locator(tid("link-row")).filter({ hasText: "South library" }).waitFor({ state: "detached" });
    const after = JSON.parse(client(sam, "admin", "links")).links;
    assert.deepEqual(after.map((l) => [l.peer_id, l.state]), [[northPeer, "waiting-for-them"]]);
  } finally {
    await browser.close();
    north.stop();
    south.stop();
  }
});
