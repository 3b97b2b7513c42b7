//! `/api/users`: admins manage accounts; everyone reads their own.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use sluice_entity::users;
use utoipa::{IntoParams, ToSchema};

use super::Page;
use crate::audit::{self, Action, Actor, AuditEntry, Target};
use crate::auth::{AuthContext, Role};
use crate::catalog::users::{self as users_catalog, CreateUser, UpdateUser};
use crate::error::{ApiError, ErrorBody};
use crate::manage::body::JsonObject;
use crate::state::AppState;

/// `/api/users` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/me", web::get().to(me))
        .route("/users", web::get().to(list))
        .route("/users", web::post().to(create))
        .route(r"/users/{id:\d+}", web::get().to(get))
        .route(r"/users/{id:\d+}", web::patch().to(update))
        .route(r"/users/{id:\d+}/topup", web::post().to(top_up));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(me, list, create, get, update, top_up),
    components(schemas(UserView, CreateUser, UpdateUser, TopUp, Role))
)]
pub struct Doc;

/// An account as the API shows it (never the password hash).
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct UserView {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Mail address.
    pub email: Option<String>,
    /// Role.
    pub role: Role,
    /// Price group.
    pub group: String,
    /// `enabled` or `disabled`.
    pub status: String,
    /// Quota left, in quota units.
    pub quota: i64,
    /// Quota spent.
    pub used_quota: i64,
    /// Requests made.
    pub request_count: i64,
    /// Whether the password must be changed before anything else.
    pub must_change_password: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Requests per window the user may make, all tokens together (0 = no limit of its own).
    pub rpm: i64,
    /// Tokens per window (0 = no limit).
    pub tpm: i64,
    /// Requests in flight at once (0 = no limit).
    pub max_concurrency: i32,
}

impl From<&users::Model> for UserView {
    fn from(u: &users::Model) -> Self {
        UserView {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            role: Role::parse(&u.role).unwrap_or(Role::User),
            group: u.group_name.clone(),
            status: u.status.clone(),
            quota: u.quota,
            used_quota: u.used_quota,
            request_count: u.request_count,
            must_change_password: u.must_change_password,
            created_at: u.created_at,
            rpm: u.rpm,
            tpm: u.tpm,
            max_concurrency: u.max_concurrency,
        }
    }
}

/// Quota to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUp {
    /// Quota units to add (positive).
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub amount: i64,
}

/// Paging through a list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Return items after this cursor (from `next_cursor`).
    pub cursor: Option<i64>,
    /// At most this many items (1–500, default 100).
    pub limit: Option<u64>,
}

/// Get your own account.
///
/// Any signed-in user: their username, mail, role, group, status, quota and
/// limits.
#[utoipa::path(operation_id = "get_me", get, path = "/api/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
pub async fn me(auth: AuthContext) -> HttpResponse {
    HttpResponse::Ok().json(UserView::from(&auth.user))
}

/// List accounts.
///
/// Admin only. Every account, by id. Paged with `limit` (1–500, default 100)
/// and `cursor` (the `next_cursor` of the previous page).
#[utoipa::path(operation_id = "list_users", get, path = "/api/users", tag = "users", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<UserView>), (status = 403, body = ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: AuthContext,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let limit = super::page_limit(q.limit)?;
    let mut query = users::Entity::find()
        .order_by_asc(users::Column::Id)
        .limit(limit + 1);
    if let Some(cursor) = q.cursor {
        query = query.filter(users::Column::Id.gt(cursor));
    }
    let rows = query.all(&state.db).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |u| u.id, |u| UserView::from(&u))))
}

/// Create an account.
///
/// Admin only (only root creates admins; nobody creates a root, 403). Creates an
/// enabled account with the password given. Invalid fields or a password the
/// policy refuses are a 400; a taken username or mail address is a 409.
#[utoipa::path(operation_id = "create_user", post, path = "/api/users", tag = "users", request_body = CreateUser, security(("bearer" = [])),
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    body: JsonObject<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let user = users_catalog::create(&state, &auth, body.into_inner()).await?;
    let view = UserView::from(&user);
    let action = if view.role == Role::Admin {
        Action::AdminCreate
    } else {
        Action::UserCreate
    };
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::created(action, target(&user), &view),
    )
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// An account, as the audit log names it.
fn target(user: &users::Model) -> Target {
    Target::new("user", user.id, &user.username)
}

/// What a change to an account did, the weightiest first: one PATCH may change
/// several fields, and its entry shows them all.
fn update_action(before: &users::Model, after: &users::Model) -> Action {
    if before.role != after.role {
        Action::UserRole
    } else if before.email != after.email {
        Action::UserEmail
    } else if before.status != after.status && after.status == "disabled" {
        Action::UserDisable
    } else if before.status != after.status {
        Action::UserEnable
    } else {
        Action::UserUpdate
    }
}

/// Get an account.
///
/// Admin only. One account by id; 404 when there is none.
#[utoipa::path(operation_id = "get_user", get, path = "/api/users/{id}", tag = "users", params(("id" = i64, Path, description = "user id")),
    security(("bearer" = [])), responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let user = users_catalog::find(&state, *id).await?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

/// Update an account.
///
/// Admin only. Changes mail, role, group, status, quota or limits; absent
/// fields stay. Only root manages other admins and changes roles, and nobody disables
/// themselves or root (403). Disabling an account ends all its sessions. A mail
/// address another account has is refused with 409.
#[utoipa::path(operation_id = "update_user", patch, path = "/api/users/{id}", tag = "users", params(("id" = i64, Path, description = "user id")),
    request_body = UpdateUser, security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    id: web::Path<i64>,
    body: JsonObject<UpdateUser>,
) -> Result<HttpResponse, ApiError> {
    let change = users_catalog::update(&state, &auth, *id, body.into_inner()).await?;
    let (before, after) = (UserView::from(&change.before), UserView::from(&change.after));
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::changed(
            update_action(&change.before, &change.after),
            target(&change.after),
            &before,
            &after,
        ),
    )
    .await?;
    Ok(HttpResponse::Ok().json(after))
}

/// Top up an account's quota.
///
/// Admin only (only root tops up other admins, 403). Adds a positive `amount` of
/// quota units to the account's quota; an amount that is not positive, or that
/// would take the quota past its limit, is refused with 400.
#[utoipa::path(operation_id = "top_up_user", post, path = "/api/users/{id}/topup", tag = "users", params(("id" = i64, Path, description = "user id")),
    request_body = TopUp, security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn top_up(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    id: web::Path<i64>,
    body: JsonObject<TopUp>,
) -> Result<HttpResponse, ApiError> {
    let change = users_catalog::top_up(&state, &auth, *id, body.amount).await?;
    let (before, after) = (UserView::from(&change.before), UserView::from(&change.after));
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::changed(Action::UserTopUp, target(&change.after), &before, &after),
    )
    .await?;
    Ok(HttpResponse::Ok().json(after))
}
