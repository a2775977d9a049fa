//! Several hosts on one machine: network namespaces joined by a bridge (iproute2; needs root).
//! Each host gets `10.<subnet>.0.<n>/24`. Everything is deleted on drop.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

pub struct Lan {
    prefix: String,
    subnet: u8,
    hosts: usize,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().context("running `ip` (iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Why network namespaces cannot be made here (not root, no iproute2, a sandbox), if so.
/// Tests that need them print this and skip.
pub fn unavailable() -> Option<String> {
    let probe = format!("veche-probe-{}", std::process::id());
    match ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = ip(&["netns", "del", &probe]);
            None
        }
        Err(e) => Some(format!("{e:#}")),
    }
}

/// Skips the calling test (with the reason on stderr) when namespaces are unavailable.
#[macro_export]
macro_rules! require_netns {
    () => {
        if let Some(why) = $crate::netns::unavailable() {
            eprintln!("SKIPPED: this test needs network namespaces (root and iproute2): {why}");
            return Ok(());
        }
    };
}

impl Lan {
    /// A switch namespace with a bridge, and `hosts` host namespaces wired to it.
    pub fn new(subnet: u8, hosts: usize) -> anyhow::Result<Lan> {
        let prefix = format!("v{}{}", std::process::id() % 10000, subnet % 100);
        let lan = Lan { prefix, subnet, hosts };
        let sw = lan.switch();
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        for n in 1..=hosts {
            let host = lan.host(n);
            let (inside, outside) = (format!("{}h{n}", lan.prefix), format!("{}s{n}", lan.prefix));
            ip(&["netns", "add", &host])?;
            ip(&["link", "add", &inside, "netns", &host, "type", "veth", "peer", "name", &outside, "netns", &sw])?;
            ip(&["-n", &sw, "link", "set", &outside, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &outside, "up"])?;
            ip(&["-n", &host, "addr", "add", &format!("{}/24", lan.addr(n)), "dev", &inside])?;
            ip(&["-n", &host, "link", "set", "lo", "up"])?;
            ip(&["-n", &host, "link", "set", &inside, "up"])?;
        }
        Ok(lan)
    }

    fn switch(&self) -> String {
        format!("{}-sw", self.prefix)
    }

    /// The namespace of host `n` (1-based).
    pub fn host(&self, n: usize) -> String {
        format!("{}-h{n}", self.prefix)
    }

    pub fn addr(&self, n: usize) -> String {
        format!("10.{}.0.{n}", self.subnet)
    }

    /// A command run inside host `n`.
    pub fn command(&self, n: usize, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.host(n)]).arg(program);
        cmd
    }

    /// Wires this (the calling) namespace to the switch as `10.<subnet>.0.254`, so a test or
    /// benchmark process reaches every host directly. Undone on drop.
    pub fn attach_here(&self) -> anyhow::Result<String> {
        let (here, there) = (format!("{}r0", self.prefix), format!("{}sr", self.prefix));
        ip(&["link", "add", &here, "type", "veth", "peer", "name", &there, "netns", &self.switch()])?;
        ip(&["-n", &self.switch(), "link", "set", &there, "master", "br0"])?;
        ip(&["-n", &self.switch(), "link", "set", &there, "up"])?;
        let addr = format!("10.{}.0.254", self.subnet);
        ip(&["addr", "add", &format!("{addr}/24"), "dev", &here])?;
        ip(&["link", "set", &here, "up"])?;
        Ok(addr)
    }

    /// Gives host `n` a second interface on `other`'s switch, as `10.<other subnet>.0.200`. The
    /// host does not forward between them, so the two LANs stay apart except for what runs on
    /// that host (a bootstrap node with one leg in each).
    pub fn wire_into(&self, n: usize, other: &Lan) -> anyhow::Result<String> {
        let (inside, outside) = (format!("{}x{n}", self.prefix), format!("{}y{n}", other.prefix));
        let host = self.host(n);
        ip(&[
            "link",
            "add",
            &inside,
            "netns",
            &host,
            "type",
            "veth",
            "peer",
            "name",
            &outside,
            "netns",
            &other.switch(),
        ])?;
        ip(&["-n", &other.switch(), "link", "set", &outside, "master", "br0"])?;
        ip(&["-n", &other.switch(), "link", "set", &outside, "up"])?;
        let addr = format!("10.{}.0.200", other.subnet);
        ip(&["-n", &host, "addr", "add", &format!("{addr}/24"), "dev", &inside])?;
        ip(&["-n", &host, "link", "set", &inside, "up"])?;
        Ok(addr)
    }

    /// Gives host `n` one more address on its LAN interface, `10.<subnet>.0.<last>` (as when a
    /// machine gets a new lease).
    pub fn add_addr(&self, n: usize, last: u8) -> anyhow::Result<String> {
        let addr = format!("10.{}.0.{last}", self.subnet);
        ip(&["-n", &self.host(n), "addr", "add", &format!("{addr}/24"), "dev", &format!("{}h{n}", self.prefix)])?;
        Ok(addr)
    }

    /// Cuts (false) or restores (true) host `n`'s link to the switch.
    pub fn set_link(&self, n: usize, up: bool) -> anyhow::Result<()> {
        ip(&["-n", &self.host(n), "link", "set", &format!("{}h{n}", self.prefix), if up { "up" } else { "down" }])
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for n in 1..=self.hosts {
            // Processes still inside would keep the namespace's interfaces alive.
            let _ = Command::new("ip").args(["netns", "pids", &self.host(n)]).output().map(|out| {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
            let _ = ip(&["netns", "del", &self.host(n)]);
        }
        let _ = ip(&["netns", "del", &self.switch()]);
        // The calling namespace's end of `attach_here`, if any (usually gone with its peer).
        let _ = Command::new("ip").args(["link", "del", &format!("{}r0", self.prefix)]).stderr(Stdio::null()).status();
    }
}
