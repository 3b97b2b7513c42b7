//! `/api/channels` (admin): providers and their settings. Every change is
//! handed to the router at once; channels declared in the config file are
//! read-only here.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{EntityTrait, QueryOrder};
use serde::Serialize;
use sluice_entity::channels;
use utoipa::ToSchema;

use super::keys::AddedKeysView;
use crate::audit::{self, Action, Actor, AuditEntry, Target};
use crate::auth::AuthContext;
use crate::catalog::channels::{
    self as channels_catalog, key_count, CreateChannel, ModelLimit, UpdateChannel,
};
use crate::error::{ApiError, ErrorBody};
use crate::manage::body::JsonObject;
use crate::secrets::SecretBox;
use crate::state::AppState;

/// `/api/channels` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels", web::get().to(list))
        .route("/channels", web::post().to(create))
        .route(r"/channels/{id:\d+}", web::get().to(get))
        .route(r"/channels/{id:\d+}", web::patch().to(update))
        .route(r"/channels/{id:\d+}", web::delete().to(delete));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, create, get, update, delete),
    components(schemas(ChannelView, CreateChannel, UpdateChannel, CreatedChannel, ModelLimit))
)]
pub struct Doc;

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
    fn new(c: &channels::Model, key_count: u64, secrets: &SecretBox) -> Result<Self, ApiError> {
        let json =
            |s: &str| serde_json::from_str::<serde_json::Value>(s).map_err(|e| ApiError::Internal(e.into()));
        let headers = secrets.open_map(&c.extra_headers)?;
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

/// A new channel and the keys added with it.
#[derive(Serialize, ToSchema)]
pub struct CreatedChannel {
    /// The channel.
    pub channel: ChannelView,
    /// The keys added.
    pub keys: AddedKeysView,
}

/// List channels.
///
/// Admin only. Every channel, by id, with header values masked and the number
/// of keys each has.
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
        views.push(ChannelView::new(
            c,
            key_count(&state, c.id).await?,
            &state.secrets,
        )?);
    }
    Ok(HttpResponse::Ok().json(views))
}

/// Create a channel.
///
/// Admin only. Creates a channel, optionally with provider keys in `keys` (one
/// per line), and returns it with the keys added; the router serves it at
/// once. Invalid settings are refused with 400, a taken `name` with 409.
#[utoipa::path(post, path = "/api/channels", tag = "channels", operation_id = "create_channel", request_body = CreateChannel,
    security(("bearer" = [])),
    responses((status = 201, body = CreatedChannel), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    body: JsonObject<CreateChannel>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let (channel, added) = channels_catalog::create(&state, body.into_inner()).await?;
    let created = CreatedChannel {
        channel: ChannelView::new(&channel, added.added.len() as u64, &state.secrets)?,
        keys: AddedKeysView::try_from(added)?,
    };
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::created(Action::ChannelCreate, target(&channel), &created),
    )
    .await?;
    Ok(HttpResponse::Created().json(created))
}

/// A channel, as the audit log names it.
pub(super) fn target(channel: &channels::Model) -> Target {
    Target::new("channel", channel.id, &channel.name)
}

/// Get a channel.
///
/// Admin only. One channel by id, with header values masked; 404 when there is
/// no such channel.
#[utoipa::path(get, path = "/api/channels/{id}", tag = "channels", operation_id = "get_channel",
    params(("id" = i64, Path, description = "channel id")), security(("bearer" = [])),
    responses((status = 200, body = ChannelView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let c = channels_catalog::find(&state, *id).await?;
    Ok(HttpResponse::Ok().json(ChannelView::new(
        &c,
        key_count(&state, c.id).await?,
        &state.secrets,
    )?))
}

/// Update a channel.
///
/// Admin only. Changes the fields sent (absent ones stay; a header value sent
/// back masked keeps the stored one); the router applies it at once. Channels
/// declared in the config file, and a taken `name`, are refused with 409.
#[utoipa::path(patch, path = "/api/channels/{id}", tag = "channels", operation_id = "update_channel",
    params(("id" = i64, Path, description = "channel id")), request_body = UpdateChannel, security(("bearer" = [])),
    responses((status = 200, body = ChannelView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    id: web::Path<i64>,
    body: JsonObject<UpdateChannel>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let change = channels_catalog::update(&state, *id, body.into_inner()).await?;
    let keys = key_count(&state, change.after.id).await?;
    let after = ChannelView::new(&change.after, keys, &state.secrets)?;
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::changed(
            Action::ChannelUpdate,
            target(&change.after),
            &ChannelView::new(&change.before, keys, &state.secrets)?,
            &after,
        ),
    )
    .await?;
    Ok(HttpResponse::Ok().json(after))
}

/// Delete a channel.
///
/// Admin only. Deletes the channel and all its keys and refreshes the router;
/// requests already in flight on them finish. Channels declared in the config
/// file are refused with 409.
#[utoipa::path(delete, path = "/api/channels/{id}", tag = "channels", operation_id = "delete_channel",
    params(("id" = i64, Path, description = "channel id")), security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let keys = key_count(&state, *id).await?;
    let gone = channels_catalog::delete(&state, *id).await?;
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::deleted(
            Action::ChannelDelete,
            target(&gone),
            &ChannelView::new(&gone, keys, &state.secrets)?,
        ),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
