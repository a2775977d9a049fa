//! What the node does for a signed-in device, one module per area. Every function validates its
//! input (and anything from MLS through [`crate::mls_view`]) before it touches the store, and
//! writes only through the [`crate::store::Writer`], so it either fully happens or not at all.

pub mod accounts;
pub mod calls;
pub mod chats;
pub mod delivery;
pub mod directory;
pub mod federation;
pub mod invites;
pub mod meetings;
pub mod replica;
pub mod retention;

use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::{Store, Writer};
use std::fmt::Display;
use std::sync::Arc;
use veche_protocol::ids::{AccountId, DeviceId};
use veche_protocol::wire::{ApiError, ErrorCode, RegistrationPolicy};

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub store: Store,
    pub writer: Writer,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub info: Arc<NodeInfo>,
    /// Links to other nodes (absent in unit tests).
    pub p2p: Option<crate::p2p::P2pHandle>,
    /// In-memory state of chats across nodes.
    pub replication: Arc<replica::Replication>,
    /// Calls and the media plane (absent in unit tests).
    pub calls: Option<Arc<calls::Calls>>,
}

/// Fixed facts about this node.
pub struct NodeInfo {
    pub node_id: String,
    pub name: String,
    pub registration: RegistrationPolicy,
    pub version: &'static str,
    pub http_port: u16,
    /// Shared by the nodes of one community: nearby nodes that have it link automatically.
    pub community_secret: Option<String>,
    /// How long guests may stay after a meeting's planned end (`--guest-grace`).
    pub guest_grace: std::time::Duration,
    /// Per-account quotas (`--storage-quota`, `--max-chats-per-account`).
    pub quotas: crate::config::Quotas,
}

/// A signed-in device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub account: AccountId,
    pub device: DeviceId,
}

/// Result of a request.
pub type ApiResult<T> = Result<T, ApiError>;

/// Maps a storage failure to an internal error (logged, never shown in detail).
pub fn internal<E: Display>(e: E) -> ApiError {
    tracing::error!(error = %e, "storage error");
    ApiError::new(ErrorCode::Internal, "the node failed to process this; retry later")
}

pub(crate) trait OrInternal<T> {
    fn or_internal(self) -> ApiResult<T>;
}

impl<T, E: Display> OrInternal<T> for Result<T, E> {
    fn or_internal(self) -> ApiResult<T> {
        self.map_err(internal)
    }
}

pub(crate) fn err<T>(code: ErrorCode, message: impl Into<String>) -> ApiResult<T> {
    Err(ApiError::new(code, message))
}
