//! Commits and proposals that break the group policy are refused by the Client before they
//! leave the device, and — when forged with raw openmls — by every device that receives them,
//! without changing any state. Also: no input bytes make processing or inspection panic.

mod common;

use common::{Device, new_group_id, text};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    Capabilities, CredentialType, CredentialWithKey, ExtensionType, Extensions, LeafNodeIndex, LeafNodeParameters,
    MlsGroup, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::OpenMlsProvider;
use openmls_traits::types::SignatureScheme;
use veche_mls::identity::{IdentityError, device_id};
use veche_mls::inspect::{inspect_group_info, inspect_key_package, inspect_message};
use veche_mls::policy::POLICY_EXTENSION;
use veche_mls::storage::Store;
use veche_mls::{CIPHERSUITE, Client, ClientError, GroupPolicy, MemberIdentity, PolicyViolation, ProcessError};
use veche_protocol::ids::{ChatKind, GroupId, Role};

fn bytes(message: MlsMessageOut) -> Vec<u8> {
    message.tls_serialize_detached().unwrap()
}

fn leaf_of(device: &Device, group: GroupId, who: &Device) -> u32 {
    let (_, mls, _) = device.raw_copy(group);
    mls.members().find(|m| m.signature_key == who.client.identity().device.0).map(|m| m.index.u32()).expect("member")
}

fn extensions_with(
    device: &Device,
    group: GroupId,
    policy: &GroupPolicy,
) -> Extensions<openmls::prelude::GroupContext> {
    let (_, mls, _) = device.raw_copy(group);
    let exts: Vec<_> = mls
        .extensions()
        .iter()
        .map(|e| match e {
            openmls::prelude::Extension::Unknown(POLICY_EXTENSION, _) => policy.to_extension(),
            other => other.clone(),
        })
        .collect();
    Extensions::from_vec(exts).unwrap()
}

/// A raw external commit joining `group_info` as `identity`, signed by `secret`.
fn forged_external_commit(group_info: &[u8], secret: [u8; 32], identity: MemberIdentity) -> Vec<u8> {
    let store = Store::new();
    let public = device_id(&secret);
    let signer = SignatureKeyPair::from_raw(SignatureScheme::ED25519, secret.to_vec(), public.0.to_vec());
    let MlsMessageBodyIn::GroupInfo(info) = MlsMessageIn::tls_deserialize_exact(group_info).unwrap().extract() else {
        panic!("not a group info")
    };
    let capabilities = Capabilities::new(
        None,
        Some(&[CIPHERSUITE]),
        Some(&[ExtensionType::Unknown(POLICY_EXTENSION), ExtensionType::LastResort]),
        None,
        Some(&[CredentialType::Basic]),
    );
    let credential = CredentialWithKey { credential: identity.credential(), signature_key: public.0.to_vec().into() };
    let (_, bundle) = MlsGroup::external_commit_builder()
        .build_group(&store, info, credential)
        .unwrap()
        .leaf_node_parameters(LeafNodeParameters::builder().with_capabilities(capabilities).build())
        .load_psks(store.storage())
        .unwrap()
        .build(store.rand(), store.crypto(), &signer, |_| true)
        .unwrap()
        .finalize(&store)
        .unwrap();
    bytes(bundle.into_commit())
}

/// Every receiver refuses the message with this violation, and nothing changes.
fn refused_by(devices: &mut [&mut Device], group: GroupId, message: &[u8], expected: PolicyViolation) {
    for device in devices.iter_mut() {
        let epoch = device.client.epoch(group).unwrap();
        assert_eq!(device.client.process(message), Err(ProcessError::Policy(expected.clone())));
        assert_eq!(device.client.epoch(group).unwrap(), epoch);
        assert!(device.client.take_changes().is_empty(), "a refused message leaves nothing to persist");
    }
}

#[test]
fn policy_violations() {
    let (mut alice, mut bob, mut carol) = (Device::new(), Device::new(), Device::new());
    let group = new_group_id();
    alice.client.create_group(group, ChatKind::Group).unwrap();
    let add = alice.client.add_members(group, &[bob.key_package(), carol.key_package()]).unwrap();
    alice.client.merge_pending_commit(group).unwrap();
    alice.persist();
    bob.client.join_from_welcome(add.welcome.as_ref().unwrap()).unwrap();
    bob.persist();
    carol.client.join_from_welcome(add.welcome.as_ref().unwrap()).unwrap();
    carol.persist();
    let carol_leaf = leaf_of(&alice, group, &carol);

    // A Member's Client refuses to remove, add or change roles.
    let mut dave = Device::new();
    let dave_kp = dave.key_package();
    assert!(matches!(
        bob.client.remove_members(group, &[carol.account()]),
        Err(ClientError::Policy(PolicyViolation::RemoveNotAllowed { actor: Role::Member, .. }))
    ));
    assert_eq!(
        bob.client.add_members(group, std::slice::from_ref(&dave_kp)),
        Err(ClientError::Policy(PolicyViolation::AddNotAllowed(Role::Member)))
    );
    assert!(matches!(bob.client.set_role(group, bob.account(), Role::Owner), Err(ClientError::Policy(_))));
    assert!(bob.client.take_changes().is_empty(), "refused operations leave nothing behind");
    assert_eq!(bob.client.epoch(group).unwrap(), 1);
    // …and Bob's group still works (no pending commit was left behind).
    let msg = bob.send(group, "still here");
    assert_eq!(text(alice.process(&msg)), "still here");
    assert_eq!(text(carol.process(&msg)), "still here");

    // Forged: Bob (Member) commits Carol's removal.
    let (store, mut raw, signer) = bob.raw_copy(group);
    let (commit, _, _) = raw.remove_members(&store, &signer, &[LeafNodeIndex::new(carol_leaf)]).unwrap();
    let violation = PolicyViolation::RemoveNotAllowed { actor: Role::Member, target: Role::Member };
    refused_by(&mut [&mut alice, &mut carol], group, &bytes(commit), violation.clone());

    // Forged: Bob proposes Carol's removal.
    let (store, mut raw, signer) = bob.raw_copy(group);
    let (proposal, _) = raw.propose_remove_member(&store, &signer, LeafNodeIndex::new(carol_leaf)).unwrap();
    refused_by(&mut [&mut alice, &mut carol], group, &bytes(proposal), violation);

    // Forged: Bob (Member) makes himself Owner.
    let mut policy = alice.client.policy(group).unwrap();
    policy.set(bob.account(), Role::Owner);
    policy.set(alice.account(), Role::Member);
    let (store, mut raw, signer) = bob.raw_copy(group);
    let (commit, _, _) =
        raw.update_group_context_extensions(&store, extensions_with(&bob, group, &policy), &signer).unwrap();
    refused_by(&mut [&mut alice, &mut carol], group, &bytes(commit), PolicyViolation::ExtensionsNotAllowed);

    // Alice makes Carol an Admin. An Admin still cannot change roles, nor remove the Owner.
    let promote = alice.client.set_role(group, carol.account(), Role::Admin).unwrap();
    alice.client.merge_pending_commit(group).unwrap();
    alice.persist();
    bob.process(&promote.commit);
    carol.process(&promote.commit);
    let mut policy = carol.client.policy(group).unwrap();
    policy.set(bob.account(), Role::Admin);
    let (store, mut raw, signer) = carol.raw_copy(group);
    let (commit, _, _) =
        raw.update_group_context_extensions(&store, extensions_with(&carol, group, &policy), &signer).unwrap();
    refused_by(&mut [&mut alice, &mut bob], group, &bytes(commit), PolicyViolation::ExtensionsNotAllowed);
    let (store, mut raw, signer) = carol.raw_copy(group);
    let (commit, _, _) = raw.remove_members(&store, &signer, &[LeafNodeIndex::new(0)]).unwrap();
    refused_by(
        &mut [&mut alice, &mut bob],
        group,
        &bytes(commit),
        PolicyViolation::RemoveNotAllowed { actor: Role::Admin, target: Role::Owner },
    );
    // An Admin may add members.
    let add = carol.client.add_members(group, &[dave_kp]).unwrap();
    carol.client.merge_pending_commit(group).unwrap();
    carol.persist();
    alice.process(&add.commit);
    bob.process(&add.commit);
    dave.client.join_from_welcome(&add.welcome.unwrap()).unwrap();
    dave.persist();

    // External joins claiming an account that holds a role are refused, by the joiner's own
    // Client and by every member.
    let info = alice.client.group_info(group).unwrap();
    let mallory = Client::generate_secret();
    let claim = MemberIdentity { account: carol.account(), device: device_id(&mallory) };
    let mut impostor = Client::new_for_account(mallory, carol.account());
    assert!(matches!(impostor.join_external(&info), Err(ClientError::Policy(PolicyViolation::ExternalJoinPrivileged))));
    let forged = forged_external_commit(&info, mallory, claim);
    refused_by(&mut [&mut alice, &mut bob, &mut dave], group, &forged, PolicyViolation::ExternalJoinPrivileged);
    // A credential naming another device than the signing key is refused too.
    let liar = MemberIdentity::first_device(veche_protocol::ids::DeviceId([7; 32]));
    let forged = forged_external_commit(&info, Client::generate_secret(), liar);
    refused_by(&mut [&mut alice, &mut bob], group, &forged, PolicyViolation::BadIdentity(IdentityError::KeyMismatch));

    // The group still works after all of this.
    let msg = alice.send(group, "all good");
    for device in [&mut bob, &mut carol, &mut dave] {
        assert_eq!(text(device.process(&msg)), "all good");
    }

    // Direct chats: two members, no external joins.
    let direct = new_group_id();
    alice.client.create_group(direct, ChatKind::Direct).unwrap();
    let add = alice.client.add_members(direct, &[bob.key_package()]).unwrap();
    alice.client.merge_pending_commit(direct).unwrap();
    alice.persist();
    bob.client.join_from_welcome(&add.welcome.unwrap()).unwrap();
    bob.persist();
    assert_eq!(
        alice.client.add_members(direct, &[carol.key_package()]),
        Err(ClientError::Policy(PolicyViolation::DirectTooLarge))
    );
    let info = alice.client.group_info(direct).unwrap();
    assert_eq!(carol.client.join_external(&info), Err(ClientError::Policy(PolicyViolation::DirectExternalJoin)));
    let forged = forged_external_commit(&info, carol.secret, carol.client.identity());
    refused_by(&mut [&mut alice, &mut bob], direct, &forged, PolicyViolation::DirectExternalJoin);
}

#[test]
fn garbage_never_panics() {
    let (mut alice, mut bob) = (Device::new(), Device::new());
    let group = new_group_id();
    let info = alice.client.create_group(group, ChatKind::Group).unwrap();
    let kp = bob.key_package();
    let add = alice.client.add_members(group, std::slice::from_ref(&kp)).unwrap();
    alice.client.merge_pending_commit(group).unwrap();
    alice.persist();
    bob.client.join_from_welcome(add.welcome.as_ref().unwrap()).unwrap();
    bob.persist();
    let app = alice.send(group, "payload");
    let samples = [add.commit.clone(), add.welcome.clone().unwrap(), add.group_info.clone(), info, kp, app];

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let epoch = bob.client.epoch(group).unwrap();
    for sample in &samples {
        for _ in 0..150 {
            let mut input = sample.clone();
            match next() % 3 {
                0 => {
                    let i = (next() as usize) % input.len();
                    input[i] ^= 1 << (next() % 8);
                }
                1 => input.truncate((next() as usize) % input.len()),
                _ => {
                    let i = (next() as usize) % input.len();
                    input[i] = next() as u8;
                }
            }
            let _ = inspect_message(&input);
            let _ = inspect_group_info(&input);
            let _ = inspect_key_package(&input);
            let _ = bob.client.process(&input);
            let _ = bob.client.join_from_welcome(&input);
            let _ = bob.client.join_external(&input);
            bob.client.rollback();
        }
    }
    let random: Vec<u8> = (0..512).map(|_| next() as u8).collect();
    assert!(bob.client.process(&random).is_err());
    assert!(inspect_message(&[]).is_err());
    // Bob's group is intact.
    assert_eq!(bob.client.epoch(group).unwrap(), epoch);
    assert_eq!(text(bob.process(&alice.send(group, "after"))), "after");
}
