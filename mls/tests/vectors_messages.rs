//! RFC 9420 test vectors, messages.json (from the mls-implementations interop suite): every
//! structure round-trips through openmls' public decoders and encoders byte for byte, and the
//! node's `inspect` functions handle every message without panicking.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    AddProposalIn, ExternalInitProposal, GroupContextExtensionProposalIn, MlsMessageIn, PreSharedKeyProposal,
    ProtocolMessage, RatchetTreeIn, ReInitProposal, RemoveProposal, UpdateProposalIn,
};
use serde::Deserialize;
use veche_mls::InspectError;
use veche_mls::inspect::{MessageKind, inspect_group_info, inspect_key_package, inspect_message};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/test-vectors/messages.json");

#[derive(Deserialize)]
struct Vector {
    #[serde(deserialize_with = "de_hex")]
    mls_welcome: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    mls_group_info: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    mls_key_package: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    ratchet_tree: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    add_proposal: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    update_proposal: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    remove_proposal: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    pre_shared_key_proposal: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    re_init_proposal: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    external_init_proposal: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    group_context_extensions_proposal: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    commit: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    public_message_application: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    public_message_proposal: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    public_message_commit: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    private_message: Vec<u8>,
}

fn de_hex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn round_trip<T: openmls::prelude::tls_codec::Deserialize + openmls::prelude::tls_codec::Serialize>(
    bytes: &[u8],
    what: &str,
) {
    let decoded = T::tls_deserialize_exact(bytes).unwrap_or_else(|e| panic!("{what}: {e:?}"));
    assert_eq!(decoded.tls_serialize_detached().unwrap(), bytes, "{what} re-encodes byte for byte");
}

/// Round-trips if openmls decodes the bytes; returns whether it did.
fn try_round_trip<T: openmls::prelude::tls_codec::Deserialize + openmls::prelude::tls_codec::Serialize>(
    bytes: &[u8],
) -> bool {
    match T::tls_deserialize_exact(bytes) {
        Ok(decoded) => {
            assert_eq!(decoded.tls_serialize_detached().unwrap(), bytes);
            true
        }
        Err(_) => false,
    }
}

/// openmls keeps its `CommitIn` type private, so a bare Commit is round-tripped inside a
/// PublicMessage frame built around it (empty group id, epoch 0, member sender 0, empty
/// signature, confirmation tag and membership tag).
fn commit_round_trip(commit: &[u8]) {
    let mut framed = vec![0, 1, 0, 1, 0]; // mls10, PublicMessage, group_id<V> = ""
    framed.extend(0u64.to_be_bytes()); // epoch
    framed.extend([1, 0, 0, 0, 0]); // sender: member, leaf 0
    framed.push(0); // authenticated_data<V> = ""
    framed.push(3); // content_type: commit
    let start = framed.len();
    framed.extend(commit);
    let end = framed.len();
    framed.extend([0, 0, 0]); // signature<V>, confirmation_tag<V>, membership_tag<V>
    let decoded = MlsMessageIn::tls_deserialize_exact(&framed).expect("framed commit decodes");
    let encoded = decoded.tls_serialize_detached().unwrap();
    assert_eq!(encoded, framed);
    assert_eq!(&encoded[start..end], commit);
}

#[test]
fn messages_vectors() {
    let vectors: Vec<Vector> = serde_json::from_str(&std::fs::read_to_string(PATH).expect("vector file")).unwrap();
    assert!(!vectors.is_empty());
    let mut optional = [0usize; 3]; // reinit, external init, gce proposals that openmls decodes
    let mut inspected = [0usize; 4]; // ok, refused as non-Veche, group infos refused, key packages refused
    for (i, v) in vectors.iter().enumerate() {
        for (bytes, what) in [
            (&v.mls_welcome, "welcome"),
            (&v.mls_group_info, "group info"),
            (&v.mls_key_package, "key package"),
            (&v.public_message_application, "public application"),
            (&v.public_message_proposal, "public proposal"),
            (&v.public_message_commit, "public commit"),
            (&v.private_message, "private message"),
        ] {
            round_trip::<MlsMessageIn>(bytes, &format!("#{i} {what}"));
        }
        round_trip::<RatchetTreeIn>(&v.ratchet_tree, "ratchet tree");
        round_trip::<AddProposalIn>(&v.add_proposal, "add proposal");
        round_trip::<UpdateProposalIn>(&v.update_proposal, "update proposal");
        round_trip::<RemoveProposal>(&v.remove_proposal, "remove proposal");
        round_trip::<PreSharedKeyProposal>(&v.pre_shared_key_proposal, "psk proposal");
        // openmls' own KAT skips these three. Its decoders validate extension types by
        // context, so a vector whose extension list is random may be refused; whatever decodes
        // must re-encode exactly.
        optional[0] += try_round_trip::<ReInitProposal>(&v.re_init_proposal) as usize;
        optional[1] += try_round_trip::<ExternalInitProposal>(&v.external_init_proposal) as usize;
        optional[2] += try_round_trip::<GroupContextExtensionProposalIn>(&v.group_context_extensions_proposal) as usize;
        commit_round_trip(&v.commit);

        // The node's view. These are not Veche messages (other credentials, no policy), so
        // inspection either succeeds on the frame or refuses for a Veche rule — never a
        // parse failure of a well-formed message, never a panic.
        for (bytes, content) in [
            (&v.public_message_proposal, MessageKind::Proposal),
            (&v.public_message_commit, MessageKind::Commit),
            (&v.private_message, MessageKind::Application),
        ] {
            let protocol =
                MlsMessageIn::tls_deserialize_exact(bytes.as_slice()).unwrap().try_into_protocol_message().unwrap();
            match inspect_message(bytes) {
                Ok(seen) => {
                    inspected[0] += 1;
                    assert_eq!(seen.group.0.as_slice(), protocol.group_id().as_slice());
                    assert_eq!(seen.epoch, protocol.epoch().as_u64());
                    if content != MessageKind::Application {
                        assert!(seen.kind == content || seen.kind == MessageKind::ExternalCommit);
                        assert!(seen.public);
                    }
                    check_frame(&protocol, &seen);
                }
                Err(
                    InspectError::InvalidKeyPackage(_) | InspectError::Identity(_) | InspectError::WrongCiphersuite(_),
                ) => inspected[1] += 1,
                Err(InspectError::BadGroupId(n)) => assert_ne!(n, 16),
                Err(other) => panic!("#{i}: inspect failed on a well-formed message: {other:?}"),
            }
        }
        match inspect_group_info(&v.mls_group_info) {
            Err(InspectError::InvalidGroupInfo(_) | InspectError::Identity(_) | InspectError::Policy(_)) => {
                inspected[2] += 1
            }
            Err(InspectError::WrongCiphersuite(_) | InspectError::BadGroupId(_)) => inspected[2] += 1,
            other => panic!("#{i}: a non-Veche group info must be refused: {other:?}"),
        }
        match inspect_key_package(&v.mls_key_package) {
            Err(InspectError::InvalidKeyPackage(_) | InspectError::Identity(_) | InspectError::WrongCiphersuite(_)) => {
                inspected[3] += 1
            }
            other => panic!("#{i}: a non-Veche key package must be refused: {other:?}"),
        }
    }
    eprintln!(
        "messages.json: optional proposals decoded by openmls: reinit {}/{n}, external init {}/{n}, gce {}/{n}",
        optional[0],
        optional[1],
        optional[2],
        n = vectors.len()
    );
    eprintln!(
        "messages.json: {} cases round-tripped; inspect_message: {} frames read, {} refused on Veche rules; \
         {} group infos and {} key packages refused as non-Veche",
        vectors.len(),
        inspected[0],
        inspected[1],
        inspected[2],
        inspected[3]
    );
    assert!(inspected[0] > 0, "some frames were fully inspected");
}

fn check_frame(protocol: &ProtocolMessage, seen: &veche_mls::inspect::Inspected) {
    assert_eq!(seen.public, matches!(protocol, ProtocolMessage::PublicMessage(_)));
}
