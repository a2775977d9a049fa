//! Scenario harness: member devices (real `veche_device::Device`s over in-memory key/value
//! stores) and bare MLS clients (for what a misbehaving or racing member does), all talking to
//! one [`ScriptedNode`], on a virtual clock.
//!
//! Every scenario also checks the core's central property: while a `Persist` is unreported,
//! `poll_action` never returns a `Send` (the harness asks again before reporting each write).

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use veche_device::{
    Action, Command, CommandId, Delete, Device, DeviceError, DeviceEvent, HistoryEntry, Outcome, Write,
};
use veche_mls::Client;
use veche_protocol::auth;
use veche_protocol::content::AppMessage;
use veche_protocol::ids::{AccountId, DeviceId, GroupId};
use veche_protocol::link::InviteLink;
use veche_protocol::wire::{Request, Response};

use super::node::ScriptedNode;

pub type Answer = Result<Response, veche_protocol::wire::ApiError>;
type Filter = Box<dyn FnMut(&Request) -> bool>;
type Injection = Box<dyn FnMut(&Request) -> Option<(u64, Request)>>;

/// What a member's device did, in order.
#[derive(Debug, Clone)]
pub enum Trace {
    Persist(Write),
    Send(Request),
}

pub struct Member {
    pub name: String,
    pub device: Device,
    pub kv: BTreeMap<String, Vec<u8>>,
    pub conn: u64,
    pub online: bool,
    pub events: Vec<DeviceEvent>,
    pub done: BTreeMap<CommandId, Result<Outcome, DeviceError>>,
    pub trace: Vec<Trace>,
    pub timers: Vec<u64>,
    /// The node handles a matching request, but its answer is lost with the connection.
    pub lose_answer: Option<Filter>,
    /// The device stops (a crash) just before a matching request leaves; nothing is sent.
    pub crash_before: Option<Filter>,
    /// Just before a request of this device reaches the node, the node takes another request
    /// (conn, request), e.g. a racing member's message.
    pub inject_before: Option<Injection>,
    /// The next this many writes fail.
    pub failing_writes: usize,
    crashed: bool,
}

impl Member {
    pub fn account(&self) -> AccountId {
        self.device.account().expect("registered")
    }

    /// The chat's history as stored in memory.
    pub fn history(&self, group: GroupId) -> Vec<HistoryEntry> {
        self.device.model().history_after(group, 0).cloned().collect()
    }

    /// The texts of the chat's history, in order.
    pub fn texts(&self, group: GroupId) -> Vec<String> {
        self.history(group)
            .into_iter()
            .filter_map(|e| match e.body {
                veche_device::HistoryBody::Text(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    pub fn writes(&self) -> impl Iterator<Item = &Write> {
        self.trace.iter().filter_map(|t| match t {
            Trace::Persist(w) => Some(w),
            Trace::Send(_) => None,
        })
    }

    pub fn sent(&self) -> impl Iterator<Item = &Request> {
        self.trace.iter().filter_map(|t| match t {
            Trace::Send(r) => Some(r),
            Trace::Persist(_) => None,
        })
    }

    fn note(&mut self, event: DeviceEvent) {
        if let DeviceEvent::Done { id, result } = &event {
            self.done.insert(*id, result.clone());
        }
        self.events.push(event);
    }

    fn write(&mut self, w: &Write) {
        for delete in &w.deletes {
            match delete {
                Delete::Key(k) => {
                    self.kv.remove(k);
                }
                Delete::Prefix(p) => self.kv.retain(|k, _| !k.starts_with(p.as_str())),
            }
        }
        for (k, v) in &w.puts {
            self.kv.insert(k.clone(), v.clone());
        }
    }
}

/// A bare MLS client registered on the node: sends what a test makes it send.
pub struct Raw {
    pub client: Client,
    pub key: SigningKey,
    pub conn: u64,
}

impl Raw {
    pub fn account(&self) -> AccountId {
        self.client.identity().account
    }

    pub fn device(&self) -> DeviceId {
        self.client.identity().device
    }
}

pub struct Sim {
    pub node: ScriptedNode,
    pub members: Vec<Member>,
    pub now: u64,
    next_conn: u64,
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    pub fn new() -> Sim {
        let mut node = ScriptedNode::new("node-1");
        node.set_now(1_000_000);
        Sim { node, members: Vec::new(), now: 1_000_000, next_conn: 1 }
    }

    /// Moves the clock on; due timers fire.
    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.node.set_now(self.now);
        for i in 0..self.members.len() {
            let now = self.now;
            let m = &mut self.members[i];
            if m.timers.iter().any(|t| *t <= now) {
                m.timers.retain(|t| *t > now);
                m.device.handle_timeout(now);
            }
        }
        self.settle();
    }

    /// A new member device, registered and connected.
    pub fn member(&mut self, name: &str) -> usize {
        let i = self.device_from(name, Vec::new());
        self.connect(i);
        let result = self.command(i, Command::Register { name: name.into(), invite: None, node_url: None });
        assert_eq!(result, Ok(Outcome::Done), "{name} registers");
        i
    }

    /// A member device loaded from stored entries, offline.
    pub fn device_from(&mut self, name: &str, entries: Vec<(String, Vec<u8>)>) -> usize {
        let kv: BTreeMap<String, Vec<u8>> = entries.iter().cloned().collect();
        let device = Device::load(entries, self.now).expect("the device loads");
        self.members.push(Member {
            name: name.into(),
            device,
            kv,
            conn: 0,
            online: false,
            events: Vec::new(),
            done: BTreeMap::new(),
            trace: Vec::new(),
            timers: Vec::new(),
            lose_answer: None,
            crash_before: None,
            inject_before: None,
            failing_writes: 0,
            crashed: false,
        });
        let i = self.members.len() - 1;
        self.settle();
        i
    }

    pub fn connect(&mut self, i: usize) {
        let conn = self.next_conn;
        self.next_conn += 1;
        let hello = self.node.connect(conn);
        let m = &mut self.members[i];
        m.conn = conn;
        m.online = true;
        m.device.handle_connected(hello, None, self.now);
        self.settle();
    }

    pub fn disconnect(&mut self, i: usize) {
        let m = &mut self.members[i];
        if m.online {
            self.node.disconnect(m.conn);
            m.online = false;
            m.device.handle_disconnected(self.now);
        }
        self.settle();
    }

    /// The device stops and starts again from what it stored (offline).
    pub fn restart(&mut self, i: usize) {
        self.disconnect(i);
        let m = &mut self.members[i];
        let entries: Vec<(String, Vec<u8>)> = m.kv.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        m.device = Device::load(entries, self.now).expect("the device reloads");
        m.crashed = false;
        m.timers.clear();
        self.settle();
    }

    /// Runs a command to its end (or until the device waits for something that does not come).
    pub fn command(&mut self, i: usize, command: Command) -> Result<Outcome, DeviceError> {
        let id = self.members[i].device.command(command, self.now);
        self.settle();
        self.members[i]
            .done
            .remove(&id)
            .unwrap_or_else(|| panic!("{}: the command did not finish", self.members[i].name))
    }

    /// Queues a command without settling.
    pub fn start(&mut self, i: usize, command: Command) -> CommandId {
        self.members[i].device.command(command, self.now)
    }

    /// Hands out every action and every node event until nothing moves.
    pub fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.members.len() {
                moved |= self.pump(i);
            }
            for i in 0..self.members.len() {
                if !self.members[i].online {
                    continue;
                }
                let events = self.node.take_events(self.members[i].conn);
                for event in events {
                    moved = true;
                    self.members[i].device.handle_event(event, self.now);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the simulation does not settle");
    }

    fn pump(&mut self, i: usize) -> bool {
        let mut moved = false;
        loop {
            if self.members[i].crashed {
                self.members[i].crashed = false;
                self.restart(i);
                return true;
            }
            let m = &mut self.members[i];
            let Some(action) = m.device.poll_action() else { return moved };
            moved = true;
            match action {
                Action::Persist(id, write) => {
                    // The property: nothing leaves while this write is unreported.
                    let mut held = Vec::new();
                    while let Some(next) = m.device.poll_action() {
                        assert!(
                            !matches!(next, Action::Send(..)),
                            "{}: a request left before the write before it was reported",
                            m.name
                        );
                        held.push(next);
                    }
                    m.trace.push(Trace::Persist(write.clone()));
                    if m.failing_writes > 0 {
                        m.failing_writes -= 1;
                        m.device.handle_persisted(id, Err("disk full".into()));
                    } else {
                        m.write(&write);
                        m.device.handle_persisted(id, Ok(()));
                    }
                    for action in held {
                        match action {
                            Action::Notify(event) => m.note(event),
                            Action::Timeout(at) => m.timers.push(at),
                            other => panic!("{}: {other:?} while a write was unreported", m.name),
                        }
                    }
                }
                Action::Send(id, request) => {
                    assert!(m.online, "{}: a request while offline", m.name);
                    if m.crash_before.as_mut().is_some_and(|f| f(&request)) {
                        m.crash_before = None;
                        m.crashed = true;
                        continue;
                    }
                    m.trace.push(Trace::Send(request.clone()));
                    let lose = m.lose_answer.as_mut().is_some_and(|f| f(&request));
                    if let Some((conn, injected)) = m.inject_before.as_mut().and_then(|f| f(&request)) {
                        m.inject_before = None;
                        let answer = self.node.handle(conn, injected);
                        assert!(answer.is_ok(), "the injected request: {answer:?}");
                    }
                    let m = &mut self.members[i];
                    let answer = self.node.handle(m.conn, request);
                    let m = &mut self.members[i];
                    if lose {
                        m.lose_answer = None;
                        self.node.disconnect(m.conn);
                        m.online = false;
                        m.device.handle_disconnected(self.now);
                    } else {
                        m.device.handle_response(id, answer, self.now);
                    }
                }
                Action::Notify(event) => m.note(event),
                Action::Timeout(at) => m.timers.push(at),
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Shortcuts

    pub fn group(&mut self, owner: usize, name: &str) -> GroupId {
        match self.command(owner, Command::CreateGroup { name: name.into(), description: String::new() }) {
            Ok(Outcome::Group(g)) => g,
            other => panic!("create group: {other:?}"),
        }
    }

    pub fn add(&mut self, by: usize, group: GroupId, member: AccountId) -> u64 {
        match self.command(by, Command::Add { group, member }) {
            Ok(Outcome::Stored(seq)) => seq,
            other => panic!("add: {other:?}"),
        }
    }

    pub fn send(&mut self, by: usize, group: GroupId, text: &str) -> Result<Outcome, DeviceError> {
        self.command(by, Command::Send { group, body: veche_protocol::content::Body::Text { text: text.into() } })
    }

    pub fn sent(&mut self, by: usize, group: GroupId, text: &str) -> u64 {
        match self.send(by, group, text) {
            Ok(Outcome::Stored(seq)) => seq,
            other => panic!("send {text:?}: {other:?}"),
        }
    }

    /// An invite link to the chat, made by `by`.
    pub fn invite(&mut self, by: usize, group: GroupId) -> String {
        let request = Request::CreateInvite { group: Some(group), max_uses: None, expires_in_secs: None };
        match self.command(by, Command::Request(request)) {
            Ok(Outcome::Response(Response::InviteCreated { invite, secret })) => InviteLink {
                node_url: "https://node.test".into(),
                invite: invite.invite,
                secret,
                group: Some(group),
                fingerprint: None,
            }
            .to_url(),
            other => panic!("invite: {other:?}"),
        }
    }

    /// A group of these members (the first one the owner), everyone in it and caught up.
    pub fn chat_of(&mut self, members: &[usize]) -> GroupId {
        let group = self.group(members[0], "chat");
        for &i in &members[1..] {
            let account = self.members[i].account();
            self.add(members[0], group, account);
        }
        self.settle();
        group
    }

    // -----------------------------------------------------------------------------------------
    // Bare clients

    pub fn raw(&mut self, name: &str) -> Raw {
        let secret = Client::generate_secret();
        let mut raw = Raw { client: Client::new(secret), key: SigningKey::from_bytes(&secret), conn: self.next_conn };
        self.next_conn += 1;
        let hello = self.node.connect(raw.conn);
        let payload =
            auth::register_payload(&hello.node_id, &hello.challenge, &raw.device(), &raw.account(), name, None);
        let request = Request::Register {
            device: raw.device(),
            account: raw.account(),
            display_name: name.into(),
            invite: None,
            signature: auth::sign(&raw.key, &payload),
            binding: auth::ChannelBinding::Unbound,
        };
        assert!(matches!(self.node.handle(raw.conn, request), Ok(Response::SignedIn(_))));
        let packages = raw.client.key_packages(5).unwrap();
        let last_resort = Some(raw.client.last_resort_key_package().unwrap());
        assert_eq!(self.node.handle(raw.conn, Request::PublishKeyPackages { packages, last_resort }), Ok(Response::Ok));
        raw
    }

    /// The bare client takes its Welcome(s) and processes the chat's log so far.
    pub fn raw_catch_up(&mut self, raw: &mut Raw, group: GroupId) {
        if let Ok(Response::Welcomes(welcomes)) = self.node.handle(raw.conn, Request::Welcomes) {
            for w in welcomes {
                if !raw.client.is_active(w.group) {
                    raw.client.join_from_welcome(&w.welcome).unwrap();
                }
                let _ = self.node.handle(raw.conn, Request::AckWelcome { id: w.id });
            }
        }
        let after = self.node.log(group).first().map(|e| e.seq.saturating_sub(1)).unwrap_or(0);
        let entries: Vec<_> = self.node.log(group).iter().filter(|e| e.seq > after).cloned().collect();
        for entry in entries {
            let _ = raw.client.process(&entry.payload);
        }
        raw.client.take_changes();
        self.node.take_events(raw.conn);
    }

    /// A text message encrypted by the bare client (not sent).
    pub fn raw_text(&mut self, raw: &mut Raw, group: GroupId, text: &str) -> Vec<u8> {
        let content = AppMessage::text(text, self.now).unwrap().encode().unwrap();
        raw.client.encrypt(group, &content).unwrap()
    }

    pub fn raw_request(&mut self, raw: &Raw, request: Request) -> Answer {
        let answer = self.node.handle(raw.conn, request);
        self.node.take_events(raw.conn);
        answer
    }
}
