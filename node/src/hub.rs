//! Live delivery: which signed-in connections belong to which account.
//!
//! Each connection registers a bounded event queue. An event is encoded once and the same bytes
//! are shared by every connection it goes to. Publishing never blocks: when a connection's queue
//! is full the event is dropped for it and the connection is flagged as lagged; it then tells its
//! device to fetch (every event is also in the durable log, so nothing is lost).

use axum::body::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use veche_protocol::ids::AccountId;
use veche_protocol::wire::{Event, ServerFrame};

/// Events queued per connection before it counts as lagging.
pub const CONNECTION_QUEUE: usize = 1024;

/// Who an event goes to.
pub type Recipients = Vec<AccountId>;

/// One signed-in connection's inbox.
pub struct Subscriber {
    pub id: u64,
    /// Encoded `ServerFrame::Event`s.
    pub events: mpsc::Receiver<Bytes>,
    pub lagged: Arc<AtomicBool>,
}

struct Slot {
    id: u64,
    tx: mpsc::Sender<Bytes>,
    lagged: Arc<AtomicBool>,
}

#[derive(Default)]
pub struct Hub {
    next_id: AtomicU64,
    by_account: Mutex<HashMap<AccountId, Vec<Slot>>>,
    /// Events handed to connections (metrics).
    pub delivered: AtomicU64,
    /// Where changed chats are reported (the federation service), once it runs.
    changes: std::sync::OnceLock<mpsc::Sender<veche_protocol::ids::GroupId>>,
}

/// Changed chats queued to the federation service at most (more are dropped: member nodes also
/// catch up periodically).
const CHANGES_QUEUE: usize = 4096;

impl Hub {
    /// Registers a connection of `account`.
    pub fn subscribe(&self, account: AccountId) -> Subscriber {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        let slot = Slot { id, tx, lagged: lagged.clone() };
        self.lock().entry(account).or_default().push(slot);
        Subscriber { id, events: rx, lagged }
    }

    /// Removes a connection.
    pub fn unsubscribe(&self, account: &AccountId, id: u64) {
        let mut map = self.lock();
        if let Some(slots) = map.get_mut(account) {
            slots.retain(|s| s.id != id);
            if slots.is_empty() {
                map.remove(account);
            }
        }
    }

    /// Sends `event` to every connection of the recipients, without blocking.
    /// Receives the ids of chats changed by committed transactions (first caller only).
    pub fn watch_chats(&self) -> Option<mpsc::Receiver<veche_protocol::ids::GroupId>> {
        let (tx, rx) = mpsc::channel(CHANGES_QUEUE);
        self.changes.set(tx).ok().map(|()| rx)
    }

    /// Reports a changed chat (never blocks).
    pub fn chat_changed(&self, group: veche_protocol::ids::GroupId) {
        if let Some(tx) = self.changes.get()
            && tx.try_send(group).is_err()
        {
            tracing::debug!(%group, "chat change not queued (federation service behind)");
        }
    }

    pub fn publish(&self, to: &[AccountId], event: Event) {
        let frame = Bytes::from(ServerFrame::Event(event).encode());
        let map = self.lock();
        for account in to {
            for slot in map.get(account).into_iter().flatten() {
                match slot.tx.try_send(frame.clone()) {
                    Ok(()) => {
                        self.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => slot.lagged.store(true, Ordering::Relaxed),
                }
            }
        }
    }

    /// Number of signed-in connections.
    pub fn connections(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, Vec<Slot>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single operations).
        self.by_account.lock().unwrap_or_else(|p| p.into_inner())
    }
}
