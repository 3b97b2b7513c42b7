//! Channels: create, change and delete one, each followed by handing the new
//! key set to the router, so a change serves at once. Channels declared in the
//! config file are the file's to change.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter,
};
use serde::{Deserialize, Serialize};
use sluice_entity::{channel_keys, channels};
use utoipa::ToSchema;

use super::keys::{insert_keys, parse_key_lines, AddedKeys};
use super::routing::refresh_router;
use super::sync::MANAGED_BY_CONFIG;
use super::{Changed, Status};
use crate::config::{ChannelDecl, ModelLimitDecl};
use crate::error::ApiError;
use crate::secrets::{map_is_sealed, SecretBox};
use crate::state::AppState;

/// Per-model limits on each key.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelLimit {
    /// Requests per minute; 0 = unlimited.
    #[serde(default)]
    pub rpm: u32,
    /// Tokens per minute; 0 = unlimited.
    #[serde(default)]
    pub tpm: u64,
}

impl From<ModelLimit> for ModelLimitDecl {
    fn from(l: ModelLimit) -> Self {
        ModelLimitDecl {
            rpm: l.rpm,
            tpm: l.tpm,
        }
    }
}

/// A channel to create, optionally with its keys.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// Unique name (1–128 characters).
    pub name: String,
    /// Provider base URL, such as `https://integrate.api.nvidia.com/v1`.
    pub base_url: String,
    /// Provider kind (default and only: `openai`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Models served, by the names clients use.
    pub models: Vec<String>,
    /// Client model name → provider model name.
    #[serde(default)]
    pub model_map: BTreeMap<String, String>,
    /// Tier (default 0).
    #[serde(default)]
    pub priority: i32,
    /// Weight within the tier (1–1000, default 1).
    #[serde(default)]
    pub weight: Option<u32>,
    /// User groups allowed; empty = every group.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Extra headers sent upstream.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Requests per minute per key (0 = unlimited).
    #[serde(default)]
    pub rpm: u32,
    /// Tokens per minute per key (0 = unlimited).
    #[serde(default)]
    pub tpm: u64,
    /// Requests in flight per key (0 = unlimited).
    #[serde(default)]
    pub max_concurrency: u32,
    /// Per-model limits per key.
    #[serde(default)]
    pub model_limits: BTreeMap<String, ModelLimit>,
    /// Provider keys, one per line.
    #[serde(default)]
    pub keys: Option<String>,
}

/// Changes to a channel; absent fields stay.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    /// Name.
    pub name: Option<String>,
    /// Base URL.
    pub base_url: Option<String>,
    /// Models.
    pub models: Option<Vec<String>>,
    /// Model map.
    pub model_map: Option<BTreeMap<String, String>>,
    /// Tier.
    pub priority: Option<i32>,
    /// Weight.
    pub weight: Option<u32>,
    /// Groups.
    pub groups: Option<Vec<String>>,
    /// Extra headers (replaces them all).
    pub headers: Option<BTreeMap<String, String>>,
    /// Default requests per minute per key.
    pub rpm: Option<u32>,
    /// Default tokens per minute per key.
    pub tpm: Option<u64>,
    /// Default requests in flight per key.
    pub max_concurrency: Option<u32>,
    /// Per-model limits.
    pub model_limits: Option<BTreeMap<String, ModelLimit>>,
    /// `enabled` or `disabled`.
    pub status: Option<Status>,
}

/// The stored channel as a declaration, to validate edits the way the file is.
fn as_decl(c: &channels::Model, secrets: &SecretBox) -> Result<ChannelDecl, ApiError> {
    let json = |e: serde_json::Error| ApiError::Internal(e.into());
    let model_limits: BTreeMap<String, ModelLimit> = serde_json::from_str(&c.model_limits).map_err(json)?;
    Ok(ChannelDecl {
        name: c.name.clone(),
        base_url: c.base_url.clone(),
        kind: c.kind.clone(),
        keys: Vec::new(),
        models: serde_json::from_str(&c.models).map_err(json)?,
        model_map: serde_json::from_str(&c.model_map).map_err(json)?,
        rpm: c.rpm.max(0) as u32,
        tpm: c.tpm.max(0) as u64,
        max_concurrency: c.max_concurrency.max(0) as u32,
        model_limits: model_limits.into_iter().map(|(m, l)| (m, l.into())).collect(),
        priority: c.priority,
        weight: c.weight.max(0) as u32,
        groups: serde_json::from_str(&c.groups).map_err(json)?,
        headers: secrets.open_map(&c.extra_headers)?.into_iter().collect(),
    })
}

fn to_row(d: &ChannelDecl, row: &mut channels::ActiveModel, secrets: &SecretBox) {
    let sorted = |m: &std::collections::HashMap<String, String>| -> BTreeMap<String, String> {
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    let limits: BTreeMap<&String, &ModelLimitDecl> = d.model_limits.iter().collect();
    row.name = Set(d.name.trim().to_string());
    row.kind = Set(d.kind.clone());
    row.base_url = Set(d.base_url.trim_end_matches('/').to_string());
    row.models = Set(serde_json::to_string(&d.models).expect("serialises"));
    row.model_map = Set(serde_json::to_string(&sorted(&d.model_map)).expect("serialises"));
    row.priority = Set(d.priority);
    row.weight = Set(d.weight as i32);
    row.groups = Set(serde_json::to_string(&d.groups).expect("serialises"));
    row.extra_headers = Set(secrets.seal_map(&sorted(&d.headers)));
    row.rpm = Set(d.rpm as i64);
    row.tpm = Set(d.tpm as i64);
    row.max_concurrency = Set(d.max_concurrency as i32);
    row.model_limits = Set(serde_json::to_string(&limits).expect("serialises"));
    row.updated_at = Set(Utc::now());
}

/// A channel by id, or 404.
pub async fn find(state: &AppState, id: i64) -> Result<channels::Model, ApiError> {
    channels::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("channel {id}")))
}

/// Refuse to change a channel the config file owns.
pub fn writable(c: &channels::Model) -> Result<(), ApiError> {
    if c.managed_by == MANAGED_BY_CONFIG {
        return Err(ApiError::Conflict(format!(
            "channel '{}' is declared in the config file; change it there",
            c.name
        )));
    }
    Ok(())
}

/// How many keys a channel has.
pub async fn key_count(state: &AppState, channel_id: i64) -> Result<u64, ApiError> {
    Ok(channel_keys::Entity::find()
        .filter(channel_keys::Column::ChannelId.eq(channel_id))
        .count(&state.db)
        .await?)
}

async fn refuse_taken_name(state: &AppState, name: &str, except: Option<i64>) -> Result<(), ApiError> {
    let mut q = channels::Entity::find().filter(channels::Column::Name.eq(name.trim()));
    if let Some(id) = except {
        q = q.filter(channels::Column::Id.ne(id));
    }
    if q.count(&state.db).await? > 0 {
        return Err(ApiError::Taken {
            param: "name",
            message: format!("a channel named '{}' exists", name.trim()),
        });
    }
    Ok(())
}

/// Create a channel with its keys; it serves at once.
pub async fn create(state: &AppState, b: CreateChannel) -> Result<(channels::Model, AddedKeys), ApiError> {
    let decl = ChannelDecl {
        name: b.name.trim().to_string(),
        base_url: b.base_url,
        kind: b.kind.unwrap_or_else(|| "openai".into()),
        keys: Vec::new(),
        models: b.models.iter().map(|m| m.trim().to_string()).collect(),
        model_map: b.model_map.into_iter().collect(),
        rpm: b.rpm,
        tpm: b.tpm,
        max_concurrency: b.max_concurrency,
        model_limits: b.model_limits.into_iter().map(|(m, l)| (m, l.into())).collect(),
        priority: b.priority,
        weight: b.weight.unwrap_or(1),
        groups: b.groups,
        headers: b.headers.into_iter().collect(),
    };
    decl.validate()?;
    refuse_taken_name(state, &decl.name, None).await?;
    let keys = parse_key_lines(b.keys.as_deref().unwrap_or(""))?;
    let now = Utc::now();
    let mut row = channels::ActiveModel {
        status: Set(Status::Enabled.as_str().into()),
        managed_by: Set("api".into()),
        created_at: Set(now),
        ..Default::default()
    };
    to_row(&decl, &mut row, &state.secrets);
    let channel = row.insert(&state.db).await?;
    let added = insert_keys(state, channel.id, &keys).await?;
    refresh_router(state).await?;
    Ok((channel, added))
}

/// Change a channel; the router applies it at once.
pub async fn update(
    state: &AppState,
    id: i64,
    b: UpdateChannel,
) -> Result<Changed<channels::Model>, ApiError> {
    let current = find(state, id).await?;
    writable(&current)?;
    let mut d = as_decl(&current, &state.secrets)?;
    if let Some(v) = b.name {
        d.name = v.trim().to_string();
    }
    if let Some(v) = b.base_url {
        d.base_url = v;
    }
    if let Some(v) = b.models {
        d.models = v.iter().map(|m| m.trim().to_string()).collect();
    }
    if let Some(v) = b.model_map {
        d.model_map = v.into_iter().collect();
    }
    if let Some(v) = b.priority {
        d.priority = v;
    }
    if let Some(v) = b.weight {
        d.weight = v;
    }
    if let Some(v) = b.groups {
        d.groups = v;
    }
    if let Some(v) = b.headers {
        // A value sent back as it was shown (masked) keeps the stored one.
        let shown = |name: &String, value: &String| {
            d.headers
                .get(name)
                .filter(|stored| sluice_actors::key::mask_secret(stored) == *value)
                .cloned()
        };
        d.headers = v
            .iter()
            .map(|(name, value)| (name.clone(), shown(name, value).unwrap_or_else(|| value.clone())))
            .collect();
    }
    if let Some(v) = b.rpm {
        d.rpm = v;
    }
    if let Some(v) = b.tpm {
        d.tpm = v;
    }
    if let Some(v) = b.max_concurrency {
        d.max_concurrency = v;
    }
    if let Some(v) = b.model_limits {
        d.model_limits = v.into_iter().map(|(m, l)| (m, l.into())).collect();
    }
    d.validate()?;
    refuse_taken_name(state, &d.name, Some(current.id)).await?;
    let mut row: channels::ActiveModel = current.clone().into();
    to_row(&d, &mut row, &state.secrets);
    if let Some(status) = b.status {
        row.status = Set(status.as_str().into());
    }
    let updated = row.update(&state.db).await?;
    refresh_router(state).await?;
    Ok(Changed {
        before: current,
        after: updated,
    })
}

/// Delete a channel and its keys; requests in flight on them finish. The
/// channel as it was.
pub async fn delete(state: &AppState, id: i64) -> Result<channels::Model, ApiError> {
    let c = find(state, id).await?;
    writable(&c)?;
    channel_keys::Entity::delete_many()
        .filter(channel_keys::Column::ChannelId.eq(c.id))
        .exec(&state.db)
        .await?;
    channels::Entity::delete_by_id(c.id).exec(&state.db).await?;
    refresh_router(state).await?;
    Ok(c)
}

/// Seal the header values of channels stored before they were sealed. Runs at
/// start-up; returns how many channels it sealed.
pub async fn seal_stored_headers(db: &impl ConnectionTrait, secrets: &SecretBox) -> anyhow::Result<usize> {
    let mut sealed = 0;
    for channel in channels::Entity::find().all(db).await? {
        if map_is_sealed(&channel.extra_headers) {
            continue;
        }
        let headers = secrets.open_map(&channel.extra_headers)?;
        let mut row: channels::ActiveModel = channel.into();
        row.extra_headers = Set(secrets.seal_map(&headers));
        row.update(db).await?;
        sealed += 1;
    }
    Ok(sealed)
}
