//! `/api/channels` (admin): providers and their settings. Every change is
//! handed to the router at once; channels declared in the config file are
//! read-only here.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use sluice_entity::{channel_keys, channels};
use utoipa::ToSchema;

use super::error::ApiError;
use super::keys::{insert_keys, AddedKeys};
use super::{ErrorBody, Status};
use crate::auth::AuthContext;
use crate::catalog::keys::reload_router;
use crate::catalog::sync::MANAGED_BY_CONFIG;
use crate::config::{ChannelDecl, ModelLimitDecl};
use crate::state::AppState;

/// `/api/channels` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels", web::get().to(list))
        .route("/channels", web::post().to(create))
        .route("/channels/{id}", web::get().to(get))
        .route("/channels/{id}", web::patch().to(update))
        .route("/channels/{id}", web::delete().to(delete));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, create, get, update, delete),
    components(schemas(ChannelView, CreateChannel, UpdateChannel, CreatedChannel, ModelLimit))
)]
pub struct Doc;

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

/// A channel as the API shows it (header values masked).
#[derive(Serialize, ToSchema, Debug)]
pub struct ChannelView {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Provider kind (`openai`: OpenAI-compatible).
    pub kind: String,
    /// Provider base URL.
    pub base_url: String,
    /// Models served, by the names clients use.
    pub models: Vec<String>,
    /// Client model name → provider model name.
    pub model_map: BTreeMap<String, String>,
    /// Higher tiers are used first.
    pub priority: i32,
    /// Share of traffic within a tier.
    pub weight: i32,
    /// User groups that may use it; empty = every group.
    pub groups: Vec<String>,
    /// Extra headers sent upstream, values masked.
    pub headers: BTreeMap<String, String>,
    /// Default requests per minute per key (0 = unlimited).
    pub rpm: i64,
    /// Default tokens per minute per key (0 = unlimited).
    pub tpm: i64,
    /// Default requests in flight per key (0 = unlimited).
    pub max_concurrency: i32,
    /// Per-model limits per key.
    pub model_limits: BTreeMap<String, ModelLimit>,
    /// `enabled` or `disabled`.
    pub status: String,
    /// `api`, or `config` when declared in the config file (read-only here).
    pub managed_by: String,
    /// Keys in the channel.
    pub key_count: u64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl ChannelView {
    fn new(c: &channels::Model, key_count: u64) -> Result<Self, ApiError> {
        let json =
            |s: &str| serde_json::from_str::<serde_json::Value>(s).map_err(|e| ApiError::Internal(e.into()));
        let headers: BTreeMap<String, String> =
            serde_json::from_value(json(&c.extra_headers)?).map_err(|e| ApiError::Internal(e.into()))?;
        Ok(ChannelView {
            id: c.id,
            name: c.name.clone(),
            kind: c.kind.clone(),
            base_url: c.base_url.clone(),
            models: serde_json::from_value(json(&c.models)?).map_err(|e| ApiError::Internal(e.into()))?,
            model_map: serde_json::from_value(json(&c.model_map)?)
                .map_err(|e| ApiError::Internal(e.into()))?,
            priority: c.priority,
            weight: c.weight,
            groups: serde_json::from_value(json(&c.groups)?).map_err(|e| ApiError::Internal(e.into()))?,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k, sluice_actors::key::mask_secret(&v)))
                .collect(),
            rpm: c.rpm,
            tpm: c.tpm,
            max_concurrency: c.max_concurrency,
            model_limits: serde_json::from_value(json(&c.model_limits)?)
                .map_err(|e| ApiError::Internal(e.into()))?,
            status: c.status.clone(),
            managed_by: c.managed_by.clone(),
            key_count,
            created_at: c.created_at,
            updated_at: c.updated_at,
        })
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

/// A new channel and the keys added with it.
#[derive(Serialize, ToSchema)]
pub struct CreatedChannel {
    /// The channel.
    pub channel: ChannelView,
    /// The keys added.
    pub keys: AddedKeys,
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
fn as_decl(c: &channels::Model) -> Result<ChannelDecl, ApiError> {
    let view = ChannelView::new(c, 0)?;
    let headers: BTreeMap<String, String> =
        serde_json::from_str(&c.extra_headers).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(ChannelDecl {
        name: view.name,
        base_url: view.base_url,
        kind: view.kind,
        keys: Vec::new(),
        models: view.models,
        model_map: view.model_map.into_iter().collect(),
        rpm: view.rpm.max(0) as u32,
        tpm: view.tpm.max(0) as u64,
        max_concurrency: view.max_concurrency.max(0) as u32,
        model_limits: view
            .model_limits
            .into_iter()
            .map(|(m, l)| (m, l.into()))
            .collect(),
        priority: view.priority,
        weight: view.weight.max(0) as u32,
        groups: view.groups,
        headers: headers.into_iter().collect(),
    })
}

fn to_row(d: &ChannelDecl, row: &mut channels::ActiveModel) {
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
    row.extra_headers = Set(serde_json::to_string(&sorted(&d.headers)).expect("serialises"));
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

async fn key_count(state: &AppState, channel_id: i64) -> Result<u64, ApiError> {
    Ok(channel_keys::Entity::find()
        .filter(channel_keys::Column::ChannelId.eq(channel_id))
        .count(&state.db)
        .await?)
}

/// Hand the new set of keys to the router.
pub async fn apply(state: &AppState) -> Result<(), ApiError> {
    reload_router(&state.db, &state.secrets, &state.router)
        .await
        .map_err(ApiError::Internal)
}

async fn name_taken(state: &AppState, name: &str, except: Option<i64>) -> Result<bool, ApiError> {
    let mut q = channels::Entity::find().filter(channels::Column::Name.eq(name.trim()));
    if let Some(id) = except {
        q = q.filter(channels::Column::Id.ne(id));
    }
    Ok(q.count(&state.db).await? > 0)
}

/// Every channel (admin).
#[utoipa::path(get, path = "/api/channels", tag = "channels", operation_id = "list_channels", security(("bearer" = [])),
    responses((status = 200, body = Vec<ChannelView>), (status = 403, body = ErrorBody)))]
pub async fn list(state: web::Data<AppState>, auth: AuthContext) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let rows = channels::Entity::find()
        .order_by_asc(channels::Column::Id)
        .all(&state.db)
        .await?;
    let mut views = Vec::with_capacity(rows.len());
    for c in &rows {
        views.push(ChannelView::new(c, key_count(&state, c.id).await?)?);
    }
    Ok(HttpResponse::Ok().json(views))
}

/// Create a channel, optionally with keys (one per line); it serves at once (admin).
#[utoipa::path(post, path = "/api/channels", tag = "channels", operation_id = "create_channel", request_body = CreateChannel,
    security(("bearer" = [])),
    responses((status = 201, body = CreatedChannel), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: AuthContext,
    body: web::Json<CreateChannel>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let b = body.into_inner();
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
    decl.validate().map_err(ApiError::BadRequest)?;
    if name_taken(&state, &decl.name, None).await? {
        return Err(ApiError::Conflict(format!(
            "a channel named '{}' exists",
            decl.name
        )));
    }
    let keys = super::keys::parse_key_lines(b.keys.as_deref().unwrap_or(""))?;
    let now = Utc::now();
    let mut row = channels::ActiveModel {
        status: Set("enabled".into()),
        managed_by: Set("api".into()),
        created_at: Set(now),
        ..Default::default()
    };
    to_row(&decl, &mut row);
    let channel = row.insert(&state.db).await?;
    let added = insert_keys(&state, channel.id, &keys).await?;
    apply(&state).await?;
    let view = ChannelView::new(&channel, added.added.len() as u64)?;
    Ok(HttpResponse::Created().json(CreatedChannel {
        channel: view,
        keys: added,
    }))
}

/// One channel (admin).
#[utoipa::path(get, path = "/api/channels/{id}", tag = "channels", operation_id = "get_channel",
    params(("id" = i64, Path, description = "channel id")), security(("bearer" = [])),
    responses((status = 200, body = ChannelView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let c = find(&state, *id).await?;
    Ok(HttpResponse::Ok().json(ChannelView::new(&c, key_count(&state, c.id).await?)?))
}

/// Change a channel; the router applies it at once (admin).
#[utoipa::path(patch, path = "/api/channels/{id}", tag = "channels", operation_id = "update_channel",
    params(("id" = i64, Path, description = "channel id")), request_body = UpdateChannel, security(("bearer" = [])),
    responses((status = 200, body = ChannelView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
    body: web::Json<UpdateChannel>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let current = find(&state, *id).await?;
    writable(&current)?;
    let b = body.into_inner();
    let mut d = as_decl(&current)?;
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
        d.headers = v.into_iter().collect();
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
    d.validate().map_err(ApiError::BadRequest)?;
    if name_taken(&state, &d.name, Some(current.id)).await? {
        return Err(ApiError::Conflict(format!("a channel named '{}' exists", d.name)));
    }
    let mut row: channels::ActiveModel = current.clone().into();
    to_row(&d, &mut row);
    if let Some(status) = b.status {
        row.status = Set(status.as_str().into());
    }
    let updated = row.update(&state.db).await?;
    apply(&state).await?;
    Ok(HttpResponse::Ok().json(ChannelView::new(&updated, key_count(&state, updated.id).await?)?))
}

/// Delete a channel and its keys; requests in flight on them finish (admin).
#[utoipa::path(delete, path = "/api/channels/{id}", tag = "channels", operation_id = "delete_channel",
    params(("id" = i64, Path, description = "channel id")), security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let c = find(&state, *id).await?;
    writable(&c)?;
    channel_keys::Entity::delete_many()
        .filter(channel_keys::Column::ChannelId.eq(c.id))
        .exec(&state.db)
        .await?;
    channels::Entity::delete_by_id(c.id).exec(&state.db).await?;
    apply(&state).await?;
    Ok(HttpResponse::NoContent().finish())
}
