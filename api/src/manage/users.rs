//! `/api/users`: admins manage accounts; everyone reads their own.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use sluice_actors::ledger::{ChangeQuota, QuotaChange, QuotaTarget};
use sluice_entity::users;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::{ErrorBody, Page, Status};
use crate::auth::password::NewPassword;
use crate::auth::{AuthContext, Role};
use crate::billing::{Quota, MAX_QUOTA};
use crate::state::AppState;

/// `/api/users` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/me", web::get().to(me))
        .route("/users", web::get().to(list))
        .route("/users", web::post().to(create))
        .route("/users/{id}", web::get().to(get))
        .route("/users/{id}", web::patch().to(update))
        .route("/users/{id}/topup", web::post().to(top_up));
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
        }
    }
}

/// A new account, made by an admin.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login name: 3–64 letters, digits, `.`, `_` or `-`.
    pub username: String,
    /// Password (at least 10 characters); the user need not change it.
    pub password: String,
    /// Mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Role (default `user`; only root may make admins).
    #[serde(default)]
    pub role: Option<Role>,
    /// Price group (default `default`).
    #[serde(default)]
    pub group: Option<String>,
    /// Starting quota (default 0).
    #[serde(default)]
    pub quota: Option<i64>,
}

/// Changes to an account; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Role (only root may grant or take admin).
    #[serde(default)]
    pub role: Option<Role>,
    /// Price group.
    #[serde(default)]
    pub group: Option<String>,
    /// `enabled` or `disabled`; disabling stops the user's tokens at once.
    #[serde(default)]
    pub status: Option<Status>,
    /// Set the quota left to this value.
    #[serde(default)]
    pub quota: Option<i64>,
}

/// Quota to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUp {
    /// Quota units to add (positive).
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

/// A validated login name.
pub struct Username(String);

impl Username {
    /// 3–64 characters of letters, digits, `.`, `_`, `-`.
    pub fn parse(s: &str) -> Result<Username, ApiError> {
        let s = s.trim();
        let ok = (3..=64).contains(&s.chars().count())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Username(s.to_string()))
        } else {
            Err(ApiError::BadRequest(
                "username must be 3–64 characters of letters, digits, '.', '_' or '-'".into(),
            ))
        }
    }

    /// The name.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A validated mail address (the shape only; delivery proves the rest).
pub fn parse_email(s: &str) -> Result<String, ApiError> {
    let s = s.trim();
    let valid = s.len() <= 255
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !s.chars().any(|c| c.is_whitespace() || c == '<' || c == '>');
    if valid {
        Ok(s.to_lowercase())
    } else {
        Err(ApiError::BadRequest(format!("'{s}' is not a mail address")))
    }
}

/// A validated group name.
pub fn parse_group(s: &str) -> Result<String, ApiError> {
    let s = s.trim();
    if (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        Ok(s.to_string())
    } else {
        Err(ApiError::BadRequest(
            "group must be 1–64 letters, digits, '_' or '-'".into(),
        ))
    }
}

/// Your own account.
#[utoipa::path(operation_id = "get_me", get, path = "/api/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
pub async fn me(auth: AuthContext) -> HttpResponse {
    HttpResponse::Ok().json(UserView::from(&auth.user))
}

/// List accounts (admin).
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

/// Create an account (admin).
#[utoipa::path(operation_id = "create_user", post, path = "/api/users", tag = "users", request_body = CreateUser, security(("bearer" = [])),
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: AuthContext,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let body = body.into_inner();
    let role = body.role.unwrap_or(Role::User);
    check_may_grant(&auth, role)?;
    let username = Username::parse(&body.username)?.into_inner();
    let email = body.email.as_deref().map(parse_email).transpose()?;
    let group = parse_group(body.group.as_deref().unwrap_or("default"))?;
    let quota = Quota::parse(body.quota.unwrap_or(0), "quota")?.get();
    let hash = NewPassword::parse(body.password)?.hash().await?;
    let user = insert_user(&state, username, email, role, group, quota, Some(hash)).await?;
    Ok(HttpResponse::Created().json(UserView::from(&user)))
}

/// Insert an account, turning a duplicate name or mail into 409.
pub async fn insert_user(
    state: &AppState,
    username: String,
    email: Option<String>,
    role: Role,
    group: String,
    quota: i64,
    password_hash: Option<String>,
) -> Result<users::Model, ApiError> {
    let taken = users::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(users::Column::Username.eq(username.clone()))
                .add(users::Column::Email.eq(email.clone())),
        )
        .count(&state.db)
        .await?;
    if taken > 0 {
        return Err(ApiError::Conflict(
            "that username or mail address is taken".into(),
        ));
    }
    let now = Utc::now();
    let user = users::ActiveModel {
        username: Set(username),
        email: Set(email),
        password_hash: Set(password_hash),
        role: Set(role.as_str().into()),
        group_name: Set(group),
        status: Set("enabled".into()),
        quota: Set(quota),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&state.db)
    .await?;
    state.tokens.set_user(user.id, true, &user.group_name);
    Ok(user)
}

/// One account (admin).
#[utoipa::path(operation_id = "get_user", get, path = "/api/users/{id}", tag = "users", params(("id" = i64, Path, description = "user id")),
    security(("bearer" = [])), responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let user = find(&state, *id).await?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

async fn find(state: &AppState, id: i64) -> Result<users::Model, ApiError> {
    users::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id}")))
}

/// Only root grants or takes admin, and nobody edits root but root.
fn check_may_manage(auth: &AuthContext, target: &users::Model) -> Result<(), ApiError> {
    let target_role = Role::parse(&target.role).unwrap_or(Role::User);
    if target_role >= Role::Admin && auth.role != Role::Root && target.id != auth.id() {
        return Err(ApiError::Forbidden("only root manages admins".into()));
    }
    if target_role == Role::Root && auth.role != Role::Root {
        return Err(ApiError::Forbidden("only root manages root".into()));
    }
    Ok(())
}

fn check_may_grant(auth: &AuthContext, role: Role) -> Result<(), ApiError> {
    match role {
        Role::Root => Err(ApiError::Forbidden("there is only one root".into())),
        Role::Admin if auth.role != Role::Root => Err(ApiError::Forbidden("only root makes admins".into())),
        _ => Ok(()),
    }
}

/// Change an account (admin): mail, role, group, status, quota.
#[utoipa::path(operation_id = "update_user", patch, path = "/api/users/{id}", tag = "users", params(("id" = i64, Path, description = "user id")),
    request_body = UpdateUser, security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
    body: web::Json<UpdateUser>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let body = body.into_inner();
    let user = find(&state, *id).await?;
    check_may_manage(&auth, &user)?;
    let mut row: users::ActiveModel = user.clone().into();
    if let Some(email) = &body.email {
        row.email = Set(Some(parse_email(email)?));
    }
    if let Some(role) = body.role {
        if user.role == "root" && role != Role::Root {
            return Err(ApiError::Forbidden("root stays root".into()));
        }
        if role.as_str() != user.role {
            check_may_grant(&auth, role)?;
            if auth.role != Role::Root {
                return Err(ApiError::Forbidden("only root changes roles".into()));
            }
        }
        row.role = Set(role.as_str().into());
    }
    if let Some(group) = &body.group {
        row.group_name = Set(parse_group(group)?);
    }
    if let Some(status) = body.status {
        if status == Status::Disabled && (user.id == auth.id() || user.role == "root") {
            return Err(ApiError::Forbidden("you cannot disable yourself or root".into()));
        }
        row.status = Set(status.as_str().into());
    }
    let new_quota = body.quota.map(|q| Quota::parse(q, "quota")).transpose()?;
    row.updated_at = Set(Utc::now());
    let mut updated = row.update(&state.db).await.map_err(|e| match e {
        sea_orm::DbErr::Query(_) | sea_orm::DbErr::Exec(_) => {
            ApiError::Conflict("that mail address is taken".into())
        }
        other => other.into(),
    })?;
    if let Some(quota) = new_quota {
        change_quota(&state, updated.id, QuotaChange::Set(quota.get())).await?;
        updated = find(&state, updated.id).await?;
    }
    state
        .tokens
        .set_user(updated.id, updated.status == "enabled", &updated.group_name);
    Ok(HttpResponse::Ok().json(UserView::from(&updated)))
}

/// Add quota to an account (admin).
#[utoipa::path(operation_id = "top_up_user", post, path = "/api/users/{id}/topup", tag = "users", params(("id" = i64, Path, description = "user id")),
    request_body = TopUp, security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn top_up(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
    body: web::Json<TopUp>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let amount = Quota::parse(body.amount, "amount")?.get();
    if amount == 0 {
        return Err(ApiError::BadRequest("amount must be positive".into()));
    }
    let user = find(&state, *id).await?;
    check_may_manage(&auth, &user)?;
    if user.quota.saturating_add(amount) > MAX_QUOTA {
        return Err(ApiError::BadRequest(format!(
            "the quota would pass the limit of {MAX_QUOTA}"
        )));
    }
    change_quota(&state, user.id, QuotaChange::Add(amount)).await?;
    Ok(HttpResponse::Ok().json(UserView::from(&find(&state, user.id).await?)))
}

async fn change_quota(state: &AppState, user_id: i64, change: QuotaChange) -> Result<(), ApiError> {
    state
        .ledger
        .send(ChangeQuota {
            target: QuotaTarget::User(user_id),
            change,
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))
}
