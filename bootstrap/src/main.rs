//! `veche-bootstrap`: a small libp2p node on a public address through which Veche nodes on
//! different networks find and reach each other.
//!
//! - **Relay v2 server**: nodes behind NAT hold a reservation here and are reachable at
//!   `<this node's address>/p2p-circuit/p2p/<node>`. Limits (reservations, circuits, bytes and
//!   duration per circuit, rates per peer and per IP) keep a public bootstrap from being used as a
//!   free tunnel.
//! - **Rendezvous server**: nodes register under the namespace `veche` with their addresses;
//!   others discover them by peer id.
//! - **Kademlia** in server mode, **AutoNAT** (so nodes learn whether they are reachable), identify
//!   and ping. DCUtR hole punching runs between the nodes themselves, over a relayed connection.
//!
//! One task owns the swarm; it only reacts to swarm events, so there is nothing else to share.

use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use libp2p::futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, autonat, identify, kad, noise, ping, relay, rendezvous, tcp, yamux};

/// Protocol version announced over identify (the same as Veche nodes).
const PROTOCOL: &str = "/veche/1";

#[derive(Debug, Parser)]
#[command(name = "veche-bootstrap", version, about = "Relay and rendezvous for Veche nodes on different networks")]
struct Args {
    /// UDP (QUIC) and TCP port to listen on.
    #[arg(long, default_value_t = 7801, env = "VECHE_BOOTSTRAP_PORT")]
    port: u16,
    /// Where the bootstrap node keeps its key (its peer id stays the same across restarts).
    #[arg(long, env = "VECHE_BOOTSTRAP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A public address to announce (e.g. `/ip4/203.0.113.7/udp/7801/quic-v1`), repeatable. Give
    /// it when the public address is not on an interface (port forwarding, 1:1 NAT); without it,
    /// the interface addresses are announced.
    #[arg(long = "external-address")]
    external_addresses: Vec<Multiaddr>,
    /// Nodes holding a relay reservation at most.
    #[arg(long, default_value_t = 1024)]
    max_reservations: usize,
    /// Relayed connections at once at most.
    #[arg(long, default_value_t = 256)]
    max_circuits: usize,
    /// Relayed connections at once per node at most.
    #[arg(long, default_value_t = 16)]
    max_circuits_per_peer: usize,
    /// How long one relayed connection may last (nodes open a new one after it).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    max_circuit_duration: Duration,
    /// Bytes one relayed connection may carry, each way.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    max_circuit_bytes: u64,
    /// New relayed connections a node may open per minute.
    #[arg(long, default_value_t = 60)]
    circuits_per_minute: u32,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    relay: relay::Behaviour,
    rendezvous: rendezvous::server::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    autonat: autonat::Behaviour,
}

fn relay_config(args: &Args) -> anyhow::Result<relay::Config> {
    let per_minute = NonZeroU32::new(args.circuits_per_minute).context("--circuits-per-minute must be at least 1")?;
    let config = relay::Config {
        max_reservations: args.max_reservations,
        max_reservations_per_peer: 4,
        reservation_duration: Duration::from_secs(3600),
        max_circuits: args.max_circuits,
        max_circuits_per_peer: args.max_circuits_per_peer,
        max_circuit_duration: args.max_circuit_duration,
        max_circuit_bytes: args.max_circuit_bytes,
        ..relay::Config::default()
    };
    Ok(config
        .circuit_src_per_peer(per_minute, Duration::from_secs(60))
        .reservation_rate_per_peer(NonZeroU32::new(30).context("30")?, Duration::from_secs(60)))
}

/// The bootstrap node's key, created on first start (owner-readable only).
fn identity(data_dir: &std::path::Path) -> anyhow::Result<libp2p::identity::Keypair> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join("bootstrap.key");
    let mut secret = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = vec![0u8; 32];
            getrandom::fill(&mut secret).context("no randomness for the key")?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).with_context(|| format!("creating {}", path.display()))?;
            std::io::Write::write_all(&mut file, &secret)?;
            file.sync_all()?;
            secret
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    anyhow::ensure!(secret.len() == 32, "{} is not a 32-byte key", path.display());
    libp2p::identity::Keypair::ed25519_from_bytes(&mut secret).context("invalid key")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VECHE_LOG").unwrap_or_else(|_| "info,libp2p=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| dirs::data_dir().map(|d| d.join("veche-bootstrap")))
        .context("no data dir: pass --data-dir")?;
    let keypair = identity(&data_dir)?;
    let peer_id = keypair.public().to_peer_id();
    let relay = relay_config(&args)?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)?
        .with_quic()
        .with_behaviour(|key| {
            let id = key.public().to_peer_id();
            let mut kad = kad::Behaviour::new(id, kad::store::MemoryStore::new(id));
            kad.set_mode(Some(kad::Mode::Server));
            Behaviour {
                identify: identify::Behaviour::new(identify::Config::new(PROTOCOL.into(), key.public())),
                ping: ping::Behaviour::default(),
                relay: relay::Behaviour::new(id, relay),
                rendezvous: rendezvous::server::Behaviour::new(rendezvous::server::Config::default()),
                kad,
                autonat: autonat::Behaviour::new(id, autonat::Config { only_global_ips: false, ..Default::default() }),
            }
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    let quic = Multiaddr::from(Ipv4Addr::UNSPECIFIED).with(Protocol::Udp(args.port)).with(Protocol::QuicV1);
    let tcp = Multiaddr::from(Ipv4Addr::UNSPECIFIED).with(Protocol::Tcp(args.port));
    swarm.listen_on(quic).with_context(|| format!("listening on UDP port {}", args.port))?;
    swarm.listen_on(tcp).with_context(|| format!("listening on TCP port {}", args.port))?;
    for addr in &args.external_addresses {
        swarm.add_external_address(addr.clone());
    }
    let announce_only = !args.external_addresses.is_empty();
    println!("Veche bootstrap node {}", env!("CARGO_PKG_VERSION"));
    println!("peer id: {peer_id}");
    println!("data dir: {}", data_dir.display());
    println!(
        "relay limits: {} reservations, {} circuits ({} per node, {} a minute), {} and {} bytes per circuit",
        args.max_reservations,
        args.max_circuits,
        args.max_circuits_per_peer,
        args.circuits_per_minute,
        humantime::format_duration(args.max_circuit_duration),
        args.max_circuit_bytes
    );
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            event = swarm.select_next_some() => on_event(&mut swarm, event, peer_id, announce_only),
            () = &mut shutdown => break,
        }
    }
    tracing::info!("bootstrap node stopped");
    Ok(())
}

fn on_event(
    swarm: &mut libp2p::Swarm<Behaviour>,
    event: SwarmEvent<BehaviourEvent>,
    me: libp2p::PeerId,
    announce_only: bool,
) {
    match event {
        SwarmEvent::NewListenAddr { address, .. } => {
            // Nodes paste this (with the peer id) as `--bootstrap`.
            println!("address: {address}/p2p/{me}");
            // The relay serves reservations only on confirmed external addresses. Without
            // `--external-address`, every non-loopback interface address counts as one (a VPS
            // with its public address on an interface needs nothing more).
            let loopback = address.iter().any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_loopback()));
            if !announce_only && !loopback {
                swarm.add_external_address(address);
            }
        }
        SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
            // Make nodes findable through Kademlia by the addresses they listen on.
            for addr in info.listen_addrs {
                swarm.behaviour_mut().kad.add_address(&peer_id, addr);
            }
        }
        SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => match event {
            relay::Event::ReservationReqAccepted { src_peer_id, renewed, .. } => {
                tracing::info!(peer = %src_peer_id, renewed, "relay reservation accepted");
            }
            relay::Event::ReservationReqDenied { src_peer_id, .. } => {
                tracing::info!(peer = %src_peer_id, "relay reservation denied (limits)");
            }
            relay::Event::CircuitReqAccepted { src_peer_id, dst_peer_id } => {
                tracing::info!(src = %src_peer_id, dst = %dst_peer_id, "relayed connection opened");
            }
            relay::Event::CircuitReqDenied { src_peer_id, dst_peer_id, .. } => {
                tracing::info!(src = %src_peer_id, dst = %dst_peer_id, "relayed connection denied (limits)");
            }
            relay::Event::CircuitClosed { src_peer_id, dst_peer_id, error } => {
                tracing::debug!(src = %src_peer_id, dst = %dst_peer_id, ?error, "relayed connection closed");
            }
            other => tracing::debug!(?other, "relay"),
        },
        SwarmEvent::Behaviour(BehaviourEvent::Rendezvous(rendezvous::server::Event::PeerRegistered {
            peer,
            registration,
        })) => {
            tracing::info!(%peer, namespace = %registration.namespace, "node registered");
        }
        SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
            tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
        }
        _ => {}
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
