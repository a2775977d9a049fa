//! Scenario: a member's device rejoins its chat by an external commit that replaces its own leaf
//! (a resync, sent with `Commit`). The node accepts that, and nothing more: the same commit
//! altered to remove the owner's leaf instead is refused (the node does not verify handshake
//! signatures, so only its own check stands between a member and someone else's leaf), as is an
//! external commit from someone who is not a member. After the genuine resync the owner's device
//! reads the member again and the roster is unchanged.

use veche_mls::Processed;
use veche_protocol::ids::{GroupId, Role};
use veche_protocol::wire::{ErrorCode, Request, Response};
use veche_tests::raw::RawDevice;
use veche_tests::{Node, TempDir};

/// The Remove proposal of leaf `leaf` inside a commit: ProposalOrRef `proposal` (1), proposal
/// type `remove` (3), the leaf index (RFC 9420 §12.1.3).
fn remove_of(leaf: u32) -> Vec<u8> {
    let mut bytes = vec![1, 0, 3];
    bytes.extend_from_slice(&leaf.to_be_bytes());
    bytes
}

fn replace_once(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at: Vec<usize> = haystack.windows(from.len()).enumerate().filter(|(_, w)| *w == from).map(|(i, _)| i).collect();
    assert_eq!(at.len(), 1, "the remove proposal occurs once in the commit");
    let mut out = haystack.to_vec();
    out[at[0]..at[0] + from.len()].copy_from_slice(to);
    out
}

async fn head(device: &mut RawDevice, group: GroupId) -> anyhow::Result<u64> {
    match device.conn.call(Request::Fetch { group, after: 0, limit: 1000 }).await? {
        Ok(Response::Messages { head, .. }) => Ok(head),
        other => anyhow::bail!("fetch: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_may_remove_only_the_devices_own_leaf() -> anyhow::Result<()> {
    let tmp = TempDir::new("resync-own-leaf");
    let node = Node::start(tmp.path(), &["--registration", "open", "--mdns", "false"])?;
    let mut owner = RawDevice::register(&node.url, "Owner", None).await?;
    let group = GroupId([0x5e; 16]);
    owner.create_chat(group, "Council").await?;
    let token = owner.invite(group).await?;
    let mut mallory = RawDevice::register(&node.url, "Mallory", None).await?;
    let (joined, join_commit) = mallory.join(&token).await?;
    assert!(matches!(owner.mls.process(&join_commit)?, Processed::Commit { .. }));
    let before = head(&mut owner, group).await?;
    assert_eq!(before, joined);

    // Mallory's device rejoins from the chat's current GroupInfo, which members may ask for.
    let Ok(Response::GroupInfo(info)) = mallory.conn.call(Request::GroupInfo { group }).await? else {
        anyhow::bail!("a member gets the chat's GroupInfo")
    };
    let (_, resync) = mallory.mls.join_external(&info)?;
    assert_eq!(resync.removed.len(), 1, "the external commit removes Mallory's old leaf");
    // The owner is at leaf 0, Mallory at leaf 1. The same commit, removing the owner's leaf:
    let forged = replace_once(&resync.commit, &remove_of(1), &remove_of(0));
    let request = Request::Commit { group, commit: forged, welcome: None, group_info: resync.group_info.clone() };
    let refused = mallory.conn.call(request).await?.expect_err("removing another account's leaf is refused");
    assert_eq!(refused.code, ErrorCode::Forbidden, "{refused}");
    assert!(refused.message.contains("removes no other"), "{refused}");
    assert_eq!(head(&mut owner, group).await?, before, "nothing stored");

    // Someone who is not a member cannot use an external commit through `Commit` to get in.
    let mut eve = RawDevice::register(&node.url, "Eve", None).await?;
    let not_served = eve.conn.call(Request::GroupInfo { group }).await?.expect_err("not a member");
    assert_eq!(not_served.code, ErrorCode::NotFound, "{not_served}");
    let (_, outside) = eve.mls.join_external(&info)?;
    let request = Request::Commit { group, commit: outside.commit, welcome: None, group_info: outside.group_info };
    let refused = eve.conn.call(request).await?.expect_err("an outsider's external commit is refused");
    assert_eq!(refused.code, ErrorCode::Forbidden, "{refused}");

    // The genuine resync is stored; the owner's device applies it as Mallory replacing her own
    // leaf, and reads her again. Roles and members are as they were.
    let request =
        Request::Commit { group, commit: resync.commit.clone(), welcome: None, group_info: resync.group_info };
    let Ok(Response::Stored { seq }) = mallory.conn.call(request).await? else { anyhow::bail!("the resync is stored") };
    assert_eq!(seq, before + 1);
    match owner.mls.process(&resync.commit)? {
        Processed::Commit { added, removed, .. } => {
            assert_eq!(added.iter().map(|m| m.account).collect::<Vec<_>>(), [mallory.account()]);
            assert_eq!(removed.iter().map(|m| m.account).collect::<Vec<_>>(), [mallory.account()]);
        }
        other => anyhow::bail!("the resync is a commit: {other:?}"),
    }
    let message = mallory.mls.encrypt(group, b"back again")?;
    let Ok(Response::Stored { .. }) = mallory.conn.call(Request::Send { group, message: message.clone() }).await?
    else {
        anyhow::bail!("Mallory sends at the new epoch")
    };
    match owner.mls.process(&message)? {
        Processed::Application { sender, plaintext } => {
            assert_eq!(sender.account, mallory.account());
            assert_eq!(plaintext, b"back again");
        }
        other => anyhow::bail!("an application message: {other:?}"),
    }
    let Ok(Response::Chat(chat)) = owner.conn.call(Request::Chat { group }).await? else { anyhow::bail!("chat") };
    let mut roles: Vec<_> = chat.members.iter().map(|m| (m.display_name.clone(), m.role)).collect();
    roles.sort();
    assert_eq!(roles, [("Mallory".to_string(), Role::Member), ("Owner".to_string(), Role::Owner)]);
    Ok(())
}
