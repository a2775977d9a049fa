//! A device's connection to its node: request/response with ids, events buffered in between.

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use veche_protocol::wire::{ApiError, ClientFrame, Event, Hello, Request, Response, ServerFrame};

/// A refused request or a broken connection.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{}", .0.message)]
    Api(ApiError),
    #[error("connection to the node failed: {0:#}")]
    Transport(anyhow::Error),
}

impl From<anyhow::Error> for CallError {
    fn from(e: anyhow::Error) -> Self {
        CallError::Transport(e)
    }
}

pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u32,
    pub hello: Hello,
    events: VecDeque<Event>,
    /// The fingerprint of the certificate the connection was trusted by (pinned or first use);
    /// `None` over plain HTTP or with a publicly trusted certificate.
    pub anchor: Option<[u8; 32]>,
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
        let (mut ws, _) =
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
        let hello = match Self::read_frame(&mut ws).await? {
            ServerFrame::Hello(hello) => hello,
            other => bail!("node did not greet: {other:?}"),
        };
        if hello.protocol != veche_protocol::PROTOCOL_VERSION {
            bail!("node speaks protocol {}, this client {}", hello.protocol, veche_protocol::PROTOCOL_VERSION);
        }
        Ok(Connection { ws, next_id: 1, hello, events: VecDeque::new(), anchor })
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

    /// Sends a request and waits for its answer; events that arrive meanwhile are kept.
    pub async fn call(&mut self, request: Request) -> Result<Response, CallError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let frame = ClientFrame { id, request };
        self.ws.send(Message::Binary(frame.encode().into())).await.map_err(anyhow::Error::from)?;
        loop {
            match Self::read_frame(&mut self.ws).await? {
                ServerFrame::Response { id: got, result } if got == id => {
                    return result.map_err(CallError::Api);
                }
                ServerFrame::Response { .. } | ServerFrame::Hello(_) => continue,
                ServerFrame::Event(event) => self.events.push_back(event),
                ServerFrame::Fatal(error) => return Err(CallError::Api(error)),
            }
        }
    }

    /// The next event (buffered first).
    pub async fn next_event(&mut self) -> anyhow::Result<Event> {
        if let Some(event) = self.events.pop_front() {
            return Ok(event);
        }
        loop {
            match Self::read_frame(&mut self.ws).await? {
                ServerFrame::Event(event) => return Ok(event),
                ServerFrame::Fatal(error) => bail!("node closed the connection: {}", error.message),
                _ => continue,
            }
        }
    }
}
