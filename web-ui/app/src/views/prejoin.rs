//! The pre-join view of a chat's call, in the call panel's place: before joining, the member
//! sees their camera's picture and their microphone's level, picks the camera, microphone and
//! (where the browser can) speaker, which are remembered for the next call, may join with the
//! microphone or camera off, and joins or goes back. Without a camera or microphone, or when
//! the browser does not allow them, it says so plainly and still lets them join to see and hear
//! the others.

use leptos::html;
use leptos::prelude::*;
use veche_protocol::ids::GroupId;
use veche_ui_core::i18n::Arg;

use crate::components::{BTN_PRIMARY, BTN_SECONDARY};
use crate::device::DeviceHandle;
use crate::i18n::use_i18n;
use crate::media::call::{
    MediaDevice, Preview, call_preview_mount, call_preview_stop, call_sink_supported, call_webrtc_supported, devices,
    join_call, on_devices_changed, preview,
};
use crate::state::AppState;

/// What the status line says of the preview: its `data-state` and message id (none when all is
/// well).
fn status_of(p: Option<&Preview>, with_camera: bool) -> (&'static str, Option<&'static str>) {
    let Some(p) = p else { return ("opening", Some("prejoin-opening")) };
    let camera_wanted = with_camera || !p.has_camera;
    if !p.audio && !p.video && camera_wanted {
        match p.error.as_str() {
            "denied" => ("denied", Some("prejoin-denied")),
            "busy" => ("busy", Some("prejoin-busy")),
            _ => ("none", Some("prejoin-no-devices")),
        }
    } else if !p.audio {
        ("no-mic", Some("prejoin-no-mic"))
    } else if with_camera && !p.video {
        ("no-camera", Some("prejoin-no-camera"))
    } else {
        ("ok", None)
    }
}

/// One of the device selects: its options (the browser's devices of one kind, unnamed ones
/// numbered) with the one in use selected.
#[component]
fn DeviceSelect(
    testid: &'static str,
    label: &'static str,
    numbered: &'static str,
    kind: &'static str,
    devices: RwSignal<Vec<MediaDevice>>,
    #[prop(into)] current: Signal<String>,
    on_pick: Callback<String>,
) -> impl IntoView {
    let i18n = use_i18n();
    let list = move || devices.with(|d| d.iter().filter(|d| d.kind == kind).cloned().enumerate().collect::<Vec<_>>());
    view! {
        <label class="block min-w-0 text-xs font-medium text-slate-300">
            <span class="mb-1 block">{move || i18n.t(label)}</span>
            <select data-testid=testid
                class="block w-full truncate rounded-lg border-0 bg-slate-800 py-2 pl-3 pr-8 text-sm text-white ring-1 ring-inset ring-slate-600 focus:ring-2 focus:ring-indigo-400 disabled:opacity-50"
                disabled=move || list().is_empty()
                on:change=move |ev| on_pick.run(event_target_value(&ev))>
                <Show when=move || list().is_empty()>
                    <option value="">{move || i18n.t("prejoin-none-found")}</option>
                </Show>
                <For each=list key=|(_, d)| d.clone() let:item>
                    {
                        let (n, device) = item;
                        let id = device.id.clone();
                        let name = device.label.clone();
                        view! {
                            <option value=device.id.clone() prop:selected=move || current.get() == id>
                                {move || if name.is_empty() {
                                    i18n.t_with(numbered, &[("n", Arg::Num(n as i64 + 1))])
                                } else {
                                    name.clone()
                                }}
                            </option>
                        }
                    }
                </For>
            </select>
        </label>
    }
}

/// The pre-join view (shown while `AppState::prejoin` is this chat and the page is in no call).
#[component]
pub fn PreJoin(group: GroupId) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    if !call_webrtc_supported() {
        // No camera preview, no join: say why, plainly, and where calls work.
        return view! {
            <section class="border-b border-slate-200 bg-slate-900 p-3 text-white" data-testid="call-prejoin"
                aria-label=move || i18n.t("prejoin-title")>
                <p class="mb-2 rounded-lg bg-amber-500/15 px-3 py-2 text-sm text-amber-100" data-testid="prejoin-no-webrtc"
                    role="alert">{move || i18n.t("call-no-webrtc")}</p>
                <button class=BTN_SECONDARY data-testid="prejoin-cancel" on:click=move |_| app.prejoin.set(None)>
                    {move || i18n.t("prejoin-cancel")}
                </button>
            </section>
        }
        .into_any();
    }
    let video = NodeRef::<html::Video>::new();
    let level = NodeRef::<html::Div>::new();
    // What the preview opened (None while it opens).
    let opened = RwSignal::new(None::<Preview>);
    let listed = RwSignal::new(Vec::<MediaDevice>::new());
    let joining = RwSignal::new(false);
    let speakers = call_sink_supported();

    // Lists the devices (their names are there once the browser allowed one).
    let list = move || {
        wasm_bindgen_futures::spawn_local(async move {
            let found = devices().await;
            let _ = listed.try_set(found);
        })
    };
    // Opens the preview again with the choice as it is now.
    let reopen = move || {
        let choice = app.media.get_untracked();
        opened.set(None);
        wasm_bindgen_futures::spawn_local(async move {
            if let Some(got) = preview(&choice.camera, &choice.mic, choice.with_camera).await
                && opened.try_set(Some(got)).is_none()
            {
                list();
            }
        });
    };
    Effect::new(move |done: Option<bool>| {
        if done == Some(true) {
            return true;
        }
        let (Some(v), Some(l)) = (video.get(), level.get()) else { return false };
        call_preview_mount(&v, &l);
        reopen();
        true
    });
    on_devices_changed(list);
    on_cleanup(call_preview_stop);

    // The device in use (chosen, else what the browser opened by default).
    let camera = Signal::derive(move || {
        let chosen = app.media.with(|m| m.camera.clone());
        if chosen.is_empty() {
            opened.with(|p| p.as_ref().map(|p| p.camera.clone()).unwrap_or_default())
        } else {
            chosen
        }
    });
    let mic = Signal::derive(move || {
        let chosen = app.media.with(|m| m.mic.clone());
        if chosen.is_empty() { opened.with(|p| p.as_ref().map(|p| p.mic.clone()).unwrap_or_default()) } else { chosen }
    });
    let speaker = Signal::derive(move || app.media.with(|m| m.speaker.clone()));
    let pick = move |what: fn(&mut crate::media::call::MediaChoice, String), reopening: bool| {
        Callback::new(move |id: String| {
            app.media.update(|m| what(m, id));
            app.media.with_untracked(|m| m.remember());
            if reopening {
                reopen();
            }
        })
    };
    let pick_camera = pick(|m, id| m.camera = id, true);
    let pick_mic = pick(|m, id| m.mic = id, true);
    let pick_speaker = pick(|m, id| m.speaker = id, false);

    let with_mic = move || app.media.with(|m| m.with_mic);
    let with_camera = move || app.media.with(|m| m.with_camera);
    let has_mic = move || opened.with(|p| p.as_ref().is_some_and(|p| p.audio));
    // The preview opened and found no camera (or was not allowed one).
    let no_camera = move || opened.with(|p| p.as_ref().is_some_and(|p| !p.has_camera));
    let showing = move || with_camera() && opened.with(|p| p.as_ref().is_some_and(|p| p.video));
    let status = move || opened.with(|p| status_of(p.as_ref(), with_camera()));

    let join = move |_| {
        if joining.get_untracked() {
            return;
        }
        joining.set(true);
        let handle = handle.clone();
        let choice = app.media.get_untracked();
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = join_call(&handle, group, &choice).await {
                app.toast(e, true);
            }
            let _ = joining.try_set(false);
            app.prejoin.set(None);
        });
    };
    let cancel = move |_| {
        call_preview_stop();
        app.prejoin.set(None);
    };
    let toggle = "flex items-center gap-2 rounded-lg bg-slate-800 px-3 py-2 text-sm text-white ring-1 ring-inset ring-slate-600 has-[:disabled]:opacity-50";
    view! {
        <section class="border-b border-slate-200 bg-slate-900 p-3 text-white" data-testid="call-prejoin"
            aria-label=move || i18n.t("prejoin-title")>
            <h2 class="mb-2 text-sm font-semibold">{move || i18n.t("prejoin-title")}</h2>
            <div class="flex flex-col gap-3 md:flex-row md:items-start">
                <div class="relative aspect-video w-full overflow-hidden rounded-xl bg-slate-800 md:w-1/2 md:max-w-md">
                    <video node_ref=video data-testid="prejoin-preview" class="h-full w-full -scale-x-100 object-cover"
                        class:invisible=move || !showing() autoplay playsinline prop:muted=true muted=true
                        aria-label=move || i18n.t("prejoin-preview")></video>
                    <Show when=move || !showing()>
                        <p class="absolute inset-0 flex items-center justify-center p-4 text-center text-sm text-slate-300"
                            data-testid="prejoin-camera-off">
                            {move || if !with_camera() { i18n.t("prejoin-camera-is-off") } else { i18n.t("prejoin-no-picture") }}
                        </p>
                    </Show>
                </div>
                <div class="flex min-w-0 flex-1 flex-col gap-2.5">
                    <p class=move || format!("text-sm {}", if status().0 == "ok" { "sr-only" } else { "rounded-lg bg-amber-500/15 px-3 py-2 text-amber-100" })
                        data-testid="prejoin-status" data-state=move || status().0 role="status">
                        {move || status().1.map(|id| i18n.t(id)).unwrap_or_else(|| i18n.t("prejoin-ready"))}
                    </p>
                    <div class=move || format!("flex items-center gap-2 text-xs text-slate-300 {}", if with_mic() && has_mic() { "" } else { "opacity-40" })>
                        <span class="shrink-0">{move || i18n.t("prejoin-mic-level")}</span>
                        <div node_ref=level data-testid="prejoin-mic-level" data-level="0" role="meter" aria-valuemin="0"
                            aria-valuemax="100" aria-valuenow="0" aria-label=move || i18n.t("prejoin-mic-level")
                            class="h-2 flex-1 overflow-hidden rounded-full bg-slate-700">
                            <div class="h-full w-0 rounded-full bg-emerald-400 transition-[width] duration-100"></div>
                        </div>
                    </div>
                    <div class="grid grid-cols-1 gap-2 sm:grid-cols-2">
                        <DeviceSelect testid="prejoin-camera" label="prejoin-camera" numbered="prejoin-camera-n"
                            kind="videoinput" devices=listed current=camera on_pick=pick_camera/>
                        <DeviceSelect testid="prejoin-mic" label="prejoin-mic" numbered="prejoin-mic-n"
                            kind="audioinput" devices=listed current=mic on_pick=pick_mic/>
                        {speakers.then(|| view! {
                            <DeviceSelect testid="prejoin-speaker" label="prejoin-speaker" numbered="prejoin-speaker-n"
                                kind="audiooutput" devices=listed current=speaker on_pick=pick_speaker/>
                        })}
                    </div>
                    <div class="flex flex-wrap gap-2">
                        <label class=toggle>
                            <input type="checkbox" class="h-4 w-4 rounded border-slate-500" data-testid="prejoin-with-mic"
                                disabled=move || !has_mic() prop:checked=move || with_mic() && has_mic()
                                on:change=move |ev| { let on = event_target_checked(&ev); app.media.update(|m| m.with_mic = on); }/>
                            {move || i18n.t("prejoin-with-mic")}
                        </label>
                        <label class=toggle>
                            <input type="checkbox" class="h-4 w-4 rounded border-slate-500" data-testid="prejoin-with-camera"
                                disabled=no_camera prop:checked=move || with_camera() && !no_camera()
                                on:change=move |ev| { let on = event_target_checked(&ev); app.media.update(|m| m.with_camera = on); reopen(); }/>
                            {move || i18n.t("prejoin-with-camera")}
                        </label>
                    </div>
                    <div class="mt-1 flex gap-2">
                        <button class=format!("{BTN_PRIMARY} flex-1 sm:flex-none") data-testid="prejoin-join"
                            disabled=move || joining.get() on:click=join>
                            {move || i18n.t("prejoin-join")}
                        </button>
                        <button class=BTN_SECONDARY data-testid="prejoin-cancel" disabled=move || joining.get() on:click=cancel>
                            {move || i18n.t("prejoin-cancel")}
                        </button>
                    </div>
                </div>
            </div>
        </section>
    }
    .into_any()
}
