//! Calls: the device's side of call signaling (spec/calls.md) and the bindings of the browser's
//! WebRTC glue (`js/call.js`). Joining runs in the device task, so the node's first offer, which
//! arrives right after the join's answer, always finds the peer connection stable.

use leptos::prelude::*;
use veche_protocol::call::{CallMedia, CallUpdate, ParticipantId};
use veche_protocol::ids::GroupId;
use veche_protocol::wire::{Request, Response};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::{Device, api_message};
use crate::state::CallState;

#[wasm_bindgen(module = "/js/call.js")]
extern "C" {
    #[wasm_bindgen(js_name = callStart)]
    fn js_call_start(with_video: bool) -> js_sys::Promise;
    #[wasm_bindgen(js_name = callSetAnswer)]
    fn js_call_set_answer(sdp: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = callAnswerOffer)]
    fn js_call_answer_offer(sdp: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = callStop)]
    pub fn call_stop();
    #[wasm_bindgen(js_name = callMount)]
    pub fn call_mount(element: &web_sys::Element);
    #[wasm_bindgen(js_name = callLabel)]
    fn js_call_label(participant: u32, name: &str, own: bool);
    #[wasm_bindgen(js_name = callForget)]
    fn js_call_forget(participant: u32);
    #[wasm_bindgen(js_name = callSetEnabled)]
    pub fn call_set_enabled(kind: &str, on: bool);
    #[wasm_bindgen(js_name = callHas)]
    pub fn call_has(kind: &str) -> bool;
}

fn js_error(e: JsValue) -> String {
    let text = e.as_string().or_else(|| js_sys::Reflect::get(&e, &"message".into()).ok()?.as_string());
    format!("@err-call-media|{}", text.unwrap_or_else(|| "?".into()))
}

/// Opens the camera and microphone and the peer connection; the SDP offer to join with.
pub async fn start_media() -> Result<String, String> {
    let offer = JsFuture::from(js_call_start(true)).await.map_err(js_error)?;
    offer.as_string().ok_or_else(|| "@err-call-media|no offer".to_string())
}

impl Device {
    /// Joins the chat's call with the offer of the page's peer connection.
    pub(super) async fn join_call(&mut self, group: GroupId, offer: String) -> Result<(), String> {
        if self.ui.call.with_untracked(|c| c.is_some()) {
            return Err("@err-call-already".into());
        }
        let joined = match self.call(Request::CallJoin { group, offer }).await.map_err(api_message)? {
            Response::CallJoined(joined) => joined,
            other => return Err(format!("@err-refused|{other:?}")),
        };
        JsFuture::from(js_call_set_answer(&joined.answer)).await.map_err(js_error)?;
        for p in &joined.participants {
            js_call_label(p.participant, &p.display_name, p.participant == joined.participant);
        }
        self.ui.call.set(Some(CallState {
            group,
            me: joined.participant,
            participants: joined.participants.into_iter().map(|p| (p.participant, p)).collect(),
            muted_audio: Default::default(),
        }));
        Ok(())
    }

    /// Leaves the call (the node is told when it can be).
    pub(super) async fn leave_call(&mut self) {
        let Some(call) = self.ui.call.get_untracked() else { return };
        call_stop();
        self.ui.call.set(None);
        let _ = self.call(Request::CallLeave { group: call.group }).await;
    }

    /// The connection to the node closed: the node has ended this device's part in the call.
    pub(super) fn call_lost(&mut self) {
        if self.ui.call.with_untracked(|c| c.is_some()) {
            call_stop();
            self.ui.call.set(None);
            self.ui.toast("@call-dropped".into(), true);
        }
    }

    /// The node's new offer: answered at once.
    pub(super) async fn call_offer(&mut self, group: GroupId, sdp: String) -> Result<(), String> {
        if !self.ui.call.with_untracked(|c| c.as_ref().is_some_and(|c| c.group == group)) {
            return Ok(());
        }
        let answer = JsFuture::from(js_call_answer_offer(&sdp)).await.map_err(js_error)?;
        let answer = answer.as_string().ok_or_else(|| "@err-call-media|no answer".to_string())?;
        self.call(Request::CallAnswer { group, answer }).await.map_err(api_message)?;
        Ok(())
    }

    pub(super) fn call_update(&mut self, group: GroupId, update: CallUpdate) {
        if !self.ui.call.with_untracked(|c| c.as_ref().is_some_and(|c| c.group == group)) {
            return;
        }
        match update {
            CallUpdate::Joined(p) => {
                js_call_label(p.participant, &p.display_name, false);
                self.ui.call.update(|c| {
                    if let Some(c) = c {
                        c.participants.insert(p.participant, p);
                    }
                });
            }
            CallUpdate::Left { participant } => self.forget(participant),
            CallUpdate::Muted { participant, media, .. } => {
                let me = self.ui.call.with_untracked(|c| c.as_ref().map(|c| c.me));
                if media == CallMedia::Audio {
                    self.ui.call.update(|c| {
                        if let Some(c) = c {
                            c.muted_audio.insert(participant);
                        }
                    });
                }
                if me == Some(participant) {
                    call_set_enabled(if media == CallMedia::Audio { "audio" } else { "video" }, false);
                    self.ui.toast("@call-muted-by-moderator".into(), false);
                }
            }
            CallUpdate::Unmuted { participant, media: CallMedia::Audio } => self.ui.call.update(|c| {
                if let Some(c) = c {
                    c.muted_audio.remove(&participant);
                }
            }),
            CallUpdate::AskedToUnmute { .. } => self.ui.toast("@call-asked-to-unmute".into(), false),
            CallUpdate::RoleChanged { participant, role } => self.ui.call.update(|c| {
                if let Some(p) = c.as_mut().and_then(|c| c.participants.get_mut(&participant)) {
                    p.role = role;
                }
            }),
            CallUpdate::Disconnected | CallUpdate::Ended => {
                call_stop();
                self.ui.call.set(None);
                self.ui.toast("@call-ended".into(), false);
            }
            _ => {}
        }
    }

    fn forget(&mut self, participant: ParticipantId) {
        js_call_forget(participant);
        self.ui.call.update(|c| {
            if let Some(c) = c {
                c.participants.remove(&participant);
            }
        });
    }
}
