//! The native client's state under `--state DIR`: one redb file holding the device key, the MLS
//! state (via `veche_mls::redb_store`), the chats it knows with how far it has processed each, and
//! its decrypted history. Every MLS operation is persisted in one write transaction together with
//! the client data it produced, so a crash never leaves half a merge.

use anyhow::{Context, bail};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::path::Path;
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId};

const DEVICE: TableDefinition<&str, &[u8]> = TableDefinition::new("device");
/// group -> LocalChat
const CHATS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("chats");
/// (group, seq) -> HistoryEntry
const HISTORY: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("history");
/// "secret": a device key generated for a registration not yet confirmed;
/// "join:<chat id>": a PendingJoin whose answer has not arrived yet.
const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending");
/// (group, local id) -> OutboxEntry persisted before sending (resent verbatim after a crash)
const OUTBOX: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("outbox");

#[derive(Clone, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub secret: [u8; 32],
    pub account: AccountId,
    pub device: DeviceId,
    pub node_url: String,
    pub node_id: String,
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalChat {
    pub kind: ChatKind,
    pub name: String,
    /// Every log entry up to this sequence number is processed.
    pub processed: u64,
    /// False once this device was removed or left.
    pub active: bool,
    /// Members who asked to leave and are still in the chat. An owner's or admin's device
    /// removes them, even when their leave proposal went stale because another commit came first.
    pub leavers: Vec<AccountId>,
}

/// An external commit applied locally and saved before it was sent: resent (idempotently) after a
/// crash, so the device never loses a leaf the node has accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingJoin {
    pub invite: veche_protocol::ids::InviteId,
    pub secret: [u8; veche_protocol::link::SECRET_LEN],
    pub commit: Vec<u8>,
    pub group_info: Vec<u8>,
}

/// A message encrypted and saved before it was sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub ciphertext: Vec<u8>,
    pub text: String,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HistoryBody {
    Text(String),
    /// Membership changes and other events, described in words.
    System(String),
    /// A message this device could not read, and why.
    Unreadable(String),
}

pub struct State {
    db: Database,
    pub device: Option<DeviceRecord>,
    pub mls: Option<veche_mls::Client>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> anyhow::Result<T> {
    postcard::from_bytes(bytes).context("corrupt client state")
}

impl State {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let db = Database::create(dir.join("client.redb")).context("opening client state")?;
        let txn = db.begin_write()?;
        txn.open_table(DEVICE)?;
        txn.open_table(CHATS)?;
        txn.open_table(HISTORY)?;
        txn.open_table(OUTBOX)?;
        txn.open_table(PENDING)?;
        txn.commit()?;
        let read = db.begin_read()?;
        let device: Option<DeviceRecord> = match read.open_table(DEVICE)?.get("device")? {
            Some(bytes) => Some(decode(bytes.value())?),
            None => None,
        };
        let mls = match &device {
            Some(d) => Some(veche_mls::Client::open(d.secret, veche_mls::redb_store::load(&read)?)?),
            None => None,
        };
        drop(read);
        Ok(State { db, device, mls })
    }

    pub fn device(&self) -> anyhow::Result<&DeviceRecord> {
        self.device.as_ref().context("this state dir has no registered device; run `register` first")
    }

    pub fn mls(&mut self) -> anyhow::Result<&mut veche_mls::Client> {
        self.mls.as_mut().context("this state dir has no registered device; run `register` first")
    }

    /// Persists the MLS changes made since the last call together with `f`'s writes, atomically.
    /// If anything fails, the in-memory MLS state is reloaded from disk, so memory never runs
    /// ahead of what is saved.
    pub fn persist(&mut self, f: impl FnOnce(&WriteTransaction) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let result = self.try_persist(f);
        if result.is_err() {
            self.reload_mls()?;
        }
        result
    }

    fn try_persist(&mut self, f: impl FnOnce(&WriteTransaction) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        if let Some(mls) = self.mls.as_mut() {
            let changes = mls.take_changes();
            veche_mls::redb_store::write(&txn, &changes)?;
        }
        f(&txn)?;
        txn.commit().context("saving client state")?;
        Ok(())
    }

    fn reload_mls(&mut self) -> anyhow::Result<()> {
        if let Some(device) = &self.device {
            let read = self.db.begin_read()?;
            self.mls = Some(veche_mls::Client::open(device.secret, veche_mls::redb_store::load(&read)?)?);
        }
        Ok(())
    }

    /// The key of a registration that was started but not confirmed (a crash or a refusal).
    pub fn pending_secret(&self) -> anyhow::Result<Option<[u8; 32]>> {
        let txn = self.db.begin_read()?;
        let value = txn.open_table(PENDING)?.get("secret")?;
        Ok(value.and_then(|v| <[u8; 32]>::try_from(v.value()).ok()))
    }

    /// The fingerprint of the node's certificate authority this device trusts, if pinned.
    pub fn tls_pin(&self) -> anyhow::Result<Option<[u8; 32]>> {
        let txn = self.db.begin_read()?;
        let value = txn.open_table(PENDING)?.get("tls_pin")?;
        Ok(value.and_then(|v| <[u8; 32]>::try_from(v.value()).ok()))
    }

    pub fn set_tls_pin(&mut self, pin: &[u8; 32]) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(PENDING)?.insert("tls_pin", pin.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Saves a new device key before it is registered, so a crash after the node accepted it
    /// cannot lose the account.
    pub fn set_pending_secret(&mut self, secret: &[u8; 32]) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(PENDING)?.insert("secret", secret.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    pub fn pending_joins(&self) -> anyhow::Result<Vec<(GroupId, PendingJoin)>> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for item in txn.open_table(PENDING)?.iter()? {
            let (key, value) = item?;
            if let Some(group) = key.value().strip_prefix("join:").and_then(|g| g.parse::<GroupId>().ok()) {
                out.push((group, decode(value.value())?));
            }
        }
        Ok(out)
    }

    pub fn save_device(&mut self, record: DeviceRecord, mls: veche_mls::Client) -> anyhow::Result<()> {
        if self.device.is_some() {
            bail!("this state dir already holds a registered device");
        }
        self.mls = Some(mls);
        let bytes = encode(&record);
        self.persist(|txn| {
            txn.open_table(DEVICE)?.insert("device", bytes.as_slice())?;
            txn.open_table(PENDING)?.remove("secret")?;
            Ok(())
        })?;
        self.device = Some(record);
        Ok(())
    }

    pub fn chats(&self) -> anyhow::Result<Vec<(GroupId, LocalChat)>> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for item in txn.open_table(CHATS)?.iter()? {
            let (key, value) = item?;
            out.push((GroupId(key.value()), decode(value.value())?));
        }
        Ok(out)
    }

    pub fn chat(&self, group: GroupId) -> anyhow::Result<Option<LocalChat>> {
        let txn = self.db.begin_read()?;
        let value = txn.open_table(CHATS)?.get(group.0)?;
        value.map(|v| decode(v.value())).transpose()
    }

    pub fn history(&self, group: GroupId, after: u64) -> anyhow::Result<Vec<HistoryEntry>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HISTORY)?;
        let mut out = Vec::new();
        for item in table.range((group.0, after.saturating_add(1))..=(group.0, u64::MAX))? {
            let (_, value) = item?;
            out.push(decode(value.value())?);
        }
        Ok(out)
    }

    pub fn has_history(&self, group: GroupId, seq: u64) -> anyhow::Result<bool> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(HISTORY)?.get((group.0, seq))?.is_some())
    }

    pub fn outbox(&self, group: GroupId) -> anyhow::Result<Vec<(u64, OutboxEntry)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for item in table.range((group.0, 0)..=(group.0, u64::MAX))? {
            let (key, value) = item?;
            out.push((key.value().1, decode(value.value())?));
        }
        Ok(out)
    }
}

/// Writes used inside [`State::persist`].
pub fn put_chat(txn: &WriteTransaction, group: GroupId, chat: &LocalChat) -> anyhow::Result<()> {
    txn.open_table(CHATS)?.insert(group.0, encode(chat).as_slice())?;
    Ok(())
}

pub fn put_history(txn: &WriteTransaction, group: GroupId, entry: &HistoryEntry) -> anyhow::Result<()> {
    txn.open_table(HISTORY)?.insert((group.0, entry.seq), encode(entry).as_slice())?;
    Ok(())
}

pub fn put_outbox(txn: &WriteTransaction, group: GroupId, id: u64, entry: &OutboxEntry) -> anyhow::Result<()> {
    txn.open_table(OUTBOX)?.insert((group.0, id), encode(entry).as_slice())?;
    Ok(())
}

pub fn remove_outbox(txn: &WriteTransaction, group: GroupId, id: u64) -> anyhow::Result<()> {
    txn.open_table(OUTBOX)?.remove((group.0, id))?;
    Ok(())
}

pub fn put_pending_join(txn: &WriteTransaction, group: GroupId, join: &PendingJoin) -> anyhow::Result<()> {
    txn.open_table(PENDING)?.insert(format!("join:{group}").as_str(), encode(join).as_slice())?;
    Ok(())
}

pub fn remove_pending_join(txn: &WriteTransaction, group: GroupId) -> anyhow::Result<()> {
    txn.open_table(PENDING)?.remove(format!("join:{group}").as_str())?;
    Ok(())
}
