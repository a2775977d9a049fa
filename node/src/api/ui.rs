//! Serves the built web UI: `/assets/*` and the files at the dist folder's root (the service worker
//! `sw.js`, the web app manifest, icons), and `index.html` for every other path that is not an API
//! route, so reloads and deep links (`/chat/<id>`, `/join#…`) load the app.
//!
//! Caching: files whose names carry a content hash (`name-<16 hex>.ext`) never change and are
//! cached for a year; everything else (index.html, wasm-bindgen snippets) is revalidated.

use std::path::Path;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::services::{ServeDir, ServeFile};

use super::ApiState;

pub fn routes(api: Router<ApiState>, dir: &Path) -> Router<ApiState> {
    let assets = ServeDir::new(dir.join("assets")).precompressed_gzip();
    let root =
        ServeDir::new(dir).append_index_html_on_directories(false).fallback(ServeFile::new(dir.join("index.html")));
    api.nest_service("/assets", assets).fallback_service(root).layer(middleware::from_fn(cache_headers))
}

/// Whether a path's file name has the `-<16 hex digits>.` content hash our build gives it.
fn is_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    let stem = name.split('.').next().unwrap_or("");
    stem.rsplit_once('-').is_some_and(|(_, hash)| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn cache_headers(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    if path.starts_with("/api/") || path == "/healthz" || path == "/metrics" {
        return response;
    }
    let value = if path.starts_with("/assets/") && is_hashed(&path) && response.status().is_success() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    response
}

#[cfg(test)]
mod tests {
    use super::is_hashed;

    #[test]
    fn hashed_names() {
        assert!(is_hashed("/assets/veche-web-0123456789abcdef.js"));
        assert!(is_hashed("/assets/veche-web_bg-0123456789abcdef.wasm"));
        assert!(!is_hashed("/assets/snippets/veche-web-1/js/store.js"));
        assert!(!is_hashed("/index.html"));
        assert!(!is_hashed("/assets/app-0123.css"));
    }
}
