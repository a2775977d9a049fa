//! Scenario: a meeting's guest leaves the chat's MLS group once the meeting's guest time is over
//! (issue 24, calls: "guests stay in the meeting chat's MLS group").
//!
//! Bob owns a meeting chat; Olga, its admin, uses a real native client (so the device core's rules
//! run). Gina joins by the meeting link as a guest and says hello. When her time is over the node
//! deletes her account and lists her as gone in the chat's info; Olga's device, next time it
//! syncs, commits her removal: she is no longer a member of the MLS group (so later messages are
//! not encrypted to her), the chat's history keeps her message, and the members keep talking.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use veche_protocol::ids::{AccountId, GroupId};
use veche_protocol::meeting::MeetingSettings;
use veche_protocol::wire::{ChatInfo, InviteToken, Request, Response};
use veche_tests::raw::RawDevice;
use veche_tests::{Client, Node, TempDir};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

async fn chat_info(device: &mut RawDevice, group: GroupId) -> anyhow::Result<ChatInfo> {
    match device.conn.call(Request::Chat { group }).await? {
        Ok(Response::Chat(info)) => Ok(info),
        other => bail!("chat: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_device_removes_a_guest_whose_meeting_is_over() -> anyhow::Result<()> {
    let tmp = TempDir::new("guests-leave");
    let node = Node::start(
        tmp.path(),
        &["--registration", "open", "--mdns", "false", "--guest-grace", "0s", "--retention-interval", "200ms"],
    )?;
    let owner = Client::new(tmp.path(), "olga", &node.url);
    owner.run(&["register", "--name", "Olga"])?;
    let olga: AccountId = owner.account()?.parse()?;
    let mut bob = RawDevice::register(&node.url, "Bob", None).await?;
    let group = GroupId([0x5a; 16]);
    let chat_hex = group.to_hex();
    bob.create_chat(group, "Stand-up").await?;
    // Bob adds Olga and makes her an admin.
    let Ok(Response::KeyPackages(packages)) = bob.conn.call(Request::ClaimKeyPackages { account: olga }).await? else {
        bail!("Olga's key package")
    };
    for bundle in [bob.mls.add_members(group, &packages[..1])?, {
        bob.mls.merge_pending_commit(group)?;
        bob.mls.set_role(group, olga, veche_protocol::ids::Role::Admin)?
    }] {
        let request =
            Request::Commit { group, commit: bundle.commit, welcome: bundle.welcome, group_info: bundle.group_info };
        bob.conn.call(request).await?.map_err(|e| anyhow::anyhow!("Bob's commit: {e}"))?;
    }
    bob.mls.merge_pending_commit(group)?;

    // Bob makes it a one-minute meeting that began 55 s ago: guests may stay 5 s more.
    let settings = MeetingSettings {
        title: "Stand-up".into(),
        description: String::new(),
        start_ms: Some(now_ms() - 55_000),
        duration_mins: 1,
        lobby: false,
        webinar: false,
    };
    let (meeting, secret) = match bob.conn.call(Request::CreateMeeting { group, settings }).await? {
        Ok(Response::MeetingCreated { meeting, secret }) => (*meeting, secret),
        other => bail!("create meeting: {other:?}"),
    };
    let link = InviteToken { invite: meeting.invite, secret };
    let mut gina = RawDevice::register(&node.url, "Gina", Some(link.clone())).await?;
    gina.join(&link).await?;
    let hello = gina
        .mls
        .encrypt(group, &veche_protocol::content::AppMessage::text("hello from a guest", now_ms())?.encode()?)?;
    gina.conn.call(Request::Send { group, message: hello }).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    let is_member = |info: &ChatInfo, who: AccountId| info.members.iter().any(|m| m.account == who);
    assert!(is_member(&chat_info(&mut bob, group).await?, gina.account()), "Gina is in the meeting's chat");
    // Olga's device sees her join and her message.
    let texts = owner.texts(&chat_hex)?;
    assert!(
        texts.iter().any(|(_, _, t)| t == "hello from a guest"),
        "{texts:?} {:?}",
        owner.lines(&["read", &chat_hex])
    );

    // Her time ends; the node deletes her account and lists her as gone.
    tokio::time::sleep(Duration::from_millis(meeting.guests_until_ms.saturating_sub(now_ms()))).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let info = chat_info(&mut bob, group).await?;
        if info.gone.contains(&gina.account()) {
            assert!(is_member(&info, gina.account()), "still in the MLS group until a device removes her");
            break;
        }
        assert!(Instant::now() < deadline, "the node never listed the guest as gone: {info:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Olga's device syncs (any command does) and removes her.
    let members = owner.run(&["members", &chat_hex])?;
    let info = chat_info(&mut bob, group).await?;
    assert!(!is_member(&info, gina.account()), "Gina is out of the chat: {info:?}");
    assert!(info.gone.is_empty(), "nobody is left to remove: {info:?}");
    let listed: Vec<&str> =
        members["members"].as_array().context("members")?.iter().filter_map(|m| m["name"].as_str()).collect();
    assert!(!listed.contains(&"Gina"), "Olga's member list has no Gina: {listed:?}");

    // The chat goes on without her; her hello stays in its history.
    owner.run(&["send", &chat_hex, "thanks, everyone"])?;
    let texts = owner.texts(&chat_hex)?;
    let said: Vec<&str> = texts.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(said, ["hello from a guest", "thanks, everyone"]);
    Ok(())
}
