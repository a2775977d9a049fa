//! `veche run` settings: command-line flags, `VECHE_*` environment variables and an optional TOML
//! file (`--config FILE`, or `veche.toml` in the data dir). Flags and variables win over the file,
//! the file wins over the defaults.

use anyhow::Context;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use veche_protocol::wire::RegistrationPolicy;

/// Default HTTP/WebSocket address: all interfaces, so members on the LAN reach the node.
pub const DEFAULT_HTTP: &str = "0.0.0.0:7800";
pub const DEFAULT_P2P_PORT: u16 = 7801;
/// The embedded SFU's UDP media port.
pub const DEFAULT_MEDIA_PORT: u16 = 7802;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    Open,
    Invite,
    Closed,
}

impl From<Registration> for RegistrationPolicy {
    fn from(r: Registration) -> Self {
        match r {
            Registration::Open => RegistrationPolicy::Open,
            Registration::Invite => RegistrationPolicy::Invite,
            Registration::Closed => RegistrationPolicy::Closed,
        }
    }
}

/// `--tls`: HTTPS with the node's own certificates (or `--tls-cert`), or plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsArg {
    Auto,
    Off,
}

/// Flags of `veche run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// TOML config file (keys: data_dir, http, name, registration, public_url, rate_limit,
    /// retention_interval, ui_dir, p2p_port, bootstrap, mdns, community_secret, federation_rate,
    /// media_port, media_address, ring_timeout, tls, tls_cert, tls_key, acme_domain, acme_email,
    /// acme_directory, acme_ca, storage_quota, max_chats_per_account, replica_quota).
    #[arg(long, env = "VECHE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the database and node key live [default: the user's data dir + /veche].
    #[arg(long, env = "VECHE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP and WebSocket listen address [default: 0.0.0.0:7800].
    #[arg(long, env = "VECHE_HTTP")]
    pub http: Option<SocketAddr>,
    /// Human name of this node [default: the host name].
    #[arg(long, env = "VECHE_NAME")]
    pub name: Option<String>,
    /// Who may register [default: invite].
    #[arg(long, env = "VECHE_REGISTRATION", value_enum)]
    pub registration: Option<Registration>,
    /// URL members use to reach this node, used in printed links [default: the first LAN address].
    #[arg(long, env = "VECHE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Requests per second one connection may make (bursts of twice that) [default: 1000].
    #[arg(long, env = "VECHE_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Serve `/metrics` on this address only (plain HTTP, e.g. 127.0.0.1:9100 for a local
    /// Prometheus), not on the main address, where anyone who reaches the node could read it
    /// [default: served on the main address].
    #[arg(long, env = "VECHE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// How often to drop messages that chats' retention no longer keeps, e.g. 60s [default: 60s].
    #[arg(long, env = "VECHE_RETENTION_INTERVAL", value_parser = humantime::parse_duration)]
    pub retention_interval: Option<std::time::Duration>,
    /// How long a 1:1 call rings before it counts as missed, e.g. 30s [default: 30s].
    #[arg(long, env = "VECHE_RING_TIMEOUT", value_parser = humantime::parse_duration)]
    pub ring_timeout: Option<std::time::Duration>,
    /// How long guests may stay after a meeting's planned end, e.g. 1h [default: 1h]. At the end
    /// of it their meeting link stops working and connected guests are disconnected.
    #[arg(long, env = "VECHE_GUEST_GRACE", value_parser = humantime::parse_duration)]
    pub guest_grace: Option<std::time::Duration>,
    /// Folder of the built web UI (holding index.html), served instead of the UI built into the
    /// binary (UI development) [default: the UI built into the binary; in a binary built without
    /// one, web-ui/dist under the current directory or the source tree the binary was built in].
    #[arg(long, env = "VECHE_UI_DIR")]
    pub ui_dir: Option<PathBuf>,
    /// UDP (QUIC) and TCP port for links to other nodes; 0 picks free ones [default: 7801].
    #[arg(long, env = "VECHE_P2P_PORT")]
    pub p2p_port: Option<u16>,
    /// A bootstrap node's multiaddr (repeatable), e.g. /ip4/203.0.113.5/udp/7801/quic-v1/p2p/12D3Koo...
    #[arg(long = "bootstrap", env = "VECHE_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Vec<libp2p::Multiaddr>,
    /// Announce and look for other nodes on the LAN with mDNS [default: on].
    #[arg(long, env = "VECHE_MDNS")]
    pub mdns: Option<bool>,
    /// A secret shared by a community's nodes: nearby nodes with the same secret link without
    /// their admins' approval (a SPAKE2 exchange, so no node learns anything to guess it
    /// offline). It must still be out of reach of guessing (2^128 guesses as zxcvbn estimates: 39
    /// random characters or more); the node refuses a weaker one and offers a generated one.
    #[arg(long, env = "VECHE_COMMUNITY_SECRET", hide_env_values = true)]
    pub community_secret: Option<String>,
    /// Federation requests each linked node may send per second (twice that in a burst)
    /// [default: 2000].
    #[arg(long, env = "VECHE_FEDERATION_RATE")]
    pub federation_rate: Option<u32>,
    /// UDP port of the embedded SFU's media (every call on the node; default 7802; 0: any free
    /// port).
    #[arg(long, env = "VECHE_MEDIA_PORT")]
    pub media_port: Option<u16>,
    /// Addresses browsers send media to, first the usual one: IP or IP:PORT (a public address
    /// forwarded to the media port). Default: the node's first LAN IPv4 address.
    #[arg(long = "media-address", env = "VECHE_MEDIA_ADDRESS", value_delimiter = ',')]
    pub media_address: Vec<String>,
    /// HTTPS on the HTTP port (plain HTTP there is redirected), or `off` for plain HTTP behind a
    /// reverse proxy that terminates TLS [default: auto].
    #[arg(long, env = "VECHE_TLS", value_enum)]
    pub tls: Option<TlsArg>,
    /// The operator's certificate chain (PEM), with --tls-key; reloaded on SIGHUP and when the file
    /// changes [default: a certificate from the node's own CA in <data dir>/tls].
    #[arg(long, env = "VECHE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "VECHE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A public DNS name of this node (repeatable): get and renew its certificate by ACME
    /// (TLS-ALPN-01 on the HTTPS port, which must be reachable as port 443 of that name).
    #[arg(long = "acme-domain", env = "VECHE_ACME_DOMAIN", value_delimiter = ',')]
    pub acme_domain: Vec<String>,
    /// Contact e-mail for the ACME account.
    #[arg(long, env = "VECHE_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// The ACME directory URL [default: Let's Encrypt].
    #[arg(long, env = "VECHE_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// A CA certificate (PEM) to trust for the ACME server's own HTTPS besides the system's (a
    /// private or test ACME server).
    #[arg(long, env = "VECHE_ACME_CA")]
    pub acme_ca: Option<PathBuf>,
    // Per-account quotas (issue 24).
    /// Bytes of message ciphertext one account's messages may take on this node, e.g. 1GiB, 500MiB
    /// [default: 1GiB]. Past it the node refuses the account's messages until retention drops some.
    #[arg(long, env = "VECHE_STORAGE_QUOTA", value_parser = parse_bytes)]
    pub storage_quota: Option<u64>,
    /// Chats one account may be in [default: 10000].
    #[arg(long, env = "VECHE_MAX_CHATS_PER_ACCOUNT")]
    pub max_chats_per_account: Option<u32>,
    /// Bytes of messages this node keeps of the chats homed on one linked node (its replicas of
    /// them), e.g. 10GiB [default: 10GiB]. Past it the node refuses further messages of that
    /// node's chats until retention drops some.
    #[arg(long, env = "VECHE_REPLICA_QUOTA", value_parser = parse_bytes)]
    pub replica_quota: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    http: Option<SocketAddr>,
    name: Option<String>,
    registration: Option<Registration>,
    public_url: Option<String>,
    rate_limit: Option<u32>,
    metrics_addr: Option<SocketAddr>,
    #[serde(default, with = "humantime_serde_opt")]
    retention_interval: Option<std::time::Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    ring_timeout: Option<std::time::Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    guest_grace: Option<std::time::Duration>,
    ui_dir: Option<PathBuf>,
    p2p_port: Option<u16>,
    #[serde(default)]
    bootstrap: Vec<String>,
    mdns: Option<bool>,
    community_secret: Option<String>,
    federation_rate: Option<u32>,
    media_port: Option<u16>,
    #[serde(default)]
    media_address: Vec<String>,
    tls: Option<TlsArg>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    acme_domain: Vec<String>,
    acme_email: Option<String>,
    acme_directory: Option<String>,
    acme_ca: Option<PathBuf>,
    // Per-account quotas (issue 24).
    storage_quota: Option<String>,
    max_chats_per_account: Option<u32>,
    replica_quota: Option<String>,
}

/// `retention_interval = "60s"` in the TOML file.
mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<std::time::Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom)).transpose()
    }
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub name: String,
    pub registration: Registration,
    pub public_url: Option<String>,
    pub rate_limit: u32,
    /// Where `/metrics` is served, if not on the main address.
    pub metrics_addr: Option<SocketAddr>,
    pub retention_interval: std::time::Duration,
    /// How long a 1:1 call rings.
    pub ring_timeout: std::time::Duration,
    /// How long guests may stay after a meeting's planned end.
    pub guest_grace: std::time::Duration,
    /// Where the web UI is served from: `--ui-dir`, else the one built into the binary, else
    /// `web-ui/dist` when found; none: a landing page.
    pub ui: Option<crate::api::ui::UiSource>,
    pub p2p_port: u16,
    pub bootstrap: Vec<libp2p::Multiaddr>,
    pub mdns: bool,
    pub community_secret: Option<String>,
    pub federation_rate: u32,
    pub media_port: u16,
    /// Media addresses as given (IP or IP:PORT); empty: the first LAN address.
    pub media_address: Vec<String>,
    /// Where the HTTPS certificate comes from.
    pub tls: crate::tls::TlsSource,
    /// Per-account quotas.
    pub quotas: Quotas,
}

// Per-account quotas (issue 24).

/// Default `--storage-quota`: 1 GiB of ciphertext per account. Retention defaults to forever, so
/// this bounds what one account can make the node keep. A very active member who sends 500 text
/// messages a day (about 1 KiB of ciphertext each with MLS framing) stores under 200 MiB a year,
/// so honest use takes years to reach it, while a node of 100 accounts stays under 100 GiB even
/// if every account fills it.
pub const DEFAULT_STORAGE_QUOTA: u64 = 1 << 30;
/// Default `--max-chats-per-account`: far more chats than a person follows, few enough that the
/// per-account lists (chats, meetings, the membership index) stay quick to read.
pub const DEFAULT_MAX_CHATS_PER_ACCOUNT: u32 = 10_000;
/// The smallest storage quota accepted: one largest MLS message must fit.
pub const MIN_STORAGE_QUOTA: u64 = veche_protocol::MAX_MLS_MESSAGE_BYTES as u64;

/// Bounds on what one account may make the node store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Bytes of message ciphertext (log entries) an account's messages may take on this node.
    pub storage_bytes: u64,
    /// Chats an account may be in.
    pub max_chats: u32,
    /// Chats homed on one linked node that this node keeps replicas of.
    pub max_replicas_per_link: u32,
    /// Bytes of log entries (message ciphertext) of those replicas.
    pub replica_bytes_per_link: u64,
}

/// Replicas of chats homed on one linked node: a small town's node holds a few hundred chats of
/// another node's, and 10,000 is the most chats one account may be in, so a member in every chat
/// of that node still fits; a linked node that makes up chats cannot fill this one beyond it.
pub const DEFAULT_MAX_REPLICAS_PER_LINK: u32 = 10_000;

/// Default `--replica-quota`: 10 GiB of messages of the chats homed on one linked node. A community
/// node is often a Raspberry Pi with a 64-256 GB card or SSD: a handful of links at 10 GiB each
/// leaves room for the node's own chats, while a linked node that makes up traffic cannot fill the
/// disk. Honest use stays far below it: ten of that node's members sending 500 text messages a day
/// (about 1 KiB of ciphertext each) into chats with members here add under 2 GiB a year, and it is
/// ten times what one account may store on its own node (`DEFAULT_STORAGE_QUOTA`).
pub const DEFAULT_REPLICA_QUOTA: u64 = 10 << 30;

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            storage_bytes: DEFAULT_STORAGE_QUOTA,
            max_chats: DEFAULT_MAX_CHATS_PER_ACCOUNT,
            max_replicas_per_link: DEFAULT_MAX_REPLICAS_PER_LINK,
            replica_bytes_per_link: DEFAULT_REPLICA_QUOTA,
        }
    }
}

/// A byte count: a number with an optional unit (B, KB, KiB, MB, MiB, GB, GiB, TB, TiB).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a byte count such as 1GiB"))?;
    let unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1 << 10,
        "mb" => 1000 * 1000,
        "mib" | "m" => 1 << 20,
        "gb" => 1000 * 1000 * 1000,
        "gib" | "g" => 1 << 30,
        "tb" => 1000 * 1000 * 1000 * 1000,
        "tib" | "t" => 1 << 40,
        other => return Err(format!("unknown unit {other:?} (use B, KiB, MiB, GiB or TiB)")),
    };
    number.checked_mul(unit).ok_or_else(|| format!("{text:?} is too large"))
}

/// A byte count for people: "64 KiB", "1 GiB", "1.5 MiB".
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A byte quota from the command line (`args`), else the file, else `default`; at least one largest
/// message.
fn resolve_bytes(name: &str, args: Option<u64>, file: Option<String>, default: u64) -> anyhow::Result<u64> {
    let bytes = match (args, file) {
        (Some(bytes), _) => bytes,
        (None, Some(text)) => parse_bytes(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?,
        (None, None) => default,
    };
    anyhow::ensure!(
        bytes >= MIN_STORAGE_QUOTA,
        "{name} must be at least {} (one largest message)",
        format_bytes(MIN_STORAGE_QUOTA)
    );
    Ok(bytes)
}

fn resolve_quotas(
    args: Option<u64>,
    file: Option<String>,
    max_chats: Option<u32>,
    replica: (Option<u64>, Option<String>),
) -> anyhow::Result<Quotas> {
    let storage_bytes = resolve_bytes("storage_quota", args, file, DEFAULT_STORAGE_QUOTA)?;
    let max_chats = max_chats.unwrap_or(DEFAULT_MAX_CHATS_PER_ACCOUNT);
    anyhow::ensure!(max_chats > 0, "max_chats_per_account must be positive");
    let replica_bytes_per_link = resolve_bytes("replica_quota", replica.0, replica.1, DEFAULT_REPLICA_QUOTA)?;
    Ok(Quotas {
        storage_bytes,
        max_chats,
        max_replicas_per_link: DEFAULT_MAX_REPLICAS_PER_LINK,
        replica_bytes_per_link,
    })
}

fn default_data_dir() -> PathBuf {
    dirs::data_dir().map(|d| d.join("veche")).unwrap_or_else(|| PathBuf::from("veche-data"))
}

/// The built UI next to where the node runs: `web-ui/dist` under the current directory, or under
/// the source tree of the binary (`target/<profile>/veche` → `../../web-ui/dist`).
fn find_ui_dir() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("web-ui/dist")];
    if let Ok(exe) = std::env::current_exe() {
        for up in exe.ancestors().skip(1).take(4) {
            candidates.push(up.join("web-ui/dist"));
        }
    }
    candidates.into_iter().find(|dir| dir.join("index.html").is_file())
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

impl Config {
    pub fn resolve(args: RunArgs) -> anyhow::Result<Self> {
        let mut file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let data_dir = args.data_dir.clone().or(file.data_dir.take()).unwrap_or_else(default_data_dir);
        if args.config.is_none() {
            let implicit = data_dir.join("veche.toml");
            if implicit.exists() {
                file = read_file(&implicit)?;
            }
        }
        let name = args
            .name
            .or(file.name)
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "veche".to_string());
        let name = veche_protocol::validate::chat_name(&name).map_err(|e| anyhow::anyhow!("node name: {e}"))?;
        let tls = match (
            args.tls.or(file.tls).unwrap_or(TlsArg::Auto),
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (TlsArg::Off, None, None) => crate::tls::TlsSource::Off,
            (TlsArg::Off, _, _) => anyhow::bail!("--tls off and --tls-cert/--tls-key contradict each other"),
            (TlsArg::Auto, Some(cert), Some(key)) => crate::tls::TlsSource::Files { cert, key },
            (TlsArg::Auto, None, None) => {
                let domains = if args.acme_domain.is_empty() { file.acme_domain } else { args.acme_domain };
                if domains.is_empty() {
                    crate::tls::TlsSource::LocalCa
                } else {
                    crate::tls::TlsSource::Acme(crate::tls::AcmeSettings {
                        domains,
                        email: args.acme_email.or(file.acme_email),
                        directory: args
                            .acme_directory
                            .or(file.acme_directory)
                            .unwrap_or_else(|| crate::tls::LETS_ENCRYPT.to_string()),
                        extra_ca: args.acme_ca.or(file.acme_ca),
                    })
                }
            }
            (TlsArg::Auto, _, _) => anyhow::bail!("--tls-cert and --tls-key go together"),
        };
        let quotas = resolve_quotas(
            args.storage_quota,
            file.storage_quota.take(),
            args.max_chats_per_account.or(file.max_chats_per_account),
            (args.replica_quota, file.replica_quota.take()),
        )?;
        let rate_limit = args.rate_limit.or(file.rate_limit).unwrap_or(1000);
        anyhow::ensure!(rate_limit > 0, "rate_limit must be positive");
        Ok(Config {
            data_dir,
            http: args.http.or(file.http).unwrap_or_else(|| DEFAULT_HTTP.parse().expect("valid default address")),
            name,
            registration: args.registration.or(file.registration).unwrap_or(Registration::Invite),
            public_url: args.public_url.or(file.public_url).map(|u| u.trim_end_matches('/').to_string()),
            rate_limit,
            metrics_addr: args.metrics_addr.or(file.metrics_addr),
            retention_interval: args
                .retention_interval
                .or(file.retention_interval)
                .unwrap_or(std::time::Duration::from_secs(60))
                .max(std::time::Duration::from_millis(100)),
            ring_timeout: args
                .ring_timeout
                .or(file.ring_timeout)
                .unwrap_or(std::time::Duration::from_secs(30))
                .clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(600)),
            guest_grace: args
                .guest_grace
                .or(file.guest_grace)
                .unwrap_or(std::time::Duration::from_millis(veche_protocol::meeting::GUEST_GRACE_MS))
                .min(std::time::Duration::from_secs(7 * 24 * 3600)),
            ui: match args.ui_dir.or(file.ui_dir) {
                Some(dir) => {
                    anyhow::ensure!(dir.join("index.html").is_file(), "{} has no index.html", dir.display());
                    Some(crate::api::ui::UiSource::Dir(dir))
                }
                None if crate::api::ui::embedded().is_some() => Some(crate::api::ui::UiSource::Embedded),
                None => find_ui_dir().map(crate::api::ui::UiSource::Dir),
            },
            p2p_port: args.p2p_port.or(file.p2p_port).unwrap_or(DEFAULT_P2P_PORT),
            bootstrap: if args.bootstrap.is_empty() {
                file.bootstrap
                    .iter()
                    .map(|a| a.parse().with_context(|| format!("bootstrap address {a}")))
                    .collect::<anyhow::Result<_>>()?
            } else {
                args.bootstrap
            },
            mdns: args.mdns.or(file.mdns).unwrap_or(true),
            community_secret: match args.community_secret.or(file.community_secret).filter(|s| !s.is_empty()) {
                Some(secret) => Some(check_community_secret(secret)?),
                None => None,
            },
            federation_rate: args.federation_rate.or(file.federation_rate).unwrap_or(2000).max(1),
            media_port: args.media_port.or(file.media_port).unwrap_or(DEFAULT_MEDIA_PORT),
            media_address: if args.media_address.is_empty() { file.media_address } else { args.media_address },
            tls,
            quotas,
        })
    }
}

#[cfg(test)]
mod quota_tests {
    use super::*;

    #[test]
    fn byte_counts_parse_with_units_and_print_for_people() {
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("64 KiB"), Ok(64 * 1024));
        assert_eq!(parse_bytes("500MB"), Ok(500_000_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("1 parsec").is_err());
        assert!(parse_bytes("99999999999TiB").is_err(), "overflow is an error, not a wrap");
        assert_eq!(format_bytes(64 * 1024), "64 KiB");
        assert_eq!(format_bytes(1 << 30), "1 GiB");
        assert_eq!(format_bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(format_bytes(12), "12 bytes");
    }

    #[test]
    fn quotas_default_and_refuse_nonsense() {
        let none = || (None, None);
        assert_eq!(resolve_quotas(None, None, None, none()).unwrap(), Quotas::default());
        assert_eq!(resolve_quotas(None, Some("2GiB".into()), Some(5), none()).unwrap().storage_bytes, 2 << 30);
        assert!(resolve_quotas(Some(1000), None, None, none()).is_err(), "below one largest message");
        assert!(resolve_quotas(None, None, Some(0), none()).is_err());
        let replica = |args, file: Option<&str>| resolve_quotas(None, None, None, (args, file.map(String::from)));
        assert_eq!(replica(None, Some("1GiB")).unwrap().replica_bytes_per_link, 1 << 30);
        assert_eq!(replica(Some(5 << 20), Some("1GiB")).unwrap().replica_bytes_per_link, 5 << 20, "the flag wins");
        assert!(replica(Some(1000), None).is_err(), "below one largest message");
        assert!(replica(None, Some("lots")).is_err());
    }
}

/// Least strength of a community secret, in bits: 2^128 guesses. Linking by the secret is a
/// SPAKE2 exchange, so a stranger gets one guess per exchange, online; but the secret is all that
/// stands between a stranger's node and the community's links, it is typed into several nodes'
/// configurations (and may leak from one), and a secret people chose tends to be one they reuse:
/// so the node asks for one that no search reaches, and generates one.
const MIN_SECRET_BITS: f64 = 128.0;

/// How many guesses (in bits) finding `secret` takes, after zxcvbn's pattern matching: each
/// pattern it finds (a word, a date, a keyboard walk, a repeat, a sequence) counts its own
/// guesses, and each character of what matches no pattern counts 10 (zxcvbn's brute-force
/// cardinality, log2 10 = 3.3 bits), so a random secret needs 39 characters or more. Summed here
/// because zxcvbn's own total is a u64 and stops at about 2^64.
fn secret_bits(secret: &str) -> f64 {
    zxcvbn::zxcvbn(secret, &[])
        .sequence()
        .iter()
        .map(|m| match m.pattern {
            zxcvbn::matching::patterns::MatchPattern::BruteForce => {
                m.token.chars().count() as f64 * std::f64::consts::LOG2_10
            }
            _ => (m.guesses.unwrap_or(1).max(1) as f64).log2(),
        })
        .sum()
}

/// The secret itself, unless it is too easy to guess (the error offers a fresh one).
pub fn check_community_secret(secret: String) -> anyhow::Result<String> {
    let bits = secret_bits(&secret);
    if bits < MIN_SECRET_BITS {
        let offer = match generate_community_secret() {
            Ok(fresh) => format!("Use a generated one, for example: {fresh}"),
            Err(e) => format!("Use a generated one (none could be made here: {e})"),
        };
        anyhow::bail!(
            "the community secret is too easy to guess: about 2^{bits:.0} guesses, and it needs 2^128 (it is all that \
             keeps a stranger's node from linking with the community's nodes). {offer}"
        );
    }
    Ok(secret)
}

/// A fresh community secret: 40 random base32 characters (200 bits) in groups of five.
pub fn generate_community_secret() -> anyhow::Result<String> {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 40];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the system's random number generator failed: {e}"))?;
    let chars: Vec<char> = bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
    Ok(chars.chunks(5).map(|group| group.iter().collect::<String>()).collect::<Vec<_>>().join("-"))
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn weak_community_secrets_are_refused_with_a_fresh_one_offered() {
        for weak in ["first town", "Pine Street readers", "correcthorsebatterystaple", &"a".repeat(60)] {
            let error = check_community_secret(weak.to_string()).unwrap_err().to_string();
            assert!(error.contains("too easy to guess"), "{weak}: {error}");
            let offered = error.rsplit(' ').next().unwrap_or_default().to_string();
            assert!(check_community_secret(offered.clone()).is_ok(), "the offered secret is strong: {offered}");
        }
    }

    #[test]
    fn the_test_suites_secrets_are_strong() {
        for secret in [
            "first-town-k7qm2-x9vtr-h4pzc-w8bn3-e6fya-u5jdg-r2mxp",
            "pine-street-readers-c3nwq-t8zpk-m2vhx-y7ebr-g5uja-d9sfq",
            "bench-town-q4xwm-h8tzn-k2pvr-y6cbe-f3uja-w9dgs-n5mrt",
            "elm-street-libraries-p6vkx-w3nqz-b8try-h2mce-u9fjd-s4gxa",
        ] {
            assert!(check_community_secret(secret.to_string()).is_ok(), "{secret}");
        }
    }

    #[test]
    fn generated_secrets_are_strong_and_different() {
        let a = generate_community_secret().unwrap();
        let b = generate_community_secret().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 47, "40 characters in 8 groups: {a}");
        assert!(check_community_secret(a).is_ok());
    }
}
