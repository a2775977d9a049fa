//! The media port against a participant that misuses its own session, in memory with a virtual
//! clock: one webrtc-rs client publishes a camera to `MediaSessions` through a test network.
//!
//! - Steering: once connected, the client's own binding requests (valid credentials, nominating
//!   or not) are replayed from a victim's address. The session keeps its one confirmed address:
//!   nothing but a binding response goes to the victim (no checks of the node's, no DTLS, no
//!   media), DTLS and RTP from the victim are dropped, and the client's media keeps flowing.
//! - Consent freshness (RFC 7675): media keeps coming from the client's address (its own, and a
//!   replay of its SRTP that goes on whatever the client does) but its consent checks stop
//!   reaching the node. 30 s after the last answered check the node sends the client nothing more
//!   and reports the session failed. (This held before the cap work too: the ICE agent counts
//!   only authenticated checks as consent. The node now sets the timeouts itself.)
//! - Sessions per node: past the node's cap a join is refused (`MediaError::Full`) before its
//!   offer is looked at, and a place freed by someone leaving is taken again.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use veche_protocol::ids::AccountId;
use veche_sfu::demux::Drop;
use veche_sfu::media::{CONSENT_TIMEOUT, MediaError, MediaEvent, MediaSessions, client_peer_connection, vp8_codec};
use veche_sfu::room::{Event, Mode, Role};
use veche_sfu::{ConferenceId, ParticipantId};

const ROOM: ConferenceId = ConferenceId(3);
const A: ParticipantId = ParticipantId(1);
const STEP: Duration = Duration::from_millis(5);

fn is_stun(d: &[u8]) -> bool {
    d.len() >= 20 && d[0] < 4
}

fn stun_type(d: &[u8]) -> u16 {
    u16::from_be_bytes([d[0], d[1]])
}

fn has_use_candidate(d: &[u8]) -> bool {
    let mut at = 20;
    while at + 4 <= d.len() {
        let typ = u16::from_be_bytes([d[at], d[at + 1]]);
        let len = usize::from(u16::from_be_bytes([d[at + 2], d[at + 3]]));
        if typ == 0x0025 {
            return true;
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    false
}

/// The SFU, one publishing client, and the network between them.
struct Call {
    sfu: MediaSessions,
    a: RTCPeerConnection,
    sender: RTCRtpSenderId,
    srv: SocketAddr,
    a_addr: SocketAddr,
    now: Instant,
    step: u64,
    seq: u16,
    connected: bool,
    /// The client's binding requests to the node, as sent.
    a_requests: Vec<Vec<u8>>,
    /// Everything the node sent, with when and where.
    sent: Vec<(Instant, SocketAddr, Vec<u8>)>,
    /// When the node last answered one of the client's checks.
    last_answer: Option<Instant>,
    /// The network drops the client's STUN to the node.
    drop_a_stun: bool,
    /// The client's last SRTP datagram to the node.
    a_media: Option<Vec<u8>>,
    /// Someone keeps sending the node media from the client's address (replaying its last
    /// SRTP datagram every 20 ms), whatever the client does.
    replay_media: bool,
    events: Vec<MediaEvent>,
}

impl Call {
    fn start() -> anyhow::Result<Call> {
        let now = Instant::now();
        let srv: SocketAddr = "127.0.0.1:40000".parse()?;
        let a_addr: SocketAddr = "127.0.0.1:50001".parse()?;
        let mut sfu = MediaSessions::new(srv, now);
        sfu.open(ROOM, Mode::Meeting);
        let mut a = client_peer_connection(a_addr, now)?;
        let sender = a.add_track(MediaStreamTrack::new(
            "st".into(),
            "cam".into(),
            "cam".into(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(4242), ..Default::default() },
                codec: vp8_codec(),
                ..Default::default()
            }],
        ))?;
        let offer = a.create_offer(None)?;
        a.set_local_description(now, offer.clone())?;
        let answer = sfu.add_peer(ROOM, A, AccountId([1; 32]), Role::Participant, offer.sdp, now)?;
        a.set_remote_description(now, RTCSessionDescription::answer(answer)?)?;
        Ok(Call {
            sfu,
            a,
            sender,
            srv,
            a_addr,
            now,
            step: 0,
            seq: 0,
            connected: false,
            a_requests: Vec::new(),
            sent: Vec::new(),
            last_answer: None,
            drop_a_stun: false,
            a_media: None,
            replay_media: false,
            events: Vec::new(),
        })
    }

    /// Runs the call for `d`: the client sends a key frame every 20 ms once connected.
    fn run(&mut self, d: Duration) -> anyhow::Result<()> {
        let until = self.now + d;
        while self.now < until {
            self.step += 1;
            self.now += STEP;
            let now = self.now;
            if self.a.poll_timeout().is_some_and(|t| t <= now) {
                self.a.handle_timeout(now)?;
            }
            if self.sfu.next_timeout().is_some_and(|t| t <= now) {
                self.sfu.handle_timeout(now);
            }
            if self.connected && self.step.is_multiple_of(4) {
                self.seq = self.seq.wrapping_add(1);
                let mut sender = self.a.rtp_sender(self.sender).ok_or_else(|| anyhow::anyhow!("sender"))?;
                let payload_type = sender.get_parameters().rtp_parameters.codecs[0].payload_type;
                let header = rtc::rtp::Header {
                    version: 2,
                    payload_type,
                    sequence_number: self.seq,
                    timestamp: u32::from(self.seq) * 3000,
                    ssrc: 4242,
                    marker: true,
                    ..Default::default()
                };
                let payload = Bytes::from_static(&[0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 1, 2, 3]);
                sender.write_rtp(now, rtc::rtp::Packet { header, payload })?;
            }
            if self.replay_media
                && self.step.is_multiple_of(4)
                && let Some(media) = &self.a_media
            {
                self.sfu.handle_datagram(now, self.a_addr, media);
            }
            self.exchange()?;
            while let Some(event) = self.a.poll_event() {
                if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(RTCPeerConnectionState::Connected) = event {
                    self.connected = true;
                }
            }
            while self.a.poll_read().is_some() {}
            while let Some(event) = self.sfu.poll_event() {
                self.events.push(event);
            }
        }
        Ok(())
    }

    /// Delivers datagrams until everyone is quiet.
    fn exchange(&mut self) -> anyhow::Result<()> {
        loop {
            let mut net: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)> = VecDeque::new();
            while let Some(t) = self.a.poll_write() {
                net.push_back((self.a_addr, t.transport.peer_addr, t.message.to_vec()));
            }
            while let Some((to, data)) = self.sfu.poll_transmit() {
                net.push_back((self.srv, to, data.to_vec()));
            }
            if net.is_empty() {
                return Ok(());
            }
            for (from, to, data) in net {
                if to == self.srv {
                    if from == self.a_addr && data.first().is_some_and(|b| (128..192).contains(b)) {
                        self.a_media = Some(data.clone());
                    }
                    if is_stun(&data) && stun_type(&data) == 0x0001 {
                        self.a_requests.push(data.clone());
                        if self.drop_a_stun {
                            continue;
                        }
                    }
                    self.sfu.handle_datagram(self.now, from, &data);
                } else {
                    if to == self.a_addr && is_stun(&data) && stun_type(&data) == 0x0101 {
                        self.last_answer = Some(self.now);
                    }
                    self.sent.push((self.now, to, data.clone()));
                    if to == self.a_addr {
                        self.feed_a(from, data);
                    }
                }
            }
        }
    }

    fn feed_a(&mut self, from: SocketAddr, data: Vec<u8>) {
        let _ = self.a.handle_read(TaggedBytesMut {
            now: self.now,
            transport: TransportContext {
                local_addr: self.a_addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(&data[..]),
        });
    }

    fn published(&self) -> bool {
        self.events.iter().any(|e| matches!(e, MediaEvent::Room { event: Event::Published { .. }, .. }))
    }

    fn failed(&self) -> bool {
        self.events.iter().any(|e| matches!(e, MediaEvent::Failed(who) if *who == A))
    }

    fn sent_to(&self, to: SocketAddr, after: Instant) -> Vec<&[u8]> {
        self.sent.iter().filter(|(at, t, _)| *t == to && *at > after).map(|(_, _, d)| d.as_slice()).collect()
    }
}

#[test]
fn a_participant_cannot_steer_the_nodes_media_to_another_address() -> anyhow::Result<()> {
    let mut call = Call::start()?;
    call.run(Duration::from_secs(3))?;
    anyhow::ensure!(call.connected && call.published(), "the client connects and publishes");
    let nominating = call.a_requests.iter().rev().find(|r| has_use_candidate(r)).cloned();
    let plain = call.a_requests.iter().rev().find(|r| !has_use_candidate(r)).cloned();
    let nominating = nominating.ok_or_else(|| anyhow::anyhow!("the client nominated with no request?"))?;
    let victim: SocketAddr = "198.51.100.7:3478".parse()?;
    let start = call.now;
    let dropped_before = call.sfu.dropped_by_reason();

    // The participant replays its own valid checks from the victim's address, again and again,
    // and sends DTLS and RTP from there too.
    for i in 0..200u32 {
        let now = call.now;
        call.sfu.handle_datagram(now, victim, &nominating);
        if let Some(plain) = &plain {
            call.sfu.handle_datagram(now, victim, plain);
        }
        call.sfu.handle_datagram(now, victim, &[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
        call.sfu.handle_datagram(now, victim, &[0x80, 96, 0, i as u8, 0, 0, 0, 0, 0, 0, 0x10, 0x92, 1, 2, 3]);
        call.run(Duration::from_millis(20))?;
    }
    call.run(Duration::from_secs(2))?;

    let to_victim = call.sent_to(victim, start);
    let not_responses: Vec<_> = to_victim.iter().filter(|d| !(is_stun(d) && stun_type(d) & 0x0100 != 0)).collect();
    println!("to the victim: {} datagrams, {} of them not binding responses", to_victim.len(), not_responses.len());
    assert!(not_responses.is_empty(), "the node sent the victim {} checks, DTLS or media", not_responses.len());
    let nominated_answered =
        to_victim.iter().any(|d| d.len() >= 20 && nominating.len() >= 20 && d[8..20] == nominating[8..20]);
    assert!(!nominated_answered, "a nomination from another address is answered");
    let dropped_after = call.sfu.dropped_by_reason();
    let grew = |reason: Drop| {
        let get = |v: &[(Drop, u64)]| v.iter().find(|(r, _)| *r == reason).map(|(_, n)| *n).unwrap_or(0);
        get(&dropped_after) - get(&dropped_before)
    };
    assert!(grew(Drop::UnknownAddress) >= 400, "DTLS and RTP from the victim are dropped");
    assert!(grew(Drop::OtherAddress) >= 200, "nominations from another address are dropped");
    // The client's session is where it was: the node keeps answering it and sending it RTCP.
    let to_a = call.sent_to(call.a_addr, start + Duration::from_secs(4));
    assert!(to_a.iter().any(|d| !is_stun(d)), "the node still sends the client its RTCP");
    assert!(!call.failed(), "the client's session goes on");
    Ok(())
}

#[test]
fn the_node_stops_sending_to_a_peer_whose_consent_expired() -> anyhow::Result<()> {
    let mut call = Call::start()?;
    call.run(Duration::from_secs(3))?;
    anyhow::ensure!(call.connected && call.published(), "the client connects and publishes");
    // From now on the client's checks never reach the node; media from its address still does
    // (its own, and a replay of it that goes on even if the client gives up).
    call.drop_a_stun = true;
    call.replay_media = true;
    let cut = call.now;
    call.run(Duration::from_secs(40))?;
    let last = call.last_answer.ok_or_else(|| anyhow::anyhow!("no check was ever answered"))?;
    assert!(last <= cut, "no check answered after the cut");
    let sent_late = call.sent_to(call.a_addr, last + CONSENT_TIMEOUT + Duration::from_millis(50));
    let sent_before = call.sent_to(call.a_addr, cut).len() - sent_late.len();
    println!(
        "consent: last check answered {:?} after the start; {} datagrams to the client in the 30 s after, {} later",
        last.duration_since(cut - Duration::from_secs(3)),
        sent_before,
        sent_late.len()
    );
    assert!(sent_before > 20, "the node kept sending while consent was fresh");
    assert!(sent_late.is_empty(), "{} datagrams sent after consent expired", sent_late.len());
    assert!(call.failed(), "the session is reported failed");
    Ok(())
}

#[test]
fn the_node_refuses_media_sessions_past_its_cap() -> anyhow::Result<()> {
    let now = Instant::now();
    let srv: SocketAddr = "127.0.0.1:40000".parse()?;
    let mut sfu = MediaSessions::new(srv, now).with_max_sessions(2);
    sfu.open(ROOM, Mode::Meeting);
    let offer = |port: u16| -> anyhow::Result<String> {
        let mut pc = client_peer_connection(SocketAddr::from(([127, 0, 0, 1], port)), now)?;
        pc.add_transceiver_from_kind(RtpCodecKind::Audio, None)?;
        let offer = pc.create_offer(None)?;
        pc.set_local_description(now, offer.clone())?;
        Ok(offer.sdp)
    };
    for i in 1..=2u8 {
        sfu.add_peer(ROOM, ParticipantId(u32::from(i)), AccountId([i; 32]), Role::Participant, offer(50_000)?, now)?;
    }
    let third = sfu.add_peer(ROOM, ParticipantId(3), AccountId([3; 32]), Role::Participant, offer(50_003)?, now);
    assert!(matches!(third, Err(MediaError::Full)), "{third:?}");
    assert!(
        matches!(
            sfu.add_peer(ROOM, ParticipantId(4), AccountId([4; 32]), Role::Participant, "garbage".into(), now),
            Err(MediaError::Full)
        ),
        "refused before its offer is parsed"
    );
    assert_eq!(sfu.peer_count(), 2);
    sfu.remove_peer(ParticipantId(1), now);
    sfu.add_peer(ROOM, ParticipantId(3), AccountId([3; 32]), Role::Participant, offer(50_003)?, now)?;
    assert_eq!(sfu.peer_count(), 2);
    Ok(())
}
