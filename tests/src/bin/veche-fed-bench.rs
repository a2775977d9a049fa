//! `veche-fed-bench`: three real `veche` nodes in network namespaces on one bridge, linked by a
//! community secret, one group homed on node 1 with members on all three.
//!
//! 1. Paced: every member sends; `--rate` messages/s in total. Send-to-decrypt latency p50/p99,
//!    split into messages from another node (the federation path: forwarded to the home node,
//!    ordered there, pulled by each member node) and from the observer's own node.
//! 2. Unpaced: every member sends its next message as soon as the previous one is stored;
//!    sustained stored messages/s.
//! 3. Catch-up: node 3 is cut off; `--queued` messages are stored at node 1 meanwhile; the link
//!    comes back. Time until node 3 holds all of them (its `/metrics`).
//!
//! Clients run in this process, which is wired to the bridge too, on the same 2 cores as the nodes.
//! Needs root (network namespaces).
//!
//! Usage: veche-fed-bench --veche target/release/veche [--rate 500] [--seconds 10]
//!        [--per-node 2] [--observers 1] [--queued 10000]
//!
//! `--observers` members per node decrypt and time every message; the others only send, so the
//! clients (which share the 2 cores with the nodes) are not what is measured.
//! `FED_BENCH_PHASES=unpaced,paced,paced` runs the phases in another order or repeats them (each
//! phase uses a new group).

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use veche_protocol::wire::{ClientFrame, Request, Response, ServerFrame};
use veche_tests::TempDir;
use veche_tests::load::{Plan, Shared, build_group, cpu_seconds, per_second, percentile, run_client, sorted};
use veche_tests::netns::Lan;

struct Args {
    veche: String,
    rate: u64,
    seconds: u64,
    per_node: usize,
    /// Members per node that decrypt and time what they receive (the rest only send).
    observers: usize,
    queued: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        veche: "target/release/veche".into(),
        rate: 500,
        seconds: 10,
        per_node: 2,
        observers: 1,
        queued: 10_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--veche" => args.veche = value,
            "--rate" => args.rate = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--per-node" => args.per_node = value.parse()?,
            "--observers" => args.observers = value.parse()?,
            "--queued" => args.queued = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// A plain HTTP GET; the body.
fn http_get(host: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = std::net::TcpStream::connect((host, 7800))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("no HTTP body")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    Ok(body.to_string())
}

fn metric(host: &str, name: &str) -> anyhow::Result<f64> {
    let body = http_get(host, "/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .with_context(|| format!("no metric {name}"))
}

struct Nodes {
    children: Vec<Child>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_nodes(lan: &Lan, dir: &std::path::Path, veche: &str) -> anyhow::Result<Nodes> {
    let mut nodes = Nodes { children: Vec::new() };
    for n in 1..=3 {
        let log = std::fs::File::create(dir.join(format!("node{n}.log")))?;
        let child = lan
            .command(n, std::path::Path::new(veche))
            .args(["run", "--data-dir"])
            .arg(dir.join(format!("node{n}")))
            .args(["--http", "0.0.0.0:7800", "--name", &format!("Bench {n}"), "--registration", "open", "--tls", "off"])
            .args([
                "--rate-limit",
                "100000",
                "--community-secret",
                "bench-town-q4xwm-h8tzn-k2pvr-y6cbe-f3uja-w9dgs-n5mrt",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        nodes.children.push(child);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 1..=3 {
        while metric(&lan.addr(n), "veche_links_up").ok() != Some(2.0) {
            anyhow::ensure!(Instant::now() < deadline, "node {n} did not link with the other two");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(nodes)
}

struct Measured {
    stored_rate: f64,
    /// Cross-node (p50, p99) ms per second of the run.
    timeline: Vec<(f64, f64)>,
    cross: Vec<f64>,
    same: Vec<f64>,
    errors: u64,
    cpu_pct: f64,
    /// CPU of this process (the clients: encrypting, decrypting, timing), % of one core.
    own_cpu_pct: f64,
}

async fn phase(
    urls: &[&str],
    node_of: &[u8],
    paced: Option<u64>,
    seconds: u64,
    pids: &[u32],
    observers: &[bool],
) -> anyhow::Result<Measured> {
    let (group, devices) = build_group(urls).await?;
    let n = devices.len();
    let shared = Arc::new(Shared::default());
    let start = Instant::now() + Duration::from_millis(200);
    let until = start + Duration::from_secs(seconds);
    let interval = paced.map(|rate| Duration::from_secs_f64(n as f64 / rate as f64));
    let cpu_before: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
    let own_before = cpu_seconds(std::process::id());
    let mut tasks = Vec::new();
    for (index, device) in devices.into_iter().enumerate() {
        let phase = interval.map(|i| i.mul_f64(index as f64 / n as f64)).unwrap_or_default();
        let plan = Plan { group, start, until, interval, phase, observer: observers[index], node: node_of[index] };
        tasks.push(tokio::spawn(run_client(device, plan, shared.clone())));
    }
    tokio::time::sleep_until(until.into()).await;
    let cpu_pct = (pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - cpu_before) / seconds as f64 * 100.0;
    let own_cpu_pct = (cpu_seconds(std::process::id()) - own_before) / seconds as f64 * 100.0;
    for task in tasks {
        task.await??;
    }
    Ok(Measured {
        stored_rate: shared.stored.load(Ordering::Relaxed) as f64 / seconds as f64,
        timeline: per_second(&shared.cross_node_timed).await,
        cross: sorted(&shared.cross_node_us).await,
        same: sorted(&shared.same_node_us).await,
        errors: shared.errors.load(Ordering::Relaxed),
        cpu_pct,
        own_cpu_pct,
    })
}

/// Cuts node 3 off, stores `count` messages at node 1 (up to 256 in flight), restores the link,
/// and times node 3's catch-up. Returns (seconds to store, seconds to catch up).
async fn catch_up(lan: &Lan, count: u64) -> anyhow::Result<(f64, f64)> {
    let (url1, url3) = (format!("http://{}:7800", lan.addr(1)), format!("http://{}:7800", lan.addr(3)));
    let (group, mut devices) = build_group(&[&url1, &url3]).await?;
    drop(devices.pop()); // the member on node 3 disconnects; its node keeps the replica
    let owner = devices.pop().context("owner")?;
    let host3 = lan.addr(3);
    let before = metric(&host3, "veche_stored_messages_all_time")?;
    lan.set_link(3, false)?;
    let veche_tests::raw::RawDevice { mut mls, conn, .. } = owner;
    let (mut sink, mut stream) = conn.into_ws().split();
    let started = Instant::now();
    let (mut sent, mut stored) = (0u64, 0u64);
    while stored < count {
        while sent < count && sent - stored < 256 {
            let message = mls.encrypt(group, format!("queued {sent}").as_bytes())?;
            let frame = ClientFrame { id: sent as u32, request: Request::Send { group, message } };
            sink.send(Message::Binary(frame.encode().into())).await?;
            sent += 1;
        }
        let Some(Ok(Message::Binary(bytes))) = stream.next().await else { bail!("owner's connection closed") };
        match ServerFrame::decode(&bytes)? {
            ServerFrame::Response { result: Ok(Response::Stored { .. }), .. } => stored += 1,
            ServerFrame::Response { result: Err(e), .. } => bail!("store refused: {e}"),
            _ => {}
        }
    }
    let store_s = started.elapsed().as_secs_f64();
    lan.set_link(3, true)?;
    let healed = Instant::now();
    let deadline = healed + Duration::from_secs(120);
    loop {
        if metric(&host3, "veche_stored_messages_all_time").unwrap_or(0.0) >= before + count as f64 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "node 3 did not catch up within 120 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((store_s, healed.elapsed().as_secs_f64()))
}

fn ms(sorted: &[f64], p: f64) -> String {
    format!("{:.2}", percentile(sorted, p) / 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    anyhow::ensure!(std::path::Path::new(&args.veche).exists(), "{} not found", args.veche);
    if let Some(why) = veche_tests::netns::unavailable() {
        bail!("this benchmark needs network namespaces (root and iproute2): {why}");
    }
    let tmp = TempDir::new("fed-bench");
    let lan = Lan::new(79, 3)?;
    lan.attach_here()?;
    let started = Instant::now();
    let nodes = start_nodes(&lan, tmp.path(), &args.veche)?;
    println!(
        "# veche-fed-bench: 3 nodes in network namespaces, linked in {:.1} s; {} members per node\n",
        started.elapsed().as_secs_f64(),
        args.per_node
    );
    let pids: Vec<u32> = nodes.children.iter().map(Child::id).collect();
    let urls: Vec<String> = (1..=3).map(|n| format!("http://{}:7800", lan.addr(n))).collect();
    let mut members: Vec<&str> = Vec::new();
    let mut node_of: Vec<u8> = Vec::new();
    let mut observers: Vec<bool> = Vec::new();
    for (n, url) in urls.iter().enumerate() {
        for i in 0..args.per_node {
            members.push(url);
            node_of.push(n as u8 + 1);
            observers.push(i < args.observers);
        }
    }
    println!(
        "| phase | stored msg/s | cross-node p50 ms | cross-node p99 ms | same-node p50 ms | same-node p99 ms | samples | errors | CPU of 3 nodes % | CPU of clients % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut timelines = Vec::new();
    let phases = std::env::var("FED_BENCH_PHASES").unwrap_or("paced,unpaced".into());
    for paced in phases.split(',').map(|p| (p == "paced").then_some(args.rate)) {
        let name = paced.map(|r| format!("paced {r} msg/s")).unwrap_or("unpaced".into());
        let m = phase(&members, &node_of, paced, args.seconds, &pids, &observers).await?;
        let line: Vec<String> = m.timeline.iter().map(|(p50, p99)| format!("{p50:.0}/{p99:.0}")).collect();
        timelines.push(format!("{name}: {}", line.join(" ")));
        println!(
            "| {name} | {:.0} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} |",
            m.stored_rate,
            ms(&m.cross, 0.5),
            ms(&m.cross, 0.99),
            ms(&m.same, 0.5),
            ms(&m.same, 0.99),
            m.cross.len() + m.same.len(),
            m.errors,
            m.cpu_pct,
            m.own_cpu_pct
        );
    }
    println!("\ncross-node p50/p99 ms by second of sending:");
    for line in &timelines {
        println!("- {line}");
    }
    let (store_s, catch_up_s) = catch_up(&lan, args.queued).await?;
    println!(
        "\ncatch-up: {} messages stored at node 1 while node 3 was cut off (in {store_s:.1} s); node 3 held all of them {catch_up_s:.2} s after its link came back",
        args.queued
    );
    drop(nodes);
    Ok(())
}
