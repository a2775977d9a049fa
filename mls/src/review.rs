//! Reduces openmls' view of a commit or proposal to the [`CommitView`] the policy checks.
//! Used for received commits and, before they leave the device, for our own.

use openmls::prelude::{Extension, Extensions, GroupContext, MlsGroup, Proposal, Sender, StagedCommit};

use crate::identity::MemberIdentity;
use crate::policy::{Actor, CommitView, GroupPolicy, POLICY_EXTENSION, PolicyDecodeError, ProposalView};

pub(crate) fn actor(sender: &Sender) -> Actor {
    match sender {
        Sender::Member(leaf) => Actor::Member(leaf.u32()),
        Sender::NewMemberCommit => Actor::Joiner,
        Sender::External(_) | Sender::NewMemberProposal => Actor::Outsider,
    }
}

pub(crate) fn proposal_view(proposal: &Proposal) -> ProposalView {
    match proposal {
        Proposal::Add(add) => {
            let leaf = add.key_package().leaf_node();
            ProposalView::Add(MemberIdentity::from_leaf(leaf.credential(), leaf.signature_key().as_slice()))
        }
        Proposal::Update(update) => {
            let leaf = update.leaf_node();
            ProposalView::Update(MemberIdentity::from_leaf(leaf.credential(), leaf.signature_key().as_slice()))
        }
        Proposal::Remove(remove) => ProposalView::Remove { leaf: remove.removed().u32() },
        Proposal::SelfRemove => ProposalView::SelfRemove,
        Proposal::GroupContextExtensions(_) => ProposalView::GroupContextExtensions,
        Proposal::ExternalInit(_) => ProposalView::ExternalInit,
        other => ProposalView::Other(u16::from(other.proposal_type())),
    }
}

/// Every GroupContext extension except the policy.
fn non_policy(extensions: &Extensions<GroupContext>) -> Vec<&Extension> {
    extensions.iter().filter(|e| !matches!(e, Extension::Unknown(POLICY_EXTENSION, _))).collect()
}

/// The leaves of a group with valid identities, by leaf index.
pub(crate) fn members_by_leaf(group: &MlsGroup) -> std::collections::BTreeMap<u32, MemberIdentity> {
    group
        .members()
        .filter_map(|m| MemberIdentity::from_leaf(&m.credential, &m.signature_key).ok().map(|id| (m.index.u32(), id)))
        .collect()
}

/// The policy view of a staged commit against the group it applies to.
pub(crate) fn commit_view(
    group: &MlsGroup,
    committer: Actor,
    staged: &StagedCommit,
) -> Result<CommitView, PolicyDecodeError> {
    let old_extensions = group.extensions();
    let new_extensions = staged.group_context().extensions();
    Ok(CommitView {
        committer,
        path_identity: staged
            .update_path_leaf_node()
            .map(|leaf| MemberIdentity::from_leaf(leaf.credential(), leaf.signature_key().as_slice())),
        proposals: staged.queued_proposals().map(|qp| (actor(qp.sender()), proposal_view(qp.proposal()))).collect(),
        members_before: members_by_leaf(group),
        old_policy: GroupPolicy::from_extensions(old_extensions)?,
        new_policy: GroupPolicy::from_extensions(new_extensions).ok(),
        other_extensions_unchanged: non_policy(old_extensions) == non_policy(new_extensions),
    })
}
