//! What a member device keeps: the device record, its chats, their decrypted history, the outbox,
//! pending joins, known names, and the MLS state. One in-memory [`Model`], changed only by
//! [`Batch`]es once the driver reports them written; one persistent layout of string keys and
//! postcard values, the same in IndexedDB (browser) and redb (native client):
//!
//! | key | value |
//! |---|---|
//! | `format` | `u32`, [`FORMAT`] (absent: written before the device core; see [`crate::migrate`]) |
//! | `device` | [`DeviceRecord`] |
//! | `pending-secret` | `[u8; 32]`: the key of a registration not yet confirmed |
//! | `restored` | `[1]`: restored from a recovery file, keys not yet refreshed |
//! | `p:<account hex>` | display name |
//! | `m:<hex>` | an MLS storage value (`veche_mls::Snapshot`) |
//! | `c:<group hex>` | [`LocalChat`] |
//! | `h:<group hex>:<seq %020>` | [`HistoryEntry`] |
//! | `ob:<group hex>:<id %020>` | [`OutboxEntry`] |
//! | `j:<group hex>` | [`PendingJoin`] |
//!
//! Keys the core does not know are left alone (a driver may keep its own, e.g. the native
//! client's `tls-pin`). Postcard names enum variants by position: variants are only ever added at
//! the end; any other change of a stored type is a new [`FORMAT`] with a migration.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use veche_protocol::content::{Body, CallRecord};
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId, InviteId};
use veche_protocol::whiteboard::Item;

use crate::error::LoadError;

/// The persistent format this build writes.
pub const FORMAT: u32 = 1;

/// The registered device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub secret: [u8; 32],
    pub account: AccountId,
    pub device: DeviceId,
    pub node_id: String,
    pub display_name: String,
    pub node_admin: bool,
    /// The node's URL (native client); `None` in the browser, whose node is the page's origin.
    pub node_url: Option<String>,
}

/// A chat this device is in (or was removed from).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalChat {
    pub kind: ChatKind,
    pub name: String,
    /// Every log entry up to this sequence number is processed.
    pub processed: u64,
    /// False once this device was removed or left.
    pub active: bool,
    /// Members who asked to leave and are still in the chat: an owner's or admin's device removes
    /// them, even when their leave proposal went stale because another commit came first.
    pub leavers: Vec<AccountId>,
    /// Highest sequence number the member has seen on screen (for unread counts).
    pub seen: u64,
    /// Whether decrypted history is written to storage (else it lives in memory only).
    pub keep_history: bool,
}

impl LocalChat {
    pub fn new(kind: ChatKind, name: &str, processed: u64) -> Self {
        LocalChat {
            kind,
            name: name.to_string(),
            processed,
            active: true,
            leavers: Vec::new(),
            seen: processed,
            keep_history: true,
        }
    }
}

/// What happened in a chat, shown as a system line (rendered in the member's language).
/// Stored: new variants go at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SystemEvent {
    Created,
    JoinedByLink(AccountId),
    Added(Vec<AccountId>),
    Removed(Vec<AccountId>),
    /// This device changed the member's role.
    RoleChanged(AccountId),
    Left,
    RemovedLeavers,
    /// Entries the node no longer kept when this device fetched.
    Expired(u64),
    /// A message this device could not decrypt or read.
    Unreadable,
    /// This device refreshed its keys after being restored from a recovery file.
    KeysRefreshed,
    /// One commit that added and removed members.
    Membership {
        added: Vec<AccountId>,
        removed: Vec<AccountId>,
    },
    /// Another member's commit changed roles.
    RolesChanged {
        by: Option<AccountId>,
    },
    /// A system line written by a native client before the device core, in English.
    Legacy(String),
    /// This device could not follow the chat any more (it missed or could not process a commit)
    /// and rejoined it with a new leaf (a resync): the `skipped` log entries before that could
    /// not be decrypted on this device.
    Resynced {
        skipped: u64,
    },
    /// Another member's device rejoined the chat the same way, replacing its own leaf.
    DeviceRejoined(AccountId),
}

/// What a history entry shows. Stored: new variants go at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryBody {
    Text(String),
    System(SystemEvent),
    /// What became of a 1:1 call (posted by the caller's device).
    Call(CallRecord),
    /// A call's whiteboard as it was when the call ended.
    Whiteboard(Vec<Item>),
    /// The node delivered this entry as `claimed`'s, but MLS authenticates another member (the
    /// entry's `sender`) or none: shown as a warning, its content is not shown as `claimed`'s.
    Forged {
        claimed: AccountId,
    },
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

    /// Accounts this entry names besides its sender (for learning display names).
    pub fn mentioned(&self) -> Vec<AccountId> {
        match self {
            HistoryBody::System(SystemEvent::Added(list) | SystemEvent::Removed(list)) => list.clone(),
            HistoryBody::System(SystemEvent::Membership { added, removed }) => {
                added.iter().chain(removed).copied().collect()
            }
            HistoryBody::System(
                SystemEvent::JoinedByLink(a) | SystemEvent::RoleChanged(a) | SystemEvent::DeviceRejoined(a),
            ) => vec![*a],
            HistoryBody::System(SystemEvent::RolesChanged { by: Some(a) }) => vec![*a],
            HistoryBody::Forged { claimed } => vec![*claimed],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub seq: u64,
    /// Who sent it as MLS authenticates it (the sender leaf's credential); for system lines the
    /// member whose action it was, or this device's account.
    pub sender: AccountId,
    pub sent_at_ms: u64,
    pub stored_at_ms: u64,
    pub own: bool,
    pub body: HistoryBody,
}

/// A message written on this device that the node has not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// What is encrypted, with `sent_at_ms`, as the message's content.
    pub body: Body,
    pub sent_at_ms: u64,
    /// The ciphertext once made: saved before it leaves, and resent as is.
    pub ciphertext: Option<Vec<u8>>,
    /// Refused for good; the member may retry (a fresh encryption) or discard it.
    pub failed: bool,
}

/// An external commit applied locally and saved before it was sent: resent (idempotently) after a
/// crash, so the device never loses a leaf the node has accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingJoin {
    pub invite: InviteId,
    pub secret: [u8; veche_protocol::link::SECRET_LEN],
    pub commit: Vec<u8>,
    pub group_info: Vec<u8>,
}

/// Everything the device keeps, in memory.
#[derive(Debug, Default)]
pub struct Model {
    pub device: Option<DeviceRecord>,
    pub pending_secret: Option<[u8; 32]>,
    pub mls: veche_mls::Snapshot,
    pub chats: BTreeMap<GroupId, LocalChat>,
    pub history: BTreeMap<GroupId, BTreeMap<u64, HistoryEntry>>,
    pub outbox: BTreeMap<GroupId, BTreeMap<u64, OutboxEntry>>,
    pub pending_joins: BTreeMap<GroupId, PendingJoin>,
    pub profiles: BTreeMap<AccountId, String>,
    /// Restored from a recovery file and not yet past the key refresh.
    pub restored: bool,
}

impl Model {
    pub fn me(&self) -> Option<AccountId> {
        self.device.as_ref().map(|d| d.account)
    }

    pub fn has_history(&self, group: GroupId, seq: u64) -> bool {
        self.history.get(&group).is_some_and(|h| h.contains_key(&seq))
    }

    /// History of a chat after `seq`, in order.
    pub fn history_after(&self, group: GroupId, seq: u64) -> impl Iterator<Item = &HistoryEntry> {
        self.history.get(&group).into_iter().flat_map(move |h| h.range(seq.saturating_add(1)..).map(|(_, e)| e))
    }

    /// Messages waiting to be sent (not failed), in any chat.
    pub fn has_waiting(&self) -> bool {
        self.outbox.values().any(|o| o.values().any(|e| !e.failed))
    }

    fn keeps_history(&self, group: GroupId, batch: &Batch) -> bool {
        let in_batch = batch.ops.iter().rev().find_map(|op| match op {
            Op::Chat(g, chat) if *g == group => Some(chat.keep_history),
            _ => None,
        });
        in_batch.or_else(|| self.chats.get(&group).map(|c| c.keep_history)).unwrap_or(true)
    }

    /// The storage writes of `batch` plus MLS `changes`, as keys and values.
    pub(crate) fn write_of(&self, batch: &Batch, mls: &veche_mls::Changes) -> Write {
        let mut w = Write::default();
        for (key, value) in mls.upserts() {
            w.puts.push((format!("m:{}", hex(key)), value.to_vec()));
        }
        for key in mls.deletes() {
            w.deletes.push(Delete::Key(format!("m:{}", hex(key))));
        }
        for op in &batch.ops {
            match op {
                Op::Format => w.puts.push(("format".into(), encode(&FORMAT))),
                Op::Device(record) => w.puts.push(("device".into(), encode(record))),
                Op::PendingSecret(Some(secret)) => w.puts.push(("pending-secret".into(), encode(secret))),
                Op::PendingSecret(None) => w.deletes.push(Delete::Key("pending-secret".into())),
                Op::Chat(group, chat) => w.puts.push((chat_key(*group), encode(chat))),
                Op::History(group, entry) => {
                    if self.keeps_history(*group, batch) {
                        w.puts.push((history_key(*group, entry.seq), encode(entry)));
                    }
                }
                Op::DropHistory(group) => w.deletes.push(Delete::Prefix(format!("h:{}:", group.to_hex()))),
                Op::Outbox(group, id, entry) => w.puts.push((outbox_key(*group, *id), encode(entry))),
                Op::RemoveOutbox(group, id) => w.deletes.push(Delete::Key(outbox_key(*group, *id))),
                Op::PendingJoin(group, join) => w.puts.push((format!("j:{}", group.to_hex()), encode(join))),
                Op::RemovePendingJoin(group) => w.deletes.push(Delete::Key(format!("j:{}", group.to_hex()))),
                Op::Profile(account, name) => w.puts.push((format!("p:{}", account.to_hex()), encode(name))),
                Op::Restored(true) => w.puts.push(("restored".into(), vec![1])),
                Op::Restored(false) => w.deletes.push(Delete::Key("restored".into())),
                Op::PutRaw(key, value) => w.puts.push((key.clone(), value.clone())),
                Op::RemoveKey(key) => w.deletes.push(Delete::Key(key.clone())),
            }
        }
        w
    }

    /// Applies a written batch in memory.
    pub(crate) fn apply(&mut self, batch: Batch, mls: &veche_mls::Changes) {
        self.mls.apply(mls);
        for op in batch.ops {
            match op {
                Op::Format | Op::PutRaw(..) | Op::RemoveKey(_) => {}
                Op::Device(record) => self.device = Some(record),
                Op::PendingSecret(secret) => self.pending_secret = secret,
                Op::Chat(group, chat) => {
                    self.chats.insert(group, chat);
                }
                Op::History(group, entry) => {
                    self.history.entry(group).or_default().insert(entry.seq, entry);
                }
                Op::DropHistory(_) => {} // what is on screen stays until the device restarts
                Op::Outbox(group, id, entry) => {
                    self.outbox.entry(group).or_default().insert(id, entry);
                }
                Op::RemoveOutbox(group, id) => {
                    if let Some(outbox) = self.outbox.get_mut(&group) {
                        outbox.remove(&id);
                        if outbox.is_empty() {
                            self.outbox.remove(&group);
                        }
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
    }

    /// Reads a stored device in the current [`FORMAT`]. Returns the model and the stored format
    /// (`None`: no `format` key).
    pub(crate) fn read(entries: Vec<(String, Vec<u8>)>) -> Result<(Model, Option<u32>), LoadError> {
        let mut model = Model::default();
        let mut mls = Vec::new();
        let mut format = None;
        for (key, value) in entries {
            model.read_entry(&key, value, &mut mls, &mut format).map_err(|e| LoadError::Corrupt { key, detail: e })?;
        }
        model.mls = veche_mls::Snapshot::from_entries(mls);
        Ok((model, format))
    }

    fn read_entry(
        &mut self,
        key: &str,
        value: Vec<u8>,
        mls: &mut Vec<(Vec<u8>, Vec<u8>)>,
        format: &mut Option<u32>,
    ) -> Result<(), String> {
        let (kind, rest) = key.split_once(':').unwrap_or((key, ""));
        let group = || rest.get(..32).and_then(|g| g.parse::<GroupId>().ok()).ok_or("bad group id");
        let number = || rest.get(33..).and_then(|n| n.parse::<u64>().ok()).ok_or("bad number");
        match kind {
            "format" => *format = Some(decode(&value)?),
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
            "j" => {
                self.pending_joins.insert(group()?, decode(&value)?);
            }
            "restored" => self.restored = true,
            "p" => {
                let account = rest.parse::<AccountId>().map_err(|_| "bad account id")?;
                self.profiles.insert(account, decode(&value)?);
            }
            _ => {} // a driver's own key, or written by a newer version
        }
        Ok(())
    }
}

/// Changes to write in one transaction (together with the MLS client's changes).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub(crate) ops: Vec<Op>,
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Format,
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
    /// A value written as is (a migration's rewrite of an older format).
    PutRaw(String, Vec<u8>),
    /// A key of an older format that a migration replaced.
    RemoveKey(String),
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub(crate) fn format(&mut self) -> &mut Self {
        self.ops.push(Op::Format);
        self
    }
    pub(crate) fn device(&mut self, record: DeviceRecord) -> &mut Self {
        self.ops.push(Op::Device(record));
        self
    }
    pub(crate) fn pending_secret(&mut self, secret: Option<[u8; 32]>) -> &mut Self {
        self.ops.push(Op::PendingSecret(secret));
        self
    }
    pub(crate) fn chat(&mut self, group: GroupId, chat: LocalChat) -> &mut Self {
        self.ops.push(Op::Chat(group, chat));
        self
    }
    pub(crate) fn history(&mut self, group: GroupId, entry: HistoryEntry) -> &mut Self {
        self.ops.push(Op::History(group, entry));
        self
    }
    pub(crate) fn drop_history(&mut self, group: GroupId) -> &mut Self {
        self.ops.push(Op::DropHistory(group));
        self
    }
    pub(crate) fn outbox(&mut self, group: GroupId, id: u64, entry: OutboxEntry) -> &mut Self {
        self.ops.push(Op::Outbox(group, id, entry));
        self
    }
    pub(crate) fn remove_outbox(&mut self, group: GroupId, id: u64) -> &mut Self {
        self.ops.push(Op::RemoveOutbox(group, id));
        self
    }
    pub(crate) fn pending_join(&mut self, group: GroupId, join: PendingJoin) -> &mut Self {
        self.ops.push(Op::PendingJoin(group, join));
        self
    }
    pub(crate) fn remove_pending_join(&mut self, group: GroupId) -> &mut Self {
        self.ops.push(Op::RemovePendingJoin(group));
        self
    }
    pub(crate) fn profile(&mut self, account: AccountId, name: String) -> &mut Self {
        self.ops.push(Op::Profile(account, name));
        self
    }
    pub(crate) fn restored(&mut self, restored: bool) -> &mut Self {
        self.ops.push(Op::Restored(restored));
        self
    }
    pub(crate) fn put_raw(&mut self, key: String, value: Vec<u8>) -> &mut Self {
        self.ops.push(Op::PutRaw(key, value));
        self
    }
    pub(crate) fn remove_key(&mut self, key: String) -> &mut Self {
        self.ops.push(Op::RemoveKey(key));
        self
    }
}

/// One storage transaction for the driver: write all of it, or none of it; the deletes first,
/// then the puts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Write {
    pub puts: Vec<(String, Vec<u8>)>,
    pub deletes: Vec<Delete>,
}

impl Write {
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }
}

/// A key, or every key starting with a prefix, to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delete {
    Key(String),
    Prefix(String),
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).unwrap_or_default()
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

pub(crate) fn chat_key(group: GroupId) -> String {
    format!("c:{}", group.to_hex())
}

pub(crate) fn history_key(group: GroupId, seq: u64) -> String {
    format!("h:{}:{seq:020}", group.to_hex())
}

pub(crate) fn outbox_key(group: GroupId, id: u64) -> String {
    format!("ob:{}:{id:020}", group.to_hex())
}
