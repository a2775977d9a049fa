//! Notifications while the app is in the background: a new message in a direct chat, a mention
//! (`@<my name>`) in a group, a 1:1 call ringing (with answer and decline). The member turns them
//! on in Settings (the browser's permission, then the choice kept on this device) and mutes chats
//! one by one; both live in `localStorage`. The page shows them through the service worker's
//! registration (`js/notify.js`), so they appear in the installed app too; a click comes back as a
//! message from the worker (`sw.js`), and the page opens the chat, answers or declines. There is
//! no push service on a LAN without internet: they arrive only while the app runs.

use std::cell::RefCell;

use leptos::prelude::*;
use veche_protocol::ids::{AccountId, ChatKind, GroupId};
use wasm_bindgen::prelude::*;

use crate::device::DeviceHandle;
use crate::i18n::I18n;
use crate::route::{navigate, path_of};
use crate::state::{AppState, Route};

#[wasm_bindgen(module = "/js/notify.js")]
extern "C" {
    #[wasm_bindgen(js_name = notifyPermission)]
    fn js_permission() -> String;
    #[wasm_bindgen(js_name = notifyRequest)]
    fn js_request() -> js_sys::Promise;
    #[wasm_bindgen(js_name = pageInBackground)]
    fn js_in_background() -> bool;
    #[wasm_bindgen(js_name = notifyShow)]
    fn js_show(
        kind: &str,
        tag: &str,
        title: &str,
        body: &str,
        group: &str,
        path: &str,
        answer: &str,
        decline: &str,
    ) -> js_sys::Promise;
    #[wasm_bindgen(js_name = notifyClose)]
    fn js_close(tag: &str, kind: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = ringTone)]
    fn js_ring_tone(on: bool);
    #[wasm_bindgen(js_name = notifyListen)]
    fn js_listen(callback: &js_sys::Function);
    #[wasm_bindgen(js_name = copyText)]
    fn js_copy_text(text: &str) -> js_sys::Promise;
}

/// What the browser allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Granted,
    /// The member (or the browser) refused: only the browser's site settings change it.
    Denied,
    /// Not asked yet.
    Default,
    /// No notifications here: plain http, no service workers, iOS Safari outside the installed app.
    Unsupported,
}

impl Permission {
    fn parse(s: &str) -> Permission {
        match s {
            "granted" => Permission::Granted,
            "denied" => Permission::Denied,
            "default" => Permission::Default,
            _ => Permission::Unsupported,
        }
    }

    /// For tests and styling: `granted`, `denied`, `default`, `unsupported`.
    pub fn code(self) -> &'static str {
        match self {
            Permission::Granted => "granted",
            Permission::Denied => "denied",
            Permission::Default => "default",
            Permission::Unsupported => "unsupported",
        }
    }
}

pub fn permission() -> Permission {
    Permission::parse(&js_permission())
}

/// Asks the browser (call it from a click).
pub async fn request() -> Permission {
    let answer = wasm_bindgen_futures::JsFuture::from(js_request()).await;
    answer.ok().and_then(|v| v.as_string()).map(|s| Permission::parse(&s)).unwrap_or_else(permission)
}

const ENABLED_KEY: &str = "veche-notify";
const MUTED_KEY: &str = "veche-muted";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// Whether the member turned notifications on on this device (the browser may since have
/// withdrawn its permission: see [`permission`]).
pub fn chosen() -> bool {
    storage().and_then(|s| s.get_item(ENABLED_KEY).ok().flatten()).is_some_and(|v| v == "on")
}

pub fn set_chosen(on: bool) {
    if let Some(s) = storage() {
        let _ = s.set_item(ENABLED_KEY, if on { "on" } else { "off" });
    }
}

fn muted_list() -> Vec<String> {
    storage()
        .and_then(|s| s.get_item(MUTED_KEY).ok().flatten())
        .map(|v| v.split(',').filter(|g| !g.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Whether this chat's notifications are muted on this device.
pub fn muted(group: GroupId) -> bool {
    let hex = group.to_hex();
    muted_list().contains(&hex)
}

pub fn set_muted(group: GroupId, mute: bool) {
    let hex = group.to_hex();
    let mut list = muted_list();
    list.retain(|g| *g != hex);
    if mute {
        list.push(hex);
    }
    if let Some(s) = storage() {
        let _ = s.set_item(MUTED_KEY, &list.join(","));
    }
    if mute {
        close(group, "");
    }
}

/// Whether something of this chat is to be shown now: notifications on and allowed, the chat not
/// muted, and the member not looking at the app.
fn wanted(group: GroupId) -> bool {
    chosen() && permission() == Permission::Granted && !muted(group) && js_in_background()
}

/// Whether `text` mentions `name` as `@name` (case-insensitive; the name is not followed by a
/// letter or digit, so `@Ann` is not a mention of `Anna`).
pub fn mentions(text: &str, name: &str) -> bool {
    let name = name.trim().to_lowercase();
    if name.is_empty() {
        return false;
    }
    let text = text.to_lowercase();
    let mut rest = text.as_str();
    while let Some(at) = rest.find('@') {
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix(name.as_str())
            && !tail.chars().next().is_some_and(char::is_alphanumeric)
        {
            return true;
        }
        rest = after;
    }
    false
}

/// The start of a message, for a notification's body.
fn preview(text: &str) -> String {
    const MAX: usize = 160;
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX {
        flat
    } else {
        let mut cut: String = flat.chars().take(MAX - 1).collect();
        cut.push('…');
        cut
    }
}

fn show(kind: &'static str, group: GroupId, title: String, body: String, i18n: I18n) {
    let tag = group.to_hex();
    let path = path_of(&Route::Chat(group));
    let (answer, decline) = (i18n.t("call-answer"), i18n.t("call-decline"));
    let promise = js_show(kind, &tag, &title, &body, &tag, &path, &answer, &decline);
    wasm_bindgen_futures::spawn_local(async move {
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    });
}

/// Closes this chat's notifications (of `kind`, or all with "").
/// The ring tone of an incoming call, on while it rings (foreground or not).
pub fn ring_tone(on: bool) {
    js_ring_tone(on);
}

pub fn close(group: GroupId, kind: &str) {
    let promise = js_close(&group.to_hex(), kind);
    wasm_bindgen_futures::spawn_local(async move {
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    });
}

/// A text message from someone else arrived in `group` (the device has decrypted and stored it).
/// Shows it when it is worth it: a direct chat, or a mention of this member in a group. Returns
/// whether it was shown.
pub fn on_message(app: AppState, group: GroupId, sender: AccountId, text: &str) -> bool {
    let Some(me) = app.me.get_untracked() else { return false };
    if sender == me.account || !wanted(group) {
        return false;
    }
    let Some((kind, chat_name)) = app.chats.with_untracked(|c| c.get(&group).map(|c| (c.kind, c.name.clone()))) else {
        return false;
    };
    let name = app.name_of(&sender);
    let title = match kind {
        ChatKind::Direct => name,
        ChatKind::Group if mentions(text, &me.name) => format!("{name} · {chat_name}"),
        ChatKind::Group => return false,
    };
    show("message", group, title, preview(text), I18n { lang: app.lang });
    true
}

/// A 1:1 call rings this member (`app.ringing` is set).
pub fn on_ring(app: AppState, group: GroupId, name: &str) {
    let pending = PENDING_ANSWER.with(|p| p.borrow_mut().take());
    if let Some((g, at)) = pending
        && g == group
        && crate::device::now_ms().saturating_sub(at) < 60_000
    {
        // The member chose "answer" on a notification before this page knew of the ring.
        HANDLE.with(|h| {
            if let Some(handle) = h.borrow().as_ref() {
                crate::views::ring::answer(app, handle.clone(), I18n { lang: app.lang });
            }
        });
        return;
    }
    if wanted(group) {
        let i18n = I18n { lang: app.lang };
        show("call", group, name.to_string(), i18n.t("call-incoming"), i18n);
    }
}

/// The ring of `group` ended: a missed call replaces its notification (while the member is
/// away), anything else closes it.
pub fn on_ring_end(app: AppState, group: GroupId, name: &str, missed: bool) {
    if missed && wanted(group) {
        let i18n = I18n { lang: app.lang };
        show("message", group, name.to_string(), i18n.t("call-missed"), i18n);
    } else {
        close(group, "call");
    }
}

thread_local! {
    static HANDLE: RefCell<Option<DeviceHandle>> = const { RefCell::new(None) };
    /// "Answer" chosen on a notification for a ring this page has not heard of yet (the click
    /// opened the app): the chat, and when.
    static PENDING_ANSWER: RefCell<Option<(GroupId, u64)>> = const { RefCell::new(None) };
}

/// Acts on clicks on notifications (told by the service worker), and closes a chat's
/// notifications when the member comes back to it.
pub fn listen(app: AppState, handle: DeviceHandle) {
    HANDLE.with(|h| *h.borrow_mut() = Some(handle.clone()));
    let on_click = Closure::<dyn FnMut(String, String)>::new(move |action: String, group: String| {
        let Ok(group) = group.parse::<GroupId>() else { return };
        let i18n = I18n { lang: app.lang };
        let ringing = app.ringing.with_untracked(|r| r.as_ref().is_some_and(|r| r.group == group));
        match action.as_str() {
            "answer" if ringing => crate::views::ring::answer(app, handle.clone(), i18n),
            "answer" => {
                PENDING_ANSWER.with(|p| *p.borrow_mut() = Some((group, crate::device::now_ms())));
                navigate(app.route, Route::Chat(group));
            }
            "decline" => {
                if ringing {
                    crate::views::ring::decline(app, handle.clone());
                }
            }
            _ => {
                if app.route.get_untracked() != Route::Chat(group) {
                    navigate(app.route, Route::Chat(group));
                }
            }
        }
    });
    js_listen(on_click.as_ref().unchecked_ref());
    on_click.forget();
    // Back in the app with a chat open: that chat's notifications are read.
    let on_visible = Closure::<dyn FnMut()>::new(move || {
        if js_in_background() {
            return;
        }
        if let Route::Chat(group) = app.route.get_untracked() {
            close(group, "message");
        }
    });
    if let Some(document) = web_sys::window().and_then(|w| w.document()) {
        let _ = document.add_event_listener_with_callback("visibilitychange", on_visible.as_ref().unchecked_ref());
    }
    if let Some(window) = web_sys::window() {
        let _ = window.add_event_listener_with_callback("focus", on_visible.as_ref().unchecked_ref());
    }
    on_visible.forget();
}

/// Copies text to the clipboard (the Clipboard API in a secure context, else the old way);
/// whether it worked.
pub async fn copy_text(text: &str) -> bool {
    let result = wasm_bindgen_futures::JsFuture::from(js_copy_text(text)).await;
    result.ok().and_then(|v| v.as_bool()).unwrap_or(false)
}
