//! Pure logic of the web UI: translations, formatting, the chat-list model, the sealed recovery
//! file, the whiteboard's geometry, and the call: its state and the reducer of the node's updates,
//! its video grid pages and connection quality.
//!
//! Nothing here touches browser APIs, so it is unit-tested natively; `web-ui/app` renders it.

pub mod board;
pub mod call;
pub mod format;
pub mod grid;
pub mod i18n;
pub mod model;
pub mod quality;
pub mod recovery;
