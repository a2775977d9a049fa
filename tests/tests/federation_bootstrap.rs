//! Scenario (network namespaces): two LANs with no route between them, as two towns on the
//! internet behind their own routers, and a bootstrap node with a leg in each (it does not
//! forward). Node A is on LAN 1, node D on LAN 2; neither can reach the other directly, and mDNS
//! does not cross. Both start with `--bootstrap` (each with the bootstrap's address on its own
//! LAN), hold a relay reservation there, and register at its rendezvous. Their admins link them
//! by peer id alone; the link, a cross-node group and messages both ways go through the
//! bootstrap's relay.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use veche_tests::TempDir;
use veche_tests::lan_node::{Host, Member};
use veche_tests::netns::Lan;

struct Bootstrap(Child);

impl Drop for Bootstrap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_bootstrap(lan: &Lan, n: usize, dir: &std::path::Path) -> anyhow::Result<(Bootstrap, String)> {
    let log = std::fs::File::create(dir.join("bootstrap.log"))?;
    let mut child = lan
        .command(n, &veche_tests::bootstrap_bin())
        .args(["--data-dir"])
        .arg(dir.join("bootstrap"))
        .env("VECHE_LOG", "info,libp2p_relay=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .context("starting veche-bootstrap")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut peer = None;
    for line in lines.by_ref() {
        let line = line?;
        if let Some(id) = line.strip_prefix("peer id: ") {
            peer = Some(id.trim().to_string());
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok((Bootstrap(child), peer.context("the bootstrap node printed no peer id")?))
}

fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while !check()? {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

#[test]
fn two_towns_meet_through_a_bootstrap_node() -> anyhow::Result<()> {
    veche_tests::require_netns!();
    let tmp = TempDir::new("federation-bootstrap");
    // LAN 1: node A (host 1) and the bootstrap (host 2). LAN 2: node D (host 1). The bootstrap's
    // host also sits on LAN 2 (10.82.0.200) without forwarding.
    let lan1 = Lan::new(81, 2).context("creating network namespaces")?;
    let lan2 = Lan::new(82, 1)?;
    let on_lan2 = lan1.wire_into(2, &lan2)?;
    let (_bootstrap, boot_id) = start_bootstrap(&lan1, 2, tmp.path())?;
    let via1 = format!("/ip4/{}/udp/7801/quic-v1/p2p/{boot_id}", lan1.addr(2));
    let via2 = format!("/ip4/{on_lan2}/udp/7801/quic-v1/p2p/{boot_id}");
    let dir_a = tmp.path().join("a");
    let dir_d = tmp.path().join("d");
    std::fs::create_dir_all(&dir_a)?;
    std::fs::create_dir_all(&dir_d)?;
    let a = Host::start(&lan1, 1, &dir_a, &["--bootstrap", &via1])?;
    let d = Host::start(&lan2, 1, &dir_d, &["--bootstrap", &via2])?;
    let anna = Member { lan: &lan1, n: 1, state: tmp.path().join("anna") };
    let dora = Member { lan: &lan2, n: 1, state: tmp.path().join("dora") };
    anna.run(&["register", "--name", "Anna", "--invite", a.admin_link.as_deref().context("admin link")?])?;
    dora.run(&["register", "--name", "Dora", "--invite", d.admin_link.as_deref().context("admin link")?])?;

    // No direct path: D's host cannot reach A's.
    let ping = lan2.command(1, std::path::Path::new("ping")).args(["-c", "1", "-W", "1", &lan1.addr(1)]).output()?;
    assert!(!ping.status.success(), "LAN 2 reaches LAN 1 directly; the test would prove nothing");

    // Both nodes hold a reservation at the bootstrap's relay: their shareable addresses say so.
    for (who, member) in [("A", &anna), ("D", &dora)] {
        wait_for(&format!("{who}'s relay reservation"), Duration::from_secs(30), || {
            let own = member.run(&["admin", "links"])?["own_addrs"].as_array().cloned().unwrap_or_default();
            Ok(own.iter().filter_map(|a| a.as_str()).any(|a| a.contains("/p2p-circuit/")))
        })?;
    }

    // The admins link by peer id only; the link comes up through the relay.
    let started = Instant::now();
    let made = anna.run(&["admin", "link", &d.peer_id])?;
    assert_eq!(made["state"], "waiting-for-them", "{made}");
    let made = dora.run(&["admin", "link", &a.peer_id])?;
    assert_eq!(made["state"], "linked", "{made}");
    eprintln!("linked through the bootstrap's relay in {:?}", started.elapsed());

    // A group on A; Dora joins with A's link through D; they write both ways.
    let chat = anna.run(&["group", "create", "Two towns"])?["chat"].as_str().context("chat")?.to_string();
    let invite = anna.run(&["invite", "create", &chat])?["link"].as_str().context("link")?.to_string();
    dora.run(&["join", &invite])?;
    anna.run(&["send", &chat, "hello from the first town"])?;
    dora.run(&["send", &chat, "hello from the second town"])?;
    let mut histories = Vec::new();
    for member in [&anna, &dora] {
        let mut texts = Vec::new();
        wait_for("both messages", Duration::from_secs(30), || {
            texts = member.texts(&chat)?;
            Ok(texts.len() >= 2)
        })?;
        histories.push(texts);
    }
    assert_eq!(histories[0], histories[1], "the same history on both nodes");
    let texts: Vec<&str> = histories[0].iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["hello from the first town", "hello from the second town"]);

    // The connection between the towns is relayed (there is no direct path to punch).
    for (who, dir) in [("A", &dir_a), ("D", &dir_d)] {
        let log = std::fs::read_to_string(dir.join("node1.log"))?;
        assert!(log.contains("p2p connected through a relay"), "{who} never connected through the relay");
    }
    let boot_log = std::fs::read_to_string(tmp.path().join("bootstrap.log"))?;
    assert!(boot_log.contains("relay reservation accepted"), "{boot_log}");
    assert!(boot_log.contains("relayed connection opened"), "{boot_log}");
    Ok(())
}
