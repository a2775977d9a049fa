//! The call screen of a chat: a button to start or join the chat's call, which opens the
//! pre-join view (`views::prejoin`), and, while in the call, the video grid (tiles made by
//! `js/call.js`) in pages, the connection's quality, who is there (with their roles and raised
//! hands, and for moderators what they may do to them), who waits in the lobby, and the
//! controls. A device waiting in the lobby sees a waiting screen; let in, it joins again with a
//! fresh peer connection.

use leptos::html;
use leptos::prelude::*;
use veche_protocol::call::{CallAction, CallChange, CallMedia, CallMode, CallRole};
use veche_protocol::ids::GroupId;
use veche_protocol::incall::REACTIONS;
use veche_protocol::wire::Request;

use veche_ui_core::grid;
use veche_ui_core::i18n::Arg;
use veche_ui_core::quality::{self, Counts, Measures, Quality};

use crate::components::{BTN_DANGER, BTN_GHOST};
use crate::device::{Cmd, DeviceHandle, sleep_ms};
use crate::i18n::{I18n, use_i18n};
use crate::media::call::{
    call_enabled, call_has, call_layout, call_mount, call_screen_supported, join_call, on_screen_ended, set_media,
    share_screen, stats, stop_screen, tell_sending,
};
use crate::media::whiteboard::react;
use crate::state::{AppState, CallLobby};
use crate::views::prejoin::PreJoin;
use crate::views::whiteboard::WhiteboardPanel;

/// How often the connection's quality is measured (milliseconds).
const QUALITY_MS: u32 = 2000;

// The call bar's icons (24×24, stroked): SVG, so they show without an emoji font.
const ICON_MIC: &str = "M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3Z M5 11a7 7 0 0 0 14 0 M12 18v3 M8 21h8";
const ICON_MIC_OFF: &str =
    "M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3Z M5 11a7 7 0 0 0 14 0 M12 18v3 M8 21h8 M3 3l18 18";
const ICON_CAMERA: &str = "M15 10.5 20 7v10l-5-3.5 M4 6h11v12H4z";
const ICON_CAMERA_OFF: &str = "M15 10.5 20 7v10l-5-3.5 M4 6h11v12H4z M3 3l18 18";
const ICON_SCREEN: &str = "M3 4h18v12H3z M8 20h8 M12 16v4";
const ICON_HAND: &str = "M8 13V5.5a1.5 1.5 0 0 1 3 0V12 M11 11V4.5a1.5 1.5 0 0 1 3 0V12 M14 11V6.5a1.5 1.5 0 0 1 3 0V15a6 6 0 0 1-6 6h-1a6 6 0 0 1-5-2.7L3.3 15a1.5 1.5 0 0 1 2.4-1.8L8 15.5";
const ICON_SMILE: &str = "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18Z M8.5 14.5a4.5 4.5 0 0 0 7 0 M9 9.5h.01 M15 9.5h.01";
const ICON_BOARD: &str = "M3 4h18v13H3z M8 21l4-4 4 4";
const ICON_PEOPLE: &str = "M16 19a4 4 0 0 0-8 0 M12 12a3 3 0 1 0 0-6 3 3 0 0 0 0 6Z M22 19a3.5 3.5 0 0 0-4.5-3.3 M17 11a2.5 2.5 0 1 0 0-5 M2 19a3.5 3.5 0 0 1 4.5-3.3 M7 11a2.5 2.5 0 1 1 0-5";
const ICON_CHAT: &str = "M4 5h16v11H9l-5 4z";
const ICON_MORE: &str = "M5 12h.01 M12 12h.01 M19 12h.01";
const ICON_LEAVE: &str = "M3 15.5c5-4.7 13-4.7 18 0l-2 2.5-3.5-1.3V14a11 11 0 0 0-7 0v2.7L5 18z";
const ICON_CLOSE: &str = "M6 6l12 12 M18 6 6 18";

/// One icon of the call's bar.
#[component]
fn Icon(#[prop(into)] d: Signal<&'static str>, #[prop(default = "h-5 w-5")] class: &'static str) -> impl IntoView {
    view! {
        <svg class=class viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8"
            stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><path d=d/></svg>
    }
}

/// A round button of the call's bar: an icon, its name for screen readers and as a tooltip.
const BAR_BUTTON: &str = "relative flex h-10 w-10 shrink-0 sm:h-11 sm:w-11 items-center justify-center rounded-full bg-slate-700 text-white \
    hover:bg-slate-600 disabled:opacity-40 aria-pressed:bg-slate-100 aria-pressed:text-slate-900 aria-expanded:bg-slate-100 \
    aria-expanded:text-slate-900 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-400";
/// The bar's microphone and camera: red while off.
const BAR_MEDIA: &str = "relative flex h-10 w-10 shrink-0 sm:h-11 sm:w-11 items-center justify-center rounded-full bg-slate-700 text-white \
    hover:bg-slate-600 disabled:opacity-40 aria-pressed:bg-rose-600 aria-pressed:hover:bg-rose-500 \
    focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-400";

/// Whether the chat's messages show beside the call (a side panel on a wide screen, a sheet on a
/// phone): the chat view lays itself out by it, the call's bar toggles it.
#[derive(Clone, Copy)]
pub struct CallChatOpen(pub RwSignal<bool>);

/// From this window width (CSS pixels, Tailwind's `lg`) the participants show beside the videos
/// from the start; narrower, they open as a sheet when asked for.
const SIDE_PANEL_WIDTH_PX: f64 = 1024.0;

/// The call's side panel (or sheet on a phone): nobody, the participants, or none.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    None,
    People,
}

/// Starts or joins the chat's call: opens its pre-join view.
#[component]
pub fn CallButton(group: GroupId) -> impl IntoView {
    let app = expect_context::<AppState>();
    let i18n = use_i18n();
    let open = move |_| app.prejoin.set(Some(group));
    view! {
        <Show when=move || app.call.with(|c| c.is_none()) && app.prejoin.get() != Some(group)>
            <button class=BTN_GHOST data-testid="call-start" aria-label=move || i18n.t("call-start")
                title=move || i18n.t("call-start") on:click=open>
                <svg class="h-5 w-5" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" aria-hidden="true"><path d="M15 10.5 20 7v10l-5-3.5M4 6h11v12H4z"/></svg>
            </button>
        </Show>
    }
}

/// Sends a call request; a refusal is shown as a toast.
fn send_request(handle: &DeviceHandle, app: AppState, request: Request) {
    let handle = handle.clone();
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = handle.ask(|reply| Cmd::Call { request, reply }).await {
            app.toast(e, true);
        }
    });
}

fn role_name(role: CallRole) -> &'static str {
    match role {
        CallRole::Organizer => "organizer",
        CallRole::Moderator => "moderator",
        CallRole::Presenter => "presenter",
        CallRole::Participant => "participant",
        CallRole::Guest => "guest",
    }
}

/// Someone in the call as the participants panel shows them, with what this device may do to
/// them (only what the node would allow).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PersonView {
    participant: u32,
    name: String,
    role: &'static str,
    hand: bool,
    me: bool,
    muted_audio: bool,
    muted_video: bool,
    sharing: bool,
    speaking: bool,
    mute_audio: bool,
    mute_video: bool,
    stop_screen: bool,
    ask_audio: bool,
    ask_video: bool,
    ask_screen: bool,
    lower_hand: bool,
    promote: bool,
    demote: bool,
    make_moderator: bool,
    remove: bool,
}

impl PersonView {
    fn has_menu(&self) -> bool {
        self.mute_video
            || self.stop_screen
            || self.ask_audio
            || self.ask_video
            || self.ask_screen
            || self.lower_hand
            || self.promote
            || self.demote
            || self.make_moderator
            || self.remove
    }
}

/// The words of the connection-quality badge's label: how it is, and the numbers measured.
fn quality_label(i18n: &I18n, quality: Quality, m: &Measures) -> String {
    let comma = i18n.lang.get() == veche_ui_core::i18n::Lang::Ru;
    let mut parts = Vec::new();
    if let Some(rtt) = m.rtt_ms {
        parts.push(i18n.t_with("call-quality-rtt", &[("ms", Arg::Num(rtt.round() as i64))]));
    }
    if let Some(loss) = m.loss {
        parts.push(i18n.t_with("call-quality-loss", &[("percent", Arg::Str(&quality::percent(loss, comma)))]));
    }
    if let Some(bps) = m.upload_bps {
        parts.push(i18n.t_with("call-quality-upload", &[("mbits", Arg::Str(&quality::mbits(bps, comma)))]));
    }
    let name = i18n.t(quality_id(quality));
    if parts.is_empty() { name } else { format!("{name}: {}", parts.join(", ")) }
}

fn quality_id(quality: Quality) -> &'static str {
    match quality {
        Quality::Good => "call-quality-good",
        Quality::Fair => "call-quality-fair",
        Quality::Poor => "call-quality-poor",
    }
}

/// The connection-quality badge: bars and a word, with the numbers in its label.
#[component]
fn QualityBadge(quality: RwSignal<Option<(Quality, Measures)>>) -> impl IntoView {
    let i18n = use_i18n();
    let q = move || quality.get().map(|(q, _)| q).unwrap_or(Quality::Good);
    let label = move || quality.get().map(|(q, m)| quality_label(&i18n, q, &m)).unwrap_or_default();
    let color = move || match q() {
        Quality::Good => "bg-emerald-500/20 text-emerald-200",
        Quality::Fair => "bg-amber-500/20 text-amber-200",
        Quality::Poor => "bg-rose-500/20 text-rose-200",
    };
    let bars = move || match q() {
        Quality::Good => 3,
        Quality::Fair => 2,
        Quality::Poor => 1,
    };
    view! {
        <span class=move || format!("inline-flex items-center gap-1 rounded-full px-2 py-0.5 text-xs font-medium {}", color())
            data-testid="call-quality" data-quality=move || q().name() role="img" aria-label=label title=label>
            <svg class="h-3 w-3" viewBox="0 0 12 12" fill="currentColor" aria-hidden="true">
                <rect x="0.5" y="8" width="3" height="3.5" rx="0.5"/>
                <rect x="4.5" y="5" width="3" height="6.5" rx="0.5" opacity=move || { if bars() >= 2 { "1" } else { "0.3" } }/>
                <rect x="8.5" y="1.5" width="3" height="10" rx="0.5" opacity=move || { if bars() >= 3 { "1" } else { "0.3" } }/>
            </svg>
            <span aria-hidden="true">{move || i18n.t(quality_id(q()))}</span>
        </span>
    }
}

/// The pre-join view while the member is about to join the chat's call, then the call.
#[component]
pub fn CallPanel(group: GroupId) -> impl IntoView {
    let app = expect_context::<AppState>();
    let preparing = move || app.prejoin.get() == Some(group) && app.call.with(|c| c.is_none());
    view! {
        <Show when=preparing>
            <PreJoin group=group/>
        </Show>
        <InCall group=group/>
    }
}

/// The call, while this page is in the chat's call (or waits in its lobby).
#[component]
fn InCall(group: GroupId) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let in_call = move || app.call.with(|c| c.as_ref().is_some_and(|c| c.group == group));
    let lobby = move || app.call.with(|c| c.as_ref().filter(|c| c.group == group).and_then(|c| c.lobby));
    let grid = NodeRef::<html::Div>::new();
    let stage = NodeRef::<html::Div>::new();
    let corner = NodeRef::<html::Div>::new();
    Effect::new(move |_| {
        if in_call()
            && let (Some(el), Some(stage), Some(corner)) = (grid.get(), stage.get(), corner.get())
        {
            call_mount(&el, &stage, &corner);
        }
    });
    // The browser's own "stop sharing" bar ends a share as the call's button does.
    on_screen_ended(app);
    let board_open = RwSignal::new(false);
    let reacting = RwSignal::new(false);
    // Something is on the board while its panel is closed: its button says so.
    let board_news = move || !board_open.get() && app.whiteboard.with(|w| !w.board.is_empty());
    let mic = RwSignal::new(true);
    let cam = RwSignal::new(true);
    // Let in from the lobby: a fresh peer connection, and the join again.
    let rejoining = RwSignal::new(false);
    Effect::new({
        let handle = handle.clone();
        move |_| {
            if lobby() != Some(CallLobby::Admitted) || rejoining.get_untracked() {
                return;
            }
            rejoining.set(true);
            let handle = handle.clone();
            let choice = app.media.get_untracked();
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = join_call(&handle, group, &choice).await {
                    if app.call.with_untracked(|c| c.as_ref().is_some_and(|c| c.group == group)) {
                        handle.send(Cmd::LeaveCall);
                    }
                    app.toast(e, true);
                }
                rejoining.set(false);
            });
        }
    });
    // In the call (at last, from the lobby): the buttons say what it was joined with.
    Effect::new(move |was: Option<bool>| {
        let now = in_call() && lobby().is_none();
        if now && was != Some(true) {
            mic.set(call_enabled("audio"));
            cam.set(call_enabled("video"));
        }
        now
    });
    // The grid's page: the others with a tile (they send something), the active speaker on the
    // first page; 9 to a page on a wide screen, 4 on a phone.
    let width = RwSignal::new(window().inner_width().ok().and_then(|w| w.as_f64()).unwrap_or(1280.0));
    let resized = window_event_listener(leptos::ev::resize, move |_| {
        width.set(window().inner_width().ok().and_then(|w| w.as_f64()).unwrap_or(1280.0))
    });
    on_cleanup(move || resized.remove());
    let page = RwSignal::new(0usize);
    let layout = Memo::new(move |_| {
        let per_page = grid::per_page(width.get());
        let wanted = page.get();
        app.call.with(|c| {
            let Some(c) = c.as_ref().filter(|c| c.group == group) else { return grid::page(&[], None, per_page, 0) };
            let order: Vec<u32> = c
                .participants
                .keys()
                .copied()
                .filter(|p| *p != c.me && c.tracks.values().any(|t| t.participant == *p))
                .collect();
            grid::page(&order, c.speaker, per_page, wanted)
        })
    });
    // Every change of the call (a new call starts with every tile shown) lays the tiles out again.
    Effect::new(move |_| {
        let shown = layout.with(|l| l.shown.iter().map(|p| format!("p{p}")).collect::<Vec<_>>().join(","));
        if in_call() && lobby().is_none() {
            call_layout(&shown);
        }
    });
    // The connection's quality, measured every 2 s while in the call.
    let quality = RwSignal::new(None::<(Quality, Measures)>);
    let session = Memo::new(move |_| {
        app.call.with(|c| c.as_ref().filter(|c| c.group == group && c.lobby.is_none()).map(|c| c.me))
    });
    let measuring = StoredValue::new(0u64);
    Effect::new(move |_| {
        let joined = session.get().is_some();
        let generation = measuring.get_value() + 1;
        measuring.set_value(generation);
        quality.set(None);
        if !joined {
            return;
        }
        wasm_bindgen_futures::spawn_local(async move {
            let mut before: Option<Counts> = None;
            loop {
                sleep_ms(QUALITY_MS).await;
                if measuring.try_get_value() != Some(generation) {
                    break;
                }
                let Some(s) = stats().await else { continue };
                let m = Measures {
                    rtt_ms: s.rtt_ms,
                    loss: before.and_then(|b| quality::loss_between(b, s.counts)),
                    upload_bps: s.upload_bps.filter(|_| s.sending_video),
                };
                before = Some(s.counts);
                if measuring.try_get_value() != Some(generation) {
                    break;
                }
                quality.set(Some((quality::assess(&m), m)));
            }
        });
    });
    // A moderator (or the node, refusing it) turned our microphone or camera off: the buttons
    // say what is on now.
    Effect::new(move |was: Option<u32>| {
        let times = app.call.with(|c| c.as_ref().map(|c| c.turned_off).unwrap_or(0));
        if was.is_some_and(|w| w != times) {
            mic.set(call_enabled("audio"));
            cam.set(call_enabled("video"));
        }
        times
    });
    let names = move || {
        app.call.with(|c| {
            c.as_ref().map(|c| c.participants.values().map(|p| p.display_name.clone()).collect::<Vec<_>>().join(", "))
        })
    };
    // Everyone in the call (this device first), with what this device may do to each.
    let people = move || {
        app.call.with(|c| {
            let Some(c) = c.as_ref() else { return Vec::new() };
            let mine = c.my_role();
            let moderating = c.moderating();
            let mut people: Vec<PersonView> = c
                .participants
                .values()
                .map(|p| {
                    let me = p.participant == c.me;
                    let acts = moderating && !me;
                    let organizer = p.role == CallRole::Organizer;
                    let muted_audio = c.is_muted(p.participant, CallMedia::Audio);
                    let muted_video = c.is_muted(p.participant, CallMedia::Video);
                    let muted_screen = c.is_muted(p.participant, CallMedia::Screen);
                    let sharing = c.publishes(p.participant, CallMedia::Screen);
                    let hand = c.hands.contains(&p.participant);
                    PersonView {
                        participant: p.participant,
                        name: p.display_name.clone(),
                        role: role_name(p.role),
                        hand,
                        me,
                        muted_audio,
                        muted_video,
                        sharing,
                        speaking: c.speaker == Some(p.participant),
                        mute_audio: acts && !organizer && !muted_audio && c.publishes(p.participant, CallMedia::Audio),
                        mute_video: acts && !organizer && !muted_video && c.publishes(p.participant, CallMedia::Video),
                        stop_screen: acts && !organizer && sharing,
                        ask_audio: acts && muted_audio,
                        ask_video: acts && muted_video,
                        ask_screen: acts && muted_screen,
                        lower_hand: acts && hand,
                        promote: acts && p.role <= CallRole::Participant,
                        demote: acts
                            && (p.role == CallRole::Presenter
                                || (p.role == CallRole::Moderator && mine == CallRole::Organizer)),
                        make_moderator: acts && mine == CallRole::Organizer && p.role <= CallRole::Presenter,
                        remove: acts && !organizer,
                    }
                })
                .collect();
            people.sort_by_key(|p| !p.me);
            people
        })
    };
    let waiting = move || {
        app.call.with(|c| {
            c.as_ref()
                .filter(|c| c.moderating())
                .map(|c| c.waiting.values().map(|p| (p.participant, p.display_name.clone())).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    };
    let count = move || app.call.with(|c| c.as_ref().map(|c| c.participants.len()).unwrap_or(0));
    let moderating = move || app.call.with(|c| c.as_ref().is_some_and(|c| c.moderating()));
    let mode = move || app.call.with(|c| c.as_ref().map(|c| c.mode).unwrap_or(CallMode::Meeting));
    let locked = move || app.call.with(|c| c.as_ref().is_some_and(|c| c.locked));
    let viewer = move || app.call.with(|c| c.as_ref().is_some_and(|c| c.viewer()));
    let hand = move || app.call.with(|c| c.as_ref().is_some_and(|c| c.hands.contains(&c.me)));
    let mode_name = move || if mode() == CallMode::Webinar { "webinar" } else { "meeting" };

    // The camera takes a moment to open (and may not): the button follows what it is. The
    // node hears of it (what a moderator asked to turn back on is forwarded again).
    let toggle_media = move |kind: &'static str, on: RwSignal<bool>| {
        let want = !on.get_untracked();
        on.set(want);
        wasm_bindgen_futures::spawn_local(async move {
            let now = set_media(kind, want).await;
            let _ = on.try_set(now);
            tell_sending(if kind == "audio" { CallMedia::Audio } else { CallMedia::Video }, now);
            if want && !now && in_call() {
                app.toast("@call-camera-failed".into(), true);
            }
        });
    };
    // Sharing the screen: the browser asks what to share.
    let sharing = move || app.call.with(|c| c.as_ref().is_some_and(|c| c.sharing));
    let may_share = move || app.call.with(|c| c.as_ref().is_some_and(|c| c.may_present())) && call_screen_supported();
    let toggle_screen = move |_| {
        if sharing() {
            stop_screen(app);
            return;
        }
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = share_screen(app).await {
                app.toast(e, true);
            }
        });
    };
    // Whose screens are shared (the stage shows them above the grid).
    let screens = move || {
        app.call.with(|c| {
            c.as_ref()
                .map(|c| {
                    c.screens()
                        .into_iter()
                        .filter(|p| *p != c.me)
                        .map(|p| c.participants.get(&p).map(|p| p.display_name.clone()).unwrap_or_default())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    };
    let leave = {
        let handle = handle.clone();
        Callback::new(move |_: leptos::ev::MouseEvent| handle.send(Cmd::LeaveCall))
    };
    let toggle_hand = {
        let handle = handle.clone();
        Callback::new(move |_: leptos::ev::MouseEvent| {
            send_request(&handle, app, Request::CallHand { group, raised: !hand() })
        })
    };
    let toggle_mode = {
        let handle = handle.clone();
        Callback::new(move |_: leptos::ev::MouseEvent| {
            let to = if mode() == CallMode::Webinar { CallMode::Meeting } else { CallMode::Webinar };
            send_request(&handle, app, Request::CallConfigure { group, change: CallChange::Mode(to) })
        })
    };
    let toggle_lock = {
        let handle = handle.clone();
        Callback::new(move |_: leptos::ev::MouseEvent| {
            send_request(&handle, app, Request::CallConfigure { group, change: CallChange::Lock(!locked()) })
        })
    };
    let end = {
        let handle = handle.clone();
        Callback::new(move |_: leptos::ev::MouseEvent| {
            let handle = handle.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = handle.ask(|reply| Cmd::EndCall { reply }).await {
                    app.toast(e, true);
                }
            });
        })
    };
    let badge = "inline-flex items-center gap-1 rounded-full px-2 py-0.5 text-xs font-medium";
    let pager_button =
        "flex h-9 w-9 items-center justify-center rounded-full bg-slate-700 hover:bg-slate-600 disabled:opacity-40";
    // The side panel: the participants, open at first on a wide screen; opened for moderators
    // when someone starts waiting in the lobby.
    let side = RwSignal::new(if width.get_untracked() >= SIDE_PANEL_WIDTH_PX { Side::People } else { Side::None });
    Effect::new(move |was: Option<usize>| {
        let now = waiting().len();
        if was.is_some_and(|w| now > w) {
            side.set(Side::People);
        }
        now
    });
    let more = RwSignal::new(false);
    let chat_open = use_context::<CallChatOpen>().map(|c| c.0).unwrap_or_else(|| RwSignal::new(false));
    let label = move |key: &'static str| move || i18n.t(key);
    view! {
        <Show when=in_call>
            <section class="relative flex min-h-0 min-w-0 flex-1 flex-col bg-slate-950 text-white"
                data-testid="call-panel"
                aria-label=move || i18n.t("call") data-viewer=move || viewer().to_string() data-mode=mode_name
                data-locked=move || locked().to_string()>
                <Show when=move || lobby().is_some()>
                    <div class="m-2 flex flex-col items-center gap-3 rounded-xl bg-slate-800 p-4 text-center text-sm text-white sm:flex-row sm:text-left"
                        data-testid="call-lobby-waiting" role="status">
                        <svg class="h-6 w-6 shrink-0 animate-pulse text-indigo-300" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" aria-hidden="true"><circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 2"/></svg>
                        <p class="min-w-0 flex-1">{move || {
                            if lobby() == Some(CallLobby::Admitted) { i18n.t("call-lobby-joining") } else { i18n.t("call-lobby-waiting") }
                        }}</p>
                        <button class=BTN_DANGER data-testid="call-leave" on:click=move |ev| leave.run(ev)>{move || i18n.t("call-leave")}</button>
                    </div>
                </Show>
                // The top line: what kind of call, its lock and quality, who is in it.
                <Show when=move || lobby().is_none()>
                    <div class="flex shrink-0 items-center gap-1.5 px-2 pt-2 sm:px-3">
                        <span class=move || format!("{badge} {}", if mode() == CallMode::Webinar { "bg-amber-500/20 text-amber-200" } else { "bg-slate-700 text-slate-200" })
                            data-testid="call-mode-badge" data-mode=mode_name>
                            {move || if mode() == CallMode::Webinar { i18n.t("call-mode-webinar") } else { i18n.t("call-mode-meeting") }}
                        </span>
                        <Show when=locked>
                            <span class=format!("{badge} bg-rose-500/20 text-rose-200") data-testid="call-lock-badge">
                                <svg class="h-3 w-3" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true"><rect x="5" y="11" width="14" height="9" rx="2"/><path d="M8 11V8a4 4 0 0 1 8 0v3"/></svg>
                                {move || i18n.t("call-locked")}
                            </span>
                        </Show>
                        <Show when=viewer>
                            <span class=format!("{badge} bg-indigo-500/20 text-indigo-200") data-testid="call-viewer-badge">
                                {move || i18n.t("call-viewer")}
                            </span>
                        </Show>
                        <Show when=move || quality.with(|q| q.is_some())>
                            <QualityBadge quality=quality/>
                        </Show>
                        <p class="min-w-0 flex-1 truncate text-right text-xs text-slate-300" data-testid="call-participants"
                            data-count=count>{names}</p>
                    </div>
                </Show>
                // Others' screen shares: on the stage, above the videos.
                <Show when=move || !screens().is_empty()>
                    <p class="shrink-0 px-2 pt-1 text-xs text-slate-300 sm:px-3" data-testid="call-stage-title">
                        {move || i18n.t_with("call-screen-of", &[("name", Arg::Str(&screens().join(", ")))])}
                    </p>
                </Show>
                <div node_ref=stage data-testid="call-stage" class=move || if screens().is_empty() { "hidden" } else { "flex shrink-0 flex-col gap-2 px-2 pt-1 sm:px-3" }></div>
                <Show when=move || sharing() && lobby().is_none()>
                    <div class="mx-2 mt-2 flex shrink-0 items-center gap-2 rounded-xl bg-indigo-600/30 px-3 py-2 text-sm text-indigo-100 sm:mx-3"
                        data-testid="call-sharing" role="status">
                        <Icon d=ICON_SCREEN class="h-4 w-4 shrink-0"/>
                        <span class="min-w-0 flex-1">{move || i18n.t("call-sharing")}</span>
                        <button class="rounded-full bg-rose-600 px-3 py-1 text-xs font-semibold text-white hover:bg-rose-500"
                            data-testid="call-sharing-stop" on:click=move |_| stop_screen(app)>{move || i18n.t("call-screen-stop")}</button>
                    </div>
                </Show>
                // The videos fill what is left; the whiteboard beside them (below on a phone), the
                // participants in a side panel (a sheet on a phone). Tiles of the others on other
                // pages are hidden (js/call.js); our own floats small in a corner once others show.
                <div class="relative flex min-h-0 flex-1 gap-2 p-2 sm:p-3">
                    <div class=move || if board_open.get() { "flex min-h-0 min-w-0 flex-1 flex-col gap-2 lg:flex-row-reverse lg:items-start" } else { "relative flex min-h-0 min-w-0 flex-1 flex-col" }>
                        <div node_ref=grid data-testid="call-grid" data-board=move || board_open.get().to_string()
                            class=move || if board_open.get() {
                                "relative grid max-h-[22vh] shrink-0 grid-cols-2 gap-2 overflow-y-auto sm:max-h-[30vh] sm:grid-cols-3 lg:max-h-[60vh] lg:w-56 lg:grid-cols-1"
                            } else {
                                // Few tiles large, many in a square; a small strip under a shared screen.
                                let phone = width.get() < grid::PHONE_WIDTH_PX;
                                let tiles = layout.with(|l| l.shown.len()).max(1);
                                let columns = if !screens().is_empty() { if phone { 2 } else { 4 } } else { grid::columns(tiles, width.get()) };
                                match columns {
                                    1 => "relative grid min-h-0 flex-1 grid-cols-1 content-center gap-2 overflow-y-auto mx-auto w-full max-w-4xl",
                                    2 => "relative grid min-h-0 flex-1 grid-cols-2 content-center gap-2 overflow-y-auto",
                                    3 => "relative grid min-h-0 flex-1 grid-cols-3 content-center gap-2 overflow-y-auto",
                                    _ => "relative grid min-h-0 flex-1 grid-cols-4 content-center gap-2 overflow-y-auto",
                                }
                            }></div>
                        <Show when=move || board_open.get() && lobby().is_none()>
                            <div class="min-h-0 min-w-0 flex-1 overflow-y-auto"><WhiteboardPanel/></div>
                        </Show>
                        <Show when=move || lobby().is_none() && layout.with(|l| l.pages > 1)>
                            <div class="mt-2 flex shrink-0 items-center justify-center gap-2 text-xs text-slate-200" data-testid="call-pager">
                                <button class=pager_button data-testid="call-page-prev" aria-label=move || i18n.t("call-page-prev")
                                    title=move || i18n.t("call-page-prev") disabled=move || layout.with(|l| l.page == 0)
                                    on:click=move |_| page.set(layout.with_untracked(|l| l.page.saturating_sub(1)))>
                                    <svg class="h-4 w-4" viewBox="0 0 20 20" fill="currentColor" aria-hidden="true"><path fill-rule="evenodd" d="M12.8 4.2a.75.75 0 0 1 0 1.06L8.06 10l4.74 4.74a.75.75 0 1 1-1.06 1.06l-5.27-5.27a.75.75 0 0 1 0-1.06l5.27-5.27a.75.75 0 0 1 1.06 0Z" clip-rule="evenodd"/></svg>
                                </button>
                                <span data-testid="call-page" data-page=move || layout.with(|l| l.page + 1) data-pages=move || layout.with(|l| l.pages)
                                    aria-live="polite">
                                    {move || layout.with(|l| i18n.t_with("call-page", &[("page", Arg::Num(l.page as i64 + 1)), ("pages", Arg::Num(l.pages as i64))]))}
                                </span>
                                <button class=pager_button data-testid="call-page-next" aria-label=move || i18n.t("call-page-next")
                                    title=move || i18n.t("call-page-next") disabled=move || layout.with(|l| l.page + 1 >= l.pages)
                                    on:click=move |_| page.set(layout.with_untracked(|l| l.page + 1))>
                                    <svg class="h-4 w-4" viewBox="0 0 20 20" fill="currentColor" aria-hidden="true"><path fill-rule="evenodd" d="M7.2 15.8a.75.75 0 0 1 0-1.06L11.94 10 7.2 5.26a.75.75 0 0 1 1.06-1.06l5.27 5.27a.75.75 0 0 1 0 1.06l-5.27 5.27a.75.75 0 0 1-1.06 0Z" clip-rule="evenodd"/></svg>
                                </button>
                            </div>
                        </Show>
                    </div>
                    <Show when=move || side.get() == Side::People && lobby().is_none()>
                        <aside class="fixed inset-x-0 bottom-0 z-40 flex max-h-[60dvh] flex-col rounded-t-2xl bg-slate-800 shadow-2xl lg:static lg:z-auto lg:max-h-none lg:w-72 lg:shrink-0 lg:rounded-xl lg:shadow-none"
                            data-testid="call-people-panel" aria-label=move || i18n.t("call-people")>
                            <div class="flex shrink-0 items-center justify-between px-3 pb-1 pt-2">
                                <h3 class="text-sm font-semibold">{move || i18n.t("call-people")}" · "{count}</h3>
                                <button class="flex h-8 w-8 items-center justify-center rounded-full hover:bg-slate-700" data-testid="call-people-close"
                                    aria-label=move || i18n.t("call-close-panel") title=move || i18n.t("call-close-panel")
                                    on:click=move |_| side.set(Side::None)>
                                    <Icon d=ICON_CLOSE class="h-4 w-4"/>
                                </button>
                            </div>
                            <div class="min-h-0 flex-1 overflow-y-auto px-2 pb-3">
                                <Show when=move || !waiting().is_empty()>
                                    <div class="mb-2 rounded-xl bg-slate-900 p-2 text-xs text-white" data-testid="call-lobby">
                                        <p class="mb-1.5 font-semibold text-slate-200">{move || i18n.t("call-lobby-title")}</p>
                                        <ul class="flex flex-col gap-1.5">
                                            <For each=waiting key=|p| p.clone() let:p>
                                                <WaitingPerson group=group participant=p.0 name=p.1/>
                                            </For>
                                        </ul>
                                    </div>
                                </Show>
                                <ul class="flex flex-col items-start gap-1.5" data-testid="call-people">
                                    <For each=people key=|p| p.clone() let:p>
                                        <CallPerson group=group person=p/>
                                    </For>
                                </ul>
                            </div>
                        </aside>
                    </Show>
                </div>
                <div node_ref=corner data-testid="call-reactions" aria-live="polite"
                    class="pointer-events-none absolute right-3 top-10 z-10 flex flex-col items-end gap-1"></div>
                // One bar of buttons: microphone, camera, screen, hand, reactions, whiteboard,
                // participants, chat, more (the organizer's tools), leave.
                <Show when=move || lobby().is_none()>
                    <div class="flex shrink-0 flex-wrap items-center justify-center gap-1.5 px-2 pb-3 pt-1 sm:gap-2"
                        role="toolbar" aria-label=move || i18n.t("call")>
                        <button class=BAR_MEDIA data-testid="call-mic" aria-pressed=move || (!mic.get()).to_string()
                            aria-label=move || if mic.get() { i18n.t("call-mic-off") } else { i18n.t("call-mic-on") }
                            title=move || if mic.get() { i18n.t("call-mic-off") } else { i18n.t("call-mic-on") }
                            disabled=move || !call_has("audio")
                            on:click=move |_| toggle_media("audio", mic)>
                            <Icon d=Signal::derive(move || if mic.get() { ICON_MIC } else { ICON_MIC_OFF })/>
                        </button>
                        <button class=BAR_MEDIA data-testid="call-camera" aria-pressed=move || (!cam.get()).to_string()
                            aria-label=move || if cam.get() { i18n.t("call-camera-off") } else { i18n.t("call-camera-on") }
                            title=move || if cam.get() { i18n.t("call-camera-off") } else { i18n.t("call-camera-on") }
                            disabled=move || !call_has("video")
                            on:click=move |_| toggle_media("video", cam)>
                            <Icon d=Signal::derive(move || if cam.get() { ICON_CAMERA } else { ICON_CAMERA_OFF })/>
                        </button>
                        <Show when=may_share>
                            <button class=BAR_BUTTON data-testid="call-screen" aria-pressed=move || sharing().to_string()
                                aria-label=move || if sharing() { i18n.t("call-screen-stop") } else { i18n.t("call-screen-share") }
                                title=move || if sharing() { i18n.t("call-screen-stop") } else { i18n.t("call-screen-share") }
                                on:click=toggle_screen>
                                <Icon d=ICON_SCREEN/>
                            </button>
                        </Show>
                        <button class=BAR_BUTTON data-testid="call-hand" aria-pressed=move || hand().to_string()
                            aria-label=move || if hand() { i18n.t("call-hand-lower") } else { i18n.t("call-hand-raise") }
                            title=move || if hand() { i18n.t("call-hand-lower") } else { i18n.t("call-hand-raise") }
                            on:click=move |ev| toggle_hand.run(ev)>
                            <Icon d=ICON_HAND/>
                        </button>
                        <div class="relative">
                            <button class=BAR_BUTTON data-testid="call-react" aria-expanded=move || reacting.get().to_string()
                                aria-haspopup="true" aria-label=label("call-react") title=label("call-react")
                                on:click=move |_| reacting.update(|r| *r = !*r)>
                                <Icon d=ICON_SMILE/>
                            </button>
                            <Show when=move || reacting.get()>
                                <div class="absolute bottom-full left-1/2 z-30 mb-2 flex -translate-x-1/2 gap-1 rounded-full bg-white p-1 shadow-lg ring-1 ring-slate-200"
                                    role="menu" data-testid="call-reactions-menu">
                                    {REACTIONS.into_iter().map(|r| view! {
                                        <button type="button" role="menuitem" data-testid="call-reaction-pick" data-reaction=r
                                            class="flex h-10 w-10 items-center justify-center rounded-full text-2xl hover:bg-slate-100"
                                            aria-label=r on:click=move |_| { react(app, r); reacting.set(false); }>{r}</button>
                                    }).collect_view()}
                                </div>
                            </Show>
                        </div>
                        <button class=BAR_BUTTON data-testid="call-whiteboard" aria-pressed=move || board_open.get().to_string()
                            aria-label=label("whiteboard") title=label("whiteboard")
                            on:click=move |_| {
                                // The board needs the room: the participants panel makes way for it.
                                if !board_open.get_untracked() {
                                    side.set(Side::None);
                                }
                                board_open.update(|o| *o = !*o)
                            }>
                            <Icon d=ICON_BOARD/>
                            <Show when=board_news>
                                <span class="absolute right-0.5 top-0.5 h-2.5 w-2.5 rounded-full bg-indigo-400 ring-2 ring-slate-950" data-testid="call-whiteboard-news"
                                    aria-label=move || i18n.t("wb-has-drawing")></span>
                            </Show>
                        </button>
                        <button class=BAR_BUTTON data-testid="call-people-toggle" aria-pressed=move || (side.get() == Side::People).to_string()
                            aria-label=label("call-people") title=label("call-people")
                            on:click=move |_| side.update(|s| *s = if *s == Side::People { Side::None } else { Side::People })>
                            <Icon d=ICON_PEOPLE/>
                            <Show when=move || !waiting().is_empty()>
                                <span class="absolute right-0.5 top-0.5 h-2.5 w-2.5 rounded-full bg-amber-400 ring-2 ring-slate-950"></span>
                            </Show>
                        </button>
                        <button class=BAR_BUTTON data-testid="call-chat" aria-pressed=move || chat_open.get().to_string()
                            aria-label=label("call-chat") title=label("call-chat")
                            on:click=move |_| chat_open.update(|o| *o = !*o)>
                            <Icon d=ICON_CHAT/>
                        </button>
                        <Show when=moderating>
                            <div class="relative">
                                <button class=BAR_BUTTON data-testid="call-more" aria-expanded=move || more.get().to_string()
                                    aria-haspopup="true" aria-label=label("call-more") title=label("call-more")
                                    on:click=move |_| more.update(|m| *m = !*m)>
                                    <Icon d=ICON_MORE class="h-6 w-6"/>
                                </button>
                                <Show when=move || more.get()>
                                    <div class="absolute bottom-full right-0 z-30 mb-2 flex w-60 max-w-[85vw] flex-col overflow-hidden rounded-xl bg-white py-1 text-sm text-slate-800 shadow-lg ring-1 ring-slate-200"
                                        role="menu" data-testid="call-more-menu">
                                        <button class="px-3 py-2 text-left hover:bg-slate-100" role="menuitemcheckbox" data-testid="call-mode" data-mode=mode_name
                                            aria-checked=move || (mode() == CallMode::Webinar).to_string()
                                            aria-pressed=move || (mode() == CallMode::Webinar).to_string() on:click=move |ev| { more.set(false); toggle_mode.run(ev) }>
                                            {move || if mode() == CallMode::Webinar { i18n.t("call-mode-to-meeting") } else { i18n.t("call-mode-to-webinar") }}
                                        </button>
                                        <button class="px-3 py-2 text-left hover:bg-slate-100" role="menuitemcheckbox" data-testid="call-lock"
                                            aria-checked=move || locked().to_string()
                                            aria-pressed=move || locked().to_string() on:click=move |ev| { more.set(false); toggle_lock.run(ev) }>
                                            {move || if locked() { i18n.t("call-unlock") } else { i18n.t("call-lock") }}
                                        </button>
                                        <button class="px-3 py-2 text-left font-semibold text-rose-700 hover:bg-rose-50" role="menuitem"
                                            data-testid="call-end" on:click=move |ev| { more.set(false); end.run(ev) }>
                                            {move || i18n.t("call-end")}
                                        </button>
                                    </div>
                                </Show>
                            </div>
                        </Show>
                        <button class="flex h-10 w-14 shrink-0 sm:h-11 items-center justify-center rounded-full bg-rose-600 text-white hover:bg-rose-500 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-rose-400"
                            data-testid="call-leave" aria-label=label("call-leave") title=label("call-leave")
                            on:click=move |ev| leave.run(ev)>
                            <Icon d=ICON_LEAVE class="h-6 w-6"/>
                        </button>
                    </div>
                </Show>
            </section>
        </Show>
    }
}

/// Someone waiting in the lobby, for the organizer and moderators: let them in or turn them away.
#[component]
fn WaitingPerson(group: GroupId, participant: u32, name: String) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let act = move |action: CallAction| {
        let handle = handle.clone();
        move |_| send_request(&handle, app, Request::CallModerate { group, participant, action })
    };
    view! {
        <li class="flex flex-wrap items-center gap-1.5" data-testid="call-waiting-person" data-name=name.clone()>
            <span class="min-w-0 flex-1 truncate">{name.clone()}</span>
            <button class="rounded-full bg-indigo-600 px-2.5 py-1 font-semibold hover:bg-indigo-500" data-testid="call-admit"
                on:click=act(CallAction::Admit)>{move || i18n.t("call-admit")}</button>
            <button class="rounded-full bg-slate-600 px-2.5 py-1 hover:bg-slate-500" data-testid="call-turn-away"
                on:click=act(CallAction::Remove)>{move || i18n.t("call-turn-away")}</button>
        </li>
    }
}

/// Someone in the call: their name, role and raised hand, and for moderators a quick button
/// that turns their microphone off and a menu with the rest of what they may do.
#[component]
fn CallPerson(group: GroupId, person: PersonView) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let participant = person.participant;
    let menu = NodeRef::<html::Details>::new();
    let act = move |action: CallAction| {
        let handle = handle.clone();
        move |_| {
            if let Some(menu) = menu.get_untracked() {
                menu.set_open(false);
            }
            send_request(&handle, app, Request::CallModerate { group, participant, action })
        }
    };
    let role_key = match person.role {
        "organizer" => Some("call-role-organizer"),
        "moderator" => Some("call-role-moderator"),
        "presenter" => Some("call-role-presenter"),
        "guest" => Some("call-role-guest"),
        _ => None,
    };
    let item = "block w-full px-3 py-1.5 text-left hover:bg-slate-100";
    let has_menu = person.has_menu();
    let p = person.clone();
    view! {
        <li class=if person.speaking {
                "flex flex-wrap items-center gap-1 rounded-2xl bg-slate-700 py-0.5 pl-2.5 pr-1 text-xs text-white ring-2 ring-emerald-400"
            } else {
                "flex flex-wrap items-center gap-1 rounded-2xl bg-slate-700 py-0.5 pl-2.5 pr-1 text-xs text-white"
            }
            data-testid="call-person" data-name=person.name.clone() data-muted=person.muted_audio.to_string()
            data-sharing=person.sharing.to_string()
            data-role=person.role data-hand=person.hand.to_string() data-me=person.me.to_string()>
            {person.hand.then(|| view! {
                <span data-testid="call-person-hand" role="img" aria-label=move || i18n.t("call-hand-raised")
                    title=move || i18n.t("call-hand-raised")><Icon d=ICON_HAND class="h-3.5 w-3.5 text-amber-300"/></span>
            })}
            <span class="py-0.5 pr-1">{person.name.clone()}
                {person.me.then(|| view! { <span class="text-slate-400">" "{move || i18n.t("call-you")}</span> })}
            </span>
            {role_key.map(|key| view! {
                <span class=if person.role == "guest" {
                        "rounded-full bg-amber-400/90 px-1.5 py-px text-[10px] font-semibold uppercase text-slate-900"
                    } else {
                        "rounded-full bg-indigo-500/80 px-1.5 py-px text-[10px] font-semibold uppercase"
                    }
                    data-testid="call-role-badge">{move || i18n.t(key)}</span>
            })}
            {person.sharing.then(|| view! {
                <span class="pr-1" data-testid="call-person-sharing" role="img" aria-label=move || i18n.t("call-person-sharing")
                    title=move || i18n.t("call-person-sharing")>
                    <svg class="h-3.5 w-3.5" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true"><rect x="3" y="4" width="18" height="12" rx="1.5"/><path d="M8 20h8M12 16v4"/></svg>
                </span>
            })}
            {person.muted_audio.then(|| view! { <span class="pr-1.5 text-slate-300">{move || i18n.t("call-muted")}</span> })}
            {p.mute_audio.then(|| view! {
                <button class="rounded-full bg-slate-600 px-2 py-0.5 hover:bg-slate-500" data-testid="call-mute-person"
                    on:click=act(CallAction::Mute(CallMedia::Audio))>
                    {move || i18n.t("call-mute-person")}
                </button>
            })}
            {has_menu.then(|| view! {
                <details node_ref=menu>
                    <summary class="flex h-6 w-6 cursor-pointer list-none items-center justify-center rounded-full bg-slate-600 hover:bg-slate-500 [&::-webkit-details-marker]:hidden"
                        data-testid="call-person-menu" aria-label=move || i18n.t("call-person-actions")
                        title=move || i18n.t("call-person-actions")>
                        <svg class="h-4 w-4" viewBox="0 0 24 24" fill="currentColor" aria-hidden="true"><circle cx="5" cy="12" r="1.8"/><circle cx="12" cy="12" r="1.8"/><circle cx="19" cy="12" r="1.8"/></svg>
                    </summary>
                    // Opens in place (the participants panel scrolls, and would cut off a popup).
                    <div class="my-1 w-56 max-w-[80vw] overflow-hidden rounded-lg bg-white py-1 text-sm text-slate-800 shadow-lg ring-1 ring-slate-200"
                        role="menu">
                        {p.mute_video.then(|| view! {
                            <button class=item role="menuitem" data-testid="call-stop-camera"
                                on:click=act(CallAction::Mute(CallMedia::Video))>{move || i18n.t("call-stop-camera")}</button>
                        })}
                        {p.stop_screen.then(|| view! {
                            <button class=item role="menuitem" data-testid="call-stop-screen"
                                on:click=act(CallAction::Mute(CallMedia::Screen))>{move || i18n.t("call-stop-screen")}</button>
                        })}
                        {p.ask_audio.then(|| view! {
                            <button class=item role="menuitem" data-testid="call-ask-unmute" data-media="audio"
                                on:click=act(CallAction::AskToUnmute(CallMedia::Audio))>{move || i18n.t("call-ask-unmute")}</button>
                        })}
                        {p.ask_video.then(|| view! {
                            <button class=item role="menuitem" data-testid="call-ask-unmute" data-media="video"
                                on:click=act(CallAction::AskToUnmute(CallMedia::Video))>{move || i18n.t("call-ask-camera")}</button>
                        })}
                        {p.ask_screen.then(|| view! {
                            <button class=item role="menuitem" data-testid="call-ask-unmute" data-media="screen"
                                on:click=act(CallAction::AskToUnmute(CallMedia::Screen))>{move || i18n.t("call-ask-screen")}</button>
                        })}
                        {p.lower_hand.then(|| view! {
                            <button class=item role="menuitem" data-testid="call-lower-hand"
                                on:click=act(CallAction::LowerHand)>{move || i18n.t("call-hand-lower")}</button>
                        })}
                        {p.promote.then(|| view! {
                            <button class=item role="menuitem" data-testid="call-promote"
                                on:click=act(CallAction::SetRole(CallRole::Presenter))>{move || i18n.t("call-promote")}</button>
                        })}
                        {p.demote.then(|| view! {
                            <button class=item role="menuitem" data-testid="call-demote"
                                on:click=act(CallAction::SetRole(CallRole::Participant))>{move || i18n.t("call-demote")}</button>
                        })}
                        {p.make_moderator.then(|| view! {
                            <button class=item role="menuitem" data-testid="call-make-moderator"
                                on:click=act(CallAction::SetRole(CallRole::Moderator))>{move || i18n.t("call-make-moderator")}</button>
                        })}
                        {p.remove.then(|| view! {
                            <button class=format!("{item} text-rose-700") role="menuitem" data-testid="call-remove"
                                on:click=act(CallAction::Remove)>{move || i18n.t("call-remove")}</button>
                        })}
                    </div>
                </details>
            })}
        </li>
    }
}
