//! A request's hold when it stops running: settled with the real cost or
//! given back, in Redis when it is held there (from a task, so the mailbox
//! does not wait; a `Flush` waits for them), and renewed while it runs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::announcements::Freed;
use super::reconnect::tell_owed;
use super::reserve::Failure;
use super::{LiveHold, StoreLost};
use crate::ledger::{HoldTicket, Ledger, QuotaTarget};
use crate::quota_outage::still_running;
use crate::quota_store::StoreError;

/// Settlements on their way to Redis, so a `Flush` can wait for them.
#[derive(Default)]
pub(in crate::ledger) struct Settling {
    count: AtomicUsize,
    idle: Notify,
}

/// One settlement on its way; done when dropped.
pub(super) struct SettlingGuard(Arc<Settling>);

impl Settling {
    pub(super) fn start(self: &Arc<Self>) -> SettlingGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        SettlingGuard(self.clone())
    }

    /// Resolves once no settlement is on its way.
    pub(in crate::ledger) async fn done(&self) {
        loop {
            let idle = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for SettlingGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Redis could not be told that a hold was settled.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct SettleLost {
    account: QuotaTarget,
    hold: String,
    charge: i64,
    error: StoreError,
}

impl Ledger {
    /// Settle a request's hold in Redis when it is held there (true); else
    /// the caller settles it against this process's balances (false), and a
    /// hold from this process's outage share leaves its spending owed to Redis.
    pub(in crate::ledger) fn settle_shared(
        &mut self,
        ticket: Option<HoldTicket>,
        spent: i64,
        at: DateTime<Utc>,
        ctx: &mut Context<Self>,
    ) -> bool {
        let Some((ticket, live)) = self.take_hold(ticket) else {
            return false;
        };
        if !live.in_redis {
            for (account, charge) in live.charges(spent) {
                self.shared().outage.spent(account, charge);
            }
            return false;
        }
        if let Some(t) = live.token {
            self.deltas
                .count(QuotaTarget::Token(t), spent, live.token_limited, at);
        }
        self.deltas
            .count(QuotaTarget::User(live.user), spent, live.user_limited, at);
        self.tell_redis(ticket, live, spent, ctx);
        true
    }

    /// Give back a request's hold in Redis when it is held there (true); else
    /// the caller gives it back to this process's balances (false).
    pub(in crate::ledger) fn release_shared(
        &mut self,
        ticket: Option<HoldTicket>,
        ctx: &mut Context<Self>,
    ) -> bool {
        match self.take_hold(ticket) {
            Some((ticket, live)) if live.in_redis => {
                self.tell_redis(ticket, live, 0, ctx);
                true
            }
            _ => false,
        }
    }

    /// The hold of `ticket`, which stops running.
    fn take_hold(&mut self, ticket: Option<HoldTicket>) -> Option<(HoldTicket, LiveHold)> {
        let ticket = ticket?;
        let live = self.shared.as_mut()?.holds.remove(&ticket)?;
        Some((ticket, live))
    }

    /// Tell Redis a hold is settled, from a task so the mailbox does not wait.
    fn tell_redis(&mut self, ticket: HoldTicket, live: LiveHold, spent: i64, ctx: &mut Context<Self>) {
        let charges = live.charges(spent);
        let me = ctx.address();
        let shared = self.shared();
        let id = shared.store.hold_id(ticket.0);
        if !shared.reachable {
            // Known not to answer: owe it rather than wait for a timeout.
            for (account, charge) in charges {
                shared.outage.settle_failed(account, id.clone(), charge);
            }
            return;
        }
        let store = shared.store.clone();
        let guard = shared.settling.start();
        actix::spawn(async move {
            for (account, charge) in charges {
                match store.settle(account, &id, charge).await {
                    Ok(_) => me.do_send(Freed(account)),
                    Err(error) => me.do_send(SettleLost {
                        account,
                        hold: id.clone(),
                        charge,
                        error,
                    }),
                }
            }
            drop(guard);
        });
    }

    /// Extend the leases of this replica's holds in Redis, one script per
    /// account. The same script that settles an outage: a hold Redis lost (its
    /// lease ran out while this replica could not renew it, or Redis lost its
    /// data) is counted again, since its request still runs.
    pub(super) fn renew_leases(&mut self, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let shared = self.shared();
        if !shared.reachable || shared.holds.is_empty() {
            return;
        }
        let store = shared.store.clone();
        let running = shared
            .holds
            .iter()
            .filter(|(_, live)| live.in_redis)
            .flat_map(|(ticket, live)| {
                let id = store.hold_id(ticket.0);
                live.limited_accounts().map(move |a| (a, id.clone(), live.amount))
            });
        let plan = still_running(running);
        let me = ctx.address();
        actix::spawn(async move {
            match tell_owed(&store, &db, plan).await {
                Ok(()) => {}
                Err(Failure::Store(e)) => me.do_send(StoreLost(e)),
                Err(Failure::Database(e)) => tracing::warn!(error = %e, "quota: could not renew holds"),
            }
        });
    }
}

impl Handler<SettleLost> for Ledger {
    type Result = ();

    fn handle(&mut self, lost: SettleLost, _ctx: &mut Context<Self>) {
        self.shared()
            .outage
            .settle_failed(lost.account, lost.hold, lost.charge);
        self.lost_redis(&lost.error);
    }
}
