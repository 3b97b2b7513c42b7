//! The relay loop: get a permit from the router, call the provider with that
//! key, and on a 429, 5xx, timeout or broken connection before the client has
//! seen a byte, report it to the key and try again (on another key).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::value::RawValue;
use serde_json::Value;
use sluice_actors::ledger::Hold;
use sluice_actors::scheduler::TenantLimit;
use sluice_actors::{Outcome, Permit, Route, RouteError, Tenant, Ticket};

use super::error::RelayError;
use super::protocol::Protocol;
use super::record::PendingRecord;
use super::reply::{complete_reply, passthrough, stream_reply, UpstreamStream};
use super::retry_after::retry_after;
use crate::billing::{cost, Price};
use crate::catalog::models::Chain;
use crate::catalog::token_cache::TokenInfo;
use crate::state::AppState;

/// The OpenAI endpoints Sluice relays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions`
    Chat,
    /// `/v1/completions`
    Completions,
    /// `/v1/embeddings`
    Embeddings,
}

impl Endpoint {
    /// Path below the provider's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat/completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// A parsed, authorised request ready to relay.
pub struct RelayRequest {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The caller's token.
    pub token: Arc<TokenInfo>,
    /// Model as the client named it.
    pub model: String,
    /// The body as received (translated into OpenAI's, for another protocol).
    pub body: Arc<Value>,
    /// The client's own text of `body`, when it spoke OpenAI's protocol.
    pub raw: Option<Bytes>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Whether the client itself asked for the usage chunk.
    pub client_wants_usage: bool,
    /// Estimated prompt tokens, when something needed them before sending (a
    /// price, a token limit); otherwise counted only if the provider reports none.
    pub prompt_tokens: Option<u64>,
    /// Price and multiplier when the model is priced.
    pub pricing: Option<Pricing>,
    /// Quota held for it, settled with its usage row.
    pub hold: Option<Hold>,
    /// Its place in the first model's key queue, taken while its quota was
    /// being held (a priced request asks for both at once).
    pub queued: Option<Ticket>,
    /// `max_tokens` to send upstream, when the output must stay within what was held.
    pub cap_output: Option<(&'static str, u64)>,
    /// When the request arrived.
    pub started: Instant,
    /// Request id.
    pub request_id: String,
    /// The token owner's user group.
    pub group: String,
    /// Whose request it is: fair turns and tenant limits.
    pub tenant: Tenant,
    /// The API the client spoke; its answer is translated back into it.
    pub protocol: Protocol,
    /// The fallback chain `model` names, if it names one.
    pub chain: Option<Arc<Chain>>,
    /// The models to try, in order, each with how long to wait for it ([`steps`]).
    pub steps: Vec<(String, Option<Duration>)>,
}

/// What a priced request costs per token.
#[derive(Clone, Copy, Debug)]
pub struct Pricing {
    /// The model's price.
    pub price: Price,
    /// The user's group multiplier, in permille.
    pub multiplier: u32,
}

impl RelayRequest {
    /// The prompt's tokens: the estimate made before sending, or counted now.
    pub fn prompt_tokens_or_count(&self, counter: &crate::relay::usage::TokenCounter) -> u64 {
        self.prompt_tokens
            .unwrap_or_else(|| counter.prompt_tokens(&self.body))
    }
}

impl Pricing {
    /// Cost of this many tokens.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> i64 {
        cost(prompt_tokens, completion_tokens, self.price, self.multiplier)
    }
}

/// What one upstream attempt came to.
pub enum Answer {
    /// 2xx, whole body read.
    Complete {
        status: StatusCode,
        content_type: String,
        body: Bytes,
    },
    /// 2xx stream whose first bytes arrived.
    Stream {
        status: StatusCode,
        content_type: String,
        first: Bytes,
        rest: UpstreamStream,
        /// The body as sent, compact, to count its prompt from should the
        /// provider report no usage by the stream's end.
        sent: Bytes,
    },
    /// The provider refused the request itself: the client gets its answer.
    Reject {
        status: StatusCode,
        content_type: String,
        body: Bytes,
    },
    /// Worth another try.
    Retry {
        outcome: Outcome,
        error: String,
        exclude_key: bool,
    },
}

/// Relay one request to a provider; every outcome becomes a usage-log row. A
/// fallback chain tries its models in turn: the next when no key of one had
/// room within the chain's wait, or when it failed on every key.
#[tracing::instrument(name = "relay", skip_all, fields(request_id = %req.request_id, token_id = req.token.id, model = %req.model))]
pub async fn forward(state: &AppState, mut req: RelayRequest) -> Result<HttpResponse, RelayError> {
    let hold = req.hold.take();
    let mut queued = req.queued.take();
    let mut pending = PendingRecord::start(state, &req, hold);
    let deadline = req.started + state.settings.relay.max_wait();
    let mut attempt = 0;
    let mut failed = None;
    let steps = &req.steps;
    for (i, (model, wait)) in steps.iter().enumerate() {
        if let Some(chain) = &req.chain {
            let pricing = state.prices.price(model).map(|price| Pricing {
                price,
                multiplier: state.prices.multiplier(&req.group),
            });
            pending.serve_model(model, pricing);
            tracing::debug!(chain = %chain.name, %model, step = i, "trying fallback step");
        }
        let step_deadline = step_deadline(*wait, deadline);
        match try_model(
            state,
            &req,
            &mut pending,
            model,
            step_deadline,
            &mut attempt,
            &mut queued,
        )
        .await
        {
            Step::Answered(permit, answer) => return Ok(respond(state, &req, permit, pending, answer)),
            Step::Failed(RelayError::ShuttingDown) => return Err(pending.fail(RelayError::ShuttingDown)),
            Step::Failed(e) => {
                if i + 1 < steps.len() {
                    tracing::info!(%model, error = %e, "fallback moves to its next model");
                }
                failed = Some(e);
            }
        }
    }
    Err(pending.fail(failed.expect("a request has at least one model")))
}

/// The models to try for `model`, each with how long to wait for it (`None`:
/// until the deadline).
pub(super) fn steps(model: &str, chain: Option<&Chain>) -> Vec<(String, Option<Duration>)> {
    let Some(chain) = chain else {
        return vec![(model.to_string(), None)];
    };
    let last = chain.models.len().saturating_sub(1);
    chain
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), (i < last).then_some(chain.wait)))
        .collect()
}

/// Until when a step that may wait `wait` waits; the last step waits what is
/// left of the request's bound.
pub(super) fn step_deadline(wait: Option<Duration>, deadline: Instant) -> Instant {
    wait.map_or(deadline, |w| (Instant::now() + w).min(deadline))
}

/// What to ask the router for: a key serving `model`, for `tenant`, by `deadline`.
pub(super) fn route_for(
    model: &str,
    prompt_tokens: Option<u64>,
    group: &str,
    tenant: &Tenant,
    exclude: Vec<i64>,
    deadline: Instant,
) -> Route {
    Route {
        model: model.to_string(),
        tokens: prompt_tokens.unwrap_or(0),
        exclude,
        deadline,
        group: group.to_string(),
        tenant: tenant.clone(),
        only_key: None,
        probe: false,
    }
}

/// How trying one model ended.
enum Step {
    /// A provider answered through this permit (a reply, a stream or a refusal).
    Answered(Permit, Answer),
    /// No key had room in time, none was usable, or every attempt failed.
    Failed(RelayError),
}

/// Turn a provider's answer into the client's response, settling the key and
/// the usage row.
fn respond(
    state: &AppState,
    req: &RelayRequest,
    permit: Permit,
    pending: PendingRecord,
    answer: Answer,
) -> HttpResponse {
    match answer {
        Answer::Complete {
            status,
            content_type,
            body,
        } => complete_reply(state, req, permit, pending, status, &content_type, body),
        Answer::Stream {
            status,
            content_type,
            first,
            rest,
            sent,
        } => stream_reply(
            state,
            req,
            permit,
            pending,
            status,
            &content_type,
            first,
            rest,
            sent,
        ),
        Answer::Reject {
            status,
            content_type,
            body,
        } => {
            permit.finish(Outcome::ClientError);
            let error = format!("provider answered {status}: {}", snippet(&body));
            pending.commit(status.as_u16(), Some(error));
            passthrough(req, status, &content_type, body)
        }
        Answer::Retry { .. } => unreachable!("retries are handled in try_model"),
    }
}

/// Serve the request with `model`'s keys: wait for a permit, call, and on a
/// 429, 5xx, timeout or broken connection try again until `deadline`. The
/// first attempt takes the place in `queued`, when the request has one.
async fn try_model(
    state: &AppState,
    req: &RelayRequest,
    pending: &mut PendingRecord,
    model: &str,
    deadline: Instant,
    attempt: &mut u32,
    queued: &mut Option<Ticket>,
) -> Step {
    let relay = &state.settings.relay;
    let mut exclude = Vec::new();
    let mut last_error: Option<String> = None;
    // Why the previous attempt failed; counted as a retry once the next one gets a key.
    let mut retry_reason: Option<&'static str> = None;
    // Attempts that failed for another reason than throttling: a provider's 429
    // sends the request back to wait (for as long as its bound allows), since the
    // keys cool down and learn; only real failures use up `max_attempts`.
    let mut failures = 0;
    let first_attempt = *attempt;
    while failures < relay.max_attempts {
        let ticket = queued.take().unwrap_or_else(|| {
            let route = route_for(
                model,
                req.prompt_tokens,
                &req.group,
                &req.tenant,
                exclude.clone(),
                deadline,
            );
            sluice_actors::route(&state.router, route)
        });
        let waited = ticket.wait().await;
        let mut permit = match waited {
            Ok(permit) => permit,
            Err(e) => {
                if let RouteError::WaitExceeded { waited, .. } = &e {
                    state.metrics.queue_waited(model, *waited);
                }
                let tried = *attempt - first_attempt;
                return Step::Failed(route_error(e, req, model, relay.window(), last_error, tried));
            }
        };
        *attempt += 1;
        pending.record.attempts = *attempt as i32;
        state.metrics.queue_waited(model, permit.waited());
        if let Some(reason) = retry_reason.take() {
            state.metrics.retried(model, reason);
        }
        let spec = permit.spec();
        pending.record.channel_id = Some(spec.channel_id);
        pending.channel_name = spec.channel_name.clone();
        pending.record.key_id = Some(spec.key_id);
        pending.record.upstream_model = permit.upstream_model();
        tracing::debug!(
            key_id = spec.key_id,
            waited_ms = permit.waited().as_millis() as u64,
            attempt = *attempt,
            "permit granted"
        );
        // Serialized here rather than by reqwest, to be kept: a stream's
        // settlement may count its prompt from it.
        let sent = upstream_body(req, &pending.record.upstream_model);
        permit.mark_sent();
        // From here the provider may bill the prompt, even if the client leaves.
        pending.record.prompt_tokens = req.prompt_tokens.unwrap_or(0) as i64;
        match call(state, &permit, req.endpoint, req.stream, sent).await {
            Answer::Retry {
                outcome,
                error,
                exclude_key,
            } => {
                tracing::warn!(key_id = permit.spec().key_id, attempt = *attempt, %error, "upstream attempt failed");
                if exclude_key {
                    exclude.push(permit.spec().key_id);
                }
                if !matches!(outcome, Outcome::RateLimited { .. }) {
                    failures += 1;
                }
                retry_reason = Some(
                    state
                        .metrics
                        .attempt_failed(&permit.spec().channel_name, &outcome),
                );
                permit.finish(outcome);
                last_error = Some(error);
            }
            answer => return Step::Answered(permit, answer),
        }
    }
    Step::Failed(RelayError::UpstreamFailed {
        model: model.to_string(),
        attempts: *attempt - first_attempt,
        last: last_error.unwrap_or_default(),
    })
}

fn route_error(
    e: RouteError,
    req: &RelayRequest,
    model: &str,
    window: Duration,
    last_error: Option<String>,
    attempts: u32,
) -> RelayError {
    match (e, last_error) {
        // The client waited since it arrived (reading the body and earlier
        // attempts included), not just since this attempt joined the queue.
        (
            RouteError::WaitExceeded {
                retry_after,
                limited_by: Some(limit),
                ..
            },
            _,
        ) => {
            let (whose, binding) = match limit {
                TenantLimit::Token(b) => (format!("token '{}'", req.token.name), b),
                TenantLimit::User(b) => ("your account".to_string(), b),
            };
            RelayError::tenant_limit(model, whose, binding, window, req.started.elapsed(), retry_after)
        }
        (RouteError::WaitExceeded { retry_after, .. }, _) => {
            RelayError::wait_exceeded(model, req.started.elapsed(), retry_after)
        }
        // Every key was tried and failed: name the provider's last word.
        (RouteError::NoKeys { .. }, Some(last)) => RelayError::UpstreamFailed {
            model: model.to_string(),
            attempts,
            last,
        },
        (RouteError::NoKeys { reason, .. }, None) => RelayError::NoKeys {
            model: model.to_string(),
            reason,
        },
        (RouteError::Shutdown, _) => RelayError::ShuttingDown,
    }
}

/// The body sent upstream, serialized: the client's, with the provider's model
/// name, the output cap when one applies, and `stream_options.include_usage` on
/// for a stream so the usage is exact. Every other field goes as the client
/// wrote it, when its text is at hand: serializing a parsed body again escaped
/// every string anew: 47 % of the relay handler's instructions for a 32 KB
/// conversation (docs/BENCHMARKS.md). A parsed body (translated from another
/// protocol) is written straight from its values, not from an edited copy.
fn upstream_body(req: &RelayRequest, upstream_model: &str) -> Bytes {
    let raw = req
        .raw
        .as_deref()
        .and_then(|raw| serde_json::from_slice::<BTreeMap<String, &RawValue>>(raw).ok());
    let fields: Vec<(&str, Field)> = match (&raw, &*req.body) {
        (Some(raw), _) => raw.iter().map(|(k, v)| (k.as_str(), Field::Raw(v))).collect(),
        (None, Value::Object(parsed)) => parsed
            .iter()
            .map(|(k, v)| (k.as_str(), Field::Parsed(v)))
            .collect(),
        // `parse` took a model from it: the body is an object.
        (None, other) => return Bytes::from(serde_json::to_vec(other).expect("a JSON value serializes")),
    };
    serialize(&Outgoing {
        fields,
        model: upstream_model,
        cap: req.cap_output,
        include_usage: req.stream,
    })
}

fn serialize(outgoing: &Outgoing) -> Bytes {
    Bytes::from(serde_json::to_vec(outgoing).expect("a JSON value serializes"))
}

/// A client's body as sent upstream ([`upstream_body`]).
struct Outgoing<'a> {
    /// Its top-level fields.
    fields: Vec<(&'a str, Field<'a>)>,
    model: &'a str,
    cap: Option<(&'static str, u64)>,
    include_usage: bool,
}

/// A top-level field's value: parsed, or the client's text.
#[derive(Clone, Copy)]
enum Field<'a> {
    Parsed(&'a Value),
    Raw(&'a RawValue),
}

impl Field<'_> {
    fn parsed(self) -> Value {
        match self {
            Field::Parsed(value) => value.clone(),
            Field::Raw(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
        }
    }
}

impl serde::Serialize for Field<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Parsed(value) => value.serialize(serializer),
            Field::Raw(raw) => raw.serialize(serializer),
        }
    }
}

impl serde::Serialize for Outgoing<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let has = |field: &str| self.fields.iter().any(|(name, _)| *name == field);
        let cap = self.cap;
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in &self.fields {
            match *name {
                "model" => map.serialize_entry(name, self.model)?,
                "stream_options" if self.include_usage => {
                    map.serialize_entry(name, &WithUsage(&value.parsed()))?
                }
                field => match cap {
                    Some((capped, limit)) if capped == field => map.serialize_entry(name, &limit)?,
                    _ => map.serialize_entry(name, value)?,
                },
            }
        }
        if !has("model") {
            map.serialize_entry("model", self.model)?;
        }
        if let Some((capped, limit)) = cap.filter(|(capped, _)| !has(capped)) {
            map.serialize_entry(capped, &limit)?;
        }
        if self.include_usage && !has("stream_options") {
            map.serialize_entry("stream_options", &WithUsage(&Value::Null))?;
        }
        map.end()
    }
}

/// A client's `stream_options` with `include_usage` on (the object alone when
/// the client sent none, or something else than an object).
struct WithUsage<'a>(&'a Value);

impl serde::Serialize for WithUsage<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        if let Value::Object(options) = self.0 {
            for (name, value) in options.iter().filter(|(name, _)| *name != "include_usage") {
                map.serialize_entry(name, value)?;
            }
        }
        map.serialize_entry("include_usage", &true)?;
        map.end()
    }
}

/// Raw result of the HTTP exchange, before classification.
enum Raw {
    Full {
        status: StatusCode,
        headers: reqwest::header::HeaderMap,
        body: Bytes,
    },
    Stream {
        status: StatusCode,
        content_type: String,
        first: Option<Bytes>,
        rest: UpstreamStream,
    },
}

/// One exchange with the provider through `permit`'s key.
pub async fn call(
    state: &AppState,
    permit: &Permit,
    endpoint: Endpoint,
    stream: bool,
    sent: Bytes,
) -> Answer {
    let spec = permit.spec();
    let relay = &state.settings.relay;
    // Named in errors only: not formatted for the requests that succeed.
    let who = || format!("key {} of channel '{}'", spec.secret.mask(), spec.channel_name);
    let (client, url, in_flight) = match state.http.route(&spec.base_url, endpoint) {
        Ok(route) => route,
        Err(e) => {
            let error = format!("{}: {e}", who());
            return Answer::Retry {
                outcome: Outcome::Connect(error.clone()),
                error,
                exclude_key: true,
            };
        }
    };
    let mut builder = client
        .post(url)
        .bearer_auth(spec.secret.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(sent.clone());
    for (name, value) in &spec.extra_headers {
        builder = builder.header(name, value);
    }
    // A stream starts within seconds; a whole reply may legitimately take minutes.
    let limit = Duration::from_secs(if stream {
        relay.stream_first_byte_secs
    } else {
        relay.response_timeout_secs
    });
    let started = Instant::now();
    let (model, key_id) = (permit.model(), spec.key_id);
    let expected_h2 = in_flight.expects_h2();
    let exchange = async {
        // Counted on its client until the reply is read, or the stream ends.
        let in_flight = in_flight;
        let resp = builder.send().await?;
        if resp.version() == reqwest::Version::HTTP_2 && in_flight.learns_h2() {
            state.http.spoke_h2(&spec.base_url);
        }
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        if stream && status.is_success() {
            let content_type = header_str(resp.headers(), "text/event-stream");
            let mut rest: UpstreamStream = Box::pin(resp.bytes_stream().map(move |chunk| {
                let _counted = &in_flight;
                chunk
            }));
            let first = rest.next().await.transpose()?;
            Ok::<_, reqwest::Error>(Raw::Stream {
                status,
                content_type,
                first,
                rest,
            })
        } else {
            let mut resp = resp;
            let headers = std::mem::take(resp.headers_mut());
            let body = resp.bytes().await?;
            Ok(Raw::Full {
                status,
                headers,
                body,
            })
        }
    };
    tokio::pin!(exchange);
    // Look every quarter second whether the model's other keys say this one
    // hangs (from a quarter second on: `interval` would look at once too).
    let quarter = Duration::from_millis(250);
    let mut look = tokio::time::interval_at(tokio::time::Instant::now() + quarter, quarter);
    let answered = loop {
        tokio::select! {
            answered = &mut exchange => break Ok(answered),
            _ = look.tick() => {
                let now = Instant::now();
                let waited = now - started;
                if waited >= limit {
                    break Err(None);
                }
                let hang_after = state.first_bytes.hang_after(model, stream, key_id, now);
                if let Some(after) = hang_after.filter(|after| waited >= *after) {
                    break Err(Some(after));
                }
            }
        }
    };
    let served = match &answered {
        Ok(Ok(Raw::Stream { first, .. })) => first.is_some(),
        Ok(Ok(Raw::Full { status, .. })) => status.is_success(),
        _ => false,
    };
    if served {
        state
            .first_bytes
            .record(model, stream, key_id, started.elapsed(), Instant::now());
    }
    match answered {
        Err(None) => Answer::Retry {
            outcome: Outcome::Timeout(format!("no reply within {} s", limit.as_secs())),
            error: format!("{}: no reply within {} s", who(), limit.as_secs()),
            exclude_key: true,
        },
        Err(Some(after)) => {
            let error = format!(
                "{}: no first byte after {:.1} s while the other keys of '{model}' answer sooner; \
                 taken out of service until a probe succeeds",
                who(),
                after.as_secs_f64()
            );
            Answer::Retry {
                outcome: Outcome::Hung(error.clone()),
                error,
                exclude_key: true,
            }
        }
        Ok(Err(e)) => {
            let error = format!("{}: {}", who(), describe(&e));
            if expected_h2 && !e.is_timeout() {
                // Perhaps the provider no longer speaks HTTP/2: its next
                // clients ask which it speaks.
                state.http.h2_failed(&spec.base_url);
                if e.is_connect() {
                    // Nothing reached it: the key is not at fault.
                    return Answer::Retry {
                        outcome: Outcome::NotSent,
                        error,
                        exclude_key: false,
                    };
                }
            }
            let outcome = if e.is_timeout() {
                Outcome::Timeout(error.clone())
            } else {
                Outcome::Connect(error.clone())
            };
            Answer::Retry {
                outcome,
                error,
                exclude_key: true,
            }
        }
        Ok(Ok(Raw::Stream { first: None, .. })) => Answer::Retry {
            outcome: Outcome::ServerError("empty stream".into()),
            error: format!("{}: the stream ended before its first byte", who()),
            exclude_key: true,
        },
        Ok(Ok(Raw::Stream {
            status,
            content_type,
            first: Some(first),
            rest,
        })) => Answer::Stream {
            status,
            content_type,
            first,
            rest,
            sent,
        },
        Ok(Ok(Raw::Full {
            status,
            headers,
            body,
        })) => classify(status, &headers, body, who),
    }
}

fn classify(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: Bytes,
    who: impl FnOnce() -> String,
) -> Answer {
    let content_type = header_str(headers, "application/json");
    if status.is_success() {
        return Answer::Complete {
            status,
            content_type,
            body,
        };
    }
    let error = format!(
        "{}: provider answered {}: {}",
        who(),
        status.as_u16(),
        snippet(&body)
    );
    match status.as_u16() {
        429 => Answer::Retry {
            outcome: Outcome::RateLimited {
                retry_after: retry_after(headers),
            },
            error,
            exclude_key: false,
        },
        401 | 403 => Answer::Retry {
            outcome: Outcome::AuthFailed(error.clone()),
            error,
            exclude_key: true,
        },
        408 => Answer::Retry {
            outcome: Outcome::Timeout(error.clone()),
            error,
            exclude_key: true,
        },
        500..=599 => Answer::Retry {
            outcome: Outcome::ServerError(error.clone()),
            error,
            exclude_key: true,
        },
        _ => Answer::Reject {
            status,
            content_type,
            body,
        },
    }
}

fn header_str(headers: &reqwest::header::HeaderMap, default: &str) -> String {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(default)
        .to_string()
}

/// A reqwest error with its causes ("error sending request: connection refused").
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The start of a provider's error body, for messages and logs.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The body as sent upstream, from its parsed values and from the client's
    /// text: the same either way, which is returned, parsed back.
    fn sent(body: Value, cap: Option<(&'static str, u64)>, include_usage: bool) -> Value {
        let text = serde_json::to_vec(&body).unwrap();
        let raw: BTreeMap<String, &RawValue> = serde_json::from_slice(&text).unwrap();
        let outgoing = |fields| Outgoing {
            fields,
            model: "upstream/model",
            cap,
            include_usage,
        };
        let Value::Object(parsed) = &body else {
            panic!("an object")
        };
        let from_values = serialize(&outgoing(
            parsed
                .iter()
                .map(|(k, v)| (k.as_str(), Field::Parsed(v)))
                .collect(),
        ));
        let from_text = serialize(&outgoing(
            raw.iter().map(|(k, v)| (k.as_str(), Field::Raw(v))).collect(),
        ));
        let from_values: Value = serde_json::from_slice(&from_values).unwrap();
        assert_eq!(from_values, serde_json::from_slice::<Value>(&from_text).unwrap());
        from_values
    }

    #[test]
    fn the_upstream_body_is_the_clients_with_the_providers_model_and_nothing_else_changed() {
        let body = json!({
            "model": "alias", "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.2, "tools": [{"type": "function", "function": {"name": "f"}}],
            "max_tokens": 64,
        });
        let mut expected = body.clone();
        expected["model"] = json!("upstream/model");
        assert_eq!(sent(body, None, false), expected);
    }

    #[test]
    fn the_clients_text_goes_upstream_as_written() {
        let text = r#"{"model":"alias","messages":[{"role":"user","content":"caf\u00e9 \/ 1e2"}],"temperature":1.50}"#;
        let raw: BTreeMap<String, &RawValue> = serde_json::from_str(text).unwrap();
        let sent = serialize(&Outgoing {
            fields: raw.iter().map(|(k, v)| (k.as_str(), Field::Raw(v))).collect(),
            model: "upstream/model",
            cap: None,
            include_usage: false,
        });
        let sent = std::str::from_utf8(&sent).unwrap();
        assert!(sent.contains(r#""content":"caf\u00e9 \/ 1e2""#), "{sent}");
        assert!(sent.contains(r#""temperature":1.50"#), "{sent}");
        assert!(sent.contains(r#""model":"upstream/model""#), "{sent}");
        assert!(!sent.contains("alias"), "{sent}");
    }

    #[test]
    fn an_output_cap_replaces_or_adds_its_field() {
        let asked = json!({"model": "m", "max_tokens": 100000, "messages": []});
        assert_eq!(sent(asked, Some(("max_tokens", 512)), false)["max_tokens"], 512);
        let unasked = json!({"model": "m", "messages": []});
        let capped = sent(unasked, Some(("max_completion_tokens", 512)), false);
        assert_eq!(capped["max_completion_tokens"], 512);
        assert_eq!(capped.as_object().unwrap().len(), 3, "{capped}");
    }

    #[test]
    fn a_stream_asks_for_usage_keeping_the_clients_other_stream_options() {
        let none = sent(json!({"model": "m", "stream": true}), None, true);
        assert_eq!(none["stream_options"], json!({"include_usage": true}));
        let off = json!({"model": "m", "stream": true,
            "stream_options": {"include_usage": false, "include_obfuscation": false}});
        assert_eq!(
            sent(off, None, true)["stream_options"],
            json!({"include_usage": true, "include_obfuscation": false})
        );
        let odd = sent(
            json!({"model": "m", "stream": true, "stream_options": "x"}),
            None,
            true,
        );
        assert_eq!(odd["stream_options"], json!({"include_usage": true}));
        // Written once: a duplicate key would leave the provider to pick one.
        let options = json!({"include_usage": false});
        let text = serialize(&Outgoing {
            fields: vec![
                ("model", Field::Parsed(&json!("m"))),
                ("stream_options", Field::Parsed(&options)),
            ],
            model: "m",
            cap: None,
            include_usage: true,
        });
        let text = std::str::from_utf8(&text).unwrap();
        assert_eq!(text.matches("include_usage").count(), 1, "{text}");
    }
}
