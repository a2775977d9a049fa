// Test harness: a real `veche` node process, Debian chromium driven by playwright-core, and the
// native `veche client`. Every node gets a fresh data dir and port; artifacts (screenshots) go to
// tests/artifacts/browser/.
import { spawn, execFileSync } from "node:child_process";
import { request as httpsRequest } from "node:https";
import { chmodSync, copyFileSync, existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { fill, click, waitFor, pressKey, inputValue, selectOption, setChecked, count } from "./engines.mjs";

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, "..", "..");
export const artifacts = join(root, "tests", "artifacts", "browser");
mkdirSync(artifacts, { recursive: true });

export const veche = process.env.VECHE_BIN || join(root, "target", "debug", "veche");
const uiDir = process.env.VECHE_UI_DIR || join(root, "web-ui", "dist");

let nextPort = 17900 + Math.floor(Math.random() * 1000);

/// One certificate authority for the nodes of this test run, made with openssl and put in each
/// node's data dir (`tls/`) before its first start, where the node would otherwise create its own.
/// Chromium trusts it as a member's device does once they installed it ("Secure this device"):
/// launched with its public key's hash in `--ignore-certificate-errors-spki-list`, which, unlike
/// playwright's ignoreHTTPSErrors, also covers service worker scripts.
let testCaCache;
export function testCa() {
  if (testCaCache) return testCaCache;
  const dir = mkdtempSync(join(tmpdir(), "veche-test-ca-"));
  const sh = (cmd) => execFileSync("sh", ["-c", cmd], { cwd: dir, encoding: "utf8" });
  sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null");
  sh("openssl req -x509 -new -key ca.key -sha256 -days 30 -subj '/CN=Veche browser tests (local CA)' " +
    "-addext basicConstraints=critical,CA:TRUE,pathlen:0 -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature " +
    "-addext 'nameConstraints=critical,permitted;DNS:local,permitted;DNS:localhost,permitted;IP:127.0.0.0/255.0.0.0,permitted;IP:10.0.0.0/255.0.0.0' " +
    "-out ca.pem 2>/dev/null");
  writeFileSync(join(dir, "ca-names.txt"), "dns local\ndns localhost\nip 127.0.0.0/8\nip 10.0.0.0/8\n");
  const spki = sh("openssl x509 -in ca.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64").trim();
  testCaCache = { dir, spki };
  return testCaCache;
}

function provisionCa(dataDir) {
  const tls = join(dataDir, "tls");
  if (existsSync(join(tls, "ca.key"))) return;
  const { dir } = testCa();
  mkdirSync(tls, { recursive: true });
  for (const f of ["ca.pem", "ca.key", "ca-names.txt"]) copyFileSync(join(dir, f), join(tls, f));
  chmodSync(join(tls, "ca.key"), 0o600);
}

/// Starts a node; resolves once it listens (with its admin link, while it still prints one).
/// The node serves HTTPS with its own CA, as it does by default (browsers here skip the
/// certificate warning: `member()` sets ignoreHTTPSErrors). `restart()` starts it again on the
/// same port and data dir. `args`: more `veche run` flags (for example `["--ring-timeout", "2s"]`).
/// `host`/`netns`: listen on that address inside that network namespace (a LAN host: lan.mjs).
export async function startNode({ name = "Town Library", registration = "invite", dataDir, port, args = [], host = "127.0.0.1", netns } = {}) {
  dataDir = dataDir || mkdtempSync(join(tmpdir(), "veche-e2e-"));
  port = port || nextPort++;
  const url = `https://${host}:${port}`;
  if (!args.includes("--tls-cert") && !args.includes("--tls")) provisionCa(dataDir);
  const argv = ["run", "--data-dir", dataDir, "--http", `${host}:${port}`, "--name", name,
    "--registration", registration, "--public-url", url, "--ui-dir", uiDir, "--p2p-port", "0", "--media-port", "0",
    ...args];
  const [cmd, cmdArgs] = netns ? ["ip", ["netns", "exec", netns, veche, ...argv]] : [veche, argv];
  const proc = spawn(cmd, cmdArgs, { env: { ...process.env, VECHE_LOG: "debug" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let banner = "";
  proc.stderr.on("data", (d) => { out += d; });
  proc.stdout.on("data", (d) => { out += d; banner += d; });
  // "node started" is logged (stderr) after the banner and admin link (stdout) are printed.
  const adminLink = await new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      if (out.includes("node started")) {
        clearInterval(poll);
        setTimeout(() => {
          // From stdout alone: the log (stderr) may interleave with the banner's lines.
          const m = banner.match(/admin link[^\n]*\n\s+(\S+)/);
          resolve(m ? m[1] : null);
        }, 100);
      } else if (Date.now() - started > 15000) {
        clearInterval(poll);
        reject(new Error("node did not start:\n" + out));
      }
    }, 20);
    proc.on("exit", (code) => { clearInterval(poll); reject(new Error(`node exited ${code}:\n${out}`)); });
  });
  const node = {
    url, dataDir, port, adminLink, proc, log: () => out,
    // With VECHE_TEST_LOGS=1 each node's log is kept in the artifacts when it stops (debug level:
    // forwarding decisions and all), to look into a failure.
    stop: () => {
      if (process.env.VECHE_TEST_LOGS) writeFileSync(join(artifacts, `node-${port}.log`), out);
      return proc.kill("SIGTERM");
    },
    stopped: () => new Promise((r) => (proc.exitCode !== null ? r() : proc.on("exit", r))),
    restart: async () => { node.stop(); await node.stopped(); return startNode({ name, registration, dataDir, port, args, host, netns }); },
    /// The node's own CA certificate (PEM): what a member's device trusts once.
    ca: () => readFileSync(join(dataDir, "tls", "ca.pem"), "utf8"),
  };
  return node;
}

/// GET `path` from the node over HTTPS, trusting its CA (and only it); resolves to
/// `{ status, headers, body }`.
export function nodeGet(node, path) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(node.url + path, { ca: node.ca(), timeout: 10000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => { body += d; });
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.on("error", reject);
    req.end();
  });
}

export async function launchBrowser({ args = [], executablePath } = {}) {
  return chromium.launch({
    executablePath: executablePath || process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      // Calls: a fake camera and microphone, granted without a prompt.
      "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
      // The nodes' CA, trusted as on a member's device that installed it (testCa()).
      `--ignore-certificate-errors-spki-list=${testCa().spki}`, ...args],
  });
}

/// Runs the native client with its own state dir. It trusts the node's certificate on first use
/// (links the node prints carry its fingerprint anyway).
export function client(stateDir, ...args) {
  return execFileSync(veche, ["client", "--state", stateDir, "--json", "--accept-fingerprint", ...args], { encoding: "utf8", timeout: 60000 });
}

/// Every file under `dir`, recursively.
export function filesUnder(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p)); else out.push(p);
  }
  return out;
}

/// Whether any file under `dir` contains `text` (UTF-8).
export function dirContains(dir, text) {
  const needle = Buffer.from(text, "utf8");
  return filesUnder(dir).some((f) => readFileSync(f).includes(needle));
}

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), prefix));
}

export const tid = (id) => `[data-testid="${id}"]`;

/// A browser context (one member's browser) with console errors forwarded to the test output.
export async function member(browser, label, options = {}) {
  const context = await browser.newContext({ locale: "en-US", viewport: { width: 1280, height: 800 }, acceptDownloads: true, ...options });
  const page = await context.newPage();
  watch(page, label);
  return { context, page };
}

export function watch(page, label) {
  page.on("pageerror", (e) => console.error(`[${label} page error]`, e.message));
  page.on("console", (m) => { if (m.type() === "error" && !m.text().includes("WebSocket")) console.error(`[${label} console]`, m.text()); });
}

/// Registers through the node's admin link (or any node link). These flows take a page of any
/// engine (playwright Chromium, puppeteer Firefox, WebKitPage): see engines.mjs.
export async function onboardWithLink(page, link, name) {
  await page.goto(link);
  await fill(page, tid("join-name"), name);
  await click(page, tid("join-submit"));
}

export async function createGroup(page, name) {
  await click(page, tid("new-group"));
  await fill(page, tid("group-name"), name);
  await click(page, tid("create-group-submit"));
  await waitFor(page, tid("chat-name"), { hasText: name });
}

/// Creates an invite link in the open chat; `uses`: "1", "10", "100" or "0" (unlimited).
export async function createInvite(page, { uses = "10" } = {}) {
  await click(page, tid("open-invite"));
  await selectOption(page, tid("invite-uses"), uses);
  await click(page, tid("invite-create"));
  await waitFor(page, tid("invite-link"));
  const link = await until("the invite link is made", () => inputValue(page, tid("invite-link")), 30000);
  await pressKey(page, "Escape");
  await waitFor(page, tid("invite-dialog"), { state: "detached" });
  return link;
}

export async function joinByLink(page, link, name) {
  await page.goto(link);
  await fill(page, tid("join-name"), name);
  await click(page, tid("join-submit"));
  await waitFor(page, tid("composer"), { timeout: 30000 });
}

/// Alice (the node's admin, by its admin link) and Bob (by her invite link) in a new group chat
/// called `group`, each in a browser context of their own, both with the chat open.
export async function groupOfTwo(browser, node, group) {
  const { page: a } = await member(browser, "Alice");
  const { page: b } = await member(browser, "Bob");
  await onboardWithLink(a, node.adminLink.replace(/^http:\/\/[^/]+/, node.url), "Alice");
  await a.locator(tid("chat-list")).waitFor();
  await createGroup(a, group);
  const link = await createInvite(a);
  await joinByLink(b, link, "Bob");
  await a.locator(tid("chat-name")).filter({ hasText: group }).waitFor();
  return { a, b };
}

/// Opens the chat's call from its call button and joins it from the pre-join view (with the
/// camera and microphone the view opened).
export async function joinCall(page) {
  await click(page, tid("call-start"));
  await click(page, tid("prejoin-join"));
}

/// Opens the call bar's "more" menu (the organizer's tools: call-mode, call-lock, call-end) unless
/// it is open.
export async function openCallMore(page) {
  if ((await count(page, tid("call-more-menu"))) === 0) await click(page, tid("call-more"));
  await waitFor(page, tid("call-more-menu"));
}

/// Uses one of the organizer's tools from the "more" menu (which closes after it).
export async function callTool(page, id) {
  await openCallMore(page);
  await click(page, tid(id));
}

/// Opens the call's participants panel unless it is open (on a wide window it is from the start).
export async function openCallPeople(page) {
  if ((await count(page, tid("call-people-panel"))) === 0) await click(page, tid("call-people-toggle"));
  await waitFor(page, tid("call-people-panel"));
}

/// Opens the chat's call's pre-join view, sets the microphone and camera checkboxes, and joins
/// (any engine).
export async function joinCallWith(page, { mic = true, camera = true } = {}) {
  await click(page, tid("call-start"));
  await waitFor(page, tid("call-prejoin"));
  // The preview has opened (the checkboxes are enabled once it knows the devices).
  await waitFor(page, tid("prejoin-status") + ':not([data-state="opening"])', { timeout: 15000 });
  await setChecked(page, tid("prejoin-with-mic"), mic);
  await setChecked(page, tid("prejoin-with-camera"), camera);
  await click(page, tid("prejoin-join"));
  await waitFor(page, tid("call-panel"));
}

export async function send(page, text) {
  await page.locator(tid("composer")).fill(text);
  await page.locator(tid("composer")).press("Enter");
}

/// The message bubble holding `text` (someone else's unless `own`).
export function message(page, text, own = false) {
  return page.locator(tid("message") + `[data-own="${own}"]`).filter({ hasText: text });
}

/// What this page's call peer connection has received so far (getStats inbound-rtp), or null.
export async function inbound(page) {
  return page.evaluate(async () => {
    const pc = window.__vechePc;
    if (!pc) return null;
    const out = { framesDecoded: 0, audioPackets: 0 };
    (await pc.getStats()).forEach((r) => {
      if (r.type !== "inbound-rtp") return;
      if (r.kind === "video") out.framesDecoded += r.framesDecoded || 0;
      if (r.kind === "audio") out.audioPackets += r.packetsReceived || 0;
    });
    return out;
  });
}

/// Polls `check` every 250 ms until it returns something truthy (returned), for up to `timeoutMs`.
export async function until(what, check, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/// Frames decoded so far from each remote camera tile on `page`, by the name on the tile
/// (works in any engine: plain page.evaluate).
export async function tileFrames(page) {
  return page.evaluate(async () => {
    const pc = window.__vechePc;
    const out = {};
    if (!pc) return out;
    for (const box of document.querySelectorAll('[data-testid="call-tile"]')) {
      const name = box.querySelector("figcaption")?.textContent || box.dataset.stream;
      const track = box.querySelector("video")?.srcObject?.getVideoTracks()[0];
      if (!track) continue;
      let frames = 0;
      (await pc.getStats(track)).forEach((r) => {
        if (r.type === "inbound-rtp") frames += r.framesDecoded || 0;
      });
      out[name] = frames;
    }
    return out;
  });
}

/// Waits until `page` (whose member is `who`) decodes video from every one of `names`, at least
/// `min` frames each within one `windowMs` window (frames rising, not just above zero once).
/// Returns the frames per name in that window.
export async function keepsDecoding(page, who, names, { windowMs = 2000, min = 10, timeout = 30000 } = {}) {
  const deadline = Date.now() + timeout;
  let last = null;
  for (;;) {
    const before = await tileFrames(page);
    await new Promise((r) => setTimeout(r, windowMs));
    const after = await tileFrames(page);
    const rates = Object.fromEntries(names.map((n) => [n, (after[n] ?? 0) - (before[n] ?? 0)]));
    if (names.every((n) => after[n] !== undefined && rates[n] >= min)) return rates;
    last = { before, after };
    if (Date.now() > deadline) {
      throw new Error(`${who} keeps decoding ${names.join(", ")}: not within ${timeout} ms (last window: ${JSON.stringify(last)})`);
    }
  }
}
