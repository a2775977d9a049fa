//! The call's in-call channel (spec/calls.md §7): its whiteboard and reactions. The node's
//! messages come from `js/call.js` as strings and are applied to the [`Whiteboard`] in the app's
//! state. What this device draws is shown at once ("pending") and sent; the node puts it on the
//! board and sends it to everyone, this device included, which confirms it. A refusal drops
//! what waits (anything still on its way comes back with the node's answer) and is told.

use leptos::prelude::*;
use veche_protocol::call::ParticipantId;
use veche_protocol::content::AppMessage;
use veche_protocol::incall::{FromNode, REACTIONS, ToNode};
use veche_protocol::whiteboard::{Board, Item, Shape};
use wasm_bindgen::prelude::*;

use crate::state::AppState;

#[wasm_bindgen(module = "/js/call.js")]
extern "C" {
    #[wasm_bindgen(js_name = callOnSignal)]
    fn js_call_on_signal(handler: &js_sys::Function);
    #[wasm_bindgen(js_name = callReaction)]
    fn js_call_reaction(participant: u32, own: bool, emoji: &str);
}

/// How long something drawn here waits for the node's answer before it is dropped.
const PENDING_MS: u32 = 10_000;

/// The call's whiteboard as this device shows it.
#[derive(Debug, Clone, Default)]
pub struct Whiteboard {
    /// The node's board, as it last said.
    pub board: Board,
    /// Drawn here and sent, not yet on the node's board (drawn on top of it).
    pub pending: Vec<Item>,
    /// The id of the next item drawn here (unique among this device's items).
    next_id: u64,
}

impl Whiteboard {
    /// Everything to draw, oldest first, with who drew it (`None`: here, not yet confirmed).
    pub fn items(&self) -> impl Iterator<Item = (Option<ParticipantId>, &Item)> {
        self.board.items().map(|(by, item)| (Some(by), item)).chain(self.pending.iter().map(|item| (None, item)))
    }

    /// The board as a message for the call's chat, if anything is on it.
    pub fn message(&self) -> Option<AppMessage> {
        let items: Vec<Item> = self.board.items().map(|(_, item)| item.clone()).collect();
        if items.is_empty() {
            return None;
        }
        AppMessage::whiteboard(items, crate::device::now_ms()).ok()
    }

    fn confirm(&mut self, me: ParticipantId, by: ParticipantId, item: &Item) {
        if by == me {
            self.pending.retain(|p| p.id != item.id);
        }
    }
}

fn warn(text: &str) {
    web_sys::console::warn_1(&text.into());
}

/// Hands the data channel's messages to the app (once, at start).
pub fn listen(app: AppState) {
    let handler = Closure::<dyn Fn(String)>::new(move |text: String| receive(app, &text));
    js_call_on_signal(handler.as_ref().unchecked_ref());
    handler.forget();
}

/// One message from the node. Nothing it says can do more than change the board or show a
/// reaction: anything unreadable is ignored (and logged without its content).
fn receive(app: AppState, text: &str) {
    let Some(me) = app.call.with_untracked(|c| c.as_ref().filter(|c| c.lobby.is_none()).map(|c| c.me)) else {
        return;
    };
    let message = match FromNode::decode(text.as_bytes()) {
        Ok(message) => message,
        Err(_) => {
            warn(&format!("ignored an unreadable message on the call's data channel ({} bytes)", text.len()));
            return;
        }
    };
    match message {
        FromNode::Board { items, first, .. } => app.whiteboard.update(|w| {
            if first {
                w.board = Board::default();
            }
            for placed in items {
                w.confirm(me, placed.by, &placed.item);
                if w.board.draw(placed.by, placed.item).is_err() {
                    warn("ignored a whiteboard item the board does not take");
                }
            }
        }),
        FromNode::Drawn { by, item } => app.whiteboard.update(|w| {
            w.confirm(me, by, &item);
            // Already there (sent twice) or against the rules: the board stays as it is.
            let _ = w.board.draw(by, item);
        }),
        FromNode::Erased { by, id, .. } => app.whiteboard.update(|w| {
            w.board.erase((by, id));
        }),
        FromNode::Cleared { .. } => app.whiteboard.update(|w| w.board.clear()),
        FromNode::Reacted { by, reaction } => {
            if REACTIONS.contains(&reaction.as_str()) {
                js_call_reaction(by, by == me, &reaction);
            }
        }
        FromNode::Refused { reason } => {
            app.whiteboard.update(|w| w.pending.clear());
            app.toast(refusal(&reason), false);
        }
    }
}

/// The member-facing text of a refusal (the node's reason is English: known ones are told in
/// the member's language).
fn refusal(reason: &str) -> String {
    if reason.contains("presenters") {
        "@wb-refused-webinar".into()
    } else if reason.contains("moderators") {
        "@wb-refused-clear".into()
    } else if reason.contains("too many") {
        "@wb-refused-busy".into()
    } else {
        format!("@wb-refused|{reason}")
    }
}

fn send(app: AppState, message: &ToNode) -> bool {
    let sent = super::call::signal(message);
    if !sent {
        app.toast("@wb-offline".into(), true);
    }
    sent
}

/// Draws an item: shown at once, on the board once the node takes it.
pub fn draw(app: AppState, color: u32, width: u16, shape: Shape) {
    let Some(item) = app.whiteboard.try_update(|w| {
        if w.next_id == 0 {
            w.next_id = crate::device::now_ms();
        }
        let item = Item { id: w.next_id, color, width, shape };
        w.next_id += 1;
        item
    }) else {
        return;
    };
    if item.validate().is_err() {
        return;
    }
    let id = item.id;
    let message = ToNode::Draw { item: item.clone() };
    app.whiteboard.update(|w| w.pending.push(item));
    if !send(app, &message) {
        app.whiteboard.update(|w| w.pending.retain(|p| p.id != id));
        return;
    }
    // The node answers at once; without an answer (dropped), it is not on the board.
    wasm_bindgen_futures::spawn_local(async move {
        crate::device::sleep_ms(PENDING_MS).await;
        if app.whiteboard.with_untracked(|w| w.pending.iter().any(|p| p.id == id)) {
            app.whiteboard.update(|w| w.pending.retain(|p| p.id != id));
        }
    });
}

/// Takes someone's item off the board (once the node says so).
pub fn erase(app: AppState, by: ParticipantId, id: u64) {
    send(app, &ToNode::Erase { by, id });
}

/// Empties the board (the organizer and moderators).
pub fn clear(app: AppState) {
    send(app, &ToNode::Clear);
}

/// Shows a reaction to everyone.
pub fn react(app: AppState, reaction: &str) {
    if REACTIONS.contains(&reaction) {
        send(app, &ToNode::React { reaction: reaction.to_string() });
    }
}
