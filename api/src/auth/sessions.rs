//! Sessions: log in, refresh (rotating the refresh token), log out, change
//! the password. Refresh tokens are random, stored hashed, single-use; using
//! one twice revokes every session of that account (it was stolen). A browser
//! sending `Sluice-Session: cookie` gets its tokens as HttpOnly cookies instead
//! (see [`super::cookies`]).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sluice_entity::{refresh_tokens, users};
use utoipa::ToSchema;

use super::context::PendingAuth;
use super::cookies;
use super::password::{self, NewPassword};
use crate::error::ApiError;
use crate::manage::users::UserView;
use crate::secrets::{hash_hex, random_hex};
use crate::state::AppState;

/// `/api/auth` session routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/login", web::post().to(login))
        .route("/auth/refresh", web::post().to(refresh))
        .route("/auth/logout", web::post().to(logout))
        .route("/auth/password", web::post().to(change_password));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(login, refresh, logout, change_password),
    components(schemas(LoginRequest, RefreshRequest, ChangePasswordRequest, Session))
)]
pub struct Doc;

/// Credentials.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Account name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A refresh token, to rotate or revoke. A browser session sends no body: its
/// refresh token travels in a cookie.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    pub refresh_token: String,
}

impl RefreshRequest {
    /// The refresh token of a request: from the JSON body, or from the cookie
    /// when a browser session sends no body.
    fn from_request(req: &HttpRequest, body: &[u8]) -> Result<String, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            if cookies::wants_cookies(req) {
                // A browser without a session cookie is simply not signed in.
                return cookies::refresh_token(req)
                    .ok_or_else(|| ApiError::Unauthorized("no session here; sign in".into()));
            }
            return Err(ApiError::invalid(
                "refresh_token",
                "send {\"refresh_token\": …}, or the session cookie with 'Sluice-Session: cookie'",
            ));
        }
        serde_json::from_slice::<RefreshRequest>(body)
            .map(|r| r.refresh_token)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password now.
    pub current_password: String,
    /// The new one (at least 10 characters).
    pub new_password: String,
}

/// A session: a short-lived access token and a refresh token. With
/// `Sluice-Session: cookie` both travel in HttpOnly cookies and are absent here.
#[derive(Serialize, ToSchema)]
pub struct Session {
    /// JWT for `Authorization: Bearer` (absent for a cookie session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// Single-use token for `POST /api/auth/refresh` (absent for a cookie session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When true, only `POST /api/auth/password` works until the password is changed.
    pub must_change_password: bool,
    /// Who is logged in.
    pub user: UserView,
}

/// Issue a session for `user`, storing the refresh token's hash.
pub async fn open_session(
    state: &AppState,
    db: &impl ConnectionTrait,
    user: &users::Model,
) -> Result<Session, ApiError> {
    let refresh = random_hex(32);
    let now = Utc::now();
    refresh_tokens::ActiveModel {
        user_id: Set(user.id),
        token_hash: Set(hash_hex(&refresh)),
        expires_at: Set(now + Duration::seconds(state.settings.auth.refresh_ttl_secs as i64)),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(Session {
        access_token: Some(state.jwt.issue(user.id, &user.role)),
        token_type: "Bearer".into(),
        expires_in: state.jwt.ttl_secs(),
        refresh_token: Some(refresh),
        must_change_password: user.must_change_password,
        user: UserView::from(user),
    })
}

/// Log in with a username and password.
#[utoipa::path(operation_id = "login", post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Session), (status = 401, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let address = req.peer_addr().map(|a| a.ip());
    state.login_limiter.check(&body.username, address)?;
    let user = users::Entity::find()
        .filter(users::Column::Username.eq(body.username.clone()))
        .one(&state.db)
        .await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let refused = || ApiError::Unauthorized("wrong username or password".into());
    if !password::verify(body.password, hash).await {
        return Err(refused());
    }
    let user = user.ok_or_else(refused)?;
    if user.status != "enabled" {
        return Err(ApiError::Unauthorized("this account is disabled".into()));
    }
    let session = open_session(&state, &state.db, &user).await?;
    Ok(cookies::respond(&req, &state.settings, StatusCode::OK, session))
}

/// Trade a refresh token for a new session (the old token stops working).
#[utoipa::path(operation_id = "refresh_session", post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Session), (status = 401, body = crate::error::ErrorBody)))]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let token = RefreshRequest::from_request(&req, &body)?;
    let txn = state.db.begin().await?;
    let invalid = || ApiError::Unauthorized("refresh token is invalid, used or expired; log in again".into());
    let row = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(hash_hex(&token)))
        .one(&txn)
        .await?
        .ok_or_else(invalid)?;
    let now = Utc::now();
    if row.revoked_at.is_some() {
        // A used token came back: someone else holds a copy. End every session.
        revoke_all(&txn, row.user_id).await?;
        txn.commit().await?;
        tracing::warn!(
            user_id = row.user_id,
            "refresh token reused; all sessions revoked"
        );
        return Err(invalid());
    }
    if row.expires_at <= now {
        return Err(invalid());
    }
    let user = users::Entity::find_by_id(row.user_id)
        .one(&txn)
        .await?
        .ok_or_else(invalid)?;
    if user.status != "enabled" {
        return Err(ApiError::Unauthorized("this account is disabled".into()));
    }
    let session = open_session(&state, &txn, &user).await?;
    let new_hash = hash_hex(
        session
            .refresh_token
            .as_deref()
            .expect("a new session has a refresh token"),
    );
    let new_id = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(new_hash))
        .one(&txn)
        .await?
        .map(|r| r.id);
    let mut old: refresh_tokens::ActiveModel = row.into();
    old.revoked_at = Set(Some(now));
    old.replaced_by = Set(new_id);
    old.update(&txn).await?;
    txn.commit().await?;
    Ok(cookies::respond(&req, &state.settings, StatusCode::OK, session))
}

/// End a session: the refresh token stops working.
#[utoipa::path(operation_id = "logout", post, path = "/api/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "logged out")))]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let mut res = HttpResponse::NoContent();
    if cookies::wants_cookies(&req) {
        cookies::clear(&mut res, &state.settings);
    }
    let token = match RefreshRequest::from_request(&req, &body) {
        Ok(token) => token,
        // A browser whose cookie is already gone is logged out: nothing to revoke.
        Err(_) if cookies::wants_cookies(&req) && body.is_empty() => return Ok(res.finish()),
        Err(e) => return Err(e),
    };
    refresh_tokens::Entity::update_many()
        .col_expr(
            refresh_tokens::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(refresh_tokens::Column::TokenHash.eq(hash_hex(&token)))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(&state.db)
        .await?;
    Ok(res.finish())
}

/// Change your password; ends your other sessions and opens a new one.
#[utoipa::path(operation_id = "change_password", post, path = "/api/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    security(("bearer" = [])),
    responses((status = 200, body = Session), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: PendingAuth,
    body: web::Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let user = auth.0.user;
    if !password::verify(body.current_password, user.password_hash.clone()).await {
        return Err(ApiError::invalid("current_password", "current_password is wrong"));
    }
    if body.new_password.is_empty() {
        return Err(ApiError::invalid("new_password", "new_password is required"));
    }
    let hash = NewPassword::parse(body.new_password, "new_password")?
        .hash()
        .await?;
    let txn = state.db.begin().await?;
    let mut row: users::ActiveModel = user.into();
    row.password_hash = Set(Some(hash));
    row.must_change_password = Set(false);
    row.updated_at = Set(Utc::now());
    let user = row.update(&txn).await?;
    revoke_all(&txn, user.id).await?;
    let session = open_session(&state, &txn, &user).await?;
    txn.commit().await?;
    Ok(cookies::respond(&req, &state.settings, StatusCode::OK, session))
}

/// Revoke every live refresh token of a user.
pub async fn revoke_all(db: &impl ConnectionTrait, user_id: i64) -> Result<(), ApiError> {
    refresh_tokens::Entity::update_many()
        .col_expr(
            refresh_tokens::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(refresh_tokens::Column::UserId.eq(user_id))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}
