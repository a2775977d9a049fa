//! The whiteboard of a call: what is drawn on it, the rules every drawing follows, and the board
//! itself as one plain data structure that the node's room, the devices and the saved copy in
//! the meeting chat all share (spec/calls.md §7).
//!
//! Coordinates are board units, `0..=BOARD_UNITS` on both axes, whatever the size of the screen
//! a member draws on; a device scales them to its canvas (the board is drawn 16:9).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::call::ParticipantId;

/// Both axes of the board run from 0 to this.
pub const BOARD_UNITS: u16 = 10_000;
/// Most points in one freehand stroke.
pub const MAX_STROKE_POINTS: usize = 2_000;
/// Longest text on the board, in characters.
pub const MAX_BOARD_TEXT_CHARS: usize = 280;
/// Most items on one board.
pub const MAX_ITEMS: usize = 2_000;
/// Most points on one board, all strokes together.
pub const MAX_BOARD_POINTS: usize = 200_000;
/// Widest line, in board units.
pub const MAX_WIDTH: u16 = 400;
/// Largest text, in board units.
pub const MAX_TEXT_SIZE: u16 = 2_000;

/// A point on the board: `[x, y]` in board units.
pub type Point = [u16; 2];

/// What an item draws.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Freehand: the points in the order they were drawn.
    Stroke {
        points: Vec<Point>,
    },
    Line {
        from: Point,
        to: Point,
    },
    /// A rectangle between two corners.
    Rect {
        from: Point,
        to: Point,
    },
    /// An ellipse inside the rectangle between two corners.
    Ellipse {
        from: Point,
        to: Point,
    },
    /// Text whose baseline starts at `at`, `size` board units tall.
    Text {
        at: Point,
        text: String,
        size: u16,
    },
}

/// One thing drawn on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Chosen by the device that draws it, unique among its own items.
    pub id: u64,
    /// `0xRRGGBB`.
    pub color: u32,
    /// Line width in board units (ignored for text).
    pub width: u16,
    pub shape: Shape,
}

/// Why an item or a board is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    #[error("a point lies outside the board (0..={BOARD_UNITS})")]
    OutOfBoard,
    #[error("a stroke has from 1 to {MAX_STROKE_POINTS} points")]
    StrokePoints,
    #[error("text on the board has from 1 to {MAX_BOARD_TEXT_CHARS} characters")]
    Text,
    #[error("line width is from 1 to {MAX_WIDTH}, text size from 1 to {MAX_TEXT_SIZE}")]
    Size,
    #[error("colour is 0xRRGGBB")]
    Color,
    #[error("the board is full ({MAX_ITEMS} items or {MAX_BOARD_POINTS} points)")]
    Full,
    #[error("this item is already on the board")]
    Duplicate,
}

impl Item {
    /// Checks the item against the board's rules.
    pub fn validate(&self) -> Result<(), BoardError> {
        if self.color > 0xFF_FFFF {
            return Err(BoardError::Color);
        }
        let inside = |p: &Point| p[0] <= BOARD_UNITS && p[1] <= BOARD_UNITS;
        match &self.shape {
            Shape::Stroke { points } => {
                if points.is_empty() || points.len() > MAX_STROKE_POINTS {
                    return Err(BoardError::StrokePoints);
                }
                if !points.iter().all(inside) {
                    return Err(BoardError::OutOfBoard);
                }
            }
            Shape::Line { from, to } | Shape::Rect { from, to } | Shape::Ellipse { from, to } => {
                if !inside(from) || !inside(to) {
                    return Err(BoardError::OutOfBoard);
                }
            }
            Shape::Text { at, text, size } => {
                if !inside(at) {
                    return Err(BoardError::OutOfBoard);
                }
                let chars = text.chars().count();
                if text.trim().is_empty() || chars > MAX_BOARD_TEXT_CHARS {
                    return Err(BoardError::Text);
                }
                if *size == 0 || *size > MAX_TEXT_SIZE {
                    return Err(BoardError::Size);
                }
                return Ok(());
            }
        }
        if self.width == 0 || self.width > MAX_WIDTH {
            return Err(BoardError::Size);
        }
        Ok(())
    }

    /// Points it counts against [`MAX_BOARD_POINTS`].
    pub fn point_count(&self) -> usize {
        match &self.shape {
            Shape::Stroke { points } => points.len(),
            Shape::Text { .. } => 1,
            _ => 2,
        }
    }
}

/// Who drew an item and which of theirs it is: its key on the board.
pub type ItemKey = (ParticipantId, u64);

/// The board: every item on it, in drawing order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Board {
    items: BTreeMap<u64, (ItemKey, Item)>,
    order: BTreeMap<ItemKey, u64>,
    next: u64,
    points: usize,
}

impl Board {
    /// Puts an item on the board (drawn by `by`), after checking it.
    pub fn draw(&mut self, by: ParticipantId, item: Item) -> Result<(), BoardError> {
        item.validate()?;
        let key = (by, item.id);
        if self.order.contains_key(&key) {
            return Err(BoardError::Duplicate);
        }
        if self.items.len() >= MAX_ITEMS || self.points + item.point_count() > MAX_BOARD_POINTS {
            return Err(BoardError::Full);
        }
        self.points += item.point_count();
        self.order.insert(key, self.next);
        self.items.insert(self.next, (key, item));
        self.next += 1;
        Ok(())
    }

    /// Takes an item off the board; whether it was there.
    pub fn erase(&mut self, key: ItemKey) -> bool {
        let Some(at) = self.order.remove(&key) else { return false };
        if let Some((_, item)) = self.items.remove(&at) {
            self.points -= item.point_count();
        }
        true
    }

    pub fn clear(&mut self) {
        *self = Board { next: self.next, ..Board::default() };
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Every item, oldest first, with who drew it.
    pub fn items(&self) -> impl Iterator<Item = (ParticipantId, &Item)> {
        self.items.values().map(|((by, _), item)| (*by, item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: u64) -> Item {
        Item { id, color: 0x00_80_ff, width: 10, shape: Shape::Line { from: [0, 0], to: [BOARD_UNITS, BOARD_UNITS] } }
    }

    #[test]
    fn items_are_checked() {
        assert_eq!(line(1).validate(), Ok(()));
        let mut bad = line(1);
        bad.shape = Shape::Rect { from: [0, 0], to: [BOARD_UNITS + 1, 5] };
        assert_eq!(bad.validate(), Err(BoardError::OutOfBoard));
        bad.shape = Shape::Stroke { points: vec![] };
        assert_eq!(bad.validate(), Err(BoardError::StrokePoints));
        bad.shape = Shape::Stroke { points: vec![[1, 1]; MAX_STROKE_POINTS + 1] };
        assert_eq!(bad.validate(), Err(BoardError::StrokePoints));
        bad.shape = Shape::Text { at: [5, 5], text: "  ".into(), size: 100 };
        assert_eq!(bad.validate(), Err(BoardError::Text));
        bad.shape = Shape::Text { at: [5, 5], text: "я".repeat(MAX_BOARD_TEXT_CHARS), size: 100 };
        assert_eq!(bad.validate(), Ok(()), "characters, not bytes");
        bad.shape = Shape::Text { at: [5, 5], text: "hi".into(), size: 0 };
        assert_eq!(bad.validate(), Err(BoardError::Size));
        let mut wide = line(1);
        wide.width = MAX_WIDTH + 1;
        assert_eq!(wide.validate(), Err(BoardError::Size));
        wide.width = 1;
        wide.color = 0x1_00_00_00;
        assert_eq!(wide.validate(), Err(BoardError::Color));
    }

    #[test]
    fn the_board_keeps_order_refuses_duplicates_and_stays_bounded() {
        let mut board = Board::default();
        board.draw(1, line(1)).unwrap();
        board.draw(2, line(1)).unwrap(); // another participant's item 1
        board.draw(1, line(2)).unwrap();
        assert_eq!(board.draw(1, line(1)), Err(BoardError::Duplicate));
        let order: Vec<_> = board.items().map(|(by, i)| (by, i.id)).collect();
        assert_eq!(order, vec![(1, 1), (2, 1), (1, 2)]);
        assert!(board.erase((2, 1)));
        assert!(!board.erase((2, 1)));
        assert_eq!(board.len(), 2);
        board.clear();
        assert!(board.is_empty());
        board.draw(1, line(1)).unwrap();

        let mut full = Board::default();
        for id in 0..MAX_ITEMS as u64 {
            full.draw(1, line(id)).unwrap();
        }
        assert_eq!(full.draw(1, line(u64::MAX)), Err(BoardError::Full));
        full.erase((1, 0));
        full.draw(1, line(u64::MAX)).unwrap();

        let mut points = Board::default();
        let stroke = |id| Item { shape: Shape::Stroke { points: vec![[1, 1]; MAX_STROKE_POINTS] }, ..line(id) };
        for id in 0..(MAX_BOARD_POINTS / MAX_STROKE_POINTS) as u64 {
            points.draw(1, stroke(id)).unwrap();
        }
        assert_eq!(points.draw(1, line(1_000)), Err(BoardError::Full));
    }
}
