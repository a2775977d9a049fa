//! The web UI built into the `veche` binary: a copy of the binary, run from a folder with no
//! `web-ui/dist` anywhere near it (as on a machine it was copied to alone), serves the whole app.
//!
//! Skipped (with a message) when the binary was built without the UI: `scripts/test.sh` builds the
//! node before the web UI.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use veche_tests::{TempDir, free_port, veche_bin};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One plain HTTP/1.1 GET (the node runs with `--tls off`), extra header lines as given.
fn get(port: u16, path: &str, extra: &[&str]) -> Reply {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8(raw[..split].to_vec()).expect("ASCII headers");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply { status, headers, body: raw[split + 4..].to_vec() }
}

#[test]
fn embedded_ui_served_by_a_lone_binary() {
    let dir = TempDir::new("ui-embedded");
    // The binary alone in an empty folder (a hard link when possible: the debug binary is large).
    let bin = dir.path().join("veche");
    if std::fs::hard_link(veche_bin(), &bin).is_err() {
        std::fs::copy(veche_bin(), &bin).expect("copy the veche binary");
    }
    let work = dir.path().join("cwd");
    std::fs::create_dir_all(&work).unwrap();
    let port = free_port();
    let mut child = Command::new(&bin)
        .current_dir(&work)
        .args(["run", "--tls", "off", "--http", &format!("127.0.0.1:{port}"), "--name", "Lone node"])
        .args(["--p2p-port", "0", "--media-port", "0", "--mdns", "false"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("VECHE_UI_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start veche run");
    let stdout = child.stdout.take().unwrap();
    let _node = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ui_line = None;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.starts_with("web UI:") => ui_line = Some(line),
            Ok(line) if line.starts_with("listening:") => break,
            Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("the node exited at start"),
        }
    }
    let ui_line = ui_line.expect("the node prints where its web UI comes from");
    if ui_line.contains("not built into this binary") {
        eprintln!(
            "SKIPPED: {} was built without the web UI ({ui_line:?}); run scripts/build-ui.sh, then build the node",
            veche_bin().display()
        );
        return;
    }
    assert!(ui_line.starts_with("web UI: embedded ("), "{ui_line}");
    let healthy = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < healthy, "node not listening");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The app at / and at every app path (SPA fallback), revalidated.
    let index = get(port, "/", &[]);
    assert_eq!(index.status, 200);
    assert_eq!(index.header("content-type"), Some("text/html"));
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    let html = String::from_utf8(index.body.clone()).unwrap();
    // The page loads the app from /assets/ (its boot script registers /sw.js, fetched below).
    assert!(html.contains("/assets/boot-") && html.contains("/assets/veche-web"), "{html}");
    let deep = get(port, "/chat/0123456789abcdef", &[]);
    assert_eq!((deep.status, &deep.body), (200, &index.body));
    let etag = index.header("etag").expect("an ETag").to_string();
    let revalidated = get(port, "/", &[&format!("If-None-Match: {etag}")]);
    assert_eq!(revalidated.status, 304);

    // The service worker and the manifest at the root.
    let sw = get(port, "/sw.js", &[]);
    assert_eq!(sw.status, 200);
    assert!(sw.header("content-type").unwrap_or("").contains("javascript"), "{:?}", sw.header("content-type"));
    assert_eq!(sw.header("cache-control"), Some("no-cache"));
    let manifest = get(port, "/manifest.webmanifest", &[]);
    assert_eq!(manifest.status, 200);
    assert_eq!(manifest.header("content-type"), Some("application/manifest+json"));

    // Every file the service worker precaches, from the binary.
    let sw_text = String::from_utf8(sw.body).unwrap();
    // Quoted paths whose last segment is a file name ("/healthz", "/api/", "/.well-known/" are not).
    let files: Vec<&str> = sw_text
        .split('"')
        .filter(|s| s.starts_with('/') && !s.starts_with("/.") && !s.contains(char::is_whitespace))
        .filter(|s| s.rsplit('/').next().unwrap_or("").contains('.'))
        .collect();
    assert!(files.len() >= 5, "sw.js lists the build's files: {files:?}");
    let wasm = files.iter().find(|f| f.starts_with("/assets/") && f.ends_with(".wasm")).expect("a wasm asset in sw.js");
    for file in &files {
        let reply = get(port, file, &[]);
        assert_eq!(reply.status, 200, "{file}");
        assert_ne!(reply.body, index.body, "{file} answered with index.html");
    }

    // Hashed assets: cached for a year, gzipped when the browser accepts it.
    let plain = get(port, wasm, &[]);
    assert_eq!(plain.header("content-type"), Some("application/wasm"));
    assert_eq!(plain.header("cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(&plain.body[..4], b"\0asm");
    let gzipped = get(port, wasm, &["Accept-Encoding: gzip, deflate, br"]);
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(gzipped.header("content-type"), Some("application/wasm"));
    assert_eq!(gzipped.header("cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(&gzipped.body[..2], b"\x1f\x8b");
    assert!(gzipped.body.len() < plain.body.len());
    assert_eq!(get(port, "/assets/nothing-0123456789abcdef.js", &[]).status, 404);
}
