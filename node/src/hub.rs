//! Live delivery: which signed-in connections belong to which account.
//!
//! Each connection registers a bounded event queue. An event is encoded once and the same bytes
//! are shared by every connection it goes to. Publishing never blocks: when a connection's queue
//! is full (by events or by bytes) the event is dropped for it and the connection is flagged as
//! lagged; it then tells its device to fetch (every event is also in the durable log, so nothing
//! is lost). An account has at most [`MAX_CONNECTIONS_PER_ACCOUNT`] signed-in connections.

use axum::body::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use veche_protocol::ids::AccountId;
use veche_protocol::wire::{Event, ServerFrame};

/// Events queued per connection before it counts as lagging.
pub const CONNECTION_QUEUE: usize = 1024;
/// Bytes of events queued per connection before it counts as lagging: a connection that does not
/// read holds at most this much (events are shared, but a flood of distinct large messages is not).
/// 4 MiB is 32 of the largest messages, or thousands of ordinary ones: a device that reads keeps up.
pub const CONNECTION_QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// Signed-in connections one account may hold. Each of a member's devices (phone, laptop, the
/// native client) holds one; a browser holds one per profile (tabs share it). 32 is several times
/// what a member has, counting connections a dropped network left half-open until they time out;
/// a modified client cannot hold thousands of the node's `MAX_CONNECTIONS` under one account.
pub const MAX_CONNECTIONS_PER_ACCOUNT: usize = 32;

/// Who an event goes to.
pub type Recipients = Vec<AccountId>;

/// One signed-in connection's inbox.
pub struct Subscriber {
    pub id: u64,
    /// Encoded `ServerFrame::Event`s.
    events: mpsc::Receiver<Bytes>,
    /// Bytes of the events in `events`.
    queued: Arc<AtomicUsize>,
    pub lagged: Arc<AtomicBool>,
}

impl Subscriber {
    /// The next event (waits for one).
    pub async fn recv(&mut self) -> Option<Bytes> {
        let bytes = self.events.recv().await?;
        self.queued.fetch_sub(bytes.len(), Ordering::Relaxed);
        Some(bytes)
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let bytes = self.events.try_recv().ok()?;
        self.queued.fetch_sub(bytes.len(), Ordering::Relaxed);
        Some(bytes)
    }
}

struct Slot {
    id: u64,
    tx: mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
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
    /// Registers a connection of `account`, unless it already has `MAX_CONNECTIONS_PER_ACCOUNT`.
    pub fn subscribe(&self, account: AccountId) -> Option<Subscriber> {
        let mut map = self.lock();
        let slots = map.entry(account).or_default();
        if slots.len() >= MAX_CONNECTIONS_PER_ACCOUNT {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicUsize::new(0));
        slots.push(Slot { id, tx, queued: queued.clone(), lagged: lagged.clone() });
        Some(Subscriber { id, events: rx, queued, lagged })
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
                // Counted before it is queued, so the receiver never subtracts what was not added.
                let before = slot.queued.fetch_add(frame.len(), Ordering::Relaxed);
                let fits = before + frame.len() <= CONNECTION_QUEUE_BYTES;
                match fits.then(|| slot.tx.try_send(frame.clone())) {
                    Some(Ok(())) => {
                        self.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        slot.queued.fetch_sub(frame.len(), Ordering::Relaxed);
                        slot.lagged.store(true, Ordering::Relaxed);
                    }
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
