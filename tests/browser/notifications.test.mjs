// Browser end-to-end: notifications while the app is in the background, and the secure
// context's clipboard and Web Locks. Alice copies an invite link (the clipboard holds it) and a
// second tab of her browser waits for the first (the one-tab guard). Alice turns them on in
// Settings (the browser's permission granted beforehand, as a member who clicks "Allow" would);
// with her page really hidden (document.visibilityState "hidden": another tab in front), Bob's
// direct message shows a notification through the service worker with his name and the text, tagged
// with the chat; a group message that does not mention her shows none, one with "@alice" does;
// once she mutes the direct chat (on her device), his messages there show none; with her page in
// front, none either. Bob calls her: the ring is a notification that stays (requireInteraction)
// with answer and decline actions; when he gives up, "Missed call" replaces it. The service
// worker's click handling, run with "decline" and then "answer", declines the next ring (Bob is
// told) and answers the one after (Alice is in the call).
//
// Alice's browser is Chromium driven by puppeteer-core: playwright keeps every page "visible" by
// design (microsoft/playwright#2286), while puppeteer's tabs hide when another comes to the front,
// as in a member's browser. Bob is playwright's Chromium, as elsewhere.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import puppeteer from "puppeteer-core";
import { startNode, launchBrowser, member, watch, testCa, onboardWithLink, createGroup, joinByLink, send, message, joinCall, artifacts, tid, until } from "./harness.mjs";
import { click, fill, press, waitFor, pressKey, inputValue } from "./engines.mjs";

/// Chromium under puppeteer (headless), trusting the test nodes' CA; one page.
async function launchAlice(node) {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    defaultViewport: { width: 1280, height: 800 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--lang=en-US",
      "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
      `--ignore-certificate-errors-spki-list=${testCa().spki}`],
  });
  await browser.defaultBrowserContext().overridePermissions(node.url, ["notifications", "clipboard-read", "clipboard-write", "clipboard-sanitized-write"]);
  const page = await browser.newPage();
  watch(page, "Alice");
  return { browser, page };
}

/// The notifications the page's service worker registration shows now.
function notifications(page) {
  return page.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready;
    return (await reg.getNotifications()).map((n) => ({
      title: n.title, body: n.body, tag: n.tag, data: n.data, requireInteraction: n.requireInteraction,
      actions: (n.actions || []).map((a) => a.action),
    }));
  });
}

function closeNotifications(page) {
  return page.evaluate(async () => {
    for (const n of await (await navigator.serviceWorker.ready).getNotifications()) n.close();
  });
}

/// Waits for a message bubble with `text` on Alice's (puppeteer) page; timers of a hidden page
/// run at most once a second, so this polls slowly there.
function seen(page, text, own = false) {
  return waitFor(page, tid("message") + `[data-own="${own}"]`, { hasText: text, timeout: 20000 });
}

function visibility(page) {
  return page.evaluate(() => document.visibilityState);
}

test("notifications while the app is in the background", { timeout: 300000 }, async () => {
  const started = Date.now();
  const node = await startNode();
  const bobs = await launchBrowser();
  const { browser: alices, page: a } = await launchAlice(node);
  try {
    const { page: b } = await member(bobs, "Bob");
    await onboardWithLink(a, node.adminLink.replace(/^https?:\/\/[^/]+/, node.url), "Alice");
    await waitFor(a, tid("chat-list"));
    await createGroup(a, "Family");
    const familyPath = new URL(a.url()).pathname;
    // The invite link is copied through the Clipboard API (a secure context).
    await click(a, tid("open-invite"));
    await click(a, tid("invite-create"));
    const link = await until("the invite link is made", () => inputValue(a, tid("invite-link")), 30000);
    await click(a, tid("invite-copy"));
    await waitFor(a, tid("toast"), { hasText: "Link copied" });
    assert.equal(await a.evaluate(() => navigator.clipboard.readText()), link);
    await pressKey(a, "Escape");
    await waitFor(a, tid("invite-dialog"), { state: "detached" });
    await joinByLink(b, link, "Bob");

    // One tab drives the device (a Web Lock): a second tab of Alice's browser waits.
    const second = await alices.newPage();
    await second.goto(node.url + "/");
    await waitFor(second, tid("other-tab"));
    assert.equal(await second.evaluate(() => typeof navigator.locks?.request), "function");
    await second.close();
    await a.bringToFront();

    // Alice opens a direct chat with Bob and writes in it; Bob opens it.
    await click(a, tid("open-chat-settings"));
    await click(a, tid("member-dm"));
    await waitFor(a, tid("chat-name"), { hasText: "Bob" });
    const dmPath = new URL(a.url()).pathname;
    assert.notEqual(dmPath, familyPath);
    const dmTag = dmPath.replace("/chat/", "");
    await send(b, "warming up"); // in the group: Bob's device is in step
    await fill(a, tid("composer"), "hi Bob");
    await press(a, tid("composer"), "Enter");
    await waitFor(a, tid("message") + '[data-own="true"] ' + tid("msg-delivery") + '[data-state="stored"]', { timeout: 20000 });
    await b.goto(node.url + dmPath);
    await message(b, "hi Bob").waitFor({ timeout: 20000 });

    // Settings: the switch asks the browser (granted) and says so.
    await a.goto(node.url + "/settings");
    await waitFor(a, tid("notify-settings"));
    assert.equal(await a.$eval(tid("notify-state"), (e) => e.dataset.state), "granted");
    assert.equal(await a.$eval(tid("notify-toggle"), (e) => e.checked), false);
    await click(a, tid("notify-toggle"));
    await waitFor(a, tid("notify-state") + '[data-on="true"]');
    assert.match(await a.$eval(tid("notify-settings"), (e) => e.textContent), /while Veche is open/);
    await a.screenshot({ path: join(artifacts, "notifications-settings.png") });

    // Back in the direct chat; then another tab comes to the front: Alice's page is hidden.
    await a.goto(node.url + dmPath);
    await seen(a, "hi Bob", true);
    const otherTab = await alices.newPage();
    await otherTab.goto("about:blank");
    await otherTab.bringToFront();
    await until("Alice's page is hidden", async () => (await visibility(a)) === "hidden", 10000);
    assert.deepEqual(await notifications(a), []);

    // 1. A direct message while hidden: a notification with Bob's name and the text.
    await send(b, "are you there?");
    const [note] = await until("a notification for the direct message", async () => {
      const list = await notifications(a);
      return list.length ? list : null;
    }, 20000);
    assert.equal(note.title, "Bob");
    assert.equal(note.body, "are you there?");
    assert.equal(note.tag, dmTag);
    assert.equal(note.data.path, dmPath);
    assert.equal(note.data.kind, "message");
    assert.equal(note.requireInteraction, false);
    // The message reached the (hidden) page's timeline too.
    await seen(a, "are you there?");

    // 2. In the group: a message without a mention shows nothing, one with "@alice" does.
    await closeNotifications(a);
    await b.goto(node.url + familyPath);
    await message(b, "warming up", true).waitFor();
    await send(b, "dinner at seven");
    await message(b, "dinner at seven", true).locator(tid("msg-delivery") + '[data-state="stored"]').waitFor();
    await send(b, "@alice can you bring bread?");
    const [mention] = await until("a notification for the mention", async () => {
      const list = await notifications(a);
      return list.length ? list : null;
    }, 20000);
    assert.equal(mention.title, "Bob · Family");
    assert.equal(mention.body, "@alice can you bring bread?");
    assert.equal(mention.tag, familyPath.replace("/chat/", ""));
    assert.equal((await notifications(a)).length, 1);

    // 3. Alice mutes the direct chat (its settings, on her device); Bob's next message there
    // reaches her hidden page and shows nothing.
    await closeNotifications(a);
    await a.bringToFront();
    await until("Alice's page is visible", async () => (await visibility(a)) === "visible", 10000);
    await click(a, tid("open-chat-settings"));
    await click(a, tid("mute-chat"));
    assert.equal(await a.$eval(tid("mute-chat"), (e) => e.checked), true);
    await pressKey(a, "Escape");
    await waitFor(a, tid("mute-chat"), { state: "detached" });
    await otherTab.bringToFront();
    await until("Alice's page is hidden", async () => (await visibility(a)) === "hidden", 10000);
    await b.goto(node.url + dmPath);
    await send(b, "this chat is muted");
    await seen(a, "this chat is muted");
    await a.evaluate(() => new Promise((r) => setTimeout(r, 1500)));
    assert.deepEqual(await notifications(a), [], "no notification from a muted chat");

    // 4. Unmuted, with Alice's page in front: a message shows nothing.
    await a.bringToFront();
    await until("Alice's page is visible", async () => (await visibility(a)) === "visible", 10000);
    await click(a, tid("open-chat-settings"));
    await click(a, tid("mute-chat"));
    assert.equal(await a.$eval(tid("mute-chat"), (e) => e.checked), false);
    await pressKey(a, "Escape");
    await waitFor(a, tid("mute-chat"), { state: "detached" });
    assert.equal(await a.evaluate(() => document.hasFocus()), true);
    await send(b, "I see you are here");
    await seen(a, "I see you are here");
    await a.evaluate(() => new Promise((r) => setTimeout(r, 1500)));
    assert.deepEqual(await notifications(a), [], "no notification while the page is in front");

    // 5. Bob calls while Alice's page is hidden: a call notification that stays, with answer and
    // decline; when he hangs up before she answers, "Missed call" replaces it.
    await otherTab.bringToFront();
    await until("Alice's page is hidden", async () => (await visibility(a)) === "hidden", 10000);
    await joinCall(b);
    await b.locator(tid("call-panel")).waitFor();
    const [ring] = await until("a notification for the ringing call", async () => {
      const list = await notifications(a);
      return list.length ? list : null;
    }, 20000);
    assert.equal(ring.title, "Bob");
    assert.equal(ring.body, "Incoming call");
    assert.equal(ring.tag, dmTag);
    assert.equal(ring.data.kind, "call");
    assert.equal(ring.requireInteraction, true);
    assert.deepEqual(ring.actions, ["answer", "decline"]);
    await b.locator(tid("call-leave")).click();
    await until("the missed call replaces the ring", async () => {
      const list = await notifications(a);
      return list.length === 1 && list[0].body === "Missed call" && list[0].data.kind === "message" ? list : null;
    }, 20000);

    // Back in the app with the chat open: its notifications are closed.
    await a.bringToFront();
    await until("the chat's notifications close", async () => (await notifications(a)).length === 0, 10000);
    await a.screenshot({ path: join(artifacts, "notifications-alice.png") });

    // 6. The actions, as the service worker runs them on a click (its notificationclick handler's
    // body: headless Chromium has no way to click a notification): "decline" tells Bob, "answer"
    // joins Alice to the call.
    const worker = await (await alices.waitForTarget((t) => t.type() === "service_worker")).worker();
    const ringWhileHidden = async () => {
      await otherTab.bringToFront();
      await until("Alice's page is hidden", async () => (await visibility(a)) === "hidden", 10000);
      await joinCall(b);
      await b.locator(tid("call-panel")).waitFor();
      const [n] = await until("a call notification", async () => {
        const list = await notifications(a);
        return list.length && list[0].data.kind === "call" ? list : null;
      }, 20000);
      return n;
    };
    let n = await ringWhileHidden();
    await worker.evaluate((data) => notificationClicked("decline", data), n.data);
    await b.locator(tid("toast")).filter({ hasText: /declined/i }).waitFor({ timeout: 10000 });
    await until("the declined ring's notification closes", async () => (await notifications(a)).length === 0, 10000);
    await b.locator(tid("call-leave")).click();
    await b.locator(tid("call-panel")).waitFor({ state: "detached" });

    n = await ringWhileHidden();
    await worker.evaluate((data) => notificationClicked("answer", data), n.data);
    await waitFor(a, tid("call-panel"), { timeout: 20000 });
    assert.equal(new URL(a.url()).pathname, dmPath);
    await until("the answered ring's notification closes", async () => (await notifications(a)).length === 0, 10000);
    await b.locator(tid("call-leave")).click();
    console.log(`notifications: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await alices.close();
    await bobs.close();
    node.stop();
  }
});
