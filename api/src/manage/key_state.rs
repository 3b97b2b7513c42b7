//! What every key's budget is doing right now (admin): requests and tokens
//! in the window, configured and learned limits, queue, cooldown, in-flight,
//! last error, next free slot. As JSON, and as server-sent events a console
//! can draw without polling.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use sluice_actors::router::ListKeyStates;
use sluice_actors::Readiness;
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthContext;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::state::AppState;

/// Key state routes (registered before `/keys/{id}`, which would shadow them).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/keys/state", web::get().to(states))
        .route("/keys/state/stream", web::get().to(stream_states));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(states, stream_states),
    components(schemas(KeyStateView, LimitsView, KeyStateEvent))
)]
pub struct Doc;

/// Configured limits.
#[derive(Serialize, ToSchema, Debug)]
pub struct LimitsView {
    /// Requests per window (0 = unlimited).
    pub rpm: u32,
    /// Tokens per window (0 = unlimited).
    pub tpm: u64,
    /// Requests in flight (0 = unlimited).
    pub max_concurrency: u32,
}

/// What a key's budget is doing now.
#[derive(Serialize, ToSchema, Debug)]
pub struct KeyStateView {
    /// Key id.
    pub key_id: i64,
    /// Its channel.
    pub channel_id: i64,
    /// Channel name.
    pub channel: String,
    /// The key, masked.
    pub mask: String,
    /// Requests in the current window.
    pub requests_in_window: u32,
    /// Tokens in the current window.
    pub tokens_in_window: u64,
    /// Configured limits.
    pub configured: LimitsView,
    /// The request limit in force: lower than configured after provider 429s.
    pub effective_rpm: u32,
    /// The token limit in force: lower than configured after provider 429s
    /// that came while the token window was the fuller one.
    pub effective_tpm: u64,
    /// Requests waiting that this key could serve.
    pub queue_depth: usize,
    /// Requests in flight.
    pub in_flight: u32,
    /// Milliseconds of cooldown left (after a 429 or failures).
    pub cooldown_remaining_ms: Option<u64>,
    /// Milliseconds until it can take a request: 0 = now, absent = when an
    /// in-flight request ends (or never, while disabled).
    pub next_ready_in_ms: Option<u64>,
    /// Why it is disabled.
    pub disabled: Option<String>,
    /// Disabled by health checks (the prober tries it again).
    pub health_disabled: bool,
    /// The provider's last error.
    pub last_error: Option<String>,
    /// Requests served since start.
    pub served: u64,
    /// Provider 429s since start.
    pub rate_limited: u64,
}

async fn key_states(state: &AppState) -> Result<Vec<KeyStateView>, ApiError> {
    let states = state
        .router
        .send(ListKeyStates)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let now = std::time::Instant::now();
    Ok(states
        .into_iter()
        .map(|k| {
            let s = k.snapshot;
            let next_ready_in_ms = match (s.disabled.is_some(), s.readiness) {
                (true, _) | (false, Readiness::WhenSlotFrees) => None,
                (false, Readiness::Now) => Some(0),
                (false, Readiness::At(at)) => Some(at.saturating_duration_since(now).as_millis() as u64),
            };
            KeyStateView {
                key_id: k.spec.key_id,
                channel_id: k.spec.channel_id,
                channel: k.spec.channel_name.clone(),
                mask: k.spec.secret.mask(),
                requests_in_window: s.requests_in_window,
                tokens_in_window: s.tokens_in_window,
                configured: LimitsView {
                    rpm: s.configured.rpm,
                    tpm: s.configured.tpm,
                    max_concurrency: s.configured.max_concurrency,
                },
                effective_rpm: s.effective_rpm,
                effective_tpm: s.effective_tpm,
                queue_depth: k.queue_depth,
                in_flight: s.in_flight,
                cooldown_remaining_ms: s.cooldown_remaining.map(|d| d.as_millis() as u64),
                next_ready_in_ms,
                disabled: s.disabled,
                health_disabled: s.health_disabled,
                last_error: s.last_error,
                served: s.served,
                rate_limited: s.rate_limited,
            }
        })
        .collect())
}

/// Show every key's budget now.
///
/// Admin only. For each key: requests and tokens in the current window,
/// configured and effective (learned after provider 429s) limits, queue depth,
/// requests in flight, cooldown, when it can next take a request, and its last
/// error.
#[utoipa::path(get, path = "/api/keys/state", tag = "channels", operation_id = "key_states", security(("bearer" = [])),
    responses((status = 200, body = Vec<KeyStateView>), (status = 403, body = ErrorBody)))]
pub async fn states(state: web::Data<AppState>, auth: AuthContext) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    Ok(HttpResponse::Ok().json(key_states(&state).await?))
}

/// One server-sent event of `GET /api/keys/state/stream`.
#[derive(Serialize, ToSchema)]
pub struct KeyStateEvent {
    /// Always `keys`.
    pub event: String,
    /// A JSON array of `KeyStateView`, as `GET /api/keys/state` returns.
    pub data: String,
}

/// How often the stream sends.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Milliseconds between events (250–10000, default 1000).
    pub interval_ms: Option<u64>,
    /// The access token, for clients that cannot send headers (`EventSource`).
    pub access_token: Option<String>,
}

/// Stream every key's budget as server-sent events.
///
/// Admin only. Sends an `event: keys` whose `data:` is the same JSON as
/// `GET /api/keys/state`, at once and then every `interval_ms` (250–10000,
/// default 1000; other values are refused with 400). Clients that cannot send
/// headers (`EventSource`) may pass the token as `access_token`.
#[utoipa::path(get, path = "/api/keys/state/stream", tag = "channels", operation_id = "stream_key_states",
    params(StreamQuery), security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream; each `keys` event carries the key states", content_type = "text/event-stream", body = KeyStateEvent),
        (status = 403, body = ErrorBody)))]
pub async fn stream_states(
    state: web::Data<AppState>,
    auth: AuthContext,
    q: web::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let every = q.interval_ms.unwrap_or(1000);
    if !(250..=10_000).contains(&every) {
        return Err(ApiError::BadRequest("interval_ms must be 250–10000".into()));
    }
    let state = state.into_inner();
    let events = futures_util::stream::unfold((state, true), move |(state, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_millis(every)).await;
        }
        let data = match key_states(&state).await {
            Ok(views) => serde_json::to_string(&views).expect("serialises"),
            Err(_) => return None,
        };
        let event = bytes::Bytes::from(format!("event: keys\ndata: {data}\n\n"));
        Some((Ok::<_, actix_web::Error>(event), (state, false)))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(events))
}
