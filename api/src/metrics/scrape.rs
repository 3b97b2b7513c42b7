//! `GET /metrics`: the recorded families plus gauges read from the actors at
//! scrape time, so they are exact and cost the hot path nothing. The gauges
//! are built afresh on every scrape: a removed key or an emptied queue leaves
//! no stale series behind, and two scrapes at once cannot interleave.

use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use actix_web::{web, HttpRequest, HttpResponse};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, GaugeVec, IntGauge, Opts, Registry, TextEncoder};
use sluice_actors::ledger::Pending;
use sluice_actors::router::{KeyState, ListKeyStates, QueueDepth};

use crate::error::ErrorBody;
use crate::state::AppState;

/// Register `/metrics`. Open like `/healthz` unless `[metrics] token` is set
/// (then scrapers send it as a bearer token); `[metrics] listen` serves it on
/// an address of its own (see [`crate::hygiene`]).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

/// Whether the request carries the configured token (compared in constant time).
fn authorised(req: &HttpRequest, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|sent| sent.trim().as_bytes().ct_eq(token.as_bytes()).into())
}

/// The text exposition format, version 0.0.4.
async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Some(token) = &state.settings.metrics.token {
        if !authorised(&req, token) {
            return ErrorBody::new(
                "send the metrics token: 'Authorization: Bearer <token>'",
                "authentication_error",
                "unauthorized",
                None,
            )
            .respond(
                HttpResponse::build(actix_web::http::StatusCode::UNAUTHORIZED)
                    .insert_header((WWW_AUTHENTICATE, "Bearer"))
                    .take(),
            );
        }
    }
    let mut families = state.metrics.gather();
    match live_gauges(&state).await {
        Ok(live) => families.extend(live),
        Err(e) => tracing::warn!(error = %e, "live gauges left out of /metrics"),
    }
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&families, &mut body) {
        Ok(()) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, encoder.format_type()))
            .body(body),
        Err(e) => HttpResponse::InternalServerError().body(format!("could not encode metrics: {e}")),
    }
}

/// Per-key budgets, queue depth per model and the ledger's backlog, now.
async fn live_gauges(state: &AppState) -> anyhow::Result<Vec<MetricFamily>> {
    let registry = Registry::new();
    let keys = KeyGauges::new(&registry)?;
    for key in state.router.send(ListKeyStates).await? {
        keys.set(&key);
    }

    let depth = GaugeVec::new(
        Opts::new("sluice_queue_depth", "Requests waiting for a key now"),
        &["model"],
    )?;
    registry.register(Box::new(depth.clone()))?;
    // Every served model appears, at 0 when nothing waits: a missing series reads as "unknown".
    for model in state.models.list(None) {
        depth.with_label_values(&[model.as_str()]).set(0.0);
    }
    for (model, waiting) in state.router.send(QueueDepth).await? {
        depth.with_label_values(&[model.as_str()]).set(waiting as f64);
    }

    let pending = IntGauge::new(
        "sluice_ledger_pending_rows",
        "Usage-log rows accepted but not yet written to the database",
    )?;
    registry.register(Box::new(pending.clone()))?;
    pending.set(state.ledger.send(Pending).await? as i64);
    Ok(registry.gather())
}

/// The per-key gauge families, labelled by channel, key id and masked secret.
struct KeyGauges {
    requests_in_window: GaugeVec,
    tokens_in_window: GaugeVec,
    effective_rpm: GaugeVec,
    utilisation: GaugeVec,
    in_flight: GaugeVec,
    cooldown: GaugeVec,
    disabled: GaugeVec,
}

impl KeyGauges {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| -> prometheus::Result<GaugeVec> {
            let g = GaugeVec::new(Opts::new(name, help), &["channel", "key", "mask"])?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        Ok(KeyGauges {
            requests_in_window: gauge(
                "sluice_key_requests_in_window",
                "Requests the key sent in the current sliding window",
            )?,
            tokens_in_window: gauge(
                "sluice_key_tokens_in_window",
                "Tokens the key used in the current sliding window",
            )?,
            effective_rpm: gauge(
                "sluice_key_effective_rpm",
                "Request limit in force (lowered after provider 429s; 0 = unlimited)",
            )?,
            utilisation: gauge(
                "sluice_key_utilisation",
                "Requests in the window over the limit in force (0 when unlimited)",
            )?,
            in_flight: gauge("sluice_key_in_flight", "Requests on the key now")?,
            cooldown: gauge(
                "sluice_key_cooldown_seconds",
                "Cooldown left after a provider 429 or failure",
            )?,
            disabled: gauge("sluice_key_disabled", "1 when the key is disabled")?,
        })
    }

    fn set(&self, key: &KeyState) {
        let (spec, snap) = (&key.spec, &key.snapshot);
        let id = spec.key_id.to_string();
        let mask = spec.secret.mask();
        let labels = [spec.channel_name.as_str(), id.as_str(), mask.as_str()];
        let in_window = f64::from(snap.requests_in_window);
        let rpm = f64::from(snap.effective_rpm);
        self.requests_in_window.with_label_values(&labels).set(in_window);
        self.tokens_in_window
            .with_label_values(&labels)
            .set(snap.tokens_in_window as f64);
        self.effective_rpm.with_label_values(&labels).set(rpm);
        let utilisation = if rpm > 0.0 { in_window / rpm } else { 0.0 };
        self.utilisation.with_label_values(&labels).set(utilisation);
        self.in_flight
            .with_label_values(&labels)
            .set(f64::from(snap.in_flight));
        let cooldown = snap.cooldown_remaining.map_or(0.0, |d| d.as_secs_f64());
        self.cooldown.with_label_values(&labels).set(cooldown);
        let disabled = if snap.disabled.is_some() { 1.0 } else { 0.0 };
        self.disabled.with_label_values(&labels).set(disabled);
    }
}
