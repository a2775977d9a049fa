//! Scenario (two linked nodes on loopback): Bob, a member on node B of a group homed on node A,
//! is an admin there. His client's state is put back to an older copy, behind a removal he
//! committed (a commit with an update path only his lost state held). On his next sync his device
//! rejoins the chat by a resync through his own node (the `GroupInfo` request and the external
//! commit are forwarded to A): he reads new messages again, stays an admin, and Alice reads him.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use veche_tests::site::Site;
use veche_tests::{Client, TempDir};

fn member(tmp: &TempDir, site: &Site, name: &str) -> anyhow::Result<Client> {
    let invite = site.admin.run(&["invite", "node", "--uses", "1"])?;
    let client = Client::new(tmp.path(), name, &site.node.url);
    client.run(&["register", "--name", name, "--invite", invite["link"].as_str().context("link")?])?;
    Ok(client)
}

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

/// The chat's last text as `client` reads it, once it is `want` (a member node pulls from the home).
fn wait_last(client: &Client, chat: &str, want: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let texts = client.texts(chat)?;
        if texts.last().map(|(_, _, t)| t.as_str()) == Some(want) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{want:?} did not arrive: {texts:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_member_of_another_node_resyncs_through_its_own_node() -> anyhow::Result<()> {
    let tmp = TempDir::new("federation-resync");
    let (a, b) = (Site::start(&tmp, "a", &[])?, Site::start(&tmp, "b", &[])?);
    a.admin.run(&["admin", "link", &b.address()?])?;
    let made = b.admin.run(&["admin", "link", &a.address()?])?;
    anyhow::ensure!(made["state"] == "linked", "link not up: {made}");

    let alice = member(&tmp, &a, "Alice")?;
    let carol = member(&tmp, &a, "Carol")?;
    let bob = member(&tmp, &b, "Bob")?;
    let chat = alice.run(&["group", "create", "Town square"])?["chat"].as_str().context("chat")?.to_string();
    let invite = alice.run(&["invite", "create", &chat])?["link"].as_str().context("link")?.to_string();
    bob.run(&["join", &invite])?;
    carol.run(&["join", &invite])?;
    alice.run(&["role", &chat, &bob.account()?, "admin"])?;
    alice.run(&["send", &chat, "before"])?;
    wait_last(&bob, &chat, "before")?;

    let backup = tmp.path().join("bob-backup");
    copy_dir(&bob.state, &backup)?;
    bob.run(&["remove", &chat, &carol.account()?])?;
    std::fs::remove_dir_all(&bob.state)?;
    copy_dir(&backup, &bob.state)?;
    alice.run(&["send", &chat, "while Bob was rolled back"])?;

    // Bob's next syncs: his device rejoins through B, then reads what comes after.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = bob.lines(&["read", &chat])?;
        let rejoined = seen
            .iter()
            .filter(|m| m["type"] == "system")
            .filter_map(|m| m["text"].as_str())
            .any(|t| t.contains("rejoined") && t.contains("could not be decrypted"));
        if rejoined {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "Bob's device did not rejoin: {seen:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    alice.run(&["send", &chat, "after"])?;
    wait_last(&bob, &chat, "after")?;
    bob.run(&["send", &chat, "back through B"])?;
    wait_last(&alice, &chat, "back through B")?;
    let members = alice.run(&["members", &chat])?["members"].as_array().cloned().unwrap_or_default();
    let role =
        |name: &str| members.iter().find(|m| m["name"] == name).and_then(|m| m["role"].as_str()).map(String::from);
    assert_eq!(role("Bob").as_deref(), Some("admin"), "{members:?}");
    assert_eq!(members.len(), 2, "Carol stays removed: {members:?}");
    Ok(())
}
