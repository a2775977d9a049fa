// Browser end-to-end: Firefox ESR as a full participant (puppeteer-core over WebDriver BiDi, its
// fake camera and microphone) with a Chromium member. Bob in Firefox joins Alice's group by her
// invite link, they write to each other, then Alice starts a call and Bob joins it a few seconds
// later: each decodes the other's video (frames rising over a window), Bob's audio reaches Alice,
// and Firefox sends its camera in three simulcast layers like Chromium does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  startNode, launchBrowser, member, onboardWithLink, createGroup, createInvite, send, message, tid, joinCall, keepsDecoding,
  inbound, until, artifacts,
} from "./harness.mjs";
import { launchFirefox, firefoxMember, fill, click, waitFor, press } from "./engines.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// What the page sends of its camera per simulcast layer (rid): frames encoded and height.
async function layersSent(page) {
  return page.evaluate(async () => {
    const out = {};
    const pc = window.__vechePc;
    if (!pc) return out;
    (await pc.getStats()).forEach((r) => {
      if (r.type === "outbound-rtp" && r.kind === "video" && r.rid) {
        out[r.rid] = { frames: r.framesEncoded || 0, height: r.frameHeight || 0 };
      }
    });
    return out;
  });
}

test("Firefox: joins by link, chats, and calls a Chromium member both ways with simulcast", { timeout: 300000 }, async () => {
  const node = await startNode();
  const chromium = await launchBrowser();
  const firefox = await launchFirefox();
  try {
    const { page: a } = await member(chromium, "Alice");
    const { page: b } = await firefoxMember(firefox, "Bob/Firefox");
    await onboardWithLink(a, node.adminLink.replace(/^http:\/\/[^/]+/, node.url), "Alice");
    await a.locator(tid("chat-list")).waitFor();
    await createGroup(a, "Across engines");
    const link = await createInvite(a);

    // Bob opens the link in Firefox, chooses his name and is in the group.
    await b.goto(link);
    await fill(b, tid("join-name"), "Bob");
    await click(b, tid("join-submit"));
    await waitFor(b, tid("composer"), { timeout: 60000 });

    // They write to each other.
    await send(a, "Hello from Chromium");
    await waitFor(b, tid("message") + '[data-own="false"]', { hasText: "Hello from Chromium" });
    await fill(b, tid("composer"), "Привет from Firefox");
    await press(b, tid("composer"), "Enter");
    await message(a, "Привет from Firefox").waitFor({ timeout: 30000 });

    // Alice starts a call; Bob joins from Firefox three seconds later.
    await joinCall(a);
    await a.locator(tid("call-panel")).waitFor();
    await sleep(3000);
    await click(b, tid("call-start"));
    await click(b, tid("prejoin-join"));
    await waitFor(b, tid("call-panel"));
    await a.locator(tid("call-participants") + '[data-count="2"]').waitFor({ timeout: 30000 });

    const bobSees = await keepsDecoding(b, "Bob (Firefox)", ["Alice"]);
    const aliceSees = await keepsDecoding(a, "Alice (Chromium)", ["Bob"]);
    console.log(`Bob in Firefox decodes ${bobSees.Alice} frames of Alice in 2 s; Alice decodes ${aliceSees.Bob} of Bob`);
    const heard = await inbound(a);
    await sleep(1000);
    assert.ok((await inbound(a)).audioPackets > heard.audioPackets, "Bob's microphone reaches Alice");

    // Firefox sends three layers (q, h, f), each encoding.
    const layers = await until("Firefox encodes three layers", async () => {
      const s = await layersSent(b);
      return ["q", "h", "f"].every((rid) => s[rid]?.frames > 0) ? s : null;
    }, 30000);
    console.log(`Firefox sends ${Object.entries(layers).map(([rid, l]) => `${rid} ${l.height}p`).join(", ")}`);
    assert.ok(layers.q.height < layers.h.height && layers.h.height < layers.f.height, "three sizes, lowest first");
    await b.screenshot({ path: join(artifacts, "firefox-call.png") });
  } finally {
    await firefox.close();
    await chromium.close();
    node.stop();
  }
});
