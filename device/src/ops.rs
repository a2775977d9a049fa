//! The member-device rules, each once: signing in, following the node's log, the outbox, commits
//! with their `StaleEpoch` retry, joins, leaves, registration and the key refresh after a
//! restore. Every MLS change is persisted (with the data it produced) before anything that
//! depends on it leaves the device.

use veche_mls::{CommitBundle, ProcessError, Processed};
use veche_protocol::content::AppMessage;
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId};
use veche_protocol::link::InviteLink;
use veche_protocol::wire::{ChatInfo, Delivered, EntryKind, ErrorCode, Event, InviteToken, Request, Response};

use crate::device::{Command, Cx, DeviceEvent, Outcome};
use crate::error::{
    CallError, CreateGroupError, DeviceError, DirectChatError, JoinError, RegisterError, SendError, SignInError,
};
use crate::model::{Batch, DeviceRecord, HistoryBody, HistoryEntry, LocalChat, OutboxEntry, PendingJoin, SystemEvent};

/// Entries fetched per request while catching up.
pub const PAGE: u32 = 500;
/// Attempts when the chat's epoch moves under the device.
pub const MAX_ATTEMPTS: usize = 8;
/// Below this many one-time key packages on the node, the device uploads more.
pub const KEY_PACKAGES_LOW: u32 = 10;
/// How many it uploads then.
pub const KEY_PACKAGES_BATCH: usize = 40;
/// One-time key packages uploaded at registration (plus a last-resort one).
pub const KEY_PACKAGES_FIRST: usize = 50;
/// The pause after a resync before a chat may be resynced again, and after a first failed one,
/// milliseconds: one outbox retry period, so a passing refusal clears quickly, while a device that
/// keeps falling behind makes at most one commit per chat in this time.
pub const RESYNC_BACKOFF_FIRST_MS: u64 = 5_000;
/// The longest pause between failed resyncs of a chat (the pause doubles per failure up to this),
/// milliseconds: a chat the node keeps refusing costs it one commit attempt per 10 minutes per
/// device, and the member still gets the chat back within 10 minutes once the cause is gone.
pub const RESYNC_BACKOFF_MAX_MS: u64 = 10 * 60 * 1000;

/// When a chat may be resynced again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResyncWait {
    /// Failed attempts in a row.
    pub failures: u32,
    pub not_before_ms: u64,
}

type Result<T, E = DeviceError> = std::result::Result<T, E>;

/// Refusals after which the same request may succeed later (the outbox keeps the message).
fn retryable(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::Internal | ErrorCode::RateLimited | ErrorCode::Unavailable)
}

fn stale(e: &CallError) -> bool {
    matches!(e, CallError::Api(api) if matches!(api.code, ErrorCode::StaleEpoch { .. }))
}

fn commit_request(group: GroupId, bundle: &CommitBundle) -> Request {
    Request::Commit {
        group,
        commit: bundle.commit.clone(),
        welcome: bundle.welcome.clone(),
        group_info: bundle.group_info.clone(),
    }
}

fn random_group() -> GroupId {
    let secret = veche_mls::Client::generate_secret();
    let mut id = [0u8; 16];
    id.copy_from_slice(&secret[..16]);
    GroupId(id)
}

/// A history entry for something this device did, stored by the node as `seq`.
fn own_entry(cx: &Cx, seq: u64, sent_at_ms: u64, body: HistoryBody) -> Result<HistoryEntry> {
    Ok(HistoryEntry { seq, sender: cx.me()?, sent_at_ms, stored_at_ms: cx.now(), own: true, body })
}

fn chat(cx: &Cx, group: GroupId) -> Option<LocalChat> {
    cx.model(|m| m.chats.get(&group).cloned())
}

async fn chat_info(cx: &Cx, group: GroupId) -> Result<ChatInfo> {
    match cx.call(Request::Chat { group }).await? {
        Response::Chat(info) => Ok(info),
        _ => Err(DeviceError::Unexpected("Chat")),
    }
}

// ---------------------------------------------------------------------------------------------
// Connecting and signing in

/// After a connection opened: sign in and catch up (a device not yet registered does nothing).
pub(crate) async fn connected(cx: &Cx) {
    if cx.model(|m| m.device.is_none()) {
        return;
    }
    if let Err(e) = sign_in(cx).await {
        cx.notify(DeviceEvent::SignInFailed(e));
        return;
    }
    if let Err(e) = sync_all(cx).await {
        cx.notify(DeviceEvent::Error(e));
    }
    cx.core().live = true;
    cx.notify(DeviceEvent::Synced);
}

async fn sign_in(cx: &Cx) -> Result<()> {
    let record = cx.model(|m| m.device.clone()).ok_or(DeviceError::NoDevice)?;
    let (hello, exporter) = {
        let core = cx.core();
        (core.hello.clone().ok_or(DeviceError::Offline)?, core.exporter)
    };
    if hello.node_id != record.node_id {
        return Err(SignInError::NodeChanged { known: record.node_id, now: hello.node_id }.into());
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&record.secret);
    let payload =
        veche_protocol::auth::sign_in_payload(&hello.node_id, &hello.challenge, &record.device, exporter.as_ref());
    let signature = veche_protocol::auth::sign(&key, &payload);
    let binding = veche_protocol::auth::ChannelBinding::of(exporter.as_ref());
    let Response::SignedIn(account) = cx.call(Request::SignIn { device: record.device, signature, binding }).await?
    else {
        return Err(DeviceError::Unexpected("SignIn"));
    };
    cx.core().signed_in = true;
    if !account.home_bound {
        // Registered before home bindings existed (or the binding was lost): send it now.
        bind_home(cx, &record.secret, account.account, account.device, &hello.node_id).await;
    }
    // The node knows the current name and admin flag (changed elsewhere, or by an admin).
    if account.display_name != record.display_name || account.node_admin != record.node_admin {
        let mut updated = record;
        updated.display_name = account.display_name.clone();
        updated.node_admin = account.node_admin;
        let mut batch = Batch::default();
        batch.device(updated).profile(account.account, account.display_name.clone());
        cx.persist(batch).await?;
    }
    cx.notify(DeviceEvent::SignedIn(account));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Following the node's log

/// Finishes interrupted joins, refreshes keys after a restore, tops up key packages, catches up
/// every chat, then joins chats from waiting welcomes.
pub(crate) async fn sync_all(cx: &Cx) -> Result<()> {
    let pending: Vec<(GroupId, PendingJoin)> =
        cx.model(|m| m.pending_joins.iter().map(|(g, p)| (*g, p.clone())).collect());
    for (group, join) in pending {
        let token = InviteToken { invite: join.invite, secret: join.secret };
        if finish_join(cx, group, join).await?.is_none() {
            // The chat moved on while the join waited: join again with its current GroupInfo.
            if let Err(e) = join_with(cx, token).await {
                cx.notify(DeviceEvent::Error(e));
            }
        }
    }
    if cx.model(|m| m.restored) {
        refresh_keys_after_restore(cx).await?;
    }
    replenish_key_packages(cx).await?;
    if let Response::Chats(infos) = cx.call(Request::Chats).await? {
        for info in infos {
            apply_info(cx, info).await?;
        }
    }
    // Chats first: a removal must be processed before a Welcome that re-adds this device.
    let groups: Vec<GroupId> = cx.model(|m| m.chats.iter().filter(|(_, c)| c.active).map(|(g, _)| *g).collect());
    for group in groups {
        // One chat's trouble (a message refused for good) does not hold up the others.
        match sync_chat(cx, group).await {
            Err(DeviceError::Offline) => return Err(DeviceError::Offline),
            // Said once, by the failed attempt (see `resync`).
            Err(DeviceError::Resyncing) | Ok(()) => {}
            Err(e) => cx.notify(DeviceEvent::Error(e)),
        }
    }
    sync_welcomes(cx).await
}

/// Uploads fresh one-time key packages when the node holds few of this device's.
async fn replenish_key_packages(cx: &Cx) -> Result<()> {
    let Response::KeyPackageCount(count) = cx.call(Request::KeyPackageCount).await? else {
        return Err(DeviceError::Unexpected("KeyPackageCount"));
    };
    if count >= KEY_PACKAGES_LOW {
        return Ok(());
    }
    let packages = cx.mls(|m| m.key_packages(KEY_PACKAGES_BATCH))?.map_err(DeviceError::mls)?;
    // Their private keys are saved before the packages leave, or a Welcome to one of them could
    // never be opened.
    cx.persist(Batch::default()).await?;
    cx.call(Request::PublishKeyPackages { packages, last_resort: None }).await?;
    Ok(())
}

async fn sync_welcomes(cx: &Cx) -> Result<()> {
    loop {
        let Response::Welcomes(welcomes) = cx.call(Request::Welcomes).await? else {
            return Err(DeviceError::Unexpected("Welcomes"));
        };
        if welcomes.is_empty() {
            return Ok(());
        }
        for welcome in welcomes {
            let group = welcome.group;
            if accept_welcome(cx, welcome).await? {
                sync_chat(cx, group).await?;
            }
        }
    }
}

/// Joins from a Welcome unless this device is already in that chat past it. A Welcome that
/// cannot be used (removed again meanwhile, or built for another chat) is acknowledged and
/// dropped so it never blocks the device. Returns whether the device joined.
async fn accept_welcome(cx: &Cx, welcome: veche_protocol::wire::WelcomeEnvelope) -> Result<bool> {
    let current = chat(cx, welcome.group).is_some_and(|c| c.active && c.processed >= welcome.commit_seq);
    let mut joined = false;
    if !current {
        match cx.mls(|m| m.join_from_welcome(&welcome.welcome))? {
            Ok(group) if group == welcome.group => match cx.call(Request::Chat { group }).await {
                Ok(Response::Chat(info)) => {
                    let mut batch = Batch::default();
                    batch.chat(group, LocalChat::new(info.kind, &info.name, welcome.commit_seq));
                    cx.persist(batch).await?;
                    cx.notify(DeviceEvent::ChatChanged(group));
                    cx.notify(DeviceEvent::ChatInfo(info));
                    joined = true;
                }
                Ok(_) => return Err(DeviceError::Unexpected("Chat")),
                Err(CallError::Api(_)) => {
                    cx.mls(|m| m.forget_group(group))?.map_err(DeviceError::mls)?;
                    cx.persist(Batch::default()).await?;
                }
                Err(CallError::Transport) => {
                    // Keep the welcome for the next connection; do not keep a half-joined group.
                    cx.mls(|m| m.rollback())?;
                    return Err(DeviceError::Offline);
                }
            },
            Ok(other) => {
                cx.mls(|m| m.forget_group(other))?.map_err(DeviceError::mls)?;
                cx.persist(Batch::default()).await?;
            }
            Err(_) => {} // unusable: acknowledged below
        }
    }
    match cx.call(Request::AckWelcome { id: welcome.id }).await {
        Ok(_) | Err(CallError::Api(_)) => Ok(joined),
        Err(CallError::Transport) => Err(DeviceError::Offline),
    }
}

/// Catches up the chat's log, then sends what waits in its outbox (after catching up, so saved
/// ciphertexts of an old epoch are re-encrypted rather than refused).
pub(crate) async fn sync_chat(cx: &Cx, group: GroupId) -> Result<()> {
    catch_up(cx, group).await?;
    flush_outbox(cx, group).await
}

/// Processes every log entry of the chat this device has not processed yet; rejoins the chat
/// ([`resync`]) when it reaches one it cannot process.
pub(crate) async fn catch_up(cx: &Cx, group: GroupId) -> Result<()> {
    loop {
        let Some(chat) = chat(cx, group) else { return Ok(()) };
        if !chat.active {
            return Ok(());
        }
        let Response::Messages { messages, head } =
            cx.call(Request::Fetch { group, after: chat.processed, limit: PAGE }).await?
        else {
            return Err(DeviceError::Unexpected("Fetch"));
        };
        if messages.is_empty() {
            return commit_pending_leaves(cx, group).await;
        }
        let Progress { processed: last, stuck } = process_batch(cx, group, messages, true).await?;
        if last > chat.processed {
            cx.call(Request::Ack { group, seq: last }).await?;
        }
        if stuck {
            resync(cx, group, last + 1).await?;
            continue;
        }
        if last >= head {
            return commit_pending_leaves(cx, group).await;
        }
    }
}

/// How far [`process_batch`] got.
pub(crate) struct Progress {
    /// The new processed sequence number.
    pub processed: u64,
    /// Stopped at the entry after `processed`: this device cannot process it, and will not be
    /// able to process anything after it (see [`cannot_follow`]).
    pub stuck: bool,
}

/// Whether a failure to process a log entry means this device cannot follow the chat any more
/// from here, rather than one unreadable message: its state of the chat is gone, the entry is
/// from an epoch it has not reached (it missed commits, e.g. dropped by retention before it
/// fetched them), or it is a commit it cannot apply (so every later entry is out of reach too).
/// Not: a commit the group policy refuses (rejoining would accept what the policy refused), nor
/// one bad application message (any member could then make every device rejoin).
fn cannot_follow(error: &ProcessError, payload: &[u8]) -> bool {
    match error {
        ProcessError::UnknownGroup(_) | ProcessError::NotActive(_) | ProcessError::FutureEpoch { .. } => true,
        ProcessError::Rejected(_) => veche_mls::inspect::inspect_message(payload).is_ok_and(|m| {
            matches!(m.kind, veche_mls::inspect::MessageKind::Commit | veche_mls::inspect::MessageKind::ExternalCommit)
        }),
        _ => false,
    }
}

/// Applies fetched or live entries in order and persists what they did in one write, stopping
/// at an entry this device cannot follow the chat past. `fetched`: the entries answer a Fetch, so
/// a gap before them means the node no longer keeps what is missing (retention); live entries
/// stop at a gap.
pub(crate) async fn process_batch(cx: &Cx, group: GroupId, entries: Vec<Delivered>, fetched: bool) -> Result<Progress> {
    let me = cx.me()?;
    let Some(mut chat) = chat(cx, group) else { return Ok(Progress { processed: 0, stuck: false }) };
    let mut batch = Batch::default();
    let mut membership_changed = false;
    let mut fresh: Vec<(AccountId, String)> = Vec::new();
    let mut stuck = false;
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
        // Our own message or commit, recorded when the node stored it.
        if entry.sender == me && cx.model(|m| m.has_history(group, entry.seq)) {
            continue;
        }
        let processed = cx.mls(|m| m.process(&entry.payload))?;
        // Who the entry is from, as MLS authenticates it; the node's word when MLS names none.
        let mut sender = entry.sender;
        let body = match processed {
            Ok(Processed::Application { sender: author, plaintext }) => {
                sender = author.account;
                if author.account != entry.sender {
                    // The node (or a linked home node) put another member's name on it.
                    Some((0, HistoryBody::Forged { claimed: entry.sender }))
                } else {
                    match AppMessage::decode(&plaintext) {
                        Ok(message) => Some((message.sent_at_ms, HistoryBody::of(message.body))),
                        Err(_) => Some((0, HistoryBody::System(SystemEvent::Unreadable))),
                    }
                }
            }
            Ok(Processed::Commit { sender: committer, added, removed, roles_changed, we_were_removed, .. }) => {
                membership_changed = true;
                if let Some(c) = committer {
                    sender = c.account;
                }
                chat.leavers.retain(|a| !removed.iter().any(|r| r.account == *a));
                if we_were_removed {
                    chat.active = false;
                }
                let added: Vec<AccountId> = added.iter().map(|m| m.account).collect();
                let removed: Vec<AccountId> = removed.iter().map(|m| m.account).collect();
                let rejoined = committer.map(|c| c.account).filter(|c| added == [*c] && removed == [*c]);
                let event = if let Some(account) = rejoined {
                    Some(SystemEvent::DeviceRejoined(account))
                } else if committer.is_some()
                    && added.len() == 1
                    && removed.is_empty()
                    && committer.map(|s| s.account) == added.first().copied()
                {
                    Some(SystemEvent::JoinedByLink(added[0]))
                } else if !added.is_empty() && !removed.is_empty() {
                    Some(SystemEvent::Membership { added, removed })
                } else if !added.is_empty() {
                    Some(SystemEvent::Added(added))
                } else if !removed.is_empty() {
                    Some(SystemEvent::Removed(removed))
                } else if roles_changed {
                    Some(SystemEvent::RolesChanged { by: committer.map(|c| c.account) })
                } else {
                    None
                };
                event.map(|e| (0, HistoryBody::System(e)))
            }
            Ok(Processed::Proposal { sender: proposer, kind: veche_mls::ProposalKind::Leave }) => {
                if !chat.leavers.contains(&proposer.account) {
                    chat.leavers.push(proposer.account);
                }
                None
            }
            Err(ProcessError::OwnMessage | ProcessError::Stale { .. }) => None,
            Err(e) => {
                // Our own commit, stored by the node although we never heard back: apply it.
                let own_commit = entry.sender == me
                    && entry.kind == EntryKind::Handshake
                    && cx.mls(|m| m.merge_pending_commit(group))?.is_ok();
                if own_commit {
                    membership_changed = true;
                    None
                } else if cannot_follow(&e, &entry.payload) {
                    chat.processed = entry.seq - 1;
                    stuck = true;
                    break;
                } else {
                    Some((0, HistoryBody::System(SystemEvent::Unreadable)))
                }
            }
        };
        if let Some((sent_at_ms, body)) = body {
            if let HistoryBody::Text(text) = &body
                && sender != me
            {
                fresh.push((sender, text.clone()));
            }
            batch.history(
                group,
                HistoryEntry {
                    seq: entry.seq,
                    sender,
                    sent_at_ms,
                    stored_at_ms: entry.stored_at_ms,
                    own: sender == me,
                    body,
                },
            );
        }
    }
    let processed = chat.processed;
    batch.chat(group, chat);
    cx.persist(batch).await?;
    cx.notify(DeviceEvent::ChatChanged(group));
    if membership_changed {
        refresh_chat(cx, group).await;
    }
    learn_names(cx, group).await;
    if cx.core().live && !fresh.is_empty() {
        cx.notify(DeviceEvent::Fresh { group, messages: fresh });
    }
    Ok(Progress { processed, stuck })
}

/// Handles a live event from the node.
pub(crate) async fn handle_event(cx: &Cx, event: Event) -> Result<()> {
    match event {
        Event::Message(delivered) => {
            let group = delivered.group;
            let Some(chat) = chat(cx, group) else { return Ok(()) };
            if delivered.seq == chat.processed + 1 {
                let Progress { processed: seq, stuck } = process_batch(cx, group, vec![delivered], false).await?;
                if stuck {
                    // Caught up from the node's log, which rejoins the chat.
                    return sync_chat(cx, group).await;
                }
                cx.call(Request::Ack { group, seq }).await?;
                commit_pending_leaves(cx, group).await?;
            } else if delivered.seq > chat.processed + 1 {
                sync_chat(cx, group).await?;
            }
        }
        Event::Welcome(welcome) => {
            let group = welcome.group;
            if accept_welcome(cx, welcome).await? {
                sync_chat(cx, group).await?;
            }
        }
        Event::Lagged => sync_all(cx).await?,
        Event::ChatUpdated { group } => {
            if chat(cx, group).is_some() {
                refresh_chat(cx, group).await;
                // Members the node deleted (guests whose meeting is over) may have to go.
                if chat(cx, group).is_some_and(|c| c.active && !c.leavers.is_empty()) {
                    commit_pending_leaves(cx, group).await?;
                }
            }
        }
        // Handed to the media layer by `Device::handle_event`.
        Event::CallOffer { .. } | Event::Call { .. } | Event::CallRing { .. } | Event::CallRingEnded { .. } => {}
    }
    Ok(())
}

/// Reloads the chat's name, members and roles from the node (best effort).
async fn refresh_chat(cx: &Cx, group: GroupId) {
    if let Ok(Response::Chat(info)) = cx.call(Request::Chat { group }).await {
        let _ = apply_info(cx, info).await;
    }
}

/// Keeps the node's view of a chat: its (possibly new) name is stored, member names learnt, and
/// members whose accounts the node deleted (guests whose meeting is over) are treated as leavers,
/// whom an owner's or admin's device removes (`commit_pending_leaves`).
async fn apply_info(cx: &Cx, info: ChatInfo) -> Result<()> {
    let group = info.group;
    let Some(mut local) = chat(cx, group) else { return Ok(()) };
    let mut batch = Batch::default();
    let new_gone: Vec<AccountId> = info.gone.iter().filter(|a| !local.leavers.contains(a)).copied().collect();
    if local.name != info.name || !new_gone.is_empty() {
        local.name = info.name.clone();
        local.leavers.extend(new_gone);
        batch.chat(group, local);
    }
    let mut names = Vec::new();
    cx.model(|m| {
        for member in &info.members {
            if m.profiles.get(&member.account) != Some(&member.display_name) {
                names.push((member.account, member.display_name.clone()));
            }
        }
    });
    for (account, name) in &names {
        batch.profile(*account, name.clone());
    }
    cx.persist(batch).await?;
    if !names.is_empty() {
        cx.notify(DeviceEvent::Names(names));
    }
    cx.notify(DeviceEvent::ChatInfo(info));
    Ok(())
}

/// Asks the node for display names of senders this device does not know yet (best effort).
async fn learn_names(cx: &Cx, group: GroupId) {
    let mut unknown: Vec<AccountId> = cx.model(|m| {
        m.history
            .get(&group)
            .into_iter()
            .flat_map(|h| h.values())
            .flat_map(|e| std::iter::once(e.sender).chain(e.body.mentioned()))
            .filter(|a| !m.profiles.contains_key(a))
            .collect()
    });
    unknown.sort();
    unknown.dedup();
    if unknown.is_empty() {
        return;
    }
    if let Ok(Response::Profiles(profiles)) = cx.call(Request::Profiles { accounts: unknown }).await {
        let mut batch = Batch::default();
        for profile in &profiles {
            batch.profile(profile.account, profile.display_name.clone());
        }
        if cx.persist(batch).await.is_ok() {
            cx.notify(DeviceEvent::Names(profiles.into_iter().map(|p| (p.account, p.display_name)).collect()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sending

/// Puts a message into the chat's outbox, then sends what waits there. Returns the sequence
/// number the node stored this message under.
async fn send(cx: &Cx, group: GroupId, body: veche_protocol::content::Body) -> Result<u64> {
    let local = chat(cx, group).ok_or(DeviceError::UnknownChat)?;
    if !local.active {
        return Err(DeviceError::NotMember);
    }
    let sent_at_ms = cx.now();
    let message = match body {
        // A text's own rules (not empty, at most MAX_TEXT_CHARS), checked before it is queued.
        veche_protocol::content::Body::Text { text } => AppMessage::text(&text, sent_at_ms).map_err(|e| match e {
            veche_protocol::content::ContentError::EmptyText => DeviceError::from(SendError::Empty),
            _ => DeviceError::from(SendError::TooLong),
        })?,
        body => AppMessage { sent_at_ms, body },
    };
    message.encode().map_err(|_| DeviceError::from(SendError::TooLong))?;
    let mut id = sent_at_ms * 1000;
    while cx.model(|m| m.outbox.get(&group).is_some_and(|o| o.contains_key(&id))) {
        id += 1;
    }
    let entry = OutboxEntry { body: message.body, sent_at_ms, ciphertext: None, failed: false };
    let mut batch = Batch::default();
    batch.outbox(group, id, entry);
    cx.persist(batch).await?;
    cx.notify(DeviceEvent::ChatChanged(group));
    if !cx.core().signed_in {
        return Err(DeviceError::Offline);
    }
    let mut stored = Vec::new();
    let result = flush(cx, group, &mut stored).await;
    if let Some((_, seq)) = stored.iter().find(|(stored_id, _)| *stored_id == id) {
        return Ok(*seq);
    }
    result?;
    // Not stored and no error: refused for good before (the chat was left meanwhile).
    Err(DeviceError::NotMember)
}

/// Sends the chat's waiting messages in order. Stops (keeping them) when offline or when the
/// node may still store them later; marks them failed when refused for good.
pub(crate) async fn flush_outbox(cx: &Cx, group: GroupId) -> Result<()> {
    flush(cx, group, &mut Vec::new()).await
}

/// [`flush_outbox`], noting the (outbox id, sequence number) of each message stored.
async fn flush(cx: &Cx, group: GroupId, stored: &mut Vec<(u64, u64)>) -> Result<()> {
    if !cx.core().signed_in {
        return Ok(());
    }
    let ids: Vec<u64> = cx.model(|m| m.outbox.get(&group).map(|o| o.keys().copied().collect()).unwrap_or_default());
    for id in ids {
        let mut attempts = 0;
        while let Some(mut entry) = cx.model(|m| m.outbox.get(&group).and_then(|o| o.get(&id)).cloned()) {
            if entry.failed {
                break;
            }
            attempts += 1;
            if attempts > MAX_ATTEMPTS {
                return Err(DeviceError::ChatBusy);
            }
            let active = chat(cx, group).is_some_and(|c| c.active);
            let ciphertext = match entry.ciphertext.clone() {
                Some(c) => c,
                None if !active => {
                    entry.failed = true;
                    let mut batch = Batch::default();
                    batch.outbox(group, id, entry);
                    cx.persist(batch).await?;
                    cx.notify(DeviceEvent::ChatChanged(group));
                    break;
                }
                None => {
                    let content = AppMessage { sent_at_ms: entry.sent_at_ms, body: entry.body.clone() }
                        .encode()
                        .map_err(|_| DeviceError::from(SendError::TooLong))?;
                    let ciphertext = match cx.mls(|m| m.encrypt(group, &content))? {
                        Ok(ciphertext) => ciphertext,
                        Err(e) => {
                            // MLS will not encrypt here (e.g. this device's own leave is pending):
                            // refused for good, like a refusal by the node.
                            entry.failed = true;
                            let mut batch = Batch::default();
                            batch.outbox(group, id, entry);
                            cx.persist(batch).await?;
                            cx.notify(DeviceEvent::ChatChanged(group));
                            return Err(DeviceError::mls(e));
                        }
                    };
                    // The advanced ratchet and the ciphertext are saved before it leaves: a crash
                    // never makes this device encrypt twice with the same key.
                    entry.ciphertext = Some(ciphertext.clone());
                    let mut batch = Batch::default();
                    batch.outbox(group, id, entry.clone());
                    cx.persist(batch).await?;
                    ciphertext
                }
            };
            match cx.call(Request::Send { group, message: ciphertext }).await {
                Ok(Response::Stored { seq }) => {
                    // Stored now, or before a crash (the node answers a repeat with the original seq).
                    let history = own_entry(cx, seq, entry.sent_at_ms, HistoryBody::of(entry.body.clone()))?;
                    let mut batch = Batch::default();
                    batch.remove_outbox(group, id).history(group, history);
                    cx.persist(batch).await?;
                    cx.notify(DeviceEvent::ChatChanged(group));
                    stored.push((id, seq));
                    break;
                }
                Ok(_) => return Err(DeviceError::Unexpected("Send")),
                Err(e) if stale(&e) => {
                    // The chat moved to a new epoch: catch up, then encrypt again.
                    entry.ciphertext = None;
                    let mut batch = Batch::default();
                    batch.outbox(group, id, entry);
                    cx.persist(batch).await?;
                    catch_up(cx, group).await?;
                }
                Err(CallError::Api(e)) if retryable(e.code) => return Err(DeviceError::Refused(e)),
                Err(CallError::Api(e)) => {
                    entry.failed = true;
                    entry.ciphertext = None;
                    let mut batch = Batch::default();
                    batch.outbox(group, id, entry);
                    cx.persist(batch).await?;
                    cx.notify(DeviceEvent::ChatChanged(group));
                    return Err(DeviceError::Refused(e));
                }
                Err(CallError::Transport) => return Err(DeviceError::Offline),
            }
        }
    }
    Ok(())
}

/// Makes a commit with `make` after catching up, sends it, merges it once stored. Retries when
/// another commit won the epoch. Leaves `processed` alone: entries stored before this commit
/// (and after the catch-up) are still fetched and processed.
async fn commit(
    cx: &Cx,
    group: GroupId,
    describe: SystemEvent,
    make: impl Fn(&mut veche_mls::Client) -> Result<CommitBundle, veche_mls::ClientError>,
) -> Result<u64> {
    for _ in 0..MAX_ATTEMPTS {
        catch_up(cx, group).await?;
        if !chat(cx, group).is_some_and(|c| c.active) {
            return Err(DeviceError::NotMember);
        }
        let bundle = cx.mls(&make)?.map_err(DeviceError::mls)?;
        cx.persist(Batch::default()).await?;
        match cx.call(commit_request(group, &bundle)).await {
            Ok(Response::Stored { seq }) => {
                cx.mls(|m| m.merge_pending_commit(group))?.map_err(DeviceError::mls)?;
                let mut batch = Batch::default();
                batch.history(group, own_entry(cx, seq, cx.now(), HistoryBody::System(describe.clone()))?);
                cx.persist(batch).await?;
                cx.notify(DeviceEvent::ChatChanged(group));
                refresh_chat(cx, group).await;
                return Ok(seq);
            }
            Ok(_) => return Err(DeviceError::Unexpected("Commit")),
            Err(CallError::Api(e)) => {
                cx.mls(|m| m.discard_pending_commit(group))?.map_err(DeviceError::mls)?;
                cx.persist(Batch::default()).await?;
                if !matches!(e.code, ErrorCode::StaleEpoch { .. }) {
                    return Err(DeviceError::Refused(e));
                }
            }
            // The node may have stored it: it stays pending; the next sync merges or drops it.
            Err(CallError::Transport) => return Err(DeviceError::Offline),
        }
    }
    Err(DeviceError::ChatBusy)
}

/// Completes the removal of members who asked to leave: their pending leave proposals if still
/// valid (any member may commit those), else, for owners and admins, an inline removal.
async fn commit_pending_leaves(cx: &Cx, group: GroupId) -> Result<()> {
    let me = cx.me()?;
    let leavers = chat(cx, group).map(|c| c.leavers).unwrap_or_default();
    let bundle = cx.mls(|mls| {
        if !mls.is_active(group) {
            return None;
        }
        let policy = mls.policy(group).ok()?;
        let manager = policy.role(&me).can_manage_members();
        match mls.commit_pending_proposals(group) {
            Ok(Some(bundle)) => Some(bundle),
            Ok(None) | Err(_) if !manager => None,
            Ok(None) | Err(_) => {
                let members: Vec<AccountId> =
                    mls.members(group).map(|m| m.into_iter().map(|(id, _)| id.account).collect()).unwrap_or_default();
                let still_here: Vec<AccountId> = leavers.into_iter().filter(|a| members.contains(a)).collect();
                if still_here.is_empty() { None } else { mls.remove_members(group, &still_here).ok() }
            }
        }
    })?;
    let Some(bundle) = bundle else { return Ok(()) };
    cx.persist(Batch::default()).await?;
    match cx.call(commit_request(group, &bundle)).await {
        Ok(Response::Stored { seq }) => {
            cx.mls(|m| m.merge_pending_commit(group))?.map_err(DeviceError::mls)?;
            let removed: Vec<AccountId> = bundle.removed.iter().map(|m| m.account).collect();
            let mut batch = Batch::default();
            batch.history(group, own_entry(cx, seq, cx.now(), HistoryBody::System(SystemEvent::RemovedLeavers))?);
            if let Some(mut local) = chat(cx, group) {
                local.leavers.retain(|a| !removed.contains(a));
                batch.chat(group, local);
            }
            cx.persist(batch).await?;
            cx.notify(DeviceEvent::ChatChanged(group));
            refresh_chat(cx, group).await;
        }
        Ok(_) => return Err(DeviceError::Unexpected("Commit")),
        Err(CallError::Api(_)) => {
            // Someone else committed first, or the node refused: drop ours; the next sync retries.
            let _ = cx.mls(|m| m.discard_pending_commit(group));
            cx.persist(Batch::default()).await?;
        }
        Err(CallError::Transport) => return Err(DeviceError::Offline),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Resync: rejoining a chat this device cannot follow any more

/// Rejoins a chat whose entry `stuck_at` this device cannot process ([`cannot_follow`]), if the
/// node still lists its account as a member: an external commit from the chat's current
/// GroupInfo that removes this device's own old leaf in the same commit (openmls does, for the
/// leaf with this device's key), after which the device carries on from the new epoch. The
/// entries from `stuck_at` to that commit are skipped, with one [`SystemEvent::Resynced`] line.
/// A failed attempt is said once and tried again after a pause that doubles up to
/// [`RESYNC_BACKOFF_MAX_MS`]; until then this fails with [`DeviceError::Resyncing`].
async fn resync(cx: &Cx, group: GroupId, stuck_at: u64) -> Result<()> {
    let now = cx.now();
    let wait = cx.core().resyncs.get(&group).copied();
    if wait.is_some_and(|w| w.not_before_ms > now) {
        return Err(DeviceError::Resyncing);
    }
    match resync_once(cx, group, stuck_at).await {
        Ok(()) => {
            // Even when it worked, not again at once: a device that keeps falling behind makes
            // at most one commit per chat per pause.
            let next = ResyncWait { failures: 0, not_before_ms: now + RESYNC_BACKOFF_FIRST_MS };
            cx.core().resyncs.insert(group, next);
            Ok(())
        }
        Err(DeviceError::Offline) => Err(DeviceError::Offline),
        Err(e) => {
            let failures = wait.map_or(0, |w| w.failures).saturating_add(1);
            let pause = RESYNC_BACKOFF_FIRST_MS.saturating_mul(1 << (failures - 1).min(16)).min(RESYNC_BACKOFF_MAX_MS);
            cx.core().resyncs.insert(group, ResyncWait { failures, not_before_ms: now + pause });
            cx.notify(DeviceEvent::Error(e));
            Err(DeviceError::Resyncing)
        }
    }
}

/// One resync, retried while other commits win the epoch. The new group is kept (persisted)
/// only once the node stored the commit: if the node refuses it, the answer is lost or the device
/// stops, the stored state is still the stuck one and a later sync resyncs again (the GroupInfo
/// then holds the leaf this attempt made, which the next external commit replaces in turn).
async fn resync_once(cx: &Cx, group: GroupId, stuck_at: u64) -> Result<()> {
    let me = cx.me()?;
    for _ in 0..MAX_ATTEMPTS {
        // Only while the node still lists this account: else the entry this device could not
        // process is (or follows) the one that removed it.
        let member = match cx.call(Request::Chat { group }).await {
            Ok(Response::Chat(info)) => info.members.iter().any(|m| m.account == me),
            Ok(_) => return Err(DeviceError::Unexpected("Chat")),
            Err(CallError::Api(e)) if e.code == ErrorCode::NotFound => false,
            Err(e) => return Err(e.into()),
        };
        if !member {
            return no_longer_member(cx, group, stuck_at).await;
        }
        let Response::GroupInfo(group_info) = cx.call(Request::GroupInfo { group }).await? else {
            return Err(DeviceError::Unexpected("GroupInfo"));
        };
        let (joined, bundle) = cx.mls(|m| m.join_external(&group_info))?.map_err(DeviceError::mls)?;
        if joined != group {
            cx.mls(|m| m.rollback())?;
            return Err(DeviceError::Unexpected("GroupInfo"));
        }
        match cx.call(commit_request(group, &bundle)).await {
            Ok(Response::Stored { seq }) => {
                let Some(mut local) = chat(cx, group) else { return Ok(()) };
                // Everything before the resync is out of reach, including what came between
                // fetching the GroupInfo and the commit.
                local.processed = local.processed.max(seq);
                let skipped = seq.saturating_sub(stuck_at);
                let mut batch = Batch::default();
                batch.chat(group, local).history(
                    group,
                    own_entry(cx, seq, cx.now(), HistoryBody::System(SystemEvent::Resynced { skipped }))?,
                );
                cx.persist(batch).await?;
                cx.call(Request::Ack { group, seq }).await?;
                cx.notify(DeviceEvent::ChatChanged(group));
                refresh_chat(cx, group).await;
                return Ok(());
            }
            Ok(_) => {
                cx.mls(|m| m.rollback())?;
                return Err(DeviceError::Unexpected("Commit"));
            }
            Err(e) => {
                cx.mls(|m| m.rollback())?;
                match e {
                    CallError::Api(e) if matches!(e.code, ErrorCode::StaleEpoch { .. }) => continue,
                    e => return Err(e.into()),
                }
            }
        }
    }
    Err(DeviceError::ChatBusy)
}

/// The node no longer lists this account in a chat this device cannot follow: it was removed
/// (by the entry it could not process, or later). The chat stays, read-only.
async fn no_longer_member(cx: &Cx, group: GroupId, stuck_at: u64) -> Result<()> {
    let Some(mut local) = chat(cx, group) else { return Ok(()) };
    local.active = false;
    let mut batch = Batch::default();
    batch
        .chat(group, local)
        .history(group, own_entry(cx, stuck_at, cx.now(), HistoryBody::System(SystemEvent::Removed(vec![cx.me()?])))?);
    if cx.mls(|m| m.is_active(group))? {
        cx.mls(|m| m.forget_group(group))?.map_err(DeviceError::mls)?;
    }
    cx.persist(batch).await?;
    cx.notify(DeviceEvent::ChatChanged(group));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Chats: create, join, direct chats, leave

async fn add_local_chat(cx: &Cx, info: &ChatInfo, processed: u64, note: Option<(u64, SystemEvent)>) -> Result<()> {
    let group = info.group;
    let mut batch = Batch::default();
    batch.chat(group, LocalChat::new(info.kind, &info.name, processed));
    if let Some((seq, note)) = note {
        batch.history(group, own_entry(cx, seq, cx.now(), HistoryBody::System(note))?);
    }
    cx.persist(batch).await?;
    cx.notify(DeviceEvent::ChatChanged(group));
    cx.notify(DeviceEvent::ChatInfo(info.clone()));
    Ok(())
}

async fn create_group(cx: &Cx, name: String, description: String) -> Result<GroupId> {
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err(CreateGroupError::NoName.into());
    }
    let group = random_group();
    let group_info = cx.mls(|m| m.create_group(group, ChatKind::Group))?.map_err(DeviceError::mls)?;
    cx.persist(Batch::default()).await?;
    let request = Request::CreateChat { group, kind: ChatKind::Group, name, description, peer: None, group_info };
    match cx.call(request).await {
        Ok(Response::Chat(info)) => {
            add_local_chat(cx, &info, 0, Some((0, SystemEvent::Created))).await?;
            Ok(group)
        }
        Ok(_) => Err(DeviceError::Unexpected("CreateChat")),
        Err(e) => {
            cx.mls(|m| m.forget_group(group))?.map_err(DeviceError::mls)?;
            cx.persist(Batch::default()).await?;
            Err(e.into())
        }
    }
}

async fn join(cx: &Cx, link: &str) -> Result<(GroupId, u64)> {
    let link = InviteLink::parse(link).map_err(|_| DeviceError::from(JoinError::InviteInvalid))?;
    let target = link.group.ok_or(DeviceError::from(JoinError::NodeLink))?;
    if let Some(local) = chat(cx, target).filter(|c| c.active) {
        return Ok((target, local.processed));
    }
    join_with(cx, InviteToken { invite: link.invite, secret: link.secret }).await
}

/// Joins by external commit, saved before it is sent so a crash after the node accepted it
/// cannot lose this device's leaf (the next sync resends it; the node answers a repeat with the
/// original sequence number).
async fn join_with(cx: &Cx, token: InviteToken) -> Result<(GroupId, u64)> {
    for _ in 0..MAX_ATTEMPTS {
        let Response::GroupInfo(group_info) = cx.call(Request::JoinGroupInfo { token: token.clone() }).await? else {
            return Err(DeviceError::Unexpected("JoinGroupInfo"));
        };
        let (group, bundle) = cx.mls(|m| m.join_external(&group_info))?.map_err(DeviceError::mls)?;
        let pending = PendingJoin {
            invite: token.invite,
            secret: token.secret,
            commit: bundle.commit,
            group_info: bundle.group_info,
        };
        let mut batch = Batch::default();
        batch.pending_join(group, pending.clone());
        cx.persist(batch).await?;
        if let Some(seq) = finish_join(cx, group, pending).await? {
            sync_chat(cx, group).await?;
            return Ok((group, seq));
        }
    }
    Err(DeviceError::ChatBusy)
}

/// Sends (or resends) a saved external commit. Returns the sequence number once stored, `None`
/// when the chat moved on (the local group is then forgotten; join again).
async fn finish_join(cx: &Cx, group: GroupId, pending: PendingJoin) -> Result<Option<u64>> {
    let token = InviteToken { invite: pending.invite, secret: pending.secret };
    let request = Request::Join { token, commit: pending.commit, group_info: pending.group_info };
    match cx.call(request).await {
        Ok(Response::Stored { seq }) => {
            let info = chat_info(cx, group).await?;
            // One write: the pending join becomes the chat, so a crash never leaves the group
            // saved with neither.
            let mut batch = Batch::default();
            batch.remove_pending_join(group).chat(group, LocalChat::new(info.kind, &info.name, seq)).history(
                group,
                own_entry(cx, seq, cx.now(), HistoryBody::System(SystemEvent::JoinedByLink(cx.me()?)))?,
            );
            cx.persist(batch).await?;
            cx.notify(DeviceEvent::ChatChanged(group));
            cx.notify(DeviceEvent::ChatInfo(info));
            Ok(Some(seq))
        }
        Ok(_) => Err(DeviceError::Unexpected("Join")),
        Err(CallError::Api(e)) => {
            cx.mls(|m| m.forget_group(group))?.map_err(DeviceError::mls)?;
            let mut batch = Batch::default();
            batch.remove_pending_join(group);
            cx.persist(batch).await?;
            match e.code {
                ErrorCode::StaleEpoch { .. } => Ok(None),
                _ => Err(DeviceError::Refused(e)),
            }
        }
        Err(CallError::Transport) => Err(DeviceError::Offline),
    }
}

async fn claim(cx: &Cx, member: AccountId) -> Result<Vec<Vec<u8>>> {
    match cx.call(Request::ClaimKeyPackages { account: member }).await? {
        Response::KeyPackages(packages) => Ok(packages),
        _ => Err(DeviceError::Unexpected("ClaimKeyPackages")),
    }
}

async fn add(cx: &Cx, group: GroupId, member: AccountId) -> Result<u64> {
    let packages = claim(cx, member).await?;
    commit(cx, group, SystemEvent::Added(vec![member]), move |m| m.add_members(group, &packages)).await
}

async fn direct_chat(cx: &Cx, member: AccountId) -> Result<GroupId> {
    if member == cx.me()? {
        return Err(DirectChatError::ThatIsYou.into());
    }
    let Response::Chats(chats) = cx.call(Request::Chats).await? else {
        return Err(DeviceError::Unexpected("Chats"));
    };
    let existing = chats.into_iter().find(|c| {
        c.kind == ChatKind::Direct && (c.peer == Some(member) || c.members.iter().any(|m| m.account == member))
    });
    if let Some(existing) = existing {
        let group = existing.group;
        // A direct chat this device opened earlier whose add did not complete: finish it.
        if !existing.members.iter().any(|m| m.account == member) {
            if chat(cx, group).is_none() {
                return Err(DirectChatError::OpenedElsewhere.into());
            }
            add(cx, group, member).await?;
        }
        return Ok(group);
    }
    // Their key packages first: if they cannot be added, no half-made chat is left behind.
    let packages = claim(cx, member).await?;
    let group = random_group();
    let group_info = cx.mls(|m| m.create_group(group, ChatKind::Direct))?.map_err(DeviceError::mls)?;
    cx.persist(Batch::default()).await?;
    let request = Request::CreateChat {
        group,
        kind: ChatKind::Direct,
        name: String::new(),
        description: String::new(),
        peer: Some(member),
        group_info,
    };
    let info = match cx.call(request).await {
        Ok(Response::Chat(info)) => info,
        Ok(_) => return Err(DeviceError::Unexpected("CreateChat")),
        Err(e) => {
            cx.mls(|m| m.forget_group(group))?.map_err(DeviceError::mls)?;
            cx.persist(Batch::default()).await?;
            return Err(e.into());
        }
    };
    add_local_chat(cx, &info, 0, None).await?;
    commit(cx, group, SystemEvent::Added(vec![member]), move |m| m.add_members(group, &packages)).await?;
    Ok(group)
}

/// Asks to leave: a leave proposal that an owner's or admin's device commits. Leaves
/// `processed` alone (see [`commit`]).
async fn leave(cx: &Cx, group: GroupId) -> Result<u64> {
    for _ in 0..MAX_ATTEMPTS {
        catch_up(cx, group).await?;
        if !chat(cx, group).is_some_and(|c| c.active) {
            return Err(DeviceError::NotMember);
        }
        let proposal = cx.mls(|m| m.leave(group))?.map_err(DeviceError::mls)?;
        cx.persist(Batch::default()).await?;
        match cx.call(Request::Send { group, message: proposal }).await {
            Ok(Response::Stored { seq }) => {
                let mut batch = Batch::default();
                batch.history(group, own_entry(cx, seq, cx.now(), HistoryBody::System(SystemEvent::Left))?);
                cx.persist(batch).await?;
                cx.notify(DeviceEvent::ChatChanged(group));
                return Ok(seq);
            }
            Ok(_) => return Err(DeviceError::Unexpected("Send")),
            Err(e) if stale(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(DeviceError::ChatBusy)
}

// ---------------------------------------------------------------------------------------------
// Becoming a device

async fn register(cx: &Cx, name: &str, invite: Option<InviteToken>, node_url: Option<String>) -> Result<()> {
    if cx.model(|m| m.device.is_some()) {
        return Err(RegisterError::HasAccount.into());
    }
    let name = veche_protocol::validate::display_name(name)
        .map_err(|e| DeviceError::from(RegisterError::BadName(e.to_string())))?;
    let (hello, exporter) = {
        let core = cx.core();
        (core.hello.clone().filter(|_| core.online).ok_or(DeviceError::Offline)?, core.exporter)
    };
    let binding = veche_protocol::auth::ChannelBinding::of(exporter.as_ref());
    // Reuse the key of an interrupted registration: the node may have accepted it.
    let secret = match cx.model(|m| m.pending_secret) {
        Some(secret) => secret,
        None => {
            let secret = veche_mls::Client::generate_secret();
            let mut batch = Batch::default();
            batch.format().pending_secret(Some(secret));
            cx.persist(batch).await?;
            secret
        }
    };
    let mut mls = veche_mls::Client::new(secret);
    let identity = mls.identity();
    let key = ed25519_dalek::SigningKey::from_bytes(&secret);
    let payload = veche_protocol::auth::register_payload(
        &hello.node_id,
        &hello.challenge,
        &identity.device,
        &identity.account,
        &name,
        exporter.as_ref(),
    );
    let signature = veche_protocol::auth::sign(&key, &payload);
    let request = Request::Register {
        device: identity.device,
        account: identity.account,
        display_name: name.clone(),
        invite,
        signature,
        binding,
    };
    let account = match cx.call(request).await {
        Ok(Response::SignedIn(account)) => account,
        Ok(_) => return Err(DeviceError::Unexpected("Register")),
        Err(CallError::Api(e)) if e.code == ErrorCode::Conflict => {
            // Registered before an interruption: sign in with the same key instead.
            let payload = veche_protocol::auth::sign_in_payload(
                &hello.node_id,
                &hello.challenge,
                &identity.device,
                exporter.as_ref(),
            );
            let signature = veche_protocol::auth::sign(&key, &payload);
            match cx.call(Request::SignIn { device: identity.device, signature, binding }).await? {
                Response::SignedIn(account) => account,
                _ => return Err(DeviceError::Unexpected("SignIn")),
            }
        }
        Err(e) => return Err(e.into()),
    };
    let packages = mls.key_packages(KEY_PACKAGES_FIRST).map_err(DeviceError::mls)?;
    let last_resort = mls.last_resort_key_package().map_err(DeviceError::mls)?;
    let record = DeviceRecord {
        secret,
        account: account.account,
        device: account.device,
        node_id: hello.node_id.clone(),
        display_name: account.display_name.clone(),
        node_admin: account.node_admin,
        node_url,
    };
    cx.core().mls = Some(mls);
    // The device and the packages' private keys are saved before the packages leave.
    let mut batch = Batch::default();
    batch.format().device(record).pending_secret(None).profile(account.account, account.display_name.clone());
    if let Err(e) = cx.persist(batch).await {
        cx.core().mls = None;
        return Err(e);
    }
    cx.call(Request::PublishKeyPackages { packages, last_resort: Some(last_resort) }).await?;
    if !account.home_bound {
        bind_home(cx, &secret, account.account, account.device, &hello.node_id).await;
    }
    {
        let mut core = cx.core();
        core.signed_in = true;
        core.live = true;
    }
    cx.notify(DeviceEvent::SignedIn(account));
    cx.notify(DeviceEvent::Synced);
    Ok(())
}

/// Sends the account's signed home binding: the account key's signature naming `node_id` as the
/// account's home, which other nodes ask for before they believe that node is its home
/// (`veche_protocol::auth::home_payload`). Only the account's first device holds the account key
/// (`AccountId == DeviceId` of that device); others have nothing to send. A failure is reported
/// and not fatal: the device sends it again at its next sign-in.
async fn bind_home(cx: &Cx, secret: &[u8; 32], account: AccountId, device: DeviceId, node_id: &str) {
    if account.0 != device.0 {
        return;
    }
    let key = ed25519_dalek::SigningKey::from_bytes(secret);
    let signature = veche_protocol::auth::sign(&key, &veche_protocol::auth::home_payload(&account, node_id));
    match cx.call(Request::BindHome { signature }).await {
        Ok(_) => {}
        Err(e) => cx.notify(DeviceEvent::Error(e.into())),
    }
}

/// A restored state may be older than what the device did before it was lost: its sender
/// ratchets may have been used since. Before anything is encrypted, every chat moves to a new
/// epoch by this device's own commit, whose secrets the old state never held.
async fn refresh_keys_after_restore(cx: &Cx) -> Result<()> {
    let groups: Vec<GroupId> = cx.model(|m| m.chats.iter().filter(|(_, c)| c.active).map(|(g, _)| *g).collect());
    for group in groups {
        if let Err(e) = commit(cx, group, SystemEvent::KeysRefreshed, move |m| m.self_update(group)).await {
            if !cx.core().signed_in || e == DeviceError::Offline {
                return Err(e); // offline: try again on the next connection
            }
            if e == DeviceError::Resyncing {
                // Stuck behind a commit and waiting to rejoin: the resync gives this device a
                // new leaf, whose keys the old state never held either.
                continue;
            }
            // The old state cannot follow this chat any more (it missed its own later commits).
            if let Some(mut local) = chat(cx, group) {
                local.active = false;
                let mut batch = Batch::default();
                batch.chat(group, local);
                cx.persist(batch).await?;
                cx.notify(DeviceEvent::ChatChanged(group));
            }
        }
    }
    let mut batch = Batch::default();
    batch.restored(false);
    cx.persist(batch).await
}

// ---------------------------------------------------------------------------------------------
// Commands

pub(crate) async fn command(cx: &Cx, command: Command) -> Result<Outcome> {
    let needs_device = !matches!(command, Command::Register { .. } | Command::Preview { .. } | Command::Request(_));
    if needs_device && cx.model(|m| m.device.is_none()) {
        return Err(DeviceError::NoDevice);
    }
    match command {
        Command::Register { name, invite, node_url } => {
            register(cx, &name, invite, node_url).await.map(|()| Outcome::Done)
        }
        Command::Preview { link } => {
            let link = InviteLink::parse(&link).map_err(|_| DeviceError::from(JoinError::InviteInvalid))?;
            let token = InviteToken { invite: link.invite, secret: link.secret };
            match cx.call(Request::InvitePreview { token }).await? {
                Response::InvitePreview(preview) => Ok(Outcome::Preview(preview)),
                _ => Err(DeviceError::Unexpected("InvitePreview")),
            }
        }
        Command::CreateGroup { name, description } => create_group(cx, name, description).await.map(Outcome::Group),
        Command::DirectChat { member } => direct_chat(cx, member).await.map(Outcome::Group),
        Command::Join { link } => join(cx, &link).await.map(|(group, seq)| Outcome::Joined { group, seq }),
        Command::Add { group, member } => add(cx, group, member).await.map(Outcome::Stored),
        Command::Remove { group, member } => {
            commit(cx, group, SystemEvent::Removed(vec![member]), move |m| m.remove_members(group, &[member]))
                .await
                .map(Outcome::Stored)
        }
        Command::SetRole { group, member, role } => {
            commit(cx, group, SystemEvent::RoleChanged(member), move |m| m.set_role(group, member, role))
                .await
                .map(Outcome::Stored)
        }
        Command::Leave { group } => leave(cx, group).await.map(Outcome::Stored),
        Command::Send { group, body } => send(cx, group, body).await.map(Outcome::Stored),
        Command::Retry { group, outbox_id } => {
            let Some(mut entry) = cx.model(|m| m.outbox.get(&group).and_then(|o| o.get(&outbox_id)).cloned()) else {
                return Ok(Outcome::Done);
            };
            entry.failed = false;
            entry.ciphertext = None;
            let mut batch = Batch::default();
            batch.outbox(group, outbox_id, entry);
            cx.persist(batch).await?;
            cx.notify(DeviceEvent::ChatChanged(group));
            flush_outbox(cx, group).await.map(|()| Outcome::Done)
        }
        Command::Discard { group, outbox_id } => {
            let mut batch = Batch::default();
            batch.remove_outbox(group, outbox_id);
            cx.persist(batch).await?;
            cx.notify(DeviceEvent::ChatChanged(group));
            Ok(Outcome::Done)
        }
        Command::Seen { group } => {
            let Some(mut local) = chat(cx, group) else { return Ok(Outcome::Done) };
            let last = cx.model(|m| m.history.get(&group).and_then(|h| h.keys().next_back().copied()).unwrap_or(0));
            let newest = last.max(local.processed);
            if local.seen < newest {
                local.seen = newest;
                let mut batch = Batch::default();
                batch.chat(group, local);
                cx.persist(batch).await?;
                cx.notify(DeviceEvent::ChatChanged(group));
            }
            Ok(Outcome::Done)
        }
        Command::KeepHistory { group, keep } => {
            let Some(mut local) = chat(cx, group) else { return Err(DeviceError::UnknownChat) };
            local.keep_history = keep;
            let mut batch = Batch::default();
            batch.chat(group, local);
            if keep {
                // Write what is still in memory, so it survives a restart from now on.
                for entry in cx.model(|m| m.history_after(group, 0).cloned().collect::<Vec<_>>()) {
                    batch.history(group, entry);
                }
            } else {
                batch.drop_history(group);
            }
            cx.persist(batch).await?;
            cx.notify(DeviceEvent::ChatChanged(group));
            Ok(Outcome::Done)
        }
        Command::UpdateChat { group, name, description } => {
            let result = cx.call(Request::UpdateChat { group, name, description }).await;
            refresh_chat(cx, group).await;
            result.map(|_| Outcome::Done).map_err(Into::into)
        }
        Command::SetRetention { group, retention } => {
            let result = cx.call(Request::SetRetention { group, retention }).await;
            refresh_chat(cx, group).await;
            result.map(|_| Outcome::Done).map_err(Into::into)
        }
        Command::Sync => sync_all(cx).await.map(|()| Outcome::Done),
        Command::Request(request) => Ok(Outcome::Response(cx.call(request).await?)),
    }
}
