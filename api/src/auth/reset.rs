//! Password reset by mail: ask with an address, get a one-time link, choose a
//! new password with it. Asking answers the same whether or not the address
//! has an account, so nobody learns which addresses do.

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde::Deserialize;
use sluice_actors::Mailer;
use sluice_entity::{invites, users};
use utoipa::ToSchema;

use super::links::{self, LinkKind, NewLink};
use super::mail;
use super::password::NewPassword;
use super::sessions::{end_sessions, EndReason};
use super::Role;
use crate::audit::{self, Action, Actor, AuditEntry, Target};
use crate::catalog::users::parse_email;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::manage::body::JsonObject;
use crate::relay::client_ip::client_ip;
use crate::state::AppState;

/// `/api/auth/password-reset` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/password-reset", web::post().to(request_reset))
        .route("/auth/password-reset/confirm", web::post().to(confirm_reset));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(request_reset, confirm_reset),
    components(schemas(ResetRequest, ResetConfirm))
)]
pub struct Doc;

/// Whose password to reset.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The account's mail address.
    pub email: String,
}

/// A new password, with the token from the mailed link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    /// The `token` parameter of the link in the mail.
    pub token: String,
    /// The new password (at least 10 characters, not one character repeated).
    #[schema(min_length = 10)]
    pub new_password: String,
}

/// Ask for a password-reset link.
///
/// Public. Always answers 202: when an enabled account has this address, a
/// one-time link to `{public_url}/reset?token=…` is mailed to it, so the answer
/// never tells whether the address has an account. Refused with 503 when mail
/// is not configured, 400 for a malformed address and 429 when asked too often.
#[utoipa::path(post, path = "/api/auth/password-reset", tag = "auth", operation_id = "request_password_reset",
    request_body = ResetRequest,
    responses((status = 202, description = "a link is mailed if an enabled account has this address"),
        (status = 400, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "mail is not configured")))]
pub async fn request_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonObject<ResetRequest>,
) -> Result<HttpResponse, ApiError> {
    let mailer = mail::mailer(&state, "password reset")?.clone();
    let email = parse_email(&body.email)?;
    // Per address and per mail address, so nobody can flood an inbox.
    state.login_limiter.hit(
        &format!("reset:{email}"),
        client_ip(&req, &state.settings.relay.trusted_proxies),
    )?;
    // The lookup and the mail happen after the answer, so neither the reply
    // nor its timing tells whether the address has an account.
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        if let Err(e) = mail_reset_link(&state, &mailer, &email).await {
            tracing::warn!(error = %e, "password-reset link not sent");
        }
    });
    Ok(HttpResponse::Accepted().finish())
}

async fn mail_reset_link(state: &AppState, mailer: &Addr<Mailer>, email: &str) -> Result<(), ApiError> {
    let Some(user) = users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .filter(users::Column::Status.eq("enabled"))
        .one(&state.db)
        .await?
    else {
        return Ok(());
    };
    let now = Utc::now();
    let link = NewLink::generate();
    let minutes = state.settings.auth.reset_ttl_minutes;
    let expires_at = links::expiry(now, minutes.saturating_mul(60));
    let text = format!(
        "Someone asked to reset the password of the Sluice account '{username}' at {site}.\n\n\
         If it was you, choose a new password here:\n\n{url}\n\n\
         The link works once and expires at {expires} UTC, in {minutes} minutes. \
         If it was not you, ignore this mail: your password stays as it is.\n",
        username = user.username,
        site = state.settings.public_url,
        url = link.url(&state.settings.public_url, LinkKind::Reset),
        expires = expires_at.format("%Y-%m-%d %H:%M"),
    );
    let row = invites::ActiveModel {
        email: Set(email.to_string()),
        token_hash: Set(link.hash),
        kind: Set(LinkKind::Reset.as_str().into()),
        role: Set(user.role.clone()),
        group_name: Set(user.group_name.clone()),
        quota: Set(0),
        invited_by: Set(None),
        expires_at: Set(expires_at),
        used_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    };
    links::issue(state, mailer, row, "Reset your Sluice password".into(), text).await?;
    tracing::info!(user_id = user.id, "password-reset link mailed");
    Ok(())
}

/// Set a new password with a mailed reset link.
///
/// Public. Redeems the link's `token` and sets `new_password`; every session of
/// the account ends, so log in again with the new password. An invalid, used or
/// expired link, a disabled account, or a password the policy refuses is
/// refused with 400.
#[utoipa::path(post, path = "/api/auth/password-reset/confirm", tag = "auth", operation_id = "confirm_password_reset",
    request_body = ResetConfirm,
    responses((status = 204, description = "password changed; every session ended"),
        (status = 400, body = ErrorBody, description = "invalid, used or expired link, or a password the policy refuses")))]
pub async fn confirm_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonObject<ResetConfirm>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let password = NewPassword::parse(body.new_password, "new_password")?;
    // A cheap look first, so a wrong link costs no password hashing.
    links::find_live(&state.db, &body.token, LinkKind::Reset, Utc::now()).await?;
    let hash = password.hash().await?;
    let txn = state.db.begin().await?;
    let link = links::redeem(&txn, &body.token, LinkKind::Reset, Utc::now()).await?;
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(link.email))
        .filter(users::Column::Status.eq("enabled"))
        .one(&txn)
        .await?
        .ok_or_else(|| ApiError::BadRequest("the account this link was for is gone or disabled".into()))?;
    let mut row: users::ActiveModel = user.into();
    row.password_hash = Set(Some(hash));
    row.must_change_password = Set(false);
    row.updated_at = Set(Utc::now());
    let user = row.update(&txn).await?;
    end_sessions(&txn, user.id, None, EndReason::PasswordReset).await?;
    let role = Role::parse(&user.role).unwrap_or(Role::User);
    audit::record(
        &txn,
        &Actor::account(&user, role, &req, &state.settings),
        AuditEntry::done(
            Action::UserPasswordReset,
            Target::new("user", user.id, &user.username),
        ),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(user_id = user.id, "password reset by mail");
    Ok(HttpResponse::NoContent().finish())
}
