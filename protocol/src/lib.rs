//! Veche wire types and codecs. No IO lives here: every type is plain data, every codec is a pure
//! function from bytes to a typed value or a typed error. Both the node and member devices (native
//! and wasm32) use this crate, so it must stay free of native-only dependencies.
//!
//! - [`ids`]: account, device, group and invite identifiers.
//! - [`wire`]: the framed request/response/event protocol spoken over the node's WebSocket.
//! - [`content`]: the versioned plaintext that travels inside MLS application messages.
//! - [`link`]: invite links (`https://node/join#i=..&s=..&g=..`).
//! - [`auth`]: the exact bytes a device signs to register and sign in.
//! - [`validate`]: user-facing input rules shared by node and clients.
//! - [`call`]: call signaling; [`meeting`]: meetings, their links and .ics files.
//! - [`whiteboard`]: a call's whiteboard; [`incall`]: the call's data channel messages.
//! - [`federation`]: what nodes say to each other over libp2p.

pub mod auth;
pub mod call;
pub mod content;
pub mod federation;
pub mod ids;
pub mod incall;
pub mod link;
pub mod meeting;
pub mod validate;
pub mod whiteboard;
pub mod wire;

/// Version of the WebSocket protocol in [`wire`]. Bumped on incompatible changes.
pub const PROTOCOL_VERSION: u16 = 3;

/// Largest WebSocket frame the node accepts from a device, in bytes.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;
/// Largest MLS message (application or handshake) the node stores, in bytes.
pub const MAX_MLS_MESSAGE_BYTES: usize = 128 * 1024;
/// Largest encoded [`content::AppMessage`] a client encrypts or accepts, in bytes.
pub const MAX_CONTENT_BYTES: usize = 32 * 1024;
