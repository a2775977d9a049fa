//! Scenario: strangers open WebSockets to a node and never sign in. A frame over 8 KiB before
//! sign-in closes the socket with a `Fatal` that says why; a socket that says nothing is closed
//! after about 5 s; of 1,000 sockets one address opens and never signs in, 64 are held and the
//! rest refused (HTTP 503), while a
//! member from another address registers and chats, and a fresh connection from the same address
//! is let in once the others are gone.

use std::net::IpAddr;
use std::time::{Duration, Instant};
use veche_protocol::ids::GroupId;
use veche_protocol::wire::{ClientFrame, ErrorCode, Request, Response, ServerFrame};
use veche_tests::raw::{RawConn, RawDevice};
use veche_tests::{Node, TempDir};

/// The node's cap on sockets from one address that have not signed in (`api/mod.rs`).
const PER_ADDRESS: usize = 64;
/// Sockets the stranger tries to open.
const STRANGER_SOCKETS: usize = 1000;

fn big_send(id: u32, bytes: usize) -> Vec<u8> {
    ClientFrame { id, request: Request::Send { group: GroupId([0; 16]), message: vec![0; bytes] } }.encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_frame_before_sign_in_closes_the_socket() -> anyhow::Result<()> {
    let tmp = TempDir::new("unauth-large-frame");
    let node = Node::start(tmp.path(), &["--registration", "open", "--mdns", "false"])?;

    // Just under 8 KiB: an ordinary refusal, the socket stays.
    let mut conn = RawConn::open(&node.url).await?;
    conn.send_bytes(big_send(3, 7 * 1024)).await?;
    let (id, answer) = conn.next_answer().await?;
    assert_eq!((id, answer.map_err(|e| e.code).err()), (3, Some(ErrorCode::Unauthenticated)));
    assert!(!conn.closed_within(Duration::from_millis(500)).await, "a 7 KiB frame does not close the socket");

    // 9 KiB: answered TooLarge, then a Fatal, then closed.
    let mut conn = RawConn::open(&node.url).await?;
    conn.send_bytes(big_send(5, 9 * 1024)).await?;
    let fatal = conn
        .until(Duration::from_secs(5), |frame| match frame {
            ServerFrame::Fatal(e) => Some(e),
            _ => None,
        })
        .await?;
    assert_eq!(fatal.code, ErrorCode::TooLarge, "{fatal}");
    assert!(fatal.message.contains("8 KiB"), "{fatal}");
    assert!(conn.closed_within(Duration::from_secs(5)).await, "the socket is closed");

    // The node keeps serving.
    RawDevice::register(&node.url, "Alice", None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_closed_after_five_seconds() -> anyhow::Result<()> {
    let tmp = TempDir::new("unauth-silent");
    let node = Node::start(tmp.path(), &["--registration", "open", "--mdns", "false"])?;
    let start = Instant::now();
    let mut conn = RawConn::open(&node.url).await?;
    let fatal = conn
        .until(Duration::from_secs(10), |frame| match frame {
            ServerFrame::Fatal(e) => Some(e),
            _ => None,
        })
        .await?;
    let waited = start.elapsed();
    assert_eq!(fatal.code, ErrorCode::Unauthenticated, "{fatal}");
    assert!(waited >= Duration::from_secs(4) && waited <= Duration::from_secs(8), "closed after {waited:?}");
    assert!(conn.closed_within(Duration::from_secs(2)).await, "the socket is closed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_only_so_many_sockets_before_sign_in() -> anyhow::Result<()> {
    let tmp = TempDir::new("unauth-per-address");
    let node = Node::start(tmp.path(), &["--registration", "open", "--mdns", "false"])?;
    let stranger: IpAddr = "127.0.0.7".parse()?;
    let member: IpAddr = "127.0.0.8".parse()?;

    // A stranger opens 1,000 sockets and never signs in; meanwhile a member from another address
    // registers and chats.
    let strangers = async {
        let (mut held, mut refused) = (Vec::new(), 0);
        for _ in 0..STRANGER_SOCKETS {
            match RawConn::open_from(&node.url, stranger).await {
                Ok(conn) => held.push(conn),
                Err(e) => {
                    assert!(e.to_string().contains("503"), "the address's sockets over the cap are refused: {e}");
                    refused += 1;
                }
            }
        }
        (held, refused)
    };
    let member = async {
        let started = Instant::now();
        let mut alice = RawDevice::register_on(RawConn::open_from(&node.url, member).await?, "Alice", None).await?;
        let group = GroupId([0x51; 16]);
        alice.create_chat(group, "Notes").await?;
        for i in 0..20 {
            let message = alice.mls.encrypt(group, format!("still here {i}").as_bytes())?;
            let stored = alice.conn.call(Request::Send { group, message }).await?;
            assert!(matches!(stored, Ok(Response::Stored { .. })), "{stored:?}");
        }
        anyhow::Ok((started.elapsed(), alice.account()))
    };
    let ((mut held, refused), took) = tokio::join!(strangers, member);
    let (took, alice) = took?;
    assert_eq!(held.len(), PER_ADDRESS, "the address holds the cap's worth of sockets");
    assert_eq!(refused, STRANGER_SOCKETS - PER_ADDRESS);
    assert!(took < Duration::from_secs(10), "the member registered and sent 20 messages in {took:?}");

    // The held sockets are let go (the stranger closes some; the node the others after the
    // sign-in deadline): the address may connect again, and a device there signs in.
    held.truncate(PER_ADDRESS / 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    let bob = loop {
        match RawConn::open_from(&node.url, stranger).await {
            Ok(conn) => break RawDevice::register_on(conn, "Bob", None).await?,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => anyhow::bail!("the address was never let in again: {e}"),
        }
    };
    assert_ne!(bob.account(), alice);
    drop(held);
    Ok(())
}
