//! Negotiation from the SFU's side: subscriptions add outgoing streams to a subscriber's peer
//! connection, which needs a new offer of ours ([`MediaSessions::pending_offer`]); forwarding on
//! a stream starts once the subscriber's answer covers it and its connection is up.

use super::*;

impl MediaSessions {
    /// Subscribes `who` to a published track: an outgoing stream is added to its peer
    /// connection and a new offer is needed ([`MediaEvent::NegotiationNeeded`]); forwarding
    /// starts when the answer is applied. Subscribing again changes what it wants.
    pub fn subscribe(&mut self, now: WallInstant, who: PeerKey, track: TrackId, want: Want) -> Result<(), MediaError> {
        let conference = self.conference_of(who).ok_or(MediaError::UnknownPeer)?;
        let published = *self.tracks.get(&(conference, track)).ok_or(MediaError::UnknownTrack)?;
        if published.owner == who {
            return Err(RoomError::Forbidden("you do not receive your own track").into());
        }
        let ssrc = self.next_ssrc;
        let peer = self.peers.get_mut(&who).ok_or(MediaError::UnknownPeer)?;
        if let Some(out) = peer.outbound.get_mut(&track) {
            out.want = want;
            if out.active {
                let at = now.saturating_duration_since(self.epoch);
                let room = self.rooms.get_mut(&conference).ok_or(MediaError::UnknownConference)?;
                let actions = room.subscribe(at, who, track, want)?;
                self.apply(now, conference, actions);
            }
            return Ok(());
        }
        let codec = match published.kind {
            MediaKind::Audio => opus_codec(),
            MediaKind::Video | MediaKind::Screen => vp8_codec(),
        };
        let mime = codec.mime_type.clone();
        let name = format!("t{}", track.0);
        // A screen share has a stream of its own: the device shows it apart from the camera.
        let stream = match published.kind {
            MediaKind::Screen => format!("s{}", published.owner.0),
            _ => format!("p{}", published.owner.0),
        };
        let sender = peer.pc.add_track(MediaStreamTrack::new(
            stream,
            name.clone(),
            name,
            codec_kind(published.kind),
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec,
                ..Default::default()
            }],
        ))?;
        self.next_ssrc = self.next_ssrc.wrapping_add(1);
        peer.outbound.insert(track, Outbound { sender, ssrc, mime, want, negotiated: false, active: false });
        self.negotiation_needed(who);
        self.service(who, now);
        Ok(())
    }

    pub(super) fn negotiation_needed(&mut self, who: PeerKey) {
        if let Some(peer) = self.peers.get_mut(&who) {
            let first = !peer.negotiation_needed;
            peer.negotiation_needed = true;
            if first && !peer.awaiting_answer {
                self.events.push_back(MediaEvent::NegotiationNeeded(who));
            }
        }
    }

    /// Our new offer for the participant, if its outgoing streams changed and no earlier offer
    /// still waits for an answer. Signaling sends it and brings back the answer
    /// ([`MediaSessions::apply_answer`]).
    pub fn pending_offer(&mut self, now: WallInstant, peer: PeerKey) -> Result<Option<String>, MediaError> {
        let p = self.peers.get_mut(&peer).ok_or(MediaError::UnknownPeer)?;
        if !p.negotiation_needed || p.awaiting_answer {
            return Ok(None);
        }
        let offer = p.pc.create_offer(None)?;
        p.pc.set_local_description(now, offer.clone())?;
        p.negotiation_needed = false;
        p.awaiting_answer = true;
        for out in p.outbound.values_mut() {
            // Streams in this offer become usable with its answer.
            out.negotiated = true;
        }
        self.service(peer, now);
        Ok(Some(offer.sdp))
    }

    /// The participant's answer to our offer: the streams it covers start forwarding.
    pub fn apply_answer(&mut self, now: WallInstant, peer: PeerKey, answer_sdp: String) -> Result<(), MediaError> {
        let p = self.peers.get_mut(&peer).ok_or(MediaError::UnknownPeer)?;
        if !p.awaiting_answer {
            return Err(MediaError::NoOfferPending);
        }
        let answer = RTCSessionDescription::answer(answer_sdp)?;
        p.screen_tracks.extend(screen_tracks(&answer));
        p.pc.set_remote_description(now, answer)?;
        p.awaiting_answer = false;
        if p.negotiation_needed {
            self.events.push_back(MediaEvent::NegotiationNeeded(peer));
        }
        self.activate(now, peer);
        self.service(peer, now);
        Ok(())
    }

    /// Starts forwarding on the peer's negotiated outgoing streams once it is connected.
    pub(super) fn activate(&mut self, now: WallInstant, who: PeerKey) {
        let Some(peer) = self.peers.get_mut(&who) else { return };
        if !peer.connected || peer.awaiting_answer {
            return;
        }
        let conference = peer.conference;
        let ready: Vec<(TrackId, Want)> =
            peer.outbound.iter().filter(|(_, o)| o.negotiated && !o.active).map(|(t, o)| (*t, o.want)).collect();
        for (track, want) in ready {
            let at = self.since_epoch(now);
            match self.rooms.get_mut(&conference).map(|r| r.subscribe(at, who, track, want)) {
                Some(Ok(actions)) => {
                    if let Some(out) = self.peers.get_mut(&who).and_then(|p| p.outbound.get_mut(&track)) {
                        out.active = true;
                    }
                    self.apply(now, conference, actions);
                }
                _ => self.drop_outbound(who, track),
            }
        }
    }

    /// Removes an outgoing stream (its track is gone); the subscriber needs a new offer.
    pub(super) fn drop_outbound(&mut self, who: PeerKey, track: TrackId) {
        let Some(peer) = self.peers.get_mut(&who) else { return };
        let Some(out) = peer.outbound.remove(&track) else { return };
        let _ = peer.pc.remove_track(out.sender);
        self.negotiation_needed(who);
    }
}
