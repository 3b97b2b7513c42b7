//! An admin's quota change when replicas share balances: Redis first (what
//! the replicas spend from), then the database, as the same difference.
//!
//! Why a difference, also for `Set`: the database lags Redis by the spending
//! the replicas have settled but not written yet. Setting the database's
//! column to the new value would let those late writes take it below what
//! Redis holds; adding `new - before` (Redis's `before`) to both keeps
//! "database = Redis + unwritten spending" true, so both agree once the
//! ledgers have written.

use actix::prelude::*;
use sea_orm::DatabaseConnection;

use super::super::sql::add_to_balance;
use super::reserve::Failure;
use super::{load_into_redis, Ledger};
use crate::balances::Deltas;
use crate::ledger::{ChangeFailed, ChangeQuota, QuotaChange, QuotaTarget};
use crate::quota_store::{Balance, BalanceChange, QuotaStore, StoreError};

impl Ledger {
    /// Change a quota in Redis and in the database; refused while Redis does
    /// not answer.
    pub(in crate::ledger) fn change_shared(
        &mut self,
        msg: ChangeQuota,
    ) -> AtomicResponse<Self, Result<(), ChangeFailed>> {
        let shared = self.shared();
        if let Err(refused) = shared.can_change() {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(refused))));
        }
        let store = shared.store.clone();
        let (rows, deltas) = self.take_batch(true);
        let (db, writer) = (self.db.clone(), self.writer.clone());
        AtomicResponse::new(Box::pin(
            async move {
                if let Err((e, rows, deltas)) = writer.write(&db, rows, deltas).await {
                    return (Err(ChangeFailed::Failed(e.to_string())), rows, deltas);
                }
                let changed = change_everywhere(&db, &store, msg.target, msg.change).await;
                (changed, Vec::new(), Deltas::default())
            }
            .into_actor(self)
            .map(move |(result, rows, deltas), act, ctx| {
                act.restore(rows, deltas);
                match &result {
                    Ok(()) => {
                        act.balances.forget(msg.target);
                        // A top-up may let waiting requests go, or tell them they never will.
                        act.retry_waiting(ctx, Some(msg.target));
                    }
                    Err(ChangeFailed::StoreUnreachable(e)) => act.lost_redis(&StoreError(e.clone())),
                    Err(ChangeFailed::Failed(_)) => {}
                }
                result
            }),
        ))
    }
}

/// The change as Redis applies it.
fn in_redis(target: QuotaTarget, change: QuotaChange) -> Result<BalanceChange, ChangeFailed> {
    Ok(match (target, change) {
        (QuotaTarget::User(_), QuotaChange::Unlimited) => {
            return Err(ChangeFailed::Failed("users cannot be made unlimited".into()))
        }
        (_, QuotaChange::Add(n)) => BalanceChange::Add(n),
        (QuotaTarget::User(_), QuotaChange::Set(n)) => BalanceChange::Set(n),
        (QuotaTarget::Token(_), QuotaChange::Set(n)) => BalanceChange::SetLimited(n),
        (QuotaTarget::Token(_), QuotaChange::Unlimited) => BalanceChange::Unlimited,
    })
}

/// The database's side of `change`, made in Redis on top of `before`: what to
/// add to what is left, and what "unlimited" becomes (for tokens).
fn in_database(change: BalanceChange, before: Balance) -> (i64, Option<bool>) {
    match change {
        BalanceChange::Add(n) => (n, None),
        BalanceChange::Set(n) => (n - before.left, None),
        BalanceChange::SetLimited(n) => (n - before.left, Some(false)),
        BalanceChange::Unlimited => (0, Some(true)),
        BalanceChange::Limited => (0, Some(false)),
    }
}

/// What takes Redis back where it was, should the database refuse.
fn undo(change: BalanceChange, before: Balance) -> Vec<BalanceChange> {
    let mut steps = match change {
        BalanceChange::Add(n) => vec![BalanceChange::Add(-n)],
        // Back by the same difference: spending made since stays charged.
        BalanceChange::Set(n) | BalanceChange::SetLimited(n) => vec![BalanceChange::Add(before.left - n)],
        BalanceChange::Unlimited | BalanceChange::Limited => Vec::new(),
    };
    let lifted = matches!(change, BalanceChange::SetLimited(_) | BalanceChange::Limited);
    if before.unlimited && lifted {
        steps.push(BalanceChange::Unlimited);
    } else if !before.unlimited && change == BalanceChange::Unlimited {
        steps.push(BalanceChange::Limited);
    }
    steps
}

async fn change_everywhere(
    db: &DatabaseConnection,
    store: &QuotaStore,
    target: QuotaTarget,
    change: QuotaChange,
) -> Result<(), ChangeFailed> {
    let change = in_redis(target, change)?;
    let unreachable = |e: StoreError| ChangeFailed::StoreUnreachable(e.0);
    let before = match store.change(target, change).await.map_err(unreachable)? {
        Some(before) => before,
        None => {
            load_into_redis(store, db, target).await.map_err(|e| match e {
                Failure::Store(e) => unreachable(e),
                Failure::Database(e) => ChangeFailed::Failed(e),
            })?;
            store
                .change(target, change)
                .await
                .map_err(unreachable)?
                .ok_or_else(|| {
                    ChangeFailed::Failed("the balance vanished from Redis while it was changed".into())
                })?
        }
    };
    let (diff, unlimited) = in_database(change, before);
    if let Err(e) = add_to_balance(db, target, diff, unlimited).await {
        for step in undo(change, before) {
            if let Err(undo_error) = store.change(target, step).await {
                tracing::error!(
                    error = %undo_error,
                    ?target,
                    ?step,
                    "quota: the database refused a change Redis made, and Redis could not be put back"
                );
            }
        }
        return Err(ChangeFailed::Failed(e.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: Balance = Balance {
        left: 80,
        unlimited: false,
    };

    #[test]
    fn the_database_gets_the_same_change_as_a_difference() {
        assert_eq!(in_database(BalanceChange::Add(20), BEFORE), (20, None));
        assert_eq!(in_database(BalanceChange::Set(500), BEFORE), (420, None));
        assert_eq!(
            in_database(BalanceChange::SetLimited(50), BEFORE),
            (-30, Some(false))
        );
        assert_eq!(in_database(BalanceChange::Unlimited, BEFORE), (0, Some(true)));
    }

    #[test]
    fn a_token_set_lifts_unlimited_and_a_user_set_does_not() {
        assert_eq!(
            in_redis(QuotaTarget::Token(1), QuotaChange::Set(5)),
            Ok(BalanceChange::SetLimited(5))
        );
        assert_eq!(
            in_redis(QuotaTarget::User(1), QuotaChange::Set(5)),
            Ok(BalanceChange::Set(5))
        );
        assert!(in_redis(QuotaTarget::User(1), QuotaChange::Unlimited).is_err());
    }

    #[test]
    fn a_change_the_database_refused_is_undone_in_redis() {
        assert_eq!(undo(BalanceChange::Add(20), BEFORE), [BalanceChange::Add(-20)]);
        assert_eq!(undo(BalanceChange::Set(500), BEFORE), [BalanceChange::Add(-420)]);
        let unlimited = Balance {
            left: 80,
            unlimited: true,
        };
        assert_eq!(
            undo(BalanceChange::SetLimited(500), unlimited),
            [BalanceChange::Add(-420), BalanceChange::Unlimited]
        );
        assert_eq!(undo(BalanceChange::Unlimited, BEFORE), [BalanceChange::Limited]);
        assert_eq!(undo(BalanceChange::Unlimited, unlimited), []);
    }
}
