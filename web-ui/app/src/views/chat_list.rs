//! The shell: chat list beside the open chat (one at a time on a phone), with the connection state.

use leptos::prelude::*;
use veche_protocol::ids::{ChatKind, GroupId};
use veche_ui_core::format::{list_time, preview};
use veche_ui_core::model::{ChatRow, split_and_order, unread};

use crate::components::{Avatar, BTN_GHOST, BTN_PRIMARY, BTN_SECONDARY, Badge};
use crate::device::{Cmd, DeviceHandle};
use crate::i18n::{I18n, use_i18n};
use crate::route::navigate;
use crate::state::{AppState, ChatState, ConnState, MsgBody, Route};
use crate::views::chat::{ChatView, call_record_text, forged_text, system_text};
use crate::views::dialogs::{CreateGroupDialog, JoinByLinkDialog};
use crate::views::meeting::CreateMeetingDialog;
use crate::views::settings::SettingsView;

pub fn tz_offset_min() -> i32 {
    -(js_sys::Date::new_0().get_timezone_offset() as i32)
}

/// A chat's title: the group name, or the other member's name for a direct chat.
pub fn chat_title(app: &AppState, chat: &ChatState) -> String {
    match chat.kind {
        ChatKind::Direct => {
            let me = app.me.with_untracked(|m| m.as_ref().map(|m| m.account));
            match me.and_then(|me| chat.other(&me)) {
                Some(other) => app.name_of(&other),
                None => chat.name.clone(),
            }
        }
        _ => chat.name.clone(),
    }
}

fn row_of(app: &AppState, i18n: &I18n, chat: &ChatState) -> ChatRow {
    let last = chat.messages.last();
    let preview_text = match last.map(|m| &m.body) {
        Some(MsgBody::Text(text)) => {
            let who = last.filter(|m| m.own).map(|_| format!("{}: ", i18n.t("you"))).unwrap_or_default();
            format!("{who}{}", preview(text, 60))
        }
        Some(MsgBody::System(event)) => system_text(app, i18n, event, last.map(|m| m.sender)),
        Some(MsgBody::Call(record)) => call_record_text(i18n, *record, last.is_some_and(|m| m.own)),
        Some(MsgBody::Whiteboard(_)) => i18n.t("whiteboard"),
        Some(MsgBody::Forged { claimed }) => forged_text(app, i18n, *claimed),
        None => String::new(),
    };
    ChatRow {
        id: chat.group.to_hex(),
        direct: chat.kind == ChatKind::Direct,
        title: chat_title(app, chat),
        preview: preview_text,
        last_ms: last.map(|m| m.time_ms).unwrap_or(0),
        unread: unread(chat.seen, chat.messages.iter().filter_map(|m| m.seq.map(|s| (s, m.own)))),
    }
}

#[component]
pub fn ConnIndicator() -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let state = move || app.conn.get();
    view! {
        <button type="button" data-testid="conn-state" title=move || i18n.t("reconnect-now")
            on:click=move |_| handle.send(Cmd::Reconnect)
            data-state=move || match state() { ConnState::Online => "online", ConnState::Connecting => "connecting", ConnState::Offline => "offline" }
            class="inline-flex items-center gap-1.5 text-xs text-slate-500 rounded focus-visible:outline focus-visible:outline-2 focus-visible:outline-indigo-600" role="status">
            <span class=move || match state() {
                ConnState::Online => "h-2 w-2 rounded-full bg-emerald-500",
                ConnState::Connecting => "h-2 w-2 rounded-full bg-amber-400 animate-pulse",
                ConnState::Offline => "h-2 w-2 rounded-full bg-rose-500",
            }></span>
            {move || match state() {
                ConnState::Online => i18n.t("conn-online"),
                ConnState::Connecting => i18n.t("conn-connecting"),
                ConnState::Offline => i18n.t("conn-offline"),
            }}
        </button>
    }
}

#[component]
pub fn Shell() -> impl IntoView {
    let app = expect_context::<AppState>();
    let i18n = use_i18n();
    let creating = RwSignal::new(false);
    let joining = RwSignal::new(false);
    let meeting = RwSignal::new(false);
    // A guest account takes part in its meeting only.
    let guest = move || app.me.with(|m| m.as_ref().is_some_and(|m| m.guest_of.is_some()));
    let in_chat = move || !matches!(app.route.get(), Route::Chats);
    let rows = Memo::new(move |_| {
        let chats = app.chats.get();
        app.names.track();
        app.lang.track();
        split_and_order(
            chats.values().filter(|c| c.active || !c.messages.is_empty()).map(|c| row_of(&app, &i18n, c)).collect(),
        )
    });
    let section = move |title: &'static str, testid: &'static str, direct: bool| {
        let list = move || if direct { rows.get().1 } else { rows.get().0 };
        view! {
            <section aria-label=move || i18n.t(title) data-testid=testid>
                <h2 class="px-4 pt-4 pb-1 text-xs font-semibold uppercase tracking-wide text-slate-500">{move || i18n.t(title)}</h2>
                <Show when=move || list().is_empty()>
                    <p class="px-4 py-2 text-sm text-slate-400">{move || i18n.t(if direct { "no-direct-chats" } else { "no-groups" })}</p>
                </Show>
                <ul role="list">
                    <For each=list key=|r: &ChatRow| (r.id.clone(), r.title.clone(), r.preview.clone(), r.unread, r.last_ms) let:row>
                        <ChatRowView row=row/>
                    </For>
                </ul>
            </section>
        }
    };
    view! {
        <div class="flex h-[100dvh] bg-slate-100">
            <aside class=move || format!("{} w-full md:w-80 lg:w-96 shrink-0 flex-col border-r border-slate-200 bg-white",
                    if in_chat() { "hidden md:flex" } else { "flex" })
                data-testid="chat-list">
                <header class="flex items-center justify-between gap-2 border-b border-slate-200 px-4 py-3">
                    <div class="min-w-0">
                        <p class="truncate font-semibold text-slate-900" data-testid="node-name">{move || app.node_name.get()}</p>
                        <ConnIndicator/>
                    </div>
                    <div class="flex items-center gap-1">
                        <button class=BTN_GHOST data-testid="open-settings" aria-label=move || i18n.t("settings")
                            on:click=move |_| navigate(app.route, Route::Settings)>
                            <svg class="h-5 w-5" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" aria-hidden="true"><path d="M10.3 4.3c.4-1.7 2.9-1.7 3.4 0a1.7 1.7 0 0 0 2.6 1.1c1.5-.9 3.3.8 2.4 2.4a1.7 1.7 0 0 0 1 2.5c1.8.5 1.8 3 0 3.4a1.7 1.7 0 0 0-1 2.6c.9 1.5-.9 3.3-2.4 2.4a1.7 1.7 0 0 0-2.6 1c-.4 1.8-2.9 1.8-3.4 0a1.7 1.7 0 0 0-2.5-1c-1.6.9-3.3-.9-2.4-2.4a1.7 1.7 0 0 0-1.1-2.6c-1.7-.4-1.7-2.9 0-3.4a1.7 1.7 0 0 0 1.1-2.5c-.9-1.6.8-3.3 2.4-2.4 1 .6 2.3.1 2.5-1.1Z"/><circle cx="12" cy="12" r="3"/></svg>
                        </button>
                        <button class=BTN_GHOST data-testid="join-by-link" aria-label=move || i18n.t("join-by-link")
                            title=move || i18n.t("join-by-link") on:click=move |_| joining.set(true)>
                            <svg class="h-5 w-5" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" aria-hidden="true"><path d="M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1"/><path d="M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1"/></svg>
                        </button>
                        <Show when=move || !guest()>
                            <button class=BTN_SECONDARY data-testid="new-meeting" on:click=move |_| meeting.set(true)>
                                {move || i18n.t("new-meeting")}
                            </button>
                            <button class=BTN_PRIMARY data-testid="new-group" on:click=move |_| creating.set(true)>
                                {move || i18n.t("new-group")}
                            </button>
                        </Show>
                    </div>
                </header>
                <nav class="flex-1 overflow-y-auto" aria-label=move || i18n.t("chats")>
                    {section("groups", "groups-section", false)}
                    {section("direct-chats", "direct-section", true)}
                </nav>
            </aside>
            <main class=move || format!("{} min-w-0 flex-1 flex-col", if in_chat() { "flex" } else { "hidden md:flex" })>
                {move || match app.route.get() {
                    Route::Chat(group) => view! { <ChatView group=group/> }.into_any(),
                    Route::Settings => view! { <SettingsView/> }.into_any(),
                    _ => view! {
                        <div class="flex flex-1 items-center justify-center p-8 text-center text-slate-500">
                            <p>{move || i18n.t("pick-a-chat")}</p>
                        </div>
                    }.into_any(),
                }}
            </main>
            <Show when=move || creating.get()>
                <CreateGroupDialog on_close=Callback::new(move |_| creating.set(false))/>
            </Show>
            <Show when=move || joining.get()>
                <JoinByLinkDialog on_close=Callback::new(move |_| joining.set(false))/>
            </Show>
            <Show when=move || meeting.get()>
                <CreateMeetingDialog on_close=Callback::new(move |_| meeting.set(false))/>
            </Show>
            <crate::views::ring::IncomingCall/>
        </div>
    }
}

#[component]
fn ChatRowView(row: ChatRow) -> impl IntoView {
    let app = expect_context::<AppState>();
    let Ok(group) = row.id.parse::<GroupId>() else { return ().into_any() };
    let selected = move || app.route.get() == Route::Chat(group);
    let time = if row.last_ms > 0 {
        list_time(row.last_ms, js_sys::Date::now() as u64, tz_offset_min())
    } else {
        String::new()
    };
    let title = row.title.clone();
    view! {
        <li>
            <button data-testid="chat-row" data-chat=row.id.clone()
                class=move || format!("flex w-full items-center gap-3 px-4 py-3 text-left hover:bg-slate-50 focus-visible:outline focus-visible:outline-2 focus-visible:-outline-offset-2 focus-visible:outline-indigo-600 {}",
                    if selected() { "bg-indigo-50" } else { "" })
                aria-current=move || if selected() { "page" } else { "false" }
                on:click=move |_| navigate(app.route, Route::Chat(group))>
                <Avatar name=title.clone() seed=group.0.to_vec()/>
                <div class="min-w-0 flex-1">
                    <div class="flex items-baseline justify-between gap-2">
                        <span class="truncate font-medium text-slate-900" data-testid="chat-title">{title.clone()}</span>
                        <span class="shrink-0 text-xs text-slate-400">{time}</span>
                    </div>
                    <div class="flex items-center justify-between">
                        <span class="truncate text-sm text-slate-500" data-testid="chat-preview">{row.preview.clone()}</span>
                        <Show when=move || { row.unread > 0 }>
                            <Badge count=row.unread/>
                        </Show>
                    </div>
                </div>
            </button>
        </li>
    }
    .into_any()
}
