//! Chats across nodes.
//!
//! A chat lives on its home node (where it was created), which orders every entry. Accounts live
//! on their home node too; a member's global address is its account id plus that node.
//!
//! - **Member nodes keep replicas.** A node whose accounts are in a chat homed elsewhere keeps the
//!   chat's log with the home's sequence numbers (`CHAT_HOMES` marks it). It pulls pages of
//!   entries with the chat's state from the home node ([`FedRequest::Pull`]); the home node's
//!   log is the outbox, and each pull says how far the member node got (`PEER_CURSORS`), so the
//!   home keeps entries until every member node holds them. An entry is applied only if its
//!   sequence number is above the replica's head, in the same transaction that moves the head:
//!   exactly once and in order, across restarts of either node.
//! - **The home node tells member nodes** when a chat changes ([`FedRequest::Notify`]); they
//!   also pull when a connection to the home opens, and retry failed pulls with backoff.
//! - **Devices submit through their own node**, which forwards the request to the home node
//!   ([`FedRequest::Forward`]) and answers with the home node's answer, after pulling up to the
//!   stored entry. A forwarded request is never acknowledged before the home node stored it: MLS
//!   binds each message to an epoch only the home can accept, so the device keeps it in its own
//!   durable outbox and retries while the home is unreachable (`ErrorCode::Unavailable`).
//! - **Invite links work on every linked node**: an invite unknown here is looked up on the
//!   linked nodes, and the join is forwarded to the one that has it.

mod background;
mod home;
mod homes;

pub use background::{catch_up, notify_changes, run_catch_up};
pub use home::{queued, serve};
pub use homes::claim_remote_key_packages;
pub(crate) use homes::forget_unresolved;
use homes::{Source, remember_in};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use redb::ReadableTable;
use veche_protocol::federation::{
    ChatReplica, CommitEffect, FedReply, FedRequest, LocatedAccount, MAX_PULL_ENTRIES, MemberAddress, ReplicaState,
    ReplicatedEntry,
};
use veche_protocol::ids::{AccountId, GroupId, InviteId};
use veche_protocol::wire::{ApiError, EntryKind, ErrorCode, Event, Request, Response};

use super::{ApiResult, Node, OrInternal, Session, err};
use crate::store::records::{self, Account, Chat, Link, LogEntry, RemoteAccount};
use crate::store::tables::{
    ACCOUNTS, CHAT_HOMES, CHATS, COMMIT_EFFECTS, COUNTERS, CURSORS, DEVICES, LINKS, LOG, MEMBERSHIP, PEER_CURSORS,
    REMOTE_ACCOUNTS, REPLICA_USAGE,
};
use crate::store::writer::TxnCtx;

/// Payload bytes of one page of pulled entries at most (at least one entry is always sent).
const MAX_PULL_BYTES: usize = 4 * 1024 * 1024;
/// The same over a bootstrap node's relay: a page must arrive well within the request timeout on
/// a slow internet link, and relayed circuits carry a limited number of bytes.
const MAX_RELAYED_PULL_BYTES: usize = 256 * 1024;
/// How often member nodes pull every replica, whatever they heard.
const FULL_SYNC: Duration = Duration::from_secs(30);
/// First and longest wait before trying a node that did not answer again (pulls from a home
/// node, notifications to a member node). Short: a probe is one small packet, and a link that
/// comes back should carry traffic again within seconds.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long a lookup among linked nodes (an invite, an account's key packages) waits for each.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Quiet time after applied entries before the pull that confirms them to the home node.
const CONFIRM_AFTER: Duration = Duration::from_secs(1);

/// What the federation of chats keeps in memory (everything durable is in the store).
#[derive(Default)]
pub struct Replication {
    /// One pull at a time per chat (only chats with a pull running or waiting).
    pulls: Mutex<HashMap<GroupId, Arc<tokio::sync::Mutex<()>>>>,
    /// Notifications in flight to (member node, chat), and whether the chat changed since.
    notifying: Mutex<HashMap<(PeerId, GroupId), bool>>,
    /// Nodes that did not answer: when to try again, and the current wait.
    backoff: Mutex<HashMap<PeerId, (Instant, Duration)>>,
    /// Linked nodes that answered for an invite unknown here.
    invites: Mutex<HashMap<InviteId, PeerId>>,
    /// Chats with a confirmation pull scheduled.
    confirming: Mutex<BTreeSet<GroupId>>,
    /// Accounts no linked node (or more than one) proved to be the home of: when to ask again,
    /// and what the answers were.
    unresolved: Mutex<HashMap<AccountId, (Instant, homes::Unresolved)>>,
    /// Key-package claims of members and linked nodes (`accounts::claim`).
    pub(crate) claims: Mutex<crate::service::accounts::ClaimQuota>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn refused(e: &str) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("the chat's home node cannot be reached: {e}"))
}

/// The home node of a chat kept here as a replica (`None`: homed here, or unknown).
pub fn home_of(txn: &redb::ReadTransaction, group: GroupId) -> ApiResult<Option<PeerId>> {
    let homes = txn.open_table(CHAT_HOMES).or_internal()?;
    let Some(home) = homes.get(group.0).or_internal()? else { return Ok(None) };
    Ok(home.value().parse().ok())
}

/// Member nodes of a chat homed here: the homes of its remote members (current and former).
pub fn member_nodes(txn: &redb::WriteTransaction, chat: &Chat) -> ApiResult<BTreeSet<String>> {
    let remote = txn.open_table(REMOTE_ACCOUNTS).or_internal()?;
    member_nodes_in(&remote, chat)
}

fn member_nodes_in(remote: &impl ReadableTable<[u8; 32], &'static [u8]>, chat: &Chat) -> ApiResult<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for account in chat.roster.keys().chain(chat.removed_at.keys()) {
        if let Some(r) = records::get::<_, RemoteAccount, _>(remote, account.0)? {
            out.insert(r.home);
        }
    }
    Ok(out)
}

/// The link with `peer`, if both admins approved it.
fn linked(node: &Node, peer: &PeerId) -> ApiResult<Option<Link>> {
    let txn = node.store.read().or_internal()?;
    let link: Option<Link> = records::get(&txn.open_table(LINKS).or_internal()?, peer.to_string().as_str())?;
    Ok(link.filter(|l| l.we_approved && l.they_approved))
}

fn linked_peers(node: &Node) -> ApiResult<Vec<(PeerId, Vec<Multiaddr>)>> {
    let txn = node.store.read().or_internal()?;
    let mut out = Vec::new();
    for row in txn.open_table(LINKS).or_internal()?.iter().or_internal()? {
        let (key, value) = row.or_internal()?;
        let link: Link = records::decode(value.value())?;
        if let (true, true, Ok(peer)) = (link.we_approved, link.they_approved, key.value().parse::<PeerId>()) {
            out.push((peer, addrs(&link)));
        }
    }
    Ok(out)
}

fn addrs(link: &Link) -> Vec<Multiaddr> {
    link.addrs.iter().filter_map(|a| a.parse().ok()).collect()
}

/// Sends a request to a linked node.
async fn ask(node: &Node, peer: PeerId, request: FedRequest) -> Result<FedReply, ApiError> {
    let Some(p2p) = &node.p2p else { return Err(refused("p2p is not running")) };
    let Some(link) = linked(node, &peer)? else {
        return Err(ApiError::new(ErrorCode::Forbidden, "this node is no longer linked with the chat's home node"));
    };
    p2p.fed(peer, addrs(&link), request).await.map_err(|e| refused(&e))
}

// ------------------------------------------------------------------------------------------
// Member node side: devices' requests for chats homed elsewhere.

/// The chat a request is about, if it must be served by the chat's home node.
fn routed_group(request: &Request) -> Option<GroupId> {
    match request {
        Request::Commit { group, .. }
        | Request::GroupInfo { group }
        | Request::Send { group, .. }
        | Request::SetRetention { group, .. }
        | Request::UpdateChat { group, .. }
        | Request::Invites { group }
        | Request::SetChatOpen { group, .. }
        | Request::CreateInvite { group: Some(group), .. } => Some(*group),
        _ => None,
    }
}

/// Serves a device's request on the chat's home node if the chat is homed elsewhere; `None`:
/// serve it here.
pub async fn route(node: &Node, session: Session, request: &Request) -> Option<Result<Response, ApiError>> {
    let group = routed_group(request)?;
    let home = match node.store.read().or_internal().and_then(|txn| home_of(&txn, group)) {
        Ok(Some(home)) => home,
        Ok(None) => return None,
        Err(e) => return Some(Err(e)),
    };
    Some(forward(node, Some(session), home, request.clone()).await)
}

/// Forwards a device's request to `home` and answers with its answer; a stored entry is pulled
/// into the replica before the answer, so the device can read and acknowledge it here.
async fn forward(node: &Node, session: Option<Session>, home: PeerId, request: Request) -> Result<Response, ApiError> {
    let group = match &request {
        Request::Join { commit, .. } => crate::mls_view::message(commit).ok().map(|v| v.group),
        other => routed_group(other),
    };
    let (account, device, display_name, homes) = match session {
        Some(s) => {
            let txn = node.store.read().or_internal()?;
            (s.account, s.device, display_name(&txn, s.account)?, added_homes(node, &txn, &request)?)
        }
        None => (AccountId([0; 32]), veche_protocol::ids::DeviceId([0; 32]), String::new(), Vec::new()),
    };
    let fed = FedRequest::Forward { account, device, display_name, homes, request: Box::new(request) };
    let answer = ask(node, home, fed).await.inspect_err(|e| {
        if e.code == ErrorCode::Unavailable {
            // Catch up with this home as soon as it answers again.
            failed(node, home);
        }
    })?;
    let response = match answer {
        FedReply::Response(result) => result?,
        FedReply::Refused(e) => return Err(e),
        other => return Err(super::internal(format!("unexpected answer to a forwarded request: {other:?}"))),
    };
    if let (Response::Stored { seq }, Some(group)) = (&response, group) {
        sync(node, home, group, *seq).await?;
    }
    Ok(response)
}

/// Addresses of the accounts a commit adds that live on other nodes, as far as this node knows.
/// Consecutive messages of one device to a chat homed on another node: sent there as one
/// request (so a device sending faster than one round trip per message is not held to that).
/// `Err` gives the messages back: the chat is homed here.
pub async fn route_sends(
    node: &Node,
    session: Session,
    group: GroupId,
    messages: Vec<Vec<u8>>,
) -> Result<Vec<ApiResult<u64>>, Vec<Vec<u8>>> {
    let all = |e: ApiError, n: usize| vec![Err(e); n];
    let n = messages.len();
    let home = match node.store.read().or_internal().and_then(|txn| home_of(&txn, group)) {
        Ok(Some(home)) => home,
        Ok(None) => return Err(messages),
        Err(e) => return Ok(all(e, n)),
    };
    let display_name = match node.store.read().or_internal().and_then(|txn| display_name(&txn, session.account)) {
        Ok(name) => name,
        Err(e) => return Ok(all(e, n)),
    };
    let fed =
        FedRequest::ForwardSends { account: session.account, device: session.device, display_name, group, messages };
    let results = match ask(node, home, fed).await {
        Ok(FedReply::Stored(results)) if results.len() == n => results,
        Ok(FedReply::Refused(e)) => return Ok(all(e, n)),
        Ok(other) => return Ok(all(super::internal(format!("unexpected answer to forwarded messages: {other:?}")), n)),
        Err(e) => {
            if e.code == ErrorCode::Unavailable {
                failed(node, home);
            }
            return Ok(all(e, n));
        }
    };
    // Stored entries are pulled into the replica before the answer, as for one forwarded request.
    if let Some(last) = results.iter().filter_map(|r| r.as_ref().ok()).max()
        && let Err(e) = sync(node, home, group, *last).await
    {
        return Ok(all(e, n));
    }
    Ok(results)
}

fn display_name(txn: &redb::ReadTransaction, account: AccountId) -> ApiResult<String> {
    Ok(super::accounts::load_account(txn, &account)?.map(|a| a.display_name).unwrap_or_default())
}

fn added_homes(node: &Node, txn: &redb::ReadTransaction, request: &Request) -> ApiResult<Vec<MemberAddress>> {
    let Request::Commit { group_info, .. } = request else { return Ok(Vec::new()) };
    let Ok(next) = crate::mls_view::group_info(group_info) else { return Ok(Vec::new()) };
    let remote = txn.open_table(REMOTE_ACCOUNTS).or_internal()?;
    let accounts = txn.open_table(ACCOUNTS).or_internal()?;
    let mut out = Vec::new();
    for account in next.roster().keys() {
        if let Some(r) = records::get::<_, RemoteAccount, _>(&remote, account.0)? {
            out.push(MemberAddress { account: *account, home: r.home, display_name: r.display_name });
        } else if let Some(a) = records::get::<_, Account, _>(&accounts, account.0)? {
            let home = node.info.node_id.clone();
            out.push(MemberAddress { account: *account, home, display_name: a.display_name });
        }
    }
    Ok(out)
}

/// Serves an invite request (preview, GroupInfo, join) for an invite unknown here on the linked
/// node that has it.
pub async fn remote_invite(
    node: &Node,
    session: Option<Session>,
    invite: InviteId,
    request: Request,
) -> ApiResult<Response> {
    let cached = lock(&node.replication.invites).get(&invite).copied();
    let home = match cached {
        Some(peer) => peer,
        None => {
            let token = match &request {
                Request::InvitePreview { token } | Request::JoinGroupInfo { token } | Request::Join { token, .. } => {
                    token.clone()
                }
                _ => return err(ErrorCode::BadRequest, "not an invite request"),
            };
            let peers = linked_peers(node)?;
            let asks = peers.into_iter().map(|(peer, _)| {
                let preview = FedRequest::Forward {
                    account: AccountId([0; 32]),
                    device: veche_protocol::ids::DeviceId([0; 32]),
                    display_name: String::new(),
                    homes: Vec::new(),
                    request: Box::new(Request::InvitePreview { token: token.clone() }),
                };
                async move {
                    match tokio::time::timeout(LOOKUP_TIMEOUT, ask(node, peer, preview)).await {
                        Ok(Ok(FedReply::Response(Ok(_)))) => Some(peer),
                        _ => None,
                    }
                }
            });
            // The first node that knows the invite answers; a node that is down does not hold
            // the others up.
            let mut pending: futures_util::stream::FuturesUnordered<_> = asks.collect();
            let mut found = None;
            while let Some(answer) = futures_util::StreamExt::next(&mut pending).await {
                if answer.is_some() {
                    found = answer;
                    break;
                }
            }
            let Some(peer) = found else {
                return err(ErrorCode::InviteInvalid, "this invite link is not valid on this node or its linked nodes");
            };
            lock(&node.replication.invites).insert(invite, peer);
            peer
        }
    };
    forward(node, session, home, request).await
}

/// Display names of accounts on other nodes this node knows.
pub fn remote_names(
    txn: &redb::ReadTransaction,
    accounts: &[AccountId],
) -> ApiResult<BTreeMap<AccountId, RemoteAccount>> {
    let remote = txn.open_table(REMOTE_ACCOUNTS).or_internal()?;
    let mut out = BTreeMap::new();
    for account in accounts {
        if let Some(r) = records::get::<_, RemoteAccount, _>(&remote, account.0)? {
            out.insert(*account, r);
        }
    }
    Ok(out)
}

/// Pulls a chat from its home node until the replica holds `want` (or everything there is).
/// Each pull tells the home how far this node got; after applying entries, one more pull a
/// moment later confirms the last page (so the home's queue for this node drains and its
/// retention may drop what every node holds).
pub async fn sync(node: &Node, home: PeerId, group: GroupId, want: u64) -> ApiResult<()> {
    let gate = pull_gate(node, group);
    let one = gate.lock().await;
    let result = pull_until(node, home, group, want).await;
    drop(one);
    release_pull_gate(node, group, gate);
    if let Ok(true) = result {
        confirm_later(node, home, group);
    }
    result.map(|_| ())
}

/// The gate that lets one pull of `group` run at a time.
fn pull_gate(node: &Node, group: GroupId) -> Arc<tokio::sync::Mutex<()>> {
    lock(&node.replication.pulls).entry(group).or_default().clone()
}

/// Gives `gate` back after a pull, dropping it from the map when no other pull holds or awaits it
/// (so the map holds only chats being pulled).
fn release_pull_gate(node: &Node, group: GroupId, gate: Arc<tokio::sync::Mutex<()>>) {
    let mut pulls = lock(&node.replication.pulls);
    // One reference in the map and this one: nobody else took it (taking it needs this lock).
    if Arc::strong_count(&gate) == 2 {
        pulls.remove(&group);
    }
}

fn confirm_later(node: &Node, home: PeerId, group: GroupId) {
    if !lock(&node.replication.confirming).insert(group) {
        return;
    }
    let node = node.clone();
    tokio::spawn(async move {
        tokio::time::sleep(CONFIRM_AFTER).await;
        lock(&node.replication.confirming).remove(&group);
        let gate = pull_gate(&node, group);
        let one = gate.lock().await;
        if let Err(e) = pull_until(&node, home, group, u64::MAX).await {
            tracing::debug!(%group, error = %e.message, "confirmation pull failed");
        }
        drop(one);
        release_pull_gate(&node, group, gate);
    });
}

/// Pulls until the replica holds `want`; whether any entry was applied.
async fn pull_until(node: &Node, home: PeerId, group: GroupId, want: u64) -> ApiResult<bool> {
    let mut applied = false;
    loop {
        let (head, exists) = {
            let txn = node.store.read().or_internal()?;
            match super::chats::load(&txn, group)? {
                Some(chat) => {
                    if home_of(&txn, group)? != Some(home) {
                        return err(ErrorCode::Conflict, "this chat id is taken by another chat here");
                    }
                    (chat.head, true)
                }
                None => (0, false),
            }
        };
        if exists && head >= want {
            return Ok(applied);
        }
        let after = exists.then_some(head);
        let reply = match ask(node, home, FedRequest::Pull { group, after }).await {
            Ok(reply) => reply,
            Err(e) => {
                failed(node, home);
                return Err(e);
            }
        };
        let replica = match reply {
            FedReply::Entries(replica) => *replica,
            FedReply::Refused(e) => return Err(e),
            other => return Err(super::internal(format!("unexpected answer to a pull: {other:?}"))),
        };
        reachable(node, home);
        // Where the chat's members live is learned from their own nodes, not from this page.
        homes::resolve(node, replica.members.iter().map(|m| m.account)).await?;
        let upto = replica.upto;
        applied |= !replica.entries.is_empty();
        let me = node.info.node_id.clone();
        let quotas = node.info.quotas;
        let head = node.writer.run(move |ctx| apply(ctx, &me, home, group, replica, quotas)).await?;
        if head >= upto {
            return Ok(applied);
        }
    }
}

/// `peer` did not answer: wait before trying it again (longer each time, up to
/// [`BACKOFF_MAX`]).
fn failed(node: &Node, peer: PeerId) {
    let mut backoff = lock(&node.replication.backoff);
    let wait = backoff.get(&peer).map(|(_, d)| (*d * 2).min(BACKOFF_MAX)).unwrap_or(BACKOFF_MIN);
    backoff.insert(peer, (Instant::now() + wait, wait));
}

/// `peer` answered, or a connection to it opened: no more waiting.
pub fn reachable(node: &Node, peer: PeerId) {
    lock(&node.replication.backoff).remove(&peer);
}

/// When `peer` may be tried again, if it is in backoff.
fn retry_at(node: &Node, peer: PeerId) -> Option<Instant> {
    lock(&node.replication.backoff).get(&peer).map(|(at, _)| *at).filter(|at| *at > Instant::now())
}

/// Checks a page pulled from a chat's home node before anything of it is stored: sequence
/// numbers from 1, consecutive, up to `upto` and never at the end of the numbers (this node
/// adds 1 to them); at most [`MAX_PULL_ENTRIES`] entries of at most
/// [`veche_protocol::MAX_MLS_MESSAGE_BYTES`] each; a group chat's name and description as a
/// member would have to set them, a direct chat's empty. Returns the page with the name and
/// description trimmed.
fn check_page(mut replica: ChatReplica) -> ApiResult<ChatReplica> {
    let bad =
        |what: &str| ApiError::new(ErrorCode::BadRequest, format!("the chat's home node sent an invalid page: {what}"));
    let ChatReplica { state, entries, upto, .. } = &mut replica;
    if entries.len() > MAX_PULL_ENTRIES {
        return Err(bad(&format!("more than {MAX_PULL_ENTRIES} entries")));
    }
    if *upto == u64::MAX || state.epoch == u64::MAX || entries.iter().any(|e| e.epoch == u64::MAX) {
        return Err(bad("a sequence or epoch number at the end of the numbers"));
    }
    if entries.first().is_some_and(|e| e.seq == 0) {
        return Err(bad("an entry with sequence number 0"));
    }
    if entries.windows(2).any(|w| w[0].seq.checked_add(1) != Some(w[1].seq)) {
        return Err(bad("entries that are not consecutive"));
    }
    if entries.last().is_some_and(|e| e.seq > *upto) {
        return Err(bad("entries beyond the last it may send"));
    }
    let max = veche_protocol::MAX_MLS_MESSAGE_BYTES;
    let too_large = |e: &ReplicatedEntry| {
        e.payload.len() > max || e.commit.as_ref().and_then(|c| c.welcome.as_ref()).is_some_and(|w| w.len() > max)
    };
    if entries.iter().any(too_large) {
        return Err(bad(&format!("an entry larger than {max} bytes")));
    }
    match state.kind {
        veche_protocol::ids::ChatKind::Group => {
            let name = veche_protocol::validate::chat_name(&state.name).map_err(|e| bad(&e.to_string()))?;
            let description =
                veche_protocol::validate::chat_description(&state.description).map_err(|e| bad(&e.to_string()))?;
            (state.name, state.description) = (name, description);
        }
        veche_protocol::ids::ChatKind::Direct => {
            if !state.name.is_empty() || !state.description.is_empty() {
                return Err(bad("a direct chat with a name"));
            }
        }
    }
    Ok(replica)
}

/// Applies a page pulled from `home` to the replica, in one transaction. Returns the new head.
///
/// A new replica is made only for a chat with a member who has an account on this node, and only
/// while `home` has fewer than `quotas.max_replicas_per_link` chats here; the entries of all of
/// `home`'s replicas together take at most `quotas.replica_bytes_per_link` bytes here (the entries
/// of a page that fit are applied, and a page of which none fits is refused): a linked node cannot
/// make this node keep chats of strangers, or unboundedly many, or unboundedly large ones. Each
/// home's count and bytes are kept in `REPLICA_USAGE` (retention gives the bytes back).
fn apply(
    ctx: &mut TxnCtx<'_>,
    me: &str,
    home: PeerId,
    group: GroupId,
    replica: ChatReplica,
    quotas: crate::config::Quotas,
) -> ApiResult<u64> {
    let replica = check_page(replica).inspect_err(|e| {
        tracing::warn!(%group, %home, error = %e.message, "refused a page pulled from the chat's home node");
    })?;
    let ChatReplica { state, members, mut entries, upto } = replica;
    let home_key = home.to_string();
    let (held, used) = ctx
        .read()
        .open_table(REPLICA_USAGE)
        .or_internal()?
        .get(home_key.as_str())
        .or_internal()?
        .map(|g| g.value())
        .unwrap_or((0, 0));
    let mut new_replica = false;
    let existing: Option<Chat> = records::get(&ctx.read().open_table(CHATS).or_internal()?, group.0)?;
    let recorded_home =
        ctx.read().open_table(CHAT_HOMES).or_internal()?.get(group.0).or_internal()?.map(|g| g.value().to_string());
    let mut chat = match (existing, recorded_home) {
        (Some(chat), Some(h)) if h == home_key => chat,
        (Some(_), _) => return err(ErrorCode::Conflict, "this chat id is taken by another chat here"),
        (None, _) => {
            let accounts = ctx.read().open_table(ACCOUNTS).or_internal()?;
            let mut members_here = 0;
            for (account, _) in &state.roster {
                members_here += usize::from(accounts.get(account.0).or_internal()?.is_some());
            }
            if members_here == 0 {
                tracing::warn!(%group, %home, "refused a chat from a linked node: none of its members lives here");
                return err(ErrorCode::Forbidden, "no member of this chat has an account on this node");
            }
            if held >= u64::from(quotas.max_replicas_per_link) {
                tracing::warn!(%group, %home, held, "refused a chat from a linked node: it has the most chats kept for one node");
                return err(
                    ErrorCode::QuotaExceeded,
                    format!("this node keeps {held} chats homed on your node, the most it keeps for one linked node"),
                );
            }
            // A new replica starts at the first entry for this node's members.
            let start = entries.first().map(|e| e.seq - 1).unwrap_or(upto);
            new_replica = true;
            Chat {
                kind: state.kind,
                name: state.name.clone(),
                description: state.description.clone(),
                created_by: state.created_by,
                created_ms: state.created_ms,
                retention: state.retention,
                epoch: state.epoch,
                head: start,
                tail: start + 1,
                roster: state.roster.iter().copied().collect(),
                leaves: state.leaves.iter().map(|(leaf, a, d)| (*leaf, (*a, *d))).collect(),
                leaving: BTreeMap::new(),
                removed_at: state.removed_at.iter().copied().collect(),
                peer: state.peer,
            }
        }
    };
    // The entries new here that fit the home's byte quota (checked before anything is written).
    let quota = quotas.replica_bytes_per_link;
    let (mut fit, mut adding) = (0, 0u64);
    for entry in entries.iter().filter(|e| e.seq > chat.head) {
        let size = entry.payload.len() as u64;
        if used.saturating_add(adding).saturating_add(size) > quota {
            break;
        }
        (fit, adding) = (fit + 1, adding + size);
    }
    let new_entries = entries.iter().filter(|e| e.seq > chat.head).count();
    if fit < new_entries {
        tracing::warn!(%group, %home, used, quota, "refused entries from a linked node: its chats take the most bytes kept for one node");
        if fit == 0 {
            return err(
                ErrorCode::QuotaExceeded,
                format!(
                    "this node keeps {} of messages of chats homed on your node, the most it keeps for one linked node",
                    crate::config::format_bytes(used)
                ),
            );
        }
        let keep = entries.len() - (new_entries - fit);
        entries.truncate(keep);
    }
    if new_replica {
        ctx.write().open_table(CHAT_HOMES).or_internal()?.insert(group.0, home_key.as_str()).or_internal()?;
        tracing::info!(%group, home = %home, "new chat from a linked node");
    }
    remember_in(ctx, me, Source::Node(&home_key), &members)?;
    let before = (chat.name.clone(), chat.description.clone());
    let (mut count, mut bytes) = (0u64, 0u64);
    for entry in entries {
        if entry.seq <= chat.head {
            continue; // held already: each entry is applied once
        }
        if entry.seq != chat.head + 1 {
            tracing::warn!(%group, from = chat.head + 1, to = entry.seq - 1, "entries dropped by the home's retention");
        }
        count += 1;
        bytes += entry.payload.len() as u64;
        apply_entry(ctx, group, &mut chat, entry)?;
    }
    if count > 0 || new_replica {
        let usage = (held + u64::from(new_replica), used + bytes);
        ctx.write().open_table(REPLICA_USAGE).or_internal()?.insert(home_key.as_str(), usage).or_internal()?;
    }
    if count > 0 {
        // Replicas count as stored messages too (`/metrics`).
        let mut counters = ctx.write().open_table(COUNTERS).or_internal()?;
        for (name, add) in [("messages_stored", count), ("bytes_stored", bytes)] {
            let value = counters.get(name).or_internal()?.map(|g| g.value()).unwrap_or(0);
            counters.insert(name, value + add).or_internal()?;
        }
    }
    if chat.head >= state.head {
        // Caught up: the state is the home's current one.
        chat.kind = state.kind;
        chat.name = state.name;
        chat.description = state.description;
        chat.retention = state.retention;
        chat.epoch = state.epoch;
        chat.roster = state.roster.into_iter().collect();
        chat.leaves = state.leaves.into_iter().map(|(leaf, a, d)| (leaf, (a, d))).collect();
        chat.removed_at = state.removed_at.into_iter().collect();
        chat.peer = state.peer;
    }
    let txn = ctx.write();
    {
        // This node's accounts list the chat while they are (or were, up to their removal) in it.
        let accounts = txn.open_table(ACCOUNTS).or_internal()?;
        let mut membership = txn.open_table(MEMBERSHIP).or_internal()?;
        for account in chat.roster.keys() {
            if accounts.get(account.0).or_internal()?.is_some() {
                membership.insert((account.0, group.0), ()).or_internal()?;
            }
        }
        for account in chat.removed_at.keys() {
            if !chat.roster.contains_key(account) {
                membership.remove((account.0, group.0)).or_internal()?;
            }
        }
    }
    txn.open_table(CHATS).or_internal()?.insert(group.0, records::encode(&chat).as_slice()).or_internal()?;
    if before != (chat.name.clone(), chat.description.clone()) {
        ctx.publish(chat.roster.keys().copied().collect(), Event::ChatUpdated { group });
    }
    Ok(chat.head)
}

/// Stores one pulled entry and replays a commit's effect on this node's accounts and devices.
fn apply_entry(ctx: &mut TxnCtx<'_>, group: GroupId, chat: &mut Chat, entry: ReplicatedEntry) -> ApiResult<()> {
    let ReplicatedEntry { seq, kind, epoch, sender, stored_ms, payload, commit } = entry;
    let mut recipients: BTreeSet<AccountId> = chat.roster.keys().copied().collect();
    if let Some(CommitEffect { added, removed, welcome }) = &commit {
        for account in removed {
            chat.removed_at.insert(*account, seq);
            chat.roster.remove(account);
        }
        {
            let txn = ctx.write();
            let devices = txn.open_table(DEVICES).or_internal()?;
            let mut cursors = txn.open_table(CURSORS).or_internal()?;
            for (account, device) in added {
                chat.removed_at.remove(account);
                chat.roster.entry(*account).or_insert(veche_protocol::ids::Role::Member);
                recipients.insert(*account);
                if devices.get(device.0).or_internal()?.is_some() {
                    // As on the home: the entry that adds a device stays until it acknowledged it.
                    cursors.insert((device.0, group.0), seq - 1).or_internal()?;
                }
            }
        }
        if let Some(welcome) = welcome {
            super::delivery::store_welcomes(ctx, group, seq, welcome.clone(), added)?;
        }
    }
    let log_entry = LogEntry { kind, epoch, sender, stored_ms, payload };
    ctx.write()
        .open_table(LOG)
        .or_internal()?
        .insert((group.0, seq), records::encode(&log_entry).as_slice())
        .or_internal()?;
    chat.head = seq;
    if kind == EntryKind::Handshake && commit.is_some() {
        chat.epoch = epoch + 1;
    }
    let delivered = veche_protocol::wire::Delivered {
        group,
        seq,
        kind,
        epoch,
        sender,
        stored_at_ms: stored_ms,
        payload: log_entry.payload,
    };
    ctx.publish(recipients.into_iter().collect(), Event::Message(delivered));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Hub;
    use crate::metrics::Metrics;
    use crate::service::NodeInfo;
    use crate::store::{Store, Writer};
    use veche_protocol::ids::{ChatKind, Retention, Role};
    use veche_protocol::wire::RegistrationPolicy;

    /// The account in every test page's roster (`page`).
    const OWNER: AccountId = AccountId([1; 32]);

    /// A node where `OWNER` has an account (so pages of its chats make replicas).
    fn node(dir: &std::path::Path) -> Node {
        node_with(dir, Default::default())
    }

    fn node_with(dir: &std::path::Path, quotas: crate::config::Quotas) -> Node {
        let store = Store::open(&dir.join("veche.redb")).unwrap();
        {
            let txn = store.database().begin_write().unwrap();
            let account = records::Account {
                display_name: "Owner".into(),
                created_ms: 0,
                node_admin: false,
                devices: Vec::new(),
            };
            txn.open_table(ACCOUNTS).unwrap().insert(OWNER.0, records::encode(&account).as_slice()).unwrap();
            txn.commit().unwrap();
        }
        let hub = Arc::new(Hub::default());
        let writer = Writer::spawn(store.database().clone(), hub.clone()).unwrap();
        let info = NodeInfo {
            node_id: PeerId::random().to_string(),
            name: "test".into(),
            registration: RegistrationPolicy::Open,
            version: "0",
            http_port: 0,
            community_secret: None,
            guest_grace: Duration::from_secs(3600),
            quotas,
        };
        Node {
            store,
            writer,
            hub,
            metrics: Arc::new(Metrics::default()),
            info: Arc::new(info),
            p2p: None,
            replication: Default::default(),
            calls: None,
        }
    }

    /// A page from the home node with entries `seqs` of a group chat named `name`.
    fn page(seqs: &[u64], upto: u64, name: &str) -> ChatReplica {
        let owner = OWNER;
        let state = ReplicaState {
            kind: ChatKind::Group,
            name: name.into(),
            description: String::new(),
            created_by: owner,
            created_ms: 0,
            retention: Retention::Forever,
            epoch: 0,
            head: upto,
            roster: vec![(owner, Role::Owner)],
            leaves: Vec::new(),
            removed_at: Vec::new(),
            peer: None,
        };
        let entry = |seq: u64| ReplicatedEntry {
            seq,
            kind: EntryKind::Application,
            epoch: 0,
            sender: owner,
            stored_ms: 0,
            payload: vec![seq as u8; 8],
            commit: None,
        };
        ChatReplica { state, members: Vec::new(), entries: seqs.iter().copied().map(entry).collect(), upto }
    }

    /// Applies a pulled page as [`pull_until`] does: in a writer job.
    async fn apply_page(node: &Node, home: PeerId, group: GroupId, replica: ChatReplica) -> ApiResult<u64> {
        let me = node.info.node_id.clone();
        let quotas = node.info.quotas;
        node.writer.run(move |ctx| apply(ctx, &me, home, group, replica, quotas)).await
    }

    fn stored_seqs(node: &Node, group: GroupId) -> Vec<u64> {
        let txn = node.store.read().unwrap();
        let log = txn.open_table(LOG).unwrap();
        log.range((group.0, 0)..=(group.0, u64::MAX)).unwrap().map(|i| i.unwrap().0.value().1).collect()
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("veche-replica-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A linked node's chat becomes a replica only if one of its members has an account here, and
    /// only while that node has fewer chats here than its quota; other nodes are not affected.
    #[tokio::test]
    async fn replicas_need_a_member_here_and_fit_the_link_quota() {
        let dir = temp_dir("admission");
        let quotas = crate::config::Quotas { max_replicas_per_link: 2, ..Default::default() };
        let node = node_with(&dir, quotas);
        let (home, other) = (PeerId::random(), PeerId::random());

        let mut strangers = page(&[1], 1, "strangers");
        strangers.state.roster = vec![(AccountId([7; 32]), Role::Owner)];
        strangers.entries[0].sender = AccountId([7; 32]);
        let e = apply_page(&node, home, GroupId([10; 16]), strangers).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden, "{}", e.message);
        assert!(stored_seqs(&node, GroupId([10; 16])).is_empty(), "a chat of strangers is not stored");

        for g in [11, 12] {
            assert_eq!(apply_page(&node, home, GroupId([g; 16]), page(&[1], 1, "ours")).await.unwrap(), 1);
        }
        let e = apply_page(&node, home, GroupId([13; 16]), page(&[1], 1, "one too many")).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::QuotaExceeded, "{}", e.message);
        assert!(stored_seqs(&node, GroupId([13; 16])).is_empty());
        // Replicas it holds still take new pages; another linked node has its own quota.
        assert_eq!(apply_page(&node, home, GroupId([11; 16]), page(&[1, 2], 2, "ours")).await.unwrap(), 2);
        assert_eq!(apply_page(&node, other, GroupId([14; 16]), page(&[1], 1, "theirs")).await.unwrap(), 1);
    }

    fn usage(node: &Node, home: PeerId) -> Option<(u64, u64)> {
        let txn = node.store.read().unwrap();
        txn.open_table(REPLICA_USAGE).unwrap().get(home.to_string().as_str()).unwrap().map(|g| g.value())
    }

    /// The entries of one linked node's chats take at most `replica_bytes_per_link` here: the
    /// entries of a page that fit are applied, a page of which none fits is refused
    /// (`QuotaExceeded`, nothing stored, no new replica), other linked nodes are not affected, and
    /// retention gives the bytes back. The count is kept as entries are applied.
    #[tokio::test]
    async fn replicas_of_one_link_fit_its_byte_quota() {
        let dir = temp_dir("bytes");
        // Test pages carry 8 bytes per entry: room for 12 entries.
        let quotas = crate::config::Quotas { replica_bytes_per_link: 100, ..Default::default() };
        let node = node_with(&dir, quotas);
        let (home, other) = (PeerId::random(), PeerId::random());
        let (group, second) = (GroupId([20; 16]), GroupId([21; 16]));
        let kept = |seqs: &[u64], upto: u64| {
            let mut p = page(seqs, upto, "chat");
            p.state.retention = Retention::Days(1);
            p
        };

        assert_eq!(apply_page(&node, home, group, kept(&(1..=10).collect::<Vec<_>>(), 15)).await.unwrap(), 10);
        assert_eq!(usage(&node, home), Some((1, 80)));
        // Two of the next five fit.
        assert_eq!(apply_page(&node, home, group, kept(&[11, 12, 13, 14, 15], 15)).await.unwrap(), 12);
        assert_eq!(stored_seqs(&node, group), (1..=12).collect::<Vec<_>>());
        assert_eq!(usage(&node, home), Some((1, 96)));
        // None of these does: refused, nothing stored; nor a new chat with entries from that node.
        let e = apply_page(&node, home, group, kept(&[13, 14, 15], 15)).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::QuotaExceeded, "{}", e.message);
        let e = apply_page(&node, home, second, kept(&[1], 1)).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::QuotaExceeded, "{}", e.message);
        assert!(stored_seqs(&node, second).is_empty());
        assert!(node.store.read().unwrap().open_table(CHAT_HOMES).unwrap().get(second.0).unwrap().is_none());
        assert_eq!(usage(&node, home), Some((1, 96)), "nothing counted for refused pages");
        // Another linked node has a quota of its own.
        assert_eq!(
            apply_page(&node, other, GroupId([22; 16]), kept(&(1..=12).collect::<Vec<_>>(), 12)).await.unwrap(),
            12
        );
        assert_eq!(usage(&node, other), Some((1, 96)));

        // Retention drops the entries (stored long ago): their bytes are free again.
        assert!(crate::service::retention::run_once(&node).await.unwrap() >= 12);
        assert_eq!(usage(&node, home), Some((1, 0)));
        assert_eq!(apply_page(&node, home, group, kept(&[13, 14, 15], 15)).await.unwrap(), 15);
        assert_eq!(usage(&node, home), Some((1, 24)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A home node's page that starts at seq 0 (or otherwise breaks the numbering) is refused
    /// without touching the store, and a good page afterwards is applied.
    #[tokio::test]
    async fn invalid_pulled_pages_are_refused_and_later_pages_apply() {
        let dir = temp_dir("seq0");
        let node = node(&dir);
        let home = PeerId::random();
        let group = GroupId([3; 16]);
        for (what, bad) in [
            ("seq 0", page(&[0, 1], 1, "chat")),
            ("not consecutive", page(&[1, 3], 3, "chat")),
            ("beyond upto", page(&[1, 2], 1, "chat")),
            ("upto at the end of the numbers", page(&[], u64::MAX, "chat")),
            ("control character in the name", page(&[1], 1, "a\u{7}b")),
            ("empty group name", page(&[1], 1, " ")),
            ("name too long", page(&[1], 1, &"n".repeat(veche_protocol::validate::MAX_CHAT_NAME + 1))),
            ("too many entries", page(&(1..=MAX_PULL_ENTRIES as u64 + 1).collect::<Vec<_>>(), 5000, "chat")),
        ] {
            let e = apply_page(&node, home, group, bad).await.expect_err(what);
            assert_eq!(e.code, ErrorCode::BadRequest, "{what}: {}", e.message);
            assert!(stored_seqs(&node, group).is_empty(), "{what}: nothing stored");
        }
        let mut oversized = page(&[1], 1, "chat");
        oversized.entries[0].payload = vec![0; veche_protocol::MAX_MLS_MESSAGE_BYTES + 1];
        assert_eq!(apply_page(&node, home, group, oversized).await.unwrap_err().code, ErrorCode::BadRequest);

        assert_eq!(apply_page(&node, home, group, page(&[1, 2], 2, "chat")).await.unwrap(), 2);
        assert_eq!(stored_seqs(&node, group), vec![1, 2]);
        // Seq 0 on an existing replica too.
        let e = apply_page(&node, home, group, page(&[0, 1, 2, 3], 3, "chat")).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert_eq!(apply_page(&node, home, group, page(&[3], 3, "chat")).await.unwrap(), 3);
        assert_eq!(stored_seqs(&node, group), vec![1, 2, 3]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The per-chat pull gates do not outlive the pulls.
    #[tokio::test]
    async fn pull_gates_are_pruned() {
        let dir = temp_dir("gates");
        let node = node(&dir);
        for i in 0..10u8 {
            // No p2p here: each pull fails at once.
            assert!(sync(&node, PeerId::random(), GroupId([i; 16]), 1).await.is_err());
        }
        assert!(lock(&node.replication.pulls).is_empty(), "no gate is left for finished pulls");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
