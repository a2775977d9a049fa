//! The plaintext inside an MLS application message.
//!
//! Encoding: postcard of [`Envelope`], whose first field is the content version as a varint. A
//! client decodes the version first and refuses any version it does not know with
//! [`ContentError::UnsupportedVersion`], so an old client shows "update to read this" instead of
//! garbage. New content kinds (replies, reactions, attachments, system events) are added as new
//! [`Body`] variants under a new version.

use serde::{Deserialize, Serialize};

/// Content version this build writes and the newest it reads.
pub const CONTENT_VERSION: u16 = 1;

/// Longest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 8000;

/// Errors decoding or building content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("message content version {0} is not one this client understands (it reads version {CONTENT_VERSION})")]
    UnsupportedVersion(u16),
    #[error("message content is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("text is longer than {MAX_TEXT_CHARS} characters")]
    TextTooLong,
    #[error("text is empty")]
    EmptyText,
    #[error("malformed message content: {0}")]
    Malformed(String),
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Plain text.
    Text { text: String },
}

/// A message's plaintext as it is encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppMessage {
    /// Sender's clock when the message was written, in milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
    pub body: Body,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    version: u16,
    message: T,
}

impl AppMessage {
    /// A text message, validated.
    pub fn text(text: &str, sent_at_ms: u64) -> Result<Self, ContentError> {
        if text.trim().is_empty() {
            return Err(ContentError::EmptyText);
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(ContentError::TextTooLong);
        }
        Ok(AppMessage { sent_at_ms, body: Body::Text { text: text.to_string() } })
    }

    /// Encodes with the current version. Fails if the result exceeds [`crate::MAX_CONTENT_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, ContentError> {
        let bytes = postcard::to_stdvec(&Envelope { version: CONTENT_VERSION, message: self })
            .map_err(|e| ContentError::Malformed(e.to_string()))?;
        if bytes.len() > crate::MAX_CONTENT_BYTES {
            return Err(ContentError::TooLarge { max: crate::MAX_CONTENT_BYTES });
        }
        Ok(bytes)
    }

    /// Decodes, refusing oversized input, unknown versions and unknown kinds.
    pub fn decode(bytes: &[u8]) -> Result<Self, ContentError> {
        if bytes.len() > crate::MAX_CONTENT_BYTES {
            return Err(ContentError::TooLarge { max: crate::MAX_CONTENT_BYTES });
        }
        let (version, rest) =
            postcard::take_from_bytes::<u16>(bytes).map_err(|e| ContentError::Malformed(e.to_string()))?;
        if version != CONTENT_VERSION {
            return Err(ContentError::UnsupportedVersion(version));
        }
        let (message, trailing) =
            postcard::take_from_bytes::<AppMessage>(rest).map_err(|e| ContentError::Malformed(e.to_string()))?;
        if !trailing.is_empty() {
            return Err(ContentError::Malformed(format!("{} trailing bytes", trailing.len())));
        }
        if let Body::Text { text } = &message.body
            && text.chars().count() > MAX_TEXT_CHARS
        {
            return Err(ContentError::TextTooLong);
        }
        Ok(message)
    }

    /// The text of a text message.
    pub fn as_text(&self) -> Option<&str> {
        match &self.body {
            Body::Text { text } => Some(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = AppMessage::text("привет", 42).unwrap();
        assert_eq!(AppMessage::decode(&m.encode().unwrap()).unwrap(), m);
    }

    #[test]
    fn newer_version_is_refused_cleanly() {
        let mut bytes = AppMessage::text("hi", 1).unwrap().encode().unwrap();
        bytes[0] = 2;
        assert_eq!(AppMessage::decode(&bytes), Err(ContentError::UnsupportedVersion(2)));
    }

    #[test]
    fn unknown_kind_and_garbage_are_malformed() {
        // version 1, sent_at 0, body variant 9
        assert!(matches!(AppMessage::decode(&[1, 0, 9]), Err(ContentError::Malformed(_))));
        assert!(matches!(AppMessage::decode(&[]), Err(ContentError::Malformed(_))));
    }

    #[test]
    fn limits() {
        assert_eq!(AppMessage::text(" ", 0), Err(ContentError::EmptyText));
        assert_eq!(AppMessage::text(&"x".repeat(MAX_TEXT_CHARS + 1), 0), Err(ContentError::TextTooLong));
        assert!(AppMessage::decode(&vec![1; crate::MAX_CONTENT_BYTES + 1]).is_err());
    }
}
