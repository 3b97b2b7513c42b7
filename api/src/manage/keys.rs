//! Provider keys (admin): add many at once, tune or disable one, test one.
//! Keys are stored sealed and only ever shown masked; `key_state.rs` shows
//! what their budgets are doing.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use sluice_actors::key::mask_secret;
use sluice_actors::router::RestoreKey;
use sluice_entity::{channel_keys, channels};
use utoipa::ToSchema;

use super::channels::{apply, find as find_channel, writable, ModelLimit};
use super::error::ApiError;
use super::{ErrorBody, Status};
use crate::auth::AuthContext;
use crate::catalog::keys::{KEY_DISABLED, KEY_ENABLED};
use crate::catalog::sync::MANAGED_BY_CONFIG;
use crate::config::MAX_LIMIT;
use crate::relay::probe::{probe_key, ProbeResult};
use crate::secrets::hash_hex;
use crate::state::AppState;

/// Key routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels/{id}/keys", web::get().to(list))
        .route("/channels/{id}/keys", web::post().to(add))
        .route("/channels/{id}/test", web::post().to(test_channel))
        .route("/keys/{id}", web::patch().to(update))
        .route("/keys/{id}", web::delete().to(delete))
        .route("/keys/{id}/test", web::post().to(test_key));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, add, update, delete, test_key, test_channel),
    components(schemas(KeyView, AddKeys, AddedKeys, UpdateKey, TestRequest, ProbeResult))
)]
pub struct Doc;

/// A key as the API shows it: masked.
#[derive(Serialize, ToSchema, Debug)]
pub struct KeyView {
    /// Id.
    pub id: i64,
    /// Its channel.
    pub channel_id: i64,
    /// The key, masked (`nvapi-…a1b2`).
    pub mask: String,
    /// Requests per minute; absent = the channel's.
    pub rpm: Option<i64>,
    /// Tokens per minute; absent = the channel's.
    pub tpm: Option<i64>,
    /// Requests in flight; absent = the channel's.
    pub max_concurrency: Option<i32>,
    /// Per-model limits; absent = the channel's.
    pub model_limits: Option<BTreeMap<String, ModelLimit>>,
    /// `enabled`, `disabled` (by an operator) or `auto_disabled` (by health checks).
    pub status: String,
    /// Why it is disabled.
    pub disabled_reason: Option<String>,
    /// `api` or `config`.
    pub managed_by: String,
    /// Added.
    pub created_at: DateTime<Utc>,
}

impl TryFrom<&channel_keys::Model> for KeyView {
    type Error = ApiError;

    fn try_from(k: &channel_keys::Model) -> Result<Self, ApiError> {
        Ok(KeyView {
            id: k.id,
            channel_id: k.channel_id,
            mask: k.mask.clone(),
            rpm: k.rpm,
            tpm: k.tpm,
            max_concurrency: k.max_concurrency,
            model_limits: k
                .model_limits
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| ApiError::Internal(e.into()))?,
            status: k.status.clone(),
            disabled_reason: k.disabled_reason.clone(),
            managed_by: k.managed_by.clone(),
            created_at: k.created_at,
        })
    }
}

/// Keys to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKeys {
    /// Provider keys, one per line (blank lines are skipped).
    pub keys: String,
}

/// What adding keys did.
#[derive(Serialize, ToSchema, Debug)]
pub struct AddedKeys {
    /// The keys added.
    pub added: Vec<KeyView>,
    /// Lines skipped because the channel already has that key.
    pub duplicates: usize,
}

/// Changes to a key. Limits: a number overrides the channel's, `null`
/// inherits it again, absent leaves it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// Requests per minute.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<i64>)]
    pub rpm: Option<Option<i64>>,
    /// Tokens per minute.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<i64>)]
    pub tpm: Option<Option<i64>>,
    /// Requests in flight.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<i32>)]
    pub max_concurrency: Option<Option<i32>>,
    /// Per-model limits.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<BTreeMap<String, ModelLimit>>)]
    pub model_limits: Option<Option<BTreeMap<String, ModelLimit>>>,
    /// `enabled` or `disabled`. Enabling also clears a health disable.
    #[serde(default)]
    pub status: Option<Status>,
}

/// Which model to test with.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// A model the channel serves (default: its first).
    #[serde(default)]
    pub model: Option<String>,
}

/// Lines of keys, trimmed, blank ones skipped.
pub fn parse_key_lines(text: &str) -> Result<Vec<String>, ApiError> {
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if let Some(bad) = keys
        .iter()
        .find(|k| k.len() > 1024 || k.chars().any(char::is_whitespace))
    {
        return Err(ApiError::BadRequest(format!(
            "'{}' is not a key: one key per line, no spaces",
            mask_secret(bad)
        )));
    }
    Ok(keys)
}

/// Seal and store keys in a channel, skipping ones it has.
pub async fn insert_keys(state: &AppState, channel_id: i64, keys: &[String]) -> Result<AddedKeys, ApiError> {
    let existing: Vec<String> = channel_keys::Entity::find()
        .filter(channel_keys::Column::ChannelId.eq(channel_id))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|k| k.fingerprint)
        .collect();
    let mut seen = existing;
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
        added.push(KeyView::try_from(&row)?);
    }
    Ok(AddedKeys { added, duplicates })
}

async fn find_key(state: &AppState, id: i64) -> Result<(channel_keys::Model, channels::Model), ApiError> {
    let key = channel_keys::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("key {id}")))?;
    let channel = find_channel(state, key.channel_id).await?;
    Ok((key, channel))
}

/// A channel's keys (admin).
#[utoipa::path(get, path = "/api/channels/{id}/keys", tag = "channels", operation_id = "list_keys",
    params(("id" = i64, Path, description = "channel id")), security(("bearer" = [])),
    responses((status = 200, body = Vec<KeyView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let channel = find_channel(&state, *id).await?;
    let keys = channel_keys::Entity::find()
        .filter(channel_keys::Column::ChannelId.eq(channel.id))
        .order_by_asc(channel_keys::Column::Id)
        .all(&state.db)
        .await?;
    let views = keys
        .iter()
        .map(KeyView::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(views))
}

/// Add keys, one per line; they serve at once (admin).
#[utoipa::path(post, path = "/api/channels/{id}/keys", tag = "channels", operation_id = "add_keys",
    params(("id" = i64, Path, description = "channel id")), request_body = AddKeys, security(("bearer" = [])),
    responses((status = 201, body = AddedKeys), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
    body: web::Json<AddKeys>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let channel = find_channel(&state, *id).await?;
    writable(&channel)?;
    let keys = parse_key_lines(&body.keys)?;
    if keys.is_empty() {
        return Err(ApiError::BadRequest("no keys given: one key per line".into()));
    }
    let added = insert_keys(&state, channel.id, &keys).await?;
    apply(&state).await?;
    Ok(HttpResponse::Created().json(added))
}

fn check_limit(value: Option<Option<i64>>, what: &str) -> Result<Option<Option<i64>>, ApiError> {
    if let Some(Some(v)) = value {
        if !(0..=MAX_LIMIT as i64).contains(&v) {
            return Err(ApiError::BadRequest(format!(
                "{what} must be between 0 and {MAX_LIMIT}"
            )));
        }
    }
    Ok(value)
}

/// Tune, disable or enable a key; the router applies it at once (admin).
/// Keys of channels declared in the config file only take `status`.
#[utoipa::path(patch, path = "/api/keys/{id}", tag = "channels", operation_id = "update_key",
    params(("id" = i64, Path, description = "key id")), request_body = UpdateKey, security(("bearer" = [])),
    responses((status = 200, body = KeyView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
    body: web::Json<UpdateKey>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let b = body.into_inner();
    let (key, channel) = find_key(&state, *id).await?;
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
            return Err(ApiError::BadRequest(format!(
                "'{m}' is not a model of channel '{}'",
                channel.name
            )));
        }
        if limits
            .iter()
            .flatten()
            .any(|(_, l)| l.rpm as u64 > MAX_LIMIT || l.tpm > MAX_LIMIT)
        {
            return Err(ApiError::BadRequest(format!(
                "limits must be at most {MAX_LIMIT}"
            )));
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
            row.disabled_reason = Set(Some(format!("disabled by {}", auth.user.username)));
            false
        }
    };
    row.updated_at = Set(Utc::now());
    let updated = row.update(&state.db).await?;
    apply(&state).await?;
    if restore {
        state.router.do_send(RestoreKey(updated.id));
    }
    Ok(HttpResponse::Ok().json(KeyView::try_from(&updated)?))
}

/// Delete a key; requests in flight on it finish (admin).
#[utoipa::path(delete, path = "/api/keys/{id}", tag = "channels", operation_id = "delete_key",
    params(("id" = i64, Path, description = "key id")), security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let (key, channel) = find_key(&state, *id).await?;
    writable(&channel)?;
    channel_keys::Entity::delete_by_id(key.id).exec(&state.db).await?;
    apply(&state).await?;
    Ok(HttpResponse::NoContent().finish())
}

fn pick_model(channel: &channels::Model, asked: Option<String>) -> Result<String, ApiError> {
    let models: Vec<String> =
        serde_json::from_str(&channel.models).map_err(|e| ApiError::Internal(e.into()))?;
    match asked {
        Some(m) if models.contains(&m) => Ok(m),
        Some(m) => Err(ApiError::BadRequest(format!(
            "channel '{}' does not serve '{m}'; it serves: {}",
            channel.name,
            models.join(", ")
        ))),
        None => models
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::BadRequest("the channel serves no model".into())),
    }
}

/// Send a tiny request through this exact key; counts against its budget (admin).
#[utoipa::path(post, path = "/api/keys/{id}/test", tag = "channels", operation_id = "test_key",
    params(("id" = i64, Path, description = "key id")), request_body = TestRequest, security(("bearer" = [])),
    responses((status = 200, body = ProbeResult), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn test_key(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
    body: web::Json<TestRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let (key, channel) = find_key(&state, *id).await?;
    let model = pick_model(&channel, body.into_inner().model)?;
    Ok(HttpResponse::Ok().json(probe_key(&state, key.id, &model).await))
}

/// Test every key of a channel at once (admin).
#[utoipa::path(post, path = "/api/channels/{id}/test", tag = "channels", operation_id = "test_channel",
    params(("id" = i64, Path, description = "channel id")), request_body = TestRequest, security(("bearer" = [])),
    responses((status = 200, body = Vec<ProbeResult>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn test_channel(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
    body: web::Json<TestRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let channel = find_channel(&state, *id).await?;
    let model = pick_model(&channel, body.into_inner().model)?;
    let keys = channel_keys::Entity::find()
        .filter(channel_keys::Column::ChannelId.eq(channel.id))
        .order_by_asc(channel_keys::Column::Id)
        .all(&state.db)
        .await?;
    let results = join_all(keys.iter().map(|k| probe_key(&state, k.id, &model))).await;
    Ok(HttpResponse::Ok().json(results))
}
