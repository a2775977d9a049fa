//! The MLS state store: live state in memory, and a journal of what changed since the caller
//! last persisted, so that one MLS operation becomes one atomic write in the caller's database.
//!
//! # Design
//!
//! openmls writes many storage keys during one operation (group state, tree, secrets, proposal
//! queue, key packages…) through a `StorageProvider` trait of about fifty methods whose key
//! layout is private to each implementation. Rather than re-implementing that trait and
//! journaling every method by hand (where a single missed method would silently lose a write),
//! the live state is openmls' own [`MemoryStorage`] and the journal is a *diff* against a
//! mirror of the state as of the last successful operation (`base`). This is correct by
//! construction for every key openmls writes today or in a later version. The price is one
//! comparison pass over the state per operation; a device's state is small (per group: one
//! tree, a few epochs of secrets), so this stays far below the cost of the crypto itself.
//!
//! Three layers:
//! - `live`: what openmls reads and writes.
//! - `base`: `live` as of the end of the last successful operation. A failed operation restores
//!   `live` to `base` ([`Store::abort`]).
//! - `undo`: for every key changed since the last [`Store::take_changes`], its value at that
//!   time. [`Store::rollback`] uses it to return to the last persisted state, e.g. when the
//!   caller's write transaction failed.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLockWriteGuard};

use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::OpenMlsProvider;

type Map = HashMap<Vec<u8>, Vec<u8>>;

/// Key/value upserts and deletes since the last [`Store::take_changes`]. Opaque: write it into
/// the caller's database (see `redb_store::write`) or into a [`Snapshot`] with
/// [`Snapshot::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub(crate) upserts: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) deletes: Vec<Vec<u8>>,
}

impl Changes {
    /// Whether there is nothing to persist.
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }

    /// Keys to write with their new values.
    pub fn upserts(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.upserts.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// Keys to delete.
    pub fn deletes(&self) -> impl Iterator<Item = &[u8]> {
        self.deletes.iter().map(Vec::as_slice)
    }

    /// Number of keys touched.
    pub fn len(&self) -> usize {
        self.upserts.len() + self.deletes.len()
    }
}

/// A full copy of the persisted MLS state, to open a [`crate::Client`] from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub(crate) entries: Map,
}

/// A snapshot's byte form is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed MLS state snapshot")]
pub struct SnapshotDecodeError;

impl Snapshot {
    /// An empty state (a device that has never persisted anything).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds a snapshot from stored key/value pairs.
    pub fn from_entries(entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Self {
        Self { entries: entries.into_iter().collect() }
    }

    /// Applies persisted changes (for in-memory persistence in tests and in the browser).
    pub fn apply(&mut self, changes: &Changes) {
        for key in &changes.deletes {
            self.entries.remove(key);
        }
        for (key, value) in &changes.upserts {
            self.entries.insert(key.clone(), value.clone());
        }
    }

    /// Number of stored keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// One blob holding the whole state (e.g. for browser storage). Keys are sorted, so the
    /// same state always gives the same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut entries: Vec<_> = self.entries.iter().collect();
        entries.sort();
        postcard::to_allocvec(&entries).unwrap_or_default()
    }

    /// Parses [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SnapshotDecodeError> {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = postcard::from_bytes(bytes).map_err(|_| SnapshotDecodeError)?;
        Ok(Self::from_entries(entries))
    }
}

/// The openmls provider over the journaled store: RustCrypto for crypto and randomness,
/// [`MemoryStorage`] for the live state.
#[derive(Debug, Default)]
pub struct Store {
    crypto: RustCrypto,
    live: MemoryStorage,
    base: Map,
    undo: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl OpenMlsProvider for Store {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.live
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding a persisted snapshot, with nothing to persist yet.
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        let store = Self { base: snapshot.entries.clone(), ..Self::default() };
        *store.live_mut() = snapshot.entries;
        store
    }

    fn live_mut(&self) -> RwLockWriteGuard<'_, Map> {
        // A poisoned lock only means a panic elsewhere; the map itself is still whole.
        self.live.values.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads one raw value of the live state.
    pub(crate) fn get_raw(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.live.values.read().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// Writes one raw value of the live state (our own metadata keys).
    pub(crate) fn put_raw(&self, key: &[u8], value: Vec<u8>) {
        self.live_mut().insert(key.to_vec(), value);
    }

    /// Ends a successful operation: folds its writes into `base`, remembering the values they
    /// replaced until the next [`Self::take_changes`].
    pub fn commit(&mut self) {
        let live = self.live.values.read().unwrap_or_else(PoisonError::into_inner);
        let mut changed: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        for (key, value) in live.iter() {
            if self.base.get(key) != Some(value) {
                changed.push((key.clone(), Some(value.clone())));
            }
        }
        for key in self.base.keys() {
            if !live.contains_key(key) {
                changed.push((key.clone(), None));
            }
        }
        drop(live);
        for (key, value) in changed {
            let old = match value {
                Some(value) => self.base.insert(key.clone(), value),
                None => self.base.remove(&key),
            };
            self.undo.entry(key).or_insert(old);
        }
    }

    /// Ends a failed operation: the live state returns to the end of the last successful one.
    pub fn abort(&mut self) {
        *self.live_mut() = self.base.clone();
    }

    /// Everything that changed since the last call, to persist in one transaction.
    pub fn take_changes(&mut self) -> Changes {
        self.commit();
        let mut changes = Changes::default();
        for (key, old) in self.undo.drain() {
            match self.base.get(&key) {
                Some(new) if old.as_ref() != Some(new) => changes.upserts.push((key, new.clone())),
                None if old.is_some() => changes.deletes.push(key),
                _ => {}
            }
        }
        changes.upserts.sort();
        changes.deletes.sort();
        changes
    }

    /// Returns to the state as of the last [`Self::take_changes`] (or the snapshot it was opened
    /// from): undoes every change the caller has not persisted.
    pub fn rollback(&mut self) {
        for (key, old) in self.undo.drain() {
            match old {
                Some(value) => self.base.insert(key, value),
                None => self.base.remove(&key),
            };
        }
        self.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_tracks_commits_aborts_and_rollbacks() {
        let mut store = Store::from_snapshot(Snapshot::from_entries([(b"a".to_vec(), b"1".to_vec())]));
        store.put_raw(b"b", b"2".to_vec());
        store.commit();
        store.put_raw(b"a", b"x".to_vec());
        store.abort();
        assert_eq!(store.get_raw(b"a"), Some(b"1".to_vec()));
        let changes = store.take_changes();
        assert_eq!(changes.upserts, vec![(b"b".to_vec(), b"2".to_vec())]);
        assert!(store.take_changes().is_empty());

        store.live_mut().remove(b"a".as_slice());
        store.put_raw(b"b", b"3".to_vec());
        store.commit();
        store.rollback();
        assert_eq!(store.get_raw(b"a"), Some(b"1".to_vec()));
        assert_eq!(store.get_raw(b"b"), Some(b"2".to_vec()));
        assert!(store.take_changes().is_empty());

        // A value changed and changed back is not a change.
        store.put_raw(b"b", b"9".to_vec());
        store.commit();
        store.put_raw(b"b", b"2".to_vec());
        store.commit();
        assert!(store.take_changes().is_empty());
    }

    #[test]
    fn snapshot_bytes_round_trip() {
        let mut snap = Snapshot::empty();
        snap.apply(&Changes { upserts: vec![(vec![1], vec![2]), (vec![3], vec![4])], deletes: vec![] });
        snap.apply(&Changes { upserts: vec![], deletes: vec![vec![3]] });
        assert_eq!(Snapshot::from_bytes(&snap.to_bytes()).unwrap(), snap);
        assert!(Snapshot::from_bytes(&[0xff]).is_err());
    }
}
