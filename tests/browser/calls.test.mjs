// Browser end-to-end: two members of a chat call each other in their browsers (Debian chromium
// with a fake camera and microphone) through the node's own SFU. Each decodes the other's video
// and receives the other's audio (getStats: inbound-rtp framesDecoded and packetsReceived rise),
// the participants are listed by name, the organizer turns the other's microphone off and its
// audio stops arriving (turning it back on is refused until the organizer asks; asked, it
// arrives again), leaving is seen by the other, and the chat is still there to write in after
// the call.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startNode, launchBrowser, send, message, artifacts, inbound, until, joinCall, groupOfTwo } from "./harness.mjs";

const tid = (id) => `[data-testid="${id}"]`;

test("two members call each other through the node's SFU", { timeout: 180000 }, async () => {
  const node = await startNode();
  const browser = await launchBrowser();
  try {
    const { a, b } = await groupOfTwo(browser, node, "Family");

    // Alice starts the call: her own camera shows.
    await joinCall(a);
    await a.locator(tid("call-panel")).waitFor();
    await a.locator(tid("call-tile-self")).waitFor();
    // Bob joins it.
    await joinCall(b);
    await b.locator(tid("call-panel")).waitFor();
    for (const page of [a, b]) {
      await page.locator(tid("call-participants") + '[data-count="2"]').waitFor({ timeout: 15000 });
    }
    assert.match(await b.locator(tid("call-participants")).innerText(), /Alice.*Bob|Bob.*Alice/);

    // Each decodes the other's video and receives the other's audio, and it keeps flowing.
    for (const [name, page] of [["Alice", a], ["Bob", b]]) {
      await page.locator(tid("call-tile")).first().waitFor({ timeout: 20000 });
      const first = await until(`${name} decodes video and receives audio`, async () => {
        const s = await inbound(page);
        return s && s.framesDecoded > 0 && s.audioPackets > 0 ? s : null;
      });
      await new Promise((r) => setTimeout(r, 2000));
      const later = await inbound(page);
      console.log(`${name}: frames decoded ${first.framesDecoded} -> ${later.framesDecoded}, audio packets ${first.audioPackets} -> ${later.audioPackets}`);
      assert.ok(later.framesDecoded > first.framesDecoded, `${name}'s decoded frames rise`);
      assert.ok(later.audioPackets > first.audioPackets, `${name}'s audio packets rise`);
    }
    await a.screenshot({ path: join(artifacts, "call-alice.png") });
    await b.screenshot({ path: join(artifacts, "call-bob.png") });

    // Alice organizes the call: she turns Bob's microphone off. The node stops forwarding it:
    // Alice's received audio stops while Bob's video keeps coming; Bob is told.
    assert.equal(await b.locator(tid("call-mute-person")).count(), 0, "a participant has no mute buttons");
    await a.locator(tid("call-person") + '[data-name="Bob"] ' + tid("call-mute-person")).click();
    await a.locator(tid("call-person") + '[data-name="Bob"][data-muted="true"]').waitFor({ timeout: 10000 });
    await b.locator(tid("toast")).filter({ hasText: /moderator/i }).waitFor({ timeout: 10000 });
    await new Promise((r) => setTimeout(r, 500)); // what was already on its way
    const muted = await inbound(a);
    await new Promise((r) => setTimeout(r, 2000));
    const stillMuted = await inbound(a);
    console.log(`Alice after muting Bob: audio packets ${muted.audioPackets} -> ${stillMuted.audioPackets}, frames ${muted.framesDecoded} -> ${stillMuted.framesDecoded}`);
    assert.ok(stillMuted.audioPackets - muted.audioPackets <= 2, "Bob's muted microphone no longer reaches Alice");
    assert.ok(stillMuted.framesDecoded > muted.framesDecoded, "Bob's camera still does");

    // Bob turns his microphone on before he is asked: the node refuses, he is told, and his
    // button goes back off. Asked by Alice, he turns it on: everyone sees him unmuted and Alice
    // hears him again.
    await b.locator(tid("call-mic")).click();
    await b.locator(tid("toast")).filter({ hasText: /wait until you are asked/i }).waitFor({ timeout: 10000 });
    await b.locator(tid("call-mic") + '[aria-pressed="true"]').waitFor({ timeout: 10000 });
    await a.locator(tid("call-person") + '[data-name="Bob"] ' + tid("call-person-menu")).click();
    await a.locator(tid("call-ask-unmute") + '[data-media="audio"]').click();
    await b.locator(tid("toast")).filter({ hasText: /asks you to turn/i }).waitFor({ timeout: 10000 });
    await b.locator(tid("call-mic")).click();
    await a.locator(tid("call-person") + '[data-name="Bob"][data-muted="false"]').waitFor({ timeout: 10000 });
    await b.locator(tid("call-person") + '[data-name="Bob"][data-muted="false"]').waitFor({ timeout: 10000 });
    const unmuted = await inbound(a);
    await new Promise((r) => setTimeout(r, 2000));
    const hearing = await inbound(a);
    console.log(`Alice after Bob turned his microphone back on: audio packets ${unmuted.audioPackets} -> ${hearing.audioPackets}`);
    assert.ok(hearing.audioPackets - unmuted.audioPackets >= 50, "Bob's microphone reaches Alice again");

    // Bob leaves: Alice sees one participant and no tile of his.
    await b.locator(tid("call-leave")).click();
    await b.locator(tid("call-panel")).waitFor({ state: "detached" });
    await a.locator(tid("call-participants") + '[data-count="1"]').waitFor({ timeout: 10000 });
    await until("Bob's tile goes from Alice's grid", async () => (await a.locator(tid("call-tile")).count()) === 0, 10000);

    // The chat is still there after the call.
    await a.locator(tid("call-leave")).click();
    await send(b, "thanks for the call");
    await message(a, "thanks for the call").waitFor();
  } finally {
    await browser.close();
    node.stop();
  }
});
