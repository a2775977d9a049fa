// Browser end-to-end: Alice (in Moscow time) schedules a meeting; its chat opens with the
// meeting's card (when, in her time), its link is posted in the chat, and the .ics file she
// downloads has the event at the right UTC time with the link. Gina, who has no account (in UTC),
// opens the link, sees the meeting and its time in her zone, types only her name and is in the
// meeting's chat as a guest, with nothing else to do on the node. Alice and Gina meet: each
// decodes the other's video. After the meeting the chat is still there: Gina thanks everyone,
// Alice reads it, and after a reload the meeting card is still there too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startNode, launchBrowser, member, onboardWithLink, send, message, artifacts, tid, inbound, until, joinCall } from "./harness.mjs";

const framesDecoded = async (page) => (await inbound(page))?.framesDecoded || 0;

test("a scheduled meeting: its card, its .ics file, a guest by link with only a name, the call, the chat after", { timeout: 240000 }, async () => {
  const node = await startNode();
  const browser = await launchBrowser();
  try {
    const { page: a } = await member(browser, "Alice", { timezoneId: "Europe/Moscow" });
    const { page: g } = await member(browser, "Gina", { timezoneId: "UTC" });
    await onboardWithLink(a, node.adminLink.replace(/^http:\/\/[^/]+/, node.url), "Alice");
    await a.locator(tid("chat-list")).waitFor();

    // Alice schedules the meeting for 15 January 2027, 18:30 her time (15:30 UTC), 60 minutes.
    await a.locator(tid("new-meeting")).click();
    await a.locator(tid("meeting-title")).fill("Town hall");
    await a.locator(tid("meeting-description")).fill("Roads; the library roof, the summer fair");
    await a.locator(tid("meeting-later")).check();
    await a.locator(tid("meeting-start")).fill("2027-01-15T18:30");
    await a.locator(tid("meeting-duration")).selectOption("60");
    await a.locator(tid("meeting-lobby")).uncheck();
    await a.locator(tid("create-meeting-submit")).click();
    await a.locator(tid("chat-name")).filter({ hasText: "Town hall" }).waitFor();
    await a.locator(tid("meeting-card")).waitFor();
    assert.equal(await a.locator(tid("meeting-when")).innerText(), "15.01.2027 18:30 · 60 minutes");
    const link = await a.locator(tid("meeting-copy-link")).getAttribute("data-link");
    assert.match(link, /\/join#i=[0-9a-f]{16}&s=[A-Za-z0-9_-]{43}&g=[0-9a-f]{32}&f=[A-Za-z0-9_-]{43}$/);
    // The link is posted in the meeting's chat, for its members to share.
    await message(a, link, true).waitFor({ timeout: 15000 });

    // The calendar file: the event at the right UTC time, with the link.
    const [download] = await Promise.all([a.waitForEvent("download"), a.locator(tid("meeting-ics")).click()]);
    const ics = readFileSync(await download.path(), "utf8");
    assert.equal(download.suggestedFilename(), "Town-hall.ics");
    const unfolded = ics.replace(/\r\n /g, "");
    assert.match(unfolded, /\r\nSUMMARY:Town hall\r\n/);
    assert.match(unfolded, /\r\nDTSTART:20270115T153000Z\r\n/);
    assert.match(unfolded, /\r\nDTEND:20270115T163000Z\r\n/);
    assert.match(unfolded, /\r\nDESCRIPTION:Roads\\; the library roof\\, the summer fair\\n\\n/);
    assert.ok(unfolded.includes(`\r\nURL:${link}\r\n`), unfolded);

    // Gina opens the link: the meeting, at her time; she gives only her name.
    await g.goto(link);
    await g.locator(tid("join-meeting")).waitFor();
    assert.equal(await g.locator(tid("join-title")).innerText(), "Town hall");
    assert.equal(await g.locator(tid("join-meeting-when")).innerText(), "15.01.2027 15:30 · 60 minutes");
    await g.locator(tid("guest-note")).waitFor();
    await g.locator(tid("join-name")).fill("Gina");
    assert.equal(await g.locator(tid("join-submit")).innerText(), "Join the meeting");
    await g.locator(tid("join-submit")).click();
    await g.locator(tid("composer")).waitFor({ timeout: 30000 });
    await g.locator(tid("chat-name")).filter({ hasText: "Town hall" }).waitFor();
    await g.locator(tid("meeting-card")).waitFor({ timeout: 15000 });
    // A guest has nothing else to do here: no new chats or meetings.
    assert.equal(await g.locator(tid("new-group")).count(), 0);
    assert.equal(await g.locator(tid("new-meeting")).count(), 0);

    // They meet: each decodes the other's video.
    await joinCall(a);
    await a.locator(tid("call-panel")).waitFor();
    await joinCall(g);
    await g.locator(tid("call-panel")).waitFor();
    for (const page of [a, g]) {
      await page.locator(tid("call-participants") + '[data-count="2"]').waitFor({ timeout: 15000 });
    }
    assert.match(await a.locator(tid("call-participants")).innerText(), /Gina/);
    for (const [name, page] of [["Alice", a], ["Gina", g]]) {
      const first = await until(`${name} decodes video`, async () => (await framesDecoded(page)) || null);
      await new Promise((r) => setTimeout(r, 2000));
      const later = await framesDecoded(page);
      console.log(`${name}: frames decoded ${first} -> ${later}`);
      assert.ok(later > first, `${name}'s decoded frames rise`);
    }
    await g.screenshot({ path: join(artifacts, "meeting-guest.png") });

    // The meeting ends; its chat stays: Gina thanks everyone, Alice reads it.
    await g.locator(tid("call-leave")).click();
    await a.locator(tid("call-leave")).click();
    await a.locator(tid("call-panel")).waitFor({ state: "detached" });
    await send(g, "Thank you all!");
    await message(a, "Thank you all!").waitFor({ timeout: 15000 });
    // After a reload the meeting is still the chat's.
    await a.reload();
    await a.locator(tid("chat-name")).filter({ hasText: "Town hall" }).waitFor({ timeout: 30000 });
    await a.locator(tid("meeting-card")).waitFor({ timeout: 15000 });
    await message(a, "Thank you all!").waitFor();
    await a.screenshot({ path: join(artifacts, "meeting-after.png") });
  } finally {
    await browser.close();
    node.stop();
  }
});
