//! The rules a member device follows, written once and driven by both clients: the native
//! client (`veche client`: tokio, tungstenite, redb) and the browser (WebSocket, IndexedDB).
//!
//! No IO, no clock, no async runtime, in the style of quinn-proto and str0m: a [`Device`] takes
//! inputs and returns [`Action`]s. Time comes in as milliseconds since the Unix epoch with every
//! input (the core never reads a clock, which on `wasm32-unknown-unknown` would panic).
//!
//! # Call order
//! 1. [`Device::load`] with every key/value pair the driver stored (none for a new device).
//!    Older formats are migrated ([`migrate`]); the rewrite is the first action.
//! 2. Drain [`Device::poll_action`] until it returns `None`, doing each action:
//!    - [`Action::Persist`]: write the whole [`Write`] in one transaction, then report it with
//!      [`Device::handle_persisted`] (`Err` if the write failed: the core rolls its MLS state
//!      back and fails the operation).
//!    - [`Action::Send`]: send the request on the open connection; its answer goes to
//!      [`Device::handle_response`] with the same id.
//!    - [`Action::Notify`]: tell the member ([`DeviceEvent`]).
//!    - [`Action::Timeout`]: call [`Device::handle_timeout`] at that time.
//! 3. Wait for any input — a connection opened ([`Device::handle_connected`] with its `Hello`) or
//!    closed ([`Device::handle_disconnected`]), an answer, a live event
//!    ([`Device::handle_event`]), a finished write, the timer, or a [`Command`] from the member
//!    ([`Device::command`]) — hand it in, and drain again.
//!
//! Invariants the core keeps whatever the driver's timing:
//! - **Nothing leaves the device before it is durable.** A `Send` is never returned while a
//!   `Persist` is unreported, and every operation persists its MLS changes (and the data they
//!   produced: an outbox entry with its ciphertext, a pending join, new key packages' keys)
//!   before the request that depends on them. The one exception is a resync's external commit
//!   (`ops.rs` `resync_once`): the group it makes is kept only once the node stored it, so a
//!   lost attempt leaves the stuck state, which the next attempt replaces.
//! - **One operation at a time.** Commands, live events and the sync after connecting run one
//!   after the other in arrival order; a chat is never processed by two at once.
//! - **The log is processed strictly in order**, each entry once; a message is shown under the
//!   member MLS authenticates as its sender, never only under the node's word. Entries are passed
//!   over only with a history line saying so: those retention dropped, and those a device stuck
//!   behind an entry it cannot process skips when it rejoins the chat (a resync, `ops.rs`).

mod device;
pub mod error;
pub mod migrate;
pub mod model;
mod ops;

pub use device::{Action, Command, CommandId, Device, DeviceEvent, OUTBOX_RETRY_MS, Outcome, PersistId, RequestId};
pub use error::{
    CreateGroupError, DeviceError, DirectChatError, JoinError, LoadError, RegisterError, SendError, SignInError,
};
pub use model::{
    Delete, DeviceRecord, HistoryBody, HistoryEntry, LocalChat, Model, OutboxEntry, PendingJoin, SystemEvent, Write,
};
pub use ops::{
    KEY_PACKAGES_BATCH, KEY_PACKAGES_FIRST, KEY_PACKAGES_LOW, MAX_ATTEMPTS, PAGE, RESYNC_BACKOFF_FIRST_MS,
    RESYNC_BACKOFF_MAX_MS,
};
