//! The device task's side of a call (spec/calls.md): joining with the page's offer, answering
//! the node's offers, applying its updates (`veche_ui_core::call::apply`, then the page does what
//! goes with them), ringing, leaving and ending, and the records of 1:1 calls. It runs in the
//! device task, so the node's first offer, which arrives right after the join's answer, always
//! finds the peer connection stable.
//!
//! The device task calls in at a few points only: the views' call commands ([`join`], [`leave`],
//! [`end`]), the core's call events ([`event`], in the order the node sent them), a lost
//! connection ([`lost`]), and the call records waiting to be written ([`write_records`]). This
//! module reaches the device task only through [`Driver`].

use leptos::prelude::*;
use veche_protocol::call::{CallMedia, CallUpdate, RingEnd};
use veche_protocol::content::{AppMessage, CallRecord};
use veche_protocol::ids::GroupId;
use veche_protocol::wire::{Event, Request, Response};
use veche_ui_core::call::Effect;
use wasm_bindgen_futures::JsFuture;

use super::call::{
    call_set_enabled, call_stop, js_call_answer_offer, js_call_drop_screen, js_call_forget, js_call_label,
    js_call_set_answer, js_call_speaking, js_call_stop_screen, js_error, local_media, tell_sending,
};
use super::whiteboard::Whiteboard;
use crate::state::{AppState, CallLobby, CallState};

/// What the call glue needs of the device task, and all it uses of it (the device task,
/// `device::Device`, is the only implementation).
pub(crate) trait Driver {
    /// The app's signals (the call, the whiteboard, ringing, names, toasts).
    fn ui(&self) -> AppState;
    /// The call glue's own state, kept by the device task.
    fn calls(&mut self) -> &mut Calls;
    /// Whether `group` is a direct (1:1) chat this device is in.
    fn is_direct(&self, group: GroupId) -> bool;
    /// A request to the node, through the core, in order with the device's other work; the
    /// device task keeps going (the connection, the core) while it waits. The error is for the
    /// member (a message id, `@<key>|<detail>`).
    async fn request(&mut self, request: Request) -> Result<Response, String>;
    /// A message (a call record, a whiteboard) into the chat's outbox: end-to-end encrypted and
    /// sent like any message; a failure is toasted.
    fn queue_message(&mut self, group: GroupId, message: AppMessage);
}

/// The call glue's state the device task keeps.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    /// What became of 1:1 calls this device rang, still to be written in their chats.
    unwritten: Vec<(GroupId, CallRecord)>,
}

impl Calls {
    /// Whether call records wait to be written ([`write_records`]).
    pub(crate) fn has_unwritten(&self) -> bool {
        !self.unwritten.is_empty()
    }
}

/// Joins the chat's call with the offer of the page's peer connection: either in it at once,
/// or waiting in its lobby (then, let in, the view joins again with a fresh offer). On failure
/// the page's media is released.
pub(crate) async fn join(d: &mut impl Driver, group: GroupId, offer: String) -> Result<(), String> {
    let result = join_call(d, group, offer).await;
    if result.is_err() {
        call_stop();
    }
    result
}

async fn join_call(d: &mut impl Driver, group: GroupId, offer: String) -> Result<(), String> {
    let ui = d.ui();
    let rejoin = match ui.call.with_untracked(|c| c.as_ref().map(|c| (c.group, c.lobby))) {
        None => false,
        Some((g, Some(CallLobby::Admitted))) if g == group => true,
        Some(_) => return Err("@err-call-already".into()),
    };
    let response = match d.request(Request::CallJoin { group, offer }).await {
        Ok(response) => response,
        Err(e) => {
            if rejoin {
                ui.call.set(None);
            }
            return Err(e);
        }
    };
    let joined = match response {
        Response::CallJoined(joined) => joined,
        Response::CallWaiting { participant } => {
            let mut call = CallState::new(group, participant);
            call.lobby = Some(CallLobby::Waiting);
            ui.call.set(Some(call));
            return Ok(());
        }
        other => {
            if rejoin {
                ui.call.set(None);
            }
            return Err(format!("@err-refused|{other:?}"));
        }
    };
    if let Err(e) = JsFuture::from(js_call_set_answer(&joined.answer)).await {
        if rejoin {
            ui.call.set(None);
        }
        let _ = d.request(Request::CallLeave { group }).await;
        return Err(js_error(e));
    }
    for p in &joined.participants {
        js_call_label(p.participant, &p.display_name, p.participant == joined.participant);
    }
    let mut call = CallState::new(group, joined.participant);
    // Alone in a direct chat's call: the node rings the other member.
    let direct = d.is_direct(group);
    call.ringing_out = direct && joined.participants.iter().all(|p| p.participant == joined.participant);
    for p in &joined.participants {
        call.note_standing(p);
    }
    call.participants = joined.participants.into_iter().map(|p| (p.participant, p)).collect();
    call.tracks = joined.tracks.into_iter().map(|t| (t.track, t)).collect();
    call.mode = joined.mode;
    call.locked = joined.locked;
    if !call.may_present() {
        // A webinar viewer: what it sends is not forwarded (the node says so too).
        call.refused = local_media();
    }
    // The node sends the board when the data channel opens.
    ui.whiteboard.set(Whiteboard::default());
    ui.call.set(Some(call));
    Ok(())
}

/// Leaves the call (the node is told when it can be). The last one out saves the whiteboard in
/// the call's chat.
pub(crate) async fn leave(d: &mut impl Driver) {
    let ui = d.ui();
    let Some(call) = ui.call.get_untracked() else { return };
    let last = call.lobby.is_none() && call.participants.keys().all(|p| *p == call.me);
    let board = if last { ui.whiteboard.with_untracked(|w| w.message()) } else { None };
    call_stop();
    call_over(d);
    if let Some(board) = board {
        // The whiteboard into the chat (end-to-end encrypted, through the outbox).
        d.queue_message(call.group, board);
    }
    let _ = d.request(Request::CallLeave { group: call.group }).await;
    write_records(d);
}

/// Ends the call for everyone (the organizer and moderators), after saving its whiteboard in the
/// call's chat.
pub(crate) async fn end(d: &mut impl Driver) -> Result<(), String> {
    let ui = d.ui();
    let Some(group) = ui.call.with_untracked(|c| c.as_ref().map(|c| c.group)) else { return Ok(()) };
    if let Some(board) = ui.whiteboard.with_untracked(|w| w.message()) {
        d.queue_message(group, board);
    }
    d.request(Request::CallEnd { group }).await.map(|_| ())
}

/// The connection to the node closed: the node has ended this device's part in the call.
pub(crate) fn lost(d: &mut impl Driver) {
    let ui = d.ui();
    if ui.call.with_untracked(|c| c.is_some()) {
        call_stop();
        call_over(d);
        ui.toast("@call-dropped".into(), true);
    }
}

/// This device is out of its call: a call it rang that nobody answered is a missed call.
fn call_over(d: &mut impl Driver) {
    let ui = d.ui();
    if let Some(call) = ui.call.get_untracked()
        && call.ringing_out
    {
        d.calls().unwritten.push((call.group, CallRecord::Missed));
    }
    ui.call.set(None);
    ui.whiteboard.set(Whiteboard::default());
}

/// Posts the call records waiting to be written into their direct chats (end-to-end encrypted,
/// through the outbox like any message).
pub(crate) fn write_records(d: &mut impl Driver) {
    for (group, record) in std::mem::take(&mut d.calls().unwritten) {
        d.queue_message(group, AppMessage::call(record, crate::device::now_ms()));
    }
}

/// A call event for this page's media layer, in the order the node sent them.
pub(crate) async fn event(d: &mut impl Driver, event: Event) {
    let ui = d.ui();
    match event {
        Event::CallOffer { group, sdp } => {
            if let Err(e) = offer(d, group, sdp).await {
                ui.toast(e, true);
            }
        }
        Event::Call { group, update } => {
            // What became of a 1:1 call this device started.
            let told = match &update {
                CallUpdate::Declined => Some("call-declined"),
                CallUpdate::Busy => Some("call-busy"),
                CallUpdate::NoAnswer => Some("call-no-answer"),
                _ => None,
            };
            if let Some(id) = told {
                ui.toast(format!("@{id}"), false);
            }
            apply(d, group, update)
        }
        Event::CallRing { group, from, name } => {
            ui.names.update(|n| {
                n.insert(from, name.clone());
            });
            ui.ringing.set(Some(crate::state::Ringing { group, from, name: name.clone() }));
            crate::notify::on_ring(ui, group, &name);
        }
        Event::CallRingEnded { group, reason } => {
            let ringing = ui.ringing.get_untracked().filter(|r| r.group == group);
            if let Some(r) = ringing {
                ui.ringing.set(None);
                let missed = matches!(reason, RingEnd::Missed | RingEnd::Cancelled);
                crate::notify::on_ring_end(ui, group, &r.name, missed);
                if missed {
                    ui.toast(format!("@call-missed|{}", r.name), false);
                }
            }
        }
        _ => {}
    }
}

/// The node's new offer: answered at once.
async fn offer(d: &mut impl Driver, group: GroupId, sdp: String) -> Result<(), String> {
    if !d.ui().call.with_untracked(|c| c.as_ref().is_some_and(|c| c.group == group)) {
        return Ok(());
    }
    let answer = JsFuture::from(js_call_answer_offer(&sdp)).await.map_err(js_error)?;
    let answer = answer.as_string().ok_or_else(|| "@err-call-media|no answer".to_string())?;
    d.request(Request::CallAnswer { group, answer }).await?;
    Ok(())
}

/// One of the node's updates to the call this page is in: the call's state changes as
/// `veche_ui_core::call::apply` says (the views are told if it did), then the page does what
/// goes with it.
fn apply(d: &mut impl Driver, group: GroupId, update: CallUpdate) {
    let ui = d.ui();
    let mut effects = Vec::new();
    ui.call.maybe_update(|c| {
        let Some(c) = c.as_mut().filter(|c| c.group == group) else { return false };
        let before = c.clone();
        effects = veche_ui_core::call::apply(c, update, local_media);
        *c != before
    });
    for effect in effects {
        match effect {
            Effect::Label { participant, name, own } => js_call_label(participant, &name, own),
            Effect::Forget(participant) => js_call_forget(participant),
            Effect::DropScreen(participant) => js_call_drop_screen(participant),
            Effect::Speaking { participant, own } => js_call_speaking(participant, own),
            Effect::MicOff => call_set_enabled("audio", false),
            Effect::CameraOff => call_set_enabled("video", false),
            Effect::StopSharing { tell_node } => {
                js_call_stop_screen();
                if tell_node {
                    tell_sending(CallMedia::Screen, false);
                }
            }
            Effect::Record(record) => d.calls().unwritten.push((group, record)),
            Effect::Over => {
                call_stop();
                call_over(d);
            }
            Effect::Toast(id) => ui.toast(id.into(), false),
        }
    }
}
