//! Scenario: invite links are bounded. Alice, who runs a chat, may hold at most 50 live invite
//! links at once: the next one is refused with `QuotaExceeded` until one of hers expires or she
//! revokes one (and the node keeps at most 500 of hers, dead ones included). A link made without an expiry gets the node's default one (30 days); a meeting's
//! link admits a bounded number of people. Gina, a meeting's guest, is deleted from the node once
//! the meeting's guest time is over: she can no longer sign in as a known device, and her profile
//! is gone, while the meeting's chat keeps its history for its members.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use veche_protocol::ids::GroupId;
use veche_protocol::meeting::{MeetingInfo, MeetingSettings};
use veche_protocol::wire::{ErrorCode, InviteInfo, InviteToken, Request, Response};
use veche_tests::raw::RawDevice;
use veche_tests::{Node, TempDir};

/// The documented quota of live invite links per member.
const QUOTA: usize = 50;
/// The documented default expiry of a link made without one.
const DEFAULT_EXPIRY_MS: u64 = 30 * 24 * 3600 * 1000;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

async fn create_invite(
    device: &mut RawDevice,
    group: GroupId,
    expires_in_secs: Option<u64>,
) -> anyhow::Result<Result<InviteInfo, veche_protocol::wire::ApiError>> {
    let request = Request::CreateInvite { group: Some(group), max_uses: None, expires_in_secs };
    Ok(match device.conn.call(request).await? {
        Ok(Response::InviteCreated { invite, .. }) => Ok(invite),
        Ok(other) => anyhow::bail!("unexpected answer {other:?}"),
        Err(e) => Err(e),
    })
}

async fn invites(device: &mut RawDevice, group: GroupId) -> anyhow::Result<Vec<InviteInfo>> {
    match device.conn.call(Request::Invites { group }).await? {
        Ok(Response::Invites(list)) => Ok(list),
        other => anyhow::bail!("invites: {other:?}"),
    }
}

fn start(tmp: &TempDir, extra: &[&str]) -> anyhow::Result<Node> {
    let mut args = vec!["--registration", "open", "--mdns", "false", "--media-address", "127.0.0.1"];
    args.extend_from_slice(extra);
    Node::start(tmp.path(), &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_holds_at_most_fifty_live_invite_links() -> anyhow::Result<()> {
    let tmp = TempDir::new("invite-quota");
    let node = start(&tmp, &[])?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let chat = GroupId([0x51; 16]);
    let other = GroupId([0x52; 16]);
    alice.create_chat(chat, "Garden").await?;
    alice.create_chat(other, "Workshop").await?;

    // One short-lived link, the rest spread over two chats: the quota is per member.
    let short = create_invite(&mut alice, chat, Some(1)).await?.expect("a short-lived link");
    let mut made = vec![short.invite];
    let mut refused = None;
    for i in 1..200 {
        let group = if i % 2 == 0 { chat } else { other };
        match create_invite(&mut alice, group, None).await? {
            Ok(info) => made.push(info.invite),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert_eq!(made.len(), QUOTA, "exactly {QUOTA} live links are allowed");
    let refused = refused.expect("the link after the quota is refused");
    assert_eq!(refused.code, ErrorCode::QuotaExceeded, "{refused}");
    assert!(refused.message.contains("50") && refused.message.contains("revoke"), "says why: {refused}");

    // Listing each chat shows exactly its own links (from the index, not another chat's).
    let in_chat = invites(&mut alice, chat).await?;
    let in_other = invites(&mut alice, other).await?;
    assert_eq!(in_chat.len() + in_other.len(), QUOTA);
    assert!(in_chat.iter().all(|i| i.group == Some(chat)) && in_other.iter().all(|i| i.group == Some(other)));
    assert!(in_chat.iter().any(|i| i.invite == short.invite));

    // The short-lived link expires: its place is free again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    create_invite(&mut alice, chat, None).await?.expect("an expired link no longer counts");
    let again = create_invite(&mut alice, chat, None).await?.expect_err("back at the quota");
    assert_eq!(again.code, ErrorCode::QuotaExceeded);

    // Revoking one frees a place too; the revoked link stays listed as revoked.
    let revoked = made[5];
    alice.conn.call(Request::RevokeInvite { invite: revoked }).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    create_invite(&mut alice, other, None).await?.expect("a revoked link no longer counts");
    let all: Vec<InviteInfo> =
        invites(&mut alice, chat).await?.into_iter().chain(invites(&mut alice, other).await?).collect();
    assert!(all.iter().any(|i| i.invite == revoked && i.revoked), "the revoked link is listed as revoked");
    assert_eq!(all.iter().filter(|i| !i.revoked && i.expires_at_ms.is_some_and(|t| t > now_ms())).count(), QUOTA);

    // Revoking and making links in a loop: dead links are kept a while, and the node keeps at
    // most 500 links of one member, live or dead.
    alice.conn.call(Request::RevokeInvite { invite: made[6] }).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut refused = None;
    for _ in 0..600 {
        let newest = match create_invite(&mut alice, chat, None).await? {
            Ok(info) => info.invite,
            Err(e) => {
                refused = Some(e);
                break;
            }
        };
        alice.conn.call(Request::RevokeInvite { invite: newest }).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let refused = refused.expect("the node stops keeping more links of one member");
    assert_eq!(refused.code, ErrorCode::QuotaExceeded, "{refused}");
    assert!(refused.message.contains("500") && refused.message.contains("kept 7 days"), "{refused}");
    let stored = invites(&mut alice, chat).await?.len() + invites(&mut alice, other).await?.len();
    assert_eq!(stored, 500, "500 links of Alice's are stored");

    // Another member's quota is their own.
    let mut bob = RawDevice::register(&node.url, "Bob", None).await?;
    let bobs = GroupId([0x53; 16]);
    bob.create_chat(bobs, "Bob's").await?;
    create_invite(&mut bob, bobs, None).await?.expect("Bob has his own quota");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_without_expiry_get_the_default_and_meeting_links_a_bounded_number_of_uses() -> anyhow::Result<()> {
    let tmp = TempDir::new("invite-defaults");
    let node = start(&tmp, &[])?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let chat = GroupId([0x61; 16]);
    alice.create_chat(chat, "Choir").await?;

    let before = now_ms();
    let plain = create_invite(&mut alice, chat, None).await?.expect("a link without expiry");
    let expires = plain.expires_at_ms.expect("a link made without an expiry gets the default one");
    assert!(
        expires >= before + DEFAULT_EXPIRY_MS && expires <= now_ms() + DEFAULT_EXPIRY_MS,
        "expires in 30 days: {expires} (made at {before})"
    );
    let hour = create_invite(&mut alice, chat, Some(3600)).await?.expect("an explicit expiry");
    let at = hour.expires_at_ms.expect("kept");
    assert!(at >= before + 3_600_000 && at <= now_ms() + 3_600_000, "an explicit expiry is kept");
    let too_long = create_invite(&mut alice, chat, Some(2 * 365 * 24 * 3600)).await?.expect_err("over the maximum");
    assert_eq!(too_long.code, ErrorCode::BadRequest);

    let settings = MeetingSettings {
        title: "Rehearsal".into(),
        description: String::new(),
        start_ms: None,
        duration_mins: 60,
        lobby: false,
        webinar: false,
    };
    let meeting: MeetingInfo = match alice.conn.call(Request::CreateMeeting { group: chat, settings }).await? {
        Ok(Response::MeetingCreated { meeting, .. }) => *meeting,
        other => anyhow::bail!("create meeting: {other:?}"),
    };
    let link = invites(&mut alice, chat).await?.into_iter().find(|i| i.invite == meeting.invite).expect("listed");
    let uses = link.max_uses.expect("a meeting link admits a bounded number of people");
    assert!((1..=1000).contains(&uses), "a bounded number of uses: {uses}");
    assert_eq!(link.expires_at_ms, Some(meeting.guests_until_ms), "it expires with the guests' time");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_are_deleted_once_their_meeting_is_over() -> anyhow::Result<()> {
    let tmp = TempDir::new("guest-cleanup");
    let node = start(&tmp, &["--guest-grace", "0s", "--retention-interval", "200ms"])?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let chat = GroupId([0x71; 16]);
    alice.create_chat(chat, "Stand-up").await?;
    // A one-minute meeting that began 55 s ago: guests may stay 5 s more.
    let settings = MeetingSettings {
        title: "Stand-up".into(),
        description: String::new(),
        start_ms: Some(now_ms() - 55_000),
        duration_mins: 1,
        lobby: false,
        webinar: false,
    };
    let (meeting, secret) = match alice.conn.call(Request::CreateMeeting { group: chat, settings }).await? {
        Ok(Response::MeetingCreated { meeting, secret }) => (*meeting, secret),
        other => anyhow::bail!("create meeting: {other:?}"),
    };
    let link = InviteToken { invite: meeting.invite, secret };
    let mut gina = RawDevice::register(&node.url, "Gina", Some(link.clone())).await?;
    gina.join(&link).await?;
    let message = gina.mls.encrypt(chat, b"hello from a guest")?;
    let Ok(Response::Stored { seq }) = gina.conn.call(Request::Send { group: chat, message }).await? else {
        anyhow::bail!("the guest's message is stored")
    };
    let profiles = |list: Response| match list {
        Response::Profiles(p) => p,
        _ => Vec::new(),
    };
    let known = alice.conn.call(Request::Profiles { accounts: vec![gina.account()] }).await?;
    assert_eq!(profiles(known.map_err(|e| anyhow::anyhow!("{e}"))?).len(), 1, "Gina is known during the meeting");

    // After the guests' time (and a clean-up pass) Gina's account is gone.
    let wait = meeting.guests_until_ms.saturating_sub(now_ms()) + 1500;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = alice.conn.call(Request::Profiles { accounts: vec![gina.account()] }).await?;
        if profiles(answer.map_err(|e| anyhow::anyhow!("{e}"))?).is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the guest's account was not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let again = gina.reconnect(&node.url).await.expect_err("a deleted guest cannot sign in");
    assert!(again.to_string().contains("not registered"), "signed in as an unknown device: {again}");
    let registered_again =
        RawDevice::register(&node.url, "Gina again", Some(link)).await.err().expect("the meeting link has expired");
    assert!(registered_again.to_string().contains("expired"), "{registered_again}");

    // The meeting's chat keeps its history for its members.
    let Ok(Response::Messages { messages, .. }) =
        alice.conn.call(Request::Fetch { group: chat, after: 0, limit: 100 }).await?
    else {
        anyhow::bail!("fetch")
    };
    assert!(messages.iter().any(|m| m.seq == seq), "the guest's message stays in the chat's history");
    Ok(())
}
