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

use redb::{Database, ReadTransaction, ReadableDatabase};
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
