//! Scenario (one real node, native WebRTC clients on real UDP sockets): two members of a chat
//! call each other through the node's SFU. Alice starts the chat's call with her camera; Bob
//! joins with his; the node offers each the other's camera and each receives the other's frames,
//! exactly as sent, while nothing of them crosses the network in the clear. Someone outside the chat cannot
//! join; garbage on the media port does not disturb the call; a participant may not moderate,
//! and the camera the organizer turns off stops reaching the others; leaving is seen by the
//! others, and the last one out ends the call.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use veche_protocol::call::{CallAction, CallJoined, CallMedia, CallRole, CallUpdate};
use veche_protocol::ids::GroupId;
use veche_protocol::wire::{ErrorCode, Event, Request, Response, ServerFrame};
use veche_tests::call::CallClient;
use veche_tests::raw::RawDevice;
use veche_tests::signal::{media_port, signal_until};
use veche_tests::{Node, TempDir};

async fn join(device: &mut RawDevice, client: &CallClient, group: GroupId) -> anyhow::Result<CallJoined> {
    match device.conn.call(Request::CallJoin { group, offer: client.offer()? }).await? {
        Ok(Response::CallJoined(joined)) => {
            client.set_answer(joined.answer.clone())?;
            Ok(joined)
        }
        other => anyhow::bail!("join: {other:?}"),
    }
}

fn wait(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_call_through_the_node() -> anyhow::Result<()> {
    let tmp = TempDir::new("calls");
    let node = Node::start(
        tmp.path(),
        &["--registration", "open", "--mdns", "false", "--media-port", "0", "--media-address", "127.0.0.1"],
    )?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let mut bob = RawDevice::register(&node.url, "Bob", None).await?;
    let mut eve = RawDevice::register(&node.url, "Eve", None).await?;
    let group = GroupId([0x77; 16]);
    alice.create_chat(group, "Family").await?;
    let token = alice.invite(group).await?;
    bob.join(&token).await?;

    // Eve is not in the chat: no call for her.
    let eve_client = CallClient::start("eve", true)?;
    let refused = eve.conn.call(Request::CallJoin { group, offer: eve_client.offer()? }).await?;
    assert!(
        matches!(&refused, Err(e) if e.code == ErrorCode::NotFound || e.code == ErrorCode::Forbidden),
        "{refused:?}"
    );
    let refused = eve.conn.call(Request::CallAnswer { group, answer: "v=0".into() }).await?;
    assert!(matches!(&refused, Err(e) if e.code == ErrorCode::NotFound), "{refused:?}");

    // Alice starts the call with her camera; she organizes it.
    let a = CallClient::start("alice", true)?;
    let joined = join(&mut alice, &a, group).await?;
    assert!(joined.answer.contains("a=ice-lite"), "the node answers as an ICE-lite SFU");
    assert_eq!(joined.participants.len(), 1);
    assert_eq!(joined.participants[0].role, CallRole::Organizer);
    assert_eq!(joined.participants[0].display_name, "Alice");
    wait("Alice's media connects", Duration::from_secs(10), || a.seen().connected)?;
    let port = media_port(&joined.answer)?;

    // Bob joins with his camera: the node offers him Alice's camera, he answers.
    let b = CallClient::start("bob", true)?;
    let bob_joined = join(&mut bob, &b, group).await?;
    let names: Vec<&str> = bob_joined.participants.iter().map(|p| p.display_name.as_str()).collect();
    assert_eq!(names, ["Alice", "Bob"]);
    let offer = bob
        .conn
        .until(Duration::from_secs(10), |f| match f {
            ServerFrame::Event(Event::CallOffer { group: g, sdp }) if g == group => Some(sdp),
            _ => None,
        })
        .await?;
    let answer = b.answer_offer(offer)?;
    assert_eq!(bob.conn.call(Request::CallAnswer { group, answer }).await?, Ok(Response::Ok));
    // Alice hears that Bob joined and published his camera, and answers the node's offer for it.
    let bob_id = bob_joined.participant;
    signal_until(&mut alice, &a, group, |f| match f {
        ServerFrame::Event(Event::Call { update: CallUpdate::Joined(p), .. }) if p.participant == bob_id => Some(()),
        _ => None,
    })
    .await?;
    signal_until(&mut alice, &a, group, |f| match f {
        ServerFrame::Event(Event::Call { update: CallUpdate::Published(t), .. }) if t.participant == bob_id => Some(()),
        _ => None,
    })
    .await?;
    signal_until(&mut alice, &a, group, |f| match f {
        ServerFrame::Response { result: Ok(Response::Ok), .. } => Some(()),
        _ => None,
    })
    .await?;

    wait("Bob receives Alice's frames", Duration::from_secs(15), || b.frames_from("alice") >= 50)?;
    wait("Alice receives Bob's frames", Duration::from_secs(15), || a.frames_from("bob") >= 50)?;
    let seen = b.seen();
    assert_eq!(seen.marker_in_clear, 0, "media crosses the network only SRTP-encrypted");
    assert!(a.seen().plis >= 1, "Bob's new stream started with a key frame request to Alice");

    // Garbage on the media port from a stranger: dropped; the call goes on.
    let stranger = UdpSocket::bind("127.0.0.1:0")?;
    let mut x: u32 = 0x1234_5678;
    for i in 0..500usize {
        let len = 1 + (i * 37) % 1200;
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        stranger.send_to(&junk, ("127.0.0.1", port))?;
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let before = b.frames_from("alice");
    wait("Bob keeps receiving after the garbage", Duration::from_secs(10), || b.frames_from("alice") >= before + 50)?;
    assert_eq!(b.seen().marker_in_clear, 0);
    assert_eq!(a.seen().marker_in_clear, 0);
    assert!(node.log().lines().all(|l| !l.contains("panicked")), "the node panicked");

    // Moderation: Bob (a participant) may not turn off Alice's camera; Alice (the organizer)
    // turns off Bob's: Bob is told, and the node stops forwarding it.
    let alice_id = joined.participant;
    let refused = bob
        .conn
        .call(Request::CallModerate { group, participant: alice_id, action: CallAction::Mute(CallMedia::Video) })
        .await?;
    assert!(matches!(&refused, Err(e) if e.code == ErrorCode::Forbidden), "{refused:?}");
    let muted = alice
        .conn
        .call(Request::CallModerate { group, participant: bob_id, action: CallAction::Mute(CallMedia::Video) })
        .await?;
    assert_eq!(muted, Ok(Response::Ok));
    bob.conn
        .until(Duration::from_secs(5), |f| match f {
            ServerFrame::Event(Event::Call {
                update: CallUpdate::Muted { participant, media: CallMedia::Video, by },
                ..
            }) if participant == bob_id && by == alice_id => Some(()),
            _ => None,
        })
        .await?;
    std::thread::sleep(Duration::from_millis(300)); // what was already on its way
    let frozen = a.frames_from("bob");
    let (bob_sent, alice_at_bob) = (b.seen().frames_sent, b.frames_from("alice"));
    std::thread::sleep(Duration::from_secs(1));
    assert!(b.seen().frames_sent > bob_sent + 20, "Bob's camera still sends");
    assert_eq!(a.frames_from("bob"), frozen, "a muted camera is not forwarded");
    assert!(b.frames_from("alice") > alice_at_bob + 20, "Alice's camera still reaches Bob");
    let unknown =
        alice.conn.call(Request::CallModerate { group, participant: 999, action: CallAction::Remove }).await?;
    assert!(matches!(&unknown, Err(e) if e.code == ErrorCode::NotFound), "{unknown:?}");

    // Bob leaves: Alice sees it.
    assert_eq!(bob.conn.call(Request::CallLeave { group }).await?, Ok(Response::Ok));
    alice
        .conn
        .until(Duration::from_secs(5), |f| match f {
            ServerFrame::Event(Event::Call { update: CallUpdate::Left { participant }, .. })
                if participant == bob_id =>
            {
                Some(())
            }
            _ => None,
        })
        .await?;
    // Alice's connection closes: the call is over; Bob starting it again organizes the new one.
    drop(alice);
    drop(a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b2 = CallClient::start("bob2", false)?;
    let again = join(&mut bob, &b2, group).await?;
    assert_eq!(again.participants.len(), 1, "{:?}", again.participants);
    assert_eq!(again.participants[0].role, CallRole::Organizer);
    Ok(())
}
