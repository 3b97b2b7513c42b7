//! Provider keys (admin): add many at once, tune or disable one, test one,
//! and watch what every key's budget is doing right now. Keys are stored
//! sealed and only ever shown masked.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use sluice_actors::key::mask_secret;
use sluice_actors::router::{ListKeyStates, RestoreKey};
use sluice_actors::Readiness;
use sluice_entity::{channel_keys, channels};
use utoipa::{IntoParams, ToSchema};

use super::channels::{apply, writable, ModelLimit};
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
        .route("/keys/state", web::get().to(states))
        .route("/keys/state/stream", web::get().to(stream_states))
        .route("/keys/{id}", web::patch().to(update))
        .route("/keys/{id}", web::delete().to(delete))
        .route("/keys/{id}/test", web::post().to(test_key));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, add, update, delete, test_key, test_channel, states, stream_states),
    components(schemas(
        KeyView,
        AddKeys,
        AddedKeys,
        UpdateKey,
        TestRequest,
        ProbeResult,
        KeyStateView,
        LimitsView
    ))
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

/// Configured limits.
#[derive(Serialize, ToSchema, Debug)]
pub struct LimitsView {
    /// Requests per window (0 = unlimited).
    pub rpm: u32,
    /// Tokens per window (0 = unlimited).
    pub tpm: u64,
    /// Requests in flight (0 = unlimited).
    pub max_concurrency: u32,
}

/// What a key's budget is doing now.
#[derive(Serialize, ToSchema, Debug)]
pub struct KeyStateView {
    /// Key id.
    pub key_id: i64,
    /// Its channel.
    pub channel_id: i64,
    /// Channel name.
    pub channel: String,
    /// The key, masked.
    pub mask: String,
    /// Requests in the current window.
    pub requests_in_window: u32,
    /// Tokens in the current window.
    pub tokens_in_window: u64,
    /// Configured limits.
    pub configured: LimitsView,
    /// The request limit in force: lower than configured after provider 429s.
    pub effective_rpm: u32,
    /// Requests waiting that this key could serve.
    pub queue_depth: usize,
    /// Requests in flight.
    pub in_flight: u32,
    /// Milliseconds of cooldown left (after a 429 or failures).
    pub cooldown_remaining_ms: Option<u64>,
    /// Milliseconds until it can take a request: 0 = now, absent = when an
    /// in-flight request ends (or never, while disabled).
    pub next_ready_in_ms: Option<u64>,
    /// Why it is disabled.
    pub disabled: Option<String>,
    /// Disabled by health checks (the prober tries it again).
    pub health_disabled: bool,
    /// The provider's last error.
    pub last_error: Option<String>,
    /// Requests served since start.
    pub served: u64,
    /// Provider 429s since start.
    pub rate_limited: u64,
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

async fn find_channel(state: &AppState, id: i64) -> Result<channels::Model, ApiError> {
    channels::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("channel {id}")))
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

async fn key_states(state: &AppState) -> Result<Vec<KeyStateView>, ApiError> {
    let states = state
        .router
        .send(ListKeyStates)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let now = std::time::Instant::now();
    Ok(states
        .into_iter()
        .map(|k| {
            let s = k.snapshot;
            let next_ready_in_ms = match (s.disabled.is_some(), s.readiness) {
                (true, _) | (false, Readiness::WhenSlotFrees) => None,
                (false, Readiness::Now) => Some(0),
                (false, Readiness::At(at)) => Some(at.saturating_duration_since(now).as_millis() as u64),
            };
            KeyStateView {
                key_id: k.spec.key_id,
                channel_id: k.spec.channel_id,
                channel: k.spec.channel_name.clone(),
                mask: k.spec.secret.mask(),
                requests_in_window: s.requests_in_window,
                tokens_in_window: s.tokens_in_window,
                configured: LimitsView {
                    rpm: s.configured.rpm,
                    tpm: s.configured.tpm,
                    max_concurrency: s.configured.max_concurrency,
                },
                effective_rpm: s.effective_rpm,
                queue_depth: k.queue_depth,
                in_flight: s.in_flight,
                cooldown_remaining_ms: s.cooldown_remaining.map(|d| d.as_millis() as u64),
                next_ready_in_ms,
                disabled: s.disabled,
                health_disabled: s.health_disabled,
                last_error: s.last_error,
                served: s.served,
                rate_limited: s.rate_limited,
            }
        })
        .collect())
}

/// Every key's budget, now (admin).
#[utoipa::path(get, path = "/api/keys/state", tag = "channels", operation_id = "key_states", security(("bearer" = [])),
    responses((status = 200, body = Vec<KeyStateView>), (status = 403, body = ErrorBody)))]
pub async fn states(state: web::Data<AppState>, auth: AuthContext) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    Ok(HttpResponse::Ok().json(key_states(&state).await?))
}

/// One server-sent event of `GET /api/keys/state/stream`.
#[derive(Serialize, ToSchema)]
pub struct KeyStateEvent {
    /// Always `keys`.
    pub event: String,
    /// A JSON array of `KeyStateView`, as `GET /api/keys/state` returns.
    pub data: String,
}

/// How often the stream sends.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Milliseconds between events (250–10000, default 1000).
    pub interval_ms: Option<u64>,
    /// The access token, for clients that cannot send headers (`EventSource`).
    pub access_token: Option<String>,
}

/// Every key's budget as server-sent events: `event: keys`, `data:` the same
/// JSON as `GET /api/keys/state`, every `interval_ms` (admin).
#[utoipa::path(get, path = "/api/keys/state/stream", tag = "channels", operation_id = "stream_key_states",
    params(StreamQuery), security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream; each `keys` event carries the key states", content_type = "text/event-stream", body = KeyStateEvent),
        (status = 403, body = ErrorBody)))]
pub async fn stream_states(
    state: web::Data<AppState>,
    auth: AuthContext,
    q: web::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let every = q.interval_ms.unwrap_or(1000);
    if !(250..=10_000).contains(&every) {
        return Err(ApiError::BadRequest("interval_ms must be 250–10000".into()));
    }
    let state = state.into_inner();
    let events = futures_util::stream::unfold((state, true), move |(state, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_millis(every)).await;
        }
        let data = match key_states(&state).await {
            Ok(views) => serde_json::to_string(&views).expect("serialises"),
            Err(_) => return None,
        };
        let event = bytes::Bytes::from(format!("event: keys\ndata: {data}\n\n"));
        Some((Ok::<_, actix_web::Error>(event), (state, false)))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(events))
}
