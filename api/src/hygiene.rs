//! HTTP hygiene, checked before any handler runs, with errors in the JSON
//! shape of every surface (`{"error": {…}}`):
//! - a path and query longer than `[server] max_url_bytes`: 414;
//! - more header bytes than `[server] max_header_bytes`: 431;
//! - a declared `Content-Length` over the surface's limit: 413 at once, before
//!   a byte of the body is read (the relay's `max_body_bytes` on `/v1`, 1 MiB
//!   elsewhere);
//! - a body that has not fully arrived `[server] body_timeout_secs` after the
//!   headers: the handler reading it gets a timeout (408 on `/v1`, 400 on `/api`).
//!   A client slow to send its headers is cut off by actix after
//!   `request_head_timeout_secs`.
//!
//! With `[metrics] listen`, `/metrics` is served on that address only, and
//! nothing else is.
//!
//! A head larger than actix's own buffer (32 KiB) is refused by actix itself
//! before this runs, with a bare 431.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use bytes::Bytes;
use futures_util::Stream;

use crate::config::{ServerSettings, Settings};
use crate::error::{ErrorBody, API_BODY_BYTES};

/// What the guard checks, resolved once at start-up.
#[derive(Clone, Debug)]
pub struct Hygiene {
    server: ServerSettings,
    relay_body_bytes: usize,
    /// The port `/metrics` is served on alone, when it has its own address.
    metrics_port: Option<u16>,
}

impl Hygiene {
    /// The limits of `settings`; `metrics_port` when `/metrics` has its own listener.
    pub fn new(settings: &Settings, metrics_port: Option<u16>) -> Self {
        Hygiene {
            server: settings.server.clone(),
            relay_body_bytes: settings.relay.max_body_bytes,
            metrics_port,
        }
    }
}

/// Whether a path is on the Anthropic Messages surface, which has its own error shape.
pub fn anthropic(path: &str) -> bool {
    path == "/v1/messages" || path.starts_with("/v1/messages/")
}

/// The middleware (`actix_web::middleware::from_fn(guard)`).
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let rules = req
        .app_data::<web::Data<Hygiene>>()
        .expect("Hygiene is registered")
        .clone();
    if let Some(res) = check(&req, &rules) {
        return Ok(req.into_response(res).map_into_right_body());
    }
    if has_body(&req) {
        let payload = req.take_payload();
        let timeout = Duration::from_secs(rules.server.body_timeout_secs.max(1));
        req.set_payload(Payload::Stream {
            payload: Box::pin(Deadline {
                inner: payload,
                sleep: Box::pin(tokio::time::sleep(timeout)),
                timeout,
                done: false,
            }),
        });
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}

fn check(req: &ServiceRequest, rules: &Hygiene) -> Option<HttpResponse> {
    let path = req.path();
    let refuse = |status: StatusCode, code: &str, message: String| {
        if anthropic(path) {
            crate::relay::anthropic::error::respond(status, message)
        } else {
            ErrorBody::new(message, "invalid_request_error", code, None).respond(HttpResponse::build(status))
        }
    };
    if let Some(port) = rules.metrics_port {
        let on_metrics_port = req.app_config().local_addr().port() == port;
        if on_metrics_port != (path == "/metrics") {
            let message = if on_metrics_port {
                "only /metrics is served on this address".to_string()
            } else {
                "/metrics is served on its own address".to_string()
            };
            return Some(refuse(StatusCode::NOT_FOUND, "not_found", message));
        }
    }
    if path.starts_with("/api/") {
        let session = req.headers().get(crate::auth::cookies::SESSION_HEADER);
        if session.is_some_and(|v| v.as_bytes() != crate::auth::cookies::SESSION_HEADER_VALUE.as_bytes()) {
            // A typo here would silently fall back to bearer tokens in the body.
            return Some(refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the Sluice-Session header takes one value, 'cookie'".to_string(),
            ));
        }
    }
    let url = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if url > rules.server.max_url_bytes {
        return Some(refuse(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!(
                "the path and query are {url} bytes; at most {} bytes are accepted",
                rules.server.max_url_bytes
            ),
        ));
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > rules.server.max_header_bytes {
        return Some(refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the headers are {headers} bytes; at most {} bytes are accepted",
                rules.server.max_header_bytes
            ),
        ));
    }
    let limit = if path.starts_with("/v1/") {
        rules.relay_body_bytes
    } else {
        API_BODY_BYTES
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Some(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("the request body is {n} bytes; at most {limit} bytes are accepted"),
        )),
        _ => None,
    }
}

fn has_body(req: &ServiceRequest) -> bool {
    req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// A request body that fails with a timeout once its time is up.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    done: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            self.done = item.is_none();
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.done = true;
            let message = format!(
                "the request body did not arrive within {} s",
                self.timeout.as_secs()
            );
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                message,
            )))));
        }
        Poll::Pending
    }
}
