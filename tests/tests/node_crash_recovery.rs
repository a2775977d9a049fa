//! Scenario: two members send at once; the node is killed with SIGKILL mid-traffic and restarted.
//! Every message the node acknowledged before the crash is still there, the members finish
//! sending, and every message is delivered exactly once, in one order, to both.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use veche_tests::{Client, Node, TempDir, assert_same_history};

const PER_SENDER: usize = 300;

fn texts(name: &str) -> Vec<String> {
    (0..PER_SENDER).map(|i| format!("{name} message {i}")).collect()
}

#[test]
fn kill_nine_loses_nothing_acknowledged_and_duplicates_nothing() -> anyhow::Result<()> {
    let tmp = TempDir::new("crash");
    let mut node = Node::start(tmp.path(), &[])?;
    let alice = Client::new(tmp.path(), "alice", &node.url);
    let bob = Client::new(tmp.path(), "bob", &node.url);
    alice.run(&["register", "--name", "Alice", "--invite", node.admin_link.as_deref().unwrap()])?;
    let group = alice.run(&["group", "create", "Crash test"])?["chat"].as_str().unwrap().to_string();
    let link = alice.run(&["invite", "create", &group])?["link"].as_str().unwrap().to_string();
    bob.run(&["register", "--name", "Bob", "--invite", &link])?;
    bob.run(&["join", &link])?;

    // Both send; each stored message is printed (acknowledged) as it happens.
    let (tx, rx) = mpsc::channel::<(&'static str, u64)>();
    let mut senders = Vec::new();
    for (name, client) in [("alice", &alice), ("bob", &bob)] {
        let mut child = client.spawn_send(&group, texts(name))?;
        let stdout = child.stdout.take().unwrap();
        let tx = tx.clone();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value: serde_json::Value = serde_json::from_str(&line).unwrap();
                // The last line after the crash is the client's error report.
                let Some(seq) = value["seq"].as_u64() else { continue };
                acked.push(seq);
                let _ = tx.send((name, seq));
            }
            acked
        });
        senders.push((name, client, child, reader));
    }
    drop(tx);
    // Let traffic flow, then pull the plug.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < 80 && Instant::now() < deadline {
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            seen += 1;
        }
    }
    assert!(seen >= 80, "traffic was flowing before the crash");
    node.kill9();

    let mut acked_before = Vec::new();
    for (name, client, mut child, reader) in senders {
        let _ = child.wait();
        let acked = reader.join().unwrap();
        assert!(acked.len() < PER_SENDER, "{name} could not have finished before the crash");
        acked_before.push((name, client, acked));
    }

    node.restart()?;
    // Each sender resumes after the messages it saw acknowledged; the one in flight at the crash
    // is resent by the client itself from its outbox (the node drops it if it already stored it).
    for (name, client, acked) in &acked_before {
        let rest: Vec<String> = texts(name).into_iter().skip(acked.len() + 1).collect();
        let output = client.spawn_send(&group, rest)?.wait_with_output()?;
        assert!(output.status.success(), "{name} resumed: {}", String::from_utf8_lossy(&output.stderr));
    }

    let alice_view = alice.texts(&group)?;
    let bob_view = bob.texts(&group)?;
    assert_same_history(&alice_view, &bob_view, "alice and bob");
    let mut all: Vec<String> = alice_view.iter().map(|(_, _, t)| t.clone()).collect();
    assert_eq!(all.len(), 2 * PER_SENDER, "every message exactly once");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 2 * PER_SENDER, "no duplicates");
    // What was acknowledged before the crash kept its sequence number and content.
    for (name, _, acked) in &acked_before {
        for (i, seq) in acked.iter().enumerate() {
            let stored = alice_view.iter().find(|(s, _, _)| s == seq).expect("acknowledged message survived");
            assert_eq!(stored.2, format!("{name} message {i}"));
        }
    }
    Ok(())
}
