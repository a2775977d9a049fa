//! Chats: creation, listing, details and retention.

use super::{ApiResult, Node, OrInternal, Session, err};
use crate::mls_view;
use crate::store::records::{self, Account, Chat, now_ms};
use crate::store::tables::{ACCOUNTS, CHATS, CURSORS, DIRECT_PAIRS, GROUP_INFO, LINKS, MEMBERSHIP, REMOTE_ACCOUNTS};
use redb::ReadableTable;
use std::collections::BTreeMap;
use veche_protocol::ids::{AccountId, ChatKind, GroupId, Retention, Role};
use veche_protocol::wire::{ApiError, ChatInfo, ErrorCode, Event, MemberInfo};

/// Sorted pair key for direct chats.
pub fn pair_key(a: AccountId, b: AccountId) -> ([u8; 32], [u8; 32]) {
    if a <= b { (a.0, b.0) } else { (b.0, a.0) }
}

/// A chat a device asks the node to register (see `Request::CreateChat`).
pub struct NewChat {
    pub group: GroupId,
    pub kind: ChatKind,
    pub name: String,
    pub description: String,
    pub peer: Option<AccountId>,
    pub group_info: Vec<u8>,
}

/// Registers a chat whose MLS group the device just created.
pub async fn create(node: &Node, session: Session, new: NewChat) -> ApiResult<ChatInfo> {
    let NewChat { group, kind, name, description, peer, group_info } = new;
    let bad = |e: veche_protocol::validate::NameError| ApiError::new(ErrorCode::BadRequest, e.to_string());
    let (name, description) = match kind {
        ChatKind::Group => (
            veche_protocol::validate::chat_name(&name).map_err(bad)?,
            veche_protocol::validate::chat_description(&description).map_err(bad)?,
        ),
        ChatKind::Direct => (String::new(), String::new()),
    };
    if group_info.len() > veche_protocol::MAX_MLS_MESSAGE_BYTES {
        return err(ErrorCode::TooLarge, "GroupInfo too large");
    }
    let view = mls_view::group_info(&group_info)?;
    if view.group != group || view.epoch != 0 || view.kind != kind {
        return err(ErrorCode::BadRequest, "GroupInfo does not describe a new chat of this id and kind");
    }
    let only_creator =
        view.leaves.len() == 1 && view.leaves.values().all(|(a, d)| *a == session.account && *d == session.device);
    if !only_creator || view.roles.get(&session.account) != Some(&Role::Owner) {
        return err(ErrorCode::BadRequest, "a new chat must hold only its creator, as owner");
    }
    match (kind, peer) {
        (ChatKind::Direct, Some(p)) if p == session.account => {
            return err(ErrorCode::BadRequest, "a direct chat needs another member");
        }
        (ChatKind::Direct, None) => {
            return err(ErrorCode::BadRequest, "a direct chat needs the other member's id");
        }
        (ChatKind::Group, Some(_)) => {
            return err(ErrorCode::BadRequest, "only direct chats name a peer");
        }
        _ => {}
    }
    let chat = Chat {
        kind,
        name,
        description,
        created_by: session.account,
        created_ms: now_ms(),
        retention: Retention::Forever,
        epoch: 0,
        head: 0,
        tail: 1,
        roster: view.roster(),
        leaves: view.leaves.clone(),
        leaving: BTreeMap::new(),
        removed_at: BTreeMap::new(),
        peer,
    };
    let stored = chat.clone();
    let max_chats = node.info.quotas.max_chats as usize;
    node.writer
        .run(move |ctx| {
            let txn = ctx.read();
            if txn.open_table(CHATS).or_internal()?.get(group.0).or_internal()?.is_some() {
                return err(ErrorCode::Conflict, "a chat with this id exists");
            }
            if let Some(peer) = peer {
                let here = txn.open_table(ACCOUNTS).or_internal()?.get(peer.0).or_internal()?.is_some();
                let known = here || txn.open_table(REMOTE_ACCOUNTS).or_internal()?.get(peer.0).or_internal()?.is_some();
                if !known {
                    return err(ErrorCode::NotFound, "no such member on this node or its linked nodes");
                }
                if let Some(existing) =
                    txn.open_table(DIRECT_PAIRS).or_internal()?.get(pair_key(session.account, peer)).or_internal()?
                {
                    return err(
                        ErrorCode::Conflict,
                        format!("a direct chat with this member exists: {}", GroupId(existing.value())),
                    );
                }
            }
            let count = txn
                .open_table(MEMBERSHIP)
                .or_internal()?
                .range((session.account.0, [0u8; 16])..=(session.account.0, [0xff; 16]))
                .or_internal()?
                .take(max_chats)
                .count();
            if count >= max_chats {
                return err(
                    ErrorCode::QuotaExceeded,
                    format!("you are already in {count} chats, the most this node allows one account"),
                );
            }
            let txn = ctx.write();
            txn.open_table(CHATS).or_internal()?.insert(group.0, records::encode(&stored).as_slice()).or_internal()?;
            txn.open_table(GROUP_INFO).or_internal()?.insert(group.0, group_info.as_slice()).or_internal()?;
            txn.open_table(MEMBERSHIP).or_internal()?.insert((session.account.0, group.0), ()).or_internal()?;
            txn.open_table(CURSORS).or_internal()?.insert((session.device.0, group.0), 0).or_internal()?;
            if let Some(peer) = peer {
                txn.open_table(DIRECT_PAIRS)
                    .or_internal()?
                    .insert(pair_key(session.account, peer), group.0)
                    .or_internal()?;
            }
            Ok(())
        })
        .await?;
    tracing::info!(group = %group, ?kind, "chat created");
    let txn = node.store.read().or_internal()?;
    info(&txn, &node.info, group, &chat)
}

/// Loads a chat record.
pub fn load(txn: &redb::ReadTransaction, group: GroupId) -> ApiResult<Option<Chat>> {
    records::get(&txn.open_table(CHATS).or_internal()?, group.0)
}

/// Loads a chat the session's account is a member of.
pub fn load_member(txn: &redb::ReadTransaction, session: &Session, group: GroupId) -> ApiResult<Chat> {
    match load(txn, group)? {
        Some(chat) if chat.roster.contains_key(&session.account) => Ok(chat),
        _ => err(ErrorCode::NotFound, "no such chat, or you are not a member"),
    }
}

/// Builds the public view of a chat.
pub fn info(txn: &redb::ReadTransaction, this: &super::NodeInfo, group: GroupId, chat: &Chat) -> ApiResult<ChatInfo> {
    let this_node = this.node_id.as_str();
    let accounts = txn.open_table(ACCOUNTS).or_internal()?;
    let links = txn.open_table(LINKS).or_internal()?;
    let node_name = |peer: &str| -> ApiResult<String> {
        if peer == this_node {
            return Ok(this.name.clone());
        }
        Ok(records::get::<_, records::Link, _>(&links, peer)?.map(|l| l.name).unwrap_or_default())
    };
    let ids: Vec<AccountId> = chat.roster.keys().copied().collect();
    let mut remote = super::replica::remote_names(txn, &ids)?;
    let mut members = Vec::with_capacity(chat.roster.len());
    for (account, role) in &chat.roster {
        let record: Option<Account> = records::get(&accounts, account.0)?;
        let (display_name, home_node) = match (record, remote.remove(account)) {
            (Some(r), _) => (r.display_name, this_node.to_string()),
            (None, Some(r)) => (r.display_name, r.home),
            (None, None) => (String::new(), String::new()),
        };
        let home_name = node_name(&home_node)?;
        members.push(MemberInfo { account: *account, display_name, role: *role, home_node, home_name });
    }
    let home_node =
        super::replica::home_of(txn, group)?.map(|p| p.to_string()).unwrap_or_else(|| this_node.to_string());
    let mut gone = Vec::new();
    for item in txn
        .open_table(crate::store::tables::GONE_MEMBERS)
        .or_internal()?
        .range((group.0, [0u8; 32])..=(group.0, [0xff; 32]))
        .or_internal()?
    {
        let account = AccountId(item.or_internal()?.0.value().1);
        if chat.roster.contains_key(&account) {
            gone.push(account);
        }
    }
    Ok(ChatInfo {
        group,
        kind: chat.kind,
        name: chat.name.clone(),
        description: chat.description.clone(),
        home_node,
        retention: chat.retention,
        epoch: chat.epoch,
        head: chat.head,
        members,
        peer: chat.peer,
        gone,
    })
}

/// The session's chats.
pub fn list(node: &Node, session: &Session) -> ApiResult<Vec<ChatInfo>> {
    let txn = node.store.read().or_internal()?;
    let groups: Vec<GroupId> = txn
        .open_table(MEMBERSHIP)
        .or_internal()?
        .range((session.account.0, [0u8; 16])..=(session.account.0, [0xff; 16]))
        .or_internal()?
        .map(|item| item.map(|(k, _)| GroupId(k.value().1)))
        .collect::<Result<_, _>>()
        .or_internal()?;
    let mut out = Vec::with_capacity(groups.len());
    for group in groups {
        if let Some(chat) = load(&txn, group)? {
            out.push(info(&txn, &node.info, group, &chat)?);
        }
    }
    Ok(out)
}

/// One chat of the session.
pub fn get(node: &Node, session: &Session, group: GroupId) -> ApiResult<ChatInfo> {
    let txn = node.store.read().or_internal()?;
    let chat = load_member(&txn, session, group)?;
    info(&txn, &node.info, group, &chat)
}

/// Sets retention (owner only).
pub async fn set_retention(node: &Node, session: Session, group: GroupId, retention: Retention) -> ApiResult<()> {
    if let Retention::Days(0) = retention {
        return err(ErrorCode::BadRequest, "retention must be at least one day");
    }
    let owner = |role: Role| role == Role::Owner;
    change_chat(node, session, group, owner, "only the chat's owner sets retention", move |chat| {
        chat.retention = retention;
        Ok(None)
    })
    .await
}

/// Renames a group chat and sets its description (owner or admin), and tells its members.
pub async fn update(node: &Node, session: Session, group: GroupId, name: String, description: String) -> ApiResult<()> {
    let name =
        veche_protocol::validate::chat_name(&name).map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    let description = veche_protocol::validate::chat_description(&description)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    let manager = |role: Role| role.can_manage_members();
    change_chat(node, session, group, manager, "only the chat's owner and admins rename it", move |chat| {
        if chat.kind == ChatKind::Direct {
            return err(ErrorCode::BadRequest, "a direct chat has no name");
        }
        chat.name = name;
        chat.description = description;
        Ok(Some(Event::ChatUpdated { group }))
    })
    .await
}

/// Changes a chat's record for a member whose role passes `allowed`, in one writer job; the
/// event `change` returns goes to the chat's members once the change is durable.
async fn change_chat(
    node: &Node,
    session: Session,
    group: GroupId,
    allowed: fn(Role) -> bool,
    forbidden: &'static str,
    change: impl FnOnce(&mut Chat) -> ApiResult<Option<Event>> + Send + 'static,
) -> ApiResult<()> {
    node.writer
        .run(move |ctx| {
            let mut chat: Chat = match records::get(&ctx.read().open_table(CHATS).or_internal()?, group.0)? {
                Some(chat) => chat,
                None => return err(ErrorCode::NotFound, "no such chat"),
            };
            match chat.role_of(&session.account) {
                Some(role) if allowed(role) => {}
                Some(_) => return err(ErrorCode::Forbidden, forbidden),
                None => return err(ErrorCode::NotFound, "no such chat, or you are not a member"),
            }
            let event = change(&mut chat)?;
            ctx.write()
                .open_table(CHATS)
                .or_internal()?
                .insert(group.0, records::encode(&chat).as_slice())
                .or_internal()?;
            if let Some(event) = event {
                ctx.publish(chat.roster.keys().copied().collect(), event);
            }
            ctx.touch(group);
            Ok(())
        })
        .await
}
