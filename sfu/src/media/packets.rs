//! The packet path: a participant's tracks are published when their streams open, each RTP
//! packet becomes a [`PacketInfo`] for the room, and what the room decides is carried out
//! (forwarded packets written on subscribers' streams, key frame requests sent as PLIs).

use super::*;

impl MediaSessions {
    /// A stream of a track the participant sends opened (once per simulcast layer): the first
    /// one publishes the track in the room.
    pub(super) fn on_track_open(&mut self, now: WallInstant, key: PeerKey, init: RTCTrackEventInit) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if !peer.ssrc_tracks.contains_key(&init.ssrc) && peer.ssrc_tracks.len() >= MAX_INBOUND_STREAMS {
            return; // a device sends a few streams; one that keeps opening new ones is ignored
        }
        peer.ssrc_tracks.insert(init.ssrc, init.track_id.clone());
        if !peer.inbound.contains_key(&init.track_id) {
            let Some(mut receiver) = peer.pc.rtp_receiver(init.receiver_id) else { return };
            let kind = match media_kind(receiver.track().kind()) {
                MediaKind::Video if peer.screen_tracks.contains(&init.track_id) => MediaKind::Screen,
                kind => kind,
            };
            let rids: Vec<String> = receiver
                .track()
                .codings()
                .iter()
                .map(|c| c.rtp_coding_parameters.rid.clone())
                .filter(|rid| !rid.is_empty())
                .collect();
            let audio_level_ext = receiver
                .get_parameters()
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|e| e.uri == rtc::sdp::extmap::AUDIO_LEVEL_URI)
                .and_then(|e| u8::try_from(e.id).ok());
            let layers = rids.len().clamp(1, SIMULCAST_BPS.len());
            let layer_bps = if layers > 1 {
                SIMULCAST_BPS[SIMULCAST_BPS.len() - layers..].to_vec()
            } else {
                vec![SINGLE_LAYER_BPS]
            };
            let conference = peer.conference;
            peer.inbound.insert(
                init.track_id.clone(),
                Inbound {
                    track: None,
                    receiver: init.receiver_id,
                    kind,
                    rids,
                    audio_level_ext,
                    streams: HashMap::new(),
                    layer_ssrc: vec![None; layers],
                    layer_bps,
                },
            );
            self.publish(now, conference, key, &init.track_id, true);
        }
        self.learn_stream(key, &init.track_id, init.ssrc);
    }

    /// Publishes an inbound track of `key` in the room, if the room allows it now. A refusal is
    /// told to the participant when `tell` (the first time: it just tried to send it).
    fn publish(&mut self, now: WallInstant, conference: ConferenceId, key: PeerKey, track_id: &str, tell: bool) {
        let Some(inbound) = self.peers.get(&key).and_then(|p| p.inbound.get(track_id)) else { return };
        if inbound.track.is_some() {
            return;
        }
        let (kind, layer_bps) = (inbound.kind, inbound.layer_bps.clone());
        let Some(room) = self.rooms.get_mut(&conference) else { return };
        match room.publish(key, kind, layer_bps) {
            Ok((track, actions)) => {
                self.tracks.insert((conference, track), Published { owner: key, kind });
                if let Some(inbound) = self.peers.get_mut(&key).and_then(|p| p.inbound.get_mut(track_id)) {
                    inbound.track = Some(track);
                }
                self.apply(now, conference, actions);
            }
            Err(RoomError::Forbidden(reason) | RoomError::Closed(reason)) if tell => {
                let event = Event::PublishRefused { who: key, kind, reason };
                self.events.push_back(MediaEvent::Room { conference, to: Some(key), event });
            }
            Err(_) => {}
        }
    }

    /// Publishes the inbound tracks of the conference that wait unpublished (refused before, or a
    /// screen share stopped), if the room allows them now: all of them after a change of roles or
    /// mode, or only `who`'s of `kind` when it turned that back on (then a refusal is told).
    pub(super) fn publish_waiting(
        &mut self,
        now: WallInstant,
        conference: ConferenceId,
        only: Option<(PeerKey, MediaKind)>,
    ) {
        let waiting: Vec<(PeerKey, String)> = self
            .peers
            .iter()
            .filter(|(k, p)| p.conference == conference && only.is_none_or(|(who, _)| who == **k))
            .flat_map(|(k, p)| {
                p.inbound
                    .iter()
                    .filter(|(_, i)| i.track.is_none() && only.is_none_or(|(_, kind)| kind == i.kind))
                    .map(move |(id, _)| (*k, id.clone()))
            })
            .collect();
        for (key, track_id) in waiting {
            self.publish(now, conference, key, &track_id, only.is_some());
        }
    }

    /// Which layer and codec an SSRC of an inbound track carries.
    pub(super) fn learn_stream(&mut self, key: PeerKey, track_id: &str, ssrc: u32) -> Option<InStream> {
        let peer = self.peers.get_mut(&key)?;
        let inbound = peer.inbound.get_mut(track_id)?;
        if let Some(stream) = inbound.streams.get(&ssrc) {
            return Some(*stream);
        }
        let receiver = peer.pc.rtp_receiver(inbound.receiver)?;
        let layer = receiver
            .track()
            .rid(ssrc)
            .and_then(|rid| inbound.rids.iter().position(|r| r == rid))
            .and_then(|l| u8::try_from(l).ok())
            .unwrap_or(0);
        let vp8 = receiver.track().codec(ssrc).is_some_and(|c| c.mime_type.eq_ignore_ascii_case(MIME_TYPE_VP8));
        if inbound.rids.len() > 1 && receiver.track().rid(ssrc).is_none() {
            return None; // a simulcast stream not bound to its rid yet
        }
        let stream = InStream { layer, vp8 };
        inbound.streams.insert(ssrc, stream);
        if let Some(slot) = inbound.layer_ssrc.get_mut(usize::from(layer)) {
            *slot = Some(ssrc);
        }
        Some(stream)
    }

    pub(super) fn on_message(&mut self, now: WallInstant, key: PeerKey, message: RTCMessage) {
        match message {
            // Inbound RTP never comes this way: `DeliverRtcp` takes it from the chain (`take_rtp`).
            RTCMessage::RtcpPacket(track_id, packets) => {
                // Feedback about a stream we send carries that stream's track id ("t<track>").
                let asks_keyframe = packets.iter().any(|p| {
                    p.as_any().downcast_ref::<PictureLossIndication>().is_some()
                        || p.as_any().downcast_ref::<FullIntraRequest>().is_some()
                });
                let track = track_id.strip_prefix('t').and_then(|n| n.parse().ok()).map(TrackId);
                if asks_keyframe
                    && let Some(track) = track
                    && let Some(peer) = self.peers.get(&key)
                    && peer.outbound.contains_key(&track)
                {
                    let (conference, at) = (peer.conference, self.since_epoch(now));
                    if let Some(actions) =
                        self.rooms.get_mut(&conference).map(|r| r.on_keyframe_request(at, key, track))
                    {
                        self.apply(now, conference, actions);
                    }
                }
                // NACKs from subscribers are answered from the room's cache of the track.
                let seqs: Vec<u16> = packets
                    .iter()
                    .filter_map(|p| p.as_any().downcast_ref::<TransportLayerNack>())
                    .flat_map(|n| n.nacks.iter().flat_map(|pair| pair.packet_list()))
                    .collect();
                if !seqs.is_empty()
                    && let Some(track) = track
                    && let Some(peer) = self.peers.get(&key)
                    && peer.outbound.contains_key(&track)
                {
                    let conference = peer.conference;
                    if let Some(actions) = self.rooms.get_mut(&conference).map(|r| r.on_nack(key, track, &seqs)) {
                        self.apply(now, conference, actions);
                    }
                }
            }
            RTCMessage::DataChannelMessage(id, message) => self.on_channel_message(now, key, id, message),
            _ => {}
        }
    }

    pub(super) fn on_rtp(&mut self, now: WallInstant, key: PeerKey, track_id: &str, packet: rtc::rtp::Packet) {
        let ssrc = packet.header.ssrc;
        let Some(stream) = self.learn_stream(key, track_id, ssrc) else { return };
        let Some(peer) = self.peers.get(&key) else { return };
        let conference = peer.conference;
        let Some(inbound) = peer.inbound.get(track_id) else { return };
        let Some(track) = inbound.track else { return };
        let audio_level = match (inbound.kind, inbound.audio_level_ext) {
            (MediaKind::Audio, Some(id)) => packet.header.get_extension(id).and_then(|b| b.first().map(|l| l & 0x7f)),
            _ => None,
        };
        let keyframe_start = match inbound.kind {
            // Every audio packet decodes on its own.
            MediaKind::Audio => true,
            _ => stream.vp8 && vp8_keyframe_start(&packet.payload),
        };
        let info = PacketInfo {
            layer: stream.layer,
            seq: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            keyframe_start,
            audio_level,
        };
        let payload: Arc<[u8]> = Arc::from(&packet.payload[..]);
        let at = self.since_epoch(now);
        let Some(room) = self.rooms.get_mut(&conference) else { return };
        let actions = room.on_packet(at, track, &info, payload);
        self.apply(now, conference, actions);
    }

    /// Carries out what a conference's room decided.
    pub(super) fn apply(&mut self, now: WallInstant, conference: ConferenceId, actions: Vec<Action>) {
        let mut republish = false;
        for action in actions {
            match action {
                Action::Send { to, track, packet } => self.send(now, to, track, packet),
                Action::Keyframe { from, track, layer } => self.request_keyframe(now, from, track, layer),
                // The core's NACK generator already asks the publisher for what it lost.
                Action::Nack { .. } => {}
                Action::Event { to, event } => {
                    if matches!(event, Event::RoleChanged { .. } | Event::ModeChanged { .. }) {
                        republish = true;
                    }
                    if let Event::Unpublished { track } = event {
                        // Its owner's stream may be published again later (promoted again).
                        for peer in self.peers.values_mut().filter(|p| p.conference == conference) {
                            for inbound in peer.inbound.values_mut().filter(|i| i.track == Some(track)) {
                                inbound.track = None;
                            }
                        }
                        self.tracks.remove(&(conference, track));
                        let subscribers: Vec<PeerKey> = self
                            .peers
                            .iter()
                            .filter(|(_, p)| p.conference == conference && p.outbound.contains_key(&track))
                            .map(|(k, _)| *k)
                            .collect();
                        for who in subscribers {
                            self.drop_outbound(who, track);
                            self.flush(who);
                        }
                    }
                    self.events.push_back(MediaEvent::Room { conference, to, event });
                }
                Action::Disconnect { who } => self.events.push_back(MediaEvent::Disconnect(who)),
                Action::Signal { to, message } => self.signal(now, conference, to, message),
                Action::Resume { who, kind } => self.publish_waiting(now, conference, Some((who, kind))),
            }
        }
        if republish {
            self.publish_waiting(now, conference, None);
        }
    }

    /// Writes a forwarded packet on the subscriber's stream of `track`.
    pub(super) fn send(&mut self, now: WallInstant, to: PeerKey, track: TrackId, packet: OutPacket) {
        let Some(peer) = self.peers.get_mut(&to) else { return };
        let Some(out) = peer.outbound.get(&track) else { return };
        if !out.active {
            return;
        }
        let ssrc = out.ssrc;
        let Some(mut sender) = peer.pc.rtp_sender(out.sender) else { return };
        // As answerer the subscriber chose the payload types; ours are what it accepted.
        let Some(payload_type) = sender
            .get_parameters()
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&out.mime))
            .map(|c| c.payload_type)
        else {
            return;
        };
        let rtp = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                marker: packet.marker,
                payload_type,
                sequence_number: packet.seq,
                timestamp: packet.timestamp,
                ssrc,
                ..Default::default()
            },
            payload: Bytes::from_owner(packet.payload),
        };
        // A packet the sender refuses (a stream being torn down) is dropped like a lost one.
        let _ = sender.write_rtp(now, rtp);
        self.flush(to);
    }

    /// Sends a PLI to the publisher of `track` for `layer`.
    pub(super) fn request_keyframe(&mut self, now: WallInstant, from: PeerKey, track: TrackId, layer: u8) {
        let Some(peer) = self.peers.get_mut(&from) else { return };
        let Some(inbound) = peer.inbound.values().find(|i| i.track == Some(track)) else { return };
        let Some(media_ssrc) = inbound.layer_ssrc.get(usize::from(layer)).copied().flatten() else {
            tracing::debug!(
                participant = from.0,
                track = track.0,
                layer,
                "media: no stream known for the layer; no PLI"
            );
            return;
        };
        let Some(mut receiver) = peer.pc.rtp_receiver(inbound.receiver) else { return };
        let sent = receiver.write_rtcp(now, vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc })]);
        tracing::debug!(
            participant = from.0,
            track = track.0,
            layer,
            media_ssrc,
            ok = sent.is_ok(),
            "media: PLI to the publisher"
        );
        self.flush(from);
    }
}
