//! Operations that change who is in a group: create, add, remove, roles, leave, and joining.
//!
//! Every commit we create is checked against the group policy with the same function that
//! checks received commits, before it leaves the device. A commit stays pending until the
//! caller reports the node's verdict: [`Client::merge_pending_commit`] when the node accepted
//! it, [`Client::discard_pending_commit`] when it refused it (then fetch, process, retry).

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    CommitBuilder, Extension, Extensions, Initial, LeafNodeParameters, MlsGroup, MlsMessageBodyIn, MlsMessageIn,
    StagedWelcome,
};
use openmls_traits::OpenMlsProvider;
use veche_protocol::ids::{AccountId, ChatKind, GroupId, Role};

use crate::CIPHERSUITE;
use crate::client::{Client, MAX_PAST_EPOCHS, join_config, mls_group_id, serialize, veche_group_id};
use crate::client::{MAXIMUM_FORWARD_DISTANCE, OUT_OF_ORDER_TOLERANCE};
use crate::error::{ClientError, MlsFailure};
use crate::identity::MemberIdentity;
use crate::policy::{
    Actor, DIRECT_MAX_MEMBERS, GroupPolicy, POLICY_EXTENSION, PolicyViolation, check_commit, group_context_extensions,
    leaf_capabilities,
};
use crate::review::{commit_view, members_by_leaf};

/// A commit ready to send to the home node, with what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitBundle {
    /// The Commit (TLS-serialized MLSMessage, a PublicMessage).
    pub commit: Vec<u8>,
    /// The Welcome for added members, if any.
    pub welcome: Option<Vec<u8>>,
    /// The GroupInfo of the epoch the commit creates (with ratchet tree), to publish.
    pub group_info: Vec<u8>,
    /// The epoch the commit was made in (the group moves to `epoch + 1`).
    pub epoch: u64,
    pub added: Vec<MemberIdentity>,
    pub removed: Vec<MemberIdentity>,
}

impl Client {
    /// Creates a group with this device's account as its Owner; returns its first GroupInfo.
    pub fn create_group(&mut self, group: GroupId, kind: ChatKind) -> Result<Vec<u8>, ClientError> {
        self.atomic(|c| {
            if c.groups.contains_key(&group) {
                return Err(ClientError::GroupExists(group));
            }
            let policy = GroupPolicy::new(kind, c.key.identity.account);
            let extensions =
                group_context_extensions(&policy).map_err(|e| MlsFailure { op: "group extensions", reason: e })?;
            let mls = MlsGroup::builder()
                .with_group_id(mls_group_id(group))
                .ciphersuite(CIPHERSUITE)
                .with_wire_format_policy(openmls::prelude::PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
                .use_ratchet_tree_extension(true)
                .max_past_epochs(MAX_PAST_EPOCHS)
                .sender_ratchet_configuration(openmls::prelude::SenderRatchetConfiguration::new(
                    OUT_OF_ORDER_TOLERANCE,
                    MAXIMUM_FORWARD_DISTANCE,
                ))
                .with_capabilities(leaf_capabilities())
                .with_group_context_extensions(extensions)
                .build(&c.store, &c.key.signer, c.key.credential_with_key())
                .map_err(|e| MlsFailure::new("create group", e))?;
            c.groups.insert(group, mls);
            c.save_meta();
            c.group_info(group)
        })
    }

    /// Adds the devices of these KeyPackages (TLS-serialized MLSMessages).
    pub fn add_members(&mut self, group: GroupId, key_packages: &[Vec<u8>]) -> Result<CommitBundle, ClientError> {
        if key_packages.is_empty() {
            return Err(ClientError::EmptyInput);
        }
        self.atomic(|c| {
            let mut parsed = Vec::with_capacity(key_packages.len());
            for bytes in key_packages {
                let (kp, _) = crate::inspect::validate_key_package(c.store.crypto(), bytes)
                    .map_err(|e| ClientError::InvalidKeyPackage(e.to_string()))?;
                parsed.push(kp);
            }
            c.commit(group, |b| Ok(b.propose_adds(parsed)))
        })
    }

    /// Removes every device of these accounts. When the Owner removes an account that holds a
    /// role, the role is dropped in the same commit.
    pub fn remove_members(&mut self, group: GroupId, accounts: &[AccountId]) -> Result<CommitBundle, ClientError> {
        if accounts.is_empty() {
            return Err(ClientError::EmptyInput);
        }
        self.atomic(|c| {
            let mls = c.group(group)?;
            let members = members_by_leaf(mls);
            let mut leaves = Vec::new();
            for account in accounts {
                let found: Vec<_> = members.iter().filter(|(_, id)| id.account == *account).map(|(l, _)| *l).collect();
                if found.is_empty() {
                    return Err(ClientError::NotAMember(*account));
                }
                leaves.extend(found);
            }
            let mut policy = GroupPolicy::from_extensions(mls.extensions())?;
            let we_own = policy.role(&c.key.identity.account) == Role::Owner;
            let roles_before = policy.clone();
            if we_own {
                for account in accounts {
                    if policy.role(account) != Role::Owner {
                        policy.set(*account, Role::Member);
                    }
                }
            }
            let extensions = (policy != roles_before).then(|| replace_policy(mls.extensions(), &policy)).transpose()?;
            c.commit(group, move |b| {
                let b = b.propose_removals(leaves.into_iter().map(openmls::prelude::LeafNodeIndex::new));
                match extensions {
                    Some(ext) => {
                        b.propose_group_context_extensions(ext).map_err(|e| MlsFailure::new("propose", e).into())
                    }
                    None => Ok(b),
                }
            })
        })
    }

    /// Sets an account's role (Owner only). Making someone Owner hands ownership over: the
    /// current Owner becomes Admin.
    pub fn set_role(&mut self, group: GroupId, account: AccountId, role: Role) -> Result<CommitBundle, ClientError> {
        self.atomic(|c| {
            let mls = c.group(group)?;
            let mut policy = GroupPolicy::from_extensions(mls.extensions())?;
            let our_role = policy.role(&c.key.identity.account);
            if our_role != Role::Owner {
                return Err(PolicyViolation::ExtensionsNotAllowed.into());
            }
            if role == Role::Owner {
                if !members_by_leaf(mls).values().any(|m| m.account == account) {
                    return Err(ClientError::NotAMember(account));
                }
                let owners: Vec<_> = policy.owners().copied().collect();
                for owner in owners {
                    policy.set(owner, Role::Admin);
                }
            }
            policy.set(account, role);
            let extensions = replace_policy(mls.extensions(), &policy)?;
            c.commit(group, move |b| {
                b.propose_group_context_extensions(extensions).map_err(|e| MlsFailure::new("propose", e).into())
            })
        })
    }

    /// Proposes our own removal; another member commits it. Returns the proposal to send.
    pub fn leave(&mut self, group: GroupId) -> Result<Vec<u8>, ClientError> {
        self.atomic(|c| {
            let Client { store, key, groups } = c;
            let mls = groups.get_mut(&group).ok_or(ClientError::UnknownGroup(group))?;
            if !mls.is_active() {
                return Err(ClientError::NotActive(group));
            }
            let policy = GroupPolicy::from_extensions(mls.extensions())?;
            let account = key.identity.account;
            let own_leaves = members_by_leaf(mls).values().filter(|m| m.account == account).count();
            if policy.role(&account) == Role::Owner && own_leaves <= 1 {
                return Err(ClientError::OwnerCannotLeave);
            }
            let proposal = mls.leave_group(store, &key.signer).map_err(|e| MlsFailure::new("leave", e))?;
            serialize(proposal)
        })
    }

    /// Commits a fresh leaf key and path secrets for this device: the group moves to a new epoch
    /// whose secrets the device's earlier state never held. A device restored from a backup does
    /// this before sending, so it cannot reuse an encryption key it used after the backup.
    pub fn self_update(&mut self, group: GroupId) -> Result<CommitBundle, ClientError> {
        self.atomic(|c| c.commit(group, |b| Ok(b.force_self_update(true))))
    }

    /// Commits the proposals received and stored so far (e.g. a member's leave), if any.
    pub fn commit_pending_proposals(&mut self, group: GroupId) -> Result<Option<CommitBundle>, ClientError> {
        if !self.group(group)?.has_pending_proposals() {
            return Ok(None);
        }
        self.atomic(|c| c.commit(group, |b| Ok(b)).map(Some))
    }

    /// Applies our pending commit after the node accepted it.
    pub fn merge_pending_commit(&mut self, group: GroupId) -> Result<(), ClientError> {
        self.atomic(|c| {
            let Client { store, groups, .. } = c;
            let mls = groups.get_mut(&group).ok_or(ClientError::UnknownGroup(group))?;
            if mls.pending_commit().is_none() {
                return Err(ClientError::NoPendingCommit(group));
            }
            mls.merge_pending_commit(store).map_err(|e| MlsFailure::new("merge pending commit", e).into())
        })
    }

    /// Drops our pending commit after the node refused it (e.g. someone else's commit won the
    /// epoch). Then fetch and process the missing messages, and retry. A no-op if there is no
    /// pending commit (processing another member's commit for that epoch already dropped it).
    pub fn discard_pending_commit(&mut self, group: GroupId) -> Result<(), ClientError> {
        self.atomic(|c| {
            let Client { store, groups, .. } = c;
            let mls = groups.get_mut(&group).ok_or(ClientError::UnknownGroup(group))?;
            if mls.pending_commit().is_none() {
                return Ok(());
            }
            mls.clear_pending_commit(store.storage()).map_err(|e| MlsFailure::new("clear pending commit", e).into())
        })
    }

    /// Deletes a group's local state (e.g. after we were removed, or when an external join was
    /// refused by the node).
    pub fn forget_group(&mut self, group: GroupId) -> Result<(), ClientError> {
        self.atomic(|c| {
            let mut mls = c.groups.remove(&group).ok_or(ClientError::UnknownGroup(group))?;
            mls.delete(c.store.storage()).map_err(|e| MlsFailure::new("delete group", e))?;
            c.save_meta();
            Ok(())
        })
    }

    /// Joins a group from a Welcome (the ratchet tree comes from the GroupInfo extension).
    pub fn join_from_welcome(&mut self, welcome: &[u8]) -> Result<GroupId, ClientError> {
        self.atomic(|c| {
            let message =
                MlsMessageIn::tls_deserialize_exact(welcome).map_err(|_| ClientError::Malformed("welcome"))?;
            let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
                return Err(ClientError::Malformed("not a welcome"));
            };
            if welcome.ciphersuite() != CIPHERSUITE {
                return Err(ClientError::WrongCiphersuite);
            }
            let mut builder = StagedWelcome::build_from_welcome(&c.store, &join_config(), welcome)
                .map_err(|e| MlsFailure::new("welcome", e))?;
            let group = veche_group_id(builder.processed_welcome().unverified_group_info().group_id())
                .ok_or(ClientError::Malformed("group id length"))?;
            match c.groups.get(&group) {
                Some(existing) if existing.is_active() => {
                    return Err(ClientError::GroupExists(group));
                }
                Some(_) => builder = builder.replace_old_group(),
                None => {}
            }
            let staged = builder.build().map_err(|e| MlsFailure::new("welcome", e))?;
            let policy = GroupPolicy::from_extensions(staged.group_context().extensions())?;
            let mut accounts = Vec::new();
            for member in staged.members() {
                accounts.push(MemberIdentity::from_leaf(&member.credential, &member.signature_key)?.account);
            }
            let owners: Vec<_> = policy.owners().collect();
            if owners.len() != 1 || !accounts.contains(owners[0]) {
                return Err(PolicyViolation::OwnerRule.into());
            }
            if policy.kind == ChatKind::Direct && accounts.len() > DIRECT_MAX_MEMBERS {
                return Err(PolicyViolation::DirectTooLarge.into());
            }
            let mls = staged.into_group(&c.store).map_err(|e| MlsFailure::new("welcome", e))?;
            c.groups.insert(group, mls);
            c.save_meta();
            Ok(group)
        })
    }

    /// Joins a group from its published GroupInfo with an external commit. openmls applies
    /// the commit locally at once; if the node refuses it, call [`Client::rollback`] before
    /// persisting (or [`Client::forget_group`]) and retry with a fresh GroupInfo.
    pub fn join_external(&mut self, group_info: &[u8]) -> Result<(GroupId, CommitBundle), ClientError> {
        self.atomic(|c| {
            let message =
                MlsMessageIn::tls_deserialize_exact(group_info).map_err(|_| ClientError::Malformed("group info"))?;
            let MlsMessageBodyIn::GroupInfo(info) = message.extract() else {
                return Err(ClientError::Malformed("not a group info"));
            };
            if info.ciphersuite() != CIPHERSUITE {
                return Err(ClientError::WrongCiphersuite);
            }
            let group = veche_group_id(info.group_id()).ok_or(ClientError::Malformed("group id length"))?;
            let epoch = info.epoch().as_u64();
            // Refuse early what every member would refuse (the GroupInfo is verified below).
            let policy = GroupPolicy::from_extensions(info.group_context().extensions())?;
            let me = c.key.identity;
            let tree = info.extensions().ratchet_tree().ok_or(ClientError::Malformed("no ratchet tree"))?;
            let resync: Vec<MemberIdentity> = tree
                .ratchet_tree()
                .leaves()
                .filter(|leaf| leaf.signature_key().as_slice() == me.device.0.as_slice())
                .filter_map(|leaf| MemberIdentity::from_leaf(leaf.credential(), leaf.signature_key().as_slice()).ok())
                .collect();
            // Only a device already in a direct chat may rejoin it (replacing its own leaf).
            if resync.is_empty() && policy.kind == ChatKind::Direct {
                return Err(PolicyViolation::DirectExternalJoin.into());
            }
            if resync.is_empty() && policy.role(&me.account) != Role::Member {
                return Err(PolicyViolation::ExternalJoinPrivileged.into());
            }
            if let Some(mut old) = c.groups.remove(&group) {
                old.delete(c.store.storage()).map_err(|e| MlsFailure::new("delete group", e))?;
            }
            let (mls, bundle) = MlsGroup::external_commit_builder()
                .with_config(join_config())
                .build_group(&c.store, info, c.key.credential_with_key())
                .map_err(|e| MlsFailure::new("external commit", e))?
                .leaf_node_parameters(LeafNodeParameters::builder().with_capabilities(leaf_capabilities()).build())
                .load_psks(c.store.storage())
                .map_err(|e| MlsFailure::new("external commit", e))?
                .build(c.store.rand(), c.store.crypto(), &c.key.signer, |_| true)
                .map_err(|e| MlsFailure::new("external commit", e))?
                .finalize(&c.store)
                .map_err(|e| MlsFailure::new("external commit", e))?;
            let (commit, _, info_out) = bundle.into_messages();
            let group_info = match info_out {
                Some(info) => serialize(info)?,
                None => serialize(
                    mls.export_group_info(c.store.crypto(), &c.key.signer, true)
                        .map_err(|e| MlsFailure::new("export group info", e))?,
                )?,
            };
            c.groups.insert(group, mls);
            c.save_meta();
            let bundle = CommitBundle {
                commit: serialize(commit)?,
                welcome: None,
                group_info,
                epoch,
                added: vec![me],
                removed: resync,
            };
            Ok((group, bundle))
        })
    }

    /// Builds, stages and policy-checks one of our commits. Runs inside [`Client::atomic`].
    pub(crate) fn commit(
        &mut self,
        group: GroupId,
        proposals: impl for<'a> FnOnce(CommitBuilder<'a, Initial>) -> Result<CommitBuilder<'a, Initial>, ClientError>,
    ) -> Result<CommitBundle, ClientError> {
        let Client { store, key, groups } = self;
        let mls = groups.get_mut(&group).ok_or(ClientError::UnknownGroup(group))?;
        if !mls.is_active() {
            return Err(ClientError::NotActive(group));
        }
        let epoch = mls.epoch().as_u64();
        let bundle = proposals(mls.commit_builder())?
            .load_psks(store.storage())
            .map_err(|e| MlsFailure::new("commit", e))?
            .build(store.rand(), store.crypto(), &key.signer, |_| true)
            .map_err(|e| MlsFailure::new("commit", e))?
            .stage_commit(store)
            .map_err(|e| MlsFailure::new("commit", e))?;
        let staged = mls.pending_commit().ok_or(ClientError::NoPendingCommit(group))?;
        let view = commit_view(mls, Actor::Member(mls.own_leaf_index().u32()), staged)?;
        let effect = check_commit(&view)?;
        let (commit, welcome, info) = bundle.into_messages();
        let info = info.ok_or(MlsFailure { op: "commit", reason: "no group info".into() })?;
        Ok(CommitBundle {
            commit: serialize(commit)?,
            welcome: welcome.map(serialize).transpose()?,
            group_info: serialize(info)?,
            epoch,
            added: effect.added,
            removed: effect.removed,
        })
    }
}

/// The group's extensions with the policy replaced.
fn replace_policy(
    current: &Extensions<openmls::prelude::GroupContext>,
    policy: &GroupPolicy,
) -> Result<Extensions<openmls::prelude::GroupContext>, ClientError> {
    let extensions: Vec<Extension> = current
        .iter()
        .map(|e| match e {
            Extension::Unknown(POLICY_EXTENSION, _) => policy.to_extension(),
            other => other.clone(),
        })
        .collect();
    Extensions::from_vec(extensions).map_err(|e| MlsFailure::new("group extensions", e).into())
}
