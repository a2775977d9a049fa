//! A late joiner gets the video of a camera that was already sending, in memory with a virtual
//! clock (webrtc-rs clients and `MediaSessions` on a test network, as in `media_loop.rs`).
//!
//! A publishes its camera in three simulcast layers the way browsers do: each layer's SSRC is not
//! in the SDP, and its first packets name their `mid` and `rid` in header extensions, which the
//! browser stops sending once the stream is acknowledged. A is alone in the call for two seconds.
//! Then B joins with its microphone: B subscribes to A's camera, and A subscribes to B's
//! microphone, which renegotiates A's peer connection. B must get A's video from then on, on every
//! layer it is switched to, and A must keep getting B's audio. (B sends audio because the test
//! client cannot receive a camera on the m-line of its own simulcast camera, where the SFU puts it;
//! browsers can, and the browser tests cover cameras both ways.)
//!
//! This failed before the SFU routed inbound RTP itself: renegotiating A made the WebRTC core
//! rebuild A's receiver tracks from the new SDP, forgetting the layers' SSRCs, and drop all of
//! A's video from then on.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use veche_protocol::ids::AccountId;
use veche_sfu::forward::Want;
use veche_sfu::media::{MediaEvent, MediaSessions, client_peer_connection, opus_codec, vp8_codec};
use veche_sfu::room::{Event, Mode, Role};
use veche_sfu::{ConferenceId, MediaKind, ParticipantId, TrackId};

const ROOM: ConferenceId = ConferenceId(3);
const A: ParticipantId = ParticipantId(1);
const B: ParticipantId = ParticipantId(2);
/// A's layers, lowest first, as a browser names them.
const RIDS: [&str; 3] = ["q", "h", "f"];
const A_SSRCS: [u32; 3] = [7001, 7002, 7003];
const B_SSRC: u32 = 8001;
/// Packets of each stream that carry `mid`/`rid` (a browser stops once a receiver report
/// acknowledges the stream).
const NAMED_PACKETS: u16 = 10;

/// A member's browser: its peer connection, camera (or microphone) and what it got.
struct Member {
    addr: SocketAddr,
    pc: RTCPeerConnection,
    /// Its camera or microphone.
    camera: RTCRtpSenderId,
    ssrcs: Vec<u32>,
    rids: Vec<&'static str>,
    seq: Vec<u16>,
    /// A key frame is due on each stream (first frame, or a PLI asked for one).
    key_due: Vec<bool>,
    connected: bool,
    /// Payloads of media received, tagged with the time.
    received: Vec<(Instant, Vec<u8>)>,
    plis: usize,
}

impl Member {
    fn new(
        addr: SocketAddr,
        now: Instant,
        kind: MediaKind,
        ssrcs: &[u32],
        rids: &[&'static str],
    ) -> anyhow::Result<Self> {
        let mut pc = client_peer_connection(addr, now)?;
        let encodings = ssrcs
            .iter()
            .enumerate()
            .map(|(i, ssrc)| RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    rid: rids.get(i).map(|r| r.to_string()).unwrap_or_default(),
                    ssrc: Some(*ssrc),
                    ..Default::default()
                },
                codec: if kind == MediaKind::Audio { opus_codec() } else { vp8_codec() },
                ..Default::default()
            })
            .collect();
        let camera = pc.add_track(MediaStreamTrack::new(
            format!("stream{addr}"),
            format!("cam{addr}"),
            format!("cam{addr}"),
            if kind == MediaKind::Audio { RtpCodecKind::Audio } else { RtpCodecKind::Video },
            encodings,
        ))?;
        Ok(Member {
            addr,
            pc,
            camera,
            ssrcs: ssrcs.to_vec(),
            rids: rids.to_vec(),
            seq: vec![0; ssrcs.len()],
            key_due: vec![true; ssrcs.len()],
            connected: false,
            received: Vec::new(),
            plis: 0,
        })
    }

    /// Joins the call: its offer to the SFU, the SFU's answer back.
    fn join(&mut self, sfu: &mut MediaSessions, who: ParticipantId, now: Instant) -> anyhow::Result<()> {
        let offer = self.pc.create_offer(None)?;
        self.pc.set_local_description(now, offer.clone())?;
        let answer = sfu.add_peer(ROOM, who, AccountId([who.0 as u8; 32]), Role::Participant, offer.sdp, now)?;
        self.pc.set_remote_description(now, RTCSessionDescription::answer(answer)?)?;
        Ok(())
    }

    /// One frame on every layer (a key frame where one is due), each in one packet (for a
    /// microphone: one packet).
    fn send_frame(&mut self, now: Instant, frame: u32) -> anyhow::Result<()> {
        // The sender's transceiver is the first one.
        let mid = self.pc.rtp_transceiver(0).and_then(|t| t.mid().clone()).unwrap_or_default();
        let mut sender = self.pc.rtp_sender(self.camera).ok_or_else(|| anyhow::anyhow!("camera sender"))?;
        let parameters = sender.get_parameters().clone();
        let payload_type = parameters.rtp_parameters.codecs[0].payload_type;
        let ext =
            |uri: &str| parameters.rtp_parameters.header_extensions.iter().find(|e| e.uri == uri).map(|e| e.id as u8);
        let (mid_ext, rid_ext) = (ext(rtc::sdp::extmap::SDES_MID_URI), ext(rtc::sdp::extmap::SDES_RTP_STREAM_ID_URI));
        for layer in 0..self.ssrcs.len() {
            self.seq[layer] = self.seq[layer].wrapping_add(1);
            let key = std::mem::take(&mut self.key_due[layer]);
            let mut payload = if key { vec![0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a] } else { vec![0x10, 0x01, 0x00] };
            payload.extend_from_slice(format!("{}:L{layer}#{frame}", self.addr.port()).as_bytes());
            let mut header = rtc::rtp::Header {
                version: 2,
                payload_type,
                sequence_number: self.seq[layer],
                timestamp: frame * 3000,
                ssrc: self.ssrcs[layer],
                marker: true,
                ..Default::default()
            };
            if self.seq[layer] <= NAMED_PACKETS && !self.rids.is_empty() {
                let (Some(mid_ext), Some(rid_ext)) = (mid_ext, rid_ext) else {
                    anyhow::bail!("mid/rid header extensions not negotiated")
                };
                header.set_extension(mid_ext, Bytes::from(mid.clone().into_bytes()))?;
                header.set_extension(rid_ext, Bytes::from(self.rids[layer].as_bytes().to_vec()))?;
            }
            sender.write_rtp(now, rtc::rtp::Packet { header, payload: Bytes::from(payload) })?;
        }
        Ok(())
    }

    fn feed(&mut self, now: Instant, from: SocketAddr, data: BytesMut) {
        let _ = self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: data,
        });
    }

    /// Takes events and messages: connection state, PLIs (a key frame on every layer is then
    /// due), video received.
    fn poll(&mut self, now: Instant) {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(RTCPeerConnectionState::Connected) = event {
                self.connected = true;
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            match message {
                RTCMessage::RtcpPacket(_, packets)
                    if packets.iter().any(|p| p.as_any().downcast_ref::<PictureLossIndication>().is_some()) =>
                {
                    self.plis += 1;
                    self.key_due.iter_mut().for_each(|k| *k = true);
                }
                RTCMessage::RtpPacket(_, packet) => self.received.push((now, packet.payload.to_vec())),
                _ => {}
            }
        }
    }

    /// Frames received from the member on `port` since `since`, per layer.
    /// (Audio counts as layer 0.)
    fn frames_from(&self, port: u16, since: Instant) -> [usize; 3] {
        let mut per_layer = [0; 3];
        for (_, payload) in self.received.iter().filter(|(at, _)| *at >= since) {
            let text = String::from_utf8_lossy(payload);
            for (layer, count) in per_layer.iter_mut().enumerate() {
                if text.contains(&format!("{port}:L{layer}#")) {
                    *count += 1;
                }
            }
        }
        per_layer
    }
}

/// Delivers datagrams between the members and the SFU until everyone is quiet.
fn network(now: Instant, srv: SocketAddr, sfu: &mut MediaSessions, members: &mut [&mut Member]) -> anyhow::Result<()> {
    loop {
        let mut net: VecDeque<(SocketAddr, SocketAddr, BytesMut)> = VecDeque::new();
        for m in members.iter_mut() {
            while let Some(t) = m.pc.poll_write() {
                net.push_back((m.addr, t.transport.peer_addr, t.message));
            }
        }
        while let Some((to, data)) = sfu.poll_transmit() {
            net.push_back((srv, to, BytesMut::from(&data[..])));
        }
        if net.is_empty() {
            return Ok(());
        }
        for (from, to, data) in net {
            if to == srv {
                sfu.handle_datagram(now, from, &data);
            } else if let Some(m) = members.iter_mut().find(|m| m.addr == to) {
                m.feed(now, from, data);
            } else {
                anyhow::bail!("datagram to nowhere: {to}");
            }
        }
    }
}

/// Carries the SFU's new offer to a member and its answer back.
fn renegotiate(sfu: &mut MediaSessions, who: ParticipantId, m: &mut Member, now: Instant) -> anyhow::Result<bool> {
    let Some(offer) = sfu.pending_offer(now, who)? else { return Ok(false) };
    m.pc.set_remote_description(now, RTCSessionDescription::offer(offer)?)?;
    let answer = m.pc.create_answer(None)?;
    m.pc.set_local_description(now, answer.clone())?;
    sfu.apply_answer(now, who, answer.sdp)?;
    Ok(true)
}

#[test]
fn a_late_joiner_gets_the_video_of_a_camera_already_sending_in_simulcast() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    let srv: SocketAddr = "127.0.0.1:41000".parse()?;
    let start = Instant::now();
    let mut sfu = MediaSessions::new(srv, start);
    sfu.open(ROOM, Mode::Meeting);
    let mut a = Member::new("127.0.0.1:51001".parse()?, start, MediaKind::Video, &A_SSRCS, &RIDS)?;
    let mut b = Member::new("127.0.0.1:51002".parse()?, start, MediaKind::Audio, &[B_SSRC], &[])?;
    a.join(&mut sfu, A, start)?;

    let mut tracks: Vec<(ParticipantId, TrackId)> = Vec::new();
    let mut subscribed: Vec<(ParticipantId, TrackId)> = Vec::new();
    let mut a_renegotiations = 0;
    let mut b_joined_at = None;
    let mut layer_moves = Vec::new();
    let b_joins_at = start + Duration::from_secs(2);
    let end = b_joins_at + Duration::from_secs(6);
    let mut frame = 0u32;
    let mut step = 0u64;
    let mut now = start;
    while now < end {
        now = start + Duration::from_millis(5 * step);
        step += 1;
        if b_joined_at.is_none() && now >= b_joins_at {
            b.join(&mut sfu, B, now)?;
            b_joined_at = Some(now);
        }
        for m in [&mut a, &mut b] {
            if m.pc.poll_timeout().is_some_and(|t| t <= now) {
                m.pc.handle_timeout(now)?;
            }
        }
        if sfu.next_timeout().is_some_and(|t| t <= now) {
            sfu.handle_timeout(now);
        }
        // 30 frames a second on every layer, from each connected camera.
        if step.is_multiple_of(7) {
            frame += 1;
            if a.connected {
                a.send_frame(now, frame)?;
            }
            if b.connected {
                b.send_frame(now, frame)?;
            }
        }
        network(now, srv, &mut sfu, &mut [&mut a, &mut b])?;
        while let Some(event) = sfu.poll_event() {
            match event {
                MediaEvent::Room { event: Event::Published { who, track, .. }, .. } => {
                    tracks.push((who, track));
                }
                MediaEvent::Failed(who) => anyhow::bail!("session of {who:?} failed"),
                _ => {}
            }
        }
        // Each connected member subscribes to the others' cameras (as the node does on join).
        for (who, track) in tracks.clone() {
            for viewer in [A, B] {
                if viewer != who && sfu.is_connected(viewer) && !subscribed.contains(&(viewer, track)) {
                    sfu.subscribe(now, viewer, track, Want::default())?;
                    subscribed.push((viewer, track));
                }
            }
        }
        if renegotiate(&mut sfu, A, &mut a, now)? {
            a_renegotiations += 1;
        }
        if b_joined_at.is_some() {
            renegotiate(&mut sfu, B, &mut b, now)?;
        }
        a.poll(now);
        b.poll(now);
        // Three seconds after B joined, B's tile shrinks (the middle layer), a second later it is
        // large again (the top layer): each switch needs a key frame of the new layer from A.
        let a_track = tracks.iter().find(|(who, _)| *who == A).map(|(_, t)| *t);
        if let (Some(joined), Some(track)) = (b_joined_at, a_track) {
            for (after, height) in [(3000u64, 360u16), (4000, 720)] {
                let at = joined + Duration::from_millis(after);
                if now >= at && now < at + Duration::from_millis(5) {
                    sfu.moderate(now, ROOM, |room| room.set_view(now - start, B, track, height))?;
                    layer_moves.push(height);
                }
            }
        }
    }

    let joined = b_joined_at.ok_or_else(|| anyhow::anyhow!("B never joined"))?;
    assert!(a_renegotiations >= 1, "A's peer connection was renegotiated when B's camera came");
    assert_eq!(layer_moves, [360, 720]);
    // Per half second after B joined (from the first second, when its stream is up).
    let mut rates = Vec::new();
    let mut since = joined + Duration::from_secs(1);
    while since + Duration::from_millis(500) <= end {
        let [l0, l1, l2] = b.frames_from(a.addr.port(), since);
        let [n0, n1, n2] = b.frames_from(a.addr.port(), since + Duration::from_millis(500));
        rates.push((l0 - n0) + (l1 - n1) + (l2 - n2));
        since += Duration::from_millis(500);
    }
    println!("B's frames from A per half second: {rates:?}; PLIs at A: {}", a.plis);
    assert!(rates.iter().all(|r| *r >= 10), "B keeps getting A's video, every half second: {rates:?}");
    let [_, middle, top] = b.frames_from(a.addr.port(), joined + Duration::from_millis(3000));
    assert!(middle >= 10, "B's smaller tile gets A's middle layer ({middle} frames)");
    assert!(top >= 10, "B's larger tile gets A's top layer again ({top} frames)");
    let back = a.frames_from(b.addr.port(), joined + Duration::from_secs(1))[0];
    assert!(back >= 100, "A keeps getting B's audio ({back} packets)");
    Ok(())
}
