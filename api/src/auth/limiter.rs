//! Login throttling per account and per client address (governor's GCRA).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Attempts from one address allowed per attempt on one account: a shared
/// office address logs several people in.
const ADDRESS_FACTOR: u32 = 4;

/// Keyed limiters for login attempts.
pub struct LoginLimiter {
    by_account: DefaultKeyedRateLimiter<String>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl LoginLimiter {
    /// `per_minute` attempts per account; four times that per address.
    pub fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute.max(1)).expect("at least one");
        let per_address = NonZeroU32::new(per_minute.get() * ADDRESS_FACTOR).expect("at least one");
        LoginLimiter {
            by_account: RateLimiter::keyed(Quota::per_minute(per_minute)),
            by_address: RateLimiter::keyed(Quota::per_minute(per_address)),
        }
    }

    /// Count one attempt; refuse when either key is over its quota.
    pub fn check(&self, account: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let now = DefaultClock::default().now();
        let refuse = |wait: std::time::Duration| ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs().max(1),
        };
        if let Some(addr) = address {
            self.by_address
                .check_key(&addr)
                .map_err(|not_until| refuse(not_until.wait_time_from(now)))?;
        }
        self.by_account
            .check_key(&account.to_lowercase())
            .map_err(|not_until| refuse(not_until.wait_time_from(now)))
    }
}
