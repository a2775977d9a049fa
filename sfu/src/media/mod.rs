//! The media sessions of one media port: webrtc-rs' sans-IO `rtc` core, one server-side peer
//! connection per participant, around the IO-free [`Room`]s (one per conference; every
//! conference on the node shares the one port and the one owner).
//!
//! Still without sockets, threads or a clock of its own: the media loop hands in datagrams
//! ([`MediaSessions::handle_datagram`]) and the time, sends what [`MediaSessions::poll_transmit`]
//! gives on its one UDP socket, and wakes at [`MediaSessions::next_timeout`]. Everything else
//! happens here, in one owner:
//!
//! - Every peer connection is ICE-lite on the one advertised host candidate, DTLS server, with
//!   Opus and VP8. Each has its own ICE ufrag, so [`Demux`] routes STUN by the ufrag it names,
//!   and DTLS and SRTP only from addresses whose binding requests the peer's ICE agent answered
//!   (it checks them with its password). Responses to the agent's own binding requests go back
//!   to it by transaction id.
//! - A track a participant sends is published in the room when its first stream opens; each of
//!   its RTP packets becomes a [`PacketInfo`] (from headers; see [`vp8_keyframe_start`] for the
//!   one exception) and goes through [`Room::on_packet`]. The actions come back here: a packet
//!   for a subscriber is written on that subscriber's outgoing stream (its SSRC, payload type and
//!   the forwarder's sequence numbers and timestamps), a key frame request becomes a PLI to the
//!   publisher.
//! - A subscription adds an outgoing stream to the subscriber's peer connection, which needs a
//!   new offer from our side: signaling takes it with [`MediaSessions::pending_offer`] and brings
//!   the answer back with [`MediaSessions::apply_answer`]. Only then does the room start
//!   forwarding (so the first packet the subscriber gets is a key frame).
//!
//! - Congestion control: the TWCC sender numbers what we send, GCC turns each subscriber's
//!   transport-wide feedback into an [`Estimate`], and the room shares it among what the
//!   subscriber receives ([`Room::set_bandwidth`]); NACKs from subscribers are answered from the
//!   room's one cache per track.
//!
//! - A screen share is a video track on an m-line the participant's description marks
//!   `a=content:slides`; what subscribers get of it is in stream `s<participant>` (cameras and
//!   microphones in `p<participant>`). It may stop and start again on the same stream: the room
//!   unpublishes it and asks for it again ([`Action::Resume`]).
//!
//! Not here yet: RTX (retransmissions go on the original SSRC), and renegotiation started by the
//! client (a device reserves its m-lines when it joins: a camera that is off, a screen it may
//! share).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant as WallInstant};

use bytes::{Bytes, BytesMut};
use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent, RTCTrackEventInit};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::demux::{Demux, Kind, Route, classify};
use crate::forward::{OutPacket, PacketInfo, Want};
use crate::room::{Action, Event, Mode, Role, Room, RoomError};
use crate::timers::Timers;
use crate::{ConferenceId, MediaKind, ParticipantId, TrackId};
use veche_protocol::ids::AccountId;

mod channel;
mod negotiation;
mod packets;
mod setup;

pub use setup::{
    DeliverRtcp, Estimate, INITIAL_ESTIMATE_BPS, InboundRtp, add_host_candidate, client_peer_connection, media_setup,
    opus_codec, sfu_media_setup, vp8_codec,
};

/// Which media session a datagram, timer or request is for: one peer connection per participant
/// for now (one device connection is one participant).
pub type PeerKey = ParticipantId;

/// Expected bitrate of an audio track or of a non-simulcast video track (bits per second).
const SINGLE_LAYER_BPS: u64 = 1_500_000;
/// Expected bitrates of simulcast layers, lowest first (bits per second).
const SIMULCAST_BPS: [u64; 3] = [150_000, 500_000, 1_500_000];
/// Inbound streams (SSRCs) one participant may open: a camera's three layers, a microphone and a
/// screen, several times over after the browser restarts them.
const MAX_INBOUND_STREAMS: usize = 64;
/// First SSRC of the streams the SFU sends (each outgoing stream gets the next one).
const FIRST_OUT_SSRC: u32 = 0x5645_0001;

/// STUN message types (RFC 5389): binding request, success response, error response.
const STUN_BINDING_REQUEST: u16 = 0x0001;
const STUN_BINDING_SUCCESS: u16 = 0x0101;
const STUN_BINDING_ERROR: u16 = 0x0111;
/// How long a peer's consent to receive lasts after its last authenticated connectivity check
/// (RFC 7675 §5.1: 30 s). The ICE agent counts only checks (STUN with the session's
/// credentials), never media, as consent: after [`ICE_DISCONNECTED_TIMEOUT`] without one the
/// session is disconnected, after `CONSENT_TIMEOUT` failed, and the node sends it nothing more.
/// Browsers check every few seconds, so several checks in a row must be lost first.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Without a check for this long a session counts as disconnected (it may come back).
pub const ICE_DISCONNECTED_TIMEOUT: Duration = Duration::from_secs(5);
/// Media sessions on one node, at most. The bench (ARCHITECTURE.md, "SFU forwarding") measured
/// 500 subscribers at 6-10 µs per forwarded packet and ~180 MB: past that one media thread falls
/// behind, so more sessions would degrade every call on the node instead of refusing one join.
pub const MAX_SESSIONS: usize = 500;
/// Binding requests of ours awaiting a response, at most.
const MAX_STUN_REQUESTS: usize = 4096;

/// The transaction id of a STUN message of this type (None for anything else).
fn stun_transaction(datagram: &[u8], typ: u16) -> Option<[u8; 12]> {
    if datagram.len() < 20 || classify(datagram) != Kind::Stun {
        return None;
    }
    let cookie = [datagram[4], datagram[5], datagram[6], datagram[7]];
    if u16::from_be_bytes([datagram[0], datagram[1]]) != typ || u32::from_be_bytes(cookie) != 0x2112_A442 {
        return None;
    }
    datagram[8..20].try_into().ok()
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The WebRTC core refused (a malformed or incompatible SDP, mostly).
    #[error("webrtc: {0}")]
    Rtc(#[from] rtc::shared::error::Error),
    /// No conference with this id is open.
    #[error("no such conference")]
    UnknownConference,
    /// The room refused (role, mode, lock).
    #[error("room: {0:?}")]
    Room(RoomError),
    /// No media session for this participant.
    #[error("no media session for this participant")]
    UnknownPeer,
    /// The participant already has a media session.
    #[error("the participant already has a media session")]
    PeerExists,
    /// The node carries as many media sessions as it may ([`MAX_SESSIONS`]).
    #[error("the node's media plane is full")]
    Full,
    /// No such published track.
    #[error("no such track")]
    UnknownTrack,
    /// An answer came while no offer of ours was waiting for one.
    #[error("no offer is waiting for an answer")]
    NoOfferPending,
    /// Our answer has no ICE ufrag, or one another session already uses.
    #[error("no usable ICE ufrag")]
    Ufrag,
    /// The conference is locked and the participant waits in the lobby.
    #[error("waiting in the lobby")]
    InLobby,
}

impl From<RoomError> for MediaError {
    fn from(e: RoomError) -> Self {
        MediaError::Room(e)
    }
}

/// What the node hears from the media sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// ICE and DTLS are up: media flows.
    Connected(PeerKey),
    /// The peer connection failed or closed; the node removes it ([`MediaSessions::remove_peer`]).
    Failed(PeerKey),
    /// A new offer from our side waits for [`MediaSessions::pending_offer`].
    NegotiationNeeded(PeerKey),
    /// Tell participants of `conference` (all if `to` is None) something happened in its room.
    Room { conference: ConferenceId, to: Option<ParticipantId>, event: Event },
    /// The room closes this participant's session (removed, or the conference ended).
    Disconnect(ParticipantId),
}

/// Whether a VP8 RTP payload starts a key frame, from the VP8 payload descriptor and payload
/// header (RFC 7741 §4.2-4.3).
///
/// This is the one place that reads a codec payload, and only at this edge: a header-extension
/// based detection (frame marking or the dependency descriptor) replaces it later, so the core
/// never needs payloads (end-to-end encrypted media).
pub fn vp8_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else { return false };
    let extended = first & 0x80 != 0;
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x07;
    if !start_of_partition || partition_id != 0 {
        return false;
    }
    let mut at = 1;
    if extended {
        let Some(&flags) = payload.get(at) else { return false };
        at += 1;
        if flags & 0x80 != 0 {
            // PictureID: 7 or 15 bits (M bit).
            let Some(&picture_id) = payload.get(at) else { return false };
            at += if picture_id & 0x80 != 0 { 2 } else { 1 };
        }
        if flags & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if flags & 0x30 != 0 {
            at += 1; // TID / Y / KEYIDX
        }
    }
    // The payload header's P bit is 0 on a key frame.
    payload.get(at).is_some_and(|header| header & 0x01 == 0)
}

/// One stream of a track a participant sends us.
#[derive(Debug, Clone, Copy)]
struct InStream {
    layer: u8,
    vp8: bool,
}

/// A track a participant sends us.
#[derive(Debug)]
struct Inbound {
    /// The room's track (None: the room refused it, its packets are dropped).
    track: Option<TrackId>,
    receiver: RTCRtpReceiverId,
    kind: MediaKind,
    /// Simulcast stream ids in the order of the offer, taken as lowest layer first.
    rids: Vec<String>,
    audio_level_ext: Option<u8>,
    streams: HashMap<u32, InStream>,
    /// The SSRC of each layer, for key frame requests.
    layer_ssrc: Vec<Option<u32>>,
    /// Bitrates of its layers, to publish it again once the room allows it.
    layer_bps: Vec<u64>,
}

/// A stream the SFU sends a subscriber.
#[derive(Debug)]
struct Outbound {
    sender: RTCRtpSenderId,
    ssrc: u32,
    mime: String,
    want: Want,
    /// The subscriber's answer covered this stream.
    negotiated: bool,
    /// The room forwards to it.
    active: bool,
}

/// One participant's server-side peer connection.
struct Peer {
    conference: ConferenceId,
    pc: RTCPeerConnection,
    connected: bool,
    inbound: HashMap<String, Inbound>,
    outbound: HashMap<TrackId, Outbound>,
    /// Outgoing streams changed since the last offer.
    negotiation_needed: bool,
    /// Our offer waits for the subscriber's answer.
    awaiting_answer: bool,
    /// The call's data channel, once open.
    channel: Option<rtc::data_channel::RTCDataChannelId>,
    /// Track ids (the second part of `a=msid`) of what it sends that its descriptions mark as a
    /// screen share (`a=content:slides`, RFC 4796): published as [`MediaKind::Screen`].
    screen_tracks: HashSet<String>,
    /// The congestion controller's estimate of what we may send it.
    estimate: Estimate,
    /// The estimate the room last heard (so the forwarders' wants change only when it does).
    estimate_applied: u64,
    /// Its inbound RTP, taken from the interceptor chain ([`DeliverRtcp`]).
    rtp_in: InboundRtp,
    /// The track each inbound SSRC belongs to, learned when its stream opened: RTP is routed by
    /// it (the core forgets simulcast SSRCs at each renegotiation; see [`DeliverRtcp`]).
    ssrc_tracks: HashMap<u32, String>,
}

/// A track published in the room through these sessions.
#[derive(Debug, Clone, Copy)]
struct Published {
    owner: PeerKey,
    kind: MediaKind,
}

/// Every media session on one media port, and the rooms of their conferences: one owner,
/// driven by the media loop with datagrams and the time. Participant ids are unique across
/// conferences (the node hands them out); track ids are per conference.
pub struct MediaSessions {
    epoch: WallInstant,
    local: SocketAddr,
    /// More host candidates (a public address the node is reached at through port forwarding);
    /// whatever arrives is handed to the core as received at `local`, the first candidate.
    extra_candidates: Vec<SocketAddr>,
    demux: Demux<PeerKey>,
    timers: Timers<PeerKey>,
    peers: HashMap<PeerKey, Peer>,
    rooms: HashMap<ConferenceId, Room>,
    tracks: HashMap<(ConferenceId, TrackId), Published>,
    outbox: VecDeque<(SocketAddr, Bytes)>,
    events: VecDeque<MediaEvent>,
    next_ssrc: u32,
    /// Binding requests our ICE agents sent, by transaction id: the peer and where it went.
    stun_requests: HashMap<[u8; 12], (PeerKey, SocketAddr)>,
    /// Sessions at most ([`MAX_SESSIONS`]).
    max_sessions: usize,
}

impl std::fmt::Debug for MediaSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSessions").field("local", &self.local).field("peers", &self.peers.len()).finish()
    }
}

/// The track ids of the m-lines a description of the participant marks as screen shares
/// (`a=content:slides`; RFC 4796 names a presentation stream so). A browser does not write it:
/// the web UI adds it to what it sends the node, on the m-line it shares the screen on.
fn screen_tracks(description: &RTCSessionDescription) -> impl Iterator<Item = String> + use<> {
    let media = description.unmarshal().map(|d| d.media_descriptions).unwrap_or_default();
    media.into_iter().filter_map(|m| {
        if m.attribute("content") != Some(Some("slides")) {
            return None;
        }
        m.attribute("msid").flatten().and_then(|v| v.split_whitespace().nth(1)).map(str::to_string)
    })
}

fn media_kind(kind: RtpCodecKind) -> MediaKind {
    match kind {
        RtpCodecKind::Audio => MediaKind::Audio,
        _ => MediaKind::Video,
    }
}

fn codec_kind(kind: MediaKind) -> RtpCodecKind {
    match kind {
        MediaKind::Audio => RtpCodecKind::Audio,
        MediaKind::Video | MediaKind::Screen => RtpCodecKind::Video,
    }
}

impl MediaSessions {
    /// Sessions on the media port advertised as `local` (the address peers send to: the only
    /// host candidate), with no conference yet. `epoch` is the media loop's time zero.
    pub fn new(local: SocketAddr, epoch: WallInstant) -> Self {
        MediaSessions {
            epoch,
            local,
            extra_candidates: Vec::new(),
            demux: Demux::default(),
            timers: Timers::default(),
            peers: HashMap::new(),
            rooms: HashMap::new(),
            tracks: HashMap::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            next_ssrc: FIRST_OUT_SSRC,
            stun_requests: HashMap::new(),
            max_sessions: MAX_SESSIONS,
        }
    }

    /// Carries at most `n` media sessions (instead of [`MAX_SESSIONS`]).
    pub fn with_max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }

    fn since_epoch(&self, now: WallInstant) -> Duration {
        now.saturating_duration_since(self.epoch)
    }

    /// Also offers these addresses as host candidates (same port, reached through port
    /// forwarding or another interface).
    pub fn with_extra_candidates(mut self, addrs: Vec<SocketAddr>) -> Self {
        self.extra_candidates = addrs;
        self
    }

    /// Opens a conference's room (in `mode`); opening an open one changes nothing.
    pub fn open(&mut self, conference: ConferenceId, mode: Mode) {
        self.rooms.entry(conference).or_insert_with(|| Room::new(mode));
    }

    /// Closes a conference: every participant's session ends and the room is forgotten.
    pub fn close(&mut self, conference: ConferenceId, now: WallInstant) {
        let members: Vec<PeerKey> =
            self.peers.iter().filter(|(_, p)| p.conference == conference).map(|(k, _)| *k).collect();
        for who in members {
            self.remove_peer(who, now);
        }
        self.rooms.remove(&conference);
    }

    /// A conference's room, for what signaling needs to know.
    pub fn room(&self, conference: ConferenceId) -> Option<&Room> {
        self.rooms.get(&conference)
    }

    /// Runs a moderation request (or any other room decision) on a conference's room and carries
    /// out what it decided.
    pub fn moderate(
        &mut self,
        now: WallInstant,
        conference: ConferenceId,
        decide: impl FnOnce(&mut Room) -> Result<Vec<Action>, RoomError>,
    ) -> Result<(), MediaError> {
        let room = self.rooms.get_mut(&conference).ok_or(MediaError::UnknownConference)?;
        let actions = decide(room)?;
        self.apply(now, conference, actions);
        Ok(())
    }

    fn conference_of(&self, key: PeerKey) -> Option<ConferenceId> {
        self.peers.get(&key).map(|p| p.conference)
    }

    /// Datagrams the demux dropped (unknown ufrag or address, garbage), in total.
    pub fn dropped(&self) -> u64 {
        self.demux.dropped.values().sum()
    }

    /// Datagrams the demux dropped, by reason (every reason, zero included).
    pub fn dropped_by_reason(&self) -> Vec<(crate::demux::Drop, u64)> {
        crate::demux::Drop::ALL.iter().map(|r| (*r, self.demux.dropped.get(r).copied().unwrap_or(0))).collect()
    }

    /// Media sessions open (participants with a peer connection).
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The send-side bandwidth estimates of the sessions that have one, bits per second.
    pub fn estimates(&self) -> Vec<u64> {
        self.peers.values().map(|p| p.estimate.get()).filter(|e| *e > 0).collect()
    }

    /// Whether the participant's ICE and DTLS are up.
    pub fn is_connected(&self, peer: PeerKey) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.connected)
    }

    /// A participant joins with its SDP offer: a server-side peer connection answers it, and the
    /// participant joins the room. Returns the SDP answer.
    pub fn add_peer(
        &mut self,
        conference: ConferenceId,
        participant: ParticipantId,
        account: AccountId,
        role: Role,
        offer_sdp: String,
        now: WallInstant,
    ) -> Result<String, MediaError> {
        if self.peers.contains_key(&participant) {
            return Err(MediaError::PeerExists);
        }
        let Some(room) = self.rooms.get(&conference) else { return Err(MediaError::UnknownConference) };
        if self.peers.len() >= self.max_sessions {
            return Err(MediaError::Full);
        }
        // Refused before any work on its offer.
        if room.is_banned(&account) {
            return Err(MediaError::Room(RoomError::Forbidden(crate::room::REMOVED)));
        }
        let estimate = Estimate::default();
        let rtp_in = InboundRtp::default();
        let (media_engine, registry) = sfu_media_setup(estimate.clone(), rtp_in.clone())?;
        // The core picks a random ufrag and password for each peer connection.
        let settings = SettingEngineBuilder::new()
            .with_lite(true)
            .with_answering_dtls_role(RTCDtlsRole::Server)
            .with_ice_timeouts(Some(ICE_DISCONNECTED_TIMEOUT), Some(CONSENT_TIMEOUT - ICE_DISCONNECTED_TIMEOUT), None)
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(settings)
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(now)?;
        for addr in std::iter::once(self.local).chain(self.extra_candidates.iter().copied()) {
            add_host_candidate(&mut pc, addr)?;
        }
        pc.add_local_candidate(Default::default())?; // end of candidates
        let offer = RTCSessionDescription::offer(offer_sdp)?;
        let screens: HashSet<String> = screen_tracks(&offer).collect();
        pc.set_remote_description(now, offer)?;
        let answer = pc.create_answer(None)?;
        pc.set_local_description(now, answer.clone())?;
        let ufrag = answer
            .sdp
            .lines()
            .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
            .map(str::to_string)
            .ok_or(MediaError::Ufrag)?;
        if self.demux.peer_of_ufrag(&ufrag).is_some() {
            return Err(MediaError::Ufrag);
        }

        let room = self.rooms.get_mut(&conference).ok_or(MediaError::UnknownConference)?;
        let actions = room.join(participant, account, role)?;
        let admitted = room.role(participant).is_some();
        self.apply(now, conference, actions);
        if !admitted {
            return Err(MediaError::InLobby);
        }
        self.demux.register(&ufrag, participant);
        self.peers.insert(
            participant,
            Peer {
                conference,
                pc,
                connected: false,
                inbound: HashMap::new(),
                outbound: HashMap::new(),
                negotiation_needed: false,
                awaiting_answer: false,
                channel: None,
                screen_tracks: screens,
                estimate,
                estimate_applied: 0,
                rtp_in,
                ssrc_tracks: HashMap::new(),
            },
        );
        self.service(participant, now);
        Ok(answer.sdp)
    }

    /// The participant leaves (or is removed): its session closes and the room forgets it.
    pub fn remove_peer(&mut self, participant: ParticipantId, now: WallInstant) {
        let Some(mut peer) = self.peers.remove(&participant) else {
            // Someone waiting in a lobby, or let in and not connected yet: only the room knows them.
            let conference = self
                .rooms
                .iter()
                .find(|(_, r)| r.waiting(participant) || r.role(participant).is_some())
                .map(|(c, _)| *c);
            if let Some(conference) = conference
                && let Some(Ok(actions)) = self.rooms.get_mut(&conference).map(|r| r.remove(participant, participant))
            {
                self.apply(now, conference, actions);
            }
            return;
        };
        let _ = peer.pc.close();
        while let Some(t) = peer.pc.poll_write() {
            self.outbox.push_back((t.transport.peer_addr, t.message.freeze()));
        }
        self.demux.remove(participant);
        self.timers.cancel(participant);
        self.tracks.retain(|_, t| t.owner != participant);
        let conference = peer.conference;
        if let Some(Ok(actions)) = self.rooms.get_mut(&conference).map(|r| r.remove(participant, participant)) {
            self.apply(now, conference, actions);
        }
    }

    /// A datagram arrived on the media port from `from`.
    pub fn handle_datagram(&mut self, now: WallInstant, from: SocketAddr, datagram: &[u8]) {
        // The core's ICE-lite agent also sends binding requests of its own; their responses carry
        // no USERNAME, so they go to the peer that sent the request, from the address it went to.
        let response = [STUN_BINDING_SUCCESS, STUN_BINDING_ERROR]
            .into_iter()
            .find_map(|typ| stun_transaction(datagram, typ))
            .and_then(|txid| self.stun_requests.remove(&txid))
            .filter(|(_, to)| *to == from)
            .map(|(key, _)| key);
        let key = match response {
            Some(key) => key,
            None => match self.demux.route(from, datagram) {
                Route::Peer(key) => key,
                Route::Drop(_) => return,
            },
        };
        let local = self.local;
        let Some(peer) = self.peers.get_mut(&key) else { return };
        // The core logs and swallows what it cannot use; nothing here depends on the result.
        let _ = peer.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: local,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(datagram),
        });
        self.service(key, now);
    }

    /// The next datagram to send on the media port, and where to.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.outbox.pop_front()
    }

    /// The next thing the node hears about.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// When [`MediaSessions::handle_timeout`] is due next.
    pub fn next_timeout(&mut self) -> Option<WallInstant> {
        self.timers.next_deadline().map(|at| self.epoch + at)
    }

    /// Runs the timers of the peers whose deadline has come (ICE, DTLS retransmission, RTCP
    /// reports, NACKs).
    pub fn handle_timeout(&mut self, now: WallInstant) {
        for key in self.timers.due(self.since_epoch(now)) {
            if let Some(peer) = self.peers.get_mut(&key) {
                let _ = peer.pc.handle_timeout(now);
                self.service(key, now);
            }
        }
    }

    /// Takes everything the peer connection has for us: events, media, datagrams, its timer.
    fn service(&mut self, key: PeerKey, now: WallInstant) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        let mut events = Vec::new();
        while let Some(event) = peer.pc.poll_event() {
            events.push(event);
        }
        let mut messages = Vec::new();
        while let Some(message) = peer.pc.poll_read() {
            messages.push(message.message);
        }
        for event in events {
            self.on_pc_event(now, key, event);
        }
        for message in messages {
            self.on_message(now, key, message);
        }
        self.take_rtp(now, key);
        self.apply_estimate(now, key);
        self.flush(key);
    }

    /// Routes the peer's inbound RTP to its tracks by the SSRCs learned when their streams opened
    /// (a packet of a stream that never opened is dropped, as the core would).
    fn take_rtp(&mut self, now: WallInstant, key: PeerKey) {
        let Some(peer) = self.peers.get(&key) else { return };
        for packet in peer.rtp_in.take() {
            let Some(track_id) = self.peers.get(&key).and_then(|p| p.ssrc_tracks.get(&packet.header.ssrc)).cloned()
            else {
                continue;
            };
            self.on_rtp(now, key, &track_id, packet);
        }
    }

    /// Tells the room a subscriber's new bandwidth estimate, when it moved by a tenth or more
    /// since the room last heard.
    fn apply_estimate(&mut self, now: WallInstant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        let estimate = peer.estimate.get();
        let applied = peer.estimate_applied;
        if estimate == 0 || estimate.abs_diff(applied) * 10 < applied {
            return;
        }
        peer.estimate_applied = estimate;
        tracing::debug!(participant = key.0, bps = estimate, "media: bandwidth estimate");
        let (conference, at) = (peer.conference, self.since_epoch(now));
        if let Some(actions) = self.rooms.get_mut(&conference).map(|r| r.set_bandwidth(at, key, estimate)) {
            self.apply(now, conference, actions);
        }
    }

    /// The bandwidth estimate for what we send a participant, bits per second (None: none yet).
    pub fn estimate(&self, key: PeerKey) -> Option<u64> {
        self.peers.get(&key).map(|p| p.estimate.get()).filter(|e| *e > 0)
    }

    /// Moves the peer's datagrams to the outbox (learning the addresses its ICE agent accepted) and
    /// sets its timer.
    fn flush(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        while let Some(t) = peer.pc.poll_write() {
            let to = t.transport.peer_addr;
            let response = [STUN_BINDING_SUCCESS, STUN_BINDING_ERROR]
                .into_iter()
                .any(|typ| stun_transaction(&t.message, typ).is_some());
            // Once a peer has its address, only answers to checks go anywhere else: no checks
            // of ours, no DTLS, no media (even if its agent picked another pair).
            if !response && self.demux.address_of(key).is_some_and(|a| a != to) {
                continue;
            }
            if let Some(txid) = stun_transaction(&t.message, STUN_BINDING_REQUEST) {
                if self.stun_requests.len() >= MAX_STUN_REQUESTS {
                    self.stun_requests.clear(); // lost responses only; their checks are retried
                }
                self.stun_requests.insert(txid, (key, t.transport.peer_addr));
            }
            if stun_transaction(&t.message, STUN_BINDING_SUCCESS).is_some() {
                // The peer's ICE agent answers only binding requests whose MESSAGE-INTEGRITY its
                // password checks: the address they came from is the peer's.
                self.demux.confirm(t.transport.peer_addr, key);
            }
            self.outbox.push_back((t.transport.peer_addr, t.message.freeze()));
        }
        match peer.pc.poll_timeout() {
            Some(at) => self.timers.set(key, at.saturating_duration_since(self.epoch)),
            None => self.timers.cancel(key),
        }
    }

    fn on_pc_event(&mut self, now: WallInstant, key: PeerKey, event: RTCPeerConnectionEvent) {
        match event {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                RTCPeerConnectionState::Connected => {
                    if let Some(peer) = self.peers.get_mut(&key) {
                        peer.connected = true;
                    }
                    self.events.push_back(MediaEvent::Connected(key));
                    self.activate(now, key);
                }
                RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                    if let Some(peer) = self.peers.get_mut(&key) {
                        peer.connected = false;
                    }
                    self.events.push_back(MediaEvent::Failed(key));
                }
                _ => {}
            },
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => self.on_track_open(now, key, init),
            RTCPeerConnectionEvent::OnDataChannel(event) => self.on_channel_event(now, key, event),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_screen_share_is_the_m_line_marked_slides() {
        let line = |m: &str| format!("{m}\r\n");
        let mut sdp: String = ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0"].into_iter().map(line).collect();
        for (mid, stream, track, slides) in
            [("0", "st", "mic", false), ("1", "st", "cam", false), ("2", "sc", "scr", true)]
        {
            let kind = if mid == "0" { "audio 9 UDP/TLS/RTP/SAVPF 111" } else { "video 9 UDP/TLS/RTP/SAVPF 96" };
            sdp += &line(&format!("m={kind}"));
            sdp += &line("c=IN IP4 0.0.0.0");
            sdp += &line(&format!("a=mid:{mid}"));
            if slides {
                sdp += &line("a=content:slides");
            }
            sdp += &line(&format!("a=msid:{stream} {track}"));
        }
        let offer = RTCSessionDescription::offer(sdp).unwrap();
        assert_eq!(screen_tracks(&offer).collect::<Vec<_>>(), ["scr"]);
    }

    #[test]
    fn vp8_key_frames_are_recognised_from_the_descriptor_and_payload_header() {
        assert!(vp8_keyframe_start(&[0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]));
        assert!(!vp8_keyframe_start(&[0x10, 0x01, 0x00]), "P bit set: an inter frame");
        assert!(!vp8_keyframe_start(&[0x00, 0x00, 0x00]), "not the start of a partition");
        assert!(!vp8_keyframe_start(&[0x11, 0x00, 0x00]), "partition 1");
        // Extended: I with a 15-bit PictureID, L, T.
        assert!(vp8_keyframe_start(&[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x00]));
        assert!(!vp8_keyframe_start(&[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x01]));
        for len in 0..8 {
            let _ = vp8_keyframe_start(&[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x00][..len]);
            let _ = vp8_keyframe_start(&vec![0xff; len]);
        }
    }
}
