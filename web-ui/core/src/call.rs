//! The call a page is in, as its member sees it, and how the node's updates change it
//! (spec/calls.md).
//!
//! [`apply`] is the whole reducer of [`CallUpdate`]s: it changes the [`CallState`] and returns what
//! else the page must do as [`Effect`]s (name a tile, drop a screen share's tile, turn this device's
//! microphone off, tell the member, ...), which `web-ui/app` performs in that order. Nothing here
//! touches the browser, so every update is unit-tested natively.

use std::collections::{BTreeMap, BTreeSet};

use veche_protocol::call::{CallMedia, CallMode, CallParticipant, CallRole, CallTrack, CallUpdate, ParticipantId};
use veche_protocol::content::CallRecord;
use veche_protocol::ids::GroupId;

/// Where this device is with a call's lobby.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallLobby {
    /// Waiting for the organizer or a moderator to let it in.
    Waiting,
    /// Let in: it joins again with a fresh peer connection.
    Admitted,
}

/// The call this page is in.
#[derive(Debug, Clone, PartialEq)]
pub struct CallState {
    pub group: GroupId,
    /// This device's id in the call.
    pub me: ParticipantId,
    pub participants: BTreeMap<ParticipantId, CallParticipant>,
    /// What a moderator turned off: (participant, their microphone, camera or screen share).
    pub muted: BTreeSet<(ParticipantId, CallMedia)>,
    /// This device shares its screen.
    pub sharing: bool,
    /// Counts the times something turned this device's microphone or camera off from outside (a
    /// moderator, the node refusing to forward it): the buttons follow.
    pub turned_off: u32,
    /// Set while this device is in the call's lobby (then `participants` is empty).
    pub lobby: Option<CallLobby>,
    /// Who waits in the lobby (told to the organizer and moderators).
    pub waiting: BTreeMap<ParticipantId, CallParticipant>,
    /// Whose hand is raised.
    pub hands: BTreeSet<ParticipantId>,
    /// Published tracks: track id to what it is.
    pub tracks: BTreeMap<u32, CallTrack>,
    pub mode: CallMode,
    pub locked: bool,
    /// What this device sends that the node does not forward (a webinar viewer's camera and
    /// microphone, a track a moderator turned off).
    pub refused: Vec<CallMedia>,
    /// The loudest speaker, as the node last said.
    pub speaker: Option<ParticipantId>,
    /// This device rang the other member of a direct chat, nobody has answered, and what became
    /// of the call is not yet written in the chat (the caller's device writes it, once).
    pub ringing_out: bool,
}

impl CallState {
    /// A call this device has just joined (or waits to join: `lobby`).
    pub fn new(group: GroupId, me: ParticipantId) -> Self {
        CallState {
            group,
            me,
            participants: BTreeMap::new(),
            muted: BTreeSet::new(),
            sharing: false,
            turned_off: 0,
            lobby: None,
            waiting: BTreeMap::new(),
            hands: BTreeSet::new(),
            tracks: BTreeMap::new(),
            mode: CallMode::Meeting,
            locked: false,
            refused: Vec::new(),
            speaker: None,
            ringing_out: false,
        }
    }

    /// What the node says of someone as they are in the call: a raised hand, what a moderator
    /// turned off.
    pub fn note_standing(&mut self, p: &CallParticipant) {
        if p.hand_raised {
            self.hands.insert(p.participant);
        }
        self.muted.extend(p.muted.iter().map(|m| (p.participant, *m)));
    }

    /// Whether a moderator turned off this participant's microphone, camera or screen share.
    pub fn is_muted(&self, participant: ParticipantId, media: CallMedia) -> bool {
        self.muted.contains(&(participant, media))
    }

    /// Who shares a screen, first share first.
    pub fn screens(&self) -> Vec<ParticipantId> {
        let mut who: Vec<ParticipantId> = Vec::new();
        for t in self.tracks.values().filter(|t| t.media == CallMedia::Screen) {
            if !who.contains(&t.participant) {
                who.push(t.participant);
            }
        }
        who
    }

    /// This device's role (Guest while unknown).
    pub fn my_role(&self) -> CallRole {
        self.participants.get(&self.me).map(|p| p.role).unwrap_or(CallRole::Guest)
    }

    /// Whether this device may moderate (organizer or moderator).
    pub fn moderating(&self) -> bool {
        self.lobby.is_none() && matches!(self.my_role(), CallRole::Organizer | CallRole::Moderator)
    }

    /// Whether this device may publish in the call's mode (a webinar: presenters and up).
    pub fn may_present(&self) -> bool {
        self.mode == CallMode::Meeting || self.my_role() >= CallRole::Presenter
    }

    /// Whether nothing this device sends is forwarded now (a webinar viewer).
    pub fn viewer(&self) -> bool {
        !self.refused.is_empty()
    }

    /// Whether a participant publishes a track of this kind.
    pub fn publishes(&self, participant: ParticipantId, media: CallMedia) -> bool {
        self.tracks.values().any(|t| t.participant == participant && t.media == media)
    }
}

/// What the page does besides changing the call's state, in the order [`apply`] returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Names a participant's tiles (`own`: this device's).
    Label { participant: ParticipantId, name: String, own: bool },
    /// Someone left: their tiles go.
    Forget(ParticipantId),
    /// Someone's screen share stopped: its tile goes (a camera's stays, black, while its owner
    /// is in the call).
    DropScreen(ParticipantId),
    /// Rings the loudest speaker's tile (`own`: it is this device).
    Speaking { participant: ParticipantId, own: bool },
    /// Turns this device's microphone off (its button follows `turned_off`).
    MicOff,
    /// Turns this device's camera off.
    CameraOff,
    /// Stops this device's screen share; `tell_node`: and tells the node it stopped (not when the
    /// node refused to forward it anyway).
    StopSharing { tell_node: bool },
    /// What became of the 1:1 call this device rang, to be written in its chat.
    Record(CallRecord),
    /// This device is out of the call: its media stops and the call leaves the page (a call it
    /// rang that nobody answered is written as missed).
    Over,
    /// Tells the member (a message id).
    Toast(&'static str),
}

/// Applies one of the node's updates to the call: the new state in `call`, and what else the page
/// does. `sending` says what this device sends now (its local microphone and camera tracks); it
/// is asked only when it matters. The caller has checked that the update is for this call.
pub fn apply(call: &mut CallState, update: CallUpdate, sending: impl FnOnce() -> Vec<CallMedia>) -> Vec<Effect> {
    let me = call.me;
    let mut effects = Vec::new();
    match update {
        CallUpdate::Joined(p) => {
            effects.push(Effect::Label {
                participant: p.participant,
                name: p.display_name.clone(),
                own: p.participant == me,
            });
            if p.participant != me {
                // Answered.
                call.ringing_out = false;
            }
            call.waiting.remove(&p.participant);
            call.note_standing(&p);
            call.participants.insert(p.participant, p);
        }
        CallUpdate::Left { participant } => {
            effects.push(Effect::Forget(participant));
            call.participants.remove(&participant);
            call.waiting.remove(&participant);
            call.hands.remove(&participant);
            call.tracks.retain(|_, t| t.participant != participant);
        }
        CallUpdate::Published(track) => {
            call.tracks.insert(track.track, track);
        }
        CallUpdate::Unpublished { track } => {
            if let Some(t) = call.tracks.remove(&track).filter(|t| t.media == CallMedia::Screen) {
                effects.push(Effect::DropScreen(t.participant));
            }
        }
        CallUpdate::Muted { participant, media, .. } => {
            if participant == me {
                effects.push(match media {
                    CallMedia::Audio => Effect::MicOff,
                    CallMedia::Video => Effect::CameraOff,
                    CallMedia::Screen => {
                        call.sharing = false;
                        Effect::StopSharing { tell_node: true }
                    }
                });
                call.turned_off += 1;
                effects.push(Effect::Toast(if media == CallMedia::Screen {
                    "@call-screen-stopped-by-moderator"
                } else {
                    "@call-muted-by-moderator"
                }));
            }
            call.muted.insert((participant, media));
        }
        CallUpdate::Unmuted { participant, media } => {
            call.muted.remove(&(participant, media));
            if participant == me {
                call.refused.retain(|m| *m != media);
            }
        }
        CallUpdate::AskedToUnmute { .. } => effects.push(Effect::Toast("@call-asked-to-unmute")),
        CallUpdate::RoleChanged { participant, role } => {
            let before = call.may_present();
            if let Some(p) = call.participants.get_mut(&participant) {
                p.role = role;
            }
            // The node lowers a presenter's hand (without a HandLowered).
            if role >= CallRole::Presenter {
                call.hands.remove(&participant);
            }
            if participant == me {
                let now = call.may_present();
                if now {
                    // The node forwards what it refused by itself.
                    call.refused.clear();
                } else if before {
                    call.refused = sending();
                }
                let promoted = now && !before;
                effects.push(Effect::Toast(match role {
                    CallRole::Moderator => "@call-you-moderator",
                    CallRole::Presenter if promoted => "@call-you-presenter",
                    _ => "@call-your-role-changed",
                }));
            }
        }
        CallUpdate::HandRaised { participant } => {
            call.hands.insert(participant);
        }
        CallUpdate::HandLowered { participant } => {
            call.hands.remove(&participant);
        }
        CallUpdate::ActiveSpeaker { participant } => {
            effects.push(Effect::Speaking { participant, own: participant == me });
            call.speaker = Some(participant);
        }
        CallUpdate::Waiting(p) => {
            call.waiting.insert(p.participant, p);
        }
        // The call view joins again with a fresh peer connection.
        CallUpdate::Admitted => call.lobby = Some(CallLobby::Admitted),
        CallUpdate::ModeChanged { mode } => {
            call.mode = mode;
            if call.may_present() {
                call.refused.clear();
            } else {
                call.refused = sending();
                if !call.refused.is_empty() {
                    effects.push(Effect::Toast("@call-now-webinar"));
                }
            }
        }
        CallUpdate::Locked { locked } => call.locked = locked,
        CallUpdate::PublishRefused { media, .. } => {
            // The node's reason is English: the member is told by what it is about.
            let webinar = !call.may_present();
            // In a meeting it is what a moderator turned off, not a viewer's lot.
            if webinar && !call.refused.contains(&media) {
                call.refused.push(media);
            }
            // What was turned on in vain goes off again (its button follows).
            match media {
                CallMedia::Audio if !webinar => effects.push(Effect::MicOff),
                CallMedia::Video if !webinar => effects.push(Effect::CameraOff),
                CallMedia::Screen => {
                    effects.push(Effect::StopSharing { tell_node: false });
                    call.sharing = false;
                }
                _ => {}
            }
            call.turned_off += 1;
            effects.push(Effect::Toast(match media {
                _ if !webinar => "@call-publish-refused-muted",
                CallMedia::Audio => "@call-publish-refused-audio",
                CallMedia::Video => "@call-publish-refused-video",
                CallMedia::Screen => "@call-publish-refused-screen",
            }));
        }
        // The caller hears what became of its 1:1 call: written in the chat's history, once.
        CallUpdate::Declined => ended_unanswered(call, CallRecord::Declined, &mut effects),
        CallUpdate::Busy | CallUpdate::NoAnswer => ended_unanswered(call, CallRecord::Missed, &mut effects),
        CallUpdate::Disconnected | CallUpdate::Ended => {
            effects.push(Effect::Over);
            effects.push(Effect::Toast(match update {
                CallUpdate::Ended => "@call-ended-for-all",
                _ if call.lobby == Some(CallLobby::Waiting) => "@call-turned-away",
                _ => "@call-ended",
            }));
        }
    }
    effects
}

/// The node told the caller what became of its 1:1 call: written in the chat if this device rang
/// and has not written it yet.
fn ended_unanswered(call: &mut CallState, record: CallRecord, effects: &mut Vec<Effect>) {
    if call.ringing_out {
        call.ringing_out = false;
        effects.push(Effect::Record(record));
    }
}

#[cfg(test)]
mod tests {
    use veche_protocol::ids::AccountId;

    use super::*;

    const ME: ParticipantId = 1;
    const ANNA: ParticipantId = 2;
    const BORIS: ParticipantId = 3;

    fn person(participant: ParticipantId, name: &str, role: CallRole) -> CallParticipant {
        CallParticipant {
            participant,
            account: AccountId([participant as u8; 32]),
            display_name: name.into(),
            role,
            hand_raised: false,
            muted: Vec::new(),
        }
    }

    fn track(track: u32, participant: ParticipantId, media: CallMedia) -> CallTrack {
        CallTrack { track, participant, media }
    }

    /// A meeting this device is in with Anna, as a plain participant.
    fn meeting() -> CallState {
        let mut call = CallState::new(GroupId([7; 16]), ME);
        call.participants.insert(ME, person(ME, "Me", CallRole::Participant));
        call.participants.insert(ANNA, person(ANNA, "Anna", CallRole::Organizer));
        call
    }

    /// The same as a webinar, this device a viewer sending its microphone and camera.
    fn webinar() -> CallState {
        let mut call = meeting();
        call.mode = CallMode::Webinar;
        call.refused = vec![CallMedia::Audio, CallMedia::Video];
        call
    }

    fn update(call: &mut CallState, update: CallUpdate) -> Vec<Effect> {
        apply(call, update, || vec![CallMedia::Audio, CallMedia::Video])
    }

    fn nothing_sent() -> Vec<CallMedia> {
        panic!("what this device sends does not matter here")
    }

    #[test]
    fn the_callee_answering_stops_the_ringing_and_names_their_tile() {
        let mut call = CallState::new(GroupId([7; 16]), ME);
        call.ringing_out = true;
        let effects = apply(&mut call, CallUpdate::Joined(person(ME, "Me", CallRole::Organizer)), nothing_sent);
        assert_eq!(effects, [Effect::Label { participant: ME, name: "Me".into(), own: true }]);
        assert!(call.ringing_out, "this device's own join is no answer");

        let effects = apply(&mut call, CallUpdate::Joined(person(ANNA, "Anna", CallRole::Guest)), nothing_sent);
        assert_eq!(effects, [Effect::Label { participant: ANNA, name: "Anna".into(), own: false }]);
        assert!(!call.ringing_out);
        assert_eq!(call.participants.keys().copied().collect::<Vec<_>>(), [ME, ANNA]);
        // Nothing is left to write: a later "no answer" changes nothing.
        assert_eq!(apply(&mut call, CallUpdate::NoAnswer, nothing_sent), []);
    }

    #[test]
    fn someone_joining_comes_with_their_hand_and_what_a_moderator_turned_off() {
        let mut call = meeting();
        let mut boris = person(BORIS, "Boris", CallRole::Guest);
        update(&mut call, CallUpdate::Waiting(boris.clone()));
        assert_eq!(call.waiting.keys().copied().collect::<Vec<_>>(), [BORIS]);
        boris.hand_raised = true;
        boris.muted = vec![CallMedia::Video];
        update(&mut call, CallUpdate::Joined(boris));
        assert!(call.waiting.is_empty(), "let in: no longer in the lobby");
        assert!(call.hands.contains(&BORIS));
        assert!(call.is_muted(BORIS, CallMedia::Video));
        assert!(!call.is_muted(BORIS, CallMedia::Audio));
    }

    #[test]
    fn a_participant_leaving_takes_their_tiles_tracks_and_hand() {
        let mut call = meeting();
        call.tracks.insert(10, track(10, ANNA, CallMedia::Video));
        call.tracks.insert(11, track(11, ANNA, CallMedia::Screen));
        call.tracks.insert(12, track(12, ME, CallMedia::Audio));
        call.hands.insert(ANNA);
        let effects = update(&mut call, CallUpdate::Left { participant: ANNA });
        assert_eq!(effects, [Effect::Forget(ANNA)]);
        assert!(!call.participants.contains_key(&ANNA));
        assert!(call.hands.is_empty());
        assert_eq!(call.tracks.keys().copied().collect::<Vec<_>>(), [12]);
        assert!(call.screens().is_empty());
    }

    #[test]
    fn someone_leaving_the_lobby_leaves_the_waiting_list() {
        let mut call = meeting();
        update(&mut call, CallUpdate::Waiting(person(BORIS, "Boris", CallRole::Guest)));
        update(&mut call, CallUpdate::Waiting(person(4, "Vera", CallRole::Guest)));
        assert_eq!(call.waiting.keys().copied().collect::<Vec<_>>(), [BORIS, 4]);
        let effects = update(&mut call, CallUpdate::Left { participant: BORIS });
        assert_eq!(effects, [Effect::Forget(BORIS)]);
        assert_eq!(call.waiting.keys().copied().collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn a_stopped_screen_share_drops_its_tile_and_a_stopped_camera_does_not() {
        let mut call = meeting();
        assert_eq!(update(&mut call, CallUpdate::Published(track(10, ANNA, CallMedia::Video))), []);
        update(&mut call, CallUpdate::Published(track(11, ANNA, CallMedia::Screen)));
        assert_eq!(call.screens(), [ANNA]);
        assert!(call.publishes(ANNA, CallMedia::Video));

        assert_eq!(update(&mut call, CallUpdate::Unpublished { track: 11 }), [Effect::DropScreen(ANNA)]);
        assert!(call.screens().is_empty());
        assert_eq!(update(&mut call, CallUpdate::Unpublished { track: 10 }), []);
        assert!(!call.publishes(ANNA, CallMedia::Video));
        // A track the page never heard of.
        assert_eq!(update(&mut call, CallUpdate::Unpublished { track: 99 }), []);
    }

    #[test]
    fn a_moderator_muting_me_turns_my_microphone_off_and_tells_me() {
        let mut call = meeting();
        let effects = update(&mut call, CallUpdate::Muted { participant: ME, media: CallMedia::Audio, by: ANNA });
        assert_eq!(effects, [Effect::MicOff, Effect::Toast("@call-muted-by-moderator")]);
        assert!(call.is_muted(ME, CallMedia::Audio));
        assert_eq!(call.turned_off, 1, "the microphone's button follows");

        let effects = update(&mut call, CallUpdate::Muted { participant: ME, media: CallMedia::Video, by: ANNA });
        assert_eq!(effects, [Effect::CameraOff, Effect::Toast("@call-muted-by-moderator")]);
        assert_eq!(call.turned_off, 2);
    }

    #[test]
    fn a_moderator_stopping_my_screen_share_stops_it_and_tells_the_node() {
        let mut call = meeting();
        call.sharing = true;
        let effects = update(&mut call, CallUpdate::Muted { participant: ME, media: CallMedia::Screen, by: ANNA });
        assert_eq!(
            effects,
            [Effect::StopSharing { tell_node: true }, Effect::Toast("@call-screen-stopped-by-moderator")]
        );
        assert!(!call.sharing);
        assert!(call.is_muted(ME, CallMedia::Screen));
    }

    #[test]
    fn someone_else_muted_shows_in_the_list_only() {
        let mut call = meeting();
        let effects = update(&mut call, CallUpdate::Muted { participant: ANNA, media: CallMedia::Audio, by: ANNA });
        assert_eq!(effects, []);
        assert!(call.is_muted(ANNA, CallMedia::Audio));
        assert_eq!(call.turned_off, 0);

        assert_eq!(update(&mut call, CallUpdate::Unmuted { participant: ANNA, media: CallMedia::Audio }), []);
        assert!(!call.is_muted(ANNA, CallMedia::Audio));
    }

    #[test]
    fn asked_to_unmute_and_unmuted_lets_me_send_again() {
        let mut call = meeting();
        update(&mut call, CallUpdate::Muted { participant: ME, media: CallMedia::Audio, by: ANNA });
        update(&mut call, CallUpdate::PublishRefused { media: CallMedia::Audio, reason: "muted".into() });
        let effects = update(&mut call, CallUpdate::AskedToUnmute { participant: ME, media: CallMedia::Audio });
        assert_eq!(effects, [Effect::Toast("@call-asked-to-unmute")]);
        assert!(call.is_muted(ME, CallMedia::Audio), "asked, not yet unmuted");

        let mut webinar = webinar();
        update(&mut webinar, CallUpdate::Unmuted { participant: ME, media: CallMedia::Audio });
        assert_eq!(webinar.refused, [CallMedia::Video], "the microphone is forwarded again");
        update(&mut call, CallUpdate::Unmuted { participant: ME, media: CallMedia::Audio });
        assert!(!call.is_muted(ME, CallMedia::Audio));
    }

    #[test]
    fn a_presenter_has_their_hand_lowered() {
        let mut call = meeting();
        call.participants.insert(BORIS, person(BORIS, "Boris", CallRole::Participant));
        update(&mut call, CallUpdate::HandRaised { participant: BORIS });
        update(&mut call, CallUpdate::HandRaised { participant: ME });
        assert_eq!(call.hands.iter().copied().collect::<Vec<_>>(), [ME, BORIS]);

        let effects = update(&mut call, CallUpdate::RoleChanged { participant: BORIS, role: CallRole::Presenter });
        assert_eq!(effects, [], "someone else's role is not told");
        assert_eq!(call.participants[&BORIS].role, CallRole::Presenter);
        assert_eq!(call.hands.iter().copied().collect::<Vec<_>>(), [ME]);

        update(&mut call, CallUpdate::HandLowered { participant: ME });
        assert!(call.hands.is_empty());
    }

    #[test]
    fn a_webinar_viewer_made_presenter_is_forwarded_and_told() {
        let mut call = webinar();
        call.hands.insert(ME);
        let effects =
            apply(&mut call, CallUpdate::RoleChanged { participant: ME, role: CallRole::Presenter }, nothing_sent);
        assert_eq!(effects, [Effect::Toast("@call-you-presenter")]);
        assert!(call.may_present());
        assert!(!call.viewer());
        assert!(call.hands.is_empty());

        // Made presenter in a meeting, where everyone presents: only "your role changed".
        let mut call = meeting();
        let effects =
            apply(&mut call, CallUpdate::RoleChanged { participant: ME, role: CallRole::Presenter }, nothing_sent);
        assert_eq!(effects, [Effect::Toast("@call-your-role-changed")]);

        let effects =
            apply(&mut call, CallUpdate::RoleChanged { participant: ME, role: CallRole::Moderator }, nothing_sent);
        assert_eq!(effects, [Effect::Toast("@call-you-moderator")]);
        assert!(call.moderating());
    }

    #[test]
    fn a_presenter_demoted_in_a_webinar_is_no_longer_forwarded() {
        let mut call = meeting();
        call.mode = CallMode::Webinar;
        if let Some(p) = call.participants.get_mut(&ME) {
            p.role = CallRole::Presenter;
        }
        assert!(call.may_present());
        let effects =
            apply(&mut call, CallUpdate::RoleChanged { participant: ME, role: CallRole::Participant }, || {
                vec![CallMedia::Audio]
            });
        assert_eq!(effects, [Effect::Toast("@call-your-role-changed")]);
        assert_eq!(call.refused, [CallMedia::Audio]);
        assert!(call.viewer());
    }

    #[test]
    fn a_meeting_turned_webinar_makes_me_a_viewer_and_back() {
        let mut call = meeting();
        let effects = update(&mut call, CallUpdate::ModeChanged { mode: CallMode::Webinar });
        assert_eq!(effects, [Effect::Toast("@call-now-webinar")]);
        assert!(call.viewer());
        assert_eq!(call.refused, [CallMedia::Audio, CallMedia::Video]);

        assert_eq!(update(&mut call, CallUpdate::ModeChanged { mode: CallMode::Meeting }), []);
        assert!(!call.viewer());

        // Sending nothing, there is nothing to tell.
        let effects = apply(&mut call, CallUpdate::ModeChanged { mode: CallMode::Webinar }, Vec::new);
        assert_eq!(effects, []);
        assert_eq!(call.mode, CallMode::Webinar);

        // The organizer presents in a webinar.
        let mut call = meeting();
        call.me = ANNA;
        assert_eq!(apply(&mut call, CallUpdate::ModeChanged { mode: CallMode::Webinar }, nothing_sent), []);
        assert!(!call.viewer());
    }

    #[test]
    fn what_a_moderator_turned_off_is_refused_and_goes_off_again() {
        let mut call = meeting();
        let effects = update(&mut call, CallUpdate::PublishRefused { media: CallMedia::Video, reason: "muted".into() });
        assert_eq!(effects, [Effect::CameraOff, Effect::Toast("@call-publish-refused-muted")]);
        assert_eq!(call.turned_off, 1);
        assert!(!call.viewer(), "in a meeting it is no viewer's lot");

        call.sharing = true;
        let effects =
            update(&mut call, CallUpdate::PublishRefused { media: CallMedia::Screen, reason: "muted".into() });
        assert_eq!(effects, [Effect::StopSharing { tell_node: false }, Effect::Toast("@call-publish-refused-muted")]);
        assert!(!call.sharing);
    }

    #[test]
    fn a_webinar_viewer_is_told_what_is_not_forwarded() {
        let mut call = webinar();
        call.refused.clear();
        let effects =
            update(&mut call, CallUpdate::PublishRefused { media: CallMedia::Audio, reason: "webinar".into() });
        assert_eq!(effects, [Effect::Toast("@call-publish-refused-audio")], "the microphone stays on, unforwarded");
        assert_eq!(call.refused, [CallMedia::Audio]);
        update(&mut call, CallUpdate::PublishRefused { media: CallMedia::Audio, reason: "webinar".into() });
        assert_eq!(call.refused, [CallMedia::Audio], "once");
        assert_eq!(call.turned_off, 2);

        let effects =
            update(&mut call, CallUpdate::PublishRefused { media: CallMedia::Video, reason: "webinar".into() });
        assert_eq!(effects, [Effect::Toast("@call-publish-refused-video")]);
        call.sharing = true;
        let effects =
            update(&mut call, CallUpdate::PublishRefused { media: CallMedia::Screen, reason: "webinar".into() });
        assert_eq!(effects, [Effect::StopSharing { tell_node: false }, Effect::Toast("@call-publish-refused-screen")]);
        assert!(!call.sharing);
    }

    #[test]
    fn the_speaker_lobby_and_lock_are_shown() {
        let mut call = meeting();
        assert_eq!(
            update(&mut call, CallUpdate::ActiveSpeaker { participant: ANNA }),
            [Effect::Speaking { participant: ANNA, own: false }]
        );
        assert_eq!(call.speaker, Some(ANNA));
        assert_eq!(
            update(&mut call, CallUpdate::ActiveSpeaker { participant: ME }),
            [Effect::Speaking { participant: ME, own: true }]
        );

        assert_eq!(update(&mut call, CallUpdate::Locked { locked: true }), []);
        assert!(call.locked);

        let mut waiting = CallState::new(GroupId([7; 16]), 5);
        waiting.lobby = Some(CallLobby::Waiting);
        assert_eq!(update(&mut waiting, CallUpdate::Admitted), []);
        assert_eq!(waiting.lobby, Some(CallLobby::Admitted));
    }

    #[test]
    fn a_declined_or_unanswered_call_is_written_once() {
        let mut call = CallState::new(GroupId([7; 16]), ME);
        call.ringing_out = true;
        assert_eq!(update(&mut call, CallUpdate::Declined), [Effect::Record(CallRecord::Declined)]);
        assert!(!call.ringing_out);
        assert_eq!(update(&mut call, CallUpdate::Declined), []);

        for busy in [CallUpdate::Busy, CallUpdate::NoAnswer] {
            let mut call = CallState::new(GroupId([7; 16]), ME);
            call.ringing_out = true;
            assert_eq!(update(&mut call, busy), [Effect::Record(CallRecord::Missed)]);
        }
    }

    #[test]
    fn the_call_ending_takes_it_off_the_page_with_a_reason() {
        let mut call = meeting();
        assert_eq!(update(&mut call, CallUpdate::Ended), [Effect::Over, Effect::Toast("@call-ended-for-all")]);
        assert_eq!(update(&mut call, CallUpdate::Disconnected), [Effect::Over, Effect::Toast("@call-ended")]);

        let mut waiting = CallState::new(GroupId([7; 16]), 5);
        waiting.lobby = Some(CallLobby::Waiting);
        assert_eq!(update(&mut waiting, CallUpdate::Disconnected), [Effect::Over, Effect::Toast("@call-turned-away")]);
        let mut admitted = CallState::new(GroupId([7; 16]), 5);
        admitted.lobby = Some(CallLobby::Admitted);
        assert_eq!(update(&mut admitted, CallUpdate::Disconnected), [Effect::Over, Effect::Toast("@call-ended")]);
    }
}
