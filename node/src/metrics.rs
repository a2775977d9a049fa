//! Prometheus metrics (`GET /metrics`).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters the node updates as it works. Gauges of stored totals are set at scrape time.
#[derive(Default)]
pub struct Metrics {
    pub messages_stored: Counter,
    pub messages_delivered: Counter,
    pub bytes_delivered: Counter,
    pub requests: Counter,
    pub requests_refused: Counter,
    pub rate_limited: Counter,
    pub connections: Gauge,
    pub connections_total: Counter,
    pub devices: Gauge,
    pub groups: Gauge,
    pub messages_in_store: Gauge,
    pub bytes_stored_total: Gauge,
    pub events_pushed: Gauge,
    pub p2p_connected: Gauge,
    pub nearby_nodes: Gauge,
    pub links_up: Gauge,
    /// The media port's totals since the node started, set at scrape time.
    pub media_dropped: Family<Vec<(String, String)>, Gauge>,
    pub media_datagrams_sent: Gauge,
    pub media_send_calls: Gauge,
    pub media_send_failures: Gauge,
    pub media_events_dropped: Gauge,
    pub media_sessions: Gauge,
    pub media_sessions_estimated: Gauge,
    pub media_lowest_estimate_bps: Gauge,
}

impl Metrics {
    /// Renders the text exposition format.
    pub fn render(&self) -> String {
        let mut registry = Registry::with_prefix("veche");
        registry.register("connections", "Signed-in WebSocket connections", self.connections.clone());
        registry.register("connections_opened", "WebSocket connections opened", self.connections_total.clone());
        registry.register("devices", "Registered devices", self.devices.clone());
        registry.register("groups", "Chats on this node", self.groups.clone());
        registry.register(
            "messages_stored",
            "Store requests answered Stored (including idempotent retries)",
            self.messages_stored.clone(),
        );
        registry.register(
            "messages_delivered",
            "Log entries handed to devices by Fetch",
            self.messages_delivered.clone(),
        );
        registry.register(
            "bytes_delivered",
            "Ciphertext bytes handed to devices by fetch",
            self.bytes_delivered.clone(),
        );
        registry.register(
            "stored_messages_all_time",
            "Messages stored since the node was created",
            self.messages_in_store.clone(),
        );
        registry.register(
            "stored_bytes_all_time",
            "Ciphertext bytes stored since the node was created",
            self.bytes_stored_total.clone(),
        );
        registry.register(
            "live_messages_pushed",
            "Events pushed live to connected devices (messages and welcomes)",
            self.events_pushed.clone(),
        );
        registry.register("p2p_connected_peers", "Other nodes connected over libp2p", self.p2p_connected.clone());
        registry.register("nearby_nodes", "Other nodes found on the LAN by mDNS", self.nearby_nodes.clone());
        registry.register("links_up", "Links with other nodes that both admins approved", self.links_up.clone());
        registry.register(
            "media_dropped_datagrams",
            "Datagrams the media port dropped on arrival since the node started, by reason",
            self.media_dropped.clone(),
        );
        registry.register(
            "media_datagrams_sent",
            "Datagrams the media port sent since the node started",
            self.media_datagrams_sent.clone(),
        );
        registry.register(
            "media_send_calls",
            "System calls that sent them (sendmmsg batches)",
            self.media_send_calls.clone(),
        );
        registry.register(
            "media_send_failures",
            "Datagrams the kernel refused to send since the node started (lost)",
            self.media_send_failures.clone(),
        );
        registry.register(
            "media_events_dropped",
            "Media events the node's queue had no room for since the node started",
            self.media_events_dropped.clone(),
        );
        registry.register(
            "media_sessions",
            "Open media sessions (participants' peer connections)",
            self.media_sessions.clone(),
        );
        registry.register(
            "media_sessions_estimated",
            "Media sessions whose congestion controller has a bandwidth estimate",
            self.media_sessions_estimated.clone(),
        );
        registry.register(
            "media_lowest_estimate_bps",
            "The lowest bandwidth estimate among media sessions, bits per second (0: none)",
            self.media_lowest_estimate_bps.clone(),
        );
        registry.register("requests", "Requests handled", self.requests.clone());
        registry.register("requests_refused", "Requests answered with an error", self.requests_refused.clone());
        registry.register("rate_limited", "Requests refused for rate", self.rate_limited.clone());
        let mut out = String::new();
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}
