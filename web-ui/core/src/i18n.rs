//! Translations with Fluent: one `.ftl` file per language, embedded in the binary.
//!
//! Views never hold user-facing strings; they ask [`Translations::t`] for a message id. Fluent
//! handles Russian plural forms (`1 участник`, `3 участника`, `5 участников`).

use fluent_bundle::{FluentArgs, FluentBundle, FluentResource, FluentValue};
use unic_langid::{LanguageIdentifier, langid};

pub const EN_FTL: &str = include_str!("../locales/en.ftl");
pub const RU_FTL: &str = include_str!("../locales/ru.ftl");

/// A UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Ru,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ru];

    /// The BCP 47 code (`en`, `ru`), as stored in preferences and set on `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
        }
    }

    /// The language's own name, for the switcher.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Ru => "Русский",
        }
    }

    /// The best language for a browser's preference list (`navigator.languages`): the first
    /// one we have, English when none matches.
    pub fn from_preferences<'a>(tags: impl IntoIterator<Item = &'a str>) -> Lang {
        tags.into_iter().find_map(Lang::from_tag).unwrap_or(Lang::En)
    }

    /// `ru`, `ru-RU`, `RU` → Russian; `en*` → English; anything else: none.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        match primary.as_str() {
            "ru" => Some(Lang::Ru),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    fn source(self) -> &'static str {
        match self {
            Lang::En => EN_FTL,
            Lang::Ru => RU_FTL,
        }
    }

    fn langid(self) -> LanguageIdentifier {
        match self {
            Lang::En => langid!("en"),
            Lang::Ru => langid!("ru"),
        }
    }
}

/// An argument of a message.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Str(&'a str),
    Num(i64),
}

/// The messages of one language.
pub struct Translations {
    lang: Lang,
    bundle: FluentBundle<FluentResource>,
}

impl std::fmt::Debug for Translations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translations").field("lang", &self.lang).finish()
    }
}

impl Translations {
    pub fn new(lang: Lang) -> Self {
        // The files are ours and checked by tests; a syntax error still yields the valid part.
        let resource = match FluentResource::try_new(lang.source().to_string()) {
            Ok(resource) => resource,
            Err((resource, _errors)) => resource,
        };
        let mut bundle = FluentBundle::new(vec![lang.langid()]);
        // No Unicode isolation marks around arguments: names are shown as typed.
        bundle.set_use_isolating(false);
        let _ = bundle.add_resource(resource);
        Translations { lang, bundle }
    }

    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The message `id`, or the id itself when it is missing (tests keep that from happening).
    pub fn t(&self, id: &str) -> String {
        self.t_with(id, &[])
    }

    /// The message `id` with arguments (`{ $name }`, `{ $count }` in the `.ftl` file).
    pub fn t_with(&self, id: &str, args: &[(&str, Arg<'_>)]) -> String {
        let Some(pattern) = self.bundle.get_message(id).and_then(|m| m.value()) else {
            return id.to_string();
        };
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            match value {
                Arg::Str(s) => fluent_args.set(*name, FluentValue::from(*s)),
                Arg::Num(n) => fluent_args.set(*name, FluentValue::from(*n)),
            }
        }
        let mut errors = Vec::new();
        self.bundle.format_pattern(pattern, Some(&fluent_args), &mut errors).into_owned()
    }

    /// Whether the language has message `id`.
    pub fn has(&self, id: &str) -> bool {
        self.bundle.has_message(id)
    }
}

/// The message ids defined in a `.ftl` source (top-level messages, not terms).
pub fn message_ids(source: &str) -> Vec<String> {
    source
        .lines()
        .filter(|line| line.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
        .filter_map(|line| line.split_once('=').map(|(id, _)| id.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn both_files_parse_cleanly() {
        for lang in Lang::ALL {
            if let Err((_, errors)) = FluentResource::try_new(lang.source().to_string()) {
                panic!("{lang:?} .ftl has errors: {errors:?}");
            }
        }
    }

    #[test]
    fn both_languages_have_the_same_messages() {
        let en: BTreeSet<String> = message_ids(EN_FTL).into_iter().collect();
        let ru: BTreeSet<String> = message_ids(RU_FTL).into_iter().collect();
        assert!(en.len() > 50, "expected the whole UI's messages, found {}", en.len());
        let only_en: Vec<_> = en.difference(&ru).collect();
        let only_ru: Vec<_> = ru.difference(&en).collect();
        assert!(only_en.is_empty() && only_ru.is_empty(), "missing in ru: {only_en:?}; missing in en: {only_ru:?}");
    }

    /// Every id the app's views ask for (`.t("…")`, `.t_with("…"`, `"@err-…"` and the id families
    /// picked in match arms) exists in both languages.
    #[test]
    fn every_id_used_by_the_app_exists() {
        let app = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../app/src");
        let mut used = BTreeSet::new();
        let mut stack = vec![app];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for marker in [".t(\"", ".t_with(\"", "\"@", "=> \"", "{ \""] {
                        for (i, _) in text.match_indices(marker) {
                            let rest = &text[i + marker.len()..];
                            let Some(end) = rest.find('"') else { continue };
                            // `"@id|{detail}"`: the id ends at the `|`.
                            let id = rest[..end].split('|').next().unwrap_or("");
                            let plain = id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                            // Match arms and `if` branches hold ids too, but also other strings: only
                            // the hyphenated ones of the id families count there.
                            let family =
                                ["err-", "link-", "role-", "delivery-", "retention-", "expires-", "no-", "sys-"]
                                    .iter()
                                    .any(|p| id.starts_with(p));
                            if plain && (marker.starts_with(".t") || family) {
                                used.insert(id.to_string());
                            }
                        }
                    }
                }
            }
        }
        assert!(used.len() > 30, "the scan found too few ids ({}): is the pattern still right?", used.len());
        for lang in Lang::ALL {
            let tr = Translations::new(lang);
            let missing: Vec<_> = used.iter().filter(|id| !tr.has(id)).collect();
            assert!(missing.is_empty(), "{lang:?} lacks {missing:?}");
        }
    }

    #[test]
    fn russian_plurals() {
        let ru = Translations::new(Lang::Ru);
        let count = |n| ru.t_with("members-count", &[("count", Arg::Num(n))]);
        assert_eq!(count(1), "1 участник");
        assert_eq!(count(3), "3 участника");
        assert_eq!(count(5), "5 участников");
        assert_eq!(count(21), "21 участник");
        let en = Translations::new(Lang::En);
        assert_eq!(en.t_with("members-count", &[("count", Arg::Num(1))]), "1 member");
        assert_eq!(en.t_with("members-count", &[("count", Arg::Num(2))]), "2 members");
    }

    #[test]
    fn arguments_are_inserted_without_isolation_marks() {
        let en = Translations::new(Lang::En);
        let text = en.t_with("welcome-title", &[("node", Arg::Str("Library club"))]);
        assert!(text.contains("Library club") && !text.contains('\u{2068}'), "{text:?}");
    }

    #[test]
    fn language_from_browser_preferences() {
        assert_eq!(Lang::from_preferences(["ru-RU", "en-US"]), Lang::Ru);
        assert_eq!(Lang::from_preferences(["de-DE", "en-GB"]), Lang::En);
        assert_eq!(Lang::from_preferences(["de-DE"]), Lang::En);
        assert_eq!(Lang::from_preferences(["RU"]), Lang::Ru);
        assert_eq!(Lang::from_preferences([]), Lang::En);
    }

    #[test]
    fn a_missing_id_shows_itself() {
        assert_eq!(Translations::new(Lang::En).t("no-such-message"), "no-such-message");
    }
}
