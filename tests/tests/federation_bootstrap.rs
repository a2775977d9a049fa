//! Scenario (network namespaces): two LANs with no route between them, as two towns on the
//! internet behind their own routers, and a bootstrap node with a leg in each (it does not
//! forward). Nodes A and B are on LAN 1 (linked by a community secret), node D on LAN 2; D cannot
//! reach A or B directly, and mDNS does not cross. All start with `--bootstrap` (each with the
//! bootstrap's address on its own LAN), hold a relay reservation there, and register at its
//! rendezvous. D's admin and A's and B's admins link by node id alone; a group of A with members
//! on A, B and D: the links, the joins and the messages between the towns go through the
//! bootstrap's relay.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use veche_tests::lan_node::{Host, Member};
use veche_tests::netns::Lan;
use veche_tests::{TempDir, wait_for};

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

#[test]
fn two_towns_meet_through_a_bootstrap_node() -> anyhow::Result<()> {
    veche_tests::require_netns!();
    let tmp = TempDir::new("federation-bootstrap");
    // LAN 1: node A (host 1) and the bootstrap (host 2). LAN 2: node D (host 1). The bootstrap's
    // host also sits on LAN 2 (10.82.0.200) without forwarding.
    let lan1 = Lan::new(81, 3).context("creating network namespaces")?;
    let lan2 = Lan::new(82, 1)?;
    let on_lan2 = lan1.wire_into(3, &lan2)?;
    let (_bootstrap, boot_id) = start_bootstrap(&lan1, 3, tmp.path())?;
    let via1 = format!("/ip4/{}/udp/7801/quic-v1/p2p/{boot_id}", lan1.addr(3));
    let via2 = format!("/ip4/{on_lan2}/udp/7801/quic-v1/p2p/{boot_id}");
    let dirs: Vec<std::path::PathBuf> = ["a", "b", "d"].iter().map(|n| tmp.path().join(n)).collect();
    for dir in &dirs {
        std::fs::create_dir_all(dir)?;
    }
    let secret = ["--community-secret", "first-town-k7qm2-x9vtr-h4pzc-w8bn3-e6fya-u5jdg-r2mxp"];
    let a = Host::start(&lan1, 1, &dirs[0], &["--bootstrap", &via1, secret[0], secret[1]])?;
    let b = Host::start(&lan1, 2, &dirs[1], &["--bootstrap", &via1, secret[0], secret[1]])?;
    let d = Host::start(&lan2, 1, &dirs[2], &["--bootstrap", &via2])?;
    let anna = Member { lan: &lan1, n: 1, state: tmp.path().join("anna") };
    let ben = Member { lan: &lan1, n: 2, state: tmp.path().join("ben") };
    let dora = Member { lan: &lan2, n: 1, state: tmp.path().join("dora") };
    anna.run(&["register", "--name", "Anna", "--invite", a.admin_link.as_deref().context("admin link")?])?;
    ben.run(&["register", "--name", "Ben", "--invite", b.admin_link.as_deref().context("admin link")?])?;
    dora.run(&["register", "--name", "Dora", "--invite", d.admin_link.as_deref().context("admin link")?])?;

    // No direct path: D's host cannot reach A's.
    let ping = lan2.command(1, std::path::Path::new("ping")).args(["-c", "1", "-W", "1", &lan1.addr(1)]).output()?;
    assert!(!ping.status.success(), "LAN 2 reaches LAN 1 directly; the test would prove nothing");

    // Every node holds a reservation at the bootstrap's relay: their shareable addresses say so.
    for (who, member) in [("A", &anna), ("B", &ben), ("D", &dora)] {
        wait_for(&format!("{who}'s relay reservation"), Duration::from_secs(30), || {
            let own = member.run(&["admin", "links"])?["own_addrs"].as_array().cloned().unwrap_or_default();
            Ok(own.iter().filter_map(|a| a.as_str()).any(|a| a.contains("/p2p-circuit/")))
        })?;
    }

    // The admins link D with A and B by node id only; the links come up through the relay.
    let started = Instant::now();
    for (admin, host) in [(&anna, &a), (&ben, &b)] {
        let made = admin.run(&["admin", "link", &d.peer_id])?;
        assert_eq!(made["state"], "waiting-for-them", "{made}");
        let made = dora.run(&["admin", "link", &host.peer_id])?;
        assert_eq!(made["state"], "linked", "{made}");
    }
    eprintln!("D linked with A and B through the bootstrap's relay in {:?}", started.elapsed());
    // A and B linked by themselves on their LAN.
    wait_for("the LAN link A-B", Duration::from_secs(20), || {
        let links = anna.run(&["admin", "links"])?["links"].as_array().cloned().unwrap_or_default();
        Ok(links.iter().any(|l| l["peer_id"] == b.peer_id.as_str() && l["state"] == "linked"))
    })?;

    // A group on A; Ben (B) and Dora (D) join with A's link through their own nodes; all write.
    let chat = anna.run(&["group", "create", "Two towns"])?["chat"].as_str().context("chat")?.to_string();
    let invite = anna.run(&["invite", "create", &chat])?["link"].as_str().context("link")?.to_string();
    ben.run(&["join", &invite])?;
    dora.run(&["join", &invite])?;
    anna.run(&["send", &chat, "hello from the first town"])?;
    dora.run(&["send", &chat, "hello from the second town"])?;
    ben.run(&["send", &chat, "the first town again"])?;
    let mut histories = Vec::new();
    for member in [&anna, &ben, &dora] {
        let mut texts = Vec::new();
        wait_for("all three messages", Duration::from_secs(30), || {
            texts = member.texts(&chat)?;
            Ok(texts.len() >= 3)
        })?;
        histories.push(texts);
    }
    assert_eq!(histories[0], histories[1], "the same history on A and B");
    assert_eq!(histories[0], histories[2], "the same history on A and D");
    let texts: Vec<&str> = histories[0].iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["hello from the first town", "hello from the second town", "the first town again"]);

    // A burst larger than one relayed page (40 messages of 7,000 characters, about 300 KB of
    // ciphertext; pages over a relay carry 256 KiB) reaches D whole and in order.
    let long: Vec<String> = (0..40).map(|i| format!("{i:02} {}", "x".repeat(7000))).collect();
    let out = anna.spawn_send(&chat, long.clone())?.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "sending the burst: {}", String::from_utf8_lossy(&out.stderr));
    let mut got = Vec::new();
    wait_for("the burst at D", Duration::from_secs(60), || {
        got = dora.texts(&chat)?;
        Ok(got.len() >= 43)
    })?;
    let burst: Vec<&str> = got[3..].iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(burst, long.iter().map(String::as_str).collect::<Vec<_>>(), "the burst, whole and in order");

    // The connection between the towns is relayed (there is no direct path to punch).
    for (who, dir) in [("A", &dirs[0]), ("D", &dirs[2])] {
        let log = std::fs::read_to_string(dir.join("node1.log"))?;
        assert!(log.contains("p2p connected through a relay"), "{who} never connected through the relay");
    }
    let boot_log = std::fs::read_to_string(tmp.path().join("bootstrap.log"))?;
    assert!(boot_log.contains("relay reservation accepted"), "{boot_log}");
    assert!(boot_log.contains("relayed connection opened"), "{boot_log}");
    Ok(())
}
