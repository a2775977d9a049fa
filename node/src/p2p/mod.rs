//! Node-to-node networking: one task owns the libp2p Swarm (QUIC first, TCP + noise + yamux as
//! fallback; identify, ping) and the mDNS announcer/browser. The rest of the node talks to it
//! through a [`P2pHandle`] over a bounded command channel.
//!
//! mDNS (`mdns.rs`) is only a hint: a node found on the LAN is dialed with its announced peer
//! id, and it counts as verified only once the libp2p handshake has proven that id.

mod codec;
mod mdns;

pub use codec::LinkedPeers;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use libp2p::futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, dcutr, identify, noise, ping, relay, rendezvous, tcp, yamux};
use tokio::sync::{mpsc, oneshot};
use veche_protocol::federation::{
    FED_PROTOCOL, FedReply, FedRequest, LINK_PROTOCOL, LinkMessage, LinkReply, MAX_LINK_MESSAGE_BYTES,
};
use veche_protocol::wire::{ApiError, ErrorCode};

/// Protocol version announced to other nodes (identify and mDNS).
pub const PROTOCOL: &str = "/veche/1";
/// Commands queued to the swarm task at most.
const COMMAND_QUEUE: usize = 64;
/// Events queued to the federation service at most (more are refused, with a warning).
const EVENT_QUEUE: usize = 2048;
/// Link requests from other nodes waiting for the federation service's answer at most.
const MAX_PENDING_INBOUND: usize = 64;
/// Federation requests from other nodes being served at most (more are refused as busy).
const MAX_PENDING_FED: usize = 1024;
/// Federation streams open at once on one connection. Linked nodes send a few requests at a time
/// (each peer is rate limited, `fed_limits`); 64 leaves room for bursts while one connection of a
/// stranger holds 64 × 256 KiB of stream windows at most, not 1024 streams.
const MAX_FED_STREAMS_PER_CONNECTION: usize = 64;
/// Streams of any protocol open at once on one connection (yamux on TCP, QUIC): the federation's,
/// plus identify, ping, link, relay, dcutr and rendezvous.
const MAX_STREAMS_PER_CONNECTION: usize = 128;
/// Connections: a node links with a handful of nodes (a small town's), each over one connection
/// (QUIC first, a relayed one until hole punching succeeds), so 4 per peer is plenty; 32 incoming
/// still handshaking and 128 established incoming bound what strangers on the LAN or the
/// internet can open (each a noise handshake and a muxer), whatever number of peer ids they make.
const MAX_CONNECTIONS_PER_PEER: u32 = 4;
const MAX_PENDING_INCOMING: u32 = 32;
const MAX_ESTABLISHED_INCOMING: u32 = 128;
/// Link messages one peer may send: a burst of this many, refilled at one per
/// [`LINK_REFILL`].
const LINK_BURST: u32 = 5;
const LINK_REFILL: Duration = Duration::from_secs(2);
/// Namespace under which nodes register at bootstrap nodes' rendezvous servers.
const RENDEZVOUS_NAMESPACE: &str = "veche";
/// How often the relay reservations and rendezvous registrations are checked and renewed.
const BOOTSTRAP_TICK: Duration = Duration::from_secs(10);
/// How often a node registers again at the rendezvous (registrations last 2 h there).
const REGISTER_EVERY: Duration = Duration::from_secs(600);
/// How often a node asks the rendezvous where the other nodes are.
const DISCOVER_EVERY: Duration = Duration::from_secs(60);

/// A QUIC connection that hears nothing for this long (keep-alives every second) is closed.
const QUIC_IDLE_TIMEOUT_MS: u32 = 4_000;
/// How long a node waits for another node's answer to a federation request.
pub const FED_TIMEOUT: Duration = Duration::from_secs(30);

/// A token bucket per peer for inbound messages of one protocol.
#[derive(Debug)]
struct PeerLimits {
    burst: u32,
    refill: Duration,
    buckets: HashMap<PeerId, (u32, std::time::Instant)>,
}

impl PeerLimits {
    fn new(burst: u32, refill: Duration) -> Self {
        PeerLimits { burst, refill, buckets: HashMap::new() }
    }

    /// Whether `peer` may send one more message at `now`.
    fn allow(&mut self, peer: PeerId, now: std::time::Instant) -> bool {
        let (burst, refill) = (self.burst, self.refill);
        if self.buckets.len() > 10_000 {
            self.buckets.retain(|_, (_, at)| now.duration_since(*at) < refill * burst);
        }
        let (tokens, at) = self.buckets.entry(peer).or_insert((burst, now));
        let refilled = now.duration_since(*at).as_micros() / refill.as_micros();
        if refilled > 0 {
            *tokens = (u128::from(*tokens) + refilled).min(u128::from(burst)) as u32;
            // Keep the remainder: a steady sender at the allowed rate is never refused.
            *at += refill * (refilled.min(u128::from(u32::MAX)) as u32);
            if *tokens == burst {
                *at = now;
            }
        }
        if *tokens == 0 {
            return false;
        }
        *tokens -= 1;
        true
    }
}

/// Settings of the node's p2p side.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// UDP (QUIC) and TCP port; 0 picks free ones.
    pub port: u16,
    /// Bootstrap nodes to dial at start.
    pub bootstrap: Vec<Multiaddr>,
    /// Announce and browse on the LAN with mDNS.
    pub mdns: bool,
    pub node_name: String,
    pub http_port: u16,
    /// Federation requests one peer may send per second (forwards, pulls and notifications of a
    /// busy town: 2,000 by default), and twice that in a burst.
    pub federation_rate: u32,
}

/// A node seen on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nearby {
    pub peer_id: PeerId,
    pub name: String,
    pub http_port: u16,
    pub addrs: Vec<Multiaddr>,
    /// Milliseconds since the Unix epoch of the last announcement heard.
    pub last_seen_ms: u64,
    /// A libp2p connection proved the peer id.
    pub verified: bool,
}

/// Addresses another admin can dial: the listen addresses with an unspecified IP replaced by
/// each IPv4 interface address (LAN ones first), each ending in `/p2p/<peer id>`.
pub fn shareable_addrs(listen: &[Multiaddr], peer: &str) -> Vec<String> {
    let mut ips: Vec<std::net::Ipv4Addr> = if_addrs::get_if_addrs()
        .map(|addrs| {
            addrs
                .into_iter()
                .filter_map(|a| match a.ip() {
                    std::net::IpAddr::V4(v4) => Some(v4),
                    std::net::IpAddr::V6(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();
    ips.sort_by_key(|ip| ip.is_loopback());
    let mut out = Vec::new();
    for addr in listen {
        let unspecified = addr.iter().any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_unspecified()));
        let targets: Vec<Multiaddr> = if unspecified {
            ips.iter()
                .map(|ip| {
                    addr.iter()
                        .map(|p| match p {
                            Protocol::Ip4(_) => Protocol::Ip4(*ip),
                            other => other,
                        })
                        .collect()
                })
                .collect()
        } else {
            vec![addr.clone()]
        };
        out.extend(targets.into_iter().map(|a| format!("{a}/p2p/{peer}")));
    }
    // LAN addresses first: those are what another node can dial.
    out.sort_by_key(|a| a.starts_with("/ip4/127."));
    out
}

/// Addresses in the order to dial them: direct QUIC first, then direct TCP, then through relays.
fn dial_order(mut addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
    addrs.sort_by_key(|a| {
        let relayed = a.iter().any(|p| matches!(p, Protocol::P2pCircuit));
        let quic = a.iter().any(|p| matches!(p, Protocol::QuicV1));
        (relayed, !quic)
    });
    addrs.dedup();
    addrs
}

fn peer_is_relay(relays: &[Relay], peer: &PeerId) -> bool {
    relays.iter().any(|r| r.peer == *peer)
}

/// A bootstrap node: its peer id and its address (without `/p2p/`).
#[derive(Debug, Clone)]
struct Relay {
    peer: PeerId,
    addr: Multiaddr,
}

impl Relay {
    fn parse(addr: &Multiaddr) -> Option<Relay> {
        let mut addr = addr.clone();
        match addr.pop() {
            Some(Protocol::P2p(peer)) => Some(Relay { peer, addr }),
            _ => None,
        }
    }

    /// `<relay>/p2p/<relay id>/p2p-circuit`: where a node with a reservation there is reached.
    fn circuit(&self) -> Multiaddr {
        self.addr.clone().with(Protocol::P2p(self.peer)).with(Protocol::P2pCircuit)
    }
}

/// What the swarm task knows.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub listen_addrs: Vec<Multiaddr>,
    pub connected: Vec<PeerId>,
    pub nearby: Vec<Nearby>,
    /// Bootstrap nodes this node reaches others through.
    pub relays: usize,
}

enum Command {
    Status(oneshot::Sender<Status>),
    Shutdown(oneshot::Sender<()>),
    /// Sends a link message (dialing `addrs` if needed) and hands back the answer.
    Send {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        message: LinkMessage,
        reply: oneshot::Sender<Result<LinkReply, String>>,
    },
    /// Answers an inbound link message.
    Respond {
        id: u64,
        reply: LinkReply,
    },
    /// Sends a federation request (dialing `addrs` if needed) and hands back the answer.
    Fed {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: FedRequest,
        reply: oneshot::Sender<Result<FedReply, String>>,
    },
    /// Answers an inbound federation request.
    FedRespond {
        id: u64,
        reply: FedReply,
    },
}

/// What the swarm task tells the federation service.
#[derive(Debug)]
pub enum P2pEvent {
    /// Another node sent a link message; answer it with [`P2pHandle::respond`].
    Link { id: u64, peer: PeerId, addr: Multiaddr, message: LinkMessage },
    /// A nearby node's announced peer id was proven by a connection.
    NearbyVerified(Nearby),
    /// A connection to this peer opened.
    Connected(PeerId),
    /// Another node sent a federation request; answer it with [`P2pHandle::fed_respond`].
    /// `relayed`: it came over a bootstrap node's relay (answer in smaller pieces).
    Fed { id: u64, peer: PeerId, relayed: bool, request: FedRequest },
}

/// The node's way to the swarm task.
#[derive(Clone, Debug)]
pub struct P2pHandle {
    tx: mpsc::Sender<Command>,
    linked: LinkedPeers,
}

impl P2pHandle {
    /// Records whether the link with `peer` is up: a peer that is not linked may send federation
    /// messages of [`codec::MAX_UNLINKED_MESSAGE_BYTES`] at most (from its next stream on).
    pub fn set_linked(&self, peer: PeerId, linked: bool) {
        self.linked.set(peer, linked);
    }

    /// The current status (empty if the task has stopped).
    pub async fn status(&self) -> Status {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Status(tx)).await.is_err() {
            return Status::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Sends a link message to another node; its answer, or why there is none.
    pub async fn send(&self, peer: PeerId, addrs: Vec<Multiaddr>, message: LinkMessage) -> Result<LinkReply, String> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Send { peer, addrs, message, reply }).await.map_err(|_| "p2p stopped".to_string())?;
        match tokio::time::timeout(Duration::from_secs(15), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("p2p stopped".into()),
            Err(_) => Err("no answer within 15 s".into()),
        }
    }

    /// Answers the inbound link message `id`.
    pub async fn respond(&self, id: u64, reply: LinkReply) {
        let _ = self.tx.send(Command::Respond { id, reply }).await;
    }

    /// Sends a federation request to another node; its answer, or why there is none.
    pub async fn fed(&self, peer: PeerId, addrs: Vec<Multiaddr>, request: FedRequest) -> Result<FedReply, String> {
        let (reply, rx) = oneshot::channel();
        let command = Command::Fed { peer, addrs, request, reply };
        self.tx.send(command).await.map_err(|_| "p2p stopped".to_string())?;
        match tokio::time::timeout(FED_TIMEOUT + Duration::from_secs(1), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("p2p stopped".into()),
            Err(_) => Err(format!("no answer within {} s", FED_TIMEOUT.as_secs())),
        }
    }

    /// Answers the inbound federation request `id`.
    pub async fn fed_respond(&self, id: u64, reply: FedReply) {
        let _ = self.tx.send(Command::FedRespond { id, reply }).await;
    }

    /// Withdraws the mDNS announcement and stops the swarm task.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: libp2p::connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    link: request_response::cbor::Behaviour<LinkMessage, LinkReply>,
    fed: codec::FedBehaviour,
    relay: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    rendezvous: rendezvous::client::Behaviour,
}

/// Yamux (TCP and relayed connections) with at most [`MAX_STREAMS_PER_CONNECTION`] streams.
fn yamux_config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_max_num_streams(MAX_STREAMS_PER_CONNECTION);
    config
}

/// Starts listening on the configured port (UDP/QUIC and TCP) and spawns the swarm task. Events
/// for the federation service come out of the returned receiver. `linked`: the peers whose link
/// is up (the federation service keeps this up to date with [`P2pHandle::set_linked`]).
pub async fn start(
    keypair: libp2p::identity::Keypair,
    config: P2pConfig,
    linked: impl IntoIterator<Item = PeerId>,
) -> anyhow::Result<(P2pHandle, mpsc::Receiver<P2pEvent>)> {
    let linked = LinkedPeers::new(linked);
    let peer_id = keypair.public().to_peer_id();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux_config)
        .context("p2p TCP transport")?
        .with_quic_config(|mut quic| {
            // Notice a dead link (a cable pulled, a node killed) within seconds, so requests
            // move to a fresh connection instead of waiting on the old one.
            quic.max_idle_timeout = QUIC_IDLE_TIMEOUT_MS;
            quic.keep_alive_interval = Duration::from_secs(1);
            quic.max_concurrent_stream_limit = MAX_STREAMS_PER_CONNECTION as u32;
            quic
        })
        .with_relay_client(noise::Config::new, yamux_config)
        .context("p2p relay client")?
        .with_behaviour(|key, relay| {
            let codec = request_response::cbor::codec::Codec::default()
                .set_request_size_maximum(MAX_LINK_MESSAGE_BYTES as u64)
                .set_response_size_maximum(MAX_LINK_MESSAGE_BYTES as u64);
            let limits = libp2p::connection_limits::ConnectionLimits::default()
                .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
                .with_max_established_incoming(Some(MAX_ESTABLISHED_INCOMING))
                .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER));
            Behaviour {
                limits: libp2p::connection_limits::Behaviour::new(limits),
                identify: identify::Behaviour::new(identify::Config::new(PROTOCOL.into(), key.public())),
                // Pings every second; a connection that misses them is closed (below), so a
                // dead TCP connection is noticed as fast as a dead QUIC one.
                ping: ping::Behaviour::new(
                    ping::Config::new().with_interval(Duration::from_secs(1)).with_timeout(Duration::from_secs(3)),
                ),
                link: request_response::Behaviour::with_codec(
                    codec,
                    [(StreamProtocol::new(LINK_PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
                ),
                fed: codec::FedBehaviour::new(
                    codec::FedCodec::new(linked.clone()),
                    StreamProtocol::new(FED_PROTOCOL),
                    request_response::Config::default()
                        .with_request_timeout(FED_TIMEOUT)
                        .with_max_concurrent_streams(MAX_FED_STREAMS_PER_CONNECTION),
                ),
                relay,
                dcutr: dcutr::Behaviour::new(key.public().to_peer_id()),
                rendezvous: rendezvous::client::Behaviour::new(key.clone()),
            }
        })
        .context("p2p behaviour")?
        .with_swarm_config(|c| {
            // One address at a time, QUIC first (see `dial_order`): one connection per node,
            // not one per transport.
            c.with_idle_connection_timeout(Duration::from_secs(120))
                .with_dial_concurrency_factor(std::num::NonZeroU8::MIN)
        })
        .build();
    let quic: Multiaddr = format!("/ip4/0.0.0.0/udp/{}/quic-v1", config.port).parse()?;
    let tcp: Multiaddr = format!("/ip4/0.0.0.0/tcp/{}", config.port).parse()?;
    swarm.listen_on(quic).with_context(|| format!("p2p: listening on UDP port {}", config.port))?;
    swarm.listen_on(tcp).with_context(|| format!("p2p: listening on TCP port {}", config.port))?;
    let mut relays = Vec::new();
    for addr in &config.bootstrap {
        match Relay::parse(addr) {
            Some(relay) => relays.push(relay),
            None => tracing::warn!(%addr, "a bootstrap address must end in /p2p/<peer id>: ignored"),
        }
    }
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
    let mdns = if config.mdns {
        match mdns::Mdns::start(peer_id, &config) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "mDNS unavailable: no LAN discovery");
                None
            }
        }
    } else {
        None
    };
    let task = SwarmTask {
        swarm,
        rx,
        events,
        mdns,
        nearby: BTreeMap::new(),
        ports: (None, None),
        peer_id,
        inbound: HashMap::new(),
        next_inbound: 0,
        outbound: HashMap::new(),
        limits: PeerLimits::new(LINK_BURST, LINK_REFILL),
        fed_inbound: HashMap::new(),
        fed_outbound: HashMap::new(),
        fed_limits: PeerLimits::new(
            config.federation_rate.saturating_mul(2),
            Duration::from_micros(1_000_000 / u64::from(config.federation_rate.max(1))),
        ),
        relays,
        circuits: HashMap::new(),
        relayed: HashSet::new(),
        registered_at: None,
        discovered_at: None,
    };
    tokio::spawn(task.run());
    Ok((P2pHandle { tx, linked }, events_rx))
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    rx: mpsc::Receiver<Command>,
    mdns: Option<mdns::Mdns>,
    nearby: BTreeMap<PeerId, Nearby>,
    /// Bound (QUIC, TCP) ports, known once listening; announced over mDNS.
    ports: (Option<u16>, Option<u16>),
    peer_id: PeerId,
    events: mpsc::Sender<P2pEvent>,
    /// Inbound link messages waiting for the federation service's answer.
    inbound: HashMap<u64, ResponseChannel<LinkReply>>,
    next_inbound: u64,
    /// Our link messages waiting for the other node's answer.
    outbound: HashMap<OutboundRequestId, oneshot::Sender<Result<LinkReply, String>>>,
    limits: PeerLimits,
    /// Inbound federation requests being served.
    fed_inbound: HashMap<u64, ResponseChannel<FedReply>>,
    /// Our federation requests waiting for the other node's answer.
    fed_outbound: HashMap<OutboundRequestId, oneshot::Sender<Result<FedReply, String>>>,
    fed_limits: PeerLimits,
    /// Bootstrap nodes (relays with rendezvous).
    relays: Vec<Relay>,
    /// Relay listeners (reservations) by the relay they are at.
    circuits: HashMap<libp2p::core::transport::ListenerId, PeerId>,
    /// Connections that go through a relay.
    relayed: HashSet<libp2p::swarm::ConnectionId>,
    /// When this node last registered / discovered at the bootstrap nodes' rendezvous.
    registered_at: Option<std::time::Instant>,
    discovered_at: Option<std::time::Instant>,
}

impl SwarmTask {
    /// Holds a reservation at every bootstrap node (asking again for any that was lost), and
    /// registers (when this node's addresses changed, and every [`REGISTER_EVERY`]) and
    /// discovers (every [`DISCOVER_EVERY`]) at its rendezvous server.
    fn tend_bootstraps(&mut self) {
        let now = std::time::Instant::now();
        let register = self.registered_at.is_none_or(|at| now.duration_since(at) >= REGISTER_EVERY);
        let discover = self.discovered_at.is_none_or(|at| now.duration_since(at) >= DISCOVER_EVERY);
        for relay in self.relays.clone() {
            if !self.circuits.values().any(|p| *p == relay.peer) {
                match self.swarm.listen_on(relay.circuit()) {
                    Ok(id) => {
                        self.circuits.insert(id, relay.peer);
                    }
                    Err(e) => tracing::debug!(relay = %relay.peer, error = %e, "relay reservation not requested"),
                }
            }
            if self.swarm.is_connected(&relay.peer) {
                let namespace = rendezvous::Namespace::from_static(RENDEZVOUS_NAMESPACE);
                if register && self.swarm.external_addresses().next().is_some() {
                    match self.swarm.behaviour_mut().rendezvous.register(namespace.clone(), relay.peer, None) {
                        Ok(()) => self.registered_at = Some(now),
                        Err(e) => tracing::debug!(relay = %relay.peer, error = %e, "rendezvous registration not sent"),
                    }
                }
                if discover {
                    self.swarm.behaviour_mut().rendezvous.discover(Some(namespace), None, None, relay.peer);
                    self.discovered_at = Some(now);
                }
            }
        }
    }

    /// `addrs` plus this peer's address through every bootstrap node.
    fn with_relays(&self, peer: PeerId, mut addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
        if peer_is_relay(&self.relays, &peer) {
            return addrs;
        }
        addrs.extend(self.relays.iter().map(Relay::circuit));
        dial_order(addrs)
    }
    async fn run(mut self) {
        for relay in &self.relays {
            let addr = relay.addr.clone().with(Protocol::P2p(relay.peer));
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::warn!(%addr, error = %e, "cannot dial bootstrap node");
            }
        }
        let mut bootstrap_tick = tokio::time::interval(BOOTSTRAP_TICK);
        bootstrap_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mdns_event = async {
                match self.mdns.as_mut() {
                    Some(m) => m.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event),
                _ = bootstrap_tick.tick(), if !self.relays.is_empty() => self.tend_bootstraps(),
                command = self.rx.recv() => match command {
                    Some(Command::Status(reply)) => {
                        let _ = reply.send(self.status());
                    }
                    Some(Command::Send { peer, addrs, message, reply }) => {
                        let addrs = self.with_relays(peer, addrs);
                        let id = self.swarm.behaviour_mut().link.send_request_with_addresses(&peer, message, addrs);
                        self.outbound.insert(id, reply);
                    }
                    Some(Command::Respond { id, reply }) => {
                        if let Some(channel) = self.inbound.remove(&id) {
                            let _ = self.swarm.behaviour_mut().link.send_response(channel, reply);
                        }
                    }
                    Some(Command::Fed { peer, addrs, request, reply }) => {
                        let addrs = self.with_relays(peer, addrs);
                        let id = self.swarm.behaviour_mut().fed.send_request_with_addresses(&peer, request, addrs);
                        self.fed_outbound.insert(id, reply);
                    }
                    Some(Command::FedRespond { id, reply }) => {
                        if let Some(channel) = self.fed_inbound.remove(&id) {
                            let _ = self.swarm.behaviour_mut().fed.send_response(channel, reply);
                        }
                    }
                    Some(Command::Shutdown(reply)) => {
                        if let Some(mdns) = self.mdns.take() {
                            mdns.stop().await;
                        }
                        let _ = reply.send(());
                        return;
                    }
                    None => break,
                },
                found = mdns_event => match found {
                    Some(found) => self.on_mdns(found),
                    None => self.mdns = None,
                },
            }
        }
        if let Some(mdns) = self.mdns.take() {
            mdns.stop().await;
        }
    }

    fn status(&self) -> Status {
        Status {
            listen_addrs: self.swarm.listeners().cloned().collect(),
            connected: self.swarm.connected_peers().copied().collect(),
            nearby: self.nearby.values().cloned().collect(),
            relays: self.relays.len(),
        }
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { listener_id, address } if self.circuits.contains_key(&listener_id) => {
                // Reachable through this relay: announce it, and register it at the rendezvous.
                tracing::info!(%address, "reachable through a bootstrap node's relay");
                self.swarm.add_external_address(address);
                self.registered_at = None; // register the new address
                self.tend_bootstraps();
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "p2p listening");
                for protocol in address.iter() {
                    match protocol {
                        Protocol::Udp(port) => self.ports.0 = Some(port),
                        Protocol::Tcp(port) => self.ports.1 = Some(port),
                        _ => {}
                    }
                }
                if let (Some(quic), Some(tcp)) = self.ports
                    && let Some(mdns) = self.mdns.as_mut()
                {
                    mdns.announce(quic, tcp);
                }
            }
            SwarmEvent::ConnectionClosed { connection_id, .. } => {
                self.relayed.remove(&connection_id);
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, connection_id, .. } => {
                let addr = endpoint.get_remote_address();
                if endpoint.is_relayed() {
                    self.relayed.insert(connection_id);
                    tracing::info!(peer = %peer_id, %addr, "p2p connected through a relay");
                } else {
                    tracing::debug!(peer = %peer_id, %addr, "p2p connected");
                }
                if peer_is_relay(&self.relays, &peer_id) {
                    self.tend_bootstraps();
                }
                let _ = self.emit(P2pEvent::Connected(peer_id));
                if let Some(nearby) = self.nearby.get_mut(&peer_id)
                    && !nearby.verified
                {
                    nearby.verified = true;
                    tracing::info!(peer = %peer_id, name = %nearby.name, "nearby node verified");
                    let verified = nearby.clone();
                    let _ = self.emit(P2pEvent::NearbyVerified(verified));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(ping::Failure::Timeout),
            })) => {
                tracing::debug!(%peer, "ping timed out: closing the connection");
                self.swarm.close_connection(connection);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Link(event)) => self.on_link(event),
            SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                if let Some(relay) = self.circuits.remove(&listener_id) {
                    tracing::info!(%relay, ?reason, "relay reservation lost; asking again");
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                if let Some(relay) = self.circuits.remove(&listener_id) {
                    tracing::info!(%relay, %error, "relay reservation failed; asking again");
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event { remote_peer_id, result })) => match result {
                Ok(_) => tracing::info!(peer = %remote_peer_id, "direct connection after hole punching"),
                Err(e) => tracing::debug!(peer = %remote_peer_id, error = %e, "hole punching failed; staying relayed"),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Rendezvous(event)) => match event {
                rendezvous::client::Event::Discovered { registrations, .. } => {
                    // Where other nodes say they are: tried before their relay address.
                    for registration in registrations {
                        let peer = registration.record.peer_id();
                        if peer != self.peer_id {
                            for addr in registration.record.addresses() {
                                self.swarm.add_peer_address(peer, addr.clone());
                            }
                        }
                    }
                }
                rendezvous::client::Event::Registered { rendezvous_node, .. } => {
                    tracing::debug!(relay = %rendezvous_node, "registered at the rendezvous");
                }
                rendezvous::client::Event::RegisterFailed { rendezvous_node, error, .. } => {
                    tracing::debug!(relay = %rendezvous_node, ?error, "rendezvous registration failed");
                }
                _ => {}
            },
            SwarmEvent::Behaviour(BehaviourEvent::Fed(event)) => self.on_fed(event),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, error = %error, "p2p dial failed");
            }
            _ => {}
        }
    }

    /// Hands an event to the federation service without ever blocking the swarm. False if it
    /// had to be dropped.
    fn emit(&self, event: P2pEvent) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "federation service is behind; p2p event dropped");
                false
            }
        }
    }

    fn on_link(&mut self, event: request_response::Event<LinkMessage, LinkReply>) {
        use request_response::{Event, Message};
        match event {
            Event::Message { peer, message: Message::Request { request, channel, .. }, .. } => {
                if !self.limits.allow(peer, std::time::Instant::now()) {
                    tracing::info!(%peer, "link messages too fast: refused");
                    let reply = LinkReply::Refused("too many link messages: slow down".into());
                    let _ = self.swarm.behaviour_mut().link.send_response(channel, reply);
                    return;
                }
                if self.inbound.len() >= MAX_PENDING_INBOUND {
                    let _ = self.swarm.behaviour_mut().link.send_response(channel, LinkReply::Refused("busy".into()));
                    return;
                }
                let id = self.next_inbound;
                self.next_inbound += 1;
                self.inbound.insert(id, channel);
                let addr = self.remote_addr(&peer);
                if !self.emit(P2pEvent::Link { id, peer, addr, message: request })
                    && let Some(channel) = self.inbound.remove(&id)
                {
                    let _ = self.swarm.behaviour_mut().link.send_response(channel, LinkReply::Refused("busy".into()));
                }
            }
            Event::Message { message: Message::Response { request_id, response }, .. } => {
                if let Some(reply) = self.outbound.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            Event::OutboundFailure { request_id, error, .. } => {
                if let Some(reply) = self.outbound.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound link message failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    fn on_fed(&mut self, event: request_response::Event<FedRequest, FedReply>) {
        use request_response::{Event, Message};
        let refuse = |message: &str| FedReply::Refused(ApiError::new(ErrorCode::RateLimited, message));
        match event {
            Event::Message { peer, connection_id, message: Message::Request { request, channel, .. } } => {
                if !self.fed_limits.allow(peer, std::time::Instant::now()) {
                    tracing::info!(%peer, "federation requests too fast: refused");
                    let _ =
                        self.swarm.behaviour_mut().fed.send_response(channel, refuse("too many requests: slow down"));
                    return;
                }
                if self.fed_inbound.len() >= MAX_PENDING_FED {
                    let _ = self.swarm.behaviour_mut().fed.send_response(channel, refuse("busy: retry later"));
                    return;
                }
                let id = self.next_inbound;
                self.next_inbound += 1;
                self.fed_inbound.insert(id, channel);
                let relayed = self.relayed.contains(&connection_id);
                if !self.emit(P2pEvent::Fed { id, peer, relayed, request })
                    && let Some(channel) = self.fed_inbound.remove(&id)
                {
                    let _ = self.swarm.behaviour_mut().fed.send_response(channel, refuse("busy: retry later"));
                }
            }
            Event::Message { message: Message::Response { request_id, response }, .. } => {
                if let Some(reply) = self.fed_outbound.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            Event::OutboundFailure { request_id, error, .. } => {
                if let Some(reply) = self.fed_outbound.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound federation request failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    /// An address the peer was seen at: its announced LAN address if nearby, else empty.
    fn remote_addr(&self, peer: &PeerId) -> Multiaddr {
        self.nearby.get(peer).and_then(|n| n.addrs.first().cloned()).unwrap_or_else(Multiaddr::empty)
    }

    fn on_mdns(&mut self, found: mdns::Found) {
        match found {
            mdns::Found::Node(node) => {
                if node.peer_id == self.peer_id {
                    return;
                }
                let known: HashSet<_> =
                    self.nearby.get(&node.peer_id).map(|n| n.addrs.iter().cloned().collect()).unwrap_or_default();
                let new_addrs = node.addrs.iter().any(|a| !known.contains(a));
                let verified = self.nearby.get(&node.peer_id).is_some_and(|n| n.verified)
                    || self.swarm.is_connected(&node.peer_id);
                if !self.nearby.contains_key(&node.peer_id) {
                    tracing::info!(peer = %node.peer_id, name = %node.name, "nearby node found");
                }
                let peer_id = node.peer_id;
                let addrs = node.addrs.clone();
                self.nearby.insert(peer_id, Nearby { verified, ..node });
                if new_addrs && !self.swarm.is_connected(&peer_id) {
                    // The dial checks the announced peer id in the handshake.
                    let opts = DialOpts::peer_id(peer_id).addresses(dial_order(addrs)).build();
                    if let Err(e) = self.swarm.dial(opts) {
                        tracing::debug!(peer = %peer_id, error = %e, "dial of a nearby node failed");
                    }
                }
            }
            mdns::Found::Gone(peer_id) => {
                if self.nearby.remove(&peer_id).is_some() {
                    tracing::info!(peer = %peer_id, "nearby node gone");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn link_messages_are_rate_limited_per_peer() {
        let mut limits = PeerLimits::new(LINK_BURST, LINK_REFILL);
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        for _ in 0..LINK_BURST {
            assert!(limits.allow(a, t0));
        }
        assert!(!limits.allow(a, t0), "a burst beyond the limit is refused");
        assert!(limits.allow(b, t0), "other peers are not affected");
        assert!(!limits.allow(a, t0 + LINK_REFILL / 2));
        assert!(limits.allow(a, t0 + LINK_REFILL), "one more after a refill period");
        assert!(!limits.allow(a, t0 + LINK_REFILL));
        let later = t0 + LINK_REFILL * 100;
        for _ in 0..LINK_BURST {
            assert!(limits.allow(a, later), "the bucket refills to a full burst, no more");
        }
        assert!(!limits.allow(a, later));
    }

    #[test]
    fn shareable_addresses_replace_the_unspecified_ip() {
        let peer = PeerId::random().to_string();
        let listen: Vec<Multiaddr> =
            vec!["/ip4/0.0.0.0/udp/7801/quic-v1".parse().unwrap(), "/ip4/10.1.2.3/tcp/7801".parse().unwrap()];
        let out = shareable_addrs(&listen, &peer);
        assert!(out.iter().all(|a| a.ends_with(&format!("/p2p/{peer}"))));
        assert!(out.iter().all(|a| !a.contains("0.0.0.0")), "{out:?}");
        assert!(out.contains(&format!("/ip4/10.1.2.3/tcp/7801/p2p/{peer}")));
        assert!(out.iter().any(|a| a.contains("/udp/7801/quic-v1/")));
    }
}
