//! Veche in the browser: a full MLS member device, served by the node at `/`.

mod components;
mod device;
mod i18n;
mod media;
mod notify;
mod route;
mod state;
mod views;

use leptos::prelude::*;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/store.js")]
extern "C" {
    #[wasm_bindgen(js_name = holdLock)]
    fn hold_lock(name: &str, waiting: &js_sys::Function, acquired: &js_sys::Function);
}

fn main() {
    console_error_panic_hook::set_once();
    let lang = i18n::initial_lang();
    i18n::save_lang(lang);
    let app = state::AppState::new(lang, route::current());
    route::listen(app.route);
    media::whiteboard::listen(app);
    media::tiles::listen();
    let (handle, runner) = device::create(app);
    views::set_globals(app, i18n::I18n { lang: app.lang });
    notify::listen(app, handle.clone());
    // The node's certificate fingerprint, for the links this page makes and for Settings.
    wasm_bindgen_futures::spawn_local(async move {
        device::node_fingerprint(app).await;
    });
    mount_to_body(move || {
        provide_context(app);
        provide_context(handle.clone());
        provide_context(i18n::I18n { lang: app.lang });
        views::App()
    });
    // Only one tab of a browser drives the device (its MLS state); others wait for it to close.
    let waiting = Closure::once_into_js(move || app.phase.set(state::Phase::OtherTab));
    let acquired = Closure::once_into_js(move || {
        app.phase.set(state::Phase::Loading);
        wasm_bindgen_futures::spawn_local(runner);
    });
    hold_lock("veche-device", waiting.unchecked_ref(), acquired.unchecked_ref());
}
