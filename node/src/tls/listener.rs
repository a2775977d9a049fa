//! One TCP port for HTTPS and plain HTTP: each connection's first byte tells them apart (a TLS
//! ClientHello starts with 0x16, an HTTP request with a letter). TLS connections are handshaken
//! here; plain ones go on as they are (the API redirects them to https, except the CA page).
//!
//! Handshakes run in their own tasks, at most [`MAX_PENDING`] at once and each within
//! [`HANDSHAKE_TIMEOUT`], so a client that never finishes (or sends garbage) holds one slot for a
//! bounded time and never delays anyone else.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a connection may take to send its first byte and finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections between accept and a finished handshake.
pub const MAX_PENDING: usize = 512;
/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE: u8 = 0x16;

/// Who is on the other end, and whether the connection is TLS.
#[derive(Debug, Clone, Copy)]
pub struct Remote {
    pub addr: SocketAddr,
    pub secure: bool,
    /// The TLS session's exporter (RFC 9266), which a native client signs when it signs in: a
    /// signature made over another TLS session (relayed by a machine in the middle) then fails.
    pub exporter: Option<[u8; veche_protocol::auth::TLS_EXPORTER_LEN]>,
}

/// A connection: TLS or plain TCP.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The listener `axum::serve` takes: connections come out of it ready (handshaken).
pub struct DualListener {
    ready: mpsc::Receiver<(Stream, Remote)>,
    local: SocketAddr,
    acceptor_task: tokio::task::JoinHandle<()>,
}

impl Drop for DualListener {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

impl DualListener {
    /// Starts accepting on `listener`. Without `tls` every connection is plain (`--tls off`).
    pub fn new(listener: TcpListener, tls: Option<TlsAcceptor>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor_task = tokio::spawn(accept_loop(listener, tls, tx));
        Ok(DualListener { ready, local, acceptor_task })
    }
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, tx: mpsc::Sender<(Stream, Remote)>) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            tracing::debug!(%addr, "too many unfinished handshakes; connection dropped");
            continue;
        };
        let (tls, tx) = (tls.clone(), tx.clone());
        tokio::spawn(async move {
            let ready = tokio::time::timeout(HANDSHAKE_TIMEOUT, open(tcp, tls.as_ref())).await;
            drop(permit);
            match ready {
                Ok(Ok((stream, secure))) => {
                    let exporter = match &stream {
                        Stream::Tls(tls) => tls
                            .get_ref()
                            .1
                            .export_keying_material(
                                [0u8; veche_protocol::auth::TLS_EXPORTER_LEN],
                                veche_protocol::auth::TLS_EXPORTER_LABEL,
                                None,
                            )
                            .ok(),
                        Stream::Plain(_) => None,
                    };
                    let _ = tx.send((stream, Remote { addr, secure, exporter })).await;
                }
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "connection dropped before its first request"),
                Err(_) => tracing::debug!(%addr, "handshake timed out"),
            }
        });
    }
}

/// Waits for the first byte; handshakes TLS if it starts a TLS record.
async fn open(tcp: TcpStream, tls: Option<&TlsAcceptor>) -> io::Result<(Stream, bool)> {
    let Some(tls) = tls else { return Ok((Stream::Plain(tcp), false)) };
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before sending anything"));
    }
    if first[0] == TLS_HANDSHAKE {
        let stream = tls.accept(tcp).await?;
        Ok((Stream::Tls(Box::new(stream)), true))
    } else {
        Ok((Stream::Plain(tcp), false))
    }
}

impl axum::serve::Listener for DualListener {
    type Io = Stream;
    type Addr = Remote;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept loop ended (it never does on its own): wait for shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Remote { addr: self.local, secure: false, exporter: None })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, DualListener>> for Remote {
    fn connect_info(stream: axum::serve::IncomingStream<'_, DualListener>) -> Self {
        *stream.remote_addr()
    }
}
