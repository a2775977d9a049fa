//! Scenario (one real node, native WebRTC clients): one account cannot hold more than
//! `MAX_SESSIONS_PER_ACCOUNT` call sessions at once. Bob opens five connections of his device
//! and joins his chat's call from each: the fifth join is refused with a clear reason, while
//! Alice still joins; once one of Bob's connections leaves, his fifth one gets in.

use veche_protocol::ids::GroupId;
use veche_protocol::wire::{ErrorCode, Request, Response};
use veche_tests::raw::{RawConn, RawDevice};
use veche_tests::signal::Party;
use veche_tests::{Node, TempDir};

/// `MAX_SESSIONS_PER_ACCOUNT` in node/src/service/calls.rs (the node is a binary; this crate
/// talks to it only over the wire).
const MAX_SESSIONS_PER_ACCOUNT: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_holds_a_bounded_number_of_call_sessions() -> anyhow::Result<()> {
    let tmp = TempDir::new("call-session-caps");
    let node = Node::start(
        tmp.path(),
        &["--registration", "open", "--mdns", "false", "--media-port", "0", "--media-address", "127.0.0.1"],
    )?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let mut bob = RawDevice::register(&node.url, "Bob", None).await?;
    let group = GroupId([0x5c; 16]);
    alice.create_chat(group, "Caps").await?;
    let token = alice.invite(group).await?;
    bob.join(&token).await?;

    let mut bobs = Vec::new();
    for i in 0..=MAX_SESSIONS_PER_ACCOUNT {
        let mut conn = RawDevice {
            key: bob.key.clone(),
            mls: veche_mls::Client::new(bob.key.to_bytes()),
            conn: RawConn::open(&node.url).await?,
        };
        conn.reconnect(&node.url).await?;
        bobs.push(Party::new(conn, &format!("bob{i}"), false, group)?);
    }
    for (i, p) in bobs.iter_mut().enumerate().take(MAX_SESSIONS_PER_ACCOUNT) {
        p.join().await?.map_err(|e| anyhow::anyhow!("Bob's connection {i} joins: {e}"))?;
    }
    let extra = bobs.last_mut().expect("five");
    let refused = extra.join().await?;
    let Err(e) = refused else { anyhow::bail!("a fifth session of one account was let in: {refused:?}") };
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    assert!(e.message.contains("connections"), "the refusal says why: {e}");

    // Others are not affected.
    let mut a = Party::new(alice, "alice", false, group)?;
    a.join().await?.map_err(|e| anyhow::anyhow!("Alice joins: {e}"))?;

    // One of Bob's connections leaves: the fifth gets in.
    assert_eq!(bobs[0].request(Request::CallLeave { group }).await?, Ok(Response::Ok));
    let extra = bobs.last_mut().expect("five");
    extra.media = veche_tests::call::CallClient::start("bob-again", false)?;
    extra.join().await?.map_err(|e| anyhow::anyhow!("after one left: {e}"))?;
    assert!(node.log().lines().all(|l| !l.contains("panicked")), "the node panicked");
    Ok(())
}
