//! Opening what earlier releases stored. Two formats came before the device core:
//! - the browser's IndexedDB (`veche-device`, store `kv`) and its recovery files: the layout of
//!   [`crate::model`] without a `format` key, whose `device` record had no `node_url`, and whose
//!   oldest outbox entries were text only under `o:` keys;
//! - the native client's `client.redb`: tables `device`, `chats`, `history`, `outbox`, `pending`
//!   and `mls_state`, with types of its own (English system lines, ciphertext-only outbox).
//!
//! The types below are frozen copies of the old ones; never change them.

use serde::Deserialize;
use veche_protocol::content::Body;
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId};

use crate::error::LoadError;

/// Stored key/value pairs.
pub type Entries = Vec<(String, Vec<u8>)>;
/// Rows of a table keyed by (group, number).
pub type Rows = Vec<(([u8; 16], u64), Vec<u8>)>;
use crate::model::{
    Batch, DeviceRecord, FORMAT, HistoryBody, HistoryEntry, LocalChat, OutboxEntry, PendingJoin, SystemEvent, chat_key,
    decode, encode, hex, history_key, outbox_key,
};

#[derive(Deserialize)]
struct BrowserDeviceV0 {
    secret: [u8; 32],
    account: AccountId,
    device: DeviceId,
    node_id: String,
    display_name: String,
    node_admin: bool,
}

#[derive(Deserialize)]
struct BrowserTextOutboxV0 {
    text: String,
    sent_at_ms: u64,
    ciphertext: Option<Vec<u8>>,
    failed: bool,
}

/// Browser (and recovery file) entries without a `format` key, rewritten in [`FORMAT`]. Returns
/// the entries to read and the batch that stores the rewrite.
pub(crate) fn browser_v0(entries: Entries) -> Result<(Entries, Batch), LoadError> {
    let corrupt = |key: &str, detail: String| LoadError::Corrupt { key: key.to_string(), detail };
    let mut out = Vec::with_capacity(entries.len() + 1);
    let mut batch = Batch::default();
    for (key, value) in entries {
        if key == "device" {
            let old: BrowserDeviceV0 = decode(&value).map_err(|e| corrupt(&key, e))?;
            let record = DeviceRecord {
                secret: old.secret,
                account: old.account,
                device: old.device,
                node_id: old.node_id,
                display_name: old.display_name,
                node_admin: old.node_admin,
                node_url: None,
            };
            let value = encode(&record);
            batch.put_raw(key.clone(), value.clone());
            out.push((key, value));
        } else if let Some(rest) = key.strip_prefix("o:") {
            let old: BrowserTextOutboxV0 = decode(&value).map_err(|e| corrupt(&key, e))?;
            let entry = OutboxEntry {
                body: Body::Text { text: old.text },
                sent_at_ms: old.sent_at_ms,
                ciphertext: old.ciphertext,
                failed: old.failed,
            };
            let new_key = format!("ob:{rest}");
            // Both are never present at once: `ob:` replaced `o:` on every write.
            let value = encode(&entry);
            batch.remove_key(key).put_raw(new_key.clone(), value.clone());
            out.push((new_key, value));
        } else {
            out.push((key, value));
        }
    }
    batch.format();
    out.push(("format".into(), encode(&FORMAT)));
    Ok((out, batch))
}

#[derive(Deserialize)]
struct NativeDeviceV0 {
    secret: [u8; 32],
    account: AccountId,
    device: DeviceId,
    node_url: String,
    node_id: String,
    display_name: String,
}

#[derive(Deserialize)]
struct NativeChatV0 {
    kind: ChatKind,
    name: String,
    processed: u64,
    active: bool,
    leavers: Vec<AccountId>,
}

#[derive(Deserialize)]
struct NativeHistoryV0 {
    seq: u64,
    sender: AccountId,
    sent_at_ms: u64,
    stored_at_ms: u64,
    own: bool,
    body: NativeBodyV0,
}

#[derive(Deserialize)]
enum NativeBodyV0 {
    Text(String),
    System(String),
    Unreadable(String),
}

#[derive(Deserialize)]
struct NativeOutboxV0 {
    ciphertext: Vec<u8>,
    text: String,
}

/// The rows of a native `client.redb` written before the device core, as the driver read them.
#[derive(Debug, Default)]
pub struct NativeV0 {
    /// Table `device`, key `"device"`.
    pub device: Option<Vec<u8>>,
    /// Table `chats`.
    pub chats: Vec<([u8; 16], Vec<u8>)>,
    /// Table `history`.
    pub history: Rows,
    /// Table `outbox`: (group, id in unix nanoseconds) -> entry.
    pub outbox: Rows,
    /// Table `pending`: `secret`, `tls_pin`, `join:<group hex>`.
    pub pending: Vec<(String, Vec<u8>)>,
    /// Table `mls_state`.
    pub mls: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The native client's old tables as entries in [`FORMAT`] (the driver writes them and drops the
/// old tables in one transaction). `tls_pin` becomes the driver's own key `tls-pin`.
pub fn native_v0(old: NativeV0) -> Result<Entries, LoadError> {
    let corrupt = |key: String, detail: String| LoadError::Corrupt { key, detail };
    let mut out = vec![("format".to_string(), encode(&FORMAT))];
    if let Some(bytes) = old.device {
        let d: NativeDeviceV0 = decode(&bytes).map_err(|e| corrupt("device".into(), e))?;
        let record = DeviceRecord {
            secret: d.secret,
            account: d.account,
            device: d.device,
            node_id: d.node_id,
            display_name: d.display_name,
            node_admin: false, // refreshed at the next sign-in
            node_url: Some(d.node_url),
        };
        out.push(("device".into(), encode(&record)));
    }
    for (group, bytes) in old.chats {
        let group = GroupId(group);
        let c: NativeChatV0 = decode(&bytes).map_err(|e| corrupt(chat_key(group), e))?;
        let chat = LocalChat {
            kind: c.kind,
            name: c.name,
            processed: c.processed,
            active: c.active,
            leavers: c.leavers,
            seen: c.processed,
            keep_history: true,
        };
        out.push((chat_key(group), encode(&chat)));
    }
    for ((group, seq), bytes) in old.history {
        let group = GroupId(group);
        let h: NativeHistoryV0 = decode(&bytes).map_err(|e| corrupt(history_key(group, seq), e))?;
        let body = match h.body {
            NativeBodyV0::Text(text) => HistoryBody::Text(text),
            NativeBodyV0::System(text) => HistoryBody::System(SystemEvent::Legacy(text)),
            NativeBodyV0::Unreadable(detail) => {
                HistoryBody::System(SystemEvent::Legacy(format!("unreadable: {detail}")))
            }
        };
        let entry = HistoryEntry {
            seq: h.seq,
            sender: h.sender,
            sent_at_ms: h.sent_at_ms,
            stored_at_ms: h.stored_at_ms,
            own: h.own,
            body,
        };
        out.push((history_key(group, seq), encode(&entry)));
    }
    for ((group, id), bytes) in old.outbox {
        let group = GroupId(group);
        let o: NativeOutboxV0 = decode(&bytes).map_err(|e| corrupt(outbox_key(group, id), e))?;
        // The id was the time it was written, in nanoseconds; ids are now milliseconds x 1000.
        let sent_at_ms = id / 1_000_000;
        let entry = OutboxEntry {
            body: Body::Text { text: o.text },
            sent_at_ms,
            ciphertext: Some(o.ciphertext),
            failed: false,
        };
        out.push((outbox_key(group, sent_at_ms * 1000 + id % 1000), encode(&entry)));
    }
    for (key, bytes) in old.pending {
        if key == "secret" {
            let secret =
                <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| corrupt(key.clone(), "not 32 bytes".into()))?;
            out.push(("pending-secret".into(), encode(&secret)));
        } else if key == "tls_pin" {
            out.push(("tls-pin".into(), bytes));
        } else if let Some(group) = key.strip_prefix("join:") {
            let group: GroupId = group.parse().map_err(|_| corrupt(key.clone(), "bad group id".into()))?;
            let join: PendingJoin = decode(&bytes).map_err(|e| corrupt(key.clone(), e))?;
            out.push((format!("j:{}", group.to_hex()), encode(&join)));
        }
    }
    for (key, value) in old.mls {
        out.push((format!("m:{}", hex(&key)), value));
    }
    Ok(out)
}
