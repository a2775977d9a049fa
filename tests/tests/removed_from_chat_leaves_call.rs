//! Scenario (one real node, native WebRTC clients on real UDP sockets): Alice, Bob and Carol are
//! in their group's call. Alice removes Bob from the chat (an MLS commit): the node ends Bob's
//! place in the chat's call at once (he is told he is disconnected, the others that he left,
//! and his media stops), and his attempts to join the call again are refused; Carol stays in the
//! call and keeps receiving Alice's camera. In the second scenario Carol leaves the chat (her
//! leave proposal, committed by Alice's device): she loses her place in the call the same way.

use std::time::Duration;

use veche_protocol::call::CallUpdate;
use veche_protocol::ids::GroupId;
use veche_protocol::wire::{ErrorCode, Request, Response};
use veche_tests::call::CallClient;
use veche_tests::raw::RawDevice;
use veche_tests::signal::{Party, until};
use veche_tests::{Node, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_from_the_chat_loses_their_place_in_its_call() -> anyhow::Result<()> {
    let tmp = TempDir::new("removed-from-chat");
    let node = Node::start(
        tmp.path(),
        &["--registration", "open", "--mdns", "false", "--media-port", "0", "--media-address", "127.0.0.1"],
    )?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let mut bob = RawDevice::register(&node.url, "Bob", None).await?;
    let mut carol = RawDevice::register(&node.url, "Carol", None).await?;
    let group = GroupId([0x6d; 16]);
    alice.create_chat(group, "Project").await?;
    let token = alice.invite(group).await?;
    bob.join(&token).await?;
    carol.join(&token).await?;
    // Alice's device processes both joins, so it can commit in the current epoch.
    let Ok(Response::Messages { messages, .. }) =
        alice.conn.call(Request::Fetch { group, after: 0, limit: 100 }).await?
    else {
        anyhow::bail!("fetch failed")
    };
    for m in &messages {
        alice.mls.process(&m.payload)?;
    }
    let bob_account = bob.account();

    let mut a = Party::new(alice, "alice", true, group)?;
    let mut b = Party::new(bob, "bob", false, group)?;
    let mut c = Party::new(carol, "carol", false, group)?;
    for p in [&mut a, &mut b, &mut c] {
        p.join().await?.map_err(|e| anyhow::anyhow!("join: {e}"))?;
    }
    let bob_id = b.participant.unwrap();
    until("Bob and Carol receive Alice's camera", &mut [&mut a, &mut b, &mut c], Duration::from_secs(20), |p| {
        p[1].media.frames_from("alice") >= 20 && p[2].media.frames_from("alice") >= 20
    })
    .await?;

    // Alice removes Bob from the chat.
    let bundle = a.device.mls.remove_members(group, &[bob_account])?;
    let commit =
        Request::Commit { group, commit: bundle.commit, welcome: bundle.welcome, group_info: bundle.group_info };
    let stored = a.request(commit).await?;
    assert!(matches!(stored, Ok(Response::Stored { .. })), "{stored:?}");

    b.update("Bob is disconnected from the call", |u| matches!(u, CallUpdate::Disconnected)).await?;
    for p in [&mut a, &mut c] {
        p.update("Bob is seen to leave", |u| matches!(u, CallUpdate::Left { participant } if *participant == bob_id))
            .await?;
    }
    // His media stops: what he receives no longer grows (after what was on its way).
    let settle = std::time::Instant::now();
    until("what was on its way", &mut [&mut a, &mut c], Duration::from_secs(2), |_| {
        settle.elapsed() > Duration::from_millis(500)
    })
    .await?;
    let frozen = b.media.frames_from("alice");
    let carol_before = c.media.frames_from("alice");
    until("Carol keeps receiving Alice's camera", &mut [&mut a, &mut c], Duration::from_secs(10), |p| {
        p[1].media.frames_from("alice") >= carol_before + 30
    })
    .await?;
    assert_eq!(b.media.frames_from("alice"), frozen, "a removed member receives nothing more");
    assert!(!c.was_told(|u| matches!(u, CallUpdate::Disconnected | CallUpdate::Ended)));

    // He cannot join the call again.
    b.media = CallClient::start("bob-again", false)?;
    let again = b.join().await?;
    let Err(e) = again else { anyhow::bail!("a removed member joined the call again: {again:?}") };
    assert!(matches!(e.code, ErrorCode::NotFound | ErrorCode::Forbidden), "{e}");
    assert!(node.log().lines().all(|l| !l.contains("panicked")), "the node panicked");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_leaves_the_chat_loses_their_place_in_its_call() -> anyhow::Result<()> {
    let tmp = TempDir::new("left-chat");
    let node = Node::start(
        tmp.path(),
        &["--registration", "open", "--mdns", "false", "--media-port", "0", "--media-address", "127.0.0.1"],
    )?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let mut bob = RawDevice::register(&node.url, "Bob", None).await?;
    let mut carol = RawDevice::register(&node.url, "Carol", None).await?;
    let group = GroupId([0x6e; 16]);
    alice.create_chat(group, "Project").await?;
    let token = alice.invite(group).await?;
    bob.join(&token).await?;
    carol.join(&token).await?;

    let mut a = Party::new(alice, "alice", true, group)?;
    let mut b = Party::new(bob, "bob", false, group)?;
    let mut c = Party::new(carol, "carol", false, group)?;
    for p in [&mut a, &mut b, &mut c] {
        p.join().await?.map_err(|e| anyhow::anyhow!("join: {e}"))?;
    }
    let carol_id = c.participant.unwrap();
    until("Bob and Carol receive Alice's camera", &mut [&mut a, &mut b, &mut c], Duration::from_secs(20), |p| {
        p[1].media.frames_from("alice") >= 20 && p[2].media.frames_from("alice") >= 20
    })
    .await?;

    // Carol proposes to leave (she joined last: her epoch is the chat's); Alice's device
    // processes everything and commits her proposal.
    let proposal = c.device.mls.leave(group)?;
    let sent = c.request(Request::Send { group, message: proposal }).await?;
    assert!(matches!(sent, Ok(Response::Stored { .. })), "{sent:?}");
    let Ok(Response::Messages { messages, .. }) = a.request(Request::Fetch { group, after: 0, limit: 100 }).await?
    else {
        anyhow::bail!("fetch failed")
    };
    for m in &messages {
        a.device.mls.process(&m.payload)?;
    }
    let bundle = a.device.mls.commit_pending_proposals(group)?.ok_or_else(|| anyhow::anyhow!("no proposal"))?;
    let commit =
        Request::Commit { group, commit: bundle.commit, welcome: bundle.welcome, group_info: bundle.group_info };
    let stored = a.request(commit).await?;
    assert!(matches!(stored, Ok(Response::Stored { .. })), "{stored:?}");

    c.update("Carol is disconnected from the call", |u| matches!(u, CallUpdate::Disconnected)).await?;
    for p in [&mut a, &mut b] {
        p.update(
            "Carol is seen to leave",
            |u| matches!(u, CallUpdate::Left { participant } if *participant == carol_id),
        )
        .await?;
    }
    c.media = CallClient::start("carol-again", false)?;
    let again = c.join().await?;
    let Err(e) = again else { anyhow::bail!("a member who left joined the call again: {again:?}") };
    assert!(matches!(e.code, ErrorCode::NotFound | ErrorCode::Forbidden), "{e}");
    // Bob stays.
    let before = b.media.frames_from("alice");
    until("Bob keeps receiving Alice's camera", &mut [&mut a, &mut b], Duration::from_secs(10), |p| {
        p[1].media.frames_from("alice") >= before + 30
    })
    .await?;
    assert!(!b.was_told(|u| matches!(u, CallUpdate::Disconnected | CallUpdate::Ended)));
    Ok(())
}
