//! Scenario: the home node refuses MLS traffic it must not order: commits and messages for a
//! stale epoch (with the current epoch, so the device can fetch and retry), messages from
//! non-members, messages whose MLS group differs from the chat, garbage and oversized payloads,
//! commits whose GroupInfo does not match, and member actions reserved for owners and admins.

use veche_protocol::ids::{ChatKind, GroupId};
use veche_protocol::wire::{ErrorCode, Request, Response};
use veche_tests::raw::{Answer, RawDevice};
use veche_tests::{Node, TempDir};

fn code(answer: &Answer) -> Option<ErrorCode> {
    answer.as_ref().err().map(|e| e.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_foreign_and_forged_group_traffic_is_refused() -> anyhow::Result<()> {
    let tmp = TempDir::new("mls");
    let node = Node::start(tmp.path(), &["--registration", "open"])?;
    let mut owner = RawDevice::register(&node.url, "Owner", None).await?;
    let mut member = RawDevice::register(&node.url, "Member", None).await?;
    let mut outsider = RawDevice::register(&node.url, "Outsider", None).await?;
    let third = RawDevice::register(&node.url, "Third", None).await?;

    // The owner creates a chat and an invite; the member joins by external commit (epoch 0 -> 1).
    let group = GroupId([42; 16]);
    owner.create_chat(group, "Refusals").await?;
    let token = owner.invite(group).await?;
    let (seq, join_commit) = member.join(&token).await?;
    assert_eq!(seq, 1);

    // The owner's device has not processed the join: its commit and message are for epoch 0.
    let Ok(Response::KeyPackages(packages)) =
        owner.conn.call(Request::ClaimKeyPackages { account: third.account() }).await?
    else {
        panic!()
    };
    let stale = owner.mls.add_members(group, &packages)?;
    let answer = owner
        .conn
        .call(Request::Commit { group, commit: stale.commit, welcome: stale.welcome, group_info: stale.group_info })
        .await?;
    assert_eq!(code(&answer), Some(ErrorCode::StaleEpoch { current: 1 }), "stale commit names the current epoch");
    owner.mls.discard_pending_commit(group)?;
    let message = owner.mls.encrypt(group, b"old epoch")?;
    assert_eq!(
        code(&owner.conn.call(Request::Send { group, message }).await?),
        Some(ErrorCode::StaleEpoch { current: 1 })
    );

    // Fetch, process, retry: accepted.
    let Ok(Response::Messages { messages, .. }) =
        owner.conn.call(Request::Fetch { group, after: 0, limit: 100 }).await?
    else {
        panic!()
    };
    for m in messages {
        owner.mls.process(&m.payload)?;
    }
    // A commit with a GroupInfo of the wrong epoch is refused.
    let bundle = owner.mls.add_members(group, &packages)?;
    let wrong_info = owner.mls.group_info(group)?; // still the current epoch, not the next one
    let answer = owner
        .conn
        .call(Request::Commit {
            group,
            commit: bundle.commit.clone(),
            welcome: bundle.welcome.clone(),
            group_info: wrong_info,
        })
        .await?;
    assert_eq!(code(&answer), Some(ErrorCode::BadRequest));
    // ...and one whose GroupInfo omits the member it adds.
    let answer = owner
        .conn
        .call(Request::Commit {
            group,
            commit: bundle.commit.clone(),
            welcome: None,
            group_info: bundle.group_info.clone(),
        })
        .await?;
    assert_eq!(code(&answer), Some(ErrorCode::BadRequest), "adding without a Welcome");
    let answer = owner
        .conn
        .call(Request::Commit { group, commit: bundle.commit, welcome: bundle.welcome, group_info: bundle.group_info })
        .await?;
    assert_eq!(answer, Ok(Response::Stored { seq: 2 }));
    owner.mls.merge_pending_commit(group)?;
    let message = owner.mls.encrypt(group, b"current epoch")?;
    assert_eq!(owner.conn.call(Request::Send { group, message }).await?, Ok(Response::Stored { seq: 3 }));

    // An outsider forges a group with the same id: not a member, refused; it cannot read either.
    outsider.mls.create_group(group, ChatKind::Group)?;
    let forged = outsider.mls.encrypt(group, b"let me in")?;
    assert_eq!(
        code(&outsider.conn.call(Request::Send { group, message: forged.clone() }).await?),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(&outsider.conn.call(Request::Fetch { group, after: 0, limit: 10 }).await?),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(code(&outsider.conn.call(Request::Chat { group }).await?), Some(ErrorCode::NotFound));
    // A message whose MLS group is not the chat it is sent to.
    let other = GroupId([7; 16]);
    assert_eq!(
        code(&outsider.conn.call(Request::Send { group: other, message: forged }).await?),
        Some(ErrorCode::BadRequest)
    );
    // Garbage and oversized payloads.
    assert_eq!(
        code(&member.conn.call(Request::Send { group, message: vec![1, 2, 3] }).await?),
        Some(ErrorCode::Malformed)
    );
    let huge = vec![0u8; veche_protocol::MAX_MLS_MESSAGE_BYTES + 1];
    assert_eq!(code(&member.conn.call(Request::Send { group, message: huge }).await?), Some(ErrorCode::TooLarge));
    // Owner/admin actions are refused to a member; acks cannot run ahead of the log.
    let invite_attempt = Request::CreateInvite { group: Some(group), max_uses: None, expires_in_secs: None };
    assert_eq!(code(&member.conn.call(invite_attempt).await?), Some(ErrorCode::Forbidden));
    assert_eq!(code(&member.conn.call(Request::Invites { group }).await?), Some(ErrorCode::Forbidden));
    let retention = Request::SetRetention { group, retention: veche_protocol::ids::Retention::Days(1) };
    assert_eq!(code(&member.conn.call(retention).await?), Some(ErrorCode::Forbidden));
    assert_eq!(code(&member.conn.call(Request::Ack { group, seq: 99 }).await?), Some(ErrorCode::BadRequest));
    // Joining twice with the same link: already a member (a retry of the same commit is idempotent).
    let again =
        member.conn.call(Request::Join { token: token.clone(), commit: join_commit, group_info: Vec::new() }).await?;
    assert!(matches!(code(&again), Some(ErrorCode::Malformed | ErrorCode::BadRequest)), "{again:?}");
    // The member still reads everything in order.
    let Ok(Response::Messages { messages, head }) =
        member.conn.call(Request::Fetch { group, after: 1, limit: 100 }).await?
    else {
        panic!()
    };
    assert_eq!((messages.iter().map(|m| m.seq).collect::<Vec<_>>(), head), (vec![2, 3], 3));
    for m in messages {
        member.mls.process(&m.payload)?;
    }
    assert!(!node.log().contains("panicked"));
    Ok(())
}
