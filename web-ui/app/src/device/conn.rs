//! One WebSocket to the node, from the browser.
//!
//! The socket's callbacks put every [`ServerFrame`] after the Hello — answers (by request id),
//! events, the close notice — on the driver's bounded channel, tagged with the connection's
//! generation so that news from a replaced connection is ignored. If the driver falls more than
//! the channel's capacity behind, the connection is given up ([`Conn::overflowed`]): the sync
//! after the next connection catches up, as after the node's `Lagged`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, select};
use js_sys::{ArrayBuffer, Uint8Array};
use veche_protocol::wire::{ApiError, ClientFrame, Event, Hello, Request, Response, ServerFrame};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::sleep_ms;

/// A request without an answer this long gives the connection up.
pub const CALL_TIMEOUT_MS: u64 = 20_000;
const HELLO_TIMEOUT_MS: u32 = 10_000;
/// Frames the driver may fall behind by (one sync page of events, and more) before the
/// connection is given up.
pub const FRAMES: usize = 256;

/// What the connection tells the driver.
pub enum Incoming {
    Response { id: u32, result: Result<Response, ApiError> },
    Event(Event),
    Closed,
}

pub type Frames = mpsc::Sender<(u32, Incoming)>;

pub struct Conn {
    ws: WebSocket,
    overflowed: Rc<Cell<bool>>,
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

/// Puts a frame on the driver's channel; a full channel gives the connection up.
fn forward(frames: &mut Frames, overflowed: &Cell<bool>, generation: u32, news: Incoming) {
    if frames.try_send((generation, news)).is_err() {
        overflowed.set(true);
    }
}

impl Conn {
    /// Connects and waits for the node's Hello; what follows goes to `frames`.
    pub async fn open(url: &str, generation: u32, frames: Frames) -> Result<Conn, String> {
        let ws = WebSocket::new(url).map_err(|_| format!("cannot open {url}"))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let overflowed = Rc::new(Cell::new(false));
        let (hello_tx, hello_rx) = oneshot::channel::<Hello>();
        // Shared with the close callback, which drops it so a refused connection fails at once.
        let hello_tx = Rc::new(RefCell::new(Some(hello_tx)));
        let on_message = {
            let (mut frames, overflowed, hello_tx) = (frames.clone(), overflowed.clone(), hello_tx.clone());
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() else { return };
                let news = match ServerFrame::decode(&Uint8Array::new(&buffer).to_vec()) {
                    Ok(ServerFrame::Hello(hello)) => {
                        if let Some(tx) = hello_tx.borrow_mut().take() {
                            let _ = tx.send(hello);
                        }
                        return;
                    }
                    Ok(ServerFrame::Response { id, result }) => Incoming::Response { id, result },
                    Ok(ServerFrame::Event(event)) => Incoming::Event(event),
                    Ok(ServerFrame::Fatal(_)) | Err(_) => Incoming::Closed,
                };
                forward(&mut frames, &overflowed, generation, news);
            })
        };
        let on_close = {
            let (mut frames, overflowed) = (frames, overflowed.clone());
            Closure::<dyn FnMut(CloseEvent)>::new(move |_event: CloseEvent| {
                hello_tx.borrow_mut().take();
                forward(&mut frames, &overflowed, generation, Incoming::Closed);
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
        Ok(Conn { ws, overflowed, hello, _on_message: on_message, _on_close: on_close })
    }

    /// Sends a request under the driver's id; false if the socket would not take it.
    pub fn send(&self, id: u32, request: Request) -> bool {
        self.ws.send_with_u8_array(&ClientFrame { id, request }.encode()).is_ok()
    }

    /// Whether frames were lost because the driver fell too far behind.
    pub fn overflowed(&self) -> bool {
        self.overflowed.get()
    }
}
