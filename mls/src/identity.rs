//! Who a leaf is: the 64-byte identity inside every leaf's BasicCredential, and the device key
//! that signs for it.
//!
//! A leaf is accepted only if its credential decodes to a [`MemberIdentity`] and the leaf's
//! signature key is exactly the identity's device key, so a credential can never name a device
//! other than the one that signs.

use ed25519_dalek::SigningKey;
use openmls::prelude::{BasicCredential, Credential, CredentialType, CredentialWithKey};
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::types::SignatureScheme;
use veche_protocol::ids::{AccountId, DeviceId};

/// Length of the identity bytes inside a credential: account (32) || device (32).
pub const IDENTITY_LEN: usize = 64;

/// The identity a leaf claims: the account it belongs to and the device that holds the leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct MemberIdentity {
    pub account: AccountId,
    pub device: DeviceId,
}

/// A credential or leaf does not carry a valid Veche identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("credential is not a basic credential")]
    NotBasic,
    #[error("credential identity is {0} bytes, expected 64")]
    BadLength(usize),
    #[error("leaf signature key does not match the device id in its credential")]
    KeyMismatch,
}

impl MemberIdentity {
    /// The identity of an account's first device, whose account id is its own device key.
    pub fn first_device(device: DeviceId) -> Self {
        Self { account: AccountId(device.0), device }
    }

    /// The 64 identity bytes: account || device.
    pub fn encode(&self) -> [u8; IDENTITY_LEN] {
        let mut out = [0u8; IDENTITY_LEN];
        out[..32].copy_from_slice(&self.account.0);
        out[32..].copy_from_slice(&self.device.0);
        out
    }

    /// Parses the 64 identity bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, IdentityError> {
        if bytes.len() != IDENTITY_LEN {
            return Err(IdentityError::BadLength(bytes.len()));
        }
        let mut account = [0u8; 32];
        let mut device = [0u8; 32];
        account.copy_from_slice(&bytes[..32]);
        device.copy_from_slice(&bytes[32..]);
        Ok(Self { account: AccountId(account), device: DeviceId(device) })
    }

    /// Decodes the identity from a credential, without checking any signature key.
    pub fn from_credential(credential: &Credential) -> Result<Self, IdentityError> {
        if credential.credential_type() != CredentialType::Basic {
            return Err(IdentityError::NotBasic);
        }
        let basic = BasicCredential::try_from(credential.clone()).map_err(|_| IdentityError::NotBasic)?;
        Self::decode(basic.identity())
    }

    /// Decodes the identity of a leaf and checks that its signature key is the device key.
    pub fn from_leaf(credential: &Credential, signature_key: &[u8]) -> Result<Self, IdentityError> {
        let identity = Self::from_credential(credential)?;
        if signature_key != identity.device.0.as_slice() {
            return Err(IdentityError::KeyMismatch);
        }
        Ok(identity)
    }

    /// The BasicCredential carrying this identity.
    pub fn credential(&self) -> Credential {
        BasicCredential::new(self.encode().to_vec()).into()
    }
}

/// A device's signing key and the identity it signs as.
pub(crate) struct DeviceKey {
    pub(crate) identity: MemberIdentity,
    pub(crate) signer: SignatureKeyPair,
}

impl DeviceKey {
    /// Derives the device key from its 32-byte ed25519 secret.
    pub(crate) fn new(secret: &[u8; 32], account: Option<AccountId>) -> Self {
        let public = device_id(secret);
        let identity = match account {
            Some(account) => MemberIdentity { account, device: public },
            None => MemberIdentity::first_device(public),
        };
        // openmls signs with its own ed25519-dalek; both sides agree on the raw 32-byte seed.
        let signer = SignatureKeyPair::from_raw(SignatureScheme::ED25519, secret.to_vec(), public.0.to_vec());
        Self { identity, signer }
    }

    pub(crate) fn credential_with_key(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: self.identity.credential(),
            signature_key: self.identity.device.0.to_vec().into(),
        }
    }
}

/// The device id (ed25519 public key) of a 32-byte secret.
pub fn device_id(secret: &[u8; 32]) -> DeviceId {
    DeviceId(SigningKey::from_bytes(secret).verifying_key().to_bytes())
}

/// A fresh random device secret from the operating system's generator.
pub fn generate_secret() -> [u8; 32] {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    SigningKey::generate(&mut rng).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_rejects_bad_lengths() {
        let id = MemberIdentity { account: AccountId([1; 32]), device: DeviceId([2; 32]) };
        assert_eq!(MemberIdentity::decode(&id.encode()).unwrap(), id);
        assert_eq!(MemberIdentity::from_credential(&id.credential()).unwrap(), id);
        assert_eq!(MemberIdentity::decode(&[0; 63]), Err(IdentityError::BadLength(63)));
        assert_eq!(MemberIdentity::from_leaf(&id.credential(), &[3; 32]), Err(IdentityError::KeyMismatch));
        assert!(MemberIdentity::from_leaf(&id.credential(), &[2; 32]).is_ok());
    }

    #[test]
    fn device_key_matches_dalek() {
        let secret = generate_secret();
        let key = DeviceKey::new(&secret, None);
        assert_eq!(key.identity.device, device_id(&secret));
        assert_eq!(key.identity.account.0, key.identity.device.0);
        assert_eq!(key.signer.public(), key.identity.device.0.as_slice());
    }
}
