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
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use super::sql::exists;
use super::{ChangeFailed, Hold, HoldTicket, Ledger, QuotaTarget, Reserve, Reserved};
use crate::balances::{Balances, Granted};
use crate::quota_outage::Outage;
use crate::quota_store::{parse_freed, QuotaStore, StoreError};

mod change;
mod reconnect;
mod reserve;

use self::reserve::{reserve_both, Failure, Outcome};

/// How often waiting reservations try again though nothing was announced. A
/// safety net, not how they normally learn: announcements are lost while a
/// subscription reconnects, and a hold whose lease ran out is announced only
/// when a script next touches its account.
const RETRY_UNANNOUNCED: Duration = Duration::from_secs(15);

/// How often a replica that lost Redis tries it again.
const RECONNECT_EVERY: Duration = Duration::from_secs(2);

/// The longest pause between two attempts to subscribe.
const MAX_SUBSCRIBE_BACKOFF: Duration = Duration::from_secs(5);

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

/// Settlements on their way to Redis, so a `Flush` can wait for them.
#[derive(Default)]
pub(super) struct Settling {
    count: AtomicUsize,
    idle: Notify,
}

/// One settlement on its way; done when dropped.
struct SettlingGuard(Arc<Settling>);

impl Settling {
    fn start(self: &Arc<Self>) -> SettlingGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        SettlingGuard(self.clone())
    }

    /// Resolves once no settlement is on its way.
    pub(super) async fn done(&self) {
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

/// An account's holds shrank (announced by a replica, or settled by this one).
#[derive(Message)]
#[rtype(result = "()")]
struct Freed(QuotaTarget);

/// Subscribed (again) to announcements; those made meanwhile were missed.
#[derive(Message)]
#[rtype(result = "()")]
struct Subscribed;

/// Redis could not be told that a hold was settled.
#[derive(Message)]
#[rtype(result = "()")]
struct SettleLost {
    account: QuotaTarget,
    hold: String,
    charge: i64,
    error: StoreError,
}

/// Redis did not answer.
#[derive(Message)]
#[rtype(result = "()")]
struct StoreLost(StoreError);

/// Redis answers again (after it did not).
#[derive(Message)]
#[rtype(result = "()")]
struct StoreBack;

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
                self.waiting.push_back(msg);
            }
        }
    }

    /// Settle a request's hold in Redis when it is held there (true); else
    /// the caller settles it against this process's balances (false), and a
    /// hold from this process's outage share leaves its spending owed to Redis.
    pub(super) fn settle_shared(
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
    pub(super) fn release_shared(&mut self, ticket: Option<HoldTicket>, ctx: &mut Context<Self>) -> bool {
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

    /// Extend the leases of this replica's holds in Redis, one script per account.
    fn renew_leases(&mut self, ctx: &mut Context<Self>) {
        let shared = self.shared();
        if !shared.reachable {
            return;
        }
        let mut by_account: HashMap<QuotaTarget, Vec<String>> = HashMap::new();
        for (ticket, live) in shared.holds.iter().filter(|(_, h)| h.in_redis) {
            for account in live.limited_accounts() {
                by_account
                    .entry(account)
                    .or_default()
                    .push(shared.store.hold_id(ticket.0));
            }
        }
        let store = shared.store.clone();
        let me = ctx.address();
        actix::spawn(async move {
            for (account, ids) in by_account {
                if let Err(e) = store.renew(account, &ids).await {
                    me.do_send(StoreLost(e));
                    return;
                }
            }
        });
    }
}

/// Listen for announcements that accounts' holds shrank, resubscribing after
/// a lost connection, until the ledger stops.
async fn listen(store: Arc<QuotaStore>, ledger: Addr<Ledger>) {
    let mut backoff = Duration::from_millis(200);
    while ledger.connected() {
        match store.subscribe().await {
            Ok(mut pubsub) => {
                backoff = Duration::from_millis(200);
                ledger.do_send(Subscribed);
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let Ok(text) = message.get_payload::<String>() else {
                        continue;
                    };
                    match parse_freed(&text) {
                        Some((origin, account)) if origin != store.origin() => ledger.do_send(Freed(account)),
                        _ => {}
                    }
                }
                tracing::warn!("quota: lost the subscription to freed holds; resubscribing");
            }
            Err(e) => tracing::debug!(error = %e, "quota: cannot subscribe to freed holds; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_SUBSCRIBE_BACKOFF);
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
                    self.waiting.push_back(msg);
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

impl Handler<Freed> for Ledger {
    type Result = ();

    fn handle(&mut self, Freed(account): Freed, ctx: &mut Context<Self>) {
        *self.shared().heard.entry(account).or_default() += 1;
        self.retry_waiting(ctx, Some(account));
    }
}

impl Handler<Subscribed> for Ledger {
    type Result = ();

    fn handle(&mut self, _msg: Subscribed, ctx: &mut Context<Self>) {
        self.shared().missed += 1;
        self.reconcile_once(ctx);
        self.retry_waiting(ctx, None);
    }
}

impl Handler<StoreBack> for Ledger {
    type Result = ();

    fn handle(&mut self, _msg: StoreBack, ctx: &mut Context<Self>) {
        self.reconcile_once(ctx);
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

impl Handler<StoreLost> for Ledger {
    type Result = ();

    fn handle(&mut self, StoreLost(error): StoreLost, _ctx: &mut Context<Self>) {
        self.lost_redis(&error);
    }
}
