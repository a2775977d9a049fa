//! Load generation for the benchmarks (`veche-bench`, `veche-fed-bench`): raw devices that send
//! paced or as fast as acknowledged, and observers that decrypt and time every message.
//!
//! Each message's plaintext starts with the send time (microseconds since the run's start, u64
//! little-endian) and the sender's node tag (one byte), so observers split latencies between
//! messages from their own node and from other nodes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use veche_protocol::ids::{AccountId, ChatKind, GroupId};
use veche_protocol::wire::{ClientFrame, Event, Request, Response, ServerFrame};

use crate::raw::RawDevice;

/// What the clients of one phase measured.
#[derive(Default)]
pub struct Shared {
    /// Send-to-decrypt latencies of messages from the observer's own node, microseconds.
    pub same_node_us: Mutex<Vec<f64>>,
    /// Send-to-decrypt latencies of messages from other nodes, microseconds.
    pub cross_node_us: Mutex<Vec<f64>>,
    /// The same with each message's send time (microseconds since the start), for a timeline.
    pub cross_node_timed: Mutex<Vec<(u64, f64)>>,
    pub stored: AtomicU64,
    pub decrypted: AtomicU64,
    pub errors: AtomicU64,
}

/// What one client does in a phase.
#[derive(Clone, Copy)]
pub struct Plan {
    pub group: GroupId,
    pub start: Instant,
    pub until: Instant,
    /// Time between sends; None: send the next as soon as the previous is acknowledged.
    pub interval: Option<Duration>,
    /// This client's first send is this far into the interval, so that senders take turns
    /// (a smooth offered load, not all clients at once).
    pub phase: Duration,
    /// Whether this client decrypts and records latency.
    pub observer: bool,
    /// Tag of the node this client is on.
    pub node: u8,
}

/// Runs one client: sends until `until`, receives everything until 3 s later, decrypts and
/// records latency when an observer.
pub async fn run_client(device: RawDevice, plan: Plan, shared: Arc<Shared>) -> anyhow::Result<()> {
    let Plan { group, start, until, interval, phase, observer, node } = plan;
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
                send_one(&mut mls, &mut sink, group, start, node, &mut next_id).await?;
                in_flight += 1;
            }
            _ = std::future::ready(()), if can_send && tick.is_none() => {
                send_one(&mut mls, &mut sink, group, start, node, &mut next_id).await?;
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
                            let latency = now_us.saturating_sub(sent_us) as f64;
                            if plaintext[8] == node {
                                shared.same_node_us.lock().await.push(latency);
                            } else {
                                shared.cross_node_us.lock().await.push(latency);
                                shared.cross_node_timed.lock().await.push((sent_us, latency));
                            }
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
    node: u8,
    next_id: &mut u32,
) -> anyhow::Result<()>
where
    S: futures_util::Sink<Message> + Unpin,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let mut plaintext = (start.elapsed().as_micros() as u64).to_le_bytes().to_vec();
    plaintext.push(node);
    plaintext.extend_from_slice(&[0x20; 91]); // ~100-byte message
    let message = mls.encrypt(group, &plaintext)?;
    let frame = ClientFrame { id: *next_id, request: Request::Send { group, message } };
    *next_id += 1;
    sink.send(Message::Binary(frame.encode().into())).await?;
    Ok(())
}

/// Builds a group of devices, device `i` registered on the node at `urls[i]`: the first creates
/// it and adds the rest in one commit (claiming key packages through its own node, which fetches
/// them from linked nodes); each member takes its Welcome from its own node.
pub async fn build_group(urls: &[&str]) -> anyhow::Result<(GroupId, Vec<RawDevice>)> {
    let mut devices = Vec::with_capacity(urls.len());
    for (i, url) in urls.iter().enumerate() {
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
    if devices.len() > 1 {
        let accounts: Vec<AccountId> = devices[1..].iter().map(|d| d.account()).collect();
        let mut packages = Vec::new();
        for account in accounts {
            match devices[0].conn.call(Request::ClaimKeyPackages { account }).await? {
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
            let deadline = Instant::now() + Duration::from_secs(20);
            let welcome = loop {
                let Ok(Response::Welcomes(welcomes)) = device.conn.call(Request::Welcomes).await? else {
                    bail!("welcomes")
                };
                if let Some(w) = welcomes.into_iter().find(|w| w.group == group) {
                    break w;
                }
                anyhow::ensure!(Instant::now() < deadline, "no Welcome reached a member's node");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            device.mls.join_from_welcome(&welcome.welcome)?;
        }
    }
    Ok((group, devices))
}

/// The value at quantile `p` of sorted samples (NaN when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Sorted copy of a sample list.
pub async fn sorted(samples: &Mutex<Vec<f64>>) -> Vec<f64> {
    let mut out = samples.lock().await.clone();
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

/// p50 and p99 (milliseconds) of the samples sent in each second of the run, in order: a
/// backlog shows as many high seconds, a hiccup as one.
pub async fn per_second(samples: &Mutex<Vec<(u64, f64)>>) -> Vec<(f64, f64)> {
    let mut by_second: std::collections::BTreeMap<u64, Vec<f64>> = std::collections::BTreeMap::new();
    for (sent_us, latency_us) in samples.lock().await.iter() {
        by_second.entry(sent_us / 1_000_000).or_default().push(*latency_us);
    }
    by_second
        .into_values()
        .map(|mut v| {
            v.sort_by(|a, b| a.total_cmp(b));
            (percentile(&v, 0.5) / 1000.0, percentile(&v, 0.99) / 1000.0)
        })
        .collect()
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) the process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
