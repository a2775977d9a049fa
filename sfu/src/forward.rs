//! One published track's packets to its subscribers.
//!
//! A video track arrives in up to three simulcast layers (0 = lowest), each its own RTP stream.
//! Each subscriber gets one stream: the highest layer that fits both the size it displays and its
//! bandwidth estimate, among the layers that still come ([`LAYER_IDLE`]). A subscriber moves to
//! another layer only at a key frame of that layer (a switch mid-frame would show garbage), and
//! meanwhile keeps getting the old one; the publisher is asked for that key frame, at most once
//! per [`KEYFRAME_INTERVAL`] per layer however many subscribers ask. Sequence numbers and
//! timestamps are rewritten per subscriber so its stream stays continuous across switches, and a gap on the way in stays a gap on the way out (so the
//! subscriber NACKs it). NACKs are answered from one cache per layer, shared by all
//! subscribers; what the cache no longer holds is asked of the publisher.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{Instant, ParticipantId};

/// Key frame requests (PLI) sent to a publisher per layer at most once per this interval.
pub const KEYFRAME_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// Packets kept per layer for retransmission (about 1 s of 2.5 Mbit/s video).
pub const CACHE_PACKETS: usize = 512;
/// A layer with no packet for this long counts as stopped: a browser stops sending its top
/// layers when its own estimate or its CPU falls short, or sends fewer layers than it offered
/// for a small camera. Subscribers are moved to a layer that still flows.
pub const LAYER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);
/// Timestamp step inserted at a layer switch (one frame at 30 fps, 90 kHz clock).
const SWITCH_TS_STEP: u32 = 3000;
/// The RTP clock of video (ticks per millisecond), to advance a resumed stream's timestamps by
/// the time it was paused.
const VIDEO_TICKS_PER_MS: u64 = 90;

/// What the edge parsed out of one incoming RTP packet (headers and header extensions only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketInfo {
    /// Simulcast layer (0 for audio and non-simulcast video).
    pub layer: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    /// The first packet of a key frame (from the frame-marking or dependency-descriptor header
    /// extension, which the edge reads).
    pub keyframe_start: bool,
    /// Audio level from the RFC 6464 header extension: 0 (loudest) to 127 (silence).
    pub audio_level: Option<u8>,
}

/// A packet as one subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutPacket {
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    /// The RTP payload, shared by every subscriber that receives it (no copy per subscriber).
    pub payload: Arc<[u8]>,
}

/// Layers a subscriber may get: capped by what it displays, and chosen by its bandwidth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// Highest layer worth sending for the size the subscriber displays (None: paused).
    pub max_layer: Option<u8>,
    /// The subscriber's bandwidth estimate for this track, bits per second.
    pub bandwidth_bps: u64,
}

impl Default for Want {
    fn default() -> Self {
        Want { max_layer: Some(u8::MAX), bandwidth_bps: u64::MAX }
    }
}

/// What forwarding asks of the media loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Send this packet to this subscriber (on its stream of this track).
    Send { to: ParticipantId, packet: OutPacket },
    /// Send a key frame request (PLI) to the publisher for this layer.
    Keyframe { layer: u8 },
    /// Ask the publisher to retransmit these packets of a layer (the cache no longer has them).
    NackUpstream { layer: u8, seqs: Vec<u16> },
}

/// A packet kept for retransmission, as it came in.
#[derive(Debug, Clone)]
struct Cached {
    seq: u16,
    timestamp: u32,
    marker: bool,
    payload: Arc<[u8]>,
}

/// The last packets of one layer, by sequence number.
#[derive(Debug, Default)]
struct Cache {
    slots: Vec<Option<Cached>>,
}

impl Cache {
    fn put(&mut self, info: &PacketInfo, payload: &Arc<[u8]>) {
        if self.slots.is_empty() {
            self.slots = vec![None; CACHE_PACKETS];
        }
        let i = usize::from(info.seq) % CACHE_PACKETS;
        self.slots[i] =
            Some(Cached { seq: info.seq, timestamp: info.timestamp, marker: info.marker, payload: payload.clone() });
    }

    fn get(&self, seq: u16) -> Option<&Cached> {
        match self.slots.get(usize::from(seq) % CACHE_PACKETS) {
            Some(Some(cached)) if cached.seq == seq => Some(cached),
            _ => None,
        }
    }
}

/// Where one subscriber's outgoing stream stands.
#[derive(Debug)]
struct Downstream {
    want: Want,
    /// Layer being forwarded (None until the first key frame).
    current: Option<u8>,
    /// Added to an incoming layer's seq / timestamp since the last switch.
    seq_offset: u16,
    ts_offset: u32,
    /// Last seq / timestamp sent (to continue after a switch), and when.
    last: Option<(u16, u32)>,
    last_at: Option<Instant>,
    /// Switch points, newest first: (first outgoing seq, layer, seq offset, timestamp offset),
    /// to map a NACKed outgoing seq back to its layer, incoming seq and outgoing timestamp.
    history: Vec<(u16, u8, u16, u32)>,
}

/// The forwarding state of one published track.
#[derive(Debug)]
pub struct Forwarder {
    /// Simulcast layers the publisher sends, with their expected bitrates (lowest first).
    layer_bps: Vec<u64>,
    caches: Vec<Cache>,
    /// Last key frame request per layer.
    last_keyframe_request: Vec<Option<Instant>>,
    /// When a packet of each layer last came, and the first of any.
    last_packet: Vec<Option<Instant>>,
    first_packet: Option<Instant>,
    /// The flowing layers when last looked at (to log changes).
    last_flowing: u8,
    subscribers: BTreeMap<ParticipantId, Downstream>,
    /// The room's id of the track, for logs.
    track: u32,
}

impl Forwarder {
    /// A track with these layers' bitrates (one entry for audio or non-simulcast video).
    pub fn new(layer_bps: Vec<u64>) -> Self {
        let layers = layer_bps.len().max(1);
        Forwarder {
            layer_bps,
            caches: (0..layers).map(|_| Cache::default()).collect(),
            last_keyframe_request: vec![None; layers],
            last_packet: vec![None; layers],
            first_packet: None,
            last_flowing: 0,
            subscribers: BTreeMap::new(),
            track: 0,
        }
    }

    /// Names the track in the forwarder's debug logs.
    pub fn for_track(mut self, track: u32) -> Self {
        self.track = track;
        self
    }

    /// How many layers the track has.
    pub fn layers(&self) -> u8 {
        self.caches.len() as u8
    }

    /// The layers whose packets still come, one bit each. Every layer counts while the track is
    /// new (its layers' first packets come in any order) and while none comes at all.
    fn flowing(&self, now: Instant) -> u8 {
        let all = u8::MAX >> (8 - self.layers().min(8));
        if self.first_packet.is_none_or(|t| now.saturating_sub(t) < LAYER_IDLE) {
            return all;
        }
        let mask = self
            .last_packet
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_some_and(|t| now.saturating_sub(t) < LAYER_IDLE))
            .fold(0u8, |m, (l, _)| m | 1 << l.min(7));
        if mask == 0 { all } else { mask }
    }

    fn target(&self, now: Instant, want: Want) -> Option<u8> {
        self.target_among(self.flowing(now), want)
    }

    /// The layer a subscriber should get: the highest of the `flowing` layers within its cap
    /// whose bitrate fits its bandwidth (else the lowest flowing one).
    fn target_among(&self, flowing: u8, want: Want) -> Option<u8> {
        let cap = want.max_layer?.min(self.layers() - 1);
        let flows = |l: u8| flowing & (1 << l.min(7)) != 0;
        let fitting = (0..=cap)
            .rev()
            .find(|l| flows(*l) && self.layer_bps.get(usize::from(*l)).is_none_or(|bps| *bps <= want.bandwidth_bps));
        Some(fitting.or_else(|| (0..self.layers()).find(|l| flows(*l))).unwrap_or(0))
    }

    /// Adds (or updates) a subscriber. A new one needs a key frame to start.
    pub fn subscribe(&mut self, now: Instant, who: ParticipantId, want: Want) -> Vec<Out> {
        let entry = self.subscribers.entry(who).or_insert(Downstream {
            want,
            current: None,
            seq_offset: 0,
            ts_offset: 0,
            last: None,
            last_at: None,
            history: Vec::new(),
        });
        entry.want = want;
        tracing::debug!(track = self.track, who = who.0, ?want, target = ?self.target(now, want), "forward: subscribed");
        self.request_for(now, who)
    }

    pub fn unsubscribe(&mut self, who: ParticipantId) {
        self.subscribers.remove(&who);
    }

    pub fn subscribers(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.subscribers.keys().copied()
    }

    /// What a subscriber wants of the track.
    pub fn want(&self, who: ParticipantId) -> Option<Want> {
        self.subscribers.get(&who).map(|d| d.want)
    }

    /// The layer a subscriber receives now (None: waiting for a key frame, or paused).
    pub fn current_layer(&self, who: ParticipantId) -> Option<u8> {
        self.subscribers.get(&who).and_then(|d| d.current)
    }

    /// A key frame request if the subscriber waits for a layer it does not get yet.
    fn request_for(&mut self, now: Instant, who: ParticipantId) -> Vec<Out> {
        let Some(down) = self.subscribers.get(&who) else { return Vec::new() };
        let want = down.want;
        let current = down.current;
        match self.target(now, want) {
            Some(target) if current != Some(target) => self.keyframe(now, target).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    /// A key frame request for `layer` unless one was sent within [`KEYFRAME_INTERVAL`].
    fn keyframe(&mut self, now: Instant, layer: u8) -> Option<Out> {
        let last = self.last_keyframe_request.get_mut(usize::from(layer))?;
        if last.is_some_and(|t| now.saturating_sub(t) < KEYFRAME_INTERVAL) {
            return None;
        }
        *last = Some(now);
        tracing::debug!(track = self.track, layer, "forward: key frame requested");
        Some(Out::Keyframe { layer })
    }

    /// A subscriber's new display size or bandwidth estimate.
    pub fn set_want(&mut self, now: Instant, who: ParticipantId, want: Want) -> Vec<Out> {
        if let Some(down) = self.subscribers.get_mut(&who) {
            down.want = want;
        }
        tracing::debug!(track = self.track, who = who.0, ?want, target = ?self.target(now, want), "forward: want changed");
        self.request_for(now, who)
    }

    /// A packet from the publisher: what each subscriber gets. While a subscriber still waits
    /// for a key frame of its layer, the publisher is asked again (rate-limited): the first
    /// request may have been folded into another subscriber's, whose key frame came too early.
    pub fn on_packet(&mut self, now: Instant, info: &PacketInfo, payload: Arc<[u8]>) -> Vec<Out> {
        let Some(cache) = self.caches.get_mut(usize::from(info.layer)) else { return Vec::new() };
        cache.put(info, &payload);
        if let Some(last) = self.last_packet.get_mut(usize::from(info.layer)) {
            *last = Some(now);
        }
        self.first_packet.get_or_insert(now);
        let flowing = self.flowing(now);
        if flowing != self.last_flowing {
            tracing::debug!(
                track = self.track,
                from = self.last_flowing,
                to = flowing,
                "forward: flowing layers changed"
            );
            self.last_flowing = flowing;
        }
        let targets: Vec<(ParticipantId, Option<u8>)> =
            self.subscribers.iter().map(|(who, d)| (*who, self.target_among(flowing, d.want))).collect();
        let mut out = Vec::new();
        let mut waiting: u8 = 0;
        for (who, target) in targets {
            let Some(down) = self.subscribers.get_mut(&who) else { continue };
            let Some(target) = target else {
                if down.current.take().is_some() {
                    tracing::debug!(track = self.track, who = who.0, "forward: paused");
                }
                continue;
            };
            if info.layer == target && down.current != Some(target) && info.keyframe_start {
                // Switch here: continue the outgoing numbering from the last packet sent.
                // After a pause (a tile that was on another page), the timestamps move on by the
                // time it lasted: a receiver that saw a frame 33 ms "after" one from seconds ago
                // would take every frame for late and drop or delay them until its timing
                // estimate caught up.
                let (next_seq, next_ts) = match down.last {
                    Some((seq, ts)) => {
                        let paused_ms = down.last_at.map_or(0, |at| now.saturating_sub(at).as_millis() as u64);
                        let step =
                            (paused_ms * VIDEO_TICKS_PER_MS).clamp(u64::from(SWITCH_TS_STEP), u64::from(u32::MAX / 2));
                        (seq.wrapping_add(1), ts.wrapping_add(step as u32))
                    }
                    None => (info.seq, info.timestamp),
                };
                down.seq_offset = next_seq.wrapping_sub(info.seq);
                down.ts_offset = next_ts.wrapping_sub(info.timestamp);
                down.current = Some(target);
                down.history.insert(0, (next_seq, target, down.seq_offset, down.ts_offset));
                down.history.truncate(8);
                tracing::debug!(
                    track = self.track,
                    who = who.0,
                    layer = target,
                    seq = info.seq,
                    "forward: started layer at key frame"
                );
            }
            if down.current != Some(target) {
                waiting |= 1 << target.min(7);
            }
            if down.current != Some(info.layer) {
                continue;
            }
            let seq = info.seq.wrapping_add(down.seq_offset);
            let timestamp = info.timestamp.wrapping_add(down.ts_offset);
            // Keep the highest seq sent (a late packet must not move the switch point back).
            let newer = down.last.is_none_or(|(last, _)| seq.wrapping_sub(last) < 0x8000);
            if newer {
                down.last = Some((seq, timestamp));
                down.last_at = Some(now);
            }
            out.push(Out::Send {
                to: who,
                packet: OutPacket { seq, timestamp, marker: info.marker, payload: payload.clone() },
            });
        }
        for layer in (0..self.layers()).filter(|l| waiting & (1 << l) != 0) {
            out.extend(self.keyframe(now, layer));
        }
        out
    }

    /// A subscriber's NACK for outgoing sequence numbers: retransmissions from the cache, and a
    /// NACK to the publisher for what the cache no longer has.
    pub fn on_nack(&mut self, who: ParticipantId, seqs: &[u16]) -> Vec<Out> {
        let Some(down) = self.subscribers.get(&who) else { return Vec::new() };
        let mut out = Vec::new();
        let mut upstream: BTreeMap<u8, Vec<u16>> = BTreeMap::new();
        for &seq in seqs {
            // The newest switch point at or before this seq tells its layer and offset.
            let Some(&(_, layer, offset, ts_offset)) =
                down.history.iter().find(|(start, _, _, _)| seq.wrapping_sub(*start) < 0x8000)
            else {
                continue;
            };
            let original = seq.wrapping_sub(offset);
            match self.caches.get(usize::from(layer)).and_then(|c| c.get(original)) {
                Some(cached) => out.push(Out::Send {
                    to: who,
                    packet: OutPacket {
                        seq,
                        timestamp: cached.timestamp.wrapping_add(ts_offset),
                        marker: cached.marker,
                        payload: cached.payload.clone(),
                    },
                }),
                None => upstream.entry(layer).or_default().push(original),
            }
        }
        out.extend(upstream.into_iter().map(|(layer, seqs)| Out::NackUpstream { layer, seqs }));
        out
    }

    /// A subscriber's key frame request (PLI/FIR): passed on to the publisher for the layer it
    /// receives (or waits for), rate-limited across all subscribers.
    pub fn on_keyframe_request(&mut self, now: Instant, who: ParticipantId) -> Vec<Out> {
        let Some(down) = self.subscribers.get(&who) else { return Vec::new() };
        let Some(layer) = down.current.or_else(|| self.target(now, down.want)) else { return Vec::new() };
        self.keyframe(now, layer).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: ParticipantId = ParticipantId(1);
    const B: ParticipantId = ParticipantId(2);
    const C: ParticipantId = ParticipantId(3);

    fn packet(layer: u8, seq: u16, timestamp: u32, key: bool) -> (PacketInfo, Arc<[u8]>) {
        let info = PacketInfo { layer, seq, timestamp, marker: false, keyframe_start: key, audio_level: None };
        (info, Arc::from(format!("L{layer}#{seq}").into_bytes()))
    }

    fn sent(out: &[Out], to: ParticipantId) -> Vec<(u16, String)> {
        out.iter()
            .filter_map(|o| match o {
                Out::Send { to: t, packet } if *t == to => {
                    Some((packet.seq, String::from_utf8_lossy(&packet.payload).into_owned()))
                }
                _ => None,
            })
            .collect()
    }

    fn ms(n: u64) -> Instant {
        Duration::from_millis(n)
    }

    /// Three layers: 150 kbit/s, 500 kbit/s, 1.5 Mbit/s.
    fn simulcast() -> Forwarder {
        Forwarder::new(vec![150_000, 500_000, 1_500_000])
    }

    #[test]
    fn a_new_subscriber_starts_at_a_key_frame_of_its_layer() {
        let mut f = simulcast();
        let out = f.subscribe(ms(0), A, Want::default());
        assert_eq!(out, [Out::Keyframe { layer: 2 }], "asks the publisher for a key frame of the top layer");
        let (info, payload) = packet(2, 100, 9000, false);
        assert!(sent(&f.on_packet(ms(0), &info, payload), A).is_empty(), "nothing before the key frame");
        let (info, payload) = packet(1, 50, 9000, true);
        assert!(sent(&f.on_packet(ms(0), &info, payload), A).is_empty(), "another layer's key frame does not start it");
        let (info, payload) = packet(2, 101, 12000, true);
        assert_eq!(sent(&f.on_packet(ms(0), &info, payload), A), [(101, "L2#101".into())]);
        assert_eq!(f.current_layer(A), Some(2));
    }

    #[test]
    fn layers_switch_only_at_key_frames_and_the_stream_stays_continuous() {
        let mut f = simulcast();
        f.subscribe(ms(0), A, Want::default());
        let mut got = Vec::new();
        for (layer, seq, ts, key) in [(2, 10, 0, true), (0, 500, 0, false), (2, 11, 3000, false)] {
            let (info, payload) = packet(layer, seq, ts, key);
            got.extend(sent(&f.on_packet(ms(0), &info, payload), A));
        }
        // The bandwidth drops below the top layer: layer 1 fits.
        let want = Want { max_layer: Some(2), bandwidth_bps: 600_000 };
        assert_eq!(f.set_want(ms(1000), A, want), [Out::Keyframe { layer: 1 }]);
        for (layer, seq, ts, key) in
            [(1, 70, 3000, false), (2, 12, 6000, false), (1, 71, 6000, true), (2, 13, 9000, true), (1, 72, 9000, false)]
        {
            let (info, payload) = packet(layer, seq, ts, key);
            got.extend(sent(&f.on_packet(ms(0), &info, payload), A));
        }
        let payloads: Vec<&str> = got.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(payloads, ["L2#10", "L2#11", "L2#12", "L1#71", "L1#72"], "layer 2 until layer 1's key frame");
        let seqs: Vec<u16> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [10, 11, 12, 13, 14], "one continuous sequence across the switch");
        assert_eq!(f.current_layer(A), Some(1));
    }

    #[test]
    fn display_size_caps_the_layer_and_a_paused_subscriber_gets_nothing() {
        let mut f = simulcast();
        f.subscribe(ms(0), A, Want { max_layer: Some(0), bandwidth_bps: u64::MAX });
        f.subscribe(ms(0), B, Want { max_layer: None, bandwidth_bps: u64::MAX });
        let (info, payload) = packet(2, 1, 0, true);
        assert!(f.on_packet(ms(0), &info, payload).is_empty());
        let (info, payload) = packet(0, 1, 0, true);
        let out = f.on_packet(ms(0), &info, payload);
        assert_eq!(sent(&out, A), [(1, "L0#1".into())], "a thumbnail gets the lowest layer");
        assert!(sent(&out, B).is_empty(), "a paused subscriber gets nothing");
    }

    #[test]
    fn a_layer_that_stops_coming_is_left_for_one_that_flows_and_taken_again_when_it_is_back() {
        let mut f = simulcast();
        f.subscribe(ms(0), A, Want::default());
        let mut got = Vec::new();
        let mut asked = Vec::new();
        // Every layer flows; A is on the top one.
        for t in 0..3u16 {
            for layer in 0..3u8 {
                let (info, payload) = packet(layer, 100 * u16::from(layer) + t, u32::from(t) * 3000, t == 0);
                got.extend(sent(&f.on_packet(ms(u64::from(t) * 33), &info, payload), A));
            }
        }
        assert_eq!(f.current_layer(A), Some(2));
        // The browser stops sending the top layer: after a second without it, A is asked a key
        // frame of layer 1 and moves there.
        for t in 3..40u16 {
            for layer in 0..2u8 {
                let key = layer == 1 && t == 36;
                let (info, payload) = packet(layer, 100 * u16::from(layer) + t, u32::from(t) * 3000, key);
                let out = f.on_packet(ms(u64::from(t) * 33), &info, payload);
                asked.extend(out.iter().filter(|o| matches!(o, Out::Keyframe { .. })).cloned());
                got.extend(sent(&out, A));
            }
        }
        assert!(asked.contains(&Out::Keyframe { layer: 1 }), "{asked:?}");
        assert_eq!(f.current_layer(A), Some(1));
        let &(last_seq, ref last) = got.last().unwrap();
        assert_eq!(last, "L1#139");
        // The top layer comes back (with a key frame, as a browser starts a layer): A is on it
        // again from there.
        let (info, payload) = packet(2, 240, 40 * 3000, true);
        assert_eq!(sent(&f.on_packet(ms(40 * 33), &info, payload), A), [(last_seq + 1, "L2#240".into())]);
        assert_eq!(f.current_layer(A), Some(2));
    }

    #[test]
    fn nacks_are_answered_from_one_shared_cache() {
        let mut f = simulcast();
        f.subscribe(ms(0), A, Want::default());
        f.subscribe(ms(0), B, Want::default());
        for seq in 0..10u16 {
            let (info, payload) = packet(2, 1000 + seq, u32::from(seq) * 3000, seq == 0);
            f.on_packet(ms(0), &info, payload);
        }
        let out = f.on_nack(A, &[1003, 1007]);
        assert_eq!(sent(&out, A), [(1003, "L2#1003".into()), (1007, "L2#1007".into())]);
        assert!(sent(&out, B).is_empty(), "only the subscriber that asked");
        // Far older than the cache: asked of the publisher instead.
        let mut f2 = simulcast();
        f2.subscribe(ms(0), C, Want::default());
        for seq in 0..(CACHE_PACKETS as u16 + 10) {
            let (info, payload) = packet(2, seq, u32::from(seq), seq == 0);
            f2.on_packet(ms(0), &info, payload);
        }
        assert_eq!(f2.on_nack(C, &[2]), [Out::NackUpstream { layer: 2, seqs: vec![2] }]);
    }

    #[test]
    fn nacks_after_a_switch_map_back_to_the_right_layer() {
        let mut f = simulcast();
        f.subscribe(ms(0), A, Want::default());
        for (layer, seq, key) in [(2, 10, true), (2, 11, false)] {
            let (info, payload) = packet(layer, seq, 0, key);
            f.on_packet(ms(0), &info, payload);
        }
        f.set_want(ms(0), A, Want { max_layer: Some(0), bandwidth_bps: u64::MAX });
        for (layer, seq, key) in [(0, 300, true), (0, 301, false)] {
            let (info, payload) = packet(layer, seq, 0, key);
            f.on_packet(ms(0), &info, payload);
        }
        // Outgoing 10, 11 were layer 2; 12, 13 are layer 0's 300, 301.
        let out = f.on_nack(A, &[11, 13]);
        assert_eq!(sent(&out, A), [(11, "L2#11".into()), (13, "L0#301".into())]);
        // Each retransmission keeps the timestamp it was first sent with.
        let stamps: Vec<u32> = out
            .iter()
            .filter_map(|o| match o {
                Out::Send { packet, .. } => Some(packet.timestamp),
                _ => None,
            })
            .collect();
        assert_eq!(stamps, [0, SWITCH_TS_STEP], "layer 2 at its own time; layer 0 one frame after the switch");
    }

    #[test]
    fn key_frame_requests_are_rate_limited_per_layer() {
        let mut f = simulcast();
        f.subscribe(ms(0), A, Want::default());
        let (info, payload) = packet(2, 1, 0, true);
        f.on_packet(ms(0), &info, payload);
        f.subscribe(ms(0), B, Want::default());
        f.subscribe(ms(0), C, Want::default());
        let mut requests = 0;
        for (t, who) in [(10, A), (20, B), (30, C), (400, A)] {
            requests += f.on_keyframe_request(ms(t), who).len();
        }
        assert_eq!(requests, 0, "one request went out at subscribe time; the rest fall within 500 ms");
        assert_eq!(f.on_keyframe_request(ms(600), B), [Out::Keyframe { layer: 2 }]);
        assert!(f.on_keyframe_request(ms(700), C).is_empty());
        assert_eq!(f.on_keyframe_request(ms(1200), C), [Out::Keyframe { layer: 2 }]);
    }

    #[test]
    fn a_subscriber_still_waiting_for_a_key_frame_asks_again() {
        let mut f = Forwarder::new(vec![1_000_000]);
        assert_eq!(f.subscribe(ms(0), A, Want::default()), [Out::Keyframe { layer: 0 }]);
        // B subscribes while A's request is fresh: no request of its own.
        assert!(f.subscribe(ms(100), B, Want::default()).is_empty());
        // The key frame answering A's request arrives before B's stream is ready... and B is
        // removed and comes back (a renegotiation), missing it.
        let (info, payload) = packet(0, 1, 0, true);
        f.on_packet(ms(150), &info, payload);
        f.unsubscribe(B);
        assert!(f.subscribe(ms(200), B, Want::default()).is_empty(), "within 500 ms of the last request");
        // Delta frames: within the interval nothing is asked; after it, B's wait asks again, once.
        let (info, payload) = packet(0, 2, 3000, false);
        let out = f.on_packet(ms(300), &info, payload);
        assert_eq!(sent(&out, A), [(2, "L0#2".into())]);
        assert!(!out.contains(&Out::Keyframe { layer: 0 }));
        let (info, payload) = packet(0, 3, 6000, false);
        assert!(f.on_packet(ms(600), &info, payload).contains(&Out::Keyframe { layer: 0 }));
        let (info, payload) = packet(0, 4, 9000, false);
        assert!(!f.on_packet(ms(700), &info, payload).contains(&Out::Keyframe { layer: 0 }), "rate-limited");
        // Once B has its key frame, nobody waits: no more requests.
        let (info, payload) = packet(0, 5, 12000, true);
        assert_eq!(sent(&f.on_packet(ms(800), &info, payload), B), [(5, "L0#5".into())]);
        let (info, payload) = packet(0, 6, 15000, false);
        assert!(!f.on_packet(ms(2000), &info, payload).contains(&Out::Keyframe { layer: 0 }));
    }

    #[test]
    fn a_video_resumed_after_a_pause_moves_its_timestamps_on_by_the_pause() {
        let mut f = simulcast();
        f.subscribe(ms(0), A, Want { max_layer: Some(0), bandwidth_bps: u64::MAX });
        let mut stamps = Vec::new();
        for (t, seq, key) in [(0u64, 10u16, true), (33, 11, false)] {
            let (info, payload) = packet(0, seq, u32::from(seq) * 3000, key);
            stamps.extend(f.on_packet(ms(t), &info, payload).into_iter().filter_map(|o| match o {
                Out::Send { packet, .. } => Some(packet.timestamp),
                _ => None,
            }));
        }
        // The tile goes to another page for five seconds, then shows again.
        f.set_want(ms(40), A, Want { max_layer: None, bandwidth_bps: u64::MAX });
        let (info, payload) = packet(0, 12, 36_000, false);
        assert!(sent(&f.on_packet(ms(66), &info, payload), A).is_empty(), "paused");
        f.set_want(ms(5033), A, Want { max_layer: Some(0), bandwidth_bps: u64::MAX });
        let (info, payload) = packet(0, 160, 160 * 3000, true);
        let out = f.on_packet(ms(5033), &info, payload);
        let resumed: Vec<(u16, u32)> = out
            .iter()
            .filter_map(|o| match o {
                Out::Send { packet, .. } => Some((packet.seq, packet.timestamp)),
                _ => None,
            })
            .collect();
        assert_eq!(resumed.len(), 1);
        let (seq, ts) = resumed[0];
        assert_eq!(seq, 12, "the sequence goes on without a gap");
        assert_eq!(
            ts.wrapping_sub(stamps[1]),
            5000 * 90,
            "the timestamp moved on by the 5 s since the last frame sent"
        );
    }

    #[test]
    fn gaps_stay_gaps_and_late_packets_keep_their_place() {
        let mut f = Forwarder::new(vec![64_000]);
        f.subscribe(ms(0), A, Want::default());
        let mut got = Vec::new();
        for (seq, key) in [(65534u16, true), (65535, false), (1, false), (0, false), (2, false)] {
            let (info, payload) = packet(0, seq, 0, key);
            got.extend(sent(&f.on_packet(ms(0), &info, payload), A));
        }
        let seqs: Vec<u16> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [65534, 65535, 1, 0, 2], "wrapping, with the reordered packet forwarded as is");
    }
}
