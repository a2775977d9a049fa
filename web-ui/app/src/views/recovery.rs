//! Export and import of the device as a passphrase-sealed recovery file.

use leptos::prelude::*;
use veche_ui_core::recovery::MIN_PASSPHRASE_CHARS;
use wasm_bindgen::JsCast;

use crate::components::{BTN_PRIMARY, BTN_SECONDARY, INPUT, LABEL};
use crate::device::{Cmd, DeviceHandle};
use crate::i18n::use_i18n;
use crate::state::AppState;

/// Offers `bytes` to the browser as a downloaded file of type `mime`.
pub(super) fn download(bytes: &[u8], filename: &str, mime: &str) -> Result<(), String> {
    let array = js_sys::Array::new();
    array.push(&js_sys::Uint8Array::from(bytes));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&array, &options).map_err(|_| "blob")?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|_| "url")?;
    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement = document.create_element("a").map_err(|_| "a")?.unchecked_into();
    a.set_href(&url);
    a.set_download(filename);
    a.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

async fn read_file(input: &web_sys::HtmlInputElement) -> Result<Vec<u8>, String> {
    let file = input.files().and_then(|f| f.get(0)).ok_or("@err-pick-file")?;
    let buffer = wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await.map_err(|_| "@err-pick-file")?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

#[component]
pub fn ExportRecovery() -> impl IntoView {
    let app = expect_context::<AppState>();
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let pass = RwSignal::new(String::new());
    let again = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let ok = move || pass.get().chars().count() >= MIN_PASSPHRASE_CHARS && pass.get() == again.get();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let handle = handle.clone();
        let passphrase = pass.get_untracked();
        busy.set(true);
        leptos::task::spawn_local(async move {
            match handle.ask(|reply| Cmd::Export { passphrase, reply }).await.and_then(|file| {
                let name = app.me.with_untracked(|m| m.as_ref().map(|m| m.name.clone())).unwrap_or_default();
                download(
                    &file,
                    &format!("veche-{}.recovery", name.replace(|c: char| !c.is_alphanumeric(), "-")),
                    "application/octet-stream",
                )
            }) {
                Ok(()) => {
                    app.toast(i18n.t("recovery-saved"), false);
                    pass.set(String::new());
                    again.set(String::new());
                }
                Err(e) => app.toast(i18n.error(&e), true),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="space-y-3" on:submit=submit data-testid="export-form">
            <h2 class="font-semibold text-slate-900">{move || i18n.t("recovery-file")}</h2>
            <p class="text-sm text-slate-600">{move || i18n.t("recovery-export-hint")}</p>
            <div>
                <label for="export-pass" class=LABEL>{move || i18n.t("passphrase")}</label>
                <input id="export-pass" type="password" autocomplete="new-password" data-testid="export-passphrase" class=INPUT
                    prop:value=move || pass.get() on:input=move |ev| pass.set(event_target_value(&ev))/>
            </div>
            <div>
                <label for="export-pass-again" class=LABEL>{move || i18n.t("passphrase-again")}</label>
                <input id="export-pass-again" type="password" autocomplete="new-password" data-testid="export-passphrase-again" class=INPUT
                    prop:value=move || again.get() on:input=move |ev| again.set(event_target_value(&ev))/>
            </div>
            <button type="submit" class=BTN_SECONDARY data-testid="export-submit" disabled=move || busy.get() || !ok()>
                {move || i18n.t("download-recovery")}
            </button>
        </form>
    }
}

#[component]
pub fn ImportRecovery() -> impl IntoView {
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let input = NodeRef::<leptos::html::Input>::new();
    let pass = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let handle = handle.clone();
        let passphrase = pass.get_untracked();
        let Some(el) = input.get_untracked() else { return };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            let result = match read_file(&el).await {
                Ok(file) => handle.ask(|reply| Cmd::Import { file, passphrase, reply }).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                error.set(Some(i18n.error(&e)));
            }
            busy.set(false);
        });
    };
    view! {
        <form class="space-y-3" on:submit=submit data-testid="import-form">
            <p class="text-sm text-slate-600">{move || i18n.t("recovery-import-hint")}</p>
            <div>
                <label for="import-file" class=LABEL>{move || i18n.t("recovery-file")}</label>
                <input id="import-file" type="file" node_ref=input data-testid="import-file" class="block w-full text-sm text-slate-700"/>
            </div>
            <div>
                <label for="import-pass" class=LABEL>{move || i18n.t("passphrase")}</label>
                <input id="import-pass" type="password" autocomplete="current-password" data-testid="import-passphrase" class=INPUT
                    prop:value=move || pass.get() on:input=move |ev| pass.set(event_target_value(&ev))/>
            </div>
            <Show when=move || error.get().is_some()>
                <p class="text-sm text-rose-700" role="alert" data-testid="import-error">{move || error.get()}</p>
            </Show>
            <button type="submit" class=format!("{BTN_PRIMARY} w-full") data-testid="import-submit" disabled=move || busy.get() || pass.get().is_empty()>
                {move || i18n.t("restore")}
            </button>
        </form>
    }
}
