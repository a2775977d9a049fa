//! Scenario (one real node, native WebRTC clients on real UDP sockets): Alice organizes her
//! group's call; Bob (on two devices) and Carol are in it. Alice removes Bob's laptop from the
//! call: both of Bob's sessions end, and Bob cannot come back, neither on the laptop nor on his
//! phone (refused with a clear reason), while Carol stays and keeps receiving Alice's camera.
//! Carol (a participant) may not let Bob back in; Alice does, and Bob joins again.

use std::time::Duration;

use veche_protocol::call::{CallAction, CallUpdate};
use veche_protocol::ids::GroupId;
use veche_protocol::wire::{ErrorCode, Request, Response};
use veche_tests::call::CallClient;
use veche_tests::raw::{RawConn, RawDevice};
use veche_tests::signal::{Party, refused, until};
use veche_tests::{Node, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_participant_cannot_rejoin_until_let_back_in() -> anyhow::Result<()> {
    let tmp = TempDir::new("removed-rejoins");
    let node = Node::start(
        tmp.path(),
        &["--registration", "open", "--mdns", "false", "--media-port", "0", "--media-address", "127.0.0.1"],
    )?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let mut bob = RawDevice::register(&node.url, "Bob", None).await?;
    let mut carol = RawDevice::register(&node.url, "Carol", None).await?;
    let group = GroupId([0x5e; 16]);
    alice.create_chat(group, "Board meeting").await?;
    let token = alice.invite(group).await?;
    bob.join(&token).await?;
    carol.join(&token).await?;
    // Bob's second connection (another tab) signs in as the same device.
    let mut bob_phone = RawDevice {
        key: bob.key.clone(),
        mls: veche_mls::Client::new(bob.key.to_bytes()),
        conn: RawConn::open(&node.url).await?,
    };
    bob_phone.reconnect(&node.url).await?;

    let mut a = Party::new(alice, "alice", true, group)?;
    let mut b = Party::new(bob, "bob", false, group)?;
    let mut b2 = Party::new(bob_phone, "bob-phone", false, group)?;
    let mut c = Party::new(carol, "carol", false, group)?;
    for p in [&mut a, &mut b, &mut b2, &mut c] {
        p.join().await?.map_err(|e| anyhow::anyhow!("join: {e}"))?;
    }
    let (bob_id, phone_id) = (b.participant.unwrap(), b2.participant.unwrap());
    until(
        "Carol and Bob receive Alice's camera",
        &mut [&mut a, &mut b, &mut b2, &mut c],
        Duration::from_secs(20),
        |p| p[1].media.frames_from("alice") >= 20 && p[3].media.frames_from("alice") >= 20,
    )
    .await?;

    // Alice removes Bob's laptop: both his sessions end and everyone is told.
    let removed = a.request(Request::CallModerate { group, participant: bob_id, action: CallAction::Remove }).await?;
    assert_eq!(removed, Ok(Response::Ok));
    b.update("Bob's laptop is disconnected", |u| matches!(u, CallUpdate::Disconnected)).await?;
    c.update("Carol sees Bob leave", |u| matches!(u, CallUpdate::Left { participant } if *participant == bob_id))
        .await?;

    // Bob tries again: refused, and told why.
    b.media = CallClient::start("bob-again", false)?;
    let again = b.join().await?;
    let Err(e) = again else { anyhow::bail!("a removed participant joined again: {again:?}") };
    assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    assert!(e.message.contains("removed"), "the refusal says why: {e}");

    // His other session went with the first, and it cannot come back either.
    b2.update("Bob's other session is disconnected", |u| matches!(u, CallUpdate::Disconnected)).await?;
    c.update("Carol sees it leave", |u| matches!(u, CallUpdate::Left { participant } if *participant == phone_id))
        .await?;
    b2.media = CallClient::start("bob-phone-again", false)?;
    let again = b2.join().await?;
    assert!(matches!(&again, Err(e) if e.code == ErrorCode::Forbidden), "{again:?}");

    // Carol is unaffected: still in the call, still receiving Alice's camera.
    let before = c.media.frames_from("alice");
    until("Carol keeps receiving Alice's camera", &mut [&mut a, &mut c], Duration::from_secs(10), |p| {
        p[1].media.frames_from("alice") >= before + 30
    })
    .await?;
    assert!(!c.was_told(|u| matches!(u, CallUpdate::Disconnected | CallUpdate::Ended)));

    // Only a moderator lifts it: Carol may not; Alice lets Bob (as the laptop was known) back in.
    let by_carol = c.request(Request::CallModerate { group, participant: bob_id, action: CallAction::Admit }).await?;
    assert!(refused(&by_carol, ErrorCode::Forbidden), "{by_carol:?}");
    let lifted = a.request(Request::CallModerate { group, participant: bob_id, action: CallAction::Admit }).await?;
    assert_eq!(lifted, Ok(Response::Ok));
    b.media = CallClient::start("bob-back", false)?;
    b.join().await?.map_err(|e| anyhow::anyhow!("Bob let back in: {e}"))?.expect("no lobby");
    until("Bob receives Alice's camera again", &mut [&mut a, &mut b, &mut c], Duration::from_secs(20), |p| {
        p[1].media.frames_from("alice") >= 20
    })
    .await?;
    assert!(node.log().lines().all(|l| !l.contains("panicked")), "the node panicked");
    Ok(())
}
