//! Sessions: log in, refresh (rotating the refresh token), log out, change
//! the password. A session is a row; its access tokens name it and stop the
//! moment it ends (logout, password change or reset, disabling, theft). Refresh
//! tokens are random, stored hashed, single-use: one used again within
//! `[auth] refresh_reuse_grace_secs` is a second tab refreshing at once and gets its own
//! token; later, someone holds a copy, and every session of the account ends. A
//! token whose session was ended is simply refused. A browser sending
//! `Sluice-Session: cookie` gets its tokens as HttpOnly cookies instead (see
//! [`super::cookies`]).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sluice_entity::{refresh_tokens, sessions, users};
use utoipa::ToSchema;

use super::context::PendingAuth;
use super::cookies;
use super::password::{self, NewPassword};
use crate::error::ApiError;
use crate::manage::body::JsonObject;
use crate::manage::users::UserView;
use crate::relay::client_ip::client_ip;
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
            // No credential at all: like a missing bearer token, a 401.
            return Err(ApiError::Unauthorized(
                "send {\"refresh_token\": …}, or the session cookie with 'Sluice-Session: cookie'".into(),
            ));
        }
        crate::manage::body::parse_object::<RefreshRequest>(body).map(|r| r.refresh_token)
    }
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password now.
    pub current_password: String,
    /// The new one (at least 10 characters, not one character repeated, not the current one).
    #[schema(min_length = 10)]
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

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Its owner logged out.
    Logout,
    /// The password was changed (from another session, or this one).
    Password,
    /// The password was reset with a mailed link.
    PasswordReset,
    /// An admin disabled the account.
    Disabled,
    /// A used refresh token came back after the grace: someone holds a copy.
    Reuse,
}

impl EndReason {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::Password => "password",
            EndReason::PasswordReset => "password_reset",
            EndReason::Disabled => "disabled",
            EndReason::Reuse => "reuse",
        }
    }
}

/// Where a sign-in came from, kept with its session.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// The client's address (through trusted proxies).
    pub address: Option<String>,
    /// Its `User-Agent`, cut to 255 characters.
    pub user_agent: Option<String>,
}

impl Origin {
    /// The origin of a request.
    pub fn of(req: &HttpRequest, state: &AppState) -> Origin {
        Origin {
            address: client_ip(req, &state.settings.relay.trusted_proxies).map(|ip| ip.to_string()),
            user_agent: req
                .headers()
                .get(actix_web::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|ua| ua.chars().take(255).collect()),
        }
    }
}

/// Issue a session for `user`: a new session row, its first refresh token and
/// an access token naming it.
pub async fn open_session(
    state: &AppState,
    db: &impl ConnectionTrait,
    user: &users::Model,
    origin: &Origin,
) -> Result<Session, ApiError> {
    let now = Utc::now();
    let session = sessions::ActiveModel {
        user_id: Set(user.id),
        created_at: Set(now),
        refreshed_at: Set(now),
        address: Set(origin.address.clone()),
        user_agent: Set(origin.user_agent.clone()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    continue_session(state, db, user, session.id).await
}

/// A new refresh token and access token for a live session.
async fn continue_session(
    state: &AppState,
    db: &impl ConnectionTrait,
    user: &users::Model,
    session_id: i64,
) -> Result<Session, ApiError> {
    let refresh = random_hex(32);
    let now = Utc::now();
    refresh_tokens::ActiveModel {
        user_id: Set(user.id),
        token_hash: Set(hash_hex(&refresh)),
        expires_at: Set(now + Duration::seconds(state.settings.auth.refresh_ttl_secs as i64)),
        created_at: Set(now),
        session_id: Set(Some(session_id)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(Session {
        access_token: Some(state.jwt.issue(user.id, &user.role, session_id)),
        token_type: "Bearer".into(),
        expires_in: state.jwt.ttl_secs(),
        refresh_token: Some(refresh),
        must_change_password: user.must_change_password,
        user: UserView::from(user),
    })
}

/// Log in with a username and password.
///
/// Public. Opens a new session and returns a short-lived access token and a
/// single-use refresh token (as HttpOnly cookies instead with
/// `Sluice-Session: cookie`). A wrong username or password, or a disabled
/// account, is refused with 401; repeated failures are refused with 429.
#[utoipa::path(operation_id = "login", post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Session), (status = 401, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonObject<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let origin = Origin::of(&req, &state);
    let address = client_ip(&req, &state.settings.relay.trusted_proxies);
    state.login_limiter.check(&body.username, address)?;
    let user = users::Entity::find()
        .filter(users::Column::Username.eq(body.username.clone()))
        .one(&state.db)
        .await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let refused = || ApiError::Unauthorized("wrong username or password".into());
    if !password::verify(body.password, hash).await {
        state.login_limiter.failed(&body.username, address);
        return Err(refused());
    }
    let user = user.ok_or_else(refused)?;
    if user.status != "enabled" {
        return Err(ApiError::Unauthorized("this account is disabled".into()));
    }
    let session = open_session(&state, &state.db, &user, &origin).await?;
    Ok(cookies::respond(&req, &state.settings, StatusCode::OK, session))
}

/// Refresh a session.
///
/// Public. Trades a refresh token (from the body, or from the cookie for a
/// browser session) for a new access token and refresh token; the old token
/// stops working. A token used again after the short grace means someone holds
/// a copy: every session of the account ends. Invalid, used, expired or
/// ended tokens, and disabled accounts, are refused with 401.
#[utoipa::path(operation_id = "refresh_session", post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Session), (status = 401, body = crate::error::ErrorBody)))]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let token = RefreshRequest::from_request(&req, &body)?;
    // Two tabs refreshing at once can deadlock on MySQL/MariaDB (the second's
    // wait for the token's row blocks the first's insert beside it); the
    // database then rolls one back, which simply tries again.
    let mut attempts = 1;
    loop {
        match refresh_once(&state, &req, &token).await {
            Err(ApiError::Internal(e)) if attempts < 3 && e.downcast_ref().is_some_and(deadlocked) => {
                attempts += 1;
            }
            answer => return answer,
        }
    }
}

/// Whether the database rolled a transaction back to break a deadlock.
fn deadlocked(e: &sea_orm::DbErr) -> bool {
    let text = e.to_string();
    // MySQL/MariaDB error 1213; PostgreSQL SQLSTATE 40P01.
    text.contains("Deadlock found") || text.contains("deadlock detected")
}

async fn refresh_once(state: &AppState, req: &HttpRequest, token: &str) -> Result<HttpResponse, ApiError> {
    let hash = hash_hex(token);
    let txn = state.db.begin().await?;
    let invalid = || ApiError::Unauthorized("refresh token is invalid, used or expired; log in again".into());
    let now = Utc::now();
    // Claim the token first: a write, so that two refreshes with it queue up
    // here (the database's row or file lock) and exactly one rotates it.
    let claimed = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(now))
        .col_expr(refresh_tokens::Column::RevokedReason, Expr::value(ROTATED))
        .filter(refresh_tokens::Column::TokenHash.eq(hash.clone()))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .filter(refresh_tokens::Column::ExpiresAt.gt(now))
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    let row = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(hash))
        .one(&txn)
        .await?
        .ok_or_else(invalid)?;
    if let (false, Some(revoked_at)) = (claimed, row.revoked_at) {
        let rotated = row.revoked_reason.as_deref() == Some(ROTATED);
        // Two tabs of one browser refreshing at once present the same token,
        // and the second is no thief.
        let grace = Duration::seconds(state.settings.auth.refresh_reuse_grace_secs as i64);
        let within_grace = now - revoked_at < grace;
        if !rotated {
            // Its session was ended (logout, password change…): that is all.
            return Err(invalid());
        }
        if !within_grace {
            // A used token came back: someone else holds a copy. End every session.
            end_sessions(&txn, row.user_id, None, EndReason::Reuse).await?;
            txn.commit().await?;
            tracing::warn!(user_id = row.user_id, "refresh token reused; all sessions ended");
            return Err(invalid());
        }
        // Another tab refreshed with it a moment ago: this one gets its own
        // token in the same session (below); the first keeps its own.
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
    let session_id = match row.session_id {
        Some(id) => {
            let live = sessions::Entity::find_by_id(id)
                .filter(sessions::Column::EndedAt.is_null())
                .one(&txn)
                .await?
                .ok_or_else(invalid)?;
            let mut touched: sessions::ActiveModel = live.into();
            touched.refreshed_at = Set(now);
            touched.update(&txn).await?.id
        }
        // Issued before sessions existed: it becomes one.
        None => {
            sessions::ActiveModel {
                user_id: Set(user.id),
                created_at: Set(row.created_at),
                refreshed_at: Set(now),
                ..Default::default()
            }
            .insert(&txn)
            .await?
            .id
        }
    };
    let session = continue_session(state, &txn, &user, session_id).await?;
    if claimed {
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
        refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::ReplacedBy, Expr::value(new_id))
            .filter(refresh_tokens::Column::Id.eq(row.id))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(cookies::respond(req, &state.settings, StatusCode::OK, session))
}

/// Log out.
///
/// Public. Ends the session the refresh token (body or cookie) belongs to: its
/// refresh token and access tokens stop working, and a browser session's
/// cookies are cleared. An unknown or already revoked token still answers 204.
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
        // Nothing to end (a browser whose cookie is already gone, or a client
        // with no session): logged out all the same.
        Err(_) if body.iter().all(u8::is_ascii_whitespace) => return Ok(res.finish()),
        Err(e) => return Err(e),
    };
    let row = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(hash_hex(&token)))
        .one(&state.db)
        .await?;
    match row {
        Some(refresh_tokens::Model {
            session_id: Some(session),
            user_id,
            ..
        }) => end_session(&state.db, user_id, session, EndReason::Logout).await?,
        // A token from before sessions: it alone stops working.
        Some(row) if row.revoked_at.is_none() => {
            refresh_tokens::Entity::update_many()
                .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(Utc::now()))
                .col_expr(
                    refresh_tokens::Column::RevokedReason,
                    Expr::value(EndReason::Logout.as_str()),
                )
                .filter(refresh_tokens::Column::Id.eq(row.id))
                .exec(&state.db)
                .await?;
        }
        // Unknown or already revoked: logged out all the same.
        _ => {}
    }
    Ok(res.finish())
}

/// Change your password.
///
/// Any signed-in user, including one who must change their password first.
/// Ends every session of the account and returns a new one. A wrong
/// `current_password` is refused with 403 (429 after repeated failures); a
/// `new_password` equal to the current one or refused by the policy, with 400.
#[utoipa::path(operation_id = "change_password", post, path = "/api/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    security(("bearer" = [])),
    responses((status = 200, body = Session), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, description = "`wrong_password`: `current_password` is not the account's", body = crate::error::ErrorBody),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = crate::error::ErrorBody)))]
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: PendingAuth,
    body: JsonObject<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let user = auth.0.user;
    // A stolen access token must not make a fast password oracle.
    let address = client_ip(&req, &state.settings.relay.trusted_proxies);
    state.login_limiter.check(&user.username, address)?;
    if !password::verify(body.current_password.clone(), user.password_hash.clone()).await {
        state.login_limiter.failed(&user.username, address);
        return Err(ApiError::WrongPassword {
            param: "current_password",
        });
    }
    if body.new_password.is_empty() {
        return Err(ApiError::invalid("new_password", "new_password is required"));
    }
    if body.new_password == body.current_password {
        return Err(ApiError::invalid(
            "new_password",
            "new_password must differ from the current password",
        ));
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
    end_sessions(&txn, user.id, None, EndReason::Password).await?;
    let session = open_session(&state, &txn, &user, &Origin::of(&req, &state)).await?;
    txn.commit().await?;
    Ok(cookies::respond(&req, &state.settings, StatusCode::OK, session))
}

/// The revocation reason of a refresh token that was used.
const ROTATED: &str = "rotated";

/// End one session of `user_id`: its access tokens stop at once, its refresh
/// tokens stop working.
pub async fn end_session(
    db: &impl ConnectionTrait,
    user_id: i64,
    session_id: i64,
    reason: EndReason,
) -> Result<(), ApiError> {
    end_sessions(db, user_id, Some(session_id), reason).await
}

/// End every live session of `user_id` (or only `only`).
pub async fn end_sessions(
    db: &impl ConnectionTrait,
    user_id: i64,
    only: Option<i64>,
    reason: EndReason,
) -> Result<(), ApiError> {
    let now = Utc::now();
    let mut ending = sessions::Entity::update_many()
        .col_expr(sessions::Column::EndedAt, Expr::value(now))
        .col_expr(sessions::Column::EndReason, Expr::value(reason.as_str()))
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::EndedAt.is_null());
    let mut revoking = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(now))
        .col_expr(
            refresh_tokens::Column::RevokedReason,
            Expr::value(reason.as_str()),
        )
        .filter(refresh_tokens::Column::UserId.eq(user_id))
        .filter(refresh_tokens::Column::RevokedAt.is_null());
    if let Some(id) = only {
        ending = ending.filter(sessions::Column::Id.eq(id));
        revoking = revoking.filter(refresh_tokens::Column::SessionId.eq(id));
    }
    ending.exec(db).await?;
    revoking.exec(db).await?;
    Ok(())
}
