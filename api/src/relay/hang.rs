//! Telling a hanging key from a slow model: how long the same model's other keys
//! took to their first byte just now is the yardstick. A request that has waited
//! several times longer than they do (and at least a few seconds) is taken for a
//! hang and retried elsewhere at once, instead of waiting out the configured bound;
//! a model whose every key is slow (a reasoning model thinking for a minute) moves
//! the yardstick with it, and a model with one key has no yardstick at all.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// First-byte times older than this say nothing about now.
const RECENT: Duration = Duration::from_secs(60);
/// Samples kept per model and kind.
const SAMPLES: usize = 32;
/// A hang is this many times slower than the other keys' slowest usual answer...
const FACTOR: u32 = 4;
/// ...and never sooner than this: short answers vary a lot in relative terms.
const FLOOR: Duration = Duration::from_secs(2);

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    key_id: i64,
    first_byte: Duration,
}

/// Recent first-byte times per model, streams and whole replies apart.
#[derive(Default)]
pub struct FirstByteWatch {
    recent: Mutex<HashMap<(String, bool), VecDeque<Sample>>>,
}

impl FirstByteWatch {
    /// A request for `model` on `key_id` got its first byte after `first_byte`.
    pub fn record(&self, model: &str, stream: bool, key_id: i64, first_byte: Duration, now: Instant) {
        let mut recent = self.recent.lock().expect("first-byte watch lock");
        let samples = recent.entry((model.to_string(), stream)).or_default();
        samples.push_back(Sample {
            at: now,
            key_id,
            first_byte,
        });
        while samples.len() > SAMPLES || samples.front().is_some_and(|s| s.at + RECENT < now) {
            samples.pop_front();
        }
    }

    /// How long a request for `model` on `key_id` may wait for its first byte
    /// before it counts as hung, judged by the model's other keys now; `None`
    /// when no other key answered recently.
    pub fn hang_after(&self, model: &str, stream: bool, key_id: i64, now: Instant) -> Option<Duration> {
        let recent = self.recent.lock().expect("first-byte watch lock");
        let mut others: Vec<Duration> = recent
            .get(&(model.to_string(), stream))?
            .iter()
            .filter(|s| s.key_id != key_id && s.at + RECENT >= now)
            .map(|s| s.first_byte)
            .collect();
        if others.is_empty() {
            return None;
        }
        others.sort();
        // The 90th percentile: one slow outlier among the others does not move it.
        let usual = others[(others.len() * 9 / 10).min(others.len() - 1)];
        Some((usual * FACTOR).max(FLOOR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_judged_by_the_other_keys_of_its_model() {
        let watch = FirstByteWatch::default();
        let now = Instant::now();
        assert_eq!(
            watch.hang_after("m", true, 1, now),
            None,
            "nothing to compare with"
        );
        watch.record("m", true, 1, Duration::from_millis(100), now);
        assert_eq!(
            watch.hang_after("m", true, 1, now),
            None,
            "its own answers do not count"
        );
        watch.record("m", true, 2, Duration::from_millis(300), now);
        assert_eq!(
            watch.hang_after("m", true, 1, now),
            Some(FLOOR),
            "fast others: the floor"
        );
        assert_eq!(
            watch.hang_after("m", false, 1, now),
            None,
            "whole replies are judged apart"
        );
        assert_eq!(watch.hang_after("other", true, 1, now), None);
    }

    #[test]
    fn a_slow_model_moves_the_yardstick_with_it() {
        let watch = FirstByteWatch::default();
        let now = Instant::now();
        for key in 2..=4 {
            watch.record("thinker", true, key, Duration::from_secs(50), now);
        }
        assert_eq!(
            watch.hang_after("thinker", true, 1, now),
            Some(Duration::from_secs(200))
        );
    }

    #[test]
    fn old_answers_are_forgotten() {
        let watch = FirstByteWatch::default();
        let then = Instant::now();
        watch.record("m", true, 2, Duration::from_millis(100), then);
        let later = then + RECENT + Duration::from_secs(1);
        assert_eq!(watch.hang_after("m", true, 1, later), None);
    }
}
