// Several hosts of one LAN on this machine: network namespaces joined by a bridge (as
// tests/src/netns.rs does for the Rust tests; needs root and iproute2). Host n is `10.<subnet>.0.<n>`.
// A node runs in one host (`startNode({ host: lan.addr(1), netns: lan.host(1) })`), each member's
// browser in another (`lan.chromium(n)`): the browser reaches the node at its LAN address, as a
// phone on the library's Wi-Fi does, not at 127.0.0.1 (which browsers treat as secure).
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ip = (...args) => execFileSync("ip", args, { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });

/// Why namespaces cannot be made here (not root, no iproute2), or null.
export function netnsUnavailable() {
  const probe = `vprobe${process.pid % 100000}`;
  try {
    ip("netns", "add", probe);
    ip("netns", "del", probe);
    return null;
  } catch (e) {
    return String(e.stderr || e.message).trim();
  }
}

export class Lan {
  constructor(subnet, hosts) {
    this.prefix = `b${process.pid % 10000}${subnet % 100}`;
    this.subnet = subnet;
    this.hosts = hosts;
    this.dir = mkdtempSync(join(tmpdir(), "veche-lan-"));
    const sw = this.switch();
    ip("netns", "add", sw);
    ip("-n", sw, "link", "add", "br0", "type", "bridge");
    ip("-n", sw, "link", "set", "br0", "up");
    for (let n = 1; n <= hosts; n++) {
      const host = this.host(n);
      const [inside, outside] = [`${this.prefix}h${n}`, `${this.prefix}s${n}`];
      ip("netns", "add", host);
      // No IPv6 on the host: its link-local address would appear a second or two after the link
      // comes up, and Chromium treats that as a network change (ERR_NETWORK_CHANGED), aborting
      // whatever is in flight then, such as the service worker's install.
      execFileSync("ip", ["netns", "exec", host, "sh", "-c",
        "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"]);
      ip("link", "add", inside, "netns", host, "type", "veth", "peer", "name", outside, "netns", sw);
      ip("-n", sw, "link", "set", outside, "master", "br0");
      ip("-n", sw, "link", "set", outside, "up");
      ip("-n", host, "addr", "add", `${this.addr(n)}/24`, "dev", inside);
      ip("-n", host, "link", "set", "lo", "up");
      ip("-n", host, "link", "set", inside, "up");
    }
  }

  switch() { return `${this.prefix}-sw`; }
  host(n) { return `${this.prefix}-h${n}`; }
  addr(n) { return `10.${this.subnet}.0.${n}`; }

  /// A launcher that starts Debian's chromium inside host n (for playwright's executablePath;
  /// playwright talks to it over inherited pipes, which `ip netns exec` keeps).
  chromium(n) {
    const path = join(this.dir, `chromium-h${n}.sh`);
    writeFileSync(path, `#!/bin/sh\nexec ip netns exec ${this.host(n)} ${process.env.CHROMIUM || "/usr/bin/chromium"} "$@"\n`);
    chmodSync(path, 0o755);
    return path;
  }

  /// Deletes the namespaces (killing what still runs in them).
  close() {
    for (let n = 1; n <= this.hosts; n++) {
      try {
        const pids = ip("netns", "pids", this.host(n)).split("\n").filter(Boolean);
        for (const pid of pids) { try { process.kill(Number(pid), "SIGKILL"); } catch { /* gone */ } }
      } catch { /* no such namespace */ }
      try { ip("netns", "del", this.host(n)); } catch { /* already gone */ }
    }
    try { ip("netns", "del", this.switch()); } catch { /* already gone */ }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
