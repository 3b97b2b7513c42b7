//! The prober's hands: how a health-disabled key is tested (through the
//! router, so it counts against the key's budget) and brought back.

use std::rc::Rc;
use std::time::Duration;

use actix::{Actor, Addr};
use sluice_actors::prober::{KeyProbe, ProbeFuture, Prober};
use sluice_actors::router::KeyState;

use crate::catalog::keys;
use crate::relay::probe::probe_key;
use crate::state::AppState;

struct HttpProbe {
    state: AppState,
}

impl KeyProbe for HttpProbe {
    fn probe(&self, key: &KeyState) -> ProbeFuture<bool> {
        let state = self.state.clone();
        let (key_id, model) = (
            key.spec.key_id,
            key.spec.models.first().cloned().unwrap_or_default(),
        );
        Box::pin(async move {
            let result = probe_key(&state, key_id, &model).await;
            tracing::info!(
                key_id,
                ok = result.ok,
                error = result.error.as_deref(),
                "health probe"
            );
            result.ok
        })
    }

    fn restore(&self, key_id: i64) -> ProbeFuture<()> {
        let state = self.state.clone();
        Box::pin(async move {
            match keys::restore_after_probe(&state, key_id).await {
                Ok(true) => tracing::info!(key_id, "key back in service after a successful probe"),
                // An operator disabled it meanwhile: that stands.
                Ok(false) => {}
                Err(e) => tracing::error!(key_id, error = %e, "could not restore key"),
            }
        })
    }
}

/// Start the prober for `state`, probing every `interval`.
pub fn start_prober(state: AppState, interval: Duration) -> Addr<Prober> {
    let router = state.router.clone();
    let shared = state.cluster.windows();
    Prober::new(router, Rc::new(HttpProbe { state }), interval, shared).start()
}
