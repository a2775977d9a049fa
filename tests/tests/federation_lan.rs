//! Scenario (three hosts in network namespaces on one bridge, no configuration but a shared
//! community secret): the nodes find each other by mDNS and link by themselves; a group created
//! on node 1 spans all three, with a native client on each node, joined by node 1's invite link
//! through its own node. Then, with traffic from every node:
//! - steady traffic from all three at once;
//! - node 2 is cut off the LAN for 30 s while the others write (and node 2's member writes too);
//! - node 3 (a member node) is killed with SIGKILL mid-traffic and restarted;
//! - node 1 (the home node) is killed; a member writes meanwhile; node 1 comes back.
//!
//! At the end every member holds the same history: every message exactly once, in the same
//! order, each sender's messages in the order they were written, more than 1,000 in all.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use veche_tests::TempDir;
use veche_tests::lan_node::{Host, Member};
use veche_tests::netns::Lan;

const SECRET: &str = "elm-street-libraries-p6vkx-w3nqz-b8try-h2mce-u9fjd-s4gxa";

fn texts(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix} {i:04}")).collect()
}

/// Waits for every member to hold at least `count` texts; returns their histories.
fn converge(members: &[Member], chat: &str, count: usize, within: Duration) -> anyhow::Result<Vec<Vec<(u64, String)>>> {
    let deadline = Instant::now() + within;
    loop {
        // A member whose node is still reconnecting fails to read; it tries again.
        let all: Vec<anyhow::Result<Vec<(u64, String)>>> = members.iter().map(|m| m.texts(chat)).collect();
        if all.iter().all(|h| h.as_ref().is_ok_and(|h| h.len() >= count)) {
            return all.into_iter().collect();
        }
        if Instant::now() > deadline {
            let state: Vec<String> = all
                .iter()
                .map(|h| h.as_ref().map(|h| h.len().to_string()).unwrap_or_else(|e| format!("{e:#}")))
                .collect();
            bail!("histories did not converge to {count}: {state:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn wait_all(children: Vec<Child>) -> anyhow::Result<()> {
    for child in children {
        let out = child.wait_with_output()?;
        anyhow::ensure!(out.status.success(), "sender failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

#[test]
fn a_town_of_three_nodes_loses_nothing() -> anyhow::Result<()> {
    veche_tests::require_netns!();
    let tmp = TempDir::new("federation-lan");
    let lan = Lan::new(78, 3).context("creating network namespaces")?;
    let mut hosts: Vec<Host> = (1..=3)
        .map(|n| Host::start(&lan, n, tmp.path(), &["--community-secret", SECRET]))
        .collect::<anyhow::Result<_>>()?;
    let members: Vec<Member> =
        (1..=3).map(|n| Member { lan: &lan, n, state: tmp.path().join(format!("member{n}")) }).collect();
    for (host, member) in hosts.iter().zip(&members) {
        member.run(&[
            "register",
            "--name",
            &format!("Reader {}", host.n),
            "--invite",
            host.admin_link.as_deref().context("admin link")?,
        ])?;
    }
    // The community secret links them without their admins.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = members.iter().map(|m| {
            let links = m
                .run(&["admin", "links"])
                .map(|v| v["links"].as_array().cloned().unwrap_or_default())
                .unwrap_or_default();
            links.iter().filter(|l| l["state"] == "linked").count()
        });
        if up.into_iter().all(|n| n == 2) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the three nodes did not link");
        std::thread::sleep(Duration::from_millis(200));
    }

    let chat = members[0].run(&["group", "create", "Town"])?["chat"].as_str().context("chat")?.to_string();
    let invite = members[0].run(&["invite", "create", &chat])?["link"].as_str().context("link")?.to_string();
    members[1].run(&["join", &invite])?;
    members[2].run(&["join", &invite])?;
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    let mut sent =
        |who: &str, list: &[String]| expected.entry(who.to_string()).or_default().extend(list.iter().cloned());

    // Steady traffic from all three nodes at once.
    let started = Instant::now();
    let mut senders = Vec::new();
    for (i, member) in members.iter().enumerate() {
        let batch = texts(&format!("steady n{}", i + 1), 250);
        sent(&format!("n{}", i + 1), &batch);
        senders.push(member.spawn_send(&chat, batch)?);
    }
    wait_all(senders)?;
    eprintln!("750 messages from three nodes stored in {:?}", started.elapsed());
    converge(&members, &chat, 750, Duration::from_secs(60))?;

    // Node 2 is cut off for 30 s while nodes 1 and 3 keep writing; its member writes too.
    let mut senders = Vec::new();
    for n in [1usize, 3] {
        let batch = texts(&format!("partition n{n}"), 100);
        sent(&format!("n{n}"), &batch);
        senders.push(members[n - 1].spawn_send(&chat, batch)?);
    }
    lan.set_link(2, false)?;
    let cut = Instant::now();
    let offline = texts("offline n2", 1);
    sent("n2", &offline);
    let attempt = members[1].command(&["send", &chat, &offline[0]]).stdin(Stdio::null()).output()?;
    let answer = String::from_utf8_lossy(&attempt.stdout);
    anyhow::ensure!(!attempt.status.success() && answer.contains("Unavailable"), "sent while cut off? {answer}");
    wait_all(senders)?;
    std::thread::sleep(Duration::from_secs(30).saturating_sub(cut.elapsed()));
    lan.set_link(2, true)?;
    let healed = Instant::now();
    // Reading resends what waited in the member's outbox.
    converge(&members, &chat, 951, Duration::from_secs(90))?;
    eprintln!("after a 30 s partition, all caught up {:?} after the link came back", healed.elapsed());

    // Node 3 is killed mid-traffic and restarted.
    let batch = texts("crash n1", 100);
    sent("n1", &batch);
    let sender = members[0].spawn_send(&chat, batch)?;
    std::thread::sleep(Duration::from_millis(300));
    hosts[2].kill9();
    std::thread::sleep(Duration::from_secs(2));
    hosts[2].spawn()?;
    wait_all(vec![sender])?;
    converge(&members, &chat, 1051, Duration::from_secs(60))?;

    // The home node goes down: a member writes meanwhile; it arrives once the home is back.
    hosts[0].kill9();
    let waiting = texts("home down n3", 1);
    sent("n3", &waiting);
    let attempt = members[2].command(&["send", &chat, &waiting[0]]).stdin(Stdio::null()).output()?;
    anyhow::ensure!(!attempt.status.success(), "stored while the home node was down?");
    hosts[0].spawn()?;
    let histories = converge(&members, &chat, 1052, Duration::from_secs(60))?;

    // Same history everywhere: each message exactly once, one order, senders' order kept.
    for (i, history) in histories.iter().enumerate() {
        assert_eq!(history, &histories[0], "member {} sees another history", i + 1);
    }
    let history = &histories[0];
    assert_eq!(history.len(), 1052, "every message exactly once");
    let seqs: Vec<u64> = history.iter().map(|(s, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in sequence order");
    for (who, list) in &expected {
        let got: Vec<&String> = history
            .iter()
            .map(|(_, t)| t)
            .filter(|t| t.ends_with(&format!(" {who}")) || t.contains(&format!(" {who} ")))
            .collect();
        let want: Vec<&String> = list.iter().collect();
        assert_eq!(got, want, "{who}'s messages, in the order written");
    }
    Ok(())
}
