//! The per-key budget: a strict sliding window over requests and tokens, the
//! learned (effective) limit, cooldowns and concurrency. Pure logic driven by an
//! explicit `now`, so it is unit-tested without sleeping.
//!
//! Providers such as NVIDIA NIM enforce a sliding 60 s window: a fixed per-minute
//! counter would let 2×RPM requests through around a minute boundary and earn 429s.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Configured limits of one key (0 means unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Requests in any window.
    pub rpm: u32,
    /// Tokens (prompt + completion) in any window.
    pub tpm: u64,
    /// Requests in flight at once.
    pub max_concurrency: u32,
}

/// Which of a budget's limits holds a request back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Requests in the window, at this limit.
    Requests(u32),
    /// Tokens in the window, at this limit.
    Tokens(u64),
    /// Requests in flight, at this limit.
    Concurrency(u32),
    /// A cooldown after the provider refused.
    Cooldown,
}

/// When a key can take the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// It can take one now.
    Now,
    /// It can take one at this instant (window edge or cooldown end).
    At(Instant),
    /// It is at its concurrency limit; ready when an in-flight request ends.
    WhenSlotFrees,
}

impl Readiness {
    /// The instant this readiness corresponds to, if it is time-bound.
    pub fn instant(self, now: Instant) -> Option<Instant> {
        match self {
            Readiness::Now => Some(now),
            Readiness::At(at) => Some(at.max(now)),
            Readiness::WhenSlotFrees => None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    at: Instant,
    tokens: u64,
    permit: u64,
}

/// How the budget reacts to provider throttling.
#[derive(Clone, Copy, Debug)]
pub struct BudgetPolicy {
    /// Length of the provider's window (60 s for every known provider).
    pub window: Duration,
    /// Extra time an entry stays in the window: the provider's clock sees a request
    /// later than we send it, so freeing a slot exactly at the edge would be early.
    pub margin: Duration,
    /// Cooldown after a 429 that names no Retry-After; doubled per consecutive 429.
    pub base_cooldown: Duration,
    /// Upper bound on that doubling.
    pub max_cooldown: Duration,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        BudgetPolicy {
            window: Duration::from_secs(60),
            margin: Duration::from_millis(500),
            base_cooldown: Duration::from_secs(2),
            max_cooldown: Duration::from_secs(60),
        }
    }
}

/// The budget one key owns: everything needed to decide whether it may send now.
#[derive(Debug)]
pub struct KeyBudget {
    policy: BudgetPolicy,
    configured: Limits,
    /// Learned request limit after provider 429s; `None` = the configured one.
    learned_rpm: Option<u32>,
    entries: VecDeque<Entry>,
    in_flight: u32,
    cooldown_until: Option<Instant>,
    consecutive_429: u32,
    /// Throttling events that taught a lower limit, decaying by one per ten
    /// quiet windows: a key whose provider keeps refusing recovers ever slower.
    strikes: u32,
    last_429: Option<Instant>,
    last_recovery: Option<Instant>,
}

impl KeyBudget {
    /// A fresh budget with nothing used.
    pub fn new(configured: Limits, policy: BudgetPolicy) -> Self {
        KeyBudget {
            policy,
            configured,
            learned_rpm: None,
            entries: VecDeque::new(),
            in_flight: 0,
            cooldown_until: None,
            consecutive_429: 0,
            strikes: 0,
            last_429: None,
            last_recovery: None,
        }
    }

    /// Replace the configured limits, keeping what was used in the window.
    pub fn set_limits(&mut self, configured: Limits) {
        self.configured = configured;
        if let (Some(learned), true) = (self.learned_rpm, configured.rpm > 0) {
            self.learned_rpm = Some(learned.min(configured.rpm));
        }
    }

    /// The configured limits.
    pub fn configured(&self) -> Limits {
        self.configured
    }

    /// The request limit in force now (0 = unlimited).
    pub fn effective_rpm(&self) -> u32 {
        match self.learned_rpm {
            Some(learned) => learned,
            None => self.configured.rpm,
        }
    }

    fn span(&self) -> Duration {
        self.policy.window + self.policy.margin
    }

    fn prune(&mut self, now: Instant) {
        let span = self.span();
        while let Some(first) = self.entries.front() {
            if first.at + span <= now {
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }

    /// Requests counted in the current window.
    pub fn requests_in_window(&mut self, now: Instant) -> u32 {
        self.prune(now);
        self.entries.len() as u32
    }

    /// Tokens counted in the current window.
    pub fn tokens_in_window(&mut self, now: Instant) -> u64 {
        self.prune(now);
        self.entries.iter().map(|e| e.tokens).sum()
    }

    /// Requests admitted and not yet finished.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Time left in the current cooldown, if any.
    pub fn cooldown_remaining(&self, now: Instant) -> Option<Duration> {
        self.cooldown_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// When a request estimated at `tokens` could be admitted.
    pub fn readiness(&mut self, now: Instant, tokens: u64) -> Readiness {
        self.recover(now);
        self.prune(now);
        if self.configured.max_concurrency > 0 && self.in_flight >= self.configured.max_concurrency {
            return Readiness::WhenSlotFrees;
        }
        let mut at = now;
        if let Some(until) = self.cooldown_until {
            at = at.max(until);
        }
        let span = self.span();
        let rpm = self.effective_rpm() as usize;
        if rpm > 0 && self.entries.len() >= rpm {
            // The oldest entries must leave until one slot is free.
            let must_leave = self.entries.len() - rpm;
            at = at.max(self.entries[must_leave].at + span);
        }
        let tpm = self.configured.tpm;
        if tpm > 0 {
            let used: u64 = self.entries.iter().map(|e| e.tokens).sum();
            // A request larger than the whole budget goes alone, into an empty window.
            let need = tokens.min(tpm);
            if used + need > tpm {
                let mut freed = 0;
                for entry in &self.entries {
                    freed += entry.tokens;
                    if used - freed + need <= tpm {
                        at = at.max(entry.at + span);
                        break;
                    }
                }
            }
        }
        if at <= now {
            Readiness::Now
        } else {
            Readiness::At(at)
        }
    }

    /// Admit a request now, or say when it could be admitted.
    pub fn admit(&mut self, now: Instant, permit: u64, tokens: u64) -> Result<(), Readiness> {
        match self.readiness(now, tokens) {
            Readiness::Now => {
                self.entries.push_back(Entry {
                    at: now,
                    tokens,
                    permit,
                });
                self.in_flight += 1;
                Ok(())
            }
            other => Err(other),
        }
    }

    /// Count a request admitted elsewhere (a tenant's request a key accepted),
    /// whatever the budget says: it went out.
    pub fn record(&mut self, now: Instant, permit: u64, tokens: u64) {
        self.prune(now);
        self.entries.push_back(Entry {
            at: now,
            tokens,
            permit,
        });
        self.in_flight += 1;
    }

    /// Which limit holds a request of `tokens` back now, if one does.
    pub fn binding(&mut self, now: Instant, tokens: u64) -> Option<Binding> {
        if self.readiness(now, tokens) == Readiness::Now {
            return None;
        }
        let max = self.configured.max_concurrency;
        let rpm = self.effective_rpm();
        Some(if max > 0 && self.in_flight >= max {
            Binding::Concurrency(max)
        } else if rpm > 0 && self.entries.len() >= rpm as usize {
            Binding::Requests(rpm)
        } else if self.configured.tpm > 0
            && self.entries.iter().map(|e| e.tokens).sum::<u64>() + tokens > self.configured.tpm
        {
            Binding::Tokens(self.configured.tpm)
        } else {
            Binding::Cooldown
        })
    }

    /// The request ended (whatever its outcome); frees its concurrency slot.
    pub fn release(&mut self, permit: u64) {
        let _ = permit;
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The request was never sent (client left while it was being routed):
    /// it does not count against the window.
    pub fn forget(&mut self, permit: u64) {
        self.entries.retain(|e| e.permit != permit);
    }

    /// Replace a request's estimated tokens with the real usage.
    pub fn settle(&mut self, permit: u64, tokens: u64) {
        if let Some(entry) = self.entries.iter_mut().rev().find(|e| e.permit == permit) {
            entry.tokens = tokens;
        }
    }

    /// The request succeeded: consecutive throttling is over.
    pub fn on_success(&mut self) {
        self.consecutive_429 = 0;
    }

    /// The provider answered 429: its real limit is lower than we believed.
    /// Cool down (for `retry_after` when the provider says) and lower the limit to
    /// what the window held when the provider refused.
    pub fn on_rate_limited(&mut self, now: Instant, retry_after: Option<Duration>) {
        self.prune(now);
        self.consecutive_429 += 1;
        if retry_after.is_none() {
            let quiet_windows = self.last_429.map_or(0, |last| {
                (now.saturating_duration_since(last).as_millis() / self.policy.window.as_millis().max(1))
                    as u32
            });
            self.strikes = self
                .strikes
                .saturating_sub(quiet_windows / 10)
                .saturating_add(1)
                .min(6);
        }
        self.last_429 = Some(now);
        self.last_recovery = Some(now);
        let cooldown = retry_after.unwrap_or_else(|| {
            let factor = 1u32 << (self.consecutive_429 - 1).min(10);
            (self.policy.base_cooldown * factor).min(self.policy.max_cooldown)
        });
        let until = now + cooldown;
        self.cooldown_until = Some(self.cooldown_until.map_or(until, |u| u.max(until)));
        if retry_after.is_none() {
            // The refused request is in the window; the provider accepted the
            // ones before it. Providers such as NVIDIA count strictly per key,
            // so one refusal teaches the real limit.
            let accepted = (self.entries.len() as u32).saturating_sub(1).max(1);
            let current = self.effective_rpm();
            if current == 0 || accepted < current {
                self.learned_rpm = Some(accepted);
            }
        }
    }

    /// A learned limit creeps back towards the configured one: one request per
    /// tenth of a window, once a whole window has passed without a 429; each
    /// further strike doubles both the quiet period and the step.
    fn recover(&mut self, now: Instant) {
        let Some(learned) = self.learned_rpm else {
            return;
        };
        let (Some(last_429), Some(last_step)) = (self.last_429, self.last_recovery) else {
            return;
        };
        let slowdown = 1u32 << self.strikes.clamp(1, 5).saturating_sub(1);
        let window = self.policy.window;
        let quiet = window * slowdown;
        if now < last_429 + quiet {
            return;
        }
        let step = window * slowdown / 10;
        let start = last_step.max(last_429 + quiet);
        let steps = ((now - start).as_millis() / step.as_millis().max(1)) as u32;
        if steps == 0 {
            return;
        }
        self.last_recovery = Some(start + step * steps);
        let raised = learned.saturating_add(steps);
        let configured = self.configured.rpm;
        let recovered = if configured > 0 {
            raised >= configured
        } else {
            // No configured limit to return to: forget the learned one after five quiet windows.
            now >= last_429 + window * 5
        };
        self.learned_rpm = if recovered { None } else { Some(raised) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BudgetPolicy {
        BudgetPolicy {
            window: Duration::from_secs(60),
            margin: Duration::ZERO,
            base_cooldown: Duration::from_secs(2),
            max_cooldown: Duration::from_secs(60),
        }
    }

    fn rpm(n: u32) -> KeyBudget {
        KeyBudget::new(
            Limits {
                rpm: n,
                ..Limits::default()
            },
            policy(),
        )
    }

    #[test]
    fn window_slides_instead_of_resetting_each_minute() {
        let t0 = Instant::now();
        let mut b = rpm(2);
        b.admit(t0, 1, 0).unwrap();
        b.admit(t0 + Duration::from_secs(30), 2, 0).unwrap();
        // At 61 s a fixed minute counter would allow two more; the window holds one.
        let t = t0 + Duration::from_secs(61);
        b.release(1);
        b.release(2);
        b.admit(t, 3, 0).unwrap();
        assert_eq!(b.admit(t, 4, 0), Err(Readiness::At(t0 + Duration::from_secs(90))));
    }

    #[test]
    fn readiness_names_the_instant_the_oldest_request_leaves() {
        let t0 = Instant::now();
        let mut b = rpm(1);
        b.admit(t0, 1, 0).unwrap();
        assert_eq!(
            b.readiness(t0 + Duration::from_secs(10), 0),
            Readiness::At(t0 + Duration::from_secs(60))
        );
        assert_eq!(b.readiness(t0 + Duration::from_secs(60), 0), Readiness::Now);
    }

    #[test]
    fn margin_keeps_a_slot_closed_a_little_past_the_edge() {
        let t0 = Instant::now();
        let mut b = KeyBudget::new(
            Limits {
                rpm: 1,
                ..Limits::default()
            },
            BudgetPolicy {
                margin: Duration::from_millis(500),
                ..policy()
            },
        );
        b.admit(t0, 1, 0).unwrap();
        assert_eq!(
            b.readiness(t0 + Duration::from_secs(60), 0),
            Readiness::At(t0 + Duration::from_millis(60_500))
        );
    }

    #[test]
    fn tokens_are_estimated_then_settled() {
        let t0 = Instant::now();
        let mut b = KeyBudget::new(
            Limits {
                tpm: 1000,
                ..Limits::default()
            },
            policy(),
        );
        b.admit(t0, 1, 900).unwrap();
        assert!(matches!(b.readiness(t0, 200), Readiness::At(_)));
        b.settle(1, 100);
        assert_eq!(b.readiness(t0, 200), Readiness::Now);
        assert_eq!(b.tokens_in_window(t0), 100);
    }

    #[test]
    fn a_request_larger_than_the_token_budget_waits_for_an_empty_window() {
        let t0 = Instant::now();
        let mut b = KeyBudget::new(
            Limits {
                tpm: 100,
                ..Limits::default()
            },
            policy(),
        );
        b.admit(t0, 1, 10).unwrap();
        assert_eq!(b.readiness(t0, 5000), Readiness::At(t0 + Duration::from_secs(60)));
        assert_eq!(b.readiness(t0 + Duration::from_secs(60), 5000), Readiness::Now);
    }

    #[test]
    fn concurrency_limit_waits_for_a_slot() {
        let t0 = Instant::now();
        let mut b = KeyBudget::new(
            Limits {
                max_concurrency: 1,
                ..Limits::default()
            },
            policy(),
        );
        b.admit(t0, 1, 0).unwrap();
        assert_eq!(b.readiness(t0, 0), Readiness::WhenSlotFrees);
        b.release(1);
        assert_eq!(b.readiness(t0, 0), Readiness::Now);
    }

    #[test]
    fn provider_429_lowers_the_limit_and_cools_down() {
        let t0 = Instant::now();
        let mut b = rpm(40);
        for i in 0..21 {
            b.admit(t0, i, 0).unwrap();
            b.release(i);
        }
        b.on_rate_limited(t0, None);
        assert_eq!(b.effective_rpm(), 20);
        assert_eq!(b.cooldown_remaining(t0), Some(Duration::from_secs(2)));
        // Second 429 in a row doubles the cooldown.
        b.on_rate_limited(t0, None);
        assert_eq!(b.cooldown_remaining(t0), Some(Duration::from_secs(4)));
        // The window is over the learned limit: ready when one leaves.
        assert_eq!(
            b.readiness(t0 + Duration::from_secs(5), 0),
            Readiness::At(t0 + Duration::from_secs(60))
        );
    }

    #[test]
    fn retry_after_sets_the_cooldown_without_lowering_the_limit() {
        let t0 = Instant::now();
        let mut b = rpm(40);
        b.admit(t0, 1, 0).unwrap();
        b.on_rate_limited(t0, Some(Duration::from_secs(7)));
        assert_eq!(b.effective_rpm(), 40);
        assert_eq!(b.readiness(t0, 0), Readiness::At(t0 + Duration::from_secs(7)));
    }

    #[test]
    fn learned_limit_recovers_slowly_after_a_quiet_window() {
        let t0 = Instant::now();
        let mut b = rpm(40);
        for i in 0..21 {
            b.admit(t0, i, 0).unwrap();
        }
        b.on_rate_limited(t0, None);
        assert_eq!(b.effective_rpm(), 20);
        b.readiness(t0 + Duration::from_secs(59), 0);
        assert_eq!(b.effective_rpm(), 20);
        b.readiness(t0 + Duration::from_secs(72), 0);
        assert_eq!(b.effective_rpm(), 22);
        b.readiness(t0 + Duration::from_secs(600), 0);
        assert_eq!(b.effective_rpm(), 40);
    }

    #[test]
    fn a_provider_that_keeps_refusing_makes_recovery_slower_each_time() {
        let t0 = Instant::now();
        let mut b = rpm(40);
        for i in 0..21 {
            b.admit(t0, i, 0).unwrap();
        }
        b.on_rate_limited(t0, None);
        // Recovered part-way, the provider refuses again at 22 in the window.
        let t1 = t0 + Duration::from_secs(66);
        b.readiness(t1, 0);
        assert_eq!(b.effective_rpm(), 21);
        b.on_rate_limited(t1, None);
        // Second strike: two quiet windows before climbing, at half the pace.
        b.readiness(t1 + Duration::from_secs(119), 0);
        let learned = b.effective_rpm();
        b.readiness(t1 + Duration::from_secs(120 + 12), 0);
        assert_eq!(b.effective_rpm(), learned + 1, "one step per 12 s now");
    }

    #[test]
    fn an_unsent_request_does_not_count() {
        let t0 = Instant::now();
        let mut b = rpm(1);
        b.admit(t0, 1, 0).unwrap();
        b.release(1);
        b.forget(1);
        assert_eq!(b.readiness(t0, 0), Readiness::Now);
    }
}
