//! Scenario: a member follows a chat live (`read --follow`) and sees a message the moment it is
//! stored; /healthz and /metrics answer; SIGTERM stops the node gracefully even with a live
//! connection open, and the data is there after a restart.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use veche_tests::{Client, Node, TempDir, veche_bin};

#[test]
fn live_follow_then_graceful_shutdown() -> anyhow::Result<()> {
    let tmp = TempDir::new("follow");
    let mut node = Node::start(tmp.path(), &["--registration", "open"])?;
    let health: serde_json::Value = serde_json::from_str(&node.http_get("/healthz")?)?;
    assert_eq!(health["name"], "Test node");
    assert_eq!(health["node_id"], node.node_id.as_str());
    assert!(health["node_id"].as_str().unwrap().starts_with("12D3KooW"), "a libp2p peer id");
    assert!(health["version"].is_string());

    let alice = Client::new(tmp.path(), "alice", &node.url);
    let bob = Client::new(tmp.path(), "bob", &node.url);
    alice.run(&["register", "--name", "Alice"])?;
    bob.run(&["register", "--name", "Bob"])?;
    let group = alice.run(&["group", "create", "Live"])?["chat"].as_str().unwrap().to_string();
    alice.run(&["add", &group, &bob.account()?])?;

    // Bob follows; Alice sends; Bob's follower prints it.
    let mut follower = Command::new(veche_bin())
        .args(["client", "--state"])
        .arg(&bob.state)
        .args(["--json", "read", &group, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    alice.run(&["send", &group, "are you there?"])?;
    let line = loop {
        let line = rx.recv_timeout(Duration::from_secs(10))?;
        let value: serde_json::Value = serde_json::from_str(&line)?;
        if value["type"] == "text" {
            break value;
        }
    };
    assert_eq!((line["sender_name"].as_str(), line["text"].as_str()), (Some("Alice"), Some("are you there?")));
    assert!(sent.elapsed() < Duration::from_secs(5), "delivered live");
    let metrics = node.http_get("/metrics")?;
    assert!(metrics.contains("veche_connections 1"), "bob's follower is connected:\n{metrics}");
    assert!(metrics.contains("veche_groups 1"));

    // SIGTERM with a live connection: the node exits cleanly and promptly, the follower notices.
    let stopped = Instant::now();
    assert!(node.terminate()?, "graceful exit status");
    assert!(stopped.elapsed() < Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    while follower.try_wait()?.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(follower.try_wait()?.is_some_and(|s| !s.success()), "the follower ends when the node goes away");
    assert!(node.log().contains("node stopped"));

    node.restart()?;
    assert_eq!(bob.texts(&group)?.last().map(|(_, _, t)| t.clone()), Some("are you there?".to_string()));
    Ok(())
}
