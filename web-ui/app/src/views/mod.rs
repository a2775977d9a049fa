//! The screens.

mod call;
mod chat;
mod chat_list;
mod dialogs;
mod meeting;
mod nodes;
mod onboarding;
mod prejoin;
mod recovery;
pub mod ring;
mod settings;
mod whiteboard;

use leptos::prelude::*;

use crate::components::{Spinner, Toasts};
use crate::i18n::use_i18n;
use crate::state::{AppState, Phase, Route};

pub use onboarding::{JoinPage, Onboarding};

/// The root: picks the screen by phase and route.
#[component]
pub fn App() -> impl IntoView {
    let app = expect_context::<AppState>();
    let i18n = use_i18n();
    let screen = move || {
        match (app.phase.get(), app.route.get()) {
        (Phase::Loading, _) => view! {
            <div class="min-h-screen flex items-center justify-center" data-testid="loading"><Spinner/></div>
        }
        .into_any(),
        (Phase::OtherTab, _) => view! {
            <div data-testid="other-tab" class="min-h-screen flex items-center justify-center p-6 text-center text-slate-700">
                <p class="max-w-sm">{move || i18n.t("other-tab")}</p>
            </div>
        }
        .into_any(),
        (Phase::Failed(reason), _) => view! {
            <div class="min-h-screen flex flex-col items-center justify-center gap-2 p-6 text-center" role="alert">
                <p class="font-semibold text-rose-700">{move || i18n.t("store-failed")}</p>
                <p class="text-sm text-slate-600">{reason}</p>
            </div>
        }
        .into_any(),
        (_, Route::Join(fragment)) => view! { <JoinPage fragment=fragment/> }.into_any(),
        (Phase::Welcome, _) => view! { <Onboarding/> }.into_any(),
        (Phase::Ready, _) => view! { <chat_list::Shell/> }.into_any(),
    }
    };
    view! {
        {screen}
        <Toasts/>
    }
}

thread_local! {
    static GLOBALS: std::cell::OnceCell<(AppState, crate::i18n::I18n)> = const { std::cell::OnceCell::new() };
}

/// Makes the state reachable from async tasks, which run outside the reactive owner tree.
pub fn set_globals(app: AppState, i18n: crate::i18n::I18n) {
    GLOBALS.with(|g| {
        let _ = g.set((app, i18n));
    });
}

/// Runs an async device request from a view (or from another such task), showing failures as a
/// toast.
pub fn spawn_ui<F>(future: F)
where
    F: std::future::Future<Output = Result<(), String>> + 'static,
{
    let Some((app, i18n)) = GLOBALS.with(|g| g.get().copied()) else { return };
    leptos::task::spawn_local(async move {
        if let Err(e) = future.await {
            app.toast(i18n.error(&e), true);
        }
    });
}
