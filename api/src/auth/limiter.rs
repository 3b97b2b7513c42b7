//! Login throttling that slows a guesser without locking the owner out.
//!
//! Only failures count, on three keys (governor's GCRA does the arithmetic):
//! - an account from one address: `per_minute` (a typo or two never matters);
//! - one address, over all accounts: four times that (an office behind one
//!   address logs several people in; a guesser cycling accounts is slowed);
//! - an account from everywhere: a high ceiling an hour, so guessing from many
//!   addresses is bounded too; only such a distributed attack can reach it.
//!
//! Someone else failing to log in as you from another address never stops you:
//! the first key is per address. Once a key is over its quota, attempts on it
//! are refused until the quota frees a failure again.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Failures from one address allowed per failure on one account from it.
const ADDRESS_FACTOR: u32 = 4;

/// Failures an hour on one account, from everywhere, per failure a minute
/// allowed on it from one address.
const ACCOUNT_CEILING_FACTOR: u32 = 20;

/// Failures between two sweeps of keys gone quiet.
const SWEEP_EVERY: u64 = 4096;

/// One kind of key: its quota of failures, and when its refused keys free up.
struct Keyed<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    blocked: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    /// `allowed` failures, then one each `allowed`-th of `period`.
    fn new(allowed: NonZeroU32, period: Duration) -> Self {
        // The burst is one less than allowed: the failure that uses the last
        // cell is the one that blocks, so exactly `allowed` fail before a refusal.
        let burst = NonZeroU32::new(allowed.get().saturating_sub(1).max(1)).expect("at least one");
        let quota = Quota::with_period(period / allowed.get())
            .expect("a positive period")
            .allow_burst(burst);
        Keyed {
            limiter: RateLimiter::keyed(quota),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` is still refused, if it is.
    fn refused_for(&self, key: &K, now: Instant) -> Option<Duration> {
        let blocked = self.blocked.lock().expect("limiter lock");
        blocked
            .get(key)
            .and_then(|until| until.checked_duration_since(now))
    }

    /// Count a failure on `key`; over its quota, refuse it until a cell frees.
    fn fail(&self, key: &K) {
        let clock = DefaultClock::default();
        if let Err(not_until) = self.limiter.check_key(key) {
            let wait = not_until.wait_time_from(clock.now());
            let until = Instant::now() + wait.max(Duration::from_secs(1));
            self.blocked
                .lock()
                .expect("limiter lock")
                .insert(key.clone(), until);
        }
    }

    fn sweep(&self, now: Instant) {
        self.limiter.retain_recent();
        self.blocked
            .lock()
            .expect("limiter lock")
            .retain(|_, until| *until > now);
    }
}

/// Keyed failure counters for logins (and for password-reset requests).
pub struct LoginLimiter {
    pair: Keyed<(String, Option<IpAddr>)>,
    address: Keyed<IpAddr>,
    account: Keyed<String>,
    failures: AtomicU64,
}

impl LoginLimiter {
    /// `per_minute` failures per account and address; four times that per
    /// address; twenty times that an hour per account.
    pub fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute.max(1)).expect("at least one");
        let per_address = per_minute.saturating_mul(NonZeroU32::new(ADDRESS_FACTOR).expect("nonzero"));
        let per_hour = per_minute.saturating_mul(NonZeroU32::new(ACCOUNT_CEILING_FACTOR).expect("nonzero"));
        LoginLimiter {
            pair: Keyed::new(per_minute, Duration::from_secs(60)),
            address: Keyed::new(per_address, Duration::from_secs(60)),
            account: Keyed::new(per_hour, Duration::from_secs(3600)),
            failures: AtomicU64::new(0),
        }
    }

    /// May `account` try from `address` now? Counts nothing.
    pub fn check(&self, account: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let now = Instant::now();
        let account = account.to_lowercase();
        let waits = [
            self.pair.refused_for(&(account.clone(), address), now),
            address.and_then(|a| self.address.refused_for(&a, now)),
            self.account.refused_for(&account, now),
        ];
        match waits.into_iter().flatten().max() {
            Some(wait) => Err(ApiError::TooManyRequests {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }),
            None => Ok(()),
        }
    }

    /// `account` failed from `address`.
    pub fn failed(&self, account: &str, address: Option<IpAddr>) {
        let account = account.to_lowercase();
        self.pair.fail(&(account.clone(), address));
        if let Some(a) = address {
            self.address.fail(&a);
        }
        self.account.fail(&account);
        if self.failures.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let now = Instant::now();
            self.pair.sweep(now);
            self.address.sweep(now);
            self.account.sweep(now);
        }
    }

    /// Check and count at once: for requests that cost something each time
    /// whatever their outcome (a password-reset mail).
    pub fn hit(&self, key: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        self.check(key, address)?;
        self.failed(key, address);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn only_failures_count_and_exactly_the_allowed_number_pass() {
        let l = LoginLimiter::new(5);
        for _ in 0..20 {
            l.check("ada", ip(1)).expect("successes are never counted");
        }
        for n in 0..5 {
            l.check("ada", ip(1))
                .unwrap_or_else(|_| panic!("failure {n} may be tried"));
            l.failed("ada", ip(1));
        }
        assert!(matches!(
            l.check("Ada", ip(1)),
            Err(ApiError::TooManyRequests { retry_after_secs }) if (1..=12).contains(&retry_after_secs)
        ));
    }

    #[test]
    fn someone_failing_from_elsewhere_does_not_lock_the_owner_out() {
        let l = LoginLimiter::new(5);
        for _ in 0..5 {
            l.failed("ada", ip(66));
        }
        assert!(l.check("ada", ip(66)).is_err());
        assert!(
            l.check("ada", ip(1)).is_ok(),
            "the owner's address is another key"
        );
    }

    #[test]
    fn an_address_cycling_accounts_is_slowed() {
        let l = LoginLimiter::new(5);
        for n in 0..20 {
            l.failed(&format!("user{n}"), ip(66));
        }
        assert!(l.check("someone-new", ip(66)).is_err());
        assert!(l.check("someone-new", ip(1)).is_ok());
    }

    #[test]
    fn an_account_guessed_from_many_addresses_reaches_a_ceiling() {
        let l = LoginLimiter::new(5);
        for n in 0..100u8 {
            l.failed("ada", ip(n));
        }
        assert!(
            l.check("ada", ip(200)).is_err(),
            "100 failures an hour from anywhere"
        );
        assert!(l.check("bob", ip(200)).is_ok());
    }
}
