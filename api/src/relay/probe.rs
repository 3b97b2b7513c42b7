//! A tiny request through one exact key: the operator's "test" button and the
//! health prober. It goes through the router like any request, so it counts
//! against the key's budget and waits for room rather than earn a 429.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use sluice_actors::{Outcome, Route, RouteError, Tenant};
use utoipa::ToSchema;

use super::forward::{call, snippet, Answer, Endpoint};
use super::usage::usage_from_json;
use crate::state::AppState;

/// Longest a test waits for the key to have room: a test answers in seconds,
/// and a key without room for longer is reported with when it will have some.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// Longest a test waits for the provider's answer (a one-token reply), however
/// long the relay's own timeouts are: a key that hangs fails its test.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// What a test of one key found.
#[derive(Serialize, ToSchema, Debug, Clone)]
pub struct ProbeResult {
    /// The key tested.
    pub key_id: i64,
    /// The model asked for (client name).
    pub model: String,
    /// Whether the provider answered 2xx.
    pub ok: bool,
    /// The provider's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Milliseconds from sending to the whole answer.
    pub latency_ms: i64,
    /// The provider's error, or why no request was sent.
    pub error: Option<String>,
}

/// Send `{"messages":[ping], "max_tokens":1}` for `model` through key `key_id`,
/// even one health checks disabled or one backing off after failures (that is
/// what a test is for); an operator's disable and the rate limits still hold.
pub async fn probe_key(state: &AppState, key_id: i64, model: &str) -> ProbeResult {
    let mut result = ProbeResult {
        key_id,
        model: model.to_string(),
        ok: false,
        status: None,
        latency_ms: 0,
        error: None,
    };
    let route = Route {
        model: model.to_string(),
        tokens: 8,
        exclude: Vec::new(),
        deadline: Instant::now() + MAX_WAIT.min(state.settings.relay.max_wait()),
        group: String::new(),
        tenant: Tenant::default(),
        only_key: Some(key_id),
        probe: true,
    };
    let mut permit = match sluice_actors::route(&state.router, route).wait().await {
        Ok(permit) => permit,
        Err(RouteError::WaitExceeded { retry_after, .. }) => {
            result.error = Some(format!(
                "the key is at its limit; free in {} s",
                retry_after.as_secs().max(1)
            ));
            return result;
        }
        Err(RouteError::NoKeys { reason, .. }) => {
            result.error = Some(format!("the key cannot take requests: {reason}"));
            return result;
        }
        Err(RouteError::Shutdown) => {
            result.error = Some("the gateway is shutting down".into());
            return result;
        }
    };
    let body = bytes::Bytes::from(
        json!({
            "model": permit.upstream_model(),
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 1,
        })
        .to_string(),
    );
    permit.mark_sent();
    let started = Instant::now();
    let Ok(answer) =
        tokio::time::timeout(ANSWER_WITHIN, call(state, &permit, Endpoint::Chat, false, body)).await
    else {
        let error = format!("no answer within {} s", ANSWER_WITHIN.as_secs());
        result.latency_ms = started.elapsed().as_millis() as i64;
        permit.finish(Outcome::Timeout(error.clone()));
        result.error = Some(error);
        return result;
    };
    result.latency_ms = started.elapsed().as_millis() as i64;
    match answer {
        Answer::Complete { status, body, .. } => {
            let tokens = serde_json::from_slice(&body)
                .ok()
                .as_ref()
                .and_then(usage_from_json)
                .map(|u| u.total());
            // A probe's prompt is no estimate worth learning from.
            permit.finish(Outcome::Success {
                tokens,
                reported_prompt: None,
            });
            result.ok = true;
            result.status = Some(status.as_u16());
        }
        Answer::Reject { status, body, .. } => {
            permit.finish(Outcome::ClientError);
            result.status = Some(status.as_u16());
            result.error = Some(format!("provider answered {status}: {}", snippet(&body)));
        }
        Answer::Retry { outcome, error, .. } => {
            result.status = match &outcome {
                Outcome::RateLimited { .. } => Some(429),
                _ => None,
            };
            permit.finish(outcome);
            result.error = Some(error);
        }
        Answer::Stream { .. } => unreachable!("a probe is not a stream"),
    }
    result
}
