//! The tokio side of the device core: the connection, the redb store and the clock around a
//! `veche_device::Device`. Every rule (sign-in, sync, outbox, commits, joins) is the core's; this
//! only does its actions and hands it its inputs, in the order the core's docs give.

use super::conn::Connection;
use super::store::Store;
use std::collections::{HashMap, VecDeque};
use veche_device::{Action, Command, Device, DeviceError, DeviceEvent, Outcome, RequestId};
use veche_protocol::wire::{Request, Response, ServerFrame};

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A device operation failed. Printed as the node's message when the node refused (its
/// `ErrorCode` goes to the JSON output's `code`).
#[derive(Debug)]
pub struct Failed(pub DeviceError);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            DeviceError::Refused(e) => f.write_str(&e.message),
            e => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Failed {}

pub struct Driver {
    pub device: Device,
    pub store: Store,
    conn: Option<Connection>,
    /// Wire request id -> the core's request id.
    wire: HashMap<u32, RequestId>,
    next_wire: u32,
    timer: Option<u64>,
    events: VecDeque<DeviceEvent>,
    /// Why the connection is gone, once it is.
    closed: Option<String>,
}

enum Input {
    Frame(Box<anyhow::Result<ServerFrame>>),
    Timer,
}

impl Driver {
    pub fn new(device: Device, store: Store) -> Driver {
        Driver {
            device,
            store,
            conn: None,
            wire: HashMap::new(),
            next_wire: 1,
            timer: None,
            events: VecDeque::new(),
            closed: None,
        }
    }

    /// Hands an open connection to the device (which signs in and catches up when registered).
    pub fn connected(&mut self, conn: Connection) {
        let (hello, exporter) = (conn.hello.clone(), conn.exporter);
        self.conn = Some(conn);
        self.closed = None;
        self.device.handle_connected(hello, exporter, now_ms());
    }

    /// Waits until the device signed in and caught up.
    pub async fn synced(&mut self) -> anyhow::Result<()> {
        let result = self
            .until(|e| match e {
                DeviceEvent::Synced => Some(Ok(())),
                DeviceEvent::SignInFailed(e) => Some(Err(e.clone())),
                _ => None,
            })
            .await?;
        result.map_err(|e| Failed(e).into())
    }

    /// Runs a command to its end.
    pub async fn run(&mut self, command: Command) -> anyhow::Result<Outcome> {
        let id = self.device.command(command, now_ms());
        let result = self
            .until(|e| match e {
                DeviceEvent::Done { id: done, result } if *done == id => Some(result.clone()),
                _ => None,
            })
            .await?;
        result.map_err(|e| self.failed(e))
    }

    /// A request whose answer the caller reads.
    pub async fn request(&mut self, request: Request) -> anyhow::Result<Response> {
        match self.run(Command::Request(request)).await? {
            Outcome::Response(response) => Ok(response),
            other => anyhow::bail!("unexpected outcome {other:?}"),
        }
    }

    fn failed(&self, e: DeviceError) -> anyhow::Error {
        match (&e, &self.closed) {
            (DeviceError::Offline, Some(why)) => anyhow::Error::new(Failed(e)).context(why.clone()),
            _ => Failed(e).into(),
        }
    }

    /// Waits for one input from the node (or the timer), hands it in and does what follows.
    /// Errors once the connection is gone.
    pub async fn step(&mut self) -> anyhow::Result<()> {
        self.pump().await;
        let Some(conn) = self.conn.as_mut() else {
            anyhow::bail!("{}", self.closed.clone().unwrap_or_else(|| "not connected to the node".into()));
        };
        let timer = self.timer;
        let sleep = async move {
            match timer {
                Some(at) => tokio::time::sleep(std::time::Duration::from_millis(at.saturating_sub(now_ms()))).await,
                None => std::future::pending().await,
            }
        };
        let input = tokio::select! {
            frame = conn.next_frame() => Input::Frame(Box::new(frame)),
            () = sleep => Input::Timer,
        };
        match input {
            Input::Frame(frame) => match *frame {
                Ok(frame) => self.frame(frame),
                Err(e) => self.disconnected(format!("{e:#}")),
            },
            Input::Timer => {
                self.timer = None;
                self.device.handle_timeout(now_ms());
            }
        }
        self.pump().await;
        Ok(())
    }

    /// Steps until `pick` chooses an event; events passed over are dropped (errors printed).
    async fn until<T>(&mut self, mut pick: impl FnMut(&DeviceEvent) -> Option<T>) -> anyhow::Result<T> {
        loop {
            self.pump().await;
            while let Some(event) = self.events.pop_front() {
                if let Some(found) = pick(&event) {
                    return Ok(found);
                }
                if let DeviceEvent::Error(e) = event {
                    eprintln!("warning: {}", Failed(e));
                }
            }
            self.step().await?;
        }
    }

    /// Drops the events waiting (printing errors): for a loop that only looks at the model.
    pub fn drain_events(&mut self) {
        for event in std::mem::take(&mut self.events) {
            if let DeviceEvent::Error(e) = event {
                eprintln!("warning: {}", Failed(e));
            }
        }
    }

    fn frame(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::Response { id, result } => {
                if let Some(request) = self.wire.remove(&id) {
                    self.device.handle_response(request, result, now_ms());
                }
            }
            ServerFrame::Event(event) => self.device.handle_event(event, now_ms()),
            ServerFrame::Fatal(error) => {
                self.disconnected(format!("the node closed the connection: {}", error.message));
            }
            ServerFrame::Hello(_) => {}
        }
    }

    fn disconnected(&mut self, why: String) {
        self.conn = None;
        self.wire.clear();
        self.closed = Some(why);
        self.device.handle_disconnected(now_ms());
    }

    /// Does every action the device has for now.
    async fn pump(&mut self) {
        while let Some(action) = self.device.poll_action() {
            match action {
                Action::Persist(id, write) => {
                    let result = self.store.write(&write).map_err(|e| format!("{e:#}"));
                    self.device.handle_persisted(id, result);
                }
                Action::Send(id, request) => {
                    let wire = self.next_wire;
                    self.next_wire = self.next_wire.wrapping_add(1).max(1);
                    let Some(conn) = self.conn.as_mut() else { continue };
                    self.wire.insert(wire, id);
                    if let Err(e) = conn.send(wire, request).await {
                        self.disconnected(format!("connection to the node failed: {e:#}"));
                    }
                }
                Action::Notify(event) => self.events.push_back(event),
                Action::Timeout(at) => self.timer = Some(at),
            }
        }
    }
}
