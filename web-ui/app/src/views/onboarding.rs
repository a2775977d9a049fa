//! First visit: choose a display name and register; the join page for invite links.

use leptos::prelude::*;
use veche_protocol::link::InviteLink;
use veche_protocol::wire::{InvitePreview, RegistrationPolicy};
use veche_ui_core::i18n::Arg;

use crate::components::{BTN_PRIMARY, BTN_SECONDARY, INPUT, LABEL, Spinner};
use crate::device::{Cmd, DeviceHandle, page_origin};
use crate::i18n::use_i18n;
use crate::route::navigate;
use crate::state::{AppState, Phase, Route};
use crate::views::settings::{LanguageSelect, TrustNote};

fn logo() -> impl IntoView {
    view! {
        <div class="mx-auto mb-4 flex h-14 w-14 items-center justify-center rounded-2xl bg-indigo-600 text-2xl font-bold text-white shadow-lg" aria-hidden="true">
            "V"
        </div>
    }
}

/// Registers with `name` (and the link, when given), then joins the link's chat if it has one.
async fn register_and_join(
    handle: DeviceHandle,
    app: AppState,
    name: String,
    link: Option<String>,
) -> Result<(), String> {
    handle.ask(|reply| Cmd::Register { name, link: link.clone(), reply }).await?;
    match link.as_deref().map(InviteLink::parse) {
        Some(Ok(InviteLink { group: Some(_), .. })) => {
            let link = link.unwrap_or_default();
            let group = handle.ask(|reply| Cmd::Join { link, reply }).await?;
            navigate(app.route, Route::Chat(group));
        }
        _ => navigate(app.route, Route::Chats),
    }
    Ok(())
}

#[component]
pub fn Onboarding() -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let name = RwSignal::new(String::new());
    let link = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let handle = handle.clone();
        let link = Some(link.get_untracked().trim().to_string()).filter(|l| !l.is_empty());
        let name = name.get_untracked();
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            if let Err(e) = register_and_join(handle, app, name, link).await {
                error.set(Some(i18n.error(&e)));
            }
            busy.set(false);
        });
    };
    let restoring = RwSignal::new(false);
    let needs_invite = move || app.registration.get() == Some(RegistrationPolicy::Invite);
    let closed = move || app.registration.get() == Some(RegistrationPolicy::Closed);
    view! {
        <main class="min-h-screen flex items-center justify-center bg-gradient-to-br from-indigo-50 via-white to-slate-100 p-4">
            <div class="w-full max-w-md rounded-2xl bg-white p-6 sm:p-8 shadow-xl ring-1 ring-slate-900/5" data-testid="onboarding">
                {logo()}
                <h1 class="text-center text-2xl font-bold text-slate-900">
                    {move || i18n.t_with("welcome-title", &[("node", Arg::Str(&app.node_name.get()))])}
                </h1>
                <p class="mt-2 text-center text-sm text-slate-600">{move || i18n.t("welcome-privacy")}</p>
                <form class="mt-6 space-y-4" on:submit=submit>
                    <div>
                        <label for="onboard-name" class=LABEL>{move || i18n.t("your-name")}</label>
                        <input id="onboard-name" data-testid="onboard-name" class=INPUT required maxlength="64" autocomplete="nickname"
                            placeholder=move || i18n.t("your-name-placeholder")
                            prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                    </div>
                    <Show when=needs_invite>
                        <div>
                            <label for="onboard-link" class=LABEL>{move || i18n.t("invite-link")}</label>
                            <input id="onboard-link" data-testid="onboard-link" class=INPUT placeholder="https://…/join#…"
                                prop:value=move || link.get() on:input=move |ev| link.set(event_target_value(&ev))/>
                            <p class="mt-1 text-xs text-slate-500">{move || i18n.t("invite-needed")}</p>
                        </div>
                    </Show>
                    <Show when=closed>
                        <p class="text-sm text-amber-700">{move || i18n.t("err-registration-closed")}</p>
                    </Show>
                    <Show when=move || error.get().is_some()>
                        <p class="text-sm text-rose-700" role="alert" data-testid="onboard-error">{move || error.get()}</p>
                    </Show>
                    <button type="submit" data-testid="onboard-submit" class=format!("{BTN_PRIMARY} w-full")
                        disabled=move || busy.get() || name.get().trim().is_empty()>
                        {move || if busy.get() { i18n.t("creating-account") } else { i18n.t("create-account") }}
                    </button>
                </form>
                <div class="mt-6 border-t border-slate-100 pt-4">
                    <button type="button" class="text-sm font-medium text-indigo-600 hover:text-indigo-500" data-testid="show-restore"
                        aria-expanded=move || restoring.get().to_string() on:click=move |_| restoring.update(|r| *r = !*r)>
                        {move || i18n.t("restore-from-file")}
                    </button>
                    <Show when=move || restoring.get()>
                        <div class="mt-3"><crate::views::recovery::ImportRecovery/></div>
                    </Show>
                </div>
                <div class="mt-6 flex justify-center"><LanguageSelect/></div>
                <TrustNote/>
            </div>
        </main>
    }
}

/// `/join#i=…&s=…&g=…`: what the link leads to, onboarding if needed, then joining.
#[component]
pub fn JoinPage(fragment: String) -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let link = format!("{}/join#{}", page_origin(), fragment);
    let parsed = InviteLink::parse(&link).ok();
    let for_chat = parsed.as_ref().is_some_and(|l| l.group.is_some());
    let preview = RwSignal::new(None::<Result<InvitePreview, String>>);
    let name = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    {
        let handle = handle.clone();
        let link = link.clone();
        if parsed.is_none() {
            preview.set(Some(Err("@err-invite-invalid".into())));
        } else {
            // Wait until the device task runs (this tab may be waiting for the lock).
            Effect::new(move |done: Option<bool>| {
                if done == Some(true) || matches!(app.phase.get(), Phase::Loading | Phase::OtherTab) {
                    return done.unwrap_or(false);
                }
                let handle = handle.clone();
                let link = link.clone();
                leptos::task::spawn_local(async move {
                    let result = handle.ask(|reply| Cmd::Preview { link, reply }).await;
                    preview.set(Some(result));
                });
                true
            });
        }
    }
    let join = {
        let link = link.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let handle = handle.clone();
            let link = link.clone();
            busy.set(true);
            error.set(None);
            let registered = app.phase.get_untracked() == Phase::Ready;
            let name = name.get_untracked();
            leptos::task::spawn_local(async move {
                let result = if registered {
                    match handle.ask(|reply| Cmd::Join { link, reply }).await {
                        Ok(group) => {
                            navigate(app.route, Route::Chat(group));
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    register_and_join(handle, app, name, Some(link)).await
                };
                if let Err(e) = result {
                    error.set(Some(i18n.error(&e)));
                }
                busy.set(false);
            });
        }
    };
    let registered = move || app.phase.get() == Phase::Ready;
    view! {
        <main class="min-h-screen flex items-center justify-center bg-gradient-to-br from-indigo-50 via-white to-slate-100 p-4">
            <div class="w-full max-w-md rounded-2xl bg-white p-6 sm:p-8 shadow-xl ring-1 ring-slate-900/5" data-testid="join-page">
                {logo()}
                {move || match preview.get() {
                    None => view! { <div class="flex justify-center py-6"><Spinner/></div> }.into_any(),
                    Some(Err(e)) => view! {
                        <div class="text-center" role="alert">
                            <h1 class="text-xl font-bold text-slate-900">{move || i18n.t("link-unusable")}</h1>
                            <p class="mt-2 text-sm text-rose-700" data-testid="join-error">{i18n.error(&e)}</p>
                            <button class=format!("{BTN_SECONDARY} mt-6") on:click=move |_| navigate(app.route, Route::Chats)>
                                {move || i18n.t("go-to-chats")}
                            </button>
                        </div>
                    }.into_any(),
                    Some(Ok(p)) if p.meeting.is_some() => {
                        let m = p.meeting.clone().map(|m| *m);
                        let title = m.as_ref().map(|m| m.settings.title.clone()).unwrap_or_default();
                        let when = m.as_ref().map(|m| format!("{} · {}",
                            veche_ui_core::format::date_time(m.start_ms, crate::views::chat_list::tz_offset_min()),
                            i18n.t_with("minutes", &[("count", Arg::Num(i64::from(m.settings.duration_mins)))])))
                            .unwrap_or_default();
                        let description = m.map(|m| m.settings.description).unwrap_or_default();
                        view! {
                            <div class="text-center" data-testid="join-meeting">
                                <p class="text-sm text-slate-500">{move || i18n.t("join-invited-meeting")}</p>
                                <h1 class="mt-1 text-2xl font-bold text-slate-900" data-testid="join-title">{title}</h1>
                                <p class="mt-1 text-sm text-slate-600" data-testid="join-meeting-when">{when}</p>
                                <p class="mt-3 whitespace-pre-line text-sm text-slate-600">{description}</p>
                                <Show when=move || !registered()>
                                    <p class="mt-3 rounded-lg bg-indigo-50 px-3 py-2 text-xs text-indigo-900" data-testid="guest-note">
                                        {move || i18n.t("guest-note")}
                                    </p>
                                </Show>
                            </div>
                        }.into_any()
                    }
                    Some(Ok(p)) => {
                        let title = if for_chat { p.name.clone() } else { p.node_name.clone() };
                        let count = i64::from(p.member_count);
                        view! {
                            <div class="text-center">
                                <p class="text-sm text-slate-500">
                                    {move || if for_chat { i18n.t("join-invited-chat") } else { i18n.t("join-invited-node") }}
                                </p>
                                <h1 class="mt-1 text-2xl font-bold text-slate-900" data-testid="join-title">{title}</h1>
                                <Show when=move || for_chat>
                                    <p class="mt-1 text-sm text-slate-600">{move || i18n.t_with("members-count", &[("count", Arg::Num(count))])}</p>
                                </Show>
                                <p class="mt-3 text-sm text-slate-600">{p.description.clone()}</p>
                            </div>
                        }.into_any()
                    }
                }}
                <Show when=move || matches!(preview.get(), Some(Ok(_)))>
                    <form class="mt-6 space-y-4" on:submit=join.clone()>
                        <Show when=move || !registered()>
                            <div>
                                <label for="join-name" class=LABEL>{move || i18n.t("your-name")}</label>
                                <input id="join-name" data-testid="join-name" class=INPUT required maxlength="64" autocomplete="nickname"
                                    placeholder=move || i18n.t("your-name-placeholder")
                                    prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                            </div>
                        </Show>
                        <Show when=move || error.get().is_some()>
                            <p class="text-sm text-rose-700" role="alert" data-testid="join-error">{move || error.get()}</p>
                        </Show>
                        <Show when=move || for_chat || !registered()
                            fallback=move || view! {
                                <p class="text-center text-sm text-slate-600">{move || i18n.t("already-member-node")}</p>
                                <button type="button" class=format!("{BTN_SECONDARY} w-full") on:click=move |_| navigate(app.route, Route::Chats)>
                                    {move || i18n.t("go-to-chats")}
                                </button>
                            }>
                            <button type="submit" data-testid="join-submit" class=format!("{BTN_PRIMARY} w-full")
                                disabled=move || busy.get() || (!registered() && name.get().trim().is_empty())>
                                {move || if busy.get() { i18n.t("joining") }
                                    else if preview.with(|p| matches!(p, Some(Ok(p)) if p.meeting.is_some())) { i18n.t("join-meeting-as-guest") }
                                    else if for_chat { i18n.t("join-chat") } else { i18n.t("create-account") }}
                            </button>
                        </Show>
                    </form>
                </Show>
                <div class="mt-6 flex justify-center"><LanguageSelect/></div>
                <TrustNote/>
            </div>
        </main>
    }
}
