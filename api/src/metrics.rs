//! Prometheus metrics: what the relay records as requests happen (counters and
//! histograms, kept here), and what `/metrics` reads from the actors when it is
//! scraped (gauges, in [`scrape`]). Every metric is described in the README.

pub mod scrape;

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use sluice_actors::{Outcome, UsageRecord};

pub use scrape::routes;

/// The `channel` label of a request that never reached a key.
pub const NO_CHANNEL: &str = "none";

/// The `model` label of a request refused before its model was known to be
/// served: naming it would let any client mint new label values.
pub const UNKNOWN_MODEL: &str = "unknown";

/// Queue waits: most requests get a key at once, a full budget makes them wait
/// up to `max_wait_secs` (90 s by default, rarely set above 120 s).
const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0,
];

/// Whole requests: a stream may run for minutes, bounded by `response_timeout_secs` (600 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// First tokens: a stream normally starts within seconds, bounded by `stream_first_byte_secs` (60 s).
const FIRST_TOKEN_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// The relay's counters and histograms, in their own registry (no global state).
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    provider_429: IntCounterVec,
    retries: IntCounterVec,
    queue_wait: HistogramVec,
    upstream_latency: HistogramVec,
    first_token: HistogramVec,
}

impl Metrics {
    /// Create and register every family.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram = |name: &str, help: &str, label: &str, buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            let h = HistogramVec::new(opts, &[label])?;
            registry.register(Box::new(h.clone()))?;
            prometheus::Result::Ok(h)
        };
        Ok(Metrics {
            requests: counter(
                "sluice_requests_total",
                "Requests to the relay by model, channel of the last key tried (none: no key reached) and status sent",
                &["model", "channel", "status"],
            )?,
            provider_429: counter(
                "sluice_provider_429_total",
                "429 answers from providers (never passed on to clients)",
                &["channel"],
            )?,
            retries: counter(
                "sluice_retries_total",
                "Upstream attempts repeated on another key, by why the previous one failed",
                &["model", "reason"],
            )?,
            queue_wait: histogram(
                "sluice_queue_wait_seconds",
                "Time a request waited for a key with room, per permit (and per request that gave up)",
                "model",
                QUEUE_WAIT_BUCKETS,
            )?,
            upstream_latency: histogram(
                "sluice_upstream_latency_seconds",
                "Time from a request's arrival to its last byte, for requests that reached a key",
                "channel",
                LATENCY_BUCKETS,
            )?,
            first_token: histogram(
                "sluice_time_to_first_token_seconds",
                "Time from a request's arrival to the first byte of the provider's answer",
                "model",
                FIRST_TOKEN_BUCKETS,
            )?,
            registry,
        })
    }

    /// A request ended: its row is complete. `channel` is empty when no key was reached.
    pub fn finished(&self, record: &UsageRecord, channel: &str) {
        let reached = !channel.is_empty();
        let channel = if reached { channel } else { NO_CHANNEL };
        let status = record.status.to_string();
        self.requests
            .with_label_values(&[record.model.as_str(), channel, &status])
            .inc();
        if reached {
            self.upstream_latency
                .with_label_values(&[channel])
                .observe(ms_to_secs(record.latency_ms));
        }
        if let Some(ms) = record.first_token_ms {
            self.first_token
                .with_label_values(&[record.model.as_str()])
                .observe(ms_to_secs(ms));
        }
    }

    /// A request was refused before it was relayed (bad body, model, quota).
    pub fn refused(&self, model: Option<&str>, status: u16) {
        let model = model.unwrap_or(UNKNOWN_MODEL);
        self.requests
            .with_label_values(&[model, NO_CHANNEL, &status.to_string()])
            .inc();
    }

    /// A request waited this long for a key (granted, or given up on).
    pub fn queue_waited(&self, model: &str, waited: Duration) {
        self.queue_wait
            .with_label_values(&[model])
            .observe(waited.as_secs_f64());
    }

    /// An attempt failed in a way worth another try; returns the reason label
    /// for [`Metrics::retried`], counted once the retry really goes out.
    pub fn attempt_failed(&self, channel: &str, outcome: &Outcome) -> &'static str {
        if matches!(outcome, Outcome::RateLimited { .. }) {
            self.provider_429.with_label_values(&[channel]).inc();
        }
        retry_reason(outcome)
    }

    /// Another attempt got a key after the previous one failed for `reason`.
    pub fn retried(&self, model: &str, reason: &str) {
        self.retries.with_label_values(&[model, reason]).inc();
    }

    /// The recorded families, for the scrape.
    fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }
}

/// The `reason` label of a retried attempt.
fn retry_reason(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::RateLimited { .. } => "rate_limited",
        Outcome::ServerError(_) => "server_error",
        Outcome::Timeout(_) | Outcome::Hung(_) => "timeout",
        Outcome::Connect(_) => "connect",
        Outcome::AuthFailed(_) => "auth",
        // The relay retries none of these; a label keeps the match total.
        Outcome::Success { .. } | Outcome::ClientError | Outcome::Cancelled { .. } | Outcome::NotSent => {
            "other"
        }
    }
}

fn ms_to_secs(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}
