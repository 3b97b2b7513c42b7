//! `/api/tokens`: each user creates, lists, edits, disables and deletes their
//! own `sk-` tokens. The full key is shown once, at creation. Every change
//! reaches the relay's token cache in the same request.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use sluice_entity::tokens;
use utoipa::{IntoParams, ToSchema};

use super::{page_limit, Page};
use crate::audit::{self, Action, Actor, AuditEntry, Target};
use crate::auth::cookies::no_store;
use crate::auth::AuthContext;
use crate::catalog::tokens::{self as tokens_catalog, CreateToken, UpdateToken};
use crate::error::{ApiError, ErrorBody};
use crate::manage::body::JsonObject;
use crate::state::AppState;

/// `/api/tokens` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens", web::get().to(list))
        .route("/tokens", web::post().to(create))
        .route(r"/tokens/{id:\d+}", web::get().to(get))
        .route(r"/tokens/{id:\d+}", web::patch().to(update))
        .route(r"/tokens/{id:\d+}", web::delete().to(delete));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, create, get, update, delete),
    components(schemas(TokenView, CreatedToken, CreateToken, UpdateToken, TokenQuota))
)]
pub struct Doc;

/// A token's quota.
#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub struct TokenQuota {
    /// No limit of its own (the owner's quota still applies).
    pub unlimited: bool,
    /// Units left when limited.
    pub remaining: i64,
    /// Units spent.
    pub used: i64,
}

/// A token as listed: never the key, only its prefix.
#[derive(Serialize, ToSchema, Debug)]
pub struct TokenView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// The start of the key, to recognise it.
    pub key_prefix: String,
    /// `enabled` or `disabled`.
    pub status: String,
    /// Models it may use; absent = all.
    pub models: Option<Vec<String>>,
    /// Client networks it may be used from (CIDR); absent = any.
    pub ip_allow: Option<Vec<String>>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Its quota.
    pub quota: TokenQuota,
    /// `api`, or `config` for tokens declared in the config file (read-only here).
    pub managed_by: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last relayed request.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Requests per window it may make (0 = no limit of its own).
    pub rpm: i64,
    /// Tokens per window (0 = no limit).
    pub tpm: i64,
    /// Requests in flight at once (0 = no limit).
    pub max_concurrency: i32,
}

impl TryFrom<&tokens::Model> for TokenView {
    type Error = ApiError;

    fn try_from(t: &tokens::Model) -> Result<Self, ApiError> {
        let json = |s: &Option<String>| -> Result<Option<Vec<String>>, ApiError> {
            s.as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| ApiError::Internal(e.into()))
        };
        Ok(TokenView {
            id: t.id,
            name: t.name.clone(),
            key_prefix: t.key_prefix.clone(),
            status: t.status.clone(),
            models: json(&t.models)?,
            ip_allow: json(&t.ip_allow)?,
            expires_at: t.expires_at,
            quota: TokenQuota {
                unlimited: t.unlimited_quota,
                remaining: t.remaining_quota,
                used: t.used_quota,
            },
            managed_by: t.managed_by.clone(),
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            rpm: t.rpm,
            tpm: t.tpm,
            max_concurrency: t.max_concurrency,
        })
    }
}

/// A new token, with its key: shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    /// The full `sk-` key. Store it now; it cannot be shown again.
    pub key: String,
    /// The token.
    pub token: TokenView,
}

/// Paging.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Items after this cursor.
    pub cursor: Option<i64>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u64>,
}

/// List your tokens.
///
/// Any signed-in user; only their own `sk-` tokens, by id, never the key (only
/// its prefix). Paged with `limit` (1–500, default 100) and `cursor` (the
/// `next_cursor` of the previous page).
#[utoipa::path(operation_id = "list_tokens", get, path = "/api/tokens", tag = "tokens", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<TokenView>), (status = 401, body = ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: AuthContext,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(q.limit)?;
    let mut query = tokens::Entity::find()
        .filter(tokens::Column::UserId.eq(auth.id()))
        .order_by_asc(tokens::Column::Id)
        .limit(limit + 1);
    if let Some(cursor) = q.cursor {
        query = query.filter(tokens::Column::Id.gt(cursor));
    }
    let rows = query.all(&state.db).await?;
    let views = rows
        .iter()
        .map(TokenView::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(Page::from_rows(views, limit, |v| v.id, |v| v)))
}

/// Create a token.
///
/// Any signed-in user, for themselves. The response carries the full `sk-` key
/// once; it cannot be shown again. The relay accepts it at once. Invalid fields
/// are refused with 400; an `expires_at` not ahead, or not before 2038, with 422.
#[utoipa::path(operation_id = "create_token", post, path = "/api/tokens", tag = "tokens", request_body = CreateToken, security(("bearer" = [])),
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, description = "`expires_at` is not ahead, or not before 2038", body = ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    body: JsonObject<CreateToken>,
) -> Result<HttpResponse, ApiError> {
    let (key, row) = tokens_catalog::create(&state, auth.id(), body.into_inner()).await?;
    let token = TokenView::try_from(&row)?;
    // The view, never the key: the log keeps only its prefix.
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::created(Action::TokenCreate, target(&row), &token),
    )
    .await?;
    let mut res = HttpResponse::Created();
    no_store(&mut res);
    Ok(res.json(CreatedToken { key, token }))
}

/// A token, as the audit log names it.
fn target(token: &tokens::Model) -> Target {
    Target::new("token", token.id, &token.name)
}

/// Get one of your tokens.
///
/// Any signed-in user, for their own tokens; someone else's token is a 404, as
/// if it did not exist. Never shows the key, only its prefix.
#[utoipa::path(operation_id = "get_token", get, path = "/api/tokens/{id}", tag = "tokens", params(("id" = i64, Path, description = "token id")),
    security(("bearer" = [])), responses((status = 200, body = TokenView), (status = 404, body = ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let t = tokens_catalog::own(&state, auth.id(), *id).await?;
    Ok(HttpResponse::Ok().json(TokenView::try_from(&t)?))
}

/// Update one of your tokens.
///
/// Any signed-in user, for their own tokens. Absent fields stay; `null` clears
/// `models`, `ip_allow` or `expires_at`, or makes the quota unlimited. The relay
/// sees the change at once. Tokens declared in the config file are refused with
/// 409; an `expires_at` not ahead, or not before 2038, with 422.
#[utoipa::path(operation_id = "update_token", patch, path = "/api/tokens/{id}", tag = "tokens", params(("id" = i64, Path, description = "token id")),
    request_body = UpdateToken, security(("bearer" = [])),
    responses((status = 200, body = TokenView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, description = "`expires_at` is not ahead, or not before 2038", body = ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    id: web::Path<i64>,
    body: JsonObject<UpdateToken>,
) -> Result<HttpResponse, ApiError> {
    let change = tokens_catalog::update(&state, auth.id(), *id, body.into_inner()).await?;
    let after = TokenView::try_from(&change.after)?;
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::changed(
            Action::TokenUpdate,
            target(&change.after),
            &TokenView::try_from(&change.before)?,
            &after,
        ),
    )
    .await?;
    Ok(HttpResponse::Ok().json(after))
}

/// Delete one of your tokens.
///
/// Any signed-in user, for their own tokens. The token stops working at once;
/// its usage logs stay. Tokens declared in the config file are refused with 409.
#[utoipa::path(operation_id = "delete_token", delete, path = "/api/tokens/{id}", tag = "tokens", params(("id" = i64, Path, description = "token id")),
    security(("bearer" = [])), responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let gone = tokens_catalog::delete(&state, auth.id(), *id).await?;
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::deleted(Action::TokenDelete, target(&gone), &TokenView::try_from(&gone)?),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
