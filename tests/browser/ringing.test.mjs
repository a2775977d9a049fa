// Browser end-to-end: what became of a 1:1 call is written in the direct chat's history by the
// caller's device (end-to-end encrypted, like a message). Alice (English) calls Bob (Russian) in
// their direct chat on a node whose rings last 2 s. Bob's browser rings out loud (its ring tone
// runs, and stops with the ring); he declines: Alice's history says
// "Declined", Bob's "Вы отклонили звонок", and both still after a reload. Alice calls again and
// Bob does not answer: after the ring time Alice's history says "No answer" and Bob's
// "Пропущенный звонок"; the chat list shows it as the last message. A third call Alice gives up
// while it rings: one more missed call. Each call is written exactly once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startNode, launchBrowser, member, onboardWithLink, createGroup, createInvite, joinByLink, send, message, artifacts, tid, until, joinCall } from "./harness.mjs";

/// The call records of the open chat as their users read them, oldest first.
async function records(page) {
  return page.locator(tid("call-record") + " " + tid("call-record-text")).allInnerTexts();
}

test("declined and missed 1:1 calls are written in both members' history", { timeout: 240000 }, async () => {
  const started = Date.now();
  const node = await startNode({ args: ["--ring-timeout", "2s"] });
  const browser = await launchBrowser();
  try {
    const { page: a } = await member(browser, "Alice");
    const { page: b } = await member(browser, "Bob", { locale: "ru-RU" });
    await onboardWithLink(a, node.adminLink.replace(/^http:\/\/[^/]+/, node.url), "Alice");
    await a.locator(tid("chat-list")).waitFor();
    await createGroup(a, "Family");
    const link = await createInvite(a);
    await joinByLink(b, link, "Bob");

    // Alice opens a direct chat with Bob from the group's member list and writes in it.
    await a.locator(tid("open-chat-settings")).click();
    await a.locator(tid("member-row")).filter({ hasText: "Bob" }).locator(tid("member-dm")).click();
    await a.locator(tid("chat-name")).filter({ hasText: "Bob" }).waitFor({ timeout: 20000 });
    await send(a, "can I call you?");
    await message(a, "can I call you?", true).locator(tid("msg-delivery") + '[data-state="stored"]').waitFor();
    await b.goto(node.url + "/");
    const bobsRow = b.locator(tid("direct-section") + " " + tid("chat-row"));
    await bobsRow.locator(tid("chat-title")).filter({ hasText: "Alice" }).waitFor({ timeout: 20000 });
    await bobsRow.click();
    await message(b, "can I call you?").waitFor();

    // 1. Alice calls; Bob's browser rings with her name; he declines.
    await joinCall(a);
    await a.locator(tid("call-panel")).waitFor();
    await b.locator(tid("incoming-call")).waitFor({ timeout: 15000 });
    assert.equal(await b.locator(tid("incoming-call-name")).innerText(), "Alice");
    // It rings out loud: the ring tone's audio is running while the call rings, and stops with it.
    await b.waitForFunction(() => document.documentElement.dataset.ringTone === "running", null, { timeout: 5000 });
    await b.locator(tid("call-decline")).click();
    await b.locator(tid("incoming-call")).waitFor({ state: "detached" });
    await b.waitForFunction(() => document.documentElement.dataset.ringTone === undefined, null, { timeout: 5000 });
    await a.locator(tid("toast")).filter({ hasText: /declined/i }).waitFor({ timeout: 10000 });
    await b.locator(tid("call-record") + '[data-record="declined"]').waitFor({ timeout: 10000 });
    // She hangs up: that writes nothing more. Her chat (beside the call only when she opens it)
    // shows the declined call.
    await a.locator(tid("call-leave")).click();
    await a.locator(tid("call-panel")).waitFor({ state: "detached" });
    await a.locator(tid("call-record") + '[data-record="declined"]').waitFor({ timeout: 10000 });
    assert.deepEqual(await records(a), ["Declined"]);
    assert.deepEqual(await records(b), ["Вы отклонили звонок"]);
    assert.match(await a.locator(tid("call-record-time")).innerText(), /^\d\d:\d\d$/);
    await a.screenshot({ path: join(artifacts, "ringing-declined-alice.png") });
    await b.screenshot({ path: join(artifacts, "ringing-declined-bob.png") });

    // Both still have it after a reload.
    for (const page of [a, b]) {
      await page.reload();
      await page.locator(tid("call-record")).first().waitFor({ timeout: 20000 });
    }
    assert.deepEqual(await records(a), ["Declined"]);
    assert.deepEqual(await records(b), ["Вы отклонили звонок"]);

    // 2. Alice calls again and Bob lets it ring: after 2 s Alice hears there is no answer, Bob's
    // ring stops and he is told he missed a call.
    await joinCall(a);
    await a.locator(tid("call-panel")).waitFor();
    await b.locator(tid("incoming-call")).waitFor({ timeout: 15000 });
    const ringing = Date.now();
    await b.locator(tid("incoming-call")).waitFor({ state: "detached", timeout: 10000 });
    console.log(`unanswered ring lasted ${Date.now() - ringing} ms on Bob's screen`);
    await b.locator(tid("toast")).filter({ hasText: /Пропущенный звонок/ }).waitFor({ timeout: 10000 });
    // Alice opens the chat beside the call: it says nobody answered.
    await a.locator(tid("call-chat")).click();
    await a.locator(tid("call-record") + '[data-record="missed"]').waitFor({ timeout: 10000 });
    await b.locator(tid("call-record") + '[data-record="missed"]').waitFor({ timeout: 10000 });
    await a.locator(tid("call-leave")).click();
    await a.locator(tid("call-panel")).waitFor({ state: "detached" });
    assert.deepEqual(await records(a), ["Declined", "No answer"]);
    assert.deepEqual(await records(b), ["Вы отклонили звонок", "Пропущенный звонок"]);

    // The chat lists show it as the direct chat's last message.
    assert.equal(await bobsRow.locator(tid("chat-preview")).innerText(), "Пропущенный звонок");
    const alicesRow = a.locator(tid("direct-section") + " " + tid("chat-row"));
    assert.equal(await alicesRow.locator(tid("chat-preview")).innerText(), "No answer");

    // 3. Alice calls and hangs up while it still rings: a missed call too, written once.
    await joinCall(a);
    await a.locator(tid("call-panel")).waitFor();
    const calling = Date.now();
    await b.locator(tid("incoming-call")).waitFor({ timeout: 15000 });
    await a.locator(tid("call-leave")).click();
    await a.locator(tid("call-panel")).waitFor({ state: "detached" });
    await b.locator(tid("incoming-call")).waitFor({ state: "detached", timeout: 10000 });
    console.log(`third call: Alice left ${Date.now() - calling} ms after calling`);
    await until("Bob's third call record", async () => (await records(b)).length === 3, 15000);
    await until("Alice's third call record", async () => (await records(a)).length === 3, 15000);
    // Nothing more arrives (no second record of any call).
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual(await records(a), ["Declined", "No answer", "No answer"]);
    assert.deepEqual(await records(b), ["Вы отклонили звонок", "Пропущенный звонок", "Пропущенный звонок"]);
    await a.screenshot({ path: join(artifacts, "ringing-missed-alice.png") });
    await b.screenshot({ path: join(artifacts, "ringing-missed-bob.png") });

    // After a reload both histories hold the three records, in order, after the message.
    for (const page of [a, b]) {
      await page.reload();
      await until("history after reload", async () => (await records(page)).length === 3, 20000);
    }
    assert.deepEqual(await records(a), ["Declined", "No answer", "No answer"]);
    assert.deepEqual(await records(b), ["Вы отклонили звонок", "Пропущенный звонок", "Пропущенный звонок"]);
    console.log(`ringing test: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await browser.close();
    node.stop();
  }
});
