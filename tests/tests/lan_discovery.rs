//! Scenario (network namespaces on one bridge, no configuration): three nodes announce
//! themselves with mDNS and find each other within 2 s; each one's admin sees the other two as
//! nearby, verified by a libp2p connection to the announced peer id; `/healthz` reports the
//! node's peer id and p2p listen addresses. Links: two nodes sharing a community secret link by
//! themselves, the third does not; admins link by approving a nearby node on both sides, or by
//! address; unlinking is seen on both sides. A node taken off the LAN is dropped from the list
//! when it says goodbye.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use veche_tests::netns::Lan;
use veche_tests::{TempDir, veche_bin};

struct LanNode {
    child: Child,
    admin_link: String,
    peer_id: String,
}

impl Drop for LanNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(lan: &Lan, n: usize, dir: &std::path::Path, extra: &[&str]) -> anyhow::Result<LanNode> {
    let log = std::fs::File::create(dir.join(format!("node{n}.log")))?;
    let mut child = lan
        .command(n, &veche_bin())
        .args(["run", "--data-dir"])
        .arg(dir.join(format!("node{n}")))
        .args(["--http", &format!("{}:7800", lan.addr(n)), "--name", &format!("Library {n}"), "--tls", "off"])
        .args(extra)
        .env("VECHE_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .context("ip netns exec veche run")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut admin_link, mut peer_id) = (None, None);
    while let Some(Ok(line)) = lines.next() {
        if let Some(id) = line.strip_prefix("node id: ") {
            peer_id = Some(id.trim().to_string());
        }
        if line.starts_with("admin link") {
            admin_link = lines.next().and_then(Result::ok).map(|l| l.trim().to_string());
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok(LanNode {
        child,
        admin_link: admin_link.context("no admin link printed")?,
        peer_id: peer_id.context("no node id printed")?,
    })
}

/// `veche client` inside host `n`, with state `name`; Err(output) if it fails.
fn run_client(lan: &Lan, n: usize, dir: &std::path::Path, name: &str, args: &[&str]) -> Result<Value, Value> {
    let out = lan
        .command(n, &veche_bin())
        .args(["client", "--node", &format!("http://{}:7800", lan.addr(n)), "--state"])
        .arg(dir.join(format!("{name}{n}")))
        .arg("--json")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Value::String(e.to_string()))?;
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or(Value::String(String::from_utf8_lossy(&out.stderr).into()));
    if out.status.success() { Ok(json) } else { Err(json) }
}

/// The admin's client on host `n`.
fn client(lan: &Lan, n: usize, dir: &std::path::Path, args: &[&str]) -> anyhow::Result<Value> {
    run_client(lan, n, dir, "admin", args).map_err(|e| anyhow::anyhow!("client {args:?}: {e}"))
}

/// Seconds since midnight (UTC, from the log's timestamps) of every log line containing `what`.
fn log_time(log: &str, what: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| {
            let time = l.split_whitespace().next()?.split_once('T')?.1.trim_end_matches('Z');
            let mut parts = time.split(':');
            let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
            Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
        })
        .collect()
}

fn metrics(lan: &Lan, n: usize) -> anyhow::Result<String> {
    let out = lan
        .command(n, std::path::Path::new("curl"))
        .args(["-sf", &format!("http://{}:7800/metrics", lan.addr(n))])
        .output()?;
    Ok(String::from_utf8(out.stdout)?)
}

fn healthz(lan: &Lan, n: usize) -> anyhow::Result<Value> {
    let out = lan
        .command(n, std::path::Path::new("curl"))
        .args(["-sf", &format!("http://{}:7800/healthz", lan.addr(n))])
        .output()?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn three_nodes_find_each_other_on_a_lan() -> anyhow::Result<()> {
    veche_tests::require_netns!();
    let tmp = TempDir::new("lan");
    let lan = Lan::new(77, 3).context("creating network namespaces (needs root and iproute2)")?;
    let started = Instant::now();
    // Nodes 1 and 3 share a community secret; node 2 has none.
    let extra = |n: usize| {
        if n == 2 {
            vec![]
        } else {
            vec!["--community-secret", "pine-street-readers-c3nwq-t8zpk-m2vhx-y7ebr-g5uja-d9sfq"]
        }
    };
    let nodes: Vec<LanNode> = (1..=3).map(|n| start(&lan, n, tmp.path(), &extra(n))).collect::<anyhow::Result<_>>()?;
    let all_listening = started.elapsed();
    for n in 1..=3 {
        client(&lan, n, tmp.path(), &["register", "--name", "Admin", "--invite", &nodes[n - 1].admin_link])?;
    }

    // Each admin sees the two other nodes, by peer id and name, verified by a connection.
    let mut found_at = [None; 3];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = Value::Null;
    while found_at.iter().any(Option::is_none) && Instant::now() < deadline {
        for n in 1..=3 {
            if found_at[n - 1].is_some() {
                continue;
            }
            last = client(&lan, n, tmp.path(), &["admin", "nearby"])?;
            let seen = last["nearby"].as_array().cloned().unwrap_or_default();
            let others: Vec<&LanNode> = nodes.iter().enumerate().filter(|(i, _)| *i != n - 1).map(|(_, x)| x).collect();
            let all = others.iter().all(|o| {
                seen.iter()
                    .any(|s| s["peer_id"] == o.peer_id.as_str() && s["verified"] == true && s["connected"] == true)
            });
            if all {
                found_at[n - 1] = Some(started.elapsed());
                assert_eq!(seen.len(), 2, "only the other two nodes: {seen:?}");
                for s in &seen {
                    assert!(s["name"].as_str().unwrap().starts_with("Library "), "{s}");
                    assert_eq!(s["http_port"], 7800);
                    assert!(s["addrs"].as_array().unwrap().iter().any(|a| a.as_str().unwrap().contains("/quic-v1")));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(found_at.iter().all(Option::is_some), "not all nodes found each other: {found_at:?}; last: {last}");
    let slowest = found_at.iter().flatten().max().copied().unwrap_or_default();
    eprintln!(
        "all listening after {all_listening:?}; all found and verified after {slowest:?} (incl. 3 registrations)"
    );
    // Discovery itself, from the nodes' own logs: from the moment the last node started until
    // each node has found both others, within 2 s.
    let logs: Vec<String> =
        (1..=3).map(|n| std::fs::read_to_string(tmp.path().join(format!("node{n}.log"))).unwrap_or_default()).collect();
    let last_start = logs.iter().filter_map(|l| log_time(l, "node started").first().copied()).fold(0.0, f64::max);
    for (n, log) in logs.iter().enumerate() {
        let found = log_time(log, "nearby node found");
        assert!(found.len() >= 2, "node {} logged {} finds", n + 1, found.len());
        let discovery = found[1] - last_start;
        eprintln!("node {}: both others found {:.0} ms after the last node started", n + 1, discovery * 1000.0);
        assert!(discovery < 2.0, "node {} took {discovery:.3} s to find the others", n + 1);
    }

    // /healthz carries the peer id and the p2p listen addresses.
    let health = healthz(&lan, 1)?;
    assert_eq!(health["peer_id"], nodes[0].peer_id.as_str());
    let addrs: Vec<String> =
        health["listen_addrs"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    assert!(addrs.iter().any(|a| a.contains("/udp/7801/quic-v1")), "{addrs:?}");
    assert!(addrs.iter().any(|a| a.contains("/tcp/7801")), "{addrs:?}");

    // /metrics counts them too.
    let metrics = metrics(&lan, 1)?;
    assert!(metrics.contains("veche_nearby_nodes 2"), "{metrics}");
    assert!(metrics.contains("veche_p2p_connected_peers 2"), "{metrics}");

    // Only node admins may list nearby nodes.
    let group = client(&lan, 1, tmp.path(), &["group", "create", "Readers"])?["chat"].as_str().unwrap().to_string();
    let link = client(&lan, 1, tmp.path(), &["invite", "create", &group])?["link"].as_str().unwrap().to_string();
    run_client(&lan, 1, tmp.path(), "member", &["register", "--name", "Reader", "--invite", &link])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let refused =
        run_client(&lan, 1, tmp.path(), "member", &["admin", "nearby"]).expect_err("a member was shown nodes");
    assert_eq!(refused["code"], "Forbidden", "{refused}");

    links(&lan, tmp.path(), &nodes)?;

    // Node 3 shuts down gracefully: its goodbye takes it off the others' lists.
    let mut nodes = nodes;
    let mut third = nodes.pop().unwrap();
    std::process::Command::new("kill").args(["-TERM", &third.child.id().to_string()]).status()?;
    let stopped = third.child.wait()?;
    assert!(stopped.success(), "node 3 exit: {stopped}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = client(&lan, 1, tmp.path(), &["admin", "nearby"])?["nearby"].as_array().cloned().unwrap_or_default();
        if seen.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "node 3 still listed after its goodbye: {seen:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Each node's links: peer id -> state.
fn link_states(lan: &Lan, dir: &std::path::Path, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let list = client(lan, n, dir, &["admin", "links"])?["links"].as_array().cloned().unwrap_or_default();
    let mut out: Vec<(String, String)> = list
        .iter()
        .map(|l| (l["peer_id"].as_str().unwrap().to_string(), l["state"].as_str().unwrap().to_string()))
        .collect();
    out.sort();
    Ok(out)
}

fn wait_for(what: &str, check: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    veche_tests::wait_for(what, Duration::from_secs(10), check)
}

/// A node process that the test stops and starts again (same data dir and address).
struct Restartable<'a> {
    lan: &'a Lan,
    dir: std::path::PathBuf,
    n: usize,
    child: Option<Child>,
}

fn restartable<'a>(lan: &'a Lan, dir: &std::path::Path, n: usize) -> anyhow::Result<Restartable<'a>> {
    Ok(Restartable { lan, dir: dir.to_path_buf(), n, child: None })
}

impl Restartable<'_> {
    /// Kills whatever runs on host `n` (the node started by the test).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::process::Command::new("ip").args(["netns", "pids", &self.lan.host(self.n)]).output().map(|out| {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = std::process::Command::new("kill").args(["-9", pid]).status();
            }
        });
        std::thread::sleep(Duration::from_millis(200));
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("node{}.log", self.n)))?;
        let child = self
            .lan
            .command(self.n, &veche_bin())
            .args(["run", "--data-dir"])
            .arg(self.dir.join(format!("node{}", self.n)))
            .args(["--http", &format!("{}:7800", self.lan.addr(self.n)), "--name", &format!("Library {}", self.n)])
            .args(["--tls", "off"])
            .env("VECHE_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        self.child = Some(child);
        wait_for("the restarted node", || Ok(healthz(self.lan, self.n).is_ok()))
    }
}

impl Drop for Restartable<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn links(lan: &Lan, dir: &std::path::Path, nodes: &[LanNode]) -> anyhow::Result<()> {
    let peer = |n: usize| nodes[n - 1].peer_id.clone();
    let state_of = |n: usize, other: usize| -> anyhow::Result<Option<String>> {
        Ok(link_states(lan, dir, n)?.into_iter().find(|(p, _)| *p == peer(other)).map(|(_, s)| s))
    };
    // 1 and 3 share a secret: linked on both sides without anyone approving.
    let t = Instant::now();
    wait_for("the community link 1-3", || {
        Ok(state_of(1, 3)?.as_deref() == Some("linked") && state_of(3, 1)?.as_deref() == Some("linked"))
    })?;
    eprintln!("community link 1-3 up {:?} after the check started", t.elapsed());
    let m = metrics(lan, 1)?;
    assert!(m.contains("veche_links_up 1"), "{m}");
    // 2 has no secret: 3's automatic request was refused and left nothing behind.
    assert_eq!(state_of(2, 3)?, None);
    assert_eq!(state_of(3, 2)?, None);

    // Admin of 1 approves nearby node 2; 2's admin sees the request and approves too.
    let made = client(lan, 1, dir, &["admin", "link", &peer(2)])?;
    assert_eq!(made["state"], "waiting-for-them", "{made}");
    assert_eq!(made["name"], "Library 2");
    assert_eq!(state_of(2, 1)?.as_deref(), Some("waiting-for-us"));
    let made = client(lan, 2, dir, &["admin", "link", &peer(1)])?;
    assert_eq!(made["state"], "linked", "{made}");
    assert_eq!(made["connected"], true);
    assert_eq!(state_of(1, 2)?.as_deref(), Some("linked"));

    // Linking by address (what an admin pastes from another admin).
    // Node 3's admin reads its shareable addresses and hands one to node 2's admin.
    let own = client(lan, 3, dir, &["admin", "links"])?["own_addrs"].as_array().cloned().unwrap_or_default();
    let address = format!("/ip4/{}/udp/7801/quic-v1/p2p/{}", lan.addr(3), peer(3));
    assert!(own.iter().any(|a| a == address.as_str()), "node 3's addresses: {own:?}");
    assert_eq!(client(lan, 2, dir, &["admin", "link", &address])?["state"], "waiting-for-them");
    assert_eq!(state_of(3, 2)?.as_deref(), Some("waiting-for-us"));

    // Node 1 unlinks 2: gone from 1, and 2 sees that 1 no longer approves.
    client(lan, 1, dir, &["admin", "unlink", &peer(2)])?;
    assert_eq!(state_of(1, 2)?, None);
    assert_eq!(state_of(2, 1)?.as_deref(), Some("waiting-for-them"));
    // Approvals meet even when given while the other node is down: 2 asked 3 (by address);
    // 2 goes down; 3's admin approves; when 2 is back, both show the link up.
    let mut second = restartable(lan, dir, 2)?;
    second.kill();
    client(lan, 3, dir, &["admin", "link", &peer(2)])?;
    second.start()?;
    wait_for("the link 2-3 after node 2 came back", || {
        Ok(state_of(2, 3)?.as_deref() == Some("linked") && state_of(3, 2)?.as_deref() == Some("linked"))
    })?;

    // Bad targets get clear errors.
    let refused = run_client(lan, 1, dir, "admin", &["admin", "link", "not-a-peer"]).expect_err("bad target accepted");
    assert_eq!(refused["code"], "BadRequest", "{refused}");
    Ok(())
}
