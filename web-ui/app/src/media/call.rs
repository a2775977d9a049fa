//! Calls in the page: the bindings of the browser's WebRTC glue (`js/call.js`): the pre-join
//! preview, the devices to choose from, the peer connection and its statistics, the screen
//! share, and joining from a view. The device task's side of signaling is [`super::signaling`].

use leptos::prelude::*;
use veche_protocol::call::CallMedia;
use veche_protocol::ids::GroupId;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use veche_protocol::incall::ToNode;

use crate::device::{Cmd, DeviceHandle};
use crate::state::AppState;

#[wasm_bindgen(module = "/js/call.js")]
extern "C" {
    #[wasm_bindgen(js_name = callStart)]
    fn js_call_start(camera: &str, mic: &str, with_audio: bool, with_video: bool) -> js_sys::Promise;
    #[wasm_bindgen(js_name = callPreview)]
    fn js_call_preview(camera: &str, mic: &str, with_video: bool) -> js_sys::Promise;
    #[wasm_bindgen(js_name = callPreviewMount)]
    pub fn call_preview_mount(video: &web_sys::Element, level: &web_sys::Element);
    #[wasm_bindgen(js_name = callPreviewStop)]
    pub fn call_preview_stop();
    #[wasm_bindgen(js_name = callDevices)]
    fn js_call_devices() -> js_sys::Promise;
    #[wasm_bindgen(js_name = callOnDevices)]
    fn js_call_on_devices(handler: &js_sys::Function);
    #[wasm_bindgen(js_name = callSinkSupported)]
    pub fn call_sink_supported() -> bool;
    /// Whether the browser has WebRTC (`RTCPeerConnection`): without it, no calls.
    #[wasm_bindgen(js_name = callWebRtcSupported)]
    pub fn call_webrtc_supported() -> bool;
    #[wasm_bindgen(js_name = callSetSink)]
    pub fn call_set_sink(id: &str);
    #[wasm_bindgen(js_name = callStats)]
    fn js_call_stats() -> js_sys::Promise;
    #[wasm_bindgen(js_name = callLayout)]
    pub fn call_layout(ids: &str);
    #[wasm_bindgen(js_name = callSetAnswer)]
    pub(super) fn js_call_set_answer(sdp: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = callAnswerOffer)]
    pub(super) fn js_call_answer_offer(sdp: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = callStop)]
    pub fn call_stop();
    #[wasm_bindgen(js_name = callMount)]
    pub fn call_mount(element: &web_sys::Element, screens: &web_sys::Element, reactions: &web_sys::Element);
    #[wasm_bindgen(js_name = callLabel)]
    pub(super) fn js_call_label(participant: u32, name: &str, own: bool);
    #[wasm_bindgen(js_name = callForget)]
    pub(super) fn js_call_forget(participant: u32);
    #[wasm_bindgen(js_name = callSetEnabled)]
    fn js_call_set_enabled(kind: &str, on: bool) -> js_sys::Promise;
    #[wasm_bindgen(js_name = callHas)]
    pub fn call_has(kind: &str) -> bool;
    #[wasm_bindgen(js_name = callEnabled)]
    pub fn call_enabled(kind: &str) -> bool;
    #[wasm_bindgen(js_name = callSpeaking)]
    pub(super) fn js_call_speaking(participant: u32, own: bool);
    #[wasm_bindgen(js_name = callSignal)]
    fn js_call_signal(text: &str) -> bool;
    #[wasm_bindgen(js_name = callScreenSupported)]
    pub fn call_screen_supported() -> bool;
    #[wasm_bindgen(js_name = callShareScreen)]
    fn js_call_share_screen() -> js_sys::Promise;
    #[wasm_bindgen(js_name = callStopScreen)]
    pub(super) fn js_call_stop_screen();
    #[wasm_bindgen(js_name = callOnScreenEnded)]
    fn js_call_on_screen_ended(handler: &js_sys::Function);
    #[wasm_bindgen(js_name = callDropScreen)]
    pub(super) fn js_call_drop_screen(participant: u32);
}

/// Sends a message on the call's data channel; false if it is not open.
pub fn signal(message: &ToNode) -> bool {
    js_call_signal(&message.encode())
}

/// Tells the node this device turned its microphone, camera or screen share on or off (so a
/// stopped share leaves everyone's view, and turning on what a moderator asked for is forwarded
/// again).
pub fn tell_sending(media: CallMedia, on: bool) {
    signal(&ToNode::Media { media, on });
}

/// Shares a screen (or window, or tab: the browser asks which). The error is for the member (a
/// message id); `Ok(false)` when they cancelled the browser's question.
pub async fn share_screen(app: AppState) -> Result<bool, String> {
    let got = JsFuture::from(js_call_share_screen()).await.map_err(js_error)?;
    match got.as_string().unwrap_or_default().as_str() {
        "" => {}
        "denied" => return Ok(false),
        "none" => return Err("@call-screen-unsupported".into()),
        _ => return Err("@call-screen-failed".into()),
    }
    tell_sending(CallMedia::Screen, true);
    app.call.update(|c| {
        if let Some(c) = c {
            c.sharing = true;
        }
    });
    Ok(true)
}

/// Stops sharing the screen (the member did, in the call or in the browser's own bar, or a
/// moderator did).
pub fn stop_screen(app: AppState) {
    js_call_stop_screen();
    tell_sending(CallMedia::Screen, false);
    app.call.update(|c| {
        if let Some(c) = c
            && c.sharing
        {
            c.sharing = false;
        }
    });
}

/// The member stops sharing from the browser's own "stop sharing" bar: the call hears of it.
pub fn on_screen_ended(app: AppState) {
    let handler = Closure::<dyn Fn()>::new(move || stop_screen(app));
    js_call_on_screen_ended(handler.as_ref().unchecked_ref());
    handler.forget();
}

/// What this device sends (from its local tracks).
pub(super) fn local_media() -> Vec<CallMedia> {
    let mut media = Vec::new();
    if call_has("audio") {
        media.push(CallMedia::Audio);
    }
    if call_has("video") {
        media.push(CallMedia::Video);
    }
    media
}

pub(super) fn js_error(e: JsValue) -> String {
    let text = e.as_string().or_else(|| js_sys::Reflect::get(&e, &"message".into()).ok()?.as_string());
    format!("@err-call-media|{}", text.unwrap_or_else(|| "?".into()))
}

/// The devices a member joins calls with, and whether with the microphone and camera on. The
/// devices are remembered in the browser (`localStorage`) for the next call; the toggles hold
/// for this page's calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaChoice {
    /// Device ids ("": the browser's default).
    pub camera: String,
    pub mic: String,
    pub speaker: String,
    pub with_mic: bool,
    pub with_camera: bool,
}

const CAMERA_KEY: &str = "veche-camera";
const MIC_KEY: &str = "veche-mic";
const SPEAKER_KEY: &str = "veche-speaker";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

impl MediaChoice {
    /// The devices chosen last time, microphone and camera on.
    pub fn remembered() -> Self {
        let get = |key| storage().and_then(|s| s.get_item(key).ok().flatten()).unwrap_or_default();
        MediaChoice {
            camera: get(CAMERA_KEY),
            mic: get(MIC_KEY),
            speaker: get(SPEAKER_KEY),
            with_mic: true,
            with_camera: true,
        }
    }

    /// Keeps the devices for next time.
    pub fn remember(&self) {
        if let Some(s) = storage() {
            for (key, value) in [(CAMERA_KEY, &self.camera), (MIC_KEY, &self.mic), (SPEAKER_KEY, &self.speaker)] {
                let _ = if value.is_empty() { s.remove_item(key) } else { s.set_item(key, value) };
            }
        }
    }
}

/// Opens the chosen camera and microphone (the pre-join preview's stream, if it is open) and
/// the peer connection, plays the others through the chosen speaker; the SDP offer to join with.
pub async fn start_media(choice: &MediaChoice) -> Result<String, String> {
    if !call_webrtc_supported() {
        return Err("@call-no-webrtc".to_string());
    }
    call_set_sink(&choice.speaker);
    let start = js_call_start(&choice.camera, &choice.mic, choice.with_mic, choice.with_camera);
    let offer = JsFuture::from(start).await.map_err(js_error)?;
    offer.as_string().ok_or_else(|| "@err-call-media|no offer".to_string())
}

/// Joins the chat's call from this page: the camera and microphone as chosen, the peer
/// connection, and the join with its offer. On failure the media is released again; the error
/// is for the member (a message id).
pub async fn join_call(handle: &DeviceHandle, group: GroupId, choice: &MediaChoice) -> Result<(), String> {
    let result = match start_media(choice).await {
        Ok(offer) => handle.ask(|reply| Cmd::JoinCall { group, offer, reply }).await,
        Err(e) => Err(e),
    };
    if result.is_err() {
        call_stop();
    }
    result
}

/// Turns the microphone ("audio") or camera ("video") on or off at once, without waiting.
pub fn call_set_enabled(kind: &str, on: bool) {
    let _ = js_call_set_enabled(kind, on);
}

/// Turns the microphone or camera on or off; whether it is on now (the camera may fail to open).
pub async fn set_media(kind: &str, on: bool) -> bool {
    JsFuture::from(js_call_set_enabled(kind, on)).await.ok().and_then(|v| v.as_bool()).unwrap_or(false)
}

fn field(value: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(value, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

fn text(value: &JsValue, name: &str) -> String {
    field(value, name).as_string().unwrap_or_default()
}

fn number(value: &JsValue, name: &str) -> f64 {
    field(value, name).as_f64().unwrap_or(-1.0)
}

/// What the pre-join preview could open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preview {
    pub audio: bool,
    pub video: bool,
    /// Ids of the devices in use ("" when none).
    pub camera: String,
    pub mic: String,
    /// The browser has a camera (even if it is off or could not be opened).
    pub has_camera: bool,
    /// Why something could not be opened: "denied", "none", "busy", "failed" ("": it all opened).
    pub error: String,
}

/// Opens the pre-join preview with these devices ("" for the default), the camera only if
/// `with_video`. `None` when a newer preview replaced it meanwhile.
pub async fn preview(camera: &str, mic: &str, with_video: bool) -> Option<Preview> {
    let got = JsFuture::from(js_call_preview(camera, mic, with_video)).await.ok()?;
    if got.is_null() || got.is_undefined() {
        return None;
    }
    Some(Preview {
        audio: field(&got, "audio").is_truthy(),
        video: field(&got, "video").is_truthy(),
        camera: text(&got, "camera"),
        mic: text(&got, "mic"),
        has_camera: field(&got, "hasCamera").is_truthy(),
        error: text(&got, "error"),
    })
}

/// A camera, microphone or speaker of the browser.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaDevice {
    /// "videoinput", "audioinput" or "audiooutput".
    pub kind: String,
    pub id: String,
    /// Empty until the browser allowed a device.
    pub label: String,
}

/// The browser's cameras, microphones and speakers.
pub async fn devices() -> Vec<MediaDevice> {
    let Ok(list) = JsFuture::from(js_call_devices()).await else { return Vec::new() };
    js_sys::Array::from(&list)
        .iter()
        .map(|d| MediaDevice { kind: text(&d, "kind"), id: text(&d, "id"), label: text(&d, "label") })
        .collect()
}

/// Calls `handler` whenever a device is plugged in or out (once per page: the last one wins).
pub fn on_devices_changed(handler: impl Fn() + 'static) {
    let handler = Closure::<dyn Fn()>::new(handler);
    js_call_on_devices(handler.as_ref().unchecked_ref());
    handler.forget();
}

/// What the peer connection measures now (see `veche_ui_core::quality`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub rtt_ms: Option<f64>,
    pub upload_bps: Option<f64>,
    pub counts: veche_ui_core::quality::Counts,
    pub sending_video: bool,
}

/// The call's peer connection's statistics, or `None` outside a call.
pub async fn stats() -> Option<Stats> {
    let got = JsFuture::from(js_call_stats()).await.ok()?;
    if got.is_null() || got.is_undefined() {
        return None;
    }
    let known = |v: f64| (v >= 0.0).then_some(v);
    Some(Stats {
        rtt_ms: known(number(&got, "rtt")).map(|s| s * 1000.0),
        upload_bps: known(number(&got, "upload")),
        counts: veche_ui_core::quality::Counts {
            lost: number(&got, "lost") as i64,
            received: number(&got, "received").max(0.0) as u64,
        },
        sending_video: field(&got, "sendingVideo").is_truthy(),
    })
}
