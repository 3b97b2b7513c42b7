//! Sending the provider's answer to the client: whole, or streamed event by
//! event with the usage learned on the way. Settling the key's budget and the
//! usage row happens when the stream ends, or when the client drops it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::Stream;
use serde_json::Value;
use sluice_actors::{Outcome, Permit};

use super::forward::RelayRequest;
use super::quota::PromptCounts;
use super::record::{PendingRecord, CLIENT_CLOSED};
use super::sse::SseFilter;
use super::usage::{reported_usage, TokenCounter, Usage};
use crate::state::AppState;

/// The provider's body, chunk by chunk.
pub type UpstreamStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Header carrying the request id back to the client.
pub const REQUEST_ID: &str = "x-request-id";

/// A whole (non-stream) 2xx reply: settle and send it untouched.
pub fn complete_reply(
    state: &AppState,
    req: &RelayRequest,
    permit: Permit,
    mut pending: PendingRecord,
    status: StatusCode,
    content_type: &str,
    body: Bytes,
) -> HttpResponse {
    let (usage, estimated) = match reported_usage(&body) {
        Some(u) => {
            if let Some(estimate) = req.prompt_tokens {
                // The model that served (a fallback chain's step), whose providers counted.
                state
                    .prompt_counts
                    .learn(&pending.record.model, estimate, u.prompt_tokens);
            }
            (u, false)
        }
        None => {
            let json: Option<Value> = serde_json::from_slice(&body).ok();
            let usage = Usage {
                prompt_tokens: req.prompt_tokens_or_count(&state.counter),
                completion_tokens: json.as_ref().map_or(0, |j| state.counter.completion_tokens(j)),
            };
            (usage, true)
        }
    };
    permit.finish(Outcome::Success {
        tokens: Some(usage.total()),
        reported_prompt: (!estimated).then_some(usage.prompt_tokens),
    });
    pending.set_usage(usage, estimated);
    pending.record.first_token_ms = Some(pending.elapsed_ms());
    let body = req.protocol.reply(body, &pending.record.model, usage);
    pending.commit(status.as_u16(), None);
    HttpResponse::build(status)
        .content_type(content_type)
        .insert_header((REQUEST_ID, req.request_id.as_str()))
        .body(body)
}

/// A provider's refusal of the request itself, passed on as it came (in the
/// client's protocol's error shape).
pub fn passthrough(req: &RelayRequest, status: StatusCode, content_type: &str, body: Bytes) -> HttpResponse {
    let (body, translated_type) = req.protocol.provider_error(status.as_u16(), body);
    HttpResponse::build(status)
        .content_type(translated_type.unwrap_or(content_type))
        .insert_header((REQUEST_ID, req.request_id.as_str()))
        .body(body)
}

/// A 2xx stream: relay events as they arrive.
#[allow(clippy::too_many_arguments)]
pub fn stream_reply(
    state: &AppState,
    req: &RelayRequest,
    permit: Permit,
    mut pending: PendingRecord,
    status: StatusCode,
    content_type: &str,
    first: Bytes,
    rest: UpstreamStream,
    sent: Bytes,
) -> HttpResponse {
    pending.record.first_token_ms = Some(pending.elapsed_ms());
    // The model named back to the client is the one that serves (a fallback's step).
    let filter = match req
        .protocol
        .stream(&pending.record.model, req.prompt_tokens.unwrap_or(0))
    {
        Some(translate) => SseFilter::translated(translate),
        None => SseFilter::new(!req.client_wants_usage),
    };
    let served_model = pending.record.model.clone();
    let body = RelayStream {
        first: Some(first),
        upstream: rest,
        filter,
        settle: Some(Settlement {
            permit,
            pending,
            counter: state.counter.clone(),
            prompt: match req.prompt_tokens {
                Some(tokens) => Prompt::Counted(tokens),
                // An exact-size copy: the serializer's buffer has up to twice
                // the room, and goes once the provider has the request.
                None => Prompt::Sent(Bytes::copy_from_slice(&sent)),
            },
            prompt_counts: state.prompt_counts.clone(),
            model: served_model,
        }),
    };
    HttpResponse::build(status)
        .content_type(content_type)
        .insert_header((REQUEST_ID, req.request_id.as_str()))
        .insert_header(("cache-control", "no-cache"))
        // Tell nginx-style proxies in front not to buffer the stream either.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body)
}

/// What must happen exactly once when a stream ends, however it ends.
struct Settlement {
    permit: Permit,
    pending: PendingRecord,
    counter: Arc<TokenCounter>,
    prompt: Prompt,
    /// Where what the provider reports teaches quota holds how it counts.
    prompt_counts: Arc<PromptCounts>,
    /// The model, as the client named it.
    model: String,
}

impl Settlement {
    fn usage(&self, filter: &SseFilter) -> (Usage, bool) {
        match filter.usage {
            Some(u) => {
                if let Prompt::Counted(estimate) = self.prompt {
                    self.prompt_counts.learn(&self.model, estimate, u.prompt_tokens);
                }
                (u, false)
            }
            None => (
                Usage {
                    prompt_tokens: self.prompt.tokens(&self.counter),
                    completion_tokens: self.counter.count(&filter.text),
                },
                true,
            ),
        }
    }

    fn finish(self, filter: &SseFilter, how: StreamEnd) {
        let (usage, estimated) = self.usage(filter);
        let Settlement {
            permit, mut pending, ..
        } = self;
        pending.set_usage(usage, estimated);
        let tokens = Some(usage.total());
        match how {
            StreamEnd::Done => {
                permit.finish(Outcome::Success {
                    tokens,
                    reported_prompt: (!estimated).then_some(usage.prompt_tokens),
                });
                pending.commit(200, None);
            }
            StreamEnd::UpstreamBroke(e) => {
                permit.finish(Outcome::Connect(e.clone()));
                pending.commit(200, Some(format!("upstream stream broke: {e}")));
            }
            StreamEnd::ClientLeft => {
                permit.finish(Outcome::Cancelled { tokens });
                pending.commit(CLIENT_CLOSED, Some("client closed the connection".into()));
            }
        }
    }
}

/// A stream's prompt, as its settlement knows it.
enum Prompt {
    /// Its tokens, counted before sending (a price or a token limit needed them).
    Counted(u64),
    /// The body as sent upstream, to count them from if the provider reports no
    /// usage. Kept compact: a stream may last minutes, and an agent's request
    /// (tens of kilobytes) takes about twice its size parsed: 61 KB for 32 KB
    /// (docs/BENCHMARKS.md).
    Sent(Bytes),
}

impl Prompt {
    fn tokens(&self, counter: &TokenCounter) -> u64 {
        match self {
            Prompt::Counted(tokens) => *tokens,
            Prompt::Sent(body) => {
                serde_json::from_slice::<Value>(body).map_or(0, |body| counter.prompt_tokens(&body))
            }
        }
    }
}

enum StreamEnd {
    Done,
    UpstreamBroke(String),
    ClientLeft,
}

/// The body actix sends: upstream events through the filter. Dropping it
/// (client gone) drops the upstream response, which cancels the provider call.
struct RelayStream {
    first: Option<Bytes>,
    upstream: UpstreamStream,
    filter: SseFilter,
    settle: Option<Settlement>,
}

impl RelayStream {
    fn end(&mut self, how: StreamEnd) {
        if let Some(settle) = self.settle.take() {
            settle.finish(&self.filter, how);
        }
    }
}

impl Stream for RelayStream {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.settle.is_none() {
                return Poll::Ready(None);
            }
            let chunk = match this.first.take() {
                Some(first) => first,
                None => match this.upstream.as_mut().poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(chunk))) => chunk,
                    Poll::Ready(Some(Err(e))) => {
                        // Headers are sent: no retry is possible; end the stream cleanly.
                        let rest = this.filter.broken(&e.to_string());
                        this.end(StreamEnd::UpstreamBroke(e.to_string()));
                        return Poll::Ready((!rest.is_empty()).then_some(Ok(rest)));
                    }
                    Poll::Ready(None) => {
                        let rest = match &this.settle {
                            Some(settle) => this.filter.finish(|f| settle.usage(f).0),
                            None => Bytes::new(),
                        };
                        this.end(StreamEnd::Done);
                        return Poll::Ready((!rest.is_empty()).then_some(Ok(rest)));
                    }
                },
            };
            let out = this.filter.push(&chunk);
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out)));
            }
        }
    }
}

impl Drop for RelayStream {
    fn drop(&mut self) {
        self.end(StreamEnd::ClientLeft);
    }
}
