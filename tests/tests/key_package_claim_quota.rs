//! Scenario: Mallory, a member, claims Carol's key packages 250 times in a row to drain them.
//! The first claims succeed up to the per-target quota, the rest are refused as rate limited;
//! Carol keeps most of her one-time packages and Bob can still add her. A claim for an account
//! that does not exist and one for a meeting's guest get the very same refusal, so a claim tells
//! nobody whether an account exists or is a guest.

use veche_protocol::ids::{AccountId, GroupId};
use veche_protocol::meeting::{MeetingInfo, MeetingSettings};
use veche_protocol::wire::{ApiError, ErrorCode, InviteToken, Request, Response};
use veche_tests::raw::RawDevice;
use veche_tests::{Node, TempDir};

/// One-time packages Carol keeps on the node before the flood.
const CAROL_PACKAGES: usize = 50;

async fn claim(device: &mut RawDevice, account: AccountId) -> anyhow::Result<Result<Vec<Vec<u8>>, ApiError>> {
    match device.conn.call(Request::ClaimKeyPackages { account }).await? {
        Ok(Response::KeyPackages(packages)) => Ok(Ok(packages)),
        Ok(other) => anyhow::bail!("claim: {other:?}"),
        Err(e) => Ok(Err(e)),
    }
}

async fn count(device: &mut RawDevice) -> anyhow::Result<u32> {
    match device.conn.call(Request::KeyPackageCount).await? {
        Ok(Response::KeyPackageCount(n)) => Ok(n),
        other => anyhow::bail!("key package count: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_drain_key_packages_or_probe_accounts() -> anyhow::Result<()> {
    let tmp = TempDir::new("key-package-quota");
    let node = Node::start(
        tmp.path(),
        &["--registration", "open", "--mdns", "false", "--media-port", "0", "--media-address", "127.0.0.1"],
    )?;
    let mut carol = RawDevice::register(&node.url, "Carol", None).await?;
    let have = count(&mut carol).await? as usize;
    let more = carol.mls.key_packages(CAROL_PACKAGES - have)?;
    let publish = Request::PublishKeyPackages { packages: more, last_resort: None };
    carol.conn.call(publish).await?.map_err(|e| anyhow::anyhow!("publish: {e}"))?;
    assert_eq!(count(&mut carol).await?, CAROL_PACKAGES as u32);
    let carol_id = carol.account();

    // 250 claims from Mallory: a run of successes, then only refusals.
    let mut mallory = RawDevice::register(&node.url, "Mallory", None).await?;
    let mut granted = 0;
    let mut refusals = Vec::new();
    for i in 0..250 {
        match claim(&mut mallory, carol_id).await? {
            Ok(packages) => {
                assert_eq!(packages.len(), 1, "one package for Carol's one device");
                assert!(refusals.is_empty(), "claim {i} succeeded after a refusal");
                granted += 1;
            }
            Err(e) => refusals.push(e),
        }
    }
    let left = count(&mut carol).await?;
    eprintln!("250 claims: {granted} granted, {} refused; Carol keeps {left} of {CAROL_PACKAGES}", refusals.len());
    assert!(granted >= 1, "a member may add Carol at all");
    assert!(granted <= 20, "{granted} claims granted to one member for one account");
    assert!(refusals.iter().all(|e| e.code == ErrorCode::RateLimited), "refused as rate limited: {refusals:?}");
    assert!(refusals[0].message.contains("key package"), "the refusal says what: {}", refusals[0]);
    assert_eq!(left as usize, CAROL_PACKAGES - granted, "Carol lost only the granted packages");

    // Bob can still add Carol, on her one-time packages.
    let mut bob = RawDevice::register(&node.url, "Bob", None).await?;
    let package = claim(&mut bob, carol_id).await?.map_err(|e| anyhow::anyhow!("Bob's claim: {e}"))?;
    assert_eq!(package.len(), 1);
    assert_eq!(count(&mut carol).await?, left - 1, "Bob got a one-time package");

    // A meeting's guest and an account that does not exist: the same refusal, word for word.
    let meeting_chat = GroupId([0x3e; 16]);
    carol.create_chat(meeting_chat, "Town hall").await?;
    let settings = MeetingSettings {
        title: "Town hall".into(),
        description: String::new(),
        start_ms: None,
        duration_mins: 60,
        lobby: false,
        webinar: false,
    };
    let (meeting, secret): (MeetingInfo, _) =
        match carol.conn.call(Request::CreateMeeting { group: meeting_chat, settings }).await? {
            Ok(Response::MeetingCreated { meeting, secret }) => (*meeting, secret),
            other => anyhow::bail!("create meeting: {other:?}"),
        };
    let link = InviteToken { invite: meeting.invite, secret };
    let gina = RawDevice::register(&node.url, "Gina", Some(link.clone())).await?;
    let guest = claim(&mut bob, gina.account()).await?.expect_err("a guest's packages are not handed out");
    let unknown = claim(&mut bob, AccountId([0x42; 32])).await?.expect_err("no such account");
    assert_eq!(guest, unknown, "a guest and an unknown account are refused alike");
    assert_ne!(guest.code, ErrorCode::RateLimited, "{guest}");
    eprintln!("refusal for a guest or an unknown account: {guest}");

    node.http_get("/healthz")?;
    assert!(!node.log().contains("panicked"), "the node panicked");
    Ok(())
}
