//! What nodes say to each other over libp2p (no IO here).
//!
//! Linking: a link between two nodes exists once both admins approved it. Each side asks the
//! other with [`LinkMessage::Request`] when its admin approves. On a LAN, nodes that share a
//! community secret link without their admins, by a password-authenticated key exchange
//! (SPAKE2, bound to both peer ids) so that neither side ever sends anything a node without the
//! secret could test guesses against offline: the request carries the asker's SPAKE2 message
//! (`pake`); the receiver answers [`LinkReply::Pake`] with its own message and a confirmation
//! made with the agreed key; the asker checks it and sends [`LinkMessage::Confirm`] with its own
//! confirmation, which the receiver checks before answering [`LinkReply::Linked`] (both sides
//! approved at once). A node with another secret (or none) gets one online guess per exchange
//! and learns only that it failed. A request with `pake` never counts as an admin's approval.

use serde::{Deserialize, Serialize};

/// libp2p request-response protocol of [`LinkMessage`] / [`LinkReply`].
pub const LINK_PROTOCOL: &str = "/veche/link/2";
/// Largest link message either side accepts, in bytes.
pub const MAX_LINK_MESSAGE_BYTES: usize = 4 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkMessage {
    /// "My admin approved a link with you" (no `pake`), or "let us check that we share a
    /// community secret" (`pake`: the asker's SPAKE2 message, side A, see the node's federation
    /// service).
    Request { name: String, http_port: u16, pake: Option<Vec<u8>> },
    /// The asker's key confirmation, after the receiver's [`LinkReply::Pake`] checked out.
    Confirm { mac: Vec<u8> },
    /// "My admin removed the link."
    Unlink,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkReply {
    /// Both sides approved: the link is up.
    Linked,
    /// Recorded; this side's admin has not approved yet.
    Pending,
    /// Unlinked (answer to [`LinkMessage::Unlink`]).
    Unlinked,
    /// Refused, with a reason for the other admin.
    Refused(String),
    /// The receiver's SPAKE2 message (side B) and its key confirmation: the asker answers with
    /// [`LinkMessage::Confirm`] if the confirmation checks out.
    Pake { message: Vec<u8>, confirm: Vec<u8> },
}

// ---------------------------------------------------------------------------------------------
// Chats across nodes.
//
// A chat lives on its home node (where it was created), which orders every entry. A member node
// (home of some member accounts) keeps a replica: the same log with the same sequence numbers,
// pulled from the home node, from which its own devices fetch. Devices on a member node submit
// (send, commit, join, ...) through their node, which forwards the request to the home node and
// answers with the home node's answer. See spec/federation.md.

/// libp2p request-response protocol of [`FedRequest`] / [`FedReply`] (postcard, length-prefixed).
pub const FED_PROTOCOL: &str = "/veche/fed/1";
/// Largest federation message either side accepts, in bytes (a page of entries is at most
/// 4 MiB of payloads plus their framing and the chat's state).
pub const MAX_FED_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// Most entries one [`FedReply::Entries`] carries.
pub const MAX_PULL_ENTRIES: usize = 1000;
/// Most messages one [`FedRequest::ForwardSends`] carries (32 of the largest MLS messages are
/// 4 MiB, half of [`MAX_FED_MESSAGE_BYTES`]).
pub const MAX_FORWARD_SENDS: usize = 32;
/// Most accounts one [`FedRequest::Locate`] asks about: as many as one chat's page of members
/// usually names, and the answer (an id, a display name and a 64-byte home binding each: under
/// 400 KiB) stays far below [`MAX_FED_MESSAGE_BYTES`].
pub const MAX_LOCATE: usize = 1000;

use crate::ids::{AccountId, ChatKind, DeviceId, GroupId, Retention, Role};
use crate::wire::{ApiError, EntryKind, Request, Response};

/// A member's global address: the account and the node it lives on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddress {
    pub account: AccountId,
    /// Peer id of the member's home node.
    pub home: String,
    pub display_name: String,
}

/// What one node asks another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FedRequest {
    /// A device of the sending node makes `request` in a chat (or with an invite) of the
    /// receiving node. The sender vouches for the device; the receiver checks that the account
    /// lives on the sender. `homes`: addresses of accounts the request adds to a chat.
    Forward {
        account: AccountId,
        device: DeviceId,
        display_name: String,
        homes: Vec<MemberAddress>,
        request: Box<Request>,
    },
    /// Consecutive messages a device of the sending node sends to chat `group` of the receiving
    /// node, stored in this order (1..=[`MAX_FORWARD_SENDS`]). Answered with
    /// [`FedReply::Stored`], one result per message. Checked like [`FedRequest::Forward`].
    ForwardSends { account: AccountId, device: DeviceId, display_name: String, group: GroupId, messages: Vec<Vec<u8>> },
    /// Entries of a chat homed at the receiver after `after`; `None`: from where the sender's
    /// members start (a new replica).
    Pull { group: GroupId, after: Option<u64> },
    /// "Chat `group`, homed here, has entries up to `head`": pull them.
    Notify { group: GroupId, head: u64 },
    /// One key package of every device of an account that lives on the receiver.
    ClaimKeyPackages { account: AccountId },
    /// The receiver's own open accounts and open groups (never another node's, never closed ones).
    Directory,
    /// "Which of these accounts live on you?" (at most [`MAX_LOCATE`]). Answered with
    /// [`FedReply::Located`]: the receiver's own accounts among them, never another node's. A node
    /// learns where an account lives only this way, from the home node itself: it asks every
    /// linked node and believes a home only if exactly one answers with the account's signed home
    /// binding naming the answering node ([`LocatedAccount::home_signature`]).
    Locate { accounts: Vec<AccountId> },
}

/// The answer to a [`FedRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FedReply {
    /// The home node's answer to a forwarded request.
    Response(Result<Response, ApiError>),
    Entries(Box<ChatReplica>),
    KeyPackages {
        member: MemberAddress,
        packages: Vec<Vec<u8>>,
    },
    Ok,
    /// Refused (not linked, unknown chat, rate limited, ...).
    Refused(ApiError),
    Directory(Directory),
    /// The home node's answer to [`FedRequest::ForwardSends`]: each message's sequence number or
    /// why it was refused, in the order sent.
    Stored(Vec<Result<u64, ApiError>>),
    /// The answer to [`FedRequest::Locate`]: the asked accounts that live on the answering node,
    /// with their display names and signed home bindings.
    Located(Vec<LocatedAccount>),
}

/// One account in a [`FedReply::Located`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedAccount {
    pub account: AccountId,
    pub display_name: String,
    /// The account key's signature over [`crate::auth::home_payload`]`(account, answering node's
    /// peer id)`; `None` for an account whose first device has not sent one yet
    /// ([`crate::wire::Request::BindHome`]). The asking node believes the answer only with it.
    pub home_signature: Option<Vec<u8>>,
}

/// A node's own open accounts and open groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    pub accounts: Vec<(AccountId, String)>,
    pub groups: Vec<OpenGroup>,
}

/// An open group, as its home node lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenGroup {
    pub group: GroupId,
    pub name: String,
    pub description: String,
    pub member_count: u32,
}

/// A page of a chat's log for a member node, with the chat's current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatReplica {
    pub state: ReplicaState,
    /// Addresses of the chat's members (and of former members named in `state.removed_at`).
    pub members: Vec<MemberAddress>,
    /// Consecutive entries, oldest first.
    pub entries: Vec<ReplicatedEntry>,
    /// The last sequence number the member node may read (the home's head, or where its last
    /// member was removed). More entries follow while the last entry is below it.
    pub upto: u64,
}

/// A chat's state on its home node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    pub kind: ChatKind,
    pub name: String,
    pub description: String,
    pub created_by: AccountId,
    pub created_ms: u64,
    pub retention: Retention,
    pub epoch: u64,
    pub head: u64,
    pub roster: Vec<(AccountId, Role)>,
    pub leaves: Vec<(u32, AccountId, DeviceId)>,
    pub removed_at: Vec<(AccountId, u64)>,
    pub peer: Option<AccountId>,
}

/// One log entry as the home node stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicatedEntry {
    pub seq: u64,
    pub kind: EntryKind,
    pub epoch: u64,
    pub sender: AccountId,
    pub stored_ms: u64,
    pub payload: Vec<u8>,
    /// For commits: who they added and removed, and the Welcome of the added.
    pub commit: Option<CommitEffect>,
}

/// What a commit changed in the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitEffect {
    pub added: Vec<(AccountId, DeviceId)>,
    pub removed: Vec<AccountId>,
    pub welcome: Option<Vec<u8>>,
}

/// Encodes a federation message (postcard).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).unwrap_or_default()
}

/// Decodes a federation message; malformed input is an error, never a panic.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fed_messages_round_trip_and_reject_garbage() {
        let request = FedRequest::Pull { group: GroupId([7; 16]), after: Some(41) };
        let bytes = encode(&request);
        assert_eq!(decode::<FedRequest>(&bytes).unwrap(), request);
        assert!(decode::<FedRequest>(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode::<FedRequest>(&bytes[..bytes.len() - 1]).is_err());
    }
}
