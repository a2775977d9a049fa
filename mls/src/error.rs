//! Error types, one per kind of operation. openmls' own errors are kept as their message
//! (they are generic over the storage error and not all of them are `Clone`).

use veche_protocol::ids::{AccountId, GroupId};

use crate::identity::IdentityError;
use crate::policy::{PolicyDecodeError, PolicyViolation};

/// An openmls call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op} failed: {reason}")]
pub struct MlsFailure {
    pub op: &'static str,
    pub reason: String,
}

impl MlsFailure {
    pub(crate) fn new(op: &'static str, err: impl std::fmt::Display) -> Self {
        Self { op, reason: err.to_string() }
    }
}

/// Opening a [`crate::Client`] from a snapshot failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the snapshot's metadata is malformed")]
    BadMetadata,
    #[error("the snapshot belongs to another device")]
    WrongDevice,
    #[error("group {group} cannot be loaded: {reason}")]
    LoadGroup { group: GroupId, reason: String },
}

/// A local operation on the client (create, add, remove, join, encrypt…) failed. The client's
/// state is as it was before the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("unknown group {0}")]
    UnknownGroup(GroupId),
    #[error("group {0} already exists")]
    GroupExists(GroupId),
    #[error("we are no longer a member of group {0}")]
    NotActive(GroupId),
    #[error("malformed input: {0}")]
    Malformed(&'static str),
    #[error("invalid key package: {0}")]
    InvalidKeyPackage(String),
    #[error("the group uses another ciphersuite")]
    WrongCiphersuite,
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("group policy: {0}")]
    PolicyDecode(#[from] PolicyDecodeError),
    #[error("refused by the group policy: {0}")]
    Policy(#[from] PolicyViolation),
    #[error("account {0} has no device in the group")]
    NotAMember(AccountId),
    #[error("the Owner must hand over ownership before leaving")]
    OwnerCannotLeave,
    #[error("nothing to do")]
    EmptyInput,
    #[error("group {0} has no pending commit")]
    NoPendingCommit(GroupId),
    #[error(transparent)]
    Mls(#[from] MlsFailure),
}

/// An incoming group message was not applied. The client's state is as it was before the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    #[error("unknown group {0}")]
    UnknownGroup(GroupId),
    #[error("we are no longer a member of group {0}")]
    NotActive(GroupId),
    /// A handshake from an epoch we already left (e.g. our own commit echoed after we merged
    /// it, or a commit that lost the race). Safe to skip.
    #[error("message from epoch {message_epoch}, group is at {current_epoch}")]
    Stale { message_epoch: u64, current_epoch: u64 },
    /// The message is from an epoch we have not reached: earlier commits are missing.
    #[error("message from future epoch {message_epoch}, group is at {current_epoch}")]
    FutureEpoch { message_epoch: u64, current_epoch: u64 },
    /// One of our own messages came back. Safe to skip.
    #[error("own message")]
    OwnMessage,
    #[error("refused by the group policy: {0}")]
    Policy(#[from] PolicyViolation),
    #[error("rejected: {0}")]
    Rejected(#[from] MlsFailure),
}

/// Node-side inspection of a message, GroupInfo or KeyPackage failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    #[error("malformed: {0}")]
    Malformed(&'static str),
    #[error("expected {expected}, got another MLS message type")]
    WrongType { expected: &'static str },
    #[error("MLS group id is {0} bytes, expected 16")]
    BadGroupId(usize),
    #[error("ciphersuite {0:#06x} is not the Veche ciphersuite")]
    WrongCiphersuite(u16),
    #[error("invalid key package: {0}")]
    InvalidKeyPackage(String),
    #[error("invalid group info: {0}")]
    InvalidGroupInfo(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("group policy: {0}")]
    Policy(#[from] PolicyDecodeError),
}
