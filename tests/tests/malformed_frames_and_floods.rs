//! Scenario: a device sends garbage, truncated, text, oversized and premature frames, and floods
//! the node. Each gets a clear error code; the connection is closed where the device broke the
//! protocol; the node never panics and keeps serving a well-behaved member throughout.

use std::time::Duration;
use veche_protocol::wire::{ClientFrame, ErrorCode, Request};
use veche_tests::raw::{RawConn, RawDevice};
use veche_tests::{Node, TempDir};

fn code(answer: &veche_tests::raw::Answer) -> Option<ErrorCode> {
    answer.as_ref().err().map(|e| e.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_clear_errors_and_the_node_keeps_serving() -> anyhow::Result<()> {
    let tmp = TempDir::new("frames");
    let node = Node::start(tmp.path(), &["--registration", "open", "--rate-limit", "200"])?;
    let mut good = RawDevice::register(&node.url, "Good", None).await?;

    // Garbage and truncated frames: Malformed, connection stays usable.
    let mut conn = RawConn::open(&node.url).await?;
    conn.send_bytes(vec![7, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).await?;
    let (id, answer) = conn.next_answer().await?;
    assert_eq!((id, code(&answer)), (7, Some(ErrorCode::Malformed)), "garbage names its request id when it can");
    let frame = ClientFrame {
        id: 9,
        request: Request::InvitePreview {
            token: veche_protocol::wire::InviteToken { invite: veche_protocol::ids::InviteId([1; 8]), secret: [2; 32] },
        },
    }
    .encode();
    conn.send_bytes(frame[..frame.len() / 2].to_vec()).await?;
    assert_eq!(code(&conn.next_answer().await?.1), Some(ErrorCode::Malformed), "truncated frame");
    // A request before sign-in.
    assert_eq!(code(&conn.call(Request::Chats).await?), Some(ErrorCode::Unauthenticated));
    // Oversized frame: refused by size, with its id.
    let mut big = ClientFrame {
        id: 11,
        request: Request::Send { group: veche_protocol::ids::GroupId([0; 16]), message: vec![0; 300_000] },
    }
    .encode();
    big.truncate(300_000);
    conn.send_bytes(big).await?;
    let (id, answer) = conn.next_answer().await?;
    assert_eq!((id, code(&answer)), (11, Some(ErrorCode::TooLarge)));
    // Far beyond the WebSocket limit: the connection is closed.
    conn.send_bytes(vec![0; 2 * 1024 * 1024]).await.ok();
    assert!(conn.closed_within(Duration::from_secs(5)).await, "a 2 MiB frame closes the connection");

    // Text frames are a protocol violation: Fatal, then closed.
    let mut conn = RawConn::open(&node.url).await?;
    conn.send_text("{\"hello\": 1}").await?;
    assert_eq!(code(&conn.next_answer().await?.1), Some(ErrorCode::Malformed));
    assert!(conn.closed_within(Duration::from_secs(5)).await);

    // Too many frames without signing in: closed.
    let mut conn = RawConn::open(&node.url).await?;
    for _ in 0..20 {
        // The node may cut us off before all 20 are written.
        if conn.send(Request::Me).await.is_err() {
            break;
        }
    }
    assert!(conn.closed_within(Duration::from_secs(5)).await, "unauthenticated chatter is cut off");

    // A flood from a signed-in device: rate-limited, then disconnected; others unaffected.
    let mut flooder = RawDevice::register(&node.url, "Flooder", None).await?;
    for _ in 0..3000 {
        if flooder.conn.send(Request::Me).await.is_err() {
            break;
        }
    }
    let mut limited = 0;
    let mut ok = 0;
    while let Ok(Ok((_, answer))) = tokio::time::timeout(Duration::from_secs(5), flooder.conn.next_answer()).await {
        match answer {
            Ok(_) => ok += 1,
            Err(e) if e.code == ErrorCode::RateLimited => limited += 1,
            Err(e) => panic!("unexpected error during flood: {e}"),
        }
        if ok + limited >= 3000 {
            break;
        }
    }
    assert!((200..=1000).contains(&ok), "the burst allowance was served ({ok})");
    assert!(limited > 1000, "the rest was rate-limited ({limited})");
    let after = good.conn.call(Request::Me).await?;
    assert!(after.is_ok(), "a well-behaved member is still served: {after:?}");
    node.http_get("/healthz")?;
    let metrics = node.http_get("/metrics")?;
    assert!(metrics.lines().any(|l| l.starts_with("veche_rate_limited_total ") && !l.ends_with(" 0")), "{metrics}");
    assert!(!node.log().contains("panicked"), "the node never panicked");
    Ok(())
}
