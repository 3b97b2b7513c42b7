//! `KeyActor`: one per upstream API key. It alone owns the key's budget and
//! health; the router asks it for permits and requests report back how they went.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection};

use crate::budget::{BudgetPolicy, End, KeyBudget, Limits, Readiness};
use crate::calibration::Calibration;
use crate::router::KeyChanged;
use crate::shared::{self, KeyEvent, SharedWindows};

/// An upstream API key; `Debug` and `Display` print a mask, never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wrap a plain key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }
    /// The plain key, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A short mask such as `nvapi-…a1b2`.
    pub fn mask(&self) -> String {
        mask_secret(&self.0)
    }
}

/// Mask a secret for display: a short head and the last four characters.
pub fn mask_secret(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    // Short secrets show only their last two characters; long ones a prefix
    // (which names the provider, like `nvapi-`) and the last four.
    let (head, tail) = if chars.len() <= 12 { (0, 2) } else { (6, 4) };
    let head: String = chars[..head].iter().collect();
    let tail: String = chars[chars.len().saturating_sub(tail)..].iter().collect();
    format!("{head}…{tail}")
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.mask())
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.mask())
    }
}

/// Everything needed to route to and call one key.
#[derive(Clone, Debug, PartialEq)]
pub struct KeySpec {
    /// Database id of the key.
    pub key_id: i64,
    /// Database id of its channel.
    pub channel_id: i64,
    /// Channel name, for logs and errors.
    pub channel_name: String,
    /// Provider base URL, such as `https://integrate.api.nvidia.com/v1`.
    pub base_url: String,
    /// The key itself.
    pub secret: ApiKey,
    /// Models this key serves, by the names clients use.
    pub models: Vec<String>,
    /// Client model name to provider model name.
    pub model_map: HashMap<String, String>,
    /// Higher tiers are preferred when several keys can serve now.
    pub priority: i32,
    /// Share of traffic within a tier.
    pub weight: u32,
    /// Limits for all models together.
    pub limits: Limits,
    /// Extra limits per model (providers throttle some models harder).
    pub model_limits: HashMap<String, Limits>,
    /// Extra headers sent upstream.
    pub extra_headers: Vec<(String, String)>,
    /// Why an operator disabled the key (or its channel), if one did.
    pub disabled: Option<String>,
    /// Why health checks disabled the key, as stored (the actor's starting state).
    pub health_disabled: Option<String>,
    /// User groups that may use the key's channel; empty = every group.
    pub groups: Vec<String>,
}

impl KeySpec {
    /// Whether a user of `group` may use this key.
    pub fn serves_group(&self, group: &str) -> bool {
        self.groups.is_empty() || self.groups.iter().any(|g| g == group)
    }

    /// The provider's name for a client model name.
    pub fn upstream_model(&self, model: &str) -> String {
        self.model_map
            .get(model)
            .cloned()
            .unwrap_or_else(|| model.to_string())
    }
}

/// How a request on a permit ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Served; `tokens` is the real usage (prompt + completion) when known,
    /// `reported_prompt` the prompt tokens as the provider counted them (not
    /// when they were estimated here), to calibrate estimates.
    Success {
        /// Prompt and completion tokens used.
        tokens: Option<u64>,
        /// Prompt tokens the provider reported.
        reported_prompt: Option<u64>,
    },
    /// Provider answered 429.
    RateLimited { retry_after: Option<Duration> },
    /// Provider answered 5xx.
    ServerError(String),
    /// No first byte in time.
    Timeout(String),
    /// No first byte long after the model's other keys answer theirs: the key
    /// hangs. It takes no requests until a probe finds it answering again.
    Hung(String),
    /// Connection failed or broke.
    Connect(String),
    /// Provider rejected the key (401/403).
    AuthFailed(String),
    /// Provider rejected the request itself (400, 404, 422…); the key is fine.
    ClientError,
    /// Sent, but the client left before the end.
    Cancelled { tokens: Option<u64> },
    /// Never sent: the permit came too late for its request.
    NotSent,
}

/// What the router and the console see of a key, now.
#[derive(Clone, Debug)]
pub struct KeySnapshot {
    /// Database id of the key.
    pub key_id: i64,
    /// When it can take the next request (no model-specific limits applied).
    pub readiness: Readiness,
    /// When it can take a probe (failure backoff aside).
    pub probe_readiness: Readiness,
    /// Requests in the current window.
    pub requests_in_window: u32,
    /// Tokens in the current window.
    pub tokens_in_window: u64,
    /// Requests in flight.
    pub in_flight: u32,
    /// The configured limits.
    pub configured: Limits,
    /// The request limit in force (lowered after provider 429s).
    pub effective_rpm: u32,
    /// The token limit in force (lowered after provider 429s on a full token window).
    pub effective_tpm: u64,
    /// Cooldown left after a 429 or failure.
    pub cooldown_remaining: Option<Duration>,
    /// Why the key is disabled, if it is (operator or health).
    pub disabled: Option<String>,
    /// True when health checks disabled it: the prober tries it again.
    pub health_disabled: bool,
    /// The last error the provider gave.
    pub last_error: Option<String>,
    /// Requests served since start.
    pub served: u64,
    /// Provider 429s since start.
    pub rate_limited: u64,
}

/// Ask for a permit now; the reply says granted, or when to ask again.
#[derive(Message)]
#[rtype(result = "AcquireReply")]
pub struct Acquire {
    /// Unique id of the permit to create.
    pub permit: u64,
    /// Model requested (client name).
    pub model: String,
    /// Estimated tokens of the request.
    pub tokens: u64,
    /// A health probe: allowed on a key health checks disabled.
    pub probe: bool,
    /// How long the request has waited: with replicas, the one that waited
    /// longest goes first when a slot frees.
    pub waited: Duration,
}

/// Answer to [`Acquire`].
pub struct AcquireReply {
    /// `Ok` when admitted, else when it could be.
    pub result: Result<(), Readiness>,
    /// The key's state after the decision.
    pub snapshot: KeySnapshot,
}

/// A request on a permit ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Finish {
    /// The permit.
    pub permit: u64,
    /// Model requested (client name).
    pub model: String,
    /// How it went.
    pub outcome: Outcome,
}

/// Read the key's state.
#[derive(Message)]
#[rtype(result = "KeySnapshot")]
pub struct GetSnapshot;

/// New settings for the key (live reconfiguration). Health state is kept.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure(pub Arc<KeySpec>);

/// Clear a health disable (a probe succeeded, or an operator enabled the key).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restore;

/// Another replica changed the key's shared budget (cluster mode).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SharedChanged(pub KeyEvent);

/// Consecutive auth failures that disable a key: one could be a provider hiccup.
const AUTH_FAILURES_TO_DISABLE: u32 = 2;

/// Consecutive 5xx, timeouts or broken connections that disable a key until a
/// probe succeeds: by then it has backed off for a minute without recovering.
const FAILURES_TO_DISABLE: u32 = 6;

/// The actor owning one key's budget and health.
pub struct KeyActor {
    spec: Arc<KeySpec>,
    budget: KeyBudget,
    model_budgets: HashMap<String, KeyBudget>,
    policy: BudgetPolicy,
    router: Recipient<KeyChanged>,
    db: Option<DatabaseConnection>,
    health_disabled: Option<String>,
    auth_failures: u32,
    failures: u32,
    failure_cooldown_until: Option<Instant>,
    last_error: Option<String>,
    served: u64,
    rate_limited: u64,
    /// How this key's provider counts prompts, per model.
    calibration: Calibration,
    /// The raw prompt estimate of each request in flight, to learn from its report.
    estimates: HashMap<u64, (String, u64)>,
    /// The windows all replicas share, in cluster mode.
    shared: Option<SharedState>,
}

/// What a key actor knows of its shared windows.
struct SharedState {
    windows: SharedWindows,
    /// The key's own window (or cooldown) has no room before this, as Redis said.
    not_before: Option<Instant>,
    /// At its concurrency limit, all replicas together, until a request ends.
    slots_full: bool,
    /// Requests and tokens in the key's window, all replicas together, as last seen.
    counts: (u32, u64),
    /// Permits admitted through Redis (they are settled there too).
    admitted: std::collections::HashSet<u64>,
    /// Redis could not be reached: the key keeps to its share of the limits.
    apart: bool,
    /// Back from apart: what was sent meanwhile is in no shared window, so the
    /// share still holds, beside the shared windows, until this instant.
    share_until: Option<Instant>,
}

impl KeyActor {
    /// A key actor reporting its changes to `router`, persisting health to `db`.
    pub fn new(
        spec: Arc<KeySpec>,
        policy: BudgetPolicy,
        router: Recipient<KeyChanged>,
        db: Option<DatabaseConnection>,
        shared: Option<SharedWindows>,
    ) -> Self {
        let model_budgets = spec
            .model_limits
            .iter()
            .map(|(m, l)| (m.clone(), KeyBudget::new(*l, policy)))
            .collect();
        KeyActor {
            budget: KeyBudget::new(spec.limits, policy),
            health_disabled: spec.health_disabled.clone(),
            spec,
            model_budgets,
            policy,
            router,
            db,
            auth_failures: 0,
            failures: 0,
            failure_cooldown_until: None,
            last_error: None,
            served: 0,
            rate_limited: 0,
            calibration: Calibration::default(),
            estimates: HashMap::new(),
            shared: shared.map(|windows| SharedState {
                windows,
                not_before: None,
                slots_full: false,
                counts: (0, 0),
                admitted: Default::default(),
                apart: false,
                share_until: None,
            }),
        }
    }

    /// Whether any limit applies to `model` on this key (else nothing needs sharing).
    fn limited(&self, model: &str) -> bool {
        let any = |l: &Limits| l.rpm > 0 || l.tpm > 0 || l.max_concurrency > 0;
        any(&self.spec.limits) || self.spec.model_limits.get(model).is_some_and(any)
    }

    /// The windows are shared and Redis answers: admissions go through it.
    fn sharing(&self) -> Option<SharedWindows> {
        self.shared
            .as_ref()
            .filter(|s| !s.windows.failing())
            .map(|s| s.windows.clone())
    }

    /// Redis cannot be reached: keep to this replica's share of every limit,
    /// counting what the other replicas had in the window as sent just now.
    fn go_apart(&mut self, now: Instant) {
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        let replicas = shared
            .windows
            .replicas()
            .load(std::sync::atomic::Ordering::Relaxed) as u32;
        if !shared.apart {
            shared.apart = true;
            let own = (
                self.budget.requests_in_window(now),
                self.budget.tokens_in_window(now),
            );
            let (requests, tokens) = shared.counts;
            self.budget
                .record_foreign(now, requests.saturating_sub(own.0), tokens.saturating_sub(own.1));
            tracing::warn!(
                key_id = self.spec.key_id,
                replicas,
                "shared windows unreachable; keeping to this replica's share"
            );
        }
        self.set_share(replicas);
    }

    /// Keep the key's budget and its models' to one `replicas`-th of their limits.
    fn set_share(&mut self, replicas: u32) {
        self.budget.set_share(replicas);
        for b in self.model_budgets.values_mut() {
            b.set_share(replicas);
        }
    }

    /// Redis answers again: the shared windows decide once more.
    fn rejoin(&mut self, now: Instant) {
        let span = self.policy.window + self.policy.margin;
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        if shared.apart {
            shared.apart = false;
            shared.share_until = Some(now + span);
            tracing::info!(key_id = self.spec.key_id, "shared windows reachable again");
        }
        if shared.share_until.is_some_and(|until| until > now) {
            return;
        }
        shared.share_until = None;
        self.set_share(1);
    }

    /// When the key can take a request. A probe skips the failure backoff:
    /// the backoff steers traffic away, while a probe exists to find out.
    fn readiness(&mut self, now: Instant, model: &str, tokens: u64, probe: bool) -> Readiness {
        let mut r = self.budget.readiness(now, tokens);
        if let Some(mb) = self.model_budgets.get_mut(model) {
            r = later(r, mb.readiness(now, tokens), now);
        }
        if let Some(until) = self.failure_cooldown_until.filter(|u| *u > now && !probe) {
            r = later(r, Readiness::At(until), now);
        }
        if let Some(shared) = self.shared.as_ref().filter(|s| !s.apart) {
            if shared.slots_full {
                r = Readiness::WhenSlotFrees;
            } else if let Some(at) = shared.not_before.filter(|at| *at > now) {
                r = later(r, Readiness::At(at), now);
            }
        }
        r
    }

    fn snapshot(&mut self, now: Instant) -> KeySnapshot {
        let readiness = self.readiness(now, "", 0, false);
        let probe_readiness = self.readiness(now, "", 0, true);
        let failure_cd = self.failure_cooldown_until.filter(|u| *u > now).map(|u| u - now);
        // All replicas' counts while the windows are shared; this one's alone apart.
        let shared_counts = self.shared.as_ref().filter(|s| !s.apart).map(|s| s.counts);
        KeySnapshot {
            key_id: self.spec.key_id,
            readiness,
            probe_readiness,
            requests_in_window: shared_counts.map_or_else(|| self.budget.requests_in_window(now), |c| c.0),
            tokens_in_window: shared_counts.map_or_else(|| self.budget.tokens_in_window(now), |c| c.1),
            in_flight: self.budget.in_flight(),
            configured: self.budget.configured(),
            effective_rpm: self.budget.effective_rpm(),
            effective_tpm: self.budget.effective_tpm(),
            cooldown_remaining: self.budget.cooldown_remaining(now).max(failure_cd),
            disabled: self
                .spec
                .disabled
                .clone()
                .or_else(|| self.health_disabled.clone()),
            health_disabled: self.health_disabled.is_some(),
            last_error: self.last_error.clone(),
            served: self.served,
            rate_limited: self.rate_limited,
        }
    }

    /// The key's state now.
    pub fn snapshot_now(&mut self) -> KeySnapshot {
        self.snapshot(Instant::now())
    }

    fn notify_router(&mut self) {
        let snapshot = self.snapshot(Instant::now());
        self.router.do_send(KeyChanged(snapshot));
    }

    fn disable(&mut self, reason: String) {
        tracing::warn!(key_id = self.spec.key_id, channel = %self.spec.channel_name, %reason, "key disabled");
        self.health_disabled = Some(reason.clone());
        if let Some(db) = self.db.clone() {
            let key_id = self.spec.key_id;
            let windows = self.shared.as_ref().map(|s| s.windows.clone());
            actix::spawn(async move {
                let row = sluice_entity::channel_keys::ActiveModel {
                    id: Set(key_id),
                    status: Set("auto_disabled".into()),
                    disabled_reason: Set(Some(reason)),
                    updated_at: Set(chrono::Utc::now()),
                    ..Default::default()
                };
                if let Err(e) = row.update(&db).await {
                    tracing::error!(key_id, error = %e, "could not persist disabled key");
                } else if let Some(windows) = windows {
                    // The other replicas stop sending to it too.
                    if let Err(e) = windows.publish(&KeyEvent::Disabled { key_id }).await {
                        tracing::warn!(key_id, error = %e, "could not tell the other replicas");
                    }
                }
            });
        }
    }

    fn on_failure(&mut self, now: Instant, error: String) {
        self.failures += 1;
        // Back off a failing key: 1 s, 2 s, 4 s … up to a minute; it is tried again after.
        let backoff = Duration::from_secs(1 << (self.failures - 1).min(6)).min(Duration::from_secs(60));
        self.failure_cooldown_until = Some(now + backoff);
        if self.failures >= FAILURES_TO_DISABLE && self.health_disabled.is_none() {
            self.disable(format!("{} failures in a row; last: {error}", self.failures));
        }
        self.last_error = Some(error);
    }
}

fn later(a: Readiness, b: Readiness, now: Instant) -> Readiness {
    match (a.instant(now), b.instant(now)) {
        (None, _) | (_, None) => Readiness::WhenSlotFrees,
        (Some(x), Some(y)) if x.max(y) <= now => Readiness::Now,
        (Some(x), Some(y)) => Readiness::At(x.max(y)),
    }
}

impl Actor for KeyActor {
    type Context = Context<Self>;
}

impl Handler<Acquire> for KeyActor {
    type Result = AtomicResponse<Self, AcquireReply>;

    fn handle(&mut self, msg: Acquire, _ctx: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        let disabled = self.spec.disabled.is_some() || (self.health_disabled.is_some() && !msg.probe);
        // The estimate in this provider's units, as far as its reports have shown them.
        let tokens = self.calibration.scale(&msg.model, msg.tokens);
        if disabled {
            return self.reply(now, Err(Readiness::WhenSlotFrees));
        }
        if self.shared.as_ref().is_some_and(|s| s.windows.failing()) {
            self.go_apart(now);
        }
        let local = self.readiness(now, &msg.model, tokens, msg.probe);
        let windows = self.sharing().filter(|_| self.limited(&msg.model));
        let (Readiness::Now, Some(windows)) = (local, windows) else {
            if local == Readiness::Now {
                self.admit_here(now, &msg, tokens);
                return self.reply(now, Ok(()));
            }
            return self.reply(now, Err(local));
        };
        // This replica's view has room: the shared windows have the last word.
        let limits = Limits {
            rpm: self.budget.effective_rpm(),
            tpm: self.budget.effective_tpm(),
            max_concurrency: self.budget.configured().max_concurrency,
        };
        let model_limits = self.model_budgets.get(&msg.model).map(|mb| Limits {
            rpm: mb.effective_rpm(),
            tpm: mb.effective_tpm(),
            max_concurrency: 0,
        });
        let key_id = self.spec.key_id;
        let model = msg.model.clone();
        let ask = async move {
            let ask = shared::Ask {
                budget: shared::Budget::Key(key_id),
                permit: msg.permit,
                tokens,
                waited: Some(msg.waited),
                limits,
                model: model_limits.map(|l| (model.as_str(), l)),
            };
            windows.acquire(ask).await
        };
        AtomicResponse::new(Box::pin(ask.into_actor(self).map(move |answer, act, _ctx| {
            let now = Instant::now();
            let answer = match answer {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::debug!(key_id = act.spec.key_id, error = %e, "shared windows unreachable");
                    act.go_apart(now);
                    let result = match act.readiness(now, &msg.model, tokens, msg.probe) {
                        Readiness::Now => {
                            act.admit_here(now, &msg, tokens);
                            Ok(())
                        }
                        other => Err(other),
                    };
                    return act.reply_now(now, result);
                }
            };
            act.rejoin(now);
            let shared = act.shared.as_mut().expect("shared windows answered");
            shared.counts = (answer.requests, answer.tokens);
            shared.slots_full = answer.slot_full;
            shared.not_before = (answer.key_wait > Duration::ZERO).then(|| now + answer.key_wait);
            let result = if answer.admitted {
                shared.admitted.insert(msg.permit);
                act.admit_here(now, &msg, tokens);
                Ok(())
            } else if answer.slot_full {
                Err(Readiness::WhenSlotFrees)
            } else {
                Err(Readiness::At(now + answer.key_wait.max(answer.model_wait)))
            };
            act.reply_now(now, result)
        })))
    }
}

impl KeyActor {
    /// Count an admitted request in this replica's budgets.
    fn admit_here(&mut self, now: Instant, msg: &Acquire, tokens: u64) {
        // Admitted by the shared windows (or by this budget's own readiness):
        // it went out, whatever this replica's partial view says.
        self.budget.record(now, msg.permit, tokens);
        if let Some(mb) = self.model_budgets.get_mut(&msg.model) {
            mb.record(now, msg.permit, tokens);
        }
        if msg.tokens > 0 {
            self.estimates.insert(msg.permit, (msg.model.clone(), msg.tokens));
        }
    }

    fn reply_now(&mut self, now: Instant, result: Result<(), Readiness>) -> AcquireReply {
        AcquireReply {
            result,
            snapshot: self.snapshot(now),
        }
    }

    fn reply(&mut self, now: Instant, result: Result<(), Readiness>) -> AtomicResponse<Self, AcquireReply> {
        let reply = self.reply_now(now, result);
        AtomicResponse::new(Box::pin(actix::fut::ready(reply)))
    }
}

impl Handler<Finish> for KeyActor {
    type Result = ();

    fn handle(&mut self, msg: Finish, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let Finish {
            permit,
            model,
            outcome,
        } = msg;
        let limits_before = self.learned_limits(&model);
        let refused = matches!(outcome, Outcome::RateLimited { .. });
        let estimate = self.estimates.remove(&permit);
        if let (
            Outcome::Success {
                reported_prompt: Some(reported),
                ..
            },
            Some((model, estimated)),
        ) = (&outcome, &estimate)
        {
            self.calibration.learn(model, *estimated, *reported);
        }
        if let Outcome::RateLimited { retry_after } = &outcome {
            // Only the budget that was refused learns (before the request leaves
            // it, so it knows the request's tokens); with a model override, that
            // is the model's, since the key's other models were fine.
            match self.model_budgets.get_mut(&model) {
                Some(mb) => mb.on_rate_limited(now, *retry_after, permit),
                None => self.budget.on_rate_limited(now, *retry_after, permit),
            }
        }
        let end = match &outcome {
            Outcome::Success { tokens: Some(t), .. } | Outcome::Cancelled { tokens: Some(t) } => {
                End::Used(*t)
            }
            Outcome::NotSent => End::Unsent,
            _ => End::Sent,
        };
        let mut budgets: Vec<&mut KeyBudget> = vec![&mut self.budget];
        if let Some(mb) = self.model_budgets.get_mut(&model) {
            budgets.push(mb);
        }
        for b in budgets.iter_mut() {
            b.finish(permit, end);
        }
        match outcome {
            Outcome::Success { .. } | Outcome::Cancelled { .. } => {
                for b in budgets.iter_mut() {
                    b.on_success();
                }
                if matches!(outcome, Outcome::Success { .. }) {
                    self.served += 1;
                    self.failures = 0;
                    self.auth_failures = 0;
                    self.failure_cooldown_until = None;
                }
            }
            Outcome::RateLimited { .. } => {
                self.rate_limited += 1;
                self.last_error = Some("provider answered 429 Too Many Requests".into());
            }
            Outcome::ServerError(e) | Outcome::Timeout(e) | Outcome::Connect(e) => {
                self.on_failure(now, e);
            }
            Outcome::Hung(e) => {
                self.last_error = Some(e.clone());
                if self.health_disabled.is_none() {
                    self.disable(e);
                }
            }
            Outcome::AuthFailed(e) => {
                self.auth_failures += 1;
                self.last_error = Some(e.clone());
                if self.auth_failures >= AUTH_FAILURES_TO_DISABLE {
                    self.disable(e);
                } else {
                    self.on_failure(now, self.last_error.clone().unwrap_or_default());
                }
            }
            Outcome::ClientError | Outcome::NotSent => {}
        }
        self.settle_shared(ctx, permit, &model, end);
        if refused {
            self.share_refusal(ctx, &model, limits_before);
        }
        self.notify_router();
    }
}

impl KeyActor {
    /// The limits in force for `model` on this key: its own, or the key's.
    fn learned_limits(&self, model: &str) -> (u32, u64) {
        let b = self.model_budgets.get(model).unwrap_or(&self.budget);
        (b.effective_rpm(), b.effective_tpm())
    }

    /// Settle a request in the shared windows, when they counted it and
    /// something there changes: a concurrency slot, unsent, or real tokens.
    fn settle_shared(&mut self, ctx: &mut Context<Self>, permit: u64, model: &str, end: End) {
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        if !shared.admitted.remove(&permit) {
            return;
        }
        // Our own request ended: a slot we held is free again.
        shared.slots_full = false;
        let model_limits = self.spec.model_limits.get(model);
        let tokens_counted = self.spec.limits.tpm > 0 || model_limits.is_some_and(|l| l.tpm > 0);
        let needed = self.spec.limits.max_concurrency > 0
            || end == End::Unsent
            || (matches!(end, End::Used(_)) && tokens_counted);
        if !needed {
            return;
        }
        let windows = shared.windows.clone();
        let key_id = self.spec.key_id;
        let model = model_limits.map(|_| model.to_string());
        ctx.spawn(
            async move {
                if let Err(e) = windows
                    .finish(shared::Budget::Key(key_id), model.as_deref(), permit, end)
                    .await {
                    // Its entry leaves the window with time, its slot with its lease.
                    tracing::warn!(key_id, permit, error = %e, "could not settle a request in the shared windows");
                }
            }
            .into_actor(self),
        );
    }

    /// A provider 429: every replica cools the key down, and learns the lower
    /// limits this one learned.
    fn share_refusal(&mut self, ctx: &mut Context<Self>, model: &str, before: (u32, u64)) {
        let Some(windows) = self.sharing() else {
            return;
        };
        let now = Instant::now();
        let cooldown = self.budget.cooldown_remaining(now).unwrap_or_default();
        let (rpm, tpm) = self.learned_limits(model);
        let learned = KeyEvent::Learned {
            origin: windows.origin().to_string(),
            key_id: self.spec.key_id,
            model: self.model_budgets.contains_key(model).then(|| model.to_string()),
            // Only what was lowered travels; 0 leaves the other alone.
            rpm: if rpm != before.0 { rpm } else { 0 },
            tpm: if tpm != before.1 { tpm } else { 0 },
        };
        let key_id = self.spec.key_id;
        ctx.spawn(
            async move {
                if let Err(e) = windows.cool_down(key_id, cooldown, learned).await {
                    tracing::warn!(key_id, error = %e, "could not share a provider 429");
                }
            }
            .into_actor(self),
        );
    }
}

impl Handler<SharedChanged> for KeyActor {
    type Result = ();

    fn handle(&mut self, msg: SharedChanged, _ctx: &mut Context<Self>) {
        let now = Instant::now();
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        match msg.0 {
            KeyEvent::Freed { .. } => {
                shared.slots_full = false;
                shared.not_before = None;
            }
            // Arrives as a new spec (`Reconfigure`), once the keys are reloaded.
            KeyEvent::Disabled { .. } => return,
            KeyEvent::Learned {
                origin,
                model,
                rpm,
                tpm,
                ..
            } => {
                if origin == shared.windows.origin() {
                    return;
                }
                let budget = match model {
                    Some(m) => self.model_budgets.get_mut(&m),
                    None => Some(&mut self.budget),
                };
                if let Some(budget) = budget {
                    budget.adopt(now, rpm, tpm);
                }
            }
        }
        self.notify_router();
    }
}

impl Handler<GetSnapshot> for KeyActor {
    type Result = MessageResult<GetSnapshot>;

    fn handle(&mut self, _msg: GetSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.snapshot(Instant::now()))
    }
}

impl Handler<Reconfigure> for KeyActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, _ctx: &mut Context<Self>) {
        let spec = msg.0;
        self.budget.set_limits(spec.limits);
        let policy = self.policy;
        self.model_budgets
            .retain(|m, _| spec.model_limits.contains_key(m));
        for (m, l) in &spec.model_limits {
            self.model_budgets
                .entry(m.clone())
                .or_insert_with(|| KeyBudget::new(*l, policy))
                .set_limits(*l);
        }
        if spec.disabled.is_none() && self.spec.disabled.is_some() {
            self.auth_failures = 0;
            self.failures = 0;
        }
        // Health as stored changed: another replica's checks disabled the key,
        // or its prober brought it back.
        match (&self.spec.health_disabled, &spec.health_disabled) {
            (None, Some(reason)) if self.health_disabled.is_none() => {
                self.health_disabled = Some(reason.clone());
            }
            (Some(_), None) if self.health_disabled.is_some() => {
                self.health_disabled = None;
                self.auth_failures = 0;
                self.failures = 0;
                self.failure_cooldown_until = None;
            }
            _ => {}
        }
        self.spec = spec;
        self.notify_router();
    }
}

impl Handler<Restore> for KeyActor {
    type Result = ();

    fn handle(&mut self, _msg: Restore, _ctx: &mut Context<Self>) {
        if self.health_disabled.take().is_some() {
            tracing::info!(key_id = self.spec.key_id, channel = %self.spec.channel_name, "key restored");
        }
        self.auth_failures = 0;
        self.failures = 0;
        self.failure_cooldown_until = None;
        self.notify_router();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_masked_in_debug_output() {
        let key = ApiKey::new("nvapi-abcdefghijklmnop1234");
        assert_eq!(format!("{key:?}"), "ApiKey(nvapi-…1234)");
        assert!(!format!("{key}").contains("ghij"));
    }
}
