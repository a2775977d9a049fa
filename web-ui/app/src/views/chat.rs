//! One chat: header, timeline with infinite scroll back, composer.

use leptos::html;
use leptos::prelude::*;
use veche_device::SystemEvent;
use veche_protocol::content::CallRecord;
use veche_protocol::ids::{AccountId, ChatKind, GroupId};
use veche_ui_core::format::{civil_date, clock, day_number};
use veche_ui_core::i18n::Arg;
use veche_ui_core::model::{Delivery, TimelineItem, grow_window, with_day_separators};

use crate::components::{Avatar, BTN_GHOST, BTN_PRIMARY};
use crate::device::{Cmd, DeviceHandle};
use crate::i18n::{I18n, use_i18n};
use crate::route::navigate;
use crate::state::{AppState, MsgBody, MsgView, Route};
use crate::views::call::{CallButton, CallChatOpen, CallPanel};
use crate::views::chat_list::{ConnIndicator, chat_title, tz_offset_min};
use crate::views::dialogs::{ChatSettingsDialog, InviteDialog};
use crate::views::whiteboard::WhiteboardMessage;

const PAGE: usize = 60;

/// A system line in the member's language.
pub fn system_text(app: &AppState, i18n: &I18n, event: &SystemEvent, sender: Option<AccountId>) -> String {
    let names = |list: &[AccountId]| list.iter().map(|a| app.name_of(a)).collect::<Vec<_>>().join(", ");
    let who = sender.map(|s| app.name_of(&s)).unwrap_or_default();
    match event {
        SystemEvent::Created => i18n.t("sys-created"),
        SystemEvent::JoinedByLink(a) => i18n.t_with("sys-joined", &[("name", Arg::Str(&app.name_of(a)))]),
        SystemEvent::Added(list) => {
            i18n.t_with("sys-added", &[("actor", Arg::Str(&who)), ("names", Arg::Str(&names(list)))])
        }
        SystemEvent::Removed(list) => {
            i18n.t_with("sys-removed", &[("actor", Arg::Str(&who)), ("names", Arg::Str(&names(list)))])
        }
        SystemEvent::RoleChanged(a) => i18n.t_with("sys-role", &[("name", Arg::Str(&app.name_of(a)))]),
        SystemEvent::Left => i18n.t("sys-left"),
        SystemEvent::RemovedLeavers => i18n.t("sys-removed-leavers"),
        SystemEvent::Expired(n) => i18n.t_with("sys-expired", &[("count", Arg::Num(*n as i64))]),
        SystemEvent::Unreadable => i18n.t("sys-unreadable"),
        SystemEvent::KeysRefreshed => i18n.t("sys-keys-refreshed"),
        SystemEvent::Membership { added, removed } => i18n.t_with(
            "sys-membership",
            &[("actor", Arg::Str(&who)), ("added", Arg::Str(&names(added))), ("removed", Arg::Str(&names(removed)))],
        ),
        SystemEvent::RolesChanged { by } => {
            let by = by.map(|a| app.name_of(&a)).unwrap_or(who);
            i18n.t_with("sys-roles-changed", &[("name", Arg::Str(&by))])
        }
        SystemEvent::Legacy(text) => text.clone(),
        SystemEvent::Resynced { skipped } => i18n.t_with("sys-resynced", &[("count", Arg::Num(*skipped as i64))]),
        SystemEvent::DeviceRejoined(a) => i18n.t_with("sys-device-rejoined", &[("name", Arg::Str(&app.name_of(a)))]),
    }
}

/// The warning shown instead of a message the node attributed to `claimed` and MLS did not.
pub fn forged_text(app: &AppState, i18n: &I18n, claimed: AccountId) -> String {
    i18n.t_with("sys-forged", &[("name", Arg::Str(&app.name_of(&claimed)))])
}

/// How a call record reads: to the caller (`own`) what became of the call, to the callee what
/// they missed or declined.
pub fn call_record_text(i18n: &I18n, record: CallRecord, own: bool) -> String {
    i18n.t(match (record, own) {
        (CallRecord::Missed, true) => "call-record-no-answer",
        (CallRecord::Missed, false) => "call-record-missed",
        (CallRecord::Declined, true) => "call-record-declined",
        (CallRecord::Declined, false) => "call-record-you-declined",
    })
}

fn day_label(i18n: &I18n, day: i64) -> String {
    let today = day_number(js_sys::Date::now() as u64, tz_offset_min());
    if day == today {
        i18n.t("today")
    } else if day == today - 1 {
        i18n.t("yesterday")
    } else {
        let (y, m, d) = civil_date(day);
        format!("{d:02}.{m:02}.{y}")
    }
}

#[component]
pub fn ChatView(group: GroupId) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let chat = Memo::new(move |_| app.chats.with(|c| c.get(&group).cloned()));
    let shown = RwSignal::new(PAGE);
    let inviting = RwSignal::new(false);
    let settings = RwSignal::new(false);
    let scroller = NodeRef::<html::Div>::new();
    let me = move || app.me.with(|m| m.as_ref().map(|m| m.account));
    // In this chat's call: the call fills the view; the messages open beside it when asked.
    let calling = move || app.call.with(|c| c.as_ref().is_some_and(|c| c.group == group));
    let chat_open = RwSignal::new(false);
    provide_context(CallChatOpen(chat_open));

    // Opening the chat reads its notifications.
    crate::notify::close(group, "message");
    // Newest messages are seen while the chat is open.
    {
        let handle = handle.clone();
        Effect::new(move |_| {
            if let Some(c) = chat.get() {
                let newest = c.messages.iter().filter_map(|m| m.seq).max().unwrap_or(0);
                if newest > c.seen {
                    handle.send(Cmd::Seen { group });
                }
            }
        });
    }
    // Keep the view at the bottom when new messages arrive and the member was near it.
    let count = Memo::new(move |_| chat.with(|c| c.as_ref().map(|c| c.messages.len()).unwrap_or(0)));
    Effect::new(move |prev: Option<usize>| {
        let n = count.get();
        if let Some(el) = scroller.get() {
            let near_bottom = el.scroll_height() - el.scroll_top() - el.client_height() < 160;
            if prev.is_none() || near_bottom {
                request_animation_frame(move || el.set_scroll_top(el.scroll_height()));
            }
        }
        n
    });
    let on_scroll = move |_| {
        let Some(el) = scroller.get() else { return };
        let total = count.get_untracked();
        if el.scroll_top() < 40 && shown.get_untracked() < total {
            let before = el.scroll_height();
            shown.set(grow_window(shown.get_untracked(), PAGE, total));
            request_animation_frame(move || el.set_scroll_top(el.scroll_height() - before + el.scroll_top()));
        }
    };
    let title = move || chat.with(|c| c.as_ref().map(|c| chat_title(&app, c)).unwrap_or_default());
    let subtitle = move || {
        chat.with(|c| match c {
            Some(c) if c.kind == ChatKind::Direct => i18n.t("direct-chat"),
            Some(c) => i18n.t_with("members-count", &[("count", Arg::Num(c.members.len() as i64))]),
            None => String::new(),
        })
    };
    let can_invite = move || {
        chat.with(|c| {
            c.as_ref().is_some_and(|c| {
                c.kind != ChatKind::Direct
                    && c.active
                    && me().and_then(|m| c.role_of(&m)).is_some_and(|r| r.can_manage_members())
            })
        })
    };
    let active = move || chat.with(|c| c.as_ref().is_some_and(|c| c.active));
    let timeline = move || {
        let Some(c) = chat.get() else { return Vec::new() };
        let n = c.messages.len();
        let start = n.saturating_sub(shown.get());
        let messages = &c.messages[start..];
        let offset = tz_offset_min();
        with_day_separators(messages, |m| m.time_ms, offset)
            .into_iter()
            .map(|item| match item {
                TimelineItem::Day(d) => (format!("d{d}"), None, d),
                TimelineItem::Message(m) => (m.key.clone(), Some(m.clone()), 0),
            })
            .collect::<Vec<_>>()
    };
    view! {
        <header class=move || if calling() {
                "hidden items-center gap-3 border-b border-slate-200 bg-white px-3 py-2.5 md:flex"
            } else {
                "flex items-center gap-3 border-b border-slate-200 bg-white px-3 py-2.5"
            }>
            <button class=format!("{BTN_GHOST} md:hidden") data-testid="back" aria-label=move || i18n.t("back")
                on:click=move |_| navigate(app.route, Route::Chats)>
                <svg class="h-5 w-5" viewBox="0 0 20 20" fill="currentColor" aria-hidden="true"><path fill-rule="evenodd" d="M12.8 4.2a.75.75 0 0 1 0 1.06L8.06 10l4.74 4.74a.75.75 0 1 1-1.06 1.06l-5.27-5.27a.75.75 0 0 1 0-1.06l5.27-5.27a.75.75 0 0 1 1.06 0Z" clip-rule="evenodd"/></svg>
            </button>
            <Avatar name=Signal::derive(title) seed=group.0.to_vec()/>
            <button class="min-w-0 flex-1 text-left rounded focus-visible:outline focus-visible:outline-2 focus-visible:outline-indigo-600"
                data-testid="chat-header" on:click=move |_| settings.set(true)>
                <h1 class="truncate font-semibold text-slate-900" data-testid="chat-name">{title}</h1>
                <p class="truncate text-xs text-slate-500">{subtitle}</p>
            </button>
            <div class="hidden sm:block"><ConnIndicator/></div>
            <Show when=active>
                <CallButton group=group/>
            </Show>
            <Show when=can_invite>
                <button class=BTN_GHOST data-testid="open-invite" aria-label=move || i18n.t("invite-people") title=move || i18n.t("invite-people")
                    on:click=move |_| inviting.set(true)>
                    <svg class="h-5 w-5" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" aria-hidden="true"><path d="M15 19a6 6 0 0 0-12 0M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8Zm10-3v6m3-3h-6"/></svg>
                </button>
            </Show>
            <button class=BTN_GHOST data-testid="open-chat-settings" aria-label=move || i18n.t("chat-settings")
                on:click=move |_| settings.set(true)>
                <svg class="h-5 w-5" viewBox="0 0 20 20" fill="currentColor" aria-hidden="true"><path d="M10 3a1.5 1.5 0 1 1 0 3 1.5 1.5 0 0 1 0-3Zm0 5.5a1.5 1.5 0 1 1 0 3 1.5 1.5 0 0 1 0-3ZM11.5 15.5a1.5 1.5 0 1 0-3 0 1.5 1.5 0 0 0 3 0Z"/></svg>
            </button>
        </header>
        <Show when=move || !calling()>
            <crate::views::meeting::MeetingCard group=group/>
        </Show>
        // In the call, the call fills the view and the chat's messages open beside it (a side
        // panel on a wide screen, a sheet on a phone) from the call's bar; otherwise the
        // pre-join view (if any) sits above the messages.
        <div class=move || if calling() { "flex min-h-0 flex-1" } else { "contents" }>
        <CallPanel group=group/>
        <div class=move || match (calling(), chat_open.get()) {
                (false, _) => "contents",
                (true, false) => "hidden",
                (true, true) => "fixed inset-x-0 bottom-0 z-40 flex h-[65dvh] flex-col overflow-hidden rounded-t-2xl bg-slate-50 shadow-2xl lg:static lg:z-auto lg:h-auto lg:w-96 lg:shrink-0 lg:rounded-none lg:border-l lg:border-slate-200 lg:shadow-none",
            }
            data-testid="chat-messages" data-beside-call=move || calling().to_string()>
        <Show when=calling>
            <div class="flex shrink-0 items-center justify-between border-b border-slate-200 bg-white px-3 py-2">
                <h2 class="text-sm font-semibold text-slate-900">{move || i18n.t("call-chat")}</h2>
                <button class=BTN_GHOST data-testid="call-chat-close" aria-label=move || i18n.t("call-close-panel")
                    title=move || i18n.t("call-close-panel") on:click=move |_| chat_open.set(false)>
                    <svg class="h-4 w-4" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" aria-hidden="true"><path d="M6 6l12 12 M18 6 6 18"/></svg>
                </button>
            </div>
        </Show>
        <Show when=move || chat.with(|c| c.as_ref().is_some_and(|c| !c.keep_history))>
            <p class="border-b border-amber-200 bg-amber-50 px-4 py-1.5 text-center text-xs text-amber-800" data-testid="history-not-kept">
                {move || i18n.t("history-not-kept")}
            </p>
        </Show>
        <div node_ref=scroller on:scroll=on_scroll class="flex-1 overflow-y-auto px-3 py-4 sm:px-6" data-testid="timeline"
            role="log" aria-live="polite" aria-label=move || i18n.t("messages")>
            <Show when=move || chat.with(|c| c.as_ref().is_some_and(|c| c.messages.is_empty()))>
                <p class="py-10 text-center text-sm text-slate-400">{move || i18n.t("no-messages")}</p>
            </Show>
            <ol class="mx-auto flex max-w-3xl flex-col gap-1.5">
                <For each=timeline key=|(key, m, _)| (key.clone(), m.as_ref().map(|m| m.delivery)) let:item>
                    {match item.1 {
                        Some(m) => view! { <MessageView m=m group=group/> }.into_any(),
                        None => view! {
                            <li class="my-3 flex justify-center" data-testid="day">
                                <span class="rounded-full bg-white px-3 py-1 text-xs text-slate-500 shadow-sm">{day_label(&i18n, item.2)}</span>
                            </li>
                        }.into_any(),
                    }}
                </For>
            </ol>
        </div>
        <Show when=active fallback=move || view! {
            <p class="border-t border-slate-200 bg-white p-4 text-center text-sm text-slate-500">{move || i18n.t("not-a-member")}</p>
        }>
            <Composer group=group/>
        </Show>
        </div>
        </div>
        <Show when=move || inviting.get()>
            <InviteDialog group=group on_close=Callback::new(move |_| inviting.set(false))/>
        </Show>
        <Show when=move || settings.get()>
            <ChatSettingsDialog group=group on_close=Callback::new(move |_| settings.set(false))/>
        </Show>
    }
}

#[component]
fn MessageView(m: MsgView, group: GroupId) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let time = clock(m.time_ms, tz_offset_min());
    match m.body.clone() {
        MsgBody::System(event) => view! {
            <li class="my-1 flex justify-center" data-testid="system-message">
                <span class="rounded-full bg-slate-200/70 px-3 py-1 text-center text-xs text-slate-600">
                    {move || system_text(&app, &i18n, &event, Some(m.sender))}
                </span>
            </li>
        }
        .into_any(),
        MsgBody::Forged { claimed } => view! {
            <li class="my-1 flex justify-center" data-testid="forged-message">
                <span class="rounded-full bg-amber-100 px-3 py-1 text-center text-xs text-amber-800 ring-1 ring-amber-300">
                    {move || forged_text(&app, &i18n, claimed)}
                </span>
            </li>
        }
        .into_any(),
        MsgBody::Call(record) => {
            let own = m.own;
            let (kind, tone) = match record {
                CallRecord::Missed => ("missed", "text-rose-600"),
                CallRecord::Declined => ("declined", "text-slate-500"),
            };
            view! {
                <li class="my-1 flex justify-center" data-testid="call-record" data-record=kind data-own=own.to_string()>
                    <span class="inline-flex items-center gap-1.5 rounded-full bg-slate-200/70 px-3 py-1 text-xs text-slate-700">
                        <svg class=format!("h-3.5 w-3.5 {tone}") viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"
                            stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">
                            <path d="M5 4h4l2 5-2.5 1.5a11 11 0 0 0 5 5L15 13l5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 6a2 2 0 0 1 2-2"/>
                        </svg>
                        <span class="font-medium" data-testid="call-record-text">{move || call_record_text(&i18n, record, own)}</span>
                        <span class="text-slate-500" data-testid="call-record-time">{time}</span>
                    </span>
                </li>
            }
            .into_any()
        }
        MsgBody::Whiteboard(items) => view! {
            <WhiteboardMessage items=items sender=m.sender time=time time_ms=m.time_ms/>
        }
        .into_any(),
        MsgBody::Text(text) if m.own => {
            let state = match m.delivery {
                Delivery::Sending => "sending",
                Delivery::Stored => "stored",
                Delivery::Failed => "failed",
            };
            let label_id = m.delivery.label_id();
            let outbox_id = m.outbox_id;
            let failed = m.delivery == Delivery::Failed;
            view! {
                <li class="flex justify-end" data-testid="message" data-own="true">
                    <div class="max-w-[85%] sm:max-w-[70%]">
                        <div class=if failed { "rounded-2xl rounded-br-md bg-rose-100 px-3.5 py-2 text-slate-900 ring-1 ring-rose-300" }
                                   else { "rounded-2xl rounded-br-md bg-indigo-600 px-3.5 py-2 text-white shadow-sm" }>
                            <p class="whitespace-pre-wrap break-words" data-testid="msg-text">{text}</p>
                        </div>
                        <div class="mt-0.5 flex items-center justify-end gap-1.5 text-[11px] text-slate-500">
                            <span>{time}</span>
                            <span data-testid="msg-delivery" data-state=state title=move || i18n.t(label_id) aria-label=move || i18n.t(label_id)>
                                {match m.delivery {
                                    Delivery::Sending => "◷",
                                    Delivery::Stored => "✓",
                                    Delivery::Failed => "!",
                                }}
                            </span>
                            <Show when=move || failed>
                                <button class="font-semibold text-rose-700 underline" data-testid="msg-retry"
                                    on:click={
                                        let handle = handle.clone();
                                        move |_| if let Some(id) = outbox_id { handle.send(Cmd::Retry { group, outbox_id: id }) }
                                    }>
                                    {move || i18n.t("retry")}
                                </button>
                                <button class="font-semibold text-slate-600 underline" data-testid="msg-discard"
                                    on:click={
                                        let handle = handle.clone();
                                        move |_| if let Some(id) = outbox_id { handle.send(Cmd::Discard { group, outbox_id: id }) }
                                    }>
                                    {move || i18n.t("delete")}
                                </button>
                            </Show>
                        </div>
                    </div>
                </li>
            }
            .into_any()
        }
        MsgBody::Text(text) => {
            let sender = m.sender;
            let name = move || app.name_of(&sender);
            view! {
                <li class="flex items-end gap-2" data-testid="message" data-own="false">
                    <Avatar name=Signal::derive(name) seed=sender.0.to_vec() size="h-8 w-8 text-xs"/>
                    <div class="max-w-[80%] sm:max-w-[70%]">
                        <div class="rounded-2xl rounded-bl-md bg-white px-3.5 py-2 shadow-sm ring-1 ring-slate-200">
                            <p class="text-xs font-semibold text-indigo-700" data-testid="msg-sender">{name}</p>
                            <p class="whitespace-pre-wrap break-words text-slate-900" data-testid="msg-text">{text}</p>
                        </div>
                        <div class="mt-0.5 text-[11px] text-slate-500">{time}</div>
                    </div>
                </li>
            }
            .into_any()
        }
    }
}

#[component]
fn Composer(group: GroupId) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let area = NodeRef::<html::Textarea>::new();
    // The draft survives switching chats and reloading (kept in localStorage, never sent).
    let storage = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
    let key = format!("veche-draft-{}", group.to_hex());
    if app.drafts.with_untracked(|d| !d.contains_key(&group))
        && let Some(saved) = storage.as_ref().and_then(|s| s.get_item(&key).ok().flatten())
    {
        app.drafts.update(|d| {
            d.insert(group, saved);
        });
    }
    let save = move |text: &str| {
        if let Some(s) = storage.as_ref() {
            let _ = if text.is_empty() { s.remove_item(&key) } else { s.set_item(&key, text) };
        }
    };
    let save_input = save.clone();
    let draft = move || app.drafts.with(|d| d.get(&group).cloned().unwrap_or_default());
    let send = move || {
        let text = draft();
        if text.trim().is_empty() {
            return;
        }
        handle.send(Cmd::Send { group, text });
        app.drafts.update(|d| {
            d.remove(&group);
        });
        save("");
        if let Some(el) = area.get() {
            let _ = el.focus();
        }
    };
    let send_key = send.clone();
    view! {
        <form class="border-t border-slate-200 bg-white p-3" on:submit=move |ev| { ev.prevent_default(); send() }>
            <div class="mx-auto flex max-w-3xl items-end gap-2">
                <label for="composer" class="sr-only">{move || i18n.t("message-placeholder")}</label>
                <textarea id="composer" node_ref=area data-testid="composer" rows="1"
                    class="block max-h-40 min-h-[2.75rem] w-full resize-none rounded-xl border-0 px-3.5 py-2.5 text-slate-900 ring-1 ring-inset ring-slate-300 placeholder:text-slate-400 focus:ring-2 focus:ring-inset focus:ring-indigo-600 text-base sm:text-sm"
                    placeholder=move || i18n.t("message-placeholder")
                    prop:value=draft
                    on:input=move |ev| {
                        let value = event_target_value(&ev);
                        save_input(&value);
                        app.drafts.update(|d| { d.insert(group, value); });
                    }
                    on:keydown=move |ev: web_sys::KeyboardEvent| {
                        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                            ev.prevent_default();
                            send_key();
                        }
                    }></textarea>
                <button type="submit" class=BTN_PRIMARY data-testid="send" aria-label=move || i18n.t("send")
                    disabled=move || draft().trim().is_empty()>
                    <svg class="h-5 w-5" viewBox="0 0 20 20" fill="currentColor" aria-hidden="true"><path d="M3.1 2.3a.75.75 0 0 0-.9 1l2.3 6H11a.75.75 0 0 1 0 1.5H4.5l-2.3 6a.75.75 0 0 0 .9 1 44 44 0 0 0 14.6-7.2.75.75 0 0 0 0-1.2A44 44 0 0 0 3.1 2.3Z"/></svg>
                </button>
            </div>
        </form>
    }
}
