//! HTTP surface: `/healthz`, `/metrics`, the device WebSocket at `/api/ws`, and the web UI (or a small landing
//! page. Only this module knows HTTP and JSON; the WebSocket speaks `veche_protocol::wire`.

mod handlers;
pub mod trust;
pub mod ui;
mod ws;

use crate::service::Node;
use axum::extract::{ConnectInfo, Request, State, WebSocketUpgrade};
use axum::http::uri::Authority;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Most simultaneous WebSocket connections.
pub const MAX_CONNECTIONS: usize = 10_000;

/// Most WebSocket connections from one IP address that have not signed in (or registered) yet.
///
/// A device is in that state for one round trip (its `Hello`, then its signed `SignIn`), well
/// under a second, and must leave it within `ws::SIGN_IN_TIMEOUT`; so 64 still lets a household
/// or an office behind one NAT (or a reverse proxy, where every device shares its address) have
/// 64 devices signing in at the very same moment, e.g. all reconnecting after a node restart (those
/// refused retry with backoff). One stranger, meanwhile, holds at most 64 of the node's 10,000
/// `MAX_CONNECTIONS`, each with at most 16 frames of at most 8 KiB answered, instead of all of them.
pub const MAX_UNAUTHENTICATED_PER_IP: usize = 64;

/// Connections not signed in yet, per remote address (this process serves one node).
static UNAUTHENTICATED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>> =
    std::sync::LazyLock::new(Default::default);

/// One connection from `ip` that has not signed in yet: counted until dropped.
pub struct Unauthenticated(IpAddr);

impl Unauthenticated {
    /// A place for one more connection from `ip`, unless it already has `MAX_UNAUTHENTICATED_PER_IP`.
    fn take(ip: IpAddr) -> Option<Unauthenticated> {
        let mut counts = UNAUTHENTICATED.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= MAX_UNAUTHENTICATED_PER_IP {
            return None;
        }
        *count += 1;
        Some(Unauthenticated(ip))
    }
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        let mut counts = UNAUTHENTICATED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.0) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.0);
            }
        }
    }
}

#[derive(Clone)]
pub struct ApiState {
    pub node: Node,
    pub connections: Arc<Semaphore>,
    pub rate_limit: u32,
    pub started: std::time::Instant,
    /// Becomes true when the node shuts down; connections then close.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The built web UI served at `/` (and every app path), if any.
    pub ui: Option<ui::UiSource>,
    /// The node's HTTPS, unless `--tls off`: then nothing is redirected.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// `/metrics` is served on the main address (no `--metrics-addr`).
    pub metrics_on_main: bool,
}

pub fn router(state: ApiState) -> Router {
    let mut api = Router::new().route("/healthz", get(healthz));
    if state.metrics_on_main {
        api = api.route("/metrics", get(metrics));
    }
    let api = api
        .route("/api/ws", get(websocket))
        .route(trust::PAGE, get(trust::page))
        .route(&format!("{}ca.pem", trust::PREFIX), get(trust::pem))
        .route(&format!("{}ca.crt", trust::PREFIX), get(trust::der))
        .route(&format!("{}ca.mobileconfig", trust::PREFIX), get(trust::mobileconfig));
    let routes = match state.ui.clone() {
        Some(source) => ui::routes(api.route("/manifest.webmanifest", get(manifest)), source),
        None => api.route("/", get(landing)),
    };
    routes.layer(middleware::from_fn_with_state(state.clone(), secure_only)).with_state(state)
}

/// Over plain HTTP (when the node serves HTTPS) only the CA and its page are answered; every other
/// request is redirected to the same address over https. Every response gets the security headers.
async fn secure_only(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let plain = match request.extensions().get::<ConnectInfo<crate::tls::listener::Remote>>() {
        Some(ConnectInfo(remote)) if state.tls.is_some() && !remote.secure => Some(remote.addr),
        _ => None,
    };
    let secure_public = plain.is_none() && state.tls.as_ref().is_some_and(|t| t.public);
    let path = request.uri().path();
    if let Some(remote) = plain
        && !(path == trust::PAGE || path.starts_with(trust::PREFIX))
    {
        tracing::debug!(%remote, "plain HTTP request redirected to https");
        let host =
            request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).and_then(|h| h.parse::<Authority>().ok());
        let Some(host) = host else {
            return (StatusCode::BAD_REQUEST, "this node speaks HTTPS; the request has no valid Host").into_response();
        };
        let target = format!("https://{host}{}", request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"));
        let status = if matches!(*request.method(), Method::GET | Method::HEAD) {
            StatusCode::MOVED_PERMANENTLY
        } else {
            StatusCode::PERMANENT_REDIRECT
        };
        return (status, [(header::LOCATION, target)]).into_response();
    }
    let host =
        request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).and_then(|h| h.parse::<Authority>().ok());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(host.as_ref())) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // HSTS only with a publicly trusted certificate: with the node's own CA, a member who has not
    // trusted it yet must still be able to reach the trust page.
    if secure_public {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    response
}

/// The app's Content-Security-Policy: only this node's own origin (its WebSocket named
/// explicitly, as older browsers do not count ws(s) as 'self'), wasm compilation, inline style
/// attributes (Leptos sets them), media from the camera and blobs; no inline scripts, no eval, no
/// frames.
fn content_security_policy(host: Option<&Authority>) -> String {
    let sockets = host.map(|h| format!(" wss://{h} ws://{h}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'{sockets}; \
         worker-src 'self'; manifest-src 'self'; font-src 'self' data:; frame-ancestors 'none'; \
         base-uri 'none'; object-src 'none'; form-action 'self'"
    )
}

/// The web app manifest, named after this node: installed, the app shows the community's name.
async fn manifest(State(state): State<ApiState>) -> Response {
    let Some(source) = &state.ui else { return StatusCode::NOT_FOUND.into_response() };
    let Some(mut manifest) =
        ui::read(source, "manifest.webmanifest").and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let name = &state.node.info.name;
    // Home screens show about 12 characters under an icon.
    let short: String = if name.chars().count() <= 12 {
        name.clone()
    } else {
        name.chars().take(11).collect::<String>().trim_end().to_string() + "…"
    };
    if let Some(object) = manifest.as_object_mut() {
        object.insert("name".into(), serde_json::Value::String(format!("{name} · Veche")));
        object.insert("short_name".into(), serde_json::Value::String(short));
    }
    ([(header::CONTENT_TYPE, "application/manifest+json"), (header::CACHE_CONTROL, "no-cache")], manifest.to_string())
        .into_response()
}

async fn healthz(State(state): State<ApiState>) -> impl IntoResponse {
    let info = &state.node.info;
    let listen_addrs: Vec<String> = match &state.node.p2p {
        Some(p2p) => p2p.status().await.listen_addrs.iter().map(ToString::to_string).collect(),
        None => Vec::new(),
    };
    Json(serde_json::json!({
        "status": "ok",
        "node_id": info.node_id,
        "peer_id": info.node_id,
        "listen_addrs": listen_addrs,
        "name": info.name,
        "version": info.version,
        "protocol": veche_protocol::PROTOCOL_VERSION,
        "registration": format!("{:?}", info.registration).to_lowercase(),
        "uptime_s": state.started.elapsed().as_secs(),
        "tls_fingerprint": state.tls.as_ref().and_then(|t| t.fingerprint_text()),
    }))
}

/// `/metrics` alone, for `--metrics-addr` (plain HTTP).
pub fn metrics_router(state: ApiState) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(state)
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let node = &state.node;
    let m = &node.metrics;
    m.connections.set(node.hub.connections() as i64);
    m.devices.set(crate::service::accounts::device_count(node) as i64);
    m.events_pushed.set(node.hub.delivered.load(std::sync::atomic::Ordering::Relaxed) as i64);
    if let Ok(txn) = node.store.read() {
        use redb::ReadableTableMetadata;
        if let Ok(chats) = txn.open_table(crate::store::tables::CHATS) {
            m.groups.set(chats.len().unwrap_or(0) as i64);
        }
        if let Ok(counters) = txn.open_table(crate::store::tables::COUNTERS) {
            let get = |name: &str| counters.get(name).ok().flatten().map(|g| g.value()).unwrap_or(0);
            m.messages_in_store.set(get("messages_stored") as i64);
            m.bytes_stored_total.set(get("bytes_stored") as i64);
        }
    }
    if let Some(p2p) = &node.p2p {
        let status = p2p.status().await;
        m.p2p_connected.set(status.connected.len() as i64);
        m.nearby_nodes.set(status.nearby.len() as i64);
    }
    m.links_up.set(crate::service::federation::links_up(node).unwrap_or(0) as i64);
    if let Some(calls) = &node.calls
        && let Some(media) = calls.media_stats().await
    {
        for (reason, n) in media.dropped {
            m.media_dropped.get_or_create(&vec![("reason".to_string(), reason.to_string())]).set(n as i64);
        }
        m.media_datagrams_sent.set(media.datagrams_sent as i64);
        m.media_send_calls.set(media.send_calls as i64);
        m.media_send_failures.set(media.send_failures as i64);
        m.media_events_dropped.set(media.events_dropped as i64);
        m.media_sessions.set(media.peers as i64);
        m.media_sessions_estimated.set(media.estimates.len() as i64);
        m.media_lowest_estimate_bps.set(media.estimates.iter().min().copied().unwrap_or(0) as i64);
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.render()).into_response()
}

async fn landing(State(state): State<ApiState>) -> Html<String> {
    let info = &state.node.info;
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>{name} · Veche</title>\
         <h1>{name}</h1><p>Veche node {version}. Node id <code>{id}</code>.</p>\
         <p>Connect with <code>veche client --node &lt;this address&gt; --state DIR register --name NAME --invite LINK</code>.</p>",
        name = escape(&info.name),
        version = info.version,
        id = escape(&info.node_id),
    ))
}

async fn websocket(
    State(state): State<ApiState>,
    remote: Option<axum::Extension<ConnectInfo<crate::tls::listener::Remote>>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let exporter = remote.as_ref().and_then(|axum::Extension(ConnectInfo(remote))| remote.exporter);
    // Without the peer's address (never when served by `run`) there is no per-address cap.
    let unauthenticated = match remote {
        Some(axum::Extension(ConnectInfo(remote))) => match Unauthenticated::take(remote.addr.ip().to_canonical()) {
            Some(place) => Some(place),
            None => {
                tracing::debug!(remote = %remote.addr, "too many connections from one address before sign-in");
                return (StatusCode::SERVICE_UNAVAILABLE, "too many connections from your address waiting to sign in")
                    .into_response();
            }
        },
        None => None,
    };
    let Ok(permit) = state.connections.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    };
    upgrade
        .max_message_size(ws::MAX_WS_MESSAGE)
        .max_frame_size(ws::MAX_WS_MESSAGE)
        .on_upgrade(move |socket| ws::serve(state, socket, permit, unauthenticated, exporter))
}
