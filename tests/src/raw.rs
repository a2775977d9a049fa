//! A device that speaks the wire protocol directly, for tests of what a misbehaving or malicious
//! device can send: raw frames, forged signatures, replays, floods, and MLS messages built by hand.

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId};
use veche_protocol::wire::{ApiError, ClientFrame, Hello, InviteToken, Request, Response, ServerFrame};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw WebSocket connection to a node.
pub struct RawConn {
    ws: Ws,
    next_id: u32,
    pub hello: Hello,
}

/// What came back for a request.
pub type Answer = Result<Response, ApiError>;

impl RawConn {
    pub async fn open(node_url: &str) -> anyhow::Result<Self> {
        let url = format!("{}/api/ws", node_url.replacen("http://", "ws://", 1));
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await?;
        Self::said_hello(ws).await
    }

    /// Like [`RawConn::open`] (plain `http://` only), from the local address `from`: on Linux any
    /// address in 127.0.0.0/8 reaches a node on 127.0.0.1, so a test can be several addresses.
    pub async fn open_from(node_url: &str, from: std::net::IpAddr) -> anyhow::Result<Self> {
        let authority = node_url.strip_prefix("http://").context("a plain http:// node URL")?;
        let target = tokio::net::lookup_host(authority).await?.next().context("the node's address")?;
        let socket = if from.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.bind(std::net::SocketAddr::new(from, 0))?;
        let stream = socket.connect(target).await?;
        let url = format!("ws://{authority}/api/ws");
        let (ws, _) = tokio_tungstenite::client_async(url.as_str(), MaybeTlsStream::Plain(stream)).await?;
        Self::said_hello(ws).await
    }

    async fn said_hello(mut ws: Ws) -> anyhow::Result<Self> {
        let hello = match read(&mut ws).await? {
            ServerFrame::Hello(hello) => hello,
            other => bail!("expected Hello, got {other:?}"),
        };
        Ok(RawConn { ws, next_id: 1, hello })
    }

    /// The underlying WebSocket (the benchmark splits it into reader and writer).
    pub fn into_ws(self) -> Ws {
        self.ws
    }

    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.ws.send(Message::Binary(bytes.into())).await?;
        Ok(())
    }

    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// Sends a request without waiting; returns its id.
    pub async fn send(&mut self, request: Request) -> anyhow::Result<u32> {
        let id = self.next_id;
        self.next_id += 1;
        self.send_bytes(ClientFrame { id, request }.encode()).await?;
        Ok(id)
    }

    /// The next response or fatal frame (events are skipped).
    pub async fn next_answer(&mut self) -> anyhow::Result<(u32, Answer)> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), read(&mut self.ws)).await?? {
                ServerFrame::Response { id, result } => return Ok((id, result)),
                ServerFrame::Fatal(error) => return Ok((u32::MAX, Err(error))),
                _ => continue,
            }
        }
    }

    /// Reads frames (events and responses) until `want` picks one, for up to `within`.
    pub async fn until<T>(
        &mut self,
        within: Duration,
        mut want: impl FnMut(ServerFrame) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let frame =
                tokio::time::timeout_at(deadline, read(&mut self.ws)).await.context("no such frame in time")??;
            if let Some(found) = want(frame) {
                return Ok(found);
            }
        }
    }

    pub async fn call(&mut self, request: Request) -> anyhow::Result<Answer> {
        let id = self.send(request).await?;
        loop {
            let (got, answer) = self.next_answer().await?;
            if got == id || got == u32::MAX {
                return Ok(answer);
            }
        }
    }

    /// Whether the node closes the connection within `within` (frames before the close are skipped).
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

async fn read(ws: &mut Ws) -> anyhow::Result<ServerFrame> {
    loop {
        match ws.next().await.context("connection closed")?? {
            Message::Binary(bytes) => return Ok(ServerFrame::decode(&bytes)?),
            Message::Close(_) => bail!("connection closed"),
            _ => continue,
        }
    }
}

/// A registered device with its own in-memory MLS client.
pub struct RawDevice {
    pub key: SigningKey,
    pub mls: veche_mls::Client,
    pub conn: RawConn,
}

impl RawDevice {
    pub fn device(&self) -> DeviceId {
        DeviceId(self.key.verifying_key().to_bytes())
    }

    pub fn account(&self) -> AccountId {
        AccountId(self.key.verifying_key().to_bytes())
    }

    /// Registers a new device (signing this connection's challenge) and publishes key packages.
    pub async fn register(node_url: &str, name: &str, invite: Option<InviteToken>) -> anyhow::Result<RawDevice> {
        Self::register_on(RawConn::open(node_url).await?, name, invite).await
    }

    /// Registers a new device on a connection already open (see [`RawConn::open_from`]).
    pub async fn register_on(mut conn: RawConn, name: &str, invite: Option<InviteToken>) -> anyhow::Result<RawDevice> {
        let secret = veche_mls::Client::generate_secret();
        let key = SigningKey::from_bytes(&secret);
        let mut mls = veche_mls::Client::new(secret);
        let device = DeviceId(key.verifying_key().to_bytes());
        let account = AccountId(device.0);
        let payload = veche_protocol::auth::register_payload(
            &conn.hello.node_id,
            &conn.hello.challenge,
            &device,
            &account,
            name,
            None,
        );
        let signature = veche_protocol::auth::sign(&key, &payload);
        let binding = veche_protocol::auth::ChannelBinding::Unbound;
        let request = Request::Register { device, account, display_name: name.into(), invite, signature, binding };
        conn.call(request).await?.map_err(|e| anyhow::anyhow!("register: {e}"))?;
        let packages = mls.key_packages(5)?;
        let last_resort = Some(mls.last_resort_key_package()?);
        conn.call(Request::PublishKeyPackages { packages, last_resort }).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
        // As the device core does: the account key signs this node as the account's home.
        let payload = veche_protocol::auth::home_payload(&account, &conn.hello.node_id);
        let signature = veche_protocol::auth::sign(&key, &payload);
        conn.call(Request::BindHome { signature }).await?.map_err(|e| anyhow::anyhow!("bind home: {e}"))?;
        Ok(RawDevice { key, mls, conn })
    }

    /// Opens a new connection to the node (after it restarted) and signs in with this device.
    pub async fn reconnect(&mut self, node_url: &str) -> anyhow::Result<()> {
        let mut conn = RawConn::open(node_url).await?;
        let device = self.device();
        let payload = veche_protocol::auth::sign_in_payload(&conn.hello.node_id, &conn.hello.challenge, &device, None);
        let signature = veche_protocol::auth::sign(&self.key, &payload);
        conn.call(Request::SignIn { device, signature, binding: veche_protocol::auth::ChannelBinding::Unbound })
            .await?
            .map_err(|e| anyhow::anyhow!("sign in: {e}"))?;
        self.conn = conn;
        Ok(())
    }
}

impl RawDevice {
    /// Creates a group chat with this device as owner.
    pub async fn create_chat(&mut self, group: GroupId, name: &str) -> anyhow::Result<()> {
        let group_info = self.mls.create_group(group, ChatKind::Group)?;
        let request = Request::CreateChat {
            group,
            kind: ChatKind::Group,
            name: name.into(),
            description: String::new(),
            peer: None,
            group_info,
        };
        self.conn.call(request).await?.map_err(|e| anyhow::anyhow!("create chat: {e}"))?;
        Ok(())
    }

    /// An unlimited invite to a chat this device manages.
    pub async fn invite(&mut self, group: GroupId) -> anyhow::Result<InviteToken> {
        let request = Request::CreateInvite { group: Some(group), max_uses: None, expires_in_secs: None };
        match self.conn.call(request).await? {
            Ok(Response::InviteCreated { invite, secret }) => Ok(InviteToken { invite: invite.invite, secret }),
            other => bail!("create invite: {other:?}"),
        }
    }

    /// Joins by invite with an external commit; returns the commit's sequence number and the commit.
    pub async fn join(&mut self, token: &InviteToken) -> anyhow::Result<(u64, Vec<u8>)> {
        let Ok(Response::GroupInfo(info)) = self.conn.call(Request::JoinGroupInfo { token: token.clone() }).await?
        else {
            bail!("no GroupInfo for the invite")
        };
        let (_, bundle) = self.mls.join_external(&info)?;
        let request =
            Request::Join { token: token.clone(), commit: bundle.commit.clone(), group_info: bundle.group_info };
        match self.conn.call(request).await? {
            Ok(Response::Stored { seq }) => Ok((seq, bundle.commit)),
            other => bail!("join: {other:?}"),
        }
    }
}
