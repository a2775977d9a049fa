//! The member's settings: language, who they are on this node.

use leptos::prelude::*;
use veche_ui_core::i18n::Lang;

use crate::components::{Avatar, BTN_GHOST, INPUT, LABEL};
use crate::device::node_fingerprint;
use crate::i18n::{save_lang, use_i18n};
use crate::notify::{self, Permission};
use crate::route::navigate;
use crate::state::{AppState, Route};

#[component]
pub fn LanguageSelect() -> impl IntoView {
    let app = expect_context::<AppState>();
    let i18n = use_i18n();
    view! {
        <label class="inline-flex items-center gap-2 text-sm text-slate-600">
            <span>{move || i18n.t("language")}</span>
            <select data-testid="lang-select" class="rounded-md border-0 py-1 pl-2 pr-7 text-sm ring-1 ring-inset ring-slate-300 focus:ring-2 focus:ring-indigo-600"
                prop:value=move || app.lang.get().code()
                on:change=move |ev| {
                    if let Some(lang) = Lang::from_tag(&event_target_value(&ev)) {
                        save_lang(lang);
                        app.lang.set(lang);
                    }
                }>
                {Lang::ALL.into_iter().map(|l| view! { <option value=l.code()>{l.native_name()}</option> }).collect_view()}
            </select>
        </label>
    }
}

#[component]
pub fn SettingsView() -> impl IntoView {
    let app = expect_context::<AppState>();
    let i18n = use_i18n();
    let me = move || app.me.get();
    view! {
        <header class="flex items-center gap-3 border-b border-slate-200 bg-white px-3 py-2.5">
            <button class=format!("{BTN_GHOST} md:hidden") aria-label=move || i18n.t("back") on:click=move |_| navigate(app.route, Route::Chats)>
                <svg class="h-5 w-5" viewBox="0 0 20 20" fill="currentColor" aria-hidden="true"><path fill-rule="evenodd" d="M12.8 4.2a.75.75 0 0 1 0 1.06L8.06 10l4.74 4.74a.75.75 0 1 1-1.06 1.06l-5.27-5.27a.75.75 0 0 1 0-1.06l5.27-5.27a.75.75 0 0 1 1.06 0Z" clip-rule="evenodd"/></svg>
            </button>
            <h1 class="font-semibold text-slate-900">{move || i18n.t("settings")}</h1>
        </header>
        <div class="flex-1 overflow-y-auto p-4 sm:p-8" data-testid="settings">
            <div class="mx-auto max-w-xl space-y-6">
                {move || me().map(|me| view! {
                    <section class="flex items-center gap-4 rounded-2xl bg-white p-5 shadow-sm ring-1 ring-slate-200">
                        <Avatar name=me.name.clone() seed=me.account.0.to_vec() size="h-14 w-14 text-lg"/>
                        <div class="min-w-0">
                            <p class="text-lg font-semibold text-slate-900" data-testid="my-name">{me.name.clone()}</p>
                            <p class="truncate font-mono text-xs text-slate-500" title=move || i18n.t("account-id")>{me.account.to_hex()}</p>
                            <Show when=move || me.node_admin>
                                <span class="mt-1 inline-block rounded-full bg-amber-100 px-2 py-0.5 text-xs font-semibold text-amber-800" data-testid="admin-badge">
                                    {move || i18n.t("node-admin")}
                                </span>
                            </Show>
                        </div>
                    </section>
                })}
                <section class="rounded-2xl bg-white p-5 shadow-sm ring-1 ring-slate-200">
                    <LanguageSelect/>
                </section>
                <NotificationSettings/>
                <TrustSettings/>
                <section class="rounded-2xl bg-white p-5 shadow-sm ring-1 ring-slate-200">
                    <crate::views::recovery::ExportRecovery/>
                </section>
                <Show when=move || app.me.with(|m| m.as_ref().is_some_and(|m| m.node_admin))>
                    <crate::views::nodes::NodesAdmin/>
                </Show>
                <section class="rounded-2xl bg-white p-5 shadow-sm ring-1 ring-slate-200">
                    <label class=LABEL for="node">{move || i18n.t("node")}</label>
                    <input id="node" class=INPUT readonly prop:value=move || app.node_name.get()/>
                    <p class="mt-2 text-xs text-slate-500">{move || i18n.t("keys-stay-here")}</p>
                </section>
            </div>
        </div>
    }
}

/// Notifications on this device: the switch asks the browser's permission and remembers the
/// choice here; what the browser allows; when they arrive.
#[component]
fn NotificationSettings() -> impl IntoView {
    let i18n = use_i18n();
    let permission = RwSignal::new(notify::permission());
    let on = RwSignal::new(notify::chosen() && permission.get_untracked() == Permission::Granted);
    let toggle = move |ev: leptos::ev::Event| {
        let input = event_target::<web_sys::HtmlInputElement>(&ev);
        if !input.checked() {
            notify::set_chosen(false);
            on.set(false);
            return;
        }
        wasm_bindgen_futures::spawn_local(async move {
            let answer = notify::request().await;
            let granted = answer == Permission::Granted;
            notify::set_chosen(granted);
            permission.set(answer);
            on.set(granted);
            input.set_checked(granted);
        });
    };
    let usable = move || matches!(permission.get(), Permission::Granted | Permission::Default);
    let state = move || {
        i18n.t(match permission.get() {
            Permission::Granted if on.get() => "notify-on",
            Permission::Granted => "notify-allowed",
            Permission::Default => "notify-default",
            Permission::Denied => "notify-blocked",
            Permission::Unsupported => "notify-unsupported",
        })
    };
    view! {
        <section class="rounded-2xl bg-white p-5 shadow-sm ring-1 ring-slate-200" data-testid="notify-settings">
            <h2 class="font-semibold text-slate-900">{move || i18n.t("notifications")}</h2>
            <label class="mt-3 flex items-center justify-between gap-4 text-sm">
                <span class="font-medium text-slate-800">{move || i18n.t("notify-switch")}</span>
                <input type="checkbox" role="switch" data-testid="notify-toggle"
                    class="h-5 w-5 rounded border-slate-300 text-indigo-600 disabled:opacity-50"
                    prop:checked=move || on.get() disabled=move || !usable() on:change=toggle/>
            </label>
            <p class=move || if usable() { "mt-2 text-sm text-slate-600" } else { "mt-2 text-sm text-amber-800" }
                data-testid="notify-state" data-state=move || permission.get().code() data-on=move || on.get().to_string()>
                {state}
            </p>
            <p class="mt-2 text-xs text-slate-500">{move || i18n.t("notify-hint")}</p>
        </section>
    }
}

/// "Secure this device": a link to the node's trust page (how to trust its certificate authority
/// once, on this and other devices) and the fingerprint of that certificate, as phones and
/// certificate viewers show it. Shown when the node has its own CA (none with `--tls off` or a
/// publicly trusted certificate).
#[component]
fn TrustSettings() -> impl IntoView {
    let app = expect_context::<AppState>();
    let i18n = use_i18n();
    if app.tls_fingerprint.get_untracked().is_none() {
        // The node had not answered when the page opened: ask again.
        leptos::task::spawn_local(async move {
            node_fingerprint(app).await;
        });
    }
    let fingerprint = move || app.tls_fingerprint.get().flatten();
    view! {
        <Show when=move || fingerprint().is_some()>
            <section class="rounded-2xl bg-white p-5 shadow-sm ring-1 ring-slate-200" data-testid="trust-settings">
                <h2 class="font-semibold text-slate-900">{move || i18n.t("secure-device")}</h2>
                <p class="mt-2 text-sm text-slate-600">{move || i18n.t("secure-device-hint")}</p>
                <a href="/trust" target="_blank" rel="noopener" data-testid="trust-link"
                    class="mt-3 inline-block text-sm font-medium text-indigo-600 underline hover:text-indigo-500">
                    {move || i18n.t("secure-device-open")}
                </a>
                <p class="mt-4 text-xs font-medium text-slate-700">{move || i18n.t("tls-fingerprint")}</p>
                <p class="mt-1 font-mono text-xs text-slate-600" data-testid="tls-fingerprint">
                    // Lines break only between bytes.
                    {move || fingerprint().map(|f| {
                        let hex = veche_ui_core::format::fingerprint_hex(&f);
                        let bytes: Vec<String> = hex.split(':').map(str::to_string).collect();
                        let last = bytes.len().saturating_sub(1);
                        bytes.into_iter().enumerate()
                            .map(|(i, b)| view! { {b}{(i < last).then(|| view! { ":"<wbr/> })} })
                            .collect_view()
                    })}
                </p>
                <p class="mt-1 text-xs text-slate-500">{move || i18n.t("tls-fingerprint-hint")}</p>
            </section>
        </Show>
    }
}

/// The small print of the onboarding and join pages: a link to the node's trust page, for a
/// member whose browser warned about the node's certificate (when the node has its own CA).
#[component]
pub fn TrustNote() -> impl IntoView {
    let app = expect_context::<AppState>();
    let i18n = use_i18n();
    view! {
        <Show when=move || app.tls_fingerprint.get().flatten().is_some()>
            <p class="mt-4 text-center text-xs text-slate-500">
                <a href="/trust" target="_blank" rel="noopener" data-testid="trust-note"
                    class="underline hover:text-slate-700" title=move || i18n.t("secure-device-hint")>
                    {move || i18n.t("secure-device-small")}
                </a>
            </p>
        </Show>
    }
}
