//! The scheduler driven like the router drives it, with key budgets standing in
//! for the key actors and an explicit clock: who is served in what order.

use super::*;
use crate::budget::End;
use crate::key::ApiKey;

const WINDOW: Duration = Duration::from_secs(10);

fn policy() -> BudgetPolicy {
    BudgetPolicy {
        window: WINDOW,
        margin: Duration::ZERO,
        ..BudgetPolicy::default()
    }
}

fn spec(key_id: i64, models: &[&str], rpm: u32) -> Arc<KeySpec> {
    Arc::new(KeySpec {
        key_id,
        channel_id: 1,
        channel_name: "nim".into(),
        base_url: "http://provider.test/v1".into(),
        secret: ApiKey::new(format!("key-{key_id}")),
        models: models.iter().map(|m| m.to_string()).collect(),
        model_map: HashMap::new(),
        priority: 0,
        weight: 1,
        limits: Limits {
            rpm,
            ..Limits::default()
        },
        model_limits: HashMap::new(),
        extra_headers: Vec::new(),
        disabled: None,
        health_disabled: None,
        groups: Vec::new(),
    })
}

fn snapshot(key_id: i64, budget: &mut KeyBudget, now: Instant) -> KeySnapshot {
    let readiness = budget.readiness(now, 0);
    KeySnapshot {
        key_id,
        readiness,
        probe_readiness: readiness,
        requests_in_window: budget.requests_in_window(now),
        tokens_in_window: budget.tokens_in_window(now),
        in_flight: budget.in_flight(),
        configured: budget.configured(),
        effective_rpm: budget.effective_rpm(),
        effective_tpm: budget.effective_tpm(),
        cooldown_remaining: None,
        disabled: None,
        health_disabled: false,
        last_error: None,
        served: 0,
        rate_limited: 0,
    }
}

/// The scheduler and stand-ins for the key actors, on a clock the test moves.
struct World {
    sched: Scheduler,
    budgets: HashMap<i64, KeyBudget>,
    t0: Instant,
    now: Instant,
    permits: u64,
    /// (waiter, key) in the order granted.
    granted: Vec<(WaiterId, i64)>,
    answered: Vec<Decision>,
}

impl World {
    fn new(keys: Vec<Arc<KeySpec>>) -> World {
        let t0 = Instant::now();
        let mut w = World {
            sched: Scheduler::new(policy()),
            budgets: HashMap::new(),
            t0,
            now: t0,
            permits: 0,
            granted: Vec::new(),
            answered: Vec::new(),
        };
        for spec in keys {
            let mut budget = KeyBudget::new(spec.limits, policy());
            let snap = snapshot(spec.key_id, &mut budget, t0);
            w.budgets.insert(spec.key_id, budget);
            w.sched.put_key(spec, snap);
        }
        w
    }

    fn at(&mut self, secs: f64) {
        self.now = self.t0 + Duration::from_secs_f64(secs);
        for (id, budget) in self.budgets.iter_mut() {
            let snap = snapshot(*id, budget, self.now);
            self.sched.update_key(snap);
        }
    }

    fn wait(&mut self, user: i64, token: i64, model: &str) -> WaiterId {
        self.wait_for(
            Tenant {
                user_id: user,
                weight: 1,
                token_id: token,
                ..Tenant::default()
            },
            model,
        )
    }

    fn wait_for(&mut self, tenant: Tenant, model: &str) -> WaiterId {
        let request = WaitRequest {
            model: model.into(),
            tokens: 0,
            group: "default".into(),
            tenant,
            only_key: None,
            probe: false,
            exclude: Vec::new(),
            deadline: self.now + Duration::from_secs(300),
        };
        self.sched.enqueue(request, self.now).expect("servable")
    }

    /// Run the router's loop until nothing can go: like the key actor, a key admits
    /// when its budget has room, and each request ends at once.
    fn dispatch(&mut self) -> Option<Instant> {
        loop {
            match self.sched.next(self.now) {
                Decision::Try { waiter, key_id } => {
                    self.permits += 1;
                    let budget = self.budgets.get_mut(&key_id).unwrap();
                    match budget.admit(self.now, self.permits, 0) {
                        Ok(()) => {
                            budget.finish(self.permits, End::Sent);
                            let granted = self.sched.grant(waiter, self.permits, self.now).unwrap();
                            if granted.tenant_counted {
                                self.sched.tenant_finished(self.permits, Some(0), true);
                            }
                            self.granted.push((waiter, key_id));
                        }
                        Err(r) => {
                            let at = r.instant(self.now).unwrap_or(self.now + WINDOW);
                            self.sched.refused(key_id, "m", at);
                        }
                    }
                    let snap = snapshot(key_id, self.budgets.get_mut(&key_id).unwrap(), self.now);
                    self.sched.update_key(snap);
                }
                Decision::Idle { wake } => return wake,
                other => self.answered.push(other),
            }
        }
    }

    fn order(&self) -> Vec<WaiterId> {
        self.granted.iter().map(|(w, _)| *w).collect()
    }
}

#[test]
fn a_light_tokens_request_goes_at_the_next_free_slot_during_a_burst() {
    // Two keys × 5 a window; one user bursts 40, another asks once.
    let mut w = World::new(vec![spec(1, &["m"], 5), spec(2, &["m"], 5)]);
    let burst: Vec<WaiterId> = (0..40).map(|_| w.wait(1, 10, "m")).collect();
    w.dispatch();
    assert_eq!(w.granted.len(), 10, "the pool's whole window goes at once");
    w.at(1.0);
    let light = w.wait(2, 20, "m");
    assert_eq!(
        w.dispatch(),
        Some(w.t0 + WINDOW),
        "nothing frees before the window edge"
    );
    w.at(10.0);
    w.dispatch();
    let order = w.order();
    assert_eq!(order[10], light, "served first when slots free: {order:?}");
    assert!(order[..10].iter().all(|id| burst.contains(id)));
}

#[test]
fn a_user_alone_gets_every_key_there_is() {
    let mut w = World::new((1..=5).map(|k| spec(k, &["m"], 1)).collect());
    for _ in 0..7 {
        w.wait(1, 10, "m");
    }
    w.dispatch();
    let keys: BTreeSet<i64> = w.granted.iter().map(|(_, k)| *k).collect();
    assert_eq!(keys, (1..=5).collect(), "every key took one");
    assert_eq!(w.sched.len(), 2);
}

#[test]
fn the_tokens_of_one_user_take_turns() {
    let mut w = World::new(vec![spec(1, &["m"], 0)]);
    let a: Vec<WaiterId> = (0..3).map(|_| w.wait(1, 10, "m")).collect();
    let b: Vec<WaiterId> = (0..3).map(|_| w.wait(1, 11, "m")).collect();
    w.dispatch();
    assert_eq!(w.order(), [a[0], b[0], a[1], b[1], a[2], b[2]]);
}

#[test]
fn a_heavier_group_gets_its_weight_in_turns() {
    let mut w = World::new(vec![spec(1, &["m"], 9)]);
    let heavy = Tenant {
        user_id: 1,
        weight: 2,
        token_id: 10,
        ..Tenant::default()
    };
    let a: Vec<WaiterId> = (0..20).map(|_| w.wait_for(heavy.clone(), "m")).collect();
    let b: Vec<WaiterId> = (0..20).map(|_| w.wait(2, 20, "m")).collect();
    w.dispatch();
    let order = w.order();
    assert_eq!(order.len(), 9);
    let heavy_turns = order.iter().filter(|id| a.contains(id)).count();
    let light_turns = order.iter().filter(|id| b.contains(id)).count();
    assert_eq!((heavy_turns, light_turns), (6, 3), "{order:?}");
}

#[test]
fn a_newcomer_banks_no_credit_for_the_time_it_was_away() {
    let mut w = World::new(vec![spec(1, &["m"], 0)]);
    // User 1 was served long ago, user 2 has been busy since.
    w.wait(1, 10, "m");
    for _ in 0..5 {
        w.wait(2, 20, "m");
    }
    w.dispatch();
    for _ in 0..3 {
        w.wait(2, 20, "m");
    }
    let back = (0..3).map(|_| w.wait(1, 10, "m")).collect::<Vec<_>>();
    let busy_granted = w.granted.len();
    w.dispatch();
    let order = &w.order()[busy_granted..];
    // Alternating from now on, not user 1's three in a row.
    assert_eq!(order.len(), 6);
    assert!(!back.iter().all(|id| order[..3].contains(id)), "{order:?}");
}

#[test]
fn a_request_for_a_free_model_passes_one_for_a_saturated_model() {
    let mut w = World::new(vec![spec(1, &["busy"], 1), spec(2, &["free"], 0)]);
    w.wait(1, 10, "busy");
    w.dispatch();
    let stuck = w.wait(1, 10, "busy");
    let quick = w.wait(1, 10, "free");
    w.dispatch();
    assert_eq!(w.granted.last().unwrap(), &(quick, 2));
    assert!(!w.order().contains(&stuck));
}

#[test]
fn a_token_at_its_limit_waits_for_its_own_window_while_others_go() {
    let mut w = World::new(vec![spec(1, &["m"], 0)]);
    let limited = Tenant {
        user_id: 1,
        weight: 1,
        token_id: 10,
        token_limits: Limits {
            rpm: 2,
            ..Limits::default()
        },
        ..Tenant::default()
    };
    let own: Vec<WaiterId> = (0..3).map(|_| w.wait_for(limited.clone(), "m")).collect();
    let other = w.wait(2, 20, "m");
    let wake = w.dispatch();
    assert_eq!(
        w.order(),
        [own[0], other, own[1]],
        "the key is free; only the token's limit holds"
    );
    assert_eq!(wake, Some(w.t0 + WINDOW), "the token's window frees at its edge");
    w.at(10.0);
    w.dispatch();
    assert_eq!(w.order().last(), Some(&own[2]));
}

#[test]
fn the_limit_that_held_a_request_is_named_when_it_expires() {
    let mut w = World::new(vec![spec(1, &["m"], 0)]);
    let limited = Tenant {
        user_id: 1,
        weight: 1,
        user_limits: Limits {
            rpm: 1,
            ..Limits::default()
        },
        token_id: 10,
        ..Tenant::default()
    };
    let request = |w: &mut World, secs: u64| WaitRequest {
        model: "m".into(),
        tokens: 0,
        group: "default".into(),
        tenant: limited.clone(),
        only_key: None,
        probe: false,
        exclude: Vec::new(),
        deadline: w.now + Duration::from_secs(secs),
    };
    let first = request(&mut w, 60);
    w.sched.enqueue(first, w.now).unwrap();
    let second = request(&mut w, 2);
    w.sched.enqueue(second, w.now).unwrap();
    w.dispatch();
    w.at(2.0);
    w.dispatch();
    match &w.answered[..] {
        [Decision::Expired {
            limited_by,
            retry_after,
            ..
        }] => {
            assert_eq!(*limited_by, Some(TenantLimit::User(Binding::Requests(1))));
            assert_eq!(
                *retry_after,
                Duration::from_secs(8),
                "when the user's window frees"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_model_no_key_serves_is_refused_at_once_with_the_reason() {
    let mut w = World::new(vec![spec(1, &["m"], 0)]);
    let mut disabled = (*spec(2, &["d"], 0)).clone();
    disabled.disabled = Some("disabled by root".into());
    let snap = snapshot(2, &mut KeyBudget::new(Limits::default(), policy()), w.now);
    w.sched.put_key(Arc::new(disabled), snap);
    let ask = |model: &str, exclude: Vec<i64>| WaitRequest {
        model: model.into(),
        tokens: 0,
        group: "default".into(),
        tenant: Tenant::default(),
        only_key: None,
        probe: false,
        exclude,
        deadline: Instant::now() + WINDOW,
    };
    let now = w.now;
    assert_eq!(
        w.sched.enqueue(ask("nope", vec![]), now),
        Err("no key serves it".into())
    );
    assert_eq!(
        w.sched.enqueue(ask("m", vec![1]), now),
        Err("every key serving it was tried".into())
    );
    assert_eq!(
        w.sched.enqueue(ask("d", vec![]), now),
        Err("every key serving it is disabled (disabled by root)".into())
    );
}

#[test]
fn waiters_are_told_at_once_when_their_last_key_is_disabled() {
    let mut w = World::new(vec![spec(1, &["m"], 1)]);
    w.wait(1, 10, "m");
    w.dispatch();
    let stuck = w.wait(1, 10, "m");
    w.dispatch();
    let mut snap = snapshot(1, w.budgets.get_mut(&1).unwrap(), w.now);
    snap.health_disabled = true;
    snap.disabled = Some("6 failures in a row".into());
    w.sched.update_key(snap);
    w.dispatch();
    assert_eq!(
        w.answered,
        [Decision::NoKeys {
            waiter: stuck,
            model: "m".into(),
            reason: "every key serving it is disabled (6 failures in a row)".into()
        }]
    );
    assert!(w.sched.is_empty());
}

#[test]
fn a_probe_may_use_the_health_disabled_key_it_names() {
    let mut w = World::new(vec![spec(1, &["m"], 0)]);
    let mut snap = snapshot(1, w.budgets.get_mut(&1).unwrap(), w.now);
    snap.health_disabled = true;
    w.sched.update_key(snap);
    let probe = WaitRequest {
        model: "m".into(),
        tokens: 0,
        group: "default".into(),
        tenant: Tenant::default(),
        only_key: Some(1),
        probe: true,
        exclude: Vec::new(),
        deadline: w.now + WINDOW,
    };
    let id = w.sched.enqueue(probe, w.now).unwrap();
    assert_eq!(
        w.sched.next(w.now),
        Decision::Try {
            waiter: id,
            key_id: 1
        }
    );
}

#[test]
fn a_cancelled_waiter_leaves_no_trace() {
    let mut w = World::new(vec![spec(1, &["m"], 1)]);
    w.wait(1, 10, "m");
    w.dispatch();
    let gone = w.wait(1, 10, "m");
    assert_eq!(w.sched.waiting_per_model()["m"], 1);
    assert_eq!(w.sched.queue_depth(1), 1);
    w.sched.cancel(gone);
    assert!(w.sched.is_empty());
    assert!(w.sched.waiting_per_model().is_empty());
    assert_eq!(w.sched.next(w.now), Decision::Idle { wake: None });
}

#[test]
fn an_expired_waiter_is_answered_with_when_a_key_frees() {
    let mut w = World::new(vec![spec(1, &["m"], 1)]);
    w.wait(1, 10, "m");
    w.dispatch();
    let request = WaitRequest {
        model: "m".into(),
        tokens: 0,
        group: "default".into(),
        tenant: Tenant::default(),
        only_key: None,
        probe: false,
        exclude: Vec::new(),
        deadline: w.now + Duration::from_secs(3),
    };
    let late = w.sched.enqueue(request, w.now).unwrap();
    assert_eq!(
        w.dispatch(),
        Some(w.t0 + Duration::from_secs(3)),
        "woken at its deadline"
    );
    w.at(3.0);
    w.dispatch();
    assert_eq!(
        w.answered,
        [Decision::Expired {
            waiter: late,
            model: "m".into(),
            waited: Duration::from_secs(3),
            retry_after: Duration::from_secs(7),
            limited_by: None,
        }]
    );
}
