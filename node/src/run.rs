//! `veche run`: opens the data dir, starts the writer, the API and the retention timer, prints how
//! to reach the node, and shuts down gracefully on SIGINT/SIGTERM.

use crate::api::{self, ApiState};
use crate::config::{Config, RunArgs};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::service::{Node, NodeInfo};
use crate::store::{Store, Writer};
use anyhow::Context;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::Semaphore;
use veche_protocol::link::InviteLink;

/// The file in the data dir holding the newest admin link (owner-only; gone once an admin exists).
const ADMIN_LINK_FILE: &str = "admin-link.txt";

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = Config::resolve(args)?;
    crate::private_fs::create_dir(&config.data_dir)?;
    let keypair = crate::identity::load_or_create(&config.data_dir)?;
    let node_id = keypair.public().to_peer_id().to_string();
    let store = Store::open(&config.data_dir.join("veche.redb"))?;
    let hub = Arc::new(Hub::default());
    let writer = Writer::spawn(store.database().clone(), hub.clone()).context("starting the writer thread")?;
    let listener =
        tokio::net::TcpListener::bind(config.http).await.with_context(|| format!("listening on {}", config.http))?;
    let bound = listener.local_addr()?;
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening for /metrics on {addr}"))?,
        ),
        None => None,
    };
    let tls = crate::tls::Tls::start(
        &config.tls,
        &config.data_dir,
        crate::tls::NameSource::new(&config.name, config.public_url.as_deref()),
    )
    .context("setting up HTTPS")?;
    let info = NodeInfo {
        node_id: node_id.clone(),
        name: config.name.clone(),
        registration: config.registration.into(),
        version: env!("CARGO_PKG_VERSION"),
        http_port: bound.port(),
        community_secret: config.community_secret.clone(),
        guest_grace: config.guest_grace,
        quotas: config.quotas,
    };
    let (p2p, p2p_events) = crate::p2p::start(
        keypair,
        crate::p2p::P2pConfig {
            port: config.p2p_port,
            bootstrap: config.bootstrap.clone(),
            federation_rate: config.federation_rate,
            mdns: config.mdns,
            node_name: config.name.clone(),
            http_port: bound.port(),
        },
        crate::service::federation::linked_peers(&store)
            .map_err(|e| anyhow::anyhow!("reading links: {}", e.message))?,
    )
    .await?;
    let calls = start_media(config.media_port, &config.media_address, hub.clone(), config.ring_timeout)?;
    let node = Node {
        calls: Some(calls.clone()),
        store,
        writer,
        hub,
        metrics: Arc::new(Metrics::default()),
        info: Arc::new(info),
        p2p: Some(p2p.clone()),
        replication: Default::default(),
    };
    let federation = tokio::spawn(crate::service::federation::run(node.clone(), p2p_events));
    let changes = node.hub.watch_chats().context("chat changes watched twice")?;
    let notifier = tokio::spawn(crate::service::replica::notify_changes(node.clone(), changes));
    let catch_up = tokio::spawn(crate::service::replica::run_catch_up(node.clone()));
    let urls = urls(bound, config.public_url.as_deref(), tls.is_some());
    println!("Veche node \"{}\" {}", config.name, env!("CARGO_PKG_VERSION"));
    println!("node id: {node_id}");
    println!("data dir: {}", config.data_dir.display());
    println!("registration: {:?}", config.registration);
    match (&config.ui, api::ui::embedded()) {
        (Some(api::ui::UiSource::Embedded), Some((files, bytes))) => {
            println!("web UI: embedded ({files} files, {} KB)", bytes.div_ceil(1024))
        }
        (Some(api::ui::UiSource::Dir(dir)), _) => println!("web UI: {}", dir.display()),
        _ => println!(
            "web UI: not built into this binary (run scripts/build-ui.sh before building the node); serving a landing page"
        ),
    }
    for url in &urls {
        println!("listening: {url}");
    }
    if let Some(label) = crate::tls::mdns_label(&config.name)
        && config.public_url.is_none()
        && config.mdns
    {
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("on this LAN also: {scheme}://{label}.local:{}", bound.port());
    }
    if let Some(tls) = &tls {
        match &tls.ca {
            Some(_) => println!(
                "TLS: certificates from the node's own CA ({}); fingerprint {}; members trust it once: {}/trust",
                crate::tls::ca::tls_dir(&config.data_dir).display(),
                tls.fingerprint_text().unwrap_or_default(),
                urls[0]
            ),
            None if tls.public => {
                println!("TLS: a publicly trusted certificate by ACME (ordered and renewed by the node)")
            }
            None => {
                println!("TLS: the operator's certificate; fingerprint {}", tls.fingerprint_text().unwrap_or_default())
            }
        }
    }
    for addr in crate::p2p::shareable_addrs(&p2p.status().await.listen_addrs, &node_id) {
        println!("node address: {addr}");
    }
    // The admin link goes to stdout once and to an owner-only file, never to the log.
    let link_file = config.data_dir.join(ADMIN_LINK_FILE);
    let admin_invite = match config.registration {
        crate::config::Registration::Open => None,
        _ => crate::service::invites::create_admin_invite(&node).await?,
    };
    match admin_invite {
        Some((invite, secret)) => {
            let link = InviteLink {
                node_url: urls[0].clone(),
                invite,
                secret,
                group: None,
                fingerprint: tls.as_ref().and_then(|t| t.fingerprint),
            }
            .to_url();
            crate::private_fs::write(&link_file, format!("{link}\n").as_bytes())?;
            println!(
                "admin link (one use; whoever registers with it becomes this node's admin; also in {}):",
                link_file.display()
            );
            println!("  {link}");
        }
        // No link this start (an admin exists, or anyone may register): an earlier one is spent
        // or revoked, so its file goes.
        None => match std::fs::remove_file(&link_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", link_file.display()));
            }
            _ => {}
        },
    }
    tracing::info!(%node_id, addr = %bound, "node started");

    let retention_node = node.clone();
    let retention_every = config.retention_interval;
    let retention = tokio::spawn(async move {
        let mut tick = tokio::time::interval(retention_every);
        loop {
            tick.tick().await;
            if let Err(e) = crate::service::retention::run_once(&retention_node).await {
                tracing::warn!(error = %e, "retention pass failed");
            }
        }
    });

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let state = ApiState {
        node,
        connections: Arc::new(Semaphore::new(api::MAX_CONNECTIONS)),
        rate_limit: config.rate_limit,
        started: std::time::Instant::now(),
        shutdown: shutdown_rx,
        ui: config.ui.clone(),
        tls: tls.clone(),
        metrics_on_main: metrics_listener.is_none(),
    };
    let metrics = metrics_listener.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "/metrics is served here (not on the main address)");
        }
        let router = api::metrics_router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::warn!(error = %e, "the /metrics listener stopped");
            }
        })
    });
    let listener = crate::tls::listener::DualListener::new(listener, tls.as_ref().map(|t| t.acceptor.clone()))?;
    axum::serve(listener, api::router(state).into_make_service_with_connect_info::<crate::tls::listener::Remote>())
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = shutdown_tx.send(true);
        })
        .await?;
    retention.abort();
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    // Say goodbye on the LAN, so nearby nodes drop this one at once.
    p2p.shutdown().await;
    federation.abort();
    notifier.abort();
    catch_up.abort();
    tracing::info!("node stopped");
    Ok(ExitCode::SUCCESS)
}

/// URLs to print: the public URL if set, else one per address we listen on.
fn urls(bound: SocketAddr, public_url: Option<&str>, https: bool) -> Vec<String> {
    if let Some(url) = public_url {
        return vec![url.to_string()];
    }
    let port = bound.port();
    let mut ips: Vec<IpAddr> = if bound.ip().is_unspecified() {
        let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
            .map(|addrs| addrs.into_iter().map(|a| a.ip()).filter(|ip| ip.is_ipv4()).collect())
            .unwrap_or_default();
        // LAN addresses first: they are what members on other devices use.
        ips.sort_by_key(|ip| ip.is_loopback());
        ips
    } else {
        vec![bound.ip()]
    };
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    let scheme = if https { "https" } else { "http" };
    ips.into_iter().map(|ip| format!("{scheme}://{}", SocketAddr::new(ip, port))).collect()
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// Binds the media port (all interfaces) and starts the media loop and the call service. The
/// host candidates are the configured addresses, or the first LAN IPv4 address (loopback when
/// the machine has none).
fn start_media(
    port: u16,
    addresses: &[String],
    hub: Arc<crate::hub::Hub>,
    ring_timeout: std::time::Duration,
) -> anyhow::Result<Arc<crate::service::calls::Calls>> {
    let socket = std::net::UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .with_context(|| format!("binding the media port (UDP {port}); --media-port picks another"))?;
    let port = socket.local_addr()?.port();
    let mut advertised = Vec::new();
    for a in addresses {
        let addr = match a.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => SocketAddr::new(a.parse().with_context(|| format!("media address {a}"))?, port),
        };
        advertised.push(addr);
    }
    if advertised.is_empty() {
        let lan = if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .find(|i| !i.is_loopback() && i.ip().is_ipv4())
            .map(|i| i.ip())
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
        advertised.push(SocketAddr::new(lan, port));
    }
    let (media, events) = veche_sfu::media_loop::start(socket, advertised.clone())?;
    let list: Vec<String> = advertised.iter().map(ToString::to_string).collect();
    println!("media: UDP {port}, reached at {}", list.join(", "));
    Ok(crate::service::calls::Calls::start(media, events, hub, ring_timeout)?)
}
