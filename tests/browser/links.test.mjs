// Browser end-to-end: the links the web app makes carry the node's certificate fingerprint, and the
// app runs under the node's Content-Security-Policy.
//
// Alice opens the node's admin link (the join page offers "Secure this device" in small print),
// creates a group, sends a message and makes an invite link: it ends in `&f=` with the SHA-256 of
// the node's CA certificate, as /healthz's tls_fingerprint says. Carol's native client, without
// --accept-fingerprint, cannot register with that link stripped of `f` (or with another `f`) but
// registers, joins and writes with the link as made: it pins the node's CA only because the link
// carries it. Alice's meeting link carries it too. Settings shows the fingerprint as colon-separated
// hex and links to /trust, which opens the node's trust page with the same fingerprint. No
// `securitypolicyviolation` fires on any page, and the policy is really in force (an inline script
// added at the end is refused).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import {
  startNode, launchBrowser, nodeGet, createGroup, createInvite, send, message, tempDir, veche, tid,
  artifacts, watch,
} from "./harness.mjs";

/// The native client with its own state dir, WITHOUT --accept-fingerprint (unlike harness
/// client()): it trusts the node only through a link's `f` or the system's roots.
const strictClient = (stateDir, ...args) =>
  execFileSync(veche, ["client", "--state", stateDir, "--json", ...args], { encoding: "utf8", timeout: 60000, stdio: "pipe" });

test("links made in the browser carry the node's fingerprint; Settings secures the device; no CSP violations", { timeout: 240000 }, async () => {
  const node = await startNode();
  // The node sends its policy with every page (node/src/api/mod.rs).
  const served = (await nodeGet(node, "/")).headers["content-security-policy"] ?? "";
  const browser = await launchBrowser();
  const violations = [];
  try {
    // The fingerprint: SHA-256 of the CA certificate's DER, base64url without padding.
    const der = new X509Certificate(node.ca()).raw;
    const digest = createHash("sha256").update(der).digest();
    const fingerprint = digest.toString("base64url");
    const hex = [...digest].map((b) => b.toString(16).padStart(2, "0").toUpperCase()).join(":");
    const health = JSON.parse((await nodeGet(node, "/healthz")).body);
    assert.equal(health.tls_fingerprint, fingerprint, "/healthz tells the CA's fingerprint");

    const context = await browser.newContext({ locale: "en-US", viewport: { width: 1280, height: 800 } });
    // Every violation on every page of this browser, reported through the console (a page's own
    // list is lost when it navigates).
    await context.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) => {
        console.log("csp-violation " + JSON.stringify({
          directive: e.effectiveDirective, blocked: e.blockedURI, source: e.sourceFile, line: e.lineNumber, page: location.href,
        }));
      });
    });
    context.on("console", (m) => {
      if (m.text().startsWith("csp-violation ")) violations.push(JSON.parse(m.text().slice("csp-violation ".length)));
    });
    assert.match(served, /script-src 'self' 'wasm-unsafe-eval';/);
    assert.doesNotMatch(served, /script-src[^;]*'unsafe-(inline|eval)'/, "no inline scripts, no eval");
    assert.match(served, /connect-src 'self' wss:\/\/127\.0\.0\.1:\d+/);
    const a = await context.newPage();
    watch(a, "Alice");

    // The join page (the admin link) offers "Secure this device" in its small print.
    await a.goto(node.adminLink.replace(/^http:\/\/[^/]+/, node.url));
    await a.locator(tid("trust-note")).waitFor();
    assert.equal(await a.locator(tid("trust-note")).getAttribute("href"), "/trust");
    await a.locator(tid("join-name")).fill("Alice");
    await a.locator(tid("join-submit")).click();
    await a.locator(tid("chat-list")).waitFor();

    // A group, a message, an invite link: it carries the fingerprint.
    await createGroup(a, "Links");
    await send(a, "hello under the policy");
    await message(a, "hello under the policy", true).waitFor();
    const link = await createInvite(a);
    assert.match(link, new RegExp(`^${node.url}/join#i=[0-9a-f]{16}&s=[A-Za-z0-9_-]{43}&g=[0-9a-f]{32}&f=[A-Za-z0-9_-]{43}$`));
    assert.equal(new URLSearchParams(link.split("#")[1]).get("f"), fingerprint, "the link's f is the CA's fingerprint");

    // Carol's native client trusts the node only through the link's f.
    const bare = link.replace(/&f=[^&]*/, "");
    const other = link.replace(/&f=[^&]*/, "&f=" + Buffer.alloc(32, 7).toString("base64url"));
    for (const [what, l] of [["without f", bare], ["with another f", other]]) {
      assert.throws(() => strictClient(tempDir("veche-links-refused-"), "register", "--name", "Carol", "--invite", l),
        `registering with the link ${what} fails: the node's certificate is not trusted`);
    }
    const carol = tempDir("veche-links-carol-");
    strictClient(carol, "register", "--name", "Carol", "--invite", link);
    const joined = JSON.parse(strictClient(carol, "join", link));
    strictClient(carol, "send", joined.chat, "Carol pinned the node");
    await message(a, "Carol pinned the node").waitFor({ timeout: 30000 });

    // A meeting's link carries it too.
    await a.locator(tid("new-meeting")).click();
    await a.locator(tid("meeting-title")).fill("Pinned meeting");
    await a.locator(tid("meeting-later")).check();
    await a.locator(tid("meeting-start")).fill("2027-01-15T18:30");
    await a.locator(tid("create-meeting-submit")).click();
    await a.locator(tid("meeting-card")).waitFor();
    const meetingLink = await a.locator(tid("meeting-copy-link")).getAttribute("data-link");
    assert.equal(new URLSearchParams(meetingLink.split("#")[1]).get("f"), fingerprint, `meeting link: ${meetingLink}`);

    // Settings: "Secure this device", the fingerprint as hex, the trust page.
    await a.locator(tid("open-settings")).click();
    await a.locator(tid("trust-settings")).waitFor();
    assert.equal((await a.locator(tid("tls-fingerprint")).innerText()).trim(), hex);
    await a.screenshot({ path: join(artifacts, "links-settings.png") });
    const [trust] = await Promise.all([context.waitForEvent("page"), a.locator(tid("trust-link")).click()]);
    await trust.waitForLoadState();
    assert.equal(new URL(trust.url()).pathname, "/trust");
    assert.ok((await trust.content()).includes(hex), "the trust page shows the same fingerprint");
    await trust.close();

    // Nothing the app did broke the policy; and the policy is in force: an inline script is refused.
    assert.deepEqual(violations, [], "no Content-Security-Policy violations");
    const ran = await a.evaluate(() => {
      const s = document.createElement("script");
      s.textContent = "window.__inlineRan = true";
      document.head.append(s);
      return window.__inlineRan === true;
    });
    assert.equal(ran, false, "an inline script is refused: the page is under the policy");
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(violations.length, 1, "the refused inline script is reported");
    assert.equal(violations[0].directive, "script-src-elem");
  } catch (e) {
    console.log("violations:", JSON.stringify(violations));
    for (const p of browser.contexts().flatMap((c) => c.pages())) await p.screenshot({ path: join(artifacts, `links-failure-${Date.now()}.png`) }).catch(() => {});
    throw e;
  } finally {
    await browser.close();
    node.stop();
  }
});
