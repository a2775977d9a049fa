//! The whiteboard's geometry. The board runs from 0 to [`UNITS`] on both axes and is shown 16:9,
//! so one unit across is wider than one unit down; distances are measured in a 16:9 space
//! ([`WIDE_X`] × [`WIDE_Y`]) where they look on screen as they are. Here: where a pointer is on
//! the board, thinning a freehand stroke while it is drawn, and which drawn item a click hits.
//!
//! Points are `[x, y]` in board units, as in `veche_protocol::whiteboard` (this crate does not
//! depend on the protocol; the app maps its items to [`Outline`]s).

/// Both axes of the board run from 0 to this.
pub const UNITS: f64 = 10_000.0;
/// The board's width in the 16:9 space.
pub const WIDE_X: f64 = 16_000.0;
/// The board's height in the 16:9 space.
pub const WIDE_Y: f64 = 9_000.0;

pub type Point = [u16; 2];

/// A position on a canvas `width`×`height` pixels large (the board drawn over all of it) as a
/// board point, clamped to the board.
pub fn to_board(x: f64, y: f64, width: f64, height: f64) -> Point {
    let unit = |v: f64, size: f64| {
        if !v.is_finite() || size <= 0.0 { 0 } else { (v / size * UNITS).round().clamp(0.0, UNITS) as u16 }
    };
    [unit(x, width), unit(y, height)]
}

/// Where a board point is on a canvas `width`×`height` pixels large.
pub fn to_canvas(p: Point, width: f64, height: f64) -> (f64, f64) {
    (f64::from(p[0]) / UNITS * width, f64::from(p[1]) / UNITS * height)
}

/// A board point in the 16:9 space.
pub fn wide(p: Point) -> (f64, f64) {
    (f64::from(p[0]) * WIDE_X / UNITS, f64::from(p[1]) * WIDE_Y / UNITS)
}

/// A freehand stroke as it is drawn: a point is kept only once it is `min_gap` (16:9 space) from
/// the last one kept, and the stroke is full at `max` points.
#[derive(Debug, Clone)]
pub struct StrokeBuilder {
    points: Vec<Point>,
    min_gap: f64,
    max: usize,
}

impl StrokeBuilder {
    pub fn new(start: Point, min_gap: f64, max: usize) -> Self {
        StrokeBuilder { points: vec![start], min_gap, max: max.max(2) }
    }

    /// Adds where the pointer is now; whether it was kept.
    pub fn push(&mut self, p: Point) -> bool {
        if self.is_full() {
            return false;
        }
        let last = self.points[self.points.len() - 1];
        if distance(wide(last), wide(p)) < self.min_gap {
            return false;
        }
        self.points.push(p);
        true
    }

    /// No more points fit: the stroke should be finished (and a new one started at its end).
    pub fn is_full(&self) -> bool {
        self.points.len() >= self.max
    }

    pub fn points(&self) -> &[Point] {
        &self.points
    }

    pub fn into_points(self) -> Vec<Point> {
        self.points
    }
}

/// What a drawn item looks like to a click.
#[derive(Debug, Clone, Copy)]
pub enum Outline<'a> {
    Polyline(&'a [Point]),
    Segment(Point, Point),
    /// The outline of the rectangle between two corners.
    Rect(Point, Point),
    /// The outline of the ellipse inside the rectangle between two corners.
    Ellipse(Point, Point),
    /// Text with its baseline starting at `at`, `size` board units tall, `chars` long.
    Text {
        at: Point,
        size: u16,
        chars: usize,
    },
}

fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

fn to_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    if len2 == 0.0 {
        return distance(p, a);
    }
    let t = (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0);
    distance(p, (a.0 + t * dx, a.1 + t * dy))
}

/// How wide text of this size is, roughly, per character (16:9 space, for hit testing).
const TEXT_ADVANCE: f64 = 0.55;

impl Outline<'_> {
    /// How far `p` is from the outline, in the 16:9 space (0 inside a text's box).
    pub fn distance(&self, p: Point) -> f64 {
        let q = wide(p);
        match *self {
            Outline::Polyline(points) => match points {
                [] => f64::INFINITY,
                [only] => distance(q, wide(*only)),
                _ => points.windows(2).map(|w| to_segment(q, wide(w[0]), wide(w[1]))).fold(f64::INFINITY, f64::min),
            },
            Outline::Segment(a, b) => to_segment(q, wide(a), wide(b)),
            Outline::Rect(a, b) => {
                let (a, b) = (wide(a), wide(b));
                let corners = [a, (b.0, a.1), b, (a.0, b.1)];
                (0..4).map(|i| to_segment(q, corners[i], corners[(i + 1) % 4])).fold(f64::INFINITY, f64::min)
            }
            Outline::Ellipse(a, b) => {
                let (a, b) = (wide(a), wide(b));
                let (cx, cy) = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
                let (rx, ry) = (((b.0 - a.0) / 2.0).abs(), ((b.1 - a.1) / 2.0).abs());
                if rx < 1.0 || ry < 1.0 {
                    return to_segment(q, a, b);
                }
                let (dx, dy) = (q.0 - cx, q.1 - cy);
                let r = ((dx / rx).powi(2) + (dy / ry).powi(2)).sqrt();
                if r == 0.0 {
                    return rx.min(ry);
                }
                // Along the ray from the centre: the outline is at 1/r of the way to `p`.
                (dx * dx + dy * dy).sqrt() * (1.0 - 1.0 / r).abs()
            }
            Outline::Text { at, size, chars } => {
                let (x, baseline) = wide(at);
                let height = f64::from(size) * WIDE_Y / UNITS;
                let width = height * TEXT_ADVANCE * chars.max(1) as f64;
                let dx = (x - q.0).max(q.0 - (x + width)).max(0.0);
                let dy = ((baseline - height) - q.1).max(q.1 - baseline).max(0.0);
                (dx * dx + dy * dy).sqrt()
            }
        }
    }
}

/// The topmost (last drawn) of `items` that `p` is within reach of (16:9 space; each item with
/// its own reach, such as a click's reach plus half its line width), if any.
pub fn hit<'a, K>(items: impl IntoIterator<Item = (K, Outline<'a>, f64)>, p: Point) -> Option<K> {
    let mut found = None;
    for (key, outline, reach) in items {
        if outline.distance(p) <= reach {
            found = Some(key);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canvas_and_board_map_both_ways_and_clamp() {
        assert_eq!(to_board(0.0, 0.0, 800.0, 450.0), [0, 0]);
        assert_eq!(to_board(400.0, 225.0, 800.0, 450.0), [5_000, 5_000]);
        assert_eq!(to_board(-5.0, 9_999.0, 800.0, 450.0), [0, 10_000]);
        assert_eq!(to_board(f64::NAN, 1.0, 0.0, 450.0), [0, 22]);
        assert_eq!(to_canvas([5_000, 10_000], 800.0, 450.0), (400.0, 450.0));
        assert_eq!(wide([10_000, 10_000]), (WIDE_X, WIDE_Y));
    }

    #[test]
    fn a_stroke_keeps_spaced_points_up_to_its_limit() {
        let mut s = StrokeBuilder::new([0, 0], 100.0, 5);
        assert!(!s.push([10, 10]), "too close to keep");
        assert!(s.push([100, 0]), "160 wide units away");
        for i in 2..10 {
            s.push([i * 100, 0]);
        }
        assert!(s.is_full());
        assert_eq!(s.points().len(), 5);
        assert!(!s.push([9_000, 9_000]));
        assert_eq!(s.into_points().last(), Some(&[400, 0]));
    }

    #[test]
    fn clicks_hit_the_outline_they_are_near() {
        let stroke = [[1_000, 1_000], [2_000, 1_000], [2_000, 2_000]];
        assert!(Outline::Polyline(&stroke).distance([1_500, 1_000]) < 1.0);
        assert!((Outline::Polyline(&stroke).distance([2_100, 1_500]) - 160.0).abs() < 1e-6);
        assert_eq!(Outline::Polyline(&[]).distance([0, 0]), f64::INFINITY);
        assert!(Outline::Segment([0, 0], [10_000, 10_000]).distance([5_000, 5_000]) < 1.0);
        // A rectangle is hit on its edges, not inside.
        let rect = Outline::Rect([1_000, 1_000], [3_000, 3_000]);
        assert!(rect.distance([1_000, 2_000]) < 1.0);
        assert!(rect.distance([2_000, 2_000]) > 800.0);
        // An ellipse on its outline: the rightmost point and the top.
        let ellipse = Outline::Ellipse([1_000, 1_000], [3_000, 3_000]);
        assert!(ellipse.distance([3_000, 2_000]) < 1.0);
        assert!(ellipse.distance([2_000, 1_000]) < 1.0);
        assert!(ellipse.distance([2_000, 2_000]) > 800.0);
        // Text is hit anywhere in its box.
        let text = Outline::Text { at: [1_000, 2_000], size: 1_000, chars: 4 };
        assert_eq!(text.distance([1_200, 1_500]), 0.0);
        assert!(text.distance([1_200, 3_000]) > 800.0);
    }

    #[test]
    fn the_topmost_item_within_reach_is_hit() {
        let a = [[0, 5_000], [10_000, 5_000]];
        let items = [(1, Outline::Polyline(&a), 50.0), (2, Outline::Rect([4_000, 4_000], [6_000, 5_000]), 50.0)];
        assert_eq!(hit(items, [5_000, 5_000]), Some(2), "both are there: the later one");
        assert_eq!(hit(items, [1_000, 5_010]), Some(1));
        assert_eq!(hit(items, [1_000, 8_000]), None);
        // A wide line reaches further.
        assert_eq!(hit([(1, Outline::Polyline(&a), 3_000.0)], [1_000, 8_000]), Some(1));
    }
}
