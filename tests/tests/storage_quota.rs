//! Scenario: an account's messages may take only so much of the node's storage, and an account is
//! in at most so many chats. The node here allows 128 KiB of stored ciphertext per account and 3
//! chats per account (both configured small so the test is fast):
//! - Alice sends 4 KB messages until the node refuses the one that would exceed her quota, with
//!   `QuotaExceeded` and a message that says so; Bob, on the same node, still sends. Alice can
//!   still add Bob to her chat (commits get some headroom). Once her chat drops what its members
//!   fetched (until-fetched retention), she can send again.
//! - Bob is added to 3 chats; adding him to a 4th (by its admin, or by his own join with a link,
//!   or by creating one himself) is refused with `QuotaExceeded`, and the node keeps serving. Once
//!   he is removed from one, he can be added to the other.

use std::time::{Duration, Instant};
use veche_protocol::ids::{GroupId, Retention};
use veche_protocol::wire::{ErrorCode, Request, Response};
use veche_tests::raw::RawDevice;
use veche_tests::{Client, Node, TempDir};

const QUOTA: usize = 128 * 1024;

async fn send(device: &mut RawDevice, group: GroupId, text: &[u8]) -> anyhow::Result<(usize, Result<u64, String>)> {
    let message = device.mls.encrypt(group, text)?;
    let len = message.len();
    Ok(match device.conn.call(Request::Send { group, message }).await? {
        Ok(Response::Stored { seq }) => (len, Ok(seq)),
        Ok(other) => anyhow::bail!("unexpected {other:?}"),
        Err(e) if e.code == ErrorCode::QuotaExceeded => (len, Err(e.message)),
        Err(e) => anyhow::bail!("refused for another reason: {e}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_over_its_storage_quota_is_refused_until_retention_frees_space() -> anyhow::Result<()> {
    let tmp = TempDir::new("storage-quota");
    let node = Node::start(
        tmp.path(),
        &["--registration", "open", "--mdns", "false", "--storage-quota", "128KiB", "--retention-interval", "200ms"],
    )?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let mut bob = RawDevice::register(&node.url, "Bob", None).await?;
    let archive = GroupId([0xa1; 16]);
    let workshop = GroupId([0xb1; 16]);
    alice.create_chat(archive, "Archive").await?;
    bob.create_chat(workshop, "Workshop").await?;

    let text = vec![b'x'; 4000];
    let mut stored = 0usize;
    let mut last = 0;
    let mut refusal = None;
    for _ in 0..100 {
        match send(&mut alice, archive, &text).await? {
            (len, Ok(seq)) => {
                stored += len;
                last = seq;
            }
            (len, Err(message)) => {
                refusal = Some((len, message));
                break;
            }
        }
    }
    let (len, message) = refusal.expect("the node refuses messages past the quota");
    assert!(stored <= QUOTA && stored + len > QUOTA, "refused exactly at the quota: {stored} + {len} bytes");
    assert!(message.contains("quota") && message.contains("128 KiB"), "a clear message: {message}");
    println!("stored {stored} bytes in {last} messages before the quota");
    let (_, again) = send(&mut alice, archive, &text).await?;
    assert!(again.is_err(), "still over quota");
    let (_, other) = send(&mut bob, workshop, &text).await?;
    other.expect("Bob's quota is his own");

    // At her quota Alice still manages her chat: commits get some headroom past the quota.
    let Ok(Response::KeyPackages(packages)) =
        alice.conn.call(Request::ClaimKeyPackages { account: bob.account() }).await?
    else {
        anyhow::bail!("Bob's key packages")
    };
    let add = alice.mls.add_members(archive, &packages)?;
    let commit =
        Request::Commit { group: archive, commit: add.commit, welcome: add.welcome, group_info: add.group_info };
    let answer = alice.conn.call(commit).await?;
    assert!(matches!(answer, Ok(Response::Stored { .. })), "Alice adds Bob at her quota: {answer:?}");
    alice.mls.merge_pending_commit(archive)?;

    // Alice's chat keeps messages only until fetched; she fetched (and acknowledged) them all.
    let set = Request::SetRetention { group: archive, retention: Retention::UntilFetched };
    alice.conn.call(set).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    alice.conn.call(Request::Ack { group: archive, seq: last }).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match send(&mut alice, archive, &text).await? {
            (_, Ok(_)) => break,
            (_, Err(_)) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            (_, Err(message)) => anyhow::bail!("retention did not free Alice's quota: {message}"),
        }
    }
    Ok(())
}

#[test]
fn an_account_added_to_more_chats_than_the_limit_is_refused() -> anyhow::Result<()> {
    let tmp = TempDir::new("chat-limit");
    let node = Node::start(tmp.path(), &["--registration", "open", "--mdns", "false", "--max-chats-per-account", "3"])?;
    let alice = Client::new(tmp.path(), "alice", &node.url);
    let carol = Client::new(tmp.path(), "carol", &node.url);
    let bob = Client::new(tmp.path(), "bob", &node.url);
    alice.run(&["register", "--name", "Alice"])?;
    carol.run(&["register", "--name", "Carol"])?;
    bob.run(&["register", "--name", "Bob"])?;
    let bob_id = bob.account()?;
    let create = |who: &Client, name: &str| -> anyhow::Result<String> {
        Ok(who.run(&["group", "create", name])?["chat"].as_str().unwrap().to_string())
    };
    let alices: Vec<String> = ["One", "Two", "Three"].iter().map(|n| create(&alice, n)).collect::<Result<_, _>>()?;
    let fourth = alice.fail(&["group", "create", "Four"])?;
    assert_eq!(fourth["code"], "QuotaExceeded", "Alice is in 3 chats: {fourth}");
    let carols = create(&carol, "Carol's")?;
    for chat in &alices {
        alice.run(&["add", chat, &bob_id])?;
    }

    let added = carol.fail(&["add", &carols, &bob_id])?;
    assert_eq!(added["code"], "QuotaExceeded", "{added}");
    let text = added["error"].as_str().unwrap_or_default();
    assert!(text.contains("3 chats"), "says why: {text}");
    let link = carol.run(&["invite", "create", &carols])?["link"].as_str().unwrap().to_string();
    assert_eq!(bob.fail(&["join", &link])?["code"], "QuotaExceeded", "nor by his own join");
    assert_eq!(bob.fail(&["group", "create", "Bob's"])?["code"], "QuotaExceeded", "nor by creating one");

    // The node keeps serving everyone.
    bob.run(&["send", &alices[0], "still here"])?;
    assert!(alice.texts(&alices[0])?.iter().any(|(_, _, text)| text == "still here"));
    assert_eq!(carol.run(&["members", &carols])?["members"].as_array().unwrap().len(), 1);

    // Out of one chat, Bob can be added to another.
    alice.run(&["remove", &alices[2], &bob_id])?;
    carol.run(&["add", &carols, &bob_id])?;
    assert_eq!(carol.run(&["members", &carols])?["members"].as_array().unwrap().len(), 2);
    Ok(())
}
