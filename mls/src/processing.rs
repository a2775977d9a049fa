//! Applying received group messages: application messages, proposals and commits.
//!
//! A commit is checked against the group policy before it is merged; a commit that breaks the
//! policy is refused with [`ProcessError::Policy`] and nothing is applied.

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{MlsGroup, MlsMessageIn, ProcessedMessageContent};
use openmls_traits::OpenMlsProvider;

use crate::client::{Client, veche_group_id};
use crate::error::{MlsFailure, ProcessError};
use crate::identity::MemberIdentity;
use crate::policy::{Actor, PolicyViolation, check_commit, check_proposal};
use crate::review::{actor, commit_view, proposal_view};

/// What a processed message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// A decrypted application message.
    Application { sender: MemberIdentity, plaintext: Vec<u8> },
    /// A merged commit; the group is now at `new_epoch`.
    Commit {
        /// The committer (for an external commit, the joiner).
        sender: Option<MemberIdentity>,
        added: Vec<MemberIdentity>,
        removed: Vec<MemberIdentity>,
        roles_changed: bool,
        we_were_removed: bool,
        new_epoch: u64,
    },
    /// A proposal, stored until someone commits it (see [`Client::commit_pending_proposals`]).
    Proposal { sender: MemberIdentity, kind: ProposalKind },
}

/// The proposals a member may send on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalKind {
    /// The sender asks to be removed.
    Leave,
}

impl Client {
    /// Processes a group message (TLS-serialized MLSMessage) for whichever group it belongs to.
    pub fn process(&mut self, message: &[u8]) -> Result<Processed, ProcessError> {
        let message =
            MlsMessageIn::tls_deserialize_exact(message).map_err(|_| ProcessError::Malformed("not an MLS message"))?;
        let protocol =
            message.try_into_protocol_message().map_err(|_| ProcessError::Malformed("not a group message"))?;
        let group = veche_group_id(protocol.group_id()).ok_or(ProcessError::Malformed("group id length"))?;
        let mls = self.groups.get(&group).ok_or(ProcessError::UnknownGroup(group))?;
        if !mls.is_active() {
            return Err(ProcessError::NotActive(group));
        }
        let current_epoch = mls.epoch().as_u64();
        let message_epoch = protocol.epoch().as_u64();
        if message_epoch > current_epoch {
            return Err(ProcessError::FutureEpoch { message_epoch, current_epoch });
        }
        if protocol.is_handshake_message() && message_epoch < current_epoch {
            return Err(ProcessError::Stale { message_epoch, current_epoch });
        }
        self.atomic(|c| {
            let Client { store, key, groups } = c;
            let mls = groups.get_mut(&group).ok_or(ProcessError::UnknownGroup(group))?;
            let processed = mls.process_message(store, protocol).map_err(|e| MlsFailure::new("process", e))?;
            let sender = actor(processed.sender());
            match processed.into_content() {
                ProcessedMessageContent::ApplicationMessage(app) => {
                    Ok(Processed::Application { sender: member_identity(mls, sender)?, plaintext: app.into_bytes() })
                }
                ProcessedMessageContent::ProposalMessage(proposal) => {
                    let view = proposal_view(proposal.proposal());
                    check_proposal(actor(proposal.sender()), &view)?;
                    let sender = member_identity(mls, sender)?;
                    mls.store_pending_proposal(store.storage(), *proposal)
                        .map_err(|e| MlsFailure::new("store proposal", e))?;
                    Ok(Processed::Proposal { sender, kind: ProposalKind::Leave })
                }
                ProcessedMessageContent::ExternalJoinProposalMessage(_) => Err(PolicyViolation::ExternalSender.into()),
                ProcessedMessageContent::StagedCommitMessage(staged) => {
                    let view = commit_view(mls, sender, &staged).map_err(|_| PolicyViolation::BadPolicy)?;
                    let effect = check_commit(&view)?;
                    let committer = match sender {
                        Actor::Member(leaf) => view.members_before.get(&leaf).copied(),
                        _ => effect.joiner,
                    };
                    let we_were_removed = staged.self_removed();
                    let new_epoch = staged.epoch().as_u64();
                    mls.merge_staged_commit(store, *staged).map_err(|e| MlsFailure::new("merge commit", e))?;
                    // Someone who joins by external commit is added too, by themselves.
                    let mut added = effect.added;
                    if let (Actor::Joiner, Some(joiner)) = (sender, effect.joiner)
                        && !added.contains(&joiner)
                    {
                        added.push(joiner);
                    }
                    Ok(Processed::Commit {
                        sender: committer,
                        added,
                        removed: effect.removed,
                        roles_changed: effect.roles_changed,
                        we_were_removed,
                        new_epoch,
                    })
                }
                ProcessedMessageContent::OwnPendingCommit => {
                    // Our own commit came back from the node: it was accepted, so merge it.
                    let staged = mls.pending_commit().ok_or(ProcessError::OwnMessage)?;
                    let own = Actor::Member(mls.own_leaf_index().u32());
                    let view = commit_view(mls, own, staged).map_err(|_| PolicyViolation::BadPolicy)?;
                    let effect = check_commit(&view)?;
                    mls.merge_pending_commit(store).map_err(|e| MlsFailure::new("merge pending commit", e))?;
                    Ok(Processed::Commit {
                        sender: Some(key.identity),
                        added: effect.added,
                        removed: effect.removed,
                        roles_changed: effect.roles_changed,
                        we_were_removed: false,
                        new_epoch: mls.epoch().as_u64(),
                    })
                }
                ProcessedMessageContent::OwnPrivateMessage => Err(ProcessError::OwnMessage),
            }
        })
    }
}

/// The identity of the member at a sender's leaf.
fn member_identity(mls: &MlsGroup, sender: Actor) -> Result<MemberIdentity, ProcessError> {
    let Actor::Member(leaf) = sender else {
        return Err(PolicyViolation::ExternalSender.into());
    };
    let member = mls.member_at(openmls::prelude::LeafNodeIndex::new(leaf)).ok_or(PolicyViolation::UnknownLeaf(leaf))?;
    Ok(MemberIdentity::from_leaf(&member.credential, &member.signature_key).map_err(PolicyViolation::from)?)
}
