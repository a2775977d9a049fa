//! The browser's member device: a thin driver of [`veche_device::Device`], which holds every
//! rule a member device follows (sign-in, sync, the outbox, commits, joins, leaves).
//!
//! One task ([`driver`]) owns the core, the WebSocket ([`conn`]) and IndexedDB ([`store`]): it
//! loads the stored pairs into the core, then does what the core asks (writes, requests,
//! timers) and hands it what happens (answers, events, the member's commands). The [`bridge`]
//! turns the core's `DeviceEvent`s into the views' signals ([`publish`] copies a chat's state).
//! Views send [`Cmd`]s through a [`DeviceHandle`] and get answers on oneshot channels. What is
//! not a device rule stays here: invite links and meetings ([`meetings`]) and recovery files
//! ([`recovery`]). Calls and the whiteboard are [`crate::media`]'s: the driver hands it the
//! views' call commands and the core's call events, and serves it requests through
//! [`crate::media::signaling::Driver`].

mod bridge;
mod commands;
pub mod conn;
mod driver;
mod meetings;
mod publish;
mod recovery;
mod store;

use std::collections::{BTreeMap, HashMap, VecDeque};

use futures::channel::{mpsc, oneshot};
use futures::future::{Fuse, LocalBoxFuture};
use leptos::prelude::*;
use veche_device::{CommandId, DeviceError, Outcome};
use veche_protocol::ids::{AccountId, GroupId, InviteId, Retention, Role};
use veche_protocol::wire::{InviteInfo, InvitePreview, Request, Response};
use wasm_bindgen::prelude::*;

use crate::state::AppState;
use conn::{Conn, Incoming};

#[wasm_bindgen(module = "/js/store.js")]
extern "C" {
    #[wasm_bindgen(js_name = sleep)]
    fn js_sleep(ms: u32) -> js_sys::Promise;
}

#[wasm_bindgen(module = "/js/node.js")]
extern "C" {
    #[wasm_bindgen(js_name = tlsFingerprint)]
    fn js_tls_fingerprint() -> js_sys::Promise;
}

/// The fingerprint of the node's TLS trust anchor (`f=` in the links this page makes), from its
/// `/healthz`: asked once, and again next time when the node did not answer. `None` when the node
/// has none (`--tls off`, a publicly trusted certificate) or is unreachable.
pub async fn node_fingerprint(ui: AppState) -> Option<[u8; 32]> {
    if let Some(known) = ui.tls_fingerprint.get_untracked() {
        return known;
    }
    let answer = wasm_bindgen_futures::JsFuture::from(js_tls_fingerprint()).await.ok()?;
    // undefined: no answer; "": none.
    let text = answer.as_string()?;
    let fingerprint = veche_protocol::link::parse_fingerprint(&text);
    ui.tls_fingerprint.set(Some(fingerprint));
    fingerprint
}

pub async fn sleep_ms(ms: u32) {
    let _ = wasm_bindgen_futures::JsFuture::from(js_sleep(ms)).await;
}

pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// `scheme://host[:port]` of the page, the base of invite links this browser makes.
pub fn page_origin() -> String {
    web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default()
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

/// What the views ask of the device.
pub enum Cmd {
    Register {
        name: String,
        link: Option<String>,
        reply: Reply<()>,
    },
    Preview {
        link: String,
        reply: Reply<InvitePreview>,
    },
    Join {
        link: String,
        reply: Reply<GroupId>,
    },
    CreateGroup {
        name: String,
        description: String,
        reply: Reply<GroupId>,
    },
    /// Creates a meeting: its chat, then the meeting with its link (posted in the chat).
    CreateMeeting {
        settings: veche_protocol::meeting::MeetingSettings,
        reply: Reply<GroupId>,
    },
    UpdateChat {
        group: GroupId,
        name: String,
        description: String,
        reply: Reply<()>,
    },
    Send {
        group: GroupId,
        text: String,
    },
    Retry {
        group: GroupId,
        outbox_id: u64,
    },
    Discard {
        group: GroupId,
        outbox_id: u64,
    },
    Seen {
        group: GroupId,
    },
    CreateInvite {
        group: GroupId,
        max_uses: Option<u32>,
        expires_in_secs: Option<u64>,
        reply: Reply<String>,
    },
    Invites {
        group: GroupId,
        reply: Reply<Vec<InviteInfo>>,
    },
    RevokeInvite {
        invite: InviteId,
        reply: Reply<()>,
    },
    DirectChat {
        member: AccountId,
        reply: Reply<GroupId>,
    },
    Remove {
        group: GroupId,
        member: AccountId,
        reply: Reply<()>,
    },
    SetRole {
        group: GroupId,
        member: AccountId,
        role: Role,
        reply: Reply<()>,
    },
    Leave {
        group: GroupId,
        reply: Reply<()>,
    },
    SetRetention {
        group: GroupId,
        retention: Retention,
        reply: Reply<()>,
    },
    KeepHistory {
        group: GroupId,
        keep: bool,
    },
    Reconnect,
    /// Joins a chat's call with the page's SDP offer (`media::call::start_media`).
    JoinCall {
        group: GroupId,
        offer: String,
        reply: Reply<()>,
    },
    LeaveCall,
    /// Ends the call for everyone (its whiteboard saved in the chat first).
    EndCall {
        reply: Reply<()>,
    },
    /// A plain request whose answer the view handles (node administration).
    Call {
        request: Request,
        reply: Reply<Response>,
    },
    /// The sealed recovery file of this device.
    Export {
        passphrase: String,
        reply: Reply<Vec<u8>>,
    },
    /// Restores a device from a recovery file (before registering); the page then reloads.
    Import {
        file: Vec<u8>,
        passphrase: String,
        reply: Reply<()>,
    },
}

/// Commands the views may have sent before the device task takes them. Views that wait for an
/// answer wait for room too; the few fire-and-forget ones (a message, a seen mark) that find the
/// channel full are sent from a task of their own.
const COMMANDS: usize = 64;

/// The views' way to the device task.
#[derive(Clone)]
pub struct DeviceHandle(mpsc::Sender<Cmd>);

impl DeviceHandle {
    pub fn send(&self, cmd: Cmd) {
        let mut tx = self.0.clone();
        if let Err(e) = tx.try_send(cmd)
            && e.is_full()
        {
            let cmd = e.into_inner();
            wasm_bindgen_futures::spawn_local(async move {
                let _ = futures::SinkExt::send(&mut tx, cmd).await;
            });
        }
    }

    /// Sends a command made with a reply channel and waits for the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        let _ = futures::SinkExt::send(&mut self.0.clone(), make(tx)).await;
        rx.await.unwrap_or_else(|_| Err("@err-device-stopped".into()))
    }
}

/// The handle for the views and the device task to spawn (once this tab holds the device lock).
pub fn create(ui: AppState) -> (DeviceHandle, impl std::future::Future<Output = ()>) {
    let (tx, rx) = mpsc::channel(COMMANDS);
    (DeviceHandle(tx), driver::run(ui, rx))
}

/// The member-facing text of an error: `@<message id>` (and `|<detail>`) the views translate.
fn api_message(e: DeviceError) -> String {
    match e.detail() {
        Some(detail) => format!("@{}|{detail}", e.key()),
        None => format!("@{}", e.key()),
    }
}

/// Who waits for a command the core runs.
enum Waiter {
    /// Nobody: the outcome is dropped.
    Silent,
    /// Nobody, but a failure is told (unless it is only that the device is offline: the
    /// message stays in the outbox).
    Toast,
    Unit(Reply<()>),
    Group(Reply<GroupId>),
    Preview(Reply<InvitePreview>),
    Response(Reply<Response>),
    Invites(Reply<Vec<InviteInfo>>),
    /// The device registered: the views move on.
    Registered(Reply<()>),
    /// A command the driver itself waits for ([`Device::run`]).
    Driver,
}

/// Work for the driver after the core's events, done outside the event (it may wait for the node).
enum Later {
    /// A call event for the media layer ([`crate::media::signaling::event`]), in order.
    Call(veche_protocol::wire::Event),
    RefreshMeetings,
}

type Opening = LocalBoxFuture<'static, Result<Conn, String>>;

/// The device task's state.
struct Device {
    ui: AppState,
    core: veche_device::Device,
    cmds: mpsc::Receiver<Cmd>,
    conn: Option<Conn>,
    /// Bumped whenever a connection is replaced: news of older ones is ignored.
    generation: u32,
    frames_tx: conn::Frames,
    frames: mpsc::Receiver<(u32, Incoming)>,
    opening: std::pin::Pin<Box<Fuse<Opening>>>,
    opening_generation: u32,
    backoff_ms: u32,
    /// Requests on the wire (the core's ids) and when they time out.
    deadlines: BTreeMap<u64, u64>,
    /// When the core wants `handle_timeout`.
    timer: Option<u64>,
    waiters: HashMap<CommandId, Waiter>,
    /// Results of the commands the driver waits for.
    done: HashMap<CommandId, Result<Outcome, DeviceError>>,
    later: VecDeque<Later>,
    /// The call glue's state ([`crate::media::signaling`]).
    calls: crate::media::signaling::Calls,
}
