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
        backfill_replica_usage(&txn)?;
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
        let mut by_expiry = txn.open_table(tables::INVITES_BY_EXPIRY)?;
        for item in invites.iter()? {
            let (key, value) = item?;
            let Ok(invite) = records::decode::<records::Invite>(value.value()) else { continue };
            if let Some(group) = invite.group {
                by_group.insert((group.0, key.value()), ())?;
            }
            if let Some(creator) = invite.created_by {
                by_creator.insert((creator.0, key.value()), ())?;
            }
            if let Some(expires) = invite.expires_ms {
                by_expiry.insert((expires, key.value()), ())?;
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

/// Counts each home node's replicas and their bytes (`REPLICA_USAGE`), once, for a database
/// written before the count was kept (marked done in `META`).
fn backfill_replica_usage(txn: &WriteTransaction) -> anyhow::Result<()> {
    const DONE: &str = "replica_usage";
    let mut meta = txn.open_table(tables::META)?;
    if meta.get(DONE)?.is_some() {
        return Ok(());
    }
    let mut usage: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    {
        let homes = txn.open_table(tables::CHAT_HOMES)?;
        let log = txn.open_table(tables::LOG)?;
        for item in homes.iter()? {
            let (group, home) = item?;
            let group = group.value();
            let mut bytes = 0;
            for row in log.range((group, 0)..=(group, u64::MAX))? {
                let (_, value) = row?;
                if let Ok(entry) = records::decode::<records::LogEntry>(value.value()) {
                    bytes += entry.payload.len() as u64;
                }
            }
            let counted = usage.entry(home.value().to_string()).or_default();
            *counted = (counted.0 + 1, counted.1 + bytes);
        }
    }
    let mut table = txn.open_table(tables::REPLICA_USAGE)?;
    for (home, counted) in usage {
        table.insert(home.as_str(), counted)?;
    }
    meta.insert(DONE, [1u8].as_slice())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use records::{Invite, LogEntry};
    use veche_protocol::ids::{AccountId, GroupId};
    use veche_protocol::wire::EntryKind;

    fn invite(group: Option<GroupId>, created_by: Option<AccountId>) -> Invite {
        Invite {
            group,
            secret_hash: [0; 32],
            created_by,
            created_ms: 0,
            expires_ms: None,
            max_uses: None,
            uses: 0,
            registrations: 0,
            revoked: false,
            grants_admin: false,
        }
    }

    fn entry(sender: AccountId, len: usize) -> Vec<u8> {
        let entry = LogEntry { kind: EntryKind::Application, epoch: 0, sender, stored_ms: 0, payload: vec![7; len] };
        records::encode(&entry)
    }

    /// A database written before the invite indexes and byte counts gets them at its next open.
    #[test]
    fn an_older_database_gets_its_quota_indexes_filled_once() {
        let dir = std::env::temp_dir().join(format!("veche-store-backfill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("veche.redb");
        let _ = std::fs::remove_file(&path);
        let (alice, bob) = (AccountId([1; 32]), AccountId([2; 32]));
        let (here, replica) = (GroupId([1; 16]), GroupId([2; 16]));
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut invites = txn.open_table(tables::INVITES).unwrap();
                invites.insert([1; 8], records::encode(&invite(Some(here), Some(alice))).as_slice()).unwrap();
                let expiring = Invite { expires_ms: Some(5), ..invite(None, Some(bob)) };
                invites.insert([2; 8], records::encode(&expiring).as_slice()).unwrap();
                invites.insert([3; 8], records::encode(&invite(None, None)).as_slice()).unwrap();
                let mut log = txn.open_table(tables::LOG).unwrap();
                log.insert((here.0, 1), entry(alice, 100).as_slice()).unwrap();
                log.insert((here.0, 2), entry(alice, 50).as_slice()).unwrap();
                log.insert((here.0, 3), entry(bob, 10).as_slice()).unwrap();
                log.insert((replica.0, 1), entry(alice, 1000).as_slice()).unwrap();
                txn.open_table(tables::CHAT_HOMES).unwrap().insert(replica.0, "elsewhere").unwrap();
            }
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let txn = store.read().unwrap();
        let by_group: Vec<_> =
            txn.open_table(tables::INVITES_BY_GROUP).unwrap().iter().unwrap().map(|i| i.unwrap().0.value()).collect();
        assert_eq!(by_group, vec![(here.0, [1; 8])]);
        let by_creator: Vec<_> =
            txn.open_table(tables::INVITES_BY_CREATOR).unwrap().iter().unwrap().map(|i| i.unwrap().0.value()).collect();
        assert_eq!(by_creator, vec![(alice.0, [1; 8]), (bob.0, [2; 8])]);
        let by_expiry: Vec<_> =
            txn.open_table(tables::INVITES_BY_EXPIRY).unwrap().iter().unwrap().map(|i| i.unwrap().0.value()).collect();
        assert_eq!(by_expiry, vec![(5, [2; 8])]);
        let bytes = txn.open_table(tables::ACCOUNT_BYTES).unwrap();
        assert_eq!(bytes.get(alice.0).unwrap().map(|g| g.value()), Some(150), "a replica's entries do not count");
        assert_eq!(bytes.get(bob.0).unwrap().map(|g| g.value()), Some(10));
        let usage = txn.open_table(tables::REPLICA_USAGE).unwrap();
        assert_eq!(usage.get("elsewhere").unwrap().map(|g| g.value()), Some((1, 1000)), "one replica, its bytes");
        drop(usage);
        drop((bytes, txn, store));

        // Once: counts kept since are not recomputed at the next open.
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(tables::ACCOUNT_BYTES).unwrap().insert(bob.0, 999).unwrap();
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let txn = store.read().unwrap();
        assert_eq!(txn.open_table(tables::ACCOUNT_BYTES).unwrap().get(bob.0).unwrap().map(|g| g.value()), Some(999));
        drop((txn, store));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
