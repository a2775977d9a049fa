//! Identifiers. All are fixed-size byte strings shown as lowercase hex.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A hex id failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: expected {len} hex characters")]
pub struct ParseIdError {
    what: &'static str,
    len: usize,
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Builds the id from a byte slice of exactly [`Self::LEN`] bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; $len]>::try_from(bytes).ok().map(Self)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &hex::encode(self.0)[..8.min($len * 2)])
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = ParseIdError { what: $what, len: $len * 2 };
                let bytes = hex::decode(s.trim()).map_err(|_| err.clone())?;
                Self::from_slice(&bytes).ok_or(err)
            }
        }
    };
}

hex_id!(
    /// An account: a member as others see them. Today the ed25519 public key of the account's first
    /// device; later devices are certified by it.
    AccountId, 32, "member id"
);
hex_id!(
    /// A device: the ed25519 public key it signs with (sign-in challenges and its MLS leaf).
    DeviceId, 32, "device id"
);
hex_id!(
    /// A chat (an MLS group). Random, chosen by the creating device.
    GroupId, 16, "chat id"
);
hex_id!(
    /// An invite link's public id. The secret that goes with it is never stored by the node.
    InviteId, 8, "invite id"
);

/// Kind of chat. Direct chats have exactly two members and one per pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatKind {
    Group,
    Direct,
}

/// A member's role in a group. Owners and admins manage members and invite links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    /// Whether this role may add and remove members and manage invite links.
    pub fn can_manage_members(self) -> bool {
        matches!(self, Role::Admin | Role::Owner)
    }

    /// Lowercase name used in CLI output and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            other => Err(format!("unknown role {other:?} (member, admin, owner)")),
        }
    }
}

/// How long the home node keeps a group's ciphertext log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Retention {
    /// Keep every message.
    Forever,
    /// Drop messages older than this many days.
    Days(u32),
    /// Drop a message once every member device has acknowledged it.
    UntilFetched,
}

impl FromStr for Retention {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "forever" => Ok(Retention::Forever),
            "until-fetched" => Ok(Retention::UntilFetched),
            days => days
                .strip_suffix('d')
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n > 0)
                .map(Retention::Days)
                .ok_or_else(|| format!("invalid retention {s:?}: use forever, until-fetched or <N>d")),
        }
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::Forever => f.write_str("forever"),
            Retention::Days(n) => write!(f, "{n}d"),
            Retention::UntilFetched => f.write_str("until-fetched"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_hex() {
        let g = GroupId([7; 16]);
        assert_eq!(g.to_string().parse::<GroupId>().unwrap(), g);
        assert!("zz".parse::<GroupId>().is_err());
        assert!("0011".parse::<AccountId>().is_err());
    }

    #[test]
    fn retention_parses() {
        assert_eq!("7d".parse::<Retention>().unwrap(), Retention::Days(7));
        assert_eq!("forever".parse::<Retention>().unwrap(), Retention::Forever);
        assert!("0d".parse::<Retention>().is_err());
        assert!("soon".parse::<Retention>().is_err());
    }
}
