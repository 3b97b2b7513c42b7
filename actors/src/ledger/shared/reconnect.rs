//! Losing Redis and finding it again. While Redis does not answer, the ledger
//! serves from this process's balances (cut to a share, see `quota_outage`)
//! and keeps the book of what it owes; once Redis answers, it settles the
//! book, and the balances are shared again.

use actix::prelude::*;
use sea_orm::DatabaseConnection;

use super::load_into_redis;
use super::reserve::Failure;
use super::Ledger;
use crate::balances::{Balances, Deltas};
use crate::ledger::QuotaTarget;
use crate::quota_store::{Owed, QuotaStore, StoreError};

impl Ledger {
    /// Redis did not answer: serve this replica's share until it does.
    pub(super) fn lost_redis(&mut self, error: &StoreError) {
        let shared = self.shared();
        shared.down_because = error.to_string();
        if shared.reachable {
            shared.reachable = false;
            tracing::warn!(
                error = %error,
                replicas = shared.replicas(),
                "quota: Redis does not answer; serving this replica's share of each balance until it does"
            );
        }
    }

    /// Redis answers: reconcile, unless it is reachable or being reconciled already.
    pub(super) fn reconcile_once(&mut self, ctx: &mut Context<Self>) {
        let shared = self.shared();
        if !shared.reachable && !shared.reconciling {
            self.reconcile(ctx);
        }
    }

    /// Redis may answer again: write what is pending (so that a balance Redis
    /// lost, and reloads from the database, includes this replica's spending),
    /// then charge what this replica spent meanwhile, give back the holds it
    /// could not, and have Redis count its requests still running. Holds the
    /// mailbox meanwhile, so no settlement slips between the book and Redis.
    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        let (rows, deltas) = self.take_batch(true);
        let (db, writer) = (self.db.clone(), self.writer.clone());
        let shared = self.shared();
        shared.reconciling = true;
        let store = shared.store.clone();
        let running: Vec<_> = shared
            .holds
            .iter()
            .flat_map(|(ticket, live)| {
                let id = store.hold_id(ticket.0);
                live.limited_accounts().map(move |a| (a, id.clone(), live.amount))
            })
            .collect();
        let plan = shared.outage.reconciliation(running);
        ctx.wait(
            async move {
                if let Err((e, rows, deltas)) = writer.write(&db, rows, deltas).await {
                    return (Err(Failure::Database(e.to_string())), rows, deltas);
                }
                let told = tell_owed(&store, &db, plan).await;
                (told, Vec::new(), Deltas::default())
            }
            .into_actor(self)
            .map(|(result, rows, deltas), act, ctx| {
                act.restore(rows, deltas);
                let shared = act.shared();
                shared.reconciling = false;
                match result {
                    Ok(()) => {
                        shared.outage.clear();
                        shared.reachable = true;
                        shared.missed += 1;
                        for live in shared.holds.values_mut() {
                            live.in_redis = true;
                        }
                        // Every hold is in Redis now: the outage shares are done with.
                        act.balances = Balances::default();
                        tracing::info!("quota: Redis answers again; balances are shared again");
                        act.retry_waiting(ctx, None);
                    }
                    Err(Failure::Store(e)) => shared.down_because = e.to_string(),
                    Err(Failure::Database(e)) => {
                        tracing::warn!(error = %e, "quota: cannot write pending spending before going back to Redis");
                    }
                }
            }),
        );
    }
}

/// Tell Redis what is owed, account by account. A balance Redis does not have
/// (it lost its data) is loaded from the database, written just before, so it
/// includes this replica's spending, which is then not charged again.
pub(super) async fn tell_owed(
    store: &QuotaStore,
    db: &DatabaseConnection,
    plan: Vec<(QuotaTarget, Owed)>,
) -> Result<(), Failure> {
    store.ping().await.map_err(Failure::Store)?;
    for (account, mut owed) in plan {
        if store.reconcile(account, &owed).await.map_err(Failure::Store)? {
            continue;
        }
        load_into_redis(store, db, account).await?;
        owed.spent = 0;
        store.reconcile(account, &owed).await.map_err(Failure::Store)?;
    }
    Ok(())
}
