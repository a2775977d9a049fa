//! LAN discovery with mdns-sd: announce `_veche._udp.local.` with TXT records (peer id, node
//! name, HTTP port, QUIC and TCP ports, protocol version) and browse for other nodes. Unlike
//! libp2p's own mDNS, mdns-sd also works on loopback and between network namespaces.

use std::net::IpAddr;

use libp2p::{Multiaddr, PeerId};
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};

use super::{Nearby, P2pConfig};

pub const SERVICE_TYPE: &str = "_veche._udp.local.";
/// The web app's service type: its host name is `<node name>.local`.
pub const WEB_SERVICE_TYPE: &str = "_https._tcp.local.";

pub enum Found {
    Node(Nearby),
    Gone(PeerId),
}

pub struct Mdns {
    daemon: ServiceDaemon,
    events: mdns_sd::Receiver<ServiceEvent>,
    peer_id: PeerId,
    name: String,
    http_port: u16,
    announced: bool,
    /// The web app's announced `<label>.local`, once registered.
    web_label: Option<String>,
}

impl Mdns {
    pub fn start(peer_id: PeerId, config: &P2pConfig) -> anyhow::Result<Mdns> {
        let daemon = ServiceDaemon::new()?;
        let events = daemon.browse(SERVICE_TYPE)?;
        Ok(Mdns {
            daemon,
            events,
            peer_id,
            name: config.node_name.clone(),
            http_port: config.http_port,
            announced: false,
            web_label: None,
        })
    }

    /// Announces this node once its ports are known.
    pub fn announce(&mut self, quic_port: u16, tcp_port: u16) {
        if self.announced {
            return;
        }
        let peer = self.peer_id.to_base58();
        let http = self.http_port.to_string();
        let quic = quic_port.to_string();
        let tcp = tcp_port.to_string();
        let properties = [
            ("peer_id", peer.as_str()),
            ("name", self.name.as_str()),
            ("http", http.as_str()),
            ("quic", quic.as_str()),
            ("tcp", tcp.as_str()),
            ("proto", super::PROTOCOL),
        ];
        let host = format!("{peer}.local.");
        match ServiceInfo::new(SERVICE_TYPE, &peer, &host, "", quic_port, &properties[..]) {
            Ok(info) => match self.daemon.register(info.enable_addr_auto()) {
                Ok(()) => {
                    self.announced = true;
                    tracing::info!(service = SERVICE_TYPE, "announced on the LAN");
                }
                Err(e) => tracing::warn!(error = %e, "mDNS announce failed"),
            },
            Err(e) => tracing::warn!(error = %e, "mDNS service info"),
        }
        // The web app as `<node name>.local` (members type it; the certificate covers it): an
        // `_https._tcp` service on that host name, so the daemon answers its A/AAAA queries.
        if let Some(label) = crate::tls::mdns_label(&self.name) {
            let web_host = format!("{label}.local.");
            match ServiceInfo::new(WEB_SERVICE_TYPE, &label, &web_host, "", self.http_port, &[("path", "/")][..]) {
                Ok(info) => match self.daemon.register(info.enable_addr_auto()) {
                    Ok(()) => {
                        self.web_label = Some(label);
                        tracing::info!(host = %web_host, "announced the web app on the LAN");
                    }
                    Err(e) => tracing::warn!(error = %e, "mDNS announce of the web app failed"),
                },
                Err(e) => tracing::warn!(error = %e, "mDNS web service info"),
            }
        }
    }

    /// The next node found or gone (None when the daemon stopped).
    pub async fn next(&mut self) -> Option<Found> {
        loop {
            let event = self.events.recv_async().await.ok()?;
            match event {
                ServiceEvent::ServiceResolved(info) => {
                    if let Some(node) = parse(&info) {
                        return Some(Found::Node(node));
                    }
                }
                ServiceEvent::ServiceRemoved(_, fullname) => {
                    let instance = fullname.strip_suffix(&format!(".{SERVICE_TYPE}")).unwrap_or(&fullname);
                    if let Ok(peer) = instance.parse::<PeerId>() {
                        return Some(Found::Gone(peer));
                    }
                }
                _ => {}
            }
        }
    }

    /// Sends goodbye packets for our announcement (waiting at most a second), then stops.
    pub async fn stop(self) {
        if let Some(label) = &self.web_label
            && let Ok(done) = self.daemon.unregister(&format!("{label}.{WEB_SERVICE_TYPE}"))
        {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), done.recv_async()).await;
        }
        if self.announced {
            let fullname = format!("{}.{SERVICE_TYPE}", self.peer_id.to_base58());
            if let Ok(done) = self.daemon.unregister(&fullname) {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), done.recv_async()).await;
            }
        }
        let _ = self.daemon.shutdown();
    }
}

/// A resolved announcement as a nearby node; None if it is not a well-formed Veche one.
fn parse(info: &mdns_sd::ResolvedService) -> Option<Nearby> {
    let peer_id: PeerId = info.get_property_val_str("peer_id")?.parse().ok()?;
    let name = info.get_property_val_str("name").unwrap_or("").chars().take(100).collect();
    let http_port = info.get_property_val_str("http").and_then(|p| p.parse().ok()).unwrap_or(0);
    let quic: Option<u16> = info.get_property_val_str("quic").and_then(|p| p.parse().ok());
    let tcp: Option<u16> = info.get_property_val_str("tcp").and_then(|p| p.parse().ok());
    let mut addrs = Vec::new();
    for ip in info.get_addresses() {
        let ip = ip.to_ip_addr();
        let IpAddr::V4(v4) = ip else { continue }; // link-local IPv6 needs a scope; v4 is enough on a LAN
        if let Some(port) = quic
            && let Ok(addr) = format!("/ip4/{v4}/udp/{port}/quic-v1").parse::<Multiaddr>()
        {
            addrs.push(addr);
        }
        if let Some(port) = tcp
            && let Ok(addr) = format!("/ip4/{v4}/tcp/{port}").parse::<Multiaddr>()
        {
            addrs.push(addr);
        }
    }
    addrs.sort();
    addrs.dedup();
    (!addrs.is_empty()).then(|| Nearby {
        peer_id,
        name,
        http_port,
        addrs,
        last_seen_ms: crate::store::records::now_ms(),
        verified: false,
    })
}
