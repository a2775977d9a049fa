//! Scenario: an admin keeps the node's metrics off its public address. With `--metrics-addr`,
//! `/metrics` answers on that address only (a local Prometheus scrapes it) and the main address,
//! which members and strangers reach, no longer serves it; without the option it is on the main
//! address as before.

use std::io::{Read, Write};
use std::time::Duration;
use veche_tests::{Node, TempDir, free_port};

/// Status line and body of a plain HTTP GET.
fn get(port: u16, path: &str) -> anyhow::Result<(String, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response.as_str(), ""));
    Ok((head.lines().next().unwrap_or_default().to_string(), body.to_string()))
}

#[test]
fn metrics_can_be_kept_off_the_main_address() -> anyhow::Result<()> {
    let tmp = TempDir::new("metrics-addr");
    let metrics_port = free_port();
    let addr = format!("127.0.0.1:{metrics_port}");
    let node = Node::start(tmp.path(), &["--registration", "open", "--mdns", "false", "--metrics-addr", &addr])?;
    let (status, body) = get(metrics_port, "/metrics")?;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.lines().any(|l| l.starts_with("veche_connections ")), "the node's metrics: {body}");
    // The main address has no /metrics (a node serving the web UI answers the app's page there).
    let (status, body) = get(node.port, "/metrics")?;
    assert!(!body.contains("veche_connections"), "no metrics on the main address: {status}\n{body}");
    // The metrics address serves nothing else.
    let (status, _) = get(metrics_port, "/healthz")?;
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
    assert!(node.http_get("/healthz").is_ok(), "the main address still serves the node");

    let tmp = TempDir::new("metrics-main");
    let node = Node::start(tmp.path(), &["--registration", "open", "--mdns", "false"])?;
    assert!(node.http_get("/metrics")?.lines().any(|l| l.starts_with("veche_connections ")));
    Ok(())
}
