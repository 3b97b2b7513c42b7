//! Channels and their keys, read from the database into the router's key specs:
//! how every change to channels and keys takes effect without a restart.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use sluice_actors::router::SetKeys;

use super::models::ServedModels;
use sluice_actors::{ApiKey, KeySpec, Limits};
use sluice_entity::{channel_keys, channels};

use crate::config::ModelLimitDecl;
use crate::error::ApiError;
use crate::secrets::SecretBox;
use crate::state::AppState;

/// Key status: serving.
pub const KEY_ENABLED: &str = "enabled";
/// Key status: disabled by an operator (the prober leaves it alone).
pub const KEY_DISABLED: &str = "disabled";
/// Key status: disabled by health checks (the prober tries it again).
pub const KEY_AUTO_DISABLED: &str = "auto_disabled";

/// Hand the router the keys as stored now; every write to channels and keys
/// ends with this.
pub async fn refresh_router(state: &AppState) -> Result<(), ApiError> {
    reload_router(&state.db, &state.secrets, &state.router, &state.models)
        .await
        .map_err(ApiError::Internal)?;
    state.cluster.announce(crate::cluster::Change::Keys);
    Ok(())
}

/// Load every key and hand the set to the router, and the models they serve to
/// the relay's snapshot (at start-up, before the application state exists;
/// afterwards through [`refresh_router`]). A model stays known while any key or
/// enabled channel has it, so one whose keys are all disabled is answered "no
/// usable key", not "unknown model".
pub async fn reload_router(
    db: &DatabaseConnection,
    secrets: &SecretBox,
    router: &actix::Addr<sluice_actors::Router>,
    models: &ServedModels,
) -> anyhow::Result<()> {
    let keys = load_key_specs(db, secrets).await?;
    let channels: Vec<(Vec<String>, Vec<String>)> = channels::Entity::find()
        .filter(channels::Column::Status.eq("enabled"))
        .all(db)
        .await?
        .into_iter()
        .map(|c| Ok((serde_json::from_str(&c.models)?, serde_json::from_str(&c.groups)?)))
        .collect::<anyhow::Result<_>>()?;
    let token_limited = keys.iter().flat_map(|k| {
        k.models
            .iter()
            .filter(|m| k.limits.tpm > 0 || k.model_limits.get(*m).is_some_and(|l| l.tpm > 0))
            .cloned()
    });
    models.replace(
        keys.iter()
            .map(|k| (&k.models[..], &k.groups[..]))
            .chain(channels.iter().map(|(m, g)| (&m[..], &g[..]))),
        token_limited,
    );
    router.send(SetKeys { keys }).await?;
    Ok(())
}

/// Every key of every channel, enabled or not (a disabled one carries its reason).
pub async fn load_key_specs(db: &DatabaseConnection, secrets: &SecretBox) -> anyhow::Result<Vec<KeySpec>> {
    let rows = channels::Entity::find()
        .find_with_related(channel_keys::Entity)
        .all(db)
        .await?;
    let mut specs = Vec::new();
    for (channel, keys) in rows {
        for key in keys {
            specs.push(key_spec(&channel, &key, secrets)?);
        }
    }
    Ok(specs)
}

fn key_spec(
    channel: &channels::Model,
    key: &channel_keys::Model,
    secrets: &SecretBox,
) -> anyhow::Result<KeySpec> {
    let limit = |key_value: Option<i64>, channel_value: i64| key_value.unwrap_or(channel_value).max(0);
    let model_limits: HashMap<String, ModelLimitDecl> =
        serde_json::from_str(key.model_limits.as_deref().unwrap_or(&channel.model_limits))?;
    let disabled = if channel.status != "enabled" {
        Some(format!("channel '{}' is disabled", channel.name))
    } else if key.status == KEY_DISABLED {
        Some(
            key.disabled_reason
                .clone()
                .unwrap_or_else(|| "disabled by an operator".into()),
        )
    } else {
        None
    };
    let health_disabled = (key.status == KEY_AUTO_DISABLED).then(|| {
        key.disabled_reason
            .clone()
            .unwrap_or_else(|| "disabled by health checks".into())
    });
    Ok(KeySpec {
        key_id: key.id,
        channel_id: channel.id,
        channel_name: channel.name.clone(),
        base_url: channel.base_url.clone(),
        secret: ApiKey::new(secrets.open(&key.secret_enc)?),
        models: serde_json::from_str(&channel.models)?,
        model_map: serde_json::from_str(&channel.model_map)?,
        priority: channel.priority,
        weight: channel.weight.max(1) as u32,
        limits: Limits {
            rpm: limit(key.rpm, channel.rpm) as u32,
            tpm: limit(key.tpm, channel.tpm) as u64,
            max_concurrency: limit(key.max_concurrency.map(i64::from), channel.max_concurrency as i64) as u32,
        },
        model_limits: model_limits
            .into_iter()
            .map(|(m, l)| {
                (
                    m,
                    Limits {
                        rpm: l.rpm,
                        tpm: l.tpm,
                        max_concurrency: 0,
                    },
                )
            })
            .collect(),
        extra_headers: secrets.open_map(&channel.extra_headers)?.into_iter().collect(),
        disabled,
        health_disabled,
        groups: serde_json::from_str(&channel.groups)?,
    })
}
