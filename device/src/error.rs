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

/// Why an operation of the device failed: the failures any operation may meet (the connection,
/// the node's refusal, MLS, storage), or the operation's own ([`SignInError`],
/// [`RegisterError`], [`JoinError`], [`SendError`], [`CreateGroupError`], [`DirectChatError`]).
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
    #[error("unknown chat")]
    UnknownChat,
    #[error("you are no longer a member of this chat")]
    NotMember,
    /// This device cannot follow the chat and its last attempt to rejoin it failed; it tries
    /// again after a pause (see `RESYNC_BACKOFF_FIRST_MS`).
    #[error("this device fell behind in this chat and is rejoining it; try again shortly")]
    Resyncing,
    /// The MLS layer refused or failed.
    #[error("encryption: {0}")]
    Mls(String),
    /// The driver could not write to storage; nothing of the operation was kept.
    #[error("storage: {0}")]
    Storage(String),
    #[error(transparent)]
    SignIn(#[from] SignInError),
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error(transparent)]
    Send(#[from] SendError),
    #[error(transparent)]
    CreateGroup(#[from] CreateGroupError),
    #[error(transparent)]
    DirectChat(#[from] DirectChatError),
}

/// Signing in after a connection opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    #[error("the node at this address now has id {now}, not {known}: refusing to sign in")]
    NodeChanged { known: String, now: String },
}

/// [`crate::Command::Register`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("this device already has an account")]
    HasAccount,
    #[error("the display name is not valid: {0}")]
    BadName(String),
}

/// [`crate::Command::Join`] and [`crate::Command::Preview`]: the link itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("not a valid invite link")]
    InviteInvalid,
    #[error("this link invites to the node, not to a chat")]
    NodeLink,
}

/// [`crate::Command::Send`]: the message itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the message is too long")]
    TooLong,
    #[error("the message is empty")]
    Empty,
}

/// [`crate::Command::CreateGroup`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateGroupError {
    #[error("a group needs a name")]
    NoName,
}

/// [`crate::Command::DirectChat`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectChatError {
    #[error("that is you")]
    ThatIsYou,
    #[error("the direct chat with this member was opened on another device")]
    OpenedElsewhere,
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
            DeviceError::UnknownChat => "err-not-found",
            DeviceError::NotMember => "err-forbidden",
            DeviceError::Resyncing => "err-resyncing",
            DeviceError::Mls(_) => "err-mls",
            DeviceError::Storage(_) => "err-storage",
            DeviceError::SignIn(SignInError::NodeChanged { .. }) => "err-node-changed",
            DeviceError::Register(RegisterError::HasAccount) => "err-has-account",
            DeviceError::Register(RegisterError::BadName(_)) => "err-bad-name",
            DeviceError::Join(JoinError::InviteInvalid) => "err-invite-invalid",
            DeviceError::Join(JoinError::NodeLink) => "err-node-link",
            DeviceError::Send(SendError::TooLong) => "err-too-long",
            DeviceError::Send(SendError::Empty) => "err-empty-message",
            DeviceError::CreateGroup(CreateGroupError::NoName) => "err-group-name",
            DeviceError::DirectChat(DirectChatError::ThatIsYou) => "err-that-is-you",
            DeviceError::DirectChat(DirectChatError::OpenedElsewhere) => "err-dm-elsewhere",
        }
    }

    /// The detail shown after the translated message, if any.
    pub fn detail(&self) -> Option<String> {
        match self {
            DeviceError::Refused(e) if refusal_key(e.code).is_none() => Some(e.message.clone()),
            DeviceError::SignIn(SignInError::NodeChanged { now, .. }) => Some(now.clone()),
            DeviceError::Register(RegisterError::BadName(d)) | DeviceError::Mls(d) | DeviceError::Storage(d) => {
                Some(d.clone())
            }
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
        ErrorCode::QuotaExceeded => "err-quota",
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
