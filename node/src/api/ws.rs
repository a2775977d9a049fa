//! One device connection.
//!
//! Two tasks per connection: this reader, which decodes frames and handles requests one at a time
//! (so a device's messages are ordered as it sent them; `Send`s already waiting on the socket are
//! handled together, in order, as one batch), and a sender, which owns the socket's
//! write half and merges responses with live events. Both queues are bounded, by bytes as well as
//! frames: responses waiting for the socket hold at most [`MAX_QUEUED_RESPONSE_BYTES`], and while
//! they do the reader reads no further request (a device that never reads stops being read: TCP
//! then stops it sending); live events beyond the hub's byte bound are dropped for that connection,
//! which is told `Lagged` and fetches them. The connection ends when the device closes, on a
//! protocol violation (after a `Fatal` frame), when sign-in takes too long, when the device has
//! read nothing for [`WRITE_STALL`], or when the node shuts down.

use super::ApiState;
use super::handlers::{self, Conn};
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket};
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use veche_protocol::federation::MAX_FORWARD_SENDS;
use veche_protocol::wire::{ApiError, ClientFrame, ErrorCode, Event, FrameError, Hello, Request, ServerFrame};

/// Largest WebSocket message read at all; larger ones close the connection.
pub const MAX_WS_MESSAGE: usize = 4 * veche_protocol::MAX_FRAME_BYTES;
/// Time a device has to sign in (or register): one round trip after its `Hello`.
pub const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest frame before sign-in: `SignIn`, `Register` and `InvitePreview` take a few hundred bytes.
/// A larger one is answered `TooLarge` and closes the connection.
const MAX_UNAUTHENTICATED_FRAME: usize = 8 * 1024;
/// Frames allowed before sign-in.
const MAX_UNAUTHENTICATED_FRAMES: u32 = 16;
/// Consecutive rate-limited requests before the connection is closed.
const MAX_RATE_LIMITED_IN_A_ROW: u32 = 2000;
/// Undecodable frames before the connection is closed.
const MAX_MALFORMED: u32 = 16;
/// Most bytes of messages gathered into one batch of Sends (well under a federation message).
const MAX_GATHERED_BYTES: usize = 4 * 1024 * 1024;
/// Most frames written before one flush.
const WRITE_BATCH: usize = 64;
/// Most bytes of responses queued for one connection's socket. Two of the largest responses (a
/// page of `Fetch`, `delivery::MAX_FETCH_BYTES`), so a device reading normally always has the next
/// page on its way while it takes in the last; a device that does not read holds 8 MiB of the
/// node's memory, not 256 pages (1 GiB) as when only frames were counted. A larger response
/// counts as the whole budget.
pub const MAX_QUEUED_RESPONSE_BYTES: usize = 2 * crate::service::delivery::MAX_FETCH_BYTES as usize;
/// A socket that takes no bytes for this long is given up. A phone on poor Wi-Fi (64 kB/s) takes
/// in a whole batch of the largest responses within it; a device that has gone away (or never
/// reads) no longer holds its connection, its queue, and one of the node's `MAX_CONNECTIONS`.
pub const WRITE_STALL: Duration = Duration::from_secs(120);

/// Token bucket: `rate` per second, bursts of `2 * rate`.
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Bucket { tokens: 2.0 * rate as f64, rate: rate as f64, last: Instant::now() }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(2.0 * self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Serves one WebSocket. `unauthenticated` is its place among its address's connections that have
/// not signed in: given up when it signs in. `exporter` is the TLS session's exporter, which a
/// native client's sign-in signature covers.
pub async fn serve(
    state: ApiState,
    socket: WebSocket,
    _permit: OwnedSemaphorePermit,
    mut unauthenticated: Option<super::Unauthenticated>,
    exporter: Option<[u8; veche_protocol::auth::TLS_EXPORTER_LEN]>,
) {
    state.node.metrics.connections_total.inc();
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<ServerFrame>(256);
    let (events_tx, events_rx) = oneshot::channel::<crate::hub::Subscriber>();
    // Bytes of responses the reader may still queue (see `respond`); the sender gives them back.
    let budget = Arc::new(Semaphore::new(MAX_QUEUED_RESPONSE_BYTES));
    let sender_budget = budget.clone();

    // Sender task: responses and (after sign-in) live events. Frames waiting in either queue are
    // written together and flushed once, so a burst costs one write, not one per frame.
    let sender = tokio::spawn(async move {
        let budget = sender_budget;
        // However it ends, a reader waiting for room in the queue is let go.
        let _close = CloseOnDrop(budget.clone());
        let mut events_rx = Some(events_rx);
        let mut subscriber: Option<crate::hub::Subscriber> = None;
        loop {
            let first = tokio::select! {
                frame = out_rx.recv() => match frame { Some(f) => Outgoing::Frame(f), None => break },
                sub = async { events_rx.as_mut().expect("guarded by the select condition").await }, if events_rx.is_some() => {
                    events_rx = None;
                    subscriber = sub.ok();
                    continue;
                }
                event = next_event(&mut subscriber) => match event { Some(bytes) => Outgoing::Encoded(bytes), None => continue },
            };
            let mut fatal = false;
            let mut next = Some(first);
            let mut written = 0;
            while let Some(outgoing) = next.take() {
                let (bytes, charged) = match outgoing {
                    Outgoing::Frame(frame) => {
                        fatal |= matches!(frame, ServerFrame::Fatal(_));
                        let response = matches!(frame, ServerFrame::Response { .. });
                        let bytes = Bytes::from(frame.encode());
                        let charged = if response { charge(bytes.len()) } else { 0 };
                        (bytes, charged)
                    }
                    Outgoing::Encoded(bytes) => (bytes, 0),
                };
                if !matches!(tokio::time::timeout(WRITE_STALL, sink.feed(Message::Binary(bytes))).await, Ok(Ok(()))) {
                    return;
                }
                // The frame is in the socket's write buffer (bounded: writing more waits for it).
                budget.add_permits(charged);
                written += 1;
                if fatal || written >= WRITE_BATCH {
                    break;
                }
                next = match out_rx.try_recv() {
                    Ok(frame) => Some(Outgoing::Frame(frame)),
                    Err(_) => subscriber.as_mut().and_then(|s| s.try_recv()).map(Outgoing::Encoded),
                };
            }
            if let Some(sub) = &subscriber
                && sub.lagged.swap(false, Ordering::Relaxed)
                && sink.feed(Message::Binary(ServerFrame::Event(Event::Lagged).encode().into())).await.is_err()
            {
                break;
            }
            if !matches!(tokio::time::timeout(WRITE_STALL, sink.flush()).await, Ok(Ok(()))) {
                tracing::debug!("a device read nothing for {} s: connection given up", WRITE_STALL.as_secs());
                return;
            }
            if fatal {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let mut challenge = [0u8; veche_protocol::auth::CHALLENGE_LEN];
    if getrandom::fill(&mut challenge).is_err() {
        return;
    }
    let info = &state.node.info;
    let hello = Hello {
        protocol: veche_protocol::PROTOCOL_VERSION,
        node_id: info.node_id.clone(),
        node_name: info.name.clone(),
        registration: info.registration,
        challenge,
    };
    let mut conn = Conn::new(state.node.clone(), challenge, exporter).with_outbox(out_tx.clone());
    let _ = out_tx.send(ServerFrame::Hello(hello)).await;
    let mut events_tx = Some(events_tx);
    let mut subscription: Option<u64> = None;
    let mut bucket = Bucket::new(state.rate_limit);
    let (mut unauthenticated_frames, mut limited_in_a_row, mut malformed) = (0u32, 0u32, 0u32);
    let deadline = tokio::time::Instant::now() + SIGN_IN_TIMEOUT;
    let mut shutdown = state.shutdown.clone();
    // A frame read while gathering Sends that did not join them: handled next.
    let mut held = None;

    loop {
        let signed_in = conn.session().is_some();
        // A guest's connection lasts until its guest time is over.
        let guest_over = conn.guest_until_ms().map(|until| {
            let left = until.saturating_sub(crate::store::records::now_ms());
            tokio::time::Instant::now() + std::time::Duration::from_millis(left)
        });
        let message = if let Some(m) = held.take() {
            m
        } else {
            tokio::select! {
            m = stream.next() => m,
            _ = tokio::time::sleep_until(deadline), if !signed_in => {
                let _ = out_tx.send(fatal(ErrorCode::Unauthenticated, "sign in within 5 seconds")).await;
                break;
            }
            _ = tokio::time::sleep_until(guest_over.unwrap_or(deadline)), if guest_over.is_some() => {
                tracing::debug!("a guest's time is over: closing its connection");
                let _ = out_tx.send(fatal(ErrorCode::Forbidden, "this guest pass was for a meeting that is over")).await;
                break;
            }
            // The flag only ever turns true, so any change means shutdown.
            _ = shutdown.changed() => {
                let _ = out_tx.send(fatal(ErrorCode::Internal, "the node is shutting down")).await;
                break;
            }
            }
        };
        let bytes = match message {
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Text(_))) => {
                let _ = out_tx.send(fatal(ErrorCode::Malformed, "frames are binary (postcard), not text")).await;
                break;
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue, // ping/pong are answered by the library
            Some(Err(e)) => {
                tracing::debug!(error = %e, "websocket error");
                break;
            }
        };
        if conn.session().is_none() {
            unauthenticated_frames += 1;
            if unauthenticated_frames > MAX_UNAUTHENTICATED_FRAMES {
                let _ = out_tx.send(fatal(ErrorCode::Unauthenticated, "too many requests before sign-in")).await;
                break;
            }
            if bytes.len() > MAX_UNAUTHENTICATED_FRAME {
                state.node.metrics.requests_refused.inc();
                // The request is answered (by its id, when it has one), then the connection closes.
                let id = postcard::take_from_bytes::<u32>(&bytes).map(|(id, _)| id).unwrap_or(0);
                let message = "before sign-in a frame is at most 8 KiB";
                let error = ApiError::new(ErrorCode::TooLarge, message);
                respond(&out_tx, &budget, ServerFrame::Response { id, result: Err(error) }).await;
                let _ = out_tx.send(fatal(ErrorCode::TooLarge, message)).await;
                break;
            }
        }
        let frame = match ClientFrame::decode(&bytes) {
            Ok(frame) => frame,
            Err(e) => {
                malformed += 1;
                let id = postcard::take_from_bytes::<u32>(&bytes).map(|(id, _)| id).unwrap_or(0);
                let code = match e {
                    FrameError::TooLarge { .. } => ErrorCode::TooLarge,
                    FrameError::Malformed(_) => ErrorCode::Malformed,
                };
                state.node.metrics.requests_refused.inc();
                if malformed > MAX_MALFORMED {
                    let _ = out_tx.send(fatal(code, "too many malformed frames")).await;
                    break;
                }
                let response = ServerFrame::Response { id, result: Err(ApiError::new(code, e.to_string())) };
                if !respond(&out_tx, &budget, response).await {
                    break;
                }
                continue;
            }
        };
        state.node.metrics.requests.inc();
        if !bucket.take() {
            limited_in_a_row += 1;
            state.node.metrics.rate_limited.inc();
            state.node.metrics.requests_refused.inc();
            if limited_in_a_row > MAX_RATE_LIMITED_IN_A_ROW {
                let _ = out_tx.send(fatal(ErrorCode::RateLimited, "flooding; connection closed")).await;
                break;
            }
            let err = ApiError::new(ErrorCode::RateLimited, "too many requests; slow down");
            if !respond(&out_tx, &budget, ServerFrame::Response { id: frame.id, result: Err(err) }).await {
                break;
            }
            continue;
        }
        limited_in_a_row = 0;
        let frame = match frame {
            ClientFrame { id: first, request: Request::Send { group, message } } if signed_in => {
                // Sends already waiting on the socket join this one (same chat, in order, rate
                // limited one by one): stored in one transaction, or forwarded to the chat's home
                // node in one round trip.
                let mut ids = vec![first];
                let mut messages = vec![message];
                let mut bytes = messages[0].len();
                while messages.len() < MAX_FORWARD_SENDS {
                    let Some(next) = stream.next().now_or_never() else { break };
                    let joining = match &next {
                        Some(Ok(Message::Binary(b))) => match ClientFrame::decode(b) {
                            Ok(ClientFrame { id, request: Request::Send { group: g, message } })
                                if g == group && bytes + message.len() <= MAX_GATHERED_BYTES =>
                            {
                                Some((id, message))
                            }
                            _ => None,
                        },
                        _ => None,
                    };
                    match joining {
                        Some((id, message)) if bucket.take() => {
                            state.node.metrics.requests.inc();
                            bytes += message.len();
                            ids.push(id);
                            messages.push(message);
                        }
                        _ => {
                            held = Some(next);
                            break;
                        }
                    }
                }
                let results = handlers::handle_sends(&mut conn, group, messages).await;
                let mut closed = false;
                for (id, result) in ids.into_iter().zip(results) {
                    if result.is_err() {
                        state.node.metrics.requests_refused.inc();
                    }
                    closed |= !respond(&out_tx, &budget, ServerFrame::Response { id, result }).await;
                }
                if closed {
                    break;
                }
                continue;
            }
            other => other,
        };
        let was_signed_in = conn.session().is_some();
        let outcome = handlers::handle(&mut conn, frame.request).await;
        if outcome.result.is_err() {
            state.node.metrics.requests_refused.inc();
        }
        if !respond(&out_tx, &budget, ServerFrame::Response { id: frame.id, result: outcome.result }).await {
            break;
        }
        conn.after_response().await;
        if let Some(reason) = outcome.close {
            let _ = out_tx.send(ServerFrame::Fatal(reason)).await;
            break;
        }
        if !was_signed_in
            && let Some(session) = conn.session()
            && let Some(tx) = events_tx.take()
        {
            // Signed in: no longer counted against its address.
            unauthenticated.take();
            let Some(subscriber) = state.node.hub.subscribe(session.account) else {
                state.node.metrics.requests_refused.inc();
                let message = format!(
                    "this account already has {} connections to this node; close some",
                    crate::hub::MAX_CONNECTIONS_PER_ACCOUNT
                );
                let _ = out_tx.send(fatal(ErrorCode::RateLimited, &message)).await;
                break;
            };
            subscription = Some(subscriber.id);
            let _ = tx.send(subscriber);
        }
    }
    conn.leave_call();
    let session = conn.session();
    // The connection's own handle on its outgoing queue goes too, so the sender task ends.
    drop(conn);
    drop(out_tx);
    let _ = sender.await;
    // Unsubscribe here, whatever became of the sender task, so no slot outlives its connection.
    if let (Some(id), Some(session)) = (subscription, session) {
        state.node.hub.unsubscribe(&session.account, id);
    }
}

/// Something for the sender task to write.
enum Outgoing {
    Frame(ServerFrame),
    Encoded(Bytes),
}

async fn next_event(subscriber: &mut Option<crate::hub::Subscriber>) -> Option<Bytes> {
    match subscriber {
        Some(sub) => sub.recv().await,
        None => std::future::pending().await,
    }
}

/// The bytes of the response budget a response of `len` bytes takes (at most all of it).
fn charge(len: usize) -> usize {
    len.min(MAX_QUEUED_RESPONSE_BYTES)
}

/// Queues a response once the connection's queued responses leave room for it: until then the
/// reader waits, reading no further request. False when the connection is closing.
async fn respond(out_tx: &mpsc::Sender<ServerFrame>, budget: &Semaphore, frame: ServerFrame) -> bool {
    let Ok(n) = u32::try_from(charge(frame.encoded_len())) else { return false };
    match budget.acquire_many(n).await {
        // Given back by the sender once written.
        Ok(permit) => permit.forget(),
        Err(_) => return false,
    }
    out_tx.send(frame).await.is_ok()
}

/// Closes the response budget when the sender task ends, so a reader waiting on it stops.
struct CloseOnDrop(Arc<Semaphore>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn fatal(code: ErrorCode, message: &str) -> ServerFrame {
    ServerFrame::Fatal(ApiError::new(code, message))
}
