//! Invite links: creation, revocation, preview, and joining a chat by external commit; the
//! quota of live links per member, and the clean-up of dead links and of guests whose meeting is
//! over.
//!
//! Every invite is stored with its index rows (by chat, by creator, by expiry: [`store_new`]), so
//! listing a chat's links, counting a member's and finding the dead ones read only their rows.

use super::{ApiResult, Node, OrInternal, Session, err};
use crate::mls_view::{self, MessageKind};
use crate::store::records::{self, Account, Chat, Invite, now_ms};
use crate::store::tables::{
    ACCOUNT_BYTES, ACCOUNTS, CHATS, CURSORS, DEVICES, GONE_MEMBERS, GROUP_INFO, GUESTS, INVITES, INVITES_BY_CREATOR,
    INVITES_BY_EXPIRY, INVITES_BY_GROUP, KEY_PACKAGES, LAST_RESORT, MEMBERSHIP, OPEN_ACCOUNTS, WELCOMES,
};
use redb::{ReadableTable, WriteTransaction};
use std::time::Duration;
use veche_protocol::ids::{AccountId, GroupId, InviteId};
use veche_protocol::link::{SECRET_LEN, secret_hash};
use veche_protocol::wire::{ErrorCode, Event, InviteInfo, InvitePreview, InviteToken};

/// Longest an invite may stay valid.
pub const MAX_EXPIRY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Expiry of an invite made without one (the browser's "never", the client without `--expires`,
/// the one-time admin link). A link is usually handed out and used within days; a month covers a
/// link pinned in a community's channel for a while, and a forgotten link stops admitting people
/// on its own. The owner makes a new one when it runs out.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Live invite links (not revoked, expired or used up) one member may hold at once, over all
/// chats. Enough for a link per chat a member runs plus links handed out person by person; each
/// is a stored row and a secret that admits people, so nobody makes the node keep millions.
pub const MAX_LIVE_INVITES_PER_MEMBER: usize = 50;
/// Invites of one member the node keeps, live or dead (dead ones stay [`DEAD_INVITE_KEPT`]): ten
/// times the live quota, so revoking and making links in a loop cannot grow the table without
/// bound either, while a member who revokes a few links a day never meets it.
pub const MAX_STORED_INVITES_PER_MEMBER: usize = 10 * MAX_LIVE_INVITES_PER_MEMBER;
/// Uses of a meeting's link: joins of its chat, and separately new guest accounts. A meeting's
/// chat is an MLS group whose GroupInfo (with the ratchet tree, for joining by link) must fit in
/// `MAX_MLS_MESSAGE_BYTES` (128 KiB), at a few hundred bytes per member: a few hundred people at
/// most could join anyway, and each guest is an account the node keeps until the meeting is over.
pub const MEETING_LINK_MAX_USES: u32 = 250;
/// How long a link stays stored after its expiry (revoking one sets its expiry to then), so that
/// whoever opens it hears why it no longer works; then the clean-up pass deletes it.
pub const DEAD_INVITE_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Guests and dead links deleted per clean-up pass, to keep each transaction short.
const MAX_CLEANED_PER_PASS: usize = 500;

fn random<const N: usize>() -> ApiResult<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).or_internal()?;
    Ok(out)
}

fn to_info(id: InviteId, invite: &Invite) -> InviteInfo {
    InviteInfo {
        invite: id,
        group: invite.group,
        created_by: invite.created_by.unwrap_or(veche_protocol::ids::AccountId([0; 32])),
        created_at_ms: invite.created_ms,
        expires_at_ms: invite.expires_ms,
        max_uses: invite.max_uses,
        uses: invite.uses,
        revoked: invite.revoked,
    }
}

/// Checks a token: it exists, the secret matches, and it is not revoked, expired or used up.
/// With `for_join`, it must be a chat invite.
pub fn check_token(txn: &WriteTransaction, token: &InviteToken, for_join: bool) -> ApiResult<(InviteId, Invite)> {
    let invite: Option<Invite> = records::get(&txn.open_table(INVITES).or_internal()?, token.invite.0)?;
    validate(invite, token, for_join)
}

fn validate(invite: Option<Invite>, token: &InviteToken, for_join: bool) -> ApiResult<(InviteId, Invite)> {
    let Some(invite) = invite.filter(|i| i.secret_hash == secret_hash(&token.secret)) else {
        return err(ErrorCode::InviteInvalid, "this invite link is not valid on this node");
    };
    if invite.revoked {
        return err(ErrorCode::InviteRevoked, "this invite link was revoked");
    }
    if invite.expires_ms.is_some_and(|t| t <= now_ms()) {
        return err(ErrorCode::InviteExpired, "this invite link has expired");
    }
    if invite.max_uses.is_some_and(|max| invite.uses >= max) {
        return err(ErrorCode::InviteUsedUp, "this invite link has been used up");
    }
    if for_join && invite.group.is_none() {
        return err(ErrorCode::BadRequest, "this link admits to the node, not to a chat");
    }
    Ok((token.invite, invite))
}

fn check_read(node: &Node, token: &InviteToken, for_join: bool) -> ApiResult<(InviteId, Invite)> {
    let txn = node.store.read().or_internal()?;
    let invite = records::get(&txn.open_table(INVITES).or_internal()?, token.invite.0)?;
    validate(invite, token, for_join)
}

/// Whether `result` refused `token` only because no invite of its id exists here (then a linked
/// node may have it).
pub fn is_unknown<T>(node: &Node, token: &InviteToken, result: &ApiResult<T>) -> bool {
    if !matches!(result, Err(e) if e.code == ErrorCode::InviteInvalid) {
        return false;
    }
    let exists = node
        .store
        .read()
        .ok()
        .and_then(|txn| txn.open_table(INVITES).ok().and_then(|t| t.get(token.invite.0).ok().map(|g| g.is_some())));
    exists == Some(false)
}

/// Creates an invite. Chat invites need owner/admin; node invites need a node admin.
pub async fn create(
    node: &Node,
    session: Session,
    group: Option<GroupId>,
    max_uses: Option<u32>,
    expires_in: Option<Duration>,
) -> ApiResult<(InviteInfo, [u8; SECRET_LEN])> {
    if max_uses == Some(0) {
        return err(ErrorCode::BadRequest, "an invite needs at least one use");
    }
    if expires_in.is_some_and(|d| d.is_zero() || d > MAX_EXPIRY) {
        return err(ErrorCode::BadRequest, "expiry must be between one second and one year");
    }
    let now = now_ms();
    let expires_in = expires_in.unwrap_or(DEFAULT_EXPIRY);
    let (id, secret, invite) = new_invite(group, session.account, Some(now + expires_in.as_millis() as u64), max_uses)?;
    let stored = invite.clone();
    node.writer
        .run(move |ctx| {
            let txn = ctx.read();
            let (live, stored_rows) = invites_of(txn, session.account, now_ms())?;
            if stored_rows >= MAX_STORED_INVITES_PER_MEMBER {
                return err(
                    ErrorCode::QuotaExceeded,
                    format!(
                        "the node keeps {stored_rows} of your invite links, the most it keeps for one member \
                         (revoked and expired links are kept 7 days); try again when older ones are deleted"
                    ),
                );
            }
            if live >= MAX_LIVE_INVITES_PER_MEMBER {
                return err(
                    ErrorCode::QuotaExceeded,
                    format!(
                        "you have {live} live invite links, the most one member may have \
                         ({MAX_LIVE_INVITES_PER_MEMBER}); revoke one, or wait until one expires"
                    ),
                );
            }
            match group {
                Some(group) => {
                    let chat: Option<Chat> = records::get(&txn.open_table(CHATS).or_internal()?, group.0)?;
                    let Some(role) = chat.as_ref().and_then(|c| c.role_of(&session.account)) else {
                        return err(ErrorCode::NotFound, "no such chat, or you are not a member");
                    };
                    if !role.can_manage_members() {
                        return err(ErrorCode::Forbidden, "only owners and admins create invite links");
                    }
                    if chat.is_some_and(|c| c.kind == veche_protocol::ids::ChatKind::Direct) {
                        return err(ErrorCode::Forbidden, "direct chats have no invite links");
                    }
                }
                None => {
                    let account: Option<Account> =
                        records::get(&txn.open_table(ACCOUNTS).or_internal()?, session.account.0)?;
                    if !account.is_some_and(|a| a.node_admin) {
                        return err(ErrorCode::Forbidden, "only node admins create node invites");
                    }
                }
            }
            store_new(ctx.write(), id, &stored)?;
            Ok(())
        })
        .await?;
    Ok((to_info(id, &invite), secret))
}

/// Whether an invite still admits anyone.
fn is_live(invite: &Invite, now: u64) -> bool {
    !invite.revoked && invite.expires_ms.is_none_or(|t| t > now) && invite.max_uses.is_none_or(|max| invite.uses < max)
}

/// How many live invites `account` made, and how many of its invites are stored (reads only its
/// rows of the creator index).
fn invites_of(txn: &WriteTransaction, account: AccountId, now: u64) -> ApiResult<(usize, usize)> {
    let invites = txn.open_table(INVITES).or_internal()?;
    let (mut live, mut stored) = (0, 0);
    for item in txn
        .open_table(INVITES_BY_CREATOR)
        .or_internal()?
        .range((account.0, [0u8; 8])..=(account.0, [0xff; 8]))
        .or_internal()?
    {
        let (key, _) = item.or_internal()?;
        let invite: Option<Invite> = records::get(&invites, key.value().1)?;
        stored += 1;
        if invite.is_some_and(|i| is_live(&i, now)) {
            live += 1;
        }
    }
    Ok((live, stored))
}

/// Stores a new invite with its index rows.
pub(super) fn store_new(txn: &WriteTransaction, id: InviteId, invite: &Invite) -> ApiResult<()> {
    txn.open_table(INVITES).or_internal()?.insert(id.0, records::encode(invite).as_slice()).or_internal()?;
    if let Some(group) = invite.group {
        txn.open_table(INVITES_BY_GROUP).or_internal()?.insert((group.0, id.0), ()).or_internal()?;
    }
    if let Some(creator) = invite.created_by {
        txn.open_table(INVITES_BY_CREATOR).or_internal()?.insert((creator.0, id.0), ()).or_internal()?;
    }
    if let Some(expires) = invite.expires_ms {
        txn.open_table(INVITES_BY_EXPIRY).or_internal()?.insert((expires, id.0), ()).or_internal()?;
    }
    Ok(())
}

/// Deletes an invite with its index rows.
fn delete(txn: &WriteTransaction, id: [u8; 8], invite: &Invite) -> ApiResult<()> {
    txn.open_table(INVITES).or_internal()?.remove(id).or_internal()?;
    if let Some(group) = invite.group {
        txn.open_table(INVITES_BY_GROUP).or_internal()?.remove((group.0, id)).or_internal()?;
    }
    if let Some(creator) = invite.created_by {
        txn.open_table(INVITES_BY_CREATOR).or_internal()?.remove((creator.0, id)).or_internal()?;
    }
    if let Some(expires) = invite.expires_ms {
        txn.open_table(INVITES_BY_EXPIRY).or_internal()?.remove((expires, id)).or_internal()?;
    }
    Ok(())
}

/// A new invite of a member (not stored yet): its id, secret and record.
pub(super) fn new_invite(
    group: Option<GroupId>,
    created_by: veche_protocol::ids::AccountId,
    expires_ms: Option<u64>,
    max_uses: Option<u32>,
) -> ApiResult<(InviteId, [u8; SECRET_LEN], Invite)> {
    let id = InviteId(random()?);
    let secret: [u8; SECRET_LEN] = random()?;
    let invite = Invite {
        group,
        secret_hash: secret_hash(&secret),
        created_by: Some(created_by),
        created_ms: now_ms(),
        expires_ms,
        max_uses,
        uses: 0,
        registrations: 0,
        revoked: false,
        grants_admin: false,
    };
    Ok((id, secret, invite))
}

/// The chat a valid chat invite admits to (None: not a valid chat invite here).
pub fn group_of(node: &Node, token: &InviteToken) -> Option<GroupId> {
    check_read(node, token, true).ok().and_then(|(_, invite)| invite.group)
}

/// Creates the one-time admin invite printed at start while the node has no admin.
pub async fn create_admin_invite(node: &Node) -> ApiResult<Option<(InviteId, [u8; SECRET_LEN])>> {
    let id = InviteId(random()?);
    let secret: [u8; SECRET_LEN] = random()?;
    let invite = Invite {
        group: None,
        secret_hash: secret_hash(&secret),
        created_by: None,
        created_ms: now_ms(),
        expires_ms: Some(now_ms() + DEFAULT_EXPIRY.as_millis() as u64),
        max_uses: Some(1),
        uses: 0,
        registrations: 0,
        revoked: false,
        grants_admin: true,
    };
    node.writer
        .run(move |ctx| {
            let has_admin = {
                let accounts = ctx.read().open_table(ACCOUNTS).or_internal()?;
                let mut found = false;
                for item in accounts.iter().or_internal()? {
                    let (_, value) = item.or_internal()?;
                    if records::decode::<Account>(value.value())?.node_admin {
                        found = true;
                        break;
                    }
                }
                found
            };
            if has_admin {
                return Ok(None);
            }
            let txn = ctx.write();
            let mut invites = txn.open_table(INVITES).or_internal()?;
            // Earlier unused admin links stop working: only the newest printed one is valid.
            let old: Vec<([u8; 8], Invite)> = invites
                .iter()
                .or_internal()?
                .filter_map(|item| item.ok())
                .filter_map(|(k, v)| records::decode::<Invite>(v.value()).ok().map(|i| (k.value(), i)))
                .filter(|(_, i)| i.grants_admin && !i.revoked)
                .collect();
            for (key, mut old) in old {
                old.revoked = true;
                invites.insert(key, records::encode(&old).as_slice()).or_internal()?;
            }
            drop(invites);
            store_new(txn, id, &invite)?;
            Ok(Some((id, secret)))
        })
        .await
}

/// Revokes an invite: its creator, a chat owner/admin, or a node admin.
pub async fn revoke(node: &Node, session: Session, id: InviteId) -> ApiResult<()> {
    node.writer
        .run(move |ctx| {
            let txn = ctx.read();
            let invite: Option<Invite> = records::get(&txn.open_table(INVITES).or_internal()?, id.0)?;
            let Some(mut invite) = invite else {
                return err(ErrorCode::NotFound, "no such invite");
            };
            let manages_chat = match invite.group {
                Some(group) => {
                    let chat: Option<Chat> = records::get(&txn.open_table(CHATS).or_internal()?, group.0)?;
                    chat.and_then(|c| c.role_of(&session.account)).is_some_and(|r| r.can_manage_members())
                }
                None => false,
            };
            let admin = records::get::<_, Account, _>(&txn.open_table(ACCOUNTS).or_internal()?, session.account.0)?
                .is_some_and(|a| a.node_admin);
            if !(invite.created_by == Some(session.account) || manages_chat || admin) {
                return err(ErrorCode::Forbidden, "you may not revoke this invite");
            }
            invite.revoked = true;
            // Kept `DEAD_INVITE_KEPT` from now, so whoever opens it hears it was revoked.
            let now = now_ms();
            let old_expiry = invite.expires_ms;
            invite.expires_ms = Some(old_expiry.map_or(now, |t| t.min(now)));
            let mut by_expiry = ctx.write().open_table(INVITES_BY_EXPIRY).or_internal()?;
            if let Some(old) = old_expiry {
                by_expiry.remove((old, id.0)).or_internal()?;
            }
            by_expiry.insert((invite.expires_ms.unwrap_or(now), id.0), ()).or_internal()?;
            drop(by_expiry);
            ctx.write()
                .open_table(INVITES)
                .or_internal()?
                .insert(id.0, records::encode(&invite).as_slice())
                .or_internal()?;
            Ok(())
        })
        .await
}

/// Invites of a chat (owner/admin).
pub fn list(node: &Node, session: &Session, group: GroupId) -> ApiResult<Vec<InviteInfo>> {
    let txn = node.store.read().or_internal()?;
    let chat = super::chats::load_member(&txn, session, group)?;
    if !chat.role_of(&session.account).is_some_and(|r| r.can_manage_members()) {
        return err(ErrorCode::Forbidden, "only owners and admins see invite links");
    }
    let invites = txn.open_table(INVITES).or_internal()?;
    let mut out = Vec::new();
    for item in txn
        .open_table(INVITES_BY_GROUP)
        .or_internal()?
        .range((group.0, [0u8; 8])..=(group.0, [0xff; 8]))
        .or_internal()?
    {
        let id = item.or_internal()?.0.value().1;
        if let Some(invite) = records::get::<_, Invite, _>(&invites, id)? {
            out.push(to_info(InviteId(id), &invite));
        }
    }
    out.sort_by_key(|i| i.created_at_ms);
    Ok(out)
}

/// What a link leads to (served before sign-in).
pub fn preview(node: &Node, token: &InviteToken) -> ApiResult<InvitePreview> {
    let (_, invite) = check_read(node, token, false)?;
    let node_name = node.info.name.clone();
    match invite.group {
        Some(group) => {
            let txn = node.store.read().or_internal()?;
            let Some(chat) = super::chats::load(&txn, group)? else {
                return err(ErrorCode::InviteInvalid, "the chat of this invite no longer exists");
            };
            let meeting = super::meetings::load(&txn, group)?.filter(|m| m.invite == token.invite).map(Box::new);
            Ok(InvitePreview {
                group: Some(group),
                name: chat.name,
                description: chat.description,
                member_count: chat.roster.len() as u32,
                node_name,
                meeting,
            })
        }
        None => Ok(InvitePreview {
            group: None,
            name: node_name.clone(),
            description: String::new(),
            member_count: 0,
            node_name,
            meeting: None,
        }),
    }
}

/// The chat's current GroupInfo for a holder of a valid chat invite.
pub fn group_info(node: &Node, token: &InviteToken) -> ApiResult<Vec<u8>> {
    let (_, invite) = check_read(node, token, true)?;
    let group = invite.group.ok_or_else(|| super::internal("chat invite without chat"))?;
    let txn = node.store.read().or_internal()?;
    match txn.open_table(GROUP_INFO).or_internal()?.get(group.0).or_internal()? {
        Some(bytes) => Ok(bytes.value().to_vec()),
        None => err(ErrorCode::InviteInvalid, "the chat of this invite no longer exists"),
    }
}

/// Joins the invite's chat with an external commit.
pub async fn join(
    node: &Node,
    session: Session,
    token: InviteToken,
    commit: Vec<u8>,
    group_info: Vec<u8>,
) -> ApiResult<u64> {
    for (bytes, what) in [(&commit, "commit"), (&group_info, "GroupInfo")] {
        if bytes.len() > veche_protocol::MAX_MLS_MESSAGE_BYTES {
            return err(ErrorCode::TooLarge, format!("{what} too large"));
        }
    }
    let view = mls_view::message(&commit)?;
    if view.kind != MessageKind::ExternalCommit {
        return err(ErrorCode::BadRequest, "joining by link needs an external commit");
    }
    let next = mls_view::group_info(&group_info)?;
    if next.group != view.group || next.epoch != view.epoch + 1 {
        return err(ErrorCode::BadRequest, "GroupInfo is not for the epoch this commit creates");
    }
    let metrics = node.metrics.clone();
    let quotas = node.info.quotas;
    let group = view.group;
    let seq = node
        .writer
        .run(move |ctx| {
            // A retry of a join that was stored but whose answer was lost.
            if let Some(seq) = super::delivery::already_stored(ctx, view.group, &commit)? {
                return Ok(seq);
            }
            let (id, mut invite) = check_token(ctx.read(), &token, true)?;
            if invite.group != Some(view.group) {
                return err(ErrorCode::BadRequest, "this commit is for another chat than the invite's");
            }
            let seq = super::delivery::join_commit(ctx, session, commit, group_info, &view, next, quotas)?;
            invite.uses += 1;
            ctx.write()
                .open_table(INVITES)
                .or_internal()?
                .insert(id.0, records::encode(&invite).as_slice())
                .or_internal()?;
            Ok(seq)
        })
        .await?;
    metrics.messages_stored.inc();
    tracing::info!(%group, "member joined by invite");
    Ok(seq)
}

/// What one clean-up pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanedUp {
    pub guests: usize,
    pub invites: usize,
}

/// Deletes guest accounts whose meeting's guest time is over (with their devices, key packages,
/// cursors, welcomes, memberships and byte count; their connections were closed at that time),
/// and invites that expired more than [`DEAD_INVITE_KEPT`] ago. Their messages stay in their
/// chats' logs, for the members.
pub async fn clean_up(node: &Node) -> ApiResult<CleanedUp> {
    let now = now_ms();
    let (guests, dead): (Vec<AccountId>, Vec<(u64, [u8; 8])>) = {
        let txn = node.store.read().or_internal()?;
        let mut guests = Vec::new();
        for item in txn.open_table(GUESTS).or_internal()?.iter().or_internal()? {
            let (key, value) = item.or_internal()?;
            let guest: records::Guest = records::decode(value.value())?;
            if guest.until_ms <= now {
                guests.push(AccountId(key.value()));
                if guests.len() >= MAX_CLEANED_PER_PASS {
                    break;
                }
            }
        }
        let before = now.saturating_sub(DEAD_INVITE_KEPT.as_millis() as u64);
        let mut dead = Vec::new();
        for item in txn
            .open_table(INVITES_BY_EXPIRY)
            .or_internal()?
            .range((0, [0u8; 8])..=(before, [0xff; 8]))
            .or_internal()?
            .take(MAX_CLEANED_PER_PASS)
        {
            dead.push(item.or_internal()?.0.value());
        }
        (guests, dead)
    };
    if guests.is_empty() && dead.is_empty() {
        return Ok(CleanedUp::default());
    }
    let cleaned = CleanedUp { guests: guests.len(), invites: dead.len() };
    node.writer
        .run(move |ctx| {
            let mut told = Vec::new();
            let txn = ctx.write();
            for account in &guests {
                told.extend(delete_guest(txn, *account)?);
            }
            // Read again in the transaction: the row is this invite's current expiry (a row that
            // is not, which nothing should leave, goes so it cannot hold up later passes).
            for &(expires, id) in &dead {
                let invite: Option<Invite> = records::get(&txn.open_table(INVITES).or_internal()?, id)?;
                match invite {
                    Some(invite) if invite.expires_ms == Some(expires) => delete(txn, id, &invite)?,
                    _ => {
                        txn.open_table(INVITES_BY_EXPIRY).or_internal()?.remove((expires, id)).or_internal()?;
                    }
                }
            }
            // Their chats' members learn that someone is gone: an owner's or admin's device
            // removes the guests from the MLS group (`ChatInfo::gone`).
            for (group, roster) in told {
                ctx.publish(roster, Event::ChatUpdated { group });
            }
            Ok(())
        })
        .await?;
    if cleaned.guests > 0 {
        tracing::info!(guests = cleaned.guests, "deleted guests whose meeting is over");
    }
    Ok(cleaned)
}

/// Deletes a guest account and everything the node keeps for it. The chats it is still in keep a
/// `GONE_MEMBERS` row until a commit removes it; returns those chats with their rosters.
fn delete_guest(txn: &WriteTransaction, account: AccountId) -> ApiResult<Vec<(GroupId, Vec<AccountId>)>> {
    let record: Option<Account> = records::get(&txn.open_table(ACCOUNTS).or_internal()?, account.0)?;
    for device in record.map(|a| a.devices).unwrap_or_default() {
        let d = device.0;
        txn.open_table(DEVICES).or_internal()?.remove(d).or_internal()?;
        txn.open_table(LAST_RESORT).or_internal()?.remove(d).or_internal()?;
        txn.open_table(KEY_PACKAGES).or_internal()?.retain_in((d, 0)..=(d, u64::MAX), |_, _| false).or_internal()?;
        txn.open_table(WELCOMES).or_internal()?.retain_in((d, 0)..=(d, u64::MAX), |_, _| false).or_internal()?;
        txn.open_table(CURSORS)
            .or_internal()?
            .retain_in((d, [0u8; 16])..=(d, [0xff; 16]), |_, _| false)
            .or_internal()?;
    }
    let a = account.0;
    let groups: Vec<[u8; 16]> = txn
        .open_table(MEMBERSHIP)
        .or_internal()?
        .range((a, [0u8; 16])..=(a, [0xff; 16]))
        .or_internal()?
        .map(|item| item.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()
        .or_internal()?;
    let mut still_in = Vec::new();
    for group in groups {
        let chat: Option<Chat> = records::get(&txn.open_table(CHATS).or_internal()?, group)?;
        if let Some(chat) = chat.filter(|c| c.roster.contains_key(&account)) {
            txn.open_table(GONE_MEMBERS).or_internal()?.insert((group, a), ()).or_internal()?;
            still_in.push((GroupId(group), chat.roster.keys().copied().filter(|m| *m != account).collect()));
        }
    }
    txn.open_table(MEMBERSHIP)
        .or_internal()?
        .retain_in((a, [0u8; 16])..=(a, [0xff; 16]), |_, _| false)
        .or_internal()?;
    txn.open_table(ACCOUNTS).or_internal()?.remove(a).or_internal()?;
    txn.open_table(GUESTS).or_internal()?.remove(a).or_internal()?;
    txn.open_table(OPEN_ACCOUNTS).or_internal()?.remove(a).or_internal()?;
    txn.open_table(ACCOUNT_BYTES).or_internal()?.remove(a).or_internal()?;
    txn.open_table(crate::store::tables::HOME_BINDINGS).or_internal()?.remove(a).or_internal()?;
    Ok(still_in)
}
