//! A signed-in device: its state plus a live connection. Keeps the local MLS state in step with
//! the node's log (welcomes first, then every chat from where it left off) and sends messages and
//! commits with the retry rules of the delivery service.

use super::conn::{CallError, Connection};
use super::state::{self, HistoryBody, HistoryEntry, LocalChat, State};
use anyhow::{Context, bail};
use veche_mls::{CommitBundle, ProcessError, Processed};
use veche_protocol::content::{AppMessage, Body, CallRecord};
use veche_protocol::ids::{AccountId, ChatKind, GroupId};
use veche_protocol::wire::{Delivered, EntryKind, ErrorCode, Event, Request, Response};

/// Entries fetched per request while catching up.
const PAGE: u32 = 500;
/// Attempts when the chat's epoch moves under us.
const MAX_ATTEMPTS: usize = 8;
/// Below this many one-time key packages on the node, the device uploads more.
const KEY_PACKAGES_LOW: u32 = 10;
/// How many it uploads then.
const KEY_PACKAGES_BATCH: usize = 40;

pub struct Session {
    pub state: State,
    pub conn: Connection,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The Commit request for a bundle this device made.
fn commit_request(group: GroupId, bundle: &CommitBundle) -> Request {
    Request::Commit {
        group,
        commit: bundle.commit.clone(),
        welcome: bundle.welcome.clone(),
        group_info: bundle.group_info.clone(),
    }
}

/// Refusals after which the same request may succeed later (the outbox keeps the message).
fn retryable(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::Internal | ErrorCode::RateLimited | ErrorCode::Unavailable)
}

fn unexpected(response: Response) -> anyhow::Error {
    anyhow::anyhow!("unexpected answer from the node: {response:?}")
}

impl Session {
    /// Connects to the state's node and signs in.
    pub async fn connect(state: State) -> anyhow::Result<Self> {
        let device = state.device()?.clone();
        let trust = match state.tls_pin()? {
            Some(pin) => super::tls::Trust::Pinned(pin),
            None => super::tls::Trust::System,
        };
        let mut conn = Connection::open(&device.node_url, trust).await?;
        if conn.hello.node_id != device.node_id {
            bail!(
                "the node at {} now has id {}, not {}: refusing to sign in",
                device.node_url,
                conn.hello.node_id,
                device.node_id
            );
        }
        let key = ed25519_dalek::SigningKey::from_bytes(&device.secret);
        let payload = veche_protocol::auth::sign_in_payload(&conn.hello.node_id, &conn.hello.challenge, &device.device);
        let signature = veche_protocol::auth::sign(&key, &payload);
        conn.call(Request::SignIn { device: device.device, signature }).await?;
        Ok(Session { state, conn })
    }

    pub fn me(&self) -> anyhow::Result<AccountId> {
        Ok(self.state.device()?.account)
    }

    pub async fn call(&mut self, request: Request) -> Result<Response, CallError> {
        self.conn.call(request).await
    }

    /// Finishes interrupted joins, tops up key packages, joins chats from waiting welcomes, then
    /// catches up every chat.
    pub async fn sync_all(&mut self) -> anyhow::Result<()> {
        for (group, pending) in self.state.pending_joins()? {
            self.finish_join(group, pending).await?;
        }
        self.replenish_key_packages().await?;
        // Chats first: a removal must be processed before a Welcome that re-adds this device.
        for (group, chat) in self.state.chats()? {
            if chat.active {
                self.sync_chat(group).await?;
            }
        }
        self.sync_welcomes().await
    }

    /// Sends (or resends) a saved external commit. Returns the sequence number once stored, None
    /// when the node refused it (the local group is then forgotten).
    pub async fn finish_join(&mut self, group: GroupId, pending: state::PendingJoin) -> anyhow::Result<Option<u64>> {
        let token = veche_protocol::wire::InviteToken { invite: pending.invite, secret: pending.secret };
        let request = Request::Join { token, commit: pending.commit, group_info: pending.group_info };
        match self.call(request).await {
            Ok(Response::Stored { seq }) => {
                let info = self.chat_info(group).await?;
                let chat =
                    LocalChat { kind: info.kind, name: info.name, processed: seq, active: true, leavers: Vec::new() };
                self.state.persist(|txn| {
                    state::remove_pending_join(txn, group)?;
                    state::put_chat(txn, group, &chat)
                })?;
                Ok(Some(seq))
            }
            Ok(other) => Err(unexpected(other)),
            Err(CallError::Api(e)) => {
                self.state.mls()?.forget_group(group)?;
                self.state.persist(|txn| state::remove_pending_join(txn, group))?;
                match e.code {
                    ErrorCode::StaleEpoch { .. } => Ok(None),
                    _ => Err(CallError::Api(e).into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Uploads fresh one-time key packages when the node holds few of this device's.
    async fn replenish_key_packages(&mut self) -> anyhow::Result<()> {
        let Response::KeyPackageCount(count) = self.call(Request::KeyPackageCount).await? else {
            bail!("unexpected answer to KeyPackageCount");
        };
        if count >= KEY_PACKAGES_LOW {
            return Ok(());
        }
        let packages = self.state.mls()?.key_packages(KEY_PACKAGES_BATCH)?;
        // Their private keys are saved before the packages leave, or a Welcome to one of them
        // could never be opened.
        self.state.persist(|_| Ok(()))?;
        self.call(Request::PublishKeyPackages { packages, last_resort: None }).await?;
        Ok(())
    }

    pub async fn sync_welcomes(&mut self) -> anyhow::Result<()> {
        loop {
            let Response::Welcomes(welcomes) = self.call(Request::Welcomes).await? else {
                bail!("unexpected answer to Welcomes");
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

    /// Joins from a Welcome unless this device is already in that chat past it. A Welcome that
    /// cannot be used (removed again meanwhile, or built for another chat) is dropped with a
    /// warning so it never blocks the device. Returns whether the device joined.
    async fn accept_welcome(&mut self, welcome: veche_protocol::wire::WelcomeEnvelope) -> anyhow::Result<bool> {
        let current = self.state.chat(welcome.group)?.is_some_and(|c| c.active && c.processed >= welcome.commit_seq);
        let mut joined = false;
        if !current {
            match self.state.mls()?.join_from_welcome(&welcome.welcome) {
                Ok(group) if group == welcome.group => match self.call(Request::Chat { group }).await {
                    Ok(Response::Chat(info)) => {
                        let chat = LocalChat {
                            kind: info.kind,
                            name: info.name,
                            processed: welcome.commit_seq,
                            active: true,
                            leavers: Vec::new(),
                        };
                        self.state.persist(|txn| state::put_chat(txn, group, &chat))?;
                        joined = true;
                    }
                    Ok(other) => return Err(unexpected(other)),
                    Err(CallError::Api(e)) => {
                        eprintln!("warning: a welcome to {group} is no longer usable: {}", e.message);
                        self.state.mls()?.forget_group(group)?;
                        self.state.persist(|_| Ok(()))?;
                    }
                    Err(e) => {
                        // Keep the welcome for the next run; do not keep a half-joined group.
                        self.state.mls()?.rollback();
                        return Err(e.into());
                    }
                },
                Ok(other) => {
                    eprintln!("warning: a welcome for {} was for chat {other}; ignored", welcome.group);
                    self.state.mls()?.forget_group(other)?;
                    self.state.persist(|_| Ok(()))?;
                }
                Err(e) => eprintln!("warning: ignoring a welcome to {}: {e}", welcome.group),
            }
        }
        match self.call(Request::AckWelcome { id: welcome.id }).await {
            Ok(_) | Err(CallError::Api(_)) => Ok(joined),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn chat_info(&mut self, group: GroupId) -> anyhow::Result<veche_protocol::wire::ChatInfo> {
        match self.call(Request::Chat { group }).await? {
            Response::Chat(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// Reloads the chat's info from the node and keeps its (possibly new) name locally.
    pub async fn refresh_chat_name(&mut self, group: GroupId) -> anyhow::Result<veche_protocol::wire::ChatInfo> {
        let info = self.chat_info(group).await?;
        if let Some(mut chat) = self.state.chat(group)?
            && chat.name != info.name
        {
            chat.name = info.name.clone();
            self.state.persist(|txn| state::put_chat(txn, group, &chat))?;
        }
        Ok(info)
    }

    /// Processes every log entry of a chat this device has not processed yet.
    pub async fn sync_chat(&mut self, group: GroupId) -> anyhow::Result<()> {
        self.resend_outbox(group).await?;
        loop {
            let chat = self.state.chat(group)?.with_context(|| format!("unknown chat {group}"))?;
            if !chat.active {
                return Ok(());
            }
            let response = self.call(Request::Fetch { group, after: chat.processed, limit: PAGE }).await?;
            let Response::Messages { messages, head } = response else {
                bail!("unexpected answer to Fetch");
            };
            if messages.is_empty() {
                return self.commit_pending_leaves(group).await;
            }
            let last = self.process_batch(group, chat, messages, true)?;
            self.call(Request::Ack { group, seq: last }).await?;
            if last >= head {
                self.commit_pending_leaves(group).await?;
                return Ok(());
            }
        }
    }

    /// Applies fetched or live entries in order and persists them in one transaction.
    /// Returns the new processed sequence number. `fetched`: the entries come from a Fetch, so a
    /// gap before them means the node no longer keeps what is missing (retention).
    pub fn process_batch(
        &mut self,
        group: GroupId,
        mut chat: LocalChat,
        entries: Vec<Delivered>,
        fetched: bool,
    ) -> anyhow::Result<u64> {
        let me = self.me()?;
        let mut history = Vec::new();
        for entry in entries {
            if entry.seq <= chat.processed || !chat.active {
                continue;
            }
            if entry.seq > chat.processed + 1 {
                if !fetched {
                    // Live events skipped ahead: stop here and let the caller fetch what is missing.
                    break;
                }
                let missing = entry.seq - chat.processed - 1;
                history.push(HistoryEntry {
                    seq: chat.processed + 1,
                    sender: me,
                    sent_at_ms: 0,
                    stored_at_ms: entry.stored_at_ms,
                    own: false,
                    body: HistoryBody::System(format!(
                        "{missing} earlier messages expired on the node before this device fetched them"
                    )),
                });
            }
            chat.processed = entry.seq;
            if entry.sender == me && self.state.has_history(group, entry.seq)? {
                continue; // our own message or commit, recorded when the node stored it
            }
            let body = match self.state.mls()?.process(&entry.payload) {
                Ok(Processed::Application { plaintext, .. }) => match AppMessage::decode(&plaintext) {
                    Ok(message) => Some((
                        message.sent_at_ms,
                        match message.body {
                            Body::Text { text } => HistoryBody::Text(text),
                            Body::Call(CallRecord::Missed) => HistoryBody::System("missed call".into()),
                            Body::Call(CallRecord::Declined) => HistoryBody::System("call declined".into()),
                            Body::Whiteboard { items } => {
                                HistoryBody::System(format!("whiteboard saved ({} items)", items.len()))
                            }
                        },
                    )),
                    Err(e) => Some((0, HistoryBody::Unreadable(e.to_string()))),
                },
                Ok(Processed::Commit { sender, added, removed, we_were_removed, .. }) => {
                    chat.leavers.retain(|a| !removed.iter().any(|r| r.account == *a));
                    if we_were_removed {
                        chat.active = false;
                    }
                    let describe = |ids: &[veche_mls::MemberIdentity]| {
                        ids.iter().map(|m| m.account.to_hex()[..12].to_string()).collect::<Vec<_>>().join(", ")
                    };
                    let mut text = Vec::new();
                    if sender.is_some() && added.len() == 1 && added.first() == sender.as_ref() {
                        text.push(format!("{} joined by link", describe(&added)));
                    } else if !added.is_empty() {
                        text.push(format!("added {}", describe(&added)));
                    }
                    if !removed.is_empty() {
                        text.push(format!("removed {}", describe(&removed)));
                    }
                    (!text.is_empty()).then(|| (0, HistoryBody::System(text.join("; "))))
                }
                Ok(Processed::Proposal { sender, kind: veche_mls::ProposalKind::Leave }) => {
                    if !chat.leavers.contains(&sender.account) {
                        chat.leavers.push(sender.account);
                    }
                    None
                }
                Err(ProcessError::OwnMessage | ProcessError::Stale { .. }) => None,
                Err(e) if entry.sender == me && entry.kind == EntryKind::Handshake => {
                    // Our own commit, stored by the node although we never heard back: apply it.
                    match self.state.mls()?.merge_pending_commit(group) {
                        Ok(()) => None,
                        Err(_) => Some((0, HistoryBody::Unreadable(e.to_string()))),
                    }
                }
                Err(e) => Some((0, HistoryBody::Unreadable(e.to_string()))),
            };
            if let Some((sent_at_ms, body)) = body {
                history.push(HistoryEntry {
                    seq: entry.seq,
                    sender: entry.sender,
                    sent_at_ms,
                    stored_at_ms: entry.stored_at_ms,
                    own: entry.sender == me,
                    body,
                });
            }
        }
        let processed = chat.processed;
        self.state.persist(|txn| {
            for entry in &history {
                state::put_history(txn, group, entry)?;
            }
            state::put_chat(txn, group, &chat)
        })?;
        Ok(processed)
    }

    /// Handles a live event; returns the chat it touched.
    pub async fn handle_event(&mut self, event: Event) -> anyhow::Result<Option<GroupId>> {
        match event {
            Event::Message(delivered) => {
                let group = delivered.group;
                let Some(chat) = self.state.chat(group)? else {
                    return Ok(None);
                };
                if delivered.seq == chat.processed + 1 {
                    let seq = self.process_batch(group, chat, vec![delivered], false)?;
                    self.call(Request::Ack { group, seq }).await?;
                    self.commit_pending_leaves(group).await?;
                } else if delivered.seq > chat.processed + 1 {
                    self.sync_chat(group).await?;
                }
                Ok(Some(group))
            }
            Event::Welcome(welcome) => {
                let group = welcome.group;
                if self.accept_welcome(welcome).await? {
                    self.sync_chat(group).await?;
                }
                Ok(Some(group))
            }
            Event::Lagged => {
                self.sync_all().await?;
                Ok(None)
            }
            Event::ChatUpdated { group } => {
                if self.state.chat(group)?.is_some() {
                    self.refresh_chat_name(group).await?;
                }
                Ok(Some(group))
            }
            // The native client does not take part in calls.
            Event::CallOffer { .. } | Event::Call { .. } | Event::CallRing { .. } | Event::CallRingEnded { .. } => {
                Ok(None)
            }
        }
    }

    /// Sends ciphertexts persisted before a crash (the node drops duplicates).
    async fn resend_outbox(&mut self, group: GroupId) -> anyhow::Result<()> {
        for (id, entry) in self.state.outbox(group)? {
            let result = self.call(Request::Send { group, message: entry.ciphertext }).await;
            match result {
                Ok(Response::Stored { seq }) => {
                    // Stored now, or before the crash (the node answers with the original seq).
                    let history = self.own_entry(seq, HistoryBody::Text(entry.text))?;
                    self.state.persist(|txn| {
                        state::remove_outbox(txn, group, id)?;
                        state::put_history(txn, group, &history)
                    })?;
                }
                Err(CallError::Api(e)) if retryable(e.code) => return Err(CallError::Api(e).into()),
                Ok(_) | Err(CallError::Api(_)) => {
                    // Refused for good (e.g. the epoch moved on): the message was never stored.
                    eprintln!("warning: a message saved before a crash could not be sent: {}", entry.text);
                    self.state.persist(|txn| state::remove_outbox(txn, group, id))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// A history entry for something this device sent and the node stored as `seq`.
    fn own_entry(&self, seq: u64, body: HistoryBody) -> anyhow::Result<HistoryEntry> {
        Ok(HistoryEntry { seq, sender: self.me()?, sent_at_ms: now_ms(), stored_at_ms: now_ms(), own: true, body })
    }

    /// Sends a text message; returns its sequence number.
    pub async fn send_text(&mut self, group: GroupId, text: &str) -> anyhow::Result<u64> {
        let content = AppMessage::text(text, now_ms())?.encode()?;
        for _ in 0..MAX_ATTEMPTS {
            let chat = self.state.chat(group)?.with_context(|| format!("unknown chat {group}"))?;
            if !chat.active {
                bail!("you are no longer a member of this chat");
            }
            let ciphertext = self.state.mls()?.encrypt(group, &content)?;
            // Persist the advanced ratchet before the ciphertext leaves: a crash must never make
            // this device encrypt twice with the same key.
            let outbox_id = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let outbox = state::OutboxEntry { ciphertext: ciphertext.clone(), text: text.to_string() };
            self.state.persist(|txn| state::put_outbox(txn, group, outbox_id, &outbox))?;
            let result = self.call(Request::Send { group, message: ciphertext }).await;
            match result {
                Ok(Response::Stored { seq }) => {
                    let entry = self.own_entry(seq, HistoryBody::Text(text.to_string()))?;
                    self.state.persist(|txn| {
                        state::remove_outbox(txn, group, outbox_id)?;
                        state::put_history(txn, group, &entry)
                    })?;
                    return Ok(seq);
                }
                Ok(other) => return Err(unexpected(other)),
                Err(CallError::Api(e)) if matches!(e.code, ErrorCode::StaleEpoch { .. }) => {
                    self.state.persist(|txn| state::remove_outbox(txn, group, outbox_id))?;
                    self.sync_chat(group).await?;
                }
                // The node may store it on a retry: keep it in the outbox for the next run.
                Err(CallError::Api(e)) if retryable(e.code) => return Err(CallError::Api(e).into()),
                Err(CallError::Api(e)) => {
                    self.state.persist(|txn| state::remove_outbox(txn, group, outbox_id))?;
                    return Err(CallError::Api(e).into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        bail!("the chat kept changing; try again")
    }

    /// Makes a commit with `make` (after catching up), sends it, and merges it once stored.
    /// Retries when another commit won the epoch.
    pub async fn commit(
        &mut self,
        group: GroupId,
        describe: &str,
        make: impl Fn(&mut veche_mls::Client) -> Result<CommitBundle, veche_mls::ClientError>,
    ) -> anyhow::Result<(u64, CommitBundle)> {
        for _ in 0..MAX_ATTEMPTS {
            self.sync_chat(group).await?;
            let bundle = make(self.state.mls()?)?;
            self.state.persist(|_| Ok(()))?;
            let request = commit_request(group, &bundle);
            match self.call(request).await {
                Ok(Response::Stored { seq }) => {
                    self.state.mls()?.merge_pending_commit(group)?;
                    let entry = self.own_entry(seq, HistoryBody::System(describe.to_string()))?;
                    self.state.persist(|txn| state::put_history(txn, group, &entry))?;
                    return Ok((seq, bundle));
                }
                Ok(other) => return Err(unexpected(other)),
                Err(CallError::Api(e)) => {
                    self.state.mls()?.discard_pending_commit(group)?;
                    self.state.persist(|_| Ok(()))?;
                    if !matches!(e.code, ErrorCode::StaleEpoch { .. }) {
                        return Err(CallError::Api(e).into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        bail!("the chat kept changing; try again")
    }

    /// Owners and admins commit the removal of members who asked to leave: their pending leave
    /// proposals if still valid, else (a commit made them stale) an inline removal.
    async fn commit_pending_leaves(&mut self, group: GroupId) -> anyhow::Result<()> {
        let me = self.me()?;
        let mls = self.state.mls()?;
        if !mls.is_active(group) {
            return Ok(());
        }
        let Ok(policy) = mls.policy(group) else { return Ok(()) };
        let manager = policy.role(&me).can_manage_members();
        // Any member may commit a leave proposal (until it is committed nobody can send);
        // removing a leaver inline, after their proposal went stale, needs the rights to remove.
        let bundle = match mls.commit_pending_proposals(group) {
            Ok(Some(bundle)) => Some(bundle),
            Ok(None) | Err(_) if !manager => None,
            Ok(None) | Err(_) => {
                let leavers = self.state.chat(group)?.map(|c| c.leavers).unwrap_or_default();
                let mls = self.state.mls()?;
                let members: Vec<AccountId> =
                    mls.members(group).map(|m| m.into_iter().map(|(id, _)| id.account).collect()).unwrap_or_default();
                let still_here: Vec<AccountId> = leavers.into_iter().filter(|a| members.contains(a)).collect();
                if still_here.is_empty() { None } else { mls.remove_members(group, &still_here).ok() }
            }
        };
        let Some(bundle) = bundle else { return Ok(()) };
        self.state.persist(|_| Ok(()))?;
        let request = commit_request(group, &bundle);
        match self.call(request).await {
            Ok(Response::Stored { seq }) => {
                self.state.mls()?.merge_pending_commit(group)?;
                let entry = self.own_entry(seq, HistoryBody::System("removed members who left".into()))?;
                let mut chat = self.state.chat(group)?.context("chat vanished")?;
                let removed: Vec<AccountId> = bundle.removed.iter().map(|m| m.account).collect();
                chat.leavers.retain(|a| !removed.contains(a));
                self.state.persist(|txn| {
                    state::put_history(txn, group, &entry)?;
                    state::put_chat(txn, group, &chat)
                })?;
            }
            Ok(other) => return Err(unexpected(other)),
            Err(CallError::Api(_)) => {
                // Someone else committed first, or the node refused: drop ours; the next sync retries.
                let _ = self.state.mls()?.discard_pending_commit(group);
                self.state.persist(|_| Ok(()))?;
            }
            // The node may have stored it: keep it pending; the next sync merges or discards it.
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Records a chat this device created or joined at `processed`.
    pub fn add_local_chat(&mut self, group: GroupId, kind: ChatKind, name: &str, processed: u64) -> anyhow::Result<()> {
        let chat = LocalChat { kind, name: name.to_string(), processed, active: true, leavers: Vec::new() };
        self.state.persist(|txn| state::put_chat(txn, group, &chat))
    }
}
