//! One authenticated WebSocket to the node, from the browser.
//!
//! The socket's callbacks route each [`ServerFrame`] to its place: responses to the waiting
//! call (by request id), events and the close notice to the device task's channel. A call that
//! gets no answer in [`CALL_TIMEOUT_MS`] fails as a transport error.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, select};
use js_sys::{ArrayBuffer, Uint8Array};
use veche_protocol::wire::{ApiError, ClientFrame, Event, Hello, Request, Response, ServerFrame};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::sleep_ms;

pub const CALL_TIMEOUT_MS: u32 = 20_000;
const HELLO_TIMEOUT_MS: u32 = 10_000;

/// What the device task hears from the connection besides responses, tagged with the
/// connection's generation so news from a replaced connection is ignored.
pub enum Incoming {
    Event(Event),
    Closed,
}

#[derive(Debug)]
pub enum CallError {
    /// The node refused the request.
    Api(ApiError),
    /// No answer: the connection is gone or timed out.
    Transport(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Api(e) => write!(f, "{}", e.message),
            CallError::Transport(e) => write!(f, "{e}"),
        }
    }
}

type Pending = Rc<RefCell<HashMap<u32, oneshot::Sender<Result<Response, ApiError>>>>>;

pub struct Conn {
    ws: WebSocket,
    pending: Pending,
    next_id: Cell<u32>,
    pub hello: Hello,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

/// Unhooks and closes a socket given up before its Hello (timed out, or the attempt dropped), so
/// it never calls into the callbacks dropped with the attempt.
struct Unhook(Option<WebSocket>);

impl Drop for Unhook {
    fn drop(&mut self) {
        if let Some(ws) = self.0.take() {
            ws.set_onmessage(None);
            ws.set_onclose(None);
            let _ = ws.close();
        }
    }
}

/// The WebSocket URL of the node that served this page.
pub fn node_ws_url() -> String {
    let location = web_sys::window().map(|w| w.location());
    let protocol = location.as_ref().and_then(|l| l.protocol().ok()).unwrap_or_default();
    let host = location.as_ref().and_then(|l| l.host().ok()).unwrap_or_default();
    let scheme = if protocol == "https:" { "wss" } else { "ws" };
    format!("{scheme}://{host}/api/ws")
}

impl Conn {
    /// Connects and waits for the node's Hello. Events go to `events`.
    pub async fn open(
        url: &str,
        generation: u32,
        events: mpsc::UnboundedSender<(u32, Incoming)>,
    ) -> Result<Conn, String> {
        let ws = WebSocket::new(url).map_err(|_| format!("cannot open {url}"))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let pending: Pending = Rc::default();
        let (hello_tx, hello_rx) = oneshot::channel::<Hello>();
        // Shared with the close callback, which drops it so a refused connection fails at once.
        let hello_tx = Rc::new(RefCell::new(Some(hello_tx)));
        let on_message = {
            let pending = pending.clone();
            let events = events.clone();
            let hello_tx = hello_tx.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() else { return };
                let bytes = Uint8Array::new(&buffer).to_vec();
                match ServerFrame::decode(&bytes) {
                    Ok(ServerFrame::Hello(hello)) => {
                        if let Some(tx) = hello_tx.borrow_mut().take() {
                            let _ = tx.send(hello);
                        }
                    }
                    Ok(ServerFrame::Response { id, result }) => {
                        if let Some(tx) = pending.borrow_mut().remove(&id) {
                            let _ = tx.send(result);
                        }
                    }
                    Ok(ServerFrame::Event(event)) => {
                        let _ = events.unbounded_send((generation, Incoming::Event(event)));
                    }
                    Ok(ServerFrame::Fatal(_)) => {
                        let _ = events.unbounded_send((generation, Incoming::Closed));
                    }
                    Err(_) => {
                        let _ = events.unbounded_send((generation, Incoming::Closed));
                    }
                }
            })
        };
        let on_close = {
            let pending = pending.clone();
            Closure::<dyn FnMut(CloseEvent)>::new(move |_event: CloseEvent| {
                // Dropping the senders fails every waiting call (and the wait for Hello).
                pending.borrow_mut().clear();
                hello_tx.borrow_mut().take();
                let _ = events.unbounded_send((generation, Incoming::Closed));
            })
        };
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        let mut unhook = Unhook(Some(ws.clone()));
        let hello = select! {
            hello = hello_rx.fuse() => hello.map_err(|_| "the node closed the connection".to_string())?,
            _ = sleep_ms(HELLO_TIMEOUT_MS).fuse() => return Err("the node did not answer".into()),
        };
        unhook.0 = None;
        Ok(Conn { ws, pending, next_id: Cell::new(1), hello, _on_message: on_message, _on_close: on_close })
    }

    /// Sends a request and waits for its answer.
    pub async fn call(&self, request: Request) -> Result<Response, CallError> {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        let frame = ClientFrame { id, request }.encode();
        if self.ws.send_with_u8_array(&frame).is_err() {
            self.pending.borrow_mut().remove(&id);
            return Err(CallError::Transport("not connected".into()));
        }
        let result = select! {
            answer = rx.fuse() => answer,
            _ = sleep_ms(CALL_TIMEOUT_MS).fuse() => {
                self.pending.borrow_mut().remove(&id);
                return Err(CallError::Transport("the node did not answer in time".into()));
            }
        };
        match result {
            Ok(result) => result.map_err(CallError::Api),
            Err(_) => Err(CallError::Transport("connection lost".into())),
        }
    }
}
