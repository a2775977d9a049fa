//! Calls: which device is in which chat's call, and the signaling between devices and the media
//! loop (spec/calls.md).
//!
//! The media plane (`veche-sfu`) runs on its own thread and owns the media port and every peer
//! connection. This module owns the rest, behind one lock that is never held across an await:
//! one conference per chat while anyone is in its call, one participant per device connection,
//! and each participant's way back to its connection (a bounded queue of server frames).
//!
//! Everyone in a call receives every track published in it: when a track is published, the node
//! subscribes every other participant to it, and a participant who joins is subscribed to the
//! tracks already there. Each subscription needs a new offer from the node, which goes to the
//! device as [`Event::CallOffer`]; its answer comes back as `CallAnswer`.
//!
//! Calls live on the node that is the chat's home: a chat homed on another node is refused with
//! `Unavailable` for now (media between nodes is not built yet).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use veche_protocol::call::{
    CallAction, CallChange, CallJoined, CallMedia, CallMode, CallParticipant, CallRole, CallTrack, CallUpdate,
    MAX_SDP_BYTES, ParticipantId,
};
use veche_protocol::ids::GroupId;
use veche_protocol::wire::{ErrorCode, Event, ServerFrame};
use veche_sfu::forward::Want;
use veche_sfu::media::{MediaError, MediaEvent};
use veche_sfu::media_loop::{LoopError, MediaHandle};
use veche_sfu::room::{self, Role};
use veche_sfu::{ConferenceId, MediaKind, TrackId};

use super::{ApiResult, Node, OrInternal, Session, err};
use veche_protocol::wire::ApiError;

/// Call sessions (connections in a call or its lobby) one account may hold at once, over all
/// calls. A person takes part in one call at a time; the rest covers a tab reopened before its
/// old connection closed and a second device for sharing a screen. With the node's cap of
/// `MAX_SESSIONS` (500) media sessions, one member cannot take more than 4 of them: filling the
/// node needs 125 accounts.
pub const MAX_SESSIONS_PER_ACCOUNT: usize = 4;

/// Where a participant's frames go: its connection's outgoing queue.
pub type Outbox = mpsc::Sender<ServerFrame>;

/// The node's calls.
pub struct Calls {
    media: MediaHandle,
    state: Mutex<State>,
    /// Rings and ring ends go to every connection of an account.
    hub: Arc<crate::hub::Hub>,
    ring_timeout: std::time::Duration,
}

/// A 1:1 call ringing its callee.
struct Ring {
    id: u64,
    caller: ParticipantId,
    callee: veche_protocol::ids::AccountId,
}

/// Whether `caller` may ring `callee`: the hook for each member's call acceptance (forbidden /
/// ask first / allowed, the contacts issue). Everyone may, for now.
fn may_ring(_caller: &veche_protocol::ids::AccountId, _callee: &veche_protocol::ids::AccountId) -> bool {
    true
}

#[derive(Default)]
struct State {
    next_conference: u32,
    next_participant: u32,
    by_group: HashMap<GroupId, ConferenceId>,
    conferences: HashMap<ConferenceId, Conference>,
    participants: HashMap<ParticipantId, Member>,
    rings: HashMap<GroupId, Ring>,
    next_ring: u64,
}

struct Conference {
    /// Everyone who asked to join, in order, the lobby included.
    members: Vec<ParticipantId>,
    tracks: BTreeMap<u32, CallTrack>,
    mode: CallMode,
    locked: bool,
}

struct Member {
    conference: ConferenceId,
    group: GroupId,
    info: CallParticipant,
    out: Outbox,
    /// The device has the answer to its join: the node's own offers may follow.
    ready: bool,
    /// In the lobby (None: in the call, with its media session).
    lobby: Option<Lobby>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lobby {
    Waiting,
    /// Let in; its media session opens when it joins again.
    Admitted,
}

/// A device asks to join a chat's call.
pub struct Joining {
    pub group: GroupId,
    pub offer: String,
    /// A guest account (of this chat's meeting).
    pub guest: bool,
    /// The connection was let in from the lobby of this call: its media session opens now.
    pub admitted: Option<InCall>,
}

/// Where a join left the device.
pub enum Joined {
    InCall(InCall, CallJoined),
    /// In the lobby: it is told [`CallUpdate::Admitted`] (then joins again) or `Disconnected`.
    Waiting(InCall),
}

/// A device connection's place in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InCall {
    pub group: GroupId,
    pub participant: ParticipantId,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn media_kind(kind: MediaKind) -> CallMedia {
    match kind {
        MediaKind::Audio => CallMedia::Audio,
        MediaKind::Video => CallMedia::Video,
        MediaKind::Screen => CallMedia::Screen,
    }
}

fn sfu_kind(media: CallMedia) -> MediaKind {
    match media {
        CallMedia::Audio => MediaKind::Audio,
        CallMedia::Video => MediaKind::Video,
        CallMedia::Screen => MediaKind::Screen,
    }
}

fn sfu_role(role: CallRole) -> Role {
    match role {
        CallRole::Guest => Role::Guest,
        CallRole::Participant => Role::Participant,
        CallRole::Presenter => Role::Presenter,
        CallRole::Moderator => Role::Moderator,
        CallRole::Organizer => Role::Organizer,
    }
}

fn call_role(role: Role) -> CallRole {
    match role {
        Role::Guest => CallRole::Guest,
        Role::Participant => CallRole::Participant,
        Role::Presenter => CallRole::Presenter,
        Role::Moderator => CallRole::Moderator,
        Role::Organizer => CallRole::Organizer,
    }
}

fn sfu_mode(mode: CallMode) -> room::Mode {
    match mode {
        CallMode::Meeting => room::Mode::Meeting,
        CallMode::Webinar => room::Mode::Webinar,
    }
}

fn call_mode(mode: room::Mode) -> CallMode {
    match mode {
        room::Mode::Meeting => CallMode::Meeting,
        room::Mode::Webinar => CallMode::Webinar,
    }
}

fn refused(e: LoopError) -> veche_protocol::wire::ApiError {
    let (code, message) = match &e {
        LoopError::Stopped => (ErrorCode::Internal, "the media plane has stopped".to_string()),
        LoopError::Media(MediaError::Rtc(e)) => (ErrorCode::BadRequest, format!("the SDP was refused: {e}")),
        LoopError::Media(MediaError::Room(room::RoomError::Forbidden(why))) => (ErrorCode::Forbidden, why.to_string()),
        LoopError::Media(MediaError::Room(room::RoomError::Closed(why))) => (ErrorCode::Forbidden, why.to_string()),
        LoopError::Media(MediaError::Room(room::RoomError::Unknown)) => {
            (ErrorCode::NotFound, "no such participant in this call".to_string())
        }
        LoopError::Media(MediaError::Full) => (
            ErrorCode::Unavailable,
            format!(
                "the node carries as many call sessions as it can ({}); try again later",
                veche_sfu::media::MAX_SESSIONS
            ),
        ),
        LoopError::Media(MediaError::UnknownConference) => (ErrorCode::NotFound, "the call is over".to_string()),
        LoopError::Media(MediaError::NoOfferPending) => {
            (ErrorCode::Conflict, "no offer of the node waits for an answer".to_string())
        }
        LoopError::Media(other) => (ErrorCode::BadRequest, other.to_string()),
    };
    veche_protocol::wire::ApiError::new(code, message)
}

/// Runs a call into the media loop (which answers within its turn) off the async workers.
async fn on_loop<T: Send + 'static>(
    media: &MediaHandle,
    f: impl FnOnce(&MediaHandle) -> Result<T, LoopError> + Send + 'static,
) -> Result<T, LoopError> {
    let media = media.clone();
    tokio::task::spawn_blocking(move || f(&media)).await.unwrap_or(Err(LoopError::Stopped))
}

fn check_sdp(sdp: &str) -> ApiResult<()> {
    if sdp.len() > MAX_SDP_BYTES {
        return err(ErrorCode::TooLarge, "SDP larger than 64 KiB");
    }
    Ok(())
}

impl Calls {
    /// Starts the call service on a running media loop; `events` are the loop's events.
    pub fn start(
        media: MediaHandle,
        events: std::sync::mpsc::Receiver<MediaEvent>,
        hub: Arc<crate::hub::Hub>,
        ring_timeout: std::time::Duration,
    ) -> std::io::Result<Arc<Calls>> {
        let calls = Arc::new(Calls { media, state: Mutex::new(State::default()), hub, ring_timeout });
        // The loop's event channel is a blocking one: a thread carries its events to a task.
        let (tx, mut rx) = mpsc::channel(1024);
        std::thread::Builder::new().name("veche-media-events".into()).spawn(move || {
            while let Ok(event) = events.recv() {
                if tx.blocking_send(event).is_err() {
                    break;
                }
            }
        })?;
        let owner = calls.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                owner.on_media_event(event).await;
            }
        });
        Ok(calls)
    }

    /// What the media port has done (for `/metrics`); None if the loop has stopped.
    pub async fn media_stats(&self) -> Option<veche_sfu::media_loop::MediaStats> {
        on_loop(&self.media, |m| m.stats()).await.ok()
    }

    /// A device joins its chat's call with its SDP offer (or, let in from the lobby, opens its
    /// media session).
    pub async fn join(
        self: &Arc<Self>,
        node: &Node,
        session: Session,
        joining: Joining,
        out: Outbox,
    ) -> ApiResult<Joined> {
        let Joining { group, offer, guest, admitted } = joining;
        check_sdp(&offer)?;
        let (display_name, meeting, direct_with) = {
            let txn = node.store.read().or_internal()?;
            if super::replica::home_of(&txn, group)?.is_some() {
                return err(
                    ErrorCode::Unavailable,
                    "calls in chats homed on another node are not supported yet; the chat's home node hosts its calls",
                );
            }
            let chat = super::chats::load_member(&txn, &session, group)?;
            let direct_with = (chat.kind == veche_protocol::ids::ChatKind::Direct)
                .then(|| chat.roster.keys().copied().find(|a| *a != session.account))
                .flatten();
            if let Some(g) = super::meetings::guest(&txn, &session.account)? {
                super::meetings::check_guest_time(&g)?;
            }
            let name =
                super::accounts::load_account(&txn, &session.account)?.map(|a| a.display_name).unwrap_or_default();
            (name, super::meetings::load(&txn, group)?, direct_with)
        };
        // Registered before the media loop hears of it, so the room's "joined" finds it.
        let (conference, participant, role, open) = match admitted {
            Some(call) => {
                let state = lock(&self.state);
                let member = state
                    .participants
                    .get(&call.participant)
                    .filter(|m| m.lobby == Some(Lobby::Admitted))
                    .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "you are no longer in this call"))?;
                (member.conference, call.participant, sfu_role(member.info.role), false)
            }
            None => {
                let mut state = lock(&self.state);
                let mine = state.participants.values().filter(|m| m.info.account == session.account).count();
                if mine >= MAX_SESSIONS_PER_ACCOUNT {
                    return err(
                        ErrorCode::Forbidden,
                        format!(
                            "this account is already in calls from {MAX_SESSIONS_PER_ACCOUNT} connections; leave one first"
                        ),
                    );
                }
                let mode = if meeting.as_ref().is_some_and(|m| m.settings.webinar) {
                    CallMode::Webinar
                } else {
                    CallMode::Meeting
                };
                let (conference, open) = match state.by_group.get(&group) {
                    Some(c) => (*c, false),
                    None => {
                        state.next_conference += 1;
                        let c = ConferenceId(state.next_conference);
                        state.by_group.insert(group, c);
                        let conf = Conference { members: Vec::new(), tracks: BTreeMap::new(), mode, locked: false };
                        state.conferences.insert(c, conf);
                        (c, true)
                    }
                };
                state.next_participant += 1;
                let participant = state.next_participant;
                let conf =
                    state.conferences.get_mut(&conference).ok_or_else(|| super::internal("conference vanished"))?;
                // A meeting's organizer organizes its call; another chat's call is organized by
                // whoever starts it. Guests are guests.
                let role = match &meeting {
                    _ if guest => Role::Guest,
                    Some(m) if m.organizer == session.account => Role::Organizer,
                    Some(_) => Role::Participant,
                    None if conf.members.is_empty() => Role::Organizer,
                    None => Role::Participant,
                };
                conf.members.push(participant);
                let info = CallParticipant {
                    participant,
                    account: session.account,
                    display_name,
                    role: call_role(role),
                    hand_raised: false,
                    muted: Vec::new(),
                };
                let member = Member { conference, group, info, out, ready: false, lobby: None };
                state.participants.insert(participant, member);
                (conference, participant, role, open)
            }
        };
        if open {
            let mode = lock(&self.state).conferences.get(&conference).map(|c| sfu_mode(c.mode));
            self.media.open(conference, mode.unwrap_or(room::Mode::Meeting));
            if meeting.as_ref().is_some_and(|m| m.settings.lobby) {
                let set = on_loop(&self.media, move |m| {
                    m.moderate(conference, |room| {
                        room.set_guest_lobby(true);
                        Ok(Vec::new())
                    })
                })
                .await;
                if let Err(e) = set {
                    self.forget(participant);
                    return Err(refused(e));
                }
            }
        }
        let account = session.account;
        let added = on_loop(&self.media, move |m| {
            m.add_peer(conference, veche_sfu::ParticipantId(participant), account, role, offer)
        })
        .await;
        let answer = match added {
            Ok(answer) => answer,
            Err(LoopError::Media(MediaError::InLobby)) => {
                if let Some(m) = lock(&self.state).participants.get_mut(&participant) {
                    m.lobby = Some(Lobby::Waiting);
                }
                tracing::debug!(participant, "waiting in the lobby");
                return Ok(Joined::Waiting(InCall { group, participant }));
            }
            Err(e) => {
                self.leave(InCall { group, participant });
                return Err(refused(e));
            }
        };
        let joined = {
            let mut state = lock(&self.state);
            if let Some(m) = state.participants.get_mut(&participant) {
                m.lobby = None;
            }
            let state = &*state;
            let conf = state.conferences.get(&conference);
            let participants = conf
                .map(|c| {
                    c.members
                        .iter()
                        .filter_map(|p| state.participants.get(p))
                        .filter(|m| m.lobby.is_none())
                        .map(|m| m.info.clone())
                        .collect()
                })
                .unwrap_or_default();
            let tracks: Vec<CallTrack> = conf.map(|c| c.tracks.values().cloned().collect()).unwrap_or_default();
            let (mode, locked) = conf.map(|c| (c.mode, c.locked)).unwrap_or((CallMode::Meeting, false));
            CallJoined { participant, answer, participants, tracks, mode, locked }
        };
        if let Some(callee) = direct_with {
            self.ring_or_answer(group, session.account, &joined, participant, callee, open);
        }
        Ok(Joined::InCall(InCall { group, participant }, joined))
    }

    /// After a join in a direct chat: the callee answering stops its ring; the first one in rings
    /// the other member (unless that member is in a call already: the caller is told `Busy`).
    fn ring_or_answer(
        self: &Arc<Self>,
        group: GroupId,
        me: veche_protocol::ids::AccountId,
        joined: &CallJoined,
        participant: ParticipantId,
        other: veche_protocol::ids::AccountId,
        first: bool,
    ) {
        let answering = lock(&self.state).rings.get(&group).is_some_and(|r| r.callee == me);
        if answering {
            self.ring_over(group, None, veche_protocol::call::RingEnd::Answered);
            return;
        }
        if !first || !may_ring(&me, &other) {
            return;
        }
        let busy = lock(&self.state).participants.values().any(|m| m.info.account == other && m.lobby.is_none());
        if busy {
            self.send(&[participant], |group| Event::Call { group, update: CallUpdate::Busy });
            return;
        }
        let id = {
            let mut state = lock(&self.state);
            state.next_ring += 1;
            let id = state.next_ring;
            state.rings.insert(group, Ring { id, caller: participant, callee: other });
            id
        };
        let name = joined.participants.iter().find(|p| p.participant == participant).map(|p| p.display_name.clone());
        self.hub.publish(&[other], Event::CallRing { group, from: me, name: name.unwrap_or_default() });
        let calls = self.clone();
        let timeout = self.ring_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            calls.ring_over(group, Some(id), veche_protocol::call::RingEnd::Missed);
        });
    }

    /// Ends the ring of `group` (only ring `id`, if given): the caller hears why, the callee's
    /// devices stop ringing.
    fn ring_over(&self, group: GroupId, id: Option<u64>, reason: veche_protocol::call::RingEnd) {
        use veche_protocol::call::RingEnd;
        let ring = {
            let mut state = lock(&self.state);
            match state.rings.get(&group) {
                Some(r) if id.is_none_or(|i| r.id == i) => state.rings.remove(&group),
                _ => None,
            }
        };
        let Some(ring) = ring else { return };
        let update = match reason {
            RingEnd::Declined => Some(CallUpdate::Declined),
            RingEnd::Missed => Some(CallUpdate::NoAnswer),
            RingEnd::Answered | RingEnd::Cancelled => None,
        };
        if let Some(update) = update {
            self.send(&[ring.caller], |group| Event::Call { group, update: update.clone() });
        }
        self.hub.publish(&[ring.callee], Event::CallRingEnded { group, reason });
    }

    /// The callee declines a 1:1 call ringing it.
    pub fn decline(&self, session: &Session, group: GroupId) -> ApiResult<()> {
        if lock(&self.state).rings.get(&group).is_none_or(|r| r.callee != session.account) {
            return err(ErrorCode::NotFound, "no call is ringing you in this chat");
        }
        self.ring_over(group, None, veche_protocol::call::RingEnd::Declined);
        Ok(())
    }

    /// Whether the participant was let in from the lobby and has yet to open its media session.
    pub fn is_admitted(&self, call: InCall) -> bool {
        lock(&self.state).participants.get(&call.participant).is_some_and(|m| m.lobby == Some(Lobby::Admitted))
    }

    /// The device has received the answer to its join (the response has been queued on its
    /// connection): it is subscribed to the tracks already published, and the node's offers
    /// may follow. Before this, an offer could reach the device ahead of the answer.
    pub async fn ready(&self, call: InCall) {
        let tracks: Vec<u32> = {
            let mut state = lock(&self.state);
            let Some(member) = state.participants.get_mut(&call.participant) else { return };
            member.ready = true;
            let (conference, moderates) = (member.conference, sfu_role(member.info.role) >= Role::Moderator);
            let Some(conf) = state.conferences.get(&conference) else { return };
            // A moderator who comes in sees who waits in the lobby.
            if moderates && let Some(me) = state.participants.get(&call.participant) {
                for waiting in conf.members.iter().filter_map(|p| state.participants.get(p)) {
                    if waiting.lobby == Some(Lobby::Waiting) {
                        let update = CallUpdate::Waiting(waiting.info.clone());
                        let _ = me.out.try_send(ServerFrame::Event(Event::Call { group: call.group, update }));
                    }
                }
            }
            conf.tracks.values().filter(|t| t.participant != call.participant).map(|t| t.track).collect()
        };
        for track in tracks {
            self.subscribe(call.participant, track).await;
        }
        // An offer held back while the device was not ready.
        self.offer(veche_sfu::ParticipantId(call.participant)).await;
    }

    /// Sends the node's pending offer to a ready participant.
    async fn offer(&self, who: veche_sfu::ParticipantId) {
        if !lock(&self.state).participants.get(&who.0).is_some_and(|m| m.ready) {
            return;
        }
        match on_loop(&self.media, move |m| m.pending_offer(who)).await {
            Ok(Some(sdp)) => self.send(&[who.0], |group| Event::CallOffer { group, sdp: sdp.clone() }),
            Ok(None) => {}
            Err(e) => tracing::debug!(participant = who.0, error = %e, "no offer"),
        }
    }

    /// The device's answer to the node's latest offer.
    pub async fn answer(&self, call: InCall, answer: String) -> ApiResult<()> {
        check_sdp(&answer)?;
        let who = veche_sfu::ParticipantId(call.participant);
        on_loop(&self.media, move |m| m.apply_answer(who, answer)).await.map_err(refused)
    }

    /// Whether the participant is still in its call (the node may have removed it).
    pub fn is_in(&self, call: InCall) -> bool {
        lock(&self.state).participants.contains_key(&call.participant)
    }

    /// A decision on the room of the participant's call, made by that participant.
    async fn decide(
        &self,
        call: InCall,
        decide: impl FnOnce(&mut room::Room, veche_sfu::ParticipantId) -> Result<Vec<room::Action>, room::RoomError>
        + Send
        + 'static,
    ) -> ApiResult<()> {
        let conference = lock(&self.state).participants.get(&call.participant).map(|m| m.conference);
        let Some(conference) = conference else { return err(ErrorCode::NotFound, "you are no longer in this call") };
        let by = veche_sfu::ParticipantId(call.participant);
        on_loop(&self.media, move |m| m.moderate(conference, move |room| decide(room, by))).await.map_err(refused)
    }

    /// The organizer or a moderator acts on someone in the call.
    pub async fn moderate(&self, call: InCall, participant: ParticipantId, action: CallAction) -> ApiResult<()> {
        let who = veche_sfu::ParticipantId(participant);
        self.decide(call, move |room, by| match action {
            CallAction::Mute(media) => room.mute(by, who, sfu_kind(media)),
            CallAction::AskToUnmute(media) => room.ask_to_unmute(by, who, sfu_kind(media)),
            CallAction::LowerHand => room.lower_hand(by, who),
            CallAction::SetRole(role) => room.set_role(by, who, sfu_role(role)),
            CallAction::Remove => room.remove(by, who),
            CallAction::Admit => room.admit(by, who),
        })
        .await
    }

    /// The organizer or a moderator changes the call's mode or locks it.
    pub async fn configure(&self, call: InCall, change: CallChange) -> ApiResult<()> {
        self.decide(call, move |room, by| match change {
            CallChange::Mode(mode) => room.set_mode(by, sfu_mode(mode)),
            CallChange::Lock(locked) => room.lock(by, locked),
        })
        .await
    }

    /// Raises or lowers the device's own hand.
    pub async fn hand(&self, call: InCall, raised: bool) -> ApiResult<()> {
        self.decide(call, move |room, me| if raised { room.raise_hand(me) } else { room.lower_hand(me, me) }).await
    }

    /// Ends the call for everyone.
    pub async fn end(&self, call: InCall) -> ApiResult<()> {
        self.decide(call, |room, by| room.end(by)).await
    }

    /// The chat's members changed (a commit was stored): whoever in its call is no longer a
    /// member (removed, or left) loses its place there at once: told `Disconnected`, its media
    /// session closed. Joining again is refused like any non-member's join.
    pub fn members_changed(&self, node: &Node, group: GroupId) {
        let in_call: Vec<(ParticipantId, veche_protocol::ids::AccountId)> = lock(&self.state)
            .participants
            .iter()
            .filter(|(_, m)| m.group == group)
            .map(|(p, m)| (*p, m.info.account))
            .collect();
        if in_call.is_empty() {
            return;
        }
        let roster = match node
            .store
            .read()
            .map_err(|e| e.to_string())
            .and_then(|txn| super::chats::load(&txn, group).map_err(|e| e.to_string()))
        {
            Ok(chat) => chat.map(|c| c.roster).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "calls: cannot read the chat's members");
                return;
            }
        };
        for (participant, account) in in_call {
            if roster.contains_key(&account) {
                continue;
            }
            tracing::debug!(participant, "no longer a member of the chat: out of its call");
            self.send(&[participant], |group| Event::Call { group, update: CallUpdate::Disconnected });
            self.leave(InCall { group, participant });
        }
    }

    /// The device leaves (or its connection closed).
    pub fn leave(&self, call: InCall) {
        self.media.remove_peer(veche_sfu::ParticipantId(call.participant));
        self.forget(call.participant);
    }

    /// Forgets a participant; the last one out closes the conference.
    fn forget(&self, participant: ParticipantId) {
        // A caller who leaves before an answer ends the ring.
        let ringing = lock(&self.state).rings.iter().find(|(_, r)| r.caller == participant).map(|(g, _)| *g);
        if let Some(group) = ringing {
            self.ring_over(group, None, veche_protocol::call::RingEnd::Cancelled);
        }
        let mut state = lock(&self.state);
        let Some(member) = state.participants.remove(&participant) else { return };
        let Some(conf) = state.conferences.get_mut(&member.conference) else { return };
        conf.members.retain(|p| *p != participant);
        if conf.members.is_empty() {
            state.conferences.remove(&member.conference);
            state.by_group.remove(&member.group);
            self.media.close(member.conference);
        }
    }

    async fn subscribe(&self, participant: ParticipantId, track: u32) {
        let who = veche_sfu::ParticipantId(participant);
        let result = on_loop(&self.media, move |m| m.subscribe(who, TrackId(track), Want::default())).await;
        if let Err(e) = result {
            tracing::debug!(participant, track, error = %e, "subscription refused");
        }
    }

    /// Sends a frame to participants (dropped for one whose queue is full: it catches up with
    /// the next offer or update).
    fn send(&self, to: &[ParticipantId], event: impl Fn(GroupId) -> Event) {
        let state = lock(&self.state);
        for p in to {
            if let Some(m) = state.participants.get(p) {
                let _ = m.out.try_send(ServerFrame::Event(event(m.group)));
            }
        }
    }

    /// Who is in the call with a media session (not the lobby).
    fn members(&self, conference: ConferenceId) -> Vec<ParticipantId> {
        let state = lock(&self.state);
        let Some(conf) = state.conferences.get(&conference) else { return Vec::new() };
        conf.members.iter().copied().filter(|p| state.participants.get(p).is_some_and(|m| m.lobby.is_none())).collect()
    }

    async fn on_media_event(&self, event: MediaEvent) {
        match event {
            MediaEvent::NegotiationNeeded(who) => self.offer(who).await,
            MediaEvent::Connected(who) => tracing::debug!(participant = who.0, "media connected"),
            MediaEvent::Failed(who) | MediaEvent::Disconnect(who) => {
                self.send(&[who.0], |group| Event::Call { group, update: CallUpdate::Disconnected });
                self.media.remove_peer(who);
                self.forget(who.0);
            }
            MediaEvent::Room { conference, to, event } => self.on_room_event(conference, to, event).await,
        }
    }

    /// Keeps what the node tells later joiners about a participant (`CallJoined`) up to date.
    fn with_info(&self, who: veche_sfu::ParticipantId, change: impl FnOnce(&mut CallParticipant)) {
        if let Some(m) = lock(&self.state).participants.get_mut(&who.0) {
            change(&mut m.info);
        }
    }

    async fn on_room_event(&self, conference: ConferenceId, to: Option<veche_sfu::ParticipantId>, event: room::Event) {
        let update = match event {
            room::Event::Joined { who, .. } => {
                let (info, was_waiting) = {
                    let mut state = lock(&self.state);
                    let Some(m) = state.participants.get_mut(&who.0) else { return };
                    let was_waiting = m.lobby == Some(Lobby::Waiting);
                    if was_waiting {
                        m.lobby = Some(Lobby::Admitted);
                        let _ = m
                            .out
                            .try_send(ServerFrame::Event(Event::Call { group: m.group, update: CallUpdate::Admitted }));
                    }
                    (m.info.clone(), was_waiting)
                };
                if was_waiting {
                    tracing::debug!(participant = who.0, "admitted from the lobby");
                }
                CallUpdate::Joined(info)
            }
            room::Event::Waiting { who } => {
                let info = lock(&self.state).participants.get(&who.0).map(|m| m.info.clone());
                let Some(info) = info else { return };
                CallUpdate::Waiting(info)
            }
            room::Event::ModeChanged { mode } => {
                if let Some(conf) = lock(&self.state).conferences.get_mut(&conference) {
                    conf.mode = call_mode(mode);
                }
                CallUpdate::ModeChanged { mode: call_mode(mode) }
            }
            room::Event::Locked { locked } => {
                if let Some(conf) = lock(&self.state).conferences.get_mut(&conference) {
                    conf.locked = locked;
                }
                CallUpdate::Locked { locked }
            }
            room::Event::PublishRefused { kind, reason, .. } => {
                CallUpdate::PublishRefused { media: media_kind(kind), reason: reason.to_string() }
            }
            room::Event::Left { who } => CallUpdate::Left { participant: who.0 },
            room::Event::Published { who, track, kind } => {
                let published = CallTrack { track: track.0, participant: who.0, media: media_kind(kind) };
                tracing::debug!(participant = who.0, track = track.0, ?kind, "track published");
                if let Some(conf) = lock(&self.state).conferences.get_mut(&conference) {
                    conf.tracks.insert(track.0, published.clone());
                }
                for other in self.members(conference).into_iter().filter(|p| *p != who.0) {
                    self.subscribe(other, track.0).await;
                }
                CallUpdate::Published(published)
            }
            room::Event::Unpublished { track } => {
                if let Some(conf) = lock(&self.state).conferences.get_mut(&conference) {
                    conf.tracks.remove(&track.0);
                }
                CallUpdate::Unpublished { track: track.0 }
            }
            room::Event::MutedBy { who, kind, by } => {
                self.with_info(who, |info| {
                    if !info.muted.contains(&media_kind(kind)) {
                        info.muted.push(media_kind(kind));
                    }
                });
                CallUpdate::Muted { participant: who.0, media: media_kind(kind), by: by.0 }
            }
            room::Event::Unmuted { who, kind } => {
                self.with_info(who, |info| info.muted.retain(|m| *m != media_kind(kind)));
                CallUpdate::Unmuted { participant: who.0, media: media_kind(kind) }
            }
            room::Event::ActiveSpeaker { who } => CallUpdate::ActiveSpeaker { participant: who.0 },
            room::Event::AskedToUnmute { who, kind } => {
                CallUpdate::AskedToUnmute { participant: who.0, media: media_kind(kind) }
            }
            room::Event::RoleChanged { who, role } => {
                self.with_info(who, |info| info.role = call_role(role));
                CallUpdate::RoleChanged { participant: who.0, role: call_role(role) }
            }
            room::Event::HandRaised { who } => {
                self.with_info(who, |info| info.hand_raised = true);
                CallUpdate::HandRaised { participant: who.0 }
            }
            room::Event::HandLowered { who, .. } => {
                self.with_info(who, |info| info.hand_raised = false);
                CallUpdate::HandLowered { participant: who.0 }
            }
            room::Event::Ended => CallUpdate::Ended,
        };
        let to = match to {
            Some(p) => vec![p.0],
            None => self.members(conference),
        };
        self.send(&to, |group| Event::Call { group, update: update.clone() });
    }
}
