//! The browser's member device: one task owns the MLS client, the store and the connection.
//!
//! Views send [`Cmd`]s through a [`DeviceHandle`] and get answers on oneshot channels; the task
//! publishes what changed into the [`AppState`] signals. The rules for keeping the local MLS
//! state in step with the node's log are those of the native client (`node/src/client/session.rs`):
//! persist before anything leaves the device, process the log strictly in order, retry on
//! `StaleEpoch`, keep what the node may still store.
//!
//! This file holds the task, the commands and the connection; the operations are split by what
//! they do: `onboarding` (register, previews, recovery), `sync` (following the node's log),
//! `send` (outbox and commits), `chats` (create, join, direct chats, leave), `publish` (state to
//! signals), on top of `store` (IndexedDB) and `conn` (the WebSocket).

pub mod call;
mod chats;
pub mod conn;
mod meetings;
mod onboarding;
mod publish;
mod send;
pub mod store;
mod sync;
pub mod tiles;
pub mod whiteboard;

use futures::channel::{mpsc, oneshot};
use futures::future::{Fuse, FusedFuture, LocalBoxFuture};
use futures::{FutureExt, StreamExt, select};
use leptos::prelude::*;
use veche_mls::{CommitBundle, ProcessError, Processed};
use veche_protocol::content::AppMessage;
use veche_protocol::ids::{AccountId, ChatKind, GroupId, InviteId, Retention, Role};
use veche_protocol::link::InviteLink;
use veche_protocol::wire::{
    ChatInfo, Delivered, EntryKind, ErrorCode, Event, InviteInfo, InvitePreview, InviteToken, Request, Response,
};
use wasm_bindgen::prelude::*;

use crate::state::{AppState, ConnState, Me, Phase};
use chats::new_local_chat;
use conn::{CallError, Conn, Incoming};
use onboarding::export;
use send::own_entry;
use store::{Batch, Db, DeviceRecord, HistoryBody, HistoryEntry, LocalChat, OutboxEntry, PendingJoin, SystemEvent};

const PAGE: u32 = 500;
const MAX_ATTEMPTS: usize = 8;
const KEY_PACKAGES_LOW: u32 = 10;
const KEY_PACKAGES_BATCH: usize = 40;
const FIRST_KEY_PACKAGES: usize = 40;
const BACKOFF_MAX_MS: u32 = 15_000;

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
    /// Joins a chat's call with the page's SDP offer (`call::start_media`).
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

/// The views' way to the device task.
#[derive(Clone)]
pub struct DeviceHandle(mpsc::UnboundedSender<Cmd>);

impl DeviceHandle {
    pub fn send(&self, cmd: Cmd) {
        let _ = self.0.unbounded_send(cmd);
    }

    /// Sends a command made with a reply channel and waits for the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx));
        rx.await.unwrap_or_else(|_| Err("@err-device-stopped".into()))
    }
}

/// The handle for the views and the device task to spawn (once this tab holds the device lock).
pub fn create(ui: AppState) -> (DeviceHandle, impl std::future::Future<Output = ()>) {
    let (tx, rx) = mpsc::unbounded();
    (DeviceHandle(tx), run(ui, rx))
}

/// The member-facing text of a failed call: `@<message id>` for refusals the views translate.
fn api_message(e: CallError) -> String {
    match &e {
        CallError::Api(api) => match error_key(api.code) {
            Some(key) => format!("@{key}"),
            None => format!("@err-refused|{}", api.message),
        },
        CallError::Transport(_) => "@err-offline".into(),
    }
}

/// A failure of the MLS layer, for the member (with the technical detail after `|`).
fn mls_err(e: impl std::fmt::Display) -> String {
    format!("@err-mls|{e}")
}

fn error_key(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::InviteRequired => "err-invite-required",
        ErrorCode::RegistrationClosed => "err-registration-closed",
        ErrorCode::InviteInvalid => "err-invite-invalid",
        ErrorCode::InviteExpired => "err-invite-expired",
        ErrorCode::InviteRevoked => "err-invite-revoked",
        ErrorCode::InviteUsedUp => "err-invite-used-up",
        ErrorCode::RateLimited => "err-rate-limited",
        ErrorCode::Forbidden => "err-forbidden",
        ErrorCode::NotFound => "err-not-found",
        ErrorCode::Conflict => "err-conflict",
        ErrorCode::TooLarge => "err-too-long",
        ErrorCode::StaleEpoch { .. } => "err-chat-busy",
        ErrorCode::Internal => "err-node-internal",
        ErrorCode::Unavailable => "err-home-unavailable",
        ErrorCode::Unauthenticated | ErrorCode::BadSignature | ErrorCode::ChallengeUsed => "err-sign-in",
        _ => return None,
    })
}

fn random_group() -> GroupId {
    let mut id = [0u8; 16];
    let _ = getrandom::fill(&mut id);
    GroupId(id)
}

fn retryable(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::Internal | ErrorCode::RateLimited | ErrorCode::Unavailable)
}

fn commit_request(group: GroupId, bundle: &CommitBundle) -> Request {
    Request::Commit {
        group,
        commit: bundle.commit.clone(),
        welcome: bundle.welcome.clone(),
        group_info: bundle.group_info.clone(),
    }
}

struct Device {
    ui: AppState,
    db: Db,
    mls: Option<veche_mls::Client>,
    conn: Option<Conn>,
    signed_in: bool,
    generation: u32,
    events: mpsc::UnboundedSender<(u32, Incoming)>,
    backoff_ms: u32,
    /// What became of 1:1 calls this device rang, still to be written in their chats.
    unwritten_calls: Vec<(GroupId, veche_protocol::content::CallRecord)>,
    /// Set once the first catch-up after the page opened is done: messages processed from then on
    /// are new to the member and may be notified (crate::notify).
    live: bool,
}

async fn run(ui: AppState, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let db = match Db::load().await {
        Ok(db) => db,
        Err(e) => {
            ui.phase.set(Phase::Failed(e));
            return;
        }
    };
    let (events, mut incoming) = mpsc::unbounded();
    let mut device = Device {
        ui,
        db,
        mls: None,
        conn: None,
        signed_in: false,
        generation: 0,
        events,
        backoff_ms: 0,
        unwritten_calls: Vec::new(),
        live: false,
    };
    if let Some(record) = device.db.device.clone() {
        match veche_mls::Client::open(record.secret, device.db.mls.clone()) {
            Ok(client) => device.mls = Some(client),
            Err(e) => {
                ui.phase.set(Phase::Failed(format!("the device's MLS state does not open: {e}")));
                return;
            }
        }
        ui.me.set(Some(Me {
            account: record.account,
            name: record.display_name.clone(),
            node_admin: record.node_admin,
            guest_of: None,
        }));
        device.publish_all();
        ui.phase.set(Phase::Ready);
    } else {
        ui.phase.set(Phase::Welcome);
    }
    // The connection is opened (after its backoff wait) beside the commands, so the views get
    // their answers (history, the outbox) while the node is unreachable or slow to answer.
    let mut opening = Box::pin(Fuse::<LocalBoxFuture<'static, Result<Conn, String>>>::terminated());
    let mut opening_generation = device.generation;
    loop {
        if !device.unwritten_calls.is_empty() {
            device.write_call_records().await;
        }
        // A new attempt when none is under way, or when the one under way was overtaken (a lost
        // connection, "reconnect now", or a connection opened by onboarding).
        if device.conn.is_none() && (opening.is_terminated() || opening_generation != device.generation) {
            opening.set(device.open_conn(device.backoff_ms).fuse());
            opening_generation = device.generation;
        }
        // Messages waiting because the chat's home node (another node) was unreachable are
        // tried again every few seconds while connected.
        let pending = device.signed_in && device.db.outbox.values().any(|o| o.values().any(|e| !e.failed));
        let wait = if device.conn.is_some() && pending { OUTBOX_RETRY_MS } else { 60_000 };
        select! {
            opened = opening => {
                if opening_generation == device.generation {
                    device.connected(opened).await;
                }
            }
            cmd = cmds.next() => match cmd {
                Some(cmd) => device.handle(cmd).await,
                None => return,
            },
            news = incoming.next() => {
                if let Some((generation, news)) = news
                    && generation == device.generation
                {
                    device.incoming(news).await;
                }
            }
            _ = sleep_ms(wait).fuse() => {
                if pending && device.conn.is_some() {
                    let groups: Vec<GroupId> = device.db.outbox.keys().copied().collect();
                    for group in groups {
                        // Errors stay on the messages (sending / failed); no toast every retry.
                        let _ = device.flush_outbox(group).await;
                    }
                }
            }
        }
    }
}

/// How often waiting messages are tried again while connected, milliseconds.
const OUTBOX_RETRY_MS: u32 = 5_000;

impl Device {
    fn mls(&mut self) -> Result<&mut veche_mls::Client, String> {
        self.mls.as_mut().ok_or_else(|| "@err-no-device".to_string())
    }

    fn me(&self) -> Result<AccountId, String> {
        self.db.device.as_ref().map(|d| d.account).ok_or_else(|| "@err-no-device".to_string())
    }

    /// Writes the batch with the MLS client's pending changes; rolls the client back on failure.
    async fn persist(&mut self, batch: Batch) -> Result<(), String> {
        let changes = self.mls.as_mut().map(|m| m.take_changes()).unwrap_or_default();
        if let Err(e) = self.db.commit(batch, changes).await {
            if let Some(mls) = self.mls.as_mut() {
                mls.rollback();
            }
            return Err(format!("@err-storage|{e}"));
        }
        Ok(())
    }

    async fn call(&mut self, request: Request) -> Result<Response, CallError> {
        let Some(conn) = self.conn.as_ref() else {
            return Err(CallError::Transport("offline".into()));
        };
        let result = conn.call(request).await;
        if let Err(CallError::Transport(_)) = &result {
            self.disconnected();
        }
        result
    }

    fn disconnected(&mut self) {
        self.call_lost();
        self.conn = None;
        self.signed_in = false;
        self.generation = self.generation.wrapping_add(1);
        self.ui.conn.set(ConnState::Offline);
    }

    /// Opens a connection now (and signs in when registered); on failure waits longer next time.
    async fn connect(&mut self) {
        let opened = self.open_conn(0).await;
        self.connected(opened).await;
    }

    /// A connection attempt after `delay_ms`, of a new generation (news of older ones is ignored).
    fn open_conn(&mut self, delay_ms: u32) -> LocalBoxFuture<'static, Result<Conn, String>> {
        // After a failure the indicator stays "offline" while retrying.
        if self.ui.conn.get_untracked() != ConnState::Offline {
            self.ui.conn.set(ConnState::Connecting);
        }
        self.generation = self.generation.wrapping_add(1);
        let (url, generation, events) = (conn::node_ws_url(), self.generation, self.events.clone());
        async move {
            if delay_ms > 0 {
                sleep_ms(delay_ms).await;
            }
            Conn::open(&url, generation, events).await
        }
        .boxed_local()
    }

    /// Takes an opened connection and signs in when registered; counts a failed attempt.
    async fn connected(&mut self, opened: Result<Conn, String>) {
        let conn = match opened {
            Ok(conn) => conn,
            Err(_) => {
                self.backoff_ms = (self.backoff_ms * 2).clamp(500, BACKOFF_MAX_MS);
                self.ui.conn.set(ConnState::Offline);
                return;
            }
        };
        self.ui.node_name.set(conn.hello.node_name.clone());
        self.ui.node_id.set(conn.hello.node_id.clone());
        self.ui.registration.set(Some(conn.hello.registration));
        self.conn = Some(conn);
        if self.db.device.is_some() {
            if let Err(e) = self.sign_in().await {
                self.ui.toast(e, true);
                self.disconnected();
                self.backoff_ms = (self.backoff_ms * 2).clamp(500, BACKOFF_MAX_MS);
                return;
            }
            self.ui.conn.set(ConnState::Online);
            self.backoff_ms = 0;
            if let Err(e) = self.sync_all().await {
                self.ui.toast(e, true);
            }
            self.live = true;
        } else {
            self.ui.conn.set(ConnState::Online);
            self.backoff_ms = 0;
        }
    }

    async fn sign_in(&mut self) -> Result<(), String> {
        let record = self.db.device.clone().ok_or("no device")?;
        let conn = self.conn.as_ref().ok_or("offline")?;
        if conn.hello.node_id != record.node_id {
            return Err(format!("@err-node-changed|{}", conn.hello.node_id));
        }
        let key = ed25519_dalek::SigningKey::from_bytes(&record.secret);
        let payload = veche_protocol::auth::sign_in_payload(&conn.hello.node_id, &conn.hello.challenge, &record.device);
        let signature = veche_protocol::auth::sign(&key, &payload);
        match self.call(Request::SignIn { device: record.device, signature }).await {
            Ok(Response::SignedIn(account)) => {
                self.signed_in = true;
                if account.display_name != record.display_name || account.node_admin != record.node_admin {
                    let mut updated = record;
                    updated.display_name = account.display_name.clone();
                    updated.node_admin = account.node_admin;
                    let mut batch = Batch::default();
                    batch.device(updated);
                    self.persist(batch).await?;
                }
                self.ui.me.set(Some(Me {
                    account: account.account,
                    name: account.display_name,
                    node_admin: account.node_admin,
                    guest_of: account.guest_of,
                }));
                Ok(())
            }
            Ok(_) => Err("@err-unexpected".into()),
            Err(e) => Err(api_message(e)),
        }
    }

    async fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Register { name, link, reply } => {
                let result = self.register(&name, link.as_deref()).await;
                let _ = reply.send(result);
            }
            Cmd::Preview { link, reply } => {
                let result = self.preview(&link).await;
                let _ = reply.send(result);
            }
            Cmd::Join { link, reply } => {
                let result = self.join(&link).await;
                if result.is_ok() {
                    self.refresh_meetings().await;
                }
                let _ = reply.send(result);
            }
            Cmd::CreateGroup { name, description, reply } => {
                let result = self.create_group(name, description).await;
                let _ = reply.send(result);
            }
            Cmd::CreateMeeting { settings, reply } => {
                let result = self.create_meeting(settings).await;
                let _ = reply.send(result);
            }
            Cmd::Send { group, text } => {
                if let Err(e) = self.queue_text(group, text).await {
                    self.ui.toast(e, true);
                }
            }
            Cmd::Retry { group, outbox_id } => {
                if let Some(mut entry) = self.db.outbox.get(&group).and_then(|o| o.get(&outbox_id)).cloned() {
                    entry.failed = false;
                    entry.ciphertext = None;
                    let mut batch = Batch::default();
                    batch.outbox(group, outbox_id, entry);
                    if self.persist(batch).await.is_ok() {
                        self.publish_chat(group);
                        self.flush_outbox_reporting(group).await;
                    }
                }
            }
            Cmd::Discard { group, outbox_id } => {
                let mut batch = Batch::default();
                batch.remove_outbox(group, outbox_id);
                if self.persist(batch).await.is_ok() {
                    self.publish_chat(group);
                }
            }
            Cmd::Seen { group } => self.mark_seen(group).await,
            Cmd::CreateInvite { group, max_uses, expires_in_secs, reply } => {
                let request = Request::CreateInvite { group: Some(group), max_uses, expires_in_secs };
                let result = match self.call(request).await {
                    Ok(Response::InviteCreated { invite, secret }) => Ok(InviteLink {
                        node_url: page_origin(),
                        invite: invite.invite,
                        secret,
                        group: Some(group),
                        fingerprint: node_fingerprint(self.ui).await,
                    }
                    .to_url()),
                    Ok(_) => Err("@err-unexpected".into()),
                    Err(e) => Err(api_message(e)),
                };
                let _ = reply.send(result);
            }
            Cmd::Invites { group, reply } => {
                let result = match self.call(Request::Invites { group }).await {
                    Ok(Response::Invites(list)) => Ok(list),
                    Ok(_) => Err("@err-unexpected".into()),
                    Err(e) => Err(api_message(e)),
                };
                let _ = reply.send(result);
            }
            Cmd::RevokeInvite { invite, reply } => {
                let result = self.call(Request::RevokeInvite { invite }).await.map(|_| ()).map_err(api_message);
                let _ = reply.send(result);
            }
            Cmd::DirectChat { member, reply } => {
                let result = self.direct_chat(member).await;
                let _ = reply.send(result);
            }
            Cmd::Remove { group, member, reply } => {
                let result = self
                    .commit(group, SystemEvent::Removed(vec![member]), move |mls| mls.remove_members(group, &[member]))
                    .await
                    .map(|_| ());
                self.refresh_chat(group).await;
                let _ = reply.send(result);
            }
            Cmd::SetRole { group, member, role, reply } => {
                let result = self
                    .commit(group, SystemEvent::RoleChanged(member), move |mls| mls.set_role(group, member, role))
                    .await
                    .map(|_| ());
                self.refresh_chat(group).await;
                let _ = reply.send(result);
            }
            Cmd::Leave { group, reply } => {
                let result = self.leave(group).await;
                let _ = reply.send(result);
            }
            Cmd::SetRetention { group, retention, reply } => {
                let result =
                    self.call(Request::SetRetention { group, retention }).await.map(|_| ()).map_err(api_message);
                self.refresh_chat(group).await;
                let _ = reply.send(result);
            }
            Cmd::UpdateChat { group, name, description, reply } => {
                let result =
                    self.call(Request::UpdateChat { group, name, description }).await.map(|_| ()).map_err(api_message);
                self.refresh_chat(group).await;
                let _ = reply.send(result);
            }
            Cmd::KeepHistory { group, keep } => {
                if let Some(mut chat) = self.db.chats.get(&group).cloned() {
                    chat.keep_history = keep;
                    let mut batch = Batch::default();
                    batch.chat(group, chat);
                    if keep {
                        // Write what this page still shows, so it survives a reload from now on.
                        for entry in self.db.history.get(&group).into_iter().flat_map(|h| h.values()) {
                            batch.history(group, entry.clone());
                        }
                    } else {
                        batch.drop_history(group);
                    }
                    if let Err(e) = self.persist(batch).await {
                        self.ui.toast(e, true);
                    }
                    self.publish_chat(group);
                }
            }
            Cmd::JoinCall { group, offer, reply } => {
                let result = self.join_call(group, offer).await;
                if result.is_err() {
                    call::call_stop();
                }
                let _ = reply.send(result);
            }
            Cmd::LeaveCall => self.leave_call().await,
            Cmd::EndCall { reply } => {
                let result = self.end_call().await;
                let _ = reply.send(result);
            }
            Cmd::Call { request, reply } => {
                let _ = reply.send(self.call(request).await.map_err(api_message));
            }
            Cmd::Export { passphrase, reply } => {
                let _ = reply.send(export(&passphrase).await);
            }
            Cmd::Import { file, passphrase, reply } => {
                let result = self.import(&file, &passphrase).await;
                let _ = reply.send(result);
            }
            Cmd::Reconnect => {
                if self.conn.is_none() {
                    // Overtakes the attempt under way: the run loop starts one with no wait.
                    self.backoff_ms = 0;
                    self.generation = self.generation.wrapping_add(1);
                }
            }
        }
    }

    async fn incoming(&mut self, news: Incoming) {
        match news {
            // An attempt still opening reports its failure through `connected` instead.
            Incoming::Closed if self.conn.is_none() => {}
            Incoming::Closed => self.disconnected(),
            Incoming::Event(event) => {
                if !self.signed_in {
                    return;
                }
                if let Err(e) = self.handle_event(event).await {
                    self.ui.toast(e, true);
                }
            }
        }
    }
}

/// `scheme://host[:port]` of the page, the base of invite links this browser makes.
pub fn page_origin() -> String {
    web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default()
}
