//! In-call signals from the participants' data channels (spec/calls.md §7): the whiteboard,
//! which the room keeps so that late joiners get it, and reactions.
//!
//! Each participant has a budget of [`SIGNAL_BURST`] messages, refilled at [`SIGNALS_PER_SEC`]:
//! beyond it messages are dropped, and the sender is told so at most once a second.

use std::time::Duration;

use veche_protocol::call::CallMedia;
use veche_protocol::incall::{FromNode, REACTIONS, ToNode};
use veche_protocol::whiteboard::Board;

use super::{Action, Event, Mode, Room, RoomError};
use crate::{Instant, MediaKind, ParticipantId};

/// Messages a participant may send at once.
pub const SIGNAL_BURST: u32 = 60;
/// Messages per second a participant may send on average.
pub const SIGNALS_PER_SEC: u32 = 30;

/// One participant's message budget (a token bucket).
#[derive(Debug)]
pub(super) struct Budget {
    tokens: u32,
    /// When the bucket was last refilled.
    at: Instant,
    /// When the participant was last told it ran out.
    told: Option<Instant>,
}

impl Budget {
    fn new(now: Instant) -> Self {
        Budget { tokens: SIGNAL_BURST, at: now, told: None }
    }

    /// Takes a token: `Ok` if there was one; `Err(tell)` if not, `tell` at most once a second.
    fn take(&mut self, now: Instant) -> Result<(), bool> {
        let refill = (now.saturating_sub(self.at).as_millis() as u64 * u64::from(SIGNALS_PER_SEC) / 1000) as u32;
        if refill > 0 {
            self.tokens = (self.tokens + refill).min(SIGNAL_BURST);
            self.at = now;
        }
        if self.tokens == 0 {
            let tell = self.told.is_none_or(|at| now.saturating_sub(at) >= Duration::from_secs(1));
            if tell {
                self.told = Some(now);
            }
            return Err(tell);
        }
        self.tokens -= 1;
        Ok(())
    }
}

fn to(who: ParticipantId, message: FromNode) -> Action {
    Action::Signal { to: Some(who), message }
}

fn to_all(message: FromNode) -> Action {
    Action::Signal { to: None, message }
}

fn refused(who: ParticipantId, reason: impl Into<String>) -> Action {
    to(who, FromNode::Refused { reason: reason.into() })
}

impl Room {
    /// The whiteboard as it is.
    pub fn board(&self) -> &Board {
        &self.board
    }

    /// What a participant whose data channel just opened is sent: the board, in parts.
    pub fn board_for(&self, who: ParticipantId) -> Vec<Action> {
        FromNode::board_parts(self.board.items()).into_iter().map(|m| to(who, m)).collect()
    }

    /// May `who` change the whiteboard?
    fn may_draw(&self, who: ParticipantId) -> Result<(), RoomError> {
        let role = self.role(who).ok_or(RoomError::Unknown)?;
        if self.mode == Mode::Webinar && !role.presents() {
            return Err(RoomError::Forbidden("in a webinar only presenters draw on the whiteboard"));
        }
        Ok(())
    }

    /// A message from `who`'s data channel, as it arrived.
    pub fn on_signal(&mut self, now: Instant, who: ParticipantId, bytes: &[u8]) -> Vec<Action> {
        if self.role(who).is_none() {
            return Vec::new();
        }
        match self.budgets.entry(who).or_insert_with(|| Budget::new(now)).take(now) {
            Ok(()) => {}
            Err(true) => {
                return vec![refused(who, format!("too many messages: at most {SIGNALS_PER_SEC} a second"))];
            }
            Err(false) => return Vec::new(),
        }
        let signal = match ToNode::decode(bytes) {
            Ok(signal) => signal,
            Err(e) => return vec![refused(who, e.to_string())],
        };
        let result: Result<Vec<Action>, String> = match signal {
            ToNode::Draw { item } => self.may_draw(who).map_err(reason).and_then(|()| {
                let id = item.id;
                match self.board.draw(who.0, item.clone()) {
                    Ok(()) => Ok(vec![to_all(FromNode::Drawn { by: who.0, item })]),
                    Err(e) => Err(format!("item {id}: {e}")),
                }
            }),
            ToNode::Erase { by, id } => self.may_draw(who).map_err(reason).map(|()| {
                if self.board.erase((by, id)) {
                    vec![to_all(FromNode::Erased { by, id, who: who.0 })]
                } else {
                    Vec::new() // already gone (two erased it at once)
                }
            }),
            ToNode::Clear => self.moderator(who).map_err(reason).map(|_| {
                self.board.clear();
                vec![to_all(FromNode::Cleared { by: who.0 })]
            }),
            ToNode::View { track, height } => match self.set_view(now, who, crate::TrackId(track), height) {
                Ok(actions) => Ok(actions),
                // The track just ended, or is not one it receives: nothing to change.
                Err(_) => Ok(Vec::new()),
            },
            ToNode::Media { media, on } => {
                let kind = match media {
                    CallMedia::Audio => MediaKind::Audio,
                    CallMedia::Video => MediaKind::Video,
                    CallMedia::Screen => MediaKind::Screen,
                };
                match self.set_sending(who, kind, on) {
                    Ok(actions) => Ok(actions),
                    // Told the way a refused track is: the device shows why.
                    Err(RoomError::Forbidden(reason) | RoomError::Closed(reason)) => {
                        Ok(vec![Action::Event { to: Some(who), event: Event::PublishRefused { who, kind, reason } }])
                    }
                    Err(e) => Err(reason(e)),
                }
            }
            ToNode::React { reaction } => {
                if REACTIONS.contains(&reaction.as_str()) {
                    Ok(vec![to_all(FromNode::Reacted { by: who.0, reaction })])
                } else {
                    Err(format!("{reaction:?} is not one of the reactions"))
                }
            }
        };
        result.unwrap_or_else(|reason| vec![refused(who, reason)])
    }
}

fn reason(e: RoomError) -> String {
    match e {
        RoomError::Forbidden(reason) | RoomError::Closed(reason) => reason.to_string(),
        RoomError::Unknown => "not in this call".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::Role;
    use crate::room::tests::acct;
    use veche_protocol::whiteboard::{Item, Shape};

    const ORG: ParticipantId = ParticipantId(1);
    const ANN: ParticipantId = ParticipantId(2);
    const GUEST: ParticipantId = ParticipantId(3);
    const T0: Instant = Duration::from_secs(10);

    fn room(mode: Mode) -> Room {
        let mut r = Room::new(mode);
        for (who, role) in [(ORG, Role::Organizer), (ANN, Role::Participant), (GUEST, Role::Guest)] {
            r.join(who, acct(who), role).unwrap();
        }
        r
    }

    fn rect(id: u64) -> Item {
        Item { id, color: 0xff_00_00, width: 20, shape: Shape::Rect { from: [100, 100], to: [2_000, 1_500] } }
    }

    fn draw(id: u64) -> Vec<u8> {
        ToNode::Draw { item: rect(id) }.encode().into_bytes()
    }

    fn messages(actions: &[Action]) -> Vec<(Option<ParticipantId>, FromNode)> {
        actions
            .iter()
            .map(|a| match a {
                Action::Signal { to, message } => (*to, message.clone()),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn refusal(actions: &[Action], who: ParticipantId) -> String {
        match messages(actions).as_slice() {
            [(Some(to), FromNode::Refused { reason })] if *to == who => reason.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_drawing_goes_to_everyone_and_late_joiners_get_the_board() {
        let mut r = room(Mode::Meeting);
        let out = r.on_signal(T0, ANN, &draw(1));
        assert_eq!(messages(&out), vec![(None, FromNode::Drawn { by: ANN.0, item: rect(1) })]);
        // A guest draws too in a meeting.
        r.on_signal(T0, GUEST, &draw(1));
        assert_eq!(r.board().len(), 2);

        let late = ParticipantId(9);
        r.join(late, acct(late), Role::Participant).unwrap();
        match messages(&r.board_for(late)).as_slice() {
            [(Some(to), FromNode::Board { items, first: true, done: true })] => {
                assert_eq!(*to, late);
                let got: Vec<_> = items.iter().map(|p| (p.by, p.item.id)).collect();
                assert_eq!(got, vec![(ANN.0, 1), (GUEST.0, 1)], "oldest first");
            }
            other => panic!("{other:?}"),
        }

        // Erasing someone else's item is allowed; erasing twice says nothing the second time.
        let erase = ToNode::Erase { by: ANN.0, id: 1 }.encode();
        let out = r.on_signal(T0, GUEST, erase.as_bytes());
        assert_eq!(messages(&out), vec![(None, FromNode::Erased { by: ANN.0, id: 1, who: GUEST.0 })]);
        assert!(r.on_signal(T0, GUEST, erase.as_bytes()).is_empty());
        assert_eq!(r.board().len(), 1);
    }

    #[test]
    fn only_moderators_clear_and_webinar_viewers_do_not_draw() {
        let mut r = room(Mode::Meeting);
        r.on_signal(T0, ANN, &draw(1));
        let clear = ToNode::Clear.encode();
        assert!(refusal(&r.on_signal(T0, ANN, clear.as_bytes()), ANN).contains("moderators"));
        assert_eq!(r.board().len(), 1);
        assert_eq!(messages(&r.on_signal(T0, ORG, clear.as_bytes())), vec![(None, FromNode::Cleared { by: ORG.0 })]);
        assert!(r.board().is_empty());

        r.set_mode(ORG, Mode::Webinar).unwrap();
        assert!(refusal(&r.on_signal(T0, ANN, &draw(2)), ANN).contains("presenters"));
        assert!(r.board().is_empty());
        r.set_role(ORG, ANN, Role::Presenter).unwrap();
        assert_eq!(messages(&r.on_signal(T0, ANN, &draw(2))).len(), 1);
        // Viewers still react.
        let react = ToNode::React { reaction: "👏".into() }.encode();
        assert_eq!(
            messages(&r.on_signal(T0, GUEST, react.as_bytes())),
            vec![(None, FromNode::Reacted { by: GUEST.0, reaction: "👏".into() })]
        );
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        let mut r = room(Mode::Meeting);
        assert!(refusal(&r.on_signal(T0, ANN, b"\xff\x00garbage"), ANN).contains("malformed"));
        let react = ToNode::React { reaction: "<script>".into() }.encode();
        assert!(refusal(&r.on_signal(T0, ANN, react.as_bytes()), ANN).contains("not one of the reactions"));
        let mut outside = rect(5);
        outside.shape = Shape::Line { from: [0, 0], to: [60_000, 0] };
        let text = ToNode::Draw { item: outside }.encode();
        assert!(refusal(&r.on_signal(T0, ANN, text.as_bytes()), ANN).contains("outside the board"));
        r.on_signal(T0, ANN, &draw(1));
        assert!(refusal(&r.on_signal(T0, ANN, &draw(1)), ANN).contains("already on the board"));
        assert!(refusal(&r.on_signal(T0, ANN, &vec![b' '; 70_000]), ANN).contains("larger than"));
        // Nobody who is not in the room is heard.
        assert!(r.on_signal(T0, ParticipantId(77), &draw(1)).is_empty());
        assert_eq!(r.board().len(), 1);
    }

    #[test]
    fn a_flood_is_cut_to_the_budget_and_told_once() {
        let mut r = room(Mode::Meeting);
        let mut drawn = 0;
        let mut refusals = 0;
        for id in 0..1_000 {
            for (_, m) in messages(&r.on_signal(T0, ANN, &draw(id))) {
                match m {
                    FromNode::Drawn { .. } => drawn += 1,
                    FromNode::Refused { .. } => refusals += 1,
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!((drawn, refusals), (SIGNAL_BURST, 1));
        // Others are not limited by it.
        assert_eq!(messages(&r.on_signal(T0, GUEST, &draw(1))).len(), 1);
        // A second later, 30 more.
        let later = T0 + Duration::from_secs(1);
        let more = (1_000..1_100).filter(|id| {
            matches!(messages(&r.on_signal(later, ANN, &draw(*id))).as_slice(), [(None, FromNode::Drawn { .. })])
        });
        assert_eq!(more.count(), SIGNALS_PER_SEC as usize);
        // A steady flood at the refill rate is told at most once a second.
        let mut told = 0;
        for ms in 0..3_000u64 {
            let at = later + Duration::from_millis(ms);
            let out = r.on_signal(at, ANN, &draw(10_000 + ms));
            told += messages(&out).iter().filter(|(_, m)| matches!(m, FromNode::Refused { .. })).count();
        }
        assert!((2..=4).contains(&told), "{told}");
    }
}
