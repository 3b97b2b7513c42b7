//! Provider keys (admin): add many at once, tune or disable one, test one.
//! Keys are stored sealed and only ever shown masked; `key_state.rs` shows
//! what their budgets are doing.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use sluice_entity::{channel_keys, channels};
use utoipa::ToSchema;

use crate::audit::{self, Action, Actor, AuditEntry, Target};
use crate::auth::AuthContext;
use crate::catalog::channels::{find as find_channel, ModelLimit};
use crate::catalog::keys::{self as keys_catalog, AddKeys, AddedKeys, UpdateKey};
use crate::error::{ApiError, ErrorBody};
use crate::manage::body::JsonObject;
use crate::relay::probe::{probe_key, ProbeResult};
use crate::state::AppState;

/// Key routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(r"/channels/{id:\d+}/keys", web::get().to(list))
        .route(r"/channels/{id:\d+}/keys", web::post().to(add))
        .route(r"/channels/{id:\d+}/test", web::post().to(test_channel))
        .route(r"/keys/{id:\d+}", web::patch().to(update))
        .route(r"/keys/{id:\d+}", web::delete().to(delete))
        .route(r"/keys/{id:\d+}/test", web::post().to(test_key));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, add, update, delete, test_key, test_channel),
    components(schemas(KeyView, AddKeys, AddedKeysView, UpdateKey, TestRequest, ProbeResult))
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

/// What adding keys did.
#[derive(Serialize, ToSchema, Debug)]
#[schema(as = AddedKeys)]
pub struct AddedKeysView {
    /// The keys added.
    pub added: Vec<KeyView>,
    /// Lines skipped because the channel already has that key.
    pub duplicates: usize,
}

impl TryFrom<AddedKeys> for AddedKeysView {
    type Error = ApiError;

    fn try_from(a: AddedKeys) -> Result<Self, ApiError> {
        Ok(AddedKeysView {
            added: a.added.iter().map(KeyView::try_from).collect::<Result<_, _>>()?,
            duplicates: a.duplicates,
        })
    }
}

/// Which model to test with.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// A model the channel serves (default: its first).
    #[serde(default)]
    pub model: Option<String>,
}

/// List a channel's keys.
///
/// Admin only. Every key of the channel, by id, shown masked with its limits
/// and status; 404 when there is no such channel.
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

/// Add keys to a channel.
///
/// Admin only. Takes provider keys one per line in `keys`; they are stored
/// sealed and serve at once. Keys the channel already has are skipped and
/// counted in `duplicates`. No keys is refused with 400; a channel declared in
/// the config file with 409.
#[utoipa::path(post, path = "/api/channels/{id}/keys", tag = "channels", operation_id = "add_keys",
    params(("id" = i64, Path, description = "channel id")), request_body = AddKeys, security(("bearer" = [])),
    responses((status = 201, body = AddedKeysView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    id: web::Path<i64>,
    body: JsonObject<AddKeys>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let added = AddedKeysView::try_from(keys_catalog::add(&state, *id, &body.keys).await?)?;
    let actor = Actor::new(&auth, &req, &state.settings);
    for key in &added.added {
        let entry = AuditEntry::created(Action::KeyCreate, Target::new("key", key.id, &key.mask), key);
        audit::record(&state.db, &actor, entry).await?;
    }
    Ok(HttpResponse::Created().json(added))
}

/// A key, as the audit log names it: by its mask, never the key.
fn target(key: &channel_keys::Model) -> Target {
    Target::new("key", key.id, &key.mask)
}

/// Update a key.
///
/// Admin only. Tunes a key's limits (a number overrides the channel's, `null`
/// inherits it again), or disables or enables it (enabling also clears a
/// health disable); the router applies it at once. Keys of channels declared in
/// the config file only take `status`: other changes are refused with 409.
#[utoipa::path(patch, path = "/api/keys/{id}", tag = "channels", operation_id = "update_key",
    params(("id" = i64, Path, description = "key id")), request_body = UpdateKey, security(("bearer" = [])),
    responses((status = 200, body = KeyView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    id: web::Path<i64>,
    body: JsonObject<UpdateKey>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let change = keys_catalog::update(&state, *id, body.into_inner(), &auth.user.username).await?;
    let after = KeyView::try_from(&change.after)?;
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::changed(
            Action::KeyUpdate,
            target(&change.after),
            &KeyView::try_from(&change.before)?,
            &after,
        ),
    )
    .await?;
    Ok(HttpResponse::Ok().json(after))
}

/// Delete a key.
///
/// Admin only. Removes the key and refreshes the router; requests already in
/// flight on it finish. Keys of channels declared in the config file are
/// refused with 409.
#[utoipa::path(delete, path = "/api/keys/{id}", tag = "channels", operation_id = "delete_key",
    params(("id" = i64, Path, description = "key id")), security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let gone = keys_catalog::delete(&state, *id).await?;
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::deleted(Action::KeyDelete, target(&gone), &KeyView::try_from(&gone)?),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

fn pick_model(channel: &channels::Model, asked: Option<String>) -> Result<String, ApiError> {
    let models: Vec<String> =
        serde_json::from_str(&channel.models).map_err(|e| ApiError::Internal(e.into()))?;
    match asked {
        Some(m) if models.contains(&m) => Ok(m),
        Some(m) => Err(ApiError::NotFound(format!(
            "channel '{}' does not serve '{m}'; it serves: {}",
            channel.name,
            models.join(", ")
        ))),
        None => models
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::Conflict("the channel serves no model; add one first".into())),
    }
}

/// Test a key.
///
/// Admin only. Sends a tiny request for `model` (default: the channel's first)
/// through this exact key, even one health checks disabled, and reports the
/// result; it counts against the key's budget. A model the channel does not
/// serve is refused with 404; a channel that serves no model yet with 409.
#[utoipa::path(post, path = "/api/keys/{id}/test", tag = "channels", operation_id = "test_key",
    params(("id" = i64, Path, description = "key id")), request_body = TestRequest, security(("bearer" = [])),
    responses((status = 200, body = ProbeResult), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such key or channel, or the channel does not serve the model asked for", body = ErrorBody),
        (status = 409, description = "The channel serves no model yet", body = ErrorBody)))]
pub async fn test_key(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    id: web::Path<i64>,
    body: JsonObject<TestRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let (key, channel) = keys_catalog::find(&state, *id).await?;
    let model = pick_model(&channel, body.into_inner().model)?;
    let result = probe_key(&state, key.id, &model).await;
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::outcome(Action::KeyTest, target(&key), &result),
    )
    .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// Test every key of a channel.
///
/// Admin only. Sends a tiny request for `model` (default: the channel's first)
/// through each of the channel's keys at once and returns one result per key;
/// each counts against its key's budget. Refusals are as for testing one key.
#[utoipa::path(post, path = "/api/channels/{id}/test", tag = "channels", operation_id = "test_channel",
    params(("id" = i64, Path, description = "channel id")), request_body = TestRequest, security(("bearer" = [])),
    responses((status = 200, body = Vec<ProbeResult>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such key or channel, or the channel does not serve the model asked for", body = ErrorBody),
        (status = 409, description = "The channel serves no model yet", body = ErrorBody)))]
pub async fn test_channel(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    id: web::Path<i64>,
    body: JsonObject<TestRequest>,
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
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::outcome(
            Action::ChannelTest,
            super::channels::target(&channel),
            // An object, like every other entry's `after`.
            &serde_json::json!({ "results": results }),
        ),
    )
    .await?;
    Ok(HttpResponse::Ok().json(results))
}
