//! Calls: the signaling part of the wire protocol (spec/calls.md).
//!
//! A call belongs to a chat. A device joins with the SDP offer of its WebRTC peer connection
//! (what it sends) and gets the node's answer; when other participants' tracks come and go, the
//! node sends a new offer of its own ([`crate::wire::Event::CallOffer`]) and the device answers
//! ([`crate::wire::Request::CallAnswer`]). Media never passes through this connection: it flows
//! on the node's media port, DTLS-SRTP encrypted.

use serde::{Deserialize, Serialize};

use crate::ids::AccountId;

/// Largest SDP the node accepts, in bytes (a browser's offer with simulcast is about 10 KiB).
pub const MAX_SDP_BYTES: usize = 64 * 1024;

/// A participant's id in one call (chosen by the node; also in the media stream ids of the
/// node's offers: stream `p<participant>`, track `t<track>`).
pub type ParticipantId = u32;

/// What a published track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CallMedia {
    Audio,
    Video,
    Screen,
}

/// Whether everyone may publish (a meeting) or only presenters (a webinar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallMode {
    Meeting,
    Webinar,
}

/// A participant's role in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CallRole {
    Guest,
    Participant,
    Presenter,
    Moderator,
    Organizer,
}

/// Why a 1:1 call stopped ringing (told to the callee's devices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RingEnd {
    /// One of the callee's devices joined the call.
    Answered,
    /// One of the callee's devices declined it.
    Declined,
    /// Nobody answered in time.
    Missed,
    /// The caller gave up (left the call) before anyone answered.
    Cancelled,
}

/// Someone in a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallParticipant {
    pub participant: ParticipantId,
    pub account: AccountId,
    pub display_name: String,
    pub role: CallRole,
    /// Their hand is raised.
    #[serde(default)]
    pub hand_raised: bool,
    /// What a moderator turned off (and they have not turned back on since).
    #[serde(default)]
    pub muted: Vec<CallMedia>,
}

/// A track someone publishes in a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallTrack {
    pub track: u32,
    pub participant: ParticipantId,
    pub media: CallMedia,
}

/// The answer to joining a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallJoined {
    /// This device's id in the call.
    pub participant: ParticipantId,
    /// The node's SDP answer to the device's offer.
    pub answer: String,
    /// Everyone in the call, this device included.
    pub participants: Vec<CallParticipant>,
    /// Tracks already published (the node offers them to the device next).
    pub tracks: Vec<CallTrack>,
    pub mode: CallMode,
    pub locked: bool,
}

/// What the organizer or a moderator does to someone in the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallAction {
    /// Turns off their microphone, camera or screen share: the node stops forwarding it, and
    /// they may turn it back on only after being asked.
    Mute(CallMedia),
    /// Asks them to turn it back on (only then may they).
    AskToUnmute(CallMedia),
    /// Lowers their raised hand.
    LowerHand,
    /// Gives them a role (only the organizer makes moderators; nobody changes the organizer).
    SetRole(CallRole),
    /// Removes them from the call (or from the lobby, where they wait: they are turned away).
    Remove,
    /// Lets someone waiting in the lobby in.
    Admit,
}

/// A change to the whole call (the organizer or a moderator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallChange {
    /// Meeting or webinar; switching to a webinar stops what non-presenters publish.
    Mode(CallMode),
    /// A locked call lets nobody new in: guests wait in the lobby, others are refused.
    Lock(bool),
}

/// Something that happened in a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallUpdate {
    Joined(CallParticipant),
    Left {
        participant: ParticipantId,
    },
    Published(CallTrack),
    Unpublished {
        track: u32,
    },
    /// A moderator turned off someone's microphone, camera or screen share.
    Muted {
        participant: ParticipantId,
        media: CallMedia,
        by: ParticipantId,
    },
    Unmuted {
        participant: ParticipantId,
        media: CallMedia,
    },
    /// A moderator asks `participant` to turn `media` back on.
    AskedToUnmute {
        participant: ParticipantId,
        media: CallMedia,
    },
    RoleChanged {
        participant: ParticipantId,
        role: CallRole,
    },
    HandRaised {
        participant: ParticipantId,
    },
    HandLowered {
        participant: ParticipantId,
    },
    ActiveSpeaker {
        participant: ParticipantId,
    },
    /// Someone waits in the lobby (to the organizer and moderators).
    Waiting(CallParticipant),
    /// This device was let in from the lobby: join again (`CallJoin`) with a fresh offer.
    Admitted,
    ModeChanged {
        mode: CallMode,
    },
    Locked {
        locked: bool,
    },
    /// What this device tried to send is not forwarded (a webinar viewer's camera, a track a
    /// moderator turned off); `reason` says why. It is forwarded once allowed (promoted, asked).
    PublishRefused {
        media: CallMedia,
        reason: String,
    },
    /// The callee of this 1:1 call declined it.
    Declined,
    /// The callee of this 1:1 call is in another call.
    Busy,
    /// The callee of this 1:1 call did not answer in time.
    NoAnswer,
    /// This device's session in the call ended (removed, the call ended, or its connection to the
    /// media port failed); join again to come back.
    Disconnected,
    Ended,
}
