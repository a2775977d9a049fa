//! The browser's member device: one task owns the MLS client, the store and the connection.
//!
//! Views send [`Cmd`]s through a [`DeviceHandle`] and get answers on oneshot channels; the task
//! publishes what changed into the [`AppState`] signals. The rules for keeping the local MLS
//! state in step with the node's log are those of the native client (`node/src/client/session.rs`):
//! persist before anything leaves the device, process the log strictly in order, retry on
//! `StaleEpoch`, keep what the node may still store.

pub mod conn;
mod publish;
pub mod store;

use futures::channel::{mpsc, oneshot};
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
use conn::{CallError, Conn, Incoming};
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
    matches!(code, ErrorCode::Internal | ErrorCode::RateLimited)
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
    let mut device = Device { ui, db, mls: None, conn: None, signed_in: false, generation: 0, events, backoff_ms: 0 };
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
        }));
        device.publish_all();
        ui.phase.set(Phase::Ready);
    } else {
        ui.phase.set(Phase::Welcome);
    }
    loop {
        if device.conn.is_none() {
            device.connect().await;
        }
        let wait = if device.conn.is_none() { device.backoff_ms } else { 60_000 };
        select! {
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
            _ = sleep_ms(wait).fuse() => {}
        }
    }
}

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
        self.conn = None;
        self.signed_in = false;
        self.generation = self.generation.wrapping_add(1);
        self.ui.conn.set(ConnState::Offline);
    }

    /// Opens a connection (and signs in when registered); on failure waits longer next time.
    async fn connect(&mut self) {
        // After a failure the indicator stays "offline" while retrying.
        if self.ui.conn.get_untracked() != ConnState::Offline {
            self.ui.conn.set(ConnState::Connecting);
        }
        self.generation = self.generation.wrapping_add(1);
        let url = conn::node_ws_url();
        let conn = match Conn::open(&url, self.generation, self.events.clone()).await {
            Ok(conn) => conn,
            Err(_) => {
                self.backoff_ms = (self.backoff_ms * 2).clamp(500, BACKOFF_MAX_MS);
                self.ui.conn.set(ConnState::Offline);
                return;
            }
        };
        self.ui.node_name.set(conn.hello.node_name.clone());
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
                let _ = reply.send(result);
            }
            Cmd::CreateGroup { name, description, reply } => {
                let result = self.create_group(name, description).await;
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
                    Ok(Response::InviteCreated { invite, secret }) => {
                        Ok(InviteLink { node_url: page_origin(), invite: invite.invite, secret, group: Some(group) }
                            .to_url())
                    }
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
                    self.backoff_ms = 0;
                }
            }
        }
    }

    async fn incoming(&mut self, news: Incoming) {
        match news {
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

    // ---- onboarding ----

    async fn register(&mut self, name: &str, link: Option<&str>) -> Result<(), String> {
        if self.db.device.is_some() {
            return Ok(());
        }
        let name = veche_protocol::validate::display_name(name).map_err(|e| format!("@err-bad-name|{e}"))?;
        let token = match link {
            Some(link) => {
                let link = InviteLink::parse(link).map_err(|_| "@err-invite-invalid".to_string())?;
                Some(InviteToken { invite: link.invite, secret: link.secret })
            }
            None => None,
        };
        if self.conn.is_none() {
            self.connect().await;
        }
        // Reuse the key of an interrupted registration: the node may have accepted it.
        let secret = match self.db.pending_secret {
            Some(secret) => secret,
            None => {
                let secret = veche_mls::Client::generate_secret();
                let mut batch = Batch::default();
                batch.pending_secret(Some(secret));
                self.persist(batch).await?;
                secret
            }
        };
        let mut mls = veche_mls::Client::new(secret);
        let identity = mls.identity();
        let (node_id, challenge) = match self.conn.as_ref() {
            Some(conn) => (conn.hello.node_id.clone(), conn.hello.challenge),
            None => return Err("@err-offline".into()),
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&secret);
        let payload =
            veche_protocol::auth::register_payload(&node_id, &challenge, &identity.device, &identity.account, &name);
        let signature = veche_protocol::auth::sign(&key, &payload);
        let request = Request::Register {
            device: identity.device,
            account: identity.account,
            display_name: name.clone(),
            invite: token,
            signature,
        };
        let account = match self.call(request).await {
            Ok(Response::SignedIn(account)) => account,
            Ok(_) => return Err("@err-unexpected".into()),
            Err(CallError::Api(e)) if e.code == ErrorCode::Conflict => {
                let payload = veche_protocol::auth::sign_in_payload(&node_id, &challenge, &identity.device);
                let signature = veche_protocol::auth::sign(&key, &payload);
                match self.call(Request::SignIn { device: identity.device, signature }).await {
                    Ok(Response::SignedIn(account)) => account,
                    Ok(_) => return Err("@err-unexpected".into()),
                    Err(e) => return Err(api_message(e)),
                }
            }
            Err(e) => return Err(api_message(e)),
        };
        let packages = mls.key_packages(FIRST_KEY_PACKAGES).map_err(mls_err)?;
        let last_resort = mls.last_resort_key_package().map_err(mls_err)?;
        // The packages' private keys are saved before the packages leave the device.
        let record = DeviceRecord {
            secret,
            account: account.account,
            device: account.device,
            node_id,
            display_name: account.display_name.clone(),
            node_admin: account.node_admin,
        };
        self.mls = Some(mls);
        let mut batch = Batch::default();
        batch.device(record).pending_secret(None).profile(account.account, account.display_name.clone());
        if let Err(e) = self.persist(batch).await {
            self.mls = None;
            return Err(e);
        }
        self.call(Request::PublishKeyPackages { packages, last_resort: Some(last_resort) })
            .await
            .map_err(api_message)?;
        self.signed_in = true;
        self.ui.names.update(|n| {
            n.insert(account.account, account.display_name.clone());
        });
        self.ui.me.set(Some(Me {
            account: account.account,
            name: account.display_name,
            node_admin: account.node_admin,
        }));
        self.ui.phase.set(Phase::Ready);
        Ok(())
    }

    async fn preview(&mut self, link: &str) -> Result<InvitePreview, String> {
        let link = InviteLink::parse(link).map_err(|_| "@err-invite-invalid".to_string())?;
        if self.conn.is_none() {
            self.connect().await;
        }
        let token = InviteToken { invite: link.invite, secret: link.secret };
        match self.call(Request::InvitePreview { token }).await {
            Ok(Response::InvitePreview(preview)) => Ok(preview),
            Ok(_) => Err("@err-unexpected".into()),
            Err(e) => Err(api_message(e)),
        }
    }

    // ---- catching up ----

    async fn sync_all(&mut self) -> Result<(), String> {
        let pending: Vec<_> = self.db.pending_joins.iter().map(|(g, p)| (*g, p.clone())).collect();
        for (group, join) in pending {
            self.finish_join(group, join).await?;
        }
        if self.db.restored {
            self.refresh_keys_after_restore().await?;
        }
        self.replenish_key_packages().await?;
        if let Ok(Response::Chats(infos)) = self.call(Request::Chats).await {
            for info in infos {
                self.apply_info(info);
            }
        }
        let groups: Vec<GroupId> = self.db.chats.iter().filter(|(_, c)| c.active).map(|(g, _)| *g).collect();
        for group in groups {
            self.sync_chat(group).await?;
        }
        self.sync_welcomes().await
    }

    /// A restored state may be older than what the device did before it was lost: its sender
    /// ratchets may have been used since. Before anything is encrypted, every chat moves to a
    /// new epoch by this device's own commit, whose secrets the old state never held.
    async fn refresh_keys_after_restore(&mut self) -> Result<(), String> {
        let groups: Vec<GroupId> = self.db.chats.iter().filter(|(_, c)| c.active).map(|(g, _)| *g).collect();
        for group in groups {
            if let Err(e) = self.commit(group, SystemEvent::KeysRefreshed, move |mls| mls.self_update(group)).await {
                if !self.signed_in {
                    return Err(e); // offline: try again on the next connection
                }
                // The old state cannot follow this chat any more (it missed its own later commits).
                if let Some(mut chat) = self.db.chats.get(&group).cloned() {
                    chat.active = false;
                    let mut batch = Batch::default();
                    batch.chat(group, chat);
                    self.persist(batch).await?;
                    self.publish_chat(group);
                }
            }
        }
        let mut batch = Batch::default();
        batch.restored(false);
        self.persist(batch).await
    }

    async fn import(&mut self, file: &[u8], passphrase: &str) -> Result<(), String> {
        if self.db.device.is_some() {
            return Err("@err-has-account".into());
        }
        let payload = veche_ui_core::recovery::open(passphrase, file).map_err(|e| match e {
            veche_ui_core::recovery::RecoveryError::NotARecoveryFile => "@err-not-recovery-file".to_string(),
            _ => "@err-wrong-passphrase".to_string(),
        })?;
        let entries: Vec<(String, Vec<u8>)> =
            postcard::from_bytes(&payload).map_err(|_| "@err-not-recovery-file".to_string())?;
        let record: DeviceRecord = entries
            .iter()
            .find(|(k, _)| k == "device")
            .and_then(|(_, v)| postcard::from_bytes(v).ok())
            .ok_or_else(|| "@err-not-recovery-file".to_string())?;
        if self.conn.is_none() {
            self.connect().await;
        }
        if let Some(conn) = self.conn.as_ref()
            && conn.hello.node_id != record.node_id
        {
            return Err("@err-other-node".into());
        }
        Db::restore(entries).await?;
        if let Some(window) = web_sys::window() {
            let _ = window.location().reload();
        }
        Ok(())
    }

    async fn replenish_key_packages(&mut self) -> Result<(), String> {
        let Ok(Response::KeyPackageCount(count)) = self.call(Request::KeyPackageCount).await else {
            return Err("@err-unexpected".into());
        };
        if count >= KEY_PACKAGES_LOW {
            return Ok(());
        }
        let packages = self.mls()?.key_packages(KEY_PACKAGES_BATCH).map_err(mls_err)?;
        self.persist(Batch::default()).await?;
        self.call(Request::PublishKeyPackages { packages, last_resort: None }).await.map_err(api_message)?;
        Ok(())
    }

    async fn sync_welcomes(&mut self) -> Result<(), String> {
        loop {
            let welcomes = match self.call(Request::Welcomes).await {
                Ok(Response::Welcomes(w)) => w,
                Ok(_) => return Err("@err-unexpected".into()),
                Err(e) => return Err(api_message(e)),
            };
            if welcomes.is_empty() {
                return Ok(());
            }
            for welcome in welcomes {
                let group = welcome.group;
                if self.accept_welcome(welcome).await? {
                    self.sync_chat(group).await?;
                }
            }
        }
    }

    async fn accept_welcome(&mut self, welcome: veche_protocol::wire::WelcomeEnvelope) -> Result<bool, String> {
        let current = self.db.chats.get(&welcome.group).is_some_and(|c| c.active && c.processed >= welcome.commit_seq);
        let mut joined = false;
        if !current {
            match self.mls()?.join_from_welcome(&welcome.welcome) {
                Ok(group) if group == welcome.group => match self.call(Request::Chat { group }).await {
                    Ok(Response::Chat(info)) => {
                        let chat = new_local_chat(info.kind, &info.name, welcome.commit_seq);
                        let mut batch = Batch::default();
                        batch.chat(group, chat);
                        self.persist(batch).await?;
                        self.apply_info(info);
                        joined = true;
                    }
                    Ok(_) => return Err("@err-unexpected".into()),
                    Err(CallError::Api(_)) => {
                        self.mls()?.forget_group(group).map_err(mls_err)?;
                        self.persist(Batch::default()).await?;
                    }
                    Err(e) => {
                        self.mls()?.rollback();
                        return Err(api_message(e));
                    }
                },
                Ok(other) => {
                    self.mls()?.forget_group(other).map_err(mls_err)?;
                    self.persist(Batch::default()).await?;
                }
                Err(_) => {} // unusable welcome: acknowledged below so it never blocks the device
            }
        }
        match self.call(Request::AckWelcome { id: welcome.id }).await {
            Ok(_) | Err(CallError::Api(_)) => Ok(joined),
            Err(e) => Err(api_message(e)),
        }
    }

    /// Fetches and processes the chat's log, then sends what waits in its outbox.
    async fn sync_chat(&mut self, group: GroupId) -> Result<(), String> {
        self.catch_up(group).await?;
        self.flush_outbox(group).await
    }

    async fn catch_up(&mut self, group: GroupId) -> Result<(), String> {
        loop {
            let Some(chat) = self.db.chats.get(&group).cloned() else { return Ok(()) };
            if !chat.active {
                return Ok(());
            }
            let request = Request::Fetch { group, after: chat.processed, limit: PAGE };
            let (messages, head) = match self.call(request).await {
                Ok(Response::Messages { messages, head }) => (messages, head),
                Ok(_) => return Err("@err-unexpected".into()),
                Err(e) => return Err(api_message(e)),
            };
            if messages.is_empty() {
                return self.commit_pending_leaves(group).await;
            }
            let last = self.process_batch(group, chat, messages, true).await?;
            self.call(Request::Ack { group, seq: last }).await.map_err(api_message)?;
            if last >= head {
                return self.commit_pending_leaves(group).await;
            }
        }
    }

    async fn process_batch(
        &mut self,
        group: GroupId,
        mut chat: LocalChat,
        entries: Vec<Delivered>,
        fetched: bool,
    ) -> Result<u64, String> {
        let me = self.me()?;
        let mut batch = Batch::default();
        let mut membership_changed = false;
        for entry in entries {
            if entry.seq <= chat.processed || !chat.active {
                continue;
            }
            if entry.seq > chat.processed + 1 {
                if !fetched {
                    break;
                }
                let missing = entry.seq - chat.processed - 1;
                batch.history(
                    group,
                    HistoryEntry {
                        seq: chat.processed + 1,
                        sender: me,
                        sent_at_ms: 0,
                        stored_at_ms: entry.stored_at_ms,
                        own: false,
                        body: HistoryBody::System(SystemEvent::Expired(missing)),
                    },
                );
            }
            chat.processed = entry.seq;
            let known = self.db.history.get(&group).is_some_and(|h| h.contains_key(&entry.seq));
            if entry.sender == me && known {
                continue;
            }
            let body = match self.mls()?.process(&entry.payload) {
                Ok(Processed::Application { plaintext, .. }) => match AppMessage::decode(&plaintext) {
                    Ok(message) => Some((
                        message.sent_at_ms,
                        match message.as_text() {
                            Some(text) => HistoryBody::Text(text.to_string()),
                            None => HistoryBody::System(SystemEvent::Unreadable),
                        },
                    )),
                    Err(_) => Some((0, HistoryBody::System(SystemEvent::Unreadable))),
                },
                Ok(Processed::Commit { sender, added, removed, we_were_removed, .. }) => {
                    membership_changed = true;
                    chat.leavers.retain(|a| !removed.iter().any(|r| r.account == *a));
                    if we_were_removed {
                        chat.active = false;
                    }
                    let added: Vec<AccountId> = added.iter().map(|m| m.account).collect();
                    let removed: Vec<AccountId> = removed.iter().map(|m| m.account).collect();
                    if sender.is_some() && added.len() == 1 && sender.map(|s| s.account) == added.first().copied() {
                        Some((0, HistoryBody::System(SystemEvent::JoinedByLink(added[0]))))
                    } else if !added.is_empty() {
                        Some((0, HistoryBody::System(SystemEvent::Added(added))))
                    } else if !removed.is_empty() {
                        Some((0, HistoryBody::System(SystemEvent::Removed(removed))))
                    } else {
                        None
                    }
                }
                Ok(Processed::Proposal { sender, kind: veche_mls::ProposalKind::Leave }) => {
                    if !chat.leavers.contains(&sender.account) {
                        chat.leavers.push(sender.account);
                    }
                    None
                }
                Err(ProcessError::OwnMessage | ProcessError::Stale { .. }) => None,
                Err(_) if entry.sender == me && entry.kind == EntryKind::Handshake => {
                    match self.mls()?.merge_pending_commit(group) {
                        Ok(()) => None,
                        Err(_) => Some((0, HistoryBody::System(SystemEvent::Unreadable))),
                    }
                }
                Err(_) => Some((0, HistoryBody::System(SystemEvent::Unreadable))),
            };
            if let Some((sent_at_ms, body)) = body {
                batch.history(
                    group,
                    HistoryEntry {
                        seq: entry.seq,
                        sender: entry.sender,
                        sent_at_ms,
                        stored_at_ms: entry.stored_at_ms,
                        own: entry.sender == me,
                        body,
                    },
                );
            }
        }
        let processed = chat.processed;
        batch.chat(group, chat);
        self.persist(batch).await?;
        self.publish_chat(group);
        if membership_changed {
            self.refresh_chat(group).await;
        }
        self.learn_names(group).await;
        Ok(processed)
    }

    async fn handle_event(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Message(delivered) => {
                let group = delivered.group;
                let Some(chat) = self.db.chats.get(&group).cloned() else { return Ok(()) };
                if delivered.seq == chat.processed + 1 {
                    let seq = self.process_batch(group, chat, vec![delivered], false).await?;
                    self.call(Request::Ack { group, seq }).await.map_err(api_message)?;
                    self.commit_pending_leaves(group).await?;
                } else if delivered.seq > chat.processed + 1 {
                    self.sync_chat(group).await?;
                }
            }
            Event::Welcome(welcome) => {
                let group = welcome.group;
                if self.accept_welcome(welcome).await? {
                    self.sync_chat(group).await?;
                }
            }
            Event::Lagged => self.sync_all().await?,
            Event::ChatUpdated { group } => self.refresh_chat(group).await,
        }
        Ok(())
    }

    // ---- sending ----

    async fn queue_text(&mut self, group: GroupId, text: String) -> Result<(), String> {
        let text = text.trim().to_string();
        if text.is_empty() {
            return Ok(());
        }
        AppMessage::text(&text, now_ms()).map_err(|_| "@err-too-long".to_string())?;
        let mut id = now_ms() * 1000;
        while self.db.outbox.get(&group).is_some_and(|o| o.contains_key(&id)) {
            id += 1;
        }
        let entry = OutboxEntry { text, sent_at_ms: now_ms(), ciphertext: None, failed: false };
        let mut batch = Batch::default();
        batch.outbox(group, id, entry);
        self.persist(batch).await?;
        self.publish_chat(group);
        self.flush_outbox_reporting(group).await;
        Ok(())
    }

    async fn flush_outbox_reporting(&mut self, group: GroupId) {
        if self.signed_in
            && let Err(e) = self.flush_outbox(group).await
        {
            self.ui.toast(e, true);
        }
    }

    /// Sends the chat's waiting messages in order. Stops (keeping them) when offline or when the
    /// node may still store them later; marks them failed when refused for good.
    async fn flush_outbox(&mut self, group: GroupId) -> Result<(), String> {
        if !self.signed_in {
            return Ok(());
        }
        let ids: Vec<u64> = self.db.outbox.get(&group).map(|o| o.keys().copied().collect()).unwrap_or_default();
        for id in ids {
            let mut attempts = 0;
            loop {
                let Some(mut entry) = self.db.outbox.get(&group).and_then(|o| o.get(&id)).cloned() else { break };
                if entry.failed {
                    break;
                }
                attempts += 1;
                if attempts > MAX_ATTEMPTS {
                    return Err("@err-chat-busy".into());
                }
                let active = self.db.chats.get(&group).is_some_and(|c| c.active);
                let ciphertext = match entry.ciphertext.clone() {
                    Some(c) => c,
                    None if !active => {
                        entry.failed = true;
                        let mut batch = Batch::default();
                        batch.outbox(group, id, entry);
                        self.persist(batch).await?;
                        self.publish_chat(group);
                        break;
                    }
                    None => {
                        let content = AppMessage::text(&entry.text, entry.sent_at_ms)
                            .and_then(|m| m.encode())
                            .map_err(mls_err)?;
                        let ciphertext = self.mls()?.encrypt(group, &content).map_err(mls_err)?;
                        // The advanced ratchet and the ciphertext are saved before it leaves.
                        entry.ciphertext = Some(ciphertext.clone());
                        let mut batch = Batch::default();
                        batch.outbox(group, id, entry.clone());
                        self.persist(batch).await?;
                        ciphertext
                    }
                };
                match self.call(Request::Send { group, message: ciphertext }).await {
                    Ok(Response::Stored { seq }) => {
                        let me = self.me()?;
                        let history = HistoryEntry {
                            seq,
                            sender: me,
                            sent_at_ms: entry.sent_at_ms,
                            stored_at_ms: now_ms(),
                            own: true,
                            body: HistoryBody::Text(entry.text.clone()),
                        };
                        let mut batch = Batch::default();
                        batch.remove_outbox(group, id).history(group, history);
                        self.persist(batch).await?;
                        self.publish_chat(group);
                        break;
                    }
                    Ok(_) => return Err("@err-unexpected".into()),
                    Err(CallError::Api(e)) if matches!(e.code, ErrorCode::StaleEpoch { .. }) => {
                        entry.ciphertext = None;
                        let mut batch = Batch::default();
                        batch.outbox(group, id, entry);
                        self.persist(batch).await?;
                        self.catch_up(group).await?;
                    }
                    Err(CallError::Api(e)) if retryable(e.code) => return Err(api_message(CallError::Api(e))),
                    Err(CallError::Api(e)) => {
                        entry.failed = true;
                        entry.ciphertext = None;
                        let mut batch = Batch::default();
                        batch.outbox(group, id, entry);
                        self.persist(batch).await?;
                        self.publish_chat(group);
                        return Err(e.message);
                    }
                    Err(e) => return Err(api_message(e)),
                }
            }
        }
        Ok(())
    }

    /// Makes a commit with `make` after catching up, sends it, merges it once stored.
    async fn commit(
        &mut self,
        group: GroupId,
        describe: SystemEvent,
        make: impl Fn(&mut veche_mls::Client) -> Result<CommitBundle, veche_mls::ClientError>,
    ) -> Result<u64, String> {
        for _ in 0..MAX_ATTEMPTS {
            self.catch_up(group).await?;
            let bundle = make(self.mls()?).map_err(mls_err)?;
            self.persist(Batch::default()).await?;
            match self.call(commit_request(group, &bundle)).await {
                Ok(Response::Stored { seq }) => {
                    self.mls()?.merge_pending_commit(group).map_err(mls_err)?;
                    let me = self.me()?;
                    let mut batch = Batch::default();
                    batch.history(group, own_entry(seq, me, HistoryBody::System(describe.clone())));
                    if let Some(mut chat) = self.db.chats.get(&group).cloned() {
                        chat.processed = chat.processed.max(seq);
                        chat.seen = chat.seen.max(seq);
                        batch.chat(group, chat);
                    }
                    self.persist(batch).await?;
                    self.publish_chat(group);
                    return Ok(seq);
                }
                Ok(_) => return Err("@err-unexpected".into()),
                Err(CallError::Api(e)) => {
                    self.mls()?.discard_pending_commit(group).map_err(mls_err)?;
                    self.persist(Batch::default()).await?;
                    if !matches!(e.code, ErrorCode::StaleEpoch { .. }) {
                        return Err(e.message);
                    }
                }
                Err(e) => return Err(api_message(e)),
            }
        }
        Err("@err-chat-busy".into())
    }

    async fn commit_pending_leaves(&mut self, group: GroupId) -> Result<(), String> {
        let me = self.me()?;
        let leavers = self.db.chats.get(&group).map(|c| c.leavers.clone()).unwrap_or_default();
        let mls = self.mls()?;
        if !mls.is_active(group) {
            return Ok(());
        }
        let Ok(policy) = mls.policy(group) else { return Ok(()) };
        let manager = policy.role(&me).can_manage_members();
        let bundle = match mls.commit_pending_proposals(group) {
            Ok(Some(bundle)) => Some(bundle),
            Ok(None) | Err(_) if !manager => None,
            Ok(None) | Err(_) => {
                let members: Vec<AccountId> =
                    mls.members(group).map(|m| m.into_iter().map(|(id, _)| id.account).collect()).unwrap_or_default();
                let still_here: Vec<AccountId> = leavers.into_iter().filter(|a| members.contains(a)).collect();
                if still_here.is_empty() { None } else { mls.remove_members(group, &still_here).ok() }
            }
        };
        let Some(bundle) = bundle else { return Ok(()) };
        self.persist(Batch::default()).await?;
        match self.call(commit_request(group, &bundle)).await {
            Ok(Response::Stored { seq }) => {
                self.mls()?.merge_pending_commit(group).map_err(mls_err)?;
                let removed: Vec<AccountId> = bundle.removed.iter().map(|m| m.account).collect();
                let mut batch = Batch::default();
                batch.history(group, own_entry(seq, me, HistoryBody::System(SystemEvent::RemovedLeavers)));
                if let Some(mut chat) = self.db.chats.get(&group).cloned() {
                    chat.leavers.retain(|a| !removed.contains(a));
                    batch.chat(group, chat);
                }
                self.persist(batch).await?;
                self.publish_chat(group);
                self.refresh_chat(group).await;
            }
            Ok(_) => return Err("@err-unexpected".into()),
            Err(CallError::Api(_)) => {
                let _ = self.mls()?.discard_pending_commit(group);
                self.persist(Batch::default()).await?;
            }
            Err(e) => return Err(api_message(e)),
        }
        Ok(())
    }

    // ---- chats ----

    async fn create_group(&mut self, name: String, description: String) -> Result<GroupId, String> {
        let name = name.trim().to_string();
        if name.is_empty() {
            return Err("@err-group-name".into());
        }
        let group = random_group();
        let group_info = self.mls()?.create_group(group, ChatKind::Group).map_err(mls_err)?;
        self.persist(Batch::default()).await?;
        let request = Request::CreateChat { group, kind: ChatKind::Group, name, description, peer: None, group_info };
        match self.call(request).await {
            Ok(Response::Chat(info)) => {
                self.add_local_chat(&info, 0, Some(SystemEvent::Created)).await?;
                Ok(group)
            }
            Ok(_) => Err("@err-unexpected".into()),
            Err(e) => {
                self.mls()?.forget_group(group).map_err(mls_err)?;
                self.persist(Batch::default()).await?;
                Err(api_message(e))
            }
        }
    }

    async fn add_local_chat(
        &mut self,
        info: &ChatInfo,
        processed: u64,
        note: Option<SystemEvent>,
    ) -> Result<(), String> {
        let group = info.group;
        let mut chat = new_local_chat(info.kind, &info.name, processed);
        chat.seen = processed;
        let mut batch = Batch::default();
        batch.chat(group, chat);
        if let Some(note) = note {
            let me = self.me()?;
            batch.history(group, own_entry(0, me, HistoryBody::System(note)));
        }
        self.persist(batch).await?;
        self.apply_info(info.clone());
        self.publish_chat(group);
        Ok(())
    }

    async fn join(&mut self, link: &str) -> Result<GroupId, String> {
        let link = InviteLink::parse(link).map_err(|_| "@err-invite-invalid".to_string())?;
        let Some(target) = link.group else { return Err("@err-node-link".into()) };
        if self.db.chats.get(&target).is_some_and(|c| c.active) {
            return Ok(target);
        }
        let token = InviteToken { invite: link.invite, secret: link.secret };
        for _ in 0..MAX_ATTEMPTS {
            let group_info = match self.call(Request::JoinGroupInfo { token: token.clone() }).await {
                Ok(Response::GroupInfo(info)) => info,
                Ok(_) => return Err("@err-unexpected".into()),
                Err(e) => return Err(api_message(e)),
            };
            let (group, bundle) = self.mls()?.join_external(&group_info).map_err(mls_err)?;
            let pending = PendingJoin {
                invite: token.invite,
                secret: token.secret,
                commit: bundle.commit,
                group_info: bundle.group_info,
            };
            let mut batch = Batch::default();
            batch.pending_join(group, pending.clone());
            self.persist(batch).await?;
            match self.finish_join(group, pending).await? {
                Some(_) => {
                    self.sync_chat(group).await?;
                    return Ok(group);
                }
                None => continue,
            }
        }
        Err("@err-chat-busy".into())
    }

    async fn finish_join(&mut self, group: GroupId, pending: PendingJoin) -> Result<Option<u64>, String> {
        let token = InviteToken { invite: pending.invite, secret: pending.secret };
        let request = Request::Join { token, commit: pending.commit, group_info: pending.group_info };
        match self.call(request).await {
            Ok(Response::Stored { seq }) => {
                let info = match self.call(Request::Chat { group }).await {
                    Ok(Response::Chat(info)) => info,
                    Ok(_) => return Err("@err-unexpected".into()),
                    Err(e) => return Err(api_message(e)),
                };
                let mut batch = Batch::default();
                batch.remove_pending_join(group);
                self.persist(batch).await?;
                let me = self.me()?;
                self.add_local_chat(&info, seq, Some(SystemEvent::JoinedByLink(me))).await?;
                Ok(Some(seq))
            }
            Ok(_) => Err("@err-unexpected".into()),
            Err(CallError::Api(e)) => {
                self.mls()?.forget_group(group).map_err(mls_err)?;
                let mut batch = Batch::default();
                batch.remove_pending_join(group);
                self.persist(batch).await?;
                match e.code {
                    ErrorCode::StaleEpoch { .. } => Ok(None),
                    _ => Err(e.message),
                }
            }
            Err(e) => Err(api_message(e)),
        }
    }

    async fn claim(&mut self, member: AccountId) -> Result<Vec<Vec<u8>>, String> {
        match self.call(Request::ClaimKeyPackages { account: member }).await {
            Ok(Response::KeyPackages(packages)) => Ok(packages),
            Ok(_) => Err("@err-unexpected".into()),
            Err(e) => Err(api_message(e)),
        }
    }

    async fn direct_chat(&mut self, member: AccountId) -> Result<GroupId, String> {
        let me = self.me()?;
        if member == me {
            return Err("@err-that-is-you".into());
        }
        let chats = match self.call(Request::Chats).await {
            Ok(Response::Chats(chats)) => chats,
            Ok(_) => return Err("@err-unexpected".into()),
            Err(e) => return Err(api_message(e)),
        };
        let existing = chats.into_iter().find(|c| {
            c.kind == ChatKind::Direct && (c.peer == Some(member) || c.members.iter().any(|m| m.account == member))
        });
        if let Some(existing) = existing {
            let group = existing.group;
            if !existing.members.iter().any(|m| m.account == member) {
                if !self.db.chats.contains_key(&group) {
                    return Err("@err-dm-elsewhere".into());
                }
                let packages = self.claim(member).await?;
                self.commit(group, SystemEvent::Added(vec![member]), move |mls| mls.add_members(group, &packages))
                    .await?;
                self.refresh_chat(group).await;
            }
            return Ok(group);
        }
        let packages = self.claim(member).await?;
        let group = random_group();
        let group_info = self.mls()?.create_group(group, ChatKind::Direct).map_err(mls_err)?;
        self.persist(Batch::default()).await?;
        let request = Request::CreateChat {
            group,
            kind: ChatKind::Direct,
            name: String::new(),
            description: String::new(),
            peer: Some(member),
            group_info,
        };
        let info = match self.call(request).await {
            Ok(Response::Chat(info)) => info,
            Ok(_) => return Err("@err-unexpected".into()),
            Err(e) => {
                self.mls()?.forget_group(group).map_err(mls_err)?;
                self.persist(Batch::default()).await?;
                return Err(api_message(e));
            }
        };
        self.add_local_chat(&info, 0, None).await?;
        self.commit(group, SystemEvent::Added(vec![member]), move |mls| mls.add_members(group, &packages)).await?;
        self.refresh_chat(group).await;
        Ok(group)
    }

    async fn leave(&mut self, group: GroupId) -> Result<(), String> {
        self.catch_up(group).await?;
        let proposal = self.mls()?.leave(group).map_err(mls_err)?;
        self.persist(Batch::default()).await?;
        match self.call(Request::Send { group, message: proposal }).await {
            Ok(Response::Stored { seq }) => {
                let me = self.me()?;
                let mut batch = Batch::default();
                batch.history(group, own_entry(seq, me, HistoryBody::System(SystemEvent::Left)));
                if let Some(mut chat) = self.db.chats.get(&group).cloned() {
                    chat.processed = chat.processed.max(seq);
                    batch.chat(group, chat);
                }
                self.persist(batch).await?;
                self.publish_chat(group);
                Ok(())
            }
            Ok(_) => Err("@err-unexpected".into()),
            Err(e) => Err(api_message(e)),
        }
    }

    async fn mark_seen(&mut self, group: GroupId) {
        let Some(mut chat) = self.db.chats.get(&group).cloned() else { return };
        let last = self.db.history.get(&group).and_then(|h| h.keys().next_back().copied()).unwrap_or(0);
        let newest = last.max(chat.processed);
        if chat.seen >= newest {
            return;
        }
        chat.seen = newest;
        let mut batch = Batch::default();
        batch.chat(group, chat);
        if self.persist(batch).await.is_ok() {
            self.publish_chat(group);
        }
    }

    /// Reloads the chat's name, members and roles from the node.
    async fn refresh_chat(&mut self, group: GroupId) {
        if let Ok(Response::Chat(info)) = self.call(Request::Chat { group }).await {
            self.apply_info(info);
        }
    }

    /// Fetches display names of senders this device does not know yet.
    async fn learn_names(&mut self, group: GroupId) {
        let known = self.ui.names.with_untracked(|n| n.keys().copied().collect::<std::collections::HashSet<_>>());
        let mut unknown: Vec<AccountId> = self
            .db
            .history
            .get(&group)
            .into_iter()
            .flat_map(|h| h.values())
            .flat_map(|e| {
                let mut ids = vec![e.sender];
                if let HistoryBody::System(SystemEvent::Added(list) | SystemEvent::Removed(list)) = &e.body {
                    ids.extend(list.iter().copied());
                }
                if let HistoryBody::System(SystemEvent::JoinedByLink(a) | SystemEvent::RoleChanged(a)) = &e.body {
                    ids.push(*a);
                }
                ids
            })
            .filter(|a| !known.contains(a))
            .collect();
        unknown.sort();
        unknown.dedup();
        if unknown.is_empty() {
            return;
        }
        if let Ok(Response::Profiles(profiles)) = self.call(Request::Profiles { accounts: unknown }).await {
            let mut batch = Batch::default();
            for profile in &profiles {
                batch.profile(profile.account, profile.display_name.clone());
            }
            if self.persist(batch).await.is_ok() {
                self.ui.names.update(|n| {
                    for p in profiles {
                        n.insert(p.account, p.display_name);
                    }
                });
            }
        }
    }
}

async fn export(passphrase: &str) -> Result<Vec<u8>, String> {
    let entries = Db::dump().await?;
    let payload = postcard::to_allocvec(&entries).map_err(mls_err)?;
    let mut salt = [0u8; veche_ui_core::recovery::SALT_LEN];
    let mut nonce = [0u8; veche_ui_core::recovery::NONCE_LEN];
    getrandom::fill(&mut salt).map_err(mls_err)?;
    getrandom::fill(&mut nonce).map_err(mls_err)?;
    veche_ui_core::recovery::seal(passphrase, &payload, salt, nonce).map_err(|_| "@err-weak-passphrase".to_string())
}

/// A history entry for something this device did, stored by the node as `seq`.
fn own_entry(seq: u64, me: AccountId, body: HistoryBody) -> HistoryEntry {
    HistoryEntry { seq, sender: me, sent_at_ms: now_ms(), stored_at_ms: now_ms(), own: true, body }
}

fn new_local_chat(kind: ChatKind, name: &str, processed: u64) -> LocalChat {
    LocalChat {
        kind,
        name: name.to_string(),
        processed,
        active: true,
        leavers: Vec::new(),
        seen: processed,
        keep_history: true,
    }
}

/// `scheme://host[:port]` of the page, the base of invite links this browser makes.
pub fn page_origin() -> String {
    web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default()
}
