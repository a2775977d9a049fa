//! The media loop's timers: one deadline per peer, in a min-heap, so a tick wakes only the peers
//! whose deadline has come (not every peer on every tick). Setting a new deadline for a peer
//! replaces its old one; stale heap entries are skipped when they surface.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

use crate::Instant;

#[derive(Debug)]
pub struct Timers<P: Ord> {
    heap: BinaryHeap<Reverse<(Instant, u64, P)>>,
    /// Each peer's current deadline and its generation (older heap entries are stale).
    current: HashMap<P, (Instant, u64)>,
    next_generation: u64,
}

impl<P: Ord> Default for Timers<P> {
    fn default() -> Self {
        Timers { heap: BinaryHeap::new(), current: HashMap::new(), next_generation: 0 }
    }
}

impl<P: Copy + Eq + Hash + Ord> Timers<P> {
    /// Sets (or moves) the peer's deadline.
    pub fn set(&mut self, peer: P, at: Instant) {
        if self.current.get(&peer).is_some_and(|(current, _)| *current == at) {
            return;
        }
        self.next_generation += 1;
        self.current.insert(peer, (at, self.next_generation));
        self.heap.push(Reverse((at, self.next_generation, peer)));
        // Keep the heap from growing without bound when deadlines move often.
        if self.heap.len() > 4 * self.current.len() + 64 {
            self.compact();
        }
    }

    pub fn cancel(&mut self, peer: P) {
        self.current.remove(&peer);
    }

    /// The earliest deadline, to sleep until.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, generation, peer))) = self.heap.peek().copied() {
            if self.current.get(&peer) == Some(&(at, generation)) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// The peers whose deadline is at or before `now`, earliest first; their deadlines are
    /// cleared (each sets its next one after handling the timeout).
    pub fn due(&mut self, now: Instant) -> Vec<P> {
        let mut out = Vec::new();
        while let Some(at) = self.next_deadline() {
            if at > now {
                break;
            }
            if let Some(Reverse((_, _, peer))) = self.heap.pop() {
                self.current.remove(&peer);
                out.push(peer);
            }
        }
        out
    }

    fn compact(&mut self) {
        let live: Vec<Reverse<(Instant, u64, P)>> =
            self.current.iter().map(|(peer, (at, generation))| Reverse((*at, *generation, *peer))).collect();
        self.heap = live.into_iter().collect();
    }

    /// Heap entries (live and stale), for tests of the bound.
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Instant {
        Duration::from_millis(n)
    }

    #[test]
    fn only_peers_whose_deadline_came_are_woken_in_order() {
        let mut t = Timers::default();
        t.set(1u32, ms(30));
        t.set(2, ms(10));
        t.set(3, ms(20));
        assert_eq!(t.next_deadline(), Some(ms(10)));
        assert_eq!(t.due(ms(5)), Vec::<u32>::new());
        assert_eq!(t.due(ms(20)), [2, 3]);
        assert_eq!(t.next_deadline(), Some(ms(30)));
        assert_eq!(t.due(ms(100)), [1]);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn moving_or_cancelling_a_deadline_replaces_the_old_one() {
        let mut t = Timers::default();
        t.set(1u32, ms(10));
        t.set(1, ms(50));
        t.set(2, ms(20));
        t.cancel(2);
        assert_eq!(t.due(ms(30)), Vec::<u32>::new(), "the old deadline of 1 and the cancelled 2 are gone");
        assert_eq!(t.due(ms(50)), [1]);
    }

    #[test]
    fn a_thousand_peers_moving_their_deadlines_keep_the_heap_bounded() {
        let mut t = Timers::default();
        for round in 0..100u64 {
            for peer in 0..1000u32 {
                t.set(peer, ms(round * 10 + u64::from(peer % 7)));
            }
        }
        assert!(t.heap_len() <= 4 * 1000 + 64, "heap of {}", t.heap_len());
        assert_eq!(
            t.due(ms(995)).len(),
            858,
            "the last round's deadlines are 990-996 ms: 6 of every 7 peers are due at 995"
        );
        assert_eq!(t.due(ms(996)).len(), 142);
    }
}
