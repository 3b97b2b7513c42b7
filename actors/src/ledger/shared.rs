//! The ledger of one replica among several: balances and holds live in Redis
//! ([`QuotaStore`]), so a quota spent through any number of replicas is never
//! overrun; rows and spending still go to the database in batches, as in a
//! single process.
//!
//! - A reservation runs the store's scripts in a task of its own and comes
//!   back as [`Answered`]. Told to wait, it waits for an announcement that
//!   the account's holds shrank (on any replica), with a slow retry as a
//!   safety net.
//! - Holds are leased; the ledger renews the leases of its requests still
//!   running, so a replica that dies mid-request frees its holds within one
//!   lease.
//! - When Redis does not answer, the ledger serves from balances loaded from
//!   the database, cut to an even share among the live replicas, keeps the
//!   book of what it spent meanwhile, and charges it to Redis once Redis
//!   answers again (see `quota_outage` for why that, not a reload). Admins'
//!   quota changes are refused meanwhile: the database alone would disagree
//!   with what the replicas spend.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sea_orm::DatabaseConnection;

use super::sql::{exists, load_balance};
use super::{ChangeFailed, Hold, HoldTicket, Ledger, QuotaTarget, Reserve, Reserved};
use crate::balances::{Balances, Granted};
use crate::quota_outage::Outage;
use crate::quota_store::{QuotaStore, StoreError};

mod announcements;
mod change;
mod reconnect;
mod reserve;
mod settle;

use self::announcements::{listen, StoreBack};
use self::reserve::{reserve_both, Failure, Outcome};
pub(super) use self::settle::Settling;

/// How often waiting reservations try again though nothing was announced. A
/// safety net, not how they normally learn: announcements are lost while a
/// subscription reconnects, and a hold whose lease ran out is announced only
/// when a script next touches its account.
const RETRY_UNANNOUNCED: Duration = Duration::from_secs(15);

/// How often a replica that lost Redis tries it again.
const RECONNECT_EVERY: Duration = Duration::from_secs(2);

/// The cluster-mode state of a ledger.
pub(super) struct Shared {
    store: Arc<QuotaStore>,
    replicas: Arc<AtomicUsize>,
    /// Whether Redis answered last; while it does not, this replica spends its share.
    reachable: bool,
    /// Why it does not, for the admins whose changes are refused.
    down_because: String,
    /// A reconciliation with Redis is running.
    reconciling: bool,
    next_ticket: u64,
    /// This replica's requests holding quota, by ticket.
    holds: HashMap<HoldTicket, LiveHold>,
    outage: Outage,
    /// Announcements heard per account: a reservation told to wait compares
    /// them to learn whether it missed one while its scripts ran.
    heard: HashMap<QuotaTarget, u64>,
    /// Times announcements may have been missed (resubscribed, reconciled):
    /// compared the same way.
    missed: u64,
    settling: Arc<Settling>,
    listener: Option<tokio::task::JoinHandle<()>>,
}

/// One request's hold, as this replica knows it.
#[derive(Clone, Copy, Debug)]
struct LiveHold {
    user: i64,
    token: Option<i64>,
    amount: i64,
    user_limited: bool,
    token_limited: bool,
    /// Held in Redis (else in this process's share, during an outage).
    in_redis: bool,
}

impl LiveHold {
    /// What each limited account it holds against is charged of `spent`
    /// (Redis keeps no holds and no balance to charge for unlimited ones).
    fn charges(&self, spent: i64) -> Vec<(QuotaTarget, i64)> {
        self.limited_accounts().map(|a| (a, spent)).collect()
    }

    /// The limited accounts it holds against.
    fn limited_accounts(&self) -> impl Iterator<Item = QuotaTarget> {
        let token = self.token.filter(|_| self.token_limited).map(QuotaTarget::Token);
        let user = self.user_limited.then_some(QuotaTarget::User(self.user));
        token.into_iter().chain(user)
    }
}

impl Shared {
    pub(super) fn new(store: QuotaStore, replicas: Arc<AtomicUsize>) -> Self {
        Shared {
            store: Arc::new(store),
            replicas,
            reachable: true,
            down_because: String::new(),
            reconciling: false,
            next_ticket: 0,
            holds: HashMap::new(),
            outage: Outage::default(),
            heard: HashMap::new(),
            missed: 0,
            settling: Arc::default(),
            listener: None,
        }
    }

    /// The live replicas, this one included.
    pub(super) fn replicas(&self) -> usize {
        self.replicas.load(Ordering::Relaxed).max(1)
    }

    pub(super) fn settling(&self) -> Arc<Settling> {
        self.settling.clone()
    }

    /// Admins' quota changes are refused while Redis does not answer.
    pub(super) fn can_change(&self) -> Result<(), ChangeFailed> {
        if self.reachable {
            Ok(())
        } else {
            Err(ChangeFailed::StoreUnreachable(self.down_because.clone()))
        }
    }

    fn ticket(&mut self) -> HoldTicket {
        self.next_ticket += 1;
        HoldTicket(self.next_ticket)
    }

    /// A hold granted from this process's share (Redis did not answer).
    pub(super) fn hold_locally(
        &mut self,
        balances: &Balances,
        user: i64,
        token: Option<i64>,
        amount: i64,
    ) -> HoldTicket {
        let ticket = self.ticket();
        let live = LiveHold {
            user,
            token,
            amount,
            user_limited: balances.is_limited(QuotaTarget::User(user)),
            token_limited: token.is_some_and(|t| balances.is_limited(QuotaTarget::Token(t))),
            in_redis: false,
        };
        self.holds.insert(ticket, live);
        ticket
    }

    fn heard_for(&self, user: i64, token: Option<i64>) -> Heard {
        let count = |a| self.heard.get(&a).copied().unwrap_or(0);
        Heard {
            user: count(QuotaTarget::User(user)),
            token: token.map_or(0, |t| count(QuotaTarget::Token(t))),
            missed: self.missed,
        }
    }

    /// The account's row changed or went away: drop its Redis balance if the
    /// row is gone (a row still there keeps its balance: a reload from the
    /// database would forget the replicas' unwritten spending).
    pub(super) fn forget(&self, db: &DatabaseConnection, account: QuotaTarget) {
        let (db, store) = (db.clone(), self.store.clone());
        actix::spawn(async move {
            match exists(&db, account).await {
                Ok(false) => {
                    if let Err(e) = store.forget(account).await {
                        tracing::warn!(error = %e, ?account, "quota: could not drop a deleted account's balance");
                    }
                }
                Ok(true) => {}
                Err(e) => tracing::warn!(error = %e, ?account, "quota: could not check a forgotten account"),
            }
        });
    }

    pub(super) fn stop(&mut self) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
        }
    }
}

/// What a reservation had heard when its scripts started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Heard {
    user: u64,
    token: u64,
    missed: u64,
}

/// A reservation's scripts ran.
#[derive(Message)]
#[rtype(result = "()")]
struct Answered {
    msg: Reserve,
    ticket: HoldTicket,
    heard: Heard,
    outcome: Result<Outcome, Failure>,
}

/// Redis did not answer.
#[derive(Message)]
#[rtype(result = "()")]
struct StoreLost(StoreError);

impl Ledger {
    fn shared(&mut self) -> &mut Shared {
        self.shared.as_mut().expect("only called in cluster mode")
    }

    /// Timers and the subscription to announcements.
    pub(super) fn start_sharing(&mut self, ctx: &mut Context<Self>) {
        let store = self.shared().store.clone();
        self.shared().listener = Some(actix::spawn(listen(store.clone(), ctx.address())));
        ctx.run_interval(store.lease() / 5, |act, ctx| act.renew_leases(ctx));
        ctx.run_interval(RETRY_UNANNOUNCED, |act, ctx| {
            if !act.waiting.is_empty() {
                act.retry_waiting(ctx, None);
            }
        });
        ctx.run_interval(RECONNECT_EVERY, |act, ctx| {
            let shared = act.shared();
            if shared.reachable || shared.reconciling {
                return;
            }
            // Asked from a task: a Redis gone silent must not hold the mailbox.
            let (store, me) = (shared.store.clone(), ctx.address());
            actix::spawn(async move {
                if store.ping().await.is_ok() {
                    me.do_send(StoreBack);
                }
            });
        });
    }

    /// Hold quota for `msg` where the balances are now: Redis, or this process.
    pub(super) fn dispatch_reserve(&mut self, msg: Reserve, ctx: &mut Context<Self>) {
        match &self.shared {
            Some(shared) if shared.reachable => self.reserve_in_redis(msg, ctx),
            _ => self.reserve_locally(msg, ctx),
        }
    }

    fn reserve_in_redis(&mut self, msg: Reserve, ctx: &mut Context<Self>) {
        if msg.answer.is_closed() {
            return;
        }
        let db = self.db.clone();
        let me = ctx.address();
        let shared = self.shared();
        let ticket = shared.ticket();
        let heard = shared.heard_for(msg.user_id, msg.token_id);
        let store = shared.store.clone();
        actix::spawn(async move {
            let id = store.hold_id(ticket.0);
            let outcome = reserve_both(&store, &db, &id, msg.user_id, msg.token_id, msg.ask).await;
            me.do_send(Answered {
                msg,
                ticket,
                heard,
                outcome,
            });
        });
    }

    /// Try again the waiting reservations of `account` (all, when `None`).
    pub(super) fn retry_waiting(&mut self, ctx: &mut Context<Self>, account: Option<QuotaTarget>) {
        let waiting = std::mem::take(&mut self.waiting);
        for msg in waiting {
            let concerned = account.is_none_or(|a| {
                a == QuotaTarget::User(msg.user_id) || Some(a) == msg.token_id.map(QuotaTarget::Token)
            });
            if concerned {
                self.dispatch_reserve(msg, ctx);
            } else {
                self.park(msg);
            }
        }
    }
}

impl Handler<Answered> for Ledger {
    type Result = ();

    fn handle(&mut self, answered: Answered, ctx: &mut Context<Self>) {
        let Answered {
            msg,
            ticket,
            heard,
            outcome,
        } = answered;
        match outcome {
            Ok(Outcome::Granted {
                amount,
                user_limited,
                token_limited,
            }) => {
                let live = LiveHold {
                    user: msg.user_id,
                    token: msg.token_id,
                    amount,
                    user_limited,
                    token_limited,
                    in_redis: true,
                };
                self.shared().holds.insert(ticket, live);
                let hold = Hold {
                    ledger: ctx.address(),
                    user_id: msg.user_id,
                    token_id: msg.token_id,
                    granted: Granted {
                        amount,
                        limited: user_limited || token_limited,
                    },
                    ticket: Some(ticket),
                };
                // A client that left meanwhile drops the hold, which releases it.
                let _ = msg.answer.send(Ok(hold));
            }
            Ok(Outcome::Wait) => {
                if self.shared().heard_for(msg.user_id, msg.token_id) != heard {
                    // Holds shrank while the scripts ran: the answer may be stale.
                    self.dispatch_reserve(msg, ctx);
                } else {
                    self.park(msg);
                }
            }
            Ok(Outcome::Short(e)) => {
                let _ = msg.answer.send(Err(Reserved::Short(e)));
            }
            Err(Failure::Database(e)) => {
                let _ = msg.answer.send(Err(Reserved::Unavailable(e)));
            }
            Err(Failure::Store(e)) => {
                self.lost_redis(&e);
                self.reserve_locally(msg, ctx);
            }
        }
    }
}

impl Handler<StoreLost> for Ledger {
    type Result = ();

    fn handle(&mut self, StoreLost(error): StoreLost, _ctx: &mut Context<Self>) {
        self.lost_redis(&error);
    }
}

/// Put `account`'s balance as the database has it into Redis, unless Redis
/// has one already.
async fn load_into_redis(
    store: &QuotaStore,
    db: &DatabaseConnection,
    account: QuotaTarget,
) -> Result<(), Failure> {
    let balance = load_balance(db, account)
        .await
        .map_err(|e| Failure::Database(e.to_string()))?;
    store.load(account, balance).await.map_err(Failure::Store)
}
