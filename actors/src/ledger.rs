//! `Ledger`: turns every relayed request into a usage-log row, written in
//! batches so the relay hot path never waits for the database.

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};
use sluice_entity::usage_logs;

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
}

/// Record one request (written with the next batch).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Record(pub UsageRecord);

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

/// The actor writing usage logs in batches.
pub struct Ledger {
    db: DatabaseConnection,
    pending: Vec<UsageRecord>,
    interval: Duration,
    writing: bool,
}

impl Ledger {
    /// A ledger writing to `db` every `interval` (and at once when a batch fills).
    pub fn new(db: DatabaseConnection, interval: Duration) -> Self {
        Ledger {
            db,
            pending: Vec::new(),
            interval,
            writing: false,
        }
    }

    /// Write up to `BATCH` rows; on failure they go back to the front of the queue.
    fn write_batch(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.pending.is_empty() {
            return;
        }
        self.writing = true;
        let take = self.pending.len().min(BATCH);
        let batch: Vec<UsageRecord> = self.pending.drain(..take).collect();
        let db = self.db.clone();
        let rows: Vec<usage_logs::ActiveModel> = batch.iter().map(to_row).collect();
        // `wait` holds the mailbox during the write, so a `Flush` never runs
        // beside it and returns before every accepted row is on disk.
        ctx.wait(
            async move { usage_logs::Entity::insert_many(rows).exec(&db).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.writing = false;
                    match res {
                        Ok(_) => {
                            if act.pending.len() >= BATCH {
                                act.write_batch(ctx);
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, rows = batch.len(), "usage log write failed; will retry");
                            act.pending.splice(0..0, batch);
                        }
                    }
                }),
        );
    }
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
        self.pending.push(msg.0);
        if self.pending.len() >= BATCH {
            self.write_batch(ctx);
        }
    }
}

impl Handler<Flush> for Ledger {
    type Result = AtomicResponse<Self, Result<usize, String>>;

    fn handle(&mut self, _msg: Flush, _ctx: &mut Context<Self>) -> Self::Result {
        let rows: Vec<UsageRecord> = std::mem::take(&mut self.pending);
        let db = self.db.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let mut written = 0;
                for chunk in rows.chunks(BATCH) {
                    let models: Vec<usage_logs::ActiveModel> = chunk.iter().map(to_row).collect();
                    if let Err(e) = usage_logs::Entity::insert_many(models).exec(&db).await {
                        return (Err(e.to_string()), rows.into_iter().skip(written).collect());
                    }
                    written += chunk.len();
                }
                (Ok(written), Vec::new())
            }
            .into_actor(self)
            .map(|(result, unwritten), act, _ctx| {
                // What could not be written stays queued for the next attempt.
                act.pending.splice(0..0, unwritten);
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
