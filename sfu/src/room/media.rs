//! Who receives what: tracks published and subscribed, the layer each subscriber gets (its
//! bandwidth estimate shared among the videos it shows, and how large it shows each), and the
//! packets, NACKs and key frame requests of the tracks. The rest of the room (who is in it,
//! roles, moderation) is in `mod.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Action, Event, Room, RoomError, Track, to_all};
use crate::forward::{Forwarder, Out, PacketInfo, Want};
use crate::{Instant, MediaKind, ParticipantId, TrackId};

/// Video streams (cameras and screens) a meeting carries at most.
pub const MAX_VIDEO_STREAMS: usize = 50;

/// What one audio track takes of a subscriber's bandwidth, bits per second (Opus with headers).
pub const AUDIO_BPS: u64 = 64_000;
/// Shown at most this tall (device pixels), a video gets its lowest layer; at most
/// [`VIEW_LAYER_1_MAX`], its middle one; taller, any.
pub const VIEW_LAYER_0_MAX: u16 = 200;
pub const VIEW_LAYER_1_MAX: u16 = 400;

/// The highest layer for a tile this tall (device pixels; 0: none, it is not shown).
fn view_layer(height: u16) -> Option<u8> {
    match height {
        0 => None,
        1..=VIEW_LAYER_0_MAX => Some(0),
        h if h <= VIEW_LAYER_1_MAX => Some(1),
        _ => Some(u8::MAX),
    }
}

impl Room {
    /// Publishes a track with its simulcast layers' bitrates (one entry for audio).
    pub fn publish(
        &mut self,
        who: ParticipantId,
        kind: MediaKind,
        layer_bps: Vec<u64>,
    ) -> Result<(TrackId, Vec<Action>), RoomError> {
        self.may_publish(who, kind)?;
        let video = self.tracks.values().filter(|t| t.kind != MediaKind::Audio).count();
        if kind != MediaKind::Audio && video >= MAX_VIDEO_STREAMS {
            return Err(RoomError::Closed("the meeting carries 50 video streams at most"));
        }
        let track = TrackId(self.next_track);
        self.next_track += 1;
        self.tracks.insert(
            track,
            Track {
                owner: who,
                kind,
                forwarder: Forwarder::new(layer_bps).for_track(track.0),
                early_views: BTreeMap::new(),
            },
        );
        Ok((track, vec![to_all(Event::Published { who, track, kind })]))
    }

    pub fn unpublish(&mut self, who: ParticipantId, track: TrackId) -> Result<Vec<Action>, RoomError> {
        match self.tracks.get(&track) {
            Some(t) if t.owner == who => {}
            Some(_) => return Err(RoomError::Forbidden("not your track")),
            None => return Err(RoomError::Unknown),
        }
        self.tracks.remove(&track);
        Ok(vec![to_all(Event::Unpublished { track })])
    }

    /// Ends every track of `kind` that `who` publishes.
    pub(super) fn unpublish_kind(&mut self, who: ParticipantId, kind: MediaKind) -> Vec<Action> {
        let ended: Vec<TrackId> =
            self.tracks.iter().filter(|(_, t)| t.owner == who && t.kind == kind).map(|(id, _)| *id).collect();
        ended
            .into_iter()
            .map(|track| {
                self.tracks.remove(&track);
                to_all(Event::Unpublished { track })
            })
            .collect()
    }

    /// Subscribes `who` to a track (or changes what it wants of it).
    pub fn subscribe(
        &mut self,
        now: Instant,
        who: ParticipantId,
        track: TrackId,
        want: Want,
    ) -> Result<Vec<Action>, RoomError> {
        if !self.participants.contains_key(&who) {
            return Err(RoomError::Unknown);
        }
        let t = self.tracks.get_mut(&track).ok_or(RoomError::Unknown)?;
        if t.owner == who {
            return Err(RoomError::Forbidden("you do not receive your own track"));
        }
        let mut want = want;
        if let Some(height) = t.early_views.remove(&who) {
            want.max_layer = view_layer(height);
        }
        let owner = t.owner;
        let mut out = lift(owner, track, t.forwarder.subscribe(now, who, want));
        out.extend(self.share_bandwidth(now, who));
        Ok(out)
    }

    /// A subscriber's bandwidth estimate changed: what it receives is chosen again to fit.
    pub fn set_bandwidth(&mut self, now: Instant, who: ParticipantId, bps: u64) -> Vec<Action> {
        let Some(p) = self.participants.get_mut(&who) else { return Vec::new() };
        p.bandwidth_bps = bps;
        self.share_bandwidth(now, who)
    }

    /// How large a subscriber shows a video track (`height` in device pixels; 0: not shown, so
    /// nothing is sent). Layers are taken as a quarter, half and full 720p. Told before it
    /// subscribes (it has our offer, we do not have its answer yet), the size is kept for then.
    pub fn set_view(
        &mut self,
        now: Instant,
        who: ParticipantId,
        track: TrackId,
        height: u16,
    ) -> Result<Vec<Action>, RoomError> {
        if !self.participants.contains_key(&who) {
            return Err(RoomError::Unknown);
        }
        let t = self.tracks.get_mut(&track).ok_or(RoomError::Unknown)?;
        if t.owner == who {
            return Err(RoomError::Unknown);
        }
        let Some(mut want) = t.forwarder.want(who) else {
            t.early_views.insert(who, height);
            return Ok(Vec::new());
        };
        want.max_layer = view_layer(height);
        let owner = t.owner;
        let mut out = lift(owner, track, t.forwarder.set_want(now, who, want));
        out.extend(self.share_bandwidth(now, who));
        Ok(out)
    }

    /// Shares a subscriber's bandwidth among what it receives: audio first ([`AUDIO_BPS`]
    /// each), the rest evenly among the video tracks it shows; each forwarder then picks the
    /// layer that fits (switching at the next key frame).
    fn share_bandwidth(&mut self, now: Instant, who: ParticipantId) -> Vec<Action> {
        let Some(bps) = self.participants.get(&who).map(|p| p.bandwidth_bps) else { return Vec::new() };
        let receives = |t: &Track| t.forwarder.want(who);
        let audio = self.tracks.values().filter(|t| t.kind == MediaKind::Audio && receives(t).is_some()).count() as u64;
        let shown: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.kind != MediaKind::Audio && receives(t).is_some_and(|w| w.max_layer.is_some()))
            .map(|(id, _)| *id)
            .collect();
        let each = match bps {
            u64::MAX => u64::MAX,
            bps => bps.saturating_sub(audio * AUDIO_BPS) / (shown.len().max(1) as u64),
        };
        let mut out = Vec::new();
        for track in shown {
            let Some(t) = self.tracks.get_mut(&track) else { continue };
            let Some(mut want) = t.forwarder.want(who) else { continue };
            if want.bandwidth_bps != each {
                want.bandwidth_bps = each;
                out.extend(lift(t.owner, track, t.forwarder.set_want(now, who, want)));
            }
        }
        out
    }

    /// A packet of a published track: what each subscriber gets. Packets of a track a moderator
    /// turned off, or of a track that may not be published, go nowhere.
    pub fn on_packet(&mut self, now: Instant, track: TrackId, info: &PacketInfo, payload: Arc<[u8]>) -> Vec<Action> {
        let Some(t) = self.tracks.get_mut(&track) else { return Vec::new() };
        let owner = t.owner;
        let Some(p) = self.participants.get(&owner) else { return Vec::new() };
        if p.muted.contains_key(&t.kind) {
            return Vec::new();
        }
        let mut out = Vec::new();
        if t.kind == MediaKind::Audio
            && let Some(level) = info.audio_level
            && let Some(who) = self.speaker.on_level(now, owner, level)
        {
            out.push(to_all(Event::ActiveSpeaker { who }));
        }
        out.extend(lift(owner, track, t.forwarder.on_packet(now, info, payload)));
        out
    }

    /// A subscriber's NACK.
    pub fn on_nack(&mut self, who: ParticipantId, track: TrackId, seqs: &[u16]) -> Vec<Action> {
        let Some(t) = self.tracks.get_mut(&track) else { return Vec::new() };
        lift(t.owner, track, t.forwarder.on_nack(who, seqs))
    }

    /// A subscriber's PLI/FIR.
    pub fn on_keyframe_request(&mut self, now: Instant, who: ParticipantId, track: TrackId) -> Vec<Action> {
        let Some(t) = self.tracks.get_mut(&track) else { return Vec::new() };
        lift(t.owner, track, t.forwarder.on_keyframe_request(now, who))
    }
}

/// Forwarding outputs of one track as room actions.
fn lift(owner: ParticipantId, track: TrackId, outs: Vec<Out>) -> Vec<Action> {
    outs.into_iter()
        .map(|o| match o {
            Out::Send { to, packet } => Action::Send { to, track, packet },
            Out::Keyframe { layer } => Action::Keyframe { from: owner, track, layer },
            Out::NackUpstream { layer, seqs } => Action::Nack { from: owner, track, layer, seqs },
        })
        .collect()
}
