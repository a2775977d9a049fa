//! Scenario: Gina, a meeting's guest, may take part in that meeting only. She pipelines `Send`s to
//! another chat of the node (and to a chat that does not exist) without waiting for answers, so
//! the node reads them as one batch; each is refused as a guest's request outside its meeting,
//! exactly as a single request would be, and none is stored. Her batched sends to the meeting's
//! own chat still go through.

use veche_protocol::ids::GroupId;
use veche_protocol::meeting::{MeetingInfo, MeetingSettings};
use veche_protocol::wire::{ErrorCode, InviteToken, Request, Response};
use veche_tests::raw::RawDevice;
use veche_tests::{Node, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_send_a_batch_outside_its_meeting() -> anyhow::Result<()> {
    let tmp = TempDir::new("guest-batched-sends");
    let node = Node::start(
        tmp.path(),
        &["--registration", "open", "--mdns", "false", "--media-port", "0", "--media-address", "127.0.0.1"],
    )?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let meeting_chat = GroupId([0x3e; 16]);
    let council = GroupId([0x4c; 16]);
    alice.create_chat(meeting_chat, "Town hall").await?;
    alice.create_chat(council, "Council").await?;
    let settings = MeetingSettings {
        title: "Town hall".into(),
        description: String::new(),
        start_ms: None,
        duration_mins: 60,
        lobby: false,
        webinar: false,
    };
    let (meeting, secret): (MeetingInfo, _) =
        match alice.conn.call(Request::CreateMeeting { group: meeting_chat, settings }).await? {
            Ok(Response::MeetingCreated { meeting, secret }) => (*meeting, secret),
            other => anyhow::bail!("create meeting: {other:?}"),
        };
    let link = InviteToken { invite: meeting.invite, secret };
    let mut gina = RawDevice::register(&node.url, "Gina", Some(link.clone())).await?;
    gina.join(&link).await?;

    // Well-formed MLS messages for the Council's id (from a group Gina made up on her own), and
    // junk for a chat that does not exist: all sent before reading any answer.
    gina.mls.create_group(council, veche_protocol::ids::ChatKind::Group)?;
    let mut ids = Vec::new();
    for i in 0..5 {
        let message = gina.mls.encrypt(council, format!("let me in {i}").as_bytes())?;
        ids.push(gina.conn.send(Request::Send { group: council, message }).await?);
    }
    let nowhere = GroupId([0x77; 16]);
    for _ in 0..3 {
        ids.push(gina.conn.send(Request::Send { group: nowhere, message: vec![1, 2, 3] }).await?);
    }
    for want in ids {
        let (id, answer) = gina.conn.next_answer().await?;
        assert_eq!(id, want, "answers in order");
        let error = answer.expect_err("a guest's Send outside its meeting is refused");
        assert_eq!(error.code, ErrorCode::Forbidden, "{error}");
        assert!(error.message.contains("a guest takes part in its meeting only"), "refused as a guest: {error}");
    }

    // Nothing reached the Council.
    let Ok(Response::Messages { messages, .. }) =
        alice.conn.call(Request::Fetch { group: council, after: 0, limit: 100 }).await?
    else {
        anyhow::bail!("fetch")
    };
    assert!(messages.iter().all(|m| m.sender != gina.account()), "no message of Gina's in the Council");

    // In the meeting's own chat her batched Sends are stored.
    let mut ids = Vec::new();
    for i in 0..5 {
        let message = gina.mls.encrypt(meeting_chat, format!("hello {i}").as_bytes())?;
        ids.push(gina.conn.send(Request::Send { group: meeting_chat, message }).await?);
    }
    for want in ids {
        let (id, answer) = gina.conn.next_answer().await?;
        assert_eq!(id, want);
        assert!(matches!(answer, Ok(Response::Stored { .. })), "stored in the meeting's chat: {answer:?}");
    }
    Ok(())
}
