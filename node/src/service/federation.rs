//! What node admins see of other nodes. (Linking and relaying come next.)

use super::{ApiResult, Node, OrInternal, Session, err};
use crate::store::records::{self, Account};
use crate::store::tables::ACCOUNTS;
use veche_protocol::wire::{ErrorCode, NearbyNode};

/// Whether the session's account is a node admin.
fn is_admin(node: &Node, session: &Session) -> ApiResult<bool> {
    let txn = node.store.read().or_internal()?;
    let account: Option<Account> = records::get(&txn.open_table(ACCOUNTS).or_internal()?, session.account.0)?;
    Ok(account.is_some_and(|a| a.node_admin))
}

/// Nodes found on the LAN, newest first (node admins only).
pub async fn nearby(node: &Node, session: Session) -> ApiResult<Vec<NearbyNode>> {
    if !is_admin(node, &session)? {
        return err(ErrorCode::Forbidden, "only node admins see other nodes");
    }
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
