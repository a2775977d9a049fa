//! The views' access to translations: `i18n.t(<message id>)` follows the language signal.

use std::collections::HashMap;
use std::rc::Rc;

use leptos::prelude::*;
use veche_ui_core::i18n::{Arg, Lang, Translations};

thread_local! {
    static BUNDLES: HashMap<Lang, Rc<Translations>> =
        Lang::ALL.into_iter().map(|l| (l, Rc::new(Translations::new(l)))).collect();
}

#[derive(Clone, Copy)]
pub struct I18n {
    pub lang: RwSignal<Lang>,
}

impl I18n {
    fn bundle(&self) -> Rc<Translations> {
        let lang = self.lang.get();
        BUNDLES.with(|b| b[&lang].clone())
    }

    pub fn t(&self, id: &str) -> String {
        self.bundle().t(id)
    }

    pub fn t_with(&self, id: &str, args: &[(&str, Arg<'_>)]) -> String {
        self.bundle().t_with(id, args)
    }

    /// An error from the device: `@id` or `@id|detail` is translated (the detail, technical and
    /// untranslated, follows in parentheses); anything else is shown as it is.
    pub fn error(&self, message: &str) -> String {
        match message.strip_prefix('@') {
            Some(rest) => match rest.split_once('|') {
                Some((id, detail)) => format!("{} ({detail})", self.bundle().t(id)),
                None => self.bundle().t(rest),
            },
            None => message.to_string(),
        }
    }
}

pub fn use_i18n() -> I18n {
    expect_context::<I18n>()
}

/// The language to start with: the saved choice, else the browser's preference.
pub fn initial_lang() -> Lang {
    let window = web_sys::window();
    let saved = window
        .as_ref()
        .and_then(|w| w.local_storage().ok().flatten())
        .and_then(|s| s.get_item("veche-lang").ok().flatten())
        .and_then(|code| Lang::from_tag(&code));
    saved.unwrap_or_else(|| {
        let languages: Vec<String> = window
            .map(|w| w.navigator().languages().iter().filter_map(|v| v.as_string()).collect())
            .unwrap_or_default();
        Lang::from_preferences(languages.iter().map(String::as_str))
    })
}

pub fn save_lang(lang: Lang) {
    if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = storage.set_item("veche-lang", lang.code());
    }
    if let Some(html) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
        let _ = html.set_attribute("lang", lang.code());
    }
}
