// Engines besides Chromium, and helpers that drive a page the same way in all three.
//
// How each is driven, and what it lacks:
// - Chromium: playwright-core, as in harness.mjs (`launchBrowser`, `member`). Everything works.
// - Firefox: puppeteer-core (pinned 24.43.1, the last release for Node 20: 25.x wants Node
//   >= 22.12) over WebDriver BiDi, driving /usr/bin/firefox-esr --headless (no display needed)
//   with a fresh temporary profile (puppeteer writes the prefs below into it and deletes it on
//   close). `launchFirefox()` gives a puppeteer Browser, `firefoxMember()` a fresh browser
//   context (own cookies and storage) per member. A fake camera and microphone are granted
//   without a prompt; getUserMedia, RTCPeerConnection, getStats and simulcast sendEncodings
//   work. ICE also offers 127.0.0.1 candidates, so it reaches an SFU on 127.0.0.1 (it gathers the
//   machine's other addresses too: `media.peerconnection.ice.force_interface` is not honoured).
//   A Firefox answerer does not accept simulcast (no a=simulcast:recv), which matters only for
//   browser-to-browser loops, not for the SFU. Over plain http a page is a secure context only
//   on loopback: list other hosts in `launchFirefox({ hosts })` to get mediaDevices and
//   crypto.subtle there. Lacks the playwright-only API (see below); no per-context locale,
//   downloads or permission options.
// - WebKit: WebKitWebDriver (webkit2gtk-driver) driving WebKitGTK's MiniBrowser
//   (`--automation`, without which no session starts) in a private Xvfb display (GTK MiniBrowser
//   has no headless mode), over the W3C WebDriver HTTP API with plain `fetch`. `launchWebKit()`
//   gives a `WebKitPage`: one window with ephemeral storage; launch another for a second
//   member (about 1 s each). Debian's WebKitGTK 2.50 is built without WebRTC:
//   `typeof RTCPeerConnection === "undefined"` (also with --enable-webrtc=true), so calls cannot
//   run there; pages, IndexedDB, WebSocket, crypto.subtle (Ed25519, X25519, ECDSA) work, and
//   getUserMedia works with `args: ["--enable-mock-capture-devices=true"]`. Lacks console and
//   page-error events (classic WebDriver: `installConsoleLog()`/`consoleLog()` instead), browser
//   contexts, request interception, full-page screenshots.
// Network: neither browser can leave loopback. Firefox resolves every host name to 127.0.0.1
// (`network.dns.native-is-localhost`) and both send everything not on loopback (or in `hosts`) to
// an HTTP proxy on the closed port 127.0.0.1:9; Firefox's phoning home is turned off by prefs
// (remote settings only with MOZ_REMOTE_SETTINGS_DEVTOOLS=1, set here).
//
// playwright (Chromium) vs puppeteer (Firefox) vs WebKitPage, where tests will notice:
//   browser.newContext({viewport, locale})  | browser.createBrowserContext() + page.setViewport() | launchWebKit({viewport})
//   page.setViewportSize({width, height})   | page.setViewport({width, height})                   | (at launch)
//   page.goto(url), page.title(), page.screenshot({path}): the same on all three (WebKitPage: viewport only)
//   page.url() (sync)                       | page.url() (sync)                                   | await page.url()
//   page.evaluate(fn, arg): one argument    | page.evaluate(fn, ...args)                          | page.evaluate(fn, ...args) or a body string ("return 1")
//   page.waitForFunction(fn, arg, {timeout})| page.waitForFunction(fn, {timeout, polling}, ...args): options and arguments swap places
//   locator(s).fill/click (strict: exactly one match) | page.locator(s).fill/click (first match; waits visible, enabled, stable) | fill()/click()
//   locator(s).waitFor({state})             | page.waitForSelector(s, {visible|hidden}), no "detached" | waitFor()
//   locator(s).filter({hasText})            | "::-p-text(...)" selectors                          | waitFor(page, s, {hasText})
//   locator(s).press("Shift+Enter")         | elementHandle.press(key): no chords                  | press()
//   page.keyboard.press("Shift+Enter")      | page.keyboard.press("Escape"): no chords             | page.keyboard.press(...) (chords) -> pressKey()
//   locator(s).inputValue()                 | page.$eval(s, (e) => e.value)                        | inputValue()
//   locator(s).selectOption(v)              | page.select(s, v)                                    | selectOption()
//   locator(s).count()                      | (await page.$$(s)).length                            | count()
//   page.on("console" | "pageerror")        | the same events                                     | installConsoleLog()/consoleLog()
//   context.grantPermissions([...])         | not over BiDi (the prefs grant camera and microphone)
//   page.close(): the tab                   | the tab                                             | page.close(): the whole browser, driver and Xvfb
// The helpers (`fill`, `click`, `waitFor`, `press`, `pressKey`, `inputValue`, `selectOption`,
// `count`) take any of the three pages and a CSS selector — CSS only: playwright's `text=`/`>>`
// and puppeteer's `::-p-` selectors are not understood by the others. Every waiting helper takes
// `{ timeout }` (30 s by default).
import { spawn } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import puppeteer from "puppeteer-core";

export const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";
export const WEBKIT_DRIVER = process.env.WEBKIT_DRIVER || "/usr/bin/WebKitWebDriver";
export const MINIBROWSER = process.env.MINIBROWSER || "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";

// On top of puppeteer's own defaults (which already turn off app updates, safebrowsing lookups,
// Normandy, health reports, extension updates, GMP downloads, topstories, ...). Every URL that
// Firefox could call home on points at a closed loopback port.
const NOWHERE = "http://127.0.0.1:9/";
export const FIREFOX_PREFS = {
  // Calls: a fake camera (a moving test pattern) and microphone (a tone), no prompt.
  "media.navigator.streams.fake": true,
  "media.navigator.permission.disabled": true,
  "permissions.default.camera": 1,
  "permissions.default.microphone": 1,
  "media.autoplay.default": 0,
  "media.autoplay.block-webaudio": false,
  // As harness.mjs's contexts: English UI.
  "intl.accept_languages": "en-US, en",
  "intl.locale.requested": "en-US",
  // ICE: also 127.0.0.1 host candidates (Firefox skips loopback by default), no mDNS names.
  "media.peerconnection.ice.loopback": true,
  "media.peerconnection.ice.obfuscate_host_addresses": false,
  "media.peerconnection.ice.default_address_only": false,
  "media.peerconnection.use_document_iceservers": true,
  "media.peerconnection.default_iceservers": "[]",
  "media.peerconnection.identity.timeout": 5000,
  // No network beyond what the page asks for.
  "app.update.auto": false,
  "app.update.enabled": false,
  "app.update.url": NOWHERE,
  "app.normandy.enabled": false,
  "app.shield.optoutstudies.enabled": false,
  "browser.aboutHomeSnippets.updateUrl": "",
  "browser.discovery.enabled": false,
  "browser.newtabpage.activity-stream.feeds.section.topstories": false,
  "browser.newtabpage.activity-stream.feeds.snippets": false,
  "browser.newtabpage.activity-stream.telemetry": false,
  "browser.ping-centre.telemetry": false,
  "browser.region.network.url": "",
  "browser.region.update.enabled": false,
  "browser.safebrowsing.provider.google.updateURL": "",
  "browser.safebrowsing.provider.google4.updateURL": "",
  "browser.safebrowsing.provider.mozilla.updateURL": "",
  "browser.safebrowsing.downloads.remote.enabled": false,
  "browser.search.geoip.url": "",
  "browser.topsites.contile.enabled": false,
  "browser.urlbar.quicksuggest.enabled": false,
  "captivedetect.canonicalURL": "",
  "network.captive-portal-service.enabled": false,
  "network.connectivity-service.enabled": false,
  // Every host name resolves to 127.0.0.1 without asking DNS: a stray URL can only hit loopback.
  "network.dns.native-is-localhost": true,
  "network.dns.disablePrefetch": true,
  "network.predictor.enabled": false,
  "network.prefetch-next": false,
  // Anything not on loopback goes to a proxy on a closed loopback port, i.e. nowhere
  // (`launchFirefox({ hosts })` adds hosts to reach directly).
  "network.proxy.type": 1,
  "network.proxy.http": "127.0.0.1",
  "network.proxy.http_port": 9,
  "network.proxy.ssl": "127.0.0.1",
  "network.proxy.ssl_port": 9,
  "network.proxy.share_proxy_settings": false,
  "network.proxy.no_proxies_on": "localhost, 127.0.0.0/8, [::1]",
  "network.proxy.allow_hijacking_localhost": false,
  "network.proxy.failover_direct": false,
  "network.trr.mode": 5,
  "datareporting.policy.dataSubmissionEnabled": false,
  "datareporting.healthreport.uploadEnabled": false,
  "toolkit.telemetry.enabled": false,
  "toolkit.telemetry.unified": false,
  "toolkit.telemetry.archive.enabled": false,
  "toolkit.telemetry.server": "",
  "toolkit.coverage.endpoint.base": "",
  "dom.push.connection.enabled": false,
  "dom.push.serverURL": "",
  "extensions.systemAddon.update.enabled": false,
  "extensions.systemAddon.update.url": "",
  "extensions.getAddons.get.url": "",
  "extensions.blocklist.enabled": false,
  "identity.fxaccounts.enabled": false,
  "media.gmp-manager.url": "",
  "media.gmp-gmpopenh264.autoupdate": false,
  "services.settings.server": NOWHERE,
  "security.OCSP.enabled": 0,
  "security.remote_settings.crlite_filters.enabled": false,
  "security.remote_settings.intermediates.enabled": false,
  "network.sntp.pools": "127.0.0.1",
  "geo.provider.network.url": "",
  "privacy.resistFingerprinting": false,
};

/// Firefox ESR, headless, through puppeteer-core over WebDriver BiDi. `hosts`: addresses besides
/// loopback that pages may reach (directly, not through the dead proxy) and whose plain-http
/// pages count as secure contexts; `prefs`: more about:config prefs (win over everything).
/// Resolves to a puppeteer Browser; `browser.close()` ends Firefox and deletes the profile.
export async function launchFirefox({ hosts = [], prefs = {}, timeout = 60000 } = {}) {
  const browser = await puppeteer.launch({
    browser: "firefox",
    protocol: "webDriverBiDi",
    executablePath: FIREFOX,
    // The node's own CA is not installed in these throwaway profiles.
    acceptInsecureCerts: true,
    headless: true,
    timeout,
    protocolTimeout: 60000,
    defaultViewport: { width: 1280, height: 800 },
    extraPrefsFirefox: {
      ...FIREFOX_PREFS,
      ...(hosts.length ? {
        "dom.securecontext.allowlist": hosts.join(","),
        "network.proxy.no_proxies_on": [FIREFOX_PREFS["network.proxy.no_proxies_on"], ...hosts].join(", "),
      } : {}),
      ...prefs,
    },
    // Release builds ignore `services.settings.server` (and poll firefox.settings.services.mozilla.com)
    // unless MOZ_REMOTE_SETTINGS_DEVTOOLS=1.
    env: { ...process.env, MOZ_CRASHREPORTER_DISABLE: "1", MOZ_REMOTE_SETTINGS_DEVTOOLS: "1" },
    // Our own handlers (below) kill Firefox's whole process group and then end node.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  hookSignals();
  // puppeteer starts Firefox as a process-group leader, but once Firefox has quit by itself its
  // child processes (RDD, Utility, content) may linger orphaned for a moment: wait for them.
  const pgid = browser.process()?.pid;
  const spawnargs = browser.process()?.spawnargs ?? [];
  const profile = spawnargs[spawnargs.indexOf("--profile") + 1];
  if (profile && spawnargs.includes("--profile")) profiles.add(profile);
  if (pgid) {
    groups.add(pgid);
    const close = browser.close.bind(browser);
    browser.close = async () => {
      try { await withTimeout(close(), 20000, "firefox close"); } finally {
        await reapGroup(pgid);
        if (profile) { rmSync(profile, { recursive: true, force: true, maxRetries: 3 }); profiles.delete(profile); }
      }
    };
  }
  return browser;
}

/// One member's browser in Firefox: a fresh browser context (own cookies and storage) with one
/// page, its page errors and console errors forwarded to stderr under `label`.
export async function firefoxMember(browser, label, { viewport = { width: 1280, height: 800 } } = {}) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport(viewport);
  page.on("pageerror", (e) => console.error(`[${label} page error]`, e.message ?? e));
  page.on("console", (m) => { if (m.type() === "error" && !m.text().includes("WebSocket")) console.error(`[${label} console]`, m.text()); });
  return { context, page };
}

// ---- WebKit over W3C WebDriver -------------------------------------------------------------

const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
const KEYS = {
  Enter: "\uE007", Escape: "\uE00C", Tab: "\uE004", Backspace: "\uE003", Delete: "\uE017",
  ArrowLeft: "\uE012", ArrowUp: "\uE013", ArrowRight: "\uE014", ArrowDown: "\uE015",
  Home: "\uE011", End: "\uE010", PageUp: "\uE00E", PageDown: "\uE00F", Space: " ",
  Shift: "\uE008", Control: "\uE009", Alt: "\uE00A", Meta: "\uE03D",
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// `promise`, or a rejection after `ms` (the timer does not keep node alive past it).
export function withTimeout(promise, ms, what = "operation") {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// In-page check shared by every engine's `waitFor`: whether the elements matching `selector`
// (and, with `hasText`, containing it) are in `state`: "attached" (some exist), "detached"
// (none), "visible" (some have a box and are not visibility:hidden), "hidden" (none visible).
function inState(selector, hasText, state) {
  const all = [...document.querySelectorAll(selector)].filter((e) => !hasText || e.textContent.includes(hasText));
  const visible = all.some((e) => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== "hidden";
  });
  return { attached: all.length > 0, detached: all.length === 0, visible, hidden: !visible }[state];
}

/// A MiniBrowser window driven over WebDriver. `close()` ends the session, WebKitWebDriver,
/// MiniBrowser and Xvfb.
export class WebKitPage {
  constructor(base, sessionId, procs) {
    this.base = base;
    this.sessionId = sessionId;
    this.procs = procs;
    /// `page.keyboard.press(key)` as in playwright and puppeteer: to the focused element.
    this.keyboard = { press: (key) => this.#keys(key) };
  }

  /// One WebDriver command; throws WebDriver errors as `Error("code: message")`.
  async cmd(method, path, body, timeoutMs = 65000) {
    const url = `${this.base}/session/${this.sessionId}${path}`;
    return wd(method, url, body, timeoutMs);
  }

  async goto(url) { await this.cmd("POST", "/url", { url }); }
  async url() { return this.cmd("GET", "/url"); }
  async title() { return this.cmd("GET", "/title"); }
  async reload() { await this.cmd("POST", "/refresh", {}); }

  /// Runs `fn(...args)` (a function, possibly async) or a function body string (`"return 1+1"`)
  /// in the page and resolves to its JSON-able result (undefined comes back as null).
  async evaluate(fn, ...args) {
    const src = typeof fn === "function" ? `(${fn})` : `(async function() { ${fn} })`;
    const script = `const done = arguments[arguments.length - 1];
      const args = Array.prototype.slice.call(arguments, 0, -1);
      Promise.resolve().then(() => ${src}.apply(null, args))
        .then((v) => done({ ok: v === undefined ? null : v }), (e) => done({ error: String(e) + (e && e.stack ? "\\n" + e.stack : "") }));`;
    const r = await this.cmd("POST", "/execute/async", { script, args });
    if (r && "error" in r) throw new Error(`evaluate: ${r.error}`);
    return r.ok;
  }

  async find(selector) {
    const r = await this.cmd("POST", "/element", { using: "css selector", value: selector });
    return r[ELEMENT];
  }

  async waitFor(selector, { timeout = 30000, state = "visible", hasText } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      if (await this.evaluate(inState, selector, hasText ?? null, state)) return;
      if (Date.now() > deadline) throw new Error(`waitFor ${selector} ${state}: not within ${timeout} ms`);
      await sleep(100);
    }
  }

  // Retries `action(elementId)` on the first visible match until it succeeds or `timeout` ends
  // (the element may not exist yet, be re-rendered, or be covered for a moment).
  async #act(selector, timeout, action) {
    const deadline = Date.now() + timeout;
    for (;;) {
      try {
        await this.waitFor(selector, { timeout: Math.max(0, deadline - Date.now()) });
        return await action(await this.find(selector));
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(100);
      }
    }
  }

  async click(selector, { timeout = 30000 } = {}) {
    await this.#act(selector, timeout, (id) => this.cmd("POST", `/element/${id}/click`, {}));
  }

  async fill(selector, text, { timeout = 30000 } = {}) {
    await this.#act(selector, timeout, async (id) => {
      await this.cmd("POST", `/element/${id}/clear`, {});
      if (text !== "") await this.cmd("POST", `/element/${id}/value`, { text: String(text) });
    });
  }

  /// `key`: a key name ("Enter", "Escape", "ArrowDown", a character) or a chord ("Shift+Enter").
  async press(selector, key, { timeout = 30000 } = {}) {
    const parts = key.length > 1 ? key.split("+") : [key];
    const text = parts.map((k) => KEYS[k] ?? k).join("") + (parts.length > 1 ? "\uE000" : "");
    await this.#act(selector, timeout, (id) => this.cmd("POST", `/element/${id}/value`, { text }));
  }

  async #keys(key) {
    const codes = (key.length > 1 ? key.split("+") : [key]).map((k) => KEYS[k] ?? k);
    const actions = [...codes.map((value) => ({ type: "keyDown", value })), ...[...codes].reverse().map((value) => ({ type: "keyUp", value }))];
    await this.cmd("POST", "/actions", { actions: [{ type: "key", id: "keyboard", actions }] });
    await this.cmd("DELETE", "/actions");
  }

  async inputValue(selector, { timeout = 30000 } = {}) {
    await this.waitFor(selector, { timeout, state: "attached" });
    return this.evaluate((s) => document.querySelector(s).value, selector);
  }

  async selectOption(selector, value, { timeout = 30000 } = {}) {
    await this.waitFor(selector, { timeout, state: "attached" });
    await this.evaluate((s, v) => {
      const el = document.querySelector(s);
      el.value = v;
      el.dispatchEvent(new Event("input", { bubbles: true }));
      el.dispatchEvent(new Event("change", { bubbles: true }));
    }, selector, value);
  }

  async count(selector) {
    const r = await this.cmd("POST", "/elements", { using: "css selector", value: selector });
    return r.length;
  }

  /// PNG of the viewport; `opts`: `{ path }` or a path.
  async screenshot(opts = {}) {
    const path = typeof opts === "string" ? opts : opts.path;
    const png = Buffer.from(await this.cmd("GET", "/screenshot"), "base64");
    if (path) writeFileSync(path, png);
    return png;
  }

  /// Console messages the page logged since its last load (WebDriver classic cannot listen to the
  /// console, so `launchWebKit` makes no hook; call `installConsoleLog()` after each goto).
  async installConsoleLog() {
    await this.evaluate(() => {
      if (window.__wkLog) return;
      window.__wkLog = [];
      for (const type of ["log", "info", "warn", "error"]) {
        const orig = console[type].bind(console);
        console[type] = (...a) => { window.__wkLog.push({ type, text: a.map(String).join(" ") }); orig(...a); };
      }
      addEventListener("error", (e) => window.__wkLog.push({ type: "pageerror", text: e.message }));
      addEventListener("unhandledrejection", (e) => window.__wkLog.push({ type: "pageerror", text: String(e.reason) }));
    });
  }
  async consoleLog() { return this.evaluate(() => window.__wkLog || []); }

  async close() {
    try { await this.cmd("DELETE", "", undefined, 10000); } catch { /* the driver may be gone */ }
    await this.procs.stop();
  }
}

async function wd(method, url, body, timeoutMs) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const json = await res.json().catch(() => ({ value: null }));
  const v = json.value;
  if (!res.ok || (v && typeof v === "object" && typeof v.error === "string" && v.message !== undefined)) {
    throw new Error(`WebDriver ${method} ${url.replace(/^.*\/session\/[^/]+/, "")}: ${v?.error}: ${v?.message}`);
  }
  return v;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// Every process started here leads a process group of its own (detached) and is stopped with its
// whole group; whatever is still running when this node process exits is killed then, so a
// failing test leaves no Xvfb, driver, MiniBrowser or Firefox child behind.
const groups = new Set();
const profiles = new Set(); // Firefox profiles to delete if node ends before `browser.close()`
const killAll = () => {
  for (const g of groups) { try { process.kill(-g, "SIGKILL"); } catch { /* gone */ } }
  for (const dir of profiles) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
};
process.on("exit", killAll);
// A signal ends node without "exit" (and puppeteer's own SIGTERM handler does not end it at all).
let signalsHooked = false;
function hookSignals() {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]]) {
    process.on(sig, () => { killAll(); process.exit(code); });
  }
}

const groupAlive = (pgid) => { try { process.kill(-pgid, 0); return true; } catch { return false; } };

// Gives the group `graceMs` to finish by itself, then kills whatever is left of it.
async function reapGroup(pgid, graceMs = 3000) {
  const deadline = Date.now() + graceMs;
  while (groupAlive(pgid) && Date.now() < deadline) await sleep(50);
  try { process.kill(-pgid, "SIGKILL"); } catch { /* gone */ }
  while (groupAlive(pgid) && Date.now() < deadline + 2000) await sleep(50);
  groups.delete(pgid);
}

function start(cmd, args, opts = {}) {
  hookSignals();
  const proc = spawn(cmd, args, { detached: true, stdio: ["ignore", "pipe", "pipe"], ...opts });
  if (proc.pid) groups.add(proc.pid);
  let out = "";
  proc.stdout?.on("data", (d) => { out = (out + d).slice(-20000); });
  proc.stderr?.on("data", (d) => { out = (out + d).slice(-20000); });
  proc.log = () => out;
  return proc;
}

// SIGTERM to the group, then SIGKILL to what is left after `graceMs`.
async function stopGroup(proc, graceMs = 3000) {
  if (!proc?.pid || !groups.has(proc.pid)) return;
  try { process.kill(-proc.pid, "SIGTERM"); } catch { /* gone */ }
  await reapGroup(proc.pid, graceMs);
}

/// Starts Xvfb on a free display (it picks one: -displayfd); resolves to { proc, display }.
export async function startXvfb({ size = "1280x1024x24", timeout = 10000 } = {}) {
  const proc = start("Xvfb", ["-displayfd", "3", "-screen", "0", size, "-nolisten", "tcp", "-noreset"],
    { stdio: ["ignore", "pipe", "pipe", "pipe"] });
  const display = await new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error("Xvfb did not start:\n" + proc.log())), timeout);
    proc.stdio[3].on("data", (d) => {
      buf += d;
      if (buf.includes("\n")) { clearTimeout(timer); resolve(`:${buf.trim()}`); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`Xvfb exited ${code}:\n${proc.log()}`)); });
  }).catch(async (e) => { await stopGroup(proc); throw e; });
  return { proc, display };
}

/// WebKitGTK's MiniBrowser under a private Xvfb, driven by WebKitWebDriver. Everything but
/// loopback and `hosts` goes to a proxy on a closed loopback port, i.e. nowhere. `args`: more
/// MiniBrowser flags (`MiniBrowser --help-all`), e.g. "--enable-mock-capture-devices=true" for
/// a fake camera and microphone that getUserMedia grants without a prompt.
/// Resolves to a WebKitPage.
/// `env`: more environment for the driver and browser (a null value removes a variable).
export async function launchWebKit({ args = [], hosts = [], env: moreEnv = {}, viewport = { width: 1280, height: 800 }, timeout = 60000 } = {}) {
  const deadline = Date.now() + timeout;
  const left = () => Math.max(1000, deadline - Date.now());
  const xvfb = await startXvfb({ timeout: left() });
  const env = {
    ...process.env,
    DISPLAY: xvfb.display,
    GDK_BACKEND: "x11",
    WAYLAND_DISPLAY: "",
    LIBGL_ALWAYS_SOFTWARE: "1",
    WEBKIT_DISABLE_DMABUF_RENDERER: "1",
    NO_AT_BRIDGE: "1",
    GTK_A11Y: "none",
    // navigator.language comes from LANG (C.UTF-8 here would make it "C"); the locale need not exist.
    LANG: "en_US.UTF-8",
    LANGUAGE: "en_US",
    LC_ALL: null,
    ...moreEnv,
  };
  for (const [k, v] of Object.entries(env)) if (v === null || v === undefined) delete env[k];
  let driver;
  const procs = { xvfb: xvfb.proc, stop: async () => { await stopGroup(driver); await stopGroup(xvfb.proc); } };
  try {
    const port = await freePort();
    driver = start(WEBKIT_DRIVER, [`--port=${port}`], { env });
    procs.driver = driver;
    const base = `http://127.0.0.1:${port}`;
    for (;;) {
      if (driver.exitCode !== null) throw new Error(`WebKitWebDriver exited ${driver.exitCode}:\n${driver.log()}`);
      try { if ((await wd("GET", `${base}/status`, undefined, 2000))?.ready) break; } catch { /* not up yet */ }
      if (Date.now() > deadline) throw new Error(`WebKitWebDriver did not start:\n${driver.log()}`);
      await sleep(50);
    }
    const session = await wd("POST", `${base}/session`, {
      capabilities: {
        alwaysMatch: {
          browserName: "MiniBrowser",
          pageLoadStrategy: "normal",
          acceptInsecureCerts: true,
          "webkitgtk:browserOptions": {
            binary: MINIBROWSER,
            args: ["--automation", "--proxy=http://127.0.0.1:9",
              ...["localhost", "127.0.0.0/8", "::1", ...hosts].map((h) => `--ignore-host=${h}`), ...args],
          },
        },
      },
    }, left());
    const page = new WebKitPage(base, session.sessionId, procs);
    await page.cmd("POST", "/timeouts", { script: 60000, pageLoad: 60000, implicit: 0 });
    if (viewport) await setWebKitViewport(page, viewport);
    return page;
  } catch (e) {
    const log = driver?.log() ?? "";
    await procs.stop();
    throw new Error(`${e.message}\n${log}`);
  }
}

// The window includes MiniBrowser's toolbar: size it, then grow it by what the toolbar takes.
async function setWebKitViewport(page, { width, height }) {
  await page.cmd("POST", "/window/rect", { width, height });
  const inner = await page.evaluate(() => [innerWidth, innerHeight]);
  if (inner[0] !== width || inner[1] !== height) {
    await page.cmd("POST", "/window/rect", { width: 2 * width - inner[0], height: 2 * height - inner[1] });
  }
}

// ---- The same operations on every engine ----------------------------------------------------

const isWebKit = (page) => page instanceof WebKitPage;
const isPlaywright = (page) => typeof page.getByRole === "function";

/// Sets an input's, textarea's or select's value as typing would (input events fire).
export async function fill(page, selector, text, { timeout = 30000 } = {}) {
  if (isWebKit(page)) return page.fill(selector, text, { timeout });
  if (isPlaywright(page)) return page.locator(selector).fill(text, { timeout });
  return page.locator(selector).setTimeout(timeout).fill(text);
}

/// Clicks the element once it is visible and enabled (playwright: exactly one may match).
export async function click(page, selector, { timeout = 30000 } = {}) {
  if (isWebKit(page)) return page.click(selector, { timeout });
  if (isPlaywright(page)) return page.locator(selector).click({ timeout });
  return page.locator(selector).setTimeout(timeout).click();
}

/// Waits until some element matching `selector` (and containing `hasText`) is `state`:
/// "visible" (default), "attached", "hidden" (none visible; playwright: the first match not
/// visible) or "detached" (none at all).
export async function waitFor(page, selector, { timeout = 30000, state = "visible", hasText } = {}) {
  if (isWebKit(page)) return page.waitFor(selector, { timeout, state, hasText });
  if (isPlaywright(page)) {
    const loc = hasText ? page.locator(selector).filter({ hasText }) : page.locator(selector);
    return loc.first().waitFor({ timeout, state });
  }
  await page.waitForFunction(inState, { timeout, polling: 100 }, selector, hasText ?? null, state);
}

/// Focuses the element and presses `key` ("Enter", "Escape", "a", "Shift+Enter", ...).
export async function press(page, selector, key, { timeout = 30000 } = {}) {
  if (isWebKit(page)) return page.press(selector, key, { timeout });
  if (isPlaywright(page)) return page.locator(selector).press(key, { timeout });
  const handle = await page.locator(selector).setTimeout(timeout).waitHandle();
  try {
    await handle.focus();
    await pressKey(page, key);
  } finally {
    await handle.dispose();
  }
}

/// Presses `key` (or a chord such as "Shift+Enter") in whatever has focus: `page.keyboard.press`,
/// which in puppeteer takes no chords.
export async function pressKey(page, key) {
  if (isWebKit(page) || isPlaywright(page)) return page.keyboard.press(key);
  const parts = key.length > 1 ? key.split("+") : [key];
  for (const k of parts.slice(0, -1)) await page.keyboard.down(k);
  await page.keyboard.press(parts.at(-1));
  for (const k of parts.slice(0, -1).reverse()) await page.keyboard.up(k);
}

/// The `value` of an input, textarea or select.
export async function inputValue(page, selector, { timeout = 30000 } = {}) {
  if (isWebKit(page)) return page.inputValue(selector, { timeout });
  if (isPlaywright(page)) return page.locator(selector).inputValue({ timeout });
  await page.waitForSelector(selector, { timeout });
  return page.$eval(selector, (e) => e.value);
}

/// Selects the option with this value in a <select> (input and change events fire).
export async function selectOption(page, selector, value, { timeout = 30000 } = {}) {
  if (isWebKit(page)) return page.selectOption(selector, value, { timeout });
  if (isPlaywright(page)) return page.locator(selector).selectOption(value, { timeout });
  await page.waitForSelector(selector, { timeout });
  await page.select(selector, value);
}

/// Checks or unchecks a checkbox (a click, so its events fire) unless it already is.
export async function setChecked(page, selector, on, { timeout = 30000 } = {}) {
  if (isPlaywright(page)) return page.locator(selector).setChecked(on, { timeout });
  await waitFor(page, selector, { timeout });
  const checked = await page.evaluate((s) => document.querySelector(s).checked, selector);
  if (checked !== on) await click(page, selector, { timeout });
}

/// How many elements match now (visible or not); does not wait.
export async function count(page, selector) {
  if (isWebKit(page)) return page.count(selector);
  if (isPlaywright(page)) return page.locator(selector).count();
  return page.$$eval(selector, (els) => els.length);
}

/// Which engine drives `page`: "chromium" (playwright), "firefox" (puppeteer) or "webkit".
export function engineOf(page) {
  return isWebKit(page) ? "webkit" : isPlaywright(page) ? "chromium" : "firefox";
}
