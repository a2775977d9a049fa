//! How the media sessions' peer connections are configured: the codecs the SFU forwards, the
//! interceptor chain (with [`DeliverRtcp`], which hands RTCP, the congestion estimate and inbound
//! RTP to the sessions), host candidates, and the clients' side for tests and benchmarks.

use super::*;
/// An interceptor that hands inbound RTCP to the application: without it the core's chain drops
/// RTCP after its own interceptors have seen it, and PLIs from subscribers would never reach us.
/// It also passes on the congestion controller's estimate, which rides inbound feedback as an
/// attribute ([`Attribute::TargetBitrateChanged`]), into [`Estimate`].
///
/// With `media` (the SFU's own sessions), it also takes every inbound RTP packet out of the chain
/// (after the NACK generator, TWCC receiver and receiver reports have seen it) into that queue,
/// instead of leaving it to the core's endpoint. The endpoint routes RTP by the SSRCs of its
/// receivers' tracks, and every `set_remote_description` (each renegotiation: someone joined or
/// left) rebuilds those tracks from the SDP. A simulcast layer's SSRC is not in the SDP (it is
/// learned from the first packets' `mid`/`rid` header extensions, which browsers stop sending once
/// a receiver report acknowledges the stream), so after the first renegotiation the endpoint
/// dropped every packet of the publisher's camera: whoever joined a call after it started never
/// got its video. The sessions route by the SSRCs they learned when each stream opened.
#[derive(Default)]
pub struct DeliverRtcp {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    estimate: Estimate,
    media: Option<InboundRtp>,
}

/// Inbound RTP packets of one peer connection, taken from its interceptor chain by
/// [`DeliverRtcp`] and drained by the sessions after each datagram.
#[derive(Debug, Clone, Default)]
pub struct InboundRtp(Arc<std::sync::Mutex<VecDeque<rtc::rtp::Packet>>>);

impl InboundRtp {
    /// Packets held at most (one datagram's worth is the usual; the sessions drain after each).
    const MAX: usize = 1024;

    fn push(&self, packet: rtc::rtp::Packet) {
        let mut queue = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= Self::MAX {
            queue.pop_front();
        }
        queue.push_back(packet);
    }

    pub(super) fn take(&self) -> VecDeque<rtc::rtp::Packet> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The latest send-side bandwidth estimate of one peer connection, bits per second (0: none
/// yet), shared between its interceptor chain and the sessions.
#[derive(Debug, Clone, Default)]
pub struct Estimate(Arc<std::sync::atomic::AtomicU64>);

impl Estimate {
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set(&self, bps: u64) {
        self.0.store(bps, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for DeliverRtcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliverRtcp").field("read", &self.read.len()).field("write", &self.write.len()).finish()
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for DeliverRtcp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = WallInstant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Some(media) = &self.media
            && matches!(msg.message.packet, Packet::Rtp(_))
        {
            if let Packet::Rtp(packet) = msg.message.packet {
                media.push(packet);
            }
            return Ok(());
        }
        if matches!(msg.message.packet, Packet::Rtcp(_)) {
            if let Some(Attribute::TargetBitrateChanged { bits_per_second }) =
                msg.message.get(&Attribute::TargetBitrateChanged { bits_per_second: 0.0 })
            {
                self.estimate.set(*bits_per_second as u64);
            }
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for DeliverRtcp {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// Adds a UDP host candidate at `addr` to a peer connection.
pub fn add_host_candidate(pc: &mut RTCPeerConnection, addr: SocketAddr) -> Result<(), MediaError> {
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".into(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    pc.add_local_candidate(RTCIceCandidate::from(&host).to_json()?)?;
    Ok(())
}

/// A peer connection as a participant's device makes one (default settings, Opus and VP8, its
/// one host candidate at `addr`, gathering complete): the tests' and benchmarks' client side.
pub fn client_peer_connection(addr: SocketAddr, now: WallInstant) -> Result<RTCPeerConnection, MediaError> {
    let (media_engine, registry) = media_setup()?;
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(SettingEngineBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)?;
    add_host_candidate(&mut pc, addr)?;
    pc.add_local_candidate(Default::default())?; // end of candidates
    Ok(pc)
}

/// The Opus codec as the SFU negotiates it.
pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.into(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    }
}

/// The VP8 codec as the SFU negotiates it.
pub fn vp8_codec() -> RTCRtpCodec {
    RTCRtpCodec { mime_type: MIME_TYPE_VP8.into(), clock_rate: 90_000, channels: 0, ..Default::default() }
}

/// Registers the codecs the SFU forwards (Opus 111, VP8 96) and the audio level extension, and
/// the default interceptors (NACK, RTCP reports, TWCC receiver, simulcast extensions) with
/// inbound RTCP delivered to the application. Clients in tests use it too.
pub fn media_setup() -> Result<(MediaEngine, Registry), MediaError> {
    let mut me = codecs()?;
    // Application-ward of the default chain, so RTCP reaches us after the core has used it.
    let registry = Registry::new().with(Slot::from(14_000), DeliverRtcp::default());
    let registry = register_default_interceptors(registry, &mut me)?;
    Ok((me, registry))
}

/// Where the SFU's bandwidth estimate of a subscriber starts, bits per second: enough for the top
/// simulcast layer of one camera, so a LAN gets full quality at once; congestion brings it down.
pub const INITIAL_ESTIMATE_BPS: f64 = 2_000_000.0;

/// The SFU's own peer connections: as [`media_setup`], but without the core's NACK responder,
/// which keeps a copy of every packet sent per stream (about 340 KB per subscriber). NACKs from
/// subscribers reach the room instead, which answers them from the one cache per track that all
/// its subscribers share. The NACK generator (asking publishers for what the SFU lost), RTCP
/// reports and the simulcast extensions stay. Transport-wide congestion control runs both ways:
/// the TWCC receiver reports to publishers (their browsers' estimators need it), and for what the
/// SFU sends, the TWCC sender numbers every packet and GCC turns subscribers' feedback into an
/// estimate (read through `estimate`), from which the room picks layers. No pacer: the SFU
/// forwards at the rate packets come, choosing layers that fit.
pub fn sfu_media_setup(estimate: Estimate, media: InboundRtp) -> Result<(MediaEngine, Registry), MediaError> {
    use rtc::interceptor::{
        CongestionControlBuilder, Gcc, NackGeneratorBuilder, TwccReceiverBuilder, TwccSenderBuilder,
    };
    use rtc::peer_connection::configuration::interceptor_registry::{
        configure_rtcp_reports, configure_simulcast_extension_headers,
    };
    use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, TYPE_RTCP_FB_NACK, TYPE_RTCP_FB_TRANSPORT_CC};
    let mut me = codecs()?;
    for parameter in ["", "pli"] {
        me.register_feedback(
            RTCPFeedback { typ: TYPE_RTCP_FB_NACK.to_owned(), parameter: parameter.to_owned() },
            RtpCodecKind::Video,
        );
    }
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        me.register_feedback(
            RTCPFeedback { typ: TYPE_RTCP_FB_TRANSPORT_CC.to_owned(), parameter: String::new() },
            kind,
        );
        me.register_header_extension(
            RTCRtpHeaderExtensionCapability { uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned() },
            kind,
            None,
        )?;
    }
    let gcc = Gcc::new(INITIAL_ESTIMATE_BPS, 100_000.0, 50_000_000.0);
    let registry = Registry::new()
        .with(Slot::from(14_000), DeliverRtcp { estimate, media: Some(media), ..DeliverRtcp::default() })
        .with(Slot::NackGenerator, NackGeneratorBuilder::new().build())
        .with(Slot::CongestionControl, CongestionControlBuilder::new(gcc).build())
        .with(Slot::TwccSender, TwccSenderBuilder::new().build())
        .with(Slot::TwccReceiver, TwccReceiverBuilder::new().build());
    configure_simulcast_extension_headers(&mut me)?;
    let registry = configure_rtcp_reports(registry);
    Ok((me, registry))
}

fn codecs() -> Result<MediaEngine, MediaError> {
    let mut me = MediaEngine::default();
    me.register_codec(RTCRtpCodecParameters { rtp_codec: opus_codec(), payload_type: 111 }, RtpCodecKind::Audio)?;
    me.register_codec(RTCRtpCodecParameters { rtp_codec: vp8_codec(), payload_type: 96 }, RtpCodecKind::Video)?;
    me.register_header_extension(
        RTCRtpHeaderExtensionCapability { uri: rtc::sdp::extmap::AUDIO_LEVEL_URI.into() },
        RtpCodecKind::Audio,
        None,
    )?;
    Ok(me)
}
