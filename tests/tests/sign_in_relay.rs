//! Scenario: a machine in the middle relays a member's sign-in (issue 24, "Sign-in relay").
//!
//! Mallory sits where the admin's device connects to its node (the node moved to another port, a
//! relay answers on the old one) with a certificate the device trusts: here one signed by the
//! node's own CA, as a stolen or mis-issued certificate would be. She terminates the device's TLS
//! and opens her own TLS session to the node, passing every byte on, so she reads and could inject
//! all of the admin's traffic once the admin is signed in.
//!
//! The native client signs its TLS session's exporter (RFC 9266) into its sign-in and
//! registration; the node recomputes it from its own end of the connection. Through the relay the
//! two sessions differ, so:
//! - the admin's sign-in is refused with a message that says what happened, and nothing the admin
//!   sends after it is served;
//! - a new member's registration through the relay is refused the same way;
//! - once the relay is gone, both work directly (the exporter is the same at both ends of one
//!   session).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, pem::PemObject};
use veche_tests::{TempDir, free_port, https, veche_bin};

struct TlsNode(Child);

impl Drop for TlsNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `veche run` with its default HTTPS (own CA) on 127.0.0.1:`port`; the admin link at first start.
fn start_node(dir: &Path, port: u16, first_start: bool) -> anyhow::Result<(TlsNode, Option<String>)> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("node.log"))?;
    let mut child = Command::new(veche_bin())
        .args(["run", "--data-dir"])
        .arg(dir.join("node"))
        .args(["--http", &format!("127.0.0.1:{port}"), "--name", "Town Library"])
        .args(["--p2p-port", "0", "--media-port", "0"])
        .env("VECHE_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .context("starting veche run")?;
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if line.starts_with("admin link") {
                let _ = tx.send(Some(lines.next().and_then(Result::ok).map(|l| l.trim().to_string())));
            } else if line.starts_with("listening:") {
                let _ = tx.send(None);
            }
        }
    });
    let node = TlsNode(child);
    // The banner says where it listens and, at the first start only, ends with the admin link.
    let (mut listening, mut link) = (false, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(listening && (link.is_some() || !first_start)) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(l)) => link = l,
            Ok(None) => listening = true,
            Err(_) if Instant::now() > deadline => {
                bail!("node did not start; log:\n{}", std::fs::read_to_string(dir.join("node.log")).unwrap_or_default())
            }
            Err(_) => {}
        }
    }
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("node does not accept connections");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((node, link))
}

fn client(state: &Path, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = Command::new(veche_bin())
        .arg("client")
        .arg("--state")
        .arg(state)
        .arg("--json")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("veche client")?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

/// Mallory's relay on 127.0.0.1:`port`: TLS with a certificate the node's CA signed, and her own
/// TLS session to the node at `node_port`, every byte copied both ways. Counts connections relayed.
async fn relay(port: u16, node_port: u16, data: &Path, relayed: Arc<AtomicUsize>) -> anyhow::Result<()> {
    let ca_pem = std::fs::read_to_string(data.join("tls/ca.pem"))?;
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(data.join("tls/ca.key"))?)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&key, &issuer)?;
    let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone(), ca_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let connector = tokio_rustls::TlsConnector::from(https::client_config(&[ca_der])?);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        let (acceptor, connector, relayed) = (acceptor.clone(), connector.clone(), relayed.clone());
        tokio::spawn(async move {
            let Ok(mut device_side) = acceptor.accept(tcp).await else { return };
            let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", node_port)).await else { return };
            let name = ServerName::try_from("127.0.0.1").expect("an IP address");
            let Ok(mut node_side) = connector.connect(name, tcp).await else { return };
            relayed.fetch_add(1, Ordering::Relaxed);
            let _ = tokio::io::copy_bidirectional(&mut device_side, &mut node_side).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_sign_in_or_registration_is_refused() -> anyhow::Result<()> {
    let dir = TempDir::new("sign-in-relay");
    let (usual_port, moved_port) = (free_port(), free_port());
    let (node, admin_link) = start_node(dir.path(), usual_port, true)?;
    let admin_link = admin_link.context("the first start prints an admin link")?;
    assert!(admin_link.starts_with(&format!("https://127.0.0.1:{usual_port}/")), "{admin_link}");

    // The admin registers over HTTPS, pinning the CA the link names, and makes an invite for Bob.
    let admin = dir.path().join("admin");
    let (ok, out) = client(&admin, &["register", "--name", "Admin", "--invite", &admin_link])?;
    assert!(ok, "the admin registers directly: {out}");
    let (ok, out) = client(&admin, &["invite", "node", "--uses", "1"])?;
    assert!(ok, "invite: {out}");
    let bob_link =
        serde_json::from_str::<serde_json::Value>(out.trim())?["link"].as_str().context("an invite link")?.to_string();

    // The node moves; Mallory's relay answers where the devices still go.
    drop(node);
    let (node, _) = start_node(dir.path(), moved_port, false)?;
    let relayed = Arc::new(AtomicUsize::new(0));
    let data = dir.path().join("node");
    let relay_task = tokio::spawn({
        let relayed = relayed.clone();
        async move { relay(usual_port, moved_port, &data, relayed).await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", usual_port)).await.is_err() {
        if Instant::now() > deadline {
            bail!("the relay did not listen");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let state = admin.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || client(&state, &["whoami"])).await??;
    assert!(relayed.load(Ordering::Relaxed) >= 1, "the admin's device went through the relay");
    assert!(!ok, "the admin's sign-in through the relay is refused: {out}");
    assert!(out.contains("terminated"), "the refusal says that something terminated the TLS session: {out}");

    let bob = dir.path().join("bob");
    let (state, link) = (bob.clone(), bob_link.clone());
    let before = relayed.load(Ordering::Relaxed);
    let (ok, out) =
        tokio::task::spawn_blocking(move || client(&state, &["register", "--name", "Bob", "--invite", &link]))
            .await??;
    assert!(relayed.load(Ordering::Relaxed) > before, "Bob's device went through the relay");
    assert!(!ok, "Bob's registration through the relay is refused: {out}");
    assert!(out.contains("terminated"), "{out}");

    // Without the relay, the node back where it was: both work, bound to their own TLS sessions.
    relay_task.abort();
    let _ = relay_task.await;
    drop(node);
    let (_node, _) = start_node(dir.path(), usual_port, false)?;
    let state = admin.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || client(&state, &["whoami"])).await??;
    assert!(ok, "the admin signs in directly: {out}");
    assert!(out.contains("Admin"), "{out}");
    let (ok, out) =
        tokio::task::spawn_blocking(move || client(&bob, &["register", "--name", "Bob", "--invite", &bob_link]))
            .await??;
    assert!(ok, "Bob registers directly with the same link: {out}");
    let log = std::fs::read_to_string(dir.path().join("node.log"))?;
    assert!(!log.contains("panicked"), "no panic in the node log");
    Ok(())
}
