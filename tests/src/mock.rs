//! In-process mock of an NVIDIA NIM style (OpenAI-compatible) LLM provider.
//!
//! [`MockProvider::start`] binds a real actix-web server on `127.0.0.1:0`, so the
//! gateway under test talks to it over HTTP exactly as it would to the real
//! provider. Every request is recorded for later inspection, and the behaviour of
//! each API key (errors, hangs, connection resets, rate limits) can be changed at
//! any time with [`MockProvider::set_behavior`].
//!
//! Rate limiting copies NVIDIA: a strict sliding window per API key; a rejection is
//! a `429` with the body [`NVIDIA_429_BODY`] and no `Retry-After` header. Rejected
//! requests do not count against the window. All endpoints, `GET /v1/models`
//! included, go through the same key, behaviour and rate-limit checks. A chat
//! offering tools is answered with a call of the first one ([`ToolCalls`] says
//! when).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::Method;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use serde_json::{json, Value};

/// Exact body NVIDIA sends with a `429` (it sends no `Retry-After` header).
pub const NVIDIA_429_BODY: &str = r#"{"status":429,"title":"Too Many Requests"}"#;

/// Largest request body the mock accepts.
const PAYLOAD_LIMIT: usize = 16 * 1024 * 1024;

/// How long a [`KeyBehavior::Hang`] request waits before answering.
const HANG_FOR: Duration = Duration::from_secs(3600);

/// Global behaviour of a [`MockProvider`].
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Accepted requests allowed per key in any sliding `window`; 0 = unlimited.
    pub rpm_per_key: u32,
    /// Length of the sliding rate-limit window (default 60 s).
    pub window: Duration,
    /// Delay before the headers of an accepted (2xx) response (default 0).
    pub latency: Duration,
    /// Number of content chunks in a streamed answer (default 3, at least 1 is used).
    pub stream_chunks: usize,
    /// Delay between two streamed SSE events (default 0).
    pub chunk_delay: Duration,
    /// Whether usage is reported at all, in bodies and streams (default true).
    pub send_usage: bool,
    /// Tokens (prompt and completion of its answers) allowed per key in any sliding
    /// `window`; 0 = unlimited. Counted the provider's way (`chars_per_token`); a
    /// request whose prompt does not fit what is left gets the same 429 (the
    /// completion is counted once written, as a provider can only then know it).
    pub tpm_per_key: u64,
    /// How many characters this provider counts as a token (default 4).
    pub chars_per_token: usize,
    /// How many words (a word a completion token) an answer runs to at least:
    /// the echo is followed by filler up to this length, unless `max_tokens`
    /// stops it first (default 0: the echo alone).
    pub answer_words: usize,
    /// When a chat offering `tools` is answered with a call of the first one.
    pub call_tools: ToolCalls,
}

/// When the mock answers a chat that offers tools with a call of the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolCalls {
    /// Always (the default).
    #[default]
    Always,
    /// Unless the last message is a tool's result, which is answered with text
    /// (an echo of it), as a model ends a round trip.
    UntilAnswered,
    /// Never: tools offered are ignored (coding agents offer theirs on every turn).
    Never,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            rpm_per_key: 0,
            window: Duration::from_secs(60),
            latency: Duration::ZERO,
            stream_chunks: 3,
            chunk_delay: Duration::ZERO,
            send_usage: true,
            tpm_per_key: 0,
            chars_per_token: 4,
            answer_words: 0,
            call_tools: ToolCalls::Always,
        }
    }
}

/// Per-key override of the normal behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyBehavior {
    /// Serve normally, limited by [`MockConfig::rpm_per_key`].
    #[default]
    Normal,
    /// Always `500` with an OpenAI-style error body.
    ServerError,
    /// Always `401` with NVIDIA's "Authentication failed" body.
    Unauthorized,
    /// Accept the request and never send the response headers (recorded status 0).
    Hang,
    /// Drop the connection without any response (recorded status 0).
    ResetConnection,
    /// Serve normally but with this key's own per-window limit (0 = unlimited).
    Limit(u32),
    /// Always `429` with `Retry-After: N` seconds and NVIDIA's body.
    RateLimitedWithRetryAfter(u64),
}

/// One request as the mock saw it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// Bearer token of the request ("" when `Authorization` was missing).
    pub key: String,
    /// Request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Parsed JSON body, or `Value::Null` when absent or not JSON.
    pub body: Value,
    /// Its headers (names in lower case) other than `Authorization`.
    pub headers: std::collections::BTreeMap<String, String>,
    /// When the request arrived.
    pub at: Instant,
    /// Status given; 0 when no response was sent (hang, reset).
    pub status: u16,
}

/// A running mock provider; stop it with [`MockProvider::stop`] (dropping it also stops it).
pub struct MockProvider {
    /// Base URL to configure as the provider, e.g. `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    /// Address the server listens on.
    pub addr: SocketAddr,
    shared: web::Data<Shared>,
    handle: ServerHandle,
}

impl MockProvider {
    /// Binds `127.0.0.1:0` and serves in the background on the current runtime.
    pub async fn start(cfg: MockConfig) -> MockProvider {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock provider");
        let addr = listener.local_addr().expect("mock provider address");
        let shared = web::Data::new(Shared {
            cfg,
            state: Mutex::default(),
        });
        let data = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(PAYLOAD_LIMIT))
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen mock provider")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        MockProvider {
            base_url: format!("http://{addr}/v1"),
            addr,
            shared,
            handle,
        }
    }

    /// Sets how requests with this key are answered from now on.
    pub fn set_behavior(&self, key: &str, b: KeyBehavior) {
        self.shared.lock().behaviors.insert(key.to_owned(), b);
    }

    /// Every request received, in arrival order, including rejected ones.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Number of requests answered 2xx for this key.
    pub fn served_for_key(&self, key: &str) -> usize {
        self.shared.lock().accepted.get(key).map_or(0, Vec::len)
    }

    /// Total number of `429` responses given.
    pub fn rate_limited(&self) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.status == 429)
            .count()
    }

    /// Most accepted requests this key had within any sliding window of `cfg.window`.
    pub fn max_in_window(&self, key: &str) -> usize {
        let state = self.shared.lock();
        let times = state.accepted.get(key).map_or(&[][..], Vec::as_slice);
        let (mut start, mut best) = (0, 0);
        for (end, t) in times.iter().enumerate() {
            while t.duration_since(times[start]) >= self.shared.cfg.window {
                start += 1;
            }
            best = best.max(end + 1 - start);
        }
        best
    }

    /// Most requests this key had accepted and not yet answered at once.
    pub fn max_concurrent(&self, key: &str) -> usize {
        self.shared.lock().in_flight.get(key).map_or(0, |(_, most)| *most)
    }

    /// Distinct keys seen, in order of first appearance (missing keys excluded).
    pub fn keys_seen(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for r in self.shared.lock().requests.iter() {
            if !r.key.is_empty() && !keys.contains(&r.key) {
                keys.push(r.key.clone());
            }
        }
        keys
    }

    /// Stops the server without waiting for open connections.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        // The stop command is sent eagerly; the returned future only awaits completion.
        drop(self.handle.stop(false));
    }
}

/// State shared between the server and the [`MockProvider`].
struct Shared {
    cfg: MockConfig,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    behaviors: HashMap<String, KeyBehavior>,
    /// Arrival times of accepted requests per key (sorted, as pushed under the lock).
    accepted: HashMap<String, Vec<Instant>>,
    /// Arrival times and prompt tokens of accepted requests per key.
    accepted_tokens: HashMap<String, Vec<(Instant, u64)>>,
    requests: Vec<ReceivedRequest>,
    next_id: u64,
    /// Accepted requests of each key not answered yet, and the most there were at once.
    in_flight: HashMap<String, (usize, usize)>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides the fate of a request and records it, all under one lock.
    fn admit(&self, req: &HttpRequest, key: Option<&str>, body: Value, ep: Option<Endpoint>) -> Admission {
        let path = req.path();
        let headers = req
            .headers()
            .iter()
            .filter(|(name, _)| *name != actix_web::http::header::AUTHORIZATION)
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or_default().to_owned()))
            .collect();
        let mut state = self.lock();
        let at = Instant::now();
        let key = key.unwrap_or_default().to_owned();
        let admission = self.decide(&mut state, &key, at, &body, ep);
        let status = match &admission {
            Admission::Reply(res) => res.status().as_u16(),
            Admission::Accept { .. } => 200,
            Admission::Hang | Admission::Reset => 0,
        };
        state.requests.push(ReceivedRequest {
            key,
            path: path.to_owned(),
            body,
            headers,
            at,
            status,
        });
        admission
    }

    fn decide(
        &self,
        state: &mut State,
        key: &str,
        at: Instant,
        body: &Value,
        ep: Option<Endpoint>,
    ) -> Admission {
        if key.is_empty() {
            let mut err = openai_error("missing key", "invalid_request_error");
            err["error"]["code"] = json!("invalid_api_key");
            return Admission::Reply(HttpResponse::Unauthorized().json(err));
        }
        let Some(ep) = ep else {
            let err = openai_error("not found", "invalid_request_error");
            return Admission::Reply(HttpResponse::NotFound().json(err));
        };
        let limit = match state.behaviors.get(key).copied().unwrap_or_default() {
            KeyBehavior::Normal => self.cfg.rpm_per_key,
            KeyBehavior::Limit(n) => n,
            KeyBehavior::Hang => return Admission::Hang,
            KeyBehavior::ResetConnection => return Admission::Reset,
            KeyBehavior::ServerError => {
                let err = openai_error("internal error", "server_error");
                return Admission::Reply(HttpResponse::InternalServerError().json(err));
            }
            KeyBehavior::Unauthorized => {
                let err = json!({
                    "status": 401, "title": "Unauthorized", "detail": "Authentication failed"
                });
                return Admission::Reply(HttpResponse::Unauthorized().json(err));
            }
            KeyBehavior::RateLimitedWithRetryAfter(secs) => {
                return Admission::Reply(too_many_requests(Some(secs)));
            }
        };
        if let Err(message) = ep.validate(body) {
            let err = openai_error(message, "invalid_request_error");
            return Admission::Reply(HttpResponse::BadRequest().json(err));
        }
        let times = state.accepted.entry(key.to_owned()).or_default();
        let in_window = times
            .iter()
            .rev()
            .take_while(|t| at.duration_since(**t) < self.cfg.window)
            .count();
        if limit > 0 && in_window >= limit as usize {
            return Admission::Reply(too_many_requests(None));
        }
        let tpm = self.cfg.tpm_per_key;
        let (prompt, completion) = answer_tokens(&self.cfg, body);
        let tokens = (prompt + completion) as u64;
        let window = self.cfg.window;
        let spent = state.accepted_tokens.entry(key.to_owned()).or_default();
        let used: u64 = spent
            .iter()
            .filter(|(t, _)| at.duration_since(*t) < window)
            .map(|(_, n)| n)
            .sum();
        if tpm > 0 && used + prompt as u64 > tpm {
            return Admission::Reply(too_many_requests(None));
        }
        spent.push((at, tokens));
        let times = state.accepted.entry(key.to_owned()).or_default();
        times.push(at);
        state.next_id += 1;
        Admission::Accept {
            id: state.next_id,
            ep,
        }
    }
}

/// Outcome of the admission step.
enum Admission {
    Reply(HttpResponse),
    Hang,
    Reset,
    Accept { id: u64, ep: Endpoint },
}

/// The endpoints the mock serves.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Models,
}

impl Endpoint {
    fn parse(method: &Method, path: &str) -> Option<Endpoint> {
        match (method.as_str(), path.trim_end_matches('/')) {
            ("POST", "/v1/chat/completions") => Some(Endpoint::Chat),
            ("POST", "/v1/completions") => Some(Endpoint::Completions),
            ("POST", "/v1/embeddings") => Some(Endpoint::Embeddings),
            ("GET", "/v1/models") => Some(Endpoint::Models),
            _ => None,
        }
    }

    fn validate(self, body: &Value) -> Result<(), &'static str> {
        let ok = match self {
            Endpoint::Chat => body["messages"].is_array(),
            Endpoint::Completions => body["prompt"].is_string() || body["prompt"].is_array(),
            Endpoint::Embeddings => body["input"].is_string() || body["input"].is_array(),
            Endpoint::Models => true,
        };
        ok.then_some(()).ok_or("invalid request body")
    }
}

/// The single actix handler: admit, then answer according to the endpoint.
async fn handle(req: HttpRequest, body: Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let ep = Endpoint::parse(req.method(), req.path());
    let key = bearer(&req);
    match shared.admit(&req, key.as_deref(), json.clone(), ep) {
        Admission::Reply(res) => res,
        Admission::Hang => {
            tokio::time::sleep(HANG_FOR).await;
            HttpResponse::GatewayTimeout().finish()
        }
        Admission::Reset => {
            // A body that fails before its first chunk makes actix drop the connection
            // before the (still buffered) response head is written.
            let failing =
                futures_util::stream::once(async { Err::<Bytes, _>(std::io::Error::other("reset")) });
            HttpResponse::Ok().streaming(failing)
        }
        Admission::Accept { id, ep } => {
            let key = key.unwrap_or_default();
            {
                let mut state = shared.lock();
                let (now, most) = state.in_flight.entry(key.clone()).or_default();
                *now += 1;
                *most = (*most).max(*now);
            }
            tokio::time::sleep(shared.cfg.latency).await;
            let res = respond(&shared.cfg, ep, id, &json);
            if let Some((now, _)) = shared.lock().in_flight.get_mut(&key) {
                *now -= 1;
            }
            res
        }
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_owned()).filter(|t| !t.is_empty())
}

/// OpenAI-style error body.
fn openai_error(message: &str, kind: &str) -> Value {
    json!({"error": {"message": message, "type": kind}})
}

fn too_many_requests(retry_after: Option<u64>) -> HttpResponse {
    let mut res = HttpResponse::TooManyRequests();
    res.content_type("application/json");
    if let Some(secs) = retry_after {
        res.insert_header(("Retry-After", secs.to_string()));
    }
    res.body(NVIDIA_429_BODY)
}

fn respond(cfg: &MockConfig, ep: Endpoint, id: u64, body: &Value) -> HttpResponse {
    let model = body["model"].clone();
    match ep {
        Endpoint::Chat => chat(cfg, id, model, body),
        Endpoint::Completions => completion(cfg, id, model, body),
        Endpoint::Embeddings => embeddings(cfg, model, body),
        Endpoint::Models => {
            let ids = [
                "meta/llama-3.1-8b-instruct",
                "meta/llama-3.3-70b-instruct",
                "nvidia/nv-embedqa-e5-v5",
            ];
            let data: Vec<Value> = ids
                .iter()
                .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "mock"}))
                .collect();
            HttpResponse::Ok().json(json!({"object": "list", "data": data}))
        }
    }
}

fn chat(cfg: &MockConfig, id: u64, model: Value, body: &Value) -> HttpResponse {
    let id = format!("chatcmpl-mock-{id}");
    let prompt = prompt_chars(body);
    let tool = calls_tool(cfg, body).then(|| body["tools"][0]["function"]["name"].clone());
    let (content, cut) = reply_text(cfg, body);
    let usage = usage(cfg, prompt, if tool.is_some() { "" } else { &content });
    let tool_calls = tool.as_ref().map(|name| {
        json!([{
            "id": "call_1", "type": "function", "function": {"name": name, "arguments": "{}"}
        }])
    });
    let finish = match (&tool, cut) {
        (Some(_), _) => "tool_calls",
        (None, true) => "length",
        (None, false) => "stop",
    };
    let frame = Frame {
        id,
        object: "chat.completion.chunk",
        model,
        created: now_secs(),
    };
    if !wants_stream(body) {
        let message = match &tool_calls {
            Some(calls) => json!({"role": "assistant", "content": null, "tool_calls": calls}),
            None => json!({"role": "assistant", "content": content}),
        };
        let choice = json!({"index": 0, "message": message, "finish_reason": finish});
        return HttpResponse::Ok().json(frame.whole("chat.completion", choice, usage));
    }
    let mut events = vec![delta(json!({"role": "assistant", "content": ""}), None)];
    match tool_calls {
        Some(mut calls) => {
            calls[0]["index"] = json!(0);
            events.push(delta(json!({ "tool_calls": calls }), None));
        }
        None => events.extend(
            split(&content, cfg.stream_chunks)
                .into_iter()
                .map(|piece| delta(json!({ "content": piece }), None)),
        ),
    }
    events.push(delta(json!({}), Some(finish)));
    let events = events.into_iter().map(|choice| frame.chunk(choice)).collect();
    sse(cfg, frame, events, body, usage)
}

fn completion(cfg: &MockConfig, id: u64, model: Value, body: &Value) -> HttpResponse {
    let prompt = first_text(&body["prompt"]);
    let text = format!("echo: {prompt}");
    let usage = usage(cfg, prompt.chars().count(), &text);
    let frame = Frame {
        id: format!("cmpl-mock-{id}"),
        object: "text_completion",
        model,
        created: now_secs(),
    };
    if !wants_stream(body) {
        let choice = json!({"index": 0, "text": text, "finish_reason": "stop"});
        return HttpResponse::Ok().json(frame.whole("text_completion", choice, usage));
    }
    let mut events: Vec<Value> = split(&text, cfg.stream_chunks)
        .into_iter()
        .map(|piece| frame.chunk(json!({"index": 0, "text": piece, "finish_reason": null})))
        .collect();
    events.push(frame.chunk(json!({"index": 0, "text": "", "finish_reason": "stop"})));
    sse(cfg, frame, events, body, usage)
}

fn embeddings(cfg: &MockConfig, model: Value, body: &Value) -> HttpResponse {
    let inputs: Vec<&str> = match &body["input"] {
        Value::Array(items) => items.iter().map(|i| i.as_str().unwrap_or_default()).collect(),
        other => vec![other.as_str().unwrap_or_default()],
    };
    let data: Vec<Value> = (0..inputs.len())
        .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}))
        .collect();
    let mut out = json!({"object": "list", "data": data, "model": model});
    if cfg.send_usage {
        let p = prompt_tokens(cfg, inputs.iter().map(|s| s.chars().count()).sum());
        out["usage"] = json!({"prompt_tokens": p, "total_tokens": p});
    }
    HttpResponse::Ok().json(out)
}

/// Common envelope fields of one response (or of every chunk of a stream).
struct Frame {
    id: String,
    object: &'static str,
    model: Value,
    created: u64,
}

impl Frame {
    fn whole(&self, object: &str, choice: Value, usage: Option<Value>) -> Value {
        let mut out = self.chunk(choice);
        out["object"] = json!(object);
        if let Some(usage) = usage {
            out["usage"] = usage;
        }
        out
    }

    fn chunk(&self, choice: Value) -> Value {
        json!({
            "id": self.id, "object": self.object, "created": self.created,
            "model": self.model, "choices": [choice]
        })
    }
}

/// Streams `events` (plus the usage chunk when asked for) as SSE, ending with `[DONE]`.
fn sse(
    cfg: &MockConfig,
    frame: Frame,
    mut events: Vec<Value>,
    body: &Value,
    usage: Option<Value>,
) -> HttpResponse {
    let include_usage = body["stream_options"]["include_usage"] == json!(true);
    if let Some(usage) = usage.filter(|_| include_usage) {
        let mut last = frame.chunk(Value::Null);
        last["choices"] = json!([]);
        last["usage"] = usage;
        events.push(last);
    }
    let mut frames: Vec<Bytes> = events
        .iter()
        .map(|e| Bytes::from(format!("data: {e}\n\n")))
        .collect();
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let delay = cfg.chunk_delay;
    let stream =
        futures_util::stream::unfold((frames.into_iter(), true), move |(mut rest, first)| async move {
            let next = rest.next()?;
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok::<_, std::io::Error>(next), (rest, false)))
        });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(stream)
}

fn wants_stream(body: &Value) -> bool {
    body["stream"].as_bool().unwrap_or(false)
}

/// One streamed chat choice carrying `delta`.
fn delta(delta: Value, finish: Option<&str>) -> Value {
    json!({"index": 0, "delta": delta, "finish_reason": finish})
}

fn usage(cfg: &MockConfig, prompt_chars: usize, reply: &str) -> Option<Value> {
    let p = prompt_tokens(cfg, prompt_chars);
    let c = reply.split_whitespace().count().max(1);
    cfg.send_usage
        .then(|| json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}))
}

fn prompt_tokens(cfg: &MockConfig, chars: usize) -> usize {
    (chars / cfg.chars_per_token.max(1)).max(1)
}

/// Prompt and completion tokens of the answer the mock gives to `body`, counted
/// as its usage reports them (an echo of the last message, or a tool call).
fn answer_tokens(cfg: &MockConfig, body: &Value) -> (usize, usize) {
    let prompt = prompt_tokens(cfg, prompt_chars(body));
    let reply = if calls_tool(cfg, body) {
        String::new()
    } else {
        reply_text(cfg, body).0
    };
    (prompt, reply.split_whitespace().count().max(1))
}

/// The text of the answer to `body`: an echo of its last message (padded to
/// `answer_words`), stopped at `max_tokens` words like a real model stops at
/// its bound; and whether it was stopped.
fn reply_text(cfg: &MockConfig, body: &Value) -> (String, bool) {
    let last = match body["messages"].as_array() {
        Some(messages) => messages.last().and_then(|m| m["content"].as_str()),
        None => Some(first_text(&body["prompt"])),
    };
    let mut words: Vec<&str> = match last {
        Some(text) => std::iter::once("echo:").chain(text.split_whitespace()).collect(),
        None => vec!["ok"],
    };
    while words.len() < cfg.answer_words {
        words.push("and");
    }
    let limit = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|f| body[*f].as_u64())
        .map(|n| n as usize);
    match limit {
        Some(n) if words.len() > n => (words[..n].join(" "), true),
        _ => (words.join(" "), false),
    }
}

/// Whether the answer to a chat is a call of its first tool (see [`ToolCalls`]).
fn calls_tool(cfg: &MockConfig, body: &Value) -> bool {
    let offered = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    let answered = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .is_some_and(|m| m["role"] == "tool");
    offered
        && match cfg.call_tools {
            ToolCalls::Always => true,
            ToolCalls::UntilAnswered => !answered,
            ToolCalls::Never => false,
        }
}

/// Characters of a chat's messages, a completion's prompt or an embedding's input.
fn prompt_chars(body: &Value) -> usize {
    if let Some(messages) = body["messages"].as_array() {
        return messages
            .iter()
            .filter_map(|m| m["content"].as_str())
            .map(|s| s.chars().count())
            .sum();
    }
    first_text(&body["prompt"]).chars().count()
}

/// Splits `text` into `n` (at least 1) pieces of nearly equal char length.
fn split(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.max(1);
    (0..n)
        .map(|i| {
            chars[i * chars.len() / n..(i + 1) * chars.len() / n]
                .iter()
                .collect()
        })
        .collect()
}

/// The prompt as a string, or the first string of an array ("" otherwise).
fn first_text(v: &Value) -> &str {
    match v {
        Value::Array(items) => items.first().and_then(Value::as_str).unwrap_or_default(),
        other => other.as_str().unwrap_or_default(),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(mock: &MockProvider, key: &str, body: Value) -> reqwest::Result<reqwest::Response> {
        let url = format!("{}/chat/completions", mock.base_url);
        reqwest::Client::new()
            .post(url)
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
    }

    fn chat_body(stream: bool, include_usage: bool) -> Value {
        json!({"model": "m", "messages": [{"role": "user", "content": "hello there"}],
               "stream": stream, "stream_options": {"include_usage": include_usage}})
    }

    /// SSE `data:` payloads of a streamed response.
    async fn sse_events(res: reqwest::Response) -> Vec<String> {
        let text = res.text().await.unwrap();
        text.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }

    #[actix_rt::test]
    async fn window_limit_gives_exact_nvidia_429() {
        let mock = MockProvider::start(MockConfig {
            rpm_per_key: 3,
            ..MockConfig::default()
        })
        .await;
        for _ in 0..3 {
            assert_eq!(
                post(&mock, "k1", chat_body(false, false)).await.unwrap().status(),
                200
            );
        }
        let res = post(&mock, "k1", chat_body(false, false)).await.unwrap();
        assert_eq!(res.status(), 429);
        assert!(res.headers().get("retry-after").is_none());
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.text().await.unwrap(), NVIDIA_429_BODY);
        assert_eq!(
            post(&mock, "k2", chat_body(false, false)).await.unwrap().status(),
            200
        );
        assert_eq!(
            (
                mock.max_in_window("k1"),
                mock.served_for_key("k1"),
                mock.rate_limited()
            ),
            (3, 3, 1)
        );
        assert_eq!(mock.keys_seen(), ["k1", "k2"]);
        assert_eq!(mock.requests()[3].status, 429);
        mock.stop().await;
    }

    #[actix_rt::test]
    async fn stream_reports_usage_only_when_asked() {
        let mock = MockProvider::start(MockConfig {
            stream_chunks: 2,
            ..MockConfig::default()
        })
        .await;
        let res = post(&mock, "k", chat_body(true, true)).await.unwrap();
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let events = sse_events(res).await;
        assert_eq!(events.len(), 1 + 2 + 1 + 1 + 1);
        assert_eq!(events.last().unwrap(), "[DONE]");
        let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["completion_tokens"], 3);
        let content: String = events[1..3]
            .iter()
            .map(|e| {
                serde_json::from_str::<Value>(e).unwrap()["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(content, "echo: hello there");

        let events = sse_events(post(&mock, "k", chat_body(true, false)).await.unwrap()).await;
        assert_eq!(events.len(), 1 + 2 + 1 + 1);
        assert!(events.iter().all(|e| !e.contains("usage")));
        mock.stop().await;
    }

    #[actix_rt::test]
    async fn reset_connection_gives_client_error() {
        let mock = MockProvider::start(MockConfig::default()).await;
        mock.set_behavior("bad", KeyBehavior::ResetConnection);
        let outcome = post(&mock, "bad", chat_body(false, false)).await;
        assert!(outcome.is_err(), "client must not even get response headers");
        assert_eq!(mock.requests()[0].status, 0);
        mock.stop().await;
    }
}
