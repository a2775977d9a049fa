//! What nodes say to each other over libp2p (no IO here).
//!
//! Linking: a link between two nodes exists once both admins approved it. Each side asks the
//! other with [`LinkMessage::Request`] when its admin approves. On a LAN, nodes that share a
//! community secret link without their admins: the request carries `proof`, and the receiver
//! either verifies it and answers [`LinkReply::Linked`] (both sides approved at once) or refuses;
//! a request with a proof never counts as an admin's approval.

use serde::{Deserialize, Serialize};

/// libp2p request-response protocol of [`LinkMessage`] / [`LinkReply`].
pub const LINK_PROTOCOL: &str = "/veche/link/1";
/// Largest link message either side accepts, in bytes.
pub const MAX_LINK_MESSAGE_BYTES: usize = 4 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkMessage {
    /// "My admin approved a link with you" (no proof), or "we share a community secret" (proof:
    /// HMAC-SHA256 keyed by the secret over both peer ids, see the node's federation service).
    Request { name: String, http_port: u16, proof: Option<Vec<u8>> },
    /// "My admin removed the link."
    Unlink,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkReply {
    /// Both sides approved: the link is up.
    Linked,
    /// Recorded; this side's admin has not approved yet.
    Pending,
    /// Unlinked (answer to [`LinkMessage::Unlink`]).
    Unlinked,
    /// Refused, with a reason for the other admin.
    Refused(String),
}
