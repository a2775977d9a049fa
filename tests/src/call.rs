//! A native call client for tests: a webrtc-rs (sans-IO `rtc`) peer connection on a real UDP
//! socket, driven by its own thread, like a browser's. It can publish a VP8 camera whose frames
//! carry a marker (so a test can check what arrives, and that the marker never crosses the
//! network in the clear), and it records every RTP packet it receives. It can also flood the
//! node with key frame requests for a stream it receives ([`CallClient::send_plis`]), and open
//! the call's data channel ([`CallClient::open_channel`]) to send and read in-call messages.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use veche_sfu::media::{client_peer_connection, vp8_codec};

/// What a call client saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub connected: bool,
    /// Payloads of RTP packets received (after SRTP), in order.
    pub rtp: Vec<Vec<u8>>,
    /// Datagrams received on the socket that contained a marker in the clear.
    pub marker_in_clear: usize,
    pub datagrams: usize,
    /// Key frame requests (PLI) that reached this client as a publisher.
    pub plis: usize,
    /// Frames this client sent.
    pub frames_sent: u64,
    /// Datagrams this client sent on its socket (STUN, DTLS, SRTP and SRTCP alike).
    pub datagrams_sent: usize,
    /// SSRCs of the streams this client receives, in the order they opened.
    pub receiving_ssrcs: Vec<u32>,
    /// Key frame requests (PLI) this client sent with [`CallClient::send_plis`].
    pub plis_sent: u64,
    /// The call's data channel is open.
    pub channel_open: bool,
    /// Text messages received on it, in order.
    pub channel: Vec<String>,
}

enum Command {
    Offer(mpsc::Sender<anyhow::Result<String>>),
    SetAnswer(String, mpsc::Sender<anyhow::Result<()>>),
    AnswerOffer(String, mpsc::Sender<anyhow::Result<String>>),
    SendPlis(PliFlood),
    OpenChannel(mpsc::Sender<anyhow::Result<()>>),
    ChannelSend(Vec<u8>, bool, mpsc::Sender<anyhow::Result<()>>),
    Stop,
}

/// PLIs to send on a received stream, paced evenly over `over`.
struct PliFlood {
    media_ssrc: u32,
    count: u64,
    over: Duration,
    started: Option<Instant>,
    sent: u64,
    done: mpsc::Sender<anyhow::Result<PliReport>>,
}

/// How a [`CallClient::send_plis`] flood went.
#[derive(Debug, Clone, Copy)]
pub struct PliReport {
    /// PLIs written (each its own SRTCP packet).
    pub sent: u64,
    /// When the first and the last went out.
    pub first: Instant,
    pub last: Instant,
}

/// A call client on its own thread.
pub struct CallClient {
    commands: mpsc::Sender<Command>,
    seen: Arc<Mutex<Seen>>,
    pub addr: SocketAddr,
}

/// The marker every published frame carries, followed by the client's name and the frame number.
pub const MARK: &[u8] = b"VECHE-MEDIA#";

impl CallClient {
    /// A client on 127.0.0.1; `publish`: it sends a VP8 camera (frames every 20 ms once
    /// connected, key frames when asked) whose payloads carry [`MARK`] and `name`. Otherwise it
    /// only receives.
    pub fn start(name: &str, publish: bool) -> anyhow::Result<CallClient> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(2)))?;
        let addr = socket.local_addr()?;
        let epoch = Instant::now();
        let mut pc = client_peer_connection(addr, epoch)?;
        let ssrc = 0x5eed_0000 | u32::from(addr.port());
        let sender = if publish {
            Some(pc.add_track(MediaStreamTrack::new(
                format!("{name}-stream"),
                format!("{name}-cam"),
                format!("{name}-cam"),
                RtpCodecKind::Video,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                    codec: vp8_codec(),
                    ..Default::default()
                }],
            ))?)
        } else {
            // Something to negotiate: a receive-only audio transceiver.
            pc.add_transceiver_from_kind(
                RtpCodecKind::Audio,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )?;
            None
        };
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (commands, inbox) = mpsc::channel();
        let driver = Driver {
            pc,
            socket,
            addr,
            inbox,
            seen: seen.clone(),
            sender,
            ssrc,
            name: name.to_string(),
            keyframe_wanted: true,
            seq: 0,
            last_frame: None,
            receivers: HashMap::new(),
            flood: None,
            channel: None,
        };
        std::thread::Builder::new().name(format!("call-{name}")).spawn(move || driver.run())?;
        Ok(CallClient { commands, seen, addr })
    }

    fn ask<T>(&self, make: impl FnOnce(mpsc::Sender<anyhow::Result<T>>) -> Command) -> anyhow::Result<T> {
        let (tx, rx) = mpsc::channel();
        self.commands.send(make(tx)).ok().context("call client stopped")?;
        rx.recv_timeout(Duration::from_secs(5)).context("call client did not answer")?
    }

    /// The client's SDP offer (to join a call with).
    pub fn offer(&self) -> anyhow::Result<String> {
        self.ask(Command::Offer)
    }

    /// Applies the node's answer to our offer.
    pub fn set_answer(&self, sdp: String) -> anyhow::Result<()> {
        self.ask(|tx| Command::SetAnswer(sdp, tx))
    }

    /// Answers an offer of the node.
    pub fn answer_offer(&self, sdp: String) -> anyhow::Result<String> {
        self.ask(|tx| Command::AnswerOffer(sdp, tx))
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Frames received that carry `from`'s marker.
    pub fn frames_from(&self, from: &str) -> usize {
        let needle = [MARK, from.as_bytes(), b"#"].concat();
        self.seen().rtp.iter().filter(|p| p.windows(needle.len()).any(|w| w == needle)).count()
    }

    /// Sends `count` key frame requests (PLI) for the received stream `media_ssrc` (one of
    /// [`Seen::receiving_ssrcs`]) through this client's own RTCP path (SRTCP on its session, as
    /// a browser would), spread evenly over `over`; returns once the last one is out.
    pub fn send_plis(&self, media_ssrc: u32, count: u64, over: Duration) -> anyhow::Result<PliReport> {
        let (done, report) = mpsc::channel();
        let flood = PliFlood { media_ssrc, count, over, started: None, sent: 0, done };
        self.commands.send(Command::SendPlis(flood)).ok().context("call client stopped")?;
        report.recv_timeout(over + Duration::from_secs(30)).context("call client did not finish its PLIs")?
    }
}

impl CallClient {
    /// Creates the call's data channel (before the first offer, as a browser does; it opens
    /// once the call is connected).
    pub fn open_channel(&self) -> anyhow::Result<()> {
        self.ask(Command::OpenChannel)
    }

    /// Sends a text message on the data channel.
    pub fn channel_send(&self, text: &str) -> anyhow::Result<()> {
        self.ask(|tx| Command::ChannelSend(text.as_bytes().to_vec(), true, tx))
    }

    /// Sends a binary message on the data channel.
    pub fn channel_send_bytes(&self, bytes: &[u8]) -> anyhow::Result<()> {
        self.ask(|tx| Command::ChannelSend(bytes.to_vec(), false, tx))
    }

    /// What the node sent on the data channel so far, decoded (undecodable ones are skipped).
    pub fn channel_messages(&self) -> Vec<veche_protocol::incall::FromNode> {
        self.seen().channel.iter().filter_map(|t| veche_protocol::incall::FromNode::decode(t.as_bytes()).ok()).collect()
    }
}

impl Drop for CallClient {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
    }
}

struct Driver {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    addr: SocketAddr,
    inbox: mpsc::Receiver<Command>,
    seen: Arc<Mutex<Seen>>,
    sender: Option<RTCRtpSenderId>,
    ssrc: u32,
    name: String,
    keyframe_wanted: bool,
    seq: u16,
    last_frame: Option<Instant>,
    /// The receiver of each stream we receive, by SSRC (for RTCP about it).
    receivers: HashMap<u32, RTCRtpReceiverId>,
    flood: Option<PliFlood>,
    channel: Option<rtc::data_channel::RTCDataChannelId>,
}

impl Driver {
    fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            loop {
                match self.inbox.try_recv() {
                    Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                    Ok(command) => self.command(command),
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            if let Ok((len, from)) = self.socket.recv_from(&mut buf) {
                let data = &buf[..len];
                {
                    let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                    seen.datagrams += 1;
                    if data.windows(MARK.len()).any(|w| w == MARK) {
                        seen.marker_in_clear += 1;
                    }
                }
                let _ = self.pc.handle_read(TaggedBytesMut {
                    now: Instant::now(),
                    transport: TransportContext {
                        local_addr: self.addr,
                        peer_addr: from,
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message: BytesMut::from(data),
                });
            }
            let now = Instant::now();
            if self.pc.poll_timeout().is_some_and(|t| t <= now) {
                let _ = self.pc.handle_timeout(now);
            }
            self.publish(now);
            self.flood(now);
            self.service();
        }
    }

    /// The PLIs of a [`CallClient::send_plis`] flood that are due by `now`.
    fn flood(&mut self, now: Instant) {
        let Some(flood) = self.flood.as_mut() else { return };
        let started = *flood.started.get_or_insert(now);
        let Some(&receiver_id) = self.receivers.get(&flood.media_ssrc) else {
            let error = anyhow::anyhow!("no received stream has SSRC {:#x}", flood.media_ssrc);
            let _ = flood.done.send(Err(error));
            self.flood = None;
            return;
        };
        let elapsed = now.duration_since(started).as_secs_f64();
        let due = if flood.over.is_zero() {
            flood.count
        } else {
            ((flood.count as f64 * elapsed / flood.over.as_secs_f64()).ceil() as u64).clamp(1, flood.count)
        };
        while flood.sent < due {
            let Some(mut receiver) = self.pc.rtp_receiver(receiver_id) else { break };
            let pli = PictureLossIndication { sender_ssrc: self.ssrc, media_ssrc: flood.media_ssrc };
            if let Err(e) = receiver.write_rtcp(now, vec![Box::new(pli)]) {
                let _ = flood.done.send(Err(anyhow::anyhow!("writing a PLI: {e}")));
                self.flood = None;
                return;
            }
            flood.sent += 1;
            // Each PLI goes out as its own datagram.
            while let Some(t) = self.pc.poll_write() {
                if self.socket.send_to(&t.message, t.transport.peer_addr).is_ok() {
                    self.seen.lock().unwrap_or_else(|p| p.into_inner()).datagrams_sent += 1;
                }
            }
        }
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).plis_sent = flood.sent;
        if flood.sent >= flood.count {
            let _ = flood.done.send(Ok(PliReport { sent: flood.sent, first: started, last: now }));
            self.flood = None;
        }
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Offer(reply) => {
                let offer = self.pc.create_offer(None).and_then(|o| {
                    self.pc.set_local_description(now, o.clone())?;
                    Ok(o.sdp)
                });
                let _ = reply.send(offer.map_err(Into::into));
            }
            Command::SetAnswer(sdp, reply) => {
                let result = RTCSessionDescription::answer(sdp).and_then(|a| self.pc.set_remote_description(now, a));
                let _ = reply.send(result.map_err(Into::into));
            }
            Command::AnswerOffer(sdp, reply) => {
                let result = RTCSessionDescription::offer(sdp).and_then(|o| {
                    self.pc.set_remote_description(now, o)?;
                    let answer = self.pc.create_answer(None)?;
                    self.pc.set_local_description(now, answer.clone())?;
                    Ok(answer.sdp)
                });
                let _ = reply.send(result.map_err(Into::into));
            }
            Command::SendPlis(flood) => self.flood = Some(flood),
            Command::OpenChannel(reply) => {
                let made = self.pc.create_data_channel(veche_protocol::incall::CHANNEL_LABEL, None).map(|c| c.id());
                let _ = reply.send(made.map(|id| self.channel = Some(id)).map_err(Into::into));
            }
            Command::ChannelSend(data, text, reply) => {
                let sent = match self.channel.and_then(|id| self.pc.data_channel(id)) {
                    Some(mut channel) if text => {
                        channel.send_text(now, String::from_utf8_lossy(&data).into_owned()).map_err(Into::into)
                    }
                    Some(mut channel) => channel.send(now, BytesMut::from(&data[..])).map_err(Into::into),
                    None => Err(anyhow::anyhow!("no data channel")),
                };
                let _ = reply.send(sent);
            }
            Command::Stop => {}
        }
        self.service();
    }

    /// A frame every 20 ms once connected (a VP8 key frame when one is wanted).
    fn publish(&mut self, now: Instant) {
        let Some(sender_id) = self.sender else { return };
        if !self.seen.lock().unwrap_or_else(|p| p.into_inner()).connected {
            return;
        }
        if self.last_frame.is_some_and(|t| now.duration_since(t) < Duration::from_millis(20)) {
            return;
        }
        self.last_frame = Some(now);
        self.seq = self.seq.wrapping_add(1);
        let key = std::mem::take(&mut self.keyframe_wanted);
        // VP8 descriptor (S=1, partition 0), then a payload header whose P bit is clear on key
        // frames, then the marker.
        let mut payload = if key { vec![0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a] } else { vec![0x10, 0x01, 0x00] };
        payload.extend_from_slice(&[MARK, self.name.as_bytes(), b"#", self.seq.to_string().as_bytes()].concat());
        let Some(mut sender) = self.pc.rtp_sender(sender_id) else { return };
        let Some(payload_type) = sender.get_parameters().rtp_parameters.codecs.first().map(|c| c.payload_type) else {
            return;
        };
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type,
                sequence_number: self.seq,
                timestamp: u32::from(self.seq).wrapping_mul(1800),
                ssrc: self.ssrc,
                marker: true,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        };
        if sender.write_rtp(now, packet).is_ok() {
            self.seen.lock().unwrap_or_else(|p| p.into_inner()).frames_sent += 1;
        }
    }

    fn service(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(RTCPeerConnectionState::Connected) => {
                    self.seen.lock().unwrap_or_else(|p| p.into_inner()).connected = true;
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    self.receivers.insert(init.ssrc, init.receiver_id);
                    self.seen.lock().unwrap_or_else(|p| p.into_inner()).receiving_ssrcs.push(init.ssrc);
                }
                RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id)) if Some(id) == self.channel => {
                    self.seen.lock().unwrap_or_else(|p| p.into_inner()).channel_open = true;
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            match message {
                RTCMessage::RtpPacket(_, packet) => {
                    self.seen.lock().unwrap_or_else(|p| p.into_inner()).rtp.push(packet.payload.to_vec());
                }
                RTCMessage::RtcpPacket(_, packets)
                    if packets.iter().any(|p| p.as_any().downcast_ref::<PictureLossIndication>().is_some()) =>
                {
                    self.keyframe_wanted = true;
                    self.seen.lock().unwrap_or_else(|p| p.into_inner()).plis += 1;
                }
                RTCMessage::DataChannelMessage(id, message) if Some(id) == self.channel => {
                    let text = String::from_utf8_lossy(&message.data).into_owned();
                    self.seen.lock().unwrap_or_else(|p| p.into_inner()).channel.push(text);
                }
                _ => {}
            }
        }
        while let Some(t) = self.pc.poll_write() {
            if self.socket.send_to(&t.message, t.transport.peer_addr).is_ok() {
                self.seen.lock().unwrap_or_else(|p| p.into_inner()).datagrams_sent += 1;
            }
        }
    }
}
