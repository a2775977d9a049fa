//! Our small component set: buttons, inputs, dialogs, avatars, badges, toasts.

use leptos::prelude::*;
use veche_ui_core::format::{avatar_hue, initials};

use crate::state::AppState;

pub const BTN_PRIMARY: &str = "inline-flex items-center justify-center gap-2 rounded-lg bg-indigo-600 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-indigo-500 disabled:opacity-50 disabled:cursor-not-allowed focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-600";
pub const BTN_SECONDARY: &str = "inline-flex items-center justify-center gap-2 rounded-lg bg-white px-4 py-2 text-sm font-semibold text-slate-800 ring-1 ring-inset ring-slate-300 hover:bg-slate-50 disabled:opacity-50 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-600";
pub const BTN_DANGER: &str = "inline-flex items-center justify-center gap-2 rounded-lg bg-rose-600 px-4 py-2 text-sm font-semibold text-white hover:bg-rose-500 disabled:opacity-50 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-rose-600";
pub const BTN_GHOST: &str = "inline-flex items-center justify-center rounded-lg p-2 text-slate-600 hover:bg-slate-100 hover:text-slate-900 focus-visible:outline focus-visible:outline-2 focus-visible:outline-indigo-600";
pub const INPUT: &str = "block w-full rounded-lg border-0 px-3 py-2 text-slate-900 ring-1 ring-inset ring-slate-300 placeholder:text-slate-400 focus:ring-2 focus:ring-inset focus:ring-indigo-600 text-base sm:text-sm";
pub const LABEL: &str = "block text-sm font-medium text-slate-700 mb-1";

/// A round avatar with initials on a colour derived from the id.
#[component]
pub fn Avatar(
    #[prop(into)] name: Signal<String>,
    seed: Vec<u8>,
    #[prop(default = "h-10 w-10 text-sm")] size: &'static str,
) -> impl IntoView {
    let hue = avatar_hue(&seed);
    let style = format!("background-color: hsl({hue} 55% 45%)");
    view! {
        <div
            class=format!("{size} shrink-0 rounded-full flex items-center justify-center font-semibold text-white select-none")
            style=style
            aria-hidden="true"
        >
            {move || initials(&name.get())}
        </div>
    }
}

/// A modal dialog with a title and a close button; closes on Escape.
#[component]
pub fn Dialog(
    #[prop(into)] title: Signal<String>,
    on_close: Callback<()>,
    #[prop(optional)] testid: &'static str,
    children: Children,
) -> impl IntoView {
    let i18n = crate::i18n::use_i18n();
    // Focus moves into the dialog when it opens, so Escape and Tab work from there.
    let panel = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        if let Some(el) = panel.get() {
            let _ = el.focus();
        }
    });
    view! {
        <div
            class="fixed inset-0 z-40 flex items-end sm:items-center justify-center bg-slate-900/40 p-0 sm:p-4"
            on:click=move |_| on_close.run(())
            on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Escape" { on_close.run(()) }
        >
            <div
                role="dialog"
                aria-modal="true"
                tabindex="-1"
                node_ref=panel
                aria-label=move || title.get()
                data-testid=testid
                class="w-full sm:max-w-lg max-h-[92vh] overflow-y-auto rounded-t-2xl sm:rounded-2xl bg-white p-5 shadow-xl focus:outline-none"
                on:click=|ev| ev.stop_propagation()
            >
                <div class="mb-4 flex items-center justify-between gap-4">
                    <h2 class="text-lg font-semibold text-slate-900">{move || title.get()}</h2>
                    <button class=BTN_GHOST aria-label=move || i18n.t("close") on:click=move |_| on_close.run(())>
                        <svg class="h-5 w-5" viewBox="0 0 20 20" fill="currentColor" aria-hidden="true"><path d="M6.28 5.22a.75.75 0 0 0-1.06 1.06L8.94 10l-3.72 3.72a.75.75 0 1 0 1.06 1.06L10 11.06l3.72 3.72a.75.75 0 1 0 1.06-1.06L11.06 10l3.72-3.72a.75.75 0 0 0-1.06-1.06L10 8.94 6.28 5.22Z"/></svg>
                    </button>
                </div>
                {children()}
            </div>
        </div>
    }
}

/// A small rounded count (unread messages).
#[component]
pub fn Badge(count: u32) -> impl IntoView {
    view! {
        <span data-testid="unread" class="ml-2 inline-flex min-w-5 items-center justify-center rounded-full bg-indigo-600 px-1.5 py-0.5 text-xs font-semibold text-white">
            {count}
        </span>
    }
}

#[component]
pub fn Spinner() -> impl IntoView {
    view! { <div class="h-6 w-6 animate-spin rounded-full border-2 border-slate-300 border-t-indigo-600" role="status"></div> }
}

/// The stack of transient notices, bottom right.
#[component]
pub fn Toasts() -> impl IntoView {
    let app = expect_context::<AppState>();
    let i18n = crate::i18n::use_i18n();
    view! {
        <div class="pointer-events-none fixed bottom-4 right-4 left-4 sm:left-auto z-50 flex flex-col gap-2" aria-live="polite">
            <For each=move || app.toasts.get() key=|t| t.id let:toast>
                <div
                    data-testid="toast"
                    class=if toast.error {
                        "pointer-events-auto rounded-lg bg-rose-600 px-4 py-3 text-sm text-white shadow-lg"
                    } else {
                        "pointer-events-auto rounded-lg bg-slate-900 px-4 py-3 text-sm text-white shadow-lg"
                    }
                >
                    {i18n.error(&toast.text)}
                </div>
            </For>
        </div>
    }
}
