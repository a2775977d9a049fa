//! The device's persistent state in IndexedDB, mirrored in memory.
//!
//! Everything is loaded once at start. Changes are collected in a [`Batch`] and written in one
//! IndexedDB transaction together with the MLS client's journaled changes; memory is updated
//! only after the write completed, so memory never runs ahead of what a reload would see.

use std::collections::BTreeMap;

use js_sys::{Array, Uint8Array};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use veche_protocol::content::{Body, CallRecord};
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId, InviteId};
use veche_protocol::whiteboard::Item;
use wasm_bindgen::prelude::*;

const DB_NAME: &str = "veche-device";

#[wasm_bindgen(module = "/js/store.js")]
extern "C" {
    #[wasm_bindgen(js_name = kvLoad, catch)]
    async fn kv_load(name: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = kvApply, catch)]
    async fn kv_apply(name: &str, puts: Array, deletes: Array) -> Result<JsValue, JsValue>;
}

/// The registered device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub secret: [u8; 32],
    pub account: AccountId,
    pub device: DeviceId,
    pub node_id: String,
    pub display_name: String,
    pub node_admin: bool,
}

/// A chat this device is in (or was removed from).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalChat {
    pub kind: ChatKind,
    pub name: String,
    /// Highest log sequence number processed.
    pub processed: u64,
    pub active: bool,
    /// Members who asked to leave and are not removed yet.
    pub leavers: Vec<AccountId>,
    /// Highest sequence number the member has seen on screen (for unread counts).
    pub seen: u64,
    /// Whether decrypted history is kept in this browser.
    pub keep_history: bool,
}

/// What happened in a chat, shown as a system line (rendered in the member's language).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SystemEvent {
    Created,
    JoinedByLink(AccountId),
    Added(Vec<AccountId>),
    Removed(Vec<AccountId>),
    RoleChanged(AccountId),
    Left,
    RemovedLeavers,
    /// Entries the node no longer kept when this device fetched.
    Expired(u64),
    /// A message this device could not decrypt or read.
    Unreadable,
    /// This device refreshed its keys after being restored from a recovery file.
    KeysRefreshed,
}

/// What a history entry shows. Stored with postcard, which names variants by their position:
/// new variants go at the end, so entries written by older versions still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryBody {
    Text(String),
    System(SystemEvent),
    /// What became of a 1:1 call (posted by the caller's device).
    Call(CallRecord),
    /// A call's whiteboard as it was when the call ended.
    Whiteboard(Vec<Item>),
}

impl HistoryBody {
    /// The history entry of a message's content.
    pub fn of(body: Body) -> HistoryBody {
        match body {
            Body::Text { text } => HistoryBody::Text(text),
            Body::Call(record) => HistoryBody::Call(record),
            Body::Whiteboard { items } => HistoryBody::Whiteboard(items),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub seq: u64,
    pub sender: AccountId,
    pub sent_at_ms: u64,
    pub stored_at_ms: u64,
    pub own: bool,
    pub body: HistoryBody,
}

/// A message written on this device that the node has not acknowledged yet (stored under
/// `ob:` keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// What is encrypted, with `sent_at_ms`, as the message's content.
    pub body: Body,
    pub sent_at_ms: u64,
    /// The ciphertext once made: it is saved before it leaves, and resent as is.
    pub ciphertext: Option<Vec<u8>>,
    /// Refused for good; the member may retry (a fresh encryption) or delete it.
    pub failed: bool,
}

/// An outbox entry as versions before call records stored it (under `o:` keys): text only.
/// Read at load and kept in memory as an [`OutboxEntry`]; written back under `ob:`.
#[derive(Deserialize)]
struct TextOutboxEntry {
    text: String,
    sent_at_ms: u64,
    ciphertext: Option<Vec<u8>>,
    failed: bool,
}

impl From<TextOutboxEntry> for OutboxEntry {
    fn from(old: TextOutboxEntry) -> Self {
        OutboxEntry {
            body: Body::Text { text: old.text },
            sent_at_ms: old.sent_at_ms,
            ciphertext: old.ciphertext,
            failed: old.failed,
        }
    }
}

/// An external join saved before it is sent (see the native client).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingJoin {
    pub invite: InviteId,
    pub secret: [u8; 32],
    pub commit: Vec<u8>,
    pub group_info: Vec<u8>,
}

/// Everything the device keeps, in memory.
#[derive(Default)]
pub struct Db {
    pub device: Option<DeviceRecord>,
    pub pending_secret: Option<[u8; 32]>,
    pub mls: veche_mls::Snapshot,
    pub chats: BTreeMap<GroupId, LocalChat>,
    pub history: BTreeMap<GroupId, BTreeMap<u64, HistoryEntry>>,
    pub outbox: BTreeMap<GroupId, BTreeMap<u64, OutboxEntry>>,
    pub pending_joins: BTreeMap<GroupId, PendingJoin>,
    pub profiles: BTreeMap<AccountId, String>,
    /// Restored from a recovery file and not yet past the key refresh (see `Device::sync_all`).
    pub restored: bool,
}

/// Changes to write in one transaction.
#[derive(Default)]
pub struct Batch {
    ops: Vec<Op>,
}

enum Op {
    Device(DeviceRecord),
    PendingSecret(Option<[u8; 32]>),
    Chat(GroupId, LocalChat),
    History(GroupId, HistoryEntry),
    DropHistory(GroupId),
    Outbox(GroupId, u64, OutboxEntry),
    RemoveOutbox(GroupId, u64),
    PendingJoin(GroupId, PendingJoin),
    RemovePendingJoin(GroupId),
    Profile(AccountId, String),
    Restored(bool),
}

impl Batch {
    pub fn device(&mut self, record: DeviceRecord) -> &mut Self {
        self.ops.push(Op::Device(record));
        self
    }
    pub fn pending_secret(&mut self, secret: Option<[u8; 32]>) -> &mut Self {
        self.ops.push(Op::PendingSecret(secret));
        self
    }
    pub fn chat(&mut self, group: GroupId, chat: LocalChat) -> &mut Self {
        self.ops.push(Op::Chat(group, chat));
        self
    }
    pub fn history(&mut self, group: GroupId, entry: HistoryEntry) -> &mut Self {
        self.ops.push(Op::History(group, entry));
        self
    }
    /// Forgets the chat's stored history (when the member turns local history off).
    pub fn drop_history(&mut self, group: GroupId) -> &mut Self {
        self.ops.push(Op::DropHistory(group));
        self
    }
    pub fn outbox(&mut self, group: GroupId, id: u64, entry: OutboxEntry) -> &mut Self {
        self.ops.push(Op::Outbox(group, id, entry));
        self
    }
    pub fn remove_outbox(&mut self, group: GroupId, id: u64) -> &mut Self {
        self.ops.push(Op::RemoveOutbox(group, id));
        self
    }
    pub fn pending_join(&mut self, group: GroupId, join: PendingJoin) -> &mut Self {
        self.ops.push(Op::PendingJoin(group, join));
        self
    }
    pub fn remove_pending_join(&mut self, group: GroupId) -> &mut Self {
        self.ops.push(Op::RemovePendingJoin(group));
        self
    }
    pub fn profile(&mut self, account: AccountId, name: String) -> &mut Self {
        self.ops.push(Op::Profile(account, name));
        self
    }
    pub fn restored(&mut self, restored: bool) -> &mut Self {
        self.ops.push(Op::Restored(restored));
        self
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn history_key(group: GroupId, seq: u64) -> String {
    format!("h:{}:{seq:020}", group.to_hex())
}

fn outbox_key(group: GroupId, id: u64) -> String {
    format!("ob:{}:{id:020}", group.to_hex())
}

/// Where versions before call records kept the (text-only) outbox entry `id`.
fn text_outbox_key(group: GroupId, id: u64) -> String {
    format!("o:{}:{id:020}", group.to_hex())
}

fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| js_sys::Reflect::get(&e, &"message".into()).ok().and_then(|m| m.as_string()))
        .unwrap_or_else(|| "storage error".into())
}

impl Db {
    /// Loads the device from IndexedDB (an empty database gives an empty device).
    pub async fn load() -> Result<Db, String> {
        let entries: Array = kv_load(DB_NAME).await.map_err(js_err)?.into();
        let mut db = Db::default();
        let mut mls = Vec::new();
        for entry in entries.iter() {
            let pair: Array = entry.into();
            let Some(key) = pair.get(0).as_string() else { continue };
            let value = Uint8Array::new(&pair.get(1)).to_vec();
            db.load_entry(&key, value, &mut mls).map_err(|e| format!("{key}: {e}"))?;
        }
        db.mls = veche_mls::Snapshot::from_entries(mls);
        Ok(db)
    }

    fn load_entry(&mut self, key: &str, value: Vec<u8>, mls: &mut Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        let (kind, rest) = key.split_once(':').unwrap_or((key, ""));
        let group = || rest.get(..32).and_then(|g| g.parse::<GroupId>().ok()).ok_or("bad group id");
        let number = || rest.get(33..).and_then(|n| n.parse::<u64>().ok()).ok_or("bad number");
        match kind {
            "device" => self.device = Some(decode(&value)?),
            "pending-secret" => self.pending_secret = Some(decode(&value)?),
            "m" => mls.push((unhex(rest).ok_or("bad mls key")?, value)),
            "c" => {
                self.chats.insert(group()?, decode(&value)?);
            }
            "h" => {
                self.history.entry(group()?).or_default().insert(number()?, decode(&value)?);
            }
            "ob" => {
                self.outbox.entry(group()?).or_default().insert(number()?, decode(&value)?);
            }
            "o" => {
                let old: TextOutboxEntry = decode(&value)?;
                // Written again under `ob:` by any later change; both are never present at once.
                self.outbox.entry(group()?).or_default().entry(number()?).or_insert_with(|| old.into());
            }
            "j" => {
                self.pending_joins.insert(group()?, decode(&value)?);
            }
            "restored" => self.restored = true,
            "p" => {
                let account = rest.parse::<AccountId>().map_err(|_| "bad account id")?;
                self.profiles.insert(account, decode(&value)?);
            }
            _ => {} // written by a newer version: ignored
        }
        Ok(())
    }

    /// Writes the batch and the MLS changes in one transaction, then applies them in memory.
    /// On failure nothing changed (the caller rolls the MLS client back).
    pub async fn commit(&mut self, batch: Batch, mls: veche_mls::Changes) -> Result<(), String> {
        let puts = Array::new();
        let deletes = Array::new();
        let put = |key: String, value: Vec<u8>| {
            let pair = Array::new();
            pair.push(&key.into());
            pair.push(&Uint8Array::from(value.as_slice()));
            puts.push(&pair);
        };
        for (key, value) in mls.upserts() {
            put(format!("m:{}", hex(key)), value.to_vec());
        }
        for key in mls.deletes() {
            deletes.push(&format!("m:{}", hex(key)).into());
        }
        for op in &batch.ops {
            match op {
                Op::Device(record) => put("device".into(), encode(record)),
                Op::PendingSecret(Some(secret)) => put("pending-secret".into(), encode(secret)),
                Op::PendingSecret(None) => {
                    deletes.push(&"pending-secret".into());
                }
                Op::Chat(group, chat) => put(format!("c:{}", group.to_hex()), encode(chat)),
                Op::History(group, entry) => {
                    if self.keeps_history(*group, &batch) {
                        put(history_key(*group, entry.seq), encode(entry));
                    }
                }
                Op::DropHistory(group) => {
                    deletes.push(&format!("h:{}:*", group.to_hex()).into());
                }
                Op::Outbox(group, id, entry) => {
                    deletes.push(&text_outbox_key(*group, *id).into());
                    put(outbox_key(*group, *id), encode(entry));
                }
                Op::RemoveOutbox(group, id) => {
                    deletes.push(&outbox_key(*group, *id).into());
                    deletes.push(&text_outbox_key(*group, *id).into());
                }
                Op::PendingJoin(group, join) => put(format!("j:{}", group.to_hex()), encode(join)),
                Op::RemovePendingJoin(group) => {
                    deletes.push(&format!("j:{}", group.to_hex()).into());
                }
                Op::Profile(account, name) => put(format!("p:{}", account.to_hex()), encode(name)),
                Op::Restored(true) => put("restored".into(), vec![1]),
                Op::Restored(false) => {
                    deletes.push(&"restored".into());
                }
            }
        }
        if puts.length() > 0 || deletes.length() > 0 {
            kv_apply(DB_NAME, puts, deletes).await.map_err(js_err)?;
        }
        self.mls.apply(&mls);
        for op in batch.ops {
            match op {
                Op::Device(record) => self.device = Some(record),
                Op::PendingSecret(secret) => self.pending_secret = secret,
                Op::Chat(group, chat) => {
                    self.chats.insert(group, chat);
                }
                Op::History(group, entry) => {
                    self.history.entry(group).or_default().insert(entry.seq, entry);
                }
                Op::DropHistory(_) => {} // what is on screen stays until the page closes
                Op::Outbox(group, id, entry) => {
                    self.outbox.entry(group).or_default().insert(id, entry);
                }
                Op::RemoveOutbox(group, id) => {
                    if let Some(outbox) = self.outbox.get_mut(&group) {
                        outbox.remove(&id);
                    }
                }
                Op::PendingJoin(group, join) => {
                    self.pending_joins.insert(group, join);
                }
                Op::RemovePendingJoin(group) => {
                    self.pending_joins.remove(&group);
                }
                Op::Profile(account, name) => {
                    self.profiles.insert(account, name);
                }
                Op::Restored(restored) => self.restored = restored,
            }
        }
        Ok(())
    }

    /// Whether history of `group` is written to the browser (the batch may change the setting).
    fn keeps_history(&self, group: GroupId, batch: &Batch) -> bool {
        let in_batch = batch.ops.iter().rev().find_map(|op| match op {
            Op::Chat(g, chat) if *g == group => Some(chat.keep_history),
            _ => None,
        });
        in_batch.or_else(|| self.chats.get(&group).map(|c| c.keep_history)).unwrap_or(true)
    }

    /// Every stored entry, for the recovery file.
    pub async fn dump() -> Result<Vec<(String, Vec<u8>)>, String> {
        let entries: Array = kv_load(DB_NAME).await.map_err(js_err)?.into();
        Ok(entries
            .iter()
            .filter_map(|entry| {
                let pair: Array = entry.into();
                Some((pair.get(0).as_string()?, Uint8Array::new(&pair.get(1)).to_vec()))
            })
            .collect())
    }

    /// Replaces everything stored with `entries` (from a recovery file), marked as restored.
    pub async fn restore(entries: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        let puts = Array::new();
        for (key, value) in entries.into_iter().filter(|(k, _)| k != "restored") {
            let pair = Array::new();
            pair.push(&key.into());
            pair.push(&Uint8Array::from(value.as_slice()));
            puts.push(&pair);
        }
        let pair = Array::new();
        pair.push(&"restored".into());
        pair.push(&Uint8Array::from([1u8].as_slice()));
        puts.push(&pair);
        let deletes = Array::new();
        deletes.push(&"*".into());
        kv_apply(DB_NAME, puts, deletes).await.map(|_| ()).map_err(js_err)
    }
}
