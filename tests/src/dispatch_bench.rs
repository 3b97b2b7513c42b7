//! What one routing decision costs as the pool and the queue grow: the
//! scheduler alone (no actors, no HTTP), with `keys` keys serving one model and
//! `waiters` requests waiting from 100 users of 2 tokens each.
//!
//! Two costs matter. While every key is at its limit, each key event (a request
//! ending, a window edge) asks "can anyone go now?" and the answer is no. When a
//! slot frees, one waiter is chosen, its key admits it, and the queue moves on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_actors::budget::{BudgetPolicy, Limits, Readiness};
use sluice_actors::key::{ApiKey, KeySnapshot, KeySpec};
use sluice_actors::scheduler::{Decision, Scheduler, Tenant, WaitRequest};

/// The cost of the two kinds of decision, per decision.
pub struct DispatchCost {
    /// Keys in the pool.
    pub keys: usize,
    /// Requests waiting.
    pub waiters: usize,
    /// "Nobody can go" with every key at its limit.
    pub saturated: Duration,
    /// Choosing a waiter for a freed slot and granting it.
    pub grant: Duration,
}

fn spec(key_id: i64) -> Arc<KeySpec> {
    Arc::new(KeySpec {
        key_id,
        channel_id: 1,
        channel_name: "bench".into(),
        base_url: "http://provider.test/v1".into(),
        secret: ApiKey::new(format!("key-{key_id}")),
        models: vec!["m".into()],
        model_map: HashMap::new(),
        priority: 0,
        weight: 1,
        limits: Limits {
            rpm: 1,
            ..Limits::default()
        },
        model_limits: HashMap::new(),
        extra_headers: Vec::new(),
        disabled: None,
        health_disabled: None,
        groups: Vec::new(),
    })
}

fn snapshot(key_id: i64, readiness: Readiness, used: u32) -> KeySnapshot {
    KeySnapshot {
        key_id,
        readiness,
        probe_readiness: readiness,
        requests_in_window: used,
        tokens_in_window: 0,
        in_flight: 0,
        configured: Limits {
            rpm: 1,
            ..Limits::default()
        },
        effective_rpm: 1,
        effective_tpm: 0,
        cooldown_remaining: None,
        disabled: None,
        health_disabled: false,
        last_error: None,
        served: 0,
        rate_limited: 0,
    }
}

/// Measure both costs for one size.
pub fn measure(keys: usize, waiters: usize) -> DispatchCost {
    let now = Instant::now();
    let full = Readiness::At(now + Duration::from_secs(60));
    let mut sched = Scheduler::new(BudgetPolicy::default());
    for k in 0..keys as i64 {
        sched.put_key(spec(k), snapshot(k, full, 1));
    }
    for i in 0..waiters {
        let user = (i % 100) as i64;
        let request = WaitRequest {
            model: "m".into(),
            tokens: 100,
            group: "default".into(),
            tenant: Tenant {
                user_id: user,
                weight: 1,
                token_id: user * 2 + (i % 2) as i64,
                ..Tenant::default()
            },
            only_key: None,
            probe: false,
            exclude: Vec::new(),
            deadline: now + Duration::from_secs(3600),
        };
        sched.enqueue(request, now).expect("servable");
    }
    // Settle the one-off sweep a new key set asks for.
    assert!(matches!(sched.next(now), Decision::Idle { .. }));

    let rounds = 200;
    let started = Instant::now();
    for _ in 0..rounds {
        assert!(matches!(sched.next(now), Decision::Idle { .. }));
    }
    let saturated = started.elapsed() / rounds;

    let grants = rounds.min(waiters as u32);
    let started = Instant::now();
    for permit in 0..grants {
        let key = i64::from(permit) % keys as i64;
        sched.update_key(snapshot(key, Readiness::Now, 0));
        match sched.next(now) {
            Decision::Try { waiter, key_id } => {
                sched.grant(waiter, u64::from(permit), now).expect("granted");
                sched.update_key(snapshot(key_id, full, 1));
            }
            other => panic!("a freed key must take a waiter: {other:?}"),
        }
    }
    let grant = started.elapsed() / grants.max(1);
    DispatchCost {
        keys,
        waiters,
        saturated,
        grant,
    }
}
