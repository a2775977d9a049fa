//! A minimal HTTPS client for tests: one GET over rustls that trusts exactly the given roots, and
//! the certificate chain the server presented.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};

/// A rustls client config that trusts exactly `roots`.
pub fn client_config(roots: &[CertificateDer<'static>]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(store)
            .with_no_client_auth(),
    ))
}

/// GET `path` over TLS at `addr`, verifying the certificate for `name`; returns the whole
/// response (head and body) and the certificate chain the server presented.
pub fn get(
    addr: &str,
    name: &str,
    roots: &[CertificateDer<'static>],
    path: &str,
) -> anyhow::Result<(String, Vec<CertificateDer<'static>>)> {
    let server_name = ServerName::try_from(name.to_string())?;
    let mut conn = rustls::ClientConnection::new(client_config(roots)?, server_name)?;
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    write!(tls, "GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n")?;
    let mut body = Vec::new();
    match tls.read_to_end(&mut body) {
        Ok(_) => {}
        // Some servers close without close_notify after Connection: close.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !body.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    let chain =
        conn.peer_certificates().map(|c| c.iter().map(|c| c.clone().into_owned()).collect()).unwrap_or_default();
    Ok((String::from_utf8_lossy(&body).into_owned(), chain))
}
