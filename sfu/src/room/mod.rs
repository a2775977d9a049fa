//! A conference: who is in it, what they may do, and who receives what.
//!
//! Roles: organizer (one, who created it), moderators, presenters, participants, guests (joined
//! by link with only a name). Modes: a *meeting*, where everyone may publish (up to
//! [`MAX_VIDEO_STREAMS`] video streams), and a *webinar*, where only presenters (and moderators
//! and the organizer) publish and everyone else watches, raising a hand to be promoted. The mode
//! may change during the conference: tracks that may no longer be published stop.
//!
//! Moderation: the organizer and moderators mute a microphone or stop a camera or screen share
//! (the SFU stops forwarding it at once, and its owner may turn it back on only after being asked
//! to), lower raised hands, change roles (only the organizer makes or unmakes moderators), remove
//! participants, lock the conference (no one new joins, guests wait in the lobby) and end it.
//! Removal sticks: the removed account (every session it has in the call goes) is on the call's
//! ban list and its joins are refused until a moderator lets it back in ([`Room::admit`] with
//! the participant id it was removed under). The ban list lives as long as the call.
//!
//! Every change is an [`Event`] for the participants; packets become [`Action`]s. Tracks, who
//! receives them and at which layer are in `media.rs`; the call's data channel in `incall.rs`.

use std::collections::{BTreeMap, BTreeSet};

use veche_protocol::ids::AccountId;
use veche_protocol::incall::FromNode;
use veche_protocol::whiteboard::Board;

use crate::forward::Forwarder;
use crate::speaker::ActiveSpeaker;
use crate::{MediaKind, ParticipantId, TrackId};

mod incall;
mod media;

pub use incall::{SIGNAL_BURST, SIGNALS_PER_SEC};
/// Sessions in one call, the lobby included. A conference of 100 video tiles is already past what
/// the media plane forwards well (50 video streams at most); more sessions would only let one
/// member's or guest link's flood of joins grow one room's state and fan-out.
pub const MAX_PARTICIPANTS: usize = 100;

/// Why a removed account's join is refused.
pub const REMOVED: &str = "you were removed from this call; a moderator may let you back in";

pub use media::{AUDIO_BPS, MAX_VIDEO_STREAMS, VIEW_LAYER_0_MAX, VIEW_LAYER_1_MAX};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Guest,
    Participant,
    Presenter,
    Moderator,
    Organizer,
}

impl Role {
    fn moderates(self) -> bool {
        matches!(self, Role::Moderator | Role::Organizer)
    }

    fn presents(self) -> bool {
        self >= Role::Presenter
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Meeting,
    Webinar,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomError {
    /// No such participant or track.
    Unknown,
    /// The role or the mode does not allow it.
    Forbidden(&'static str),
    /// The conference is locked or ended, or full.
    Closed(&'static str),
}

/// Something the participants are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Joined {
        who: ParticipantId,
        role: Role,
    },
    Left {
        who: ParticipantId,
    },
    /// A guest waits in the lobby of a locked conference (for moderators).
    Waiting {
        who: ParticipantId,
    },
    Published {
        who: ParticipantId,
        track: TrackId,
        kind: MediaKind,
    },
    Unpublished {
        track: TrackId,
    },
    /// A moderator turned off someone's microphone, camera or screen share.
    MutedBy {
        who: ParticipantId,
        kind: MediaKind,
        by: ParticipantId,
    },
    /// A moderator asks `who` to turn it back on (only then may they).
    AskedToUnmute {
        who: ParticipantId,
        kind: MediaKind,
    },
    Unmuted {
        who: ParticipantId,
        kind: MediaKind,
    },
    RoleChanged {
        who: ParticipantId,
        role: Role,
    },
    HandRaised {
        who: ParticipantId,
    },
    HandLowered {
        who: ParticipantId,
        by: ParticipantId,
    },
    ModeChanged {
        mode: Mode,
    },
    Locked {
        locked: bool,
    },
    ActiveSpeaker {
        who: ParticipantId,
    },
    /// What `who` sends of `kind` is not forwarded (told to `who` only): the media plane tried
    /// to publish it and the room refused.
    PublishRefused {
        who: ParticipantId,
        kind: MediaKind,
        reason: &'static str,
    },
    Ended,
}

/// What the media loop does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Forward this packet to this participant on its stream of `track`.
    Send { to: ParticipantId, track: TrackId, packet: crate::forward::OutPacket },
    /// Ask the publisher of `track` for a key frame of `layer` (PLI).
    Keyframe { from: ParticipantId, track: TrackId, layer: u8 },
    /// Ask the publisher of `track` to retransmit (NACK).
    Nack { from: ParticipantId, track: TrackId, layer: u8, seqs: Vec<u16> },
    /// Tell every participant (or only `to`).
    Event { to: Option<ParticipantId>, event: Event },
    /// Close this participant's media session (removed, or the conference ended).
    Disconnect { who: ParticipantId },
    /// Send this on the data channel of every participant (or only `to`).
    Signal { to: Option<ParticipantId>, message: FromNode },
    /// `who` may send `kind` again: publish what it sends of it, if that waits unpublished (a
    /// screen share started again on the same stream).
    Resume { who: ParticipantId, kind: MediaKind },
}

#[derive(Debug)]
struct Participant {
    /// Whose session this is (an account may have several devices in a call).
    account: AccountId,
    role: Role,
    hand_raised: bool,
    /// Kinds a moderator turned off, and whether they asked to turn it back on.
    muted: BTreeMap<MediaKind, bool>,
    /// What the participant said it stopped sending (a screen share it stopped, a microphone it
    /// turned off).
    stopped: BTreeSet<MediaKind>,
    /// What may be sent to it, bits per second (its bandwidth estimate; MAX: unknown).
    bandwidth_bps: u64,
}

#[derive(Debug)]
struct Track {
    owner: ParticipantId,
    kind: MediaKind,
    forwarder: Forwarder,
    /// Sizes told by participants not subscribed yet (a subscriber learns of the track from our
    /// offer and may report its tile before its answer makes it a subscriber): applied when
    /// they subscribe.
    early_views: BTreeMap<ParticipantId, u16>,
}

/// One conference.
#[derive(Debug)]
pub struct Room {
    mode: Mode,
    locked: bool,
    /// Guests always wait in the lobby (a meeting's setting), locked or not.
    guest_lobby: bool,
    ended: bool,
    participants: BTreeMap<ParticipantId, Participant>,
    lobby: BTreeMap<ParticipantId, (AccountId, Role)>,
    /// Accounts a moderator removed, with the participant id they were removed under (the id
    /// the moderators know them by, to let them back in).
    banned: BTreeMap<AccountId, ParticipantId>,
    tracks: BTreeMap<TrackId, Track>,
    next_track: u32,
    speaker: ActiveSpeaker,
    board: Board,
    budgets: BTreeMap<ParticipantId, incall::Budget>,
}

fn to_all(event: Event) -> Action {
    Action::Event { to: None, event }
}

impl Room {
    pub fn new(mode: Mode) -> Self {
        Room {
            mode,
            locked: false,
            guest_lobby: false,
            ended: false,
            participants: BTreeMap::new(),
            lobby: BTreeMap::new(),
            banned: BTreeMap::new(),
            tracks: BTreeMap::new(),
            next_track: 1,
            speaker: ActiveSpeaker::default(),
            board: Board::default(),
            budgets: BTreeMap::new(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn role(&self, who: ParticipantId) -> Option<Role> {
        self.participants.get(&who).map(|p| p.role)
    }

    pub fn locked(&self) -> bool {
        self.locked
    }

    /// Whether `who` waits in the lobby.
    pub fn waiting(&self, who: ParticipantId) -> bool {
        self.lobby.contains_key(&who)
    }

    /// Makes guests wait in the lobby even while the conference is not locked (set when it
    /// opens, from the meeting's settings).
    pub fn set_guest_lobby(&mut self, on: bool) {
        self.guest_lobby = on;
    }

    fn moderator(&self, who: ParticipantId) -> Result<Role, RoomError> {
        let role = self.role(who).ok_or(RoomError::Unknown)?;
        if !role.moderates() {
            return Err(RoomError::Forbidden("only the organizer and moderators do this"));
        }
        Ok(role)
    }

    /// Whether `account` was removed from this call (and not let back in).
    pub fn is_banned(&self, account: &AccountId) -> bool {
        self.banned.contains_key(account)
    }

    /// Joins as `account`. In a locked conference, guests wait in the lobby for a moderator;
    /// others may not join at all unless they moderate. With a guest lobby, guests always wait.
    /// Joining again (someone admitted from the lobby opening its media session) changes
    /// nothing. An account a moderator removed is refused, lobby or not.
    pub fn join(&mut self, who: ParticipantId, account: AccountId, role: Role) -> Result<Vec<Action>, RoomError> {
        if self.ended {
            return Err(RoomError::Closed("the conference has ended"));
        }
        if self.participants.contains_key(&who) {
            return Ok(Vec::new());
        }
        if self.lobby.contains_key(&who) {
            return Ok(Vec::new());
        }
        if self.is_banned(&account) {
            return Err(RoomError::Forbidden(REMOVED));
        }
        if self.participants.len() + self.lobby.len() >= MAX_PARTICIPANTS {
            return Err(RoomError::Closed("the call is full"));
        }
        if role == Role::Guest && self.guest_lobby && !self.locked {
            return Ok(self.send_to_lobby(who, account, role));
        }
        if role == Role::Organizer && self.participants.values().any(|p| p.role == Role::Organizer) {
            return Err(RoomError::Forbidden("a conference has one organizer"));
        }
        if self.locked && !role.moderates() {
            if role == Role::Guest {
                return Ok(self.send_to_lobby(who, account, role));
            }
            return Err(RoomError::Closed("the conference is locked"));
        }
        Ok(self.admit_as(who, account, role))
    }

    /// `who` waits in the lobby; the moderators are told.
    fn send_to_lobby(&mut self, who: ParticipantId, account: AccountId, role: Role) -> Vec<Action> {
        self.lobby.insert(who, (account, role));
        let waiting = Event::Waiting { who };
        let moderators: Vec<ParticipantId> =
            self.participants.iter().filter(|(_, p)| p.role.moderates()).map(|(id, _)| *id).collect();
        moderators.into_iter().map(|to| Action::Event { to: Some(to), event: waiting.clone() }).collect()
    }

    fn admit_as(&mut self, who: ParticipantId, account: AccountId, role: Role) -> Vec<Action> {
        self.participants.insert(
            who,
            Participant {
                account,
                role,
                hand_raised: false,
                muted: BTreeMap::new(),
                stopped: BTreeSet::new(),
                bandwidth_bps: u64::MAX,
            },
        );
        vec![to_all(Event::Joined { who, role })]
    }

    /// A moderator lets a guest in from the lobby, or lets someone they removed (named by the
    /// participant id they were removed under) join again.
    pub fn admit(&mut self, by: ParticipantId, who: ParticipantId) -> Result<Vec<Action>, RoomError> {
        self.moderator(by)?;
        if let Some((account, role)) = self.lobby.remove(&who) {
            return Ok(self.admit_as(who, account, role));
        }
        let before = self.banned.len();
        self.banned.retain(|_, removed_as| *removed_as != who);
        if self.banned.len() == before {
            return Err(RoomError::Unknown);
        }
        Ok(Vec::new())
    }

    /// May `who` publish `kind` now?
    fn may_publish(&self, who: ParticipantId, kind: MediaKind) -> Result<(), RoomError> {
        self.may_send(who, kind)?;
        let p = self.participants.get(&who).ok_or(RoomError::Unknown)?;
        if kind == MediaKind::Screen && p.stopped.contains(&kind) {
            return Err(RoomError::Forbidden("the screen share was stopped"));
        }
        Ok(())
    }

    /// May `who` turn `kind` on: its role, the mode and the moderators allow it.
    fn may_send(&self, who: ParticipantId, kind: MediaKind) -> Result<(), RoomError> {
        let p = self.participants.get(&who).ok_or(RoomError::Unknown)?;
        if self.mode == Mode::Webinar && !p.role.presents() {
            return Err(RoomError::Forbidden("in a webinar only presenters publish; raise your hand"));
        }
        if p.muted.contains_key(&kind) && !p.muted.get(&kind).copied().unwrap_or(false) {
            return Err(RoomError::Forbidden("a moderator turned this off; wait to be asked to turn it on"));
        }
        Ok(())
    }

    /// The participant turned its microphone, camera or screen share on or off (the device says
    /// so on the data channel). A screen share comes and goes: stopped, its track is unpublished
    /// (everyone's screen-share view closes); started again on the same stream, it is published
    /// again ([`Action::Resume`]). Turning something on that a moderator turned off needs their
    /// ask first; then everyone is told it is back (`Unmuted`).
    pub fn set_sending(&mut self, who: ParticipantId, kind: MediaKind, on: bool) -> Result<Vec<Action>, RoomError> {
        if on {
            self.may_send(who, kind)?;
        }
        let p = self.participants.get_mut(&who).ok_or(RoomError::Unknown)?;
        let mut out = Vec::new();
        if on {
            p.stopped.remove(&kind);
            if p.muted.remove(&kind).is_some() {
                out.push(to_all(Event::Unmuted { who, kind }));
            }
            out.push(Action::Resume { who, kind });
        } else {
            p.stopped.insert(kind);
            if kind == MediaKind::Screen {
                out.extend(self.unpublish_kind(who, kind));
            }
        }
        Ok(out)
    }

    /// A moderator turns off someone's microphone, camera or screen share.
    pub fn mute(&mut self, by: ParticipantId, who: ParticipantId, kind: MediaKind) -> Result<Vec<Action>, RoomError> {
        let by_role = self.moderator(by)?;
        let target = self.participants.get_mut(&who).ok_or(RoomError::Unknown)?;
        if target.role == Role::Organizer && by_role != Role::Organizer {
            return Err(RoomError::Forbidden("nobody mutes the organizer"));
        }
        target.muted.insert(kind, false);
        let mut out = vec![to_all(Event::MutedBy { who, kind, by })];
        if kind == MediaKind::Screen {
            // A stopped screen share leaves everyone's screen-share view.
            out.extend(self.unpublish_kind(who, kind));
        }
        Ok(out)
    }

    /// A moderator asks someone to turn their microphone (camera, screen) back on.
    pub fn ask_to_unmute(
        &mut self,
        by: ParticipantId,
        who: ParticipantId,
        kind: MediaKind,
    ) -> Result<Vec<Action>, RoomError> {
        self.moderator(by)?;
        let target = self.participants.get_mut(&who).ok_or(RoomError::Unknown)?;
        if let Some(asked) = target.muted.get_mut(&kind) {
            *asked = true;
        }
        Ok(vec![Action::Event { to: Some(who), event: Event::AskedToUnmute { who, kind } }])
    }

    pub fn raise_hand(&mut self, who: ParticipantId) -> Result<Vec<Action>, RoomError> {
        let p = self.participants.get_mut(&who).ok_or(RoomError::Unknown)?;
        p.hand_raised = true;
        Ok(vec![to_all(Event::HandRaised { who })])
    }

    /// Lowers a hand: its owner, or a moderator.
    pub fn lower_hand(&mut self, by: ParticipantId, who: ParticipantId) -> Result<Vec<Action>, RoomError> {
        if by != who {
            self.moderator(by)?;
        }
        let p = self.participants.get_mut(&who).ok_or(RoomError::Unknown)?;
        p.hand_raised = false;
        Ok(vec![to_all(Event::HandLowered { who, by })])
    }

    /// Changes a role. Moderators promote and demote participants and presenters; only the
    /// organizer makes or unmakes moderators; the organizer's role does not change. A demoted
    /// presenter in a webinar stops publishing.
    pub fn set_role(&mut self, by: ParticipantId, who: ParticipantId, role: Role) -> Result<Vec<Action>, RoomError> {
        let by_role = self.moderator(by)?;
        let current = self.role(who).ok_or(RoomError::Unknown)?;
        if current == Role::Organizer || role == Role::Organizer {
            return Err(RoomError::Forbidden("the organizer's role does not change"));
        }
        if (current == Role::Moderator || role == Role::Moderator) && by_role != Role::Organizer {
            return Err(RoomError::Forbidden("only the organizer makes or unmakes moderators"));
        }
        let mut out = vec![to_all(Event::RoleChanged { who, role })];
        if let Some(p) = self.participants.get_mut(&who) {
            p.role = role;
            if role.presents() && p.hand_raised {
                p.hand_raised = false;
                out.push(to_all(Event::HandLowered { who, by }));
            }
        }
        out.extend(self.stop_forbidden_tracks());
        Ok(out)
    }

    /// Switches between meeting and webinar.
    pub fn set_mode(&mut self, by: ParticipantId, mode: Mode) -> Result<Vec<Action>, RoomError> {
        self.moderator(by)?;
        self.mode = mode;
        let mut out = vec![to_all(Event::ModeChanged { mode })];
        out.extend(self.stop_forbidden_tracks());
        Ok(out)
    }

    /// Unpublishes every track its owner may no longer publish, and tells the owner why.
    fn stop_forbidden_tracks(&mut self) -> Vec<Action> {
        let stopped: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| {
                let role = self.participants.get(&t.owner).map(|p| p.role);
                self.mode == Mode::Webinar && !role.is_some_and(Role::presents)
            })
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for track in stopped {
            let Some(t) = self.tracks.remove(&track) else { continue };
            out.push(to_all(Event::Unpublished { track }));
            if let Err(RoomError::Forbidden(reason)) = self.may_publish(t.owner, t.kind) {
                out.push(Action::Event {
                    to: Some(t.owner),
                    event: Event::PublishRefused { who: t.owner, kind: t.kind, reason },
                });
            }
        }
        out
    }

    pub fn lock(&mut self, by: ParticipantId, locked: bool) -> Result<Vec<Action>, RoomError> {
        self.moderator(by)?;
        self.locked = locked;
        Ok(vec![to_all(Event::Locked { locked })])
    }

    /// Removes a participant (a moderator; nobody removes the organizer), or one leaves (`by ==
    /// who`). A removal by a moderator (from the call or its lobby) bans the account: its other
    /// sessions in the call go too, and it may not join again until a moderator admits it.
    pub fn remove(&mut self, by: ParticipantId, who: ParticipantId) -> Result<Vec<Action>, RoomError> {
        let account = match (self.lobby.get(&who), self.participants.get(&who)) {
            (Some((account, _)), _) => *account,
            (None, Some(p)) => p.account,
            (None, None) => return Err(RoomError::Unknown),
        };
        if by == who {
            return Ok(self.drop_session(who, false));
        }
        self.moderator(by)?;
        if self.role(who) == Some(Role::Organizer) {
            return Err(RoomError::Forbidden("nobody removes the organizer"));
        }
        self.banned.insert(account, who);
        let others: Vec<ParticipantId> = self
            .lobby
            .iter()
            .filter(|(_, (a, _))| *a == account)
            .map(|(id, _)| *id)
            .chain(self.participants.iter().filter(|(_, p)| p.account == account).map(|(id, _)| *id))
            .filter(|id| *id != who)
            .collect();
        let mut out = self.drop_session(who, true);
        for other in others {
            out.extend(self.drop_session(other, true));
        }
        Ok(out)
    }

    /// Forgets one session (from the lobby or the call) and its tracks; `disconnect`: the room
    /// closes it (someone else removed it).
    fn drop_session(&mut self, who: ParticipantId, disconnect: bool) -> Vec<Action> {
        let mut out = Vec::new();
        if self.lobby.remove(&who).is_none() {
            self.participants.remove(&who);
            self.speaker.remove(who);
            self.budgets.remove(&who);
            let theirs: Vec<TrackId> = self.tracks.iter().filter(|(_, t)| t.owner == who).map(|(id, _)| *id).collect();
            for track in theirs {
                self.tracks.remove(&track);
                out.push(to_all(Event::Unpublished { track }));
            }
            for t in self.tracks.values_mut() {
                t.forwarder.unsubscribe(who);
                t.early_views.remove(&who);
            }
        }
        out.push(to_all(Event::Left { who }));
        if disconnect {
            out.push(Action::Disconnect { who });
        }
        out
    }

    /// Ends the conference for everyone (a moderator).
    pub fn end(&mut self, by: ParticipantId) -> Result<Vec<Action>, RoomError> {
        self.moderator(by)?;
        self.ended = true;
        self.tracks.clear();
        let mut out = vec![to_all(Event::Ended)];
        out.extend(self.participants.keys().map(|who| Action::Disconnect { who: *who }));
        self.participants.clear();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Instant;
    use crate::forward::{PacketInfo, Want};
    use std::sync::Arc;
    use std::time::Duration;

    const ORG: ParticipantId = ParticipantId(1);
    const MOD: ParticipantId = ParticipantId(2);
    const ANN: ParticipantId = ParticipantId(3);
    const BOB: ParticipantId = ParticipantId(4);
    const GUEST: ParticipantId = ParticipantId(5);

    /// The account of a test participant (one account per participant unless a test says so).
    pub(super) fn acct(p: ParticipantId) -> AccountId {
        AccountId([p.0 as u8; 32])
    }

    fn room(mode: Mode) -> Room {
        let mut r = Room::new(mode);
        for (who, role) in
            [(ORG, Role::Organizer), (MOD, Role::Moderator), (ANN, Role::Participant), (BOB, Role::Participant)]
        {
            r.join(who, acct(who), role).unwrap();
        }
        r
    }

    fn audio(seq: u16, level: u8) -> (PacketInfo, Arc<[u8]>) {
        let info = PacketInfo {
            layer: 0,
            seq,
            timestamp: u32::from(seq) * 960,
            marker: false,
            keyframe_start: true,
            audio_level: Some(level),
        };
        (info, Arc::from(vec![seq as u8; 20]))
    }

    fn delivered_to(actions: &[Action]) -> Vec<ParticipantId> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { to, .. } => Some(*to),
                _ => None,
            })
            .collect()
    }

    fn ms(n: u64) -> Instant {
        Duration::from_millis(n)
    }

    /// Key frames of every layer of a simulcast camera at `at`, lowest first: the layer each
    /// subscriber receives after them (one still on the old layer receives its packet, then
    /// switches at the new layer's key frame).
    fn layers_received(r: &mut Room, at: u64, cam: TrackId, seq: u16) -> Vec<(ParticipantId, u8)> {
        let mut got = BTreeMap::new();
        for layer in 0..3u8 {
            let info = PacketInfo {
                layer,
                seq: seq + u16::from(layer) * 1000,
                timestamp: u32::from(seq) * 3000,
                marker: true,
                keyframe_start: true,
                audio_level: None,
            };
            for to in delivered_to(&r.on_packet(ms(at), cam, &info, Arc::from(vec![layer; 100]))) {
                got.insert(to, layer);
            }
        }
        got.into_iter().collect()
    }

    #[test]
    fn each_subscriber_gets_the_layer_its_bandwidth_and_tile_size_allow() {
        let mut r = room(Mode::Meeting);
        let (cam, _) = r.publish(ANN, MediaKind::Video, vec![150_000, 500_000, 1_500_000]).unwrap();
        let (mic, _) = r.publish(ANN, MediaKind::Audio, vec![64_000]).unwrap();
        for who in [ORG, BOB] {
            r.subscribe(ms(0), who, cam, Want::default()).unwrap();
            r.subscribe(ms(0), who, mic, Want::default()).unwrap();
        }
        // No estimate yet: the top layer for both.
        assert_eq!(layers_received(&mut r, 0, cam, 1), vec![(ORG, 2), (BOB, 2)]);
        // Bob's estimate drops to 700 kbit/s: after audio, 636 kbit/s for the camera, so the middle
        // layer (from its next key frame; a key frame request goes out for it).
        let actions = r.set_bandwidth(ms(10), BOB, 700_000);
        assert!(actions.contains(&Action::Keyframe { from: ANN, track: cam, layer: 1 }), "{actions:?}");
        assert_eq!(layers_received(&mut r, 20, cam, 2), vec![(ORG, 2), (BOB, 1)]);
        // Very low: the lowest layer still (never nothing for lack of bandwidth).
        r.set_bandwidth(ms(30), BOB, 90_000);
        assert_eq!(layers_received(&mut r, 40, cam, 3), vec![(ORG, 2), (BOB, 0)]);
        // Back up: the top again.
        r.set_bandwidth(ms(50), BOB, 5_000_000);
        assert_eq!(layers_received(&mut r, 60, cam, 4), vec![(ORG, 2), (BOB, 2)]);

        // The organizer shows Ann in a small tile, then not at all (another page), then large.
        r.set_view(ms(70), ORG, cam, 180).unwrap();
        assert_eq!(layers_received(&mut r, 80, cam, 5), vec![(ORG, 0), (BOB, 2)]);
        r.set_view(ms(90), ORG, cam, 0).unwrap();
        assert_eq!(layers_received(&mut r, 100, cam, 6), vec![(BOB, 2)], "a hidden tile gets nothing");
        r.set_view(ms(110), ORG, cam, 1080).unwrap();
        assert_eq!(layers_received(&mut r, 120, cam, 7), vec![(ORG, 2), (BOB, 2)]);
        assert_eq!(r.set_view(ms(130), ANN, cam, 100), Err(RoomError::Unknown), "nobody receives their own");
    }

    #[test]
    fn a_size_told_before_subscribing_applies_when_it_subscribes() {
        let mut r = room(Mode::Meeting);
        let (cam, _) = r.publish(ANN, MediaKind::Video, vec![150_000, 500_000, 1_500_000]).unwrap();
        // The organizer has our offer with Ann's camera and puts it on another page of its grid
        // before its answer makes it a subscriber; Bob shows it small.
        assert_eq!(r.set_view(ms(0), ORG, cam, 0), Ok(Vec::new()));
        assert_eq!(r.set_view(ms(0), BOB, cam, 150), Ok(Vec::new()));
        r.subscribe(ms(10), ORG, cam, Want::default()).unwrap();
        r.subscribe(ms(10), BOB, cam, Want::default()).unwrap();
        assert_eq!(layers_received(&mut r, 20, cam, 1), vec![(BOB, 0)], "the hidden tile gets nothing");
        // Once shown, it does.
        r.set_view(ms(30), ORG, cam, 720).unwrap();
        assert_eq!(layers_received(&mut r, 40, cam, 2), vec![(ORG, 2), (BOB, 0)]);
        // A size told by someone who left is forgotten with them.
        let (mic, _) = r.publish(ANN, MediaKind::Audio, vec![64_000]).unwrap();
        r.set_view(ms(50), BOB, mic, 0).unwrap();
        r.remove(BOB, BOB).unwrap();
        assert_eq!(r.set_view(ms(60), BOB, cam, 0), Err(RoomError::Unknown));
        assert!(r.tracks.values().all(|t| t.early_views.is_empty()));
    }

    #[test]
    fn a_subscribers_bandwidth_is_shared_among_the_videos_it_shows() {
        let mut r = room(Mode::Meeting);
        let (ann_cam, _) = r.publish(ANN, MediaKind::Video, vec![150_000, 500_000, 1_500_000]).unwrap();
        let (bob_cam, _) = r.publish(BOB, MediaKind::Video, vec![150_000, 500_000, 1_500_000]).unwrap();
        r.subscribe(ms(0), ORG, ann_cam, Want::default()).unwrap();
        r.subscribe(ms(0), ORG, bob_cam, Want::default()).unwrap();
        // 1.2 Mbit/s for two cameras: 600 kbit/s each, the middle layers.
        r.set_bandwidth(ms(0), ORG, 1_200_000);
        assert_eq!(layers_received(&mut r, 10, ann_cam, 1), vec![(ORG, 1)]);
        assert_eq!(layers_received(&mut r, 10, bob_cam, 1), vec![(ORG, 1)]);
        // Bob's tile goes off screen: Ann's camera gets all of it, the top layer.
        r.set_view(ms(20), ORG, bob_cam, 0).unwrap();
        assert_eq!(layers_received(&mut r, 30, ann_cam, 2), vec![(ORG, 1)], "1.2 Mbit/s is under the top layer");
        r.set_bandwidth(ms(40), ORG, 1_600_000);
        assert_eq!(layers_received(&mut r, 50, ann_cam, 3), vec![(ORG, 2)]);
        assert!(layers_received(&mut r, 50, bob_cam, 3).is_empty());
    }

    #[test]
    fn a_muted_microphone_stops_being_forwarded_until_its_owner_is_asked_and_turns_it_on() {
        let mut r = room(Mode::Meeting);
        let (mic, _) = r.publish(ANN, MediaKind::Audio, vec![64_000]).unwrap();
        r.subscribe(ms(0), BOB, mic, Want::default()).unwrap();
        r.subscribe(ms(0), ORG, mic, Want::default()).unwrap();
        let (info, payload) = audio(1, 30);
        let mut got = delivered_to(&r.on_packet(ms(0), mic, &info, payload));
        got.sort();
        assert_eq!(got, [ORG, BOB]);

        assert_eq!(
            r.mute(BOB, ANN, MediaKind::Audio),
            Err(RoomError::Forbidden("only the organizer and moderators do this"))
        );
        let events = r.mute(MOD, ANN, MediaKind::Audio).unwrap();
        assert_eq!(events, [to_all(Event::MutedBy { who: ANN, kind: MediaKind::Audio, by: MOD })]);
        let (info, payload) = audio(2, 30);
        assert!(delivered_to(&r.on_packet(ms(20), mic, &info, payload)).is_empty(), "muted: nothing forwarded");
        assert!(r.set_sending(ANN, MediaKind::Audio, true).is_err(), "not before being asked");
        r.ask_to_unmute(MOD, ANN, MediaKind::Audio).unwrap();
        let actions = r.set_sending(ANN, MediaKind::Audio, true).unwrap();
        assert!(actions.contains(&to_all(Event::Unmuted { who: ANN, kind: MediaKind::Audio })), "{actions:?}");
        let (info, payload) = audio(3, 30);
        assert_eq!(delivered_to(&r.on_packet(ms(40), mic, &info, payload)).len(), 2, "forwarded again");
        // Off and on again by herself: nobody needs to be told it is unmuted.
        r.set_sending(ANN, MediaKind::Audio, false).unwrap();
        assert_eq!(
            r.set_sending(ANN, MediaKind::Audio, true).unwrap(),
            [Action::Resume { who: ANN, kind: MediaKind::Audio }]
        );
    }

    #[test]
    fn a_stopped_screen_share_is_unpublished_and_published_again_when_it_starts_again() {
        let mut r = room(Mode::Meeting);
        let (screen, _) = r.publish(ANN, MediaKind::Screen, vec![1_500_000]).unwrap();
        let (cam, _) = r.publish(ANN, MediaKind::Video, vec![1_500_000]).unwrap();
        assert_eq!(
            r.set_sending(ANN, MediaKind::Screen, false).unwrap(),
            [to_all(Event::Unpublished { track: screen })]
        );
        // What is still on its stream (in flight, or a device that goes on sending) is not
        // published again by itself.
        assert_eq!(
            r.publish(ANN, MediaKind::Screen, vec![1_500_000]),
            Err(RoomError::Forbidden("the screen share was stopped"))
        );
        assert!(r.tracks.contains_key(&cam) && !r.tracks.contains_key(&screen), "her camera stays");
        // Started again: the media plane publishes the stream again.
        assert_eq!(
            r.set_sending(ANN, MediaKind::Screen, true).unwrap(),
            [Action::Resume { who: ANN, kind: MediaKind::Screen }]
        );
        let (again, actions) = r.publish(ANN, MediaKind::Screen, vec![1_500_000]).unwrap();
        assert_eq!(actions, [to_all(Event::Published { who: ANN, track: again, kind: MediaKind::Screen })]);

        // A moderator stops it: it is unpublished, and she may share again only when asked.
        let actions = r.mute(MOD, ANN, MediaKind::Screen).unwrap();
        assert_eq!(
            actions,
            [
                to_all(Event::MutedBy { who: ANN, kind: MediaKind::Screen, by: MOD }),
                to_all(Event::Unpublished { track: again })
            ]
        );
        assert!(matches!(r.set_sending(ANN, MediaKind::Screen, true), Err(RoomError::Forbidden(_))));
        assert!(matches!(r.publish(ANN, MediaKind::Screen, vec![1_500_000]), Err(RoomError::Forbidden(_))));
        r.ask_to_unmute(MOD, ANN, MediaKind::Screen).unwrap();
        let actions = r.set_sending(ANN, MediaKind::Screen, true).unwrap();
        assert_eq!(
            actions,
            [
                to_all(Event::Unmuted { who: ANN, kind: MediaKind::Screen }),
                Action::Resume { who: ANN, kind: MediaKind::Screen }
            ]
        );
        assert!(r.publish(ANN, MediaKind::Screen, vec![1_500_000]).is_ok());

        // In a webinar a viewer cannot start one.
        r.set_mode(ORG, Mode::Webinar).unwrap();
        assert!(matches!(r.set_sending(BOB, MediaKind::Screen, true), Err(RoomError::Forbidden(_))));
    }

    #[test]
    fn webinar_viewers_cannot_publish_and_a_switch_to_webinar_stops_their_tracks() {
        let mut r = room(Mode::Webinar);
        assert!(matches!(r.publish(ANN, MediaKind::Audio, vec![64_000]), Err(RoomError::Forbidden(_))));
        assert!(matches!(r.publish(ANN, MediaKind::Screen, vec![1_000_000]), Err(RoomError::Forbidden(_))));
        // A raised hand, then promotion: now Ann presents.
        r.raise_hand(ANN).unwrap();
        let actions = r.set_role(MOD, ANN, Role::Presenter).unwrap();
        assert!(actions.contains(&to_all(Event::HandLowered { who: ANN, by: MOD })), "{actions:?}");
        let (cam, _) = r.publish(ANN, MediaKind::Video, vec![150_000, 500_000]).unwrap();
        // In a meeting Bob publishes too; back to webinar, his track stops, Ann's stays.
        r.set_mode(ORG, Mode::Meeting).unwrap();
        let (bob_mic, _) = r.publish(BOB, MediaKind::Audio, vec![64_000]).unwrap();
        let actions = r.set_mode(MOD, Mode::Webinar).unwrap();
        assert!(actions.contains(&to_all(Event::Unpublished { track: bob_mic })), "{actions:?}");
        assert!(!actions.contains(&to_all(Event::Unpublished { track: cam })));
        // Bob is told why (only Bob).
        let told: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Event { to, event: Event::PublishRefused { who, kind, .. } } => Some((*to, *who, *kind)),
                _ => None,
            })
            .collect();
        assert_eq!(told, vec![(Some(BOB), BOB, MediaKind::Audio)]);
        r.subscribe(ms(0), ORG, cam, Want::default()).unwrap();
        assert_eq!(r.subscribe(ms(0), ORG, bob_mic, Want::default()), Err(RoomError::Unknown));
        // Demoting Ann stops her camera, and she is told; a promotion without a raised hand
        // lowers nothing.
        let actions = r.set_role(MOD, ANN, Role::Participant).unwrap();
        assert!(actions.contains(&to_all(Event::Unpublished { track: cam })));
        assert!(
            actions.iter().any(|a| matches!(a, Action::Event { to: Some(ANN), event: Event::PublishRefused { .. } }))
        );
        let actions = r.set_role(MOD, ANN, Role::Presenter).unwrap();
        assert_eq!(actions, vec![to_all(Event::RoleChanged { who: ANN, role: Role::Presenter })]);
    }

    #[test]
    fn roles_only_the_organizer_makes_moderators_and_nobody_removes_the_organizer() {
        let mut r = room(Mode::Meeting);
        assert!(r.set_role(MOD, ANN, Role::Moderator).is_err());
        r.set_role(ORG, ANN, Role::Moderator).unwrap();
        assert!(r.set_role(ANN, MOD, Role::Participant).is_err(), "a moderator does not demote a moderator");
        assert!(r.remove(MOD, ORG).is_err());
        assert!(r.mute(MOD, ORG, MediaKind::Audio).is_err());
        let actions = r.remove(MOD, BOB).unwrap();
        assert!(actions.contains(&Action::Disconnect { who: BOB }));
        assert!(r.join(ParticipantId(9), acct(ParticipantId(9)), Role::Organizer).is_err(), "one organizer");
    }

    #[test]
    fn a_locked_meeting_keeps_guests_in_the_lobby_until_a_moderator_admits_them() {
        let mut r = room(Mode::Meeting);
        r.lock(ORG, true).unwrap();
        let actions = r.join(GUEST, acct(GUEST), Role::Guest).unwrap();
        let told: Vec<Option<ParticipantId>> = actions
            .iter()
            .map(|a| match a {
                Action::Event { to, .. } => *to,
                _ => None,
            })
            .collect();
        assert_eq!(told, [Some(ORG), Some(MOD)], "moderators see the waiting guest");
        assert_eq!(r.role(GUEST), None);
        assert!(r.join(ParticipantId(8), acct(ParticipantId(8)), Role::Participant).is_err());
        r.admit(MOD, GUEST).unwrap();
        assert_eq!(r.role(GUEST), Some(Role::Guest));
        // A guest moderates nothing.
        assert!(r.mute(GUEST, ANN, MediaKind::Audio).is_err());
        assert!(r.lower_hand(GUEST, ANN).is_err());
    }

    #[test]
    fn a_guest_lobby_holds_guests_only_and_a_moderator_turns_one_away() {
        let mut r = room(Mode::Meeting);
        r.set_guest_lobby(true);
        assert!(
            r.join(ParticipantId(8), acct(ParticipantId(8)), Role::Participant).is_ok(),
            "members come straight in"
        );
        assert_eq!(r.role(ParticipantId(8)), Some(Role::Participant));
        r.join(GUEST, acct(GUEST), Role::Guest).unwrap();
        assert!(r.waiting(GUEST));
        assert_eq!(
            r.join(GUEST, acct(GUEST), Role::Guest),
            Ok(Vec::new()),
            "asking again while waiting changes nothing"
        );
        // A participant may not turn a guest away; a moderator may.
        assert!(r.remove(ANN, GUEST).is_err());
        let out = r.remove(MOD, GUEST).unwrap();
        assert!(out.contains(&Action::Disconnect { who: GUEST }), "{out:?}");
        assert!(!r.waiting(GUEST));
        assert_eq!(r.join(GUEST, acct(GUEST), Role::Guest), Err(RoomError::Forbidden(REMOVED)), "turned away sticks");
        assert_eq!(r.admit(ANN, GUEST), Err(RoomError::Forbidden("only the organizer and moderators do this")));
        // Another guest is admitted, then joins with its media session: nothing new happens.
        let g2 = ParticipantId(9);
        r.join(g2, acct(g2), Role::Guest).unwrap();
        r.admit(ORG, g2).unwrap();
        assert_eq!(r.join(g2, acct(g2), Role::Guest), Ok(Vec::new()));
        assert_eq!(r.role(g2), Some(Role::Guest));
        // A guest who gives up waiting leaves without being disconnected by anyone.
        let g3 = ParticipantId(10);
        r.join(g3, acct(g3), Role::Guest).unwrap();
        assert_eq!(r.remove(g3, g3), Ok(vec![to_all(Event::Left { who: g3 })]));
    }

    #[test]
    fn a_removed_account_cannot_join_again_until_a_moderator_lets_it_back_in() {
        let mut r = room(Mode::Meeting);
        // Bob has a second device in the call; removing one of his sessions removes both.
        let bob_phone = ParticipantId(20);
        r.join(bob_phone, acct(BOB), Role::Participant).unwrap();
        let (cam, _) = r.publish(bob_phone, MediaKind::Video, vec![150_000]).unwrap();
        assert!(r.remove(ANN, BOB).is_err(), "a participant removes nobody");
        let out = r.remove(MOD, BOB).unwrap();
        for who in [BOB, bob_phone] {
            assert!(out.contains(&Action::Disconnect { who }), "{out:?}");
            assert!(out.contains(&to_all(Event::Left { who })), "{out:?}");
            assert_eq!(r.role(who), None);
        }
        assert!(out.contains(&to_all(Event::Unpublished { track: cam })), "{out:?}");
        // Every new session of his is refused, as a member or as a guest, lobby or not.
        for (id, role) in [(ParticipantId(21), Role::Participant), (ParticipantId(22), Role::Guest)] {
            assert_eq!(r.join(id, acct(BOB), role), Err(RoomError::Forbidden(REMOVED)));
        }
        r.set_guest_lobby(true);
        assert_eq!(r.join(ParticipantId(23), acct(BOB), Role::Guest), Err(RoomError::Forbidden(REMOVED)));
        assert!(!r.waiting(ParticipantId(23)));
        // Others are unaffected.
        assert!(r.join(ParticipantId(24), acct(ParticipantId(24)), Role::Participant).is_ok());
        assert!(r.role(ANN).is_some());
        // Leaving on one's own bans nothing.
        r.remove(ANN, ANN).unwrap();
        assert!(r.join(ParticipantId(25), acct(ANN), Role::Participant).is_ok());
        // Only a moderator lets him back in, by the id he was removed under.
        assert_eq!(r.admit(ANN, BOB), Err(RoomError::Unknown), "Ann left: she is nobody here");
        assert_eq!(
            r.admit(ParticipantId(24), BOB),
            Err(RoomError::Forbidden("only the organizer and moderators do this"))
        );
        assert_eq!(r.admit(ORG, bob_phone), Err(RoomError::Unknown), "he was removed as BOB");
        assert_eq!(r.admit(ORG, BOB), Ok(Vec::new()));
        assert!(!r.is_banned(&acct(BOB)));
        assert!(r.join(ParticipantId(26), acct(BOB), Role::Participant).is_ok());
    }

    #[test]
    fn a_call_holds_at_most_max_participants_sessions() {
        let mut r = Room::new(Mode::Meeting);
        for i in 0..MAX_PARTICIPANTS as u32 {
            r.join(ParticipantId(1000 + i), acct(ParticipantId(i)), Role::Participant).unwrap();
        }
        assert_eq!(
            r.join(ParticipantId(5000), acct(ParticipantId(5000)), Role::Participant),
            Err(RoomError::Closed("the call is full"))
        );
        r.remove(ParticipantId(1000), ParticipantId(1000)).unwrap();
        assert!(r.join(ParticipantId(5000), acct(ParticipantId(5000)), Role::Participant).is_ok());
    }

    #[test]
    fn ending_disconnects_everyone_and_nobody_joins_after() {
        let mut r = room(Mode::Meeting);
        assert!(r.end(ANN).is_err());
        let actions = r.end(ORG).unwrap();
        let gone = actions.iter().filter(|a| matches!(a, Action::Disconnect { .. })).count();
        assert_eq!(gone, 4);
        assert!(r.join(ParticipantId(7), acct(ParticipantId(7)), Role::Participant).is_err());
    }

    #[test]
    fn a_meeting_carries_at_most_fifty_video_streams() {
        let mut r = Room::new(Mode::Meeting);
        for i in 0..60 {
            r.join(ParticipantId(100 + i), acct(ParticipantId(100 + i)), Role::Participant).unwrap();
        }
        for i in 0..50 {
            r.publish(ParticipantId(100 + i), MediaKind::Video, vec![500_000]).unwrap();
        }
        assert!(matches!(r.publish(ParticipantId(150), MediaKind::Video, vec![500_000]), Err(RoomError::Closed(_))));
        assert!(r.publish(ParticipantId(150), MediaKind::Audio, vec![64_000]).is_ok(), "audio is not limited");
    }

    #[test]
    fn the_active_speaker_is_announced_from_audio_levels() {
        let mut r = room(Mode::Meeting);
        let (mic, _) = r.publish(ANN, MediaKind::Audio, vec![64_000]).unwrap();
        let mut announced = Vec::new();
        for i in 0..30u16 {
            let (info, payload) = audio(i, 20);
            for a in r.on_packet(ms(u64::from(i) * 20), mic, &info, payload) {
                if let Action::Event { event: Event::ActiveSpeaker { who }, .. } = a {
                    announced.push(who);
                }
            }
        }
        assert_eq!(announced, [ANN]);
    }

    #[test]
    fn nacks_and_keyframe_requests_reach_the_publisher_of_the_track() {
        let mut r = room(Mode::Meeting);
        let (cam, _) = r.publish(ANN, MediaKind::Video, vec![150_000]).unwrap();
        let actions = r.subscribe(ms(0), BOB, cam, Want::default()).unwrap();
        assert_eq!(actions, [Action::Keyframe { from: ANN, track: cam, layer: 0 }]);
        assert!(r.on_keyframe_request(ms(100), BOB, cam).is_empty(), "rate limited");
        assert_eq!(r.on_keyframe_request(ms(600), BOB, cam), [Action::Keyframe { from: ANN, track: cam, layer: 0 }]);
        assert_eq!(
            r.subscribe(ms(0), ANN, cam, Want::default()),
            Err(RoomError::Forbidden("you do not receive your own track"))
        );
    }
}
