//! The active speaker, from the RFC 6464 audio level each audio packet carries (0 dBov is the
//! loudest, 127 silence).
//!
//! Each participant's level is smoothed over about [`WINDOW`]; the loudest participant above
//! [`SPEECH_LEVEL`] becomes the active speaker once they have stayed loudest for [`HOLD`], so a
//! cough does not move the highlight.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{Instant, ParticipantId};

/// Levels at or below this (in -dBov) count as speech.
pub const SPEECH_LEVEL: u8 = 50;
/// How long a new loudest participant must stay loudest to become the active speaker.
pub const HOLD: Duration = Duration::from_millis(300);
/// A participant not heard for this long is silent.
const WINDOW: Duration = Duration::from_millis(1000);

#[derive(Debug, Clone, Copy)]
struct Level {
    /// Smoothed loudness, 0 (silence) to 127 (loudest).
    loudness: f32,
    heard: Instant,
}

#[derive(Debug, Default)]
pub struct ActiveSpeaker {
    levels: BTreeMap<ParticipantId, Level>,
    current: Option<ParticipantId>,
    /// A candidate and since when it has been the loudest.
    candidate: Option<(ParticipantId, Instant)>,
}

impl ActiveSpeaker {
    /// The participant shown as speaking.
    pub fn current(&self) -> Option<ParticipantId> {
        self.current
    }

    pub fn remove(&mut self, who: ParticipantId) {
        self.levels.remove(&who);
        if self.current == Some(who) {
            self.current = None;
        }
        if self.candidate.is_some_and(|(c, _)| c == who) {
            self.candidate = None;
        }
    }

    /// One audio packet's level. Returns the new active speaker when it changes.
    pub fn on_level(&mut self, now: Instant, who: ParticipantId, level_dbov: u8) -> Option<ParticipantId> {
        let loudness = f32::from(127 - level_dbov.min(127));
        let entry = self.levels.entry(who).or_insert(Level { loudness: 0.0, heard: now });
        // Exponential smoothing with a time constant of about a fifth of the window.
        entry.loudness = entry.loudness * 0.8 + loudness * 0.2;
        entry.heard = now;
        self.decide(now)
    }

    fn decide(&mut self, now: Instant) -> Option<ParticipantId> {
        let threshold = f32::from(127 - SPEECH_LEVEL);
        let loudest = self
            .levels
            .iter()
            .filter(|(_, l)| now.saturating_sub(l.heard) < WINDOW && l.loudness >= threshold)
            .max_by(|a, b| a.1.loudness.total_cmp(&b.1.loudness))
            .map(|(who, _)| *who);
        let Some(loudest) = loudest else {
            self.candidate = None;
            return None;
        };
        if Some(loudest) == self.current {
            self.candidate = None;
            return None;
        }
        match self.candidate {
            Some((c, since)) if c == loudest => {
                if now.saturating_sub(since) >= HOLD {
                    self.current = Some(loudest);
                    self.candidate = None;
                    return Some(loudest);
                }
            }
            _ => self.candidate = Some((loudest, now)),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Duration::from_millis(n)
    }

    #[test]
    fn the_loudest_speaker_takes_over_after_the_hold_time_and_a_cough_does_not() {
        let (a, b) = (ParticipantId(1), ParticipantId(2));
        let mut s = ActiveSpeaker::default();
        let mut changes = Vec::new();
        // A talks (level 20) for a second, B is quiet (level 100); every 20 ms.
        for t in (0..1000).step_by(20) {
            changes.extend(s.on_level(ms(t), a, 20));
            changes.extend(s.on_level(ms(t), b, 100));
        }
        assert_eq!(changes, [a]);
        // B coughs for 100 ms: no change.
        for t in (1000..1100).step_by(20) {
            changes.extend(s.on_level(ms(t), a, 60));
            changes.extend(s.on_level(ms(t), b, 5));
        }
        for t in (1100..1400).step_by(20) {
            changes.extend(s.on_level(ms(t), a, 20));
            changes.extend(s.on_level(ms(t), b, 100));
        }
        assert_eq!(changes, [a], "a short burst does not move the highlight");
        // B talks and A stops: B takes over.
        for t in (1400..2400).step_by(20) {
            changes.extend(s.on_level(ms(t), a, 110));
            changes.extend(s.on_level(ms(t), b, 15));
        }
        assert_eq!(changes, [a, b]);
        assert_eq!(s.current(), Some(b));
    }

    #[test]
    fn silence_elects_nobody() {
        let mut s = ActiveSpeaker::default();
        for t in (0..2000).step_by(20) {
            assert_eq!(s.on_level(ms(t), ParticipantId(1), 120), None);
        }
        assert_eq!(s.current(), None);
    }
}
