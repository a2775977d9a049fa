//! Scenario (one real node, native WebRTC clients on real UDP sockets, the call's data channel
//! over SCTP/DTLS through the node's media port): Alice starts a group call and Bob joins; both
//! open the call's data channel. Alice draws a rectangle and a stroke, and Bob sees them; Bob
//! reacts and Alice sees it. Bob may not clear the board, sends garbage and floods it, and is
//! told so, while the call goes on. Carol joins late and gets the board as it is; Alice erases
//! an item and everyone is told. Bob's raised hand and the mute Alice gave him are in Carol's
//! `CallJoined`.

use std::time::Duration;

use veche_protocol::call::{CallAction, CallMedia, CallRole};
use veche_protocol::ids::GroupId;
use veche_protocol::incall::{FromNode, ToNode};
use veche_protocol::whiteboard::{Item, Shape};
use veche_protocol::wire::Request;
use veche_sfu::room::{SIGNAL_BURST, SIGNALS_PER_SEC};
use veche_tests::raw::RawDevice;
use veche_tests::signal::{Party, until};
use veche_tests::{Node, TempDir};

fn rect(id: u64) -> Item {
    Item { id, color: 0xd0_30_30, width: 25, shape: Shape::Rect { from: [1_000, 1_000], to: [4_000, 3_000] } }
}

fn stroke(id: u64) -> Item {
    let points = (0..300).map(|i| [2_000 + i * 10, 5_000 + (i % 40) * 20]).collect();
    Item { id, color: 0x20_40_c0, width: 40, shape: Shape::Stroke { points } }
}

fn draw(item: Item) -> String {
    ToNode::Draw { item }.encode()
}

/// Bob's drawings and his refusals, as `who` heard them.
fn count(messages: &[FromNode], by: u32) -> (usize, Vec<String>) {
    let drawn = messages.iter().filter(|m| matches!(m, FromNode::Drawn { by: b, .. } if *b == by)).count();
    let refused = messages
        .iter()
        .filter_map(|m| match m {
            FromNode::Refused { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    (drawn, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whiteboard_and_reactions_travel_on_the_calls_data_channel() -> anyhow::Result<()> {
    let tmp = TempDir::new("whiteboard");
    let node = Node::start(
        tmp.path(),
        &["--registration", "open", "--mdns", "false", "--media-port", "0", "--media-address", "127.0.0.1"],
    )?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let mut bob = RawDevice::register(&node.url, "Bob", None).await?;
    let mut carol = RawDevice::register(&node.url, "Carol", None).await?;
    let group = GroupId([0x7b; 16]);
    alice.create_chat(group, "Fair planning").await?;
    let token = alice.invite(group).await?;
    bob.join(&token).await?;
    carol.join(&token).await?;

    let mut a = Party::new(alice, "alice", true, group)?;
    let mut b = Party::new(bob, "bob", false, group)?;
    a.media.open_channel()?;
    b.media.open_channel()?;
    let joined = a.join().await?.map_err(|e| anyhow::anyhow!("alice joins: {e}"))?.expect("no lobby");
    assert_eq!(joined.participants[0].role, CallRole::Organizer, "who starts a group's call organizes it");
    let alice_id = joined.participant;
    let bob_id = b.join().await?.map_err(|e| anyhow::anyhow!("bob joins: {e}"))?.expect("no lobby").participant;

    // Both channels open, and each is sent the (empty) board first.
    let empty = FromNode::Board { items: vec![], first: true, done: true };
    until("both channels open with the board", &mut [&mut a, &mut b], Duration::from_secs(20), |p| {
        p.iter().all(|p| p.media.channel_messages().first() == Some(&empty))
    })
    .await?;

    // Alice draws; both hear it (her own copy is the acknowledgement).
    a.media.channel_send(&draw(rect(1)))?;
    a.media.channel_send(&draw(stroke(2)))?;
    until("Bob sees Alice's drawing", &mut [&mut a, &mut b], Duration::from_secs(10), |p| {
        p.iter().all(|p| count(&p.media.channel_messages(), alice_id).0 == 2)
    })
    .await?;
    assert!(b.media.channel_messages().contains(&FromNode::Drawn { by: alice_id, item: stroke(2) }));

    // Bob reacts; Alice sees who.
    b.media.channel_send(&ToNode::React { reaction: "👏".into() }.encode())?;
    let clap = FromNode::Reacted { by: bob_id, reaction: "👏".into() };
    until("Alice sees Bob's reaction", &mut [&mut a, &mut b], Duration::from_secs(10), |p| {
        p[0].media.channel_messages().contains(&clap)
    })
    .await?;

    // Bob may not clear the board, and garbage gets a reason, not silence; the board keeps
    // Alice's two items.
    b.media.channel_send(&ToNode::Clear.encode())?;
    b.media.channel_send("{\"t\":\"draw\",\"item\":")?;
    b.media.channel_send_bytes(&[0xff, 0x00, 0x13, 0x37])?;
    let mut outside = rect(3);
    outside.shape = Shape::Line { from: [0, 0], to: [20_000, 0] };
    b.media.channel_send(&draw(outside))?;
    until("Bob is told why, four times", &mut [&mut a, &mut b], Duration::from_secs(10), |p| {
        count(&p[1].media.channel_messages(), bob_id).1.len() == 4
    })
    .await?;
    let reasons = count(&b.media.channel_messages(), bob_id).1;
    assert!(reasons[0].contains("moderators"), "{reasons:?}");
    assert!(reasons[1].contains("malformed") && reasons[2].contains("malformed"), "{reasons:?}");
    assert!(reasons[3].contains("outside the board"), "{reasons:?}");
    assert!(!a.media.channel_messages().iter().any(|m| matches!(m, FromNode::Cleared { .. })));

    // A flood of 1,000 drawings in a burst: the board takes what the budget allows, Bob is told
    // once, and Alice's camera keeps reaching him.
    let frames_before = b.media.frames_from("alice");
    let started = std::time::Instant::now();
    for id in 100..1_100 {
        b.media.channel_send(&draw(rect(id)))?;
    }
    let sent_in = started.elapsed();
    until("the flood is through", &mut [&mut a, &mut b], Duration::from_secs(20), |p| {
        count(&p[1].media.channel_messages(), bob_id).1.len() >= 5
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    until("Alice's camera still reaches Bob", &mut [&mut a, &mut b], Duration::from_secs(10), |p| {
        p[1].media.frames_from("alice") > frames_before + 20
    })
    .await?;
    // On a loaded machine the burst can take a while to cross the data channel, and the node keeps
    // taking drawings as the budget refills: wait until Alice has seen no new one for 1.5 s.
    let mut last = (usize::MAX, std::time::Instant::now());
    until("the drawings Alice sees settle", &mut [&mut a, &mut b], Duration::from_secs(30), |p| {
        let seen = count(&p[0].media.channel_messages(), bob_id).0;
        if seen != last.0 {
            last = (seen, std::time::Instant::now());
        }
        last.1.elapsed() >= Duration::from_millis(1500)
    })
    .await?;
    let (flood_drawn, reasons) = count(&a.media.channel_messages(), bob_id);
    // Whatever arrived arrived by now: the budget refills over this time at most.
    let window = started.elapsed();
    let allowed = SIGNAL_BURST as usize + (window.as_secs_f64() * f64::from(SIGNALS_PER_SEC)).ceil() as usize;
    println!("flood: 1000 drawings sent in {sent_in:?}; {flood_drawn} taken (at most {allowed} in {window:?})");
    // Bob spent 5 of his budget above (a reaction and four refused messages).
    let at_least = SIGNAL_BURST as usize - 5;
    assert!(flood_drawn >= at_least && flood_drawn <= allowed, "{flood_drawn} of 1000 taken");
    assert!(reasons.is_empty(), "refusals go to the sender only");
    let bob_reasons = count(&b.media.channel_messages(), bob_id).1;
    assert!(bob_reasons[4..].iter().all(|r| r.contains("too many")), "{bob_reasons:?}");
    let told = bob_reasons.len() - 4;
    assert!(told >= 1 && told <= 1 + window.as_secs() as usize, "told at most once a second: {bob_reasons:?}");

    // Bob raises his hand and Alice turns off his microphone: Carol, joining later, sees both in
    // her CallJoined. She also gets the board as it is, oldest first.
    b.request(Request::CallHand { group, raised: true }).await??;
    a.request(Request::CallModerate { group, participant: bob_id, action: CallAction::Mute(CallMedia::Audio) })
        .await??;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = Party::new(carol, "carol", false, group)?;
    c.media.open_channel()?;
    let joined = c.join().await?.map_err(|e| anyhow::anyhow!("carol joins: {e}"))?.expect("no lobby");
    let bob_seen = joined.participants.iter().find(|p| p.participant == bob_id).expect("Bob is in the call");
    assert!(bob_seen.hand_raised, "{bob_seen:?}");
    assert_eq!(bob_seen.muted, vec![CallMedia::Audio]);
    until("Carol gets the whole board", &mut [&mut a, &mut b, &mut c], Duration::from_secs(20), |p| {
        p[2].media.channel_messages().iter().any(|m| matches!(m, FromNode::Board { done: true, .. }))
    })
    .await?;
    let board: Vec<(u32, u64)> = c
        .media
        .channel_messages()
        .iter()
        .flat_map(|m| match m {
            FromNode::Board { items, .. } => items.iter().map(|p| (p.by, p.item.id)).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(board.len(), 2 + flood_drawn, "{board:?}");
    assert_eq!(&board[..2], &[(alice_id, 1), (alice_id, 2)]);
    assert!(board[2..].iter().all(|(by, _)| *by == bob_id));

    // Alice erases her rectangle: everyone is told, Carol included.
    a.media.channel_send(&ToNode::Erase { by: alice_id, id: 1 }.encode())?;
    let erased = FromNode::Erased { by: alice_id, id: 1, who: alice_id };
    until("everyone hears of the erasure", &mut [&mut a, &mut b, &mut c], Duration::from_secs(10), |p| {
        p.iter().all(|p| p.media.channel_messages().contains(&erased))
    })
    .await?;
    assert!(a.answer_errors.is_empty() && b.answer_errors.is_empty() && c.answer_errors.is_empty());
    Ok(())
}
