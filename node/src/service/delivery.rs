//! The delivery service: the home node orders every message of a chat.
//!
//! Each accepted message gets the chat's next sequence number and is durably stored before the
//! sender hears `Stored { seq }`. Messages and commits must be for the chat's current epoch; a
//! stale one is refused with `StaleEpoch { current }` so the device fetches, processes and retries.
//! Commits are checked against the chat's role policy using the GroupInfo of the new epoch.

use super::{ApiResult, Node, OrInternal, Session, err, internal};
use crate::config::{Quotas, format_bytes};
use crate::mls_view::{self, GroupInfoView, MessageKind, MessageView};
use crate::store::records::{self, Chat, LogEntry, Welcome, now_ms};
use crate::store::tables::{
    ACCOUNT_BYTES, ACCOUNTS, CHATS, COMMIT_EFFECTS, COUNTERS, CURSORS, DEDUP, DEVICES, GROUP_INFO, LOG, MEMBERSHIP,
    META, REMOTE_ACCOUNTS, WELCOMES,
};
use crate::store::writer::TxnCtx;
use redb::ReadableTable;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId, Role};
use veche_protocol::wire::{Delivered, EntryKind, ErrorCode, Event, WelcomeEnvelope};

/// Most entries returned by one fetch.
pub const MAX_FETCH: u32 = 1000;
/// Most payload bytes returned by one fetch (at least one entry is always returned).
pub const MAX_FETCH_BYTES: u64 = 4 * 1024 * 1024;

fn check_size(bytes: &[u8], what: &str) -> ApiResult<()> {
    if bytes.len() > veche_protocol::MAX_MLS_MESSAGE_BYTES {
        return err(
            ErrorCode::TooLarge,
            format!("{what} is larger than {} bytes", veche_protocol::MAX_MLS_MESSAGE_BYTES),
        );
    }
    Ok(())
}

fn load_chat(ctx: &TxnCtx<'_>, group: GroupId) -> ApiResult<Chat> {
    match records::get(&ctx.read().open_table(CHATS).or_internal()?, group.0)? {
        Some(chat) => Ok(chat),
        None => err(ErrorCode::NotFound, "no such chat"),
    }
}

fn stale(current: u64) -> ApiResult<u64> {
    err(ErrorCode::StaleEpoch { current }, format!("the chat is at epoch {current}: fetch new messages and retry"))
}

/// Hash under which a stored message is remembered for idempotent retries.
pub fn message_hash(payload: &[u8]) -> [u8; 32] {
    Sha256::digest(payload).into()
}

/// The sequence number of an identical message already stored in this chat, if any: a device
/// that lost the node's answer and retries gets the original number, not a duplicate.
pub(crate) fn already_stored(ctx: &TxnCtx<'_>, group: GroupId, payload: &[u8]) -> ApiResult<Option<u64>> {
    let table = ctx.read().open_table(DEDUP).or_internal()?;
    Ok(table.get((group.0, message_hash(payload))).or_internal()?.map(|g| g.value()))
}

/// Room past the storage quota that commits and leave proposals still get (8 of the largest MLS
/// messages, 1 MiB): an account at its quota can still leave, and its owners and admins can still
/// remove members and change roles, but handshakes cannot fill storage much past the quota.
pub const HANDSHAKE_HEADROOM: u64 = 8 * veche_protocol::MAX_MLS_MESSAGE_BYTES as u64;

/// Bytes of log entries `account` sent that chats homed here still store.
pub(crate) fn account_bytes(txn: &redb::WriteTransaction, account: AccountId) -> ApiResult<u64> {
    Ok(txn.open_table(ACCOUNT_BYTES).or_internal()?.get(account.0).or_internal()?.map(|g| g.value()).unwrap_or(0))
}

/// Refuses an entry of `len` bytes from `account` that would take it past its storage quota
/// (past the quota and [`HANDSHAKE_HEADROOM`] for handshakes).
fn check_storage(ctx: &TxnCtx<'_>, account: AccountId, len: usize, kind: EntryKind, quotas: Quotas) -> ApiResult<()> {
    let used = account_bytes(ctx.read(), account)?;
    let limit = match kind {
        EntryKind::Application => quotas.storage_bytes,
        _ => quotas.storage_bytes.saturating_add(HANDSHAKE_HEADROOM),
    };
    if used.saturating_add(len as u64) > limit {
        return err(
            ErrorCode::QuotaExceeded,
            format!(
                "your messages take {} of this node's storage, and this one would pass your storage quota of {}; \
                 the node refuses more until the chats' retention drops older messages",
                format_bytes(used),
                format_bytes(quotas.storage_bytes)
            ),
        );
    }
    Ok(())
}

/// Refuses a change that would put an account in more chats than the node allows.
fn check_chat_limit(ctx: &TxnCtx<'_>, group: GroupId, change: &Change, quotas: Quotas) -> ApiResult<()> {
    let membership = ctx.read().open_table(MEMBERSHIP).or_internal()?;
    let max = quotas.max_chats as usize;
    let mut seen = BTreeSet::new();
    for (account, _) in &change.added {
        if !seen.insert(*account) || membership.get((account.0, group.0)).or_internal()?.is_some() {
            continue;
        }
        let count = membership.range((account.0, [0u8; 16])..=(account.0, [0xff; 16])).or_internal()?.take(max).count();
        if count >= max {
            return err(
                ErrorCode::QuotaExceeded,
                format!("member {account} is already in {count} chats, the most this node allows one account"),
            );
        }
    }
    Ok(())
}

/// Appends one entry and publishes it to `recipients`.
fn append(
    ctx: &mut TxnCtx<'_>,
    group: GroupId,
    chat: &mut Chat,
    entry: LogEntry,
    recipients: Vec<AccountId>,
) -> ApiResult<u64> {
    chat.head += 1;
    let seq = chat.head;
    let bytes = entry.payload.len() as u64;
    let txn = ctx.write();
    {
        let mut usage = txn.open_table(ACCOUNT_BYTES).or_internal()?;
        let used = usage.get(entry.sender.0).or_internal()?.map(|g| g.value()).unwrap_or(0);
        usage.insert(entry.sender.0, used.saturating_add(bytes)).or_internal()?;
    }
    txn.open_table(DEDUP).or_internal()?.insert((group.0, message_hash(&entry.payload)), seq).or_internal()?;
    txn.open_table(LOG).or_internal()?.insert((group.0, seq), records::encode(&entry).as_slice()).or_internal()?;
    txn.open_table(CHATS).or_internal()?.insert(group.0, records::encode(&*chat).as_slice()).or_internal()?;
    {
        let mut counters = txn.open_table(COUNTERS).or_internal()?;
        for (name, add) in [("messages_stored", 1), ("bytes_stored", bytes)] {
            let value = counters.get(name).or_internal()?.map(|g| g.value()).unwrap_or(0);
            counters.insert(name, value + add).or_internal()?;
        }
    }
    let delivered = Delivered {
        group,
        seq,
        kind: entry.kind,
        epoch: entry.epoch,
        sender: entry.sender,
        stored_at_ms: entry.stored_ms,
        payload: entry.payload,
    };
    ctx.publish(recipients, Event::Message(delivered));
    ctx.touch(group);
    Ok(seq)
}

/// Stores an application message or a proposal for the chat's current epoch.
pub async fn send(node: &Node, session: Session, group: GroupId, message: Vec<u8>) -> ApiResult<u64> {
    send_many(node, session, group, vec![message]).await.pop().unwrap_or_else(|| Err(internal("no result")))
}

/// Stores consecutive messages of one device to one chat, in order, in one write transaction;
/// each message's sequence number or why it was refused (a refused message does not stop the
/// ones after it, as if they had been sent one by one).
pub async fn send_many(node: &Node, session: Session, group: GroupId, messages: Vec<Vec<u8>>) -> Vec<ApiResult<u64>> {
    let checked: Vec<ApiResult<(Vec<u8>, MessageView, EntryKind)>> =
        messages.into_iter().map(|message| check_send(group, message)).collect();
    let count = checked.len();
    let quotas = node.info.quotas;
    let stored = node
        .writer
        .run(move |ctx| {
            let mut results = Vec::with_capacity(checked.len());
            for c in checked {
                let result =
                    c.and_then(|(message, view, kind)| store_sent(ctx, session, group, message, view, kind, quotas));
                // A storage failure may come after a write: the whole transaction is dropped.
                if let Err(e) = &result
                    && e.code == ErrorCode::Internal
                {
                    return Err(e.clone());
                }
                results.push(result);
            }
            Ok(results)
        })
        .await;
    match stored {
        Ok(results) => {
            let ok = results.iter().filter(|r| r.is_ok()).count();
            node.metrics.messages_stored.inc_by(ok as u64);
            results
        }
        Err(e) => vec![Err(e); count],
    }
}

/// The checks a sent message passes before the transaction.
fn check_send(group: GroupId, message: Vec<u8>) -> ApiResult<(Vec<u8>, MessageView, EntryKind)> {
    check_size(&message, "message")?;
    let view = mls_view::message(&message)?;
    if view.group != group {
        return err(ErrorCode::BadRequest, "message is for another chat");
    }
    let kind = match view.kind {
        MessageKind::Application => EntryKind::Application,
        MessageKind::Proposal => EntryKind::Handshake,
        MessageKind::Commit | MessageKind::ExternalCommit => {
            return err(ErrorCode::BadRequest, "send commits with Commit, with their GroupInfo");
        }
    };
    Ok((message, view, kind))
}

/// Stores one sent message (validating before it writes, so a refusal leaves the transaction
/// clean for the next message).
fn store_sent(
    ctx: &mut TxnCtx<'_>,
    session: Session,
    group: GroupId,
    message: Vec<u8>,
    view: MessageView,
    kind: EntryKind,
    quotas: Quotas,
) -> ApiResult<u64> {
    // A retry of a message already stored gets its number, even if the sender has been removed
    // since.
    if let Some(seq) = already_stored(ctx, group, &message)? {
        return Ok(seq);
    }
    let mut chat = load_chat(ctx, group)?;
    if !chat.roster.contains_key(&session.account) {
        return err(ErrorCode::Forbidden, "you are not a member of this chat");
    }
    if view.epoch != chat.epoch {
        return stale(chat.epoch);
    }
    check_storage(ctx, session.account, message.len(), kind, quotas)?;
    if kind == EntryKind::Handshake {
        // The only proposal a device sends on its own is leaving (a self-remove), as a
        // PublicMessage from its own leaf. Then the account is marked as leaving.
        let own_leaf = view.sender_leaf.and_then(|leaf| chat.leaves.get(&leaf)).map(|(_, d)| *d);
        if !view.public || !view.self_remove || own_leaf != Some(session.device) {
            return err(ErrorCode::Forbidden, "the only proposal a member sends is leaving, from its own leaf");
        }
        if chat.roster.get(&session.account) == Some(&Role::Owner)
            && chat.roster.values().filter(|r| **r == Role::Owner).count() == 1
            && chat.roster.len() > 1
        {
            return err(ErrorCode::Forbidden, "the only owner cannot leave; make someone else owner first");
        }
        // Remember the proposal's reference: only a commit that includes it may remove the
        // account without the rights to remove them.
        let Some(reference) = view.proposal_ref.clone() else {
            return err(ErrorCode::BadRequest, "a leave proposal must be a PublicMessage with a reference");
        };
        chat.leaving.insert(session.account, reference);
    }
    let entry = LogEntry { kind, epoch: view.epoch, sender: session.account, stored_ms: now_ms(), payload: message };
    let recipients = chat.roster.keys().copied().collect();
    append(ctx, group, &mut chat, entry, recipients)
}

/// Who changed what between two epochs.
struct Change {
    added: Vec<(AccountId, DeviceId)>,
    removed: Vec<AccountId>,
    roles_changed: bool,
}

fn diff(chat: &Chat, next: &GroupInfoView) -> Change {
    let old_devices: BTreeSet<_> = chat.leaves.values().copied().collect();
    let new_devices: BTreeSet<_> = next.leaves.values().copied().collect();
    let next_roster = next.roster();
    let added = new_devices.difference(&old_devices).copied().collect();
    let removed = chat.roster.keys().filter(|a| !next_roster.contains_key(a)).copied().collect();
    let roles_changed = chat.roster.iter().any(|(a, role)| next_roster.get(a).is_some_and(|new| new != role));
    Change { added, removed, roles_changed }
}

/// The commit's own proposals must describe the same change as the GroupInfo it came with:
/// the node polices the GroupInfo, and members apply the commit. Returns the accounts the commit
/// removes inline.
fn check_commit_matches(chat: &Chat, view: &mls_view::MessageView, change: &Change) -> ApiResult<BTreeSet<AccountId>> {
    let added_by_commit: BTreeSet<_> = view.added.iter().copied().collect();
    let added_by_info: BTreeSet<_> = change.added.iter().copied().collect();
    let mut removed_by_commit = BTreeSet::new();
    for leaf in &view.removed_leaves {
        match chat.leaves.get(leaf) {
            Some((account, _)) => {
                removed_by_commit.insert(*account);
            }
            None => {
                return err(ErrorCode::BadRequest, "commit removes a leaf that is not in the chat");
            }
        }
    }
    let removed_by_info: BTreeSet<_> = change.removed.iter().copied().collect();
    // Removals of members who asked to leave may come by reference; every other must be inline.
    let referenced = |a: &AccountId| chat.leaving.get(a).is_some_and(|r| view.references.contains(r));
    let unexplained = removed_by_info.iter().any(|a| !removed_by_commit.contains(a) && !referenced(a));
    if added_by_commit != added_by_info || unexplained || !removed_by_commit.is_subset(&removed_by_info) {
        return err(ErrorCode::BadRequest, "the GroupInfo does not match the commit's changes");
    }
    if change.roles_changed && !view.changes_policy {
        return err(ErrorCode::BadRequest, "the GroupInfo changes roles but the commit does not");
    }
    Ok(removed_by_commit)
}

/// Roles as a comparable map: an account listed as a member is the same as one not listed.
fn explicit_roles(roles: &BTreeMap<AccountId, Role>) -> BTreeMap<AccountId, Role> {
    roles.iter().filter(|(_, r)| **r != Role::Member).map(|(a, r)| (*a, *r)).collect()
}

/// The roles in the commit's GroupInfo must be the ones members get by applying the commit: those
/// of the policy its GroupContextExtensions proposal sets, or else the roles before it (including
/// those of accounts not in the chat yet, so a newly added account cannot arrive with a role on the
/// node that its devices do not give it). Returns whether the roles change.
fn check_roles(before: &BTreeMap<AccountId, Role>, view: &MessageView, next: &GroupInfoView) -> ApiResult<bool> {
    let expected = match (&view.policy_roles, view.changes_policy) {
        (Some(roles), _) => explicit_roles(roles),
        (None, true) => return err(ErrorCode::BadRequest, "the commit's policy extension cannot be read"),
        (None, false) => explicit_roles(before),
    };
    if expected != explicit_roles(&next.roles) {
        return err(ErrorCode::BadRequest, "the GroupInfo's roles are not the ones the commit gives");
    }
    Ok(expected != explicit_roles(before))
}

/// Roles of the chat's policy before this commit (from its stored GroupInfo; the roster's if none).
fn roles_before(ctx: &TxnCtx<'_>, group: GroupId, chat: &Chat) -> ApiResult<BTreeMap<AccountId, Role>> {
    let stored =
        ctx.read().open_table(GROUP_INFO).or_internal()?.get(group.0).or_internal()?.map(|g| g.value().to_vec());
    match stored {
        Some(bytes) => Ok(mls_view::group_info(&bytes)?.roles),
        None => Ok(chat.roster.clone()),
    }
}

/// Checks a member's commit against the role policy (the same rules every member device applies).
fn check_policy(
    chat: &Chat,
    sender: AccountId,
    change: &Change,
    next: &GroupInfoView,
    removed_inline: &BTreeSet<AccountId>,
) -> ApiResult<()> {
    let Some(role) = chat.role_of(&sender) else {
        return err(ErrorCode::Forbidden, "you are not a member of this chat");
    };
    if !change.added.is_empty() && !role.can_manage_members() {
        return err(ErrorCode::Forbidden, "only owners and admins add members");
    }
    // A device claiming an account that holds a role may only be added by the owner.
    let privileged_added = change.added.iter().any(|(a, _)| chat.role_of(a).is_some_and(|r| r != Role::Member));
    if privileged_added && role != Role::Owner {
        return err(ErrorCode::Forbidden, "only the owner adds devices of owners and admins");
    }
    for account in &change.removed {
        let target = chat.role_of(account).unwrap_or(Role::Member);
        // A member who asked to leave may be removed by anyone committing their own proposal (by
        // reference); removing them inline needs the rights to remove them.
        let own_leave = chat.leaving.contains_key(account) && !removed_inline.contains(account);
        let allowed = own_leave || role == Role::Owner || (role == Role::Admin && target == Role::Member);
        if !allowed {
            return err(ErrorCode::Forbidden, "your role may not remove this member");
        }
    }
    if change.roles_changed && role != Role::Owner {
        return err(ErrorCode::Forbidden, "only the owner changes roles");
    }
    let owners = next.roster().values().filter(|r| **r == Role::Owner).count();
    if owners != 1 && !next.leaves.is_empty() {
        return err(ErrorCode::Forbidden, "a chat keeps exactly one owner");
    }
    if chat.kind == ChatKind::Direct {
        let allowed: BTreeSet<AccountId> = [Some(chat.created_by), chat.peer].into_iter().flatten().collect();
        if next.roster().keys().any(|a| !allowed.contains(a)) {
            return err(ErrorCode::Forbidden, "a direct chat has only its two members");
        }
    }
    Ok(())
}

/// Every account a commit adds lives here or on a node this node knows, so its node can be
/// told about the chat.
fn check_homes_known(ctx: &TxnCtx<'_>, change: &Change) -> ApiResult<()> {
    let accounts = ctx.read().open_table(ACCOUNTS).or_internal()?;
    let remote = ctx.read().open_table(REMOTE_ACCOUNTS).or_internal()?;
    for (account, _) in &change.added {
        if accounts.get(account.0).or_internal()?.is_none() && remote.get(account.0).or_internal()?.is_none() {
            return err(
                ErrorCode::BadRequest,
                format!("member {account} is not known on this node or its linked nodes"),
            );
        }
    }
    Ok(())
}

/// A commit that passed every check, with what it changes.
struct Accepted {
    sender: AccountId,
    commit: Vec<u8>,
    welcome: Option<Vec<u8>>,
    group_info: Vec<u8>,
    next: GroupInfoView,
    change: Change,
}

/// Applies an accepted commit: log entry, new epoch, roster, memberships, welcomes.
fn apply_commit(ctx: &mut TxnCtx<'_>, group: GroupId, mut chat: Chat, accepted: Accepted) -> ApiResult<u64> {
    let Accepted { sender, commit, welcome, group_info, next, change } = accepted;
    let old_roster: Vec<AccountId> = chat.roster.keys().copied().collect();
    let epoch = chat.epoch;
    chat.epoch = next.epoch;
    chat.roster = next.roster();
    chat.leaves = next.leaves.clone();
    // A proposal belongs to its epoch: after any commit, a leave must be proposed again (owner and
    // admin devices remove members who asked to leave inline).
    chat.leaving.clear();
    let mut recipients: BTreeSet<AccountId> = old_roster.into_iter().collect();
    recipients.extend(chat.roster.keys().copied());
    let entry = LogEntry { kind: EntryKind::Handshake, epoch, sender, stored_ms: now_ms(), payload: commit };
    let seq = chat.head + 1;
    for account in &change.removed {
        chat.removed_at.insert(*account, seq);
    }
    for (account, _) in &change.added {
        chat.removed_at.remove(account);
    }
    let seq = append(ctx, group, &mut chat, entry, recipients.into_iter().collect())?;
    let txn = ctx.write();
    txn.open_table(GROUP_INFO).or_internal()?.insert(group.0, group_info.as_slice()).or_internal()?;
    // What member nodes replay: who came and went, and the Welcome for their devices.
    let effect = veche_protocol::federation::CommitEffect {
        added: change.added.clone(),
        removed: change.removed.clone(),
        welcome: welcome.clone(),
    };
    txn.open_table(COMMIT_EFFECTS)
        .or_internal()?
        .insert((group.0, seq), veche_protocol::federation::encode(&effect).as_slice())
        .or_internal()?;
    {
        let mut membership = txn.open_table(MEMBERSHIP).or_internal()?;
        let mut gone = txn.open_table(crate::store::tables::GONE_MEMBERS).or_internal()?;
        for account in &change.removed {
            membership.remove((account.0, group.0)).or_internal()?;
            gone.remove((group.0, account.0)).or_internal()?;
        }
        for (account, _) in &change.added {
            membership.insert((account.0, group.0), ()).or_internal()?;
        }
    }
    {
        let mut cursors = txn.open_table(CURSORS).or_internal()?;
        // Not `seq`: the entry that adds a device must stay (under until-fetched retention) until
        // that device has acknowledged it, or a join whose answer was lost could not be resent.
        for (_, device) in &change.added {
            cursors.insert((device.0, group.0), seq - 1).or_internal()?;
        }
    }
    if let Some(welcome) = welcome {
        store_welcomes(ctx, group, seq, welcome, &change.added)?;
    }
    Ok(seq)
}

/// Stores the Welcome of the commit at `commit_seq` for each added device that lives on this
/// node (devices on other nodes get it from their node, which replays the commit), and tells
/// their accounts once the transaction commits.
pub(crate) fn store_welcomes(
    ctx: &mut TxnCtx<'_>,
    group: GroupId,
    commit_seq: u64,
    welcome: Vec<u8>,
    added: &[(AccountId, DeviceId)],
) -> ApiResult<()> {
    let txn = ctx.write();
    let mut meta = txn.open_table(META).or_internal()?;
    let mut next_id = meta
        .get("next_welcome_id")
        .or_internal()?
        .and_then(|g| g.value().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(1);
    let mut welcomes = txn.open_table(WELCOMES).or_internal()?;
    let record = Welcome { group, commit_seq, welcome };
    let mut events = Vec::new();
    let devices = txn.open_table(DEVICES).or_internal()?;
    for (account, device) in added {
        if devices.get(device.0).or_internal()?.is_none() {
            continue;
        }
        welcomes.insert((device.0, next_id), records::encode(&record).as_slice()).or_internal()?;
        let envelope = WelcomeEnvelope { id: next_id, group, commit_seq, welcome: record.welcome.clone() };
        events.push((vec![*account], Event::Welcome(envelope)));
        next_id += 1;
    }
    meta.insert("next_welcome_id", next_id.to_be_bytes().as_slice()).or_internal()?;
    drop((meta, welcomes, devices));
    for (to, event) in events {
        ctx.publish(to, event);
    }
    Ok(())
}

/// Stores a member's commit for the chat's current epoch.
pub async fn commit(
    node: &Node,
    session: Session,
    group: GroupId,
    commit: Vec<u8>,
    welcome: Option<Vec<u8>>,
    group_info: Vec<u8>,
) -> ApiResult<u64> {
    check_size(&commit, "commit")?;
    check_size(&group_info, "GroupInfo")?;
    if let Some(w) = &welcome {
        check_size(w, "welcome")?;
    }
    let view = mls_view::message(&commit)?;
    if view.group != group || !matches!(view.kind, MessageKind::Commit | MessageKind::ExternalCommit) {
        return err(ErrorCode::BadRequest, "not a commit for this chat");
    }
    let next = mls_view::group_info(&group_info)?;
    if next.group != group || next.epoch != view.epoch + 1 {
        return err(ErrorCode::BadRequest, "GroupInfo is not for the epoch this commit creates");
    }
    let metrics = node.metrics.clone();
    let quotas = node.info.quotas;
    let seq = node
        .writer
        .run(move |ctx| {
            if let Some(seq) = already_stored(ctx, group, &commit)? {
                return Ok(seq);
            }
            let chat = load_chat(ctx, group)?;
            if !chat.roster.contains_key(&session.account) {
                return err(ErrorCode::Forbidden, "you are not a member of this chat");
            }
            if view.epoch != chat.epoch {
                return stale(chat.epoch);
            }
            if view.kind == MessageKind::ExternalCommit {
                if welcome.is_some() {
                    return err(ErrorCode::BadRequest, "a resync adds nobody: it has no Welcome");
                }
                check_resync(&chat, session, &roles_before(ctx, group, &chat)?, &view, &next)?;
                check_storage(ctx, session.account, commit.len(), EntryKind::Handshake, quotas)?;
                let change = Change { added: Vec::new(), removed: Vec::new(), roles_changed: false };
                let accepted = Accepted { sender: session.account, commit, welcome, group_info, next, change };
                return apply_commit(ctx, group, chat, accepted);
            }
            let sender_device = view.sender_leaf.and_then(|leaf| chat.leaves.get(&leaf)).map(|(_, d)| *d);
            if sender_device != Some(session.device) {
                return err(ErrorCode::Forbidden, "a commit must come from your own leaf");
            }
            if next.kind != chat.kind {
                return err(ErrorCode::Forbidden, "a commit may not change the chat's kind");
            }
            if !view.public {
                return err(ErrorCode::BadRequest, "commits must be PublicMessages so the home node can check them");
            }
            let mut change = diff(&chat, &next);
            change.roles_changed |= check_roles(&roles_before(ctx, group, &chat)?, &view, &next)?;
            let removed_inline = check_commit_matches(&chat, &view, &change)?;
            check_policy(&chat, session.account, &change, &next, &removed_inline)?;
            check_homes_known(ctx, &change)?;
            check_chat_limit(ctx, group, &change, quotas)?;
            check_storage(ctx, session.account, commit.len(), EntryKind::Handshake, quotas)?;
            if !change.added.is_empty() && welcome.is_none() {
                return err(ErrorCode::BadRequest, "a commit that adds members needs their Welcome");
            }
            let accepted = Accepted { sender: session.account, commit, welcome, group_info, next, change };
            apply_commit(ctx, group, chat, accepted)
        })
        .await?;
    metrics.messages_stored.inc();
    if let Some(calls) = &node.calls {
        calls.members_changed(node, group); // removed members lose their place in its call
    }
    Ok(seq)
}

/// A member's external commit is a resync: the device cannot follow the chat any more (its MLS
/// state was lost, or it cannot process a commit) and rejoins from the current GroupInfo,
/// removing its own old leaf in the same commit. Nothing else may change: the commit carries the
/// session's own device in its path, removes only leaves of that same device (never another
/// device's or account's), adds nobody, and the new GroupInfo has the same kind, the same
/// members on the same devices and the same roles (the account keeps its role).
fn check_resync(
    chat: &Chat,
    session: Session,
    roles_before: &BTreeMap<AccountId, Role>,
    view: &MessageView,
    next: &GroupInfoView,
) -> ApiResult<()> {
    let own = (session.account, session.device);
    if view.path_identity != Some(own) {
        return err(ErrorCode::Forbidden, "a resync must carry your own device's new leaf");
    }
    if !view.public {
        return err(ErrorCode::BadRequest, "commits must be PublicMessages so the home node can check them");
    }
    let removes_own_leaf =
        !view.removed_leaves.is_empty() && view.removed_leaves.iter().all(|leaf| chat.leaves.get(leaf) == Some(&own));
    if !removes_own_leaf {
        return err(ErrorCode::Forbidden, "a resync replaces your own device's leaf and removes no other");
    }
    if !view.added.is_empty() || view.changes_policy || next.kind != chat.kind {
        return err(ErrorCode::Forbidden, "a resync only replaces your own device's leaf");
    }
    let devices = |leaves: &BTreeMap<u32, (AccountId, DeviceId)>| {
        let mut all: Vec<(AccountId, DeviceId)> = leaves.values().copied().collect();
        all.sort();
        all
    };
    if devices(&chat.leaves) != devices(&next.leaves) || next.roster() != chat.roster {
        return err(ErrorCode::BadRequest, "the GroupInfo of a resync must keep the same members and devices");
    }
    if check_roles(roles_before, view, next)? {
        return err(ErrorCode::Forbidden, "a resync may not change roles");
    }
    Ok(())
}

/// Accepts an external commit by which the session's device joins through an invite.
/// The invite was checked by the caller inside the same transaction.
pub fn join_commit(
    ctx: &mut TxnCtx<'_>,
    session: Session,
    commit: Vec<u8>,
    group_info: Vec<u8>,
    view: &mls_view::MessageView,
    next: GroupInfoView,
    quotas: Quotas,
) -> ApiResult<u64> {
    let (group, epoch) = (view.group, view.epoch);
    let chat = load_chat(ctx, group)?;
    if chat.kind == ChatKind::Direct {
        return err(ErrorCode::Forbidden, "direct chats cannot be joined by link");
    }
    if chat.roster.contains_key(&session.account) {
        return err(ErrorCode::Conflict, "you are already a member of this chat");
    }
    if epoch != chat.epoch {
        return stale(chat.epoch);
    }
    if view.path_identity != Some((session.account, session.device)) {
        return err(ErrorCode::Forbidden, "an external commit must carry the joining device's own leaf");
    }
    let change = diff(&chat, &next);
    let only_self = change.added == [(session.account, session.device)] && change.removed.is_empty();
    if !only_self || change.roles_changed || next.kind != chat.kind {
        return err(ErrorCode::Forbidden, "an external commit may only add the joining device");
    }
    if next.roster().get(&session.account) != Some(&Role::Member) {
        return err(ErrorCode::Forbidden, "a member who joins by link joins as a member");
    }
    check_chat_limit(ctx, group, &change, quotas)?;
    check_storage(ctx, session.account, commit.len(), EntryKind::Handshake, quotas)?;
    let accepted = Accepted { sender: session.account, commit, welcome: None, group_info, next, change };
    apply_commit(ctx, group, chat, accepted)
}

/// The chat's current GroupInfo, for a member's device that must rejoin it ([`check_resync`]).
pub fn group_info(node: &Node, session: &Session, group: GroupId) -> ApiResult<Vec<u8>> {
    let txn = node.store.read().or_internal()?;
    super::chats::load_member(&txn, session, group)?;
    match txn.open_table(GROUP_INFO).or_internal()?.get(group.0).or_internal()? {
        Some(bytes) => Ok(bytes.value().to_vec()),
        None => err(ErrorCode::NotFound, "this node has no GroupInfo of that chat"),
    }
}

/// Entries after `after`, oldest first. Former members read up to the commit that removed them.
pub fn fetch(
    node: &Node,
    session: &Session,
    group: GroupId,
    after: u64,
    limit: u32,
) -> ApiResult<(Vec<Delivered>, u64)> {
    let txn = node.store.read().or_internal()?;
    let Some(chat) = super::chats::load(&txn, group)? else {
        return err(ErrorCode::NotFound, "no such chat, or you are not a member");
    };
    let upto = if chat.roster.contains_key(&session.account) {
        chat.head
    } else if let Some(seq) = chat.removed_at.get(&session.account) {
        *seq
    } else {
        return err(ErrorCode::NotFound, "no such chat, or you are not a member");
    };
    let limit = limit.clamp(1, MAX_FETCH) as usize;
    let log = txn.open_table(LOG).or_internal()?;
    let mut out = Vec::new();
    let mut bytes = 0u64;
    for item in log.range((group.0, after.saturating_add(1))..=(group.0, upto)).or_internal()?.take(limit) {
        let (key, value) = item.or_internal()?;
        let entry: LogEntry = records::decode(value.value())?;
        if !out.is_empty() && bytes + entry.payload.len() as u64 > MAX_FETCH_BYTES {
            break;
        }
        bytes += entry.payload.len() as u64;
        out.push(Delivered {
            group,
            seq: key.value().1,
            kind: entry.kind,
            epoch: entry.epoch,
            sender: entry.sender,
            stored_at_ms: entry.stored_ms,
            payload: entry.payload,
        });
    }
    node.metrics.messages_delivered.inc_by(out.len() as u64);
    node.metrics.bytes_delivered.inc_by(bytes);
    Ok((out, upto))
}

/// Records that the device processed everything up to `seq`.
pub async fn ack(node: &Node, session: Session, group: GroupId, seq: u64) -> ApiResult<()> {
    node.writer
        .run(move |ctx| {
            let chat = load_chat(ctx, group)?;
            let member = chat.roster.contains_key(&session.account) || chat.removed_at.contains_key(&session.account);
            if !member {
                return err(ErrorCode::NotFound, "no such chat, or you are not a member");
            }
            if seq > chat.head {
                return err(ErrorCode::BadRequest, "cannot acknowledge beyond the newest message");
            }
            let current = ctx
                .read()
                .open_table(CURSORS)
                .or_internal()?
                .get((session.device.0, group.0))
                .or_internal()?
                .map(|g| g.value());
            if current.is_some_and(|c| c >= seq) {
                return Ok(());
            }
            ctx.write().open_table(CURSORS).or_internal()?.insert((session.device.0, group.0), seq).or_internal()?;
            Ok(())
        })
        .await
}

/// Welcomes waiting for the device.
pub fn welcomes(node: &Node, session: &Session) -> ApiResult<Vec<WelcomeEnvelope>> {
    let txn = node.store.read().or_internal()?;
    let table = txn.open_table(WELCOMES).or_internal()?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for item in table.range((session.device.0, 0)..=(session.device.0, u64::MAX)).or_internal()? {
        let (key, value) = item.or_internal()?;
        // Paged like Fetch: the device acknowledges these and asks again for the rest.
        if !out.is_empty() && bytes + value.value().len() > MAX_FETCH_BYTES as usize {
            break;
        }
        bytes += value.value().len();
        let record: Welcome = records::decode(value.value())?;
        out.push(WelcomeEnvelope {
            id: key.value().1,
            group: record.group,
            commit_seq: record.commit_seq,
            welcome: record.welcome,
        });
    }
    Ok(out)
}

/// Drops a welcome the device has used.
pub async fn ack_welcome(node: &Node, session: Session, id: u64) -> ApiResult<()> {
    node.writer
        .run(move |ctx| {
            let exists =
                ctx.read().open_table(WELCOMES).or_internal()?.get((session.device.0, id)).or_internal()?.is_some();
            if !exists {
                return err(ErrorCode::NotFound, "no such welcome");
            }
            ctx.write().open_table(WELCOMES).or_internal()?.remove((session.device.0, id)).or_internal()?;
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(policy_roles: Option<BTreeMap<AccountId, Role>>, changes_policy: bool) -> MessageView {
        MessageView {
            group: GroupId([1; 16]),
            epoch: 3,
            kind: MessageKind::Commit,
            sender_leaf: Some(0),
            public: true,
            added: Vec::new(),
            removed_leaves: Vec::new(),
            changes_policy,
            policy_roles,
            self_remove: false,
            path_identity: None,
            proposal_ref: None,
            references: Vec::new(),
        }
    }

    fn info(roles: &[(AccountId, Role)]) -> GroupInfoView {
        GroupInfoView {
            group: GroupId([1; 16]),
            epoch: 4,
            kind: ChatKind::Group,
            roles: roles.iter().copied().collect(),
            leaves: BTreeMap::new(),
        }
    }

    const OWNER: AccountId = AccountId([1; 32]);
    const NEWCOMER: AccountId = AccountId([2; 32]);
    const OWNER_DEVICE: DeviceId = DeviceId([11; 32]);
    const ADMIN: AccountId = AccountId([3; 32]);
    const ADMIN_DEVICE: DeviceId = DeviceId([13; 32]);

    /// A group chat of the owner (leaf 0) and an admin (leaf 1).
    fn two_member_chat() -> Chat {
        Chat {
            kind: ChatKind::Group,
            name: "chat".into(),
            description: String::new(),
            created_by: OWNER,
            created_ms: 0,
            retention: veche_protocol::ids::Retention::Forever,
            epoch: 3,
            head: 10,
            tail: 1,
            roster: [(OWNER, Role::Owner), (ADMIN, Role::Admin)].into_iter().collect(),
            leaves: [(0, (OWNER, OWNER_DEVICE)), (1, (ADMIN, ADMIN_DEVICE))].into_iter().collect(),
            leaving: BTreeMap::new(),
            removed_at: BTreeMap::new(),
            peer: None,
        }
    }

    /// The admin's device rejoins: an external commit that removes `removed` and puts the admin's
    /// device back at `new_leaf`.
    fn resync(removed: u32, new_leaf: u32) -> (MessageView, GroupInfoView) {
        let mut view = commit(None, false);
        view.kind = MessageKind::ExternalCommit;
        view.sender_leaf = None;
        view.removed_leaves = vec![removed];
        view.path_identity = Some((ADMIN, ADMIN_DEVICE));
        let mut next = info(&[(OWNER, Role::Owner), (ADMIN, Role::Admin)]);
        let mut leaves = two_member_chat().leaves;
        leaves.remove(&removed);
        leaves.insert(new_leaf, (ADMIN, ADMIN_DEVICE));
        next.leaves = leaves;
        (view, next)
    }

    fn admin() -> Session {
        Session { account: ADMIN, device: ADMIN_DEVICE }
    }

    #[test]
    fn a_member_replaces_its_own_leaf_and_keeps_its_role() {
        let chat = two_member_chat();
        let (view, next) = resync(1, 1);
        check_resync(&chat, admin(), &chat.roster, &view, &next).expect("the admin's own resync");
        // Nothing changes for the roster: nobody added or removed, no role changed.
        let change = diff(&chat, &next);
        assert!(change.added.is_empty() && change.removed.is_empty() && !change.roles_changed);
    }

    /// The removed leaf must be the sender's own device's: a "resync" that removes another
    /// account's leaf (here the owner's) is refused, whatever the GroupInfo says.
    #[test]
    fn a_resync_that_removes_another_accounts_leaf_is_refused() {
        let chat = two_member_chat();
        let (view, mut next) = resync(0, 0);
        let e = check_resync(&chat, admin(), &chat.roster, &view, &next).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden, "{}", e.message);
        // Even with a GroupInfo that still lists the owner's device.
        next.leaves = chat.leaves.clone();
        next.leaves.insert(2, (ADMIN, ADMIN_DEVICE));
        let e = check_resync(&chat, admin(), &chat.roster, &view, &next).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden, "{}", e.message);
        // Removing its own leaf and another's in one commit.
        let (mut both, next) = resync(1, 1);
        both.removed_leaves = vec![0, 1];
        let e = check_resync(&chat, admin(), &chat.roster, &both, &next).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden, "{}", e.message);
    }

    #[test]
    fn a_resync_is_only_a_leaf_replacement() {
        let chat = two_member_chat();
        // Another device's commit (path of someone else).
        let (mut view, next) = resync(1, 1);
        view.path_identity = Some((OWNER, OWNER_DEVICE));
        assert_eq!(check_resync(&chat, admin(), &chat.roster, &view, &next).unwrap_err().code, ErrorCode::Forbidden);
        // A new role for itself in the GroupInfo.
        let (view, mut next) = resync(1, 1);
        next.roles.insert(ADMIN, Role::Owner);
        assert!(check_resync(&chat, admin(), &chat.roster, &view, &next).is_err());
        // Another device brought along.
        let (view, mut next) = resync(1, 1);
        next.leaves.insert(2, (NEWCOMER, DeviceId([12; 32])));
        assert!(check_resync(&chat, admin(), &chat.roster, &view, &next).is_err());
        // Adding nobody's own leaf: an external commit without a removal is a join, not a resync.
        let (mut view, next) = resync(1, 1);
        view.removed_leaves.clear();
        assert_eq!(check_resync(&chat, admin(), &chat.roster, &view, &next).unwrap_err().code, ErrorCode::Forbidden);
    }

    /// A commit without a policy change whose GroupInfo makes a newly added account an admin is
    /// refused: members applying the commit would treat that account as a member.
    #[test]
    fn a_groupinfo_cannot_give_roles_the_commit_does_not() {
        let before: BTreeMap<_, _> = [(OWNER, Role::Owner)].into_iter().collect();
        let escalated = info(&[(OWNER, Role::Owner), (NEWCOMER, Role::Admin)]);
        let e = check_roles(&before, &commit(None, false), &escalated).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{}", e.message);
        // The commit's policy says member, the GroupInfo says admin.
        let e = check_roles(&before, &commit(Some(before.clone()), true), &escalated).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        // A policy that does not decode.
        assert!(check_roles(&before, &commit(None, true), &info(&[(OWNER, Role::Owner)])).is_err());
    }

    #[test]
    fn roles_the_commit_sets_are_accepted_and_reported_as_a_change() {
        let before: BTreeMap<_, _> = [(OWNER, Role::Owner)].into_iter().collect();
        let unchanged = info(&[(OWNER, Role::Owner), (NEWCOMER, Role::Member)]);
        assert!(!check_roles(&before, &commit(None, false), &unchanged).unwrap(), "an explicit member is no change");
        let promoted: BTreeMap<_, _> = [(OWNER, Role::Owner), (NEWCOMER, Role::Admin)].into_iter().collect();
        let view = commit(Some(promoted.clone()), true);
        let next = info(&promoted.into_iter().collect::<Vec<_>>());
        assert!(check_roles(&before, &view, &next).unwrap(), "the owner's role change is a change");
    }
}
