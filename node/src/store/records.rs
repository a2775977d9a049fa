//! Stored records. Each is postcard-encoded; a record that fails to decode is reported as an
//! internal error, never a panic.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId, Retention, Role};
use veche_protocol::wire::{ApiError, EntryKind, ErrorCode};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub display_name: String,
    pub created_ms: u64,
    pub node_admin: bool,
    pub devices: Vec<DeviceId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chat {
    pub kind: ChatKind,
    pub name: String,
    pub description: String,
    pub created_by: AccountId,
    pub created_ms: u64,
    pub retention: Retention,
    /// Current MLS epoch as ordered by this node.
    pub epoch: u64,
    /// Sequence number of the newest log entry.
    pub head: u64,
    /// Lowest sequence number still stored (entries below were dropped by retention).
    pub tail: u64,
    /// Member accounts with their roles, as of the current epoch.
    pub roster: BTreeMap<AccountId, Role>,
    /// MLS leaves of the current epoch: leaf index -> (account, device).
    pub leaves: BTreeMap<u32, (AccountId, DeviceId)>,
    /// Accounts that asked to leave in the current epoch, with their proposal's reference: a
    /// commit that includes that reference may remove them whoever commits it.
    pub leaving: BTreeMap<AccountId, Vec<u8>>,
    /// Former members -> sequence number of the commit that removed them (they may read up to it).
    pub removed_at: BTreeMap<AccountId, u64>,
    /// The other member of a direct chat.
    pub peer: Option<AccountId>,
}

impl Chat {
    pub fn role_of(&self, account: &AccountId) -> Option<Role> {
        self.roster.get(account).copied()
    }

    /// Devices of the current epoch.
    pub fn devices(&self) -> impl Iterator<Item = &(AccountId, DeviceId)> {
        self.leaves.values()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogEntry {
    pub kind: EntryKind,
    pub epoch: u64,
    pub sender: AccountId,
    pub stored_ms: u64,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Welcome {
    pub group: GroupId,
    pub commit_seq: u64,
    pub welcome: Vec<u8>,
}

/// A guest account: made with a meeting's link, only for that meeting.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Guest {
    pub group: GroupId,
    /// Sign-in is refused after this (milliseconds since the Unix epoch).
    pub until_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invite {
    /// None: a node invite (admits to the node only).
    pub group: Option<GroupId>,
    pub secret_hash: [u8; 32],
    pub created_by: Option<AccountId>,
    pub created_ms: u64,
    pub expires_ms: Option<u64>,
    pub max_uses: Option<u32>,
    pub uses: u32,
    /// Accounts registered with this (chat) invite; at most `max_uses`.
    pub registrations: u32,
    pub revoked: bool,
    /// Whoever registers with it becomes a node admin.
    pub grants_admin: bool,
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).unwrap_or_default()
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    postcard::from_bytes(bytes).map_err(|e| {
        tracing::error!(error = %e, "corrupt record in database");
        ApiError::new(ErrorCode::Internal, "corrupt record in the node's database")
    })
}

/// A link with another node (or a request for one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub name: String,
    /// Multiaddrs to reach it, without the `/p2p/` part.
    pub addrs: Vec<String>,
    /// Our admin approved (or a shared community secret did).
    pub we_approved: bool,
    /// The other node's admin approved (it asked us, or answered `Linked`).
    pub they_approved: bool,
    pub created_ms: u64,
    pub last_seen_ms: u64,
}

/// An account that lives on another node, as far as this node knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteAccount {
    /// Peer id of its home node.
    pub home: String,
    pub display_name: String,
}

/// Reads and decodes one record.
pub fn get<'k, K, T, Tbl>(table: &Tbl, key: impl std::borrow::Borrow<K::SelfType<'k>>) -> Result<Option<T>, ApiError>
where
    K: redb::Key + 'static,
    T: DeserializeOwned,
    Tbl: redb::ReadableTable<K, &'static [u8]>,
{
    match table.get(key).map_err(crate::service::internal)? {
        Some(bytes) => Ok(Some(decode(bytes.value())?)),
        None => Ok(None),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
