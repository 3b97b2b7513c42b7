//! How a provider counts prompt tokens, learned per model from what it reports.
//! The gateway estimates a prompt with one tokenizer (o200k); providers count
//! with their own, and some count a third more. A key's token budget is only
//! as exact as the estimate it admits requests with, so each key scales its
//! estimates by the ratio its provider's reports have shown for that model —
//! their running mean plus twice their running deviation, as TCP estimates a
//! round trip: steady reports give a tight estimate, varied ones a safe one.

use std::collections::HashMap;

/// Weight of the newest report in the running ratio: a few replies teach it.
const LEARNING_RATE: f64 = 0.5;
/// Bounds on the ratio: tokenizers differ, but not by more than this.
const LOWEST: f64 = 0.5;
const HIGHEST: f64 = 4.0;

/// A running ratio and how much it varies.
#[derive(Clone, Copy, Debug)]
struct Ratio {
    mean: f64,
    deviation: f64,
}

/// Ratios of reported to estimated prompt tokens, per model.
#[derive(Debug, Default)]
pub struct Calibration {
    ratios: HashMap<String, Ratio>,
}

impl Calibration {
    /// An estimate for `model` in the provider's units (rounded up).
    pub fn scale(&self, model: &str, estimate: u64) -> u64 {
        match self.ratios.get(model) {
            Some(_) => (estimate as f64 * self.ratio(model)).ceil() as u64,
            None => estimate,
        }
    }

    /// The provider reported `reported` prompt tokens for a request estimated at
    /// `estimate` (before scaling).
    pub fn learn(&mut self, model: &str, estimate: u64, reported: u64) {
        if estimate == 0 {
            return;
        }
        let seen = (reported as f64 / estimate as f64).clamp(LOWEST, HIGHEST);
        let r = self.ratios.entry(model.to_string()).or_insert(Ratio {
            mean: seen,
            deviation: 0.0,
        });
        r.deviation += ((seen - r.mean).abs() - r.deviation) * LEARNING_RATE;
        r.mean += (seen - r.mean) * LEARNING_RATE;
    }

    /// Whether a report for `model` came yet.
    pub fn knows(&self, model: &str) -> bool {
        self.ratios.contains_key(model)
    }

    /// The factor estimates for `model` are scaled by (1 until a report came).
    pub fn ratio(&self, model: &str) -> f64 {
        self.ratios
            .get(model)
            .map_or(1.0, |r| (r.mean + 2.0 * r.deviation).clamp(LOWEST, HIGHEST))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_follow_what_the_provider_reports() {
        let mut c = Calibration::default();
        assert_eq!(c.scale("m", 100), 100, "nothing learned: the estimate as it is");
        // The provider counts a third more than the local tokenizer.
        c.learn("m", 300, 400);
        assert_eq!(c.scale("m", 300), 400);
        assert_eq!(c.scale("other", 300), 300, "per model");
    }

    #[test]
    fn varied_reports_make_the_estimate_safer_and_steady_ones_tighter() {
        let mut c = Calibration::default();
        c.learn("m", 100, 120);
        c.learn("m", 100, 200);
        // Mean 1.6, deviation 0.4: scaled by 2.4 while the reports disagree.
        assert!((c.ratio("m") - 2.4).abs() < 1e-9, "{}", c.ratio("m"));
        for _ in 0..12 {
            c.learn("m", 100, 120);
        }
        assert!((c.ratio("m") - 1.2).abs() < 0.01, "{}", c.ratio("m"));
    }

    #[test]
    fn absurd_reports_are_bounded() {
        let mut c = Calibration::default();
        c.learn("m", 10, 10_000);
        assert_eq!(c.scale("m", 10), 40);
        c.learn("m", 0, 50);
        assert_eq!(c.scale("m", 10), 40, "an empty estimate teaches nothing");
    }
}
