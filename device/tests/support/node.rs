//! A scripted, in-memory Veche node for scenario tests of the device core.
//!
//! It answers [`Request`]s the way the node's delivery service does (`node/src/api/handlers.rs`,
//! `node/src/service/{accounts,chats,delivery,invites}.rs`) and queues the [`Event`]s each
//! connection would receive. No IO, no threads, no clock (`now_ms` is set by the test), no
//! randomness (challenges, invite ids and secrets come from a counter).
//!
//! MLS is only looked at through `veche_mls::inspect`, as the node does (`node/src/mls_view.rs`).
//!
//! Deviations from the real node, on purpose:
//! - one node, no federation: unknown accounts and invites are simply unknown here;
//! - a connection is a number the test picks. [`ScriptedNode::connect`] binds a fresh challenge
//!   to it; a challenge from [`ScriptedNode::hello`] is claimed by the first connection that
//!   signs it (the real node binds it to the socket it was sent on);
//! - events reach a connection right when it signs in (the real node subscribes it just after
//!   the answer is queued) and never lag (no `Event::Lagged`, no queue limit);
//! - no rate limits, frame limits or sign-in timeout; after the third bad signature the
//!   connection is dropped and listed in [`ScriptedNode::closed`];
//! - retention runs only when the test asks ([`ScriptedNode::expire`], [`ScriptedNode::run_retention`]);
//! - calls, meetings, links and the directory are not served (`Unavailable`); there are no
//!   guest accounts and no node admins unless a test sets `node_admin` on an account.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use veche_mls::inspect::{InspectedProposal, InspectedSender, MessageKind, inspect_group_info, inspect_message};
use veche_protocol::auth::{self, CHALLENGE_LEN};
use veche_protocol::ids::{AccountId, ChatKind, DeviceId, GroupId, InviteId, Retention, Role};
use veche_protocol::link::{SECRET_LEN, secret_hash};
use veche_protocol::wire::{
    self, ApiError, ChatInfo, Delivered, EntryKind, ErrorCode, Event, Hello, InviteInfo, InvitePreview, InviteToken,
    MemberInfo, Profile, RegistrationPolicy, Request, Response, WelcomeEnvelope,
};

/// As the node: most entries, and payload bytes, in one fetch answer.
pub const MAX_FETCH: u32 = 1000;
pub const MAX_FETCH_BYTES: u64 = 4 * 1024 * 1024;
/// As the node: one-time key packages a device may keep, and their size.
pub const MAX_KEY_PACKAGES: usize = 200;
pub const MAX_KEY_PACKAGE_BYTES: usize = 8 * 1024;
/// Longest an invite may stay valid (seconds).
pub const MAX_INVITE_EXPIRY_SECS: u64 = 365 * 24 * 3600;
const MAX_AUTH_FAILURES: u32 = 3;
const DAY_MS: u64 = 24 * 3600 * 1000;

type ApiResult<T> = Result<T, ApiError>;

fn err<T>(code: ErrorCode, message: impl Into<String>) -> ApiResult<T> {
    Err(ApiError::new(code, message))
}

/// A signed-in device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub account: AccountId,
    pub device: DeviceId,
}

/// One connection, as `handlers::Conn` holds it.
#[derive(Debug, Clone, Default)]
pub struct Conn {
    pub challenge: Option<[u8; CHALLENGE_LEN]>,
    pub challenge_used: bool,
    pub auth_failures: u32,
    pub session: Option<Session>,
    /// Events not yet taken by the test.
    pub events: Vec<Event>,
}

#[derive(Debug, Clone)]
pub struct AccountRecord {
    pub display_name: String,
    pub node_admin: bool,
    pub devices: Vec<DeviceId>,
    /// The account's signed home binding (`Request::BindHome`), once its first device sent it.
    pub home_signature: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct ChatRecord {
    pub kind: ChatKind,
    pub name: String,
    pub description: String,
    pub created_by: AccountId,
    pub retention: Retention,
    pub epoch: u64,
    pub head: u64,
    /// Lowest sequence number still stored.
    pub tail: u64,
    pub roster: BTreeMap<AccountId, Role>,
    pub leaves: BTreeMap<u32, (AccountId, DeviceId)>,
    /// Accounts that asked to leave in this epoch, with their proposal's reference.
    pub leaving: BTreeMap<AccountId, Vec<u8>>,
    /// Former members -> seq of the commit that removed them.
    pub removed_at: BTreeMap<AccountId, u64>,
    pub peer: Option<AccountId>,
    /// The GroupInfo of the current epoch.
    pub group_info: Vec<u8>,
    /// The stored log, in seq order (entries below `tail` are gone).
    pub log: Vec<Delivered>,
    /// sha-less dedup: the exact bytes of every stored entry -> its seq (kept after expiry).
    pub dedup: BTreeMap<Vec<u8>, u64>,
}

impl ChatRecord {
    fn role_of(&self, account: &AccountId) -> Option<Role> {
        self.roster.get(account).copied()
    }
}

#[derive(Debug, Clone)]
pub struct InviteRecord {
    pub group: Option<GroupId>,
    pub secret_hash: [u8; 32],
    pub created_by: AccountId,
    pub created_ms: u64,
    pub expires_ms: Option<u64>,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub registrations: u32,
    pub revoked: bool,
}

/// A refusal the test scheduled with [`ScriptedNode::refuse_next`].
#[derive(Debug, Clone)]
pub struct Refusal {
    pub remaining: usize,
    pub code: ErrorCode,
}

/// What the node reads out of an MLS message (as `node/src/mls_view.rs` `MessageView`).
#[derive(Debug, Clone)]
pub struct MessageView {
    pub group: GroupId,
    pub epoch: u64,
    pub kind: MessageKind,
    pub sender_leaf: Option<u32>,
    pub public: bool,
    pub added: Vec<(AccountId, DeviceId)>,
    pub removed_leaves: Vec<u32>,
    pub changes_policy: bool,
    pub self_remove: bool,
    pub path_identity: Option<(AccountId, DeviceId)>,
    pub proposal_ref: Option<Vec<u8>>,
    pub references: Vec<Vec<u8>>,
}

/// What the node reads out of a GroupInfo.
#[derive(Debug, Clone)]
pub struct GroupInfoView {
    pub group: GroupId,
    pub epoch: u64,
    pub kind: ChatKind,
    pub roles: BTreeMap<AccountId, Role>,
    pub leaves: BTreeMap<u32, (AccountId, DeviceId)>,
}

impl GroupInfoView {
    pub fn roster(&self) -> BTreeMap<AccountId, Role> {
        self.leaves
            .values()
            .map(|(account, _)| (*account, self.roles.get(account).copied().unwrap_or(Role::Member)))
            .collect()
    }
}

fn malformed(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Malformed, format!("invalid {what}: {e}"))
}

/// `mls_view::message`.
pub fn view_message(bytes: &[u8]) -> ApiResult<MessageView> {
    let inspected = inspect_message(bytes).map_err(|e| malformed("MLS message", e))?;
    let kind = inspected.kind;
    let sender_leaf = match inspected.sender {
        InspectedSender::Member(leaf) => Some(leaf),
        _ => None,
    };
    let self_remove = inspected.proposals.iter().any(|p| matches!(p, InspectedProposal::SelfRemove))
        || (kind == MessageKind::Proposal
            && sender_leaf.is_some()
            && inspected.removed_leaves() == sender_leaf.into_iter().collect::<Vec<_>>());
    Ok(MessageView {
        group: inspected.group,
        epoch: inspected.epoch,
        kind,
        sender_leaf,
        public: inspected.public,
        added: inspected.added().iter().map(|id| (id.account, id.device)).collect(),
        removed_leaves: inspected.removed_leaves(),
        changes_policy: inspected.changes_extensions(),
        self_remove,
        path_identity: inspected.path_identity.map(|id| (id.account, id.device)),
        references: inspected
            .proposals
            .iter()
            .filter_map(|p| match p {
                InspectedProposal::Reference(r) => Some(r.clone()),
                _ => None,
            })
            .collect(),
        proposal_ref: inspected.proposal_ref,
    })
}

/// `mls_view::group_info` (verifies the GroupInfo's signature and tree).
pub fn view_group_info(bytes: &[u8]) -> ApiResult<GroupInfoView> {
    let summary = inspect_group_info(bytes).map_err(|e| malformed("GroupInfo", e))?;
    Ok(GroupInfoView {
        group: summary.group,
        epoch: summary.epoch,
        kind: summary.policy.kind,
        roles: summary.policy.roles.clone(),
        leaves: summary.leaves.iter().map(|(leaf, id)| (*leaf, (id.account, id.device))).collect(),
    })
}

fn check_size(bytes: &[u8], what: &str) -> ApiResult<()> {
    if bytes.len() > veche_protocol::MAX_MLS_MESSAGE_BYTES {
        return err(
            ErrorCode::TooLarge,
            format!("{what} is larger than {} bytes", veche_protocol::MAX_MLS_MESSAGE_BYTES),
        );
    }
    Ok(())
}

fn stale<T>(current: u64) -> ApiResult<T> {
    err(ErrorCode::StaleEpoch { current }, format!("the chat is at epoch {current}: fetch new messages and retry"))
}

fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, e.to_string())
}

/// Who changed what between two epochs (`delivery::Change`).
struct Change {
    added: Vec<(AccountId, DeviceId)>,
    removed: Vec<AccountId>,
    roles_changed: bool,
}

fn diff(chat: &ChatRecord, next: &GroupInfoView) -> Change {
    let old_devices: BTreeSet<_> = chat.leaves.values().copied().collect();
    let new_devices: BTreeSet<_> = next.leaves.values().copied().collect();
    let next_roster = next.roster();
    let added = new_devices.difference(&old_devices).copied().collect();
    let removed = chat.roster.keys().filter(|a| !next_roster.contains_key(a)).copied().collect();
    let roles_changed = chat.roster.iter().any(|(a, role)| next_roster.get(a).is_some_and(|new| new != role));
    Change { added, removed, roles_changed }
}

/// `delivery::check_commit_matches`: the commit's proposals describe the GroupInfo's change.
fn check_commit_matches(chat: &ChatRecord, view: &MessageView, change: &Change) -> ApiResult<BTreeSet<AccountId>> {
    let added_by_commit: BTreeSet<_> = view.added.iter().copied().collect();
    let added_by_info: BTreeSet<_> = change.added.iter().copied().collect();
    let mut removed_by_commit = BTreeSet::new();
    for leaf in &view.removed_leaves {
        match chat.leaves.get(leaf) {
            Some((account, _)) => {
                removed_by_commit.insert(*account);
            }
            None => return err(ErrorCode::BadRequest, "commit removes a leaf that is not in the chat"),
        }
    }
    let removed_by_info: BTreeSet<_> = change.removed.iter().copied().collect();
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

/// `delivery::check_policy`: the role policy every member device applies too.
/// `delivery::check_resync`.
fn check_resync(chat: &ChatRecord, session: Session, view: &MessageView, next: &GroupInfoView) -> ApiResult<()> {
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
    Ok(())
}

fn check_policy(
    chat: &ChatRecord,
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
    let privileged_added = change.added.iter().any(|(a, _)| chat.role_of(a).is_some_and(|r| r != Role::Member));
    if privileged_added && role != Role::Owner {
        return err(ErrorCode::Forbidden, "only the owner adds devices of owners and admins");
    }
    for account in &change.removed {
        let target = chat.role_of(account).unwrap_or(Role::Member);
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

/// The in-memory node.
#[derive(Debug, Clone)]
pub struct ScriptedNode {
    pub node_id: String,
    pub node_name: String,
    pub registration: RegistrationPolicy,
    /// The node's clock, milliseconds since the Unix epoch.
    pub now_ms: u64,
    pub conns: BTreeMap<u64, Conn>,
    /// Challenges handed out by [`ScriptedNode::hello`] that no connection has used yet.
    pub unbound_challenges: Vec<[u8; CHALLENGE_LEN]>,
    /// Connections the node closed (too many bad signatures), with the `Fatal` it sent.
    pub closed: Vec<(u64, ApiError)>,
    pub accounts: BTreeMap<AccountId, AccountRecord>,
    pub devices: BTreeMap<DeviceId, AccountId>,
    pub key_packages: BTreeMap<DeviceId, VecDeque<Vec<u8>>>,
    pub last_resort: BTreeMap<DeviceId, Vec<u8>>,
    pub chats: BTreeMap<GroupId, ChatRecord>,
    /// (device, group) -> highest acknowledged seq.
    pub cursors: BTreeMap<(DeviceId, GroupId), u64>,
    /// (device, welcome id) -> envelope.
    pub welcomes: BTreeMap<(DeviceId, u64), WelcomeEnvelope>,
    pub next_welcome_id: u64,
    pub invites: BTreeMap<InviteId, InviteRecord>,
    pub refusals: BTreeMap<GroupId, Refusal>,
    /// Members the node deleted (guests whose meeting is over) that `ChatInfo::gone` lists while
    /// they are still in the chat.
    pub gone: BTreeSet<(GroupId, AccountId)>,
    /// Source of challenges, invite ids and secrets.
    pub counter: u64,
}

impl ScriptedNode {
    pub fn new(node_id: &str) -> Self {
        ScriptedNode {
            node_id: node_id.to_string(),
            node_name: format!("scripted {node_id}"),
            registration: RegistrationPolicy::Open,
            now_ms: 1_700_000_000_000,
            conns: BTreeMap::new(),
            unbound_challenges: Vec::new(),
            closed: Vec::new(),
            accounts: BTreeMap::new(),
            devices: BTreeMap::new(),
            key_packages: BTreeMap::new(),
            last_resort: BTreeMap::new(),
            chats: BTreeMap::new(),
            cursors: BTreeMap::new(),
            welcomes: BTreeMap::new(),
            next_welcome_id: 1,
            invites: BTreeMap::new(),
            refusals: BTreeMap::new(),
            gone: BTreeSet::new(),
            counter: 0,
        }
    }

    fn fresh_bytes<const N: usize>(&mut self, tag: u8) -> [u8; N] {
        self.counter += 1;
        let mut out = [tag; N];
        let n = self.counter.to_be_bytes();
        let len = n.len().min(N);
        out[N - len..].copy_from_slice(&n[8 - len..]);
        out
    }

    fn hello_with(&self, challenge: [u8; CHALLENGE_LEN]) -> Hello {
        Hello {
            protocol: veche_protocol::PROTOCOL_VERSION,
            node_id: self.node_id.clone(),
            node_name: self.node_name.clone(),
            registration: self.registration,
            challenge,
        }
    }

    /// A `Hello` with a fresh challenge, claimed by the first connection that signs it.
    pub fn hello(&mut self) -> Hello {
        let challenge = self.fresh_bytes(0xc0);
        self.unbound_challenges.push(challenge);
        self.hello_with(challenge)
    }

    /// Opens connection `conn` (dropping any earlier one under that number): its `Hello`, whose
    /// challenge only this connection may sign.
    pub fn connect(&mut self, conn: u64) -> Hello {
        let challenge = self.fresh_bytes(0xc0);
        self.conns.insert(conn, Conn { challenge: Some(challenge), ..Conn::default() });
        self.hello_with(challenge)
    }

    pub fn disconnect(&mut self, conn: u64) {
        self.conns.remove(&conn);
    }

    /// The signed-in account and device of a connection.
    pub fn session(&self, conn: u64) -> Option<Session> {
        self.conns.get(&conn).and_then(|c| c.session)
    }

    pub fn take_events(&mut self, conn: u64) -> Vec<Event> {
        self.conns.get_mut(&conn).map(|c| std::mem::take(&mut c.events)).unwrap_or_default()
    }

    pub fn log(&self, group: GroupId) -> &[Delivered] {
        self.chats.get(&group).map(|c| c.log.as_slice()).unwrap_or(&[])
    }

    pub fn set_now(&mut self, ms: u64) {
        self.now_ms = ms;
    }

    /// The next `n` `Commit`, `Send` and `Join` requests for `group` are refused with `code`,
    /// before anything is checked or stored (a resend of something stored is refused too).
    pub fn refuse_next(&mut self, group: GroupId, n: usize, code: ErrorCode) {
        self.refusals.insert(group, Refusal { remaining: n, code });
    }

    /// Drops the log entries up to `up_to_seq` as retention would (dedup is kept).
    pub fn expire(&mut self, group: GroupId, up_to_seq: u64) {
        if let Some(chat) = self.chats.get_mut(&group) {
            chat.log.retain(|e| e.seq > up_to_seq);
            chat.tail = chat.tail.max(up_to_seq.saturating_add(1));
        }
    }

    /// One retention pass over every chat (`retention::run_once`, without its per-pass limit).
    pub fn run_retention(&mut self) {
        let now = self.now_ms;
        let groups: Vec<GroupId> = self.chats.keys().copied().collect();
        for group in groups {
            let chat = &self.chats[&group];
            let up_to = match chat.retention {
                Retention::Forever => continue,
                Retention::Days(n) => {
                    let cutoff = now.saturating_sub(u64::from(n) * DAY_MS);
                    chat.log.iter().take_while(|e| e.stored_at_ms < cutoff).map(|e| e.seq).last()
                }
                Retention::UntilFetched => chat
                    .leaves
                    .values()
                    .map(|(_, device)| self.cursors.get(&(*device, group)).copied().unwrap_or(0))
                    .min(),
            };
            if let Some(up_to) = up_to {
                self.expire(group, up_to);
            }
        }
    }

    /// Another device of an existing account (the wire protocol has no request for it yet).
    pub fn add_device(&mut self, account: AccountId, device: DeviceId) {
        if let Some(record) = self.accounts.get_mut(&account) {
            record.devices.push(device);
            self.devices.insert(device, account);
        }
    }

    /// Queues `event` on every signed-in connection of the accounts.
    pub fn publish(&mut self, to: &[AccountId], event: Event) {
        for conn in self.conns.values_mut() {
            if conn.session.is_some_and(|s| to.contains(&s.account)) {
                conn.events.push(event.clone());
            }
        }
    }

    fn take_refusal(&mut self, group: GroupId) -> ApiResult<()> {
        if let Some(refusal) = self.refusals.get_mut(&group)
            && refusal.remaining > 0
        {
            refusal.remaining -= 1;
            let code = refusal.code;
            if refusal.remaining == 0 {
                self.refusals.remove(&group);
            }
            return err(code, "refused by the test script");
        }
        Ok(())
    }

    /// One request from connection `conn`.
    pub fn handle(&mut self, conn: u64, request: Request) -> Result<Response, ApiError> {
        let state = self.conns.entry(conn).or_default();
        let session = match (&request, state.session) {
            (Request::Register { .. } | Request::SignIn { .. }, Some(_)) => {
                return err(ErrorCode::ChallengeUsed, "already signed in on this connection");
            }
            (Request::Register { device, account, display_name, invite, signature, .. }, None) => {
                let (device, account) = (*device, *account);
                let sign = |c: &[u8; CHALLENGE_LEN], node_id: &str| {
                    auth::register_payload(node_id, c, &device, &account, display_name, None)
                };
                let (signature, display_name, invite) = (signature.clone(), display_name.clone(), invite.clone());
                self.authenticate(conn, &device, &signature, sign)?;
                let result = self.register(device, account, &display_name, invite);
                if let Ok(account) = &result {
                    self.sign_in_conn(conn, Session { account: account.account, device: account.device });
                }
                return result.map(Response::SignedIn);
            }
            (Request::SignIn { device, signature, .. }, None) => {
                let (device, signature) = (*device, signature.clone());
                self.authenticate(conn, &device, &signature, |c, node_id| {
                    auth::sign_in_payload(node_id, c, &device, None)
                })?;
                let result = self.account_of_device(device);
                if let Ok(account) = &result {
                    self.sign_in_conn(conn, Session { account: account.account, device: account.device });
                }
                return result.map(Response::SignedIn);
            }
            (Request::InvitePreview { token }, _) => return self.preview(token).map(Response::InvitePreview),
            (_, None) => return err(ErrorCode::Unauthenticated, "sign in first"),
            (_, Some(session)) => session,
        };
        match request {
            Request::Register { .. } | Request::SignIn { .. } | Request::InvitePreview { .. } => {
                err(ErrorCode::Internal, "unreachable request kind")
            }
            Request::Me => self.account_of_device(session.device).map(Response::SignedIn),
            Request::PublishKeyPackages { packages, last_resort } => {
                self.publish_key_packages(session, packages, last_resort).map(|()| Response::Ok)
            }
            Request::KeyPackageCount => {
                Ok(Response::KeyPackageCount(self.key_packages.get(&session.device).map_or(0, |q| q.len() as u32)))
            }
            Request::ClaimKeyPackages { account } => self.claim_key_packages(account).map(Response::KeyPackages),
            Request::Profiles { accounts } => self.profiles(&accounts).map(Response::Profiles),
            Request::CreateChat { group, kind, name, description, peer, group_info } => {
                self.create_chat(session, group, kind, name, description, peer, group_info).map(Response::Chat)
            }
            Request::Chats => {
                let groups: Vec<GroupId> = self
                    .chats
                    .iter()
                    .filter(|(_, c)| c.roster.contains_key(&session.account))
                    .map(|(g, _)| *g)
                    .collect();
                Ok(Response::Chats(groups.into_iter().map(|g| self.chat_info(g)).collect()))
            }
            Request::Chat { group } => {
                self.member_chat(session, group)?;
                Ok(Response::Chat(self.chat_info(group)))
            }
            Request::GroupInfo { group } => {
                let chat = self.member_chat(session, group)?;
                Ok(Response::GroupInfo(chat.group_info.clone()))
            }
            Request::Commit { group, commit, welcome, group_info } => {
                self.take_refusal(group)?;
                self.commit(session, group, commit, welcome, group_info).map(|seq| Response::Stored { seq })
            }
            Request::Send { group, message } => {
                self.take_refusal(group)?;
                self.send(session, group, message).map(|seq| Response::Stored { seq })
            }
            Request::Fetch { group, after, limit } => {
                self.fetch(session, group, after, limit).map(|(messages, head)| Response::Messages { messages, head })
            }
            Request::Ack { group, seq } => self.ack(session, group, seq).map(|()| Response::Ok),
            Request::Welcomes => Ok(Response::Welcomes(
                self.welcomes.range((session.device, 0)..=(session.device, u64::MAX)).map(|(_, w)| w.clone()).collect(),
            )),
            Request::AckWelcome { id } => match self.welcomes.remove(&(session.device, id)) {
                Some(_) => Ok(Response::Ok),
                None => err(ErrorCode::NotFound, "no such welcome"),
            },
            Request::CreateInvite { group, max_uses, expires_in_secs } => self
                .create_invite(session, group, max_uses, expires_in_secs)
                .map(|(invite, secret)| Response::InviteCreated { invite, secret }),
            Request::RevokeInvite { invite } => self.revoke_invite(session, invite).map(|()| Response::Ok),
            Request::Invites { group } => {
                let chat = self.member_chat(session, group)?;
                if !chat.role_of(&session.account).is_some_and(|r| r.can_manage_members()) {
                    return err(ErrorCode::Forbidden, "only owners and admins see invite links");
                }
                let mut out: Vec<InviteInfo> = self
                    .invites
                    .iter()
                    .filter(|(_, i)| i.group == Some(group))
                    .map(|(id, i)| invite_info(*id, i))
                    .collect();
                out.sort_by_key(|i| i.created_at_ms);
                Ok(Response::Invites(out))
            }
            Request::JoinGroupInfo { token } => {
                let (_, invite) = self.check_token(&token, true)?;
                match invite.group.and_then(|g| self.chats.get(&g)) {
                    Some(chat) => Ok(Response::GroupInfo(chat.group_info.clone())),
                    None => err(ErrorCode::InviteInvalid, "the chat of this invite no longer exists"),
                }
            }
            Request::Join { token, commit, group_info } => {
                if let Ok(view) = inspect_message(&commit) {
                    self.take_refusal(view.group)?;
                }
                self.join(session, token, commit, group_info).map(|seq| Response::Stored { seq })
            }
            Request::SetRetention { group, retention } => {
                if let Retention::Days(0) = retention {
                    return err(ErrorCode::BadRequest, "retention must be at least one day");
                }
                let chat =
                    self.manageable_chat(session, group, |r| r == Role::Owner, "only the chat's owner sets retention")?;
                chat.retention = retention;
                Ok(Response::Ok)
            }
            Request::UpdateChat { group, name, description } => {
                let name = veche_protocol::validate::chat_name(&name).map_err(bad_request)?;
                let description = veche_protocol::validate::chat_description(&description).map_err(bad_request)?;
                let chat = self.manageable_chat(
                    session,
                    group,
                    Role::can_manage_members,
                    "only the chat's owner and admins rename it",
                )?;
                if chat.kind == ChatKind::Direct {
                    return err(ErrorCode::BadRequest, "a direct chat has no name");
                }
                chat.name = name;
                chat.description = description;
                let members: Vec<AccountId> = chat.roster.keys().copied().collect();
                self.publish(&members, Event::ChatUpdated { group });
                Ok(Response::Ok)
            }
            Request::BindHome { signature } => {
                if veche_protocol::auth::verify_home(&session.account, &self.node_id, &signature).is_err() {
                    return err(ErrorCode::BadSignature, "the home binding is not the account key's signature");
                }
                if let Some(record) = self.accounts.get_mut(&session.account) {
                    record.home_signature = Some(signature);
                }
                Ok(Response::Ok)
            }
            _ => err(ErrorCode::Unavailable, "not served by the scripted node"),
        }
    }

    /// Checks a sign-in or registration signature against this connection's challenge (or, for
    /// a connection without one, against an unclaimed challenge from `hello`).
    fn authenticate(
        &mut self,
        conn: u64,
        device: &DeviceId,
        signature: &[u8],
        payload: impl Fn(&[u8; CHALLENGE_LEN], &str) -> Vec<u8>,
    ) -> ApiResult<()> {
        let state = self.conns.entry(conn).or_default();
        if state.challenge_used {
            return err(ErrorCode::ChallengeUsed, "challenge already used; reconnect");
        }
        let verifies = |c: &[u8; CHALLENGE_LEN]| auth::verify(device, &payload(c, &self.node_id), signature).is_ok();
        let ok = match state.challenge {
            Some(c) => verifies(&c),
            None => match self.unbound_challenges.iter().position(verifies) {
                Some(i) => {
                    state.challenge = Some(self.unbound_challenges.remove(i));
                    true
                }
                None => false,
            },
        };
        if ok {
            return Ok(());
        }
        state.auth_failures += 1;
        if state.auth_failures >= MAX_AUTH_FAILURES {
            self.conns.remove(&conn);
            self.closed.push((conn, ApiError::new(ErrorCode::BadSignature, "too many failed sign-in attempts")));
        }
        err(ErrorCode::BadSignature, "signature does not match this connection's challenge")
    }

    fn sign_in_conn(&mut self, conn: u64, session: Session) {
        let state = self.conns.entry(conn).or_default();
        state.challenge_used = true;
        state.session = Some(session);
    }

    fn register(
        &mut self,
        device: DeviceId,
        account: AccountId,
        display_name: &str,
        invite: Option<InviteToken>,
    ) -> ApiResult<wire::Account> {
        let display_name = veche_protocol::validate::display_name(display_name).map_err(bad_request)?;
        if account.0 != device.0 {
            return err(ErrorCode::BadRequest, "the first device's key must be the account key");
        }
        if self.devices.contains_key(&device) {
            return err(ErrorCode::Conflict, "this device is already registered; sign in instead");
        }
        let invite = match &invite {
            Some(token) => Some(self.check_token(token, false)?),
            None => None,
        };
        match (self.registration, &invite) {
            (RegistrationPolicy::Open, _) | (RegistrationPolicy::Invite, Some(_)) => {}
            (RegistrationPolicy::Invite, None) => {
                return err(ErrorCode::InviteRequired, "this node admits new members by invite link only");
            }
            (RegistrationPolicy::Closed, _) => {
                return err(ErrorCode::RegistrationClosed, "this node is not accepting new members");
            }
        }
        if let Some((id, mut inv)) = invite {
            if inv.group.is_none() {
                inv.uses += 1;
            } else {
                if inv.max_uses.is_some_and(|max| inv.registrations >= max) {
                    return err(ErrorCode::InviteUsedUp, "this invite link has admitted as many new members as it may");
                }
                inv.registrations += 1;
            }
            self.invites.insert(id, inv);
        }
        self.accounts.insert(
            account,
            AccountRecord {
                display_name: display_name.clone(),
                node_admin: false,
                devices: vec![device],
                home_signature: None,
            },
        );
        self.devices.insert(device, account);
        Ok(wire::Account { account, device, display_name, node_admin: false, guest_of: None, home_bound: false })
    }

    fn account_of_device(&self, device: DeviceId) -> ApiResult<wire::Account> {
        let Some(account) = self.devices.get(&device).copied() else {
            return err(ErrorCode::NotFound, "this device is not registered on this node");
        };
        let record = &self.accounts[&account];
        Ok(wire::Account {
            account,
            device,
            display_name: record.display_name.clone(),
            node_admin: record.node_admin,
            guest_of: None,
            home_bound: record.home_signature.is_some(),
        })
    }

    fn publish_key_packages(
        &mut self,
        session: Session,
        packages: Vec<Vec<u8>>,
        last_resort: Option<Vec<u8>>,
    ) -> ApiResult<()> {
        if packages.len() > MAX_KEY_PACKAGES {
            return err(ErrorCode::TooLarge, format!("upload at most {MAX_KEY_PACKAGES} key packages at once"));
        }
        for package in packages.iter().chain(last_resort.iter()) {
            if package.len() > MAX_KEY_PACKAGE_BYTES {
                return err(ErrorCode::TooLarge, "key package too large");
            }
            let identity = veche_mls::inspect::inspect_key_package(package).map_err(|e| malformed("key package", e))?;
            if identity.device != session.device || identity.account != session.account {
                return err(ErrorCode::Forbidden, "key package belongs to another device");
            }
        }
        let queue = self.key_packages.entry(session.device).or_default();
        if queue.len() + packages.len() > MAX_KEY_PACKAGES {
            return err(ErrorCode::TooLarge, format!("a device keeps at most {MAX_KEY_PACKAGES} key packages"));
        }
        queue.extend(packages);
        if let Some(package) = last_resort {
            self.last_resort.insert(session.device, package);
        }
        Ok(())
    }

    fn claim_key_packages(&mut self, account: AccountId) -> ApiResult<Vec<Vec<u8>>> {
        let Some(record) = self.accounts.get(&account) else {
            return err(ErrorCode::NotFound, "no such member on this node");
        };
        let mut out = Vec::new();
        for device in &record.devices {
            if let Some(package) = self.key_packages.get_mut(device).and_then(|q| q.pop_front()) {
                out.push(package);
            } else if let Some(package) = self.last_resort.get(device) {
                out.push(package.clone());
            }
        }
        if out.is_empty() {
            return err(ErrorCode::NotFound, "this member has no key packages; they must come online first");
        }
        Ok(out)
    }

    fn profiles(&self, accounts: &[AccountId]) -> ApiResult<Vec<Profile>> {
        if accounts.len() > 1000 {
            return err(ErrorCode::TooLarge, "ask for at most 1000 profiles at once");
        }
        Ok(accounts
            .iter()
            .filter_map(|a| self.accounts.get(a).map(|r| Profile { account: *a, display_name: r.display_name.clone() }))
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn create_chat(
        &mut self,
        session: Session,
        group: GroupId,
        kind: ChatKind,
        name: String,
        description: String,
        peer: Option<AccountId>,
        group_info: Vec<u8>,
    ) -> ApiResult<ChatInfo> {
        let (name, description) = match kind {
            ChatKind::Group => (
                veche_protocol::validate::chat_name(&name).map_err(bad_request)?,
                veche_protocol::validate::chat_description(&description).map_err(bad_request)?,
            ),
            ChatKind::Direct => (String::new(), String::new()),
        };
        if group_info.len() > veche_protocol::MAX_MLS_MESSAGE_BYTES {
            return err(ErrorCode::TooLarge, "GroupInfo too large");
        }
        let view = view_group_info(&group_info)?;
        if view.group != group || view.epoch != 0 || view.kind != kind {
            return err(ErrorCode::BadRequest, "GroupInfo does not describe a new chat of this id and kind");
        }
        let only_creator =
            view.leaves.len() == 1 && view.leaves.values().all(|(a, d)| *a == session.account && *d == session.device);
        if !only_creator || view.roles.get(&session.account) != Some(&Role::Owner) {
            return err(ErrorCode::BadRequest, "a new chat must hold only its creator, as owner");
        }
        match (kind, peer) {
            (ChatKind::Direct, Some(p)) if p == session.account => {
                return err(ErrorCode::BadRequest, "a direct chat needs another member");
            }
            (ChatKind::Direct, None) => return err(ErrorCode::BadRequest, "a direct chat needs the other member's id"),
            (ChatKind::Group, Some(_)) => return err(ErrorCode::BadRequest, "only direct chats name a peer"),
            _ => {}
        }
        if self.chats.contains_key(&group) {
            return err(ErrorCode::Conflict, "a chat with this id exists");
        }
        if let Some(peer) = peer {
            if !self.accounts.contains_key(&peer) {
                return err(ErrorCode::NotFound, "no such member on this node or its linked nodes");
            }
            let pair = |a: AccountId, b: AccountId| if a <= b { (a, b) } else { (b, a) };
            let wanted = pair(session.account, peer);
            let existing = self
                .chats
                .iter()
                .find(|(_, c)| c.kind == ChatKind::Direct && c.peer.is_some_and(|p| pair(c.created_by, p) == wanted));
            if let Some((existing, _)) = existing {
                return err(ErrorCode::Conflict, format!("a direct chat with this member exists: {existing}"));
            }
        }
        let chat = ChatRecord {
            kind,
            name,
            description,
            created_by: session.account,
            retention: Retention::Forever,
            epoch: 0,
            head: 0,
            tail: 1,
            roster: view.roster(),
            leaves: view.leaves.clone(),
            leaving: BTreeMap::new(),
            removed_at: BTreeMap::new(),
            peer,
            group_info,
            log: Vec::new(),
            dedup: BTreeMap::new(),
        };
        self.chats.insert(group, chat);
        self.cursors.insert((session.device, group), 0);
        Ok(self.chat_info(group))
    }

    /// The public view of a chat (which must exist).
    pub fn chat_info(&self, group: GroupId) -> ChatInfo {
        let chat = &self.chats[&group];
        let members = chat
            .roster
            .iter()
            .map(|(account, role)| {
                let known = self.accounts.get(account);
                MemberInfo {
                    account: *account,
                    display_name: known.map(|r| r.display_name.clone()).unwrap_or_default(),
                    role: *role,
                    home_node: if known.is_some() { self.node_id.clone() } else { String::new() },
                    home_name: if known.is_some() { self.node_name.clone() } else { String::new() },
                }
            })
            .collect();
        ChatInfo {
            group,
            kind: chat.kind,
            name: chat.name.clone(),
            description: chat.description.clone(),
            home_node: self.node_id.clone(),
            retention: chat.retention,
            epoch: chat.epoch,
            head: chat.head,
            gone: self
                .gone
                .iter()
                .filter(|(g, a)| *g == group && chat.roster.contains_key(a))
                .map(|(_, a)| *a)
                .collect(),
            members,
            peer: chat.peer,
        }
    }

    fn member_chat(&self, session: Session, group: GroupId) -> ApiResult<&ChatRecord> {
        match self.chats.get(&group) {
            Some(chat) if chat.roster.contains_key(&session.account) => Ok(chat),
            _ => err(ErrorCode::NotFound, "no such chat, or you are not a member"),
        }
    }

    /// `chats::change_chat`'s checks.
    fn manageable_chat(
        &mut self,
        session: Session,
        group: GroupId,
        allowed: fn(Role) -> bool,
        forbidden: &str,
    ) -> ApiResult<&mut ChatRecord> {
        let Some(chat) = self.chats.get_mut(&group) else {
            return err(ErrorCode::NotFound, "no such chat");
        };
        match chat.role_of(&session.account) {
            Some(role) if allowed(role) => Ok(chat),
            Some(_) => err(ErrorCode::Forbidden, forbidden),
            None => err(ErrorCode::NotFound, "no such chat, or you are not a member"),
        }
    }

    /// `delivery::append`: next seq, dedup, log, and the entry to `recipients`.
    fn append(
        &mut self,
        group: GroupId,
        kind: EntryKind,
        epoch: u64,
        sender: AccountId,
        payload: Vec<u8>,
        recipients: &[AccountId],
    ) -> u64 {
        let now = self.now_ms;
        let chat = self.chats.get_mut(&group).expect("chat exists");
        chat.head += 1;
        let seq = chat.head;
        chat.dedup.insert(payload.clone(), seq);
        let delivered = Delivered { group, seq, kind, epoch, sender, stored_at_ms: now, payload };
        chat.log.push(delivered.clone());
        self.publish(recipients, Event::Message(delivered));
        seq
    }

    fn already_stored(&self, group: GroupId, payload: &[u8]) -> Option<u64> {
        self.chats.get(&group).and_then(|c| c.dedup.get(payload).copied())
    }

    /// `delivery::send` (one message).
    fn send(&mut self, session: Session, group: GroupId, message: Vec<u8>) -> ApiResult<u64> {
        check_size(&message, "message")?;
        let view = view_message(&message)?;
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
        if let Some(seq) = self.already_stored(group, &message) {
            return Ok(seq);
        }
        let Some(chat) = self.chats.get_mut(&group) else {
            return err(ErrorCode::NotFound, "no such chat");
        };
        if !chat.roster.contains_key(&session.account) {
            return err(ErrorCode::Forbidden, "you are not a member of this chat");
        }
        if view.epoch != chat.epoch {
            return stale(chat.epoch);
        }
        if kind == EntryKind::Handshake {
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
            let Some(reference) = view.proposal_ref.clone() else {
                return err(ErrorCode::BadRequest, "a leave proposal must be a PublicMessage with a reference");
            };
            chat.leaving.insert(session.account, reference);
        }
        let recipients: Vec<AccountId> = chat.roster.keys().copied().collect();
        Ok(self.append(group, kind, view.epoch, session.account, message, &recipients))
    }

    /// `delivery::commit`.
    fn commit(
        &mut self,
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
        let view = view_message(&commit)?;
        if view.group != group || !matches!(view.kind, MessageKind::Commit | MessageKind::ExternalCommit) {
            return err(ErrorCode::BadRequest, "not a commit for this chat");
        }
        let next = view_group_info(&group_info)?;
        if next.group != group || next.epoch != view.epoch + 1 {
            return err(ErrorCode::BadRequest, "GroupInfo is not for the epoch this commit creates");
        }
        if let Some(seq) = self.already_stored(group, &commit) {
            return Ok(seq);
        }
        let Some(chat) = self.chats.get(&group) else {
            return err(ErrorCode::NotFound, "no such chat");
        };
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
            check_resync(chat, session, &view, &next)?;
            let change = Change { added: Vec::new(), removed: Vec::new(), roles_changed: false };
            return Ok(self.apply_commit(group, session.account, commit, None, group_info, next, change));
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
        let change = diff(chat, &next);
        let removed_inline = check_commit_matches(chat, &view, &change)?;
        check_policy(chat, session.account, &change, &next, &removed_inline)?;
        for (account, _) in &change.added {
            if !self.accounts.contains_key(account) {
                return err(
                    ErrorCode::BadRequest,
                    format!("member {account} is not known on this node or its linked nodes"),
                );
            }
        }
        if !change.added.is_empty() && welcome.is_none() {
            return err(ErrorCode::BadRequest, "a commit that adds members needs their Welcome");
        }
        Ok(self.apply_commit(group, session.account, commit, welcome, group_info, next, change))
    }

    /// `delivery::apply_commit`.
    #[allow(clippy::too_many_arguments)]
    fn apply_commit(
        &mut self,
        group: GroupId,
        sender: AccountId,
        commit: Vec<u8>,
        welcome: Option<Vec<u8>>,
        group_info: Vec<u8>,
        next: GroupInfoView,
        change: Change,
    ) -> u64 {
        let chat = self.chats.get_mut(&group).expect("chat exists");
        let mut recipients: BTreeSet<AccountId> = chat.roster.keys().copied().collect();
        let epoch = chat.epoch;
        chat.epoch = next.epoch;
        chat.roster = next.roster();
        chat.leaves = next.leaves.clone();
        chat.leaving.clear();
        recipients.extend(chat.roster.keys().copied());
        let seq = chat.head + 1;
        for account in &change.removed {
            chat.removed_at.insert(*account, seq);
        }
        for (account, _) in &change.added {
            chat.removed_at.remove(account);
        }
        chat.group_info = group_info;
        let recipients: Vec<AccountId> = recipients.into_iter().collect();
        let seq = self.append(group, EntryKind::Handshake, epoch, sender, commit, &recipients);
        for (_, device) in &change.added {
            self.cursors.insert((*device, group), seq - 1);
        }
        if let Some(welcome) = welcome {
            for (account, device) in &change.added {
                if !self.devices.contains_key(device) {
                    continue;
                }
                let id = self.next_welcome_id;
                self.next_welcome_id += 1;
                let envelope = WelcomeEnvelope { id, group, commit_seq: seq, welcome: welcome.clone() };
                self.welcomes.insert((*device, id), envelope.clone());
                self.publish(&[*account], Event::Welcome(envelope));
            }
        }
        seq
    }

    /// `invites::join` and `delivery::join_commit`.
    fn join(&mut self, session: Session, token: InviteToken, commit: Vec<u8>, group_info: Vec<u8>) -> ApiResult<u64> {
        for (bytes, what) in [(&commit, "commit"), (&group_info, "GroupInfo")] {
            if bytes.len() > veche_protocol::MAX_MLS_MESSAGE_BYTES {
                return err(ErrorCode::TooLarge, format!("{what} too large"));
            }
        }
        let view = view_message(&commit)?;
        if view.kind != MessageKind::ExternalCommit {
            return err(ErrorCode::BadRequest, "joining by link needs an external commit");
        }
        let next = view_group_info(&group_info)?;
        if next.group != view.group || next.epoch != view.epoch + 1 {
            return err(ErrorCode::BadRequest, "GroupInfo is not for the epoch this commit creates");
        }
        let group = view.group;
        if let Some(seq) = self.already_stored(group, &commit) {
            return Ok(seq);
        }
        let (id, invite) = self.check_token(&token, true)?;
        if invite.group != Some(group) {
            return err(ErrorCode::BadRequest, "this commit is for another chat than the invite's");
        }
        let Some(chat) = self.chats.get(&group) else {
            return err(ErrorCode::NotFound, "no such chat");
        };
        if chat.kind == ChatKind::Direct {
            return err(ErrorCode::Forbidden, "direct chats cannot be joined by link");
        }
        if chat.roster.contains_key(&session.account) {
            return err(ErrorCode::Conflict, "you are already a member of this chat");
        }
        if view.epoch != chat.epoch {
            return stale(chat.epoch);
        }
        if view.path_identity != Some((session.account, session.device)) {
            return err(ErrorCode::Forbidden, "an external commit must carry the joining device's own leaf");
        }
        let change = diff(chat, &next);
        let only_self = change.added == [(session.account, session.device)] && change.removed.is_empty();
        if !only_self || change.roles_changed || next.kind != chat.kind {
            return err(ErrorCode::Forbidden, "an external commit may only add the joining device");
        }
        if next.roster().get(&session.account) != Some(&Role::Member) {
            return err(ErrorCode::Forbidden, "a member who joins by link joins as a member");
        }
        let seq = self.apply_commit(group, session.account, commit, None, group_info, next, change);
        if let Some(invite) = self.invites.get_mut(&id) {
            invite.uses += 1;
        }
        Ok(seq)
    }

    /// `delivery::fetch`.
    fn fetch(&self, session: Session, group: GroupId, after: u64, limit: u32) -> ApiResult<(Vec<Delivered>, u64)> {
        let not_found = || err(ErrorCode::NotFound, "no such chat, or you are not a member");
        let Some(chat) = self.chats.get(&group) else {
            return not_found();
        };
        let upto = if chat.roster.contains_key(&session.account) {
            chat.head
        } else if let Some(seq) = chat.removed_at.get(&session.account) {
            *seq
        } else {
            return not_found();
        };
        let limit = limit.clamp(1, MAX_FETCH) as usize;
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for entry in chat.log.iter().filter(|e| e.seq > after && e.seq <= upto).take(limit) {
            if !out.is_empty() && bytes + entry.payload.len() as u64 > MAX_FETCH_BYTES {
                break;
            }
            bytes += entry.payload.len() as u64;
            out.push(entry.clone());
        }
        Ok((out, upto))
    }

    /// `delivery::ack`.
    fn ack(&mut self, session: Session, group: GroupId, seq: u64) -> ApiResult<()> {
        let Some(chat) = self.chats.get(&group) else {
            return err(ErrorCode::NotFound, "no such chat");
        };
        if !chat.roster.contains_key(&session.account) && !chat.removed_at.contains_key(&session.account) {
            return err(ErrorCode::NotFound, "no such chat, or you are not a member");
        }
        if seq > chat.head {
            return err(ErrorCode::BadRequest, "cannot acknowledge beyond the newest message");
        }
        let cursor = self.cursors.entry((session.device, group)).or_insert(0);
        *cursor = (*cursor).max(seq);
        Ok(())
    }

    /// `invites::validate`.
    fn check_token(&self, token: &InviteToken, for_join: bool) -> ApiResult<(InviteId, InviteRecord)> {
        let Some(invite) = self.invites.get(&token.invite).filter(|i| i.secret_hash == secret_hash(&token.secret))
        else {
            return err(ErrorCode::InviteInvalid, "this invite link is not valid on this node");
        };
        if invite.revoked {
            return err(ErrorCode::InviteRevoked, "this invite link was revoked");
        }
        if invite.expires_ms.is_some_and(|t| t <= self.now_ms) {
            return err(ErrorCode::InviteExpired, "this invite link has expired");
        }
        if invite.max_uses.is_some_and(|max| invite.uses >= max) {
            return err(ErrorCode::InviteUsedUp, "this invite link has been used up");
        }
        if for_join && invite.group.is_none() {
            return err(ErrorCode::BadRequest, "this link admits to the node, not to a chat");
        }
        Ok((token.invite, invite.clone()))
    }

    /// `invites::create`.
    fn create_invite(
        &mut self,
        session: Session,
        group: Option<GroupId>,
        max_uses: Option<u32>,
        expires_in_secs: Option<u64>,
    ) -> ApiResult<(InviteInfo, [u8; SECRET_LEN])> {
        if max_uses == Some(0) {
            return err(ErrorCode::BadRequest, "an invite needs at least one use");
        }
        if expires_in_secs.is_some_and(|s| s == 0 || s > MAX_INVITE_EXPIRY_SECS) {
            return err(ErrorCode::BadRequest, "expiry must be between one second and one year");
        }
        match group {
            Some(group) => {
                let chat = self.chats.get(&group);
                let Some(role) = chat.and_then(|c| c.role_of(&session.account)) else {
                    return err(ErrorCode::NotFound, "no such chat, or you are not a member");
                };
                if !role.can_manage_members() {
                    return err(ErrorCode::Forbidden, "only owners and admins create invite links");
                }
                if chat.is_some_and(|c| c.kind == ChatKind::Direct) {
                    return err(ErrorCode::Forbidden, "direct chats have no invite links");
                }
            }
            None => {
                if !self.accounts.get(&session.account).is_some_and(|a| a.node_admin) {
                    return err(ErrorCode::Forbidden, "only node admins create node invites");
                }
            }
        }
        let id = InviteId(self.fresh_bytes(0x1d));
        let secret: [u8; SECRET_LEN] = self.fresh_bytes(0x5e);
        let invite = InviteRecord {
            group,
            secret_hash: secret_hash(&secret),
            created_by: session.account,
            created_ms: self.now_ms,
            expires_ms: expires_in_secs.map(|s| self.now_ms + s * 1000),
            max_uses,
            uses: 0,
            registrations: 0,
            revoked: false,
        };
        let info = invite_info(id, &invite);
        self.invites.insert(id, invite);
        Ok((info, secret))
    }

    /// `invites::revoke`.
    fn revoke_invite(&mut self, session: Session, id: InviteId) -> ApiResult<()> {
        let Some(invite) = self.invites.get(&id) else {
            return err(ErrorCode::NotFound, "no such invite");
        };
        let manages_chat = invite
            .group
            .and_then(|g| self.chats.get(&g))
            .and_then(|c| c.role_of(&session.account))
            .is_some_and(|r| r.can_manage_members());
        let admin = self.accounts.get(&session.account).is_some_and(|a| a.node_admin);
        if !(invite.created_by == session.account || manages_chat || admin) {
            return err(ErrorCode::Forbidden, "you may not revoke this invite");
        }
        if let Some(invite) = self.invites.get_mut(&id) {
            invite.revoked = true;
        }
        Ok(())
    }

    /// `invites::preview`.
    fn preview(&self, token: &InviteToken) -> ApiResult<InvitePreview> {
        let (_, invite) = self.check_token(token, false)?;
        match invite.group {
            Some(group) => {
                let Some(chat) = self.chats.get(&group) else {
                    return err(ErrorCode::InviteInvalid, "the chat of this invite no longer exists");
                };
                Ok(InvitePreview {
                    group: Some(group),
                    name: chat.name.clone(),
                    description: chat.description.clone(),
                    member_count: chat.roster.len() as u32,
                    node_name: self.node_name.clone(),
                    meeting: None,
                })
            }
            None => Ok(InvitePreview {
                group: None,
                name: self.node_name.clone(),
                description: String::new(),
                member_count: 0,
                node_name: self.node_name.clone(),
                meeting: None,
            }),
        }
    }
}

fn invite_info(id: InviteId, invite: &InviteRecord) -> InviteInfo {
    InviteInfo {
        invite: id,
        group: invite.group,
        created_by: invite.created_by,
        created_at_ms: invite.created_ms,
        expires_at_ms: invite.expires_ms,
        max_uses: invite.max_uses,
        uses: invite.uses,
        revoked: invite.revoked,
    }
}
