//! One MLS operation = one atomic write: devices persist into redb, reopen and carry on;
//! a failed transaction rolls the client back to the persisted state; a commit that loses
//! the race for an epoch is discarded and retried.

mod common;

use common::{Device, new_group_id, text};
use veche_mls::inspect::inspect_message;
use veche_mls::{Client, ClientError, OpenError, ProcessError, Processed, Snapshot};
use veche_protocol::ids::{ChatKind, Role};

#[test]
fn persistence_rollback_and_retry() {
    let (mut alice, mut bob, mut carol, mut dave) = (Device::new(), Device::new(), Device::new(), Device::new());
    let group = new_group_id();
    alice.client.create_group(group, ChatKind::Group).unwrap();
    alice.persist();

    // Bob's KeyPackage private keys survive a restart.
    let bob_kp = bob.key_package();
    bob.reopen();
    let add = alice.client.add_members(group, &[bob_kp]).unwrap();
    alice.client.merge_pending_commit(group).unwrap();
    alice.persist();
    bob.client.join_from_welcome(&add.welcome.unwrap()).unwrap();
    bob.persist();

    // Alice restarts between messages and keeps decrypting.
    let m1 = bob.send(group, "one");
    alice.reopen();
    assert_eq!(alice.client.groups(), vec![group]);
    assert_eq!(text(alice.process(&m1)), "one");
    let m2 = bob.send(group, "two");
    bob.reopen();
    assert_eq!(text(alice.process(&m2)), "two");
    let reply = alice.send(group, "three");
    assert_eq!(text(bob.process(&reply)), "three");

    // The caller's write transaction fails after a successful process: roll back, and the same
    // message can be processed again (its ratchet step was undone too).
    let m3 = bob.send(group, "four");
    assert_eq!(text(alice.client.process(&m3).unwrap()), "four");
    assert!(alice.client.process(&m3).is_err(), "a message decrypts once");
    alice.client.rollback();
    assert_eq!(text(alice.process(&m3)), "four");

    // A failed operation does not undo an earlier, not yet persisted, success.
    let m4 = bob.send(group, "five");
    assert_eq!(text(alice.client.process(&m4).unwrap()), "five");
    assert!(alice.client.process(b"garbage").is_err());
    let forged_tail = [&m4[..m4.len() - 1], &[m4[m4.len() - 1] ^ 1]].concat();
    assert!(alice.client.process(&forged_tail).is_err());
    alice.persist();
    alice.reopen();
    assert!(alice.client.process(&m4).is_err(), "the persisted state already consumed m4");

    // Rolling back an unpersisted commit leaves no pending commit behind; the retry works.
    let carol_kp = carol.key_package();
    alice.client.add_members(group, std::slice::from_ref(&carol_kp)).unwrap();
    alice.client.rollback();
    assert_eq!(alice.client.merge_pending_commit(group), Err(ClientError::NoPendingCommit(group)));
    assert_eq!(alice.client.epoch(group).unwrap(), 1);

    // Bob becomes Admin; our own commit echoed by the node is merged by processing it.
    let promote = alice.client.set_role(group, bob.account(), Role::Admin).unwrap();
    alice.persist();
    match alice.process(&promote.commit) {
        Processed::Commit { sender, roles_changed, new_epoch, .. } => {
            assert_eq!(sender, Some(alice.client.identity()));
            assert!(roles_changed);
            assert_eq!(new_epoch, 2);
        }
        other => panic!("{other:?}"),
    }
    bob.process(&promote.commit);
    assert_eq!(alice.client.process(&promote.commit), Err(ProcessError::Stale { message_epoch: 1, current_epoch: 2 }));

    // Alice and Bob both commit in epoch 2; the node takes Bob's.
    let alice_try = alice.client.add_members(group, std::slice::from_ref(&carol_kp)).unwrap();
    alice.persist();
    let dave_kp = dave.key_package();
    let bob_commit = bob.client.add_members(group, &[dave_kp]).unwrap();
    bob.persist();
    assert_eq!(inspect_message(&alice_try.commit).unwrap().epoch, 2);
    assert_eq!(inspect_message(&bob_commit.commit).unwrap().epoch, 2);
    bob.client.merge_pending_commit(group).unwrap();
    bob.persist();
    alice.reopen(); // the pending commit was persisted with the rest
    alice.client.discard_pending_commit(group).unwrap();
    alice.persist();
    match alice.process(&bob_commit.commit) {
        Processed::Commit { added, .. } => assert_eq!(added, vec![dave.client.identity()]),
        other => panic!("{other:?}"),
    }
    dave.client.join_from_welcome(&bob_commit.welcome.unwrap()).unwrap();
    dave.persist();
    assert_eq!(bob.client.process(&alice_try.commit), Err(ProcessError::Stale { message_epoch: 2, current_epoch: 3 }));
    alice.client.discard_pending_commit(group).unwrap(); // idempotent
    // Retry on the new epoch.
    let retry = alice.client.add_members(group, &[carol_kp]).unwrap();
    assert_eq!(retry.epoch, 3);
    alice.client.merge_pending_commit(group).unwrap();
    alice.persist();
    bob.process(&retry.commit);
    dave.process(&retry.commit);
    carol.client.join_from_welcome(&retry.welcome.unwrap()).unwrap();
    carol.persist();
    carol.reopen();
    let hello = alice.send(group, "welcome carol");
    for device in [&mut bob, &mut carol, &mut dave] {
        assert_eq!(text(device.process(&hello)), "welcome carol");
    }

    // A snapshot also travels as one blob (browser storage), and only opens with its key.
    let blob = carol.mirror.to_bytes();
    let mut reopened = Client::open(carol.secret, Snapshot::from_bytes(&blob).unwrap()).unwrap();
    assert_eq!(reopened.identity(), carol.client.identity());
    assert_eq!(reopened.epoch(group).unwrap(), 4);
    assert!(reopened.encrypt(group, b"x").is_ok());
    assert_eq!(
        Client::open(Client::generate_secret(), Snapshot::from_bytes(&blob).unwrap()).unwrap_err(),
        OpenError::WrongDevice
    );
    // Messages from an epoch just left still decrypt (past epoch secrets are kept).
    let late = bob.send(group, "late");
    let commit = alice.client.remove_members(group, &[dave.account()]).unwrap();
    alice.client.merge_pending_commit(group).unwrap();
    alice.persist();
    carol.process(&commit.commit);
    assert_eq!(text(carol.process(&late)), "late");
}
