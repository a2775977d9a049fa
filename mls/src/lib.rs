//! Veche's MLS layer over openmls.
//!
//! - [`Client`]: a device's groups. Creates and joins groups, adds and removes members, sets
//!   roles, encrypts and processes messages. IO-free: every operation's storage writes are
//!   journaled and handed to the caller with [`Client::take_changes`], to persist in one
//!   transaction (see [`storage`]; with feature `redb`, [`redb_store`]).
//! - [`policy`]: chat kind and roles live in the group as a GroupContext extension; every
//!   device checks every commit against them before merging it.
//! - [`inspect`]: what the home node can check without group secrets.
//!
//! Ciphersuite: [`CIPHERSUITE`] only. Credentials: BasicCredential with the 64-byte
//! [`MemberIdentity`] (account || device), whose device key must be the leaf's signature key.

mod client;
pub mod error;
pub mod identity;
pub mod inspect;
mod membership;
pub mod policy;
mod processing;
#[cfg(feature = "redb")]
pub mod redb_store;
mod review;
pub mod storage;

pub use client::{Client, MAX_PAST_EPOCHS, MAXIMUM_FORWARD_DISTANCE, OUT_OF_ORDER_TOLERANCE};
pub use error::{ClientError, InspectError, MlsFailure, OpenError, ProcessError};
pub use identity::MemberIdentity;
pub use membership::CommitBundle;
pub use policy::{GroupPolicy, PolicyViolation};
pub use processing::{Processed, ProposalKind};
pub use storage::{Changes, Snapshot};

/// The one ciphersuite Veche groups use.
pub const CIPHERSUITE: openmls::prelude::Ciphersuite =
    openmls::prelude::Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
