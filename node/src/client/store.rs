//! The native client's storage under `--state DIR`: one redb file, `client.redb`, whose table
//! `device_kv` holds the device core's key/value pairs (see `veche_device::model`) and the
//! driver's own key `tls-pin` (the pinned CA fingerprint, 32 bytes).
//!
//! A `client.redb` written before the device core has tables of its own (`device`, `chats`,
//! `history`, `outbox`, `pending`, `mls_state`): opening it moves their rows into `device_kv`
//! (`veche_device::migrate::native_v0`) and drops them, in one write transaction.

use anyhow::Context;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle, WriteTransaction,
};
use std::path::Path;
use veche_device::migrate::{Entries, NativeV0};
use veche_device::{Delete, Write};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("device_kv");
/// The driver's own key: the fingerprint of the node's certificate authority, when pinned.
const TLS_PIN: &str = "tls-pin";

// The tables of the client before the device core; read once, then dropped.
const OLD_DEVICE: TableDefinition<&str, &[u8]> = TableDefinition::new("device");
const OLD_CHATS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("chats");
const OLD_HISTORY: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("history");
const OLD_OUTBOX: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("outbox");
const OLD_PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending");
const OLD_MLS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("mls_state");
const OLD_TABLES: [&str; 6] = ["device", "chats", "history", "outbox", "pending", "mls_state"];

pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the state dir's `client.redb`, migrating an old one. Returns the store
    /// and every key/value pair it holds, for `Device::load`.
    pub fn open(dir: &Path) -> anyhow::Result<(Store, Entries)> {
        crate::private_fs::create_dir(dir)?;
        let db = crate::private_fs::open_database(&dir.join("client.redb")).context("opening client state")?;
        let store = Store { db };
        store.migrate().context("migrating the client state of an earlier version")?;
        let read = store.db.begin_read()?;
        let table = read.open_table(KV)?;
        let mut entries = Vec::new();
        for item in table.iter()? {
            let (key, value) = item?;
            entries.push((key.value().to_string(), value.value().to_vec()));
        }
        Ok((store, entries))
    }

    /// Moves the old tables' rows into `device_kv` and drops them, when there are old tables and
    /// `device_kv` is empty. One transaction: a crash leaves either format, never half of both.
    fn migrate(&self) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        let old: Vec<String> =
            txn.list_tables()?.map(|t| t.name().to_string()).filter(|n| OLD_TABLES.contains(&n.as_str())).collect();
        let empty = txn.open_table(KV)?.is_empty()?;
        if old.is_empty() || !empty {
            txn.commit()?;
            return Ok(());
        }
        let has = |name: &str| old.iter().any(|n| n == name);
        let mut rows = NativeV0::default();
        if has("device") {
            rows.device = txn.open_table(OLD_DEVICE)?.get("device")?.map(|v| v.value().to_vec());
        }
        if has("chats") {
            for item in txn.open_table(OLD_CHATS)?.iter()? {
                let (k, v) = item?;
                rows.chats.push((k.value(), v.value().to_vec()));
            }
        }
        if has("history") {
            for item in txn.open_table(OLD_HISTORY)?.iter()? {
                let (k, v) = item?;
                rows.history.push((k.value(), v.value().to_vec()));
            }
        }
        if has("outbox") {
            for item in txn.open_table(OLD_OUTBOX)?.iter()? {
                let (k, v) = item?;
                rows.outbox.push((k.value(), v.value().to_vec()));
            }
        }
        if has("pending") {
            for item in txn.open_table(OLD_PENDING)?.iter()? {
                let (k, v) = item?;
                rows.pending.push((k.value().to_string(), v.value().to_vec()));
            }
        }
        if has("mls_state") {
            for item in txn.open_table(OLD_MLS)?.iter()? {
                let (k, v) = item?;
                rows.mls.push((k.value().to_vec(), v.value().to_vec()));
            }
        }
        let entries = veche_device::migrate::native_v0(rows)?;
        {
            let mut kv = txn.open_table(KV)?;
            for (key, value) in &entries {
                kv.insert(key.as_str(), value.as_slice())?;
            }
        }
        txn.delete_table(OLD_DEVICE)?;
        txn.delete_table(OLD_CHATS)?;
        txn.delete_table(OLD_HISTORY)?;
        txn.delete_table(OLD_OUTBOX)?;
        txn.delete_table(OLD_PENDING)?;
        txn.delete_table(OLD_MLS)?;
        txn.commit()?;
        Ok(())
    }

    /// Writes one `Action::Persist` in one transaction: deletes first, then puts.
    pub fn write(&self, write: &Write) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        apply(&txn, write)?;
        txn.commit().context("saving client state")?;
        Ok(())
    }

    /// The fingerprint of the node's certificate authority this device trusts, if pinned.
    pub fn tls_pin(&self) -> anyhow::Result<Option<[u8; 32]>> {
        let txn = self.db.begin_read()?;
        let value = txn.open_table(KV)?.get(TLS_PIN)?;
        Ok(value.and_then(|v| <[u8; 32]>::try_from(v.value()).ok()))
    }

    pub fn set_tls_pin(&self, pin: &[u8; 32]) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(KV)?.insert(TLS_PIN, pin.as_slice())?;
        txn.commit()?;
        Ok(())
    }
}

fn apply(txn: &WriteTransaction, write: &Write) -> anyhow::Result<()> {
    let mut kv = txn.open_table(KV)?;
    for delete in &write.deletes {
        match delete {
            Delete::Key(key) => {
                kv.remove(key.as_str())?;
            }
            Delete::Prefix(prefix) => {
                let mut keys = Vec::new();
                for item in kv.range(prefix.as_str()..)? {
                    let (key, _) = item?;
                    if !key.value().starts_with(prefix.as_str()) {
                        break;
                    }
                    keys.push(key.value().to_string());
                }
                for key in keys {
                    kv.remove(key.as_str())?;
                }
            }
        }
    }
    for (key, value) in &write.puts {
        kv.insert(key.as_str(), value.as_slice())?;
    }
    Ok(())
}
