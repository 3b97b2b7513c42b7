//! `Ledger`: turns every relayed request into a usage-log row and settles its
//! cost against the user's and the token's quota. Balances live here (one
//! process), or in Redis when replicas share them (see `shared`), so reserving
//! and settling are exact under concurrency; rows and spending are written
//! together, in batches, so the relay hot path never waits for the database.

mod shared;
mod sql;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use tokio::sync::oneshot;

use self::shared::Shared;
use self::sql::{apply_change, load_limits, Writer};
use crate::balances::{Ask, Balances, Deltas, Granted, QuotaError, Reservation};
use crate::quota_outage::outage_share;
use crate::quota_store::QuotaStore;

/// One relayed request, as billed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageRecord {
    /// Request id (also sent to the client as `x-request-id`).
    pub request_id: String,
    /// When the request arrived.
    pub created_at: DateTime<Utc>,
    /// Owner of the token.
    pub user_id: Option<i64>,
    /// Token used.
    pub token_id: Option<i64>,
    /// Token name, kept even if the token is deleted later.
    pub token_name: String,
    /// Model as the client named it.
    pub model: String,
    /// Model as the provider was asked.
    pub upstream_model: String,
    /// Channel that served it (the last one tried).
    pub channel_id: Option<i64>,
    /// Key that served it (the last one tried).
    pub key_id: Option<i64>,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// True when counted locally because the provider reported no usage.
    pub usage_estimated: bool,
    /// Cost in quota units.
    pub quota: i64,
    /// Total time in milliseconds, arrival to last byte.
    pub latency_ms: i64,
    /// Time to the first byte of the reply, in milliseconds.
    pub first_token_ms: Option<i64>,
    /// Whether the reply was streamed.
    pub is_stream: bool,
    /// HTTP status the client saw.
    pub status: i32,
    /// Upstream attempts made.
    pub attempts: i32,
    /// Error, when the request failed.
    pub error: Option<String>,
    /// Quota reserved for it before sending (released now; not stored).
    pub reserved: i64,
    /// The hold it settles, when replicas share balances (not stored).
    pub hold: Option<HoldTicket>,
    /// The API the client spoke: `openai`, `anthropic` or `responses`.
    pub protocol: String,
    /// The fallback chain the client named, when `model` is one of its steps.
    pub fallback: Option<String>,
}

/// Record one request: settle its cost and write its row with the next batch.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Record(pub UsageRecord);

/// Hold what a request can cost against its user and token (sent by [`reserve`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reserve {
    /// The user.
    pub user_id: i64,
    /// The token.
    pub token_id: Option<i64>,
    /// What to hold.
    pub ask: Ask,
    /// Where the answer goes: at once, or when other requests settle.
    pub answer: oneshot::Sender<Result<Hold, Reserved>>,
    /// Told when the reservation cannot be answered yet and waits for the
    /// account's other requests to settle.
    pub parked: Option<oneshot::Sender<()>>,
}

/// Give back quota a request held and never spent (sent when a [`Hold`] is dropped).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release {
    /// The user.
    pub user_id: i64,
    /// The token.
    pub token_id: Option<i64>,
    /// Units held.
    pub amount: i64,
    /// The hold, when replicas share balances.
    pub ticket: Option<HoldTicket>,
}

/// How many reservations wait for quota other requests hold.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Waiting;

/// Why no quota was held.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Reserved {
    /// Not enough quota.
    #[error(transparent)]
    Short(#[from] QuotaError),
    /// The balance could not be read.
    #[error("could not read the balance: {0}")]
    Unavailable(String),
    /// The ledger stopped.
    #[error("the gateway is shutting down")]
    Shutdown,
}

/// Ask `ledger` to hold quota for a request; resolves when it is held (which may
/// wait for the account's other requests to settle), or with why not. Dropping
/// the future gives up the place.
pub async fn reserve(
    ledger: &Addr<Ledger>,
    user_id: i64,
    token_id: Option<i64>,
    ask: Ask,
) -> Result<Hold, Reserved> {
    PendingHold::ask(ledger, user_id, token_id, ask).held().await
}

/// A reservation on its way: the message leaves when this is made, so that a
/// request can do something else meanwhile (join the key queue) and learn
/// whether its quota has to wait. Dropping it gives up the place.
pub struct PendingHold {
    answer: oneshot::Receiver<Result<Hold, Reserved>>,
    parked: Option<oneshot::Receiver<()>>,
}

impl PendingHold {
    /// Send the reservation to `ledger`.
    pub fn ask(ledger: &Addr<Ledger>, user_id: i64, token_id: Option<i64>, ask: Ask) -> PendingHold {
        let (answer, answer_rx) = oneshot::channel();
        let (parked, parked_rx) = oneshot::channel();
        let reserve = Reserve {
            user_id,
            token_id,
            ask,
            answer,
            parked: Some(parked),
        };
        let to = ledger.clone();
        crate::courier::deliver(move || to.do_send(reserve));
        PendingHold {
            answer: answer_rx,
            parked: Some(parked_rx),
        }
    }

    /// The answer; or `None` as soon as the ledger parks the reservation to
    /// wait for the account's requests in flight (then [`PendingHold::held`]
    /// gives the answer when it comes).
    pub async fn answer_unless_parked(&mut self) -> Option<Result<Hold, Reserved>> {
        if let Some(parked) = self.parked.as_mut() {
            let parked_first = tokio::select! {
                biased;
                answer = &mut self.answer => return Some(answer.unwrap_or(Err(Reserved::Shutdown))),
                // Answered without waiting drops the sender: not parked.
                told = parked => told.is_ok(),
            };
            self.parked = None;
            if parked_first {
                return None;
            }
        }
        Some((&mut self.answer).await.unwrap_or(Err(Reserved::Shutdown)))
    }

    /// The answer: the hold, or why there is none.
    pub async fn held(self) -> Result<Hold, Reserved> {
        self.answer.await.unwrap_or(Err(Reserved::Shutdown))
    }
}

/// Quota held for one request. Its amount is settled with the request's usage
/// row ([`Hold::settle_with`]); dropped unsettled, it is released.
#[derive(Debug)]
pub struct Hold {
    ledger: Addr<Ledger>,
    user_id: i64,
    token_id: Option<i64>,
    granted: Granted,
    ticket: Option<HoldTicket>,
}

/// Names one hold of this ledger, when replicas share balances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HoldTicket(u64);

impl Hold {
    /// What is held.
    pub fn granted(&self) -> Granted {
        self.granted
    }

    /// Hand the held amount to the usage row that settles it.
    pub fn settle_with(mut self, record: &mut UsageRecord) {
        record.reserved = std::mem::take(&mut self.granted.amount);
        record.hold = self.ticket.take();
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.granted.amount > 0 || self.ticket.is_some() {
            let release = Release {
                user_id: self.user_id,
                token_id: self.token_id,
                amount: self.granted.amount,
                ticket: self.ticket,
            };
            let ledger = self.ledger.clone();
            crate::courier::deliver(move || ledger.do_send(release));
        }
    }
}

/// Whose quota to change (an account: a user or a token).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaTarget {
    /// A user's quota.
    User(i64),
    /// A token's quota.
    Token(i64),
}

/// How to change it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaChange {
    /// Add units (top-up).
    Add(i64),
    /// Set what is left.
    Set(i64),
    /// Remove the limit (tokens only).
    Unlimited,
}

/// Change a quota: pending spending is written first, so nothing is lost or
/// counted twice.
#[derive(Message)]
#[rtype(result = "Result<(), ChangeFailed>")]
pub struct ChangeQuota {
    /// Whose.
    pub target: QuotaTarget,
    /// How.
    pub change: QuotaChange,
}

/// Why a quota was not changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeFailed {
    /// Replicas share balances in Redis, which does not answer: changing the
    /// database alone would leave them spending the old balance.
    #[error(
        "quotas cannot be changed while Redis, where the replicas share them, does not answer ({0}); \
         retry when it is back"
    )]
    StoreUnreachable(String),
    /// The change itself was refused, or the database failed.
    #[error("{0}")]
    Failed(String),
}

/// Whether a quota could be changed now (asked before changing anything
/// else of the same row, so that a refusal changes nothing).
#[derive(Message)]
#[rtype(result = "Result<(), ChangeFailed>")]
pub struct CanChangeQuota;

/// Forget a cached balance (its row changed or went away); reloaded on next use.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forget(pub QuotaTarget);

/// Write everything pending now; answers once it is written.
#[derive(Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Flush;

/// Rows accepted but not yet written.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Pending;

/// Rows that start a write before the interval is up.
const BATCH: usize = 500;

/// Rows one background write takes at most. Requests go on while a batch is
/// written, so rows may gather faster than one batch at a time writes them (a
/// database on the same two cores at 26,000 requests a second): the next batch
/// then takes more, in the same one transaction, and the ledger catches up.
const MAX_BATCH: usize = 8 * BATCH;

/// The actor writing usage logs and holding balances.
pub struct Ledger {
    db: DatabaseConnection,
    pending: Vec<UsageRecord>,
    deltas: Deltas,
    balances: Balances,
    interval: Duration,
    /// Reservations waiting for other requests of their account to settle, oldest first.
    waiting: std::collections::VecDeque<Reserve>,
    /// The balances shared with other replicas; `None` in a single process.
    shared: Option<Shared>,
    /// Writes to the database, one at a time.
    writer: Writer,
    /// A batch is being written in the background.
    writing: bool,
}

impl Ledger {
    /// A ledger writing to `db` every `interval` (and at once when a batch fills).
    pub fn new(db: DatabaseConnection, interval: Duration) -> Self {
        Ledger {
            db,
            pending: Vec::new(),
            deltas: Deltas::default(),
            balances: Balances::default(),
            interval,
            waiting: std::collections::VecDeque::new(),
            shared: None,
            writer: Writer::default(),
            writing: false,
        }
    }

    /// A ledger of one replica of several: balances are shared through
    /// `store` (Redis). While Redis does not answer it serves from the
    /// database, spending at most an even share among the `replicas` live
    /// replicas (kept up to date by whoever tracks them; at least 1).
    pub fn cluster(
        db: DatabaseConnection,
        interval: Duration,
        store: QuotaStore,
        replicas: Arc<AtomicUsize>,
    ) -> Self {
        Ledger {
            shared: Some(Shared::new(store, replicas)),
            ..Ledger::new(db, interval)
        }
    }

    /// `msg` must wait for the account's requests in flight to settle: tell its
    /// sender, and keep it in line.
    pub(super) fn park(&mut self, mut msg: Reserve) {
        if let Some(parked) = msg.parked.take() {
            let _ = parked.send(());
        }
        self.waiting.push_back(msg);
    }

    /// Answer a reservation now if it can be answered from this process's
    /// balances; else hand it back.
    fn try_reserve(&mut self, msg: Reserve, me: &Addr<Ledger>) -> Option<Reserve> {
        if msg.answer.is_closed() {
            return None;
        }
        let answer = match self.balances.reserve(msg.user_id, msg.token_id, msg.ask) {
            Reservation::Wait => return Some(msg),
            Reservation::Short(e) => Err(Reserved::Short(e)),
            Reservation::Granted(granted) => {
                let ticket = self.shared.as_mut().map(|shared| {
                    shared.hold_locally(&self.balances, msg.user_id, msg.token_id, granted.amount)
                });
                Ok(Hold {
                    ledger: me.clone(),
                    user_id: msg.user_id,
                    token_id: msg.token_id,
                    granted,
                    ticket,
                })
            }
        };
        // A client that left meanwhile drops the hold, which releases it.
        let _ = msg.answer.send(answer);
        None
    }

    /// Something settled or changed: answer the waiting reservations that now can be.
    fn serve_waiting(&mut self, ctx: &mut Context<Self>) {
        if self.shared.is_some() {
            return self.retry_waiting(ctx, None);
        }
        let me = ctx.address();
        let waiting = std::mem::take(&mut self.waiting);
        for msg in waiting {
            if let Some(msg) = self.try_reserve(msg, &me) {
                self.park(msg);
            }
        }
    }

    /// Hold quota for `msg` from this process's balances, loading them first
    /// when they are not (as a share of what is left when replicas share them).
    fn reserve_locally(&mut self, msg: Reserve, ctx: &mut Context<Self>) {
        if self.balances.knows(msg.user_id, msg.token_id) {
            if let Some(msg) = self.try_reserve(msg, &ctx.address()) {
                self.park(msg);
            }
            return;
        }
        let db = self.db.clone();
        let (user_id, token_id) = (msg.user_id, msg.token_id);
        // `wait` holds the mailbox: a balance being loaded cannot be reserved against twice.
        ctx.wait(
            async move { load_limits(&db, user_id, token_id).await }
                .into_actor(self)
                .map(move |loaded, act, ctx| match loaded {
                    Ok((user, token)) => {
                        let replicas = act.shared.as_ref().map_or(1, Shared::replicas);
                        act.balances.set_user(user_id, outage_share(user, replicas));
                        if let (Some(id), Some(limit)) = (token_id, token) {
                            act.balances.set_token(id, outage_share(limit, replicas));
                        }
                        if let Some(msg) = act.try_reserve(msg, &ctx.address()) {
                            act.park(msg);
                        }
                    }
                    Err(e) => {
                        let _ = msg.answer.send(Err(Reserved::Unavailable(e.to_string())));
                    }
                }),
        );
    }

    /// Take what the next write should carry.
    fn take_batch(&mut self, all: bool) -> (Vec<UsageRecord>, Deltas) {
        let take = if all {
            self.pending.len()
        } else {
            self.pending.len().min(MAX_BATCH)
        };
        (
            self.pending.drain(..take).collect(),
            std::mem::take(&mut self.deltas),
        )
    }

    /// Put back what could not be written.
    fn restore(&mut self, rows: Vec<UsageRecord>, deltas: Deltas) {
        self.pending.splice(0..0, rows);
        self.deltas.merge(deltas);
    }

    /// Write one batch in the background: reservations, releases and new rows
    /// go on meanwhile (holding the mailbox for it delayed every quota hold
    /// that arrived during a write: the open-loop benchmark's p99). One batch
    /// at a time; a `Flush` or a quota change waits for it (`Writer`).
    fn write_batch(&mut self, ctx: &mut Context<Self>) {
        if self.writing
            || (self.pending.is_empty() && self.deltas.is_empty() && self.writer.unwritten_rows() == 0)
        {
            return;
        }
        self.writing = true;
        let (rows, deltas) = self.take_batch(false);
        let (db, writer, me) = (self.db.clone(), self.writer.clone(), ctx.address());
        // Its own task, not the actor's: it goes on while a `Flush` or a quota
        // change holds the mailbox and waits for its turn to write.
        actix::spawn(async move {
            let written = writer.write_batch(&db, rows, deltas).await;
            me.do_send(Written(written));
        });
    }
}

/// A background batch is done (written, or left for the next write).
#[derive(Message)]
#[rtype(result = "()")]
struct Written(bool);

impl Handler<Written> for Ledger {
    type Result = ();

    fn handle(&mut self, msg: Written, ctx: &mut Context<Self>) {
        self.writing = false;
        if msg.0 && self.pending.len() >= BATCH {
            self.write_batch(ctx);
        }
    }
}

impl Actor for Ledger {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        crate::courier::home_here();
        ctx.run_interval(self.interval, |act, ctx| act.write_batch(ctx));
        if self.shared.is_some() {
            self.start_sharing(ctx);
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(shared) = &mut self.shared {
            shared.stop();
        }
    }
}

impl Handler<Record> for Ledger {
    type Result = ();

    fn handle(&mut self, msg: Record, ctx: &mut Context<Self>) {
        let r = msg.0;
        // Settled in Redis, the waiting learn when Redis has it, not now.
        let mut in_redis = false;
        if let Some(user) = r.user_id {
            in_redis = self.shared.is_some() && self.settle_shared(r.hold, r.quota, r.created_at, ctx);
            if !in_redis {
                self.balances.settle(
                    user,
                    r.token_id,
                    r.reserved,
                    r.quota,
                    &mut self.deltas,
                    r.created_at,
                );
            }
        }
        self.pending.push(r);
        if self.pending.len() >= BATCH {
            self.write_batch(ctx);
        }
        if !self.waiting.is_empty() && !in_redis {
            self.serve_waiting(ctx);
        }
    }
}

impl Handler<Release> for Ledger {
    type Result = ();

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) {
        if self.shared.is_some() && self.release_shared(msg.ticket, ctx) {
            return;
        }
        self.balances.release(msg.user_id, msg.token_id, msg.amount);
        self.serve_waiting(ctx);
    }
}

impl Handler<Reserve> for Ledger {
    type Result = ();

    fn handle(&mut self, msg: Reserve, ctx: &mut Context<Self>) {
        self.dispatch_reserve(msg, ctx);
    }
}

impl Handler<ChangeQuota> for Ledger {
    type Result = AtomicResponse<Self, Result<(), ChangeFailed>>;

    fn handle(&mut self, msg: ChangeQuota, _ctx: &mut Context<Self>) -> Self::Result {
        if self.shared.is_some() {
            return self.change_shared(msg);
        }
        let (rows, deltas) = self.take_batch(true);
        let (db, writer) = (self.db.clone(), self.writer.clone());
        AtomicResponse::new(Box::pin(
            async move {
                if let Err((e, rows, deltas)) = writer.write(&db, rows, deltas).await {
                    return (Err(e.to_string()), rows, deltas);
                }
                let applied = apply_change(&db, msg.target, msg.change).await;
                (applied.map_err(|e| e.to_string()), Vec::new(), Deltas::default())
            }
            .into_actor(self)
            .map(move |(result, rows, deltas), act, ctx| {
                act.restore(rows, deltas);
                if let Ok(limit) = &result {
                    match msg.target {
                        QuotaTarget::User(id) => act.balances.set_user(id, *limit),
                        QuotaTarget::Token(id) => act.balances.set_token(id, *limit),
                    }
                    // A top-up may let waiting requests go, or tell them they never will.
                    act.serve_waiting(ctx);
                }
                result.map(|_| ()).map_err(ChangeFailed::Failed)
            }),
        ))
    }
}

impl Handler<CanChangeQuota> for Ledger {
    type Result = Result<(), ChangeFailed>;

    fn handle(&mut self, _msg: CanChangeQuota, _ctx: &mut Context<Self>) -> Self::Result {
        self.shared.as_ref().map_or(Ok(()), Shared::can_change)
    }
}

impl Handler<Forget> for Ledger {
    type Result = ();

    fn handle(&mut self, msg: Forget, _ctx: &mut Context<Self>) {
        self.balances.forget(msg.0);
        if let Some(shared) = &self.shared {
            shared.forget(&self.db, msg.0);
        }
    }
}

impl Handler<Flush> for Ledger {
    type Result = AtomicResponse<Self, Result<usize, String>>;

    fn handle(&mut self, _msg: Flush, _ctx: &mut Context<Self>) -> Self::Result {
        let (rows, deltas) = self.take_batch(true);
        let (db, writer) = (self.db.clone(), self.writer.clone());
        let settling = self.shared.as_ref().map(Shared::settling);
        AtomicResponse::new(Box::pin(
            async move {
                // Settlements on their way to Redis arrive before the answer.
                if let Some(settling) = settling {
                    settling.done().await;
                }
                // After a batch being written, if any, and with what it left.
                match writer.write(&db, rows, deltas).await {
                    Ok(written) => (Ok(written), Vec::new(), Deltas::default()),
                    Err((e, rows, deltas)) => (Err(e.to_string()), rows, deltas),
                }
            }
            .into_actor(self)
            .map(|(result, rows, deltas), act, _ctx| {
                // What could not be written stays queued for the next attempt.
                act.restore(rows, deltas);
                result
            }),
        ))
    }
}

impl Handler<Pending> for Ledger {
    type Result = usize;

    fn handle(&mut self, _msg: Pending, _ctx: &mut Context<Self>) -> usize {
        self.pending.len() + self.writer.unwritten_rows()
    }
}

impl Handler<Waiting> for Ledger {
    type Result = usize;

    fn handle(&mut self, _msg: Waiting, _ctx: &mut Context<Self>) -> usize {
        self.waiting.len()
    }
}
