//! `Prober`: brings keys back that health checks disabled. Every interval it
//! sends a tiny request through each such key; on success the key serves
//! again. Keys an operator disabled are never touched.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;

use crate::router::{KeyState, ListKeyStates, Router};
use crate::shared::SharedWindows;

/// A boxed future the probe functions return.
pub type ProbeFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// How to test a key and bring it back; the HTTP side implements it.
pub trait KeyProbe {
    /// Send a tiny request through the key; true when the provider answered 2xx.
    fn probe(&self, key: &KeyState) -> ProbeFuture<bool>;
    /// Mark the key enabled again (database and router).
    fn restore(&self, key_id: i64) -> ProbeFuture<()>;
}

/// Run one round now; answers how many keys came back.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ProbeNow;

/// The actor that re-tests health-disabled keys.
pub struct Prober {
    router: Addr<Router>,
    probe: Rc<dyn KeyProbe>,
    interval: Duration,
    /// With replicas: only the one holding the prober's lease probes.
    shared: Option<SharedWindows>,
}

impl Prober {
    /// A prober running a round every `interval`; with `shared`, one replica
    /// at a time probes (the others would only send the same probes again).
    pub fn new(
        router: Addr<Router>,
        probe: Rc<dyn KeyProbe>,
        interval: Duration,
        shared: Option<SharedWindows>,
    ) -> Self {
        Prober {
            router,
            probe,
            interval,
            shared,
        }
    }

    fn round(&self) -> ProbeFuture<usize> {
        let router = self.router.clone();
        let probe = self.probe.clone();
        let shared = self.shared.clone();
        // Kept by every round; lapses, for another replica to take over, when
        // this one stops probing for three rounds.
        let lease = self.interval * 3;
        Box::pin(async move {
            if let Some(shared) = shared {
                // Without Redis every replica probes: duplicates are harmless,
                // a key left disabled is not.
                if let Ok(false) = shared.lease("prober", lease).await {
                    return 0;
                }
            }
            let Ok(keys) = router.send(ListKeyStates).await else {
                return 0;
            };
            let mut restored = 0;
            for key in keys {
                // Only what health checks disabled; an operator's "disabled" stays.
                if !key.snapshot.health_disabled || key.spec.disabled.is_some() {
                    continue;
                }
                if probe.probe(&key).await {
                    probe.restore(key.spec.key_id).await;
                    restored += 1;
                }
            }
            restored
        })
    }
}

impl Actor for Prober {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |act, ctx| {
            // `wait`: rounds never overlap, however slow a provider is.
            ctx.wait(act.round().into_actor(act).map(|_, _, _| ()));
        });
    }
}

impl Handler<ProbeNow> for Prober {
    type Result = AtomicResponse<Self, usize>;

    fn handle(&mut self, _msg: ProbeNow, _ctx: &mut Context<Self>) -> Self::Result {
        AtomicResponse::new(Box::pin(self.round().into_actor(self)))
    }
}
