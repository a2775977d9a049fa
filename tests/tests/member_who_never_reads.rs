//! Scenario: Mallory, a member, asks for the largest page of a chat's history (`Fetch`) again and
//! again on one connection and never reads the answers. The node stops reading her requests once
//! her answers waiting for the socket reach their byte bound, so its memory (RSS) grows by a few
//! tens of MiB at most, not by the gigabyte 256 queued pages would take; meanwhile Alice chats
//! normally on another connection. When Mallory finally reads, every request she sent is answered,
//! in order. And one account cannot hold more than 32 signed-in connections.

use std::time::Duration;
use veche_protocol::ids::GroupId;
use veche_protocol::wire::{ErrorCode, Request, Response};
use veche_tests::raw::{RawConn, RawDevice};
use veche_tests::{Node, TempDir};

/// Bytes of plaintext per stored message: 40 of them fill more than one 4 MiB page of `Fetch`.
const MESSAGE_BYTES: usize = 110 * 1024;
const MESSAGES: usize = 40;
/// Fetches Mallory sends without reading: 4 MiB each, 240 MiB if the node queued them all.
const FETCHES: usize = 60;
/// What the node's memory may grow by while she does not read: its bound is two pages queued, one
/// waiting to be queued and the socket's buffer (about 16 MiB); the rest is slack for the
/// allocator and the requests still on the socket.
const RSS_GROWTH_BOUND: u64 = 64 * 1024 * 1024;

fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
    let kib: u64 = line.split_whitespace().nth(1).ok_or_else(|| anyhow::anyhow!("VmRSS value"))?.parse()?;
    Ok(kib * 1024)
}

/// A new connection signed in as `device` (one more of its connections).
async fn sign_in(node_url: &str, device: &RawDevice) -> anyhow::Result<RawConn> {
    let mut conn = RawConn::open(node_url).await?;
    let id = device.device();
    let payload = veche_protocol::auth::sign_in_payload(&conn.hello.node_id, &conn.hello.challenge, &id, None);
    let signature = veche_protocol::auth::sign(&device.key, &payload);
    match conn
        .call(Request::SignIn { device: id, signature, binding: veche_protocol::auth::ChannelBinding::Unbound })
        .await?
    {
        Ok(_) => Ok(conn),
        Err(e) => Err(anyhow::anyhow!("sign in: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_never_reads_cannot_grow_the_node() -> anyhow::Result<()> {
    let tmp = TempDir::new("never-reads");
    let node = Node::start(tmp.path(), &["--registration", "open", "--mdns", "false", "--rate-limit", "100000"])?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let mut mallory = RawDevice::register(&node.url, "Mallory", None).await?;
    let archive = GroupId([0x1b; 16]);
    mallory.create_chat(archive, "Archive").await?;
    for i in 0..MESSAGES {
        let mut text = vec![b'a' + (i % 26) as u8; MESSAGE_BYTES];
        text[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let message = mallory.mls.encrypt(archive, &text)?;
        let answer = mallory.conn.call(Request::Send { group: archive, message }).await?;
        assert!(matches!(answer, Ok(Response::Stored { .. })), "stored: {answer:?}");
    }
    let library = GroupId([0x1c; 16]);
    alice.create_chat(library, "Library").await?;
    // Mallory's second connection is the one that will not read.
    let mut reader = sign_in(&node.url, &mallory).await?;
    let fetch = Request::Fetch { group: archive, after: 0, limit: 1000 };

    // A reader's page: more than 4 MiB is stored, so a page is full.
    let Ok(Response::Messages { messages, .. }) = reader.call(fetch.clone()).await? else { anyhow::bail!("fetch") };
    let page = messages.len();
    assert!(page < MESSAGES, "one page holds part of the history ({page} entries)");
    // Warm up the node's allocator with a few pages, then measure.
    for _ in 0..4 {
        reader.call(fetch.clone()).await??;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes(node.pid())?;

    // Mallory asks and asks, and reads nothing.
    let mut sent = Vec::new();
    for _ in 0..FETCHES {
        let id = tokio::time::timeout(Duration::from_secs(10), reader.send(fetch.clone()))
            .await
            .map_err(|_| anyhow::anyhow!("a small request should not block: the node's socket buffer takes it"))??;
        sent.push(id);
    }
    let mut peak = before;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(rss_bytes(node.pid())?);
    }
    let growth = peak.saturating_sub(before);
    eprintln!("node RSS {} MiB before, peak {} MiB while Mallory did not read", before >> 20, peak >> 20);
    assert!(
        growth < RSS_GROWTH_BOUND,
        "the node's memory grew by {} MiB for a member who does not read (bound {} MiB)",
        growth >> 20,
        RSS_GROWTH_BOUND >> 20
    );

    // Meanwhile Alice chats as usual.
    let started = std::time::Instant::now();
    let message = alice.mls.encrypt(library, b"anyone reading?")?;
    let answer = alice.conn.call(Request::Send { group: library, message }).await?;
    assert!(matches!(answer, Ok(Response::Stored { .. })), "Alice's message is stored: {answer:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "and promptly ({:?})", started.elapsed());

    // Mallory reads at last: every request is answered, in order, with a full page.
    for want in sent {
        let (id, answer) = reader.next_answer().await?;
        assert_eq!(id, want, "answers in order");
        match answer {
            Ok(Response::Messages { messages, .. }) => assert_eq!(messages.len(), page, "a full page"),
            other => anyhow::bail!("a page of history, not {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_holds_at_most_32_connections() -> anyhow::Result<()> {
    let tmp = TempDir::new("connections-per-account");
    let node = Node::start(tmp.path(), &["--registration", "open", "--mdns", "false"])?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let bob = RawDevice::register(&node.url, "Bob", None).await?;
    // Alice's registration connection is her first; 31 more sign in.
    let mut held = Vec::new();
    for _ in 0..31 {
        held.push(sign_in(&node.url, &alice).await?);
    }
    // The 33rd is refused after its sign-in, with a reason, and closed.
    let mut extra = RawConn::open(&node.url).await?;
    let id = alice.device();
    let payload = veche_protocol::auth::sign_in_payload(&extra.hello.node_id, &extra.hello.challenge, &id, None);
    let signature = veche_protocol::auth::sign(&alice.key, &payload);
    extra
        .send(Request::SignIn { device: id, signature, binding: veche_protocol::auth::ChannelBinding::Unbound })
        .await?;
    let fatal = loop {
        let (id, answer) = extra.next_answer().await?;
        if id == u32::MAX {
            break answer.expect_err("a fatal frame");
        }
    };
    assert_eq!(fatal.code, ErrorCode::RateLimited);
    assert!(fatal.message.contains("32 connections"), "says why: {fatal}");
    assert!(extra.closed_within(Duration::from_secs(5)).await, "the 33rd connection is closed");

    // Her connections work, and Bob is not affected.
    assert!(alice.conn.call(Request::Me).await?.is_ok(), "her first connection still answers");
    assert!(held[30].call(Request::Me).await?.is_ok(), "her 32nd connection answers");
    sign_in(&node.url, &bob).await?;
    // Once one closes, a new one is let in.
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        if let Ok(conn) = sign_in(&node.url, &alice).await
            && conn_alive(conn).await.is_some()
        {
            again = Some(());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "after one of her connections closed, a new one signs in");
    Ok(())
}

/// The connection still answers a request (a refused one is closed right after its sign-in).
async fn conn_alive(mut conn: RawConn) -> Option<RawConn> {
    match conn.call(Request::Me).await {
        Ok(Ok(_)) => Some(conn),
        _ => None,
    }
}
