//! Scenario: the owner sets a chat's retention to "until every member device has fetched it".
//! The node keeps the ciphertext while any member device still has to fetch it, and drops it once
//! all have; a non-owner cannot change retention.

use std::time::Duration;
use veche_protocol::ids::{GroupId, Retention};
use veche_protocol::wire::{ErrorCode, Request, Response};
use veche_tests::raw::RawDevice;
use veche_tests::{Node, TempDir};

async fn fetch_all(device: &mut RawDevice, group: GroupId) -> anyhow::Result<Vec<u64>> {
    match device.conn.call(Request::Fetch { group, after: 0, limit: 1000 }).await? {
        Ok(Response::Messages { messages, .. }) => Ok(messages.iter().map(|m| m.seq).collect()),
        other => anyhow::bail!("fetch: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_fetched_drops_ciphertext_once_every_device_has_it() -> anyhow::Result<()> {
    let tmp = TempDir::new("retention");
    let node = Node::start(tmp.path(), &["--registration", "open", "--retention-interval", "200ms"])?;
    let mut owner = RawDevice::register(&node.url, "Owner", None).await?;
    let mut member = RawDevice::register(&node.url, "Member", None).await?;
    let group = GroupId([3; 16]);
    owner.create_chat(group, "Ephemeral").await?;
    let token = owner.invite(group).await?;
    member.join(&token).await?;

    let retention = Request::SetRetention { group, retention: Retention::UntilFetched };
    assert_eq!(member.conn.call(retention.clone()).await?.err().map(|e| e.code), Some(ErrorCode::Forbidden));
    assert!(owner.conn.call(retention).await?.is_ok());

    // The owner catches up (the join commit) and sends three messages.
    for m in match owner.conn.call(Request::Fetch { group, after: 0, limit: 10 }).await? {
        Ok(Response::Messages { messages, .. }) => messages,
        other => panic!("{other:?}"),
    } {
        owner.mls.process(&m.payload)?;
    }
    for text in ["one", "two", "three"] {
        let message = owner.mls.encrypt(group, text.as_bytes())?;
        assert!(owner.conn.call(Request::Send { group, message }).await?.is_ok());
    }
    owner.conn.call(Request::Ack { group, seq: 4 }).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The join commit too: the joiner has not acknowledged it yet.
    assert_eq!(fetch_all(&mut member, group).await?, vec![1, 2, 3, 4], "kept while the member has not fetched");

    // The member acknowledges two of three: only those go.
    member.conn.call(Request::Ack { group, seq: 3 }).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fetch_all(&mut member, group).await?, vec![4]);
    member.conn.call(Request::Ack { group, seq: 4 }).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fetch_all(&mut member, group).await?, Vec::<u64>::new(), "dropped once every device has it");
    // New messages still flow.
    let message = owner.mls.encrypt(group, b"four")?;
    assert_eq!(owner.conn.call(Request::Send { group, message }).await?, Ok(Response::Stored { seq: 5 }));
    assert_eq!(fetch_all(&mut member, group).await?, vec![5]);
    Ok(())
}
