//! The browser's media: calls and what travels on a call's data channel. `js/call.js` owns the
//! WebRTC side (the peer connection, the local tracks, the tiles); this module binds it and
//! keeps the app's call state.
//!
//! - [`call`]: the page's side, used by the views: the pre-join preview, the devices, joining
//!   from a view (through the device's `Cmd::JoinCall`), microphone, camera and screen share,
//!   the peer connection's statistics.
//! - [`signaling`]: the device task's side: join, the node's offers and updates, ringing, leave
//!   and end, the records of 1:1 calls. The device task ([`crate::device`]) hands it the views'
//!   call commands and the core's call events (`DeviceEvent::Call`), and tells it when the
//!   connection is lost; it reaches the device task only through [`signaling::Driver`] (requests
//!   to the node, messages into a chat's outbox, whether a chat is direct).
//! - [`whiteboard`]: the board and reactions on the data channel.
//! - [`tiles`]: the height of each remote video, told to the node on the data channel.

pub mod call;
pub mod signaling;
pub mod tiles;
pub mod whiteboard;
