//! OpenAI's Responses API, `POST /v1/responses`, as Codex CLI and the OpenAI
//! SDKs' `responses.create` send it, translated onto the chat relay and back.
//! Errors keep OpenAI's shape.

pub mod reply;
pub mod request;
pub mod stream;

use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::RelayAuth;
use super::error::RelayError;
use super::forward::Endpoint;
use super::protocol::Protocol;
use super::relay_as;
use crate::state::AppState;

/// Create a response (OpenAI Responses API).
///
/// Needs an `sk-` token. The request is translated onto the chat relay and the
/// reply back, streamed as Responses API events with `stream: true`; quota,
/// routing and logging as for chat completions. Nothing is stored, so
/// `previous_response_id` is a 400. Other refusals: bad token 401, model or
/// address not allowed 403, model not served 404, body too large 413, quota
/// used up or no key free in time 429, every key failing 502, no usable key 503.
#[utoipa::path(operation_id = "create_response", post, path = "/v1/responses", tag = "relay", security(("sk_token" = [])),
    request_body(content = crate::relay::schema::responses::CreateResponseRequest, description = "A Responses API request"),
    responses(
        (status = 200, description = "A `response` object: JSON, or with `stream: true` the Responses API's server-sent events",
            content((crate::relay::schema::responses::ResponseObject = "application/json"), (crate::relay::schema::responses::ResponseStreamEvent = "text/event-stream"))),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody),
        (status = 502, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: RelayAuth,
    http: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, RelayError> {
    relay_as(&state, auth, &http, body, Endpoint::Chat, Protocol::Responses).await
}
