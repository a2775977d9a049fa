//! The call's video grid in pages: which remote tiles a page shows.
//!
//! A wide screen shows up to [`WIDE_PAGE`] tiles of the others at once, a phone-sized one
//! [`PHONE_PAGE`]; the rest are on further pages. The active speaker is always on the first page,
//! so whoever talks is seen without paging. The device's own tile is not paged (it is on every
//! page).

/// Remote tiles a page shows on a wide screen.
pub const WIDE_PAGE: usize = 9;
/// Remote tiles a page shows on a phone-sized screen (narrower than [`PHONE_WIDTH_PX`]).
pub const PHONE_PAGE: usize = 4;
/// Screens narrower than this (CSS pixels) count as phones.
pub const PHONE_WIDTH_PX: f64 = 640.0;

/// How many remote tiles a page shows on a screen this wide (CSS pixels).
pub fn per_page(width_px: f64) -> usize {
    if width_px < PHONE_WIDTH_PX { PHONE_PAGE } else { WIDE_PAGE }
}

/// How many columns the grid has for `tiles` tiles on its page (the device's own included) on a
/// screen this wide: as few as keep the tiles in a square-ish block, so that two people in a
/// call see each other large (and are sent a sharper layer), and many see everyone at once.
pub fn columns(tiles: usize, width_px: f64) -> usize {
    let square = (1..=4).find(|c| c * c >= tiles).unwrap_or(4);
    if width_px < PHONE_WIDTH_PX {
        // A phone stacks one or two tiles, and shows more two by two.
        if tiles <= 2 { 1 } else { 2 }
    } else {
        square
    }
}

/// One page of the grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The participants whose tiles show, in the order they show.
    pub shown: Vec<u32>,
    /// This page, counted from 0 (the one asked for, or the last one if there are fewer now).
    pub page: usize,
    /// How many pages there are (at least one, even with nobody to show).
    pub pages: usize,
}

/// Page `page` (from 0) of the participants in `order` (the others, in the order they joined),
/// `per_page` to a page. The active `speaker`, when not already on the first page, takes its
/// last place and the others there move one place on: everyone else keeps their order.
pub fn page(order: &[u32], speaker: Option<u32>, per_page: usize, page: usize) -> Page {
    let per_page = per_page.max(1);
    let mut order = order.to_vec();
    if let Some(at) = speaker.and_then(|s| order.iter().position(|p| *p == s))
        && at >= per_page
    {
        let speaker = order.remove(at);
        order.insert(per_page - 1, speaker);
    }
    let pages = order.len().div_ceil(per_page).max(1);
    let page = page.min(pages - 1);
    let shown = order.iter().skip(page * per_page).take(per_page).copied().collect();
    Page { shown, page, pages }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_tiles_are_large_and_many_are_in_a_square() {
        let wide: Vec<usize> = (1..=12).map(|n| columns(n, 1280.0)).collect();
        assert_eq!(wide, [1, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4]);
        let phone: Vec<usize> = (1..=5).map(|n| columns(n, 390.0)).collect();
        assert_eq!(phone, [1, 1, 2, 2, 2]);
    }

    #[test]
    fn phones_show_four_and_wide_screens_nine() {
        assert_eq!(per_page(390.0), 4);
        assert_eq!(per_page(639.9), 4);
        assert_eq!(per_page(640.0), 9);
        assert_eq!(per_page(1280.0), 9);
    }

    #[test]
    fn pages_split_the_others_in_joining_order() {
        let order = [2, 3, 4, 5, 6];
        assert_eq!(page(&order, None, 4, 0), Page { shown: vec![2, 3, 4, 5], page: 0, pages: 2 });
        assert_eq!(page(&order, None, 4, 1), Page { shown: vec![6], page: 1, pages: 2 });
        assert_eq!(page(&order, None, 9, 0), Page { shown: order.to_vec(), page: 0, pages: 1 });
        assert_eq!(page(&[2, 3, 4, 5], None, 4, 0).pages, 1, "a full page needs no second one");
    }

    #[test]
    fn nobody_to_show_is_one_empty_page() {
        assert_eq!(page(&[], None, 4, 0), Page { shown: vec![], page: 0, pages: 1 });
        assert_eq!(page(&[], Some(3), 4, 2), Page { shown: vec![], page: 0, pages: 1 });
    }

    #[test]
    fn a_page_that_is_gone_becomes_the_last_one() {
        // Someone on page 2 left: the viewer is on the last page there is.
        assert_eq!(page(&[2, 3, 4], None, 2, 5), Page { shown: vec![4], page: 1, pages: 2 });
    }

    #[test]
    fn the_active_speaker_is_kept_on_the_first_page() {
        let order = [2, 3, 4, 5, 6, 7];
        // On page 2 while speaking: moved into the first page's last place.
        assert_eq!(page(&order, Some(7), 4, 0).shown, vec![2, 3, 4, 7]);
        assert_eq!(page(&order, Some(7), 4, 1).shown, vec![5, 6]);
        // Already on the first page: nothing moves.
        assert_eq!(page(&order, Some(3), 4, 0).shown, vec![2, 3, 4, 5]);
        assert_eq!(page(&order, Some(5), 4, 0).shown, vec![2, 3, 4, 5]);
        // The speaker is this device, or someone without a tile: nothing moves.
        assert_eq!(page(&order, Some(1), 4, 0).shown, vec![2, 3, 4, 5]);
        // A page of one: the speaker is the first page.
        assert_eq!(page(&order, Some(6), 1, 0).shown, vec![6]);
        assert_eq!(page(&order, Some(6), 1, 1).shown, vec![2]);
    }

    #[test]
    fn zero_per_page_is_taken_as_one() {
        assert_eq!(page(&[2, 3], None, 0, 1), Page { shown: vec![3], page: 1, pages: 2 });
    }
}
