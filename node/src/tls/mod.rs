//! HTTPS for the node's HTTP port: where its certificate comes from, and keeping it current.
//!
//! - `--tls-cert FILE --tls-key FILE`: the operator's certificate, reloaded on SIGHUP and when the
//!   files change.
//! - default: the node-local CA ([`ca`]) issues a short-lived serving certificate for every LAN
//!   address, the host name, `<host>.local`, `<node name>.local` and the `--public-url` host, and
//!   issues a new one when the addresses change or a third of its life is left.
//! - `--acme-domain NAME`: a publicly trusted certificate by ACME (TLS-ALPN-01 on this port),
//!   stored in `<data dir>/tls/acme` and renewed by rustls-acme.
//! - `--tls off`: plain HTTP (behind a reverse proxy that terminates TLS).
//!
//! Links the node prints carry the SHA-256 fingerprint of the CA certificate (or of the top of the
//! operator's chain), which the native client pins.

pub mod ca;
pub mod listener;

use anyhow::Context;
use ca::{LocalCa, Names, PublicHost};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often the node looks at its addresses (a new lease gets a certificate within this).
const CHECK_EVERY: Duration = Duration::from_secs(10);

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// The node-local CA (the default).
    LocalCa,
    /// The operator's PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate by ACME.
    Acme(AcmeSettings),
    /// No TLS.
    Off,
}

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    pub domains: Vec<String>,
    pub email: Option<String>,
    pub directory: String,
    /// A CA to trust for the ACME server's HTTPS besides the system's roots.
    pub extra_ca: Option<PathBuf>,
}

/// The certificate the node serves, swapped in place when it is renewed or reloaded.
#[derive(Debug)]
struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

impl Resolver {
    fn set(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
    }
}

/// The node's TLS: the acceptor the listener uses, and what members need to trust it.
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// SHA-256 of the trust anchor (the local CA, or the top of the operator's chain): what links carry.
    /// None with ACME: a publicly trusted certificate needs no pin.
    pub fingerprint: Option<[u8; 32]>,
    /// Whether the certificate is publicly trusted (ACME): then HTTPS responses carry HSTS.
    pub public: bool,
    /// The local CA's certificate (PEM, DER), when the node uses one.
    pub ca: Option<CaCert>,
}

#[derive(Clone)]
pub struct CaCert {
    pub pem: String,
    pub der: Vec<u8>,
    pub node_name: String,
}

/// What names to cover: computed from the machine's addresses each time.
#[derive(Clone)]
pub struct NameSource {
    pub node_name: String,
    pub host_name: String,
    pub public: Option<PublicHost>,
}

impl NameSource {
    pub fn new(node_name: &str, public_url: Option<&str>) -> Self {
        NameSource {
            node_name: node_name.to_string(),
            host_name: host_name(),
            public: public_url.and_then(PublicHost::from_url),
        }
    }

    /// Every address and name members may reach this node by.
    pub fn current(&self) -> Names {
        let mut names = Names { dns: vec!["localhost".into()], ips: Vec::new() };
        if !self.host_name.is_empty() {
            names.dns.push(self.host_name.clone());
            names.dns.push(format!("{}.local", self.host_name));
        }
        if let Some(label) = mdns_label(&self.node_name) {
            names.dns.push(format!("{label}.local"));
        }
        names.ips.extend(if_addrs::get_if_addrs().unwrap_or_default().into_iter().map(|a| a.ip()));
        names.ips.push(IpAddr::from([127, 0, 0, 1]));
        match &self.public {
            Some(PublicHost::Dns(d)) => names.dns.push(d.clone()),
            Some(PublicHost::Ip(ip)) => names.ips.push(*ip),
            None => {}
        }
        names.normalized()
    }
}

/// The node's name as one DNS label (`Town Library` → `town-library`), for `<label>.local`.
pub fn mdns_label(name: &str) -> Option<String> {
    let mut label = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            label.push(c);
        } else if !label.is_empty() && !label.ends_with('-') {
            label.push('-');
        }
    }
    let label = label.trim_end_matches('-');
    let label = &label[..label.len().min(63)];
    (!label.is_empty()).then(|| label.trim_end_matches('-').to_string())
}

fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

fn certified(chain: Vec<CertificateDer<'static>>, key: &PrivateKeyDer<'static>) -> anyhow::Result<Arc<CertifiedKey>> {
    let signing = rustls::crypto::ring::sign::any_supported_type(key).context("unsupported private key type")?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

fn load_files(cert: &Path, key: &Path) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading the private key {}", key.display()))?;
    Ok((chain, key))
}

fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(resolver);
    // HTTP/1.1 only: WebSockets over HTTP/2 need extended CONNECT, and members' browsers open
    // a few connections at most.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

impl Tls {
    /// Sets up TLS per `source`; `None` for [`TlsSource::Off`].
    pub fn start(source: &TlsSource, data_dir: &Path, names: NameSource) -> anyhow::Result<Option<Arc<Tls>>> {
        match source {
            TlsSource::Off => Ok(None),
            TlsSource::Files { cert, key } => {
                let (chain, private) = load_files(cert, key)?;
                let fingerprint = fingerprint(chain.last().expect("non-empty chain"));
                let resolver = Arc::new(Resolver { current: RwLock::new(certified(chain, &private)?) });
                let tls = Arc::new(Tls {
                    acceptor: tokio_rustls::TlsAcceptor::from(server_config(resolver.clone())),
                    fingerprint: Some(fingerprint),
                    public: false,
                    ca: None,
                });
                tokio::spawn(reload_files(resolver, cert.clone(), key.clone()));
                Ok(Some(tls))
            }
            TlsSource::Acme(settings) => Ok(Some(acme(settings, data_dir)?)),
            TlsSource::LocalCa => {
                let ca = LocalCa::load_or_create(data_dir, &names.node_name, &names.host_name, names.public.as_ref())?;
                let issued = ca.issue(&names.current())?;
                let resolver =
                    Arc::new(Resolver { current: RwLock::new(certified(issued.chain.clone(), &issued.key)?) });
                let tls = Arc::new(Tls {
                    acceptor: tokio_rustls::TlsAcceptor::from(server_config(resolver.clone())),
                    fingerprint: Some(fingerprint(&ca.cert_der)),
                    public: false,
                    ca: Some(CaCert {
                        pem: ca.cert_pem.clone(),
                        der: ca.cert_der.to_vec(),
                        node_name: names.node_name.clone(),
                    }),
                });
                tokio::spawn(renew(resolver, ca, names, issued.names, issued.not_after));
                Ok(Some(tls))
            }
        }
    }

    /// The fingerprint as it appears in links: base64url, no padding.
    pub fn fingerprint_text(&self) -> Option<String> {
        use base64::Engine;
        self.fingerprint.map(|fp| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(fp))
    }
}

/// ACME: rustls-acme orders the certificate (and renews it) in a task; its resolver answers the
/// TLS-ALPN-01 challenge on this port and serves the certificate once there is one.
fn acme(settings: &AcmeSettings, data_dir: &Path) -> anyhow::Result<Arc<Tls>> {
    use futures_util::StreamExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(extra) = &settings.extra_ca {
        for cert in CertificateDer::pem_file_iter(extra).with_context(|| format!("reading {}", extra.display()))? {
            roots.add(cert.with_context(|| format!("parsing {}", extra.display()))?)?;
        }
    }
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let cache = ca::tls_dir(data_dir).join("acme");
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let mut config = rustls_acme::AcmeConfig::new_with_client_config(&settings.domains, Arc::new(client))
        .cache(rustls_acme::caches::DirCache::new(cache))
        .directory(&settings.directory);
    if let Some(email) = &settings.email {
        config = config.contact_push(format!("mailto:{email}"));
    }
    let mut state = config.state();
    let mut server = rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(state.resolver());
    server.alpn_protocols = vec![b"http/1.1".to_vec(), rustls_acme::acme::ACME_TLS_ALPN_NAME.to_vec()];
    let domains = settings.domains.join(", ");
    tokio::spawn(async move {
        while let Some(event) = state.next().await {
            match event {
                Ok(ok) => tracing::info!(event = ?ok, domains = %domains, "ACME"),
                Err(e) => tracing::warn!(error = %e, domains = %domains, "ACME"),
            }
        }
    });
    Ok(Arc::new(Tls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        fingerprint: None,
        public: true,
        ca: None,
    }))
}

/// Issues a new serving certificate when the machine's addresses change or a third of its life is left.
async fn renew(
    resolver: Arc<Resolver>,
    ca: LocalCa,
    source: NameSource,
    mut names: Names,
    mut not_after: time::OffsetDateTime,
) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now_names = source.current();
        let expiring = not_after - time::OffsetDateTime::now_utc() < ca::RENEW_BEFORE;
        if now_names == names && !expiring {
            continue;
        }
        match ca.issue(&now_names).and_then(|issued| Ok((certified(issued.chain, &issued.key)?, issued.not_after))) {
            Ok((key, until)) => {
                resolver.set(key);
                tracing::info!(names = ?now_names, %until, "issued a new serving certificate");
                names = now_names;
                not_after = until;
            }
            Err(e) => tracing::warn!(error = %e, "could not issue a new serving certificate"),
        }
    }
}

/// Reloads the operator's files on SIGHUP and when they change.
async fn reload_files(resolver: Arc<Resolver>, cert: PathBuf, key: PathBuf) {
    let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen = (stamp(&cert), stamp(&key));
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        #[cfg(unix)]
        let by_signal = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        #[cfg(not(unix))]
        let by_signal = {
            tick.tick().await;
            false
        };
        let now = (stamp(&cert), stamp(&key));
        if now == seen && !by_signal {
            continue;
        }
        seen = now;
        match load_files(&cert, &key).and_then(|(chain, private)| certified(chain, &private)) {
            Ok(certified) => {
                resolver.set(certified);
                tracing::info!(cert = %cert.display(), "reloaded the TLS certificate");
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not reload the TLS certificate; keeping the previous one")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(mdns_label("Town Library").as_deref(), Some("town-library"));
        assert_eq!(mdns_label("  Café №5 ").as_deref(), Some("caf-5"));
        assert_eq!(mdns_label("Библиотека"), None);
    }
}
