//! What the home node can learn from MLS messages without any group secret.
//!
//! All functions are pure. Handshakes are PublicMessages in Veche groups, so the node sees
//! every proposal and commit in the clear. openmls 0.9 exposes the frame header of a
//! PublicMessage (group, epoch, sender, content type) but keeps its body (`FramedContentBodyIn`,
//! `CommitIn`) crate-private, so the body is parsed here with openmls' own public TLS types
//! (`ProposalIn`, `ProposalOrRefIn`, `Credential`, `KeyPackageIn`, `Extensions`), after openmls
//! has accepted the whole message as well-formed.
//!
//! Not verifiable without group state: the membership tag (needs the epoch's membership key)
//! and the message signature (needs the sender's leaf, i.e. the tree of that epoch). A node that
//! tracks the tree from published GroupInfos can check the signature later; this module only
//! verifies what is self-contained: KeyPackages (self-signed) and GroupInfos (signed by a leaf
//! of the tree they carry).

use openmls::prelude::tls_codec::{Deserialize as _, DeserializeBytes, Serialize as _, VLBytes};
use openmls::prelude::{
    Credential, Extensions, GroupContext, KeyPackage, KeyPackageIn, MlsMessageBodyIn, MlsMessageIn, ProposalIn,
    ProposalOrRefIn, ProposalStore, ProtocolVersion, PublicGroup, Sender,
};
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::HashType;
use veche_protocol::ids::GroupId;

use crate::CIPHERSUITE;
use crate::error::InspectError;
use crate::identity::MemberIdentity;
use crate::policy::{GroupPolicy, POLICY_EXTENSION};

/// The content type of a group message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Application,
    Proposal,
    Commit,
    /// A commit by a new member joining itself.
    ExternalCommit,
}

/// Who sent a message, as far as the frame tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InspectedSender {
    /// A member, by leaf index (PublicMessage only).
    Member(u32),
    /// An external sender listed in the group's ExternalSenders extension.
    External(u32),
    NewMemberProposal,
    NewMemberCommit,
    /// A PrivateMessage: the sender is encrypted.
    Hidden,
}

/// One proposal in a public proposal or commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectedProposal {
    /// Adds the device of a validated KeyPackage.
    Add(MemberIdentity),
    /// The sender replaces its own leaf.
    Update(MemberIdentity),
    Remove {
        leaf: u32,
    },
    SelfRemove,
    /// Replaces the GroupContext extensions; `policy` is the new policy if it decodes.
    GroupContextExtensions {
        policy: Option<GroupPolicy>,
    },
    ExternalInit,
    PreSharedKey,
    ReInit,
    /// A proposal sent earlier, by its ProposalRef (see [`Inspected::proposal_ref`]).
    Reference(Vec<u8>),
    Other(u16),
}

/// What the node can see of one group message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub group: GroupId,
    pub epoch: u64,
    pub kind: MessageKind,
    pub sender: InspectedSender,
    /// Whether the message is a PublicMessage (all Veche handshakes are).
    pub public: bool,
    /// The proposal of a proposal message, or the proposals a commit covers.
    pub proposals: Vec<InspectedProposal>,
    /// For a commit with an update path: the identity in the committer's new leaf (for an
    /// external commit, the joiner).
    pub path_identity: Option<MemberIdentity>,
    /// For a public proposal: its ProposalRef, as later commits refer to it.
    pub proposal_ref: Option<Vec<u8>>,
}

impl Inspected {
    /// Identities added by this message.
    pub fn added(&self) -> Vec<MemberIdentity> {
        self.proposals
            .iter()
            .filter_map(|p| match p {
                InspectedProposal::Add(id) => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// Leaf indices removed by inline Remove proposals.
    pub fn removed_leaves(&self) -> Vec<u32> {
        self.proposals
            .iter()
            .filter_map(|p| match p {
                InspectedProposal::Remove { leaf } => Some(*leaf),
                _ => None,
            })
            .collect()
    }

    /// Whether the message changes the GroupContext extensions (the policy).
    pub fn changes_extensions(&self) -> bool {
        self.proposals.iter().any(|p| matches!(p, InspectedProposal::GroupContextExtensions { .. }))
    }
}

/// A verified GroupInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfoSummary {
    pub group: GroupId,
    pub epoch: u64,
    /// Every leaf of the ratchet tree: (leaf index, identity).
    pub leaves: Vec<(u32, MemberIdentity)>,
    pub policy: GroupPolicy,
}

fn malformed<E>(what: &'static str) -> impl FnOnce(E) -> InspectError {
    move |_| InspectError::Malformed(what)
}

/// Parses an MLSMessage and checks its group id length.
fn group_id_of(id: &openmls::prelude::GroupId) -> Result<GroupId, InspectError> {
    GroupId::from_slice(id.as_slice()).ok_or(InspectError::BadGroupId(id.as_slice().len()))
}

/// Inspects a group message (TLS-serialized MLSMessage with a Public or PrivateMessage).
pub fn inspect_message(bytes: &[u8]) -> Result<Inspected, InspectError> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(malformed("MLS message"))?;
    match message.extract() {
        MlsMessageBodyIn::PrivateMessage(private) => {
            let protocol: openmls::prelude::ProtocolMessage = private.into();
            Ok(Inspected {
                group: group_id_of(protocol.group_id())?,
                epoch: protocol.epoch().as_u64(),
                kind: kind_of(protocol.content_type(), false),
                sender: InspectedSender::Hidden,
                public: false,
                proposals: Vec::new(),
                path_identity: None,
                proposal_ref: None,
            })
        }
        MlsMessageBodyIn::PublicMessage(public) => {
            let group = group_id_of(public.group_id())?;
            let sender = match public.sender() {
                Sender::Member(leaf) => InspectedSender::Member(leaf.u32()),
                Sender::External(index) => InspectedSender::External(external_index(index)),
                Sender::NewMemberProposal => InspectedSender::NewMemberProposal,
                Sender::NewMemberCommit => InspectedSender::NewMemberCommit,
            };
            let body = parse_public_body(bytes)?;
            Ok(Inspected {
                group,
                epoch: public.epoch().as_u64(),
                kind: kind_of(public.content_type(), sender == InspectedSender::NewMemberCommit),
                sender,
                public: true,
                proposals: body.proposals,
                path_identity: body.path_identity,
                proposal_ref: body.proposal_ref,
            })
        }
        _ => Err(InspectError::WrongType { expected: "a group message" }),
    }
}

/// The index of an external sender (openmls keeps its accessor private; it is a u32 on the wire).
fn external_index(index: &openmls::prelude::SenderExtensionIndex) -> u32 {
    let bytes = index.tls_serialize_detached().unwrap_or_default();
    bytes.try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX)
}

fn kind_of(content: openmls::prelude::ContentType, external: bool) -> MessageKind {
    match content {
        openmls::prelude::ContentType::Application => MessageKind::Application,
        openmls::prelude::ContentType::Proposal => MessageKind::Proposal,
        openmls::prelude::ContentType::Commit if external => MessageKind::ExternalCommit,
        openmls::prelude::ContentType::Commit => MessageKind::Commit,
    }
}

#[derive(Default)]
struct PublicBody {
    proposals: Vec<InspectedProposal>,
    path_identity: Option<MemberIdentity>,
    proposal_ref: Option<Vec<u8>>,
}

/// Walks a PublicMessage (RFC 9420 §6.2) that openmls already parsed successfully.
fn parse_public_body(bytes: &[u8]) -> Result<PublicBody, InspectError> {
    let err = malformed::<openmls::prelude::tls_codec::Error>("public message");
    let (_version, rest) = u16::tls_deserialize_bytes(bytes).map_err(err)?;
    let authenticated_content = rest;
    let (_wire_format, rest) = u16::tls_deserialize_bytes(rest).map_err(malformed("wire format"))?;
    let (_group_id, rest) = VLBytes::tls_deserialize_bytes(rest).map_err(malformed("group id"))?;
    let (_epoch, rest) = u64::tls_deserialize_bytes(rest).map_err(malformed("epoch"))?;
    let (_sender, rest) = Sender::tls_deserialize_bytes(rest).map_err(malformed("sender"))?;
    let (_aad, rest) = VLBytes::tls_deserialize_bytes(rest).map_err(malformed("aad"))?;
    let (content_type, rest) = u8::tls_deserialize_bytes(rest).map_err(malformed("content type"))?;
    let mut body = PublicBody::default();
    match content_type {
        2 => {
            let (proposal, rest) = ProposalIn::tls_deserialize_bytes(rest).map_err(malformed("proposal"))?;
            body.proposals.push(inspect_proposal(proposal)?);
            // AuthenticatedContent = wire_format || FramedContent || signature; the
            // membership tag that follows is not part of it.
            let (_signature, tail) = VLBytes::tls_deserialize_bytes(rest).map_err(malformed("signature"))?;
            let end = authenticated_content.len() - tail.len();
            body.proposal_ref = Some(proposal_ref(&authenticated_content[..end])?);
        }
        3 => {
            let (proposals, rest) =
                Vec::<ProposalOrRefIn>::tls_deserialize_bytes(rest).map_err(malformed("commit proposals"))?;
            for proposal in proposals {
                body.proposals.push(match proposal {
                    ProposalOrRefIn::Proposal(p) => inspect_proposal(*p)?,
                    ProposalOrRefIn::Reference(r) => InspectedProposal::Reference(r.as_slice().to_vec()),
                });
            }
            let (has_path, rest) = u8::tls_deserialize_bytes(rest).map_err(malformed("commit path"))?;
            if has_path == 1 {
                body.path_identity = Some(leaf_identity(rest)?);
            }
        }
        _ => {}
    }
    Ok(body)
}

/// Reads the identity at the start of a serialized LeafNode: encryption_key, signature_key,
/// credential, … and checks the signature key against the credential.
fn leaf_identity(bytes: &[u8]) -> Result<MemberIdentity, InspectError> {
    let (_encryption_key, rest) = VLBytes::tls_deserialize_bytes(bytes).map_err(malformed("leaf node"))?;
    let (signature_key, rest) = VLBytes::tls_deserialize_bytes(rest).map_err(malformed("leaf node"))?;
    let (credential, _) = Credential::tls_deserialize_bytes(rest).map_err(malformed("leaf credential"))?;
    Ok(MemberIdentity::from_leaf(&credential, signature_key.as_slice())?)
}

fn inspect_proposal(proposal: ProposalIn) -> Result<InspectedProposal, InspectError> {
    Ok(match proposal {
        ProposalIn::Add(add) => {
            // An Add proposal is exactly a KeyPackage on the wire.
            let bytes = add.tls_serialize_detached().map_err(malformed("add proposal"))?;
            let key_package = KeyPackageIn::tls_deserialize_exact(bytes).map_err(malformed("key package"))?;
            InspectedProposal::Add(validate_key_package_in(&RustCrypto::default(), key_package)?.1)
        }
        ProposalIn::Update(update) => {
            let bytes = update.tls_serialize_detached().map_err(malformed("update proposal"))?;
            InspectedProposal::Update(leaf_identity(&bytes)?)
        }
        ProposalIn::Remove(remove) => InspectedProposal::Remove { leaf: remove.removed().u32() },
        ProposalIn::SelfRemove => InspectedProposal::SelfRemove,
        ProposalIn::GroupContextExtensions(gce) => {
            let bytes = gce.tls_serialize_detached().map_err(malformed("extensions proposal"))?;
            let policy = Extensions::<GroupContext>::tls_deserialize_exact(bytes)
                .ok()
                .and_then(|ext| ext.unknown(POLICY_EXTENSION).and_then(|p| GroupPolicy::decode(&p.0).ok()));
            InspectedProposal::GroupContextExtensions { policy }
        }
        ProposalIn::ExternalInit(_) => InspectedProposal::ExternalInit,
        ProposalIn::PreSharedKey(_) => InspectedProposal::PreSharedKey,
        ProposalIn::ReInit(_) => InspectedProposal::ReInit,
        other => InspectedProposal::Other(u16::from(other.proposal_type())),
    })
}

/// RFC 9420 §5.2: RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent) with the
/// Veche ciphersuite's hash.
fn proposal_ref(authenticated_content: &[u8]) -> Result<Vec<u8>, InspectError> {
    let mut input = VLBytes::new(b"MLS 1.0 Proposal Reference".to_vec())
        .tls_serialize_detached()
        .map_err(malformed("proposal ref"))?;
    input.extend(
        VLBytes::new(authenticated_content.to_vec()).tls_serialize_detached().map_err(malformed("proposal ref"))?,
    );
    RustCrypto::default().hash(HashType::Sha2_256, &input).map_err(malformed("proposal ref"))
}

/// Validates a KeyPackage (signatures, ciphersuite, lifetime, capabilities, identity) and
/// returns the identity of its device.
pub fn inspect_key_package(bytes: &[u8]) -> Result<MemberIdentity, InspectError> {
    Ok(validate_key_package(&RustCrypto::default(), bytes)?.1)
}

pub(crate) fn validate_key_package(
    crypto: &impl OpenMlsCrypto,
    bytes: &[u8],
) -> Result<(KeyPackage, MemberIdentity), InspectError> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(malformed("MLS message"))?;
    let MlsMessageBodyIn::KeyPackage(key_package) = message.extract() else {
        return Err(InspectError::WrongType { expected: "a key package" });
    };
    validate_key_package_in(crypto, key_package)
}

fn validate_key_package_in(
    crypto: &impl OpenMlsCrypto,
    key_package: KeyPackageIn,
) -> Result<(KeyPackage, MemberIdentity), InspectError> {
    let key_package = key_package
        .validate(crypto, ProtocolVersion::Mls10)
        .map_err(|e| InspectError::InvalidKeyPackage(e.to_string()))?;
    if key_package.ciphersuite() != CIPHERSUITE {
        return Err(InspectError::WrongCiphersuite(u16::from(key_package.ciphersuite())));
    }
    let leaf = key_package.leaf_node();
    let policy_ext = openmls::prelude::ExtensionType::Unknown(POLICY_EXTENSION);
    if !leaf.capabilities().extensions().contains(&policy_ext) {
        return Err(InspectError::InvalidKeyPackage("does not support the Veche policy extension".into()));
    }
    let identity = MemberIdentity::from_leaf(leaf.credential(), leaf.signature_key().as_slice())?;
    Ok((key_package, identity))
}

/// Verifies a GroupInfo (its signature by the signer's leaf, the tree it carries against the
/// group context) and returns the group's leaves and policy.
pub fn inspect_group_info(bytes: &[u8]) -> Result<GroupInfoSummary, InspectError> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(malformed("MLS message"))?;
    let MlsMessageBodyIn::GroupInfo(info) = message.extract() else {
        return Err(InspectError::WrongType { expected: "a group info" });
    };
    if info.ciphersuite() != CIPHERSUITE {
        return Err(InspectError::WrongCiphersuite(u16::from(info.ciphersuite())));
    }
    let group = group_id_of(info.group_id())?;
    let tree = info
        .extensions()
        .ratchet_tree()
        .ok_or(InspectError::InvalidGroupInfo("no ratchet tree extension".into()))?
        .ratchet_tree()
        .clone();
    let (public, _) =
        PublicGroup::from_external(&RustCrypto::default(), &MemoryStorage::default(), tree, info, ProposalStore::new())
            .map_err(|e| InspectError::InvalidGroupInfo(e.to_string()))?;
    let policy = GroupPolicy::from_extensions(public.group_context().extensions())?;
    let mut leaves = Vec::new();
    for member in public.members() {
        leaves.push((member.index.u32(), MemberIdentity::from_leaf(&member.credential, &member.signature_key)?));
    }
    Ok(GroupInfoSummary { group, epoch: public.group_context().epoch().as_u64(), leaves, policy })
}
