//! Meetings and their guests (spec/calls.md §6).
//!
//! A meeting is a group chat its owner registered as one: the chat's call is the meeting, with
//! the meeting's settings (webinar or not, a lobby for guests), and the chat stays after it. The
//! meeting link is a chat invite that expires when guests stop being admitted; registering with
//! it makes a *guest* account, which may only take part in that meeting (its chat and its call)
//! and can no longer sign in once the meeting's guest time is over.

use super::{ApiResult, Node, OrInternal, Session, err};
use crate::store::records::{self, Chat, Guest, now_ms};
use crate::store::tables::{CHAT_HOMES, CHATS, GUESTS, MEETINGS, MEMBERSHIP};
use redb::ReadableTable;
use veche_protocol::ids::{AccountId, ChatKind, GroupId, Role};
use veche_protocol::link::SECRET_LEN;
use veche_protocol::meeting::{self, MeetingInfo, MeetingSettings};
use veche_protocol::wire::{ApiError, ErrorCode, Request};

/// Makes a group chat the session's account owns a meeting. Returns it with its link's secret.
pub async fn create(
    node: &Node,
    session: Session,
    group: GroupId,
    settings: MeetingSettings,
) -> ApiResult<(MeetingInfo, [u8; SECRET_LEN])> {
    let now = now_ms();
    let settings =
        meeting::validate(&settings, now).map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    let start_ms = settings.start_ms.unwrap_or(now);
    let end_ms = start_ms + u64::from(settings.duration_mins) * 60_000;
    let guests_until_ms = end_ms + node.info.guest_grace.as_millis() as u64;
    if guests_until_ms <= now {
        return err(ErrorCode::BadRequest, "this meeting would already be over");
    }
    let (invite_id, secret, invite) = super::invites::new_invite(
        Some(group),
        session.account,
        Some(guests_until_ms),
        Some(super::invites::MEETING_LINK_MAX_USES),
    )?;
    let info = MeetingInfo {
        group,
        settings,
        organizer: session.account,
        created_ms: now,
        start_ms,
        guests_until_ms,
        invite: invite_id,
    };
    let stored = info.clone();
    node.writer
        .run(move |ctx| {
            let txn = ctx.read();
            let chat: Option<Chat> = records::get(&txn.open_table(CHATS).or_internal()?, group.0)?;
            let Some(chat) = chat.filter(|c| c.roster.contains_key(&session.account)) else {
                return err(ErrorCode::NotFound, "no such chat, or you are not a member");
            };
            if txn.open_table(CHAT_HOMES).or_internal()?.get(group.0).or_internal()?.is_some() {
                return err(ErrorCode::Unavailable, "meetings are held on their chat's home node");
            }
            if chat.kind != ChatKind::Group {
                return err(ErrorCode::BadRequest, "a meeting is a group chat");
            }
            if chat.role_of(&session.account) != Some(Role::Owner) {
                return err(ErrorCode::Forbidden, "only the chat's owner makes it a meeting");
            }
            if txn.open_table(MEETINGS).or_internal()?.get(group.0).or_internal()?.is_some() {
                return err(ErrorCode::Conflict, "this chat is already a meeting");
            }
            let txn = ctx.write();
            super::invites::store_new(txn, invite_id, &invite)?;
            txn.open_table(MEETINGS)
                .or_internal()?
                .insert(group.0, records::encode(&stored).as_slice())
                .or_internal()?;
            Ok(())
        })
        .await?;
    tracing::info!(%group, "meeting created");
    Ok((info, secret))
}

/// The meeting of a chat, if it is one.
pub fn load(txn: &redb::ReadTransaction, group: GroupId) -> ApiResult<Option<MeetingInfo>> {
    records::get(&txn.open_table(MEETINGS).or_internal()?, group.0)
}

/// The meeting of a chat, inside a write transaction.
pub fn load_for_write(txn: &redb::WriteTransaction, group: GroupId) -> ApiResult<Option<MeetingInfo>> {
    records::get(&txn.open_table(MEETINGS).or_internal()?, group.0)
}

/// The guest record of an account, if it is a guest.
pub fn guest(txn: &redb::ReadTransaction, account: &AccountId) -> ApiResult<Option<Guest>> {
    records::get(&txn.open_table(GUESTS).or_internal()?, account.0)
}

/// Meetings of the chats the account is in (a guest's: its meeting).
pub fn list(node: &Node, session: &Session) -> ApiResult<Vec<MeetingInfo>> {
    let txn = node.store.read().or_internal()?;
    let mut out = Vec::new();
    let membership = txn.open_table(MEMBERSHIP).or_internal()?;
    for item in membership.range((session.account.0, [0u8; 16])..=(session.account.0, [0xff; 16])).or_internal()? {
        let (key, _) = item.or_internal()?;
        if let Some(m) = load(&txn, GroupId(key.value().1))? {
            out.push(m);
        }
    }
    if out.is_empty()
        && let Some(g) = guest(&txn, &session.account)?
        && let Some(m) = load(&txn, g.group)?
    {
        // A guest who has not joined its meeting's chat yet.
        out.push(m);
    }
    out.sort_by_key(|m| m.start_ms);
    Ok(out)
}

/// Refuses a guest's sign-in once its meeting's guest time is over.
pub fn check_guest_time(guest: &Guest) -> ApiResult<()> {
    if guest.until_ms <= now_ms() {
        return err(ErrorCode::Forbidden, "this guest pass was for a meeting that is over");
    }
    Ok(())
}

/// What a guest of the meeting in `group` may ask: to take part in its meeting (its chat, its
/// call), nothing else. `token_group` is the chat an invite in the request admits to.
pub fn guest_may(request: &Request, group: GroupId, token_group: impl Fn() -> Option<GroupId>) -> ApiResult<()> {
    let allowed = match request {
        Request::Me | Request::PublishKeyPackages { .. } | Request::KeyPackageCount | Request::Profiles { .. } => true,
        Request::Chats | Request::Welcomes | Request::AckWelcome { .. } | Request::Meetings => true,
        Request::BindHome { .. } => true,
        Request::Chat { group: g }
        | Request::Commit { group: g, .. }
        | Request::GroupInfo { group: g }
        | Request::Send { group: g, .. }
        | Request::Fetch { group: g, .. }
        | Request::Ack { group: g, .. }
        | Request::CallJoin { group: g, .. }
        | Request::CallAnswer { group: g, .. }
        | Request::CallLeave { group: g }
        | Request::CallModerate { group: g, .. }
        | Request::CallHand { group: g, .. }
        | Request::CallEnd { group: g }
        | Request::CallConfigure { group: g, .. }
        | Request::CallDecline { group: g } => *g == group,
        Request::JoinGroupInfo { .. } | Request::Join { .. } => token_group() == Some(group),
        _ => false,
    };
    if !allowed {
        return err(ErrorCode::Forbidden, "a guest takes part in its meeting only");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEETING: GroupId = GroupId([1; 16]);
    const OTHER: GroupId = GroupId([2; 16]);

    #[test]
    fn a_guest_may_take_part_in_its_meeting_only() {
        let allowed = |r: &Request, token: Option<GroupId>| guest_may(r, MEETING, || token).is_ok();
        assert!(allowed(&Request::Send { group: MEETING, message: vec![] }, None));
        assert!(!allowed(&Request::Send { group: OTHER, message: vec![] }, None));
        assert!(allowed(&Request::CallJoin { group: MEETING, offer: String::new() }, None));
        assert!(!allowed(&Request::CallJoin { group: OTHER, offer: String::new() }, None));
        assert!(allowed(&Request::Chats, None));
        assert!(!allowed(&Request::Directory, None));
        assert!(!allowed(&Request::SetAccountOpen { open: true }, None));
        assert!(!allowed(&Request::CreateInvite { group: Some(MEETING), max_uses: None, expires_in_secs: None }, None));
        let create = Request::CreateChat {
            group: OTHER,
            kind: ChatKind::Group,
            name: "x".into(),
            description: String::new(),
            peer: None,
            group_info: vec![],
        };
        assert!(!allowed(&create, None));
        let token =
            veche_protocol::wire::InviteToken { invite: veche_protocol::ids::InviteId([0; 8]), secret: [0; 32] };
        let join = Request::JoinGroupInfo { token };
        assert!(allowed(&join, Some(MEETING)), "its meeting's link");
        assert!(!allowed(&join, Some(OTHER)), "another chat's link");
        assert!(!allowed(&join, None), "a link that is not valid here");
        let refused = guest_may(&Request::Links, MEETING, || None).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Forbidden);
    }

    #[test]
    fn a_guest_pass_ends_with_its_meeting() {
        let now = now_ms();
        assert!(check_guest_time(&Guest { group: MEETING, until_ms: now + 60_000 }).is_ok());
        let over = check_guest_time(&Guest { group: MEETING, until_ms: now - 1 }).unwrap_err();
        assert_eq!(over.code, ErrorCode::Forbidden);
    }
}
