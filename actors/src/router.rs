//! `Router`: holds the wait queue and sends each request to the key that can
//! serve it soonest. Keys own their budgets; the router keeps their latest
//! snapshots to choose, and the key's answer to `Acquire` is the final word.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use sea_orm::DatabaseConnection;
use tokio::sync::oneshot;

use crate::budget::BudgetPolicy;
use crate::key::{
    Acquire, Finish, GetSnapshot, KeyActor, KeySnapshot, KeySpec, Outcome, Reconfigure, Restore,
};

/// Ask for a permit to send one request for `model`; waits until `deadline`.
#[derive(Message)]
#[rtype(result = "Result<Permit, RouteError>")]
pub struct Route {
    /// Model requested (client name).
    pub model: String,
    /// Estimated tokens of the request.
    pub tokens: u64,
    /// Keys already tried for this request that must not be used again.
    pub exclude: Vec<i64>,
    /// When to give up waiting.
    pub deadline: Instant,
    /// The caller's user group (channels may be limited to some groups).
    pub group: String,
    /// Only this key (testing a key), ignoring groups.
    pub only_key: Option<i64>,
    /// A health probe: may use a key health checks disabled.
    pub probe: bool,
}

/// A key's state changed (sent by key actors).
#[derive(Message)]
#[rtype(result = "()")]
pub struct KeyChanged(pub KeySnapshot);

/// Replace the set of keys: new ones start, changed ones are reconfigured,
/// missing ones stop once their in-flight requests end. `channels` lists
/// every enabled channel's models, so a model whose keys are all gone is
/// still known (and answered "no usable key", not "unknown model").
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetKeys {
    /// Every key.
    pub keys: Vec<KeySpec>,
    /// Every enabled channel's models and groups.
    pub channels: Vec<ChannelModels>,
}

/// What one channel serves, and to whom.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelModels {
    /// Models, by the names clients use.
    pub models: Vec<String>,
    /// User groups allowed; empty = every group.
    pub groups: Vec<String>,
}

/// The models served by at least one key (enabled or not) to a user group
/// (`None`: to anyone), sorted.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct ListModels(pub Option<String>);

/// Clear a key's health disable (forwarded to its actor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RestoreKey(pub i64);

/// The live state of every key.
#[derive(Message)]
#[rtype(result = "Vec<KeyState>")]
pub struct ListKeyStates;

/// Requests waiting now, per model.
#[derive(Message)]
#[rtype(result = "HashMap<String, usize>")]
pub struct QueueDepth;

/// Why no permit was given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    /// Waited `max_wait` and no key freed up in time.
    #[error("every key for '{model}' is at its limit; waited {waited:?}")]
    WaitExceeded {
        /// Model requested.
        model: String,
        /// How long the request waited.
        waited: Duration,
        /// When a key is expected to be free.
        retry_after: Duration,
    },
    /// No usable key serves the model (none configured, all disabled or all tried).
    #[error("no usable key serves '{model}': {reason}")]
    NoKeys {
        /// Model requested.
        model: String,
        /// Why: the keys' disabled reasons, or that every key was tried.
        reason: String,
    },
    /// The router is shutting down.
    #[error("the gateway is shutting down")]
    Shutdown,
}

/// A key and a model the router paired, with the key's current snapshot.
#[derive(Clone, Debug)]
pub struct KeyState {
    /// The key's settings (its secret masked in `Debug`).
    pub spec: Arc<KeySpec>,
    /// Its live state.
    pub snapshot: KeySnapshot,
    /// Requests waiting now that this key could serve.
    pub queue_depth: usize,
}

/// The right to send one request on one key. Report how it went with
/// [`Permit::finish`]; dropping it reports `Cancelled` (or `NotSent`).
pub struct Permit {
    id: u64,
    model: String,
    spec: Arc<KeySpec>,
    key: Addr<KeyActor>,
    sent: bool,
    finished: bool,
    waited: Duration,
}

impl Permit {
    /// The key to send with.
    pub fn spec(&self) -> &KeySpec {
        &self.spec
    }
    /// The provider's name for the model.
    pub fn upstream_model(&self) -> String {
        self.spec.upstream_model(&self.model)
    }
    /// How long the request waited for this permit.
    pub fn waited(&self) -> Duration {
        self.waited
    }
    /// The request is going out now: from here on it counts even if abandoned.
    pub fn mark_sent(&mut self) {
        self.sent = true;
    }
    /// Report how the request ended.
    pub fn finish(mut self, outcome: Outcome) {
        self.report(outcome);
    }
    fn report(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.key.do_send(Finish {
            permit: self.id,
            model: self.model.clone(),
            outcome,
        });
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let outcome = if self.sent {
            Outcome::Cancelled { tokens: None }
        } else {
            Outcome::NotSent
        };
        self.report(outcome);
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("id", &self.id)
            .field("key_id", &self.spec.key_id)
            .field("model", &self.model)
            .finish()
    }
}

struct KeyEntry {
    spec: Arc<KeySpec>,
    addr: Addr<KeyActor>,
    snapshot: KeySnapshot,
    /// Per-model "not before" learned from refused `Acquire`s (model limits, TPM).
    hints: HashMap<String, Instant>,
}

struct Waiter {
    id: u64,
    model: String,
    tokens: u64,
    group: String,
    only_key: Option<i64>,
    probe: bool,
    exclude: Vec<i64>,
    deadline: Instant,
    enqueued: Instant,
    tx: oneshot::Sender<Result<Permit, RouteError>>,
}

enum Pick {
    Now(i64),
    Later(Instant),
    WhenSlotFrees,
    NoKeys,
}

/// The actor that queues requests and assigns them to keys.
pub struct Router {
    keys: HashMap<i64, KeyEntry>,
    channels: Vec<ChannelModels>,
    queue: VecDeque<Waiter>,
    policy: BudgetPolicy,
    db: Option<DatabaseConnection>,
    next_id: u64,
    acquiring: bool,
    wake: Option<(Instant, SpawnHandle)>,
}

impl Waiter {
    /// Whether this request may go to this key (its state aside).
    fn may_use(&self, entry: &KeyEntry) -> bool {
        let spec = &entry.spec;
        let enabled = match (spec.disabled.is_some(), entry.snapshot.health_disabled) {
            (true, _) => false,
            (false, health_disabled) => !health_disabled || self.probe,
        };
        let chosen = match self.only_key {
            Some(id) => spec.key_id == id,
            None => spec.serves_group(&self.group) && spec.models.iter().any(|m| m == &self.model),
        };
        enabled && chosen && !self.exclude.contains(&spec.key_id)
    }

    /// Whether this request could be served by this key were it free and enabled.
    fn wants(&self, entry: &KeyEntry) -> bool {
        match self.only_key {
            Some(id) => entry.spec.key_id == id,
            None => {
                entry.spec.serves_group(&self.group) && entry.spec.models.iter().any(|m| m == &self.model)
            }
        }
    }
}

impl Router {
    /// A router with no keys; send [`SetKeys`] to give it some.
    pub fn new(policy: BudgetPolicy, db: Option<DatabaseConnection>) -> Self {
        Router {
            keys: HashMap::new(),
            channels: Vec::new(),
            queue: VecDeque::new(),
            policy,
            db,
            next_id: 1,
            acquiring: false,
            wake: None,
        }
    }

    fn pick(&self, w: &Waiter, now: Instant) -> Pick {
        let mut best: Option<(&KeyEntry, (i32, f64))> = None;
        let mut earliest: Option<Instant> = None;
        let mut any = false;
        for entry in self.keys.values() {
            if !w.may_use(entry) {
                continue;
            }
            let spec = &entry.spec;
            any = true;
            let readiness = if w.probe {
                entry.snapshot.probe_readiness
            } else {
                entry.snapshot.readiness
            };
            let Some(mut ready) = readiness.instant(now) else {
                continue;
            };
            if let Some(hint) = entry.hints.get(&w.model) {
                ready = ready.max(*hint);
            }
            if ready > now {
                earliest = Some(earliest.map_or(ready, |e: Instant| e.min(ready)));
                continue;
            }
            // Highest tier first; within it, the least used for its weight, so
            // load spreads and a key with stuck requests is passed over.
            let s = &entry.snapshot;
            let load = (s.requests_in_window + s.in_flight) as f64 / spec.weight.max(1) as f64;
            let score = (spec.priority, -load);
            if best.as_ref().is_none_or(|(_, b)| score > *b) {
                best = Some((entry, score));
            }
        }
        match (best, earliest) {
            (Some((entry, _)), _) => Pick::Now(entry.spec.key_id),
            (None, Some(at)) => Pick::Later(at),
            (None, None) if any => Pick::WhenSlotFrees,
            (None, None) => Pick::NoKeys,
        }
    }

    /// Explain a `Pick::NoKeys` to the client: what disabled the keys.
    fn why_no_keys(&self, w: &Waiter) -> String {
        let mut reasons: Vec<String> = self
            .keys
            .values()
            .filter(|e| w.wants(e) && !w.exclude.contains(&e.spec.key_id))
            .filter_map(|e| e.snapshot.disabled.clone().or_else(|| e.spec.disabled.clone()))
            .collect();
        reasons.sort();
        reasons.dedup();
        if !reasons.is_empty() {
            format!("every key serving it is disabled ({})", reasons.join("; "))
        } else if w.exclude.is_empty() {
            "no key serves it".into()
        } else {
            "every key serving it was tried".into()
        }
    }

    fn retry_after(&self, model: &str, now: Instant) -> Duration {
        self.keys
            .values()
            .filter(|e| e.spec.models.iter().any(|m| m == model))
            .filter_map(|e| e.snapshot.readiness.instant(now))
            .min()
            .map(|at| at - now)
            .unwrap_or(self.policy.window)
            .max(Duration::from_secs(1))
    }

    /// Give permits to every waiter a key can serve now; then sleep until the
    /// next window edge or deadline. One `Acquire` is in flight at a time.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if self.acquiring {
            return;
        }
        let now = Instant::now();
        let mut next_wake: Option<Instant> = None;
        let mut i = 0;
        while i < self.queue.len() {
            let w = &self.queue[i];
            if w.tx.is_closed() {
                self.queue.remove(i);
                continue;
            }
            let pick = self.pick(w, now);
            if w.deadline <= now && !matches!(pick, Pick::Now(_)) {
                let w = self.queue.remove(i).expect("index in range");
                let retry_after = self.retry_after(&w.model, now);
                let _ = w.tx.send(Err(RouteError::WaitExceeded {
                    waited: now - w.enqueued,
                    model: w.model,
                    retry_after,
                }));
                continue;
            }
            match pick {
                Pick::Now(key_id) => {
                    self.acquire(i, key_id, ctx);
                    return;
                }
                Pick::NoKeys => {
                    let w = self.queue.remove(i).expect("index in range");
                    let reason = self.why_no_keys(&w);
                    let _ = w.tx.send(Err(RouteError::NoKeys {
                        model: w.model,
                        reason,
                    }));
                    continue;
                }
                Pick::Later(at) => next_wake = Some(next_wake.map_or(at, |n| n.min(at))),
                Pick::WhenSlotFrees => {}
            }
            let deadline = self.queue[i].deadline;
            next_wake = Some(next_wake.map_or(deadline, |n| n.min(deadline)));
            i += 1;
        }
        if let Some(at) = next_wake {
            self.wake_at(at, ctx);
        }
    }

    fn wake_at(&mut self, at: Instant, ctx: &mut Context<Self>) {
        if let Some((current, handle)) = self.wake {
            if current <= at && current > Instant::now() {
                return;
            }
            ctx.cancel_future(handle);
        }
        let delay = at.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(delay, |act, ctx| {
            act.wake = None;
            act.dispatch(ctx);
        });
        self.wake = Some((at, handle));
    }

    fn acquire(&mut self, index: usize, key_id: i64, ctx: &mut Context<Self>) {
        let permit = self.next_id;
        self.next_id += 1;
        let w = &self.queue[index];
        let waiter_id = w.id;
        let model = w.model.clone();
        let msg = Acquire {
            permit,
            model: model.clone(),
            tokens: w.tokens,
            probe: w.probe,
        };
        let entry = &self.keys[&key_id];
        let addr = entry.addr.clone();
        self.acquiring = true;
        // `wait` holds the mailbox until the key answers, so no other message
        // can reorder the queue or overbook the key meanwhile.
        ctx.wait(addr.send(msg).into_actor(self).map(move |reply, act, ctx| {
            act.acquiring = false;
            let now = Instant::now();
            match reply {
                Ok(reply) => {
                    if let Some(entry) = act.keys.get_mut(&key_id) {
                        entry.snapshot = reply.snapshot;
                        match reply.result {
                            Ok(()) => {
                                entry.hints.remove(&model);
                                let spec = entry.spec.clone();
                                let addr = entry.addr.clone();
                                act.grant(waiter_id, permit, spec, addr, now);
                            }
                            Err(readiness) => {
                                let hint = readiness.instant(now).unwrap_or(now + act.policy.window);
                                entry.hints.insert(model, hint);
                            }
                        }
                    }
                }
                Err(_) => {
                    act.keys.remove(&key_id);
                }
            }
            act.dispatch(ctx);
        }));
    }

    fn grant(&mut self, waiter_id: u64, permit: u64, spec: Arc<KeySpec>, key: Addr<KeyActor>, now: Instant) {
        let Some(pos) = self.queue.iter().position(|w| w.id == waiter_id) else {
            // Cannot happen while `wait` holds the mailbox; give the permit back.
            key.do_send(Finish {
                permit,
                model: String::new(),
                outcome: Outcome::NotSent,
            });
            return;
        };
        let w = self.queue.remove(pos).expect("position in range");
        let permit = Permit {
            id: permit,
            model: w.model,
            spec,
            key,
            sent: false,
            finished: false,
            waited: now - w.enqueued,
        };
        // A client that left meanwhile drops the permit, which gives it back.
        let _ = w.tx.send(Ok(permit));
    }
}

impl Actor for Router {
    type Context = Context<Self>;
}

impl Handler<Route> for Router {
    type Result = ResponseFuture<Result<Permit, RouteError>>;

    fn handle(&mut self, msg: Route, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back(Waiter {
            id,
            model: msg.model,
            tokens: msg.tokens,
            group: msg.group,
            only_key: msg.only_key,
            probe: msg.probe,
            exclude: msg.exclude,
            deadline: msg.deadline,
            enqueued: Instant::now(),
            tx,
        });
        self.dispatch(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(RouteError::Shutdown)) })
    }
}

impl Handler<KeyChanged> for Router {
    type Result = ();

    fn handle(&mut self, msg: KeyChanged, ctx: &mut Context<Self>) {
        if let Some(entry) = self.keys.get_mut(&msg.0.key_id) {
            entry.snapshot = msg.0;
        }
        self.dispatch(ctx);
    }
}

impl Handler<SetKeys> for Router {
    type Result = ();

    fn handle(&mut self, msg: SetKeys, ctx: &mut Context<Self>) {
        self.channels = msg.channels;
        let mut wanted: HashMap<i64, KeySpec> = msg.keys.into_iter().map(|s| (s.key_id, s)).collect();
        self.keys.retain(|id, _| wanted.contains_key(id));
        for (id, spec) in wanted.drain() {
            let spec = Arc::new(spec);
            match self.keys.get_mut(&id) {
                Some(entry) if *entry.spec == *spec => {}
                Some(entry) => {
                    entry.addr.do_send(Reconfigure(spec.clone()));
                    entry.spec = spec;
                    entry.hints.clear();
                }
                None => {
                    let mut actor = KeyActor::new(spec.clone(), self.policy, ctx.address(), self.db.clone());
                    let snapshot = actor.snapshot_now();
                    let addr = actor.start();
                    self.keys.insert(
                        id,
                        KeyEntry {
                            spec,
                            addr,
                            snapshot,
                            hints: HashMap::new(),
                        },
                    );
                }
            }
        }
        self.dispatch(ctx);
    }
}

impl Handler<ListModels> for Router {
    type Result = MessageResult<ListModels>;

    fn handle(&mut self, msg: ListModels, _ctx: &mut Context<Self>) -> Self::Result {
        let mut models: Vec<String> = self
            .keys
            .values()
            .filter(|e| msg.0.as_deref().is_none_or(|g| e.spec.serves_group(g)))
            .flat_map(|e| e.spec.models.iter().cloned())
            .chain(
                self.channels
                    .iter()
                    .filter(|c| {
                        msg.0
                            .as_deref()
                            .is_none_or(|g| c.groups.is_empty() || c.groups.iter().any(|x| x == g))
                    })
                    .flat_map(|c| c.models.iter().cloned()),
            )
            .collect();
        models.sort();
        models.dedup();
        MessageResult(models)
    }
}

impl Handler<ListKeyStates> for Router {
    type Result = ResponseFuture<Vec<KeyState>>;

    fn handle(&mut self, _msg: ListKeyStates, _ctx: &mut Context<Self>) -> Self::Result {
        let keys: Vec<(Arc<KeySpec>, Addr<KeyActor>, usize)> = self
            .keys
            .values()
            .map(|e| {
                (
                    e.spec.clone(),
                    e.addr.clone(),
                    self.queue.iter().filter(|w| w.wants(e)).count(),
                )
            })
            .collect();
        Box::pin(async move {
            let mut out = Vec::with_capacity(keys.len());
            for (spec, addr, queue_depth) in keys {
                if let Ok(snapshot) = addr.send(GetSnapshot).await {
                    out.push(KeyState {
                        spec,
                        snapshot,
                        queue_depth,
                    });
                }
            }
            out.sort_by_key(|k| k.spec.key_id);
            out
        })
    }
}

impl Handler<QueueDepth> for Router {
    type Result = MessageResult<QueueDepth>;

    fn handle(&mut self, _msg: QueueDepth, _ctx: &mut Context<Self>) -> Self::Result {
        let mut depth = HashMap::new();
        for w in &self.queue {
            *depth.entry(w.model.clone()).or_insert(0) += 1;
        }
        MessageResult(depth)
    }
}

impl Handler<RestoreKey> for Router {
    type Result = ();

    fn handle(&mut self, msg: RestoreKey, _ctx: &mut Context<Self>) {
        if let Some(entry) = self.keys.get(&msg.0) {
            entry.addr.do_send(Restore);
        }
    }
}
