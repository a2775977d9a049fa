//! The exact bytes a device signs. Every signature is bound to the node id and to a fresh
//! challenge the node issued on this connection, so a captured signature is useless elsewhere.

use crate::ids::{AccountId, DeviceId};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

const SIGN_IN_CONTEXT: &[u8] = b"veche/sign-in/v1";
const REGISTER_CONTEXT: &[u8] = b"veche/register/v1";

/// Length of a challenge issued by the node.
pub const CHALLENGE_LEN: usize = 32;

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

/// Bytes signed to sign in: context, node id, challenge, device.
pub fn sign_in_payload(node_id: &str, challenge: &[u8; CHALLENGE_LEN], device: &DeviceId) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    for field in [SIGN_IN_CONTEXT, node_id.as_bytes(), challenge, device.as_bytes()] {
        push_field(&mut out, field);
    }
    out
}

/// Bytes signed to register: context, node id, challenge, device, account, display name.
pub fn register_payload(
    node_id: &str,
    challenge: &[u8; CHALLENGE_LEN],
    device: &DeviceId,
    account: &AccountId,
    display_name: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(192);
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
    out
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
        let payload = sign_in_payload("node-a", &[1; 32], &device);
        let sig = sign(&key, &payload);
        assert!(verify(&device, &payload, &sig).is_ok());
        let other_challenge = sign_in_payload("node-a", &[2; 32], &device);
        assert_eq!(verify(&device, &other_challenge, &sig), Err(AuthError::BadSignature));
        let other_node = sign_in_payload("node-b", &[1; 32], &device);
        assert_eq!(verify(&device, &other_node, &sig), Err(AuthError::BadSignature));
    }
}
