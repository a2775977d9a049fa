//! RFC 9420 passive-client test vectors (mls-implementations interop suite): a client that only
//! receives joins from a Welcome and follows every epoch, and must reach the expected epoch
//! authenticators. The client runs on Veche's journaled [`Store`]; after every epoch its changes
//! are written to redb in one transaction, the group is reloaded from the database, and the
//! commit is processed twice — once and rolled back as if the write had failed, then for real —
//! so the vectors also exercise persistence and rollback.
//!
//! These groups are not Veche groups (other credentials, no policy extension, handshakes as
//! PrivateMessage), so they run on openmls' `MlsGroup` directly rather than through
//! `veche_mls::Client`. See mls/VECTORS.md for the inputs that need workarounds.

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    Ciphersuite, KeyPackage, KeyPackageBundle, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY, MlsGroup, MlsGroupJoinConfig,
    MlsMessageBodyIn, MlsMessageIn, ProcessedMessageContent, RatchetTreeIn, StagedWelcome,
};
use openmls::schedule::psk::PreSharedKeyId;
use openmls_traits::OpenMlsProvider;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::storage::StorageProvider as _;
use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase};
use serde::Deserialize;
use veche_mls::redb_store;
use veche_mls::storage::Store;

fn de_hex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn de_hex_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    Option::<String>::deserialize(d)?.map(|s| hex::decode(s).map_err(serde::de::Error::custom)).transpose()
}

#[derive(Deserialize)]
struct Vector {
    cipher_suite: u16,
    external_psks: Vec<Psk>,
    #[serde(deserialize_with = "de_hex")]
    key_package: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    encryption_priv: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    init_priv: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    welcome: Vec<u8>,
    #[serde(deserialize_with = "de_hex_opt")]
    ratchet_tree: Option<Vec<u8>>,
    #[serde(deserialize_with = "de_hex")]
    initial_epoch_authenticator: Vec<u8>,
    epochs: Vec<Epoch>,
}

#[derive(Deserialize)]
struct Psk {
    #[serde(deserialize_with = "de_hex")]
    psk_id: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    psk: Vec<u8>,
}

#[derive(Deserialize)]
struct Epoch {
    proposals: Vec<Hex>,
    #[serde(deserialize_with = "de_hex")]
    commit: Vec<u8>,
    #[serde(deserialize_with = "de_hex")]
    epoch_authenticator: Vec<u8>,
}

#[derive(Deserialize)]
struct Hex(#[serde(deserialize_with = "de_hex")] Vec<u8>);

/// A passive client persisted into its own redb database.
struct Passive {
    store: Store,
    db: Database,
    group: Option<MlsGroup>,
}

impl Passive {
    fn persist(&mut self) {
        let changes = self.store.take_changes();
        let txn = self.db.begin_write().unwrap();
        redb_store::write(&txn, &changes).unwrap();
        txn.commit().unwrap();
    }

    /// Drops all in-memory state and reloads it from the database.
    fn reload(&mut self) {
        let snapshot = redb_store::load(&self.db.begin_read().unwrap()).unwrap();
        self.store = Store::from_snapshot(snapshot);
        let id = self.group.as_ref().map(|g| g.group_id().clone()).expect("joined");
        self.group = MlsGroup::load(self.store.storage(), &id).unwrap();
    }

    fn authenticator(&self) -> Vec<u8> {
        self.group.as_ref().unwrap().epoch_authenticator().as_slice().to_vec()
    }

    fn process(&mut self, message: &[u8]) {
        let message = MlsMessageIn::tls_deserialize_exact(message).unwrap();
        let group = self.group.as_mut().unwrap();
        let processed = group.process_message(&self.store, message.try_into_protocol_message().unwrap()).unwrap();
        match processed.into_content() {
            ProcessedMessageContent::ProposalMessage(proposal) => {
                group.store_pending_proposal(self.store.storage(), *proposal).unwrap()
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                group.merge_staged_commit(&self.store, *staged).unwrap()
            }
            other => panic!("unexpected {other:?}"),
        }
        self.store.commit();
    }
}

/// Stores the vector's KeyPackage with its private keys, as the KeyPackage builder would have.
///
/// openmls has no public constructor for a `KeyPackageBundle` from existing private keys, and
/// `KeyPackageIn::validate` refuses these KeyPackages because their lifetimes have expired. The
/// bundle is therefore assembled from openmls' own serde encodings of its parts.
fn inject_key_package(store: &Store, v: &Vector) {
    let MlsMessageBodyIn::KeyPackage(key_package) =
        MlsMessageIn::tls_deserialize_exact(&v.key_package).unwrap().extract()
    else {
        panic!("not a key package")
    };
    let key_package: KeyPackage = serde_json::from_value(serde_json::to_value(&key_package).unwrap()).unwrap();
    let init = openmls::prelude::HpkePrivateKey::from(v.init_priv.clone());
    let encryption = openmls::prelude::HpkePrivateKey::from(v.encryption_priv.clone());
    let bundle: KeyPackageBundle = serde_json::from_value(serde_json::json!({
        "key_package": serde_json::to_value(&key_package).unwrap(),
        "private_init_key": serde_json::to_value(&init).unwrap(),
        "private_encryption_key": { "key": serde_json::to_value(&encryption).unwrap() },
    }))
    .unwrap();
    let hash_ref = key_package.hash_ref(store.crypto()).unwrap();
    store.storage().write_key_package(&hash_ref, &bundle).unwrap();
}

fn run(v: &Vector) {
    let mut client = Passive {
        store: Store::new(),
        db: Database::builder().create_with_backend(InMemoryBackend::new()).unwrap(),
        group: None,
    };
    for psk in &v.external_psks {
        PreSharedKeyId::external(psk.psk_id.clone(), vec![]).store(&client.store, &psk.psk).unwrap();
    }
    inject_key_package(&client.store, v);
    client.persist();

    let MlsMessageBodyIn::Welcome(welcome) = MlsMessageIn::tls_deserialize_exact(&v.welcome).unwrap().extract() else {
        panic!("not a welcome")
    };
    let config = MlsGroupJoinConfig::builder()
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .number_of_resumption_psks(16)
        .build();
    let mut join =
        StagedWelcome::build_from_welcome(&client.store, &config, welcome).unwrap().skip_lifetime_validation();
    if let Some(tree) = &v.ratchet_tree {
        join = join.with_ratchet_tree(RatchetTreeIn::tls_deserialize_exact(tree.as_slice()).unwrap());
    }
    let group = join.build().unwrap().into_group(&client.store).unwrap();
    client.group = Some(group);
    client.store.commit();
    assert_eq!(client.authenticator(), v.initial_epoch_authenticator);
    client.persist();
    client.reload();
    assert_eq!(client.authenticator(), v.initial_epoch_authenticator);

    for (i, epoch) in v.epochs.iter().enumerate() {
        // First as if the caller's transaction failed: roll back and reload.
        for proposal in &epoch.proposals {
            client.process(&proposal.0);
        }
        client.process(&epoch.commit);
        assert_eq!(client.authenticator(), epoch.epoch_authenticator, "epoch {i} (before rollback)");
        client.store.rollback();
        client.reload();
        // Then for real.
        for proposal in &epoch.proposals {
            client.process(&proposal.0);
        }
        client.process(&epoch.commit);
        assert_eq!(client.authenticator(), epoch.epoch_authenticator, "epoch {i}");
        client.persist();
        client.reload();
        assert_eq!(client.authenticator(), epoch.epoch_authenticator, "epoch {i} after reload");
    }
}

/// Runs every case of a vector file whose ciphersuite the crypto provider supports.
fn run_file(name: &str) -> (usize, usize) {
    let path = format!("{}/../spec/test-vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let vectors: Vec<Vector> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let crypto = openmls_rust_crypto::RustCrypto::default();
    let (mut ran, mut skipped) = (0, 0);
    for v in &vectors {
        let supported = Ciphersuite::try_from(v.cipher_suite).is_ok_and(|cs| crypto.supports(cs).is_ok());
        if supported {
            run(v);
            ran += 1;
        } else {
            skipped += 1;
        }
    }
    eprintln!("{name}: ran {ran}, skipped {skipped} (unsupported ciphersuite)");
    assert!(ran > 0);
    (ran, skipped)
}

#[test]
fn passive_client_welcome() {
    run_file("passive-client-welcome.json");
}

#[test]
fn passive_client_handling_commit() {
    run_file("passive-client-handling-commit.json");
}

#[test]
fn passive_client_random() {
    run_file("passive-client-random.json");
}
