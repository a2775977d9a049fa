//! Trusting the node once: its CA certificate at `/.well-known/veche/ca.pem` (PEM), `ca.crt` (DER,
//! what Android installs) and `ca.mobileconfig` (an iOS/macOS profile), and the "Secure this
//! device" page at `/trust` that explains, per platform, how to install it. These (and the redirect
//! to https) are the only things the node answers over plain HTTP: a member must be able to fetch
//! the CA before their browser trusts the node.

use super::ApiState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;

pub const PREFIX: &str = "/.well-known/veche/";
pub const PAGE: &str = "/trust";

fn ca(state: &ApiState) -> Option<&crate::tls::CaCert> {
    state.tls.as_ref()?.ca.as_ref()
}

pub async fn pem(State(state): State<ApiState>) -> Response {
    match ca(&state) {
        Some(ca) => download(ca.pem.clone().into_bytes(), "application/x-pem-file", "veche-ca.pem"),
        None => no_ca(),
    }
}

pub async fn der(State(state): State<ApiState>) -> Response {
    match ca(&state) {
        Some(ca) => {
            download(ca.der.clone(), "application/x-x509-ca-cert", &format!("{}-ca.crt", file_stem(&ca.node_name)))
        }
        None => no_ca(),
    }
}

pub async fn mobileconfig(State(state): State<ApiState>) -> Response {
    match ca(&state) {
        Some(ca) => download(profile(ca).into_bytes(), "application/x-apple-aspen-config", "veche-ca.mobileconfig"),
        None => no_ca(),
    }
}

fn no_ca() -> Response {
    (StatusCode::NOT_FOUND, "this node does not use its own certificate authority").into_response()
}

fn download(body: Vec<u8>, content_type: &'static str, name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        body,
    )
        .into_response()
}

fn file_stem(name: &str) -> String {
    crate::tls::mdns_label(name).unwrap_or_else(|| "veche".into())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Colon-separated upper-case hex, as certificate viewers show it.
pub fn hex_fingerprint(fp: &[u8; 32]) -> String {
    fp.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// A configuration profile installing the CA (iOS: Settings → Profile Downloaded; then
/// General → About → Certificate Trust Settings).
fn profile(ca: &crate::tls::CaCert) -> String {
    let fp = crate::tls::fingerprint(&ca.der);
    let uuid = |salt: u8| {
        let h = hex::encode(&fp[salt as usize..salt as usize + 16]);
        format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]).to_uppercase()
    };
    let name = escape(&ca.node_name);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&ca.der);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>PayloadCertificateFileName</key><string>veche-ca.crt</string>
      <key>PayloadContent</key><data>{b64}</data>
      <key>PayloadDisplayName</key><string>{name} (Veche node)</string>
      <key>PayloadIdentifier</key><string>org.veche.node.ca.{id}</string>
      <key>PayloadType</key><string>com.apple.security.root</string>
      <key>PayloadUUID</key><string>{u1}</string>
      <key>PayloadVersion</key><integer>1</integer>
    </dict>
  </array>
  <key>PayloadDisplayName</key><string>{name} (Veche node)</string>
  <key>PayloadDescription</key><string>Lets this device open the Veche node "{name}" securely. The certificate is valid only for the node's local names and addresses.</string>
  <key>PayloadIdentifier</key><string>org.veche.node.{id}</string>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadUUID</key><string>{u2}</string>
  <key>PayloadVersion</key><integer>1</integer>
</dict>
</plist>
"#,
        id = &hex::encode(fp)[..16],
        u1 = uuid(0),
        u2 = uuid(16),
    )
}

/// The "Secure this device" page.
pub async fn page(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(tls) = state.tls.as_ref() else {
        return (StatusCode::NOT_FOUND, "this node does not serve HTTPS itself").into_response();
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.parse::<axum::http::uri::Authority>().is_ok());
    let name = escape(&state.node.info.name);
    let Some(fp) = tls.fingerprint else {
        return (StatusCode::NOT_FOUND, "this node's certificate is publicly trusted: nothing to install")
            .into_response();
    };
    let fp_hex = hex_fingerprint(&fp);
    let fp_link = tls.fingerprint_text().unwrap_or_default();
    let qr = host
        .and_then(|h| qrcode::QrCode::new(format!("http://{h}{PAGE}")).ok())
        .map(|code| code.render::<qrcode::render::svg::Color>().min_dimensions(180, 180).quiet_zone(true).build())
        .unwrap_or_default();
    let open = host
        .map(|h| format!("<p><a class=btn href=\"https://{h}/\">Open {name}</a></p>", h = escape(h)))
        .unwrap_or_default();
    let body = if tls.ca.is_some() {
        format!(
            r#"<p>This node makes its own certificates. Trust its certificate authority once on each device, and the browser's warning about <b>{name}</b> never comes back. Until then the browser warns, and the app cannot keep working offline.</p>
<p>Compare this fingerprint with the one after <code>f=</code> in your invite link (<code>{fp_link}</code>) or the one your device shows when it installs the certificate (SHA-256):</p>
<p><code class=fp>{fp_hex}</code></p>
<p class=dl><a class=btn href="{PREFIX}ca.crt">Download the certificate (.crt)</a> <a href="{PREFIX}ca.pem">PEM</a> <a href="{PREFIX}ca.mobileconfig">iPhone/iPad profile</a></p>
<h2>Android</h2><ol><li>Download the <a href="{PREFIX}ca.crt">.crt file</a>.</li><li>Settings → Security (or Security &amp; privacy) → More security settings → Encryption &amp; credentials → Install a certificate → <b>CA certificate</b> → Install anyway, and pick the file.</li><li>Open the node again in Chrome.</li></ol>
<h2>iPhone and iPad</h2><ol><li>In Safari, open the <a href="{PREFIX}ca.mobileconfig">profile</a> and allow the download.</li><li>Settings → Profile Downloaded → Install.</li><li>Settings → General → About → <b>Certificate Trust Settings</b>: turn on full trust for “{name} (local CA)”.</li></ol>
<h2>Windows</h2><ol><li>Download the <a href="{PREFIX}ca.crt">.crt file</a> and open it.</li><li>Install Certificate → Current User → Place all certificates in: <b>Trusted Root Certification Authorities</b> → Finish.</li><li>Restart the browser. (Firefox: Settings → Privacy &amp; Security → Certificates → View Certificates → Authorities → Import.)</li></ol>
<h2>macOS</h2><ol><li>Download the <a href="{PREFIX}ca.crt">.crt file</a> and open it: Keychain Access adds it to the login keychain.</li><li>Double-click the certificate → Trust → When using this certificate: <b>Always Trust</b>.</li></ol>
<h2>Linux</h2><ol><li>Chrome/Chromium: Settings → Privacy and security → Security → Manage certificates → Authorities → Import the <a href="{PREFIX}ca.crt">.crt file</a>, trust it for websites. Or: <code>certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n veche -i veche-ca.crt</code></li><li>Firefox: Settings → Privacy &amp; Security → Certificates → View Certificates → Authorities → Import.</li><li>System-wide (Debian): copy it to <code>/usr/local/share/ca-certificates/</code> and run <code>sudo update-ca-certificates</code>.</li></ol>
<p class=note>The certificate authority is valid only for this node's local names and addresses (<code>.local</code> names and LAN addresses), so it cannot be used to impersonate any other website.</p>"#
        )
    } else {
        format!(
            "<p>This node uses a certificate its operator installed. SHA-256 fingerprint of its top certificate:</p><p><code class=fp>{fp_hex}</code></p>"
        )
    };
    let html = format!(
        r#"<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content="width=device-width, initial-scale=1">
<title>Secure this device · {name}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:1rem auto;padding:0 1rem;line-height:1.5;color:#0f172a}}h1{{font-size:1.5rem}}h2{{font-size:1.1rem;margin-top:1.5rem}}code.fp{{word-break:break-all;font-size:.8rem}}.btn{{display:inline-block;background:#4f46e5;color:#fff;padding:.5rem 1rem;border-radius:.5rem;text-decoration:none}}.dl a{{margin-right:.75rem}}.qr{{float:right;margin-left:1rem}}.note{{color:#475569;font-size:.9rem}}</style>
<h1>Secure this device</h1>
<div class=qr>{qr}</div>
{body}
{open}
"#
    );
    ([(header::CACHE_CONTROL, "no-cache")], Html(html)).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex() {
        let mut fp = [0u8; 32];
        fp[0] = 0xab;
        fp[31] = 0x01;
        let text = super::hex_fingerprint(&fp);
        assert!(text.starts_with("AB:00:"));
        assert!(text.ends_with(":01"));
        assert_eq!(text.len(), 32 * 3 - 1);
    }
}
