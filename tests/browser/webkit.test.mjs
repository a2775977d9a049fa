// Browser end-to-end: Safari's engine. Debian's WebKitGTK (MiniBrowser driven by WebKitWebDriver
// under Xvfb, engines.mjs) runs the app: Bob joins Alice's group by her invite link there, they
// write to each other both ways, his history is still there after a reload, and the call button
// tells him plainly that this browser cannot take part in calls (this WebKitGTK build has no
// RTCPeerConnection) instead of failing. (No screenshots: WebKitWebDriver's screenshot of the
// app's chat view sometimes never returns here.)
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  startNode, launchBrowser, member, onboardWithLink, createGroup, createInvite, joinByLink, send, message, tid,
} from "./harness.mjs";
import { launchWebKit, fill, click, waitFor, press, count } from "./engines.mjs";

test("WebKitGTK: joins by link and chats; calls say they need WebRTC", { timeout: 240000 }, async () => {
  const node = await startNode();
  const chromium = await launchBrowser();
  const b = await launchWebKit();
  try {
    const { page: a } = await member(chromium, "Alice");
    await onboardWithLink(a, node.adminLink.replace(/^http:\/\/[^/]+/, node.url), "Alice");
    await a.locator(tid("chat-list")).waitFor();
    await createGroup(a, "Safari friends");
    const link = await createInvite(a);

    assert.equal(await b.evaluate(() => typeof RTCPeerConnection), "undefined", "this WebKitGTK has no WebRTC");
    await joinByLink(b, link, "Bob");
    await send(a, "Hello, WebKit");
    await waitFor(b, tid("message") + '[data-own="false"]', { hasText: "Hello, WebKit", timeout: 30000 });
    await fill(b, tid("composer"), "Здравствуйте from WebKit");
    await press(b, tid("composer"), "Enter");
    await message(a, "Здравствуйте from WebKit").waitFor({ timeout: 30000 });

    // After a reload the chat and its history are still there (IndexedDB).
    await b.reload();
    await waitFor(b, tid("chat-name"), { hasText: "Safari friends", timeout: 30000 });
    await waitFor(b, tid("message") + '[data-own="true"]', { hasText: "Здравствуйте from WebKit", timeout: 30000 });
    await waitFor(b, tid("message") + '[data-own="false"]', { hasText: "Alice", timeout: 30000 });

    // The call button says calls need WebRTC, and nothing is joined.
    await click(b, tid("call-start"));
    await waitFor(b, tid("prejoin-no-webrtc"), { hasText: "WebRTC" });
    assert.equal(await count(b, tid("prejoin-join")), 0, "no join button where calls cannot work");
    await click(b, tid("prejoin-cancel"));
    await waitFor(b, tid("call-prejoin"), { state: "detached" });
  } finally {
    await b.close();
    await chromium.close();
    node.stop();
  }
});
