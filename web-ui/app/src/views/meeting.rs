//! Meetings: the dialog that creates one (now or scheduled), and the meeting's card at the top
//! of its chat (when, the link, an .ics file for calendars).

use leptos::prelude::*;
use veche_protocol::ids::GroupId;
use veche_protocol::meeting::{MAX_DESCRIPTION, MAX_TITLE, MeetingInfo, MeetingSettings};
use veche_ui_core::format::{date_time, parse_local_date_time};
use veche_ui_core::i18n::Arg;

use crate::components::{BTN_PRIMARY, BTN_SECONDARY, Dialog, INPUT, LABEL};
use crate::device::{Cmd, DeviceHandle};
use crate::i18n::use_i18n;
use crate::route::navigate;
use crate::state::{AppState, Route};
use crate::views::chat_list::tz_offset_min;
use crate::views::dialogs::copy_and_tell;
use crate::views::recovery::download;
use crate::views::spawn_ui;

/// Durations offered, in minutes.
const DURATIONS: [u32; 6] = [15, 30, 45, 60, 90, 120];

#[component]
pub fn CreateMeetingDialog(on_close: Callback<()>) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let title = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let scheduled = RwSignal::new(false);
    let start = RwSignal::new(String::new());
    let duration = RwSignal::new(60u32);
    let lobby = RwSignal::new(true);
    let webinar = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let start_ms = if scheduled.get_untracked() {
            match parse_local_date_time(&start.get_untracked(), tz_offset_min()) {
                Some(ms) => Some(ms),
                None => {
                    app.toast(i18n.error("@err-meeting-start"), true);
                    return;
                }
            }
        } else {
            None
        };
        let settings = MeetingSettings {
            title: title.get_untracked(),
            description: description.get_untracked(),
            start_ms,
            duration_mins: duration.get_untracked(),
            lobby: lobby.get_untracked(),
            webinar: webinar.get_untracked(),
        };
        let handle = handle.clone();
        busy.set(true);
        spawn_ui(async move {
            let result = handle.ask(|reply| Cmd::CreateMeeting { settings, reply }).await;
            busy.set(false);
            let group = result?;
            on_close.run(());
            navigate(app.route, Route::Chat(group));
            Ok(())
        });
    };
    let check = move |signal: RwSignal<bool>, id: &'static str, label: &'static str, hint: &'static str| {
        view! {
            <label class="flex items-start gap-2 text-sm text-slate-700">
                <input type="checkbox" class="mt-0.5 h-4 w-4 rounded border-slate-300" data-testid=id
                    prop:checked=move || signal.get() on:change=move |ev| signal.set(event_target_checked(&ev))/>
                <span>
                    <span class="font-medium">{move || i18n.t(label)}</span>
                    <span class="block text-xs text-slate-500">{move || i18n.t(hint)}</span>
                </span>
            </label>
        }
    };
    view! {
        <Dialog title=Signal::derive(move || i18n.t("new-meeting")) on_close=on_close testid="create-meeting-dialog">
            <form class="space-y-4" on:submit=submit>
                <div>
                    <label for="meeting-title" class=LABEL>{move || i18n.t("meeting-title")}</label>
                    <input id="meeting-title" data-testid="meeting-title" class=INPUT required maxlength=MAX_TITLE autofocus
                        prop:value=move || title.get() on:input=move |ev| title.set(event_target_value(&ev))/>
                </div>
                <fieldset class="space-y-2">
                    <legend class=LABEL>{move || i18n.t("meeting-when")}</legend>
                    <div class="flex gap-4 text-sm text-slate-700">
                        <label class="flex items-center gap-1.5">
                            <input type="radio" name="meeting-when" data-testid="meeting-now"
                                prop:checked=move || !scheduled.get() on:change=move |_| scheduled.set(false)/>
                            {move || i18n.t("meeting-now")}
                        </label>
                        <label class="flex items-center gap-1.5">
                            <input type="radio" name="meeting-when" data-testid="meeting-later"
                                prop:checked=move || scheduled.get() on:change=move |_| scheduled.set(true)/>
                            {move || i18n.t("meeting-later")}
                        </label>
                    </div>
                    <Show when=move || scheduled.get()>
                        <input type="datetime-local" data-testid="meeting-start" class=INPUT required
                            aria-label=move || i18n.t("meeting-start")
                            prop:value=move || start.get() on:input=move |ev| start.set(event_target_value(&ev))/>
                    </Show>
                </fieldset>
                <div>
                    <label for="meeting-duration" class=LABEL>{move || i18n.t("meeting-duration")}</label>
                    <select id="meeting-duration" data-testid="meeting-duration" class=INPUT
                        on:change=move |ev| duration.set(event_target_value(&ev).parse().unwrap_or(60))>
                        {DURATIONS.into_iter().map(|m| view! {
                            <option value=m.to_string() selected=move || duration.get() == m>
                                {move || i18n.t_with("minutes", &[("count", Arg::Num(i64::from(m)))])}
                            </option>
                        }).collect_view()}
                    </select>
                </div>
                <div>
                    <label for="meeting-description" class=LABEL>{move || i18n.t("meeting-description")}</label>
                    <textarea id="meeting-description" data-testid="meeting-description" class=INPUT rows="2"
                        maxlength=MAX_DESCRIPTION
                        prop:value=move || description.get() on:input=move |ev| description.set(event_target_value(&ev))></textarea>
                </div>
                {check(lobby, "meeting-lobby", "meeting-lobby", "meeting-lobby-hint")}
                {check(webinar, "meeting-webinar", "meeting-webinar", "meeting-webinar-hint")}
                <div class="flex justify-end gap-2">
                    <button type="button" class=BTN_SECONDARY on:click=move |_| on_close.run(())>{move || i18n.t("cancel")}</button>
                    <button type="submit" class=BTN_PRIMARY data-testid="create-meeting-submit"
                        disabled=move || busy.get() || title.get().trim().is_empty()>{move || i18n.t("create")}</button>
                </div>
            </form>
        </Dialog>
    }
}

/// The meeting of a chat, above its messages: when, how, and (for whoever has it) its link.
#[component]
pub fn MeetingCard(group: GroupId) -> impl IntoView {
    let app = expect_context::<AppState>();
    let i18n = use_i18n();
    let meeting = move || app.meetings.with(|m| m.get(&group).cloned());
    let link = move || app.meeting_links.with(|l| l.get(&group).cloned());
    view! {
        {move || meeting().map(|m: MeetingInfo| {
            let offset = tz_offset_min();
            let when = format!("{} · {}", date_time(m.start_ms, offset),
                i18n.t_with("minutes", &[("count", Arg::Num(i64::from(m.settings.duration_mins)))]));
            let ics_meeting = m.clone();
            let webinar = m.settings.webinar;
            let lobby = m.settings.lobby;
            view! {
                <section class="border-b border-indigo-100 bg-indigo-50 px-4 py-2 text-sm" data-testid="meeting-card"
                    aria-label=move || i18n.t("meeting")>
                    <div class="flex flex-wrap items-center gap-x-3 gap-y-1">
                        <span class="font-medium text-indigo-900">{move || i18n.t("meeting")}</span>
                        <span class="text-indigo-800" data-testid="meeting-when">{when}</span>
                        {webinar.then(|| view! { <span class="rounded bg-indigo-200 px-1.5 text-xs text-indigo-900">{move || i18n.t("meeting-webinar")}</span> })}
                        {lobby.then(|| view! { <span class="rounded bg-indigo-200 px-1.5 text-xs text-indigo-900">{move || i18n.t("meeting-lobby")}</span> })}
                        <span class="flex-1"></span>
                        {move || link().map(|url| {
                            let copy_url = url.clone();
                            view! {
                                <button class="text-indigo-700 underline" data-testid="meeting-copy-link"
                                    data-link=url.clone()
                                    on:click=move |_| copy_and_tell(app, i18n, copy_url.clone())>
                                    {move || i18n.t("meeting-copy-link")}
                                </button>
                            }
                        })}
                        <button class="text-indigo-700 underline" data-testid="meeting-ics"
                            on:click=move |_| {
                                let url = link().unwrap_or_else(crate::device::page_origin);
                                let file = veche_protocol::meeting::ics(&ics_meeting, &url, &app.node_name.get_untracked(),
                                    js_sys::Date::now() as u64);
                                let name = format!("{}.ics", ics_meeting.settings.title.replace(|c: char| !c.is_alphanumeric(), "-"));
                                if let Err(e) = download(file.as_bytes(), &name, "text/calendar") {
                                    app.toast(e, true);
                                }
                            }>
                            {move || i18n.t("meeting-add-to-calendar")}
                        </button>
                    </div>
                    {(!m.settings.description.is_empty()).then(|| view! {
                        <p class="mt-1 whitespace-pre-line text-xs text-indigo-800">{m.settings.description.clone()}</p>
                    })}
                </section>
            }
        })}
    }
}
