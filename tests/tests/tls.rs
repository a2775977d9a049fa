//! Scenario: HTTPS on a LAN (a node in its own network namespace, reached at its LAN address as a
//! member's device would reach it).
//! - By default the node serves a certificate from its own CA that covers its LAN address and
//!   `<name>.local` (announced over mDNS), and a new address once the machine gets one; the CA key
//!   is private to the node (0600); plain HTTP is redirected to https, except the CA and its
//!   "Secure this device" page.
//! - The native client pins the fingerprint an invite link carries, and refuses the node once it
//!   presents another certificate; without a fingerprint it refuses an untrusted node unless told
//!   `--accept-fingerprint`.
//! - An operator's certificate (`--tls-cert`/`--tls-key`) is served, and replaced on SIGHUP.
//! - Bad input: garbage where a ClientHello should be, a handshake that never finishes, a plain
//!   request with a huge header: each is dropped or refused within a bounded time, while others are
//!   served.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use anyhow::Context;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use veche_tests::netns::Lan;
use veche_tests::{TempDir, https, require_netns, veche_bin};

struct LanNode {
    child: Child,
    admin_link: Option<String>,
}

impl Drop for LanNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(lan: &Lan, dir: &std::path::Path, extra: &[&str], expect_link: bool) -> anyhow::Result<LanNode> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("node.log"))?;
    let mut child = lan
        .command(1, &veche_bin())
        .args(["run", "--data-dir"])
        .arg(dir.join("node"))
        .args(["--http", "0.0.0.0:7800", "--name", "Town Library", "--p2p-port", "0", "--media-port", "0"])
        .args(extra)
        .env("VECHE_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .context("ip netns exec veche run")?;
    let stdout = child.stdout.take().context("stdout")?;
    // The banner ends with the admin link while it is unused; read it on the side so a restart
    // (which prints none) does not wait for it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if line.starts_with("admin link") {
                let _ = tx.send(lines.next().and_then(Result::ok).map(|l| l.trim().to_string()));
            }
        }
    });
    let admin_link = if expect_link { rx.recv_timeout(Duration::from_secs(20)).ok().flatten() } else { None };
    Ok(LanNode { child, admin_link })
}

/// A plain HTTP request; the whole response.
fn http_raw(addr: &str, request: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.write_all(request)?;
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out);
    Ok(out)
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !f() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn client(lan: &Lan, state: &std::path::Path, args: &[&str]) -> std::process::Output {
    lan.command(1, &veche_bin())
        .arg("client")
        .arg("--state")
        .arg(state)
        .arg("--json")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("veche client")
}

fn load_ca(dir: &std::path::Path) -> anyhow::Result<CertificateDer<'static>> {
    Ok(CertificateDer::from_pem_file(dir.join("node/tls/ca.pem"))?)
}

#[test]
fn default_certificate_redirect_and_pinning() -> anyhow::Result<()> {
    require_netns!();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = TempDir::new("tls-default");
    let lan = Lan::new(83, 1).context("creating network namespaces")?;
    lan.attach_here()?;
    let ip = lan.addr(1);
    let addr = format!("{ip}:7800");
    let node = start(&lan, dir.path(), &[], true)?;
    let link = node.admin_link.clone().context("no admin link printed")?;
    assert!(link.starts_with(&format!("https://{ip}:7800/join#")), "printed link is https at the LAN address: {link}");
    wait_until("the node to listen", Duration::from_secs(20), || TcpStream::connect(&addr).is_ok())?;

    // The CA: private key readable by the node only; the link carries its fingerprint.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("node/tls/ca.key"))?.permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "CA key mode");
    let ca = load_ca(dir.path())?;
    let parsed = veche_protocol::link::InviteLink::parse(&link)?;
    let fingerprint = parsed.fingerprint.context("the admin link carries a fingerprint")?;
    use sha2::Digest;
    assert_eq!(<[u8; 32]>::from(sha2::Sha256::digest(ca.as_ref())), fingerprint);

    // A browser that trusts the CA reaches the node by LAN address and by <name>.local.
    let (health, chain) = https::get(&addr, &ip, std::slice::from_ref(&ca), "/healthz")?;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"status\":\"ok\""));
    assert_eq!(chain.len(), 2, "leaf and CA");
    let (health, _) = https::get(&addr, "town-library.local", std::slice::from_ref(&ca), "/healthz")?;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // <name>.local is announced on the LAN (mDNS) with the node's address.
    let mdns = mdns_sd::ServiceDaemon::new()?;
    let found = mdns.resolve_hostname("town-library.local.", Some(10_000))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut resolved = Vec::new();
    while resolved.is_empty() && Instant::now() < deadline {
        if let Ok(mdns_sd::HostnameResolutionEvent::AddressesFound(_, addrs)) =
            found.recv_timeout(Duration::from_secs(1))
        {
            resolved.extend(addrs.iter().map(|a| a.to_ip_addr().to_string()));
        }
    }
    let _ = mdns.shutdown();
    assert!(resolved.contains(&ip), "town-library.local resolves to the node's LAN address: {resolved:?}");
    // ... and not for a name the CA may not sign.
    let other = https::get(&addr, "example.com", std::slice::from_ref(&ca), "/healthz");
    assert!(other.is_err(), "a name the certificate does not cover is refused");

    // The machine gets another address (a new lease): within the node's check interval (10 s)
    // its certificate covers that one too.
    let new_ip = lan.add_addr(1, 77)?;
    let new_addr = format!("{new_ip}:7800");
    let leased = Instant::now();
    wait_until("a certificate for the new address", Duration::from_secs(30), || {
        https::get(&new_addr, &new_ip, std::slice::from_ref(&ca), "/healthz")
            .is_ok_and(|(r, _)| r.starts_with("HTTP/1.1 200"))
    })?;
    println!("a certificate for the new address {new_ip} after {:?}", leased.elapsed());

    // Plain HTTP: redirected, except the CA and its page.
    let response = http_raw(&addr, format!("GET /chat/abc?x=1 HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 301"), "{text}");
    assert!(text.to_lowercase().contains(&format!("location: https://{addr}/chat/abc?x=1")), "{text}");
    let response =
        http_raw(&addr, format!("POST /api/ws HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n").as_bytes())?;
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 308"));
    let response =
        http_raw(&addr, format!("GET /trust HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let hex: String = fingerprint.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    assert!(text.contains(&hex), "the page shows the fingerprint");
    assert!(text.contains("Android") && text.contains("iPhone") && text.contains("Windows"));
    let response = http_raw(
        &addr,
        format!("GET /.well-known/veche/ca.crt HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").context("headers")? + 4;
    assert_eq!(&response[split..], ca.as_ref(), "the DER download is the CA");
    let (profile, _) = https::get(&addr, &ip, std::slice::from_ref(&ca), "/.well-known/veche/ca.mobileconfig")?;
    assert!(profile.contains("com.apple.security.root"));

    // The native client: registers with the link (pinning its fingerprint) and talks to the node.
    let alice = dir.path().join("alice");
    let out = client(&lan, &alice, &["register", "--name", "Alice", "--invite", &link]);
    assert!(out.status.success(), "register: {}", String::from_utf8_lossy(&out.stdout));
    let out = client(&lan, &alice, &["chats"]);
    assert!(out.status.success(), "chats: {}", String::from_utf8_lossy(&out.stdout));
    // A chat invite it makes carries the same fingerprint.
    let out = client(&lan, &alice, &["invite", "node"]);
    let invite: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let invite_link = invite["link"].as_str().context("invite link")?.to_string();
    assert_eq!(veche_protocol::link::InviteLink::parse(&invite_link)?.fingerprint, Some(fingerprint));

    // Without a fingerprint the node is not trusted, unless the member says so.
    let bob = dir.path().join("bob");
    let node_url = format!("https://{addr}");
    let out = client(&lan, &bob, &["--node", &node_url, "register", "--name", "Bob"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("not trusted"), "{}", String::from_utf8_lossy(&out.stdout));
    let without_fingerprint = invite_link.split("&f=").next().context("link")?.to_string();
    let out = client(
        &lan,
        &bob,
        &["--node", &node_url, "--accept-fingerprint", "register", "--name", "Bob", "--invite", &without_fingerprint],
    );
    assert!(out.status.success(), "register with TOFU: {}", String::from_utf8_lossy(&out.stdout));

    // The node gets a new CA (its data dir's tls folder wiped): the pinned client refuses it.
    drop(node);
    std::fs::remove_dir_all(dir.path().join("node/tls"))?;
    let _node = start(&lan, dir.path(), &[], false)?;
    wait_until("the node to listen again", Duration::from_secs(20), || TcpStream::connect(&addr).is_ok())?;
    let out = client(&lan, &alice, &["chats"]);
    assert!(!out.status.success(), "a changed certificate is refused");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not the one this client trusts") && text.contains(&hex), "{text}");
    Ok(())
}

#[test]
fn operator_certificate_and_reload() -> anyhow::Result<()> {
    require_netns!();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = TempDir::new("tls-operator");
    let lan = Lan::new(84, 1).context("creating network namespaces")?;
    lan.attach_here()?;
    let ip = lan.addr(1);
    let addr = format!("{ip}:7800");
    let make = |cn: &str| -> anyhow::Result<CertificateDer<'static>> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec!["chat.example.org".to_string(), ip.clone()])?;
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key)?;
        std::fs::write(dir.path().join("cert.pem"), cert.pem())?;
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem())?;
        Ok(cert.der().clone())
    };
    let first = make("first")?;
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let node =
        start(&lan, dir.path(), &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()], false)?;
    wait_until("the node to listen", Duration::from_secs(20), || TcpStream::connect(&addr).is_ok())?;
    let (health, chain) = https::get(&addr, "chat.example.org", std::slice::from_ref(&first), "/healthz")?;
    assert!(health.starts_with("HTTP/1.1 200"));
    assert_eq!(chain[0], first, "the operator's certificate is served");
    assert!(!dir.path().join("node/tls/ca.key").exists(), "no local CA is made");

    let second = make("second")?;
    Command::new("kill").args(["-HUP", &node.child.id().to_string()]).status()?;
    wait_until("the new certificate", Duration::from_secs(15), || {
        https::get(&addr, "chat.example.org", std::slice::from_ref(&second), "/healthz")
            .is_ok_and(|(_, chain)| chain[0] == second)
    })?;
    // A broken file keeps the last good certificate.
    std::fs::write(&cert, "not a certificate")?;
    Command::new("kill").args(["-HUP", &node.child.id().to_string()]).status()?;
    std::thread::sleep(Duration::from_millis(500));
    let (_, chain) = https::get(&addr, "chat.example.org", std::slice::from_ref(&second), "/healthz")?;
    assert_eq!(chain[0], second);
    Ok(())
}

#[test]
fn bad_handshakes_are_bounded() -> anyhow::Result<()> {
    require_netns!();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = TempDir::new("tls-bad");
    let lan = Lan::new(85, 1).context("creating network namespaces")?;
    lan.attach_here()?;
    let ip = lan.addr(1);
    let addr = format!("{ip}:7800");
    let _node = start(&lan, dir.path(), &[], false)?;
    wait_until("the node to listen", Duration::from_secs(20), || TcpStream::connect(&addr).is_ok())?;
    let ca = load_ca(dir.path())?;

    // Garbage after a TLS record header: the connection is closed at once (an alert or EOF).
    let started = Instant::now();
    let mut garbage = vec![0x16, 0x03, 0x01, 0x00, 0x40];
    garbage.extend(std::iter::repeat_n(0xAB, 64));
    let mut tcp = TcpStream::connect(&addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(15)))?;
    tcp.write_all(&garbage)?;
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf);
    assert!(started.elapsed() < Duration::from_secs(3), "garbage closed quickly: {:?}", started.elapsed());

    // Many clients that open TLS and never finish, and one that sends nothing: meanwhile others
    // are served, and each stalled one is dropped within the handshake timeout (10 s).
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut tcp = TcpStream::connect(&addr)?;
        tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])?; // a ClientHello header, then silence
        tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
        stalled.push(tcp);
    }
    let silent = TcpStream::connect(&addr)?;
    silent.set_read_timeout(Some(Duration::from_secs(20)))?;
    stalled.push(silent);
    let served = Instant::now();
    let (health, _) = https::get(&addr, &ip, std::slice::from_ref(&ca), "/healthz")?;
    assert!(health.starts_with("HTTP/1.1 200"));
    assert!(served.elapsed() < Duration::from_secs(2), "served while others stall: {:?}", served.elapsed());
    let opened = Instant::now();
    for mut tcp in stalled {
        let mut buf = [0u8; 16];
        let n = tcp.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "a stalled connection is closed, not answered");
    }
    let waited = opened.elapsed();
    assert!(waited < Duration::from_secs(15), "stalled connections dropped within the timeout: {waited:?}");

    // Plain HTTP with a 1 MiB header: refused, and the node still serves.
    let mut huge = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nX-Big: ").into_bytes();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b"\r\n\r\n");
    let started = Instant::now();
    let response = http_raw(&addr, &huge).unwrap_or_default();
    let text = String::from_utf8_lossy(&response);
    assert!(response.is_empty() || text.starts_with("HTTP/1.1 431") || text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let (health, _) = https::get(&addr, &ip, std::slice::from_ref(&ca), "/healthz")?;
    assert!(health.starts_with("HTTP/1.1 200"));
    Ok(())
}
