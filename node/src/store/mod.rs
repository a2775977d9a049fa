//! The node's durable state in one redb database.
//!
//! Reads happen anywhere through [`Store::read`] (redb readers never block writers). Every write
//! goes through the single [`writer`] thread, which runs jobs in batches inside one write
//! transaction and commits once per batch (group commit): a job's reply and its events are released
//! only after the commit is durable, so nothing acknowledged can be lost.
//!
//! Values are postcard-encoded records from [`records`]; table layouts are in [`tables`].

pub mod records;
pub mod tables;
pub mod writer;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};
use std::path::Path;
use std::sync::Arc;

pub use writer::Writer;

/// Shared handle to the database.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens (or creates) the database file (owner-only) and its tables.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let db = crate::private_fs::open_database(path)?;
        let txn = db.begin_write()?;
        tables::create_all(&txn)?;
        backfill_quota_indexes(&txn)?;
        txn.commit()?;
        Ok(Store { db: Arc::new(db) })
    }

    /// A consistent read-only snapshot.
    pub fn read(&self) -> anyhow::Result<ReadTransaction> {
        Ok(self.db.begin_read()?)
    }

    pub(crate) fn database(&self) -> &Arc<Database> {
        &self.db
    }
}

/// Fills the invite indexes and the per-account byte counts from the tables they index, once, for
/// a database written before they existed (marked done in `META`).
fn backfill_quota_indexes(txn: &WriteTransaction) -> anyhow::Result<()> {
    const DONE: &str = "quota_indexes";
    let mut meta = txn.open_table(tables::META)?;
    if meta.get(DONE)?.is_some() {
        return Ok(());
    }
    {
        let invites = txn.open_table(tables::INVITES)?;
        let mut by_group = txn.open_table(tables::INVITES_BY_GROUP)?;
        let mut by_creator = txn.open_table(tables::INVITES_BY_CREATOR)?;
        for item in invites.iter()? {
            let (key, value) = item?;
            let Ok(invite) = records::decode::<records::Invite>(value.value()) else { continue };
            if let Some(group) = invite.group {
                by_group.insert((group.0, key.value()), ())?;
            }
            if let Some(creator) = invite.created_by {
                by_creator.insert((creator.0, key.value()), ())?;
            }
        }
    }
    {
        // Only chats homed here count (a replica's entries were stored by their home node).
        let homes = txn.open_table(tables::CHAT_HOMES)?;
        let log = txn.open_table(tables::LOG)?;
        let mut bytes: std::collections::BTreeMap<[u8; 32], u64> = Default::default();
        for item in log.iter()? {
            let (key, value) = item?;
            if homes.get(key.value().0)?.is_some() {
                continue;
            }
            let Ok(entry) = records::decode::<records::LogEntry>(value.value()) else { continue };
            *bytes.entry(entry.sender.0).or_default() += entry.payload.len() as u64;
        }
        let mut table = txn.open_table(tables::ACCOUNT_BYTES)?;
        for (account, total) in bytes {
            table.insert(account, total)?;
        }
    }
    meta.insert(DONE, [1u8].as_slice())?;
    Ok(())
}
