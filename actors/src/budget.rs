//! The per-key budget: a strict sliding window over requests and tokens, the
//! learned (effective) limit, cooldowns and concurrency. Pure logic driven by an
//! explicit `now`, so it is unit-tested without sleeping.
//!
//! Providers such as NVIDIA NIM enforce a sliding 60 s window: a fixed per-minute
//! counter would let 2×RPM requests through around a minute boundary and earn 429s.

use std::time::{Duration, Instant};

use crate::window::Window;

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

/// How a request on a budget ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// It went out; its tokens as counted (or settled earlier) stand.
    Sent,
    /// It went out and used this many tokens: replaces the estimate.
    Used(u64),
    /// It never went out: it does not count.
    Unsent,
}

impl End {
    /// How a request ended, as its permit reports it: whether it went out,
    /// and its real tokens when known.
    pub fn reported(sent: bool, tokens: Option<u64>) -> End {
        match (sent, tokens) {
            (false, _) => End::Unsent,
            (true, Some(t)) => End::Used(t),
            (true, None) => End::Sent,
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
    /// Learned token limit, when the token window was what the provider refused.
    learned_tpm: Option<u64>,
    window: Window,
    in_flight: u32,
    cooldown_until: Option<Instant>,
    consecutive_429: u32,
    /// Throttling events that taught a lower limit, decaying by one per ten
    /// quiet windows: a key whose provider keeps refusing recovers ever slower.
    strikes: u32,
    last_429: Option<Instant>,
    last_recovery: Option<Instant>,
    /// Replicas that split the limits while they cannot share windows (1 = all of them).
    share: u32,
}

/// Permit ids of requests other replicas sent, counted while Redis is away.
const FOREIGN: u64 = u64::MAX / 2;

impl KeyBudget {
    /// A fresh budget with nothing used.
    pub fn new(configured: Limits, policy: BudgetPolicy) -> Self {
        let limited = configured.rpm > 0 || configured.tpm > 0;
        KeyBudget {
            policy,
            configured,
            learned_rpm: None,
            learned_tpm: None,
            window: Window::new(policy.window + policy.margin, limited, Instant::now()),
            in_flight: 0,
            cooldown_until: None,
            consecutive_429: 0,
            strikes: 0,
            last_429: None,
            last_recovery: None,
            share: 1,
        }
    }

    /// Keep to one `replicas`-th of every limit (at least one request): what a
    /// replica may use alone while the replicas cannot share their windows.
    pub fn set_share(&mut self, replicas: u32) {
        self.share = replicas.max(1);
    }

    /// The limits this budget admits up to: its share of the limits in force.
    fn in_force(&self) -> (u32, u64, u32) {
        let share = self.share;
        let part = |limit: u64| {
            if limit == 0 {
                0
            } else {
                (limit / u64::from(share)).max(1)
            }
        };
        (
            part(u64::from(self.effective_rpm())) as u32,
            part(self.effective_tpm()),
            part(u64::from(self.configured.max_concurrency)) as u32,
        )
    }

    /// Count `requests` (with `tokens` in all) that other replicas sent, as
    /// if sent `now`: late rather than early, so the window never looks emptier
    /// than it is.
    pub fn record_foreign(&mut self, now: Instant, requests: u32, tokens: u64) {
        self.window.prune(now);
        for i in 0..u64::from(requests) {
            let permit = FOREIGN + i;
            self.window.push(now, permit, if i == 0 { tokens } else { 0 });
            self.window.close(permit);
        }
    }

    /// Another replica learned these limits from a provider 429 on this key:
    /// take the lower of them and recover from now, as if refused here.
    pub fn adopt(&mut self, now: Instant, rpm: u32, tpm: u64) {
        let mut lowered = false;
        if rpm > 0 && (self.effective_rpm() == 0 || rpm < self.effective_rpm()) {
            self.learned_rpm = Some(rpm);
            lowered = true;
        }
        if tpm > 0 && (self.effective_tpm() == 0 || tpm < self.effective_tpm()) {
            self.learned_tpm = Some(tpm);
            lowered = true;
        }
        if lowered {
            self.last_429 = Some(now);
            self.last_recovery = Some(now);
            self.fit_window(now);
        }
    }

    /// Replace the configured limits, keeping what was used in the window.
    pub fn set_limits(&mut self, configured: Limits) {
        self.configured = configured;
        if let (Some(learned), true) = (self.learned_rpm, configured.rpm > 0) {
            self.learned_rpm = Some(learned.min(configured.rpm));
        }
        if let (Some(learned), true) = (self.learned_tpm, configured.tpm > 0) {
            self.learned_tpm = Some(learned.min(configured.tpm));
        }
        self.fit_window(Instant::now());
    }

    /// Keep every request while a limit needs the edges, counts otherwise.
    fn fit_window(&mut self, now: Instant) {
        let limited = self.effective_rpm() > 0 || self.effective_tpm() > 0;
        match (limited, self.window.is_exact()) {
            (true, false) => self.window.make_exact(now),
            (false, true) => self.window.make_counted(),
            _ => {}
        }
    }

    /// The configured limits.
    pub fn configured(&self) -> Limits {
        self.configured
    }

    /// The request limit in force now (0 = unlimited).
    pub fn effective_rpm(&self) -> u32 {
        self.learned_rpm.unwrap_or(self.configured.rpm)
    }

    /// The token limit in force now (0 = unlimited).
    pub fn effective_tpm(&self) -> u64 {
        self.learned_tpm.unwrap_or(self.configured.tpm)
    }

    /// Requests counted in the current window.
    pub fn requests_in_window(&mut self, now: Instant) -> u32 {
        self.window.prune(now);
        self.window.requests(now)
    }

    /// Tokens counted in the current window.
    pub fn tokens_in_window(&mut self, now: Instant) -> u64 {
        self.window.prune(now);
        self.window.tokens(now)
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
        self.window.prune(now);
        let (rpm, tpm, max_concurrency) = self.in_force();
        if max_concurrency > 0 && self.in_flight >= max_concurrency {
            return Readiness::WhenSlotFrees;
        }
        let mut at = now;
        if let Some(until) = self.cooldown_until {
            at = at.max(until);
        }
        let rpm = rpm as usize;
        let requests = self.window.requests(now) as usize;
        if rpm > 0 && requests >= rpm {
            // The oldest entries must leave until one slot is free.
            if let Some(leaves) = self.window.leaves_at(requests - rpm) {
                at = at.max(leaves);
            }
        }
        if tpm > 0 {
            // A request larger than the whole budget goes alone, into an empty window.
            let need = tokens.min(tpm);
            if self.window.tokens(now) + need > tpm {
                if let Some(frees) = self.window.tokens_free_at(need, tpm) {
                    at = at.max(frees);
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
                self.record(now, permit, tokens);
                Ok(())
            }
            other => Err(other),
        }
    }

    /// Count a request admitted elsewhere (a tenant's request a key accepted),
    /// whatever the budget says: it went out.
    pub fn record(&mut self, now: Instant, permit: u64, tokens: u64) {
        self.window.prune(now);
        self.window.push(now, permit, tokens);
        self.in_flight += 1;
    }

    /// Which limit holds a request of `tokens` back now, if one does.
    pub fn binding(&mut self, now: Instant, tokens: u64) -> Option<Binding> {
        if self.readiness(now, tokens) == Readiness::Now {
            return None;
        }
        let (rpm, tpm, max) = self.in_force();
        Some(if max > 0 && self.in_flight >= max {
            Binding::Concurrency(max)
        } else if rpm > 0 && self.window.requests(now) >= rpm {
            Binding::Requests(rpm)
        } else if tpm > 0 && self.window.tokens(now) + tokens.min(tpm) > tpm {
            Binding::Tokens(tpm)
        } else {
            Binding::Cooldown
        })
    }

    /// The request ended: its concurrency slot frees, and its tokens are settled
    /// (or, never sent, it stops counting).
    pub fn finish(&mut self, permit: u64, end: End) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match end {
            End::Sent => self.window.close(permit),
            End::Used(tokens) => self.window.settle(permit, tokens),
            End::Unsent => self.window.forget(permit),
        }
    }

    /// The request succeeded: consecutive throttling is over.
    pub fn on_success(&mut self) {
        self.consecutive_429 = 0;
    }

    /// The provider answered 429 to `permit`: its real limit is lower than we
    /// believed. Cool down (for `retry_after` when the provider says) and lower
    /// the limit that was tighter — requests or tokens — to what the window held
    /// when the provider refused.
    pub fn on_rate_limited(&mut self, now: Instant, retry_after: Option<Duration>, permit: u64) {
        self.window.prune(now);
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
        if retry_after.is_some() {
            return;
        }
        // The refused request is in the window; the provider accepted the others.
        // Providers such as NVIDIA count strictly per key, so one refusal teaches
        // the real limit — of whichever the window was fuller of.
        let requests = self.window.requests(now);
        let tokens = self.window.tokens(now);
        let (rpm, tpm) = (self.effective_rpm(), self.effective_tpm());
        let tokens_tighter =
            tpm > 0 && (rpm == 0 || tokens as f64 / tpm as f64 >= requests as f64 / rpm as f64);
        if tokens_tighter {
            let refused = self.window.tokens_of(permit).unwrap_or(0);
            let accepted = tokens.saturating_sub(refused).max(1);
            if accepted < tpm {
                self.learned_tpm = Some(accepted);
            }
        } else {
            let accepted = requests.saturating_sub(1).max(1);
            if rpm == 0 || accepted < rpm {
                self.learned_rpm = Some(accepted);
            }
        }
        self.fit_window(now);
    }

    /// A learned limit creeps back towards the configured one: a tenth of the
    /// way per tenth of a window (one request, or a tenth of the token budget),
    /// once a whole window has passed without a 429; each further strike doubles
    /// both the quiet period and the step.
    fn recover(&mut self, now: Instant) {
        if self.learned_rpm.is_none() && self.learned_tpm.is_none() {
            return;
        }
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
        // No configured limit to return to: forget the learned one after five quiet windows.
        let forget = now >= last_429 + window * 5;
        if let Some(learned) = self.learned_rpm {
            let raised = learned.saturating_add(steps);
            let configured = self.configured.rpm;
            let recovered = if configured > 0 {
                raised >= configured
            } else {
                forget
            };
            self.learned_rpm = (!recovered).then_some(raised);
        }
        if let Some(learned) = self.learned_tpm {
            let configured = self.configured.tpm;
            let raised = learned.saturating_add(u64::from(steps) * (configured / 10).max(1));
            let recovered = configured == 0 || raised >= configured;
            self.learned_tpm = (!recovered).then_some(raised);
        }
        self.fit_window(now);
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
    fn a_share_keeps_a_replica_to_its_part_of_every_limit() {
        let t0 = Instant::now();
        let mut b = rpm(5);
        b.set_share(2);
        b.admit(t0, 1, 0).unwrap();
        b.admit(t0, 2, 0).unwrap();
        // Two of five: the other replica may send the rest.
        assert_eq!(
            b.admit(t0, 3, 0),
            Err(Readiness::At(t0 + Duration::from_secs(60)))
        );
        b.set_share(1);
        b.admit(t0, 3, 0).unwrap();
        // A share never rounds a limit down to nothing.
        let mut one = rpm(1);
        one.set_share(3);
        one.admit(t0, 1, 0).unwrap();
    }

    #[test]
    fn requests_other_replicas_sent_fill_the_window_until_it_slides() {
        let t0 = Instant::now();
        let mut b = rpm(3);
        b.record_foreign(t0, 2, 0);
        b.admit(t0, 1, 0).unwrap();
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            b.admit(later, 2, 0),
            Err(Readiness::At(t0 + Duration::from_secs(60)))
        );
        assert_eq!(b.in_flight(), 1, "foreign requests hold no slot here");
        b.admit(t0 + Duration::from_secs(60), 2, 0).unwrap();
    }

    #[test]
    fn limits_another_replica_learned_are_taken_and_recovered_from() {
        let t0 = Instant::now();
        let mut b = rpm(40);
        b.adopt(t0, 30, 0);
        assert_eq!(b.effective_rpm(), 30);
        // A higher one teaches nothing.
        b.adopt(t0, 35, 0);
        assert_eq!(b.effective_rpm(), 30);
        // Recovered after the quiet window, a step at a time, as after its own 429.
        b.readiness(t0 + Duration::from_secs(66), 0);
        assert_eq!(b.effective_rpm(), 31);
    }

    #[test]
    fn window_slides_instead_of_resetting_each_minute() {
        let t0 = Instant::now();
        let mut b = rpm(2);
        b.admit(t0, 1, 0).unwrap();
        b.admit(t0 + Duration::from_secs(30), 2, 0).unwrap();
        // At 61 s a fixed minute counter would allow two more; the window holds one.
        let t = t0 + Duration::from_secs(61);
        b.finish(1, End::Sent);
        b.finish(2, End::Sent);
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
        b.finish(1, End::Used(100));
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
        b.finish(1, End::Sent);
        assert_eq!(b.readiness(t0, 0), Readiness::Now);
    }

    #[test]
    fn provider_429_lowers_the_limit_and_cools_down() {
        let t0 = Instant::now();
        let mut b = rpm(40);
        for i in 0..21 {
            b.admit(t0, i, 0).unwrap();
            b.finish(i, End::Sent);
        }
        b.on_rate_limited(t0, None, 0);
        assert_eq!(b.effective_rpm(), 20);
        assert_eq!(b.cooldown_remaining(t0), Some(Duration::from_secs(2)));
        // Second 429 in a row doubles the cooldown.
        b.on_rate_limited(t0, None, 0);
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
        b.on_rate_limited(t0, Some(Duration::from_secs(7)), 0);
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
        b.on_rate_limited(t0, None, 0);
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
        b.on_rate_limited(t0, None, 0);
        // Recovered part-way, the provider refuses again at 22 in the window.
        let t1 = t0 + Duration::from_secs(66);
        b.readiness(t1, 0);
        assert_eq!(b.effective_rpm(), 21);
        b.on_rate_limited(t1, None, 0);
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
        b.finish(1, End::Unsent);
        assert_eq!(b.readiness(t0, 0), Readiness::Now);
    }

    #[test]
    fn a_refusal_when_the_token_window_is_fuller_lowers_the_token_budget() {
        let t0 = Instant::now();
        let mut b = KeyBudget::new(
            Limits {
                rpm: 40,
                tpm: 3000,
                ..Limits::default()
            },
            policy(),
        );
        // Five big prompts: the token window is 83 % full, the request window 12 %.
        for i in 0..5 {
            b.admit(t0, i, 500).unwrap();
        }
        for i in 0..4 {
            b.finish(i, End::Sent);
        }
        // The fifth is refused; the key learns before the request leaves its budget.
        b.on_rate_limited(t0, None, 4);
        assert_eq!(b.effective_rpm(), 40, "the request limit stands");
        assert_eq!(
            b.effective_tpm(),
            2000,
            "what the provider accepted before the refused one"
        );
        // Recovery: a tenth of the configured budget per tenth of a window, after a quiet one.
        b.readiness(t0 + Duration::from_secs(66), 0);
        assert_eq!(b.effective_tpm(), 2300);
        b.readiness(t0 + Duration::from_secs(600), 0);
        assert_eq!(b.effective_tpm(), 3000);
    }

    #[test]
    fn a_refusal_when_the_request_window_is_fuller_lowers_the_request_limit() {
        let t0 = Instant::now();
        let mut b = KeyBudget::new(
            Limits {
                rpm: 40,
                tpm: 100_000,
                ..Limits::default()
            },
            policy(),
        );
        for i in 0..21 {
            b.admit(t0, i, 10).unwrap();
        }
        b.on_rate_limited(t0, None, 20);
        assert_eq!((b.effective_rpm(), b.effective_tpm()), (20, 100_000));
    }

    #[test]
    fn an_unlimited_key_keeps_counts_and_learns_a_limit_when_refused() {
        let t0 = Instant::now();
        let mut b = KeyBudget::new(Limits::default(), policy());
        for i in 0..10 {
            b.admit(t0, i, 1).unwrap();
            b.finish(i, End::Sent);
        }
        assert_eq!(b.requests_in_window(t0), 10);
        b.on_rate_limited(t0, None, 9);
        assert_eq!(b.effective_rpm(), 9, "learned from the counts");
        assert!(matches!(
            b.readiness(t0 + Duration::from_secs(3), 0),
            Readiness::At(_)
        ));
    }
}
