//! Home node side: requests from member nodes (forwarded requests, pulls, key packages,
//! directory), and the link queues.

use super::*;

/// Answers a federation request from `peer`. Only linked nodes are served.
pub async fn serve(node: &Node, peer: PeerId, relayed: bool, request: FedRequest) -> FedReply {
    match linked(node, &peer) {
        Ok(Some(_)) => {}
        Ok(None) => {
            tracing::info!(%peer, "federation request from a node that is not linked: refused");
            return FedReply::Refused(ApiError::new(ErrorCode::Forbidden, "this node is not linked with yours"));
        }
        Err(e) => return FedReply::Refused(e),
    }
    let result = match request {
        FedRequest::Forward { account, device, display_name, homes, request } => {
            return FedReply::Response(serve_forward(node, peer, account, device, display_name, homes, *request).await);
        }
        FedRequest::ForwardSends { account, device, display_name, group, messages } => {
            serve_forward_sends(node, peer, account, device, display_name, group, messages).await
        }
        FedRequest::Pull { group, after } => {
            let budget = if relayed { MAX_RELAYED_PULL_BYTES } else { MAX_PULL_BYTES };
            serve_pull(node, peer, group, after, budget).await
        }
        FedRequest::Notify { group, head } => {
            let node = node.clone();
            tokio::spawn(async move {
                if let Err(e) = sync(&node, peer, group, head).await {
                    tracing::debug!(%group, %peer, error = %e.message, "pull after a notification failed");
                }
            });
            Ok(FedReply::Ok)
        }
        FedRequest::ClaimKeyPackages { account } => serve_claim(node, peer, account).await,
        FedRequest::Directory => crate::service::directory::own(node).map(FedReply::Directory),
        FedRequest::Locate { accounts } => super::homes::serve_locate(node, accounts),
    };
    result.unwrap_or_else(FedReply::Refused)
}

/// Hands out key packages of an account of this node to linked node `peer`, which claims them for
/// one of its devices: `peer` is the claimer (its quotas, and the same refusals as a member's).
async fn serve_claim(node: &Node, peer: PeerId, account: AccountId) -> ApiResult<FedReply> {
    use crate::service::accounts::{self, Claimer};
    let packages = accounts::claim_key_packages(node, Claimer::Node(peer.to_string()), account).await?;
    let record = {
        let txn = node.store.read().or_internal()?;
        accounts::load_account(&txn, &account)?
    };
    let display_name = record.map(|r| r.display_name).unwrap_or_default();
    let member = MemberAddress { account, home: node.info.node_id.clone(), display_name };
    Ok(FedReply::KeyPackages { member, packages })
}

async fn serve_forward(
    node: &Node,
    peer: PeerId,
    account: AccountId,
    device: veche_protocol::ids::DeviceId,
    display_name: String,
    homes: Vec<MemberAddress>,
    request: Request,
) -> Result<Response, ApiError> {
    use crate::service::invites;
    if let Request::InvitePreview { token } = &request {
        return invites::preview(node, token).map(Response::InvitePreview);
    }
    let joining = matches!(request, Request::Join { .. } | Request::JoinGroupInfo { .. });
    let join = matches!(request, Request::Join { .. });
    let renamed = forwarded_session(node, peer, account, joining, &display_name, &homes)?;
    if let Some(group) = routed_group(&request) {
        homed_here(node, group)?;
    }
    // The accounts the request adds: where they live is asked of their own nodes.
    super::homes::resolve(node, homes.iter().map(|m| m.account)).await?;
    let session = Session { account, device };
    let response = serve_forwarded(node, session, request).await?;
    // Learned only once the request succeeded: a joiner's home (its external commit was signed by
    // its own key), or a new display name from the account's home.
    if join {
        super::homes::resolve(node, [account]).await?;
    }
    if renamed {
        super::homes::rename(node, peer, account, display_name).await?;
    }
    Ok(response)
}

async fn serve_forwarded(node: &Node, session: Session, request: Request) -> Result<Response, ApiError> {
    use crate::service::{chats, delivery, invites};
    let stored = |r: ApiResult<u64>| r.map(|seq| Response::Stored { seq });
    match request {
        Request::Send { group, message } => stored(delivery::send(node, session, group, message).await),
        Request::Commit { group, commit, welcome, group_info } => {
            stored(delivery::commit(node, session, group, commit, welcome, group_info).await)
        }
        Request::GroupInfo { group } => delivery::group_info(node, &session, group).map(Response::GroupInfo),
        Request::JoinGroupInfo { token } => invites::group_info(node, &token).map(Response::GroupInfo),
        Request::Join { token, commit, group_info } => {
            stored(invites::join(node, session, token, commit, group_info).await)
        }
        Request::SetRetention { group, retention } => {
            chats::set_retention(node, session, group, retention).await.map(|()| Response::Ok)
        }
        Request::UpdateChat { group, name, description } => {
            chats::update(node, session, group, name, description).await.map(|()| Response::Ok)
        }
        Request::CreateInvite { group: Some(group), max_uses, expires_in_secs } => {
            invites::create(node, session, Some(group), max_uses, expires_in_secs.map(Duration::from_secs))
                .await
                .map(|(invite, secret)| Response::InviteCreated { invite, secret })
        }
        Request::Invites { group } => invites::list(node, &session, group).map(Response::Invites),
        Request::SetChatOpen { group, open } => {
            crate::service::directory::set_chat_open(node, session, group, open).await.map(|()| Response::Ok)
        }
        _ => err(ErrorCode::BadRequest, "this request is not served for another node's devices"),
    }
}

/// Stores messages a device of `peer` sends to a chat homed here, in order.
async fn serve_forward_sends(
    node: &Node,
    peer: PeerId,
    account: AccountId,
    device: veche_protocol::ids::DeviceId,
    display_name: String,
    group: GroupId,
    messages: Vec<Vec<u8>>,
) -> ApiResult<FedReply> {
    if messages.is_empty() || messages.len() > veche_protocol::federation::MAX_FORWARD_SENDS {
        return err(ErrorCode::BadRequest, "1 to 32 messages at a time");
    }
    let renamed = forwarded_session(node, peer, account, false, &display_name, &[])?;
    homed_here(node, group)?;
    let stored = crate::service::delivery::send_many(node, Session { account, device }, group, messages).await;
    if renamed && stored.iter().any(|r| r.is_ok()) {
        super::homes::rename(node, peer, account, display_name).await?;
    }
    Ok(FedReply::Stored(stored))
}

/// Checks that a device of `peer` may act here for `account`: the account must live on `peer` (a
/// node vouches for its own devices only) and be known here, unless it is joining. Returns whether
/// `peer` gives the account a new display name. Nothing is recorded here (see `homes`).
fn forwarded_session(
    node: &Node,
    peer: PeerId,
    account: AccountId,
    joining: bool,
    display_name: &str,
    homes: &[MemberAddress],
) -> ApiResult<bool> {
    if homes.len() > veche_protocol::federation::MAX_LOCATE {
        return err(ErrorCode::TooLarge, "a request adds too many accounts at once");
    }
    let peer_key = peer.to_string();
    let known = {
        let txn = node.store.read().or_internal()?;
        if crate::service::accounts::load_account(&txn, &account)?.is_some() {
            return err(ErrorCode::Forbidden, "this account lives on this node, not yours");
        }
        remote_names(&txn, &[account])?.remove(&account)
    };
    match &known {
        Some(r) if r.home != peer_key => err(ErrorCode::Forbidden, "this account lives on another node"),
        None if !joining => err(ErrorCode::NotFound, "no such chat, or you are not a member"),
        Some(r) => Ok(r.display_name != display_name),
        None => Ok(false),
    }
}

/// Refuses a chat that is a replica here (homed on another node).
fn homed_here(node: &Node, group: GroupId) -> ApiResult<()> {
    let txn = node.store.read().or_internal()?;
    if home_of(&txn, group)?.is_some() {
        return err(ErrorCode::NotFound, "this chat is not homed on this node");
    }
    Ok(())
}

async fn serve_pull(
    node: &Node,
    peer: PeerId,
    group: GroupId,
    after: Option<u64>,
    max_bytes: usize,
) -> ApiResult<FedReply> {
    let peer_key = peer.to_string();
    let me = node.info.node_id.clone();
    let (replica, confirmed) = {
        let txn = node.store.read().or_internal()?;
        let Some(chat) = crate::service::chats::load(&txn, group)? else {
            return err(ErrorCode::NotFound, "no such chat on this node");
        };
        if home_of(&txn, group)?.is_some() {
            return err(ErrorCode::NotFound, "this chat is not homed on this node");
        }
        let remote = txn.open_table(REMOTE_ACCOUNTS).or_internal()?;
        let theirs = |a: &AccountId| -> ApiResult<bool> {
            Ok(records::get::<_, RemoteAccount, _>(&remote, a.0)?.is_some_and(|r| r.home == peer_key))
        };
        let mut current = false;
        for account in chat.roster.keys() {
            current |= theirs(account)?;
        }
        let upto = if current {
            chat.head
        } else {
            let mut last = None;
            for (account, seq) in &chat.removed_at {
                if theirs(account)? {
                    last = last.max(Some(*seq));
                }
            }
            match last {
                Some(seq) => seq,
                None => return err(ErrorCode::Forbidden, "no member of this chat lives on your node"),
            }
        };
        let start = match after {
            Some(after) => after,
            None => {
                // From the entry that added the first of their devices.
                let cursors = txn.open_table(CURSORS).or_internal()?;
                let mut start = None;
                for (account, device) in chat.leaves.values() {
                    if theirs(account)? {
                        let at = cursors.get((device.0, group.0)).or_internal()?.map(|g| g.value()).unwrap_or(0);
                        start = Some(start.map_or(at, |s: u64| s.min(at)));
                    }
                }
                start.unwrap_or(upto)
            }
        };
        let start = start.max(chat.tail.saturating_sub(1));
        let log = txn.open_table(LOG).or_internal()?;
        let effects = txn.open_table(COMMIT_EFFECTS).or_internal()?;
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        if start < upto {
            for item in log.range((group.0, start + 1)..=(group.0, upto)).or_internal()?.take(MAX_PULL_ENTRIES) {
                let (key, value) = item.or_internal()?;
                let seq = key.value().1;
                let entry: LogEntry = records::decode(value.value())?;
                if !entries.is_empty() && bytes + entry.payload.len() > max_bytes {
                    break;
                }
                bytes += entry.payload.len();
                let commit = match effects.get((group.0, seq)).or_internal()? {
                    Some(e) => Some(veche_protocol::federation::decode::<CommitEffect>(e.value()).or_internal()?),
                    None => None,
                };
                entries.push(ReplicatedEntry {
                    seq,
                    kind: entry.kind,
                    epoch: entry.epoch,
                    sender: entry.sender,
                    stored_ms: entry.stored_ms,
                    payload: entry.payload,
                    commit,
                });
            }
        }
        let accounts = txn.open_table(ACCOUNTS).or_internal()?;
        let mut members = Vec::new();
        for account in chat.roster.keys().chain(chat.removed_at.keys()) {
            if let Some(r) = records::get::<_, RemoteAccount, _>(&remote, account.0)? {
                members.push(MemberAddress { account: *account, home: r.home, display_name: r.display_name });
            } else if let Some(a) = records::get::<_, Account, _>(&accounts, account.0)? {
                members.push(MemberAddress { account: *account, home: me.clone(), display_name: a.display_name });
            }
        }
        let state = ReplicaState {
            kind: chat.kind,
            name: chat.name.clone(),
            description: chat.description.clone(),
            created_by: chat.created_by,
            created_ms: chat.created_ms,
            retention: chat.retention,
            epoch: chat.epoch,
            head: chat.head,
            roster: chat.roster.iter().map(|(a, r)| (*a, *r)).collect(),
            leaves: chat.leaves.iter().map(|(leaf, (a, d))| (*leaf, *a, *d)).collect(),
            removed_at: chat.removed_at.iter().map(|(a, s)| (*a, *s)).collect(),
            peer: chat.peer,
        };
        let held: Option<u64> = txn
            .open_table(PEER_CURSORS)
            .or_internal()?
            .get((group.0, peer_key.as_str()))
            .or_internal()?
            .map(|g| g.value());
        // What the member node says it holds (it asks for what follows).
        let confirmed = after.filter(|a| held.is_none_or(|h| *a > h) && *a <= chat.head);
        (ChatReplica { state, members, entries, upto }, confirmed)
    };
    if let Some(seq) = confirmed {
        node.writer
            .run(move |ctx| {
                let mut table = ctx.write().open_table(PEER_CURSORS).or_internal()?;
                let held = table.get((group.0, peer_key.as_str())).or_internal()?.map(|g| g.value());
                if held.is_none_or(|h| seq > h) {
                    table.insert((group.0, peer_key.as_str()), seq).or_internal()?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(FedReply::Entries(Box::new(replica)))
}

/// Entries of chats homed here that member node `peer` has not confirmed holding: the link's
/// queue.
pub fn queued(node: &Node, peer: &str) -> ApiResult<u64> {
    let txn = node.store.read().or_internal()?;
    let homes = txn.open_table(CHAT_HOMES).or_internal()?;
    let remote = txn.open_table(REMOTE_ACCOUNTS).or_internal()?;
    let cursors = txn.open_table(PEER_CURSORS).or_internal()?;
    let mut total = 0;
    for row in txn.open_table(CHATS).or_internal()?.iter().or_internal()? {
        let (key, value) = row.or_internal()?;
        if homes.get(key.value()).or_internal()?.is_some() {
            continue;
        }
        let chat: Chat = records::decode(value.value())?;
        if member_nodes_in(&remote, &chat)?.contains(peer) {
            let held = cursors.get((key.value(), peer)).or_internal()?.map(|g| g.value()).unwrap_or(0);
            total += chat.head.saturating_sub(held.max(chat.tail.saturating_sub(1)));
        }
    }
    Ok(total)
}
