// UI benchmark (not a test): shipped sizes, cold and warm load times, and message latency between
// two browsers through a real node. Run by scripts/bench-ui.sh; prints one JSON object.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { startNode, launchBrowser, tid, member, onboardWithLink, createGroup, createInvite, joinByLink, send, message, root } from "./harness.mjs";

const ROUNDS = Number(process.env.ROUNDS || 5);
const MESSAGES = Number(process.env.MESSAGES || 30);
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };

const assets = join(root, "web-ui", "dist", "assets");
const sizes = {};
for (const f of readdirSync(assets)) {
  const ext = f.endsWith(".wasm") ? "wasm" : f.endsWith(".js") ? "js" : f.endsWith(".css") ? "css" : f.endsWith(".gz") ? null : null;
  if (ext) sizes[ext] = { raw: statSync(join(assets, f)).size, gzip: statSync(join(assets, f + ".gz")).size };
}

const node = await startNode();
const browser = await launchBrowser();
const result = { sizes };
try {
  // Cold: a browser with an empty cache and no device, to the onboarding form.
  const cold = [];
  for (let i = 0; i < ROUNDS; i++) {
    const { context, page } = await member(browser, "cold");
    const t = Date.now();
    await page.goto(node.url + "/");
    await page.locator(tid("onboard-name")).waitFor();
    cold.push(Date.now() - t);
    await context.close();
  }
  result.coldLoadToOnboardingMs = { p50: pct(cold, 0.5), max: Math.max(...cold) };

  const { page: a } = await member(browser, "A");
  await onboardWithLink(a, node.adminLink, "Alice");
  await createGroup(a, "Bench");
  const link = await createInvite(a);
  const { page: b } = await member(browser, "B");
  await joinByLink(b, link, "Boris");

  // Warm: a signed-in member navigating to the node (assets cached) until the chat list is usable.
  const warm = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t = Date.now();
    await a.goto(node.url + "/");
    await a.locator(tid("chat-row")).first().waitFor();
    warm.push(Date.now() - t);
  }
  result.navigationToChatListMs = { p50: pct(warm, 0.5), max: Math.max(...warm) };
  await a.locator(tid("chat-row")).first().click();

  // Latency: Enter in A's composer until the text is on B's screen.
  const lat = [];
  for (let i = 0; i < MESSAGES; i++) {
    const text = `bench ${i} ${Date.now()}`;
    const t = Date.now();
    await send(a, text);
    await message(b, text).waitFor();
    lat.push(Date.now() - t);
  }
  result.messageToOtherBrowserMs = { p50: pct(lat, 0.5), p95: pct(lat, 0.95), max: Math.max(...lat), n: lat.length };
} finally {
  await browser.close();
  node.stop();
}
console.log(JSON.stringify(result, null, 2));
