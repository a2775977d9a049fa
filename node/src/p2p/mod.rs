//! Node-to-node networking: one task owns the libp2p Swarm (QUIC first, TCP + noise + yamux as
//! fallback; identify, ping) and the mDNS announcer/browser. The rest of the node talks to it
//! through a [`P2pHandle`] over a bounded command channel.
//!
//! mDNS (`mdns.rs`) is only a hint: a node found on the LAN is dialed with its announced peer
//! id, and it counts as verified only once the libp2p handshake has proven that id.

mod mdns;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use libp2p::futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, noise, ping, tcp, yamux};
use tokio::sync::{mpsc, oneshot};

/// Protocol version announced to other nodes (identify and mDNS).
pub const PROTOCOL: &str = "/veche/1";
/// Commands queued to the swarm task at most.
const COMMAND_QUEUE: usize = 64;

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

/// What the swarm task knows.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub listen_addrs: Vec<Multiaddr>,
    pub connected: Vec<PeerId>,
    pub nearby: Vec<Nearby>,
}

enum Command {
    Status(oneshot::Sender<Status>),
    Shutdown(oneshot::Sender<()>),
}

/// The node's way to the swarm task.
#[derive(Clone, Debug)]
pub struct P2pHandle {
    tx: mpsc::Sender<Command>,
}

impl P2pHandle {
    /// The current status (empty if the task has stopped).
    pub async fn status(&self) -> Status {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Status(tx)).await.is_err() {
            return Status::default();
        }
        rx.await.unwrap_or_default()
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
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// Starts listening on the configured port (UDP/QUIC and TCP) and spawns the swarm task.
pub async fn start(keypair: libp2p::identity::Keypair, config: P2pConfig) -> anyhow::Result<P2pHandle> {
    let peer_id = keypair.public().to_peer_id();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .context("p2p TCP transport")?
        .with_quic()
        .with_behaviour(|key| Behaviour {
            identify: identify::Behaviour::new(identify::Config::new(PROTOCOL.into(), key.public())),
            ping: ping::Behaviour::default(),
        })
        .context("p2p behaviour")?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    let quic: Multiaddr = format!("/ip4/0.0.0.0/udp/{}/quic-v1", config.port).parse()?;
    let tcp: Multiaddr = format!("/ip4/0.0.0.0/tcp/{}", config.port).parse()?;
    swarm.listen_on(quic).with_context(|| format!("p2p: listening on UDP port {}", config.port))?;
    swarm.listen_on(tcp).with_context(|| format!("p2p: listening on TCP port {}", config.port))?;
    for addr in &config.bootstrap {
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, error = %e, "cannot dial bootstrap node");
        }
    }
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
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
    let task = SwarmTask { swarm, rx, mdns, nearby: BTreeMap::new(), ports: (None, None), peer_id };
    tokio::spawn(task.run());
    Ok(P2pHandle { tx })
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    rx: mpsc::Receiver<Command>,
    mdns: Option<mdns::Mdns>,
    nearby: BTreeMap<PeerId, Nearby>,
    /// Bound (QUIC, TCP) ports, known once listening; announced over mDNS.
    ports: (Option<u16>, Option<u16>),
    peer_id: PeerId,
}

impl SwarmTask {
    async fn run(mut self) {
        loop {
            let mdns_event = async {
                match self.mdns.as_mut() {
                    Some(m) => m.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event),
                command = self.rx.recv() => match command {
                    Some(Command::Status(reply)) => {
                        let _ = reply.send(self.status());
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
        }
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
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
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "p2p connected");
                if let Some(nearby) = self.nearby.get_mut(&peer_id)
                    && !nearby.verified
                {
                    nearby.verified = true;
                    tracing::info!(peer = %peer_id, name = %nearby.name, "nearby node verified");
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, error = %error, "p2p dial failed");
            }
            _ => {}
        }
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
                    let opts = DialOpts::peer_id(peer_id).addresses(addrs).build();
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
