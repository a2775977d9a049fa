//! Serves the built web UI: `/assets/*` and the files at the dist folder's root (the service worker
//! `sw.js`, the web app manifest, icons), and `index.html` for every other path that is not an API
//! route, so reloads and deep links (`/chat/<id>`, `/join#…`) load the app.
//!
//! The UI comes from the binary itself (embedded by `node/build.rs` from `web-ui/dist` when it was
//! built before the node) or from a folder on disk (`--ui-dir`, for UI development, or a binary
//! built without a UI). Both are served the same way: `/assets/*` as the gzip copy when the browser
//! accepts gzip, files at the root by name, `index.html` (status 200) for every other path.
//!
//! Caching: files whose names carry a content hash (`name-<16 hex>.ext`) never change and are
//! cached for a year; everything else (index.html, sw.js, wasm-bindgen snippets) is revalidated
//! (Last-Modified; embedded files also carry an ETag).

use std::path::PathBuf;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::services::{ServeDir, ServeFile};

/// Where the web UI is served from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UiSource {
    /// A dist folder on disk (`--ui-dir`, or `web-ui/dist` found near the binary).
    Dir(PathBuf),
    /// The UI built into the binary.
    Embedded,
}

/// One file of the UI built into the binary (the table is made by `node/build.rs`).
pub struct EmbeddedFile {
    /// Relative to the dist folder, with `/`: `index.html`, `assets/app-<hash>.css`.
    pub path: &'static str,
    pub body: &'static [u8],
    pub content_type: &'static str,
    /// Quoted, strong.
    pub etag: &'static str,
    /// An HTTP date: the file's modification time when the binary was built.
    pub last_modified: &'static str,
    /// The precompressed copy (`<path>.gz`) and its ETag.
    pub gzip: Option<(&'static [u8], &'static str)>,
}

mod embedded {
    use super::EmbeddedFile;
    include!(concat!(env!("OUT_DIR"), "/web_ui.rs"));
}

/// The UI built into this binary: its number of files and their total size in bytes; `None` when
/// the binary was built without one.
pub fn embedded() -> Option<(usize, usize)> {
    let files = embedded::FILES;
    (!files.is_empty()).then(|| (files.len(), files.iter().map(|f| f.body.len()).sum()))
}

/// A file of the UI (`path` relative to dist, e.g. `manifest.webmanifest`), if it has one.
pub fn read(source: &UiSource, path: &str) -> Option<Vec<u8>> {
    match source {
        UiSource::Dir(dir) => std::fs::read(dir.join(path)).ok(),
        UiSource::Embedded => embedded::FILES.iter().find(|f| f.path == path).map(|f| f.body.to_vec()),
    }
}

pub fn routes<S: Clone + Send + Sync + 'static>(api: Router<S>, source: UiSource) -> Router<S> {
    let api = match source {
        UiSource::Dir(dir) => {
            let assets = ServeDir::new(dir.join("assets")).precompressed_gzip();
            let root = ServeDir::new(&dir)
                .append_index_html_on_directories(false)
                .fallback(ServeFile::new(dir.join("index.html")));
            api.nest_service("/assets", assets).fallback_service(root)
        }
        UiSource::Embedded => api.fallback(|method: Method, uri: axum::http::Uri, headers: HeaderMap| async move {
            serve_embedded(embedded::FILES, &method, uri.path(), &headers)
        }),
    };
    api.layer(middleware::from_fn(cache_headers))
}

/// Answers a request from an embedded UI `files` (sorted by path), the way the dist folder is
/// served: `/assets/*` or 404, a file at the root by name, else `index.html`.
fn serve_embedded(files: &'static [EmbeddedFile], method: &Method, path: &str, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET,HEAD")]).into_response();
    }
    let find = |name: &str| files.binary_search_by(|f| f.path.cmp(name)).ok().map(|i| &files[i]);
    let name = path.strip_prefix('/').unwrap_or(path);
    let asset = name == "assets" || name.starts_with("assets/");
    let file = if asset { find(name) } else { find(name).or_else(|| find("index.html")) };
    let Some(file) = file else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let gzip = file.gzip.filter(|_| asset && accepts_gzip(headers));
    let (body, etag) = gzip.unwrap_or((file.body, file.etag));
    let mut response = if not_modified(headers, etag, file.last_modified) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response =
            Response::new(if method == Method::HEAD { Body::empty() } else { Body::from(Bytes::from_static(body)) });
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(file.content_type));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        if gzip.is_some() {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_static(etag));
    headers.insert(header::LAST_MODIFIED, HeaderValue::from_static(file.last_modified));
    response
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*`, with a q-value above 0).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        for item in value.to_str().unwrap_or("").split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if coding.eq_ignore_ascii_case("gzip") {
                return q > 0.0;
            }
            if coding == "*" {
                star = q > 0.0;
            }
        }
    }
    star
}

/// `If-None-Match` (when given, it alone decides), else `If-Modified-Since`.
fn not_modified(headers: &HeaderMap, etag: &str, last_modified: &str) -> bool {
    if let Some(tags) = headers.get(header::IF_NONE_MATCH) {
        let tags = tags.to_str().unwrap_or("");
        return tags.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || t == etag);
    }
    let since = headers.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok());
    match (since.and_then(|s| httpdate::parse_http_date(s).ok()), httpdate::parse_http_date(last_modified)) {
        (Some(since), Ok(modified)) => modified <= since,
        _ => false,
    }
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
    // A 304 keeps the long lifetime: its headers replace the cached response's.
    let found = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
    let asset = path.starts_with("/assets/");
    let value = if asset && is_hashed(&path) && found { "public, max-age=31536000, immutable" } else { "no-cache" };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    if asset && found {
        // Assets may come gzipped or not, by the request's Accept-Encoding.
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSS: &str = "assets/app-0123456789abcdef.css";
    const DATE: &str = "Mon, 07 Dec 2026 09:41:42 GMT";

    fn file(path: &'static str, body: &'static [u8], content_type: &'static str) -> EmbeddedFile {
        EmbeddedFile { path, body, content_type, etag: "\"e\"", last_modified: DATE, gzip: None }
    }

    /// A small dist, sorted by path as build.rs sorts it.
    fn files() -> &'static [EmbeddedFile] {
        let mut css = file(CSS, b"body{}", "text/css");
        css.etag = "\"css\"";
        css.gzip = Some((b"\x1f\x8bgz", "\"css-gz\""));
        Box::leak(Box::new([
            css,
            file("assets/app-0123456789abcdef.css.gz", b"\x1f\x8bgz", "application/gzip"),
            file("assets/snippets/s/js/store.js", b"export{}", "text/javascript"),
            file("index.html", b"<!doctype html>", "text/html"),
            file("manifest.webmanifest", b"{}", "application/manifest+json"),
            file("sw.js", b"self", "text/javascript"),
        ]))
    }

    fn get(path: &str, headers: &[(header::HeaderName, &'static str)]) -> Response {
        let headers = headers.iter().map(|(k, v)| (k.clone(), HeaderValue::from_static(v))).collect();
        serve_embedded(files(), &Method::GET, path, &headers)
    }

    fn field(response: &Response, name: header::HeaderName) -> &str {
        response.headers().get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()
    }

    #[tokio::test]
    async fn embedded_files_and_app_fallback() {
        for path in ["/", "/index.html", "/chat/abc", "/join", "/nope.png", "/snippets/x"] {
            let response = get(path, &[]);
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(field(&response, header::CONTENT_TYPE), "text/html", "{path}");
            assert_eq!(body(response).await, b"<!doctype html>", "{path}");
        }
        let manifest = get("/manifest.webmanifest", &[]);
        assert_eq!(field(&manifest, header::CONTENT_TYPE), "application/manifest+json");
        assert_eq!(field(&get("/sw.js", &[]), header::CONTENT_TYPE), "text/javascript");
        let snippet = get("/assets/snippets/s/js/store.js", &[]);
        assert_eq!(body(snippet).await, b"export{}");
        for path in ["/assets", "/assets/", "/assets/nope.js", "/assets/snippets", "/assets/../index.html"] {
            assert_eq!(get(path, &[]).status(), StatusCode::NOT_FOUND, "{path}");
        }
        let post = serve_embedded(files(), &Method::POST, "/chat/abc", &HeaderMap::new());
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        let head = serve_embedded(files(), &Method::HEAD, "/sw.js", &HeaderMap::new());
        assert_eq!(field(&head, header::CONTENT_LENGTH), "4");
        assert!(body(head).await.is_empty());
    }

    #[tokio::test]
    async fn gzip_when_accepted() {
        let css = format!("/{CSS}");
        let plain = get(&css, &[]);
        assert_eq!(field(&plain, header::CONTENT_ENCODING), "");
        assert_eq!(field(&plain, header::CONTENT_TYPE), "text/css");
        assert_eq!(field(&plain, header::ETAG), "\"css\"");
        assert_eq!(body(plain).await, b"body{}");
        for accept in ["gzip", "br, gzip, deflate", "gzip;q=0.5", "*", "deflate, *;q=0.1"] {
            let response = get(&css, &[(header::ACCEPT_ENCODING, accept)]);
            assert_eq!(field(&response, header::CONTENT_ENCODING), "gzip", "{accept}");
            assert_eq!(field(&response, header::CONTENT_TYPE), "text/css", "{accept}");
            assert_eq!(field(&response, header::ETAG), "\"css-gz\"", "{accept}");
            assert_eq!(body(response).await, b"\x1f\x8bgz", "{accept}");
        }
        for accept in ["gzip;q=0", "deflate, br", "*;q=0", "identity"] {
            let response = get(&css, &[(header::ACCEPT_ENCODING, accept)]);
            assert_eq!(field(&response, header::CONTENT_ENCODING), "", "{accept}");
        }
        // Only assets are sent compressed, as from a dist folder.
        assert_eq!(field(&get("/", &[(header::ACCEPT_ENCODING, "gzip")]), header::CONTENT_ENCODING), "");
    }

    #[tokio::test]
    async fn revalidation() {
        let css = format!("/{CSS}");
        assert_eq!(get(&css, &[(header::IF_NONE_MATCH, "\"css\"")]).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(get(&css, &[(header::IF_NONE_MATCH, "\"x\", W/\"css\"")]).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(get(&css, &[(header::IF_NONE_MATCH, "\"other\"")]).status(), StatusCode::OK);
        // The gzip copy has its own tag.
        let gz = [(header::IF_NONE_MATCH, "\"css\""), (header::ACCEPT_ENCODING, "gzip")];
        assert_eq!(get(&css, &gz).status(), StatusCode::OK);
        // If-None-Match decides alone when given.
        let both = [(header::IF_NONE_MATCH, "\"other\""), (header::IF_MODIFIED_SINCE, DATE)];
        assert_eq!(get("/sw.js", &both).status(), StatusCode::OK);
        let response = get("/sw.js", &[(header::IF_MODIFIED_SINCE, DATE)]);
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(field(&response, header::ETAG), "\"e\"");
        let earlier = get("/sw.js", &[(header::IF_MODIFIED_SINCE, "Sun, 06 Dec 2026 09:41:42 GMT")]);
        assert_eq!(earlier.status(), StatusCode::OK);
        assert_eq!(field(&earlier, header::LAST_MODIFIED), DATE);
        assert_eq!(get("/sw.js", &[(header::IF_MODIFIED_SINCE, "garbage")]).status(), StatusCode::OK);
    }

    /// The table build.rs made from web-ui/dist: sorted (lookups are binary searches), with an
    /// index.html, and each `.gz` copy attached to its file.
    #[test]
    fn embedded_table() {
        let files = embedded::FILES;
        assert!(files.windows(2).all(|w| w[0].path < w[1].path));
        if files.is_empty() {
            eprintln!("SKIPPED: this binary was built without the web UI (run scripts/build-ui.sh first)");
            return;
        }
        assert!(files.iter().any(|f| f.path == "index.html"));
        for file in files {
            let gz = files.iter().find(|g| g.path.strip_suffix(".gz") == Some(file.path));
            assert_eq!(file.gzip.map(|(body, _)| body), gz.map(|g| g.body), "{}", file.path);
        }
        let wasm = files.iter().find(|f| f.path.ends_with(".wasm")).expect("a wasm file");
        assert_eq!(wasm.content_type, "application/wasm");
    }

    #[test]
    fn hashed_names() {
        assert!(is_hashed("/assets/veche-web-0123456789abcdef.js"));
        assert!(is_hashed("/assets/veche-web_bg-0123456789abcdef.wasm"));
        assert!(!is_hashed("/assets/snippets/veche-web-1/js/store.js"));
        assert!(!is_hashed("/index.html"));
        assert!(!is_hashed("/assets/app-0123.css"));
    }
}
