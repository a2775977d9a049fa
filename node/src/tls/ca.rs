//! The node-local certificate authority: created at the first start and kept in the data dir
//! (`tls/ca.pem`, `tls/ca.key` with mode 0600). It lives for years and signs only this node's
//! serving certificates, which are short-lived and name every address members may use.
//!
//! The CA carries name constraints: it is valid only for `.local` names, `localhost`, the host
//! name, the `--public-url` host and private, loopback and link-local IP ranges, so its key (were it
//! stolen) could not impersonate any site on the internet to a member who trusts it.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

/// How long the CA is valid.
const CA_LIFETIME: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// How long a serving certificate is valid (browsers allow up to 825 days; short keeps a leaked
/// key's use short).
pub const LEAF_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// A serving certificate is renewed when less than this is left.
pub const RENEW_BEFORE: Duration = Duration::from_secs(10 * 24 * 3600);

/// The names a serving certificate covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Names {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Names {
    /// Sorted and deduplicated, so two sets compare equal whatever their order.
    pub fn normalized(mut self) -> Self {
        for d in &mut self.dns {
            *d = d.trim_end_matches('.').to_ascii_lowercase();
        }
        self.dns.retain(|d| !d.is_empty());
        self.dns.sort();
        self.dns.dedup();
        self.ips.sort();
        self.ips.dedup();
        self
    }
}

/// The CA's certificate and key.
pub struct LocalCa {
    pub cert_der: CertificateDer<'static>,
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    constraints: Constraints,
}

/// A serving certificate issued by the CA: the chain (leaf, CA) and its key.
pub struct Issued {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub names: Names,
    pub not_after: OffsetDateTime,
}

/// The names the CA may sign for, as stored in the data dir (`tls/ca-names.txt`) so a restart
/// knows them without parsing the certificate.
#[derive(Debug, Clone, Default)]
struct Constraints {
    dns: Vec<String>,
    subnets: Vec<(IpAddr, u8)>,
}

/// Private, loopback, link-local and shared (CGNAT) ranges: a LAN's addresses.
const LAN_RANGES: &[(&str, u8)] = &[
    ("10.0.0.0", 8),
    ("172.16.0.0", 12),
    ("192.168.0.0", 16),
    ("127.0.0.0", 8),
    ("169.254.0.0", 16),
    ("100.64.0.0", 10),
    ("fc00::", 7),
    ("fe80::", 10),
    ("::1", 128),
];

impl Constraints {
    fn new(host_name: &str, public: Option<&PublicHost>) -> Self {
        let mut dns = vec!["local".to_string(), "localhost".to_string()];
        if !host_name.is_empty() {
            dns.push(host_name.to_ascii_lowercase());
        }
        let mut subnets: Vec<(IpAddr, u8)> =
            LAN_RANGES.iter().map(|(ip, bits)| (ip.parse().expect("valid range"), *bits)).collect();
        match public {
            Some(PublicHost::Dns(name)) => dns.push(name.clone()),
            Some(PublicHost::Ip(ip)) => subnets.push((*ip, if ip.is_ipv4() { 32 } else { 128 })),
            None => {}
        }
        dns.sort();
        dns.dedup();
        Constraints { dns, subnets }
    }

    fn to_text(&self) -> String {
        let mut out = String::new();
        for d in &self.dns {
            out.push_str(&format!("dns {d}\n"));
        }
        for (ip, bits) in &self.subnets {
            out.push_str(&format!("ip {ip}/{bits}\n"));
        }
        out
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        let mut c = Constraints::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line.split_once(' ') {
                Some(("dns", name)) => c.dns.push(name.to_string()),
                Some(("ip", net)) => {
                    let (ip, bits) = net.split_once('/').context("ip range without /bits")?;
                    c.subnets.push((ip.parse()?, bits.parse()?));
                }
                _ => anyhow::bail!("unknown line {line:?}"),
            }
        }
        Ok(c)
    }

    fn allows_dns(&self, name: &str) -> bool {
        self.dns.iter().any(|c| name == c || name.ends_with(&format!(".{c}")))
    }

    fn allows_ip(&self, ip: &IpAddr) -> bool {
        self.subnets.iter().any(|(net, bits)| in_subnet(ip, net, *bits))
    }

    fn name_constraints(&self) -> NameConstraints {
        let mut permitted: Vec<GeneralSubtree> = self.dns.iter().map(|d| GeneralSubtree::DnsName(d.clone())).collect();
        permitted.extend(
            self.subnets.iter().map(|(ip, bits)| GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(*ip, *bits))),
        );
        NameConstraints { permitted_subtrees: permitted, excluded_subtrees: Vec::new() }
    }
}

fn in_subnet(ip: &IpAddr, net: &IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits.min(32))) };
            u32::from(*a) & mask == u32::from(*n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits.min(128))) };
            u128::from(*a) & mask == u128::from(*n) & mask
        }
        _ => false,
    }
}

/// The host of `--public-url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicHost {
    Dns(String),
    Ip(IpAddr),
}

impl PublicHost {
    pub fn from_url(url: &str) -> Option<Self> {
        let parsed = url::Url::parse(url).ok()?;
        match parsed.host()? {
            url::Host::Domain(d) => Some(PublicHost::Dns(d.to_ascii_lowercase())),
            url::Host::Ipv4(ip) => Some(PublicHost::Ip(ip.into())),
            url::Host::Ipv6(ip) => Some(PublicHost::Ip(ip.into())),
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let tmp = path.with_extension("tmp");
    let mut file = options.open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn write_public(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

impl LocalCa {
    /// Loads the CA from `<data dir>/tls`, or creates it (named after the node).
    pub fn load_or_create(
        data_dir: &Path,
        node_name: &str,
        host_name: &str,
        public: Option<&PublicHost>,
    ) -> anyhow::Result<Self> {
        let dir = tls_dir(data_dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (cert_path, key_path, names_path) = (dir.join("ca.pem"), dir.join("ca.key"), dir.join("ca-names.txt"));
        if cert_path.exists() && key_path.exists() {
            let cert_pem =
                std::fs::read_to_string(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
            let key_pem =
                std::fs::read_to_string(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
            let key = KeyPair::from_pem(&key_pem).with_context(|| format!("parsing {}", key_path.display()))?;
            let constraints = match std::fs::read_to_string(&names_path) {
                Ok(text) => Constraints::parse(&text).with_context(|| format!("parsing {}", names_path.display()))?,
                Err(_) => Constraints::new(host_name, public),
            };
            let issuer =
                Issuer::from_ca_cert_pem(&cert_pem, key).context("the CA certificate in the data dir is not usable")?;
            let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
                .map_err(|e| anyhow::anyhow!("parsing {}: {e:?}", cert_path.display()))?;
            return Ok(LocalCa { cert_der: der, cert_pem, issuer, constraints });
        }
        let constraints = Constraints::new(host_name, public);
        let key = KeyPair::generate().context("generating the CA key")?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("Veche node {node_name} (local CA)"));
        dn.push(DnType::OrganizationName, "Veche");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.name_constraints = Some(constraints.name_constraints());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::from_secs(3600);
        params.not_after = now + CA_LIFETIME;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).context("signing the CA certificate")?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        write_public(&names_path, constraints.to_text().as_bytes())?;
        write_public(&cert_path, cert.pem().as_bytes())?;
        tracing::info!(path = %cert_path.display(), "created the node's certificate authority");
        let cert_pem = cert.pem();
        let cert_der = cert.der().clone();
        Ok(LocalCa { cert_der, cert_pem, issuer: Issuer::new(params, key), constraints })
    }

    /// Issues a serving certificate for `names`, leaving out (with a warning) any the CA may not
    /// sign for.
    pub fn issue(&self, names: &Names) -> anyhow::Result<Issued> {
        let mut allowed = Names::default();
        for d in &names.dns {
            if self.constraints.allows_dns(d) {
                allowed.dns.push(d.clone());
            } else {
                tracing::warn!(name = %d, "the node's CA may not sign for this name; remove <data dir>/tls to make a new CA (members then trust it again)");
            }
        }
        for ip in &names.ips {
            if self.constraints.allows_ip(ip) {
                allowed.ips.push(*ip);
            } else {
                tracing::warn!(%ip, "the node's CA may not sign for this address (not a LAN address); use --public-url, or remove <data dir>/tls to make a new CA");
            }
        }
        let key = KeyPair::generate().context("generating the serving key")?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, allowed.dns.first().cloned().unwrap_or_else(|| "veche".into()));
        params.distinguished_name = dn;
        params.subject_alt_names = allowed
            .dns
            .iter()
            .filter_map(|d| d.clone().try_into().ok().map(SanType::DnsName))
            .chain(allowed.ips.iter().map(|ip| SanType::IpAddress(*ip)))
            .collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::from_secs(3600);
        params.not_after = now + LEAF_LIFETIME;
        params.serial_number = Some(random_serial());
        let cert = params.signed_by(&key, &self.issuer).context("signing the serving certificate")?;
        Ok(Issued {
            chain: vec![cert.der().clone(), self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            names: names.clone(),
            not_after: params.not_after,
        })
    }
}

fn random_serial() -> rcgen::SerialNumber {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes[0] &= 0x7f; // positive
    rcgen::SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let c = Constraints::new("library", None);
        assert!(c.allows_ip(&"192.168.1.20".parse().unwrap()));
        assert!(c.allows_ip(&"10.200.0.1".parse().unwrap()));
        assert!(c.allows_ip(&"172.31.255.1".parse().unwrap()));
        assert!(!c.allows_ip(&"172.32.0.1".parse().unwrap()));
        assert!(!c.allows_ip(&"8.8.8.8".parse().unwrap()));
        assert!(c.allows_ip(&"::1".parse().unwrap()));
        assert!(c.allows_ip(&"fd12::5".parse().unwrap()));
        assert!(!c.allows_ip(&"2001:db8::1".parse().unwrap()));
        assert!(c.allows_dns("library.local"));
        assert!(c.allows_dns("library"));
        assert!(!c.allows_dns("example.com"));
        assert!(!c.allows_dns("notlocal"));
        let public = Constraints::new("library", Some(&PublicHost::Dns("chat.example.org".into())));
        assert!(public.allows_dns("chat.example.org"));
        assert!(!public.allows_dns("example.org"));
        let parsed = Constraints::parse(&public.to_text()).unwrap();
        assert_eq!(parsed.dns, public.dns);
        assert_eq!(parsed.subnets, public.subnets);
    }

    #[test]
    fn issues_for_allowed_names_only() {
        let dir = std::env::temp_dir().join(format!("veche-ca-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ca = LocalCa::load_or_create(&dir, "Library", "library", None).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(tls_dir(&dir).join("ca.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names = Names {
            dns: vec!["library.local".into(), "example.com".into()],
            ips: vec!["192.168.1.20".parse().unwrap(), "8.8.8.8".parse().unwrap()],
        };
        let issued = ca.issue(&names).unwrap();
        assert_eq!(issued.chain.len(), 2);
        // Loaded again, it is the same CA.
        let again = LocalCa::load_or_create(&dir, "Library", "library", None).unwrap();
        assert_eq!(again.cert_der, ca.cert_der);
        assert!(again.issue(&names).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
