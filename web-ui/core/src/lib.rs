//! Pure logic of the web UI: translations, formatting, the chat-list model, the sealed recovery
//! file, and the whiteboard's geometry.
//!
//! Nothing here touches browser APIs, so it is unit-tested natively; `web-ui/app` renders it.

pub mod board;
pub mod format;
pub mod i18n;
pub mod model;
pub mod recovery;
