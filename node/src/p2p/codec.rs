//! The request-response codec of the federation protocol: one postcard value per stream, after a
//! 4-byte big-endian length. Lengths above the sender's cap and undecodable values are IO errors
//! (the stream is dropped), never panics.
//!
//! The length is read before the body, and the cap depends on who sent it: a linked node may send
//! up to [`MAX_FED_MESSAGE_BYTES`], any other peer (a stranger on the LAN or the internet, a node
//! whose link is not up) only [`MAX_UNLINKED_MESSAGE_BYTES`]. libp2p's request-response
//! behaviour is not told the peer of a stream, so [`FedBehaviour`] gives each connection its own
//! codec that knows the remote peer ([`FedCodec`]'s `Clone`), and [`LinkedPeers`], kept by the
//! federation service, says which peers are linked now (a link made or removed while connected
//! counts from the next stream on).
//!
//! Reading is bounded for everyone: the bytes of all messages being read at once share one
//! budget, [`READ_BUDGET`] for linked nodes and [`UNLINKED_READ_BUDGET`] for everyone else, taken
//! before a body is read and given back when it is decoded; a stream waiting for the budget reads
//! nothing, so its transport's flow control stops the sender; and a body takes memory only as its
//! bytes arrive, never its announced length. A stranger's announce above its cap is refused at
//! once, before it takes anything from either budget.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use tokio::sync::Semaphore;

use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, StreamProtocol, request_response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use veche_protocol::federation::{FedReply, FedRequest, MAX_FED_MESSAGE_BYTES};

/// Bytes of federation messages (requests and replies) this node reads at once from linked nodes
/// together: eight of the largest messages. Linked nodes exchange pages of at most 4 MiB, a few at
/// a time, so they rarely wait. A stream waiting for the budget is bounded by the request timeout
/// (`FED_TIMEOUT`).
pub const READ_BUDGET: usize = 8 * MAX_FED_MESSAGE_BYTES;

/// Largest federation message read from a peer that is not linked. Such a peer is refused
/// whatever it asks (`FedReply::Refused`, Forbidden), and it only needs to learn that: the largest
/// request a node sends to a node it believes linked while the link is not up here (yet, or any
/// more) without carrying messages is a `Locate` of `MAX_LOCATE` (1,000) accounts, about 31 KiB,
/// so 64 KiB still gets it a typed refusal; a forward carrying MLS messages (up to 128 KiB each)
/// is dropped unread, and the sender sees an IO error instead. Linking itself is another protocol
/// (`LINK_PROTOCOL`, 4 KiB messages).
pub const MAX_UNLINKED_MESSAGE_BYTES: usize = 64 * 1024;

/// Bytes read at once from all peers that are not linked together: sixteen of their largest
/// messages (1 MiB). Strangers wait for each other, never for linked nodes nor linked nodes for
/// them.
pub const UNLINKED_READ_BUDGET: usize = 16 * MAX_UNLINKED_MESSAGE_BYTES;

/// The peers whose link is up (both admins approved), kept by the federation service; shared
/// with every connection's codec.
#[derive(Debug, Clone, Default)]
pub struct LinkedPeers(Arc<RwLock<HashSet<PeerId>>>);

impl LinkedPeers {
    pub fn new(peers: impl IntoIterator<Item = PeerId>) -> Self {
        LinkedPeers(Arc::new(RwLock::new(peers.into_iter().collect())))
    }

    /// Records whether the link with `peer` is up.
    pub fn set(&self, peer: PeerId, linked: bool) {
        let mut peers = self.0.write().unwrap_or_else(|e| e.into_inner());
        if linked {
            peers.insert(peer);
        } else {
            peers.remove(&peer);
        }
    }

    pub fn contains(&self, peer: &PeerId) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).contains(peer)
    }
}

/// The codec. The behaviour holds one without a peer; the copy it makes for a new connection
/// takes the peer [`FedBehaviour`] set in `next_peer` just before, and the copies a connection
/// makes for its streams keep it. A copy without a peer reads as for a stranger.
#[derive(Debug)]
pub struct FedCodec {
    budget: Arc<Semaphore>,
    unlinked_budget: Arc<Semaphore>,
    linked: LinkedPeers,
    peer: Option<PeerId>,
    next_peer: Arc<Mutex<Option<PeerId>>>,
}

impl Clone for FedCodec {
    fn clone(&self) -> Self {
        let peer = self.peer.or_else(|| *self.next_peer.lock().unwrap_or_else(|e| e.into_inner()));
        FedCodec {
            budget: self.budget.clone(),
            unlinked_budget: self.unlinked_budget.clone(),
            linked: self.linked.clone(),
            peer,
            next_peer: self.next_peer.clone(),
        }
    }
}

impl FedCodec {
    pub fn new(linked: LinkedPeers) -> Self {
        FedCodec {
            budget: Arc::new(Semaphore::new(READ_BUDGET)),
            unlinked_budget: Arc::new(Semaphore::new(UNLINKED_READ_BUDGET)),
            linked,
            peer: None,
            next_peer: Arc::default(),
        }
    }

    /// The cap and the budget for the next message read on this codec's connection.
    fn limits(&self) -> (usize, &Semaphore, bool) {
        if self.peer.is_some_and(|p| self.linked.contains(&p)) {
            (MAX_FED_MESSAGE_BYTES, &self.budget, true)
        } else {
            (MAX_UNLINKED_MESSAGE_BYTES, &self.unlinked_budget, false)
        }
    }

    async fn read_value<T: DeserializeOwned, R: AsyncRead + Unpin + Send>(&self, io: &mut R) -> io::Result<T> {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        let (max, budget, linked) = self.limits();
        if len > max {
            let whose = if linked { "" } else { " from a peer that is not linked" };
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("federation message of {len} bytes{whose} is too large (at most {max})"),
            ));
        }
        // At most MAX_FED_MESSAGE_BYTES (8 MiB), so it fits a u32; the budgets are never closed.
        let _permit =
            budget.acquire_many(len as u32).await.map_err(|_| io::Error::other("federation read budget closed"))?;
        let mut buf = Vec::new();
        let read = io.take(len as u64).read_to_end(&mut buf).await?;
        if read < len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "federation message cut short"));
        }
        veche_protocol::federation::decode(&buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("malformed federation message: {e}")))
    }

    /// Bytes of the linked nodes' and the strangers' read budgets free now.
    #[cfg(test)]
    fn budget_left(&self) -> (usize, usize) {
        (self.budget.available_permits(), self.unlinked_budget.available_permits())
    }

    /// A copy for a connection with `peer`, as [`FedBehaviour`] makes it.
    #[cfg(test)]
    fn for_peer(&self, peer: PeerId) -> Self {
        FedCodec { peer: Some(peer), ..self.clone() }
    }
}

/// The federation protocol's request-response behaviour, whose connections each read with a
/// codec that knows the remote peer (see [`FedCodec`]). Everything else is the inner behaviour's.
pub struct FedBehaviour {
    inner: request_response::Behaviour<FedCodec>,
    next_peer: Arc<Mutex<Option<PeerId>>>,
}

impl FedBehaviour {
    pub fn new(codec: FedCodec, protocol: StreamProtocol, config: request_response::Config) -> Self {
        let next_peer = codec.next_peer.clone();
        let inner = request_response::Behaviour::with_codec(
            codec,
            [(protocol, request_response::ProtocolSupport::Full)],
            config,
        );
        FedBehaviour { inner, next_peer }
    }

    /// Runs `make` (which makes the connection's handler, copying the codec) with `peer` as the
    /// copy's peer.
    fn for_peer<T>(&mut self, peer: PeerId, make: impl FnOnce(&mut request_response::Behaviour<FedCodec>) -> T) -> T {
        *self.next_peer.lock().unwrap_or_else(|e| e.into_inner()) = Some(peer);
        let made = make(&mut self.inner);
        *self.next_peer.lock().unwrap_or_else(|e| e.into_inner()) = None;
        made
    }
}

impl std::ops::Deref for FedBehaviour {
    type Target = request_response::Behaviour<FedCodec>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for FedBehaviour {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl NetworkBehaviour for FedBehaviour {
    type ConnectionHandler = THandler<request_response::Behaviour<FedCodec>>;
    type ToSwarm = request_response::Event<FedRequest, FedReply>;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner.handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.for_peer(peer, |inner| {
            inner.handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
        })
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(connection_id, maybe_peer, addresses, effective_role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.for_peer(peer, |inner| {
            inner.handle_established_outbound_connection(connection_id, peer, addr, role_override, port_use)
        })
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer_id, connection_id, event)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

async fn write_value<T: Serialize, W: AsyncWrite + Unpin + Send>(io: &mut W, value: &T) -> io::Result<()> {
    let bytes = veche_protocol::federation::encode(value);
    if bytes.len() > MAX_FED_MESSAGE_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "federation message too large to send"));
    }
    io.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

impl libp2p::request_response::Codec for FedCodec {
    type Protocol = StreamProtocol;
    type Request = FedRequest;
    type Response = FedReply;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<FedRequest> {
        self.read_value(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<FedReply> {
        self.read_value(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: FedRequest,
    ) -> io::Result<()> {
        write_value(io, &request).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        reply: FedReply,
    ) -> io::Result<()> {
        write_value(io, &reply).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::futures::executor::block_on;
    use libp2p::futures::io::Cursor;
    use libp2p::request_response::Codec;
    use veche_protocol::federation::MAX_LOCATE;
    use veche_protocol::ids::{AccountId, GroupId};

    /// A stream that has sent `bytes` so far and stays open while the returned sender lives.
    fn open_stream(
        bytes: Vec<u8>,
    ) -> (libp2p::futures::channel::mpsc::UnboundedSender<Vec<u8>>, impl AsyncRead + Unpin + Send) {
        use libp2p::futures::{StreamExt as _, TryStreamExt as _};
        let (writer, chunks) = libp2p::futures::channel::mpsc::unbounded::<Vec<u8>>();
        writer.unbounded_send(bytes).unwrap();
        (writer, chunks.map(Ok::<_, io::Error>).into_async_read())
    }

    fn encoded(request: &FedRequest) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let protocol = StreamProtocol::new(veche_protocol::federation::FED_PROTOCOL);
        block_on(FedCodec::new(LinkedPeers::default()).write_request(&protocol, &mut buf, request.clone())).unwrap();
        buf.into_inner()
    }

    /// A peer that is not linked may send messages up to 64 KiB (a Locate of the most accounts
    /// fits, so it learns it is refused); a larger announce is refused at once, taking nothing
    /// from either budget, while a linked node's 8 MiB announce is read. Links count from the
    /// next stream on, and a codec that was never told its peer reads as for a stranger.
    #[tokio::test]
    async fn peers_that_are_not_linked_get_a_tiny_cap() {
        let protocol = StreamProtocol::new(veche_protocol::federation::FED_PROTOCOL);
        let (friend, stranger) = (PeerId::random(), PeerId::random());
        let linked = LinkedPeers::new([friend]);
        let template = FedCodec::new(linked.clone());

        let locate = FedRequest::Locate { accounts: vec![AccountId([0xff; 32]); MAX_LOCATE] };
        let bytes = encoded(&locate);
        assert!(bytes.len() <= MAX_UNLINKED_MESSAGE_BYTES, "a Locate of {MAX_LOCATE} is {} bytes", bytes.len());
        let mut theirs = template.for_peer(stranger);
        assert_eq!(theirs.read_request(&protocol, &mut Cursor::new(bytes)).await.unwrap(), locate);

        // A stranger announcing 8 MiB (or just over the cap) on a stream it keeps open: refused
        // at once, although it would send more.
        for announce in [MAX_FED_MESSAGE_BYTES, MAX_UNLINKED_MESSAGE_BYTES + 1] {
            let (_open, mut io) = open_stream((announce as u32).to_be_bytes().to_vec());
            let refused =
                tokio::time::timeout(std::time::Duration::from_millis(100), theirs.read_request(&protocol, &mut io))
                    .await
                    .expect("refused at once");
            let e = refused.unwrap_err();
            assert!(e.to_string().contains("not linked"), "{e}");
            assert_eq!(template.budget_left(), (READ_BUDGET, UNLINKED_READ_BUDGET), "nothing taken");
        }
        // Never told its peer: a stranger.
        let (_open, mut io) = open_stream((MAX_FED_MESSAGE_BYTES as u32).to_be_bytes().to_vec());
        assert!(template.clone().read_request(&protocol, &mut io).await.is_err());

        // A linked node's 8 MiB announce is read (it takes from the linked nodes' budget).
        let mut ours = template.for_peer(friend);
        let (open, mut io) = open_stream((MAX_FED_MESSAGE_BYTES as u32).to_be_bytes().to_vec());
        let reading = tokio::spawn(async move { ours.read_request(&protocol, &mut io).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!reading.is_finished(), "a linked node's large message is being read");
        assert_eq!(template.budget_left(), (READ_BUDGET - MAX_FED_MESSAGE_BYTES, UNLINKED_READ_BUDGET));
        drop(open);
        assert!(reading.await.unwrap().is_err(), "cut short");

        // Linked later: the stranger's next stream may be large; unlinked: tiny again.
        let protocol = StreamProtocol::new(veche_protocol::federation::FED_PROTOCOL);
        let big = FedRequest::ForwardSends {
            account: AccountId([1; 32]),
            device: veche_protocol::ids::DeviceId([2; 32]),
            display_name: String::new(),
            group: GroupId([3; 16]),
            messages: vec![vec![7; 100_000]],
        };
        let bytes = encoded(&big);
        assert!(theirs.read_request(&protocol, &mut Cursor::new(bytes.clone())).await.is_err());
        linked.set(stranger, true);
        assert_eq!(theirs.read_request(&protocol, &mut Cursor::new(bytes.clone())).await.unwrap(), big);
        linked.set(stranger, false);
        assert!(theirs.read_request(&protocol, &mut Cursor::new(bytes)).await.is_err());
    }

    /// The copy the behaviour makes for a connection knows the peer set just before; the copies
    /// made later (one per stream) keep it; copies made at other times know no peer.
    #[test]
    fn each_connection_codec_knows_its_peer() {
        let peer = PeerId::random();
        let template = FedCodec::new(LinkedPeers::default());
        assert_eq!(template.clone().peer, None);
        *template.next_peer.lock().unwrap() = Some(peer);
        let connection = template.clone();
        *template.next_peer.lock().unwrap() = None;
        assert_eq!(connection.peer, Some(peer));
        assert_eq!(connection.clone().peer, Some(peer), "a stream's copy keeps the peer");
        assert_eq!(template.clone().peer, None);
    }

    #[test]
    fn round_trip_and_refusals() {
        let protocol = StreamProtocol::new(veche_protocol::federation::FED_PROTOCOL);
        let request = FedRequest::Notify { group: GroupId([3; 16]), head: 9 };
        let peer = PeerId::random();
        let mut codec = FedCodec::new(LinkedPeers::new([peer])).for_peer(peer);
        let mut buf = Cursor::new(Vec::new());
        block_on(codec.write_request(&protocol, &mut buf, request.clone())).unwrap();
        let mut read = Cursor::new(buf.into_inner());
        assert_eq!(block_on(codec.read_request(&protocol, &mut read)).unwrap(), request);

        let mut huge = Cursor::new(((MAX_FED_MESSAGE_BYTES + 1) as u32).to_be_bytes().to_vec());
        let e = block_on(codec.read_request(&protocol, &mut huge)).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");

        let mut garbage = Cursor::new([0, 0, 0, 3, 0xff, 0xff, 0xff].to_vec());
        assert!(block_on(codec.read_request(&protocol, &mut garbage)).is_err());
        let mut short = Cursor::new([0, 0, 0, 9, 1].to_vec());
        assert!(block_on(codec.read_request(&protocol, &mut short)).is_err());
        // Whatever happened, the budget is whole again.
        assert_eq!(codec.budget_left(), (READ_BUDGET, UNLINKED_READ_BUDGET));
    }

    /// A stream announcing the largest message and sending nothing more takes its length from the
    /// shared budget while it waits (and no memory); streams beyond the budget wait before reading.
    #[tokio::test]
    async fn the_read_budget_is_shared_and_given_back() {
        let protocol = StreamProtocol::new(veche_protocol::federation::FED_PROTOCOL);
        let peer = PeerId::random();
        let codec = FedCodec::new(LinkedPeers::new([peer])).for_peer(peer);
        let announced = (MAX_FED_MESSAGE_BYTES as u32).to_be_bytes();
        let mut waiting = Vec::new();
        for _ in 0..READ_BUDGET / MAX_FED_MESSAGE_BYTES {
            // A stream that has sent only the length so far; dropping `writer` ends it.
            let (writer, chunks) = libp2p::futures::channel::mpsc::unbounded::<Vec<u8>>();
            writer.unbounded_send(announced.to_vec()).unwrap();
            let mut c = codec.clone();
            let protocol = protocol.clone();
            waiting.push((
                writer,
                tokio::spawn(async move {
                    use libp2p::futures::{StreamExt as _, TryStreamExt as _};
                    let mut io = chunks.map(Ok::<_, io::Error>).into_async_read();
                    c.read_request(&protocol, &mut io).await
                }),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(codec.budget_left().0, 0, "eight streams announcing 8 MiB hold the whole budget");
        // One more waits: it cannot read even a small message until the budget frees.
        let mut small = Cursor::new(Vec::new());
        codec
            .clone()
            .write_request(&protocol, &mut small, FedRequest::Notify { group: GroupId([1; 16]), head: 2 })
            .await
            .unwrap();
        let mut late = codec.clone();
        let mut late_io = Cursor::new(small.into_inner());
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(200), late.read_request(&protocol, &mut late_io))
                .await;
        assert!(waited.is_err(), "a read beyond the budget waits");
        // The waiting streams are cut off: their budget comes back, and the small one reads.
        for (writer, task) in waiting {
            drop(writer);
            assert!(task.await.unwrap().is_err(), "a message cut short is an error");
        }
        assert_eq!(codec.budget_left(), (READ_BUDGET, UNLINKED_READ_BUDGET));
        let mut late_io = Cursor::new(late_io.into_inner());
        assert!(late.read_request(&protocol, &mut late_io).await.is_ok());
    }
}
