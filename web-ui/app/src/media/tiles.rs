//! How tall this device shows each video it receives, told to the node on the call's data
//! channel (spec/calls.md §7, `view`): the node then sends a lower simulcast layer to a small
//! tile, and nothing at all for a tile on another page of the grid (height 0).
//!
//! `js/call.js` reports a track's height (device pixels) whenever it may have changed: a tile
//! resized (a `ResizeObserver`), the page changed, a video arrived, the data channel opened.
//! Only changes are sent, gathered and sent at most every [`GAP_MS`]. A new data channel (a new
//! call, a rejoin from the lobby) starts with nothing told.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use veche_protocol::incall::ToNode;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/call.js")]
extern "C" {
    #[wasm_bindgen(js_name = callOnView)]
    fn js_call_on_view(view: &js_sys::Function, reset: &js_sys::Function);
}

/// Least time between two sendings of sizes (milliseconds): at most four a second.
const GAP_MS: f64 = 250.0;

#[derive(Default)]
struct Sizes {
    /// What the node was told, per track.
    told: HashMap<u32, u16>,
    /// Heights to tell it at the next sending.
    waiting: BTreeMap<u32, u16>,
    /// A sending is on its way.
    scheduled: bool,
    /// When sizes were last sent (`Date.now()`).
    last_ms: f64,
}

thread_local! {
    static SIZES: RefCell<Sizes> = RefCell::new(Sizes::default());
}

/// Takes the tile sizes `js/call.js` reports (once, at start).
pub fn listen() {
    let view = Closure::<dyn Fn(u32, u32)>::new(|track: u32, height: u32| report(track, height));
    let reset = Closure::<dyn Fn()>::new(|| {
        SIZES.with(|s| {
            let mut s = s.borrow_mut();
            s.told.clear();
            s.waiting.clear();
        })
    });
    js_call_on_view(view.as_ref().unchecked_ref(), reset.as_ref().unchecked_ref());
    view.forget();
    reset.forget();
}

fn report(track: u32, height: u32) {
    let height = u16::try_from(height).unwrap_or(u16::MAX);
    let now = js_sys::Date::now();
    let delay = SIZES.with(|s| {
        let mut s = s.borrow_mut();
        if s.told.get(&track) == Some(&height) {
            s.waiting.remove(&track);
            return None;
        }
        s.waiting.insert(track, height);
        if s.scheduled {
            return None;
        }
        s.scheduled = true;
        Some((GAP_MS - (now - s.last_ms)).clamp(0.0, GAP_MS) as u32)
    });
    if let Some(delay) = delay {
        wasm_bindgen_futures::spawn_local(async move {
            if delay > 0 {
                crate::device::sleep_ms(delay).await;
            }
            send();
        });
    }
}

/// Sends what waits. What cannot go (the channel is not open) is dropped: when it opens, every
/// size is reported again.
fn send() {
    let waiting = SIZES.with(|s| {
        let mut s = s.borrow_mut();
        s.scheduled = false;
        s.last_ms = js_sys::Date::now();
        std::mem::take(&mut s.waiting)
    });
    for (track, height) in waiting {
        if super::call::signal(&ToNode::View { track, height }) {
            SIZES.with(|s| s.borrow_mut().told.insert(track, height));
        }
    }
}
