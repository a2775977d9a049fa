//! Scenario (one real node, native WebRTC clients on real UDP sockets): Alice makes a group
//! chat a meeting, a webinar with a lobby. Its link lets Gina in as a guest with only a name: her
//! account can do nothing but take part in that meeting. In the meeting's call Bob, a member,
//! may not publish until Alice makes him a presenter; Gina waits in the lobby until Alice lets
//! her in, then sees both; Alice locks the meeting and Carol is refused; Alice switches it to a
//! meeting and ends it for everyone. The meeting's chat is still there afterwards.

use std::time::Duration;

use veche_protocol::call::{CallAction, CallChange, CallMedia, CallMode, CallRole, CallUpdate};
use veche_protocol::ids::GroupId;
use veche_protocol::meeting::{MeetingInfo, MeetingSettings};
use veche_protocol::wire::{ErrorCode, InviteToken, Request, Response};
use veche_tests::raw::RawDevice;
use veche_tests::signal::{Party, refused, until};
use veche_tests::{Node, TempDir};

fn settings(title: &str) -> MeetingSettings {
    MeetingSettings {
        title: title.into(),
        description: "Roads, the library roof, the summer fair".into(),
        start_ms: None,
        duration_mins: 60,
        lobby: true,
        webinar: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webinar_with_a_lobby_and_a_guest() -> anyhow::Result<()> {
    let tmp = TempDir::new("meetings");
    let node = Node::start(
        tmp.path(),
        &["--registration", "open", "--mdns", "false", "--media-port", "0", "--media-address", "127.0.0.1"],
    )?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let mut bob = RawDevice::register(&node.url, "Bob", None).await?;
    let carol = RawDevice::register(&node.url, "Carol", None).await?;
    let group = GroupId([0x3e; 16]);
    alice.create_chat(group, "Town hall").await?;
    let token = alice.invite(group).await?;
    bob.join(&token).await?;

    // Only the chat's owner makes it a meeting, once, with sensible settings.
    let create = |settings| Request::CreateMeeting { group, settings };
    assert!(refused(&bob.conn.call(create(settings("Town hall"))).await?, ErrorCode::Forbidden));
    let bad = MeetingSettings { duration_mins: 0, ..settings("Town hall") };
    assert!(refused(&alice.conn.call(create(bad)).await?, ErrorCode::BadRequest));
    let (meeting, secret): (MeetingInfo, _) = match alice.conn.call(create(settings(" Town hall "))).await? {
        Ok(Response::MeetingCreated { meeting, secret }) => (*meeting, secret),
        other => anyhow::bail!("create meeting: {other:?}"),
    };
    assert_eq!(meeting.settings.title, "Town hall");
    assert!(meeting.guests_until_ms > meeting.end_ms(), "guests may stay a while past the planned end");
    assert!(refused(&alice.conn.call(create(settings("Again"))).await?, ErrorCode::Conflict));
    // Members see the meeting of their chat; others do not.
    let Ok(Response::Meetings(seen)) = bob.conn.call(Request::Meetings).await? else { anyhow::bail!("meetings") };
    assert_eq!(seen, vec![meeting.clone()]);
    let mut carol = carol;
    let Ok(Response::Meetings(none)) = carol.conn.call(Request::Meetings).await? else { anyhow::bail!("meetings") };
    assert!(none.is_empty());

    // The link: its preview says it is a meeting; registering with it makes a guest account.
    let link = InviteToken { invite: meeting.invite, secret };
    let preview = match RawDevice::register(&node.url, "Peeker", None)
        .await?
        .conn
        .call(Request::InvitePreview { token: link.clone() })
        .await?
    {
        Ok(Response::InvitePreview(p)) => p,
        other => anyhow::bail!("preview: {other:?}"),
    };
    assert_eq!(preview.meeting.as_ref().map(|m| m.settings.title.as_str()), Some("Town hall"));
    let mut gina = RawDevice::register(&node.url, "Gina", Some(link.clone())).await?;
    let Ok(Response::SignedIn(me)) = gina.conn.call(Request::Me).await? else { anyhow::bail!("me") };
    assert_eq!(me.guest_of, Some(group), "Gina is a guest of this meeting");
    gina.join(&link).await?;
    // A guest takes part in its meeting only: no chats of its own, no directory, no invites,
    // and nobody can add it to another chat.
    let own = gina.mls.create_group(GroupId([0x99; 16]), veche_protocol::ids::ChatKind::Group)?;
    let make_chat = Request::CreateChat {
        group: GroupId([0x99; 16]),
        kind: veche_protocol::ids::ChatKind::Group,
        name: "Mine".into(),
        description: String::new(),
        peer: None,
        group_info: own,
    };
    assert!(refused(&gina.conn.call(make_chat).await?, ErrorCode::Forbidden));
    assert!(refused(&gina.conn.call(Request::Directory).await?, ErrorCode::Forbidden));
    let invite = Request::CreateInvite { group: Some(group), max_uses: None, expires_in_secs: None };
    assert!(refused(&gina.conn.call(invite).await?, ErrorCode::Forbidden));
    // Refused as if she did not exist (a claim does not tell who is a guest).
    let claim = Request::ClaimKeyPackages { account: gina.account() };
    assert!(refused(&alice.conn.call(claim).await?, ErrorCode::NotFound));
    let Ok(Response::Meetings(hers)) = gina.conn.call(Request::Meetings).await? else { anyhow::bail!("meetings") };
    assert_eq!(hers, vec![meeting.clone()]);

    // Bob joins the meeting's call first, with his camera: a webinar, so a participant's camera
    // is refused, and he is told why.
    let mut b = Party::new(bob, "bob", true, group)?;
    let joined = b.join().await?.map_err(|e| anyhow::anyhow!("bob joins: {e}"))?.expect("no lobby for members");
    assert_eq!(joined.mode, CallMode::Webinar);
    assert_eq!(joined.participants[0].role, CallRole::Participant, "only the meeting's organizer organizes it");
    b.update("Bob's camera is refused", |u| matches!(u, CallUpdate::PublishRefused { media: CallMedia::Video, .. }))
        .await?;

    // Alice, the organizer, joins with her camera: Bob receives it; nothing of Bob reaches her.
    let mut a = Party::new(alice, "alice", true, group)?;
    let joined = a.join().await?.map_err(|e| anyhow::anyhow!("alice joins: {e}"))?.expect("no lobby");
    assert_eq!(
        joined.participants.iter().find(|p| p.display_name == "Alice").map(|p| p.role),
        Some(CallRole::Organizer)
    );
    until("Bob receives Alice's frames", &mut [&mut a, &mut b], Duration::from_secs(20), |p| {
        p[1].media.frames_from("alice") >= 30
    })
    .await?;
    assert_eq!(a.media.frames_from("bob"), 0, "a webinar viewer's camera is not forwarded");
    assert!(b.media.seen().frames_sent > 30, "while Bob's client does send it");

    // Gina, a guest, waits in the lobby; Alice is told, lets her in; Gina joins again and sees
    // Alice's camera.
    let mut g = Party::new(gina, "gina", false, group)?;
    assert!(g.join().await?.map_err(|e| anyhow::anyhow!("gina joins: {e}"))?.is_none(), "Gina waits in the lobby");
    let gina_id = g.participant.expect("an id while waiting");
    let waiting = a.update("Alice sees Gina waiting", |u| matches!(u, CallUpdate::Waiting(_))).await?;
    let CallUpdate::Waiting(info) = waiting else { unreachable!() };
    assert_eq!((info.participant, info.display_name.as_str(), info.role), (gina_id, "Gina", CallRole::Guest));
    assert!(!b.was_told(|u| matches!(u, CallUpdate::Waiting(_))), "participants do not see the lobby");
    let bob_id = b.participant.expect("bob's id");
    let admit = Request::CallModerate { group, participant: gina_id, action: CallAction::Admit };
    assert!(refused(&b.request(admit.clone()).await?, ErrorCode::Forbidden), "a participant admits nobody");
    assert_eq!(a.request(admit).await?, Ok(Response::Ok));
    g.update("Gina is let in", |u| matches!(u, CallUpdate::Admitted)).await?;
    let in_call = g.join().await?.map_err(|e| anyhow::anyhow!("gina joins again: {e}"))?.expect("in the call");
    assert_eq!(in_call.participant, gina_id, "the same participant as in the lobby");
    let names: Vec<&str> = in_call.participants.iter().map(|p| p.display_name.as_str()).collect();
    assert_eq!(names, ["Bob", "Alice", "Gina"]);
    until("Gina receives Alice's frames", &mut [&mut a, &mut b, &mut g], Duration::from_secs(20), |p| {
        p[2].media.frames_from("alice") >= 30
    })
    .await?;
    // A guest moderates nothing.
    let mute = Request::CallModerate { group, participant: bob_id, action: CallAction::Mute(CallMedia::Audio) };
    assert!(refused(&g.request(mute).await?, ErrorCode::Forbidden));

    // Alice makes Bob a presenter: his camera, refused so far, now reaches Alice and Gina.
    let promote =
        Request::CallModerate { group, participant: bob_id, action: CallAction::SetRole(CallRole::Presenter) };
    assert_eq!(a.request(promote).await?, Ok(Response::Ok));
    until("Bob's camera reaches Alice and Gina", &mut [&mut a, &mut b, &mut g], Duration::from_secs(20), |p| {
        p[0].media.frames_from("bob") >= 30 && p[2].media.frames_from("bob") >= 30
    })
    .await?;

    // Alice locks the meeting: Carol, a member who joins the chat now, is refused the call.
    assert_eq!(a.request(Request::CallConfigure { group, change: CallChange::Lock(true) }).await?, Ok(Response::Ok));
    b.update("Bob sees the lock", |u| matches!(u, CallUpdate::Locked { locked: true })).await?;
    carol.join(&token).await?;
    let mut c = Party::new(carol, "carol", false, group)?;
    let locked = c.join().await?;
    assert!(matches!(&locked, Err(e) if e.code == ErrorCode::Forbidden), "{locked:?}");

    // Back to a meeting: Gina is told; then Alice ends it for everyone.
    let to_meeting = Request::CallConfigure { group, change: CallChange::Mode(CallMode::Meeting) };
    assert!(refused(&b.request(to_meeting.clone()).await?, ErrorCode::Forbidden), "a presenter does not moderate");
    assert_eq!(a.request(to_meeting).await?, Ok(Response::Ok));
    g.update("Gina sees the mode change", |u| matches!(u, CallUpdate::ModeChanged { mode: CallMode::Meeting })).await?;
    assert_eq!(a.request(Request::CallEnd { group }).await?, Ok(Response::Ok));
    for p in [&mut b, &mut g] {
        p.update("the meeting ended", |u| matches!(u, CallUpdate::Ended)).await?;
        p.update("disconnected", |u| matches!(u, CallUpdate::Disconnected)).await?;
    }
    for p in [&a, &b, &g] {
        assert!(p.answer_errors.is_empty(), "answers refused: {:?}", p.answer_errors);
        assert_eq!(p.media.seen().marker_in_clear, 0);
    }

    // The meeting's chat stays, with its members and the guest, and still takes messages.
    let Ok(Response::Chat(chat)) = b.request(Request::Chat { group }).await? else { anyhow::bail!("chat") };
    let names: Vec<&str> = chat.members.iter().map(|m| m.display_name.as_str()).collect();
    for name in ["Alice", "Bob", "Gina", "Carol"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    // (Carol joined last, so her device is at the chat's current epoch.)
    let text = c.device.mls.encrypt(group, b"thanks all, notes to follow")?;
    assert!(matches!(c.request(Request::Send { group, message: text }).await?, Ok(Response::Stored { .. })));
    assert!(node.log().lines().all(|l| !l.contains("panicked")), "the node panicked");
    Ok(())
}

/// Scenario: on a node whose guests may stay no time past a meeting's planned end, a meeting
/// that ends in a few seconds. Gina, its guest, is in its call with Alice; when the meeting's end
/// comes, the node closes her connection with a clear reason, Alice sees her leave, and she can
/// no longer sign in. Alice, a member, stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_guest_is_let_go_when_its_time_is_over() -> anyhow::Result<()> {
    let tmp = TempDir::new("meetings-guest-time");
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
            "--guest-grace",
            "0s",
        ],
    )?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let group = GroupId([0x4d; 16]);
    alice.create_chat(group, "Quick sync").await?;
    // Planned as a one-minute meeting that started 54 seconds ago: over in 6 seconds.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let quick = MeetingSettings {
        start_ms: Some(now_ms - 54_000),
        duration_mins: 1,
        lobby: false,
        webinar: false,
        ..settings("Quick sync")
    };
    let (meeting, secret) = match alice.conn.call(Request::CreateMeeting { group, settings: quick }).await? {
        Ok(Response::MeetingCreated { meeting, secret }) => (*meeting, secret),
        other => anyhow::bail!("create meeting: {other:?}"),
    };
    let over_in = Duration::from_millis(meeting.guests_until_ms.saturating_sub(now_ms));
    assert!(over_in <= Duration::from_secs(7), "guests may stay until the planned end only: {over_in:?}");
    let link = InviteToken { invite: meeting.invite, secret };
    let mut gina = RawDevice::register(&node.url, "Gina", Some(link.clone())).await?;
    gina.join(&link).await?;

    let mut a = Party::new(alice, "alice", true, group)?;
    a.join().await?.map_err(|e| anyhow::anyhow!("alice joins: {e}"))?.expect("no lobby");
    let mut g = Party::new(gina, "gina", false, group)?;
    let joined = g.join().await?.map_err(|e| anyhow::anyhow!("gina joins: {e}"))?.expect("no lobby");
    let gina_id = joined.participant;
    assert_eq!(joined.participants.iter().find(|p| p.participant == gina_id).map(|p| p.role), Some(CallRole::Guest));
    until("Gina receives Alice's frames", &mut [&mut a, &mut g], Duration::from_secs(20), |p| {
        p[1].media.frames_from("alice") >= 10
    })
    .await?;

    // The meeting's end: the node lets Gina go, saying why.
    let closed = g.update("anything, until the node closes the connection", |_| false).await;
    let reason = closed.expect_err("the node closes a guest's connection when its time is over").to_string();
    assert!(reason.contains("guest pass was for a meeting that is over"), "{reason}");
    a.update("Gina leaves the call", |u| matches!(u, CallUpdate::Left { participant } if *participant == gina_id))
        .await?;
    let mut gina = g.device;
    let again = gina.reconnect(&node.url).await.expect_err("a guest cannot sign in after its time");
    assert!(again.to_string().contains("over"), "{again}");
    // Alice is still in her chat's call, and still receives nothing wrong.
    assert!(a.answer_errors.is_empty());
    Ok(())
}
