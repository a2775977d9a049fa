//! `veche-bench`: measures one real `veche` node with native clients in one group.
//!
//! For each group size (default 2, 10, 100): send-to-decrypt latency p50/p99 at an offered load
//! (default 1,000 messages/s in total), the highest sustained rate with every sender sending as
//! fast as the node acknowledges, and the node's RSS idle and under load. Then, without a node,
//! MLS commit times for adding one member to groups of 10, 100 and 1,000.
//!
//! Clients run in this process (one task and one WebSocket each, with their own MLS state), on
//! the same 2 cores as the node. Latency is measured at `--observers` (default 3) receiving clients
//! that decrypt every message; the other members receive every message but skip decryption so
//! the load generator does not starve the node.
//!
//! Usage: veche-bench --veche target/release/veche [--sizes 2,10,100] [--rate 1000] [--seconds 10]

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use veche_protocol::ids::{AccountId, ChatKind, GroupId};
use veche_protocol::wire::{ClientFrame, Event, Request, Response, ServerFrame};
use veche_tests::raw::RawDevice;
use veche_tests::{Node, TempDir};

struct Args {
    veche: String,
    sizes: Vec<usize>,
    rate: u64,
    seconds: u64,
    observers: usize,
    commit_sizes: Vec<usize>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        veche: "target/release/veche".into(),
        sizes: vec![2, 10, 100],
        rate: 1000,
        seconds: 10,
        observers: 3,
        commit_sizes: vec![10, 100, 1000],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let list = |v: &str| v.split(',').map(|s| s.trim().parse::<usize>()).collect::<Result<Vec<_>, _>>();
        match flag.as_str() {
            "--veche" => args.veche = value,
            "--sizes" => args.sizes = list(&value)?,
            "--rate" => args.rate = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--observers" => args.observers = value.parse()?,
            "--commit-sizes" => args.commit_sizes = list(&value)?,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Builds a group of `n` registered devices: the first creates it and adds the rest in one commit.
async fn build_group(url: &str, n: usize) -> anyhow::Result<(GroupId, Vec<RawDevice>)> {
    let mut devices = Vec::with_capacity(n);
    for i in 0..n {
        devices.push(RawDevice::register(url, &format!("bench{i}"), None).await?);
    }
    let mut group_id = [0u8; 16];
    getrandom::fill(&mut group_id)?;
    let group = GroupId(group_id);
    let owner = &mut devices[0];
    let info = owner.mls.create_group(group, ChatKind::Group)?;
    let create = Request::CreateChat {
        group,
        kind: ChatKind::Group,
        name: "bench".into(),
        description: String::new(),
        peer: None,
        group_info: info,
    };
    owner.conn.call(create).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    if n > 1 {
        let accounts: Vec<AccountId> = devices[1..].iter().map(|d| d.account()).collect();
        let mut packages = Vec::new();
        for account in accounts {
            let owner = &mut devices[0];
            match owner.conn.call(Request::ClaimKeyPackages { account }).await? {
                Ok(Response::KeyPackages(mut p)) => packages.append(&mut p),
                other => bail!("claim: {other:?}"),
            }
        }
        let owner = &mut devices[0];
        let bundle = owner.mls.add_members(group, &packages)?;
        let commit =
            Request::Commit { group, commit: bundle.commit, welcome: bundle.welcome, group_info: bundle.group_info };
        owner.conn.call(commit).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
        owner.mls.merge_pending_commit(group)?;
        for device in &mut devices[1..] {
            let Ok(Response::Welcomes(welcomes)) = device.conn.call(Request::Welcomes).await? else {
                bail!("welcomes")
            };
            let welcome = welcomes.into_iter().find(|w| w.group == group).context("no welcome")?;
            device.mls.join_from_welcome(&welcome.welcome)?;
        }
    }
    Ok((group, devices))
}

#[derive(Default)]
struct Shared {
    latencies_us: Mutex<Vec<f64>>,
    stored: AtomicU64,
    decrypted: AtomicU64,
    errors: AtomicU64,
}

/// Runs one client: sends at `interval` (or as fast as acknowledged when None) until `until`,
/// receives everything, decrypts when `observer`.
/// What one client does in a phase.
#[derive(Clone, Copy)]
struct Plan {
    group: GroupId,
    start: Instant,
    until: Instant,
    /// Time between sends; None: send the next as soon as the previous is acknowledged.
    interval: Option<Duration>,
    /// This client's first send is this far into the interval, so that senders take turns
    /// (a smooth offered load, not all clients at once).
    phase: Duration,
    /// Whether this client decrypts and records latency.
    observer: bool,
}

async fn run_client(device: RawDevice, plan: Plan, shared: Arc<Shared>) -> anyhow::Result<()> {
    let Plan { group, start, until, interval, phase, observer } = plan;
    let RawDevice { mut mls, conn, key } = device;
    let me = AccountId(key.verifying_key().to_bytes());
    let (mut sink, mut stream) = conn.into_ws().split();
    let mut next_id = 1000u32;
    let mut in_flight = 0u32;
    let mut tick = interval.map(|i| {
        let mut t = tokio::time::interval_at((start + phase).into(), i);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let drain_until = until + Duration::from_secs(3);
    loop {
        let now = Instant::now();
        if now >= drain_until {
            break;
        }
        let can_send = now < until && (interval.is_some() || in_flight == 0);
        tokio::select! {
            _ = async { match tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending::<()>().await } }, if can_send && tick.is_some() => {
                send_one(&mut mls, &mut sink, group, start, &mut next_id).await?;
                in_flight += 1;
            }
            _ = std::future::ready(()), if can_send && tick.is_none() => {
                send_one(&mut mls, &mut sink, group, start, &mut next_id).await?;
                in_flight += 1;
            }
            frame = stream.next() => {
                let Some(Ok(Message::Binary(bytes))) = frame else { break };
                match ServerFrame::decode(&bytes)? {
                    ServerFrame::Response { result: Ok(Response::Stored { .. }), .. } => {
                        in_flight = in_flight.saturating_sub(1);
                        shared.stored.fetch_add(1, Ordering::Relaxed);
                    }
                    ServerFrame::Response { result: Err(_), .. } => {
                        in_flight = in_flight.saturating_sub(1);
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    ServerFrame::Event(Event::Message(m)) if m.sender != me && observer => {
                        if let Ok(veche_mls::Processed::Application { plaintext, .. }) = mls.process(&m.payload) {
                            let sent_us = u64::from_le_bytes(plaintext[..8].try_into()?);
                            let now_us = start.elapsed().as_micros() as u64;
                            shared.latencies_us.lock().await.push(now_us.saturating_sub(sent_us) as f64);
                            shared.decrypted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until((drain_until).into()) => break,
        }
    }
    Ok(())
}

async fn send_one<S>(
    mls: &mut veche_mls::Client,
    sink: &mut S,
    group: GroupId,
    start: Instant,
    next_id: &mut u32,
) -> anyhow::Result<()>
where
    S: futures_util::Sink<Message> + Unpin,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let mut plaintext = (start.elapsed().as_micros() as u64).to_le_bytes().to_vec();
    plaintext.extend_from_slice(&[0x20; 92]); // ~100-byte message
    let message = mls.encrypt(group, &plaintext)?;
    let frame = ClientFrame { id: *next_id, request: Request::Send { group, message } };
    *next_id += 1;
    sink.send(Message::Binary(frame.encode().into())).await?;
    Ok(())
}

struct Phase {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    samples: usize,
    errors: u64,
    peak_rss_kib: u64,
    /// Node CPU use during the phase, in percent of one core.
    node_cpu_pct: f64,
}

async fn phase(node: &Node, n: usize, paced: Option<u64>, seconds: u64, observers: usize) -> anyhow::Result<Phase> {
    let (group, devices) = build_group(&node.url, n).await?;
    let shared = Arc::new(Shared::default());
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let interval = paced.map(|rate| Duration::from_secs_f64(n as f64 / rate as f64));
    let mut tasks = Vec::new();
    for (index, device) in devices.into_iter().enumerate() {
        let observer = index >= n.saturating_sub(observers) || n <= observers;
        let shared = shared.clone();
        let phase = interval.map(|i| i.mul_f64(index as f64 / n as f64)).unwrap_or_default();
        let plan = Plan { group, start, until, interval, phase, observer };
        tasks.push(tokio::spawn(run_client(device, plan, shared)));
    }
    let pid = node.pid();
    let cpu_before = cpu_seconds(pid);
    let mut peak = 0;
    while Instant::now() < until {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let node_cpu_pct = (cpu_seconds(pid) - cpu_before) / seconds as f64 * 100.0;
    for task in tasks {
        task.await??;
    }
    let stored = shared.stored.load(Ordering::Relaxed);
    let mut lat = shared.latencies_us.lock().await.clone();
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok(Phase {
        rate: stored as f64 / seconds as f64,
        p50_ms: percentile(&lat, 0.5) / 1000.0,
        p99_ms: percentile(&lat, 0.99) / 1000.0,
        samples: lat.len(),
        errors: shared.errors.load(Ordering::Relaxed),
        peak_rss_kib: peak,
        node_cpu_pct,
    })
}

/// MLS commit cost, no node: add one member to a group of `n`.
fn commit_cost(n: usize) -> anyhow::Result<(f64, f64)> {
    let group = GroupId([9; 16]);
    let mut owner = veche_mls::Client::new(veche_mls::Client::generate_secret());
    owner.create_group(group, ChatKind::Group)?;
    let mut packages = Vec::with_capacity(n);
    let mut observer = None;
    for i in 0..n {
        let mut c = veche_mls::Client::new(veche_mls::Client::generate_secret());
        packages.push(c.key_packages(1)?.remove(0));
        if i == 0 {
            observer = Some(c);
        }
    }
    let mut observer = observer.context("observer")?;
    let bundle = owner.add_members(group, &packages[..n - 1])?;
    owner.merge_pending_commit(group)?;
    observer.join_from_welcome(bundle.welcome.as_deref().context("welcome")?)?;
    let _ = owner.take_changes();
    let _ = observer.take_changes();
    // Time adding the n-th member: create the commit, merge it, and persist-diff (take_changes).
    let t = Instant::now();
    let bundle = owner.add_members(group, &packages[n - 1..])?;
    owner.merge_pending_commit(group)?;
    let _ = owner.take_changes();
    let commit_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    observer.process(&bundle.commit)?;
    let _ = observer.take_changes();
    let process_ms = t.elapsed().as_secs_f64() * 1000.0;
    Ok((commit_ms, process_ms))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    use_binary(&args.veche);
    println!("# veche-bench (offered load {} msg/s, {} s per phase)\n", args.rate, args.seconds);
    println!(
        "| clients | offered msg/s | stored msg/s | p50 ms | p99 ms | samples | errors | max msg/s (unpaced) | unpaced p99 ms | node RSS idle MiB | node RSS peak MiB | node CPU % (paced) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &args.sizes {
        let tmp = TempDir::new("bench");
        let node = Node::start(tmp.path(), &["--registration", "open", "--rate-limit", "100000"])?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = rss_kib(node.pid());
        let paced = phase(&node, n, Some(args.rate), args.seconds, args.observers).await?;
        let unpaced = phase(&node, n, None, args.seconds, args.observers).await?;
        println!(
            "| {n} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {:.0} | {:.2} | {:.1} | {:.1} | {:.0} |",
            args.rate,
            paced.rate,
            paced.p50_ms,
            paced.p99_ms,
            paced.samples,
            paced.errors + unpaced.errors,
            unpaced.rate,
            unpaced.p99_ms,
            idle as f64 / 1024.0,
            paced.peak_rss_kib.max(unpaced.peak_rss_kib) as f64 / 1024.0,
            paced.node_cpu_pct,
        );
    }
    println!("\n| group size | add one member: commit + merge + persist ms | process at a member ms |");
    println!("|---|---|---|");
    for &n in &args.commit_sizes {
        let (commit_ms, process_ms) = tokio::task::spawn_blocking(move || commit_cost(n)).await??;
        println!("| {n} | {commit_ms:.1} | {process_ms:.1} |");
    }
    Ok(())
}

fn use_binary(veche: &str) {
    let path = std::path::Path::new(veche);
    if !path.exists() {
        eprintln!("{veche} not found: build it with `cargo build --release -p veche-node`");
        std::process::exit(2);
    }
    veche_tests::set_bin(path);
}
