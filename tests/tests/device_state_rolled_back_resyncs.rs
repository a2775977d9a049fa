//! Scenario: a native client's saved state is put back to an older copy (a backup restored by
//! hand, a disk snapshot) while the others keep talking. The device cannot process its own later
//! commit any more (a role change, whose path secrets only the state it lost held), so it is
//! stuck behind it. On its next
//! sync it rejoins the chat by an external commit that replaces its own leaf (a resync): it reads
//! new messages again, says plainly that earlier ones could not be decrypted, keeps its role
//! (here: the owner), and the others read it.

use std::path::Path;
use veche_tests::{Client, Node, TempDir};

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn texts(client: &Client, chat: &str) -> anyhow::Result<Vec<String>> {
    Ok(client.texts(chat)?.into_iter().map(|(_, _, t)| t).collect())
}

#[test]
fn a_device_whose_state_was_rolled_back_rejoins_its_chat() -> anyhow::Result<()> {
    let tmp = TempDir::new("resync");
    let node = Node::start(tmp.path(), &["--registration", "open"])?;
    let names = ["owner", "alice", "carol"];
    let clients: Vec<Client> = names.iter().map(|n| Client::new(tmp.path(), n, &node.url)).collect();
    for (client, name) in clients.iter().zip(names) {
        client.run(&["register", "--name", name])?;
    }
    let [owner, alice, carol] = &clients[..] else { unreachable!() };
    let group = owner.run(&["group", "create", "Council"])?["chat"].as_str().unwrap().to_string();
    owner.run(&["add", &group, &alice.account()?])?;
    owner.run(&["add", &group, &carol.account()?])?;
    alice.run(&["send", &group, "before"])?;
    assert_eq!(texts(owner, &group)?, ["before"]);

    // A copy of the owner's state now; then the owner makes Alice an admin (a commit with an
    // update path: only the owner's device held its secrets), and the copy is put back.
    let backup = tmp.path().join("owner-backup");
    copy_dir(&owner.state, &backup)?;
    owner.run(&["role", &group, &alice.account()?, "admin"])?;
    alice.run(&["send", &group, "while the owner was rolled back"])?;
    std::fs::remove_dir_all(&owner.state)?;
    copy_dir(&backup, &owner.state)?;

    alice.run(&["send", &group, "also before the owner's device is back"])?;
    // The owner's device cannot decrypt those (they are of epochs it never had): it rejoins and
    // says so, counting the log entries it skipped (the role change and the two messages).
    let seen = owner.lines(&["read", &group])?;
    let said = seen
        .iter()
        .filter(|m| m["type"] == "system")
        .filter_map(|m| m["text"].as_str())
        .any(|t| t.contains("rejoined") && t.contains("3 earlier entries could not be decrypted"));
    assert!(said, "the owner's device says what it could not decrypt: {seen:?}");
    alice.run(&["send", &group, "after"])?;
    assert_eq!(texts(owner, &group)?, ["before", "after"], "the owner reads new messages again");

    // Still the owner, still three members; the others read the owner and keep talking.
    let members = owner.run(&["members", &group])?["members"].as_array().unwrap().clone();
    let role =
        |name: &str| members.iter().find(|m| m["name"] == name).and_then(|m| m["role"].as_str()).map(String::from);
    assert_eq!(role("owner").as_deref(), Some("owner"), "{members:?}");
    assert_eq!(role("alice").as_deref(), Some("admin"), "{members:?}");
    assert_eq!(members.len(), 3, "{members:?}");
    owner.run(&["send", &group, "back"])?;
    assert_eq!(texts(alice, &group)?.last().map(String::as_str), Some("back"));
    assert_eq!(texts(carol, &group)?.last().map(String::as_str), Some("back"));
    carol.run(&["send", &group, "hello all"])?;
    assert_eq!(texts(owner, &group)?.last().map(String::as_str), Some("hello all"));
    // As owner, its device may still change the chat's membership.
    let dave = Client::new(tmp.path(), "dave", &node.url);
    dave.run(&["register", "--name", "dave"])?;
    owner.run(&["add", &group, &dave.account()?])?;
    alice.run(&["send", &group, "welcome dave"])?;
    assert_eq!(texts(&dave, &group)?, ["welcome dave"]);
    Ok(())
}
