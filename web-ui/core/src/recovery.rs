//! The recovery file: a device's whole browser state sealed with a passphrase.
//!
//! Layout: `MAGIC (16) || salt (16) || nonce (24) || XChaCha20-Poly1305(key, nonce, payload, aad = MAGIC)`
//! with `key = Argon2id(passphrase, salt; 19 MiB, 2 passes, 1 lane)`. The caller supplies the
//! random salt and nonce, so this module is deterministic and IO-free.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

pub const MAGIC: &[u8; 16] = b"VECHE-RECOVERY\x00\x01";
pub const SALT_LEN: usize = 16;
pub const NONCE_LEN: usize = 24;
/// Shortest passphrase accepted when sealing.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryError {
    /// The file does not start like a recovery file of this version.
    NotARecoveryFile,
    /// The passphrase is wrong or the file was changed.
    WrongPassphrase,
    /// The passphrase is shorter than [`MIN_PASSPHRASE_CHARS`].
    WeakPassphrase,
}

impl std::fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecoveryError::NotARecoveryFile => "not a Veche recovery file",
            RecoveryError::WrongPassphrase => "wrong passphrase, or the file was changed",
            RecoveryError::WeakPassphrase => "the passphrase is too short",
        })
    }
}

fn key(passphrase: &str, salt: &[u8]) -> [u8; 32] {
    let params = Params::new(19 * 1024, 2, 1, Some(32)).expect("valid Argon2 parameters");
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .expect("salt and output lengths are valid");
    key
}

/// Seals `payload` under `passphrase`.
pub fn seal(
    passphrase: &str,
    payload: &[u8],
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, RecoveryError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(RecoveryError::WeakPassphrase);
    }
    let cipher = XChaCha20Poly1305::new(&key(passphrase, &salt).into());
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: payload, aad: MAGIC })
        .map_err(|_| RecoveryError::WrongPassphrase)?;
    let mut file = Vec::with_capacity(MAGIC.len() + SALT_LEN + NONCE_LEN + sealed.len());
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&salt);
    file.extend_from_slice(&nonce);
    file.extend_from_slice(&sealed);
    Ok(file)
}

/// Opens a file made by [`seal`].
pub fn open(passphrase: &str, file: &[u8]) -> Result<Vec<u8>, RecoveryError> {
    let rest = file.strip_prefix(MAGIC.as_slice()).ok_or(RecoveryError::NotARecoveryFile)?;
    if rest.len() < SALT_LEN + NONCE_LEN + 16 {
        return Err(RecoveryError::NotARecoveryFile);
    }
    let (salt, rest) = rest.split_at(SALT_LEN);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(&key(passphrase, salt).into());
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: MAGIC })
        .map_err(|_| RecoveryError::WrongPassphrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: [u8; SALT_LEN] = [7; SALT_LEN];
    const NONCE: [u8; NONCE_LEN] = [9; NONCE_LEN];

    #[test]
    fn round_trip() {
        let file = seal("correct horse battery", b"device state", SALT, NONCE).unwrap();
        assert!(file.starts_with(MAGIC));
        assert!(!file.windows(12).any(|w| w == b"device state"), "the payload is not in the clear");
        assert_eq!(open("correct horse battery", &file).unwrap(), b"device state");
    }

    #[test]
    fn wrong_passphrase_and_tampering_are_refused() {
        let file = seal("correct horse battery", b"device state", SALT, NONCE).unwrap();
        assert_eq!(open("correct horse batterY", &file), Err(RecoveryError::WrongPassphrase));
        for i in [MAGIC.len(), MAGIC.len() + SALT_LEN, file.len() - 1] {
            let mut bad = file.clone();
            bad[i] ^= 1;
            assert_eq!(open("correct horse battery", &bad), Err(RecoveryError::WrongPassphrase), "byte {i}");
        }
    }

    #[test]
    fn other_files_are_recognised() {
        assert_eq!(open("whatever1", b"PNG\x89..."), Err(RecoveryError::NotARecoveryFile));
        assert_eq!(open("whatever1", MAGIC), Err(RecoveryError::NotARecoveryFile));
        let file = seal("correct horse battery", b"x", SALT, NONCE).unwrap();
        assert_eq!(open("correct horse battery", &file[..file.len() - 20]), Err(RecoveryError::NotARecoveryFile));
    }

    #[test]
    fn short_passphrases_are_refused() {
        assert_eq!(seal("1234567", b"x", SALT, NONCE), Err(RecoveryError::WeakPassphrase));
        assert!(seal("пароль12", b"x", SALT, NONCE).is_ok());
    }

    #[test]
    fn fresh_salt_and_nonce_give_a_different_file() {
        let a = seal("correct horse battery", b"same", SALT, NONCE).unwrap();
        let b = seal("correct horse battery", b"same", [8; SALT_LEN], [10; NONCE_LEN]).unwrap();
        assert_ne!(a, b);
    }
}
