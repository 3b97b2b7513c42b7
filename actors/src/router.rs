//! `Router`: the actor around the [`Scheduler`]. It owns the key actors, hands
//! waiting requests to keys in the order the scheduler decides, and keeps each
//! key's latest state. A key's answer to `Acquire` is the final word on its budget.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use sea_orm::DatabaseConnection;
use tokio::sync::oneshot;

use crate::budget::{BudgetPolicy, End, Limits};
use crate::key::{
    Acquire, AcquireReply, Finish, GetSnapshot, KeyActor, KeySnapshot, KeySpec, Outcome, Reconfigure,
    Restore, SharedChanged,
};
use crate::permit::{Permit, Ticket};
use crate::scheduler::{Decision, Scheduler, TenantLimit, WaitRequest, WaiterId};
use crate::shared::{self, Budget, KeyEvent, SharedWindows};

/// How soon a request refused by a user's or token's concurrency limit, all
/// replicas together, asks again (another replica's request ending is not
/// announced).
const TENANT_SLOT_RECHECK: Duration = Duration::from_millis(500);

/// How an admission went: a tenant's shared windows refused, or the key answered
/// (with the tenant windows that counted it).
enum Admission {
    TenantRefused(Budget, Duration),
    Key(Result<AcquireReply, MailboxError>, Vec<(Budget, Limits)>),
}

/// Take a request back out of the tenant windows that counted it.
async fn give_back(shared: &SharedWindows, counted: &[(Budget, Limits)], permit: u64) {
    for (budget, _) in counted {
        if let Err(e) = shared.finish(*budget, None, permit, End::Unsent).await {
            tracing::warn!(?budget, error = %e, "could not give back a tenant's admission");
        }
    }
}

pub use crate::scheduler::Tenant;

/// One request asking for a key: what [`route`] queues.
#[derive(Clone, Debug)]
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
    /// Whose request it is: fair turns and tenant limits.
    pub tenant: Tenant,
    /// Only this key (testing a key), ignoring groups.
    pub only_key: Option<i64>,
    /// A health probe: may use a key health checks disabled.
    pub probe: bool,
}

/// Queue a request (sent by [`route`]); the answer goes to `answer`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Queue {
    /// The waiter's id, chosen by the caller.
    pub waiter: WaiterId,
    /// What it asks for.
    pub route: Route,
    /// Where the permit (or the refusal) goes.
    pub answer: oneshot::Sender<Result<Permit, RouteError>>,
}

/// Waiter ids, unique in the process.
static NEXT_WAITER: AtomicU64 = AtomicU64::new(1);

/// Ask `router` for a key for one request: one message, no reply to wait for;
/// the ticket resolves to the permit, or to why there is none.
pub fn route(router: &Addr<Router>, route: Route) -> Ticket {
    let waiter = NEXT_WAITER.fetch_add(1, Ordering::Relaxed);
    let (answer, rx) = oneshot::channel();
    // A router that is gone drops the message, and with it `answer`: the
    // ticket then resolves to `Shutdown`.
    let queue = Queue {
        waiter,
        route,
        answer,
    };
    let to = router.clone();
    crate::courier::deliver(move || to.do_send(queue));
    Ticket {
        waiter,
        rx: Some(rx),
        router: router.clone(),
    }
}

/// A waiting request's client left: give its place back.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CancelWait(pub WaiterId);

/// A request that tenant budgets counted ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TenantFinished {
    /// Its permit.
    pub permit: u64,
    /// Real tokens used, when known.
    pub tokens: Option<u64>,
    /// Whether it went out at all.
    pub sent: bool,
}

/// A key's state changed (sent by key actors).
#[derive(Message)]
#[rtype(result = "()")]
pub struct KeyChanged(pub KeySnapshot);

/// Replace the set of keys: new ones start, changed ones are reconfigured,
/// missing ones stop once their in-flight requests end.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetKeys {
    /// Every key.
    pub keys: Vec<KeySpec>,
}

/// Clear a key's health disable (forwarded to its actor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RestoreKey(pub i64);

/// An event on the deployment's key channel (cluster mode): another replica
/// freed room on a key, or learned its lower limits.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SharedKeyEvent(pub KeyEvent);

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
        /// Set when the caller's own limit, not the keys, held it back.
        limited_by: Option<TenantLimit>,
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

/// The actor that queues requests and assigns them to keys.
pub struct Router {
    sched: Scheduler,
    keys: HashMap<i64, Addr<KeyActor>>,
    /// Where each waiter's answer goes.
    answers: HashMap<WaiterId, oneshot::Sender<Result<Permit, RouteError>>>,
    policy: BudgetPolicy,
    db: Option<DatabaseConnection>,
    /// The windows replicas share, in cluster mode.
    shared: Option<SharedWindows>,
    /// Permits a user's or token's shared windows counted, to settle there.
    tenants_shared: HashMap<u64, Vec<(Budget, Limits)>>,
    next_permit: u64,
    acquiring: bool,
    wake: Option<(Instant, SpawnHandle)>,
}

impl Router {
    /// A router with no keys; send [`SetKeys`] to give it some. With `shared`,
    /// its keys' budgets are shared with the other replicas.
    pub fn new(policy: BudgetPolicy, db: Option<DatabaseConnection>, shared: Option<SharedWindows>) -> Self {
        Router {
            sched: Scheduler::new(policy),
            keys: HashMap::new(),
            answers: HashMap::new(),
            policy,
            db,
            shared,
            tenants_shared: HashMap::new(),
            next_permit: 1,
            acquiring: false,
            wake: None,
        }
    }

    fn answer(&mut self, waiter: WaiterId, result: Result<Permit, RouteError>) {
        if let Some(tx) = self.answers.remove(&waiter) {
            // A client that left meanwhile drops the permit, which gives it back.
            let _ = tx.send(result);
        }
    }

    /// Carry out the scheduler's decisions until nothing can go; then sleep until
    /// the next window edge or deadline. One `Acquire` is in flight at a time.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if self.acquiring {
            return;
        }
        let now = Instant::now();
        loop {
            match self.sched.next(now) {
                Decision::Try { waiter, key_id } => {
                    if self.answers.get(&waiter).is_none_or(|tx| tx.is_closed()) {
                        self.answers.remove(&waiter);
                        self.sched.cancel(waiter);
                        continue;
                    }
                    self.acquire(waiter, key_id, ctx);
                    return;
                }
                Decision::Expired {
                    waiter,
                    model,
                    waited,
                    retry_after,
                    limited_by,
                } => {
                    self.answer(
                        waiter,
                        Err(RouteError::WaitExceeded {
                            model,
                            waited,
                            retry_after,
                            limited_by,
                        }),
                    );
                }
                Decision::NoKeys {
                    waiter,
                    model,
                    reason,
                } => {
                    self.answer(waiter, Err(RouteError::NoKeys { model, reason }));
                }
                Decision::Idle { wake } => {
                    if let Some(at) = wake {
                        self.wake_at(at, ctx);
                    }
                    return;
                }
            }
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

    fn acquire(&mut self, waiter: WaiterId, key_id: i64, ctx: &mut Context<Self>) {
        let Some(addr) = self.keys.get(&key_id).cloned() else {
            self.sched.remove_key(key_id);
            return self.dispatch(ctx);
        };
        let permit = self.next_permit;
        self.next_permit += 1;
        let (model, tokens, probe) = self
            .sched
            .request(waiter)
            .map(|r| (r.model.clone(), r.tokens, r.probe))
            .expect("a waiter the scheduler chose is queued");
        // With replicas, a user's and token's own limits count every replica's
        // requests: their shared windows admit first, then the key.
        let tenants = match &self.shared {
            Some(_) => self.sched.tenant_limits(waiter),
            None => Vec::new(),
        };
        let shared = self.shared.clone().filter(|_| !tenants.is_empty());
        self.acquiring = true;
        let msg = Acquire {
            permit,
            model: model.clone(),
            tokens,
            probe,
            waited: self.sched.waited(waiter, Instant::now()),
        };
        let steps = async move {
            let mut counted = Vec::new();
            if let Some(shared) = &shared {
                for (budget, limits) in tenants {
                    let ask = shared::Ask {
                        budget,
                        permit,
                        tokens,
                        waited: None,
                        limits,
                        model: None,
                    };
                    match shared.acquire(ask).await {
                        Ok(answer) if answer.admitted => counted.push((budget, limits)),
                        Ok(answer) => {
                            give_back(shared, &counted, permit).await;
                            let wait = if answer.slot_full {
                                TENANT_SLOT_RECHECK
                            } else {
                                answer.key_wait
                            };
                            return Admission::TenantRefused(budget, wait);
                        }
                        // Redis away: this replica's own count of the tenant decides.
                        Err(_) => {}
                    }
                }
            }
            let reply = addr.send(msg).await;
            if !matches!(&reply, Ok(r) if r.result.is_ok()) {
                if let Some(shared) = &shared {
                    give_back(shared, &counted, permit).await;
                }
                counted.clear();
            }
            Admission::Key(reply, counted)
        };
        // `wait` holds the mailbox until the key answers, so no other message
        // can reorder the queue or overbook the key meanwhile.
        ctx.wait(steps.into_actor(self).map(move |admission, act, ctx| {
            act.acquiring = false;
            let now = Instant::now();
            match admission {
                Admission::TenantRefused(budget, wait) => act.sched.tenant_refused(budget, now + wait),
                Admission::Key(Ok(reply), counted) => {
                    act.sched.update_key(reply.snapshot);
                    match reply.result {
                        Ok(()) => {
                            if !counted.is_empty() {
                                act.tenants_shared.insert(permit, counted);
                            }
                            act.grant(waiter, key_id, permit, ctx.address(), now);
                        }
                        Err(readiness) => {
                            let at = readiness.instant(now).unwrap_or(now + act.policy.window);
                            act.sched.refused(key_id, &model, at);
                        }
                    }
                }
                Admission::Key(Err(_), _) => {
                    act.keys.remove(&key_id);
                    act.sched.remove_key(key_id);
                }
            }
            act.dispatch(ctx);
        }));
    }

    fn grant(&mut self, waiter: WaiterId, key_id: i64, permit: u64, me: Addr<Router>, now: Instant) {
        let (Some(spec), Some(key)) = (self.sched.spec(key_id).cloned(), self.keys.get(&key_id).cloned())
        else {
            return;
        };
        let Some(granted) = self.sched.grant(waiter, permit, now) else {
            // Cannot happen while `wait` holds the mailbox; give the permit back.
            key.do_send(Finish {
                permit,
                model: String::new(),
                outcome: Outcome::NotSent,
            });
            return;
        };
        let permit = Permit {
            id: permit,
            model: granted.request.model,
            spec,
            key,
            tenant: granted.tenant_counted.then(|| me.recipient()),
            sent: false,
            finished: false,
            waited: granted.waited,
        };
        self.answer(waiter, Ok(permit));
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        crate::courier::home_here();
    }
}

impl Handler<Queue> for Router {
    type Result = ();

    fn handle(&mut self, msg: Queue, ctx: &mut Context<Self>) {
        let Queue {
            waiter,
            route,
            answer,
        } = msg;
        let model = route.model.clone();
        let request = WaitRequest {
            model: route.model,
            tokens: route.tokens,
            group: route.group,
            tenant: route.tenant,
            only_key: route.only_key,
            probe: route.probe,
            exclude: route.exclude,
            deadline: route.deadline,
        };
        match self.sched.enqueue_as(waiter, request, Instant::now()) {
            Ok(()) => {
                self.answers.insert(waiter, answer);
                self.dispatch(ctx);
            }
            Err(reason) => {
                let _ = answer.send(Err(RouteError::NoKeys { model, reason }));
            }
        }
    }
}

impl Handler<CancelWait> for Router {
    type Result = ();

    fn handle(&mut self, msg: CancelWait, ctx: &mut Context<Self>) {
        self.answers.remove(&msg.0);
        if self.sched.cancel(msg.0).is_some() {
            self.dispatch(ctx);
        }
    }
}

impl Handler<TenantFinished> for Router {
    type Result = ();

    fn handle(&mut self, msg: TenantFinished, ctx: &mut Context<Self>) {
        self.sched.tenant_finished(msg.permit, msg.tokens, msg.sent);
        if let (Some(counted), Some(shared)) = (self.tenants_shared.remove(&msg.permit), self.shared.clone())
        {
            let end = End::reported(msg.sent, msg.tokens);
            // Only what changes there: a concurrency slot, unsent, or real tokens.
            let settle: Vec<Budget> = counted
                .into_iter()
                .filter(|(_, l)| {
                    l.max_concurrency > 0 || end == End::Unsent || (l.tpm > 0 && matches!(end, End::Used(_)))
                })
                .map(|(b, _)| b)
                .collect();
            let permit = msg.permit;
            ctx.spawn(
                async move {
                    for budget in settle {
                        if let Err(e) = shared.finish(budget, None, permit, end).await {
                            tracing::warn!(?budget, error = %e, "could not settle a tenant's request");
                        }
                    }
                }
                .into_actor(self),
            );
        }
        self.dispatch(ctx);
    }
}

impl Handler<KeyChanged> for Router {
    type Result = ();

    fn handle(&mut self, msg: KeyChanged, ctx: &mut Context<Self>) {
        self.sched.update_key(msg.0);
        self.dispatch(ctx);
    }
}

impl Handler<SetKeys> for Router {
    type Result = ();

    fn handle(&mut self, msg: SetKeys, ctx: &mut Context<Self>) {
        let mut wanted: HashMap<i64, KeySpec> = msg.keys.into_iter().map(|s| (s.key_id, s)).collect();
        for id in self.sched.key_ids() {
            if !wanted.contains_key(&id) {
                self.sched.remove_key(id);
                self.keys.remove(&id);
            }
        }
        for (id, spec) in wanted.drain() {
            let spec = Arc::new(spec);
            match (self.keys.get(&id), self.sched.spec(id)) {
                (Some(_), Some(current)) if **current == *spec => {}
                (Some(addr), _) => {
                    addr.do_send(Reconfigure(spec.clone()));
                    let snapshot = self.sched.snapshot(id).expect("a known key has a snapshot");
                    self.sched.put_key(spec, snapshot);
                }
                (None, _) => {
                    let recipient = ctx.address().recipient();
                    let mut actor = KeyActor::new(
                        spec.clone(),
                        self.policy,
                        recipient,
                        self.db.clone(),
                        self.shared.clone(),
                    );
                    let snapshot = actor.snapshot_now();
                    self.keys.insert(id, actor.start());
                    self.sched.put_key(spec, snapshot);
                }
            }
        }
        self.dispatch(ctx);
    }
}

impl Handler<ListKeyStates> for Router {
    type Result = ResponseFuture<Vec<KeyState>>;

    fn handle(&mut self, _msg: ListKeyStates, _ctx: &mut Context<Self>) -> Self::Result {
        let keys: Vec<(Arc<KeySpec>, Addr<KeyActor>, usize)> = self
            .keys
            .iter()
            .filter_map(|(id, addr)| {
                let spec = self.sched.spec(*id)?.clone();
                Some((spec, addr.clone(), self.sched.queue_depth(*id)))
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
        MessageResult(self.sched.waiting_per_model().clone())
    }
}

impl Handler<SharedKeyEvent> for Router {
    type Result = ();

    fn handle(&mut self, msg: SharedKeyEvent, _ctx: &mut Context<Self>) {
        let key_id = match &msg.0 {
            KeyEvent::Freed { key_id } | KeyEvent::Disabled { key_id } | KeyEvent::Learned { key_id, .. } => {
                *key_id
            }
        };
        if let KeyEvent::Freed { .. } = msg.0 {
            // What the key refused may fit now: ask it again rather than wait out the hint.
            self.sched.clear_hints(key_id);
        }
        if let Some(addr) = self.keys.get(&key_id) {
            // The key reports back (`KeyChanged`), which dispatches.
            addr.do_send(SharedChanged(msg.0));
        }
    }
}

impl Handler<RestoreKey> for Router {
    type Result = ();

    fn handle(&mut self, msg: RestoreKey, _ctx: &mut Context<Self>) {
        if let Some(addr) = self.keys.get(&msg.0) {
            addr.do_send(Restore);
        }
    }
}
