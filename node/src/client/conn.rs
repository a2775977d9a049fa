//! The WebSocket to the node: opened with the client's TLS trust, greeted by the node's `Hello`,
//! then frames both ways. Which answer belongs to which request is the driver's business.

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use veche_protocol::wire::{ClientFrame, Hello, Request, ServerFrame};

pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub hello: Hello,
    /// The fingerprint of the certificate the connection was trusted by (pinned or first use);
    /// `None` over plain HTTP or with a publicly trusted certificate.
    pub anchor: Option<[u8; 32]>,
    /// The TLS session's exporter (RFC 9266), which the sign-in signs; `None` over plain HTTP.
    pub exporter: Option<[u8; veche_protocol::auth::TLS_EXPORTER_LEN]>,
}

/// `http://host:port` -> `ws://host:port/api/ws`.
pub fn ws_url(node_url: &str) -> anyhow::Result<String> {
    let base = node_url.trim_end_matches('/');
    let rest = base
        .strip_prefix("http://")
        .map(|r| format!("ws://{r}"))
        .or_else(|| base.strip_prefix("https://").map(|r| format!("wss://{r}")))
        .with_context(|| format!("node URL must start with http:// or https://: {node_url}"))?;
    Ok(format!("{rest}/api/ws"))
}

impl Connection {
    pub async fn open(node_url: &str, trust: super::tls::Trust) -> anyhow::Result<Self> {
        let url = ws_url(node_url)?;
        let (config, seen) = super::tls::client_config(trust);
        let connector = tokio_tungstenite::Connector::Rustls(config);
        let (ws, _) =
            match tokio_tungstenite::connect_async_tls_with_config(url.as_str(), None, true, Some(connector)).await {
                Ok(connected) => connected,
                Err(e) => {
                    let refused = seen.lock().unwrap_or_else(|e| e.into_inner()).refused.clone();
                    match refused {
                        Some(why) => bail!("connecting to {node_url}: {why}"),
                        None => return Err(anyhow::Error::new(e).context(format!("connecting to {node_url}"))),
                    }
                }
            };
        let anchor = seen.lock().unwrap_or_else(|e| e.into_inner()).anchor;
        let mut ws = ws;
        let hello = match read_frame(&mut ws).await? {
            ServerFrame::Hello(hello) => hello,
            other => bail!("node did not greet: {other:?}"),
        };
        if hello.protocol != veche_protocol::PROTOCOL_VERSION {
            bail!("node speaks protocol {}, this client {}", hello.protocol, veche_protocol::PROTOCOL_VERSION);
        }
        let exporter = match ws.get_ref() {
            MaybeTlsStream::Rustls(tls) => Some(
                tls.get_ref()
                    .1
                    .export_keying_material(
                        [0u8; veche_protocol::auth::TLS_EXPORTER_LEN],
                        veche_protocol::auth::TLS_EXPORTER_LABEL,
                        None,
                    )
                    .context("reading the TLS session's exporter")?,
            ),
            _ => None,
        };
        let conn = Connection { ws, hello, anchor, exporter };
        Ok(conn)
    }

    /// The next frame from the node (cancel-safe). An error when the connection is gone.
    pub async fn next_frame(&mut self) -> anyhow::Result<ServerFrame> {
        read_frame(&mut self.ws).await
    }

    pub async fn send(&mut self, id: u32, request: Request) -> anyhow::Result<()> {
        let frame = ClientFrame { id, request };
        self.ws.send(Message::Binary(frame.encode().into())).await?;
        Ok(())
    }
}

async fn read_frame(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>) -> anyhow::Result<ServerFrame> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(bytes))) => return Ok(ServerFrame::decode(&bytes)?),
            Some(Ok(Message::Close(_))) | None => bail!("the node closed the connection"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        }
    }
}
