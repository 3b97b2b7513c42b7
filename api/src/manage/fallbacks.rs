//! `/api/fallbacks` (admin): fallback chains, virtual models that try an
//! ordered list of models. Every change reaches the relay at once; chains
//! declared in the config file are read-only here.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sluice_entity::fallbacks;
use utoipa::ToSchema;

use crate::audit::{self, Action, Actor, AuditEntry, Target};
use crate::auth::AuthContext;
use crate::catalog::fallbacks::{self as catalog, CreateFallback, UpdateFallback};
use crate::error::{ApiError, ErrorBody};
use crate::manage::body::JsonObject;
use crate::state::AppState;

/// `/api/fallbacks` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/fallbacks", web::get().to(list))
        .route("/fallbacks", web::post().to(create))
        .route(r"/fallbacks/{id:\d+}", web::get().to(get))
        .route(r"/fallbacks/{id:\d+}", web::patch().to(update))
        .route(r"/fallbacks/{id:\d+}", web::delete().to(delete));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, create, get, update, delete),
    components(schemas(FallbackView, CreateFallback, UpdateFallback))
)]
pub struct Doc;

/// A fallback chain as the API shows it.
#[derive(Serialize, ToSchema, Debug)]
pub struct FallbackView {
    /// Id.
    pub id: i64,
    /// The name clients ask for.
    pub name: String,
    /// Models tried, in order.
    pub models: Vec<String>,
    /// Seconds each step but the last waits for a key with room.
    pub wait_secs: i64,
    /// `api`, or `config` when declared in the config file (read-only here).
    pub managed_by: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl FallbackView {
    fn new(row: &fallbacks::Model) -> Result<Self, ApiError> {
        Ok(FallbackView {
            id: row.id,
            name: row.name.clone(),
            models: catalog::chain(row)?.models,
            wait_secs: row.wait_secs,
            managed_by: row.managed_by.clone(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// List fallback chains.
///
/// Admin only. Every fallback chain (a virtual model name that tries an
/// ordered list of models), by id.
#[utoipa::path(get, path = "/api/fallbacks", tag = "channels", operation_id = "list_fallbacks", security(("bearer" = [])),
    responses((status = 200, body = Vec<FallbackView>), (status = 403, body = ErrorBody)))]
pub async fn list(state: web::Data<AppState>, auth: AuthContext) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let views = catalog::list(&state)
        .await?
        .iter()
        .map(FallbackView::new)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(views))
}

/// Create a fallback chain.
///
/// Admin only. Clients can ask for its `name` at once; naming it after a served
/// model makes the chain stand for that model. Invalid `models` or `wait_secs`
/// are refused with 400, a taken `name` with 409.
#[utoipa::path(post, path = "/api/fallbacks", tag = "channels", operation_id = "create_fallback", request_body = CreateFallback,
    security(("bearer" = [])),
    responses((status = 201, body = FallbackView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    body: JsonObject<CreateFallback>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let row = catalog::create(&state, body.into_inner()).await?;
    let view = FallbackView::new(&row)?;
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::created(Action::FallbackCreate, target(&row), &view),
    )
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// A chain, as the audit log names it.
fn target(row: &fallbacks::Model) -> Target {
    Target::new("fallback", row.id, &row.name)
}

/// Get a fallback chain.
///
/// Admin only. One fallback chain by id; 404 when there is none.
#[utoipa::path(get, path = "/api/fallbacks/{id}", tag = "channels", operation_id = "get_fallback",
    params(("id" = i64, Path, description = "fallback id")), security(("bearer" = [])),
    responses((status = 200, body = FallbackView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    Ok(HttpResponse::Ok().json(FallbackView::new(&catalog::find(&state, *id).await?)?))
}

/// Update a fallback chain.
///
/// Admin only. Changes the fields sent (absent ones stay; `models` replaces the
/// whole list); requests arriving after it use the new steps. Chains declared
/// in the config file, and a taken `name`, are refused with 409.
#[utoipa::path(patch, path = "/api/fallbacks/{id}", tag = "channels", operation_id = "update_fallback",
    params(("id" = i64, Path, description = "fallback id")), request_body = UpdateFallback, security(("bearer" = [])),
    responses((status = 200, body = FallbackView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    id: web::Path<i64>,
    body: JsonObject<UpdateFallback>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let change = catalog::update(&state, *id, body.into_inner()).await?;
    let after = FallbackView::new(&change.after)?;
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::changed(
            Action::FallbackUpdate,
            target(&change.after),
            &FallbackView::new(&change.before)?,
            &after,
        ),
    )
    .await?;
    Ok(HttpResponse::Ok().json(after))
}

/// Delete a fallback chain.
///
/// Admin only. Its name is no longer served (unless a model has that name).
/// Chains declared in the config file are refused with 409.
#[utoipa::path(delete, path = "/api/fallbacks/{id}", tag = "channels", operation_id = "delete_fallback",
    params(("id" = i64, Path, description = "fallback id")), security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let gone = catalog::delete(&state, *id).await?;
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::deleted(Action::FallbackDelete, target(&gone), &FallbackView::new(&gone)?),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
