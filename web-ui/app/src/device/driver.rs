//! The device task: one loop that owns the core, the connection and the store, in the order the
//! core's crate docs give. Drain the core's actions (write, send, tell, arm the timer), then wait
//! for the next input: a view's command, a frame or the close of the socket, the timer, or a
//! connection attempt finishing. Connections are retried with a backoff of 0.5-15 s.

use futures::channel::mpsc;
use futures::future::{self, Fuse, FusedFuture};
use futures::{FutureExt, StreamExt, select};
use leptos::prelude::*;
use veche_device::{Action, Command, DeviceError, Outcome, PersistId, RequestId};
use veche_protocol::content::AppMessage;
use veche_protocol::ids::{ChatKind, GroupId};
use veche_protocol::wire::{Request, Response};

use super::conn::{self, CALL_TIMEOUT_MS, Conn, Incoming};
use super::{Cmd, Device, Later, Opening, Waiter, api_message, now_ms, sleep_ms, store};
use crate::media::signaling::{self, Calls};
use crate::state::{AppState, ConnState, Me, Phase};

const BACKOFF_MAX_MS: u32 = 15_000;
/// The longest wait without an input (nothing is due before it).
const IDLE_MS: u64 = 60_000;

/// What one wait brought.
enum Input {
    Opened(Result<Conn, String>),
    Cmd(Option<Cmd>),
    Frame(Option<(u32, Incoming)>),
    Timer,
}

pub(super) async fn run(ui: AppState, cmds: mpsc::Receiver<Cmd>) {
    let entries = match store::load().await {
        Ok(entries) => entries,
        Err(e) => {
            ui.phase.set(Phase::Failed(e));
            return;
        }
    };
    let core = match veche_device::Device::load(entries, now_ms()) {
        Ok(core) => core,
        Err(e) => {
            ui.phase.set(Phase::Failed(e.to_string()));
            return;
        }
    };
    let (frames_tx, frames) = mpsc::channel(conn::FRAMES);
    let mut device = Device {
        ui,
        core,
        cmds,
        conn: None,
        generation: 0,
        frames_tx,
        frames,
        opening: Box::pin(Fuse::terminated()),
        opening_generation: 0,
        backoff_ms: 0,
        deadlines: Default::default(),
        timer: None,
        waiters: Default::default(),
        done: Default::default(),
        later: Default::default(),
        calls: Default::default(),
    };
    let record = device.core.model().device.clone();
    if let Some(record) = record {
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
    loop {
        device.drain().await;
        if let Some(later) = device.later.pop_front() {
            device.do_later(later).await;
            continue;
        }
        if device.calls.has_unwritten() {
            signaling::write_records(&mut device);
            continue;
        }
        match device.step(true).await {
            Ok(Some(cmd)) => device.handle(cmd).await,
            Ok(None) => {}
            Err(()) => return, // the views are gone
        }
    }
}

impl Device {
    /// Does what the core asks until it has nothing more.
    pub(super) async fn drain(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Persist(id, write) => self.persist(id, write).await,
                Action::Send(id, request) => self.send(id, request),
                Action::Notify(event) => self.bridge(event),
                Action::Timeout(at) => self.timer = Some(at),
            }
        }
    }

    async fn persist(&mut self, id: PersistId, write: veche_device::Write) {
        let result = store::apply(write).await;
        self.core.handle_persisted(id, result);
    }

    fn send(&mut self, id: RequestId, request: Request) {
        // The core numbers requests from 1 and a page never makes 2^32 of them.
        let sent = self.conn.as_ref().is_some_and(|conn| conn.send(id.0 as u32, request));
        if sent {
            self.deadlines.insert(id.0, now_ms() + CALL_TIMEOUT_MS);
        } else {
            self.disconnected();
        }
    }

    /// Waits for one input and hands it to the core; a view's command is returned instead (only
    /// when `commands`). `Err` when the views dropped their handle.
    pub(super) async fn step(&mut self, commands: bool) -> Result<Option<Cmd>, ()> {
        // A new attempt when none is under way, or when the one under way was overtaken (a lost
        // connection, "reconnect now", or a connection opened for onboarding).
        // Before registering, a device holds no connection once it has the node's Hello: the
        // node closes sockets that do not sign in within 5 s, and registering, previews and
        // restoring open one when they need it (`connect`).
        let wanted = self.core.account().is_some() || self.ui.registration.get_untracked().is_none();
        if self.conn.is_none() && wanted && (self.opening.is_terminated() || self.opening_generation != self.generation)
        {
            let attempt = self.open_conn(self.backoff_ms);
            self.opening.set(attempt.fuse());
            self.opening_generation = self.generation;
        }
        let now = now_ms();
        let due = self.timer.into_iter().chain(self.deadlines.values().copied()).min();
        let wait = due.map_or(IDLE_MS, |at| at.saturating_sub(now).min(IDLE_MS)) as u32;
        let cmd = if commands { self.cmds.next().left_future() } else { future::pending().right_future() };
        let input = select! {
            opened = self.opening.as_mut() => Input::Opened(opened),
            cmd = cmd.fuse() => Input::Cmd(cmd),
            frame = self.frames.next() => Input::Frame(frame),
            _ = sleep_ms(wait).fuse() => Input::Timer,
        };
        match input {
            Input::Opened(opened) => {
                if self.opening_generation == self.generation {
                    self.connected(opened);
                }
            }
            Input::Cmd(cmd) => return cmd.map(Some).ok_or(()),
            Input::Frame(Some((generation, news))) if generation == self.generation => self.frame(news),
            Input::Frame(_) => {}
            Input::Timer => {
                let now = now_ms();
                if self.deadlines.values().any(|at| *at <= now) {
                    // No answer in time: the connection is given up (the core fails the request).
                    self.disconnected();
                }
                if self.timer.is_some_and(|at| at <= now) {
                    self.timer = None;
                    self.core.handle_timeout(now);
                }
            }
        }
        Ok(None)
    }

    fn frame(&mut self, news: Incoming) {
        if self.conn.as_ref().is_some_and(|c| c.overflowed()) {
            self.disconnected();
            return;
        }
        match news {
            Incoming::Response { id, result } => {
                self.deadlines.remove(&u64::from(id));
                self.core.handle_response(RequestId(u64::from(id)), result, now_ms());
            }
            Incoming::Event(event) => self.core.handle_event(event, now_ms()),
            // An attempt still opening reports its failure through `connected` instead.
            Incoming::Closed => {
                if self.conn.is_some() {
                    self.disconnected();
                }
            }
        }
    }

    /// Runs a command in the core and waits for its result, keeping the connection and the core
    /// going meanwhile (the views' commands wait, as they did when the device ran one at a time).
    pub(super) async fn run(&mut self, command: Command) -> Result<Outcome, DeviceError> {
        let id = self.core.command(command, now_ms());
        self.waiters.insert(id, Waiter::Driver);
        loop {
            self.drain().await;
            if let Some(result) = self.done.remove(&id) {
                return result;
            }
            let _ = self.step(false).await;
        }
    }

    /// A request whose answer the driver handles (through the core, in order with its work).
    pub(super) async fn call(&mut self, request: Request) -> Result<Response, DeviceError> {
        match self.run(Command::Request(request)).await? {
            Outcome::Response(response) => Ok(response),
            _ => Err(DeviceError::Unexpected("Request")),
        }
    }

    /// A command whose result goes to `waiter` when the core is done with it.
    pub(super) fn command(&mut self, command: Command, waiter: Waiter) {
        let id = self.core.command(command, now_ms());
        self.waiters.insert(id, waiter);
    }

    /// A connection attempt after `delay_ms`, of a new generation (news of older ones is ignored).
    fn open_conn(&mut self, delay_ms: u32) -> Opening {
        // After a failure the indicator stays "offline" while retrying.
        if self.ui.conn.get_untracked() != ConnState::Offline {
            self.ui.conn.set(ConnState::Connecting);
        }
        self.generation = self.generation.wrapping_add(1);
        let (url, generation, frames) = (conn::node_ws_url(), self.generation, self.frames_tx.clone());
        async move {
            if delay_ms > 0 {
                sleep_ms(delay_ms).await;
            }
            Conn::open(&url, generation, frames).await
        }
        .boxed_local()
    }

    /// Opens a connection now, unless one is open (registering and previews need one).
    pub(super) async fn connect(&mut self) {
        if self.conn.is_none() {
            let opened = self.open_conn(0).await;
            self.connected(opened);
            self.drain().await;
        }
    }

    /// Takes an opened connection (the core signs in when registered); counts a failed attempt.
    fn connected(&mut self, opened: Result<Conn, String>) {
        let conn = match opened {
            Ok(conn) => conn,
            Err(_) => {
                self.failed_attempt();
                return;
            }
        };
        let hello = conn.hello.clone();
        self.ui.node_name.set(hello.node_name.clone());
        self.ui.node_id.set(hello.node_id.clone());
        self.ui.registration.set(Some(hello.registration));
        self.conn = Some(conn);
        if self.core.account().is_none() {
            // Online once signed in, when registered (the bridge's `SignedIn`).
            self.ui.conn.set(ConnState::Online);
            self.backoff_ms = 0;
        }
        // A page cannot read its TLS session's exporter: its sign-in is unbound (spec/protocol.md §5).
        self.core.handle_connected(hello, None, now_ms());
    }

    pub(super) fn failed_attempt(&mut self) {
        self.backoff_ms = (self.backoff_ms * 2).clamp(500, BACKOFF_MAX_MS);
        self.ui.conn.set(ConnState::Offline);
    }

    /// The connection is gone (closed, refused, or silent): the core hears of it.
    pub(super) fn disconnected(&mut self) {
        signaling::lost(self);
        self.conn = None;
        self.deadlines.clear();
        self.generation = self.generation.wrapping_add(1);
        self.ui.conn.set(ConnState::Offline);
        self.core.handle_disconnected(now_ms());
    }

    async fn do_later(&mut self, later: Later) {
        match later {
            Later::Call(event) => signaling::event(self, event).await,
            Later::RefreshMeetings => self.refresh_meetings().await,
        }
    }
}

/// All the call glue may use of the device task (`crate::media::signaling`).
impl signaling::Driver for Device {
    fn ui(&self) -> AppState {
        self.ui
    }

    fn calls(&mut self) -> &mut Calls {
        &mut self.calls
    }

    fn is_direct(&self, group: GroupId) -> bool {
        self.core.model().chats.get(&group).is_some_and(|c| c.kind == ChatKind::Direct)
    }

    async fn request(&mut self, request: Request) -> Result<Response, String> {
        self.call(request).await.map_err(api_message)
    }

    fn queue_message(&mut self, group: GroupId, message: AppMessage) {
        self.command(Command::Send { group, body: message.body }, Waiter::Toast);
    }
}
