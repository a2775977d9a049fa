//! Scenario: an admin starts a node with a community secret a person would pick ("first town").
//! Nodes that announce themselves on the LAN receive a value keyed by that secret and could guess
//! it offline, so the node refuses to start and says why, offering a generated secret; with that
//! one it starts.

use veche_tests::{Node, TempDir};

#[test]
fn a_guessable_community_secret_is_refused_and_a_strong_one_offered() -> anyhow::Result<()> {
    let tmp = TempDir::new("weak-secret");
    let refused = Node::start(tmp.path(), &["--mdns", "false", "--community-secret", "first town"]);
    assert!(refused.is_err(), "the node does not start with a guessable secret");
    let log = std::fs::read_to_string(tmp.path().join("node.log"))?;
    assert!(log.contains("too easy to guess"), "it says why: {log}");
    let offered = log
        .split("for example: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("a generated secret is offered: {log}"))?
        .to_string();
    assert!(offered.len() >= 39, "{offered}");

    let tmp = TempDir::new("strong-secret");
    let node = Node::start(tmp.path(), &["--mdns", "false", "--community-secret", &offered])?;
    assert!(node.http_get("/healthz").is_ok(), "the node runs with the offered secret");
    Ok(())
}
