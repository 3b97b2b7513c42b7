//! The prober's hands: how a health-disabled key is tested (through the
//! router, so it counts against the key's budget) and brought back.

use std::rc::Rc;
use std::time::Duration;

use actix::{Actor, Addr};
use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sluice_actors::prober::{KeyProbe, ProbeFuture, Prober};
use sluice_actors::router::{KeyState, RestoreKey};
use sluice_entity::channel_keys;

use crate::catalog::keys::{reload_router, KEY_AUTO_DISABLED, KEY_ENABLED};
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
            let updated = channel_keys::Entity::update_many()
                .col_expr(channel_keys::Column::Status, Expr::value(KEY_ENABLED))
                .col_expr(
                    channel_keys::Column::DisabledReason,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(channel_keys::Column::UpdatedAt, Expr::value(Utc::now()))
                .filter(channel_keys::Column::Id.eq(key_id))
                // An operator may have disabled it meanwhile: leave that alone.
                .filter(channel_keys::Column::Status.is_in([KEY_AUTO_DISABLED, KEY_ENABLED]))
                .exec(&state.db)
                .await;
            match updated {
                Ok(r) if r.rows_affected > 0 => {
                    state.router.do_send(RestoreKey(key_id));
                    if let Err(e) = reload_router(&state.db, &state.secrets, &state.router).await {
                        tracing::error!(key_id, error = %e, "could not reload keys after a restore");
                    }
                    tracing::info!(key_id, "key back in service after a successful probe");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(key_id, error = %e, "could not restore key"),
            }
        })
    }
}

/// Start the prober for `state`, probing every `interval`.
pub fn start_prober(state: AppState, interval: Duration) -> Addr<Prober> {
    let router = state.router.clone();
    Prober::new(router, Rc::new(HttpProbe { state }), interval).start()
}
