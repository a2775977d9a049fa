//! The directory: open accounts and open groups, here and on linked nodes, for members to find.
//!
//! Accounts and groups are closed by default. A member opens their own account; a group's owner
//! opens the group. Linked nodes exchange their own open entries (`FedRequest::Directory`): a
//! node lists only what lives on it, so nothing is passed on to third nodes, and a closed account
//! or group never leaves its node. A node asks its linked nodes when a member asks for the
//! directory (and keeps the last answer of each, `REMOTE_DIRECTORIES`, for nodes that do not
//! answer), and refreshes them in the background.

use std::time::Duration;

use libp2p::PeerId;
use redb::ReadableTable;
use veche_protocol::federation::{Directory, FedReply, FedRequest, OpenGroup};
use veche_protocol::ids::{ChatKind, GroupId, Role};
use veche_protocol::wire::{DirectoryAccount, DirectoryGroup, DirectoryInfo, ErrorCode};

use super::{ApiResult, Node, OrInternal, Session, err};
use crate::store::records::{self, Account, Chat, Link};
use crate::store::tables::{ACCOUNTS, CHATS, LINKS, OPEN_ACCOUNTS, OPEN_GROUPS, REMOTE_DIRECTORIES};

/// How long a member's directory request waits for each linked node.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// How often linked nodes' directories are refreshed in the background.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);

/// Opens or closes the session's account.
pub async fn set_account_open(node: &Node, session: Session, open: bool) -> ApiResult<()> {
    node.writer
        .run(move |ctx| {
            let mut table = ctx.write().open_table(OPEN_ACCOUNTS).or_internal()?;
            if open {
                table.insert(session.account.0, ()).or_internal()?;
            } else {
                table.remove(session.account.0).or_internal()?;
            }
            Ok(())
        })
        .await
}

/// Opens or closes a group chat homed here (its owner only).
pub async fn set_chat_open(node: &Node, session: Session, group: GroupId, open: bool) -> ApiResult<()> {
    node.writer
        .run(move |ctx| {
            let chat: Option<Chat> = records::get(&ctx.read().open_table(CHATS).or_internal()?, group.0)?;
            let Some(chat) = chat else { return err(ErrorCode::NotFound, "no such chat, or you are not a member") };
            match chat.role_of(&session.account) {
                Some(Role::Owner) => {}
                Some(_) => return err(ErrorCode::Forbidden, "only the chat's owner opens or closes it"),
                None => return err(ErrorCode::NotFound, "no such chat, or you are not a member"),
            }
            if chat.kind == ChatKind::Direct {
                return err(ErrorCode::BadRequest, "a direct chat is never listed");
            }
            let mut table = ctx.write().open_table(OPEN_GROUPS).or_internal()?;
            if open {
                table.insert(group.0, ()).or_internal()?;
            } else {
                table.remove(group.0).or_internal()?;
            }
            Ok(())
        })
        .await
}

/// This node's own open accounts and open groups.
pub fn own(node: &Node) -> ApiResult<Directory> {
    let txn = node.store.read().or_internal()?;
    let accounts_table = txn.open_table(ACCOUNTS).or_internal()?;
    let chats = txn.open_table(CHATS).or_internal()?;
    let mut out = Directory::default();
    for row in txn.open_table(OPEN_ACCOUNTS).or_internal()?.iter().or_internal()? {
        let (key, _) = row.or_internal()?;
        if let Some(account) = records::get::<_, Account, _>(&accounts_table, key.value())? {
            out.accounts.push((veche_protocol::ids::AccountId(key.value()), account.display_name));
        }
    }
    for row in txn.open_table(OPEN_GROUPS).or_internal()?.iter().or_internal()? {
        let (key, _) = row.or_internal()?;
        let group = GroupId(key.value());
        if super::replica::home_of(&txn, group)?.is_some() {
            continue; // only chats homed here
        }
        if let Some(chat) = records::get::<_, Chat, _>(&chats, group.0)? {
            out.groups.push(OpenGroup {
                group,
                name: chat.name,
                description: chat.description,
                member_count: chat.roster.len() as u32,
            });
        }
    }
    Ok(out)
}

fn linked(node: &Node) -> ApiResult<Vec<(String, Link)>> {
    let txn = node.store.read().or_internal()?;
    let mut out = Vec::new();
    for row in txn.open_table(LINKS).or_internal()?.iter().or_internal()? {
        let (key, value) = row.or_internal()?;
        let link: Link = records::decode(value.value())?;
        if link.we_approved && link.they_approved {
            out.push((key.value().to_string(), link));
        }
    }
    Ok(out)
}

/// Asks every linked node for its directory (at most `wait` each) and keeps the answers.
pub async fn refresh(node: &Node, wait: Duration) -> ApiResult<()> {
    let Some(p2p) = node.p2p.clone() else { return Ok(()) };
    let asks = linked(node)?.into_iter().filter_map(|(peer, link)| {
        let id: PeerId = peer.parse().ok()?;
        let addrs = link.addrs.iter().filter_map(|a| a.parse().ok()).collect();
        let p2p = p2p.clone();
        Some(async move {
            let answer = tokio::time::timeout(wait, p2p.fed(id, addrs, FedRequest::Directory)).await;
            match answer {
                Ok(Ok(FedReply::Directory(directory))) => Some((peer, directory)),
                _ => None,
            }
        })
    });
    let answers: Vec<(String, Directory)> = futures_util::future::join_all(asks).await.into_iter().flatten().collect();
    if answers.is_empty() {
        return Ok(());
    }
    node.writer
        .run(move |ctx| {
            let mut table = ctx.write().open_table(REMOTE_DIRECTORIES).or_internal()?;
            for (peer, directory) in answers {
                let bytes = veche_protocol::federation::encode(&directory);
                table.insert(peer.as_str(), bytes.as_slice()).or_internal()?;
            }
            Ok(())
        })
        .await
}

/// The directory a member sees: this node's open entries and those of its linked nodes.
pub async fn list(node: &Node) -> ApiResult<DirectoryInfo> {
    refresh(node, ASK_TIMEOUT).await?;
    let mut info = DirectoryInfo { accounts: Vec::new(), groups: Vec::new() };
    let mut add = |directory: Directory, home_node: &str, home_name: &str| {
        for (account, display_name) in directory.accounts {
            let (home_node, home_name) = (home_node.to_string(), home_name.to_string());
            info.accounts.push(DirectoryAccount { account, display_name, home_node, home_name });
        }
        for g in directory.groups {
            let (home_node, home_name) = (home_node.to_string(), home_name.to_string());
            info.groups.push(DirectoryGroup {
                group: g.group,
                name: g.name,
                description: g.description,
                member_count: g.member_count,
                home_node,
                home_name,
            });
        }
    };
    add(own(node)?, &node.info.node_id, &node.info.name);
    let txn = node.store.read().or_internal()?;
    let remote = txn.open_table(REMOTE_DIRECTORIES).or_internal()?;
    // Only nodes still linked: an unlinked node's entries disappear with the link.
    for (peer, link) in linked(node)? {
        if let Some(bytes) = remote.get(peer.as_str()).or_internal()?
            && let Ok(directory) = veche_protocol::federation::decode::<Directory>(bytes.value())
        {
            add(directory, &peer, &link.name);
        }
    }
    info.accounts.sort_by_key(|a| a.display_name.to_lowercase());
    info.groups.sort_by_key(|g| g.name.to_lowercase());
    Ok(info)
}
