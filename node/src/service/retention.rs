//! Retention: drops log entries a chat's owner chose not to keep.
//!
//! Runs periodically through the writer. `Days(n)` drops entries stored more than n days ago;
//! `UntilFetched` drops entries every current member device has acknowledged. The chat's `tail`
//! records the lowest sequence number still stored.

use super::{ApiResult, Node, OrInternal};
use crate::store::records::{self, Chat, LogEntry, now_ms};
use crate::store::tables::{CHATS, CURSORS, LOG};
use redb::ReadableTable;
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
        dropped += node.writer.run(move |ctx| drop_expired(ctx, group)).await?;
    }
    Ok(dropped)
}

fn drop_expired(ctx: &mut crate::store::writer::TxnCtx<'_>, group: GroupId) -> ApiResult<u64> {
    let txn = ctx.read();
    let Some(mut chat): Option<Chat> = records::get(&txn.open_table(CHATS).or_internal()?, group.0)? else {
        return Ok(0);
    };
    // Highest seq that may be dropped.
    let limit = match chat.retention {
        Retention::Forever => return Ok(0),
        Retention::UntilFetched => {
            let cursors = txn.open_table(CURSORS).or_internal()?;
            let mut min = chat.head;
            for (_, device) in chat.devices() {
                let seen = cursors.get((device.0, group.0)).or_internal()?.map(|g| g.value()).unwrap_or(0);
                min = min.min(seen);
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
    {
        let mut log = txn.open_table(LOG).or_internal()?;
        for seq in chat.tail..=upto {
            log.remove((group.0, seq)).or_internal()?;
        }
    }
    let dropped = upto + 1 - chat.tail;
    chat.tail = upto + 1;
    txn.open_table(CHATS).or_internal()?.insert(group.0, records::encode(&chat).as_slice()).or_internal()?;
    tracing::debug!(%group, dropped, "retention dropped entries");
    Ok(dropped)
}
