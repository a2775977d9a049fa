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
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use veche_protocol::ids::{ChatKind, GroupId};
use veche_tests::load::{Plan, Shared, build_group, cpu_seconds, percentile, rss_kib, run_client, sorted};
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
    let (group, devices) = build_group(&vec![node.url.as_str(); n]).await?;
    let shared = Arc::new(Shared::default());
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let interval = paced.map(|rate| Duration::from_secs_f64(n as f64 / rate as f64));
    let mut tasks = Vec::new();
    for (index, device) in devices.into_iter().enumerate() {
        let observer = index >= n.saturating_sub(observers) || n <= observers;
        let shared = shared.clone();
        let phase = interval.map(|i| i.mul_f64(index as f64 / n as f64)).unwrap_or_default();
        let plan = Plan { group, start, until, interval, phase, observer, node: 0 };
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
    let lat = sorted(&shared.same_node_us).await;
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
