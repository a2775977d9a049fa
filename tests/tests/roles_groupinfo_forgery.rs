//! Scenario: a modified device uploads, with a valid commit, a GroupInfo that gives roles the commit
//! does not (issue 24, "Roles on the node and on devices can disagree").
//!
//! Alice owns a group. She adds Mallory with an ordinary commit (members' devices see Mallory as a
//! member), but the GroupInfo her device uploads for the new epoch is re-signed with her own leaf
//! key after giving Mallory the Admin role in the policy extension. The signature verifies and the
//! tree matches, so only comparing the roles with what the commit does can tell. The node must:
//! - refuse that commit with a clear error, leaving the chat as it was (Mallory not in it);
//! - accept the same addition with the honest GroupInfo, listing Mallory as a plain member;
//! - refuse the same forgery for an account already in the chat (Bob promoted to Owner).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use ed25519_dalek::{Signer, SigningKey};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _, VLBytes};
use openmls::prelude::{Extension, Extensions, GroupContext, MlsMessageBodyIn, MlsMessageIn};
use veche_protocol::ids::{AccountId, GroupId, Role};
use veche_protocol::wire::{ErrorCode, Request, Response};
use veche_tests::raw::RawDevice;
use veche_tests::{Node, TempDir};

/// `group_info` (an MLSMessage carrying a GroupInfo) with the policy extension's roles changed by
/// `change`, re-signed by `key` (the signer's leaf key, which the device holds).
fn forge_roles(group_info: &[u8], key: &SigningKey, change: impl FnOnce(&mut veche_mls::GroupPolicy)) -> Vec<u8> {
    let message = MlsMessageIn::tls_deserialize_exact(group_info).expect("an MLSMessage");
    let MlsMessageBodyIn::GroupInfo(info) = message.extract() else { panic!("not a GroupInfo") };
    let context = info.group_context();
    let context_bytes = context.tls_serialize_detached().expect("serializes");
    // MLSMessage header: version (2 bytes) and wire format (2 bytes), then the GroupInfo, which
    // starts with its GroupContext, whose last field is its extensions.
    assert_eq!(&group_info[4..4 + context_bytes.len()], &context_bytes[..], "the GroupContext comes first");
    let old_extensions = context.extensions().tls_serialize_detached().expect("serializes");
    let mut policy = veche_mls::GroupPolicy::from_extensions(context.extensions()).expect("a policy");
    change(&mut policy);
    let new_extensions: Vec<Extension> = context
        .extensions()
        .iter()
        .map(|e| match e {
            Extension::Unknown(kind, _) if *kind == veche_mls::policy::POLICY_EXTENSION => policy.to_extension(),
            other => other.clone(),
        })
        .collect();
    let new_extensions = Extensions::<GroupContext>::from_vec(new_extensions).expect("valid extensions");
    let mut new_context = context_bytes[..context_bytes.len() - old_extensions.len()].to_vec();
    new_context.extend(new_extensions.tls_serialize_detached().expect("serializes"));
    GroupContext::tls_deserialize_exact(&new_context).expect("still a GroupContext");
    // The rest of the GroupInfo to be signed (extensions, confirmation tag, signer), then the
    // signature (a 64-byte ed25519 signature: one length byte 0x40, 0x40 as a 2-byte varint).
    let rest_start = 4 + context_bytes.len();
    let signature_len = 2 + 64;
    let rest = &group_info[rest_start..group_info.len() - signature_len];
    assert_eq!(&group_info[group_info.len() - signature_len..][..2], &[0x40, 0x40], "a 64-byte signature at the end");
    let mut tbs = new_context;
    tbs.extend_from_slice(rest);
    // SignWithLabel (RFC 9420 §5.1.2): SignContent { label = "MLS 1.0 GroupInfoTBS", content }.
    let mut content = VLBytes::new(b"MLS 1.0 GroupInfoTBS".to_vec()).tls_serialize_detached().expect("serializes");
    content.extend(VLBytes::new(tbs.clone()).tls_serialize_detached().expect("serializes"));
    let signature = key.sign(&content).to_bytes();
    let mut forged = group_info[..4].to_vec();
    forged.extend(tbs);
    forged.extend([0x40, 0x40]);
    forged.extend(signature);
    forged
}

async fn roles(alice: &mut RawDevice, group: GroupId) -> anyhow::Result<BTreeMap<AccountId, Role>> {
    match alice.conn.call(Request::Chat { group }).await? {
        Ok(Response::Chat(info)) => Ok(info.members.iter().map(|m| (m.account, m.role)).collect()),
        other => bail!("chat: {other:?}"),
    }
}

async fn key_package(alice: &mut RawDevice, account: AccountId) -> anyhow::Result<Vec<u8>> {
    match alice.conn.call(Request::ClaimKeyPackages { account }).await? {
        Ok(Response::KeyPackages(mut packages)) => packages.pop().context("a key package"),
        other => bail!("claim: {other:?}"),
    }
}

#[tokio::test]
async fn a_groupinfo_cannot_give_roles_its_commit_does_not() -> anyhow::Result<()> {
    let dir = TempDir::new("roles-forgery");
    let node = Node::start(dir.path(), &["--registration", "open", "--mdns", "false"])?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let bob = RawDevice::register(&node.url, "Bob", None).await?;
    let mallory = RawDevice::register(&node.url, "Mallory", None).await?;
    let group = GroupId([42; 16]);
    alice.create_chat(group, "Reading circle").await?;

    // Bob joins honestly.
    let package = key_package(&mut alice, bob.account()).await?;
    let bundle = alice.mls.add_members(group, &[package])?;
    let request =
        Request::Commit { group, commit: bundle.commit, welcome: bundle.welcome, group_info: bundle.group_info };
    alice.conn.call(request).await?.map_err(|e| anyhow::anyhow!("adding Bob: {e}"))?;
    alice.mls.merge_pending_commit(group)?;

    // Mallory is added by the commit as a member, but the GroupInfo makes her an Admin.
    let package = key_package(&mut alice, mallory.account()).await?;
    let bundle = alice.mls.add_members(group, &[package])?;
    let forged = forge_roles(&bundle.group_info, &alice.key, |p| p.set(mallory.account(), Role::Admin));
    assert!(veche_mls::inspect::inspect_group_info(&forged).is_ok(), "the forgery verifies on its own");
    let request =
        Request::Commit { group, commit: bundle.commit.clone(), welcome: bundle.welcome.clone(), group_info: forged };
    let answer = alice.conn.call(request).await?;
    let before = roles(&mut alice, group).await?;
    assert!(
        !before.contains_key(&mallory.account()),
        "Mallory is not in the chat after the refused commit: {before:?}"
    );
    let error = answer.err().context("the commit with the forged GroupInfo is refused")?;
    assert_eq!(error.code, ErrorCode::BadRequest, "{error}");
    assert!(error.message.contains("roles"), "the error names the roles: {error}");

    // The same commit with its honest GroupInfo goes through; Mallory is a member.
    let request =
        Request::Commit { group, commit: bundle.commit, welcome: bundle.welcome, group_info: bundle.group_info };
    alice.conn.call(request).await?.map_err(|e| anyhow::anyhow!("adding Mallory honestly: {e}"))?;
    alice.mls.merge_pending_commit(group)?;
    let after = roles(&mut alice, group).await?;
    assert_eq!(after.get(&mallory.account()), Some(&Role::Member), "{after:?}");

    // A commit that does change roles (Mallory to Admin), with a GroupInfo that also makes Bob an
    // Owner: only what the commit sets counts.
    let bundle = alice.mls.set_role(group, mallory.account(), Role::Admin)?;
    let forged = forge_roles(&bundle.group_info, &alice.key, |p| p.set(bob.account(), Role::Owner));
    let request = Request::Commit { group, commit: bundle.commit.clone(), welcome: None, group_info: forged };
    let error = alice.conn.call(request).await?.err().context("Bob's promotion by GroupInfo alone is refused")?;
    assert_eq!(error.code, ErrorCode::BadRequest, "{error}");
    let request = Request::Commit { group, commit: bundle.commit, welcome: None, group_info: bundle.group_info };
    alice.conn.call(request).await?.map_err(|e| anyhow::anyhow!("making Mallory an admin: {e}"))?;
    let last = roles(&mut alice, group).await?;
    assert_eq!(last.get(&bob.account()), Some(&Role::Member), "{last:?}");
    assert_eq!(last.get(&mallory.account()), Some(&Role::Admin), "{last:?}");
    Ok(())
}
