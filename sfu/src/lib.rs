//! The media plane of the embedded SFU: the IO-free core.
//!
//! Everything here is a state machine: packets and requests go in with the current time, and
//! actions come out (forward this packet to that participant, ask that publisher for a key frame,
//! tell the room something happened). Nothing here touches a socket, a clock or a thread, so
//! every rule is tested deterministically (`tests` in each module). The media loop (which owns
//! the UDP socket, ICE, DTLS and SRTP through webrtc-rs' sans-IO `rtc` core) drives it.
//!
//! - [`room`]: who is in a conference, their roles, the mode (meeting or webinar), who may
//!   publish, moderation (mute, ask to unmute, hands, lock, end), and who receives what.
//! - [`forward`]: one published track's packets to its subscribers: simulcast layer choice that
//!   switches only at key frames, sequence number and timestamp rewriting so each subscriber sees
//!   one continuous stream, a packet cache shared by all subscribers for NACKs, and rate-limited
//!   key frame requests.
//! - [`speaker`]: the active speaker, from the audio-level header extension.
//! - [`demux`]: which peer a datagram on the one media port belongs to (STUN by the ICE ufrag
//!   it names, everything else only from addresses a peer's ICE agent accepted).
//! - [`media`]: the media sessions: one sans-IO webrtc-rs peer connection per participant on
//!   the one media port, feeding the room and writing what it forwards (still without sockets).
//! - [`media_loop`]: the thread that owns the media port's UDP socket and drives [`media`]:
//!   commands from the node over a bounded channel, events back on another.
//! - [`timers`]: one deadline per peer in a heap, so a tick wakes only peers with work.
//!
//! Layers and key frames come from what the edge parsed out of RTP headers and header extensions
//! ([`forward::PacketInfo`]); the core never reads codec payloads, so end-to-end encrypted media
//! can be added later without changing it.

pub mod batch;
pub mod demux;
pub mod forward;
pub mod media;
pub mod media_loop;
pub mod room;
pub mod speaker;
pub mod timers;

use std::time::Duration;

/// A participant of a conference (one per device connection), chosen by the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParticipantId(pub u32);

/// A conference (one room) on the node's media port, chosen by the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConferenceId(pub u32);

/// A published track (one per microphone, camera or screen share).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackId(pub u32);

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MediaKind {
    Audio,
    Video,
    /// A screen share: video, but its own track and its own permission.
    Screen,
}

/// A point in time, as the media loop's clock gives it (time since the loop started).
pub type Instant = Duration;

/// Deterministic pseudo-random bytes (xorshift32) for tests that throw garbage at the media port.
#[cfg(test)]
pub(crate) fn noise(state: &mut u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 17;
            *state ^= *state << 5;
            *state as u8
        })
        .collect()
}
