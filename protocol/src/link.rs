//! Invite links.
//!
//! `<node url>/join#i=<invite id>&s=<secret>[&g=<chat id>][&f=<fingerprint>]`. The part after `#`
//! never reaches a web server, so the secret is not logged by proxies; the node stores only a hash
//! of it. A link without `g` is a node invite (the one-time admin link is one). `f` is the SHA-256
//! of the node's TLS trust anchor (its own CA certificate), base64url: a client that has it trusts
//! that node's certificates and no other.

use crate::ids::{GroupId, InviteId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Length of an invite secret in bytes.
pub const SECRET_LEN: usize = 32;

/// A parsed invite link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteLink {
    /// Base URL of the node that issued it, e.g. `http://192.168.1.5:7800`.
    pub node_url: String,
    pub invite: InviteId,
    pub secret: [u8; SECRET_LEN],
    /// The chat it admits to, if it is a chat invite.
    pub group: Option<GroupId>,
    /// SHA-256 of the node's TLS trust anchor, when the link carries it.
    pub fingerprint: Option<[u8; 32]>,
}

/// An invite link could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("not an invite link: expected <node url>/join#i=..&s=..")]
    NotALink,
    #[error("invite link is missing its {0} part")]
    Missing(&'static str),
    #[error("invite link has an invalid {0} part")]
    Invalid(&'static str),
}

impl InviteLink {
    /// Renders the link.
    pub fn to_url(&self) -> String {
        let mut url = format!(
            "{}/join#i={}&s={}",
            self.node_url.trim_end_matches('/'),
            self.invite,
            URL_SAFE_NO_PAD.encode(self.secret)
        );
        if let Some(group) = self.group {
            url.push_str(&format!("&g={group}"));
        }
        if let Some(fp) = self.fingerprint {
            url.push_str(&format!("&f={}", URL_SAFE_NO_PAD.encode(fp)));
        }
        url
    }

    /// Parses a link as rendered by [`Self::to_url`].
    pub fn parse(link: &str) -> Result<Self, LinkError> {
        let (base, fragment) = link.trim().split_once("/join#").ok_or(LinkError::NotALink)?;
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(LinkError::NotALink);
        }
        let (mut invite, mut secret, mut group, mut fingerprint) = (None, None, None, None);
        for pair in fragment.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "i" => invite = Some(value.parse::<InviteId>().map_err(|_| LinkError::Invalid("invite id"))?),
                "s" => {
                    let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| LinkError::Invalid("secret"))?;
                    secret = Some(<[u8; SECRET_LEN]>::try_from(bytes).map_err(|_| LinkError::Invalid("secret"))?);
                }
                "g" => group = Some(value.parse::<GroupId>().map_err(|_| LinkError::Invalid("chat id"))?),
                "f" => fingerprint = Some(parse_fingerprint(value).ok_or(LinkError::Invalid("fingerprint"))?),
                _ => {}
            }
        }
        Ok(InviteLink {
            node_url: base.to_string(),
            invite: invite.ok_or(LinkError::Missing("invite id"))?,
            secret: secret.ok_or(LinkError::Missing("secret"))?,
            group,
            fingerprint,
        })
    }
}

/// A fingerprint as links carry it (base64url of 32 bytes).
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    URL_SAFE_NO_PAD.decode(text.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok())
}

/// What the node stores in place of a secret.
pub fn secret_hash(secret: &[u8; SECRET_LEN]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"veche/invite-secret/v1");
    hasher.update(secret);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let link = InviteLink {
            node_url: "http://10.0.0.5:7800".into(),
            invite: InviteId([1, 2, 3, 4, 5, 6, 7, 8]),
            secret: [0xab; 32],
            group: Some(GroupId([3; 16])),
            fingerprint: Some([7; 32]),
        };
        assert_eq!(InviteLink::parse(&link.to_url()).unwrap(), link);
        let node_invite = InviteLink { group: None, ..link };
        assert_eq!(InviteLink::parse(&node_invite.to_url()).unwrap(), node_invite);
        let bare = InviteLink { fingerprint: None, ..node_invite };
        assert_eq!(InviteLink::parse(&bare.to_url()).unwrap(), bare);
    }

    #[test]
    fn bad_links() {
        assert_eq!(InviteLink::parse("hello"), Err(LinkError::NotALink));
        assert_eq!(InviteLink::parse("http://x/join#s=AA"), Err(LinkError::Invalid("secret")));
        assert_eq!(InviteLink::parse("http://x/join#i=0102030405060708"), Err(LinkError::Missing("secret")));
        assert_eq!(
            InviteLink::parse("https://x/join#i=0102030405060708&s=AA&f=short"),
            Err(LinkError::Invalid("secret"))
        );
        let good_secret = URL_SAFE_NO_PAD.encode([1u8; 32]);
        assert_eq!(
            InviteLink::parse(&format!("https://x/join#i=0102030405060708&s={good_secret}&f=short")),
            Err(LinkError::Invalid("fingerprint"))
        );
    }
}
