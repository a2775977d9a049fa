//! The exact bytes a device signs. Every signature is bound to the node id and to a fresh
//! challenge the node issued on this connection, so a captured signature is useless elsewhere.
//!
//! A device that can read its TLS session's exporter (RFC 9266 `tls-exporter`: the native client)
//! signs it too. The node checks it against its own end of the connection, so a machine in the
//! middle that terminates the device's TLS and relays the challenge and signature over its own TLS
//! session to the node is refused: the two sessions' exporters differ. A browser page cannot read
//! the exporter; it signs [`ChannelBinding::Unbound`], and its TLS and the browser's per-origin key
//! storage are what protect it (see spec/protocol.md, "Sign-in").

use crate::ids::{AccountId, DeviceId};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

const SIGN_IN_CONTEXT: &[u8] = b"veche/sign-in/v1";
const REGISTER_CONTEXT: &[u8] = b"veche/register/v1";
const HOME_CONTEXT: &[u8] = b"veche/home/v1";

/// Length of a challenge issued by the node.
pub const CHALLENGE_LEN: usize = 32;

/// The TLS exporter label for channel bindings (RFC 9266).
pub const TLS_EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";
/// Length of the exporter value both ends derive (RFC 9266 uses 32 bytes).
pub const TLS_EXPORTER_LEN: usize = 32;
const TLS_EXPORTER_FIELD: &[u8] = b"tls-exporter";

/// What a signature is bound to besides the node and its challenge (sent with the request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelBinding {
    /// Nothing more: a browser page (it cannot read its TLS session), or a connection without TLS.
    #[default]
    Unbound,
    /// The TLS session's exporter ([`TLS_EXPORTER_LABEL`], no context): the node recomputes it from
    /// its own end of this connection.
    TlsExporter,
}

impl ChannelBinding {
    /// The binding a device uses when its connection gives it `exporter`.
    pub fn of(exporter: Option<&[u8; TLS_EXPORTER_LEN]>) -> ChannelBinding {
        match exporter {
            Some(_) => ChannelBinding::TlsExporter,
            None => ChannelBinding::Unbound,
        }
    }
}

/// Signature check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("device id is not a valid ed25519 public key")]
    BadKey,
    #[error("signature does not verify")]
    BadSignature,
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

/// The TLS exporter, when the signature is bound to it: two more fields (name, value).
fn push_exporter(out: &mut Vec<u8>, exporter: Option<&[u8; TLS_EXPORTER_LEN]>) {
    if let Some(exporter) = exporter {
        push_field(out, TLS_EXPORTER_FIELD);
        push_field(out, exporter);
    }
}

/// Bytes signed to sign in: context, node id, challenge, device, and the connection's TLS
/// exporter when bound to it ([`ChannelBinding::TlsExporter`]).
pub fn sign_in_payload(
    node_id: &str,
    challenge: &[u8; CHALLENGE_LEN],
    device: &DeviceId,
    exporter: Option<&[u8; TLS_EXPORTER_LEN]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(192);
    for field in [SIGN_IN_CONTEXT, node_id.as_bytes(), challenge, device.as_bytes()] {
        push_field(&mut out, field);
    }
    push_exporter(&mut out, exporter);
    out
}

/// Bytes signed to register: context, node id, challenge, device, account, display name, and
/// the connection's TLS exporter when bound to it.
pub fn register_payload(
    node_id: &str,
    challenge: &[u8; CHALLENGE_LEN],
    device: &DeviceId,
    account: &AccountId,
    display_name: &str,
    exporter: Option<&[u8; TLS_EXPORTER_LEN]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for field in [
        REGISTER_CONTEXT,
        node_id.as_bytes(),
        challenge,
        device.as_bytes(),
        account.as_bytes(),
        display_name.as_bytes(),
    ] {
        push_field(&mut out, field);
    }
    push_exporter(&mut out, exporter);
    out
}

/// Bytes the account key (the account's first device key: `AccountId == DeviceId` of that
/// device) signs to say which node is the account's home: context, account, home node id (its
/// libp2p peer id, as [`crate::wire::Hello::node_id`] shows it). Not bound to a connection or a
/// challenge: other nodes check it when the home answers a lookup
/// ([`crate::federation::FedReply::Located`]), so a linked node cannot pass itself off as the home
/// of an account that did not sign it.
pub fn home_payload(account: &AccountId, home: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    for field in [HOME_CONTEXT, account.as_bytes(), home.as_bytes()] {
        push_field(&mut out, field);
    }
    out
}

/// Verifies an account's signed home binding ([`home_payload`]), made with the account's key.
pub fn verify_home(account: &AccountId, home: &str, signature: &[u8]) -> Result<(), AuthError> {
    verify(&DeviceId(account.0), &home_payload(account, home), signature)
}

/// Signs `payload` with a device key.
pub fn sign(key: &SigningKey, payload: &[u8]) -> Vec<u8> {
    key.sign(payload).to_bytes().to_vec()
}

/// Verifies a device's signature over `payload`.
pub fn verify(device: &DeviceId, payload: &[u8], signature: &[u8]) -> Result<(), AuthError> {
    let key = VerifyingKey::from_bytes(device.as_bytes()).map_err(|_| AuthError::BadKey)?;
    let signature = Signature::from_slice(signature).map_err(|_| AuthError::BadSignature)?;
    key.verify_strict(payload, &signature).map_err(|_| AuthError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_node_and_challenge() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let device = DeviceId(key.verifying_key().to_bytes());
        let payload = sign_in_payload("node-a", &[1; 32], &device, None);
        let sig = sign(&key, &payload);
        assert!(verify(&device, &payload, &sig).is_ok());
        let other_challenge = sign_in_payload("node-a", &[2; 32], &device, None);
        assert_eq!(verify(&device, &other_challenge, &sig), Err(AuthError::BadSignature));
        let other_node = sign_in_payload("node-b", &[1; 32], &device, None);
        assert_eq!(verify(&device, &other_node, &sig), Err(AuthError::BadSignature));
    }

    #[test]
    fn a_bound_signature_holds_only_for_its_tls_session() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let device = DeviceId(key.verifying_key().to_bytes());
        let account = AccountId([3; 32]);
        // The device's TLS session ends at a relay; the relay's own session to the node differs.
        let (device_session, relay_session) = ([5; TLS_EXPORTER_LEN], [6; TLS_EXPORTER_LEN]);
        for (signed, other_session, unbound) in [
            (
                sign_in_payload("node-a", &[1; 32], &device, Some(&device_session)),
                sign_in_payload("node-a", &[1; 32], &device, Some(&relay_session)),
                sign_in_payload("node-a", &[1; 32], &device, None),
            ),
            (
                register_payload("node-a", &[1; 32], &device, &account, "Ann", Some(&device_session)),
                register_payload("node-a", &[1; 32], &device, &account, "Ann", Some(&relay_session)),
                register_payload("node-a", &[1; 32], &device, &account, "Ann", None),
            ),
        ] {
            let sig = sign(&key, &signed);
            assert!(verify(&device, &signed, &sig).is_ok());
            assert_eq!(verify(&device, &other_session, &sig), Err(AuthError::BadSignature));
            // Nor can the relay pass a bound signature off as an unbound one.
            assert_eq!(verify(&device, &unbound, &sig), Err(AuthError::BadSignature));
        }
    }

    #[test]
    fn a_home_binding_names_one_account_and_one_home() {
        let key = SigningKey::from_bytes(&[4; 32]);
        let account = AccountId(key.verifying_key().to_bytes());
        let signature = sign(&key, &home_payload(&account, "node-b"));
        assert!(verify_home(&account, "node-b", &signature).is_ok());
        // Another node cannot use it for itself, nor for another account.
        assert_eq!(verify_home(&account, "node-r", &signature), Err(AuthError::BadSignature));
        let other = AccountId(SigningKey::from_bytes(&[5; 32]).verifying_key().to_bytes());
        assert_eq!(verify_home(&other, "node-b", &signature), Err(AuthError::BadSignature));
        // A node's own key signing "this account lives on me" is not the account's signature.
        let rogue = SigningKey::from_bytes(&[6; 32]);
        let forged = sign(&rogue, &home_payload(&account, "node-r"));
        assert_eq!(verify_home(&account, "node-r", &forged), Err(AuthError::BadSignature));
        // Fields are length-prefixed: moving bytes between account and home changes the payload.
        assert_ne!(home_payload(&account, "ab"), {
            let mut p = Vec::new();
            push_field(&mut p, HOME_CONTEXT);
            push_field(&mut p, account.as_bytes());
            push_field(&mut p, b"a");
            p
        });
        assert_eq!(&home_payload(&account, "b")[..4], &(HOME_CONTEXT.len() as u32).to_be_bytes());
    }
}
