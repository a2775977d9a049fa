//! Nodes and native clients inside network namespaces.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::netns::Lan;

/// A node on host `n`, restartable with the same data.
pub struct Host<'a> {
    lan: &'a Lan,
    pub n: usize,
    dir: std::path::PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    /// The admin link printed at first start.
    pub admin_link: Option<String>,
    pub peer_id: String,
}

impl<'a> Host<'a> {
    /// Starts `veche run` on host `n` (HTTP on 0.0.0.0:7800, data in `dir/node<n>`, log in
    /// `dir/node<n>.log`) with `args` added.
    pub fn start(lan: &'a Lan, n: usize, dir: &std::path::Path, args: &[&str]) -> anyhow::Result<Host<'a>> {
        let args = args.iter().map(|s| s.to_string()).collect();
        let mut host =
            Host { lan, n, dir: dir.to_path_buf(), args, child: None, admin_link: None, peer_id: String::new() };
        host.spawn()?;
        Ok(host)
    }

    /// Starts the node again (after `kill9`), with the same data.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("node{}.log", self.n)))?;
        let mut child = self
            .lan
            .command(self.n, &crate::veche_bin())
            .args(["run", "--data-dir"])
            .arg(self.dir.join(format!("node{}", self.n)))
            .args(["--http", "0.0.0.0:7800", "--name", &format!("Library {}", self.n), "--tls", "off"])
            .args(&self.args)
            .env("VECHE_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .context("ip netns exec veche run")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        self.child = Some(child);
        // A first start ends its banner with the admin link; a restart has none.
        let restart = !self.peer_id.is_empty();
        while let Some(Ok(line)) = lines.next() {
            if let Some(id) = line.strip_prefix("node id: ") {
                self.peer_id = id.trim().to_string();
            }
            if line.starts_with("admin link") {
                self.admin_link = lines.next().and_then(Result::ok).map(|l| l.trim().to_string());
                break;
            }
            if restart && line.starts_with("listening:") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.curl("/healthz").is_err() {
            anyhow::ensure!(Instant::now() < deadline, "node {} did not come up", self.n);
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn curl(&self, path: &str) -> anyhow::Result<String> {
        let out = self
            .lan
            .command(self.n, std::path::Path::new("curl"))
            .args(["-sf", &format!("http://127.0.0.1:7800{path}")])
            .output()?;
        anyhow::ensure!(out.status.success(), "curl {path} failed");
        Ok(String::from_utf8(out.stdout)?)
    }
}

impl Drop for Host<'_> {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A native client on host `n`, talking to its own node.
pub struct Member<'a> {
    pub lan: &'a Lan,
    pub n: usize,
    pub state: std::path::PathBuf,
}

impl Member<'_> {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.lan.command(self.n, &crate::veche_bin());
        cmd.args(["client", "--node", "http://127.0.0.1:7800", "--state"]).arg(&self.state).arg("--json").args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> anyhow::Result<Value> {
        let out = self.command(args).stdin(Stdio::null()).output()?;
        let mut lines = crate::parse_lines(&out.stdout)?;
        if !out.status.success() || lines.len() != 1 {
            bail!("client {} {args:?}: {lines:?} {}", self.n, String::from_utf8_lossy(&out.stderr));
        }
        Ok(lines.remove(0))
    }

    /// Sends `texts` one by one (`send --stdin`); returns the running client.
    pub fn spawn_send(&self, chat: &str, texts: Vec<String>) -> anyhow::Result<Child> {
        crate::spawn_lines(self.command(&["send", chat, "--stdin"]), texts)
    }

    /// The chat's texts in sequence order (this also resends anything left in the outbox).
    pub fn texts(&self, chat: &str) -> anyhow::Result<Vec<(u64, String)>> {
        let out = self.command(&["read", chat]).stdin(Stdio::null()).output()?;
        if !out.status.success() {
            bail!(
                "client {} read: {} {}",
                self.n,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(crate::parse_lines(&out.stdout)?
            .into_iter()
            .filter(|m| m["type"] == "text")
            .map(|m| (m["seq"].as_u64().unwrap_or(0), m["text"].as_str().unwrap_or("").to_string()))
            .collect())
    }
}
