//! The call screen of a chat: a button to start or join the chat's call, and, while in it, the
//! video grid (tiles made by `js/call.js`), who is there, and the controls.

use leptos::html;
use leptos::prelude::*;
use veche_protocol::call::{CallAction, CallMedia};
use veche_protocol::ids::GroupId;
use veche_protocol::wire::Request;

use crate::components::{BTN_DANGER, BTN_GHOST, BTN_SECONDARY};
use crate::device::call::{call_has, call_mount, call_set_enabled, start_media};
use crate::device::{Cmd, DeviceHandle};
use crate::i18n::use_i18n;
use crate::state::AppState;

/// Starts or joins the chat's call.
#[component]
pub fn CallButton(group: GroupId) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let busy = RwSignal::new(false);
    let join = move |_| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        let handle = handle.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let result = match start_media().await {
                Ok(offer) => handle.ask(|reply| Cmd::JoinCall { group, offer, reply }).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                crate::device::call::call_stop();
                app.toast(e, true);
            }
            busy.set(false);
        });
    };
    view! {
        <Show when=move || app.call.with(|c| c.is_none())>
            <button class=BTN_GHOST data-testid="call-start" aria-label=move || i18n.t("call-start")
                title=move || i18n.t("call-start") disabled=move || busy.get() on:click=join.clone()>
                <svg class="h-5 w-5" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" aria-hidden="true"><path d="M15 10.5 20 7v10l-5-3.5M4 6h11v12H4z"/></svg>
            </button>
        </Show>
    }
}

/// The call, while this page is in the chat's call.
#[component]
pub fn CallPanel(group: GroupId) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let in_call = move || app.call.with(|c| c.as_ref().is_some_and(|c| c.group == group));
    let grid = NodeRef::<html::Div>::new();
    Effect::new(move |_| {
        if in_call()
            && let Some(el) = grid.get()
        {
            call_mount(&el);
        }
    });
    let mic = RwSignal::new(true);
    let cam = RwSignal::new(true);
    let names = move || {
        app.call.with(|c| {
            c.as_ref().map(|c| c.participants.values().map(|p| p.display_name.clone()).collect::<Vec<_>>().join(", "))
        })
    };
    // Others in the call, with whether this device may turn their microphone off.
    let others = move || {
        app.call.with(|c| {
            c.as_ref()
                .map(|c| {
                    c.participants
                        .values()
                        .filter(|p| p.participant != c.me)
                        .map(|p| {
                            (
                                p.participant,
                                p.display_name.clone(),
                                c.moderating(),
                                c.muted_audio.contains(&p.participant),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    };
    let count = move || app.call.with(|c| c.as_ref().map(|c| c.participants.len()).unwrap_or(0));
    view! {
        <Show when=in_call>
            <section class="border-b border-slate-200 bg-slate-900 p-2 sm:p-3" data-testid="call-panel"
                aria-label=move || i18n.t("call")>
                <div node_ref=grid data-testid="call-grid"
                    class="grid max-h-[55vh] grid-cols-2 gap-2 overflow-y-auto sm:grid-cols-3 lg:grid-cols-4"></div>
                <div class="mt-2 flex flex-wrap items-center gap-2">
                    <p class="min-w-0 flex-1 truncate text-xs text-slate-300" data-testid="call-participants"
                        data-count=count>{names}</p>
                    <button class=BTN_SECONDARY data-testid="call-mic" aria-pressed=move || (!mic.get()).to_string()
                        disabled=move || !call_has("audio")
                        on:click=move |_| { let on = !mic.get_untracked(); call_set_enabled("audio", on); mic.set(on); }>
                        {move || if mic.get() { i18n.t("call-mic-off") } else { i18n.t("call-mic-on") }}
                    </button>
                    <button class=BTN_SECONDARY data-testid="call-camera" aria-pressed=move || (!cam.get()).to_string()
                        disabled=move || !call_has("video")
                        on:click=move |_| { let on = !cam.get_untracked(); call_set_enabled("video", on); cam.set(on); }>
                        {move || if cam.get() { i18n.t("call-camera-off") } else { i18n.t("call-camera-on") }}
                    </button>
                    <ul class="flex w-full flex-wrap gap-1.5 order-last" data-testid="call-people">
                        <For each=others key=|p| p.clone() let:p>
                            <CallPerson group=group participant=p.0 name=p.1 can_mute=p.2 muted=p.3/>
                        </For>
                    </ul>
                    <button class=BTN_DANGER data-testid="call-leave" on:click={
                        let handle = handle.clone();
                        move |_| handle.send(Cmd::LeaveCall)
                    }>{move || i18n.t("call-leave")}</button>
                </div>
            </section>
        </Show>
    }
}

/// Someone else in the call: their name, and for moderators a button that turns their
/// microphone off.
#[component]
fn CallPerson(group: GroupId, participant: u32, name: String, can_mute: bool, muted: bool) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let label = name.clone();
    let mute = move |_| {
        let handle = handle.clone();
        let request = Request::CallModerate { group, participant, action: CallAction::Mute(CallMedia::Audio) };
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = handle.ask(|reply| Cmd::Call { request, reply }).await {
                app.toast(e, true);
            }
        });
    };
    view! {
        <li class="flex items-center gap-1 rounded-full bg-slate-700 py-0.5 pl-2.5 pr-1 text-xs text-white"
            data-testid="call-person" data-name=label data-muted=muted.to_string()>
            <span class="py-0.5 pr-1.5">{name}</span>
            {muted.then(|| view! { <span class="pr-1.5 text-slate-300">{move || i18n.t("call-muted")}</span> })}
            {(can_mute && !muted).then(|| view! {
                <button class="rounded-full bg-slate-600 px-2 py-0.5 hover:bg-slate-500" data-testid="call-mute-person"
                    on:click=mute>
                    {move || i18n.t("call-mute-person")}
                </button>
            })}
        </li>
    }
}
