//! A restored device refreshes its keys with an empty commit: every member follows it into the
//! new epoch, the node's inspection sees a plain commit by a member, and messages flow after it.

mod common;

use common::{Device, new_group_id, text};
use veche_mls::Processed;
use veche_mls::inspect::{MessageKind, inspect_message};
use veche_protocol::ids::ChatKind;

#[test]
fn self_update_moves_everyone_to_a_new_epoch() {
    let mut alice = Device::new();
    let mut bob = Device::new();
    let group = new_group_id();
    alice.client.create_group(group, ChatKind::Group).unwrap();
    let add = alice.client.add_members(group, &[bob.key_package()]).unwrap();
    alice.client.merge_pending_commit(group).unwrap();
    bob.client.join_from_welcome(&add.welcome.unwrap()).unwrap();
    alice.persist();
    bob.persist();

    let update = bob.client.self_update(group).unwrap();
    assert_eq!(update.epoch, 1);
    assert!(update.added.is_empty() && update.removed.is_empty() && update.welcome.is_none());
    assert_eq!(inspect_message(&update.commit).unwrap().kind, MessageKind::Commit);
    bob.client.merge_pending_commit(group).unwrap();
    bob.persist();
    match alice.process(&update.commit) {
        Processed::Commit { added, removed, we_were_removed, .. } => {
            assert!(added.is_empty() && removed.is_empty() && !we_were_removed)
        }
        other => panic!("expected a commit, got {other:?}"),
    }
    assert_eq!((alice.client.epoch(group).unwrap(), bob.client.epoch(group).unwrap()), (2, 2));
    let hello = bob.send(group, "after the update");
    assert_eq!(text(alice.process(&hello)), "after the update");
}
