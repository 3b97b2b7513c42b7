//! Anthropic's Messages API: `POST /v1/messages` (and `/v1/messages/count_tokens`),
//! as Claude Code and Anthropic's SDKs send it, translated onto the OpenAI relay
//! and back. The key comes as `x-api-key` or `Authorization: Bearer`; any
//! `anthropic-version` is accepted, and the `?beta=true` Claude Code adds is ignored.

pub mod error;
pub mod reply;
pub mod request;
pub mod stream;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use self::error::{AnthropicError, AnthropicErrorBody};
use super::auth::authenticate;
use super::forward::Endpoint;
use super::protocol::Protocol;
use super::{read_body, relay_as};
use crate::state::AppState;

/// Create a message (Anthropic Messages API).
///
/// Needs an `sk-` token (`x-api-key` or bearer; any `anthropic-version`). The
/// request is translated onto the chat relay and the reply back, streamed as
/// Anthropic events with `stream: true`; quota, routing and logging as for chat
/// completions, errors in Anthropic's shape. Refusals: bad token 401, model or
/// address not allowed 403, model not served 404, body too large 413, quota
/// used up or no key free in time 429, every key failing 502, no usable key 503.
#[utoipa::path(operation_id = "create_message", post, path = "/v1/messages", tag = "relay", security(("sk_token" = [])),
    request_body(content = crate::relay::schema::anthropic::CreateMessageRequest, description = "An Anthropic Messages request"),
    responses(
        (status = 200, description = "An Anthropic message: JSON, or with `stream: true` Anthropic's server-sent events",
            content((crate::relay::schema::anthropic::CreateMessageResponse = "application/json"), (crate::relay::schema::anthropic::MessageStreamEvent = "text/event-stream"))),
        (status = 400, body = AnthropicErrorBody), (status = 401, body = AnthropicErrorBody),
        (status = 403, body = AnthropicErrorBody), (status = 404, body = AnthropicErrorBody),
        (status = 413, body = AnthropicErrorBody), (status = 429, body = AnthropicErrorBody),
        (status = 502, body = AnthropicErrorBody), (status = 503, body = AnthropicErrorBody)))]
pub async fn messages(
    state: web::Data<AppState>,
    http: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, AnthropicError> {
    let auth = authenticate(&http)?;
    Ok(relay_as(&state, auth, &http, body, Endpoint::Chat, Protocol::Anthropic).await?)
}

/// Count a message's input tokens (Anthropic Messages API).
///
/// Needs an `sk-` token. Counts the input tokens of a Messages request with the
/// local tokenizer and answers `{"input_tokens": n}`; no provider is called and
/// no quota is spent. The model must be one the token may use here, as for
/// `POST /v1/messages` (404 when not served, 403 when not allowed). A malformed
/// body is a 400; a body over the size limit, 413.
#[utoipa::path(operation_id = "count_message_tokens", post, path = "/v1/messages/count_tokens", tag = "relay", security(("sk_token" = [])),
    request_body(content = crate::relay::schema::anthropic::CountTokensRequest, description = "An Anthropic Messages request without `max_tokens`"),
    responses(
        (status = 200, description = "The prompt's size", body = crate::relay::schema::anthropic::CountTokensResponse),
        (status = 400, body = AnthropicErrorBody), (status = 401, body = AnthropicErrorBody),
        (status = 403, body = AnthropicErrorBody), (status = 404, body = AnthropicErrorBody),
        (status = 413, body = AnthropicErrorBody)))]
pub async fn count_tokens(
    state: web::Data<AppState>,
    http: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, AnthropicError> {
    let auth = authenticate(&http)?;
    let bytes = read_body(body, state.settings.relay.max_body_bytes).await?;
    let chat = Protocol::Anthropic.openai_body(&bytes)?;
    // Counting is local and free, but for a model the caller may use, as Anthropic's is.
    crate::relay::check_model(&state, &auth, crate::relay::requested_model(&chat)?)?;
    let input_tokens = state.counter.prompt_tokens(&chat);
    Ok(HttpResponse::Ok().json(json!({ "input_tokens": input_tokens })))
}
