// Browser flows beyond the first chat: link refusals, offline sending, renaming, direct chats
// from a member card with unread counts, one device per browser across tabs, the recovery file,
// scrolling back through a long history, and chats kept out of the browser's storage.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import {
  startNode, launchBrowser, client, tempDir, veche, artifacts, tid, member, watch, onboardWithLink, createGroup,
  createInvite, joinByLink, send, message,
} from "./harness.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const inviteId = (link) => link.match(/[#&]i=([0-9a-f]+)/)[1];

test("invite links that no longer work say why", { timeout: 180000 }, async () => {
  const node = await startNode();
  const browser = await launchBrowser();
  try {
    const { page: a } = await member(browser, "A");
    await onboardWithLink(a, node.adminLink, "Alice");
    await createGroup(a, "Choir");
    const once = await createInvite(a, { uses: "1" });
    const spare = await createInvite(a, { uses: "10" });
    const revoked = await createInvite(a, { uses: "10" });

    // Revoke one link from the invite dialog's list.
    await a.locator(tid("open-invite")).click();
    const row = a.locator(tid("invite-row")).filter({ hasText: inviteId(revoked).slice(0, 10) });
    await row.locator(tid("invite-revoke")).click();
    await a.locator(tid("invite-row") + '[data-status="link-revoked"]').waitFor();
    await a.keyboard.press("Escape");

    const { page: b } = await member(browser, "B");
    await joinByLink(b, once, "Boris");

    const { page: c } = await member(browser, "C");
    await c.goto(once);
    await c.locator(tid("join-error")).filter({ hasText: "used up" }).waitFor();
    assert.equal(await c.locator(tid("join-submit")).count(), 0, "no join button on a spent link");
    await c.screenshot({ path: join(artifacts, "en-link-used-up.png") });
    await c.goto(revoked);
    await c.locator(tid("join-error")).filter({ hasText: "revoked" }).waitFor();

    // An expired link, made by a native owner with a 1 s lifetime.
    const olga = tempDir("veche-e2e-olga-");
    client(olga, "register", "--name", "Olga", "--invite", spare);
    const group = JSON.parse(client(olga, "group", "create", "Olga's circle"));
    const expiring = JSON.parse(client(olga, "invite", "create", group.chat, "--expires", "1s")).link;
    await sleep(1500);
    await c.goto(expiring.replace(/^http:\/\/[^/]+/, node.url));
    await c.locator(tid("join-error")).filter({ hasText: "expired" }).waitFor();
  } finally {
    await browser.close();
    node.stop();
  }
});

test("messages typed while the node is down are sent when it is back", { timeout: 180000 }, async () => {
  let node = await startNode();
  const browser = await launchBrowser();
  try {
    const { page: a } = await member(browser, "A");
    await onboardWithLink(a, node.adminLink, "Alice");
    await createGroup(a, "Night shift");
    const link = await createInvite(a);
    const { page: b } = await member(browser, "B");
    await joinByLink(b, link, "Boris");
    // A draft stays in the composer across a reload.
    await b.locator(tid("composer")).fill("half-written thought");
    await b.reload();
    await b.locator(tid("composer")).waitFor();
    assert.equal(await b.locator(tid("composer")).inputValue(), "half-written thought");

    node.stop();
    await node.stopped();
    await a.locator(tid("conn-state") + '[data-state="offline"]').first().waitFor({ timeout: 15000 });
    const text = "typed while offline";
    await send(a, text);
    const mine = message(a, text, true);
    await mine.locator(tid("msg-delivery") + '[data-state="sending"]').waitFor();
    await a.screenshot({ path: join(artifacts, "en-offline-sending.png") });
    node = await startNode({ dataDir: node.dataDir, port: node.port });
    await mine.locator(tid("msg-delivery") + '[data-state="stored"]').waitFor({ timeout: 30000 });
    await message(b, text).waitFor({ timeout: 30000 });
    await a.locator(tid("conn-state") + '[data-state="online"]').first().waitFor();
  } finally {
    await browser.close();
    node.stop();
  }
});

test("renaming a group, a direct chat from a member card, unread counts, one device per browser", { timeout: 180000 }, async () => {
  const node = await startNode();
  const browser = await launchBrowser();
  try {
    const { page: a } = await member(browser, "A");
    await onboardWithLink(a, node.adminLink, "Alice");
    await createGroup(a, "Garden");
    const link = await createInvite(a);
    const { context: ctxB, page: b } = await member(browser, "B");
    await joinByLink(b, link, "Boris");
    await b.goto(node.url + "/");
    await b.locator(tid("chat-row")).first().waitFor();

    // Alice renames the group in its settings; Boris's list follows live.
    await a.locator(tid("open-chat-settings")).click();
    await a.locator(tid("chat-edit-name")).fill("Garden club");
    await a.locator(tid("chat-edit-description")).fill("Saturdays, bring gloves");
    await a.locator(tid("chat-save")).click();
    await b.locator(tid("chat-title")).filter({ hasText: "Garden club" }).waitFor({ timeout: 15000 });
    await a.locator(tid("chat-name")).filter({ hasText: "Garden club" }).waitFor();

    // Alice opens Boris's card in the group and starts a direct chat.
    const boris = a.locator(tid("member-row")).filter({ hasText: "Boris" });
    await boris.locator(tid("member-dm")).click();
    await a.locator(tid("chat-name")).filter({ hasText: "Boris" }).waitFor({ timeout: 20000 });
    await send(a, "just between us");
    await send(a, "and a second one");
    await message(a, "and a second one", true).locator(tid("msg-delivery") + '[data-state="stored"]').waitFor();

    // Boris sees it under direct chats, titled with Alice's name, with two unread.
    const row = b.locator(tid("direct-section") + " " + tid("chat-row"));
    await row.locator(tid("chat-title")).filter({ hasText: "Alice" }).waitFor({ timeout: 20000 });
    await row.locator(tid("unread")).filter({ hasText: "2" }).waitFor();
    assert.match(await row.locator(tid("chat-preview")).innerText(), /and a second one/);
    await b.screenshot({ path: join(artifacts, "en-unread.png") });
    await row.click();
    await message(b, "just between us").waitFor();
    await row.locator(tid("unread")).waitFor({ state: "detached" });

    // A second tab of Boris's browser waits while the first one drives the device...
    const second = await ctxB.newPage();
    watch(second, "B2");
    await second.goto(node.url + "/");
    await second.locator(tid("other-tab")).waitFor();
    await second.screenshot({ path: join(artifacts, "en-other-tab.png") });
    // ... and takes over, with all chats, when the first tab closes.
    await b.close();
    await second.locator(tid("chat-row")).first().waitFor({ timeout: 15000 });
    await second.locator(tid("direct-section") + " " + tid("chat-title")).filter({ hasText: "Alice" }).waitFor();
  } finally {
    await browser.close();
    node.stop();
  }
});

test("a recovery file brings a member back after the browser lost everything", { timeout: 240000 }, async () => {
  const node = await startNode();
  const browser = await launchBrowser();
  try {
    const { page: a } = await member(browser, "A");
    await onboardWithLink(a, node.adminLink, "Alice");
    await createGroup(a, "Archive");
    const link = await createInvite(a);
    const { context: ctxB, page: b } = await member(browser, "B");
    await joinByLink(b, link, "Boris");
    await send(a, "before the backup");
    await message(b, "before the backup").waitFor();

    // Boris saves a recovery file from the settings.
    await b.locator(tid("back")).or(b.locator(tid("open-settings"))).first().waitFor();
    await b.goto(node.url + "/settings");
    await b.locator(tid("export-passphrase")).fill("correct horse battery");
    await b.locator(tid("export-passphrase-again")).fill("correct horse battery");
    const [download] = await Promise.all([b.waitForEvent("download"), b.locator(tid("export-submit")).click()]);
    const file = join(tempDir("veche-e2e-recovery-"), "boris.recovery");
    await download.saveAs(file);
    assert.ok(!readFileSync(file).includes(Buffer.from("before the backup")), "the file is sealed");
    await ctxB.close(); // the browser's data is gone

    await send(a, "while Boris was away");
    await message(a, "while Boris was away", true).locator(tid("msg-delivery") + '[data-state="stored"]').waitFor();

    // A fresh browser: the wrong passphrase is refused, the right one restores Boris.
    const { page: c } = await member(browser, "B-restored");
    await c.goto(node.url + "/");
    await c.locator(tid("show-restore")).click();
    await c.locator(tid("import-file")).setInputFiles(file);
    await c.locator(tid("import-passphrase")).fill("wrong horse battery");
    await c.locator(tid("import-submit")).click();
    await c.locator(tid("import-error")).filter({ hasText: "Wrong passphrase" }).waitFor({ timeout: 20000 });
    await c.locator(tid("import-passphrase")).fill("correct horse battery");
    await c.locator(tid("import-submit")).click();
    await c.locator(tid("chat-list")).waitFor({ timeout: 30000 });
    await c.locator(tid("chat-row")).filter({ hasText: "Archive" }).click();
    await message(c, "before the backup").waitFor();
    await message(c, "while Boris was away").waitFor({ timeout: 20000 });
    await c.locator(tid("system-message")).filter({ hasText: "refreshed its keys" }).waitFor({ timeout: 20000 });

    // The restored device talks again, both ways.
    await send(c, "back again");
    const back = message(a, "back again");
    await back.waitFor({ timeout: 20000 });
    assert.equal(await back.locator(tid("msg-sender")).innerText(), "Boris");
    await send(a, "welcome back");
    await message(c, "welcome back").waitFor({ timeout: 20000 });
  } finally {
    await browser.close();
    node.stop();
  }
});

test("long history scrolls back; a chat kept out of the browser is gone after a reload", { timeout: 240000 }, async () => {
  const node = await startNode();
  const browser = await launchBrowser();
  try {
    const { page: a } = await member(browser, "A");
    await onboardWithLink(a, node.adminLink, "Alice");
    await createGroup(a, "Log");
    const link = await createInvite(a);
    const carol = tempDir("veche-e2e-carol-");
    client(carol, "register", "--name", "Carol", "--invite", link);
    const chat = JSON.parse(client(carol, "join", link)).chat;
    const lines = Array.from({ length: 150 }, (_, i) => `line ${String(i).padStart(3, "0")}`);
    execFileSync(veche, ["client", "--state", carol, "send", chat, "--stdin"], { input: lines.join("\n") + "\n", timeout: 60000 });

    await message(a, "line 149").waitFor({ timeout: 30000 });
    const shown = () => a.locator(tid("message")).count();
    const first = await shown();
    assert.ok(first <= 60, `the newest page only: ${first}`);
    assert.equal(await message(a, "line 000").count(), 0);
    // Scrolling to the top brings older messages, page by page, until the first.
    for (let i = 0; i < 6 && (await message(a, "line 000").count()) === 0; i++) {
      await a.locator(tid("timeline")).evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event("scroll")); });
      await a.waitForTimeout(200);
    }
    await message(a, "line 000").waitFor();
    assert.equal(await shown(), 150);
    await a.screenshot({ path: join(artifacts, "en-long-history.png") });

    // Alice stops keeping this chat's history in the browser: after a reload it is gone,
    // while new messages still arrive.
    await a.locator(tid("open-chat-settings")).click();
    await a.locator(tid("keep-history")).uncheck();
    await a.keyboard.press("Escape");
    // The notice shows once the setting is stored (and the stored history dropped).
    await a.locator(tid("history-not-kept")).waitFor();
    await a.reload();
    await a.locator(tid("history-not-kept")).waitFor();
    await a.locator(tid("composer")).waitFor();
    client(carol, "send", chat, "after the reload");
    await message(a, "after the reload").waitFor({ timeout: 20000 });
    assert.equal(await message(a, "line 149").count(), 0, "history not kept in the browser");
  } finally {
    await browser.close();
    node.stop();
  }
});
