//! Provider keys: add many at once (sealed, deduplicated), tune, disable or
//! enable one, delete one, and bring one back after a passing probe. Each change
//! reaches the router before the function returns.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use sluice_actors::key::mask_secret;
use sluice_actors::router::RestoreKey;
use sluice_entity::{channel_keys, channels};
use utoipa::ToSchema;

use super::channels::{find as find_channel, writable, ModelLimit};
use super::routing::{refresh_router, KEY_AUTO_DISABLED, KEY_DISABLED, KEY_ENABLED};
use super::sync::MANAGED_BY_CONFIG;
use super::{present, Changed, Status};
use crate::config::MAX_LIMIT;
use crate::error::ApiError;
use crate::secrets::hash_hex;
use crate::state::AppState;

/// Keys to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKeys {
    /// Provider keys, one per line (blank lines are skipped).
    pub keys: String,
}

/// Changes to a key. Limits: a number overrides the channel's, `null`
/// inherits it again, absent leaves it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// Requests per minute.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub rpm: Option<Option<i64>>,
    /// Tokens per minute.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub tpm: Option<Option<i64>>,
    /// Requests in flight.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub max_concurrency: Option<Option<i32>>,
    /// Per-model limits.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<BTreeMap<String, ModelLimit>>)]
    pub model_limits: Option<Option<BTreeMap<String, ModelLimit>>>,
    /// `enabled` or `disabled`. Enabling also clears a health disable.
    #[serde(default)]
    pub status: Option<Status>,
}

/// What adding keys did.
#[derive(Debug)]
pub struct AddedKeys {
    /// The keys added.
    pub added: Vec<channel_keys::Model>,
    /// Lines skipped because the channel already has that key.
    pub duplicates: usize,
}

/// Longest key accepted, in characters.
pub const MAX_KEY_CHARS: usize = 1024;

/// Lines of keys (split at `\n`), spaces, tabs and `\r` around each trimmed,
/// blank lines skipped; a key is 1–[`MAX_KEY_CHARS`] characters, none blank
/// ([`crate::config::is_blank`]). The OpenAPI document's pattern says the same.
pub fn parse_key_lines(text: &str) -> Result<Vec<String>, ApiError> {
    let keys: Vec<String> = text
        .split('\n')
        .map(|line| line.trim_matches([' ', '\t', '\r']))
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if let Some(bad) = keys
        .iter()
        .find(|k| k.chars().count() > MAX_KEY_CHARS || k.chars().any(crate::config::is_blank))
    {
        return Err(ApiError::invalid(
            "keys",
            format!("'{}' is not a key: one key per line, no spaces", mask_secret(bad)),
        ));
    }
    Ok(keys)
}

/// Seal and store keys in a channel, skipping ones it has. The caller refreshes
/// the router.
pub(super) async fn insert_keys(
    state: &AppState,
    channel_id: i64,
    keys: &[String],
) -> Result<AddedKeys, ApiError> {
    let mut seen: Vec<String> = channel_keys::Entity::find()
        .filter(channel_keys::Column::ChannelId.eq(channel_id))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|k| k.fingerprint)
        .collect();
    let mut added = Vec::new();
    let mut duplicates = 0;
    let now = Utc::now();
    for key in keys {
        let fingerprint = hash_hex(key);
        if seen.contains(&fingerprint) {
            duplicates += 1;
            continue;
        }
        seen.push(fingerprint.clone());
        let row = channel_keys::ActiveModel {
            channel_id: Set(channel_id),
            secret_enc: Set(state.secrets.seal(key)),
            fingerprint: Set(fingerprint),
            mask: Set(mask_secret(key)),
            status: Set(KEY_ENABLED.into()),
            managed_by: Set("api".into()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&state.db)
        .await?;
        added.push(row);
    }
    Ok(AddedKeys { added, duplicates })
}

/// A key and its channel, or 404.
pub async fn find(state: &AppState, id: i64) -> Result<(channel_keys::Model, channels::Model), ApiError> {
    let key = channel_keys::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("key {id}")))?;
    let channel = find_channel(state, key.channel_id).await?;
    Ok((key, channel))
}

/// Add keys to a channel, one per line; they serve at once.
pub async fn add(state: &AppState, channel_id: i64, text: &str) -> Result<AddedKeys, ApiError> {
    let channel = find_channel(state, channel_id).await?;
    writable(&channel)?;
    let keys = parse_key_lines(text)?;
    if keys.is_empty() {
        return Err(ApiError::invalid("keys", "no keys given: one key per line"));
    }
    let added = insert_keys(state, channel.id, &keys).await?;
    refresh_router(state).await?;
    Ok(added)
}

fn check_limit(value: Option<Option<i64>>, what: &'static str) -> Result<Option<Option<i64>>, ApiError> {
    if let Some(Some(v)) = value {
        if !(0..=MAX_LIMIT as i64).contains(&v) {
            return Err(ApiError::invalid(
                what,
                format!("{what} must be between 0 and {MAX_LIMIT}"),
            ));
        }
    }
    Ok(value)
}

/// Tune, disable or enable a key; the router applies it at once. Keys of
/// channels declared in the config file only take `status`. `by` names who
/// disabled it, in the reason shown.
pub async fn update(
    state: &AppState,
    id: i64,
    b: UpdateKey,
    by: &str,
) -> Result<Changed<channel_keys::Model>, ApiError> {
    let (key, channel) = find(state, id).await?;
    let tunes = b.rpm.is_some() || b.tpm.is_some() || b.max_concurrency.is_some() || b.model_limits.is_some();
    if tunes && channel.managed_by == MANAGED_BY_CONFIG {
        writable(&channel)?;
    }
    let mut row: channel_keys::ActiveModel = key.clone().into();
    if let Some(v) = check_limit(b.rpm, "rpm")? {
        row.rpm = Set(v);
    }
    if let Some(v) = check_limit(b.tpm, "tpm")? {
        row.tpm = Set(v);
    }
    if let Some(v) = check_limit(b.max_concurrency.map(|o| o.map(i64::from)), "max_concurrency")? {
        row.max_concurrency = Set(v.map(|n| n as i32));
    }
    if let Some(limits) = b.model_limits {
        let models: Vec<String> =
            serde_json::from_str(&channel.models).map_err(|e| ApiError::Internal(e.into()))?;
        if let Some(m) = limits
            .iter()
            .flatten()
            .map(|(m, _)| m)
            .find(|m| !models.contains(m))
        {
            return Err(ApiError::Unprocessable {
                param: "model_limits",
                message: format!("'{m}' is not a model of channel '{}'", channel.name),
            });
        }
        if limits
            .iter()
            .flatten()
            .any(|(_, l)| l.rpm as u64 > MAX_LIMIT || l.tpm > MAX_LIMIT)
        {
            return Err(ApiError::invalid(
                "model_limits",
                format!("limits must be at most {MAX_LIMIT}"),
            ));
        }
        row.model_limits = Set(limits.map(|l| serde_json::to_string(&l).expect("serialises")));
    }
    let restore = match b.status {
        None => false,
        Some(Status::Enabled) => {
            row.status = Set(KEY_ENABLED.into());
            row.disabled_reason = Set(None);
            true
        }
        Some(Status::Disabled) => {
            row.status = Set(KEY_DISABLED.into());
            row.disabled_reason = Set(Some(format!("disabled by {by}")));
            false
        }
    };
    row.updated_at = Set(Utc::now());
    let updated = row.update(&state.db).await?;
    refresh_router(state).await?;
    if restore {
        state.router.do_send(RestoreKey(updated.id));
    }
    Ok(Changed {
        before: key,
        after: updated,
    })
}

/// Delete a key; requests in flight on it finish. The key as it was.
pub async fn delete(state: &AppState, id: i64) -> Result<channel_keys::Model, ApiError> {
    let (key, channel) = find(state, id).await?;
    writable(&channel)?;
    channel_keys::Entity::delete_by_id(key.id).exec(&state.db).await?;
    refresh_router(state).await?;
    Ok(key)
}

/// Put a key the health checks disabled back in service after a passing probe.
/// A key an operator disabled meanwhile stays disabled. Whether it came back.
pub async fn restore_after_probe(state: &AppState, key_id: i64) -> Result<bool, ApiError> {
    let updated = channel_keys::Entity::update_many()
        .col_expr(channel_keys::Column::Status, Expr::value(KEY_ENABLED))
        .col_expr(
            channel_keys::Column::DisabledReason,
            Expr::value(Option::<String>::None),
        )
        .col_expr(channel_keys::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(channel_keys::Column::Id.eq(key_id))
        .filter(channel_keys::Column::Status.is_in([KEY_AUTO_DISABLED, KEY_ENABLED]))
        .exec(&state.db)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(false);
    }
    state.router.do_send(RestoreKey(key_id));
    refresh_router(state).await?;
    Ok(true)
}
