//! `veche-sfu-bench`: the media loop's forwarding cost, in process (a benchmark, not a test).
//!
//! One publisher's VP8 packets (1,100-byte payloads, SRTP from a real webrtc-rs client) are fanned
//! out by `MediaSessions` to 1, 10, 100 and 500 subscribers, each a real webrtc-rs peer
//! connection that went through ICE and DTLS with the SFU on an in-memory network. Timed: only the
//! SFU's own work per incoming packet (`handle_datagram`: SRTP unprotect, the room's forwarding
//! decision, and SRTP protect for every subscriber; then `poll_transmit`, which hands out the
//! datagrams), per forwarded packet. The subscribers do not decrypt what they get (their cost is
//! the browsers'). Separately: what handing one datagram to the kernel costs here, which the
//! media loop adds per datagram: one `send_to` each, and the loop's batches (`sendmmsg` of up to
//! 64 datagrams to 100 destinations, as a fan-out sends them).
//!
//! Usage: veche-sfu-bench [--subscribers 1,10,100,500] [--packets 2000]

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use veche_protocol::ids::AccountId;
use veche_sfu::forward::Want;
use veche_sfu::media::{MediaEvent, MediaSessions, client_peer_connection, vp8_codec};
use veche_sfu::room::{Event, Mode, Role};
use veche_sfu::{ConferenceId, ParticipantId, TrackId};

const ROOM: ConferenceId = ConferenceId(1);
const SSRC: u32 = 4242;
const PAYLOAD: usize = 1100;

struct Client {
    pc: RTCPeerConnection,
    addr: SocketAddr,
    connected: bool,
}

fn client(addr: SocketAddr, now: Instant) -> anyhow::Result<RTCPeerConnection> {
    Ok(client_peer_connection(addr, now)?)
}

fn feed(pc: &mut RTCPeerConnection, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) {
    let _ = pc.handle_read(TaggedBytesMut {
        now,
        transport: TransportContext {
            local_addr: to,
            peer_addr: from,
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        },
        message: BytesMut::from(data),
    });
}

/// Passes datagrams between the clients and the SFU until nobody has anything to send.
fn pump(sfu: &mut MediaSessions, srv: SocketAddr, clients: &mut [Client], now: Instant) {
    loop {
        let mut net: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)> = VecDeque::new();
        for c in clients.iter_mut() {
            while let Some(t) = c.pc.poll_write() {
                net.push_back((c.addr, t.transport.peer_addr, t.message.to_vec()));
            }
        }
        while let Some((to, data)) = sfu.poll_transmit() {
            net.push_back((srv, to, data.to_vec()));
        }
        if net.is_empty() {
            return;
        }
        for (from, to, data) in net {
            if to == srv {
                sfu.handle_datagram(now, from, &data);
            } else if let Some(c) = clients.iter_mut().find(|c| c.addr == to) {
                feed(&mut c.pc, now, from, to, &data);
            }
        }
    }
}

fn tick(sfu: &mut MediaSessions, clients: &mut [Client], now: Instant) -> anyhow::Result<()> {
    for c in clients.iter_mut() {
        if c.pc.poll_timeout().is_some_and(|t| t <= now) {
            c.pc.handle_timeout(now)?;
        }
        while let Some(event) = c.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(RTCPeerConnectionState::Connected) = event {
                c.connected = true;
            }
        }
        while c.pc.poll_read().is_some() {}
    }
    if sfu.next_timeout().is_some_and(|t| t <= now) {
        sfu.handle_timeout(now);
    }
    Ok(())
}

/// A VP8 frame's packet from the publisher (a key frame when `key`).
fn write_frame(
    pc: &mut RTCPeerConnection,
    sender: RTCRtpSenderId,
    seq: u16,
    key: bool,
    now: Instant,
) -> anyhow::Result<()> {
    let mut payload = if key { vec![0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a] } else { vec![0x10, 0x01, 0x00] };
    payload.resize(PAYLOAD, 0x5a);
    let mut s = pc.rtp_sender(sender).context("publisher's sender")?;
    let payload_type = s.get_parameters().rtp_parameters.codecs[0].payload_type;
    s.write_rtp(
        now,
        rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type,
                sequence_number: seq,
                timestamp: u32::from(seq) * 3000,
                ssrc: SSRC,
                marker: true,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        },
    )?;
    Ok(())
}

struct Result {
    subscribers: usize,
    packets: u64,
    forwarded: u64,
    setup: Duration,
    handle: Duration,
    drain: Duration,
}

fn run(subscribers: usize, packets: u64) -> anyhow::Result<Result> {
    let setup_started = Instant::now();
    let start = Instant::now();
    let mut now = start;
    let srv: SocketAddr = "10.0.0.1:7802".parse()?;
    let mut sfu = MediaSessions::new(srv, start);
    sfu.open(ROOM, Mode::Meeting);
    let mut clients: Vec<Client> = Vec::new();
    let pub_addr: SocketAddr = "10.0.1.1:5000".parse()?;
    let mut publisher = client(pub_addr, now)?;
    let sender = publisher.add_track(MediaStreamTrack::new(
        "cam".into(),
        "cam".into(),
        "cam".into(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(SSRC), ..Default::default() },
            codec: vp8_codec(),
            ..Default::default()
        }],
    ))?;
    clients.push(Client { pc: publisher, addr: pub_addr, connected: false });
    for i in 0..subscribers {
        let addr = SocketAddr::new(format!("10.1.{}.{}", i / 250, i % 250 + 1).parse()?, 6000);
        let mut pc = client(addr, now)?;
        pc.add_transceiver_from_kind(
            RtpCodecKind::Audio,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )?;
        clients.push(Client { pc, addr, connected: false });
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let offer = c.pc.create_offer(None)?;
        c.pc.set_local_description(now, offer.clone())?;
        let answer = sfu.add_peer(
            ROOM,
            ParticipantId(i as u32 + 1),
            AccountId([i as u8; 32]),
            Role::Participant,
            offer.sdp,
            now,
        )?;
        c.pc.set_remote_description(now, RTCSessionDescription::answer(answer)?)?;
    }
    // Connect everyone (ICE + DTLS), then publish.
    let mut track: Option<TrackId> = None;
    let mut seq: u16 = 0;
    for _ in 0..2000 {
        now += Duration::from_millis(5);
        tick(&mut sfu, &mut clients, now)?;
        pump(&mut sfu, srv, &mut clients, now);
        if clients.iter().all(|c| c.connected) && track.is_none() {
            seq += 1;
            write_frame(&mut clients[0].pc, sender, seq, true, now)?;
            pump(&mut sfu, srv, &mut clients, now);
        }
        while let Some(event) = sfu.poll_event() {
            if let MediaEvent::Room { event: Event::Published { track: t, .. }, .. } = event {
                track = Some(t);
            }
        }
        if track.is_some() {
            break;
        }
    }
    let track = track.context("the publisher's track was never published")?;
    // Subscribe everyone through a server-side offer each.
    for (i, c) in clients.iter_mut().enumerate().skip(1) {
        let who = ParticipantId(i as u32 + 1);
        sfu.subscribe(now, who, track, Want::default())?;
        let offer = sfu.pending_offer(now, who)?.context("no offer")?;
        c.pc.set_remote_description(now, RTCSessionDescription::offer(offer)?)?;
        let answer = c.pc.create_answer(None)?;
        c.pc.set_local_description(now, answer.clone())?;
        sfu.apply_answer(now, who, answer.sdp)?;
    }
    pump(&mut sfu, srv, &mut clients, now);
    while sfu.poll_event().is_some() {}
    // The publisher's packets, SRTP-protected, made in advance (a key frame first).
    let mut datagrams = Vec::with_capacity(packets as usize);
    for n in 0..packets {
        seq = seq.wrapping_add(1);
        write_frame(&mut clients[0].pc, sender, seq, n == 0, now)?;
        while let Some(t) = clients[0].pc.poll_write() {
            datagrams.push(t.message.to_vec());
        }
    }
    let setup = setup_started.elapsed();

    let (mut handle, mut drain, mut forwarded) = (Duration::ZERO, Duration::ZERO, 0u64);
    // What the SFU sends besides media (ICE consent checks, RTCP), delivered between timed turns
    // so the subscribers answer and their sessions stay up, as in a call.
    let mut other: Vec<(SocketAddr, bytes::Bytes)> = Vec::new();
    for (n, d) in datagrams.iter().enumerate() {
        // 50 packets a second of virtual time, so timers (RTCP reports, consent) run as in a call.
        now += Duration::from_millis(20);
        let t0 = Instant::now();
        if sfu.next_timeout().is_some_and(|t| t <= now) {
            sfu.handle_timeout(now);
        }
        sfu.handle_datagram(now, pub_addr, d);
        let t1 = Instant::now();
        while let Some((to, out)) = sfu.poll_transmit() {
            if out.len() >= PAYLOAD {
                forwarded += 1;
            } else {
                other.push((to, out));
            }
        }
        let t2 = Instant::now();
        handle += t1 - t0;
        drain += t2 - t1;
        if n % 25 == 24 {
            for (to, data) in other.drain(..) {
                if let Some(c) = clients.iter_mut().find(|c| c.addr == to) {
                    feed(&mut c.pc, now, srv, to, &data);
                }
            }
            tick(&mut sfu, &mut clients, now)?;
            // Everyone's answers and RTCP (the publisher's media was made in advance).
            pump(&mut sfu, srv, &mut clients, now);
        }
        if std::env::var("SFU_BENCH_DEBUG").is_ok() && n % 100 == 99 {
            eprintln!("after {} in: {forwarded} forwarded, dropped {}", n + 1, sfu.dropped());
        }
    }
    while sfu.poll_event().is_some() {}
    Ok(Result { subscribers, packets: datagrams.len() as u64, forwarded, setup, handle, drain })
}

/// What one `send_to` of a 1,200-byte datagram to loopback costs here.
fn send_to_cost() -> anyhow::Result<f64> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let to = sink.local_addr()?;
    let data = vec![0u8; 1200];
    let n = 50_000;
    let t = Instant::now();
    for i in 0..n {
        socket.send_to(&data, to)?;
        if i % 100 == 99 {
            // Keep the receive buffer from overflowing (drops would make sends look cheaper).
            let mut buf = [0u8; 1500];
            sink.set_nonblocking(true)?;
            while sink.recv_from(&mut buf).is_ok() {}
        }
    }
    Ok(t.elapsed().as_nanos() as f64 / n as f64)
}

/// What one datagram costs in the media loop's batches (`veche_sfu::batch::send_all`): 1,200-byte
/// datagrams to 100 loopback destinations in turn, 64 per batch.
fn batch_cost() -> anyhow::Result<(f64, f64)> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let sinks: Vec<UdpSocket> = (0..100).map(|_| UdpSocket::bind("127.0.0.1:0")).collect::<std::io::Result<_>>()?;
    for s in &sinks {
        s.set_nonblocking(true)?;
    }
    let batch: Vec<(SocketAddr, Vec<u8>)> = (0..veche_sfu::batch::BATCH)
        .map(|i| Ok((sinks[i % 100].local_addr()?, vec![0u8; 1200])))
        .collect::<anyhow::Result<_>>()?;
    let (mut spent, mut datagrams, mut calls) = (Duration::ZERO, 0usize, 0usize);
    let mut buf = [0u8; 1500];
    for _ in 0..800 {
        let t = Instant::now();
        let sent = veche_sfu::batch::send_all(&socket, &batch);
        spent += t.elapsed();
        anyhow::ensure!(sent.failed == 0, "the kernel refused {} datagrams", sent.failed);
        datagrams += sent.datagrams;
        calls += sent.calls;
        // Untimed: keep the receive buffers from overflowing.
        for s in &sinks {
            while s.recv_from(&mut buf).is_ok() {}
        }
    }
    Ok((spent.as_nanos() as f64 / datagrams as f64, datagrams as f64 / calls as f64))
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut sizes = vec![1usize, 10, 100, 500];
    let mut packets = 2000u64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--subscribers" => sizes = value.split(',').map(str::parse).collect::<std::result::Result<_, _>>()?,
            "--packets" => packets = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    println!("# veche-sfu-bench: one VP8 publisher ({PAYLOAD}-byte payloads) fanned out in process\n");
    println!(
        "| subscribers | packets in | packets forwarded | ns per forwarded packet (all SFU work) | of which handle_datagram | of which poll_transmit | setup s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for n in sizes {
        let r = run(n, packets)?;
        anyhow::ensure!(
            r.forwarded + 5 * r.subscribers as u64 >= r.packets * r.subscribers as u64,
            "only {} of {} packets forwarded",
            r.forwarded,
            r.packets * r.subscribers as u64
        );
        let per = |d: Duration| d.as_nanos() as f64 / r.forwarded.max(1) as f64;
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.1} |",
            r.subscribers,
            r.packets,
            r.forwarded,
            per(r.handle + r.drain),
            per(r.handle),
            per(r.drain),
            r.setup.as_secs_f64()
        );
    }
    println!("\nsend_to of one 1,200-byte datagram to loopback: {:.0} ns", send_to_cost()?);
    let (per, batched) = batch_cost()?;
    println!(
        "the media loop's batches (sendmmsg, 100 destinations): {per:.0} ns per datagram, {batched:.0} datagrams per system call (the loop adds this per datagram)"
    );
    Ok(())
}
