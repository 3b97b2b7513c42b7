//! `Ledger`: turns every relayed request into a usage-log row and settles its
//! cost against the user's and the token's quota. Balances live here, so
//! reserving and settling are exact under concurrency; rows and spending are
//! written together, in batches, so the relay hot path never waits for the
//! database.

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, TransactionTrait,
};
use sluice_entity::{tokens, usage_logs, users};

use tokio::sync::oneshot;

use crate::balances::{Ask, Balances, Deltas, Granted, Limit, QuotaError, Reservation};

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
}

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
    let (answer, rx) = oneshot::channel();
    ledger.do_send(Reserve {
        user_id,
        token_id,
        ask,
        answer,
    });
    rx.await.unwrap_or(Err(Reserved::Shutdown))
}

/// Quota held for one request. Its amount is settled with the request's usage
/// row ([`Hold::settle_with`]); dropped unsettled, it is released.
#[derive(Debug)]
pub struct Hold {
    ledger: Addr<Ledger>,
    user_id: i64,
    token_id: Option<i64>,
    granted: Granted,
}

impl Hold {
    /// What is held.
    pub fn granted(&self) -> Granted {
        self.granted
    }

    /// Hand the held amount to the usage row that settles it.
    pub fn settle_with(mut self, record: &mut UsageRecord) {
        record.reserved = std::mem::take(&mut self.granted.amount);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.granted.amount > 0 {
            self.ledger.do_send(Release {
                user_id: self.user_id,
                token_id: self.token_id,
                amount: self.granted.amount,
            });
        }
    }
}

/// Whose quota to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
#[rtype(result = "Result<(), String>")]
pub struct ChangeQuota {
    /// Whose.
    pub target: QuotaTarget,
    /// How.
    pub change: QuotaChange,
}

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

/// Rows written in one statement at most.
const BATCH: usize = 500;

/// The actor writing usage logs and holding balances.
pub struct Ledger {
    db: DatabaseConnection,
    pending: Vec<UsageRecord>,
    deltas: Deltas,
    balances: Balances,
    interval: Duration,
    /// Reservations waiting for other requests of their account to settle, oldest first.
    waiting: std::collections::VecDeque<Reserve>,
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
        }
    }

    /// Answer a reservation now if it can be answered; else hand it back.
    fn try_reserve(&mut self, msg: Reserve, me: &Addr<Ledger>) -> Option<Reserve> {
        if msg.answer.is_closed() {
            return None;
        }
        let answer = match self.balances.reserve(msg.user_id, msg.token_id, msg.ask) {
            Reservation::Wait => return Some(msg),
            Reservation::Short(e) => Err(Reserved::Short(e)),
            Reservation::Granted(granted) => Ok(Hold {
                ledger: me.clone(),
                user_id: msg.user_id,
                token_id: msg.token_id,
                granted,
            }),
        };
        // A client that left meanwhile drops the hold, which releases it.
        let _ = msg.answer.send(answer);
        None
    }

    /// Something settled or changed: answer the waiting reservations that now can be.
    fn serve_waiting(&mut self, me: &Addr<Ledger>) {
        let waiting = std::mem::take(&mut self.waiting);
        for msg in waiting {
            if let Some(msg) = self.try_reserve(msg, me) {
                self.waiting.push_back(msg);
            }
        }
    }

    /// Take what the next write should carry.
    fn take_batch(&mut self, all: bool) -> (Vec<UsageRecord>, Deltas) {
        let take = if all {
            self.pending.len()
        } else {
            self.pending.len().min(BATCH)
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

    /// Write one batch; `wait` holds the mailbox meanwhile, so a `Flush` or a
    /// quota change never runs beside a write.
    fn write_batch(&mut self, ctx: &mut Context<Self>) {
        if self.pending.is_empty() && self.deltas.is_empty() {
            return;
        }
        let (rows, deltas) = self.take_batch(false);
        let db = self.db.clone();
        ctx.wait(
            async move {
                let result = write(&db, &rows, &deltas).await;
                (result, rows, deltas)
            }
            .into_actor(self)
            .map(|(result, rows, deltas), act, ctx| match result {
                Ok(()) => {
                    if act.pending.len() >= BATCH {
                        act.write_batch(ctx);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, rows = rows.len(), "usage log write failed; will retry");
                    act.restore(rows, deltas);
                }
            }),
        );
    }
}

/// Rows per INSERT: a power of two up to this. Each statement shape is prepared
/// and cached by the database driver; a batch of any size is written with at
/// most eight shapes (128, 64, … 1 rows), where one INSERT per batch size would
/// fill every connection's statement cache with large one-off statements.
const INSERT_ROWS: usize = 128;

/// How `n` rows are cut into INSERTs: as many of the largest size as fit, then
/// the binary digits of what is left.
fn insert_sizes(n: usize) -> impl Iterator<Item = usize> {
    let full = std::iter::repeat_n(INSERT_ROWS, n / INSERT_ROWS);
    let rest = n % INSERT_ROWS;
    full.chain(
        (0..INSERT_ROWS.trailing_zeros())
            .rev()
            .map(|bit| 1 << bit)
            .filter(move |size| rest & size != 0),
    )
}

/// Rows and spending in one transaction: a crash leaves both or neither.
async fn write(db: &DatabaseConnection, rows: &[UsageRecord], deltas: &Deltas) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    let mut rest = rows;
    for size in insert_sizes(rows.len()) {
        let (chunk, after) = rest.split_at(size);
        usage_logs::Entity::insert_many(chunk.iter().map(to_row))
            .exec(&txn)
            .await?;
        rest = after;
    }
    for (id, spent) in &deltas.users {
        let mut update = users::Entity::update_many()
            .col_expr(
                users::Column::UsedQuota,
                Expr::col(users::Column::UsedQuota).add(spent.quota),
            )
            .col_expr(
                users::Column::RequestCount,
                Expr::col(users::Column::RequestCount).add(spent.requests),
            );
        if spent.limited {
            update = update.col_expr(
                users::Column::Quota,
                Expr::col(users::Column::Quota).sub(spent.quota),
            );
        }
        update.filter(users::Column::Id.eq(*id)).exec(&txn).await?;
    }
    for (id, spent) in &deltas.tokens {
        let mut update = tokens::Entity::update_many()
            .col_expr(
                tokens::Column::UsedQuota,
                Expr::col(tokens::Column::UsedQuota).add(spent.quota),
            )
            .col_expr(tokens::Column::LastUsedAt, Expr::value(spent.last_used));
        if spent.limited {
            update = update.col_expr(
                tokens::Column::RemainingQuota,
                Expr::col(tokens::Column::RemainingQuota).sub(spent.quota),
            );
        }
        update.filter(tokens::Column::Id.eq(*id)).exec(&txn).await?;
    }
    txn.commit().await
}

/// A user's and a token's balance as stored.
async fn load_limits(
    db: &DatabaseConnection,
    user: i64,
    token: Option<i64>,
) -> Result<(Limit, Option<Limit>), DbErr> {
    let user_limit = match users::Entity::find_by_id(user).one(db).await? {
        Some(u) if u.role == "root" => Limit::Unlimited,
        Some(u) => Limit::Left(u.quota),
        None => Limit::Left(0),
    };
    let token_limit = match token {
        Some(t) => Some(match tokens::Entity::find_by_id(t).one(db).await? {
            Some(t) if t.unlimited_quota => Limit::Unlimited,
            Some(t) => Limit::Left(t.remaining_quota),
            None => Limit::Left(0),
        }),
        None => None,
    };
    Ok((user_limit, token_limit))
}

fn to_row(r: &UsageRecord) -> usage_logs::ActiveModel {
    usage_logs::ActiveModel {
        request_id: Set(r.request_id.clone()),
        created_at: Set(r.created_at),
        user_id: Set(r.user_id),
        token_id: Set(r.token_id),
        token_name: Set(r.token_name.clone()),
        model: Set(r.model.clone()),
        upstream_model: Set(r.upstream_model.clone()),
        channel_id: Set(r.channel_id),
        key_id: Set(r.key_id),
        prompt_tokens: Set(r.prompt_tokens),
        completion_tokens: Set(r.completion_tokens),
        usage_estimated: Set(r.usage_estimated),
        quota: Set(r.quota),
        latency_ms: Set(r.latency_ms),
        first_token_ms: Set(r.first_token_ms),
        is_stream: Set(r.is_stream),
        status: Set(r.status),
        attempts: Set(r.attempts),
        error: Set(r.error.clone()),
        protocol: Set(if r.protocol.is_empty() {
            "openai".into()
        } else {
            r.protocol.clone()
        }),
        fallback: Set(r.fallback.clone()),
        ..Default::default()
    }
}

impl Actor for Ledger {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |act, ctx| act.write_batch(ctx));
    }
}

impl Handler<Record> for Ledger {
    type Result = ();

    fn handle(&mut self, msg: Record, ctx: &mut Context<Self>) {
        let r = msg.0;
        if let Some(user) = r.user_id {
            self.balances.settle(
                user,
                r.token_id,
                r.reserved,
                r.quota,
                &mut self.deltas,
                r.created_at,
            );
        }
        self.pending.push(r);
        if self.pending.len() >= BATCH {
            self.write_batch(ctx);
        }
        if !self.waiting.is_empty() {
            self.serve_waiting(&ctx.address());
        }
    }
}

impl Handler<Release> for Ledger {
    type Result = ();

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) {
        self.balances.release(msg.user_id, msg.token_id, msg.amount);
        self.serve_waiting(&ctx.address());
    }
}

impl Handler<Reserve> for Ledger {
    type Result = ();

    fn handle(&mut self, msg: Reserve, ctx: &mut Context<Self>) {
        if self.balances.knows(msg.user_id, msg.token_id) {
            if let Some(msg) = self.try_reserve(msg, &ctx.address()) {
                self.waiting.push_back(msg);
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
                        act.balances.set_user(user_id, user);
                        if let (Some(id), Some(limit)) = (token_id, token) {
                            act.balances.set_token(id, limit);
                        }
                        if let Some(msg) = act.try_reserve(msg, &ctx.address()) {
                            act.waiting.push_back(msg);
                        }
                    }
                    Err(e) => {
                        let _ = msg.answer.send(Err(Reserved::Unavailable(e.to_string())));
                    }
                }),
        );
    }
}

impl Handler<ChangeQuota> for Ledger {
    type Result = AtomicResponse<Self, Result<(), String>>;

    fn handle(&mut self, msg: ChangeQuota, _ctx: &mut Context<Self>) -> Self::Result {
        let (rows, deltas) = self.take_batch(true);
        let db = self.db.clone();
        AtomicResponse::new(Box::pin(
            async move {
                if let Err(e) = write(&db, &rows, &deltas).await {
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
                    act.serve_waiting(&ctx.address());
                }
                result.map(|_| ())
            }),
        ))
    }
}

/// Apply a quota change in the database; returns the new limit.
async fn apply_change(
    db: &DatabaseConnection,
    target: QuotaTarget,
    change: QuotaChange,
) -> Result<Limit, DbErr> {
    match target {
        QuotaTarget::User(id) => {
            let value = match change {
                QuotaChange::Add(n) => Expr::col(users::Column::Quota).add(n),
                QuotaChange::Set(n) => Expr::value(n),
                QuotaChange::Unlimited => return Err(DbErr::Custom("users cannot be made unlimited".into())),
            };
            users::Entity::update_many()
                .col_expr(users::Column::Quota, value)
                .filter(users::Column::Id.eq(id))
                .exec(db)
                .await?;
        }
        QuotaTarget::Token(id) => {
            let mut update = tokens::Entity::update_many();
            update = match change {
                QuotaChange::Add(n) => update.col_expr(
                    tokens::Column::RemainingQuota,
                    Expr::col(tokens::Column::RemainingQuota).add(n),
                ),
                QuotaChange::Set(n) => update
                    .col_expr(tokens::Column::RemainingQuota, Expr::value(n))
                    .col_expr(tokens::Column::UnlimitedQuota, Expr::value(false)),
                QuotaChange::Unlimited => update.col_expr(tokens::Column::UnlimitedQuota, Expr::value(true)),
            };
            update.filter(tokens::Column::Id.eq(id)).exec(db).await?;
        }
    }
    let (user, token) = match target {
        QuotaTarget::User(id) => (id, None),
        QuotaTarget::Token(id) => (0, Some(id)),
    };
    let (user_limit, token_limit) = load_limits(db, user, token).await?;
    Ok(token_limit.unwrap_or(user_limit))
}

impl Handler<Forget> for Ledger {
    type Result = ();

    fn handle(&mut self, msg: Forget, _ctx: &mut Context<Self>) {
        self.balances.forget(msg.0);
    }
}

impl Handler<Flush> for Ledger {
    type Result = AtomicResponse<Self, Result<usize, String>>;

    fn handle(&mut self, _msg: Flush, _ctx: &mut Context<Self>) -> Self::Result {
        let (rows, deltas) = self.take_batch(true);
        let db = self.db.clone();
        AtomicResponse::new(Box::pin(
            async move {
                match write(&db, &rows, &deltas).await {
                    Ok(()) => (Ok(rows.len()), Vec::new(), Deltas::default()),
                    Err(e) => (Err(e.to_string()), rows, deltas),
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
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_written_with_few_statement_shapes() {
        let sizes: Vec<usize> = insert_sizes(300).collect();
        assert_eq!(sizes, [128, 128, 32, 8, 4]);
        assert_eq!(sizes.iter().sum::<usize>(), 300);
        let shapes: std::collections::BTreeSet<usize> = (0..2000).flat_map(insert_sizes).collect();
        assert_eq!(shapes.len(), 8, "{shapes:?}");
        assert_eq!(insert_sizes(0).count(), 0);
    }
}
