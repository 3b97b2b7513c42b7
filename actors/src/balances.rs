//! Quota balances of users and tokens, held by the ledger so that reserving
//! and settling are exact under concurrent requests, and the spending not yet
//! written to the database. Pure logic, unit-tested.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

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
    pub fn forget(&mut self, target: crate::ledger::QuotaTarget) {
        match target {
            crate::ledger::QuotaTarget::User(id) => self.users.remove(&id),
            crate::ledger::QuotaTarget::Token(id) => self.tokens.remove(&id),
        };
    }

    /// Hold `amount` against the token and the user, or say whose quota is short.
    /// Any priced request needs at least one unit available.
    pub fn reserve(&mut self, user: i64, token: Option<i64>, amount: i64) -> Result<(), QuotaError> {
        let needed = amount.max(1);
        if let Some(t) = token.and_then(|t| self.tokens.get(&t)) {
            if let Limit::Left(left) = t.limit {
                if left - t.reserved < needed {
                    return Err(QuotaError::Token {
                        left: left - t.reserved,
                        needed: amount,
                    });
                }
            }
        }
        if let Some(u) = self.users.get(&user) {
            if let Limit::Left(left) = u.limit {
                if left - u.reserved < needed {
                    return Err(QuotaError::User {
                        left: left - u.reserved,
                        needed: amount,
                    });
                }
            }
        }
        if let Some(t) = token.and_then(|t| self.tokens.get_mut(&t)) {
            t.reserved += amount;
        }
        if let Some(u) = self.users.get_mut(&user) {
            u.reserved += amount;
        }
        Ok(())
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
        let charge = |account: Option<&mut Account>, delta: &mut Spent| {
            let limited = match account {
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
            delta.quota += spent;
            delta.requests += 1;
            delta.limited |= limited;
            delta.last_used = Some(at);
        };
        charge(self.users.get_mut(&user), deltas.users.entry(user).or_default());
        if let Some(t) = token {
            charge(self.tokens.get_mut(&t), deltas.tokens.entry(t).or_default());
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
        b.reserve(1, None, 60).unwrap();
        assert_eq!(
            b.reserve(1, None, 60),
            Err(QuotaError::User { left: 40, needed: 60 })
        );
        b.reserve(1, None, 40).unwrap();
        assert!(
            b.reserve(1, None, 0).is_err(),
            "a priced request needs at least one unit"
        );
    }

    #[test]
    fn settling_charges_the_real_cost_once() {
        let mut b = Balances::default();
        let mut d = Deltas::default();
        b.set_user(1, Limit::Left(100));
        b.set_token(9, Limit::Left(50));
        b.reserve(1, Some(9), 30).unwrap();
        b.settle(1, Some(9), 30, 10, &mut d, Utc::now());
        assert_eq!(d.users[&1].quota, 10);
        assert_eq!(d.tokens[&9].quota, 10);
        assert!(d.users[&1].limited);
        // 40 left on the token: 40 can be reserved, 41 cannot.
        assert!(b.reserve(1, Some(9), 41).is_err());
        b.reserve(1, Some(9), 40).unwrap();
    }

    #[test]
    fn unlimited_accounts_count_use_but_never_refuse() {
        let mut b = Balances::default();
        let mut d = Deltas::default();
        b.set_user(1, Limit::Unlimited);
        b.set_token(2, Limit::Unlimited);
        b.reserve(1, Some(2), 1_000_000).unwrap();
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
