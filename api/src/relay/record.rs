//! The usage-log row of a request in progress. It is sent to the ledger when
//! the request ends, and also when the client hangs up first (dropped), so
//! billing never depends on the connection surviving.

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use chrono::Utc;
use sluice_actors::ledger::{Hold, Record};
use sluice_actors::{Ledger, UsageRecord};

use super::error::RelayError;
use super::forward::{Pricing, RelayRequest};
use super::usage::Usage;
use crate::metrics::Metrics;
use crate::state::AppState;
use actix_web::ResponseError;

/// HTTP status logged when the client closed the connection (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// [`CLIENT_CLOSED`] as a status (nobody reads it: the client is gone).
pub fn client_closed_status() -> actix_web::http::StatusCode {
    actix_web::http::StatusCode::from_u16(CLIENT_CLOSED).expect("499 is a valid status")
}

/// A usage row being filled in.
pub struct PendingRecord {
    /// The row.
    pub record: UsageRecord,
    /// Name of the channel of the last key tried ("" before any), for metrics:
    /// the row itself keeps only the id.
    pub channel_name: String,
    ledger: Addr<Ledger>,
    metrics: Arc<Metrics>,
    started: Instant,
    pricing: Option<Pricing>,
    /// The quota held for the request; settled with this row.
    hold: Option<Hold>,
    sent: bool,
}

impl PendingRecord {
    /// Start the row of a request, which settles `hold` when it is sent.
    pub fn start(state: &AppState, req: &RelayRequest, hold: Option<Hold>) -> Self {
        PendingRecord {
            record: UsageRecord {
                request_id: req.request_id.clone(),
                created_at: Utc::now(),
                user_id: Some(req.token.user_id),
                token_id: Some(req.token.id),
                token_name: req.token.name.clone(),
                model: req.model.clone(),
                upstream_model: req.model.clone(),
                is_stream: req.stream,
                usage_estimated: true,
                protocol: req.protocol.as_str().to_string(),
                fallback: req.chain.as_ref().map(|c| c.name.clone()),
                ..Default::default()
            },
            channel_name: String::new(),
            ledger: state.ledger.clone(),
            metrics: state.metrics.clone(),
            started: req.started,
            pricing: req.pricing,
            hold,
            sent: false,
        }
    }

    /// Milliseconds since the request arrived.
    pub fn elapsed_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// A fallback chain moved to `model`: the row names it, and it is charged at its price.
    pub fn serve_model(&mut self, model: &str, pricing: Option<Pricing>) {
        self.record.model = model.to_string();
        self.record.upstream_model = model.to_string();
        self.pricing = pricing;
    }

    /// Set the usage, provider-reported or counted here.
    pub fn set_usage(&mut self, usage: Usage, estimated: bool) {
        self.record.prompt_tokens = usage.prompt_tokens as i64;
        self.record.completion_tokens = usage.completion_tokens as i64;
        self.record.usage_estimated = estimated;
    }

    /// Send the row with this status.
    pub fn commit(mut self, status: u16, error: Option<String>) {
        self.send(status, error);
    }

    /// Send the row for an error and hand the error back.
    pub fn fail(self, error: RelayError) -> RelayError {
        let status = error.status_code().as_u16();
        let mut this = self;
        this.record.completion_tokens = 0;
        this.record.prompt_tokens = 0;
        this.send(status, Some(error.to_string()));
        error
    }

    fn send(&mut self, status: u16, error: Option<String>) {
        if self.sent {
            return;
        }
        self.sent = true;
        self.record.status = status as i32;
        self.record.error = error;
        self.record.latency_ms = self.elapsed_ms();
        // Charged once, here, whatever the attempts: what the provider used.
        self.record.quota = self.pricing.map_or(0, |p| {
            p.cost(
                self.record.prompt_tokens as u64,
                self.record.completion_tokens as u64,
            )
        });
        tracing::info!(
            status,
            key_id = self.record.key_id,
            latency_ms = self.record.latency_ms,
            prompt_tokens = self.record.prompt_tokens,
            completion_tokens = self.record.completion_tokens,
            attempts = self.record.attempts,
            "request done"
        );
        if let Some(hold) = self.hold.take() {
            hold.settle_with(&mut self.record);
        }
        self.metrics.finished(&self.record, &self.channel_name);
        let (ledger, record) = (self.ledger.clone(), std::mem::take(&mut self.record));
        sluice_actors::courier::deliver(move || ledger.do_send(Record(record)));
    }
}

impl Drop for PendingRecord {
    fn drop(&mut self) {
        self.send(CLIENT_CLOSED, Some("client closed the connection".into()));
    }
}
