//! Links with other nodes: what admins see and approve, and the link messages nodes exchange.
//!
//! A link is stored per peer id (`LINKS`) with two approvals: ours (our admin, or a shared
//! community secret) and theirs (they asked us, or answered `Linked`). It is up when both are
//! set. Carrying chats over links comes next; today a link is the admins' agreement.

use hmac::{Hmac, Mac};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};
use tokio::sync::mpsc;
use veche_protocol::federation::{LinkMessage, LinkReply};
use veche_protocol::wire::{ErrorCode, LinkInfo, LinkState, LinksInfo, NearbyNode};

use super::{ApiResult, Node, OrInternal, Session, err};
use crate::p2p::{P2pEvent, P2pHandle};
use crate::store::records::{self, Account, Link, now_ms};
use crate::store::tables::{ACCOUNTS, LINKS};

/// Links waiting for our admin at most; further requests are refused.
const MAX_WAITING_FOR_US: usize = 100;

/// Whether the session's account is a node admin.
fn is_admin(node: &Node, session: &Session) -> ApiResult<bool> {
    let txn = node.store.read().or_internal()?;
    let account: Option<Account> = records::get(&txn.open_table(ACCOUNTS).or_internal()?, session.account.0)?;
    Ok(account.is_some_and(|a| a.node_admin))
}

fn require_admin(node: &Node, session: &Session) -> ApiResult<()> {
    if !is_admin(node, session)? {
        return err(ErrorCode::Forbidden, "only node admins manage links to other nodes");
    }
    Ok(())
}

fn p2p(node: &Node) -> ApiResult<&P2pHandle> {
    node.p2p.as_ref().ok_or_else(|| veche_protocol::wire::ApiError::new(ErrorCode::Internal, "p2p is not running"))
}

/// Most SPAKE2 exchanges this node keeps open as the receiver, waiting for the asker's
/// confirmation: a LAN has a handful of nodes, each asking once per sighting; more are refused.
const MAX_PENDING_EXCHANGES: usize = 64;
/// How long the receiver waits for the asker's confirmation (one round trip on a LAN).
const EXCHANGE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// The receiver's half of an exchange: the agreed key, and what to record once confirmed.
struct PendingExchange {
    key: Vec<u8>,
    started: std::time::Instant,
    name: String,
    addr: Option<String>,
}

/// Exchanges waiting for the asker's confirmation, by asker; owned by [`run`], the only task
/// that handles link messages.
type PendingExchanges = std::collections::HashMap<PeerId, PendingExchange>;

/// SPAKE2 over Ed25519 with the community secret as password, the asker as side A and the
/// receiver as side B (their peer ids as identities), so the exchange holds for this pair only.
fn pake_start(secret: &str, asker: &PeerId, receiver: &PeerId, side_a: bool) -> (Spake2<Ed25519Group>, Vec<u8>) {
    let (password, a, b) =
        (Password::new(secret.as_bytes()), Identity::new(&asker.to_bytes()), Identity::new(&receiver.to_bytes()));
    if side_a {
        Spake2::<Ed25519Group>::start_a(&password, &a, &b)
    } else {
        Spake2::<Ed25519Group>::start_b(&password, &a, &b)
    }
}

/// A key confirmation: HMAC-SHA256 keyed by the agreed key over who sends it.
fn confirmation(key: &[u8], from_asker: bool) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(if from_asker { b"veche/link/v2 asker" } else { b"veche/link/v2 receiver" });
    mac
}

/// The receiver's side: its SPAKE2 message and confirmation for the asker's `message`, and the
/// key it keeps until the asker confirms. `None` if the message is malformed.
fn pake_answer(secret: &str, asker: &PeerId, me: &PeerId, message: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let (state, reply) = pake_start(secret, asker, me, false);
    let key = state.finish(message).ok()?;
    let confirm = confirmation(&key, false).finalize().into_bytes().to_vec();
    Some((reply, confirm, key))
}

/// The asker's side, given the receiver's answer: its own confirmation if the receiver's checks
/// out (the same secret), else `None`.
fn pake_confirm(state: Spake2<Ed25519Group>, message: &[u8], confirm: &[u8]) -> Option<Vec<u8>> {
    let key = state.finish(message).ok()?;
    confirmation(&key, false).verify_slice(confirm).ok()?;
    Some(confirmation(&key, true).finalize().into_bytes().to_vec())
}

fn state(link: &Link) -> Option<LinkState> {
    match (link.we_approved, link.they_approved) {
        (true, true) => Some(LinkState::Linked),
        (true, false) => Some(LinkState::WaitingForThem),
        (false, true) => Some(LinkState::WaitingForUs),
        (false, false) => None,
    }
}

fn load(node: &Node, peer: &str) -> ApiResult<Option<Link>> {
    let txn = node.store.read().or_internal()?;
    records::get(&txn.open_table(LINKS).or_internal()?, peer)
}

fn all(node: &Node) -> ApiResult<Vec<(String, Link)>> {
    use redb::ReadableTable;
    let txn = node.store.read().or_internal()?;
    let table = txn.open_table(LINKS).or_internal()?;
    let mut out = Vec::new();
    for row in table.iter().or_internal()? {
        let (key, value) = row.or_internal()?;
        out.push((key.value().to_string(), records::decode(value.value())?));
    }
    Ok(out)
}

/// Changes a link atomically (read, change, write in one writer job); deletes it when neither
/// side approves any more. Returns the link as written.
async fn update(
    node: &Node,
    peer: String,
    change: impl FnOnce(Option<Link>) -> Option<Link> + Send + 'static,
) -> ApiResult<Option<Link>> {
    let key = peer.clone();
    let written = node
        .writer
        .run(move |ctx| {
            let current: Option<Link> = records::get(&ctx.read().open_table(LINKS).or_internal()?, peer.as_str())?;
            let next = change(current).filter(|l| state(l).is_some());
            let mut table = ctx.write().open_table(LINKS).or_internal()?;
            match &next {
                Some(link) => table.insert(peer.as_str(), records::encode(link).as_slice()).or_internal()?,
                None => table.remove(peer.as_str()).or_internal()?,
            };
            Ok(next)
        })
        .await?;
    // The swarm reads large federation messages only from linked peers.
    if let (Some(p2p), Ok(id)) = (&node.p2p, key.parse::<PeerId>()) {
        p2p.set_linked(id, written.as_ref().and_then(state) == Some(LinkState::Linked));
    }
    if written.as_ref().and_then(state) == Some(LinkState::Linked) {
        crate::service::replica::forget_unresolved(node);
    }
    Ok(written)
}

/// The peers whose link is up, as stored (read at start, before the swarm runs).
pub fn linked_peers(store: &crate::store::Store) -> ApiResult<Vec<PeerId>> {
    use redb::ReadableTable;
    let txn = store.read().or_internal()?;
    let mut out = Vec::new();
    for row in txn.open_table(LINKS).or_internal()?.iter().or_internal()? {
        let (key, value) = row.or_internal()?;
        let link: Link = records::decode(value.value())?;
        if let (Some(LinkState::Linked), Ok(peer)) = (state(&link), key.value().parse::<PeerId>()) {
            out.push(peer);
        }
    }
    Ok(out)
}

fn new_link(name: String) -> Link {
    Link { name, addrs: Vec::new(), we_approved: false, they_approved: false, created_ms: now_ms(), last_seen_ms: 0 }
}

/// What admins see of a link; `connected`: the peers connected now.
fn info(node: &Node, peer: &str, link: &Link, connected: &[PeerId]) -> Option<LinkInfo> {
    let connected = peer.parse::<PeerId>().is_ok_and(|id| connected.contains(&id));
    Some(LinkInfo {
        peer_id: peer.to_string(),
        name: link.name.clone(),
        state: state(link)?,
        addrs: link.addrs.clone(),
        connected,
        last_seen_ms: link.last_seen_ms,
        queued: super::replica::queued(node, peer).unwrap_or(0),
    })
}

/// How many links both sides approved (for `/metrics`).
pub fn links_up(node: &Node) -> ApiResult<usize> {
    Ok(all(node)?.iter().filter(|(_, l)| state(l) == Some(LinkState::Linked)).count())
}

/// Nodes found on the LAN, newest first (node admins only).
pub async fn nearby(node: &Node, session: Session) -> ApiResult<Vec<NearbyNode>> {
    require_admin(node, &session)?;
    let Some(p2p) = &node.p2p else { return Ok(Vec::new()) };
    let status = p2p.status().await;
    let mut list: Vec<NearbyNode> = status
        .nearby
        .into_iter()
        .map(|n| NearbyNode {
            connected: status.connected.contains(&n.peer_id),
            peer_id: n.peer_id.to_string(),
            name: n.name,
            http_port: n.http_port,
            addrs: n.addrs.iter().map(ToString::to_string).collect(),
            verified: n.verified,
            last_seen_ms: n.last_seen_ms,
        })
        .collect();
    list.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then_with(|| a.peer_id.cmp(&b.peer_id)));
    Ok(list)
}

/// This node's links and requests, and its own addresses (node admins only).
pub async fn links(node: &Node, session: Session) -> ApiResult<LinksInfo> {
    require_admin(node, &session)?;
    let status = match &node.p2p {
        Some(p2p) => p2p.status().await,
        None => Default::default(),
    };
    let links = all(node)?.iter().filter_map(|(peer, link)| info(node, peer, link, &status.connected)).collect();
    let own_addrs = crate::p2p::shareable_addrs(&status.listen_addrs, &node.info.node_id);
    Ok(LinksInfo { own_addrs, links })
}

/// `target`: a peer id (of a nearby node or an existing request) or `<multiaddr>/p2p/<peer id>`.
fn parse_target(target: &str) -> ApiResult<(PeerId, Option<Multiaddr>)> {
    let target = target.trim();
    if let Ok(peer) = target.parse::<PeerId>() {
        return Ok((peer, None));
    }
    let bad =
        || veche_protocol::wire::ApiError::new(ErrorCode::BadRequest, "give a peer id or <multiaddr>/p2p/<peer id>");
    let mut addr: Multiaddr = target.parse().map_err(|_| bad())?;
    match addr.pop() {
        Some(Protocol::P2p(peer)) => Ok((peer, Some(addr))),
        _ => Err(bad()),
    }
}

/// Our admin approves a link and asks the other node.
pub async fn link(node: &Node, session: Session, target: String) -> ApiResult<LinkInfo> {
    require_admin(node, &session)?;
    let p2p = p2p(node)?;
    let (peer, addr) = parse_target(&target)?;
    if peer.to_string() == node.info.node_id {
        return err(ErrorCode::BadRequest, "that is this node");
    }
    let key = peer.to_string();
    let status = p2p.status().await;
    let nearby = status.nearby.iter().find(|n| n.peer_id == peer).cloned();
    let known = load(node, &key)?;
    let mut addrs: Vec<Multiaddr> = known.iter().flat_map(|l| l.addrs.iter().filter_map(|a| a.parse().ok())).collect();
    addrs.extend(addr);
    addrs.extend(nearby.as_ref().map(|n| n.addrs.clone()).unwrap_or_default());
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() && !status.connected.contains(&peer) && status.relays == 0 {
        return err(ErrorCode::NotFound, "that node is not nearby: give its address (<multiaddr>/p2p/<peer id>)");
    }
    let addr_strings: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let name = nearby.map(|n| n.name).unwrap_or_default();
    update(node, key.clone(), move |current| {
        let mut link = current.unwrap_or_else(|| new_link(name));
        link.addrs = addr_strings;
        link.we_approved = true;
        Some(link)
    })
    .await?;
    let message = LinkMessage::Request { name: node.info.name.clone(), http_port: node.info.http_port, pake: None };
    let answer = p2p.send(peer, addrs, message).await;
    let they = match answer {
        Ok(LinkReply::Linked) => Some(true),
        Ok(LinkReply::Pending) => Some(false),
        Ok(LinkReply::Refused(reason)) => {
            tracing::info!(peer = %peer, %reason, "link refused");
            None
        }
        Ok(LinkReply::Unlinked | LinkReply::Pake { .. }) => None,
        Err(e) => {
            tracing::info!(peer = %peer, error = %e, "could not reach the node to link; ask again later");
            None
        }
    };
    let link = update(node, key.clone(), move |current| {
        let mut link = current?;
        if let Some(they) = they {
            link.they_approved = they;
            link.last_seen_ms = now_ms();
        }
        Some(link)
    })
    .await?;
    match link {
        Some(link) => info(node, &key, &link, &p2p.status().await.connected)
            .ok_or_else(|| veche_protocol::wire::ApiError::new(ErrorCode::Internal, "link lost")),
        None => err(ErrorCode::Conflict, "the link was removed meanwhile"),
    }
}

/// Our admin removes a link (and tells the other node, if it can be reached).
pub async fn unlink(node: &Node, session: Session, peer_id: String) -> ApiResult<()> {
    require_admin(node, &session)?;
    let (peer, _) = parse_target(&peer_id)?;
    let key = peer.to_string();
    let Some(link) = load(node, &key)? else { return err(ErrorCode::NotFound, "no link with that node") };
    update(node, key, |_| None).await?;
    let addrs = link.addrs.iter().filter_map(|a| a.parse().ok()).collect();
    if let Err(e) = p2p(node)?.send(peer, addrs, LinkMessage::Unlink).await {
        tracing::info!(peer = %peer, error = %e, "could not tell the node it was unlinked");
    }
    Ok(())
}

/// Handles what the swarm task reports, for the life of the node.
pub async fn run(node: Node, mut events: mpsc::Receiver<P2pEvent>) {
    let mut exchanges = PendingExchanges::new();
    while let Some(event) = events.recv().await {
        let result = match event {
            P2pEvent::Link { id, peer, addr, message } => {
                on_message(&node, &mut exchanges, id, peer, addr, message).await
            }
            P2pEvent::NearbyVerified(nearby) => {
                // Asking the other node waits for its answer: never block this loop on it (the
                // other node may be asking us at the same moment).
                let node = node.clone();
                tokio::spawn(async move {
                    if let Err(e) = on_nearby(&node, nearby.peer_id, nearby.addrs).await {
                        tracing::warn!(error = %e.message, "automatic link");
                    }
                });
                Ok(())
            }
            P2pEvent::Fed { id, peer, relayed, request } => {
                let node = node.clone();
                tokio::spawn(async move {
                    let reply = super::replica::serve(&node, peer, relayed, request).await;
                    if let Some(p2p) = &node.p2p {
                        p2p.fed_respond(id, reply).await;
                    }
                });
                Ok(())
            }
            P2pEvent::Connected(peer) => {
                let result = touch(&node, peer).await;
                // Chats homed there may have moved on while we were apart.
                super::replica::reachable(&node, peer);
                let catch_up = node.clone();
                tokio::spawn(async move {
                    if let Err(e) = super::replica::catch_up(&catch_up, Some(peer), true).await {
                        tracing::debug!(%peer, error = %e.message, "catch-up on connect");
                    }
                });
                // Tell a node we approved where we stand each time we reach it, so approvals
                // made while it was unreachable (on either side) meet.
                if load(&node, &peer.to_string()).ok().flatten().is_some_and(|l| l.we_approved) {
                    let node = node.clone();
                    tokio::spawn(async move {
                        if let Err(e) = reassert(&node, peer).await {
                            tracing::info!(%peer, error = %e.message, "link not re-confirmed");
                        }
                    });
                }
                result
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e.message, "federation event");
        }
    }
}

/// Repeats our approval to a node we just reached, and records its answer.
async fn reassert(node: &Node, peer: PeerId) -> ApiResult<()> {
    let Some(p2p) = &node.p2p else { return Ok(()) };
    let key = peer.to_string();
    let Some(link) = load(node, &key)? else { return Ok(()) };
    let addrs = link.addrs.iter().filter_map(|a| a.parse().ok()).collect();
    let message = LinkMessage::Request { name: node.info.name.clone(), http_port: node.info.http_port, pake: None };
    let they = match p2p.send(peer, addrs, message).await {
        Ok(LinkReply::Linked) => true,
        Ok(LinkReply::Pending) => false,
        Ok(_) => return Ok(()),
        Err(e) => return err(ErrorCode::Internal, e),
    };
    update(node, key, move |current| {
        current.map(|mut link| {
            link.they_approved = they;
            link.last_seen_ms = now_ms();
            link
        })
    })
    .await?;
    Ok(())
}

async fn touch(node: &Node, peer: PeerId) -> ApiResult<()> {
    let key = peer.to_string();
    if load(node, &key)?.is_some() {
        update(node, key, |current| {
            current.map(|mut link| {
                link.last_seen_ms = now_ms();
                link
            })
        })
        .await?;
    }
    Ok(())
}

/// Another node sent a link message.
async fn on_message(
    node: &Node,
    pending: &mut PendingExchanges,
    id: u64,
    peer: PeerId,
    addr: Multiaddr,
    message: LinkMessage,
) -> ApiResult<()> {
    let Some(p2p) = &node.p2p else { return Ok(()) };
    let me: PeerId = node.info.node_id.parse().or_internal()?;
    let key = peer.to_string();
    let existing = load(node, &key)?;
    let reply = match message {
        LinkMessage::Request { name, http_port: _, pake: Some(message) } => {
            // Someone nearby checks whether we share a community secret: answer the exchange;
            // nothing is recorded until it confirms.
            match &node.info.community_secret {
                None => LinkReply::Refused("no shared community secret".into()),
                Some(secret) => match pake_answer(secret, &peer, &me, &message) {
                    None => LinkReply::Refused("malformed key exchange".into()),
                    Some((message, confirm, key)) => {
                        pending.retain(|_, p| p.started.elapsed() < EXCHANGE_TTL);
                        if pending.len() >= MAX_PENDING_EXCHANGES && !pending.contains_key(&peer) {
                            LinkReply::Refused("too many key exchanges are open: try again".into())
                        } else {
                            let addr = (!addr.is_empty()).then(|| addr.to_string());
                            let name: String = name.chars().take(100).collect();
                            let started = std::time::Instant::now();
                            pending.insert(peer, PendingExchange { key, started, name, addr });
                            LinkReply::Pake { message, confirm }
                        }
                    }
                },
            }
        }
        LinkMessage::Confirm { mac } => {
            let exchange = pending.remove(&peer);
            match exchange {
                Some(exchange)
                    if exchange.started.elapsed() < EXCHANGE_TTL
                        && confirmation(&exchange.key, true).verify_slice(&mac).is_ok() =>
                {
                    let PendingExchange { name, addr, .. } = exchange;
                    update(node, key, move |current| {
                        let mut link = current.unwrap_or_else(|| new_link(String::new()));
                        link.name = name;
                        if let Some(addr) = addr
                            && !link.addrs.contains(&addr)
                        {
                            link.addrs.push(addr);
                        }
                        link.they_approved = true;
                        link.we_approved = true;
                        link.last_seen_ms = now_ms();
                        Some(link)
                    })
                    .await?;
                    tracing::info!(%peer, linked = true, by_secret = true, "link request");
                    LinkReply::Linked
                }
                // Another secret, a stale or unknown exchange: the same answer.
                _ => LinkReply::Refused("no shared community secret".into()),
            }
        }
        LinkMessage::Request { name, http_port: _, pake: None } => {
            let waiting = all(node)?.iter().filter(|(_, l)| state(l) == Some(LinkState::WaitingForUs)).count();
            if existing.is_none() && waiting >= MAX_WAITING_FOR_US {
                LinkReply::Refused("too many link requests are waiting".into())
            } else {
                let addr = (!addr.is_empty()).then(|| addr.to_string());
                let name: String = name.chars().take(100).collect();
                let link = update(node, key, move |current| {
                    let mut link = current.unwrap_or_else(|| new_link(String::new()));
                    link.name = name;
                    if let Some(addr) = addr
                        && !link.addrs.contains(&addr)
                    {
                        link.addrs.push(addr);
                    }
                    link.they_approved = true;
                    link.last_seen_ms = now_ms();
                    Some(link)
                })
                .await?;
                let linked = link.is_some_and(|l| l.we_approved);
                tracing::info!(%peer, linked, by_secret = false, "link request");
                if linked { LinkReply::Linked } else { LinkReply::Pending }
            }
        }
        LinkMessage::Unlink => {
            if existing.is_some() {
                update(node, key, |current| {
                    current.map(|link| Link { they_approved: false, last_seen_ms: now_ms(), ..link })
                })
                .await?;
            }
            LinkReply::Unlinked
        }
    };
    p2p.respond(id, reply).await;
    Ok(())
}

/// A nearby node was verified: with a community secret, link with it automatically.
async fn on_nearby(node: &Node, peer: PeerId, addrs: Vec<Multiaddr>) -> ApiResult<()> {
    let (Some(secret), Some(p2p)) = (&node.info.community_secret, &node.p2p) else { return Ok(()) };
    let key = peer.to_string();
    let existing = load(node, &key)?;
    if existing.as_ref().and_then(state) == Some(LinkState::Linked) {
        return Ok(());
    }
    let me: PeerId = node.info.node_id.parse().or_internal()?;
    let (exchange, pake) = pake_start(secret, &me, &peer, true);
    let message =
        LinkMessage::Request { name: node.info.name.clone(), http_port: node.info.http_port, pake: Some(pake) };
    let Ok(LinkReply::Pake { message, confirm }) = p2p.send(peer, addrs.clone(), message).await else { return Ok(()) };
    let Some(mac) = pake_confirm(exchange, &message, &confirm) else {
        tracing::info!(%peer, "a nearby node has another community secret: not linked");
        return Ok(());
    };
    if let Ok(LinkReply::Linked) = p2p.send(peer, addrs.clone(), LinkMessage::Confirm { mac }).await {
        let name =
            p2p.status().await.nearby.into_iter().find(|n| n.peer_id == peer).map(|n| n.name).unwrap_or_default();
        let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        update(node, key, move |current| {
            let mut link = current.unwrap_or_else(|| new_link(String::new()));
            if !name.is_empty() {
                link.name = name;
            }
            link.addrs = addrs;
            link.we_approved = true;
            link.they_approved = true;
            link.last_seen_ms = now_ms();
            Some(link)
        })
        .await?;
        tracing::info!(%peer, "linked by community secret");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One exchange: the asker's confirmation if it got that far, and whether the receiver
    /// accepted it.
    fn exchange(asker_secret: &str, receiver_secret: &str, asker: &PeerId, receiver: &PeerId) -> (bool, bool) {
        let (state, message) = pake_start(asker_secret, asker, receiver, true);
        let (reply, confirm, key) = pake_answer(receiver_secret, asker, receiver, &message).expect("well-formed");
        match pake_confirm(state, &reply, &confirm) {
            Some(mac) => (true, confirmation(&key, true).verify_slice(&mac).is_ok()),
            None => (false, false),
        }
    }

    #[test]
    fn nodes_link_by_a_shared_secret_only_and_only_as_this_pair() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        assert_eq!(exchange("town secret", "town secret", &a, &b), (true, true), "the same secret links");
        // Another secret: the asker stops at the receiver's confirmation and sends nothing more.
        assert_eq!(exchange("town secret", "other secret", &a, &b), (false, false));
        // The receiver took the exchange as one with another node: it fails too.
        let (state, message) = pake_start("town secret", &a, &b, true);
        let (reply, confirm, _) = pake_answer("town secret", &c, &b, &message).expect("well-formed");
        assert!(pake_confirm(state, &reply, &confirm).is_none(), "bound to both peer ids");
        // What the asker sends is fresh each time: nothing fixed by the secret to test guesses on.
        let (_, first) = pake_start("town secret", &a, &b, true);
        let (_, second) = pake_start("town secret", &a, &b, true);
        assert_ne!(first, second);
        assert!(pake_answer("town secret", &a, &b, &first[..10]).is_none(), "a malformed message is refused");
    }

    #[test]
    fn targets() {
        let peer = PeerId::random();
        assert_eq!(parse_target(&peer.to_string()).unwrap(), (peer, None));
        let (p, addr) = parse_target(&format!("/ip4/10.0.0.2/udp/7801/quic-v1/p2p/{peer}")).unwrap();
        assert_eq!((p, addr.unwrap().to_string()), (peer, "/ip4/10.0.0.2/udp/7801/quic-v1".to_string()));
        assert!(parse_target("/ip4/10.0.0.2/udp/7801/quic-v1").is_err());
        assert!(parse_target("nonsense").is_err());
    }
}
