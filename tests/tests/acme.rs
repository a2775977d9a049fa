//! Scenario: a node with a public name gets its certificate by ACME. Debian's `pebble` (the RFC
//! 8555 test server) plays Let's Encrypt on loopback, `pebble-challtestsrv` its DNS (every name
//! resolves to 127.0.0.1). The node, started with `--acme-domain chat.veche.test`, answers the
//! TLS-ALPN-01 challenge on its HTTPS port and then serves the issued certificate, which verifies
//! up to pebble's root for that name; responses carry HSTS (a publicly trusted certificate); a
//! restart serves the stored certificate at once. Skipped (with the reason) without pebble.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use anyhow::Context;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use veche_tests::{TempDir, free_port, https, veche_bin};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, log: &std::path::Path) -> anyhow::Result<Proc> {
    let log = std::fs::File::create(log)?;
    Ok(Proc(cmd.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log)).spawn()?))
}

/// Pebble's root of the day (it makes a new one at every start), from its management API.
fn pebble_root(management: u16, listener_ca: &CertificateDer<'static>) -> anyhow::Result<CertificateDer<'static>> {
    let (text, _) =
        https::get(&format!("127.0.0.1:{management}"), "localhost", std::slice::from_ref(listener_ca), "/roots/0")?;
    let pem = &text[text.find("-----BEGIN").context("no PEM in pebble's answer")?..];
    Ok(CertificateDer::from_pem_slice(pem.as_bytes())?.into_owned())
}

fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[test]
fn certificate_by_acme_from_pebble() -> anyhow::Result<()> {
    if Command::new("pebble").arg("-h").stderr(Stdio::null()).stdout(Stdio::null()).status().is_err() {
        eprintln!("SKIPPED: needs Debian's pebble (apt install pebble), the ACME test server");
        return Ok(());
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = TempDir::new("acme");
    let (acme_port, management, dns, node_port) = (free_port(), free_port(), free_port(), free_port());

    // Pebble's own HTTPS listener needs a certificate: one for localhost from a throwaway CA.
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "pebble listener CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?
        .signed_by(&leaf_key, &issuer)?;
    std::fs::write(dir.path().join("listener.pem"), leaf.pem())?;
    std::fs::write(dir.path().join("listener.key"), leaf_key.serialize_pem())?;
    std::fs::write(dir.path().join("listener-ca.pem"), ca_cert.pem())?;
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{acme_port}"),
        "managementListenAddress": format!("127.0.0.1:{management}"),
        "certificate": dir.path().join("listener.pem"),
        "privateKey": dir.path().join("listener.key"),
        "httpPort": 5002,
        "tlsPort": node_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
    }});
    std::fs::write(dir.path().join("pebble.json"), serde_json::to_vec_pretty(&config)?)?;

    let _dns = spawn(
        Command::new("pebble-challtestsrv").args([
            "-dns01",
            &format!("127.0.0.1:{dns}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{}", free_port()),
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ]),
        &dir.path().join("challtestsrv.log"),
    )?;
    let _pebble = spawn(
        Command::new("pebble")
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0"),
        &dir.path().join("pebble.log"),
    )?;
    wait_for_port(acme_port, "pebble")?;

    let node_args = |data: &std::path::Path| {
        let mut cmd = Command::new(veche_bin());
        cmd.arg("run")
            .arg("--data-dir")
            .arg(data)
            .args(["--http", &format!("127.0.0.1:{node_port}"), "--p2p-port", "0", "--media-port", "0"])
            .args(["--mdns", "false", "--registration", "open"])
            .args(["--acme-domain", "chat.veche.test", "--acme-email", "admin@veche.test"])
            .args(["--acme-directory", &format!("https://127.0.0.1:{acme_port}/dir")])
            .arg("--acme-ca")
            .arg(dir.path().join("listener-ca.pem"))
            .env("VECHE_LOG", "debug");
        cmd
    };
    let data = dir.path().join("node");
    let node = spawn(&mut node_args(&data), &dir.path().join("node.log"))?;
    wait_for_port(node_port, "the node")?;

    let listener_ca = CertificateDer::from_pem_file(dir.path().join("listener-ca.pem"))?;
    let root = pebble_root(management, &listener_ca)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (response, chain) = loop {
        match https::get(&format!("127.0.0.1:{node_port}"), "chat.veche.test", std::slice::from_ref(&root), "/healthz")
        {
            Ok(ok) => break ok,
            Err(e) => {
                if Instant::now() > deadline {
                    let log = std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default();
                    let acme: Vec<&str> = log.lines().filter(|l| l.contains("ACME") || l.contains("acme")).collect();
                    anyhow::bail!("no certificate from pebble within 60 s: {e:#}\n{}", acme.join("\n"));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("strict-transport-security: max-age="),
        "HSTS with a publicly trusted certificate: {response}"
    );
    assert!(chain.len() >= 2, "leaf and pebble's intermediate");
    assert!(!data.join("tls/ca.key").exists(), "no local CA with ACME");
    drop(node);

    // A restart serves the stored certificate at once (no new order needed).
    let _node = spawn(&mut node_args(&data), &dir.path().join("node2.log"))?;
    wait_for_port(node_port, "the restarted node")?;
    let started = Instant::now();
    let mut again = None;
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok((_, chain)) =
            https::get(&format!("127.0.0.1:{node_port}"), "chat.veche.test", std::slice::from_ref(&root), "/healthz")
        {
            again = Some(chain);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(again.context("the stored certificate is served after a restart")?[0], chain[0]);
    Ok(())
}
