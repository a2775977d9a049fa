//! The device-side MLS client: one device key, its groups, and the journaled store.
//!
//! # Calling order
//!
//! Every public operation either succeeds, leaving its writes in the journal, or fails and
//! leaves the client exactly as before the call. After a success the caller calls
//! [`Client::take_changes`] and writes the [`Changes`] in the same database transaction as
//! its own data. If that transaction fails, the caller calls [`Client::rollback`], which
//! returns the client to the last persisted state. The client does no IO.

use std::collections::{BTreeMap, BTreeSet};

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{
    GroupId as MlsGroupId, KeyPackage, MlsGroup, MlsGroupJoinConfig, MlsMessageOut, PURE_PLAINTEXT_WIRE_FORMAT_POLICY,
    SenderRatchetConfiguration,
};
use openmls_traits::OpenMlsProvider;
use serde::{Deserialize, Serialize};
use veche_protocol::ids::{AccountId, DeviceId, GroupId, Role};

use crate::CIPHERSUITE;
use crate::error::{ClientError, MlsFailure, OpenError};
use crate::identity::{DeviceKey, MemberIdentity, device_id};
use crate::policy::{GroupPolicy, leaf_capabilities};
use crate::storage::{Changes, Snapshot, Store};

/// Key of our own metadata inside the MLS state (openmls' keys start with its labels).
const META_KEY: &[u8] = b"veche/meta";
const META_FORMAT: u8 = 1;
/// How many past epochs' message secrets are kept, to decrypt late application messages.
pub const MAX_PAST_EPOCHS: usize = 3;
/// Out-of-order tolerance and maximum forward distance of the per-sender ratchets.
pub const OUT_OF_ORDER_TOLERANCE: u32 = 32;
pub const MAXIMUM_FORWARD_DISTANCE: u32 = 1000;

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    format: u8,
    account: AccountId,
    device: DeviceId,
    groups: BTreeSet<GroupId>,
}

/// A device's MLS client. See the module documentation for the calling order.
pub struct Client {
    pub(crate) store: Store,
    pub(crate) key: DeviceKey,
    pub(crate) groups: BTreeMap<GroupId, MlsGroup>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("identity", &self.key.identity)
            .field("groups", &self.groups.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Client {
    /// A fresh random device secret (store it yourself; it is never part of [`Changes`]).
    pub fn generate_secret() -> [u8; 32] {
        crate::identity::generate_secret()
    }

    /// A new client for an account's first device (account id = device id), with no state.
    pub fn new(secret: [u8; 32]) -> Self {
        Self::fresh(DeviceKey::new(&secret, None), Store::new())
    }

    /// A new client for a device of an existing account (multi-device, later).
    pub fn new_for_account(secret: [u8; 32], account: AccountId) -> Self {
        Self::fresh(DeviceKey::new(&secret, Some(account)), Store::new())
    }

    fn fresh(key: DeviceKey, store: Store) -> Self {
        let mut client = Self { store, key, groups: BTreeMap::new() };
        client.save_meta();
        client.store.commit();
        client
    }

    /// Opens a client from its persisted state. An empty snapshot gives a new first-device
    /// client.
    pub fn open(secret: [u8; 32], snapshot: Snapshot) -> Result<Self, OpenError> {
        let store = Store::from_snapshot(snapshot);
        let Some(raw) = store.get_raw(META_KEY) else {
            return Ok(Self::fresh(DeviceKey::new(&secret, None), store));
        };
        let meta: Meta = postcard::from_bytes(&raw).map_err(|_| OpenError::BadMetadata)?;
        if meta.format != META_FORMAT {
            return Err(OpenError::BadMetadata);
        }
        if meta.device != device_id(&secret) {
            return Err(OpenError::WrongDevice);
        }
        let key = DeviceKey::new(&secret, Some(meta.account));
        let mut groups = BTreeMap::new();
        for group in meta.groups {
            let loaded = MlsGroup::load(store.storage(), &mls_group_id(group))
                .map_err(|e| OpenError::LoadGroup { group, reason: e.to_string() })?
                .ok_or(OpenError::LoadGroup { group, reason: "missing from storage".into() })?;
            groups.insert(group, loaded);
        }
        Ok(Self { store, key, groups })
    }

    /// This device's identity.
    pub fn identity(&self) -> MemberIdentity {
        self.key.identity
    }

    /// Everything that changed since the last call, to persist in one transaction together
    /// with the caller's own data.
    pub fn take_changes(&mut self) -> Changes {
        self.store.take_changes()
    }

    /// Returns to the last persisted state (call it when persisting the changes failed).
    pub fn rollback(&mut self) {
        self.store.rollback();
        self.reload();
    }

    /// Runs one operation: keeps its writes on success, undoes them on failure.
    pub(crate) fn atomic<T, E>(&mut self, op: impl FnOnce(&mut Self) -> Result<T, E>) -> Result<T, E> {
        match op(self) {
            Ok(value) => {
                self.store.commit();
                Ok(value)
            }
            Err(err) => {
                self.store.abort();
                self.reload();
                Err(err)
            }
        }
    }

    /// Rebuilds the in-memory groups from the live store (after it was restored).
    fn reload(&mut self) {
        let groups = self
            .store
            .get_raw(META_KEY)
            .and_then(|raw| postcard::from_bytes::<Meta>(&raw).ok())
            .map(|meta| meta.groups)
            .unwrap_or_default();
        self.groups.clear();
        for group in groups {
            // The store was restored to a state in which every listed group loaded.
            if let Ok(Some(loaded)) = MlsGroup::load(self.store.storage(), &mls_group_id(group)) {
                self.groups.insert(group, loaded);
            }
        }
    }

    pub(crate) fn save_meta(&self) {
        let meta = Meta {
            format: META_FORMAT,
            account: self.key.identity.account,
            device: self.key.identity.device,
            groups: self.groups.keys().copied().collect(),
        };
        self.store.put_raw(META_KEY, postcard::to_allocvec(&meta).unwrap_or_default());
    }

    /// `n` fresh KeyPackages (TLS-serialized MLSMessages) for others to add this device.
    pub fn key_packages(&mut self, n: usize) -> Result<Vec<Vec<u8>>, ClientError> {
        self.atomic(|c| (0..n).map(|_| c.build_key_package(false)).collect())
    }

    /// A last-resort KeyPackage, reusable when the node has run out of fresh ones.
    pub fn last_resort_key_package(&mut self) -> Result<Vec<u8>, ClientError> {
        self.atomic(|c| c.build_key_package(true))
    }

    fn build_key_package(&self, last_resort: bool) -> Result<Vec<u8>, ClientError> {
        let mut builder = KeyPackage::builder().leaf_node_capabilities(leaf_capabilities());
        if last_resort {
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(CIPHERSUITE, &self.store, &self.key.signer, self.key.credential_with_key())
            .map_err(|e| MlsFailure::new("key package", e))?;
        serialize(MlsMessageOut::from(bundle.key_package().clone()))
    }

    /// The groups this device knows, including those it was removed from.
    pub fn groups(&self) -> Vec<GroupId> {
        self.groups.keys().copied().collect()
    }

    /// Whether we are still a member of the group (false after we were removed).
    pub fn is_active(&self, group: GroupId) -> bool {
        self.groups.get(&group).is_some_and(MlsGroup::is_active)
    }

    pub(crate) fn group(&self, group: GroupId) -> Result<&MlsGroup, ClientError> {
        self.groups.get(&group).ok_or(ClientError::UnknownGroup(group))
    }

    /// The group's current epoch.
    pub fn epoch(&self, group: GroupId) -> Result<u64, ClientError> {
        Ok(self.group(group)?.epoch().as_u64())
    }

    /// The group's policy as of the current epoch.
    pub fn policy(&self, group: GroupId) -> Result<GroupPolicy, ClientError> {
        Ok(GroupPolicy::from_extensions(self.group(group)?.extensions())?)
    }

    /// Every leaf of the group with its role.
    pub fn members(&self, group: GroupId) -> Result<Vec<(MemberIdentity, Role)>, ClientError> {
        let policy = self.policy(group)?;
        let mut members = Vec::new();
        for member in self.group(group)?.members() {
            let identity = MemberIdentity::from_leaf(&member.credential, &member.signature_key)?;
            members.push((identity, policy.role(&identity.account)));
        }
        Ok(members)
    }

    /// A fresh signed GroupInfo with the ratchet tree and external public key, to publish for
    /// external joins.
    pub fn group_info(&self, group: GroupId) -> Result<Vec<u8>, ClientError> {
        let mls = self.group(group)?;
        if !mls.is_active() {
            return Err(ClientError::NotActive(group));
        }
        let info = mls
            .export_group_info(self.store.crypto(), &self.key.signer, true)
            .map_err(|e| MlsFailure::new("export group info", e))?;
        serialize(info)
    }

    /// Encrypts an application message (a PrivateMessage) for the group's current epoch.
    pub fn encrypt(&mut self, group: GroupId, plaintext: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.atomic(|c| {
            let Client { store, key, groups } = c;
            let mls = groups.get_mut(&group).ok_or(ClientError::UnknownGroup(group))?;
            if !mls.is_active() {
                return Err(ClientError::NotActive(group));
            }
            let message =
                mls.create_message(store, &key.signer, plaintext).map_err(|e| MlsFailure::new("encrypt", e))?;
            serialize(message)
        })
    }
}

/// The openmls group id of a Veche group.
pub(crate) fn mls_group_id(group: GroupId) -> MlsGroupId {
    MlsGroupId::from_slice(&group.0)
}

/// The Veche group id of an openmls group id, if it has the right length.
pub(crate) fn veche_group_id(group: &MlsGroupId) -> Option<GroupId> {
    GroupId::from_slice(group.as_slice())
}

/// The join configuration of every Veche group: handshakes as PublicMessage (incoming ones must
/// be too, so the home node can police every handshake), application messages encrypted,
/// ratchet tree in GroupInfo, a few past epochs kept.
pub(crate) fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(OUT_OF_ORDER_TOLERANCE, MAXIMUM_FORWARD_DISTANCE))
        .build()
}

pub(crate) fn serialize(message: MlsMessageOut) -> Result<Vec<u8>, ClientError> {
    message.tls_serialize_detached().map_err(|e| ClientError::Mls(MlsFailure::new("serialize", e)))
}
