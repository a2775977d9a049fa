//! A 1:1 call ringing this account: who calls, answer or decline. Shown over every screen.
//! Answering picks up at once (no pre-join view: the caller is waiting), with the remembered
//! camera and microphone, both on; the call panel turns them off.

use leptos::prelude::*;
use veche_protocol::wire::Request;

use crate::components::{BTN_DANGER, BTN_PRIMARY};
use crate::device::{Cmd, DeviceHandle};
use crate::i18n::{I18n, use_i18n};
use crate::media::call::{MediaChoice, call_preview_stop, join_call};
use crate::route::navigate;
use crate::state::{AppState, Route};
use veche_ui_core::i18n::Arg;

/// Answers the ringing call: the chat opens and the call is joined with the remembered camera and
/// microphone. From the ring's buttons or a notification's "answer".
pub fn answer(app: AppState, handle: DeviceHandle, i18n: I18n) {
    let Some(ring) = app.ringing.get_untracked() else { return };
    app.ringing.set(None);
    crate::notify::close(ring.group, "call");
    // A pre-join view open elsewhere closes: this call is joined instead.
    app.prejoin.set(None);
    call_preview_stop();
    navigate(app.route, Route::Chat(ring.group));
    let choice = MediaChoice { with_mic: true, with_camera: true, ..app.media.get_untracked() };
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = join_call(&handle, ring.group, &choice).await {
            app.toast(i18n.error(&e), true);
        }
    });
}

/// Declines the ringing call. From the ring's buttons or a notification's "decline".
pub fn decline(app: AppState, handle: DeviceHandle) {
    let Some(ring) = app.ringing.get_untracked() else { return };
    app.ringing.set(None);
    crate::notify::close(ring.group, "call");
    let request = Request::CallDecline { group: ring.group };
    wasm_bindgen_futures::spawn_local(async move {
        let _ = handle.ask(|reply| Cmd::Call { request, reply }).await;
    });
}

#[component]
pub fn IncomingCall() -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let on_answer = {
        let handle = handle.clone();
        move |_| answer(app, handle.clone(), i18n)
    };
    let on_decline = move |_| decline(app, handle.clone());
    // The ring sounds while the call rings and the member is not in a call already.
    Effect::new(move |_| crate::notify::ring_tone(app.ringing.with(|r| r.is_some()) && app.call.with(|c| c.is_none())));
    view! {
        <Show when=move || app.ringing.with(|r| r.is_some()) && app.call.with(|c| c.is_none())>
            <div class="fixed inset-x-2 top-2 z-50 mx-auto max-w-sm rounded-2xl bg-slate-900 p-4 text-white shadow-2xl"
                role="alertdialog" data-testid="incoming-call" aria-live="assertive">
                <p class="text-sm text-slate-300">{move || i18n.t("call-incoming")}</p>
                <p class="mt-0.5 text-lg font-semibold" data-testid="incoming-call-name">
                    {move || app.ringing.with(|r| r.as_ref().map(|r| r.name.clone()).unwrap_or_default())}
                </p>
                <div class="mt-3 flex gap-2">
                    <button class=format!("{BTN_PRIMARY} flex-1") data-testid="call-answer" on:click=on_answer.clone()>
                        {move || i18n.t("call-answer")}
                    </button>
                    <button class=format!("{BTN_DANGER} flex-1") data-testid="call-decline" on:click=on_decline.clone()>
                        {move || i18n.t("call-decline")}
                    </button>
                </div>
                <span class="sr-only">{move || i18n.t_with("call-incoming-from", &[("name", Arg::Str(&app.ringing.with(|r| r.as_ref().map(|r| r.name.clone()).unwrap_or_default())))])}</span>
            </div>
        </Show>
    }
}
