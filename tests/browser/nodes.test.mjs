// The node admin's page of other nodes: two nodes on this machine find each other by mDNS; the
// admin of one links from the settings page, the other admin (native client) approves, the
// page shows the link up; unlinking is seen by the other node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startNode, nodeGet, launchBrowser, client, tempDir, artifacts, tid, member, onboardWithLink, createGroup, createInvite, send, message } from "./harness.mjs";

test("a node admin links with a nearby node from the settings page", { timeout: 180000 }, async () => {
  const north = await startNode({ name: "North library" });
  const south = await startNode({ name: "South library" });
  const browser = await launchBrowser();
  try {
    const peerOf = async (node) => JSON.parse((await nodeGet(node, "/healthz")).body).peer_id;
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

// Members of two linked nodes chat in their browsers: a member of South opens North's invite
// link in South's own page ("Join by link"), joins through South, and they write both ways; the
// member card shows on which node the other lives.
test("members of two linked nodes chat as if on one node", { timeout: 240000 }, async () => {
  const north = await startNode({ name: "North library" });
  const south = await startNode({ name: "South library" });
  const browser = await launchBrowser();
  try {
    const peerOf = async (node) => JSON.parse((await nodeGet(node, "/healthz")).body).peer_id;
    const [northPeer, southPeer] = [await peerOf(north), await peerOf(south)];
    const nadmin = tempDir("veche-e2e-nadmin-");
    const sadmin = tempDir("veche-e2e-sadmin-");
    client(nadmin, "register", "--name", "North admin", "--invite", north.adminLink);
    client(sadmin, "register", "--name", "South admin", "--invite", south.adminLink);
    // Both admins approve (by peer id: the nodes see each other on this machine).
    const deadline = Date.now() + 30000;
    for (;;) {
      try {
        client(nadmin, "admin", "link", southPeer);
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    assert.equal(JSON.parse(client(sadmin, "admin", "link", northPeer)).state, "linked");
    const nodeInvite = (state) => JSON.parse(client(state, "invite", "node", "--uses", "1")).link;

    const { page: a } = await member(browser, "Anna");
    await onboardWithLink(a, nodeInvite(nadmin), "Anna");
    await a.locator(tid("chat-list")).waitFor();
    await createGroup(a, "Harbour");
    const link = await createInvite(a);
    assert.ok(link.startsWith(north.url), link);

    const { page: b } = await member(browser, "Boris");
    await onboardWithLink(b, nodeInvite(sadmin), "Boris");
    await b.locator(tid("chat-list")).waitFor();
    assert.ok(b.url().startsWith(south.url), b.url());
    await b.locator(tid("join-by-link")).click();
    await b.locator(tid("join-link-input")).fill("not a link");
    await b.locator(tid("join-link-submit")).click();
    await b.locator(tid("join-link-error")).waitFor();
    await b.locator(tid("join-link-input")).fill(link);
    await b.locator(tid("join-link-submit")).click();
    await b.locator(tid("join-title")).filter({ hasText: "Harbour" }).waitFor({ timeout: 20000 });
    assert.ok(b.url().startsWith(south.url + "/join#"), `joined through South: ${b.url()}`);
    await b.locator(tid("join-submit")).click();
    await b.locator(tid("composer")).waitFor({ timeout: 30000 });

    await send(a, "Hello from the north shore");
    await message(b, "Hello from the north shore").waitFor({ timeout: 20000 });
    await send(b, "Greetings from the south");
    const got = message(a, "Greetings from the south");
    await got.waitFor({ timeout: 20000 });
    assert.match(await got.innerText(), /Boris/);

    // Boris's member card for Anna says she lives on North.
    await b.locator(tid("open-chat-settings")).click();
    const anna = b.locator(tid("member-row")).filter({ hasText: "Anna" });
    await anna.locator(tid("member-home")).filter({ hasText: "North library" }).waitFor();
    assert.equal(await b.locator(tid("member-row")).filter({ hasText: "Boris" }).locator(tid("member-home")).count(), 0);
    await b.screenshot({ path: join(artifacts, "en-member-of-another-node.png"), fullPage: true });
  } finally {
    await browser.close();
    north.stop();
    south.stop();
  }
});
