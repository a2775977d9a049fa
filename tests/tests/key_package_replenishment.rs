//! Scenario: a device's one-time key packages run out as others add it to chats; the node then
//! hands out its last-resort package; the next time the device is online it uploads fresh ones,
//! and a Welcome built on a fresh one opens (their private keys were saved before upload).
//! Several members add her: the node lets one member claim an account's packages only ten times
//! in ten minutes.

use std::collections::HashSet;
use veche_protocol::ids::{AccountId, GroupId};
use veche_protocol::wire::{Request, Response};
use veche_tests::raw::RawDevice;
use veche_tests::{Client, Node, TempDir};

/// Claims of one member for one account the node allows per window (`MEMBER_CLAIMS_PER_ACCOUNT`).
const CLAIMS_PER_MEMBER: usize = 10;

/// Members who add Carol, each within its quota.
struct Others {
    devices: Vec<RawDevice>,
    claims: usize,
}

impl Others {
    async fn claim(&mut self, account: AccountId) -> anyhow::Result<Vec<u8>> {
        let device = &mut self.devices[self.claims / CLAIMS_PER_MEMBER];
        self.claims += 1;
        claim(device, account).await
    }
}

async fn claim(device: &mut RawDevice, account: AccountId) -> anyhow::Result<Vec<u8>> {
    match device.conn.call(Request::ClaimKeyPackages { account }).await? {
        Ok(Response::KeyPackages(mut packages)) if packages.len() == 1 => Ok(packages.remove(0)),
        other => anyhow::bail!("claim: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_key_packages_are_replenished_and_usable() -> anyhow::Result<()> {
    let tmp = TempDir::new("keypackages");
    let node = Node::start(tmp.path(), &["--registration", "open"])?;
    let carol = Client::new(tmp.path(), "carol", &node.url);
    carol.run(&["register", "--name", "Carol"])?;
    let carol_id: AccountId = carol.account()?.parse()?;
    let mut devices = Vec::new();
    for i in 0..6 {
        devices.push(RawDevice::register(&node.url, &format!("Other {i}"), None).await?);
    }
    let mut others = Others { devices, claims: 0 };

    // Drain the 50 one-time packages; then the last-resort one comes back every time.
    let mut seen = HashSet::new();
    for _ in 0..50 {
        assert!(seen.insert(others.claim(carol_id).await?), "one-time packages are distinct");
    }
    let last_resort = others.claim(carol_id).await?;
    assert!(!seen.contains(&last_resort));
    assert_eq!(others.claim(carol_id).await?, last_resort, "the last-resort package is reused");

    // Carol comes online (any command): she tops up.
    let carol_blocking = tokio::task::spawn_blocking(move || carol.run(&["chats"]).map(|_| carol));
    let carol = carol_blocking.await??;
    let fresh = others.claim(carol_id).await?;
    assert_ne!(fresh, last_resort, "a fresh one-time package after replenishing");
    assert!(!seen.contains(&fresh));

    // A chat built on the fresh package: Carol's device opens the Welcome and reads the chat.
    let group = GroupId([77; 16]);
    let other = &mut others.devices[0];
    other.create_chat(group, "Fresh").await?;
    let bundle = other.mls.add_members(group, &[fresh])?;
    let commit =
        Request::Commit { group, commit: bundle.commit, welcome: bundle.welcome, group_info: bundle.group_info };
    assert!(other.conn.call(commit).await?.is_ok());
    other.mls.merge_pending_commit(group)?;
    let message =
        other.mls.encrypt(group, &veche_protocol::content::AppMessage::text("welcome, Carol", 0)?.encode()?)?;
    assert!(other.conn.call(Request::Send { group, message }).await?.is_ok());
    let texts = tokio::task::spawn_blocking(move || carol.texts(&group.to_hex())).await??;
    assert_eq!(
        texts.into_iter().map(|(_, n, t)| (n, t)).collect::<Vec<_>>(),
        vec![("Other 0".to_string(), "welcome, Carol".to_string())]
    );
    Ok(())
}
