//! Dialogs: create a group, invite links, chat settings.

use leptos::prelude::*;
use veche_protocol::ids::{AccountId, ChatKind, GroupId, Retention, Role};
use veche_protocol::wire::InviteInfo;
use veche_ui_core::format::list_time;
use veche_ui_core::i18n::Arg;

use crate::components::{Avatar, BTN_DANGER, BTN_PRIMARY, BTN_SECONDARY, Dialog, INPUT, LABEL};
use crate::device::{Cmd, DeviceHandle};
use crate::i18n::{I18n, use_i18n};
use crate::route::navigate;
use crate::state::{AppState, Route};
use crate::views::chat_list::tz_offset_min;
use crate::views::spawn_ui;

/// A device command made with the channel its answer comes back on.
type AskCmd = Box<dyn FnOnce(futures::channel::oneshot::Sender<Result<(), String>>) -> Cmd>;

#[component]
pub fn CreateGroupDialog(on_close: Callback<()>) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let name = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let handle = handle.clone();
        let (n, d) = (name.get_untracked(), description.get_untracked());
        busy.set(true);
        spawn_ui(async move {
            let result = handle.ask(|reply| Cmd::CreateGroup { name: n, description: d, reply }).await;
            busy.set(false);
            let group = result?;
            on_close.run(());
            navigate(app.route, Route::Chat(group));
            Ok(())
        });
    };
    view! {
        <Dialog title=Signal::derive(move || i18n.t("new-group")) on_close=on_close testid="create-group-dialog">
            <form class="space-y-4" on:submit=submit>
                <div>
                    <label for="group-name" class=LABEL>{move || i18n.t("group-name")}</label>
                    <input id="group-name" data-testid="group-name" class=INPUT required maxlength="64" autofocus
                        prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                </div>
                <div>
                    <label for="group-description" class=LABEL>{move || i18n.t("group-description")}</label>
                    <textarea id="group-description" data-testid="group-description" class=INPUT rows="2" maxlength="500"
                        prop:value=move || description.get() on:input=move |ev| description.set(event_target_value(&ev))></textarea>
                </div>
                <div class="flex justify-end gap-2">
                    <button type="button" class=BTN_SECONDARY on:click=move |_| on_close.run(())>{move || i18n.t("cancel")}</button>
                    <button type="submit" class=BTN_PRIMARY data-testid="create-group-submit"
                        disabled=move || busy.get() || name.get().trim().is_empty()>{move || i18n.t("create")}</button>
                </div>
            </form>
        </Dialog>
    }
}

/// Opens an invite link of this node or of a linked node here: the join page of this node serves
/// both (the node finds the link's home among its linked nodes).
#[component]
pub fn JoinByLinkDialog(on_close: Callback<()>) -> impl IntoView {
    let app = expect_context::<AppState>();
    let i18n = use_i18n();
    let link = RwSignal::new(String::new());
    let error = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = link.get_untracked();
        match veche_protocol::link::InviteLink::parse(&text) {
            Ok(_) => {
                let fragment = text.trim().split_once('#').map(|(_, f)| f.to_string()).unwrap_or_default();
                on_close.run(());
                navigate(app.route, Route::Join(fragment));
            }
            Err(_) => error.set(true),
        }
    };
    view! {
        <Dialog title=Signal::derive(move || i18n.t("join-by-link")) on_close=on_close testid="join-link-dialog">
            <form class="space-y-4" on:submit=submit>
                <div>
                    <label for="join-link" class=LABEL>{move || i18n.t("invite-link")}</label>
                    <input id="join-link" data-testid="join-link-input" class=INPUT required autofocus
                        placeholder="https://…/join#i=…"
                        prop:value=move || link.get() on:input=move |ev| { error.set(false); link.set(event_target_value(&ev)) }/>
                    <p class="mt-1 text-xs text-slate-500">{move || i18n.t("join-by-link-hint")}</p>
                    <Show when=move || error.get()>
                        <p class="mt-1 text-sm text-rose-600" role="alert" data-testid="join-link-error">{move || i18n.t("err-not-a-link")}</p>
                    </Show>
                </div>
                <div class="flex justify-end gap-2">
                    <button type="button" class=BTN_SECONDARY on:click=move |_| on_close.run(())>{move || i18n.t("cancel")}</button>
                    <button type="submit" class=BTN_PRIMARY data-testid="join-link-submit"
                        disabled=move || link.get().trim().is_empty()>{move || i18n.t("join-open")}</button>
                </div>
            </form>
        </Dialog>
    }
}

/// Copies `text` (an invite or meeting link) and says whether it worked.
pub(super) fn copy_and_tell(app: AppState, i18n: I18n, text: String) {
    wasm_bindgen_futures::spawn_local(async move {
        let ok = crate::notify::copy_text(&text).await;
        app.toast(i18n.t(if ok { "copied" } else { "copy-failed" }), !ok);
    });
}

pub(super) fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(208, 208).quiet_zone(true).build(),
        Err(_) => String::new(),
    }
}

#[component]
pub fn InviteDialog(group: GroupId, on_close: Callback<()>) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let expiry = RwSignal::new("86400".to_string());
    let uses = RwSignal::new("10".to_string());
    let link = RwSignal::new(None::<String>);
    let invites = RwSignal::new(Vec::<InviteInfo>::new());
    let load = {
        let handle = handle.clone();
        move || {
            let handle = handle.clone();
            spawn_ui(async move {
                invites.set(handle.ask(|reply| Cmd::Invites { group, reply }).await?);
                Ok(())
            });
        }
    };
    load();
    let create = {
        let handle = handle.clone();
        let load = load.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let handle = handle.clone();
            let load = load.clone();
            let expires_in_secs = expiry.get_untracked().parse::<u64>().ok().filter(|s| *s > 0);
            let max_uses = uses.get_untracked().parse::<u32>().ok().filter(|n| *n > 0);
            spawn_ui(async move {
                let url = handle.ask(|reply| Cmd::CreateInvite { group, max_uses, expires_in_secs, reply }).await?;
                link.set(Some(url));
                load();
                Ok(())
            });
        }
    };
    let revoke = move |invite: veche_protocol::ids::InviteId| {
        let handle = handle.clone();
        let load = load.clone();
        spawn_ui(async move {
            handle.ask(|reply| Cmd::RevokeInvite { invite, reply }).await?;
            load();
            Ok(())
        });
    };
    let now = js_sys::Date::now() as u64;
    view! {
        <Dialog title=Signal::derive(move || i18n.t("invite-people")) on_close=on_close testid="invite-dialog">
            <form class="grid grid-cols-2 gap-3" on:submit=create>
                <div>
                    <label for="invite-expiry" class=LABEL>{move || i18n.t("invite-expires")}</label>
                    <select id="invite-expiry" data-testid="invite-expiry" class=INPUT on:change=move |ev| expiry.set(event_target_value(&ev))
                        prop:value=move || expiry.get()>
                        <option value="3600">{move || i18n.t("expires-hour")}</option>
                        <option value="86400">{move || i18n.t("expires-day")}</option>
                        <option value="604800">{move || i18n.t("expires-week")}</option>
                        <option value="2592000">{move || i18n.t("expires-month")}</option>
                    </select>
                </div>
                <div>
                    <label for="invite-uses" class=LABEL>{move || i18n.t("invite-uses")}</label>
                    <select id="invite-uses" data-testid="invite-uses" class=INPUT on:change=move |ev| uses.set(event_target_value(&ev))
                        prop:value=move || uses.get()>
                        <option value="1">"1"</option>
                        <option value="10">"10"</option>
                        <option value="100">"100"</option>
                        <option value="0">{move || i18n.t("uses-unlimited")}</option>
                    </select>
                </div>
                <button type="submit" class=format!("{BTN_PRIMARY} col-span-2") data-testid="invite-create">{move || i18n.t("create-link")}</button>
            </form>
            {move || link.get().map(|url| {
                let svg = qr_svg(&url);
                let copy_url = url.clone();
                view! {
                    <div class="mt-5 rounded-xl bg-slate-50 p-4">
                        <label for="invite-link" class=LABEL>{move || i18n.t("invite-link")}</label>
                        <div class="flex gap-2">
                            <input id="invite-link" data-testid="invite-link" class=INPUT readonly prop:value=url.clone()
                                on:focus=move |ev| { event_target::<web_sys::HtmlInputElement>(&ev).select() }/>
                            <button class=BTN_SECONDARY data-testid="invite-copy" on:click=move |_| {
                                copy_and_tell(app, i18n, copy_url.clone());
                            }>{move || i18n.t("copy")}</button>
                        </div>
                        <div class="mt-4 flex flex-col items-center">
                            <div data-testid="invite-qr" class="rounded-lg bg-white p-2" role="img" aria-label=move || i18n.t("qr-label") inner_html=svg></div>
                            <p class="mt-1 text-xs text-slate-500">{move || i18n.t("qr-hint")}</p>
                        </div>
                    </div>
                }
            })}
            <h3 class="mt-6 mb-2 text-sm font-semibold text-slate-700">{move || i18n.t("existing-links")}</h3>
            <Show when=move || invites.get().is_empty()>
                <p class="text-sm text-slate-400">{move || i18n.t("no-links")}</p>
            </Show>
            <ul class="divide-y divide-slate-100" role="list">
                <For each=move || invites.get() key=|i| (i.invite, i.revoked, i.uses) let:inv>
                    {
                        let revoke = revoke.clone();
                        let id = inv.invite;
                        let expired = inv.expires_at_ms.is_some_and(|e| e <= now);
                        let used_up = inv.max_uses.is_some_and(|m| inv.uses >= m);
                        let status = if inv.revoked { "link-revoked" } else if expired { "link-expired" } else if used_up { "link-used-up" } else { "link-active" };
                        let usable = status == "link-active";
                        let uses_text = match inv.max_uses { Some(m) => format!("{}/{}", inv.uses, m), None => format!("{}/∞", inv.uses) };
                        let expires = inv.expires_at_ms.map(|e| list_time(e, now, tz_offset_min())).unwrap_or_else(|| "∞".into());
                        view! {
                            <li class="flex items-center justify-between gap-2 py-2 text-sm" data-testid="invite-row" data-status=status>
                                <div class="min-w-0">
                                    <p class="font-mono text-xs text-slate-500">{inv.invite.to_hex()[..10].to_string()}</p>
                                    <p class="text-slate-700">{move || i18n.t(status)}" · "{uses_text.clone()}" · "{expires.clone()}</p>
                                </div>
                                <Show when=move || usable>
                                    <button class="text-sm font-semibold text-rose-600 hover:text-rose-500" data-testid="invite-revoke"
                                        on:click={ let revoke = revoke.clone(); move |_| revoke(id) }>{move || i18n.t("revoke")}</button>
                                </Show>
                            </li>
                        }
                    }
                </For>
            </ul>
        </Dialog>
    }
}

fn role_id(role: Role) -> &'static str {
    match role {
        Role::Owner => "role-owner",
        Role::Admin => "role-admin",
        Role::Member => "role-member",
    }
}

#[component]
pub fn ChatSettingsDialog(group: GroupId, on_close: Callback<()>) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let chat = Memo::new(move |_| app.chats.with(|c| c.get(&group).cloned()));
    let me = move || app.me.with(|m| m.as_ref().map(|m| m.account));
    let my_role = move || chat.with(|c| c.as_ref().and_then(|c| me().and_then(|m| c.role_of(&m))));
    let is_group = move || chat.with(|c| c.as_ref().is_some_and(|c| c.kind != ChatKind::Direct));
    let act = {
        let handle = handle.clone();
        move |cmd: AskCmd| {
            let handle = handle.clone();
            spawn_ui(async move {
                handle.ask(cmd).await?;
                Ok(())
            });
        }
    };
    let dm = {
        let handle = handle.clone();
        move |member: AccountId| {
            let handle = handle.clone();
            spawn_ui(async move {
                let group = handle.ask(|reply| Cmd::DirectChat { member, reply }).await?;
                on_close.run(());
                navigate(app.route, Route::Chat(group));
                Ok(())
            });
        }
    };
    let retention_value = move || {
        chat.with(|c| match c.as_ref().and_then(|c| c.retention) {
            Some(Retention::Days(d)) => d.to_string(),
            Some(Retention::UntilFetched) => "fetched".into(),
            _ => "forever".into(),
        })
    };
    let keep = move || chat.with(|c| c.as_ref().is_some_and(|c| c.keep_history));
    let muted = RwSignal::new(crate::notify::muted(group));
    let can_edit = move || my_role().is_some_and(|r| r.can_manage_members());
    let edit_name = RwSignal::new(chat.with_untracked(|c| c.as_ref().map(|c| c.name.clone()).unwrap_or_default()));
    let edit_description =
        RwSignal::new(chat.with_untracked(|c| c.as_ref().map(|c| c.description.clone()).unwrap_or_default()));
    let save_details = {
        let handle = handle.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let handle = handle.clone();
            let (name, description) = (edit_name.get_untracked(), edit_description.get_untracked());
            spawn_ui(async move {
                handle.ask(|reply| Cmd::UpdateChat { group, name, description, reply }).await?;
                app.toast(i18n.t("saved"), false);
                Ok(())
            });
        }
    };
    let act_retention = act.clone();
    let act_leave = act.clone();
    let handle_keep = handle.clone();
    view! {
        <Dialog title=Signal::derive(move || i18n.t("chat-settings")) on_close=on_close testid="chat-settings">
            <Show when=move || is_group() && !can_edit()>
                <p class="text-lg font-semibold text-slate-900" data-testid="chat-settings-name">{move || chat.with(|c| c.as_ref().map(|c| c.name.clone()))}</p>
                <p class="mb-4 text-sm text-slate-600 whitespace-pre-wrap">{move || chat.with(|c| c.as_ref().map(|c| c.description.clone()))}</p>
            </Show>
            <Show when=move || is_group() && can_edit()>
                <form class="mb-5 space-y-3" on:submit=save_details.clone()>
                    <div>
                        <label for="edit-name" class=LABEL>{move || i18n.t("group-name")}</label>
                        <input id="edit-name" data-testid="chat-edit-name" class=INPUT required maxlength="100"
                            prop:value=move || edit_name.get() on:input=move |ev| edit_name.set(event_target_value(&ev))/>
                    </div>
                    <div>
                        <label for="edit-description" class=LABEL>{move || i18n.t("group-description")}</label>
                        <textarea id="edit-description" data-testid="chat-edit-description" class=INPUT rows="2" maxlength="1000"
                            prop:value=move || edit_description.get() on:input=move |ev| edit_description.set(event_target_value(&ev))></textarea>
                    </div>
                    <button type="submit" class=BTN_SECONDARY data-testid="chat-save"
                        disabled=move || edit_name.get().trim().is_empty() || chat.with(|c| c.as_ref().is_some_and(|c| c.name == edit_name.get() && c.description == edit_description.get()))>
                        {move || i18n.t("save")}
                    </button>
                </form>
            </Show>
            <h3 class="mb-2 text-sm font-semibold text-slate-700">{move || i18n.t("members")}</h3>
            <ul class="divide-y divide-slate-100" role="list">
                <For each=move || chat.with(|c| c.as_ref().map(|c| c.members.clone()).unwrap_or_default())
                    key=|m| (m.account, m.role, m.display_name.clone()) let:member>
                    {
                        let account = member.account;
                        let is_me = me() == Some(account);
                        let manager = my_role().is_some_and(|r| r.can_manage_members());
                        let owner = my_role() == Some(Role::Owner);
                        let act = act.clone();
                        let act2 = act.clone();
                        let dm = dm.clone();
                        let role = member.role;
                        let can_remove = is_group() && !is_me && (owner || (manager && role == Role::Member));
                        view! {
                            <li class="flex items-center gap-3 py-2" data-testid="member-row">
                                <Avatar name=member.display_name.clone() seed=account.0.to_vec() size="h-9 w-9 text-xs"/>
                                <div class="min-w-0 flex-1">
                                    <p class="truncate text-sm font-medium text-slate-900" data-testid="member-name">
                                        {member.display_name.clone()}{if is_me { format!(" ({})", i18n.t("you")) } else { String::new() }}
                                    </p>
                                    <p class="text-xs text-slate-500" data-testid="member-role">{move || i18n.t(role_id(role))}</p>
                                    {
                                        // Members who live on another node show which one.
                                        let (home, home_name) = (member.home_node.clone(), member.home_name.clone());
                                        move || (!home.is_empty() && home != app.node_id.get()).then(|| {
                                            let name = if home_name.is_empty() { format!("{}…", &home[home.len().saturating_sub(8)..]) } else { home_name.clone() };
                                            view! {
                                                <p class="truncate text-xs text-slate-500" data-testid="member-home">
                                                    {i18n.t_with("member-home", &[("node", Arg::Str(&name))])}
                                                </p>
                                            }
                                        })
                                    }
                                </div>
                                <Show when=move || !is_me>
                                    <button class="text-sm font-medium text-indigo-600 hover:text-indigo-500" data-testid="member-dm"
                                        on:click={ let dm = dm.clone(); move |_| dm(account) }>{move || i18n.t("message")}</button>
                                </Show>
                                <Show when=move || owner && !is_me && is_group()>
                                    <select class="rounded-md border-slate-300 text-xs" data-testid="member-role-select"
                                        aria-label=move || i18n.t("role")
                                        on:change={ let act = act.clone(); move |ev| {
                                            let role = match event_target_value(&ev).as_str() { "admin" => Role::Admin, _ => Role::Member };
                                            act(Box::new(move |reply| Cmd::SetRole { group, member: account, role, reply }));
                                        }}>
                                        <option value="member" selected=role == Role::Member>{move || i18n.t("role-member")}</option>
                                        <option value="admin" selected=role == Role::Admin>{move || i18n.t("role-admin")}</option>
                                    </select>
                                </Show>
                                <Show when=move || can_remove>
                                    <button class="text-sm font-medium text-rose-600 hover:text-rose-500" data-testid="member-remove"
                                        on:click={ let act = act2.clone(); move |_| act(Box::new(move |reply| Cmd::Remove { group, member: account, reply })) }>
                                        {move || i18n.t("remove")}
                                    </button>
                                </Show>
                            </li>
                        }
                    }
                </For>
            </ul>
            <div class="mt-6 space-y-4 border-t border-slate-100 pt-4">
                <Show when=move || my_role() == Some(Role::Owner)>
                    <div>
                        <label for="retention" class=LABEL>{move || i18n.t("retention")}</label>
                        <select id="retention" data-testid="retention" class=INPUT prop:value=retention_value
                            on:change={ let act = act_retention.clone(); move |ev| {
                                let retention = match event_target_value(&ev).as_str() {
                                    "fetched" => Retention::UntilFetched,
                                    "forever" => Retention::Forever,
                                    days => Retention::Days(days.parse().unwrap_or(30)),
                                };
                                act(Box::new(move |reply| Cmd::SetRetention { group, retention, reply }));
                            }}>
                            <option value="forever">{move || i18n.t("retention-forever")}</option>
                            <option value="30">{move || i18n.t("retention-30")}</option>
                            <option value="7">{move || i18n.t("retention-7")}</option>
                            <option value="fetched">{move || i18n.t("retention-fetched")}</option>
                        </select>
                    </div>
                </Show>
                <label class="flex items-start gap-3 text-sm">
                    <input type="checkbox" data-testid="keep-history" class="mt-0.5 h-4 w-4 rounded border-slate-300 text-indigo-600"
                        prop:checked=keep on:change=move |ev| {
                            let keep = event_target_checked(&ev);
                            handle_keep.send(Cmd::KeepHistory { group, keep });
                        }/>
                    <span>
                        <span class="font-medium text-slate-800">{move || i18n.t("keep-history")}</span>
                        <span class="block text-slate-500">{move || i18n.t("keep-history-hint")}</span>
                    </span>
                </label>
                <label class="flex items-start gap-3 text-sm">
                    <input type="checkbox" data-testid="mute-chat" class="mt-0.5 h-4 w-4 rounded border-slate-300 text-indigo-600"
                        prop:checked=move || muted.get() on:change=move |ev| {
                            let mute = event_target_checked(&ev);
                            crate::notify::set_muted(group, mute);
                            muted.set(mute);
                        }/>
                    <span>
                        <span class="font-medium text-slate-800">{move || i18n.t("notify-mute")}</span>
                        <span class="block text-slate-500">{move || i18n.t("notify-mute-hint")}</span>
                    </span>
                </label>
                <Show when=move || is_group() && chat.with(|c| c.as_ref().is_some_and(|c| c.active))>
                    <button class=BTN_DANGER data-testid="leave-chat" on:click={ let act = act_leave.clone(); move |_| {
                        let confirmed = web_sys::window().and_then(|w| w.confirm_with_message(&i18n.t("leave-confirm")).ok()).unwrap_or(false);
                        if confirmed {
                            act(Box::new(move |reply| Cmd::Leave { group, reply }));
                            on_close.run(());
                        }
                    }}>{move || i18n.t("leave")}</button>
                </Show>
            </div>
        </Dialog>
    }
}
