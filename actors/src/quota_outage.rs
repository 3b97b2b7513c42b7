//! When a replica cannot reach Redis it keeps serving, from balances loaded
//! from the database but cut to a share of what is left (the other replicas
//! may be spending the same balance on their own at the same time), and it
//! keeps the book of what it owes the shared balances, to settle once Redis
//! answers again. Pure logic, unit-tested.
//!
//! Why Redis is charged what was spent rather than reloaded from the database
//! when it is back: Redis's balance already counts every settlement the other
//! replicas made in Redis, and those are in the database only once each
//! replica's ledger has written its batch. A reload would forget whatever
//! they had not written yet and hand it out a second time; charging what this
//! replica spent on its own leaves every other settlement counted once.

use std::collections::BTreeMap;

use crate::balances::Limit;
use crate::ledger::QuotaTarget;
use crate::quota_store::Owed;

/// What one replica may spend of `limit` while it cannot reach Redis, with
/// `replicas` replicas live: an even share, so that all of them together
/// spend no more than is left. An account already overdrawn stays so.
pub fn outage_share(limit: Limit, replicas: usize) -> Limit {
    match limit {
        Limit::Left(left) if left > 0 => Limit::Left(left / replicas.max(1) as i64),
        other => other,
    }
}

/// What this replica owes the shared balances since Redis stopped answering.
#[derive(Debug, Default)]
pub struct Outage {
    owed: BTreeMap<QuotaTarget, Owed>,
}

impl Outage {
    /// Nothing owed.
    pub fn is_empty(&self) -> bool {
        self.owed.is_empty()
    }

    /// A request settled on this replica's own share spent `units` of `account`.
    pub fn spent(&mut self, account: QuotaTarget, units: i64) {
        if units != 0 {
            self.owed.entry(account).or_default().spent += units;
        }
    }

    /// A request held `hold` in Redis and spent `charge` units, but Redis
    /// could not be told: give the hold back and charge it later.
    pub fn settle_failed(&mut self, account: QuotaTarget, hold: String, charge: i64) {
        let owed = self.owed.entry(account).or_default();
        owed.spent += charge;
        owed.drop_holds.push(hold);
    }

    /// What to tell each account once Redis answers: what is owed, and the
    /// holds of the requests still running (`running`: account, hold id,
    /// units), which Redis must count (again, if their leases ran out).
    pub fn reconciliation(
        &self,
        running: impl IntoIterator<Item = (QuotaTarget, String, i64)>,
    ) -> Vec<(QuotaTarget, Owed)> {
        with_running(self.owed.clone(), running)
    }

    /// Everything owed was settled.
    pub fn clear(&mut self) {
        self.owed.clear();
    }
}

/// What to tell each account to keep its holds of requests still running
/// (`running`: account, hold id, units) counted and leased: owing nothing else.
pub fn still_running(
    running: impl IntoIterator<Item = (QuotaTarget, String, i64)>,
) -> Vec<(QuotaTarget, Owed)> {
    with_running(BTreeMap::new(), running)
}

fn with_running(
    mut plan: BTreeMap<QuotaTarget, Owed>,
    running: impl IntoIterator<Item = (QuotaTarget, String, i64)>,
) -> Vec<(QuotaTarget, Owed)> {
    for (account, id, units) in running {
        plan.entry(account).or_default().keep_holds.push((id, units));
    }
    plan.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_replica_may_spend_its_share_of_what_is_left() {
        assert_eq!(outage_share(Limit::Left(1000), 1), Limit::Left(1000));
        assert_eq!(outage_share(Limit::Left(1000), 3), Limit::Left(333));
        assert_eq!(
            outage_share(Limit::Left(1000), 0),
            Limit::Left(1000),
            "never fewer than one"
        );
        assert_eq!(outage_share(Limit::Left(-40), 2), Limit::Left(-40));
        assert_eq!(outage_share(Limit::Unlimited, 4), Limit::Unlimited);
    }

    #[test]
    fn what_is_owed_is_told_once_per_account_with_the_holds_still_running() {
        let (ada, token) = (QuotaTarget::User(1), QuotaTarget::Token(7));
        let mut outage = Outage::default();
        assert!(outage.is_empty());
        outage.spent(ada, 30);
        outage.spent(ada, 12);
        outage.spent(token, 0);
        outage.settle_failed(token, "r-4".into(), 9);
        let plan = outage.reconciliation([(ada, "r-9".to_string(), 50)]);
        assert_eq!(
            plan,
            [
                (
                    ada,
                    Owed {
                        spent: 42,
                        drop_holds: vec![],
                        keep_holds: vec![("r-9".into(), 50)],
                    }
                ),
                (
                    token,
                    Owed {
                        spent: 9,
                        drop_holds: vec!["r-4".into()],
                        keep_holds: vec![],
                    }
                ),
            ]
        );
        outage.clear();
        assert!(outage.is_empty());
        assert_eq!(
            still_running([(ada, "r-9".to_string(), 50), (ada, "r-10".to_string(), 5)]),
            [(
                ada,
                Owed {
                    keep_holds: vec![("r-9".into(), 50), ("r-10".into(), 5)],
                    ..Owed::default()
                }
            )],
            "a renewal owes nothing"
        );
        assert_eq!(
            outage.reconciliation([]),
            [],
            "nothing owed and nothing running: nothing to tell"
        );
    }
}
