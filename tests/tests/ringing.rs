//! Scenario (one real node, rings of 2 s): 1:1 calls in direct chats ring the other member on
//! every connection of theirs. Bob declines and Alice is told; Alice calls again and nobody
//! answers: after the ring time Alice hears "no answer" and Bob's devices stop ringing (missed);
//! the third time Bob answers on one connection, the other stops ringing, and the call connects.
//! Carol calls Bob while he is in that call: busy, and he is not disturbed. Carol calls again
//! later and gives up before Bob answers: his ring ends as cancelled.

use std::time::Duration;

use veche_protocol::call::{CallUpdate, RingEnd};
use veche_protocol::ids::{ChatKind, GroupId};
use veche_protocol::wire::{ErrorCode, Event, Request, Response, ServerFrame};
use veche_tests::call::CallClient;
use veche_tests::raw::{RawConn, RawDevice};
use veche_tests::signal::{Party, refused, until};
use veche_tests::{Node, TempDir};

/// A direct chat of `a` with `b` (created by `a`, `b` added by commit).
async fn direct(a: &mut RawDevice, b: &RawDevice, group: GroupId) -> anyhow::Result<()> {
    let group_info = a.mls.create_group(group, ChatKind::Direct)?;
    let create = Request::CreateChat {
        group,
        kind: ChatKind::Direct,
        name: String::new(),
        description: String::new(),
        peer: Some(b.account()),
        group_info,
    };
    a.conn.call(create).await?.map_err(|e| anyhow::anyhow!("create: {e}"))?;
    let Ok(Response::KeyPackages(packages)) = a.conn.call(Request::ClaimKeyPackages { account: b.account() }).await?
    else {
        anyhow::bail!("no key packages")
    };
    let bundle = a.mls.add_members(group, &packages)?;
    let commit =
        Request::Commit { group, commit: bundle.commit, welcome: bundle.welcome, group_info: bundle.group_info };
    a.conn.call(commit).await?.map_err(|e| anyhow::anyhow!("commit: {e}"))?;
    a.mls.merge_pending_commit(group)?;
    Ok(())
}

/// A second connection of an already registered device.
async fn second_connection(node: &Node, device: &RawDevice) -> anyhow::Result<RawConn> {
    let mut conn = RawConn::open(&node.url).await?;
    let id = device.device();
    let payload = veche_protocol::auth::sign_in_payload(&conn.hello.node_id, &conn.hello.challenge, &id, None);
    let signature = veche_protocol::auth::sign(&device.key, &payload);
    conn.call(Request::SignIn { device: id, signature, binding: veche_protocol::auth::ChannelBinding::Unbound })
        .await?
        .map_err(|e| anyhow::anyhow!("sign in: {e}"))?;
    Ok(conn)
}

async fn rung(conn: &mut RawConn, group: GroupId) -> anyhow::Result<(String, veche_protocol::ids::AccountId)> {
    conn.until(Duration::from_secs(10), |f| match f {
        ServerFrame::Event(Event::CallRing { group: g, from, name }) if g == group => Some((name, from)),
        _ => None,
    })
    .await
}

async fn ring_ended(conn: &mut RawConn, group: GroupId) -> anyhow::Result<RingEnd> {
    conn.until(Duration::from_secs(10), |f| match f {
        ServerFrame::Event(Event::CallRingEnded { group: g, reason }) if g == group => Some(reason),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_call_rings_the_other_member() -> anyhow::Result<()> {
    let tmp = TempDir::new("ringing");
    let node = Node::start(
        tmp.path(),
        &[
            "--registration",
            "open",
            "--mdns",
            "false",
            "--media-port",
            "0",
            "--media-address",
            "127.0.0.1",
            "--ring-timeout",
            "2s",
        ],
    )?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let bob = RawDevice::register(&node.url, "Bob", None).await?;
    let mut carol = RawDevice::register(&node.url, "Carol", None).await?;
    let (ab, cb) = (GroupId([0xab; 16]), GroupId([0xcb; 16]));
    direct(&mut alice, &bob, ab).await?;
    direct(&mut carol, &bob, cb).await?;
    let mut bob_phone = second_connection(&node, &bob).await?;
    let mut b = Party::new(bob, "bob", true, ab)?;

    // Nothing rings Bob yet: declining is refused.
    assert!(refused(&b.request(Request::CallDecline { group: ab }).await?, ErrorCode::NotFound));

    // Alice calls: both of Bob's connections ring, naming her. Bob declines on one; Alice is
    // told, and the other stops ringing.
    let mut a = Party::new(alice, "alice", true, ab)?;
    a.join().await?.map_err(|e| anyhow::anyhow!("alice calls: {e}"))?;
    let (name, from) = rung(&mut b.device.conn, ab).await?;
    assert_eq!((name.as_str(), from), ("Alice", a.device.account()));
    assert_eq!(rung(&mut bob_phone, ab).await?.0, "Alice");
    assert_eq!(b.request(Request::CallDecline { group: ab }).await?, Ok(Response::Ok));
    a.update("Alice hears Bob declined", |u| matches!(u, CallUpdate::Declined)).await?;
    assert_eq!(ring_ended(&mut bob_phone, ab).await?, RingEnd::Declined);
    // Carol, not in the chat, cannot decline it.
    assert!(refused(&carol.conn.call(Request::CallDecline { group: ab }).await?, ErrorCode::NotFound));

    // Alice calls again and nobody answers: after the ring time she hears "no answer", and
    // Bob's ring ends as missed.
    assert_eq!(a.request(Request::CallLeave { group: ab }).await?, Ok(Response::Ok));
    a.media = CallClient::start("alice", true)?; // a new peer connection for a new call
    a.join().await?.map_err(|e| anyhow::anyhow!("alice calls again: {e}"))?;
    rung(&mut bob_phone, ab).await?;
    let started = std::time::Instant::now();
    a.update("Alice hears no answer", |u| matches!(u, CallUpdate::NoAnswer)).await?;
    assert!(started.elapsed() >= Duration::from_millis(1500), "it rang for the ring time");
    assert_eq!(ring_ended(&mut bob_phone, ab).await?, RingEnd::Missed);

    // The third time Bob answers (joins the call) on his first connection: the other stops
    // ringing, and they see each other.
    assert_eq!(a.request(Request::CallLeave { group: ab }).await?, Ok(Response::Ok));
    a.media = CallClient::start("alice", true)?; // a new peer connection for a new call
    a.join().await?.map_err(|e| anyhow::anyhow!("alice calls a third time: {e}"))?;
    rung(&mut bob_phone, ab).await?;
    b.join().await?.map_err(|e| anyhow::anyhow!("bob answers: {e}"))?;
    assert_eq!(ring_ended(&mut bob_phone, ab).await?, RingEnd::Answered);
    until("they see each other", &mut [&mut a, &mut b], Duration::from_secs(20), |p| {
        p[0].media.frames_from("bob") >= 20 && p[1].media.frames_from("alice") >= 20
    })
    .await?;
    assert!(!a.was_told(|u| matches!(u, CallUpdate::NoAnswer)), "an answered call does not time out");

    // Carol calls Bob while he is in the call with Alice: busy; Bob is not rung.
    let mut c = Party::new(carol, "carol", false, cb)?;
    c.join().await?.map_err(|e| anyhow::anyhow!("carol calls: {e}"))?;
    c.update("Carol hears Bob is busy", |u| matches!(u, CallUpdate::Busy)).await?;
    let disturbed = bob_phone
        .until(Duration::from_millis(500), |f| matches!(f, ServerFrame::Event(Event::CallRing { .. })).then_some(()))
        .await;
    assert!(disturbed.is_err(), "a busy member is not rung");

    // Bob hangs up; Carol calls again, then gives up before he answers: cancelled.
    assert_eq!(b.request(Request::CallLeave { group: ab }).await?, Ok(Response::Ok));
    assert_eq!(c.request(Request::CallLeave { group: cb }).await?, Ok(Response::Ok));
    c.media = CallClient::start("carol", false)?;
    c.join().await?.map_err(|e| anyhow::anyhow!("carol calls again: {e}"))?;
    assert_eq!(rung(&mut bob_phone, cb).await?.0, "Carol");
    assert_eq!(c.request(Request::CallLeave { group: cb }).await?, Ok(Response::Ok));
    assert_eq!(ring_ended(&mut bob_phone, cb).await?, RingEnd::Cancelled);
    for p in [&a, &b, &c] {
        assert!(p.answer_errors.is_empty(), "{:?}", p.answer_errors);
    }
    assert!(node.log().lines().all(|l| !l.contains("panicked")), "the node panicked");
    Ok(())
}
