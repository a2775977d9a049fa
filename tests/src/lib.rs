//! Helpers for the integration tests in `tests/tests/`: a real `veche` node process and native
//! clients (`veche client --json`), driven the way an operator or a script would.
//!
//! The `veche` binary must be built first (`cargo build -p veche-node`); the README's test
//! command does that. Its path is `$VECHE_BIN`, or `veche` beside the test executable's target dir.

use anyhow::{Context, bail};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Uses this `veche` binary instead of looking for one (the benchmark points at a release build).
pub fn set_bin(path: &Path) {
    let _ = BIN.set(path.to_path_buf());
}

/// The `veche` binary under test.
pub fn veche_bin() -> PathBuf {
    if let Some(path) = BIN.get() {
        return path.clone();
    }
    if let Ok(path) = std::env::var("VECHE_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test exe> -> target/<profile>/veche
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("veche")).expect("target dir");
    assert!(bin.exists(), "{} not found: run `cargo build -p veche-node` first (or set VECHE_BIN)", bin.display());
    bin
}

/// The `veche-bootstrap` binary: `$VECHE_BOOTSTRAP_BIN`, or beside `veche`.
pub fn bootstrap_bin() -> PathBuf {
    if let Ok(path) = std::env::var("VECHE_BOOTSTRAP_BIN") {
        return PathBuf::from(path);
    }
    let bin = veche_bin().with_file_name("veche-bootstrap");
    assert!(bin.exists(), "{} not found: run `cargo build -p veche-bootstrap` first", bin.display());
    bin
}

/// A fresh temporary directory, removed on drop unless `VECHE_KEEP_TMP` is set.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).expect("randomness");
        let dir = std::env::temp_dir().join(format!("veche-test-{name}-{}", hex::encode(random)));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("VECHE_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A running `veche run` process on loopback.
pub struct Node {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub port: u16,
    pub url: String,
    /// The admin link printed at first start (if any).
    pub admin_link: Option<String>,
    pub node_id: String,
    extra_args: Vec<String>,
}

impl Node {
    /// Starts a node with its data in `dir/node` and its logs in `dir/node.log`.
    pub fn start(dir: &Path, extra_args: &[&str]) -> anyhow::Result<Node> {
        let port = free_port();
        let mut node = Node {
            child: None,
            data_dir: dir.join("node"),
            log_path: dir.join("node.log"),
            port,
            url: format!("http://127.0.0.1:{port}"),
            admin_link: None,
            node_id: String::new(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        node.spawn()?;
        Ok(node)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path)?;
        // A free media port too, unless the test picks one.
        let media_port: &[&str] =
            if self.extra_args.iter().any(|a| a == "--media-port") { &[] } else { &["--media-port", "0"] };
        let mut child = Command::new(veche_bin())
            .arg("run")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--http")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--name")
            .arg("Test node")
            // Protocol tests on loopback: plain HTTP (tests/tests/tls.rs covers HTTPS).
            .args(["--tls", "off"])
            // Free p2p ports, so tests can run side by side.
            .arg("--p2p-port")
            .arg("0")
            .args(media_port)
            .args(&self.extra_args)
            .env("VECHE_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting veche run")?;
        let stdout = child.stdout.take().context("node stdout")?;
        self.child = Some(child);
        // Read the banner until the node listens (and note the admin link).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut next_is_link = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if next_is_link {
                    let _ = tx.send(("admin", line.trim().to_string()));
                    next_is_link = false;
                } else if line.starts_with("admin link") {
                    next_is_link = true;
                } else if let Some(id) = line.strip_prefix("node id: ") {
                    let _ = tx.send(("id", id.trim().to_string()));
                } else if line.starts_with("listening:") {
                    let _ = tx.send(("listening", String::new()));
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut listening = false;
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(("admin", link)) => {
                    self.admin_link = Some(link);
                    if listening {
                        break;
                    }
                }
                Ok(("id", id)) => self.node_id = id,
                Ok(("listening", _)) => listening = true,
                Ok(_) => {}
                Err(_) if listening => break,
                Err(_) => {}
            }
        }
        if !listening {
            bail!("node did not start; log:\n{}", std::fs::read_to_string(&self.log_path).unwrap_or_default());
        }
        self.wait_healthy()
    }

    fn wait_healthy(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.http_get("/healthz").is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("node not healthy")
    }

    /// A plain HTTP GET on the node; returns the body.
    pub fn http_get(&self, path: &str) -> anyhow::Result<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response.split_once("\r\n\r\n").context("no HTTP body")?;
        if !head.starts_with("HTTP/1.1 200") {
            bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
        }
        Ok(body.to_string())
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit; returns the exit status success.
    pub fn terminate(&mut self) -> anyhow::Result<bool> {
        let Some(mut child) = self.child.take() else {
            return Ok(true);
        };
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status()?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                return Ok(status.success());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        bail!("node did not stop within 15 s of SIGTERM")
    }

    /// Starts the node again on the same port and data dir.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        self.spawn()
    }

    /// Process id of the running node.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A native client with its own state dir.
pub struct Client {
    pub state: PathBuf,
    pub node_url: String,
}

/// Result of a client command: its JSON lines, or its error JSON.
impl Client {
    pub fn new(dir: &Path, name: &str, node_url: &str) -> Client {
        Client { state: dir.join(format!("client-{name}")), node_url: node_url.to_string() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(veche_bin());
        cmd.arg("client").arg("--node").arg(&self.node_url).arg("--state").arg(&self.state).arg("--json").args(args);
        cmd
    }

    /// Runs a command, expecting success; returns its JSON output lines.
    pub fn lines(&self, args: &[&str]) -> anyhow::Result<Vec<Value>> {
        let output = self.command(args).stdin(Stdio::null()).output()?;
        let lines = parse_lines(&output.stdout)?;
        if !output.status.success() {
            bail!("veche client {args:?} failed: {lines:?} {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(lines)
    }

    /// Runs a command, expecting success; returns its one JSON object.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut lines = self.lines(args)?;
        if lines.len() != 1 {
            bail!("expected one JSON line from {args:?}, got {lines:?}");
        }
        Ok(lines.remove(0))
    }

    /// Runs a command expected to fail; returns its error JSON (`{"error", "code"}`).
    pub fn fail(&self, args: &[&str]) -> anyhow::Result<Value> {
        let output = self.command(args).stdin(Stdio::null()).output()?;
        if output.status.success() {
            bail!(
                "veche client {args:?} succeeded but should have failed: {}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        let mut lines = parse_lines(&output.stdout)?;
        lines.pop().context("no error JSON")
    }

    /// Starts `send CHAT --stdin` feeding `texts`; returns the child (stdout: one JSON line per stored message).
    pub fn spawn_send(&self, chat: &str, texts: Vec<String>) -> anyhow::Result<Child> {
        spawn_lines(self.command(&["send", chat, "--stdin"]), texts)
    }

    pub fn account(&self) -> anyhow::Result<String> {
        Ok(self.run(&["whoami"])?["account"].as_str().context("account")?.to_string())
    }

    /// The texts of a chat in sequence order, with their seq and sender name.
    pub fn texts(&self, chat: &str) -> anyhow::Result<Vec<(u64, String, String)>> {
        Ok(self
            .lines(&["read", chat])?
            .into_iter()
            .filter(|m| m["type"] == "text")
            .map(|m| {
                (
                    m["seq"].as_u64().unwrap_or(0),
                    m["sender_name"].as_str().unwrap_or("").to_string(),
                    m["text"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect())
    }
}

/// Polls `check` every 100 ms until it holds; an error naming `what` after `within`.
pub fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while !check()? {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Starts `command` and feeds it `lines` on stdin (one per line) from a thread; its stdout and
/// stderr are piped.
pub fn spawn_lines(mut command: Command, lines: Vec<String>) -> anyhow::Result<Child> {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    std::thread::spawn(move || {
        for line in lines {
            if writeln!(stdin, "{line}").is_err() {
                break;
            }
        }
    });
    Ok(child)
}

/// Parses JSON lines.
pub fn parse_lines(bytes: &[u8]) -> anyhow::Result<Vec<Value>> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
        .collect()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Whether any file under `dir` contains `needle` (raw bytes).
pub fn dir_contains(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    files_under(dir)
        .into_iter()
        .find(|path| std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle)))
}

/// Asserts two members' views of a chat are identical, reporting only the first difference.
pub fn assert_same_history(a: &[(u64, String, String)], b: &[(u64, String, String)], what: &str) {
    if let Some(i) = (0..a.len().min(b.len())).find(|&i| a[i] != b[i]) {
        panic!("{what}: first difference at index {i}: {:?} vs {:?}", a[i], b[i]);
    }
    assert_eq!(a.len(), b.len(), "{what}: different lengths");
}

pub mod call;
pub mod https;
pub mod lan_node;
pub mod load;
pub mod netns;
pub mod raw;
pub mod rogue;
pub mod signal;
pub mod site;
