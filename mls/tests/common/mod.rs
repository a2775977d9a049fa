//! Shared test harness: a device = a Client persisted into its own in-memory redb database,
//! and a helper to forge raw openmls messages from a copy of a device's state.
#![allow(dead_code)]

use openmls::prelude::MlsGroup;
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::types::SignatureScheme;
use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase};
use veche_mls::storage::Store;
use veche_mls::{Client, Processed, Snapshot, redb_store};
use veche_protocol::ids::{AccountId, GroupId};

pub struct Device {
    pub client: Client,
    pub secret: [u8; 32],
    pub db: Database,
    /// The persisted state, mirrored (to forge messages from a copy of it).
    pub mirror: Snapshot,
}

impl Device {
    pub fn new() -> Self {
        let secret = Client::generate_secret();
        let db = Database::builder().create_with_backend(InMemoryBackend::new()).expect("in-memory redb");
        let mut device = Self { client: Client::new(secret), secret, db, mirror: Snapshot::empty() };
        device.persist();
        device
    }

    pub fn account(&self) -> AccountId {
        self.client.identity().account
    }

    /// Takes the client's changes and writes them in one redb transaction.
    pub fn persist(&mut self) {
        let changes = self.client.take_changes();
        let txn = self.db.begin_write().expect("begin write");
        redb_store::write(&txn, &changes).expect("write changes");
        txn.commit().expect("commit");
        self.mirror.apply(&changes);
    }

    /// Drops the client and opens it again from the database.
    pub fn reopen(&mut self) {
        let txn = self.db.begin_read().expect("begin read");
        let snapshot = redb_store::load(&txn).expect("load");
        assert_eq!(snapshot, self.mirror, "redb holds exactly the persisted state");
        self.client = Client::open(self.secret, snapshot).expect("open");
    }

    pub fn key_package(&mut self) -> Vec<u8> {
        let kp = self.client.key_packages(1).expect("key package").remove(0);
        self.persist();
        kp
    }

    /// Processes a message and persists the result.
    pub fn process(&mut self, message: &[u8]) -> Processed {
        let processed = self.client.process(message).expect("process");
        self.persist();
        processed
    }

    pub fn send(&mut self, group: GroupId, text: &str) -> Vec<u8> {
        let message = self.client.encrypt(group, text.as_bytes()).expect("encrypt");
        self.persist();
        message
    }

    /// A detached copy of this device's persisted group, to forge messages the Client would
    /// refuse to create.
    pub fn raw_copy(&self, group: GroupId) -> (Store, MlsGroup, SignatureKeyPair) {
        let store = Store::from_snapshot(self.mirror.clone());
        let mls = MlsGroup::load(
            openmls_traits::OpenMlsProvider::storage(&store),
            &openmls::prelude::GroupId::from_slice(&group.0),
        )
        .expect("load")
        .expect("group exists");
        let public = veche_mls::identity::device_id(&self.secret);
        let signer = SignatureKeyPair::from_raw(SignatureScheme::ED25519, self.secret.to_vec(), public.0.to_vec());
        (store, mls, signer)
    }
}

pub fn text(processed: Processed) -> String {
    match processed {
        Processed::Application { plaintext, .. } => String::from_utf8(plaintext).expect("utf8"),
        other => panic!("expected an application message, got {other:?}"),
    }
}

pub fn new_group_id() -> GroupId {
    GroupId(Client::generate_secret()[..16].try_into().expect("16 bytes"))
}
