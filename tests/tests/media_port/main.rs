//! Scenario (one real node, native WebRTC clients on real UDP sockets, everything on
//! 127.0.0.1): what crosses the node's media port during a two-party call, and what the port
//! does with input nobody should send it.
//!
//! - `the_media_port_carries_only_stun_dtls_and_srtp`: every datagram to and from the media port
//!   is captured on `lo` while Alice and Bob call each other with their cameras. The capture is
//!   made with `tcpdump` (capture filter `udp port <media port>`, classic pcap read back here):
//!   an AF_PACKET socket would need the `libc` crate as a new dependency of this crate, tcpdump
//!   is a 2 MB Debian package with no setup questions. `scripts/test.sh` installs it; without it
//!   the test installs it itself (the tests run as root) and is skipped, saying why, only if
//!   that fails. Each datagram is classified by its first byte (RFC 7983). Per client: STUN
//!   comes first, then the DTLS handshake (a ClientHello from the client, a ServerHello from the
//!   node, handshake records both ways), then media only as SRTP/SRTCP after the node's
//!   ChangeCipherSpec, in both directions; no DTLS application data at all (no data channel:
//!   media never rides DTLS); nothing but these classes and nobody but the two clients on the
//!   port; the marker every frame carries in its clear payload never appears in a captured
//!   byte. The capture is checked complete (tcpdump dropped nothing, it saw at least every
//!   datagram each client sent and received) and each client got at least 50 of the other's
//!   frames while it ran.
//! - `bad_input_to_the_media_port_leaves_the_call_alone`: while the call runs, strangers send
//!   random garbage of many sizes and every RFC 7983 class from several sockets (also
//!   STUN-shaped garbage naming a real ufrag); binding requests naming a real session's ufrags
//!   (`<node ufrag>:<client ufrag>`) with a wrong password, the client's password or no
//!   MESSAGE-INTEGRITY, half with USE-CANDIDATE (those dropped by the media port: a session
//!   keeps its one confirmed address), get no answer and do not move that session's media;
//!   the same request with the node's right password does get a success response (so the
//!   refusals above are about the credentials); DTLS ClientHellos and other records from unknown
//!   addresses get no answer; RTP- and RTCP-shaped packets (PT 96, 200-206, forged PLIs and BYEs
//!   naming the call's SSRCs) from unknown addresses get no answer and reach nobody (the
//!   publisher gets no key frame request from them). After each, frames keep arriving both ways
//!   (+50 within 10 s) and the node's log has no panic.
//! - `a_pli_flood_from_a_participant_is_rate_limited`: Bob sends 2,000 PLIs in 2 s for the
//!   stream of Alice's camera he receives, on his real SRTCP session. Alice gets key frame
//!   requests at most once per `veche_sfu::forward::KEYFRAME_INTERVAL` (the SFU's limit), but
//!   does get them, and the call goes on.
//! - `a_forged_role_conflict_does_not_change_the_ice_role`: a binding request claiming
//!   ICE-CONTROLLED with a wrong password must leave the node's ICE agent controlled (rtc-ice
//!   0.21.1 would switch it, see its comment; the media port drops such requests).
//!
//! The node counts the datagrams its media port drops (`MediaHandle::dropped`), but shows the
//! count nowhere a test can read it (not in `/metrics`, not in its log), so these tests assert
//! on what the port does and does not send, and on the call.

mod capture;
mod forge;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use capture::{
    CLIENT_HELLO, Capture, Class, DTLS_APPLICATION_DATA, DTLS_CHANGE_CIPHER_SPEC, DTLS_HANDSHAKE, Flow, SERVER_HELLO,
    STUN_BINDING_SUCCESS, STUN_COOKIE, classify, flow, stun_type, tcpdump_available, u16_be,
};
use forge::{binding_request, client_hello, dtls_record, noise, rtcp_like, rtp_like};
use veche_protocol::ids::GroupId;
use veche_protocol::wire::{Request, Response, ServerFrame};
use veche_tests::call::{CallClient, MARK};
use veche_tests::raw::RawDevice;
use veche_tests::signal::{media_port, signal_until};
use veche_tests::{Node, TempDir};

// ---------------------------------------------------------------------------------------------
// A two-party call, as in tests/calls.rs.

/// The ICE credentials of one client's session: the node's (from its answer) and the client's
/// (from its offer).
#[derive(Debug, Clone)]
struct Ice {
    node_ufrag: String,
    node_pwd: String,
    client_ufrag: String,
    client_pwd: String,
}

impl Ice {
    fn from(offer: &str, answer: &str) -> anyhow::Result<Ice> {
        let attr = |sdp: &str, name: &str| {
            sdp.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(str::to_string))
                .with_context(|| format!("no {name} in\n{sdp}"))
        };
        Ok(Ice {
            node_ufrag: attr(answer, "a=ice-ufrag:")?,
            node_pwd: attr(answer, "a=ice-pwd:")?,
            client_ufrag: attr(offer, "a=ice-ufrag:")?,
            client_pwd: attr(offer, "a=ice-pwd:")?,
        })
    }

    /// The USERNAME of a binding request to the node on this session.
    fn username(&self) -> String {
        format!("{}:{}", self.node_ufrag, self.client_ufrag)
    }
}

struct Call {
    // Dropped in this order: the clients, the devices, the node, then its directory.
    a: CallClient,
    b: CallClient,
    _alice: RawDevice,
    _bob: RawDevice,
    node: Node,
    _tmp: TempDir,
    port: u16,
    a_ice: Ice,
    b_ice: Ice,
}

fn wait(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while !done() {
        ensure!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Joins the chat's call with `client`'s offer; the node's answer and our offer.
async fn join(device: &mut RawDevice, client: &CallClient, group: GroupId) -> anyhow::Result<(String, String)> {
    let offer = client.offer()?;
    match device.conn.call(Request::CallJoin { group, offer: offer.clone() }).await? {
        Ok(Response::CallJoined(joined)) => {
            client.set_answer(joined.answer.clone())?;
            Ok((offer, joined.answer))
        }
        other => bail!("join: {other:?}"),
    }
}

/// A node with its media port on 127.0.0.1 (`port`, or a free one), and Alice and Bob in a
/// chat's call, each publishing a camera and receiving the other's; returns once each has 50 of
/// the other's frames.
async fn two_party_call(name: &str, port: Option<u16>) -> anyhow::Result<Call> {
    let tmp = TempDir::new(name);
    let port_arg = port.map_or("0".to_string(), |p| p.to_string());
    let node = Node::start(
        tmp.path(),
        &["--registration", "open", "--mdns", "false", "--media-port", &port_arg, "--media-address", "127.0.0.1"],
    )?;
    let mut alice = RawDevice::register(&node.url, "Alice", None).await?;
    let mut bob = RawDevice::register(&node.url, "Bob", None).await?;
    let group = GroupId([0x6d; 16]);
    alice.create_chat(group, "Media port").await?;
    let token = alice.invite(group).await?;
    bob.join(&token).await?;

    let a = CallClient::start("alice", true)?;
    let (offer, answer) = join(&mut alice, &a, group).await?;
    let a_ice = Ice::from(&offer, &answer)?;
    let media = media_port(&answer)?;
    if let Some(port) = port {
        ensure!(media == port, "the node advertises media port {media}, not {port}");
    }
    wait("Alice's media connects", Duration::from_secs(15), || a.seen().connected)?;

    let b = CallClient::start("bob", true)?;
    let (offer, answer) = join(&mut bob, &b, group).await?;
    let b_ice = Ice::from(&offer, &answer)?;
    ensure!(a_ice.node_ufrag != b_ice.node_ufrag, "each session has its own ufrag");
    // Bob is offered Alice's camera; Alice is offered Bob's once he publishes it.
    signal_until(&mut bob, &b, group, |f| match f {
        ServerFrame::Response { result: Ok(Response::Ok), .. } => Some(()),
        _ => None,
    })
    .await?;
    signal_until(&mut alice, &a, group, |f| match f {
        ServerFrame::Response { result: Ok(Response::Ok), .. } => Some(()),
        _ => None,
    })
    .await?;
    wait("Bob receives Alice's frames", Duration::from_secs(20), || b.frames_from("alice") >= 50)?;
    wait("Alice receives Bob's frames", Duration::from_secs(20), || a.frames_from("bob") >= 50)?;
    Ok(Call { a, b, _alice: alice, _bob: bob, node, _tmp: tmp, port: media, a_ice, b_ice })
}

impl Call {
    /// Frames keep arriving both ways (+50 each within 10 s), nothing crossed in the clear, and
    /// the node did not panic.
    fn goes_on(&self, after: &str) -> anyhow::Result<()> {
        let (at_a, at_b) = (self.a.frames_from("bob"), self.b.frames_from("alice"));
        let started = Instant::now();
        wait(&format!("frames keep arriving both ways after {after}"), Duration::from_secs(10), || {
            self.a.frames_from("bob") >= at_a + 50 && self.b.frames_from("alice") >= at_b + 50
        })?;
        println!("after {after}: +50 frames both ways in {:?}", started.elapsed());
        ensure!(self.a.seen().marker_in_clear == 0 && self.b.seen().marker_in_clear == 0, "a marker in the clear");
        ensure!(self.node.log().lines().all(|l| !l.contains("panicked")), "the node panicked:\n{}", self.node.log());
        Ok(())
    }

    fn media(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// The checks on one client's flow.
fn check_flow(name: &str, f: &Flow, ssrc: u32) -> anyhow::Result<()> {
    let first = |m: &BTreeMap<Class, usize>, c| m.get(&c).copied();
    let stun = [first(&f.first_up, Class::Stun), first(&f.first_down, Class::Stun)].into_iter().flatten().min();
    ensure!(stun == Some(0), "{name}: the first datagram is not STUN ({f:?})");
    ensure!(f.binding_requests_up > 0 && f.binding_successes_down > 0, "{name}: no binding request answered");
    for class in [Class::Empty, Class::Other] {
        ensure!(!f.count_up.contains_key(&class) && !f.count_down.contains_key(&class), "{name}: {class:?} datagrams");
    }
    // DTLS after a successful connectivity check, the client first (it is the DTLS client).
    let success = f.first_success_down.context("no binding success")?;
    let dtls_up = first(&f.first_up, Class::Dtls).with_context(|| format!("{name}: no DTLS from the client"))?;
    let dtls_down = first(&f.first_down, Class::Dtls).with_context(|| format!("{name}: no DTLS from the node"))?;
    ensure!(success < dtls_up && dtls_up < dtls_down, "{name}: DTLS before ICE ({success}, {dtls_up}, {dtls_down})");
    ensure!(f.first_handshake_up == Some(CLIENT_HELLO), "{name}: the client's first DTLS is not a ClientHello");
    ensure!(f.handshakes_down.contains(&SERVER_HELLO), "{name}: no ServerHello from the node");
    let handshake = |m: &BTreeMap<u8, usize>| m.get(&DTLS_HANDSHAKE).copied().unwrap_or(0);
    ensure!(handshake(&f.records_up) > 0 && handshake(&f.records_down) > 0, "{name}: handshake records one way only");
    let app = |m: &BTreeMap<u8, usize>| m.get(&DTLS_APPLICATION_DATA).copied().unwrap_or(0);
    ensure!(app(&f.records_up) == 0 && app(&f.records_down) == 0, "{name}: DTLS application data ({f:?})");
    // Media only once the node finished its side of the handshake, and both ways.
    let ccs = f.first_change_cipher_spec_down.with_context(|| format!("{name}: no ChangeCipherSpec from the node"))?;
    for media in [first(&f.first_up, Class::Media), first(&f.first_down, Class::Media)] {
        let media = media.with_context(|| format!("{name}: no SRTP/SRTCP one way ({f:?})"))?;
        ensure!(media > ccs, "{name}: SRTP/SRTCP at {media}, before the handshake ended at {ccs}");
    }
    ensure!(f.srtp_up >= 50 && f.srtp_down >= 50, "{name}: too little SRTP ({} up, {} down)", f.srtp_up, f.srtp_down);
    ensure!(f.srtcp_up > 0 && f.srtcp_down > 0, "{name}: no SRTCP one way ({} up, {} down)", f.srtcp_up, f.srtcp_down);
    ensure!(f.ssrcs_up.get(&ssrc).copied().unwrap_or(0) >= 50, "{name}: its camera's SSRC {ssrc:#x}: {:?}", f.ssrcs_up);
    Ok(())
}

/// The SSRC of a test client's camera (`tests/src/call.rs`).
fn camera_ssrc(client: &CallClient) -> u32 {
    0x5eed_0000 | u32::from(client.addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_port_carries_only_stun_dtls_and_srtp() -> anyhow::Result<()> {
    if let Err(why) = tcpdump_available() {
        println!("SKIPPED: capturing the media port needs tcpdump: {why}");
        return Ok(());
    }
    // A media port known before the node starts, so the capture sees its very first datagram.
    let port = UdpSocket::bind("0.0.0.0:0")?.local_addr()?.port();
    let dir = TempDir::new("media-port-capture");
    let capture = Capture::start(dir.path(), port)?;
    let started = Instant::now();
    let call = two_party_call("media-port-capture-node", Some(port)).await?;
    // Some more media, then what each client saw, then the capture's end.
    call.goes_on("connecting")?;
    let (a, b) = (call.a.seen(), call.b.seen());
    let (a_frames, b_frames) = (call.a.frames_from("bob"), call.b.frames_from("alice"));
    let (captured, dropped) = capture.stop()?;
    println!("captured {} datagrams in {:?}", captured.len(), started.elapsed());

    ensure!(dropped == 0, "the kernel dropped {dropped} packets before tcpdump read them");
    ensure!(a_frames >= 50 && b_frames >= 50, "frames: Alice got {a_frames} of Bob's, Bob {b_frames} of Alice's");
    let media = call.media();
    let (alice, bob) = (call.a.addr, call.b.addr);
    let mut classes: BTreeMap<(&str, Class), usize> = BTreeMap::new();
    for (i, d) in captured.iter().enumerate() {
        ensure!(
            !d.frame.windows(MARK.len()).any(|w| w == MARK),
            "captured datagram {i} ({} -> {}) carries the marker in the clear",
            d.from,
            d.to
        );
        let class = classify(&d.payload);
        let who = match (d.from, d.to) {
            (f, t) if f == media && t == media && class == Class::Empty => "wake-up",
            (f, t) if (f == alice && t == media) || (f == media && t == alice) => "alice",
            (f, t) if (f == bob && t == media) || (f == media && t == bob) => "bob",
            (f, t) => bail!("datagram {i} ({class:?}) between {f} and {t}: neither client on the media port {media}"),
        };
        *classes.entry((who, class)).or_default() += 1;
    }
    println!("datagrams by client and class: {classes:?}");
    for (name, client, seen, ssrc) in
        [("alice", alice, &a, camera_ssrc(&call.a)), ("bob", bob, &b, camera_ssrc(&call.b))]
    {
        let f = flow(&captured, media, client)?;
        println!(
            "{name}: {} datagrams; up {:?}, down {:?}; DTLS records up {:?}, down {:?}; SRTP {} up / {} down, SRTCP {} up / {} down; \
             client sent {} and received {}",
            f.len,
            f.count_up,
            f.count_down,
            f.records_up,
            f.records_down,
            f.srtp_up,
            f.srtp_down,
            f.srtcp_up,
            f.srtcp_down,
            seen.datagrams_sent,
            seen.datagrams
        );
        check_flow(name, &f, ssrc)?;
        // The capture missed nothing the client saw (what it sent and received before the
        // capture stopped all crossed lo before).
        let up: usize = f.count_up.values().sum();
        let down: usize = f.count_down.values().sum();
        ensure!(up >= seen.datagrams_sent, "{name}: sent {} datagrams, {up} captured", seen.datagrams_sent);
        ensure!(down >= seen.datagrams, "{name}: received {} datagrams, {down} captured", seen.datagrams);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bad input.

fn strangers(n: usize) -> anyhow::Result<Vec<UdpSocket>> {
    (0..n).map(|_| Ok(UdpSocket::bind("127.0.0.1:0")?)).collect()
}

/// Nothing reaches any of `sockets` within `within` (nothing the node sends them, be it an
/// answer or someone's media).
fn no_answer(what: &str, sockets: &[UdpSocket], within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 65536];
    for s in sockets {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        s.set_read_timeout(Some(left))?;
        match s.recv_from(&mut buf) {
            Ok((len, from)) => bail!(
                "{what}: {} got {len} bytes ({:?}) from {from}: {:02x?}",
                s.local_addr()?,
                classify(&buf[..len]),
                &buf[..len.min(32)]
            ),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => bail!("{what}: {e}"),
        }
    }
    Ok(())
}

/// Sends `datagrams` from `sockets` in turn, paced so the node's receive buffer never fills
/// (losses there would be the kernel's, not the node's).
fn send_all(sockets: &[UdpSocket], to: SocketAddr, datagrams: &[Vec<u8>]) -> anyhow::Result<usize> {
    let mut bytes = 0;
    for (i, d) in datagrams.iter().enumerate() {
        sockets[i % sockets.len()].send_to(d, to)?;
        bytes += d.len();
        if i % 16 == 15 || bytes > 256 * 1024 {
            std::thread::sleep(Duration::from_millis(2));
            bytes = 0;
        }
    }
    Ok(datagrams.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_to_the_media_port_leaves_the_call_alone() -> anyhow::Result<()> {
    let started = Instant::now();
    let call = two_party_call("media-port-bad-input", None).await?;
    let media = call.media();
    let mut x: u32 = 0x2545_f491;

    // 1. Garbage: every size from empty to a 64 KB datagram, first bytes in every RFC 7983
    //    class and outside them, from eight sockets; also STUN-shaped garbage that names a real
    //    session's ufrag (it reaches that session's ICE agent, which must cope).
    let sizes = [
        0usize, 1, 2, 3, 4, 5, 8, 11, 12, 13, 19, 20, 21, 24, 28, 40, 64, 100, 200, 576, 1000, 1200, 1400, 1472, 1500,
        2000, 2047, 2048, 2049, 4096, 9000, 16_000, 65_000,
    ];
    let firsts: [Option<u8>; 12] = [
        None,
        Some(0x00),
        Some(0x01),
        Some(0x03),
        Some(0x10),
        Some(0x16),
        Some(0x17),
        Some(0x40),
        Some(0x80),
        Some(0x81),
        Some(0xbf),
        Some(0xff),
    ];
    let mut garbage = Vec::new();
    for &len in &sizes {
        for first in firsts {
            let mut d = noise(&mut x, len);
            if let (Some(b), Some(slot)) = (first, d.first_mut()) {
                *slot = b;
            }
            garbage.push(d);
        }
    }
    for ice in [&call.a_ice, &call.b_ice] {
        for i in 0..150usize {
            let mut attrs = Vec::new();
            let username =
                format!("{}:{}", ice.node_ufrag, String::from_utf8_lossy(&noise(&mut x, i % 40)).escape_default());
            let username = username.as_bytes();
            attrs.extend(0x0006u16.to_be_bytes());
            attrs.extend((username.len() as u16).to_be_bytes());
            attrs.extend(username);
            attrs.resize(attrs.len().next_multiple_of(4), 0);
            // Random attributes: MESSAGE-INTEGRITY, FINGERPRINT, PRIORITY, USE-CANDIDATE,
            // XOR-MAPPED-ADDRESS, ERROR-CODE, unknown ones; lengths right, wrong and absurd.
            for _ in 0..(i % 6) {
                let typ = [0x0008u16, 0x8028, 0x0024, 0x0025, 0x0020, 0x0009, 0x7777, 0xc001][x as usize % 8];
                let len = [0u16, 4, 8, 20, 3, 0xffff][(x >> 8) as usize % 6];
                attrs.extend(typ.to_be_bytes());
                attrs.extend(len.to_be_bytes());
                attrs.extend(noise(&mut x, usize::from(len.min(24)).next_multiple_of(4)));
            }
            let mut m = vec![0x00, 0x01];
            let declared = if i % 7 == 0 { 0xfff0 } else { attrs.len() as u16 };
            m.extend(declared.to_be_bytes());
            m.extend(STUN_COOKIE);
            m.extend(noise(&mut x, 12));
            m.extend(attrs);
            garbage.push(m);
        }
    }
    let sockets = strangers(8)?;
    let sent = send_all(&sockets, media, &garbage)?;
    no_answer("garbage", &sockets, Duration::from_secs(1))?;
    call.goes_on(&format!("{sent} garbage datagrams from 8 sockets"))?;

    // 2. Binding requests naming real sessions (`<node ufrag>:<client ufrag>`) without the
    //    node's password: a wrong one, the client's own, none. Half nominating (USE-CANDIDATE)
    //    with a high priority: accepted, they would move the session to the stranger; the
    //    media port drops those before any agent sees them (a session keeps its one confirmed
    //    address). The other half reach the session's agent and fail its credential check.
    //    Then some that claim ICE-CONTROLLED (a role conflict with the node, which is ICE-lite
    //    and so always controlled).
    let forgers = strangers(6)?;
    let mut forged = Vec::new();
    for ice in [&call.a_ice, &call.b_ice] {
        for i in 0..30u64 {
            let wrong = format!("{}x", ice.node_pwd);
            let password = match i % 3 {
                0 => Some(wrong.as_str()),
                1 => Some(ice.client_pwd.as_str()),
                _ => None,
            };
            forged.push(binding_request(&ice.username(), password, i % 2 == 0, false, u64::MAX - i)?);
        }
    }
    for ice in [&call.a_ice, &call.b_ice] {
        for i in 0..6u64 {
            forged.push(binding_request(&ice.username(), Some("wrong"), false, true, i)?);
        }
    }
    let discards_before = call.node.log().matches("discard message").count();
    send_all(&forgers, media, &forged)?;
    no_answer("binding requests without the node's password", &forgers, Duration::from_secs(1))?;
    call.goes_on("binding requests with wrong credentials")?;
    // Nothing came to the forgers meanwhile either: the sessions' media did not move to them.
    no_answer("media after the forged binding requests", &forgers, Duration::from_millis(1))?;
    // Each that does not nominate reached its session's ICE agent (routed by its ufrag) and was
    // refused there: the agent (rtc-ice) logs "discard message from (..), integrity check
    // failed" or "..., no MESSAGE-INTEGRITY" for each; the 30 nominating ones and the 12
    // claiming ICE-CONTROLLED never reach an agent (the media port drops them: counted in
    // step 6).
    let discards = call.node.log().matches("discard message").count() - discards_before;
    let to_agents = forged.len() - 12 - 30;
    println!("the node's ICE agents logged {discards} discarded messages for {to_agents} forged requests");
    ensure!(discards >= to_agents, "{to_agents} forged binding requests, {discards} refused by an ICE agent");

    // 3. DTLS from unknown addresses (the forgers' too: their checks failed): ClientHellos, an
    //    alert, a ChangeCipherSpec, application data, a handshake fragment longer than it says.
    let mut dtls = Vec::new();
    for i in 0..40u64 {
        dtls.push(client_hello(&mut x));
        dtls.push(dtls_record(21, 0, i, &[2, 0])); // fatal close_notify
        dtls.push(dtls_record(21, 1, i, &noise(&mut x, 26)));
        dtls.push(dtls_record(DTLS_CHANGE_CIPHER_SPEC, 0, i, &[1]));
        dtls.push(dtls_record(DTLS_APPLICATION_DATA, 1, i, &noise(&mut x, 100)));
        let mut fragment = client_hello(&mut x);
        fragment[14..17].copy_from_slice(&[0xff, 0xff, 0xff]);
        dtls.push(fragment);
    }
    let mut dtls_senders = strangers(4)?;
    dtls_senders.extend(forgers);
    send_all(&dtls_senders, media, &dtls)?;
    no_answer("DTLS from unknown addresses", &dtls_senders, Duration::from_secs(1))?;
    call.goes_on(&format!("{} DTLS records from unknown addresses", dtls.len()))?;

    // 4. RTP and RTCP from unknown addresses, naming the call's SSRCs: Alice's camera, and the
    //    SFU's streams to Bob and Alice; forged PLIs (PSFB, PT 206) and BYEs among them.
    let alice_cam = camera_ssrc(&call.a);
    let bob_cam = camera_ssrc(&call.b);
    let to_bob = *call.b.seen().receiving_ssrcs.first().context("Bob receives no stream")?;
    let to_alice = *call.a.seen().receiving_ssrcs.first().context("Alice receives no stream")?;
    let mut rtp = Vec::new();
    for i in 0..60u16 {
        rtp.push(rtp_like(&mut x, 96, i.wrapping_mul(997), alice_cam, 20 + usize::from(i) * 7));
        rtp.push(rtp_like(&mut x, 0x80 | 96, i, to_bob, 100));
        rtp.push(rtp_like(&mut x, 111, i, bob_cam, 60));
        for pt in 200..=206u8 {
            let count = if pt == 206 { 1 } else { (i % 3) as u8 };
            rtp.push(rtcp_like(&mut x, pt, count, &[bob_cam, to_bob]));
            rtp.push(rtcp_like(&mut x, pt, count, &[alice_cam, to_alice]));
        }
        // A PLI exactly as a subscriber would send it, but in the clear.
        let mut pli = vec![0x81, 206, 0x00, 0x02];
        pli.extend(bob_cam.to_be_bytes());
        pli.extend(to_bob.to_be_bytes());
        rtp.push(pli);
        let mut bye = vec![0x81, 203, 0x00, 0x01];
        bye.extend(alice_cam.to_be_bytes());
        rtp.push(bye);
    }
    let rtp_senders = strangers(4)?;
    let plis_before = call.a.seen().plis;
    send_all(&rtp_senders, media, &rtp)?;
    no_answer("RTP/RTCP from unknown addresses", &rtp_senders, Duration::from_secs(1))?;
    call.goes_on(&format!("{} RTP/RTCP packets from unknown addresses", rtp.len()))?;
    let plis = call.a.seen().plis - plis_before;
    ensure!(plis == 0, "Alice got {plis} key frame requests after strangers' forged PLIs");

    // 5. The same binding request with the node's password is answered (so what was refused
    //    above was refused for its credentials). Not nominating: the session stays where it is.
    let checker = strangers(1)?;
    let request = binding_request(&call.a_ice.username(), Some(&call.a_ice.node_pwd), false, false, 7)?;
    checker[0].send_to(&request, media)?;
    checker[0].set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 1500];
    let (len, from) =
        checker[0].recv_from(&mut buf).context("no answer to a binding request with the right password")?;
    ensure!(from == media, "answered from {from}");
    ensure!(
        stun_type(&buf[..len]) == Some(STUN_BINDING_SUCCESS),
        "not a binding success: {:02x?}",
        &buf[..len.min(20)]
    );
    ensure!(buf[8..20] == request[8..20], "a success for another transaction");
    call.goes_on("a correct binding request from another address")?;

    // 6. /metrics counts what the media port dropped, by reason: at least the 12 forged
    //    ICE-CONTROLLED requests, and the strangers' DTLS and RTP/RTCP as unknown addresses.
    let metrics = call.node.http_get("/metrics")?;
    let gauge = |name: &str| -> anyhow::Result<u64> {
        let line = metrics
            .lines()
            .find(|l| l.split(' ').next() == Some(name))
            .with_context(|| format!("no {name} in /metrics:\n{metrics}"))?;
        Ok(line.rsplit(' ').next().unwrap_or("").parse()?)
    };
    let controlled = gauge("veche_media_dropped_datagrams{reason=\"claims_controlled\"}")?;
    let unknown_address = gauge("veche_media_dropped_datagrams{reason=\"unknown_address\"}")?;
    let malformed = gauge("veche_media_dropped_datagrams{reason=\"malformed\"}")?;
    println!(
        "metrics: {controlled} claiming ICE-CONTROLLED, {unknown_address} from unknown addresses, {malformed} malformed"
    );
    ensure!(controlled >= 12, "{controlled} forged ICE-CONTROLLED requests counted");
    let other_address = gauge("veche_media_dropped_datagrams{reason=\"other_address\"}")?;
    println!("metrics: {other_address} nominations from an address other than the session's");
    ensure!(other_address >= 30, "{other_address} forged nominations from other addresses counted");
    ensure!(
        unknown_address >= (dtls.len() + rtp.len()) as u64,
        "{unknown_address} counted from unknown addresses, {} sent",
        dtls.len() + rtp.len()
    );
    ensure!(malformed > 0, "the garbage counted as malformed");
    ensure!(gauge("veche_media_sessions")? == 2, "Alice's and Bob's sessions are open");
    let (sent, calls) = (gauge("veche_media_datagrams_sent")?, gauge("veche_media_send_calls")?);
    println!("metrics: {sent} datagrams sent in {calls} system calls");
    ensure!(sent > 0 && calls > 0 && calls <= sent, "{sent} datagrams in {calls} calls");
    // Both sessions' congestion controllers estimate from the clients' transport-wide feedback.
    let (estimated, lowest) = (gauge("veche_media_sessions_estimated")?, gauge("veche_media_lowest_estimate_bps")?);
    println!("metrics: {estimated} sessions with a bandwidth estimate, the lowest {lowest} bit/s");
    ensure!(estimated == 2, "{estimated} of 2 sessions have a bandwidth estimate");
    ensure!(lowest >= 100_000, "the lowest estimate {lowest} bit/s is under the controller's floor");
    println!("bad input test: {:?}", started.elapsed());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// An RTCP flood from a participant.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pli_flood_from_a_participant_is_rate_limited() -> anyhow::Result<()> {
    const PLIS: u64 = 2_000;
    const OVER: Duration = Duration::from_secs(2);
    let interval = veche_sfu::forward::KEYFRAME_INTERVAL;
    let call = two_party_call("media-port-pli-flood", None).await?;
    let ssrcs = call.b.seen().receiving_ssrcs;
    ensure!(ssrcs.len() == 1, "Bob should receive exactly Alice's camera: {ssrcs:x?}");
    let alice_camera_at_bob = ssrcs[0];

    let t0 = Instant::now();
    let (plis_before, sent_before) = (call.a.seen().plis, call.b.seen().datagrams_sent);
    let frames_before = call.b.frames_from("alice");
    let report = call.b.send_plis(alice_camera_at_bob, PLIS, OVER)?;
    let frames_during = call.b.frames_from("alice") - frames_before;
    let datagrams = call.b.seen().datagrams_sent - sent_before;
    // What the flood caused has arrived after a little more than one interval.
    std::thread::sleep(interval * 2);
    let t1 = Instant::now();
    let reached = call.a.seen().plis - plis_before;
    let flood = report.last - report.first;

    // Requests the SFU lets through are at least `interval` apart on its clock; all those that
    // reached Alice between t0 and t1 left it between t0 (less a delivery time, under one
    // interval) and t1.
    let window = (t1 - t0).as_secs_f64();
    let most = (window / interval.as_secs_f64()).floor() as usize + 2;
    let least = ((flood.as_secs_f64() / interval.as_secs_f64()).floor() as usize).saturating_sub(1).max(1);
    println!(
        "Bob sent {} PLIs in {flood:?} ({datagrams} datagrams; {frames_during} of Alice's frames arrived meanwhile); \
         {reached} key frame requests reached Alice in {window:.2} s (rate limit {interval:?}: between {least} and {most})",
        report.sent
    );
    ensure!(report.sent == PLIS, "sent {} PLIs", report.sent);
    ensure!(datagrams >= PLIS as usize, "the PLIs went out in {datagrams} datagrams");
    ensure!(reached <= most, "{reached} key frame requests reached Alice: not rate-limited to one per {interval:?}");
    ensure!(reached >= least, "only {reached} key frame requests reached Alice during a {flood:?} flood");
    call.goes_on("a flood of 2,000 PLIs")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A known bug: ICE role conflicts are handled before the request is authenticated.

/// The STUN answers that reach `socket` after it sends `request` to `to`: message types, with
/// the ERROR-CODE (class * 100 + number) of error responses.
fn stun_answers(socket: &UdpSocket, to: SocketAddr, request: &[u8]) -> anyhow::Result<Vec<(u16, Option<u16>)>> {
    socket.send_to(request, to)?;
    let mut answers = Vec::new();
    let mut buf = [0u8; 1500];
    // The first within 5 s, then whatever else comes within half a second.
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    while let Ok((len, from)) = socket.recv_from(&mut buf) {
        socket.set_read_timeout(Some(Duration::from_millis(500)))?;
        let m = &buf[..len];
        ensure!(from == to, "an answer from {from}");
        let typ = stun_type(m).with_context(|| format!("not STUN: {:02x?}", &m[..len.min(20)]))?;
        if m[8..20] != request[8..20] {
            continue; // not about this request
        }
        let mut code = None;
        let mut at = 20;
        while at + 4 <= m.len() {
            let (attr, alen) = (u16_be(m, at), usize::from(u16_be(m, at + 2)));
            if attr == 0x0009 && alen >= 4 && at + 8 <= m.len() {
                code = Some(u16::from(m[at + 6] & 0x07) * 100 + u16::from(m[at + 7]));
            }
            at += 4 + alen.next_multiple_of(4);
        }
        answers.push((typ, code));
    }
    Ok(answers)
}

/// The node is ICE-lite, so always the controlled agent. A binding request that claims
/// ICE-CONTROLLED (a role conflict) but fails the integrity check must change nothing. It does:
/// rtc-ice 0.21.1 (`Agent::handle_inbound`, src/agent/mod.rs, the "RFC 8445 Section 7.3.1.1"
/// block) repairs role conflicts before it checks USERNAME and MESSAGE-INTEGRITY, so anyone who
/// saw a session's ufrags (they cross the network in the clear in every check) switches that
/// session's agent to controlling with one forged datagram, and from then on the node answers
/// the real client's checks with 487 Role Conflict. The media port therefore drops every STUN
/// message claiming ICE-CONTROLLED before any agent sees it (`sfu/src/demux.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_role_conflict_does_not_change_the_ice_role() -> anyhow::Result<()> {
    let call = two_party_call("media-port-role-conflict", None).await?;
    let (media, ice) = (call.media(), &call.a_ice);
    let checker = UdpSocket::bind("127.0.0.1:0")?;
    // An authenticated check (the node's password, ICE-CONTROLLING): a success, and the checker
    // is now one of the session's remote candidates (errors would be sent to it).
    let check = || binding_request(&ice.username(), Some(&ice.node_pwd), false, false, 0);
    let answers = stun_answers(&checker, media, &check()?)?;
    ensure!(answers == [(STUN_BINDING_SUCCESS, None)], "answers to an authenticated check: {answers:x?}");
    // The forgery: ICE-CONTROLLED with the lowest tie-breaker, a wrong password.
    let forger = strangers(1)?;
    forger[0].send_to(&binding_request(&ice.username(), Some("wrong"), false, true, 0)?, media)?;
    no_answer("a forged role conflict", &forger, Duration::from_secs(1))?;
    // The same authenticated check again: the node must still be the controlled agent.
    let answers = stun_answers(&checker, media, &check()?)?;
    let switched = call.node.log().contains("Switching from controlled to controlling");
    let shown: Vec<String> = answers
        .iter()
        .map(|(typ, code)| format!("{typ:#06x}{}", code.map(|c| format!(" (error {c})")).unwrap_or_default()))
        .collect();
    println!("answers after the forgery: {shown:?}; the node's log says its agent switched roles: {switched}");
    ensure!(
        answers == [(STUN_BINDING_SUCCESS, None)],
        "after one unauthenticated request the node answers an authenticated check with {shown:?} (487: Role Conflict)"
    );
    call.goes_on("a forged role conflict")?;
    Ok(())
}
