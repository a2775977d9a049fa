//! Persistence of the MLS state in a caller-owned redb database (feature `redb`).
//!
//! The caller owns the database and its transactions: it writes the client's [`Changes`] with
//! [`write()`] in the same write transaction as its own data, so an MLS operation and the data
//! that goes with it (a stored message, a delivery cursor…) commit or fail together.

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError, WriteTransaction};

use crate::storage::{Changes, Snapshot};

/// The table holding the MLS state: openmls storage key -> value.
pub const TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("mls_state");

/// Reading or writing the MLS state table failed.
#[derive(Debug, thiserror::Error)]
#[error("MLS state table: {0}")]
pub struct RedbStoreError(#[from] redb::Error);

impl From<TableError> for RedbStoreError {
    fn from(err: TableError) -> Self {
        Self(err.into())
    }
}

impl From<redb::StorageError> for RedbStoreError {
    fn from(err: redb::StorageError) -> Self {
        Self(err.into())
    }
}

/// Loads the persisted MLS state (empty if the table does not exist yet).
pub fn load(txn: &ReadTransaction) -> Result<Snapshot, RedbStoreError> {
    let table = match txn.open_table(TABLE) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Snapshot::empty()),
        Err(err) => return Err(err.into()),
    };
    let mut entries = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        entries.push((key.value().to_vec(), value.value().to_vec()));
    }
    Ok(Snapshot::from_entries(entries))
}

/// Writes the changes of one or more client operations into the caller's transaction.
pub fn write(txn: &WriteTransaction, changes: &Changes) -> Result<(), RedbStoreError> {
    let mut table = txn.open_table(TABLE)?;
    for key in changes.deletes() {
        table.remove(key)?;
    }
    for (key, value) in changes.upserts() {
        table.insert(key, value)?;
    }
    Ok(())
}
