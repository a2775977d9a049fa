//! The media loop: one thread owns the media port's UDP socket and all media sessions.
//!
//! It waits for a datagram or the next timer, whichever comes first, hands it to
//! [`MediaSessions`], and sends what they have to send, in a loop; no task per peer, no lock
//! around peer state. It runs on its own thread so chat traffic on the node's runtime can never
//! stall media. The node talks to it through a [`MediaHandle`]: commands go over a bounded
//! channel (and a zero-length datagram to the socket wakes the loop), answers come back on a
//! one-shot channel, and events (connected, negotiation needed, room events) on a bounded event
//! channel that never blocks the loop.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::batch;
use crate::forward::Want;
use crate::media::{MediaError, MediaEvent, MediaSessions};
use crate::room::{Action, Mode, Role, Room, RoomError};
use crate::{ConferenceId, ParticipantId, TrackId};
use veche_protocol::ids::AccountId;

/// Commands queued to the loop at most.
const COMMANDS: usize = 256;
/// Events queued to the node at most (more are dropped and counted).
const EVENTS: usize = 4096;
/// Largest datagram read (a full Ethernet MTU is 1500).
const MAX_DATAGRAM: usize = 2048;
/// The loop wakes at least this often, even with nothing to do.
const MAX_SLEEP: Duration = Duration::from_millis(200);

type Reply<T> = mpsc::SyncSender<Result<T, MediaError>>;

/// A decision made on a conference's room inside the loop (moderation, hands, mode).
pub type Decide = Box<dyn FnOnce(&mut Room) -> Result<Vec<Action>, RoomError> + Send>;

enum Command {
    Open {
        conference: ConferenceId,
        mode: Mode,
    },
    Close {
        conference: ConferenceId,
    },
    Moderate {
        conference: ConferenceId,
        decide: Decide,
        reply: Reply<()>,
    },
    AddPeer {
        conference: ConferenceId,
        participant: ParticipantId,
        account: AccountId,
        role: Role,
        offer: String,
        reply: Reply<String>,
    },
    RemovePeer {
        participant: ParticipantId,
    },
    Subscribe {
        who: ParticipantId,
        track: TrackId,
        want: Want,
        reply: Reply<()>,
    },
    PendingOffer {
        who: ParticipantId,
        reply: Reply<Option<String>>,
    },
    ApplyAnswer {
        who: ParticipantId,
        answer: String,
        reply: Reply<()>,
    },
    Stats {
        reply: Reply<MediaStats>,
    },
    Stop,
}

/// What the media port has done, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Datagrams dropped on arrival, by reason ([`crate::demux::Drop::name`]).
    pub dropped: Vec<(&'static str, u64)>,
    /// Datagrams sent, and the system calls that sent them.
    pub datagrams_sent: u64,
    pub send_calls: u64,
    /// Datagrams the kernel refused to send (lost).
    pub send_failures: u64,
    /// Events for the node dropped because its queue was full.
    pub events_dropped: u64,
    /// Media sessions open.
    pub peers: usize,
    /// The send-side bandwidth estimates of the sessions that have one, bits per second.
    pub estimates: Vec<u64>,
}

/// Why a command got no answer.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error("the media loop has stopped")]
    Stopped,
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// The node's way to the media loop. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaHandle {
    commands: mpsc::SyncSender<Command>,
    /// A clone of the loop's socket, to wake it with a zero-length datagram.
    waker: std::sync::Arc<UdpSocket>,
    local: SocketAddr,
}

impl MediaHandle {
    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, LoopError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.commands.send(make(tx)).map_err(|_| LoopError::Stopped)?;
        let _ = self.waker.send_to(&[], self.local);
        Ok(rx.recv().map_err(|_| LoopError::Stopped)??)
    }

    /// The media port (on loopback when it is bound to every interface).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn tell(&self, command: Command) {
        let _ = self.commands.send(command);
        let _ = self.waker.send_to(&[], self.local);
    }

    /// Opens a conference's room (opening an open one changes nothing).
    pub fn open(&self, conference: ConferenceId, mode: Mode) {
        self.tell(Command::Open { conference, mode });
    }

    /// Closes a conference: every participant's media session ends.
    pub fn close(&self, conference: ConferenceId) {
        self.tell(Command::Close { conference });
    }

    /// Runs a decision on the conference's room in the loop (moderation and the like).
    pub fn moderate(
        &self,
        conference: ConferenceId,
        decide: impl FnOnce(&mut Room) -> Result<Vec<Action>, RoomError> + Send + 'static,
    ) -> Result<(), LoopError> {
        self.call(|reply| Command::Moderate { conference, decide: Box::new(decide), reply })
    }

    /// A participant joins a conference with its SDP offer; the SDP answer.
    pub fn add_peer(
        &self,
        conference: ConferenceId,
        participant: ParticipantId,
        account: AccountId,
        role: Role,
        offer: String,
    ) -> Result<String, LoopError> {
        self.call(|reply| Command::AddPeer { conference, participant, account, role, offer, reply })
    }

    pub fn remove_peer(&self, participant: ParticipantId) {
        self.tell(Command::RemovePeer { participant });
    }

    pub fn subscribe(&self, who: ParticipantId, track: TrackId, want: Want) -> Result<(), LoopError> {
        self.call(|reply| Command::Subscribe { who, track, want, reply })
    }

    /// Our next offer for this participant, if its streams changed.
    pub fn pending_offer(&self, who: ParticipantId) -> Result<Option<String>, LoopError> {
        self.call(|reply| Command::PendingOffer { who, reply })
    }

    pub fn apply_answer(&self, who: ParticipantId, answer: String) -> Result<(), LoopError> {
        self.call(|reply| Command::ApplyAnswer { who, answer, reply })
    }

    /// Datagrams the media port dropped (garbage, unknown senders).
    pub fn dropped(&self) -> Result<u64, LoopError> {
        Ok(self.stats()?.dropped.iter().map(|(_, n)| n).sum())
    }

    /// What the media port has done, for metrics.
    pub fn stats(&self) -> Result<MediaStats, LoopError> {
        self.call(|reply| Command::Stats { reply })
    }

    /// Stops the loop (its thread ends after the current turn).
    pub fn stop(&self) {
        self.tell(Command::Stop);
    }
}

/// Starts the loop on its own thread, on the bound media port. `advertised`: the addresses put
/// in host candidates, the first being the one peers normally reach (the bound address if
/// empty; a socket bound to every interface needs them). Returns the handle and the event
/// receiver.
pub fn start(
    socket: UdpSocket,
    advertised: Vec<SocketAddr>,
) -> std::io::Result<(MediaHandle, mpsc::Receiver<MediaEvent>)> {
    let bound = socket.local_addr()?;
    // Where the handle's wake-up datagrams go.
    let local = if bound.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port())
    } else {
        bound
    };
    let mut advertised = advertised.into_iter();
    let first = advertised.next().unwrap_or(local);
    let socket = std::sync::Arc::new(socket);
    let (commands, inbox) = mpsc::sync_channel(COMMANDS);
    let (events, events_rx) = mpsc::sync_channel(EVENTS);
    let handle = MediaHandle { commands, waker: socket.clone(), local };
    let worker = Worker {
        socket,
        local,
        sessions: MediaSessions::new(first, Instant::now()).with_extra_candidates(advertised.collect()),
        inbox,
        events,
        dropped_events: 0,
        outgoing: Vec::with_capacity(batch::BATCH),
        send_failures: 0,
        datagrams_sent: 0,
        send_calls: 0,
    };
    std::thread::Builder::new().name("veche-media".into()).spawn(move || worker.run())?;
    Ok((handle, events_rx))
}

struct Worker {
    socket: std::sync::Arc<UdpSocket>,
    local: SocketAddr,
    sessions: MediaSessions,
    inbox: mpsc::Receiver<Command>,
    events: mpsc::SyncSender<MediaEvent>,
    dropped_events: u64,
    /// Datagrams waiting for the next batch send.
    outgoing: Vec<(SocketAddr, bytes::Bytes)>,
    /// Datagrams the kernel refused to send.
    send_failures: u64,
    datagrams_sent: u64,
    send_calls: u64,
}

impl Worker {
    fn run(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let now = Instant::now();
            let sleep =
                self.sessions.next_timeout().map_or(MAX_SLEEP, |at| at.saturating_duration_since(now)).min(MAX_SLEEP);
            // A zero timeout means "block forever" to the OS: wait at least a millisecond.
            let _ = self.socket.set_read_timeout(Some(sleep.max(Duration::from_millis(1))));
            match self.socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    // Zero-length datagrams from ourselves only wake the loop for commands.
                    if len > 0 || from.port() != self.local.port() || !from.ip().is_loopback() {
                        self.sessions.handle_datagram(Instant::now(), from, &buf[..len]);
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                // ICMP errors surface as receive errors on some systems; they are about one peer.
                Err(_) => {}
            }
            self.sessions.handle_timeout(Instant::now());
            while let Ok(command) = self.inbox.try_recv() {
                if !self.command(command) {
                    return;
                }
            }
            self.flush();
        }
    }

    /// Handles a command; false to stop.
    fn command(&mut self, command: Command) -> bool {
        let now = Instant::now();
        match command {
            Command::Open { conference, mode } => self.sessions.open(conference, mode),
            Command::Close { conference } => self.sessions.close(conference, now),
            Command::Moderate { conference, decide, reply } => {
                let _ = reply.send(self.sessions.moderate(now, conference, decide));
            }
            Command::AddPeer { conference, participant, account, role, offer, reply } => {
                let _ = reply.send(self.sessions.add_peer(conference, participant, account, role, offer, now));
            }
            Command::RemovePeer { participant } => self.sessions.remove_peer(participant, now),
            Command::Subscribe { who, track, want, reply } => {
                let _ = reply.send(self.sessions.subscribe(now, who, track, want));
            }
            Command::PendingOffer { who, reply } => {
                let _ = reply.send(self.sessions.pending_offer(now, who));
            }
            Command::ApplyAnswer { who, answer, reply } => {
                let _ = reply.send(self.sessions.apply_answer(now, who, answer));
            }
            Command::Stats { reply } => {
                let stats = MediaStats {
                    dropped: self.sessions.dropped_by_reason().into_iter().map(|(r, n)| (r.name(), n)).collect(),
                    datagrams_sent: self.datagrams_sent,
                    send_calls: self.send_calls,
                    send_failures: self.send_failures,
                    events_dropped: self.dropped_events,
                    peers: self.sessions.peer_count(),
                    estimates: self.sessions.estimates(),
                };
                let _ = reply.send(Ok(stats));
            }
            Command::Stop => return false,
        }
        true
    }

    /// Sends what the sessions have to send (in batches), and passes their events on.
    fn flush(&mut self) {
        while let Some(datagram) = self.sessions.poll_transmit() {
            self.outgoing.push(datagram);
        }
        if !self.outgoing.is_empty() {
            // A full send buffer or an unreachable peer loses a datagram; RTP and the WebRTC
            // core's retransmissions cope with loss.
            let sent = batch::send_all(&self.socket, &self.outgoing);
            self.send_failures += sent.failed as u64;
            self.datagrams_sent += sent.datagrams as u64;
            self.send_calls += sent.calls as u64;
            self.outgoing.clear();
        }
        while let Some(event) = self.sessions.poll_event() {
            if self.events.try_send(event).is_err() {
                self.dropped_events += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_survives_garbage_and_answers_commands() {
        let (media, _events) = start(UdpSocket::bind("127.0.0.1:0").unwrap(), Vec::new()).unwrap();
        let port = media.local_addr();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut x: u32 = 0x9e37_79b9;
        for len in [0usize, 1, 4, 20, 100, 1200, 1500] {
            for i in 0..50 {
                if i % 10 == 0 {
                    // Paced, so the kernel's receive buffer never overflows (that loss would not
                    // be the loop's).
                    std::thread::sleep(Duration::from_millis(3));
                }
                let datagram = crate::noise(&mut x, len);
                stranger.send_to(&datagram, port).unwrap();
            }
        }
        // Every datagram was dropped (counted), and the loop still serves: a request about an
        // unknown participant gets its typed refusal.
        let deadline = Instant::now() + Duration::from_secs(5);
        while media.dropped().unwrap() < 7 * 50 {
            assert!(Instant::now() < deadline, "dropped {}", media.dropped().unwrap());
            std::thread::sleep(Duration::from_millis(10));
        }
        let refused = media.pending_offer(ParticipantId(7));
        assert!(matches!(refused, Err(LoopError::Media(MediaError::UnknownPeer))), "{refused:?}");
        // A malformed offer is refused, not fatal.
        let conference = ConferenceId(1);
        let bad = media.add_peer(conference, ParticipantId(1), AccountId([1; 32]), Role::Participant, "not sdp".into());
        assert!(matches!(bad, Err(LoopError::Media(MediaError::UnknownConference))), "{bad:?}");
        media.open(conference, Mode::Meeting);
        let bad = media.add_peer(conference, ParticipantId(1), AccountId([1; 32]), Role::Participant, "not sdp".into());
        assert!(matches!(bad, Err(LoopError::Media(MediaError::Rtc(_)))), "{bad:?}");
        media.stop();
        std::thread::sleep(Duration::from_millis(50));
        assert!(matches!(media.pending_offer(ParticipantId(7)), Err(LoopError::Stopped)));
    }
}
