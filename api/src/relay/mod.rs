//! The `/v1` surface: OpenAI's endpoints, and Anthropic's Messages API and
//! OpenAI's Responses API translated onto the same relay.

pub mod anthropic;
pub mod auth;
pub mod client_ip;
pub mod disconnect;
pub mod error;
pub mod forward;
pub mod hang;
pub mod models;
pub mod probe;
pub mod protocol;
pub mod quota;
pub mod record;
pub mod reply;
pub mod responses;
pub mod retry_after;
pub mod schema;
pub mod sse;
pub mod upstream;
pub mod usage;

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde_json::Value;
use sluice_actors::Tenant;

use self::auth::RelayAuth;
use self::error::RelayError;
use self::forward::{forward, Endpoint, RelayRequest};
use self::protocol::Protocol;
use crate::state::AppState;

/// Register the `/v1` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .route("/chat/completions", web::post().to(chat_completions))
            .route("/completions", web::post().to(completions))
            .route("/embeddings", web::post().to(embeddings))
            .route("/messages", web::post().to(anthropic::messages))
            .route("/messages/count_tokens", web::post().to(anthropic::count_tokens))
            .route("/responses", web::post().to(responses::create))
            .route("/models", web::get().to(models::list))
            .route("/models/{model:.+}", web::get().to(models::get))
            .default_service(web::to(unknown_route)),
    );
}

/// The OpenAPI description of the `/v1` routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        chat_completions,
        completions,
        embeddings,
        anthropic::messages,
        anthropic::count_tokens,
        responses::create,
        models::list,
        models::get
    ),
    components(schemas(anthropic::error::AnthropicErrorBody, anthropic::error::AnthropicErrorDetail))
)]
pub struct Doc;

/// Create a chat completion.
///
/// Needs an `sk-` token. Relays an OpenAI chat completion request, streamed
/// with `stream: true` or not, to a key with room serving `model` (or the steps
/// of a fallback chain), charging quota and logging usage. Refusals: bad token
/// 401, model or address not allowed 403, model not served 404, body too large
/// 413, quota used up or no key free in time 429, every key failing 502, no
/// usable key 503.
#[utoipa::path(operation_id = "create_chat_completion", post, path = "/v1/chat/completions", tag = "relay", security(("sk_token" = [])),
    request_body(content = schema::chat::CreateChatCompletionRequest, description = "An OpenAI chat completion request; passed through untouched but for the model name"),
    responses(
        (status = 200, description = "The provider's reply: JSON, or with `stream: true` server-sent events of chunks ending with `data: [DONE]`",
            content((schema::chat::CreateChatCompletionResponse = "application/json"), (schema::chat::CreateChatCompletionStreamResponse = "text/event-stream"))),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody),
        (status = 502, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn chat_completions(
    state: web::Data<AppState>,
    auth: RelayAuth,
    http: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, RelayError> {
    relay(&state, auth, &http, body, Endpoint::Chat).await
}

/// Create a text completion (legacy).
///
/// Needs an `sk-` token. Relays an OpenAI legacy completion request to a key
/// with room on a channel serving `model`, charges the quota and logs the
/// usage. A bad token is a 401; a model the token may not use, 403; a model no
/// channel serves, 404; quota used up or no key with room, 429; keys failing, 502.
#[utoipa::path(operation_id = "create_completion", post, path = "/v1/completions", tag = "relay", security(("sk_token" = [])),
    request_body(content = schema::embeddings::CreateCompletionRequest, description = "An OpenAI completion request"),
    responses((status = 200, description = "The provider's reply: JSON, or with `stream: true` server-sent events of chunks ending with `data: [DONE]`",
            content((schema::embeddings::CreateCompletionResponse = "application/json"), (schema::embeddings::CreateCompletionResponse = "text/event-stream"))),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody), (status = 502, body = crate::error::ErrorBody)))]
async fn completions(
    state: web::Data<AppState>,
    auth: RelayAuth,
    http: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, RelayError> {
    relay(&state, auth, &http, body, Endpoint::Completions).await
}

/// Create embeddings.
///
/// Needs an `sk-` token. Relays an OpenAI embeddings request (never streamed)
/// to a key with room on a channel serving `model`, charges the quota and logs
/// the usage. A bad token is a 401; a model the token may not use, 403; a model
/// no channel serves, 404; quota used up or no key with room, 429; keys failing, 502.
#[utoipa::path(operation_id = "create_embedding", post, path = "/v1/embeddings", tag = "relay", security(("sk_token" = [])),
    request_body(content = schema::embeddings::CreateEmbeddingRequest, description = "An OpenAI embeddings request"),
    responses((status = 200, description = "The provider's reply", body = schema::embeddings::CreateEmbeddingResponse),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody), (status = 502, body = crate::error::ErrorBody)))]
async fn embeddings(
    state: web::Data<AppState>,
    auth: RelayAuth,
    http: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, RelayError> {
    relay(&state, auth, &http, body, Endpoint::Embeddings).await
}

async fn unknown_route(req: HttpRequest) -> HttpResponse {
    let error = match crate::manage::openapi::method_not_allowed(req.method(), req.path()) {
        Some(allow) => RelayError::MethodNotAllowed {
            method: req.method().to_string(),
            allow,
        },
        None => RelayError::NotFound(format!("no route {} {}", req.method(), req.path())),
    };
    if crate::hygiene::anthropic(req.path()) {
        anthropic::error::AnthropicError(error).error_response()
    } else {
        error.error_response()
    }
}

/// Whether the caller may use `model` here: served to their group (404
/// naming the models they may use) and allowed to their token (403).
pub fn check_model(state: &AppState, auth: &RelayAuth, model: &str) -> Result<(), RelayError> {
    let RelayAuth { token, owner } = auth;
    if !state.models.serves(model, &owner.group) {
        let served = state.models.list(Some(&owner.group));
        let available: Vec<&str> = served
            .iter()
            .filter(|m| token.allows(m))
            .map(String::as_str)
            .collect();
        return Err(RelayError::ModelNotFound {
            model: model.to_string(),
            available: list_or_none(&available),
        });
    }
    if !token.allows(model) {
        let mut allowed: Vec<&str> = token.models.iter().flatten().map(String::as_str).collect();
        allowed.sort_unstable();
        return Err(RelayError::ModelNotAllowed {
            model: model.to_string(),
            allowed: list_or_none(&allowed),
        });
    }
    Ok(())
}

/// The `model` a request body names: required, a non-empty string.
pub fn requested_model(body: &Value) -> Result<&str, RelayError> {
    body.get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| RelayError::BadRequest("'model' is required and must be a non-empty string".into()))
}

async fn relay(
    state: &AppState,
    auth: RelayAuth,
    http: &HttpRequest,
    payload: web::Payload,
    endpoint: Endpoint,
) -> Result<HttpResponse, RelayError> {
    relay_as(state, auth, http, payload, endpoint, Protocol::OpenAi).await
}

/// Relay a request the client made in `protocol`: translated into an OpenAI
/// body, then budgets, quota, routing and logging as for any other.
pub(crate) async fn relay_as(
    state: &AppState,
    auth: RelayAuth,
    http: &HttpRequest,
    payload: web::Payload,
    endpoint: Endpoint,
    protocol: Protocol,
) -> Result<HttpResponse, RelayError> {
    let started = Instant::now();
    let accepted = async {
        let bytes = read_body(payload, state.settings.relay.max_body_bytes).await?;
        let body = protocol.openai_body(&bytes)?;
        // An OpenAI body goes upstream as the client wrote it, but for the fields Sluice sets.
        let raw = (protocol == Protocol::OpenAi).then_some(bytes);
        parse(state, auth, endpoint, body, raw, started, protocol).await
    };
    // A refusal writes no usage row, so it is counted here rather than in `PendingRecord`.
    let req = accepted
        .await
        .inspect_err(|e| state.metrics.refused(e.served_model(), e.status_code().as_u16()))?;
    // A client that hangs up while queued or waiting for the provider gives
    // its place back and cancels the upstream call: dropping `forward` does both.
    tokio::select! {
        res = forward(state, req) => res,
        () = disconnect::client_gone(http) => Ok(HttpResponse::new(record::client_closed_status())),
    }
}

/// Read the body, refusing more than `limit` bytes.
pub(crate) async fn read_body(mut payload: web::Payload, limit: usize) -> Result<bytes::Bytes, RelayError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => RelayError::TooLarge { limit },
            actix_web::error::PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                RelayError::BodyTimeout(e.to_string())
            }
            other => RelayError::BadRequest(format!("could not read the request body: {other}")),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(RelayError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Authorise an OpenAI body: a model (or fallback chain) that is served and allowed.
async fn parse(
    state: &AppState,
    auth: RelayAuth,
    endpoint: Endpoint,
    body: Value,
    raw: Option<bytes::Bytes>,
    started: Instant,
    protocol: Protocol,
) -> Result<RelayRequest, RelayError> {
    let model = requested_model(&body)?.to_string();
    check_model(state, &auth, &model)?;
    let RelayAuth { token, owner } = auth;
    let group = owner.group.clone();
    let stream =
        endpoint != Endpoint::Embeddings && body.get("stream").and_then(Value::as_bool) == Some(true);
    let client_wants_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let tenant = Tenant {
        user_id: token.user_id,
        weight: state.prices.weight(&group),
        user_limits: owner.limits,
        token_id: token.id,
        token_limits: token.limits,
    };
    let chain = state.models.chain(&model);
    let priced = match &chain {
        Some(c) => c.models.iter().any(|m| state.prices.price(m).is_some()),
        None => state.prices.price(&model).is_some(),
    };
    // A full tokenizer pass only where something needs the estimate before sending:
    // a price to reserve, or a token limit to admit by.
    let needs_estimate = priced
        || tenant.user_limits.tpm > 0
        || tenant.token_limits.tpm > 0
        || state.models.token_limited(&model);
    let prompt_tokens = needs_estimate.then(|| state.counter.prompt_tokens(&body));
    let deadline = started + state.settings.relay.max_wait();
    // A chain holds what its dearest model could cost, and is charged at the
    // price of the one that serves.
    let price_model = match &chain {
        Some(c) => dearest(state, &c.models, &body, prompt_tokens.unwrap_or(0)),
        None => model.clone(),
    };
    let steps = forward::steps(&model, chain.as_deref());
    let mut queued = None;
    let quota = match quota::ask(state, &group, &price_model, &body, prompt_tokens.unwrap_or(0)) {
        None => quota::QuotaPlan::default(),
        Some(ask) => {
            // The quota is asked for first, then a key: both leave in one
            // delivery to the actors, and the quota's answer comes back first.
            // One wait for the two, where asking in turn waited twice.
            let hold = ask.send(state, &token);
            let (first, wait) = &steps[0];
            let first_deadline = forward::step_deadline(*wait, deadline);
            let route = forward::route_for(first, prompt_tokens, &group, &tenant, Vec::new(), first_deadline);
            queued = Some(sluice_actors::route(&state.router, route));
            ask.held(hold, &mut queued, deadline).await?
        }
    };
    Ok(RelayRequest {
        tenant,
        endpoint,
        prompt_tokens,
        pricing: quota.pricing,
        hold: quota.hold,
        queued,
        cap_output: quota.cap,
        token,
        group,
        model,
        body: std::sync::Arc::new(body),
        raw,
        stream,
        client_wants_usage,
        started,
        request_id: request_id(),
        protocol,
        chain,
        steps,
    })
}

/// A request's id: a random (version 4) UUID, drawn from the thread's generator
/// rather than the system's (`Uuid::new_v4` makes a `getrandom` call, 1 % of the
/// relay's CPU on the relay benchmark).
pub(crate) fn request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .simple()
        .to_string()
}

/// The model of `models` this request could cost most with (its prompt and
/// its output bound or each model's allowance); the first when none is priced.
fn dearest(state: &AppState, models: &[String], body: &Value, prompt_tokens: u64) -> String {
    let asked = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|f| body.get(*f).and_then(Value::as_u64));
    models
        .iter()
        .filter_map(|m| {
            let price = state.prices.price(m)?;
            let output = price.output_allowance(asked);
            Some((crate::billing::cost(prompt_tokens, output, price, 1000), m))
        })
        .max_by_key(|(cost, _)| *cost)
        .map_or_else(|| models.first().cloned().unwrap_or_default(), |(_, m)| m.clone())
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
