//! Scenario: a real node and three native clients. The admin creates a group and an invite link;
//! two members register and join by the link while the creator is offline; together they send
//! 1,000 messages at once; every member decrypts every message, all in the same order. A direct
//! chat works. Neither the node's data dir nor its logs ever hold a message's plaintext.

use std::collections::HashSet;
use veche_tests::{Client, Node, TempDir, assert_same_history, dir_contains, parse_lines};

const MARKER: &str = "zq-plaintext-marker";

#[test]
fn three_members_exchange_a_thousand_messages_in_one_order() -> anyhow::Result<()> {
    let tmp = TempDir::new("group");
    let node = Node::start(tmp.path(), &[])?;
    let admin_link = node.admin_link.clone().expect("first start with registration=invite prints an admin link");

    let alice = Client::new(tmp.path(), "alice", &node.url);
    let bob = Client::new(tmp.path(), "bob", &node.url);
    let carol = Client::new(tmp.path(), "carol", &node.url);
    assert_eq!(alice.run(&["register", "--name", "Alice", "--invite", &admin_link])?["node_admin"], true);
    let group = alice.run(&["group", "create", "Town hall"])?["chat"].as_str().unwrap().to_string();
    let link = alice.run(&["invite", "create", &group, "--uses", "2", "--expires", "1h"])?["link"]
        .as_str()
        .unwrap()
        .to_string();

    // Alice's device is offline from here on (no client process runs): joining needs nobody.
    for (client, name) in [(&bob, "Bob"), (&carol, "Carol")] {
        assert_eq!(client.run(&["register", "--name", name, "--invite", &link])?["node_admin"], false);
        assert_eq!(client.run(&["join", &link])?["chat"], group.as_str());
    }
    let members = alice.run(&["members", &group])?;
    assert_eq!(members["members"].as_array().unwrap().len(), 3);

    // 1,000 messages from three senders at once.
    let counts = [("alice", &alice, 340), ("bob", &bob, 330), ("carol", &carol, 330)];
    let mut children = Vec::new();
    for (name, client, n) in counts {
        let texts = (0..n).map(|i| format!("{MARKER} {name} {i}")).collect();
        children.push((name, client.spawn_send(&group, texts)?));
    }
    let mut acked = 0;
    for (name, child) in children {
        let output = child.wait_with_output()?;
        assert!(output.status.success(), "{name} send failed: {}", String::from_utf8_lossy(&output.stderr));
        acked += parse_lines(&output.stdout)?.len();
    }
    assert_eq!(acked, 1000);

    let alice_view = alice.texts(&group)?;
    let bob_view = bob.texts(&group)?;
    let carol_view = carol.texts(&group)?;
    assert_eq!(alice_view.len(), 1000, "alice decrypted every message");
    assert_same_history(&alice_view, &bob_view, "alice and bob");
    assert_same_history(&alice_view, &carol_view, "alice and carol");
    let distinct: HashSet<_> = alice_view.iter().map(|(_, _, t)| t.clone()).collect();
    assert_eq!(distinct.len(), 1000, "no message twice");
    // Each sender's messages keep their order, and the name before each is the sender's.
    for (name, display) in [("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol")] {
        let mine: Vec<usize> = alice_view
            .iter()
            .filter(|(_, _, t)| t.split(' ').nth(1) == Some(name))
            .map(|(_, sender, t)| {
                assert_eq!(sender, display);
                t.rsplit(' ').next().unwrap().parse().unwrap()
            })
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{name}'s messages in send order");
    }

    // A direct chat: one per pair, messages both ways.
    let bob_id = bob.account()?;
    let dm = alice.run(&["dm", &bob_id])?["chat"].as_str().unwrap().to_string();
    assert_eq!(alice.run(&["dm", &bob_id])?["chat"], dm.as_str(), "only one direct chat per pair");
    alice.run(&["send", &dm, &format!("{MARKER} just for bob")])?;
    bob.run(&["send", &dm, &format!("{MARKER} just for alice")])?;
    let alice_id = alice.account()?;
    assert_eq!(bob.run(&["dm", &alice_id])?["chat"], dm.as_str());
    let texts: Vec<_> = alice.texts(&dm)?.into_iter().map(|(_, s, t)| (s, t)).collect();
    assert_eq!(
        texts,
        vec![("Alice".into(), format!("{MARKER} just for bob")), ("Bob".into(), format!("{MARKER} just for alice"))]
    );
    assert!(carol.texts(&dm).is_err(), "carol is not in the direct chat");

    // The node never saw plaintext: not in its data dir, not in its logs (debug level).
    assert!(node.log().contains("member joined by invite"), "logs are being written");
    assert_eq!(dir_contains(&node.data_dir, MARKER.as_bytes()), None, "plaintext in the node's data dir");
    assert!(!node.log().contains(MARKER), "plaintext in the node's logs");
    // ...while the members' own devices do keep their history.
    assert!(dir_contains(&alice.state, MARKER.as_bytes()).is_some());
    Ok(())
}
