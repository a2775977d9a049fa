//! How the native client trusts a node's HTTPS certificate.
//!
//! A node with its own CA puts that CA's fingerprint in its links; the client pins it: a chain is
//! accepted when one of its certificates has the pinned fingerprint and the serving certificate
//! verifies up to that one (name, dates, signatures). A publicly trusted certificate (ACME or the
//! operator's) verifies against the system's roots as usual. `--accept-fingerprint` trusts
//! whatever a node presents the first time (the top of its chain) and remembers it.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use std::sync::{Arc, Mutex};

/// What the client trusts for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The system's roots, or the certificate with this fingerprint and what it signs.
    Pinned([u8; 32]),
    /// The system's roots, or whatever the node presents (trust on first use).
    FirstUse,
    /// The system's roots only.
    System,
}

/// What the verifier saw: the fingerprint to remember, or why it refused.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The pinned (or first-use) anchor's fingerprint, when the chain was accepted by it.
    pub anchor: Option<[u8; 32]>,
    pub refused: Option<String>,
}

#[derive(Debug)]
pub struct Verifier {
    trust: Trust,
    system: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: Arc<Mutex<Seen>>,
}

fn sha256(der: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(der).into()
}

fn hex(fp: &[u8; 32]) -> String {
    fp.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// A rustls client config for `trust`, and where the verifier reports what it saw.
pub fn client_config(trust: Trust) -> (Arc<rustls::ClientConfig>, Arc<Mutex<Seen>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let system = (!roots.is_empty())
        .then(|| WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().ok())
        .flatten();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let verifier = Arc::new(Verifier { trust, system, provider: provider.clone(), seen: seen.clone() });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    (Arc::new(config), seen)
}

impl Verifier {
    /// Verifies the chain with `anchor` (one of its certificates) as the only root.
    fn verify_from(
        &self,
        anchor: &CertificateDer<'_>,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), Error> {
        if anchor.as_ref() == end_entity.as_ref() {
            // A self-signed serving certificate pinned by itself.
            return Ok(());
        }
        let mut roots = RootCertStore::empty();
        roots
            .add(anchor.clone().into_owned())
            .map_err(|e| Error::General(format!("unusable pinned certificate: {e}")))?;
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| Error::General(e.to_string()))?;
        let rest: Vec<CertificateDer<'_>> =
            intermediates.iter().filter(|c| c.as_ref() != anchor.as_ref()).cloned().collect();
        verifier.verify_server_cert(end_entity, &rest, server_name, &[], now).map(|_| ())
    }

    fn note(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if let Some(system) = &self.system
            && system.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now).is_ok()
        {
            return Ok(ServerCertVerified::assertion());
        }
        let chain: Vec<&CertificateDer<'_>> = std::iter::once(end_entity).chain(intermediates).collect();
        let top = chain.last().expect("non-empty");
        let anchor = match self.trust {
            Trust::Pinned(pin) => match chain.iter().find(|c| sha256(c.as_ref()) == pin) {
                Some(anchor) => *anchor,
                None => {
                    let message = format!(
                        "the node's certificate is not the one this client trusts: expected fingerprint {}, the node presents {} \
                         (if the node's operator made a new certificate authority, register again with a new link)",
                        hex(&pin),
                        hex(&sha256(top.as_ref()))
                    );
                    self.note(|s| s.refused = Some(message.clone()));
                    return Err(Error::General(message));
                }
            },
            Trust::FirstUse => *top,
            Trust::System => {
                let message = format!(
                    "the node's certificate is not trusted by this system (fingerprint {}): use an invite link that carries \
                     the node's fingerprint, or --accept-fingerprint to trust it",
                    hex(&sha256(top.as_ref()))
                );
                self.note(|s| s.refused = Some(message.clone()));
                return Err(Error::General(message));
            }
        };
        match self.verify_from(anchor, end_entity, intermediates, server_name, now) {
            Ok(()) => {
                let fp = sha256(anchor.as_ref());
                self.note(|s| s.anchor = Some(fp));
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => {
                let message = format!("the node's certificate does not verify with its pinned authority: {e}");
                self.note(|s| s.refused = Some(message.clone()));
                Err(e)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
