//! The wait queue and the choice of key, as pure logic driven by an explicit
//! `now`; the [`Router`](crate::Router) actor only wraps it and talks to the keys.
//!
//! Waiting requests take fair turns: between users by start-time fair queueing
//! (each user's turns spaced by the inverse of its weight, a newcomer starting at
//! the current virtual time, so nobody banks credit while idle), and within a user
//! between its tokens the same way. A user alone gets the whole pool: turns only
//! decide who goes first when several wait. Within a token, each model has its own
//! queue, so a request for a saturated model does not hold up one for a free model.
//!
//! Per-user and per-token limits are budgets like a key's (a sliding window of
//! requests and tokens, and concurrency): a request whose tenant is at its limit
//! waits like one whose keys are busy.
//!
//! Work per decision is bounded by the keys of the models that have waiters and by
//! the queue heads looked at before one can go — never every waiter × every key.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::budget::{Binding, BudgetPolicy, End, KeyBudget, Limits, Readiness};
use crate::key::{KeySnapshot, KeySpec};
use crate::shared::Budget;

/// A waiting request's id.
pub type WaiterId = u64;

/// One turn, in virtual time; a user's turns are spaced by `TURN / weight`.
const TURN: u64 = 1 << 20;

/// Who a request is for, as fair turns and tenant limits see it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tenant {
    /// The user; 0 for Sluice's own requests (health probes, key tests).
    pub user_id: i64,
    /// The user's share of the pool against other users (its group's weight; at least 1).
    pub weight: u32,
    /// The user's own limits (0 = none).
    pub user_limits: Limits,
    /// The `sk-` token; 0 for none.
    pub token_id: i64,
    /// The token's limits (0 = none).
    pub token_limits: Limits,
}

/// A request asking to wait for a key.
#[derive(Clone, Debug)]
pub struct WaitRequest {
    /// Model requested (client name).
    pub model: String,
    /// Estimated tokens.
    pub tokens: u64,
    /// The caller's user group (channels may be limited to some groups).
    pub group: String,
    /// Whose request it is.
    pub tenant: Tenant,
    /// Only this key (testing a key), ignoring groups.
    pub only_key: Option<i64>,
    /// A health probe: may use a key health checks disabled, ignoring its backoff.
    pub probe: bool,
    /// Keys already tried that must not be used again.
    pub exclude: Vec<i64>,
    /// When to give up.
    pub deadline: Instant,
}

/// Which tenant limit held a request back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantLimit {
    /// The user's own limit.
    User(Binding),
    /// The token's limit.
    Token(Binding),
}

/// What the router should do next.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Ask this key to admit this waiter now.
    Try {
        /// The waiter.
        waiter: WaiterId,
        /// The key.
        key_id: i64,
    },
    /// The waiter's deadline passed; answer it with a wait error.
    Expired {
        /// The waiter.
        waiter: WaiterId,
        /// Its model.
        model: String,
        /// How long it waited.
        waited: Duration,
        /// When a slot is expected.
        retry_after: Duration,
        /// Set when its own tenant limit, not the keys, held it back.
        limited_by: Option<TenantLimit>,
    },
    /// No key can serve it any more (disabled, removed, or every one tried).
    NoKeys {
        /// The waiter.
        waiter: WaiterId,
        /// Its model.
        model: String,
        /// Why.
        reason: String,
    },
    /// Nothing can go now; look again at `wake` (or when something changes).
    Idle {
        /// The next instant something becomes possible, if time alone brings it.
        wake: Option<Instant>,
    },
}

/// A waiter that got its key.
#[derive(Debug)]
pub struct Granted {
    /// What it asked for.
    pub request: WaitRequest,
    /// How long it waited.
    pub waited: Duration,
    /// Whether tenant budgets counted it (then report its end with
    /// [`Scheduler::tenant_finished`]).
    pub tenant_counted: bool,
}

struct Candidate {
    spec: Arc<KeySpec>,
    snapshot: KeySnapshot,
    /// Per-model "not before" learned from refused admissions (model limits, TPM).
    hints: HashMap<String, Instant>,
}

impl Candidate {
    fn usable(&self, probe: bool) -> bool {
        self.spec.disabled.is_none() && (!self.snapshot.health_disabled || probe)
    }

    fn serves(&self, w: &WaitRequest) -> bool {
        match w.only_key {
            Some(id) => self.spec.key_id == id,
            None => self.spec.serves_group(&w.group) && self.spec.models.iter().any(|m| m == &w.model),
        }
    }

    /// When it could take a request for `model`.
    fn ready_at(&self, model: &str, probe: bool, now: Instant) -> Option<Instant> {
        let readiness = if probe {
            self.snapshot.probe_readiness
        } else {
            self.snapshot.readiness
        };
        let at = readiness.instant(now)?;
        Some(self.hints.get(model).map_or(at, |h| at.max(*h)))
    }

    /// Higher is better: the highest tier, then the least used for its weight,
    /// so load spreads and a key with stuck requests is passed over.
    fn score(&self) -> (i32, i64) {
        let s = &self.snapshot;
        let load = (u64::from(s.requests_in_window) + u64::from(s.in_flight)) * 1000
            / u64::from(self.spec.weight.max(1));
        (self.spec.priority, -(load as i64))
    }
}

/// Fair-turn bookkeeping of one user or one token.
#[derive(Default)]
struct Turns {
    /// Virtual start of its next turn.
    start: u64,
    /// Virtual end of its last turn.
    finish: u64,
    /// Requests waiting.
    backlog: usize,
}

#[derive(Default)]
struct TokenQueue {
    turns: Turns,
    /// Waiters per model, oldest first.
    models: HashMap<String, VecDeque<WaiterId>>,
}

#[derive(Default)]
struct UserQueue {
    turns: Turns,
    weight: u32,
    tokens: HashMap<i64, TokenQueue>,
    /// Backlogged tokens by the start of their next turn.
    order: BTreeSet<(u64, i64)>,
    /// Start of the token turn served last: the user's own virtual time.
    vtime: u64,
}

/// What a model's keys can do at the instant of one pass.
struct ModelNow {
    ready: Vec<i64>,
    soonest: Option<Instant>,
}

struct Waiting {
    request: WaitRequest,
    enqueued: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum TenantKey {
    User(i64),
    Token(i64),
}

/// The wait queue and every key's latest state.
pub struct Scheduler {
    policy: BudgetPolicy,
    keys: HashMap<i64, Candidate>,
    /// Keys serving each model (in any state).
    by_model: HashMap<String, Vec<i64>>,
    waiters: HashMap<WaiterId, Waiting>,
    deadlines: BTreeSet<(Instant, WaiterId)>,
    users: HashMap<i64, UserQueue>,
    /// Backlogged users by the start of their next turn.
    order: BTreeSet<(u64, i64)>,
    /// Start of the user turn served last.
    vtime: u64,
    /// Budgets of users and tokens that have limits.
    tenants: HashMap<TenantKey, KeyBudget>,
    /// "Not before" for tenants whose shared windows (other replicas' requests
    /// counted too) refused.
    tenant_hints: HashMap<TenantKey, Instant>,
    /// Grants counted in tenant budgets: permit → tenant.
    counted: HashMap<u64, (i64, i64)>,
    waiting_per_model: HashMap<String, usize>,
    /// Set when keys changed in a way that may leave waiters with none.
    sweep: bool,
    next_id: WaiterId,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(policy: BudgetPolicy) -> Self {
        Scheduler {
            policy,
            keys: HashMap::new(),
            by_model: HashMap::new(),
            waiters: HashMap::new(),
            deadlines: BTreeSet::new(),
            users: HashMap::new(),
            order: BTreeSet::new(),
            vtime: 0,
            tenants: HashMap::new(),
            tenant_hints: HashMap::new(),
            counted: HashMap::new(),
            waiting_per_model: HashMap::new(),
            sweep: false,
            next_id: 1,
        }
    }

    /// Add or replace a key with its current state.
    pub fn put_key(&mut self, spec: Arc<KeySpec>, snapshot: KeySnapshot) {
        let id = spec.key_id;
        let hints = match self.keys.remove(&id) {
            Some(old) if *old.spec == *spec => old.hints,
            Some(old) => {
                self.unindex(&old.spec);
                HashMap::new()
            }
            None => HashMap::new(),
        };
        if !self.keys.contains_key(&id) {
            for m in &spec.models {
                let ids = self.by_model.entry(m.clone()).or_default();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        self.keys.insert(
            id,
            Candidate {
                spec,
                snapshot,
                hints,
            },
        );
        self.sweep = true;
    }

    /// Forget a key (it was removed).
    pub fn remove_key(&mut self, key_id: i64) {
        if let Some(old) = self.keys.remove(&key_id) {
            self.unindex(&old.spec);
            self.sweep = true;
        }
    }

    fn unindex(&mut self, spec: &KeySpec) {
        for m in &spec.models {
            if let Some(ids) = self.by_model.get_mut(m) {
                ids.retain(|k| *k != spec.key_id);
                if ids.is_empty() {
                    self.by_model.remove(m);
                }
            }
        }
    }

    /// Every key now known.
    pub fn key_ids(&self) -> Vec<i64> {
        self.keys.keys().copied().collect()
    }

    /// A key's settings, if known.
    pub fn spec(&self, key_id: i64) -> Option<&Arc<KeySpec>> {
        self.keys.get(&key_id).map(|c| &c.spec)
    }

    /// A key's latest state, if known.
    pub fn snapshot(&self, key_id: i64) -> Option<KeySnapshot> {
        self.keys.get(&key_id).map(|c| c.snapshot.clone())
    }

    /// How long a waiter has waited by `now`.
    pub fn waited(&self, waiter: WaiterId, now: Instant) -> Duration {
        self.waiters
            .get(&waiter)
            .map_or(Duration::ZERO, |w| now.saturating_duration_since(w.enqueued))
    }

    /// What a waiter asked for.
    pub fn request(&self, waiter: WaiterId) -> Option<&WaitRequest> {
        self.waiters.get(&waiter).map(|w| &w.request)
    }

    /// A key reported its state.
    pub fn update_key(&mut self, snapshot: KeySnapshot) {
        if let Some(c) = self.keys.get_mut(&snapshot.key_id) {
            if c.snapshot.health_disabled != snapshot.health_disabled {
                self.sweep = true;
            }
            c.snapshot = snapshot;
        }
    }

    /// A key refused an admission for `model` until `at`.
    pub fn refused(&mut self, key_id: i64, model: &str, at: Instant) {
        if let Some(c) = self.keys.get_mut(&key_id) {
            c.hints.insert(model.to_string(), at);
        }
    }

    /// The user's and token's own limits of `waiter`'s request, where it has
    /// any (what replicas must count together).
    pub fn tenant_limits(&self, waiter: WaiterId) -> Vec<(Budget, Limits)> {
        let Some(w) = self.waiters.get(&waiter) else {
            return Vec::new();
        };
        tenant_budgets(&w.request.tenant)
            .into_iter()
            .filter(|(_, limits)| *limits != Limits::default())
            .map(|(key, limits)| match key {
                TenantKey::User(id) => (Budget::User(id), limits),
                TenantKey::Token(id) => (Budget::Token(id), limits),
            })
            .collect()
    }

    /// The shared windows of a user's or token's own limits have no room before `at`.
    pub fn tenant_refused(&mut self, budget: Budget, at: Instant) {
        let key = match budget {
            Budget::User(id) => TenantKey::User(id),
            Budget::Token(id) => TenantKey::Token(id),
            Budget::Key(_) => return,
        };
        if let Some(stale) = at.checked_sub(self.policy.window) {
            self.tenant_hints.retain(|_, hint| *hint > stale);
        }
        self.tenant_hints.insert(key, at);
    }

    /// Forget what a key's refusals said: room freed on it early.
    pub fn clear_hints(&mut self, key_id: i64) {
        if let Some(c) = self.keys.get_mut(&key_id) {
            c.hints.clear();
        }
    }

    /// Requests waiting now, per model.
    pub fn waiting_per_model(&self) -> &HashMap<String, usize> {
        &self.waiting_per_model
    }

    /// Requests waiting now that this key could serve (by model; groups aside).
    pub fn queue_depth(&self, key_id: i64) -> usize {
        self.keys.get(&key_id).map_or(0, |c| {
            c.spec
                .models
                .iter()
                .map(|m| self.waiting_per_model.get(m).copied().unwrap_or(0))
                .sum()
        })
    }

    /// Requests waiting in all.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Queue a request; refused at once (with the reason) when no key could ever serve it.
    pub fn enqueue(&mut self, request: WaitRequest, now: Instant) -> Result<WaiterId, String> {
        let id = self.next_id;
        self.next_id += 1;
        self.enqueue_as(id, request, now).map(|()| id)
    }

    /// [`Scheduler::enqueue`] under an id the caller chose (unique among waiters).
    pub fn enqueue_as(&mut self, id: WaiterId, request: WaitRequest, now: Instant) -> Result<(), String> {
        if let Some(reason) = self.unservable(&request) {
            return Err(reason);
        }
        let (user_id, token_id) = (request.tenant.user_id, request.tenant.token_id);
        let weight = request.tenant.weight.max(1);
        *self.waiting_per_model.entry(request.model.clone()).or_default() += 1;
        self.deadlines.insert((request.deadline, id));
        let model = request.model.clone();
        self.waiters.insert(
            id,
            Waiting {
                request,
                enqueued: now,
            },
        );

        let vtime = self.vtime;
        let user = self.users.entry(user_id).or_default();
        user.weight = weight;
        if user.turns.backlog == 0 {
            user.turns.start = user.turns.finish.max(vtime);
            self.order.insert((user.turns.start, user_id));
        }
        user.turns.backlog += 1;
        let user_vtime = user.vtime;
        let token = user.tokens.entry(token_id).or_default();
        if token.turns.backlog == 0 {
            token.turns.start = token.turns.finish.max(user_vtime);
            user.order.insert((token.turns.start, token_id));
        }
        token.turns.backlog += 1;
        token.models.entry(model).or_default().push_back(id);
        Ok(())
    }

    /// Why no key could ever serve `w`, if none could.
    fn unservable(&self, w: &WaitRequest) -> Option<String> {
        let candidates: Vec<&Candidate> = match w.only_key {
            Some(id) => self.keys.get(&id).into_iter().collect(),
            None => self
                .by_model
                .get(&w.model)
                .into_iter()
                .flatten()
                .filter_map(|id| self.keys.get(id))
                .filter(|c| c.serves(w))
                .collect(),
        };
        let untried: Vec<&&Candidate> = candidates
            .iter()
            .filter(|c| !w.exclude.contains(&c.spec.key_id))
            .collect();
        if untried.iter().any(|c| c.usable(w.probe)) {
            return None;
        }
        let mut reasons: Vec<String> = untried
            .iter()
            .filter_map(|c| c.snapshot.disabled.clone().or_else(|| c.spec.disabled.clone()))
            .collect();
        reasons.sort();
        reasons.dedup();
        Some(if !reasons.is_empty() {
            format!("every key serving it is disabled ({})", reasons.join("; "))
        } else if candidates.is_empty() {
            "no key serves it".into()
        } else {
            "every key serving it was tried".into()
        })
    }

    /// Take a waiter out (its client left, or it was answered).
    pub fn cancel(&mut self, waiter: WaiterId) -> Option<WaitRequest> {
        let Waiting { request, .. } = self.waiters.remove(&waiter)?;
        self.deadlines.remove(&(request.deadline, waiter));
        if let Some(n) = self.waiting_per_model.get_mut(&request.model) {
            *n -= 1;
            if *n == 0 {
                self.waiting_per_model.remove(&request.model);
            }
        }
        let (user_id, token_id) = (request.tenant.user_id, request.tenant.token_id);
        let user = self.users.get_mut(&user_id).expect("a waiter's user is queued");
        let token = user
            .tokens
            .get_mut(&token_id)
            .expect("a waiter's token is queued");
        if let Some(queue) = token.models.get_mut(&request.model) {
            queue.retain(|id| *id != waiter);
            if queue.is_empty() {
                token.models.remove(&request.model);
            }
        }
        token.turns.backlog -= 1;
        if token.turns.backlog == 0 {
            user.order.remove(&(token.turns.start, token_id));
        }
        user.turns.backlog -= 1;
        if user.turns.backlog == 0 {
            self.order.remove(&(user.turns.start, user_id));
        }
        Some(request)
    }

    /// What to do next.
    pub fn next(&mut self, now: Instant) -> Decision {
        if let Some(decision) = self.next_expired(now).or_else(|| self.next_unservable()) {
            return decision;
        }
        let mut wake = self.deadlines.first().map(|(at, _)| *at);
        let mut soonest = |at: Instant| wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
        let mut ready: HashMap<String, ModelNow> = HashMap::new();
        let users: Vec<(u64, i64)> = self.order.iter().copied().collect();
        for (_, user_id) in users {
            let user = &self.users[&user_id];
            let tokens: Vec<(u64, i64)> = user.order.iter().copied().collect();
            for (_, token_id) in tokens {
                let token = &self.users[&user_id].tokens[&token_id];
                let heads: Vec<WaiterId> = token.models.values().filter_map(|q| q.front().copied()).collect();
                // A token's waiters share its limits, and its owner's: check them once.
                let Some(first) = heads
                    .iter()
                    .filter_map(|id| self.waiters.get(id))
                    .map(|w| &w.request)
                    .next()
                else {
                    continue;
                };
                let tenant = first.tenant.clone();
                if let Some(at) = self.tenant_blocked(&tenant, first.tokens, now) {
                    if let Some(at) = at {
                        soonest(at);
                    }
                    continue;
                }
                let mut heads: Vec<(Instant, WaiterId)> = heads
                    .into_iter()
                    .map(|id| (self.waiters[&id].enqueued, id))
                    .collect();
                heads.sort();
                for (_, waiter) in heads {
                    match self.key_for(waiter, now, &mut ready) {
                        Ok(key_id) => return Decision::Try { waiter, key_id },
                        Err(Some(at)) => soonest(at),
                        Err(None) => {}
                    }
                }
            }
        }
        Decision::Idle { wake }
    }

    fn next_expired(&mut self, now: Instant) -> Option<Decision> {
        let &(deadline, waiter) = self.deadlines.first()?;
        if deadline > now {
            return None;
        }
        let enqueued = self.waiters.get(&waiter)?.enqueued;
        let request = self.cancel(waiter)?;
        let limited_by = self.tenant_limit(&request.tenant, request.tokens, now);
        let retry_after = match limited_by {
            Some(_) => self
                .tenant_blocked(&request.tenant, request.tokens, now)
                .flatten()
                .map(|at| at - now),
            None => self.keys_free_in(&request, now),
        }
        .unwrap_or(self.policy.window)
        .max(Duration::from_secs(1));
        Some(Decision::Expired {
            waiter,
            model: request.model,
            waited: now.saturating_duration_since(enqueued),
            retry_after,
            limited_by,
        })
    }

    fn next_unservable(&mut self) -> Option<Decision> {
        if !self.sweep {
            return None;
        }
        let found = self
            .waiters
            .iter()
            .find_map(|(id, w)| self.unservable(&w.request).map(|reason| (*id, reason)));
        match found {
            Some((waiter, reason)) => {
                let model = self.cancel(waiter).map(|r| r.model).unwrap_or_default();
                Some(Decision::NoKeys {
                    waiter,
                    model,
                    reason,
                })
            }
            None => {
                self.sweep = false;
                None
            }
        }
    }

    /// When the keys of a request's model are expected to have room.
    fn keys_free_in(&self, w: &WaitRequest, now: Instant) -> Option<Duration> {
        self.by_model
            .get(&w.model)
            .into_iter()
            .flatten()
            .filter_map(|id| self.keys.get(id))
            .filter_map(|c| c.ready_at(&w.model, false, now))
            .min()
            .map(|at| at - now)
    }

    /// `None` when the tenant may send now; else `Some(when)` (`Some(None)`:
    /// when a request of its own ends).
    fn tenant_blocked(&mut self, tenant: &Tenant, tokens: u64, now: Instant) -> Option<Option<Instant>> {
        let mut blocked: Option<Option<Instant>> = None;
        for (key, limits) in tenant_budgets(tenant) {
            if let Some(at) = self.tenant_hints.get(&key).filter(|at| **at > now) {
                if limits != Limits::default() {
                    blocked = Some(Some(blocked.flatten().map_or(*at, |b| b.max(*at))));
                }
            }
            let Some(budget) = self.budget(key, limits) else {
                continue;
            };
            match budget.readiness(now, tokens) {
                Readiness::Now => {}
                Readiness::At(at) => blocked = Some(Some(blocked.flatten().map_or(at, |b| b.max(at)))),
                Readiness::WhenSlotFrees => blocked = Some(None),
            }
        }
        blocked
    }

    /// Which tenant limit holds a request back now, if one does.
    fn tenant_limit(&mut self, tenant: &Tenant, tokens: u64, now: Instant) -> Option<TenantLimit> {
        for (key, limits) in tenant_budgets(tenant) {
            if limits != Limits::default() && self.tenant_hints.get(&key).is_some_and(|at| *at > now) {
                // The shared windows refused: name the limit it has.
                let binding = if limits.rpm > 0 {
                    Binding::Requests(limits.rpm)
                } else if limits.tpm > 0 {
                    Binding::Tokens(limits.tpm)
                } else {
                    Binding::Concurrency(limits.max_concurrency)
                };
                return Some(match key {
                    TenantKey::User(_) => TenantLimit::User(binding),
                    TenantKey::Token(_) => TenantLimit::Token(binding),
                });
            }
            let Some(budget) = self.budget(key, limits) else {
                continue;
            };
            if let Some(binding) = budget.binding(now, tokens) {
                return Some(match key {
                    TenantKey::User(_) => TenantLimit::User(binding),
                    TenantKey::Token(_) => TenantLimit::Token(binding),
                });
            }
        }
        None
    }

    /// The budget of a tenant with limits, created on first use and kept in step
    /// with its limits; `None` when it has none.
    fn budget(&mut self, key: TenantKey, limits: Limits) -> Option<&mut KeyBudget> {
        if limits == Limits::default() {
            return self.tenants.get_mut(&key);
        }
        let policy = self.policy;
        let budget = self
            .tenants
            .entry(key)
            .or_insert_with(|| KeyBudget::new(limits, policy));
        if budget.configured() != limits {
            budget.set_limits(limits);
        }
        Some(budget)
    }

    /// The key `waiter` should try now, or when one could take it (`None`: only
    /// when a request ends). What a model's keys can do now is worked out once per
    /// pass, so a pass costs the keys of the waiting models plus the heads looked at.
    fn key_for(
        &self,
        waiter: WaiterId,
        now: Instant,
        models: &mut HashMap<String, ModelNow>,
    ) -> Result<i64, Option<Instant>> {
        let w = &self.waiters[&waiter].request;
        if let Some(id) = w.only_key {
            let c = self.keys.get(&id).filter(|c| c.usable(w.probe)).ok_or(None)?;
            return match c.ready_at(&w.model, w.probe, now) {
                Some(at) if at <= now => Ok(id),
                other => Err(other),
            };
        }
        let model = models
            .entry(w.model.clone())
            .or_insert_with(|| self.model_now(&w.model, now));
        let best = model
            .ready
            .iter()
            .filter_map(|id| self.keys.get(id))
            .filter(|c| c.serves(w) && !w.exclude.contains(&c.spec.key_id))
            .max_by_key(|c| c.score());
        match best {
            Some(c) => Ok(c.spec.key_id),
            None => Err(model.soonest),
        }
    }

    /// The usable keys of `model` that can take a request now, and the soonest
    /// instant one of the others can (over all of them, whatever a waiter's group
    /// or tried keys: a wake-up too early costs a look, one too late a wait).
    fn model_now(&self, model: &str, now: Instant) -> ModelNow {
        let mut ready = Vec::new();
        let mut soonest: Option<Instant> = None;
        for id in self.by_model.get(model).into_iter().flatten() {
            let c = &self.keys[id];
            if !c.usable(false) {
                continue;
            }
            match c.ready_at(model, false, now) {
                Some(at) if at <= now => ready.push(*id),
                Some(at) => soonest = Some(soonest.map_or(at, |s| s.min(at))),
                None => {}
            }
        }
        ModelNow { ready, soonest }
    }

    /// The key admitted `waiter` on `permit`: it leaves the queue, its user and
    /// token take their turn, and tenant budgets count it.
    pub fn grant(&mut self, waiter: WaiterId, permit: u64, now: Instant) -> Option<Granted> {
        let enqueued = self.waiters.get(&waiter)?.enqueued;
        let (user_id, token_id) = {
            let t = &self.waiters[&waiter].request.tenant;
            (t.user_id, t.token_id)
        };
        // The turn is taken before leaving the queue, so the tags it advances are the ones served.
        self.take_turn(user_id, token_id);
        let request = self.cancel(waiter)?;
        let mut tenant_counted = false;
        for (key, limits) in tenant_budgets(&request.tenant) {
            if let Some(budget) = self.budget(key, limits) {
                budget.record(now, permit, request.tokens);
                tenant_counted = true;
            }
        }
        if tenant_counted {
            self.counted.insert(permit, (user_id, token_id));
        }
        Some(Granted {
            waited: now.saturating_duration_since(enqueued),
            request,
            tenant_counted,
        })
    }

    fn take_turn(&mut self, user_id: i64, token_id: i64) {
        let Some(user) = self.users.get_mut(&user_id) else {
            return;
        };
        self.order.remove(&(user.turns.start, user_id));
        self.vtime = user.turns.start;
        user.turns.finish = user.turns.start + TURN / u64::from(user.weight.max(1));
        user.turns.start = user.turns.finish;
        self.order.insert((user.turns.start, user_id));
        if let Some(token) = user.tokens.get_mut(&token_id) {
            user.order.remove(&(token.turns.start, token_id));
            user.vtime = token.turns.start;
            token.turns.finish = token.turns.start + TURN;
            token.turns.start = token.turns.finish;
            user.order.insert((token.turns.start, token_id));
        }
    }

    /// A request counted in tenant budgets ended: `tokens` is its real usage when
    /// known; `sent` false when it never went out (it then does not count).
    pub fn tenant_finished(&mut self, permit: u64, tokens: Option<u64>, sent: bool) {
        let Some((user_id, token_id)) = self.counted.remove(&permit) else {
            return;
        };
        for key in [TenantKey::User(user_id), TenantKey::Token(token_id)] {
            if let Some(budget) = self.tenants.get_mut(&key) {
                budget.finish(permit, End::reported(sent, tokens));
            }
        }
    }
}

/// The budgets that apply to a tenant: its user's and its token's.
fn tenant_budgets(tenant: &Tenant) -> [(TenantKey, Limits); 2] {
    [
        (TenantKey::User(tenant.user_id), tenant.user_limits),
        (TenantKey::Token(tenant.token_id), tenant.token_limits),
    ]
}

#[cfg(test)]
mod tests;
