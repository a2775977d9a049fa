//! Retention: drops log entries a chat's owner chose not to keep.
//!
//! Runs periodically through the writer. `Days(n)` drops entries stored more than n days ago;
//! `UntilFetched` drops entries every current member device has acknowledged. The chat's `tail`
//! records the lowest sequence number still stored. An entry's row in the retry (dedup) index is
//! dropped with it, and its bytes leave its sender's storage quota (for chats homed here, whose
//! entries counted) or its home node's replica quota (for replicas). Each pass also deletes guests whose meeting is over and long-dead invites
//! (`invites::clean_up`).

use super::{ApiResult, Node, OrInternal};
use crate::store::records::{self, Chat, LogEntry, now_ms};
use crate::store::tables::{
    ACCOUNT_BYTES, CHAT_HOMES, CHATS, COMMIT_EFFECTS, CURSORS, DEDUP, DEVICES, LOG, PEER_CURSORS, REPLICA_USAGE,
};
use redb::ReadableTable;
use std::collections::BTreeMap;
use veche_protocol::ids::{GroupId, Retention};

/// Entries dropped per chat per pass, to keep each transaction short.
const MAX_DROP_PER_PASS: usize = 10_000;

/// One pass over all chats. Returns how many entries were dropped.
pub async fn run_once(node: &Node) -> ApiResult<u64> {
    let groups: Vec<(GroupId, Chat)> = {
        let txn = node.store.read().or_internal()?;
        let mut out = Vec::new();
        for item in txn.open_table(CHATS).or_internal()?.iter().or_internal()? {
            let (key, value) = item.or_internal()?;
            let chat: Chat = records::decode(value.value())?;
            if chat.retention != Retention::Forever {
                out.push((GroupId(key.value()), chat));
            }
        }
        out
    };
    let mut dropped = 0;
    for (group, _) in groups {
        // One chat's failure does not stop the pass for the others.
        match node.writer.run(move |ctx| drop_expired(ctx, group)).await {
            Ok(n) => dropped += n,
            Err(e) => tracing::warn!(%group, error = %e.message, "retention pass failed for a chat"),
        }
    }
    if let Err(e) = super::invites::clean_up(node).await {
        tracing::warn!(error = %e.message, "cleaning up guests and invites failed");
    }
    Ok(dropped)
}

fn drop_expired(ctx: &mut crate::store::writer::TxnCtx<'_>, group: GroupId) -> ApiResult<u64> {
    let txn = ctx.read();
    let Some(mut chat): Option<Chat> = records::get(&txn.open_table(CHATS).or_internal()?, group.0)? else {
        return Ok(0);
    };
    // A replica's entries were counted by their home node, not here; here they count for the
    // home node's replica quota.
    let home: Option<String> =
        txn.open_table(CHAT_HOMES).or_internal()?.get(group.0).or_internal()?.map(|g| g.value().to_string());
    let replica = home.is_some();
    // Highest seq that may be dropped.
    let limit = match chat.retention {
        Retention::Forever => return Ok(0),
        Retention::UntilFetched => {
            // This node's devices acknowledge here; devices on other nodes acknowledge there,
            // and their node's pulls count for them (a member node holds what it pulled).
            let cursors = txn.open_table(CURSORS).or_internal()?;
            let devices = txn.open_table(DEVICES).or_internal()?;
            let mut min = chat.head;
            for (_, device) in chat.devices() {
                if devices.get(device.0).or_internal()?.is_none() {
                    continue;
                }
                let seen = cursors.get((device.0, group.0)).or_internal()?.map(|g| g.value()).unwrap_or(0);
                min = min.min(seen);
            }
            // On the chat's home node, member nodes must hold an entry before it goes; a
            // replica answers only for this node's devices.
            if !replica {
                let pulled = txn.open_table(PEER_CURSORS).or_internal()?;
                for peer in super::replica::member_nodes(txn, &chat)? {
                    let held = pulled.get((group.0, peer.as_str())).or_internal()?.map(|g| g.value());
                    min = min.min(held.unwrap_or(0));
                }
            }
            min
        }
        Retention::Days(days) => {
            let cutoff = now_ms().saturating_sub(u64::from(days) * 86_400_000);
            let log = txn.open_table(LOG).or_internal()?;
            let mut last = 0;
            for item in log.range((group.0, chat.tail)..=(group.0, chat.head)).or_internal()?.take(MAX_DROP_PER_PASS) {
                let (key, value) = item.or_internal()?;
                let entry: LogEntry = records::decode(value.value())?;
                if entry.stored_ms >= cutoff {
                    break;
                }
                last = key.value().1;
            }
            last
        }
    };
    if limit < chat.tail {
        return Ok(0);
    }
    let upto = limit.min(chat.tail + MAX_DROP_PER_PASS as u64 - 1);
    let txn = ctx.write();
    let mut freed: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    let mut freed_replica = 0u64;
    {
        let mut log = txn.open_table(LOG).or_internal()?;
        let mut dedup = txn.open_table(DEDUP).or_internal()?;
        let mut effects = txn.open_table(COMMIT_EFFECTS).or_internal()?;
        for seq in chat.tail..=upto {
            effects.remove((group.0, seq)).or_internal()?;
            // The retry index goes with the entry: nothing retries a message this old.
            if let Some(value) = log.remove((group.0, seq)).or_internal()?
                && let Ok(entry) = records::decode::<LogEntry>(value.value())
            {
                dedup.remove((group.0, crate::service::delivery::message_hash(&entry.payload))).or_internal()?;
                if replica {
                    freed_replica += entry.payload.len() as u64;
                } else {
                    *freed.entry(entry.sender.0).or_default() += entry.payload.len() as u64;
                }
            }
        }
    }
    {
        let mut usage = txn.open_table(ACCOUNT_BYTES).or_internal()?;
        for (account, bytes) in freed {
            // An account deleted since (a guest) has no count left.
            let Some(used) = usage.get(account).or_internal()?.map(|g| g.value()) else { continue };
            usage.insert(account, used.saturating_sub(bytes)).or_internal()?;
        }
    }
    if let Some(home) = home.filter(|_| freed_replica > 0) {
        let mut usage = txn.open_table(REPLICA_USAGE).or_internal()?;
        let counted = usage.get(home.as_str()).or_internal()?.map(|g| g.value());
        if let Some((replicas, used)) = counted {
            usage.insert(home.as_str(), (replicas, used.saturating_sub(freed_replica))).or_internal()?;
        }
    }
    let dropped = upto + 1 - chat.tail;
    chat.tail = upto + 1;
    txn.open_table(CHATS).or_internal()?.insert(group.0, records::encode(&chat).as_slice()).or_internal()?;
    tracing::debug!(%group, dropped, "retention dropped entries");
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Hub;
    use crate::metrics::Metrics;
    use crate::service::NodeInfo;
    use crate::store::tables::{INVITES, INVITES_BY_CREATOR, INVITES_BY_EXPIRY, INVITES_BY_GROUP};
    use crate::store::{Store, Writer};
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use veche_protocol::ids::{AccountId, ChatKind, Role};
    use veche_protocol::wire::{EntryKind, RegistrationPolicy};

    fn node(dir: &std::path::Path) -> Node {
        let store = Store::open(&dir.join("veche.redb")).unwrap();
        let hub = Arc::new(Hub::default());
        let writer = Writer::spawn(store.database().clone(), hub.clone()).unwrap();
        let info = NodeInfo {
            node_id: "test".into(),
            name: "test".into(),
            registration: RegistrationPolicy::Open,
            version: "0",
            http_port: 0,
            community_secret: None,
            guest_grace: std::time::Duration::from_secs(3600),
            quotas: Default::default(),
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

    /// A chat with entries stored `ages_days` ago (oldest first), and the given retention.
    async fn chat_with_entries(node: &Node, group: GroupId, retention: Retention, ages_days: &[f64]) {
        let owner = AccountId([1; 32]);
        let now = now_ms();
        let entries: Vec<u64> = ages_days.iter().map(|d| now - (d * 86_400_000.0) as u64).collect();
        node.writer
            .run(move |ctx| {
                let chat = Chat {
                    kind: ChatKind::Group,
                    name: "old".into(),
                    description: String::new(),
                    created_by: owner,
                    created_ms: 0,
                    retention,
                    epoch: 0,
                    head: entries.len() as u64,
                    tail: 1,
                    roster: BTreeMap::from([(owner, Role::Owner)]),
                    leaves: BTreeMap::new(),
                    leaving: BTreeMap::new(),
                    removed_at: BTreeMap::new(),
                    peer: None,
                };
                let txn = ctx.write();
                let mut log = txn.open_table(LOG).or_internal()?;
                for (i, stored_ms) in entries.iter().enumerate() {
                    let entry = LogEntry {
                        kind: EntryKind::Application,
                        epoch: 0,
                        sender: owner,
                        stored_ms: *stored_ms,
                        payload: vec![i as u8; 8],
                    };
                    log.insert((group.0, i as u64 + 1), records::encode(&entry).as_slice()).or_internal()?;
                }
                drop(log);
                let mut dedup = txn.open_table(DEDUP).or_internal()?;
                for i in 0..entries.len() {
                    let payload = vec![i as u8; 8];
                    dedup
                        .insert((group.0, crate::service::delivery::message_hash(&payload)), i as u64 + 1)
                        .or_internal()?;
                }
                drop(dedup);
                txn.open_table(CHATS)
                    .or_internal()?
                    .insert(group.0, records::encode(&chat).as_slice())
                    .or_internal()?;
                Ok(())
            })
            .await
            .unwrap();
    }

    fn dedup_seqs(node: &Node, group: GroupId) -> Vec<u64> {
        let txn = node.store.read().unwrap();
        let dedup = txn.open_table(DEDUP).unwrap();
        let mut seqs: Vec<u64> =
            dedup.range((group.0, [0u8; 32])..=(group.0, [0xff; 32])).unwrap().map(|i| i.unwrap().1.value()).collect();
        seqs.sort();
        seqs
    }

    fn stored_seqs(node: &Node, group: GroupId) -> Vec<u64> {
        let txn = node.store.read().unwrap();
        let log = txn.open_table(LOG).unwrap();
        log.range((group.0, 0)..=(group.0, u64::MAX)).unwrap().map(|i| i.unwrap().0.value().1).collect()
    }

    #[tokio::test]
    async fn invites_go_a_week_after_their_expiry_with_their_index_rows() {
        let dir = std::env::temp_dir().join(format!("veche-invite-cleanup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let node = node(&dir);
        let (alice, group) = (AccountId([1; 32]), GroupId([3; 16]));
        let day = 86_400_000;
        let now = now_ms();
        let ages = [(1u8, now - 8 * day), (2, now - 6 * day), (3, now + day)];
        node.writer
            .run(move |ctx| {
                for (n, expires) in ages {
                    let (_, _, invite) = super::super::invites::new_invite(Some(group), alice, Some(expires), None)?;
                    let id = veche_protocol::ids::InviteId([n; 8]);
                    super::super::invites::store_new(ctx.write(), id, &invite)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        run_once(&node).await.unwrap();
        let txn = node.store.read().unwrap();
        let ids = |rows: Vec<[u8; 8]>| rows.into_iter().map(|id| id[0]).collect::<Vec<_>>();
        let stored: Vec<[u8; 8]> =
            txn.open_table(INVITES).unwrap().iter().unwrap().map(|i| i.unwrap().0.value()).collect();
        assert_eq!(ids(stored), vec![2, 3], "expired 8 days ago: deleted; 6 days ago: kept a while more");
        let by_group: Vec<[u8; 8]> =
            txn.open_table(INVITES_BY_GROUP).unwrap().iter().unwrap().map(|i| i.unwrap().0.value().1).collect();
        let by_creator: Vec<[u8; 8]> =
            txn.open_table(INVITES_BY_CREATOR).unwrap().iter().unwrap().map(|i| i.unwrap().0.value().1).collect();
        let by_expiry: Vec<[u8; 8]> =
            txn.open_table(INVITES_BY_EXPIRY).unwrap().iter().unwrap().map(|i| i.unwrap().0.value().1).collect();
        assert_eq!((ids(by_group), ids(by_creator), ids(by_expiry)), (vec![2, 3], vec![2, 3], vec![2, 3]));
        drop(txn);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn days_retention_drops_only_older_entries() {
        let dir = std::env::temp_dir().join(format!("veche-retention-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let node = node(&dir);
        let week = GroupId([1; 16]);
        let forever = GroupId([2; 16]);
        chat_with_entries(&node, week, Retention::Days(7), &[30.0, 8.0, 7.5, 6.9, 1.0, 0.0]).await;
        chat_with_entries(&node, forever, Retention::Forever, &[400.0, 30.0]).await;

        assert_eq!(run_once(&node).await.unwrap(), 3);
        assert_eq!(stored_seqs(&node, week), vec![4, 5, 6], "entries older than 7 days are gone");
        assert_eq!(stored_seqs(&node, forever), vec![1, 2], "forever keeps everything");
        assert_eq!(dedup_seqs(&node, week), vec![4, 5, 6], "the retry index follows the log");
        assert_eq!(dedup_seqs(&node, forever), vec![1, 2]);
        let txn = node.store.read().unwrap();
        let chat = crate::service::chats::load(&txn, week).unwrap().unwrap();
        assert_eq!((chat.tail, chat.head), (4, 6));
        drop(txn);
        assert_eq!(run_once(&node).await.unwrap(), 0, "a second pass finds nothing more");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
