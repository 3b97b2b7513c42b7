//! Quota balances of users and tokens, held by the ledger so that reserving
//! and settling are exact under concurrent requests, and the spending not yet
//! written to the database. Pure logic, unit-tested.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::ledger::QuotaTarget;

/// How much an account may still spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// No limit (root, unlimited tokens).
    Unlimited,
    /// Quota units left.
    Left(i64),
}

#[derive(Clone, Copy, Debug)]
struct Account {
    limit: Limit,
    reserved: i64,
}

/// Whose quota ran out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The user's.
    #[error("your account's quota is used up ({left} left, this request needs about {needed}); ask an admin to top it up")]
    User {
        /// Units left after other requests' reservations.
        left: i64,
        /// Units this request was estimated at.
        needed: i64,
    },
    /// The token's.
    #[error("this token's quota is used up ({left} left, this request needs about {needed})")]
    Token {
        /// Units left after other requests' reservations.
        left: i64,
        /// Units this request was estimated at.
        needed: i64,
    },
}

/// What a request asks to hold: `full` (its prompt and whole output allowance)
/// and, when it may be sent with less output, the `min` it cannot go without
/// (`min == full` when it may not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    /// Units for the whole allowance.
    pub full: i64,
    /// Units it can go with at least.
    pub min: i64,
}

/// Quota held for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    /// Units held (between `min` and `full`).
    pub amount: i64,
    /// Whether the user or the token has a limit at all (an unlimited account's
    /// requests need no cap on their output).
    pub limited: bool,
}

/// The answer to [`Balances::reserve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Held.
    Granted(Granted),
    /// Not now: other requests hold what would pay for it; ask again when they settle.
    Wait,
    /// Never: what is left cannot pay for it.
    Short(QuotaError),
}

/// Spending not yet written, per account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    /// Quota units spent.
    pub quota: i64,
    /// Requests made.
    pub requests: i64,
    /// Whether the account is limited (its "left" goes down in the database).
    pub limited: bool,
    /// When it was last used.
    pub last_used: Option<DateTime<Utc>>,
}

/// What the next write must add to users and tokens.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deltas {
    /// Per user id.
    pub users: HashMap<i64, Spent>,
    /// Per token id.
    pub tokens: HashMap<i64, Spent>,
}

impl Deltas {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.tokens.is_empty()
    }

    /// Count one request against an account: `spent` units, taken from what
    /// is left in the database too when the account is `limited`.
    pub fn count(&mut self, account: QuotaTarget, spent: i64, limited: bool, at: DateTime<Utc>) {
        let delta = match account {
            QuotaTarget::User(id) => self.users.entry(id).or_default(),
            QuotaTarget::Token(id) => self.tokens.entry(id).or_default(),
        };
        delta.quota += spent;
        delta.requests += 1;
        delta.limited |= limited;
        delta.last_used = Some(at);
    }

    /// Put back deltas whose write failed.
    pub fn merge(&mut self, other: Deltas) {
        for (map, from) in [(&mut self.users, other.users), (&mut self.tokens, other.tokens)] {
            for (id, s) in from {
                let e = map.entry(id).or_default();
                e.quota += s.quota;
                e.requests += s.requests;
                e.limited |= s.limited;
                e.last_used = e.last_used.max(s.last_used);
            }
        }
    }
}

/// Balances of the accounts seen so far.
#[derive(Debug, Default)]
pub struct Balances {
    users: HashMap<i64, Account>,
    tokens: HashMap<i64, Account>,
}

impl Balances {
    /// Whether both accounts are loaded.
    pub fn knows(&self, user: i64, token: Option<i64>) -> bool {
        self.users.contains_key(&user) && token.is_none_or(|t| self.tokens.contains_key(&t))
    }

    /// Load (or reload) a user's balance, keeping reservations in flight.
    pub fn set_user(&mut self, id: i64, limit: Limit) {
        self.users
            .entry(id)
            .and_modify(|a| a.limit = limit)
            .or_insert(Account { limit, reserved: 0 });
    }

    /// Load (or reload) a token's balance, keeping reservations in flight.
    pub fn set_token(&mut self, id: i64, limit: Limit) {
        self.tokens
            .entry(id)
            .and_modify(|a| a.limit = limit)
            .or_insert(Account { limit, reserved: 0 });
    }

    /// Drop a cached balance; it is loaded again on next use.
    pub fn forget(&mut self, target: QuotaTarget) {
        match target {
            QuotaTarget::User(id) => self.users.remove(&id),
            QuotaTarget::Token(id) => self.tokens.remove(&id),
        };
    }

    /// Whether the account is loaded and has a limit.
    pub fn is_limited(&self, target: QuotaTarget) -> bool {
        let account = match target {
            QuotaTarget::User(id) => self.users.get(&id),
            QuotaTarget::Token(id) => self.tokens.get(&id),
        };
        matches!(
            account,
            Some(Account {
                limit: Limit::Left(_),
                ..
            })
        )
    }

    /// Hold up to `ask.full` against the token and the user: all of it when both
    /// have room; wait when what other requests hold would make room for all of
    /// it once they settle; as much as is left (at least `ask.min`) when the
    /// balance itself is less; or wait for the `min` to come free.
    /// A priced request needs at least one unit.
    pub fn reserve(&mut self, user: i64, token: Option<i64>, ask: Ask) -> Reservation {
        let accounts = [token.and_then(|t| self.tokens.get(&t)), self.users.get(&user)];
        let mut available = i64::MAX;
        let mut left_least = i64::MAX;
        let mut short: Option<QuotaError> = None;
        let min = ask.min.max(1);
        for (i, account) in accounts.iter().enumerate() {
            let Some(Account {
                limit: Limit::Left(left),
                reserved,
            }) = account
            else {
                continue;
            };
            available = available.min(left - reserved);
            left_least = left_least.min(*left);
            if *left < min && short.is_none() {
                short = Some(if i == 0 {
                    QuotaError::Token {
                        left: *left,
                        needed: min,
                    }
                } else {
                    QuotaError::User {
                        left: *left,
                        needed: min,
                    }
                });
            }
        }
        if let Some(e) = short {
            return Reservation::Short(e);
        }
        let limited = available != i64::MAX;
        let amount = if available >= ask.full.max(1) {
            ask.full
        } else if left_least >= ask.full.max(1) {
            // What others hold would pay for all of it once they settle:
            // better to wait than to be cut short.
            return Reservation::Wait;
        } else if available >= min {
            available
        } else {
            return Reservation::Wait;
        };
        if let Some(t) = token.and_then(|t| self.tokens.get_mut(&t)) {
            t.reserved += amount;
        }
        if let Some(u) = self.users.get_mut(&user) {
            u.reserved += amount;
        }
        Reservation::Granted(Granted { amount, limited })
    }

    /// Give back a reservation that was never settled (the request did not go).
    pub fn release(&mut self, user: i64, token: Option<i64>, amount: i64) {
        for account in [
            token.and_then(|t| self.tokens.get_mut(&t)),
            self.users.get_mut(&user),
        ]
        .into_iter()
        .flatten()
        {
            account.reserved = (account.reserved - amount).max(0);
        }
    }

    /// Release a reservation and charge what was really spent; returns the
    /// changes to write.
    pub fn settle(
        &mut self,
        user: i64,
        token: Option<i64>,
        reserved: i64,
        spent: i64,
        deltas: &mut Deltas,
        at: DateTime<Utc>,
    ) {
        let charge = |account: Option<&mut Account>| match account {
            Some(a) => {
                a.reserved = (a.reserved - reserved).max(0);
                if let Limit::Left(left) = &mut a.limit {
                    *left -= spent;
                    true
                } else {
                    false
                }
            }
            // Not loaded: nothing priced was reserved; still count the use.
            None => false,
        };
        let limited = charge(self.users.get_mut(&user));
        deltas.count(QuotaTarget::User(user), spent, limited, at);
        if let Some(t) = token {
            let limited = charge(self.tokens.get_mut(&t));
            deltas.count(QuotaTarget::Token(t), spent, limited, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_count_against_what_is_left() {
        let mut b = Balances::default();
        b.set_user(1, Limit::Left(100));
        let whole = |n| Ask { full: n, min: n };
        assert!(
            matches!(b.reserve(1, None, whole(60)), Reservation::Granted(g) if g.amount == 60 && g.limited)
        );
        // 40 free, 60 held: 60 more could go once the first settles.
        assert_eq!(b.reserve(1, None, whole(60)), Reservation::Wait);
        assert!(matches!(b.reserve(1, None, whole(40)), Reservation::Granted(_)));
        // More than the whole balance can never go.
        assert_eq!(
            b.reserve(1, None, whole(101)),
            Reservation::Short(QuotaError::User {
                left: 100,
                needed: 101
            })
        );
        assert_eq!(
            b.reserve(1, None, whole(0)),
            Reservation::Wait,
            "a priced request needs at least one unit"
        );
        b.release(1, None, 60);
        assert!(matches!(b.reserve(1, None, whole(60)), Reservation::Granted(_)));
    }

    #[test]
    fn a_request_that_may_be_cut_short_takes_what_is_left() {
        let mut b = Balances::default();
        b.set_user(1, Limit::Left(100));
        b.set_token(9, Limit::Left(70));
        let clampable = Ask { full: 500, min: 10 };
        // The token is the tighter account: 70 of the 500 asked.
        assert_eq!(
            b.reserve(1, Some(9), clampable),
            Reservation::Granted(Granted {
                amount: 70,
                limited: true
            })
        );
        assert_eq!(
            b.reserve(1, Some(9), clampable),
            Reservation::Wait,
            "the token's 70 are held"
        );
        let mut d = Deltas::default();
        b.settle(1, Some(9), 70, 30, &mut d, Utc::now());
        assert_eq!(
            b.reserve(1, Some(9), clampable),
            Reservation::Granted(Granted {
                amount: 40,
                limited: true
            })
        );
        assert!(matches!(
            b.reserve(1, Some(9), Ask { full: 500, min: 41 }),
            Reservation::Short(QuotaError::Token { left: 40, needed: 41 })
        ));
    }

    #[test]
    fn a_request_the_balance_could_pay_in_full_waits_rather_than_being_cut() {
        let mut b = Balances::default();
        b.set_user(1, Limit::Left(100));
        let clampable = |full| Ask { full, min: 5 };
        assert!(matches!(b.reserve(1, None, clampable(60)), Reservation::Granted(g) if g.amount == 60));
        // 40 free, but the balance could pay 60 once the first settles.
        assert_eq!(b.reserve(1, None, clampable(60)), Reservation::Wait);
        let mut d = Deltas::default();
        b.settle(1, None, 60, 50, &mut d, Utc::now());
        // 50 left: 60 can never be paid in full, so it goes with the 50.
        assert_eq!(
            b.reserve(1, None, clampable(60)),
            Reservation::Granted(Granted {
                amount: 50,
                limited: true
            })
        );
    }

    #[test]
    fn settling_charges_the_real_cost_once() {
        let mut b = Balances::default();
        let mut d = Deltas::default();
        b.set_user(1, Limit::Left(100));
        b.set_token(9, Limit::Left(50));
        let whole = |n| Ask { full: n, min: n };
        assert!(matches!(
            b.reserve(1, Some(9), whole(30)),
            Reservation::Granted(_)
        ));
        b.settle(1, Some(9), 30, 10, &mut d, Utc::now());
        assert_eq!(d.users[&1].quota, 10);
        assert_eq!(d.tokens[&9].quota, 10);
        assert!(d.users[&1].limited);
        // 40 left on the token: 40 can be reserved, 41 never.
        assert!(matches!(b.reserve(1, Some(9), whole(41)), Reservation::Short(_)));
        assert!(matches!(
            b.reserve(1, Some(9), whole(40)),
            Reservation::Granted(_)
        ));
    }

    #[test]
    fn unlimited_accounts_count_use_but_never_refuse() {
        let mut b = Balances::default();
        let mut d = Deltas::default();
        b.set_user(1, Limit::Unlimited);
        b.set_token(2, Limit::Unlimited);
        assert_eq!(
            b.reserve(
                1,
                Some(2),
                Ask {
                    full: 1_000_000,
                    min: 1_000_000
                }
            ),
            Reservation::Granted(Granted {
                amount: 1_000_000,
                limited: false
            })
        );
        b.settle(1, Some(2), 1_000_000, 5, &mut d, Utc::now());
        assert!(!d.users[&1].limited);
        assert_eq!(d.users[&1].requests, 1);
    }

    #[test]
    fn failed_writes_merge_back() {
        let mut a = Deltas::default();
        a.users.insert(
            1,
            Spent {
                quota: 3,
                requests: 1,
                limited: true,
                last_used: None,
            },
        );
        let mut b = Deltas::default();
        b.users.insert(
            1,
            Spent {
                quota: 4,
                requests: 2,
                limited: false,
                last_used: None,
            },
        );
        a.merge(b);
        assert_eq!(
            a.users[&1],
            Spent {
                quota: 7,
                requests: 3,
                limited: true,
                last_used: None
            }
        );
    }
}
