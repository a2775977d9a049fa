//! Paths of the app: `/`, `/chat/<id>`, `/join#<link>`, `/settings`. The node serves the app for
//! each of them, so reloads and deep links land on the right screen.

use leptos::prelude::*;
use wasm_bindgen::prelude::*;

use crate::state::Route;

pub fn parse(path: &str, hash: &str) -> Route {
    let path = path.trim_end_matches('/');
    if let Some(id) = path.strip_prefix("/chat/")
        && let Ok(group) = id.parse()
    {
        return Route::Chat(group);
    }
    match path {
        "/join" => Route::Join(hash.trim_start_matches('#').to_string()),
        "/settings" => Route::Settings,
        _ => Route::Chats,
    }
}

pub fn path_of(route: &Route) -> String {
    match route {
        Route::Chats => "/".into(),
        Route::Chat(group) => format!("/chat/{}", group.to_hex()),
        Route::Join(fragment) => format!("/join#{fragment}"),
        Route::Settings => "/settings".into(),
    }
}

pub fn current() -> Route {
    let location = web_sys::window().map(|w| w.location());
    let path = location.as_ref().and_then(|l| l.pathname().ok()).unwrap_or_default();
    let hash = location.as_ref().and_then(|l| l.hash().ok()).unwrap_or_default();
    parse(&path, &hash)
}

/// Goes to `route`, adding a history entry.
pub fn navigate(signal: RwSignal<Route>, route: Route) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.push_state_with_url(&JsValue::NULL, "", Some(&path_of(&route)));
    }
    signal.set(route);
}

/// Follows the browser's back and forward buttons.
pub fn listen(signal: RwSignal<Route>) {
    let on_pop = Closure::<dyn FnMut()>::new(move || signal.set(current()));
    if let Some(window) = web_sys::window() {
        window.set_onpopstate(Some(on_pop.as_ref().unchecked_ref()));
    }
    on_pop.forget();
}
