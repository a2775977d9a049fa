//! The plaintext inside an MLS application message.
//!
//! Encoding: postcard of [`Envelope`], whose first field is the content version as a varint. A
//! client decodes the version first and refuses any version it does not know with
//! [`ContentError::UnsupportedVersion`], so an old client shows "update to read this" instead of
//! garbage. New content kinds (replies, reactions, attachments, system events) are added as new
//! [`Body`] variants under a new version.

use serde::{Deserialize, Serialize};

use crate::whiteboard::{BoardError, Item, MAX_ITEMS, Shape};

/// Content version this build writes for the newest kinds, and the newest it reads. Version 1
/// has only [`Body::Text`], which is still written as version 1 so older clients read it;
/// version 2 adds [`Body::Call`] and [`Body::Whiteboard`].
pub const CONTENT_VERSION: u16 = 2;
/// The oldest content version this build reads.
pub const OLDEST_CONTENT_VERSION: u16 = 1;

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
    #[error("whiteboard: {0}")]
    Board(#[from] BoardError),
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Plain text.
    Text { text: String },
    /// What happened to a call in a direct chat (written by the caller's device).
    Call(CallRecord),
    /// A call's whiteboard as it was when the call ended, oldest item first.
    Whiteboard { items: Vec<Item> },
}

/// How a 1:1 call went, for the chat's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallRecord {
    /// Nobody answered: no answer in time, the callee was busy, or the caller gave up.
    Missed,
    /// The callee declined.
    Declined,
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

    /// A call record.
    pub fn call(record: CallRecord, sent_at_ms: u64) -> Self {
        AppMessage { sent_at_ms, body: Body::Call(record) }
    }

    /// A saved whiteboard, made to fit in one message: if the items are too large together,
    /// strokes lose every other point (their ends stay) until they fit, and if that is not
    /// enough the oldest items are left out. Fails on an empty board or an invalid item.
    pub fn whiteboard(items: Vec<Item>, sent_at_ms: u64) -> Result<Self, ContentError> {
        if items.is_empty() {
            return Err(ContentError::EmptyText);
        }
        for item in &items {
            item.validate()?;
        }
        let mut message = AppMessage { sent_at_ms, body: Body::Whiteboard { items } };
        for _ in 0..12 {
            if message.encode().is_ok() {
                return Ok(message);
            }
            let Body::Whiteboard { items } = &mut message.body else { unreachable!() };
            for item in items.iter_mut() {
                if let Shape::Stroke { points } = &mut item.shape
                    && points.len() > 2
                {
                    let last = points[points.len() - 1];
                    let mut i = 0;
                    points.retain(|_| {
                        i += 1;
                        i % 2 == 1
                    });
                    if points.last() != Some(&last) {
                        points.push(last);
                    }
                }
            }
        }
        loop {
            if message.encode().is_ok() {
                return Ok(message);
            }
            let Body::Whiteboard { items } = &mut message.body else { unreachable!() };
            let drop = items.len().div_ceil(10);
            items.drain(..drop);
            if items.is_empty() {
                return Err(ContentError::TooLarge { max: crate::MAX_CONTENT_BYTES });
            }
        }
    }

    /// The version this message is written as: the oldest that has its kind.
    fn version(&self) -> u16 {
        match self.body {
            Body::Text { .. } => OLDEST_CONTENT_VERSION,
            Body::Call(_) | Body::Whiteboard { .. } => CONTENT_VERSION,
        }
    }

    /// Encodes with the oldest version that has its kind. Fails if the result exceeds
    /// [`crate::MAX_CONTENT_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, ContentError> {
        let bytes = postcard::to_stdvec(&Envelope { version: self.version(), message: self })
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
        if !(OLDEST_CONTENT_VERSION..=CONTENT_VERSION).contains(&version) {
            return Err(ContentError::UnsupportedVersion(version));
        }
        let (message, trailing) =
            postcard::take_from_bytes::<AppMessage>(rest).map_err(|e| ContentError::Malformed(e.to_string()))?;
        if !trailing.is_empty() {
            return Err(ContentError::Malformed(format!("{} trailing bytes", trailing.len())));
        }
        if message.version() > version {
            return Err(ContentError::Malformed(format!("a version {version} message of a newer kind")));
        }
        match &message.body {
            Body::Text { text } if text.chars().count() > MAX_TEXT_CHARS => return Err(ContentError::TextTooLong),
            Body::Whiteboard { items } => {
                if items.len() > MAX_ITEMS {
                    return Err(BoardError::Full.into());
                }
                for item in items {
                    item.validate()?;
                }
            }
            _ => {}
        }
        Ok(message)
    }

    /// The text of a text message.
    pub fn as_text(&self) -> Option<&str> {
        match &self.body {
            Body::Text { text } => Some(text),
            _ => None,
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
        bytes[0] = 3;
        assert_eq!(AppMessage::decode(&bytes), Err(ContentError::UnsupportedVersion(3)));
    }

    #[test]
    fn text_stays_version_1_and_new_kinds_are_version_2() {
        assert_eq!(AppMessage::text("hi", 1).unwrap().encode().unwrap()[0], 1);
        let call = AppMessage::call(CallRecord::Missed, 5);
        let bytes = call.encode().unwrap();
        assert_eq!(bytes[0], 2);
        assert_eq!(AppMessage::decode(&bytes), Ok(call));
        // A call record that claims version 1 is not one.
        let mut old = bytes.clone();
        old[0] = 1;
        assert!(matches!(AppMessage::decode(&old), Err(ContentError::Malformed(_))));
    }

    fn stroke(id: u64, n: usize) -> Item {
        let points = (0..n).map(|i| [(i * 7 % 10_000) as u16, (i * 13 % 10_000) as u16]).collect();
        Item { id, color: 0xff0000, width: 20, shape: Shape::Stroke { points } }
    }

    #[test]
    fn a_whiteboard_round_trips_and_is_simplified_to_fit() {
        let small = AppMessage::whiteboard(vec![stroke(1, 50), stroke(2, 3)], 9).unwrap();
        assert_eq!(small.body, Body::Whiteboard { items: vec![stroke(1, 50), stroke(2, 3)] });
        assert_eq!(AppMessage::decode(&small.encode().unwrap()), Ok(small));

        // 20 strokes of 2,000 points: about 160 KB before simplifying.
        let big: Vec<Item> = (0..20).map(|i| stroke(i, 2_000)).collect();
        let fitted = AppMessage::whiteboard(big.clone(), 9).unwrap();
        assert!(fitted.encode().unwrap().len() <= crate::MAX_CONTENT_BYTES);
        let Body::Whiteboard { items } = &fitted.body else { panic!() };
        assert_eq!(items.len(), 20, "simplifying strokes was enough");
        for (item, original) in items.iter().zip(&big) {
            let (Shape::Stroke { points: p }, Shape::Stroke { points: o }) = (&item.shape, &original.shape) else {
                panic!()
            };
            assert!(p.len() < o.len() / 2);
            assert_eq!((p.first(), p.last()), (o.first(), o.last()), "the ends stay");
        }

        assert_eq!(AppMessage::whiteboard(vec![], 1), Err(ContentError::EmptyText));
        let mut outside = stroke(1, 2);
        outside.shape = Shape::Stroke { points: vec![[10_001, 0]] };
        assert_eq!(AppMessage::whiteboard(vec![outside.clone()], 1), Err(BoardError::OutOfBoard.into()));
        // Nor is one accepted from another device.
        let forged = postcard::to_stdvec(&Envelope {
            version: 2,
            message: AppMessage { sent_at_ms: 1, body: Body::Whiteboard { items: vec![outside] } },
        })
        .unwrap();
        assert_eq!(AppMessage::decode(&forged), Err(BoardError::OutOfBoard.into()));
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
