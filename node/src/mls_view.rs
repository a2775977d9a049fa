//! What the node reads out of MLS messages it cannot decrypt, through `veche_mls::inspect`.
//! Every failure is a `Malformed`/`BadRequest` API error: bytes from devices never panic the node.

use std::collections::BTreeMap;
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId, Role};
use veche_protocol::wire::{ApiError, ErrorCode};

pub use veche_mls::inspect::MessageKind;

/// What the node knows about a message.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub group: GroupId,
    pub epoch: u64,
    pub kind: MessageKind,
    /// Leaf index of a member sender, when the message is a PublicMessage from a member.
    pub sender_leaf: Option<u32>,
    /// Whether the node can read the handshake (PublicMessage).
    pub public: bool,
    /// Devices added by inline Add proposals.
    pub added: Vec<(AccountId, DeviceId)>,
    /// Leaves removed by inline Remove proposals.
    pub removed_leaves: Vec<u32>,
    /// Whether the policy extension changes.
    pub changes_policy: bool,
    /// The roles of the policy the commit's GroupContextExtensions proposal sets, when it has one
    /// and that policy decodes (the last one, if several).
    pub policy_roles: Option<BTreeMap<AccountId, Role>>,
    /// A self-remove (leave) proposal.
    pub self_remove: bool,
    /// For a commit with an update path: whose leaf it installs (an external joiner's own).
    pub path_identity: Option<(AccountId, DeviceId)>,
    /// For a public proposal: its ProposalRef, as commits refer to it.
    pub proposal_ref: Option<Vec<u8>>,
    /// For a commit: the proposals it includes by reference.
    pub references: Vec<Vec<u8>>,
}

/// What the node knows about a GroupInfo: the epoch, the policy and the leaves of the tree.
#[derive(Debug, Clone)]
pub struct GroupInfoView {
    pub group: GroupId,
    pub epoch: u64,
    pub kind: ChatKind,
    pub roles: BTreeMap<AccountId, Role>,
    pub leaves: BTreeMap<u32, (AccountId, DeviceId)>,
}

impl GroupInfoView {
    /// Accounts with their roles (unlisted accounts are members).
    pub fn roster(&self) -> BTreeMap<AccountId, Role> {
        self.leaves
            .values()
            .map(|(account, _)| (*account, self.roles.get(account).copied().unwrap_or(Role::Member)))
            .collect()
    }
}

fn malformed(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Malformed, format!("invalid {what}: {e}"))
}

/// Inspects an MLS message (PublicMessage or PrivateMessage).
pub fn message(bytes: &[u8]) -> Result<MessageView, ApiError> {
    use veche_mls::inspect::{InspectedProposal, InspectedSender, inspect_message};
    let inspected = inspect_message(bytes).map_err(|e| malformed("MLS message", e))?;
    let kind = inspected.kind;
    let sender_leaf = match inspected.sender {
        InspectedSender::Member(leaf) => Some(leaf),
        _ => None,
    };
    let self_remove = inspected.proposals.iter().any(|p| matches!(p, InspectedProposal::SelfRemove))
        || (kind == MessageKind::Proposal
            && sender_leaf.is_some()
            && inspected.removed_leaves() == sender_leaf.into_iter().collect::<Vec<_>>());
    Ok(MessageView {
        group: inspected.group,
        epoch: inspected.epoch,
        kind,
        sender_leaf,
        public: inspected.public,
        added: inspected.added().iter().map(|id| (id.account, id.device)).collect(),
        removed_leaves: inspected.removed_leaves(),
        changes_policy: inspected.changes_extensions(),
        policy_roles: inspected
            .proposals
            .iter()
            .rev()
            .find_map(|p| match p {
                InspectedProposal::GroupContextExtensions { policy } => Some(policy.as_ref().map(|p| p.roles.clone())),
                _ => None,
            })
            .flatten(),
        self_remove,
        path_identity: inspected.path_identity.map(|id| (id.account, id.device)),
        references: inspected
            .proposals
            .iter()
            .filter_map(|p| match p {
                InspectedProposal::Reference(r) => Some(r.clone()),
                _ => None,
            })
            .collect(),
        proposal_ref: inspected.proposal_ref,
    })
}

/// Inspects a GroupInfo.
pub fn group_info(bytes: &[u8]) -> Result<GroupInfoView, ApiError> {
    let summary = veche_mls::inspect::inspect_group_info(bytes).map_err(|e| malformed("GroupInfo", e))?;
    Ok(GroupInfoView {
        group: summary.group,
        epoch: summary.epoch,
        kind: summary.policy.kind,
        roles: summary.policy.roles.clone(),
        leaves: summary.leaves.iter().map(|(leaf, id)| (*leaf, (id.account, id.device))).collect(),
    })
}

/// Validates a key package and returns whose it is.
pub fn key_package(bytes: &[u8]) -> Result<veche_mls::MemberIdentity, ApiError> {
    veche_mls::inspect::inspect_key_package(bytes).map_err(|e| malformed("key package", e))
}

/// Most key packages one claim through a linked node may carry: one per device of the account,
/// and an account has one device until devices can be linked (a few then).
pub const MAX_CLAIMED_PACKAGES: usize = 16;

/// Checks key packages a linked node handed out for `account` before a device sees them: at least
/// one and at most [`MAX_CLAIMED_PACKAGES`], each a valid key package (signed by its leaf's key,
/// our ciphersuite and policy extension) whose credential names `account` and whose device key
/// is the account key. An account's only device is its first, whose key is the account id, so
/// no other node can make such a package; a device added to an account later will need the
/// account key's signature on it before this accepts its packages.
pub fn remote_key_packages(account: AccountId, packages: &[Vec<u8>]) -> Result<(), ApiError> {
    if packages.is_empty() || packages.len() > MAX_CLAIMED_PACKAGES {
        let n = packages.len();
        return Err(ApiError::new(ErrorCode::BadRequest, format!("{n} key packages for one account")));
    }
    for package in packages {
        let identity = key_package(package)?;
        if identity.account != account {
            return Err(ApiError::new(ErrorCode::Forbidden, "a key package of another account"));
        }
        if identity.device.0 != account.0 {
            return Err(ApiError::new(ErrorCode::Forbidden, "a key package of a device the account never signed for"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_key_packages_must_be_the_accounts_own() {
        let mut owner = veche_mls::Client::new(veche_mls::Client::generate_secret());
        let package = owner.key_packages(1).unwrap().remove(0);
        let account = key_package(&package).unwrap().account;
        assert!(remote_key_packages(account, std::slice::from_ref(&package)).is_ok());
        // Another device whose credential names the account: refused.
        let mut rogue = veche_mls::Client::new_for_account(veche_mls::Client::generate_secret(), account);
        let forged = rogue.key_packages(1).unwrap().remove(0);
        assert_eq!(remote_key_packages(account, &[forged]).unwrap_err().code, ErrorCode::Forbidden);
        // The owner's package for another account, none, garbage, too many.
        assert!(remote_key_packages(AccountId([7; 32]), std::slice::from_ref(&package)).is_err());
        assert!(remote_key_packages(account, &[]).is_err());
        assert!(remote_key_packages(account, &[vec![1, 2, 3]]).is_err());
        assert!(remote_key_packages(account, &vec![package; MAX_CLAIMED_PACKAGES + 1]).is_err());
    }
}
