//! The sans-IO [`Device`]: inputs in, [`Action`]s out.
//!
//! Inside, each operation (a [`Command`], a live event, the sync after connecting) is an `async`
//! function over two suspension points, [`Cx::call`] (a request to the node) and [`Cx::persist`]
//! (a storage write): the compiler turns it into the state machine. No executor, no waker and no
//! IO are involved: the device polls the running operation itself whenever an input may have
//! completed one of those two, and an operation that waits simply returns `Pending` until then.
//! One operation runs at a time; commands and events that arrive meanwhile wait in a queue, in
//! order (the rules assume a chat is never processed by two operations at once).

use std::cell::{Ref, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use veche_protocol::content::Body;
use veche_protocol::ids::{AccountId, GroupId, Retention, Role};
use veche_protocol::wire::{Account, ChatInfo, Event, Hello, InvitePreview, InviteToken, Request, Response};

use crate::error::{CallError, DeviceError, LoadError};
use crate::model::{Batch, FORMAT, Model, Write};

/// How often messages still waiting are tried again while connected, milliseconds.
pub const OUTBOX_RETRY_MS: u64 = 5_000;

/// A request to the node, numbered; answer it with [`Device::handle_response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// A storage write, numbered; report it with [`Device::handle_persisted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistId(pub u64);

/// A command, numbered; its result comes as [`DeviceEvent::Done`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandId(pub u64);

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write this in one transaction, then call [`Device::handle_persisted`].
    Persist(PersistId, Write),
    /// Send this request on the current connection; its answer goes to
    /// [`Device::handle_response`]. Never returned while a `Persist` is unreported.
    Send(RequestId, Request),
    /// Tell the member (the views, the terminal).
    Notify(DeviceEvent),
    /// Call [`Device::handle_timeout`] at (or after) this time, milliseconds since the Unix epoch.
    Timeout(u64),
}

/// What happened, for the member.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEvent {
    /// A command finished.
    Done { id: CommandId, result: Result<Outcome, DeviceError> },
    /// Signed in (after connecting or registering): who this device is, as the node says.
    SignedIn(Account),
    /// Signing in failed: the driver closes the connection and tries again later.
    SignInFailed(DeviceError),
    /// The catch-up after connecting is done; messages processed from now on are new.
    Synced,
    /// A chat's stored state (messages, outbox, settings) changed.
    ChatChanged(GroupId),
    /// The node's view of a chat (name, description, members and roles).
    ChatInfo(ChatInfo),
    /// Display names learnt.
    Names(Vec<(AccountId, String)>),
    /// New text messages from others in a chat, oldest first (after [`DeviceEvent::Synced`]).
    Fresh { group: GroupId, messages: Vec<(AccountId, String)> },
    /// A call event for the media layer (the core does not take part in calls).
    Call(Event),
    /// Something done in the background failed (a sync, a live event, a retry).
    Error(DeviceError),
}

/// What a finished command gives back.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// The chat made, joined or opened.
    Group(GroupId),
    /// Joined by link: the chat and the sequence number of the join.
    Joined {
        group: GroupId,
        seq: u64,
    },
    /// The sequence number the node stored (a message, a commit, a leave).
    Stored(u64),
    Preview(InvitePreview),
    /// The answer to [`Command::Request`].
    Response(Response),
}

/// What the member asks of the device.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Creates this device's key and registers it (the connection must be open).
    Register {
        name: String,
        invite: Option<InviteToken>,
        node_url: Option<String>,
    },
    /// What an invite link leads to.
    Preview {
        link: String,
    },
    CreateGroup {
        name: String,
        description: String,
    },
    /// Opens (or finds, or completes) the direct chat with a member.
    DirectChat {
        member: AccountId,
    },
    /// Joins a chat by invite link.
    Join {
        link: String,
    },
    Add {
        group: GroupId,
        member: AccountId,
    },
    Remove {
        group: GroupId,
        member: AccountId,
    },
    SetRole {
        group: GroupId,
        member: AccountId,
        role: Role,
    },
    Leave {
        group: GroupId,
    },
    /// Queues a message (sent at `now`) and sends what waits in the chat's outbox. Finishes with
    /// the stored sequence number, or an error while the message stays in the outbox.
    Send {
        group: GroupId,
        body: Body,
    },
    /// Sends a message refused earlier again (a fresh encryption).
    Retry {
        group: GroupId,
        outbox_id: u64,
    },
    /// Drops a message that was refused.
    Discard {
        group: GroupId,
        outbox_id: u64,
    },
    /// The member saw the chat up to its newest message.
    Seen {
        group: GroupId,
    },
    /// Whether decrypted history of the chat is stored.
    KeepHistory {
        group: GroupId,
        keep: bool,
    },
    UpdateChat {
        group: GroupId,
        name: String,
        description: String,
    },
    SetRetention {
        group: GroupId,
        retention: Retention,
    },
    /// Catches up every chat now.
    Sync,
    /// A request whose answer the driver handles (administration, invites, calls, ...).
    Request(Request),
}

type Answer = Result<Response, CallError>;

/// The state shared by the device and its running operation.
pub(crate) struct Core {
    pub model: Model,
    pub mls: Option<veche_mls::Client>,
    pub hello: Option<Hello>,
    /// The connection's TLS exporter, when the driver can read it (the native client): sign-ins
    /// and registrations are bound to it (`veche_protocol::auth`).
    pub exporter: Option<[u8; veche_protocol::auth::TLS_EXPORTER_LEN]>,
    pub online: bool,
    pub signed_in: bool,
    /// Set after the first catch-up of a connection: what is processed from then on is new.
    pub live: bool,
    pub now: u64,
    actions: VecDeque<Action>,
    next_id: u64,
    in_flight: BTreeSet<u64>,
    answers: BTreeMap<u64, Answer>,
    /// Persists handed out and not yet reported, with what to apply once written.
    writing: BTreeMap<u64, (Batch, veche_mls::Changes)>,
    persisted: BTreeMap<u64, Result<(), String>>,
    timer: Option<u64>,
    /// Chats this device resynced or tried to: when it may try again (not persisted: after a
    /// restart the first sync may try at once).
    pub resyncs: BTreeMap<GroupId, crate::ops::ResyncWait>,
}

/// An operation's handle on the core.
#[derive(Clone)]
pub(crate) struct Cx(Rc<RefCell<Core>>);

impl Cx {
    pub fn core(&self) -> std::cell::RefMut<'_, Core> {
        self.0.borrow_mut()
    }

    pub fn now(&self) -> u64 {
        self.0.borrow().now
    }

    pub fn me(&self) -> Result<AccountId, DeviceError> {
        self.0.borrow().model.me().ok_or(DeviceError::NoDevice)
    }

    /// Runs `f` on the MLS client.
    pub fn mls<T>(&self, f: impl FnOnce(&mut veche_mls::Client) -> T) -> Result<T, DeviceError> {
        let mut core = self.0.borrow_mut();
        let mls = core.mls.as_mut().ok_or(DeviceError::NoDevice)?;
        Ok(f(mls))
    }

    pub fn model<T>(&self, f: impl FnOnce(&Model) -> T) -> T {
        f(&self.0.borrow().model)
    }

    pub fn notify(&self, event: DeviceEvent) {
        self.0.borrow_mut().actions.push_back(Action::Notify(event));
    }

    /// Sends a request and waits for its answer. Fails at once when offline.
    pub async fn call(&self, request: Request) -> Answer {
        let id = {
            let mut core = self.0.borrow_mut();
            if !core.online {
                return Err(CallError::Transport);
            }
            let id = core.next();
            core.in_flight.insert(id);
            core.actions.push_back(Action::Send(RequestId(id), request));
            id
        };
        std::future::poll_fn(|_| match self.0.borrow_mut().answers.remove(&id) {
            Some(answer) => Poll::Ready(answer),
            None => Poll::Pending,
        })
        .await
    }

    /// Writes the batch with the MLS client's pending changes and waits until the driver reports
    /// it written; then the model has it. On failure the MLS client is rolled back to what is
    /// stored and nothing of the batch is applied.
    pub async fn persist(&self, batch: Batch) -> Result<(), DeviceError> {
        let id = {
            let mut core = self.0.borrow_mut();
            let changes = core.mls.as_mut().map(|m| m.take_changes()).unwrap_or_default();
            if batch.is_empty() && changes.is_empty() {
                return Ok(());
            }
            let write = core.model.write_of(&batch, &changes);
            let id = core.next();
            core.writing.insert(id, (batch, changes));
            core.actions.push_back(Action::Persist(PersistId(id), write));
            id
        };
        let result = std::future::poll_fn(|_| match self.0.borrow_mut().persisted.remove(&id) {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
        })
        .await;
        result.map_err(DeviceError::Storage)
    }
}

impl Core {
    fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// Work waiting for its turn.
enum Work {
    /// Sign in and catch up after a connection opened.
    Connected,
    Command(CommandId, Command),
    Event(Event),
    /// Send what waits in the outboxes (the retry timer).
    Flush,
}

type Operation = Pin<Box<dyn Future<Output = ()>>>;

/// A member device: its stored state, its MLS client, and the rules that keep them in step with
/// the node. See the crate docs for the call order.
pub struct Device {
    cx: Cx,
    queue: VecDeque<Work>,
    running: Option<Operation>,
    next_command: u64,
}

impl Device {
    /// Opens a device from everything its driver stored (empty for a new device), migrating
    /// older formats; a migration's rewrite is the first [`Action::Persist`].
    pub fn load(entries: Vec<(String, Vec<u8>)>, now_ms: u64) -> Result<Device, LoadError> {
        let has_format = entries.iter().any(|(k, _)| k == "format");
        let (entries, rewrite) = if !has_format && !entries.is_empty() {
            let (entries, batch) = crate::migrate::browser_v0(entries)?;
            (entries, Some(batch))
        } else {
            (entries, None)
        };
        let (model, format) = Model::read(entries)?;
        if let Some(format) = format.filter(|f| *f > FORMAT) {
            return Err(LoadError::NewerFormat(format));
        }
        let mls = match &model.device {
            Some(record) => Some(
                veche_mls::Client::open(record.secret, model.mls.clone()).map_err(|e| LoadError::Mls(e.to_string()))?,
            ),
            None => None,
        };
        let core = Core {
            model,
            mls,
            hello: None,
            exporter: None,
            online: false,
            signed_in: false,
            live: false,
            now: now_ms,
            actions: VecDeque::new(),
            next_id: 0,
            in_flight: BTreeSet::new(),
            answers: BTreeMap::new(),
            writing: BTreeMap::new(),
            persisted: BTreeMap::new(),
            timer: None,
            resyncs: BTreeMap::new(),
        };
        let mut device =
            Device { cx: Cx(Rc::new(RefCell::new(core))), queue: VecDeque::new(), running: None, next_command: 0 };
        if let Some(batch) = rewrite {
            // Written before anything else runs (an operation waits for it like any persist).
            let cx = device.cx.clone();
            device.running = Some(Box::pin(async move {
                if let Err(e) = cx.persist(batch).await {
                    cx.notify(DeviceEvent::Error(e));
                }
            }));
        }
        Ok(device)
    }

    /// What the device keeps (read-only).
    pub fn model(&self) -> Ref<'_, Model> {
        Ref::map(self.cx.0.borrow(), |c| &c.model)
    }

    pub fn account(&self) -> Option<AccountId> {
        self.cx.0.borrow().model.me()
    }

    pub fn is_signed_in(&self) -> bool {
        self.cx.0.borrow().signed_in
    }

    pub fn is_online(&self) -> bool {
        self.cx.0.borrow().online
    }

    /// Whether no command, event or sync is running or waiting.
    pub fn is_idle(&self) -> bool {
        self.running.is_none() && self.queue.is_empty()
    }

    /// A connection to the node opened and said hello: the device signs in (when registered)
    /// and catches up. `exporter` is the connection's TLS exporter (RFC 9266) when the driver can
    /// read it; the sign-in is then bound to this TLS session, so a relay in the middle fails.
    pub fn handle_connected(
        &mut self,
        hello: Hello,
        exporter: Option<[u8; veche_protocol::auth::TLS_EXPORTER_LEN]>,
        now_ms: u64,
    ) {
        {
            let mut core = self.cx.core();
            core.now = now_ms;
            core.hello = Some(hello);
            core.exporter = exporter;
            core.online = true;
            core.signed_in = false;
            core.live = false;
        }
        self.queue.push_front(Work::Connected);
        self.drive();
    }

    /// The connection closed: requests waiting for answers fail (their operations see
    /// [`DeviceError::Offline`]); requests not yet handed out are dropped.
    pub fn handle_disconnected(&mut self, now_ms: u64) {
        {
            let mut core = self.cx.core();
            core.now = now_ms;
            core.online = false;
            core.signed_in = false;
            core.live = false;
            core.timer = None;
            let waiting: Vec<u64> = std::mem::take(&mut core.in_flight).into_iter().collect();
            for id in waiting {
                core.answers.insert(id, Err(CallError::Transport));
            }
            core.actions.retain(|a| !matches!(a, Action::Send(..)));
        }
        self.drive();
    }

    /// The node's answer to a request.
    pub fn handle_response(
        &mut self,
        id: RequestId,
        answer: Result<Response, veche_protocol::wire::ApiError>,
        now_ms: u64,
    ) {
        {
            let mut core = self.cx.core();
            core.now = now_ms;
            if core.in_flight.remove(&id.0) {
                core.answers.insert(id.0, answer.map_err(CallError::Api));
            }
        }
        self.drive();
    }

    /// A live event from the node. Handled after what runs or waits now.
    pub fn handle_event(&mut self, event: Event, now_ms: u64) {
        self.cx.core().now = now_ms;
        match event {
            // Not processed by the core: straight to the media layer, in order with the rest.
            Event::CallOffer { .. } | Event::Call { .. } | Event::CallRing { .. } | Event::CallRingEnded { .. } => {
                self.cx.notify(DeviceEvent::Call(event));
            }
            event => self.queue.push_back(Work::Event(event)),
        }
        self.drive();
    }

    /// The driver wrote (or failed to write) a [`Action::Persist`].
    pub fn handle_persisted(&mut self, id: PersistId, result: Result<(), String>) {
        {
            let mut core = self.cx.core();
            if let Some((batch, changes)) = core.writing.remove(&id.0) {
                match &result {
                    Ok(()) => core.model.apply(batch, &changes),
                    Err(_) => {
                        if let Some(mls) = core.mls.as_mut() {
                            mls.rollback();
                        }
                    }
                }
                core.persisted.insert(id.0, result);
            }
        }
        self.drive();
    }

    /// The time asked for by [`Action::Timeout`] came.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let due = {
            let mut core = self.cx.core();
            core.now = now_ms;
            match core.timer {
                Some(at) if at <= now_ms => {
                    core.timer = None;
                    true
                }
                _ => false,
            }
        };
        if due && !self.queue.iter().any(|w| matches!(w, Work::Flush)) {
            self.queue.push_back(Work::Flush);
        }
        self.drive();
    }

    /// Queues a command; its result comes as [`DeviceEvent::Done`] with the returned id.
    pub fn command(&mut self, command: Command, now_ms: u64) -> CommandId {
        self.cx.core().now = now_ms;
        self.next_command += 1;
        let id = CommandId(self.next_command);
        self.queue.push_back(Work::Command(id, command));
        self.drive();
        id
    }

    /// The next thing to do, or `None` until an input arrives.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.drive();
        let mut core = self.cx.core();
        // Nothing leaves the device while a write is unreported.
        if matches!(core.actions.front(), Some(Action::Send(..))) && !core.writing.is_empty() {
            return None;
        }
        core.actions.pop_front()
    }

    /// Polls the running operation; starts the next one when it finishes.
    fn drive(&mut self) {
        loop {
            if self.running.is_none() {
                let Some(work) = self.queue.pop_front() else { break };
                self.running = Some(self.start(work));
            }
            let Some(op) = self.running.as_mut() else { break };
            match op.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(()) => self.running = None,
                Poll::Pending => break,
            }
        }
        self.arm_timer();
    }

    /// While connected with messages waiting, the outbox is tried again every few seconds.
    fn arm_timer(&mut self) {
        let mut core = self.cx.core();
        if core.signed_in && core.timer.is_none() && core.model.has_waiting() {
            let at = core.now + OUTBOX_RETRY_MS;
            core.timer = Some(at);
            core.actions.push_back(Action::Timeout(at));
        }
    }

    fn start(&mut self, work: Work) -> Operation {
        let cx = self.cx.clone();
        match work {
            Work::Connected => Box::pin(async move { crate::ops::connected(&cx).await }),
            Work::Event(event) => Box::pin(async move {
                if !cx.core().signed_in {
                    return;
                }
                match crate::ops::handle_event(&cx, event).await {
                    // Said once, by the failed attempt, not on every message while it waits.
                    Ok(()) | Err(DeviceError::Resyncing) => {}
                    Err(e) => cx.notify(DeviceEvent::Error(e)),
                }
            }),
            Work::Flush => Box::pin(async move {
                if !cx.core().signed_in {
                    return;
                }
                let groups: Vec<GroupId> = cx.model(|m| m.outbox.keys().copied().collect());
                for group in groups {
                    // Errors stay on the messages (waiting / failed); no toast every retry.
                    if crate::ops::flush_outbox(&cx, group).await.is_err() {
                        break;
                    }
                }
            }),
            Work::Command(id, command) => Box::pin(async move {
                let result = crate::ops::command(&cx, command).await;
                cx.notify(DeviceEvent::Done { id, result });
            }),
        }
    }
}
