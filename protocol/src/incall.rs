//! What a device and the node say on a call's data channel (spec/calls.md §7): the whiteboard
//! and reactions, the in-call signals that need neither the chat nor the WebSocket.
//!
//! The device opens one reliable, ordered data channel labelled [`CHANNEL_LABEL`] on its peer
//! connection with the node's media port before its first offer. Every message on it is one JSON
//! text message: [`ToNode`] from the device, [`FromNode`] from the node. The node sends the board
//! as it is ([`FromNode::Board`], in parts) as soon as the channel opens, then every change.

use serde::{Deserialize, Serialize};

use crate::call::{CallMedia, ParticipantId};
use crate::whiteboard::Item;

/// The label of the data channel the node answers.
pub const CHANNEL_LABEL: &str = "veche";
/// Largest message either side sends on the channel, in bytes.
pub const MAX_INCALL_BYTES: usize = 64 * 1024;
/// The reactions a participant may send.
pub const REACTIONS: [&str; 6] = ["👍", "👏", "❤️", "😂", "😮", "🎉"];

/// From a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToNode {
    /// Puts an item on the board.
    Draw { item: Item },
    /// Takes an item off the board: the one `by` drew with this id.
    Erase { by: ParticipantId, id: u64 },
    /// Empties the board (the organizer and moderators).
    Clear,
    /// Shows a reaction (one of [`REACTIONS`]) to everyone.
    React { reaction: String },
    /// How tall this device shows a video track it receives, in device pixels (0: not shown, for
    /// example on another page of the grid: then nothing of it is sent). The node sends a
    /// smaller simulcast layer to a small tile. Nothing is answered.
    View { track: u32, height: u16 },
    /// This device turned its microphone, camera or screen share on or off. A screen share that
    /// stops is unpublished (everyone's screen-share view closes) and published again when it
    /// starts again on the same stream. Turning on what a moderator turned off is refused
    /// ([`FromNode::Refused`]) until they ask; then everyone is told it is back (`Unmuted`).
    Media { media: CallMedia, on: bool },
}

/// An item on the board and who drew it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub by: ParticipantId,
    pub item: Item,
}

/// From the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromNode {
    /// The board as it is, oldest item first, in as many parts as it takes: the device replaces
    /// what it had with the first part and appends the others; `done` marks the last.
    Board {
        items: Vec<Placed>,
        first: bool,
        done: bool,
    },
    Drawn {
        by: ParticipantId,
        item: Item,
    },
    Erased {
        by: ParticipantId,
        id: u64,
        who: ParticipantId,
    },
    Cleared {
        by: ParticipantId,
    },
    Reacted {
        by: ParticipantId,
        reaction: String,
    },
    /// What this device sent was not taken, and why.
    Refused {
        reason: String,
    },
}

/// Why a message on the channel could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InCallError {
    #[error("an in-call message is larger than {MAX_INCALL_BYTES} bytes")]
    TooLarge,
    #[error("malformed in-call message: {0}")]
    Malformed(String),
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, InCallError> {
    if bytes.len() > MAX_INCALL_BYTES {
        return Err(InCallError::TooLarge);
    }
    serde_json::from_slice(bytes).map_err(|e| InCallError::Malformed(e.to_string()))
}

impl ToNode {
    pub fn decode(bytes: &[u8]) -> Result<Self, InCallError> {
        decode(bytes)
    }

    pub fn encode(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl FromNode {
    pub fn decode(bytes: &[u8]) -> Result<Self, InCallError> {
        decode(bytes)
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The board as [`FromNode::Board`] messages, each under [`MAX_INCALL_BYTES`] (one item is
    /// at most about 30 KB encoded): at least one, even for an empty board.
    pub fn board_parts<'a>(items: impl IntoIterator<Item = (ParticipantId, &'a Item)>) -> Vec<FromNode> {
        const PART_BYTES: usize = MAX_INCALL_BYTES / 2;
        let mut parts = Vec::new();
        let mut current = Vec::new();
        let mut size = 0;
        for (by, item) in items {
            let placed = Placed { by, item: item.clone() };
            let len = serde_json::to_string(&placed).map(|s| s.len()).unwrap_or(0) + 1;
            if size + len > PART_BYTES && !current.is_empty() {
                parts.push(std::mem::take(&mut current));
                size = 0;
            }
            size += len;
            current.push(placed);
        }
        parts.push(current);
        let last = parts.len() - 1;
        parts
            .into_iter()
            .enumerate()
            .map(|(i, items)| FromNode::Board { items, first: i == 0, done: i == last })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whiteboard::{BOARD_UNITS, MAX_STROKE_POINTS, Shape};

    fn stroke(id: u64, n: usize) -> Item {
        let points = (0..n).map(|i| [(i % 10_000) as u16, BOARD_UNITS]).collect();
        Item { id, color: 0x11_22_33, width: 30, shape: Shape::Stroke { points } }
    }

    #[test]
    fn messages_are_tagged_json() {
        let m = ToNode::Draw { item: stroke(7, 2) };
        let text = m.encode();
        assert!(text.starts_with(r#"{"t":"draw","item":{"id":7"#), "{text}");
        assert!(text.contains(r#""shape":{"stroke":{"points":[[0,10000],[1,10000]]}}"#), "{text}");
        assert_eq!(ToNode::decode(text.as_bytes()), Ok(m));
        assert_eq!(ToNode::decode(br#"{"t":"clear"}"#), Ok(ToNode::Clear));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(ToNode::decode(b"{"), Err(InCallError::Malformed(_))));
        assert!(matches!(ToNode::decode(br#"{"t":"explode"}"#), Err(InCallError::Malformed(_))));
        assert!(matches!(ToNode::decode(br#"{"t":"erase","by":-1,"id":1}"#), Err(InCallError::Malformed(_))));
        assert_eq!(ToNode::decode(&vec![b' '; MAX_INCALL_BYTES + 1]), Err(InCallError::TooLarge));
    }

    #[test]
    fn the_largest_item_fits_in_one_message_and_boards_are_split_under_the_limit() {
        let big = stroke(1, MAX_STROKE_POINTS);
        let one = ToNode::Draw { item: big.clone() }.encode();
        assert!(one.len() < MAX_INCALL_BYTES, "{} bytes", one.len());

        let items: Vec<Item> = (0..20).map(|i| stroke(i, MAX_STROKE_POINTS)).collect();
        let parts = FromNode::board_parts(items.iter().map(|i| (3, i)));
        assert!(parts.len() > 1);
        let mut back = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            assert!(part.encode().len() < MAX_INCALL_BYTES);
            let FromNode::Board { items, first, done } = part else { panic!("{part:?}") };
            assert_eq!((*first, *done), (i == 0, i == parts.len() - 1));
            back.extend(items.iter().map(|p| p.item.clone()));
        }
        assert_eq!(back, items);

        let empty = FromNode::board_parts(std::iter::empty());
        assert_eq!(empty, vec![FromNode::Board { items: vec![], first: true, done: true }]);
    }
}
