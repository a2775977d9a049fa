//! Typed errors. Every error has a stable [`DeviceError::key`] the browser translates (its Fluent
//! message id) and an English `Display` the native client prints.

use veche_protocol::wire::{ApiError, ErrorCode};

/// Stored data the core cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("the stored value under {key:?} is corrupt: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("the device's MLS state does not open: {0}")]
    Mls(String),
    #[error("stored by a newer version (format {0}); update Veche to open it")]
    NewerFormat(u32),
}

impl LoadError {
    pub fn key(&self) -> &'static str {
        "err-storage"
    }
}

/// Why an operation of the device failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// No connection to the node (or it dropped while waiting for the answer).
    #[error("not connected to the node")]
    Offline,
    /// The node refused the request.
    #[error("the node refused: {}", .0.message)]
    Refused(ApiError),
    /// The node answered with something that does not fit the request.
    #[error("unexpected answer from the node to {0}")]
    Unexpected(&'static str),
    /// The chat's epoch kept moving under this device.
    #[error("the chat kept changing; try again")]
    ChatBusy,
    #[error("this device is not registered yet")]
    NoDevice,
    #[error("this device already has an account")]
    HasAccount,
    #[error("the node at this address now has id {now}, not {known}: refusing to sign in")]
    NodeChanged { known: String, now: String },
    #[error("not a valid invite link")]
    InviteInvalid,
    #[error("this link invites to the node, not to a chat")]
    NodeLink,
    #[error("the display name is not valid: {0}")]
    BadName(String),
    #[error("a group needs a name")]
    GroupName,
    #[error("the message is too long")]
    TooLong,
    #[error("the message is empty")]
    EmptyMessage,
    #[error("that is you")]
    ThatIsYou,
    #[error("the direct chat with this member was opened on another device")]
    DmElsewhere,
    #[error("unknown chat")]
    UnknownChat,
    #[error("you are no longer a member of this chat")]
    NotMember,
    /// The MLS layer refused or failed.
    #[error("encryption: {0}")]
    Mls(String),
    /// The driver could not write to storage; nothing of the operation was kept.
    #[error("storage: {0}")]
    Storage(String),
}

impl DeviceError {
    /// The stable message id of this error (what the browser translates).
    pub fn key(&self) -> &'static str {
        match self {
            DeviceError::Offline => "err-offline",
            DeviceError::Refused(e) => refusal_key(e.code).unwrap_or("err-refused"),
            DeviceError::Unexpected(_) => "err-unexpected",
            DeviceError::ChatBusy => "err-chat-busy",
            DeviceError::NoDevice => "err-no-device",
            DeviceError::HasAccount => "err-has-account",
            DeviceError::NodeChanged { .. } => "err-node-changed",
            DeviceError::InviteInvalid => "err-invite-invalid",
            DeviceError::NodeLink => "err-node-link",
            DeviceError::BadName(_) => "err-bad-name",
            DeviceError::GroupName => "err-group-name",
            DeviceError::TooLong => "err-too-long",
            DeviceError::EmptyMessage => "err-empty-message",
            DeviceError::ThatIsYou => "err-that-is-you",
            DeviceError::DmElsewhere => "err-dm-elsewhere",
            DeviceError::UnknownChat => "err-not-found",
            DeviceError::NotMember => "err-forbidden",
            DeviceError::Mls(_) => "err-mls",
            DeviceError::Storage(_) => "err-storage",
        }
    }

    /// The detail shown after the translated message, if any.
    pub fn detail(&self) -> Option<String> {
        match self {
            DeviceError::Refused(e) if refusal_key(e.code).is_none() => Some(e.message.clone()),
            DeviceError::NodeChanged { now, .. } => Some(now.clone()),
            DeviceError::BadName(d) | DeviceError::Mls(d) | DeviceError::Storage(d) => Some(d.clone()),
            _ => None,
        }
    }

    /// The node's error code, when the node refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            DeviceError::Refused(e) => Some(e.code),
            _ => None,
        }
    }

    pub(crate) fn mls(e: impl std::fmt::Display) -> Self {
        DeviceError::Mls(e.to_string())
    }
}

fn refusal_key(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::InviteRequired => "err-invite-required",
        ErrorCode::RegistrationClosed => "err-registration-closed",
        ErrorCode::InviteInvalid => "err-invite-invalid",
        ErrorCode::InviteExpired => "err-invite-expired",
        ErrorCode::InviteRevoked => "err-invite-revoked",
        ErrorCode::InviteUsedUp => "err-invite-used-up",
        ErrorCode::RateLimited => "err-rate-limited",
        ErrorCode::Forbidden => "err-forbidden",
        ErrorCode::NotFound => "err-not-found",
        ErrorCode::Conflict => "err-conflict",
        ErrorCode::TooLarge => "err-too-long",
        ErrorCode::StaleEpoch { .. } => "err-chat-busy",
        ErrorCode::Internal => "err-node-internal",
        ErrorCode::Unavailable => "err-home-unavailable",
        ErrorCode::Unauthenticated | ErrorCode::BadSignature | ErrorCode::ChallengeUsed => "err-sign-in",
        _ => return None,
    })
}

/// A request's failure: the node's refusal, or no answer (the connection is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    Api(ApiError),
    Transport,
}

impl From<CallError> for DeviceError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Api(e) => DeviceError::Refused(e),
            CallError::Transport => DeviceError::Offline,
        }
    }
}
