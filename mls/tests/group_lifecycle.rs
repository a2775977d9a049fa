//! A group's life: create, add by KeyPackage, talk, a member leaves, the owner removes
//! another, someone joins from the published GroupInfo; the node's view of each handshake.

mod common;

use common::{Device, new_group_id, text};
use veche_mls::inspect::{InspectedSender, MessageKind, inspect_group_info, inspect_key_package, inspect_message};
use veche_mls::{ClientError, ProcessError, Processed, ProposalKind};
use veche_protocol::ids::{ChatKind, Role};

#[test]
fn group_lifecycle() {
    let mut alice = Device::new();
    let mut bob = Device::new();
    let mut carol = Device::new();
    let group = new_group_id();

    let info = alice.client.create_group(group, ChatKind::Group).unwrap();
    alice.persist();
    let summary = inspect_group_info(&info).unwrap();
    assert_eq!((summary.group, summary.epoch, summary.leaves.len()), (group, 0, 1));
    assert_eq!(summary.policy.role(&alice.account()), Role::Owner);
    assert_eq!(alice.client.create_group(group, ChatKind::Group), Err(ClientError::GroupExists(group)));

    // Alice adds Bob and Carol from their KeyPackages.
    let kps = vec![bob.key_package(), carol.key_package()];
    assert_eq!(inspect_key_package(&kps[0]).unwrap(), bob.client.identity());
    let add = alice.client.add_members(group, &kps).unwrap();
    assert_eq!(add.epoch, 0);
    assert_eq!(add.added, vec![bob.client.identity(), carol.client.identity()]);
    let seen = inspect_message(&add.commit).unwrap();
    assert_eq!((seen.group, seen.epoch, seen.kind), (group, 0, MessageKind::Commit));
    assert_eq!(seen.sender, InspectedSender::Member(0));
    assert_eq!(seen.added(), add.added);
    assert!(!seen.changes_extensions());
    alice.client.merge_pending_commit(group).unwrap();
    alice.persist();
    let welcome = add.welcome.expect("welcome");
    assert_eq!(bob.client.join_from_welcome(&welcome).unwrap(), group);
    bob.persist();
    assert_eq!(carol.client.join_from_welcome(&welcome).unwrap(), group);
    carol.persist();
    let summary = inspect_group_info(&add.group_info).unwrap();
    assert_eq!((summary.epoch, summary.leaves.len()), (1, 3));
    assert_eq!(bob.client.epoch(group).unwrap(), 1);
    let members = carol.client.members(group).unwrap();
    assert_eq!(members.len(), 3);
    assert!(members.contains(&(alice.client.identity(), Role::Owner)));
    assert!(members.contains(&(bob.client.identity(), Role::Member)));

    // They talk. Own messages echoed back are recognised.
    let hello = alice.send(group, "hello");
    assert_eq!(inspect_message(&hello).unwrap().kind, MessageKind::Application);
    assert_eq!(text(bob.process(&hello)), "hello");
    assert_eq!(text(carol.process(&hello)), "hello");
    assert_eq!(alice.client.process(&hello), Err(ProcessError::OwnMessage));
    let reply = bob.send(group, "hi alice");
    assert_eq!(text(alice.process(&reply)), "hi alice");
    assert_eq!(text(carol.process(&reply)), "hi alice");

    // Carol leaves: her proposal is committed by Alice.
    let leave = carol.client.leave(group).unwrap();
    carol.persist();
    let seen = inspect_message(&leave).unwrap();
    assert_eq!(seen.kind, MessageKind::Proposal);
    assert_eq!(seen.removed_leaves(), vec![2]);
    let proposal = Processed::Proposal { sender: carol.client.identity(), kind: ProposalKind::Leave };
    assert_eq!(alice.process(&leave), proposal);
    assert_eq!(bob.process(&leave), proposal);
    let commit = alice.client.commit_pending_proposals(group).unwrap().expect("a commit");
    assert_eq!(commit.removed, vec![carol.client.identity()]);
    // The commit refers to Carol's proposal by reference; the node can match it.
    let seen_commit = inspect_message(&commit.commit).unwrap();
    assert!(
        seen_commit
            .proposals
            .contains(&veche_mls::inspect::InspectedProposal::Reference(seen.proposal_ref.clone().unwrap()))
    );
    alice.client.merge_pending_commit(group).unwrap();
    alice.persist();
    match bob.process(&commit.commit) {
        Processed::Commit { removed, we_were_removed, new_epoch, sender, .. } => {
            assert_eq!(removed, vec![carol.client.identity()]);
            assert!(!we_were_removed);
            assert_eq!(new_epoch, 2);
            assert_eq!(sender, Some(alice.client.identity()));
        }
        other => panic!("{other:?}"),
    }
    match carol.process(&commit.commit) {
        Processed::Commit { we_were_removed, .. } => assert!(we_were_removed),
        other => panic!("{other:?}"),
    }
    assert!(!carol.client.is_active(group));
    assert_eq!(carol.client.encrypt(group, b"x"), Err(ClientError::NotActive(group)));

    // Alice adds Dave, then removes Bob.
    let mut dave = Device::new();
    let add = alice.client.add_members(group, &[dave.key_package()]).unwrap();
    alice.client.merge_pending_commit(group).unwrap();
    alice.persist();
    bob.process(&add.commit);
    dave.client.join_from_welcome(&add.welcome.unwrap()).unwrap();
    dave.persist();
    let remove = alice.client.remove_members(group, &[bob.account()]).unwrap();
    assert_eq!(remove.removed, vec![bob.client.identity()]);
    assert_eq!(inspect_message(&remove.commit).unwrap().removed_leaves(), vec![1]);
    alice.client.merge_pending_commit(group).unwrap();
    alice.persist();
    match bob.process(&remove.commit) {
        Processed::Commit { we_were_removed, .. } => assert!(we_were_removed),
        other => panic!("{other:?}"),
    }
    match dave.process(&remove.commit) {
        Processed::Commit { removed, .. } => assert_eq!(removed, vec![bob.client.identity()]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        alice.client.remove_members(group, &[bob.account()]).unwrap_err(),
        ClientError::NotAMember(bob.account())
    );

    // Erin joins from the GroupInfo Alice published.
    let mut erin = Device::new();
    let info = alice.client.group_info(group).unwrap();
    let (joined, external) = erin.client.join_external(&info).unwrap();
    erin.persist();
    assert_eq!(joined, group);
    assert_eq!(external.added, vec![erin.client.identity()]);
    let seen = inspect_message(&external.commit).unwrap();
    assert_eq!((seen.kind, seen.sender), (MessageKind::ExternalCommit, InspectedSender::NewMemberCommit));
    assert_eq!(seen.path_identity, Some(erin.client.identity()));
    for device in [&mut alice, &mut dave] {
        match device.process(&external.commit) {
            Processed::Commit { sender, added, .. } => {
                assert_eq!(sender, Some(erin.client.identity()));
                assert_eq!(added, vec![erin.client.identity()], "the joiner counts as added");
            }
            other => panic!("{other:?}"),
        }
    }
    let msg = erin.send(group, "I'm in");
    assert_eq!(text(alice.process(&msg)), "I'm in");
    assert_eq!(text(dave.process(&msg)), "I'm in");
    let summary = inspect_group_info(&external.group_info).unwrap();
    assert_eq!(summary.leaves.len(), 3);
    assert_eq!(alice.client.epoch(group).unwrap(), erin.client.epoch(group).unwrap());

    // Ownership hand-over: Dave becomes Owner, Alice Admin; then Alice may leave.
    assert_eq!(alice.client.leave(group), Err(ClientError::OwnerCannotLeave));
    let handover = alice.client.set_role(group, dave.account(), Role::Owner).unwrap();
    alice.client.merge_pending_commit(group).unwrap();
    alice.persist();
    for device in [&mut dave, &mut erin] {
        match device.process(&handover.commit) {
            Processed::Commit { roles_changed, .. } => assert!(roles_changed),
            other => panic!("{other:?}"),
        }
    }
    assert!(inspect_message(&handover.commit).unwrap().changes_extensions());
    let policy = erin.client.policy(group).unwrap();
    assert_eq!(policy.role(&dave.account()), Role::Owner);
    assert_eq!(policy.role(&alice.account()), Role::Admin);
    alice.client.leave(group).unwrap();
}
