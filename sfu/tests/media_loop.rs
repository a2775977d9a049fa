//! The media sessions end to end, in memory with a virtual clock: two webrtc-rs clients (A
//! publishes VP8, B subscribes) talk to `MediaSessions` on one server address through a test
//! "network" that passes datagrams around. Checks ICE-lite + DTLS on both legs, publishing on
//! first sight, subscription by a server-side offer, forwarding through the room with SRTP on
//! both legs, the key frame request reaching the publisher as a PLI, and garbage on the media
//! port being dropped while the call goes on.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use veche_protocol::ids::AccountId;
use veche_sfu::forward::Want;
use veche_sfu::media::{MediaEvent, MediaSessions, client_peer_connection, vp8_codec, vp8_keyframe_start};
use veche_sfu::room::{Event, Mode, Role};
use veche_sfu::{ConferenceId, MediaKind, ParticipantId, TrackId};

const ROOM: ConferenceId = ConferenceId(7);
const A: ParticipantId = ParticipantId(1);
const B: ParticipantId = ParticipantId(2);
const A_SSRC: u32 = 1111;
const MARK: &[u8] = b"VECHE-A#";

fn client(local: SocketAddr, epoch: Instant) -> anyhow::Result<RTCPeerConnection> {
    Ok(client_peer_connection(local, epoch)?)
}

fn feed(pc: &mut RTCPeerConnection, now: Instant, from: SocketAddr, to: SocketAddr, data: BytesMut) {
    let _ = pc.handle_read(TaggedBytesMut {
        now,
        transport: TransportContext {
            local_addr: to,
            peer_addr: from,
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        },
        message: data,
    });
}

/// A VP8 payload: descriptor (S=1, partition 0), a payload header with the P bit clear on key
/// frames, then a marker naming the sequence number.
fn vp8_payload(seq: u16, key: bool) -> Vec<u8> {
    let mut p = if key { vec![0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a] } else { vec![0x10, 0x01, 0x00] };
    p.extend_from_slice(MARK);
    p.extend_from_slice(seq.to_string().as_bytes());
    p
}

/// xorshift, for garbage.
fn noise(x: &mut u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *x ^= *x << 13;
            *x ^= *x >> 17;
            *x ^= *x << 5;
            *x as u8
        })
        .collect()
}

#[test]
fn a_publisher_reaches_a_subscriber_through_the_room_with_srtp_on_both_legs() -> anyhow::Result<()> {
    // Also: three packets to B are lost on the way; B's NACK brings them back from the room's
    // cache (the SFU's peer connections keep no packet buffer of their own).
    let wall = Instant::now();
    let srv: SocketAddr = "127.0.0.1:40000".parse()?;
    let a_addr: SocketAddr = "127.0.0.1:50001".parse()?;
    let b_addr: SocketAddr = "127.0.0.1:50002".parse()?;
    let stranger: SocketAddr = "203.0.113.9:9999".parse()?;
    let start = Instant::now();
    let mut sfu = MediaSessions::new(srv, start);
    sfu.open(ROOM, Mode::Meeting);

    // A publishes one VP8 camera; B only receives (it offers a recvonly audio transceiver).
    let mut a = client(a_addr, start)?;
    let a_sender = a.add_track(MediaStreamTrack::new(
        "streamA".into(),
        "camA".into(),
        "camA".into(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(A_SSRC), ..Default::default() },
            codec: vp8_codec(),
            ..Default::default()
        }],
    ))?;
    let mut b = client(b_addr, start)?;
    b.add_transceiver_from_kind(
        RtpCodecKind::Audio,
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            streams: vec![],
            send_encodings: vec![],
        }),
    )?;
    for (who, pc) in [(A, &mut a), (B, &mut b)] {
        let offer = pc.create_offer(None)?;
        pc.set_local_description(start, offer.clone())?;
        let answer = sfu.add_peer(ROOM, who, AccountId([who.0 as u8; 32]), Role::Participant, offer.sdp, start)?;
        assert!(answer.contains("a=ice-lite"), "the SFU answers as ICE-lite");
        pc.set_remote_description(start, RTCSessionDescription::answer(answer)?)?;
    }

    let mut sfu_connected = HashSet::new();
    let mut clients_connected = [false; 2];
    let mut a_track: Option<TrackId> = None;
    let mut subscribed = false;
    let mut renegotiated = false;
    let mut plis_at_a = 0usize;
    let mut keyframe_wanted = true;
    let mut a_seq: u16 = 0;
    let mut sent: HashSet<Vec<u8>> = HashSet::new();
    let mut received: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut received_after_garbage = 0usize;
    let mut garbage_sent = 0u64;
    let mut rng = 0x9e37_79b9u32;
    let mut now = start;
    let mut b_track = None;
    let mut b_pli_sent = false;
    let mut plis_before_b_asked = 0;
    let mut plaintext_on_the_wire = 0usize;
    let mut lost_to_b = 0usize;

    for step in 0..6000u64 {
        now = start + Duration::from_millis(5 * step);
        for pc in [&mut a, &mut b] {
            if pc.poll_timeout().is_some_and(|t| t <= now) {
                pc.handle_timeout(now)?;
            }
        }
        if sfu.next_timeout().is_some_and(|t| t <= now) {
            sfu.handle_timeout(now);
        }

        // A sends a frame every 20 ms once connected: a key frame when asked for one.
        if clients_connected[0] && step % 4 == 0 {
            a_seq = a_seq.wrapping_add(1);
            let payload = vp8_payload(a_seq, keyframe_wanted);
            keyframe_wanted = false;
            sent.insert(payload.clone());
            let mut sender = a.rtp_sender(a_sender).ok_or_else(|| anyhow::anyhow!("A's sender"))?;
            let payload_type = sender.get_parameters().rtp_parameters.codecs[0].payload_type;
            sender.write_rtp(
                now,
                rtc::rtp::Packet {
                    header: rtc::rtp::Header {
                        version: 2,
                        payload_type,
                        sequence_number: a_seq,
                        timestamp: u32::from(a_seq) * 3000,
                        ssrc: A_SSRC,
                        marker: true,
                        ..Default::default()
                    },
                    payload: Bytes::from(payload),
                },
            )?;
        }

        // Garbage on the media port once media flows: from a stranger (every kind of first
        // byte), and forged SRTP from A's own address.
        if renegotiated && step % 10 == 0 {
            for first in [0x00u8, 0x01, 22, 0x80, 0x90, 0xff] {
                let len = 20 + (step as usize % 200);
                let mut junk = noise(&mut rng, len);
                junk[0] = first;
                sfu.handle_datagram(now, stranger, &junk);
                garbage_sent += 1;
            }
            let mut forged = noise(&mut rng, 120);
            forged[0] = 0x80;
            forged[1] = 96;
            sfu.handle_datagram(now, a_addr, &forged);
        }

        // The network: deliver until everyone is quiet.
        loop {
            let mut net: VecDeque<(SocketAddr, SocketAddr, BytesMut)> = VecDeque::new();
            for (addr, pc) in [(a_addr, &mut a), (b_addr, &mut b)] {
                while let Some(t) = pc.poll_write() {
                    net.push_back((addr, t.transport.peer_addr, t.message));
                }
            }
            while let Some((to, data)) = sfu.poll_transmit() {
                net.push_back((srv, to, BytesMut::from(&data[..])));
            }
            if net.is_empty() {
                break;
            }
            for (from, to, data) in net {
                if data.windows(MARK.len()).any(|w| w == MARK) {
                    plaintext_on_the_wire += 1;
                }
                // The network loses three consecutive video packets to B, once B is well under way.
                let video_rtp = data.len() > 12 && (128..192).contains(&data[0]) && data[1] & 0x7f == 96;
                if to == b_addr && video_rtp && received.len() >= 60 && lost_to_b < 3 {
                    lost_to_b += 1;
                    continue;
                }
                if to == srv {
                    sfu.handle_datagram(now, from, &data);
                } else if to == a_addr {
                    feed(&mut a, now, from, to, data);
                } else if to == b_addr {
                    feed(&mut b, now, from, to, data);
                } else {
                    anyhow::bail!("datagram to nowhere: {to}");
                }
            }
        }

        while let Some(event) = sfu.poll_event() {
            match event {
                MediaEvent::Connected(who) => {
                    sfu_connected.insert(who);
                }
                MediaEvent::Room { event: Event::Published { who, track, kind }, .. } => {
                    assert_eq!((who, kind), (A, MediaKind::Video));
                    a_track = Some(track);
                }
                MediaEvent::Failed(who) => anyhow::bail!("session of {who:?} failed"),
                _ => {}
            }
        }
        if let Some(track) = a_track
            && !subscribed
            && sfu.is_connected(B)
        {
            sfu.subscribe(now, B, track, Want::default())?;
            subscribed = true;
        }
        // Signaling carries the SFU's offer to B and B's answer back.
        if let Some(offer) = sfu.pending_offer(now, B)? {
            b.set_remote_description(now, RTCSessionDescription::offer(offer)?)?;
            let answer = b.create_answer(None)?;
            b.set_local_description(now, answer.clone())?;
            sfu.apply_answer(now, B, answer.sdp)?;
            renegotiated = true;
        }
        assert_eq!(sfu.pending_offer(now, A)?, None, "A's streams never changed");

        for (i, pc) in [&mut a, &mut b].into_iter().enumerate() {
            while let Some(event) = pc.poll_event() {
                match event {
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(RTCPeerConnectionState::Connected) => {
                        clients_connected[i] = true;
                    }
                    RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) if i == 1 => {
                        b_track = Some((init.receiver_id, init.ssrc));
                    }
                    _ => {}
                }
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = a.poll_read() {
            if let RTCMessage::RtcpPacket(_, packets) = message
                && packets.iter().any(|p| p.as_any().downcast_ref::<PictureLossIndication>().is_some())
            {
                plis_at_a += 1;
                keyframe_wanted = true;
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = b.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = message {
                received.push((packet.header.ssrc, packet.payload.to_vec()));
                if garbage_sent > 0 {
                    received_after_garbage += 1;
                }
            }
        }
        // B asks for a key frame itself once: the room passes it on to A.
        if received.len() >= 100
            && !b_pli_sent
            && let Some((receiver, media_ssrc)) = b_track
        {
            let mut receiver = b.rtp_receiver(receiver).ok_or_else(|| anyhow::anyhow!("B's receiver"))?;
            receiver.write_rtcp(now, vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc })])?;
            b_pli_sent = true;
            plis_before_b_asked = plis_at_a;
        }
        if received_after_garbage >= 900 && b_pli_sent {
            break;
        }
    }

    let virtual_ms = (now - start).as_millis();
    println!(
        "virtual {virtual_ms} ms, wall {:?}: {} frames sent, {} received by B, {} PLIs at A, {} garbage, {} dropped",
        wall.elapsed(),
        a_seq,
        received.len(),
        plis_at_a,
        garbage_sent,
        sfu.dropped()
    );
    assert_eq!(clients_connected, [true, true], "both clients reach ICE + DTLS connected");
    assert!(sfu_connected.contains(&A) && sfu_connected.contains(&B), "both server sessions connect");
    assert!(a_track.is_some() && subscribed && renegotiated, "A's camera is published and B subscribed to it");
    assert!(plis_before_b_asked >= 1, "the room's key frame request for B's new stream reaches A as a PLI");
    assert!(plis_at_a > plis_before_b_asked, "B's own PLI reaches A through the room");
    assert_eq!(plaintext_on_the_wire, 0, "media is SRTP-encrypted on both legs");
    assert!(received.len() + 5 >= usize::from(a_seq), "B gets (nearly) every frame after its first key frame");
    assert!(received.len() >= 40, "B receives A's frames ({} so far)", received.len());
    let (_, first) = &received[0];
    assert!(vp8_keyframe_start(first), "B's stream starts at a key frame");
    for (ssrc, payload) in &received {
        assert_ne!(*ssrc, A_SSRC, "B gets the SFU's own SSRC");
        assert!(payload.windows(MARK.len()).any(|w| w == MARK), "payload {payload:?}");
        assert!(sent.contains(payload), "B gets exactly what A sent: {payload:?}");
    }
    assert!(received_after_garbage >= 40, "the call goes on while garbage arrives");
    // Nothing is missing after B's first frame, the three lost packets included.
    let frame = |p: &[u8]| -> Option<u16> {
        let at = p.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
        std::str::from_utf8(&p[at..]).ok()?.parse().ok()
    };
    let mut got: Vec<u16> = received.iter().filter_map(|(_, p)| frame(p)).collect();
    got.sort_unstable();
    got.dedup();
    assert_eq!(lost_to_b, 3, "the network lost three packets to B");
    let (first, last) = (got[0], got[got.len() - 1]);
    let missing: Vec<u16> = (first..last).filter(|s| got.binary_search(s).is_err()).collect();
    assert!(missing.is_empty(), "B never got frames {missing:?}: NACKs are answered from the room's cache");
    assert!(sfu.dropped() >= garbage_sent, "the stranger's datagrams are all dropped by the demux");
    assert!(wall.elapsed() < Duration::from_secs(20), "took {:?}", wall.elapsed());
    Ok(())
}
