// Test harness: a real `veche` node process, Debian chromium driven by playwright-core, and the
// native `veche client`. Every node gets a fresh data dir and port; artifacts (screenshots) go to
// tests/artifacts/browser/.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, "..", "..");
export const artifacts = join(root, "tests", "artifacts", "browser");
mkdirSync(artifacts, { recursive: true });

export const veche = process.env.VECHE_BIN || join(root, "target", "debug", "veche");
const uiDir = process.env.VECHE_UI_DIR || join(root, "web-ui", "dist");

let nextPort = 17900 + Math.floor(Math.random() * 1000);

/// Starts a node; resolves once it prints its admin link.
export async function startNode({ name = "Town Library", registration = "invite" } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "veche-e2e-"));
  const port = nextPort++;
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(veche, ["run", "--data-dir", dataDir, "--http", `127.0.0.1:${port}`, "--name", name,
    "--registration", registration, "--public-url", url, "--ui-dir", uiDir],
    { env: { ...process.env, VECHE_LOG: "debug" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stderr.on("data", (d) => { out += d; });
  const adminLink = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("node did not start:\n" + out)), 15000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/admin link[^\n]*\n\s+(\S+)/);
      if (m && out.includes("listening")) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`node exited ${code}:\n${out}`)); });
  });
  return { url, dataDir, adminLink, proc, log: () => out, stop: () => proc.kill("SIGTERM") };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/// Runs the native client with its own state dir.
export function client(stateDir, ...args) {
  return execFileSync(veche, ["client", "--state", stateDir, "--json", ...args], { encoding: "utf8", timeout: 60000 });
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
