//! Pure logic of the web UI: translations, formatting, and the chat-list model.
//!
//! Nothing here touches browser APIs, so it is unit-tested natively; `web-ui/app` renders it.

pub mod format;
pub mod i18n;
pub mod model;
