//! Reading the media port's traffic back: RFC 7983 classification of datagrams (STUN, DTLS,
//! SRTP/SRTCP) and the DTLS records inside, the tcpdump capture on `lo` and its pcap file, and
//! the per-client `Flow` summary the capture test checks.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

// ---------------------------------------------------------------------------------------------
// RFC 7983 and the records inside.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    Stun,
    Dtls,
    /// RTP or RTCP (SRTP / SRTCP).
    Media,
    Empty,
    Other,
}

pub(crate) fn classify(datagram: &[u8]) -> Class {
    match datagram.first() {
        None => Class::Empty,
        Some(0..=3) => Class::Stun,
        Some(20..=63) => Class::Dtls,
        Some(128..=191) => Class::Media,
        Some(_) => Class::Other,
    }
}

/// RTCP rather than RTP (RFC 5761: the second byte is an RTCP packet type, 192-223).
fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.get(1).is_some_and(|b| (192..=223).contains(b))
}

pub(crate) const STUN_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const STUN_BINDING_REQUEST: u16 = 0x0001;
pub(crate) const STUN_BINDING_SUCCESS: u16 = 0x0101;

/// The STUN message type (None unless it has the magic cookie).
pub(crate) fn stun_type(datagram: &[u8]) -> Option<u16> {
    (datagram.len() >= 20 && datagram[4..8] == STUN_COOKIE).then(|| u16::from_be_bytes([datagram[0], datagram[1]]))
}

/// One DTLS record: content type, epoch, and for epoch-0 handshake records the handshake
/// message type.
#[derive(Debug, Clone, Copy)]
struct Record {
    content_type: u8,
    epoch: u16,
    handshake: Option<u8>,
}

pub(crate) const DTLS_CHANGE_CIPHER_SPEC: u8 = 20;
pub(crate) const DTLS_HANDSHAKE: u8 = 22;
pub(crate) const DTLS_APPLICATION_DATA: u8 = 23;
pub(crate) const CLIENT_HELLO: u8 = 1;
pub(crate) const SERVER_HELLO: u8 = 2;

/// The DTLS records of a datagram (RFC 6347 §4.1); an error if they do not fill it exactly.
fn dtls_records(datagram: &[u8]) -> anyhow::Result<Vec<Record>> {
    let mut records = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        ensure!(rest.len() >= 13, "a truncated DTLS record header");
        ensure!(rest[1] == 0xfe && (rest[2] == 0xfd || rest[2] == 0xff), "not DTLS 1.0/1.2: {:02x?}", &rest[..3]);
        let epoch = u16::from_be_bytes([rest[3], rest[4]]);
        let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
        ensure!(rest.len() >= 13 + len, "a DTLS record longer than its datagram");
        let body = &rest[13..13 + len];
        let handshake = (rest[0] == DTLS_HANDSHAKE && epoch == 0).then(|| body.first().copied()).flatten();
        records.push(Record { content_type: rest[0], epoch, handshake });
        rest = &rest[13 + len..];
    }
    Ok(records)
}

// ---------------------------------------------------------------------------------------------
// The capture: tcpdump on lo, read back from its pcap file.

/// One captured UDP datagram.
#[derive(Debug, Clone)]
pub(crate) struct Datagram {
    pub(crate) from: SocketAddr,
    pub(crate) to: SocketAddr,
    pub(crate) payload: Vec<u8>,
    /// The whole captured frame (link, IP and UDP headers, payload).
    pub(crate) frame: Vec<u8>,
}

pub(crate) struct Capture {
    child: Child,
    file: PathBuf,
    stderr: std::sync::mpsc::Receiver<String>,
}

/// Whether tcpdump can run here; installs it (Debian, as root) if it is missing. The reason if
/// it cannot.
pub(crate) fn tcpdump_available() -> Result<(), String> {
    let works = || Command::new("tcpdump").arg("--version").output().is_ok_and(|o| o.status.success());
    if works() {
        return Ok(());
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Err("tcpdump is not installed and this is not root, so it cannot be installed".into());
    }
    let install = Command::new("sh")
        .arg("-c")
        .arg("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump")
        .output();
    match install {
        Ok(_) if works() => Ok(()),
        Ok(o) => Err(format!("apt-get install tcpdump failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Err(format!("apt-get: {e}")),
    }
}

impl Capture {
    /// Starts capturing every UDP datagram to or from `port` on lo; returns once tcpdump listens.
    pub(crate) fn start(dir: &Path, port: u16) -> anyhow::Result<Capture> {
        let file = dir.join("media-port.pcap");
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-U", "-s", "0", "-B", "16384", "--immediate-mode", "-Z", "root", "-w"])
            .arg(&file)
            .arg(format!("udp port {port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tcpdump")?;
        let stderr = child.stderr.take().context("tcpdump stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut capture = Capture { child, file, stderr: rx };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match capture.stderr.recv_timeout(left) {
                Ok(line) if line.contains("listening on lo") => return Ok(capture),
                Ok(line) => eprintln!("tcpdump: {line}"),
                Err(_) => {
                    let _ = capture.child.kill();
                    bail!("tcpdump did not start listening on lo within 15 s")
                }
            }
        }
    }

    /// Stops the capture (SIGINT, so tcpdump flushes its file); the datagrams in capture order
    /// and how many the kernel dropped before tcpdump read them.
    pub(crate) fn stop(mut self) -> anyhow::Result<(Vec<Datagram>, u64)> {
        let pid = self.child.id().to_string();
        ensure!(Command::new("kill").args(["-INT", &pid]).status()?.success(), "kill -INT tcpdump");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.child.try_wait()?.is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("tcpdump did not stop within 15 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut dropped = None;
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            println!("tcpdump: {line}");
            if let Some(n) = line.strip_suffix(" packets dropped by kernel") {
                dropped = n.trim().parse().ok();
            }
        }
        let dropped = dropped.context("tcpdump did not say how many packets the kernel dropped")?;
        let bytes = std::fs::read(&self.file).with_context(|| format!("reading {}", self.file.display()))?;
        Ok((parse_pcap(&bytes)?, dropped))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn u16_be(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The UDP/IPv4 datagrams of a classic pcap file (little-endian, as tcpdump writes it here).
fn parse_pcap(bytes: &[u8]) -> anyhow::Result<Vec<Datagram>> {
    ensure!(bytes.len() >= 24, "a pcap file without its header");
    let magic = u32::from_le_bytes(bytes[0..4].try_into()?);
    ensure!(magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d, "not a little-endian pcap file: {magic:#x}");
    let link = u32::from_le_bytes(bytes[20..24].try_into()?);
    // Where the IP packet starts and which EtherType field says it is IPv4.
    let (link_len, ethertype_at) = match link {
        1 => (14, 12),   // Ethernet (lo on Linux)
        113 => (16, 14), // Linux cooked v1
        276 => (20, 0),  // Linux cooked v2
        other => bail!("pcap link type {other}"),
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        ensure!(bytes.len() >= at + 16, "a truncated pcap record header");
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into()?) as usize;
        let wirelen = u32::from_le_bytes(bytes[at + 12..at + 16].try_into()?) as usize;
        ensure!(caplen == wirelen, "a frame captured short ({caplen} of {wirelen} bytes)");
        let frame = bytes.get(at + 16..at + 16 + caplen).context("a truncated pcap record")?;
        at += 16 + caplen;
        ensure!(frame.len() >= link_len + 20, "a frame too short for IPv4");
        ensure!(u16_be(frame, ethertype_at) == 0x0800, "not IPv4 (the test only uses 127.0.0.1)");
        let ip = &frame[link_len..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        ensure!(ip[9] == 17, "not UDP");
        ensure!(u16_be(ip, 6) & 0x3fff == 0, "a fragmented datagram");
        let total = usize::from(u16_be(ip, 2));
        ensure!(ip.len() >= total && total >= ihl + 8, "a truncated IPv4 packet");
        let udp = &ip[ihl..total];
        let udp_len = usize::from(u16_be(udp, 4));
        ensure!(udp_len == udp.len(), "UDP length {udp_len} in {} bytes", udp.len());
        let addr = |ip4: &[u8], port| SocketAddr::from(([ip4[0], ip4[1], ip4[2], ip4[3]], port));
        out.push(Datagram {
            from: addr(&ip[12..16], u16_be(udp, 0)),
            to: addr(&ip[16..20], u16_be(udp, 2)),
            payload: udp[8..].to_vec(),
            frame: frame.to_vec(),
        });
    }
    Ok(out)
}

/// What went between the media port and one client, in capture order.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    /// Indexes (in the flow) of: the first datagram of each class, per direction.
    pub(crate) first_up: BTreeMap<Class, usize>,
    pub(crate) first_down: BTreeMap<Class, usize>,
    pub(crate) count_up: BTreeMap<Class, usize>,
    pub(crate) count_down: BTreeMap<Class, usize>,
    pub(crate) binding_requests_up: usize,
    pub(crate) binding_successes_down: usize,
    pub(crate) first_success_down: Option<usize>,
    /// DTLS records by content type, per direction.
    pub(crate) records_up: BTreeMap<u8, usize>,
    pub(crate) records_down: BTreeMap<u8, usize>,
    /// The first epoch-0 handshake message of each side.
    pub(crate) first_handshake_up: Option<u8>,
    pub(crate) handshakes_down: Vec<u8>,
    pub(crate) first_change_cipher_spec_down: Option<usize>,
    pub(crate) srtp_up: usize,
    pub(crate) srtp_down: usize,
    pub(crate) srtcp_up: usize,
    pub(crate) srtcp_down: usize,
    /// SSRCs of the SRTP packets the client sent.
    pub(crate) ssrcs_up: BTreeMap<u32, usize>,
    pub(crate) len: usize,
}

pub(crate) fn flow(capture: &[Datagram], media: SocketAddr, client: SocketAddr) -> anyhow::Result<Flow> {
    let mut f = Flow::default();
    for d in capture.iter().filter(|d| (d.from, d.to) == (client, media) || (d.from, d.to) == (media, client)) {
        let i = f.len;
        f.len += 1;
        let up = d.from == client;
        let class = classify(&d.payload);
        let (first, count) =
            if up { (&mut f.first_up, &mut f.count_up) } else { (&mut f.first_down, &mut f.count_down) };
        first.entry(class).or_insert(i);
        *count.entry(class).or_default() += 1;
        match class {
            Class::Stun => match (up, stun_type(&d.payload)) {
                (true, Some(STUN_BINDING_REQUEST)) => f.binding_requests_up += 1,
                (false, Some(STUN_BINDING_SUCCESS)) => {
                    f.binding_successes_down += 1;
                    f.first_success_down.get_or_insert(i);
                }
                _ => {}
            },
            Class::Dtls => {
                for r in dtls_records(&d.payload).with_context(|| format!("DTLS datagram {i} from {}", d.from))? {
                    *(if up { &mut f.records_up } else { &mut f.records_down }).entry(r.content_type).or_default() += 1;
                    match (up, r.handshake) {
                        (true, Some(t)) => {
                            f.first_handshake_up.get_or_insert(t);
                        }
                        (false, Some(t)) => f.handshakes_down.push(t),
                        _ => {}
                    }
                    if !up && r.content_type == DTLS_CHANGE_CIPHER_SPEC {
                        f.first_change_cipher_spec_down.get_or_insert(i);
                    }
                    let _ = r.epoch;
                }
            }
            Class::Media => {
                ensure!(d.payload.len() >= 12 && d.payload[0] >> 6 == 2, "RTP-class datagram {i} is not RTP version 2");
                match (up, is_rtcp(&d.payload)) {
                    (true, false) => {
                        f.srtp_up += 1;
                        let ssrc = u32::from_be_bytes(d.payload[8..12].try_into()?);
                        *f.ssrcs_up.entry(ssrc).or_default() += 1;
                    }
                    (false, false) => f.srtp_down += 1,
                    (true, true) => f.srtcp_up += 1,
                    (false, true) => f.srtcp_down += 1,
                }
            }
            Class::Empty | Class::Other => {}
        }
    }
    Ok(f)
}
