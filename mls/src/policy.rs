//! Group policy: chat kind and roles, carried in the group itself as a GroupContext extension,
//! and the rules every device applies to every commit.
//!
//! The policy extension (type [`POLICY_EXTENSION`], private-use range) is listed in the group's
//! RequiredCapabilities, so every leaf must advertise it and every member sees the same policy
//! in every epoch. It can only change through a GroupContextExtensions proposal, and only an
//! Owner may send one (see `check_commit`).

use std::collections::{BTreeMap, BTreeSet};

use openmls::prelude::{
    Capabilities, CredentialType, Extension, ExtensionType, Extensions, GroupContext, RequiredCapabilitiesExtension,
    UnknownExtension,
};
use serde::{Deserialize, Serialize};
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, Role};

use crate::CIPHERSUITE;
use crate::identity::MemberIdentity;

/// Extension type of the policy extension (private-use range of RFC 9420 §17.3).
pub const POLICY_EXTENSION: u16 = 0xF7A0;
/// Version byte in front of the encoded policy.
const POLICY_FORMAT: u8 = 1;
/// A direct chat has at most this many leaves.
pub const DIRECT_MAX_MEMBERS: usize = 2;

/// The group's kind and the roles of its accounts. Accounts not listed are [`Role::Member`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPolicy {
    pub kind: ChatKind,
    pub roles: BTreeMap<AccountId, Role>,
}

/// The policy extension is missing or cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyDecodeError {
    #[error("group has no policy extension")]
    Missing,
    #[error("policy extension is malformed")]
    Malformed,
    #[error("unknown policy format {0}")]
    UnknownFormat(u8),
}

impl GroupPolicy {
    /// A new group's policy: the creator is its only Owner.
    pub fn new(kind: ChatKind, owner: AccountId) -> Self {
        Self { kind, roles: BTreeMap::from([(owner, Role::Owner)]) }
    }

    /// The role of an account (Member if not listed).
    pub fn role(&self, account: &AccountId) -> Role {
        self.roles.get(account).copied().unwrap_or(Role::Member)
    }

    /// Sets a role, keeping the map canonical (Members are not listed).
    pub fn set(&mut self, account: AccountId, role: Role) {
        if role == Role::Member {
            self.roles.remove(&account);
        } else {
            self.roles.insert(account, role);
        }
    }

    /// The accounts holding the Owner role.
    pub fn owners(&self) -> impl Iterator<Item = &AccountId> {
        self.roles.iter().filter(|(_, r)| **r == Role::Owner).map(|(a, _)| a)
    }

    /// Canonical bytes: a format byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![POLICY_FORMAT];
        // Encoding a BTreeMap of fixed-size keys and unit enums into a Vec cannot fail.
        out.extend(postcard::to_allocvec(self).unwrap_or_default());
        out
    }

    /// Parses [`Self::encode`]'s output, rejecting trailing bytes and non-canonical maps.
    pub fn decode(bytes: &[u8]) -> Result<Self, PolicyDecodeError> {
        let (&format, body) = bytes.split_first().ok_or(PolicyDecodeError::Malformed)?;
        if format != POLICY_FORMAT {
            return Err(PolicyDecodeError::UnknownFormat(format));
        }
        let (policy, rest): (Self, _) = postcard::take_from_bytes(body).map_err(|_| PolicyDecodeError::Malformed)?;
        if !rest.is_empty() || policy.roles.values().any(|r| *r == Role::Member) || policy.encode() != bytes {
            return Err(PolicyDecodeError::Malformed);
        }
        Ok(policy)
    }

    /// Reads the policy from a group's (or GroupInfo's) extensions.
    pub fn from_extensions<T>(extensions: &Extensions<T>) -> Result<Self, PolicyDecodeError> {
        let ext = extensions.unknown(POLICY_EXTENSION).ok_or(PolicyDecodeError::Missing)?;
        Self::decode(&ext.0)
    }

    /// The policy as an openmls extension.
    pub fn to_extension(&self) -> Extension {
        Extension::Unknown(POLICY_EXTENSION, UnknownExtension(self.encode()))
    }
}

/// The RequiredCapabilities extension every Veche group carries.
pub(crate) fn required_capabilities() -> RequiredCapabilitiesExtension {
    RequiredCapabilitiesExtension::new(&[ExtensionType::Unknown(POLICY_EXTENSION)], &[], &[CredentialType::Basic])
}

/// The capabilities every Veche leaf and KeyPackage advertises.
pub(crate) fn leaf_capabilities() -> Capabilities {
    Capabilities::new(
        None,
        Some(&[CIPHERSUITE]),
        Some(&[ExtensionType::Unknown(POLICY_EXTENSION), ExtensionType::LastResort]),
        None,
        Some(&[CredentialType::Basic]),
    )
}

/// The full GroupContext extensions for a policy.
pub(crate) fn group_context_extensions(policy: &GroupPolicy) -> Result<Extensions<GroupContext>, String> {
    Extensions::from_vec(vec![Extension::RequiredCapabilities(required_capabilities()), policy.to_extension()])
        .map_err(|e| e.to_string())
}

/// Why a commit or proposal is refused by the group policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error("{0:?} may not add members")]
    AddNotAllowed(Role),
    #[error("{actor:?} may not remove a {target:?}")]
    RemoveNotAllowed { actor: Role, target: Role },
    #[error("only the Owner may change the group's extensions")]
    ExtensionsNotAllowed,
    #[error("the policy extension is missing or malformed after the commit")]
    BadPolicy,
    #[error("the commit changes the chat kind")]
    KindChanged,
    #[error("the commit changes extensions other than the policy")]
    OtherExtensionsChanged,
    #[error("the group must have exactly one Owner, and the Owner must stay a member")]
    OwnerRule,
    #[error("a direct chat has at most two members")]
    DirectTooLarge,
    #[error("direct chats cannot be joined from outside")]
    DirectExternalJoin,
    #[error("an external commit may only add the joiner itself")]
    ExternalCommitTooBroad,
    #[error("an external joiner cannot claim an account that holds a role")]
    ExternalJoinPrivileged,
    #[error("only the Owner may add a device of an account that holds a role")]
    AddPrivilegedAccount,
    #[error("proposal type {0} is not allowed")]
    UnsupportedProposal(u16),
    #[error("proposals from outside the group are not allowed")]
    ExternalSender,
    #[error("a leaf carries an invalid identity: {0}")]
    BadIdentity(#[from] crate::identity::IdentityError),
    #[error("a member's update changes its identity")]
    IdentityChanged,
    #[error("unknown leaf {0}")]
    UnknownLeaf(u32),
}

/// Who sent a proposal or commit, resolved against the tree before the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Actor {
    Member(u32),
    /// The joiner of an external commit (identity from its update path).
    Joiner,
    /// An external sender or an external-proposal sender: never allowed.
    Outsider,
}

/// One proposal covered by a commit, reduced to what the policy looks at.
#[derive(Debug, Clone)]
pub(crate) enum ProposalView {
    Add(Result<MemberIdentity, crate::identity::IdentityError>),
    Remove { leaf: u32 },
    SelfRemove,
    Update(Result<MemberIdentity, crate::identity::IdentityError>),
    GroupContextExtensions,
    ExternalInit,
    Other(u16),
}

/// A commit, reduced to what the policy looks at.
#[derive(Debug, Clone)]
pub(crate) struct CommitView {
    pub committer: Actor,
    /// Identity in the committer's new leaf (update path), if the commit has a path.
    pub path_identity: Option<Result<MemberIdentity, crate::identity::IdentityError>>,
    pub proposals: Vec<(Actor, ProposalView)>,
    /// Leaves before the commit.
    pub members_before: BTreeMap<u32, MemberIdentity>,
    pub old_policy: GroupPolicy,
    /// The policy extension after the commit (None if missing or malformed).
    pub new_policy: Option<GroupPolicy>,
    /// Whether the non-policy GroupContext extensions stay identical.
    pub other_extensions_unchanged: bool,
}

/// What an accepted commit does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CommitEffect {
    pub joiner: Option<MemberIdentity>,
    pub added: Vec<MemberIdentity>,
    pub removed: Vec<MemberIdentity>,
    pub roles_changed: bool,
}

/// Applies the role policy to a commit. Pure: the same function runs before our own commits
/// leave the device and on every received commit before it is merged.
pub(crate) fn check_commit(view: &CommitView) -> Result<CommitEffect, PolicyViolation> {
    let old = &view.old_policy;
    let external = view.committer == Actor::Joiner;
    let joiner = match (&view.path_identity, external) {
        (Some(id), true) => Some(id.clone()?),
        (None, true) => return Err(PolicyViolation::ExternalCommitTooBroad),
        (Some(id), false) => {
            // A member's new leaf must keep the identity of its old leaf.
            let id = id.clone()?;
            if let Actor::Member(leaf) = view.committer {
                let before = view.members_before.get(&leaf).ok_or(PolicyViolation::UnknownLeaf(leaf))?;
                if *before != id {
                    return Err(PolicyViolation::IdentityChanged);
                }
            }
            None
        }
        (None, false) => None,
    };
    if matches!(view.committer, Actor::Outsider) {
        return Err(PolicyViolation::ExternalSender);
    }

    let role_of_actor = |actor: Actor| -> Result<(Role, Option<u32>), PolicyViolation> {
        match actor {
            Actor::Member(leaf) => {
                let id = view.members_before.get(&leaf).ok_or(PolicyViolation::UnknownLeaf(leaf))?;
                Ok((old.role(&id.account), Some(leaf)))
            }
            Actor::Joiner => Ok((Role::Member, None)),
            Actor::Outsider => Err(PolicyViolation::ExternalSender),
        }
    };

    let mut effect = CommitEffect { joiner, ..Default::default() };
    let mut removed_leaves = BTreeSet::new();
    let mut extensions_changed = false;
    let mut resync_of: Option<DeviceId> = None;
    for (actor, proposal) in &view.proposals {
        let (role, actor_leaf) = role_of_actor(*actor)?;
        match proposal {
            ProposalView::Add(identity) => {
                if external || !role.can_manage_members() {
                    return Err(if external {
                        PolicyViolation::ExternalCommitTooBroad
                    } else {
                        PolicyViolation::AddNotAllowed(role)
                    });
                }
                let identity = identity.clone()?;
                // Account ids are not certified yet: only the Owner may add a device that
                // claims an account holding a role.
                if role != Role::Owner && old.role(&identity.account) != Role::Member {
                    return Err(PolicyViolation::AddPrivilegedAccount);
                }
                effect.added.push(identity);
            }
            ProposalView::Remove { leaf } => {
                let target = view.members_before.get(leaf).ok_or(PolicyViolation::UnknownLeaf(*leaf))?;
                let target_role = old.role(&target.account);
                if *actor == Actor::Joiner {
                    // Resync: an external joiner may replace its own device's stale leaf.
                    match &effect.joiner {
                        Some(j) if j.device == target.device => resync_of = Some(target.device),
                        _ => return Err(PolicyViolation::ExternalCommitTooBroad),
                    }
                } else if actor_leaf != Some(*leaf) {
                    let allowed = match role {
                        Role::Owner => true,
                        Role::Admin => target_role == Role::Member,
                        Role::Member => false,
                    };
                    if !allowed {
                        return Err(PolicyViolation::RemoveNotAllowed { actor: role, target: target_role });
                    }
                }
                if removed_leaves.insert(*leaf) {
                    effect.removed.push(*target);
                }
            }
            ProposalView::SelfRemove => {
                let leaf = actor_leaf.ok_or(PolicyViolation::ExternalCommitTooBroad)?;
                let target = view.members_before.get(&leaf).ok_or(PolicyViolation::UnknownLeaf(leaf))?;
                if removed_leaves.insert(leaf) {
                    effect.removed.push(*target);
                }
            }
            ProposalView::Update(identity) => {
                let leaf = actor_leaf.ok_or(PolicyViolation::ExternalCommitTooBroad)?;
                let before = view.members_before.get(&leaf).ok_or(PolicyViolation::UnknownLeaf(leaf))?;
                if identity.clone()? != *before {
                    return Err(PolicyViolation::IdentityChanged);
                }
            }
            ProposalView::GroupContextExtensions => {
                if external || role != Role::Owner {
                    return Err(PolicyViolation::ExtensionsNotAllowed);
                }
                extensions_changed = true;
            }
            ProposalView::ExternalInit => {
                if !external {
                    return Err(PolicyViolation::UnsupportedProposal(6));
                }
            }
            ProposalView::Other(t) => return Err(PolicyViolation::UnsupportedProposal(*t)),
        }
    }

    let new = view.new_policy.as_ref().ok_or(PolicyViolation::BadPolicy)?;
    if new.kind != old.kind {
        return Err(PolicyViolation::KindChanged);
    }
    if !view.other_extensions_unchanged {
        return Err(PolicyViolation::OtherExtensionsChanged);
    }
    if !extensions_changed && new != old {
        return Err(PolicyViolation::ExtensionsNotAllowed);
    }
    effect.roles_changed = new != old;

    // A direct chat is never joined from outside; one of its two members' devices may only
    // replace its own leaf (a resync).
    if external && old.kind == ChatKind::Direct && resync_of.is_none() {
        return Err(PolicyViolation::DirectExternalJoin);
    }
    if let Some(joiner) = &effect.joiner
        && resync_of.is_none()
        && old.role(&joiner.account) != Role::Member
    {
        return Err(PolicyViolation::ExternalJoinPrivileged);
    }

    // The tree after the commit.
    let mut after: Vec<MemberIdentity> =
        view.members_before.iter().filter(|(l, _)| !removed_leaves.contains(l)).map(|(_, id)| *id).collect();
    after.extend(effect.added.iter().copied());
    after.extend(effect.joiner);
    let mut owners = new.owners();
    let owner = owners.next().ok_or(PolicyViolation::OwnerRule)?;
    if owners.next().is_some() || !after.iter().any(|m| m.account == *owner) {
        return Err(PolicyViolation::OwnerRule);
    }
    if new.kind == ChatKind::Direct && after.len() > DIRECT_MAX_MEMBERS {
        return Err(PolicyViolation::DirectTooLarge);
    }
    Ok(effect)
}

/// Checks a standalone proposal before it is stored: members may only propose their own removal.
pub(crate) fn check_proposal(actor: Actor, proposal: &ProposalView) -> Result<(), PolicyViolation> {
    match (actor, proposal) {
        (Actor::Member(sender), ProposalView::Remove { leaf }) if *leaf == sender => Ok(()),
        (Actor::Member(_), ProposalView::SelfRemove) => Ok(()),
        (Actor::Member(_), ProposalView::Remove { .. }) => {
            Err(PolicyViolation::RemoveNotAllowed { actor: Role::Member, target: Role::Member })
        }
        (Actor::Member(_), ProposalView::Add(_)) => Err(PolicyViolation::AddNotAllowed(Role::Member)),
        (Actor::Member(_), ProposalView::GroupContextExtensions) => Err(PolicyViolation::ExtensionsNotAllowed),
        (Actor::Member(_), ProposalView::Update(_)) => Err(PolicyViolation::UnsupportedProposal(2)),
        (Actor::Member(_), ProposalView::ExternalInit) => Err(PolicyViolation::UnsupportedProposal(6)),
        (Actor::Member(_), ProposalView::Other(t)) => Err(PolicyViolation::UnsupportedProposal(*t)),
        _ => Err(PolicyViolation::ExternalSender),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> MemberIdentity {
        MemberIdentity::first_device(DeviceId([n; 32]))
    }

    fn view(committer: Actor, proposals: Vec<(Actor, ProposalView)>) -> CommitView {
        let policy = {
            let mut p = GroupPolicy::new(ChatKind::Group, id(1).account);
            p.set(id(2).account, Role::Admin);
            p
        };
        CommitView {
            committer,
            path_identity: None,
            proposals,
            members_before: BTreeMap::from([(0, id(1)), (1, id(2)), (2, id(3)), (3, id(4))]),
            old_policy: policy.clone(),
            new_policy: Some(policy),
            other_extensions_unchanged: true,
        }
    }

    #[test]
    fn policy_encoding_is_canonical() {
        let mut p = GroupPolicy::new(ChatKind::Direct, id(1).account);
        p.set(id(2).account, Role::Admin);
        assert_eq!(GroupPolicy::decode(&p.encode()).unwrap(), p);
        let mut bytes = p.encode();
        bytes.push(0);
        assert_eq!(GroupPolicy::decode(&bytes), Err(PolicyDecodeError::Malformed));
        assert_eq!(GroupPolicy::decode(&[]), Err(PolicyDecodeError::Malformed));
        assert_eq!(GroupPolicy::decode(&[9, 0]), Err(PolicyDecodeError::UnknownFormat(9)));
    }

    #[test]
    fn roles_gate_removals() {
        // Admin removes a Member: fine. Admin removes the Owner: refused. Member removes: refused.
        let ok = view(Actor::Member(1), vec![(Actor::Member(1), ProposalView::Remove { leaf: 2 })]);
        assert_eq!(check_commit(&ok).unwrap().removed, vec![id(3)]);
        let bad = view(Actor::Member(1), vec![(Actor::Member(1), ProposalView::Remove { leaf: 0 })]);
        assert!(matches!(check_commit(&bad), Err(PolicyViolation::RemoveNotAllowed { .. })));
        let bad = view(Actor::Member(2), vec![(Actor::Member(2), ProposalView::Remove { leaf: 3 })]);
        assert!(matches!(check_commit(&bad), Err(PolicyViolation::RemoveNotAllowed { .. })));
        // A member's own leave, committed by another Member: fine.
        let leave = view(Actor::Member(3), vec![(Actor::Member(2), ProposalView::Remove { leaf: 2 })]);
        assert!(check_commit(&leave).is_ok());
        // The Owner cannot leave without handing over ownership.
        let owner_leaves = view(Actor::Member(3), vec![(Actor::Member(0), ProposalView::Remove { leaf: 0 })]);
        assert_eq!(check_commit(&owner_leaves), Err(PolicyViolation::OwnerRule));
    }

    #[test]
    fn external_commits_add_only_the_joiner() {
        let mut v = view(Actor::Joiner, vec![(Actor::Joiner, ProposalView::ExternalInit)]);
        v.path_identity = Some(Ok(id(9)));
        assert_eq!(check_commit(&v).unwrap().joiner, Some(id(9)));
        let mut add = v.clone();
        add.proposals.push((Actor::Joiner, ProposalView::Add(Ok(id(8)))));
        assert_eq!(check_commit(&add), Err(PolicyViolation::ExternalCommitTooBroad));
        let mut remove = v.clone();
        remove.proposals.push((Actor::Joiner, ProposalView::Remove { leaf: 2 }));
        assert_eq!(check_commit(&remove), Err(PolicyViolation::ExternalCommitTooBroad));
        let mut admin = v.clone();
        admin.path_identity = Some(Ok(MemberIdentity { account: id(2).account, device: DeviceId([7; 32]) }));
        assert_eq!(check_commit(&admin), Err(PolicyViolation::ExternalJoinPrivileged));
        let mut direct = v.clone();
        direct.old_policy.kind = ChatKind::Direct;
        direct.new_policy.as_mut().unwrap().kind = ChatKind::Direct;
        assert_eq!(check_commit(&direct), Err(PolicyViolation::DirectExternalJoin));
        // A member's device replacing its own leaf (a resync), in a group and in a direct chat.
        let mut resync = v;
        resync.path_identity = Some(Ok(id(3)));
        resync.proposals.push((Actor::Joiner, ProposalView::Remove { leaf: 2 }));
        assert_eq!(check_commit(&resync).unwrap().removed, vec![id(3)]);
        resync.old_policy.kind = ChatKind::Direct;
        resync.new_policy.as_mut().unwrap().kind = ChatKind::Direct;
        resync.members_before.retain(|leaf, _| *leaf == 0 || *leaf == 2);
        assert!(check_commit(&resync).is_ok(), "{:?}", check_commit(&resync));
    }

    #[test]
    fn admins_cannot_add_devices_of_privileged_accounts() {
        let fake_owner = MemberIdentity { account: id(1).account, device: DeviceId([9; 32]) };
        let by_admin = view(Actor::Member(1), vec![(Actor::Member(1), ProposalView::Add(Ok(fake_owner)))]);
        assert_eq!(check_commit(&by_admin), Err(PolicyViolation::AddPrivilegedAccount));
        let by_admin = view(Actor::Member(1), vec![(Actor::Member(1), ProposalView::Add(Ok(id(9))))]);
        assert_eq!(check_commit(&by_admin).unwrap().added, vec![id(9)]);
        let second_admin_device = MemberIdentity { account: id(2).account, device: DeviceId([9; 32]) };
        let by_owner = view(Actor::Member(0), vec![(Actor::Member(0), ProposalView::Add(Ok(second_admin_device)))]);
        assert!(check_commit(&by_owner).is_ok());
    }

    #[test]
    fn only_the_owner_changes_roles() {
        let mut v = view(Actor::Member(1), vec![(Actor::Member(1), ProposalView::GroupContextExtensions)]);
        let mut changed = v.old_policy.clone();
        changed.set(id(3).account, Role::Admin);
        v.new_policy = Some(changed);
        assert_eq!(check_commit(&v), Err(PolicyViolation::ExtensionsNotAllowed));
        v.committer = Actor::Member(0);
        v.proposals = vec![(Actor::Member(0), ProposalView::GroupContextExtensions)];
        assert!(check_commit(&v).unwrap().roles_changed);
        let mut two_owners = v.clone();
        two_owners.new_policy.as_mut().unwrap().set(id(3).account, Role::Owner);
        assert_eq!(check_commit(&two_owners), Err(PolicyViolation::OwnerRule));
    }
}
