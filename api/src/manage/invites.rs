//! `/api/invites`: an admin invites a mail address with a role, a group and a
//! starting quota; the mail carries a one-time link, and accepting it creates
//! the account with the password the invitee chooses.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sluice_actors::mailer::is_sendable;
use sluice_entity::{invites, users};
use utoipa::ToSchema;

use super::users::ListQuery;
use super::{page_limit, Page};
use crate::audit::{self, Action, Actor, AuditEntry, Target};
use crate::auth::links::{self, LinkKind, NewLink};
use crate::auth::password::NewPassword;
use crate::auth::sessions::{open_session, Origin, Session};
use crate::auth::{mail, AuthContext, Role};
use crate::billing::Quota;
use crate::catalog::users::{parse_email, parse_group, remember, Username};
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::manage::body::JsonObject;
use crate::state::AppState;

/// `/api/invites` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/invites", web::get().to(list))
        .route("/invites", web::post().to(create))
        .route("/invites/accept", web::post().to(accept))
        .route("/invites/inspect", web::post().to(inspect))
        .route(r"/invites/{id:\d+}", web::delete().to(revoke));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, create, inspect, accept, revoke),
    components(schemas(
        InviteView,
        InviteStatus,
        CreateInvite,
        AcceptInvite,
        InspectInvite,
        InvitePreview
    ))
)]
pub struct Doc;

/// Where an invite stands.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InviteStatus {
    /// Sent, not yet accepted, still valid.
    Pending,
    /// Accepted: the account exists.
    Used,
    /// Not accepted in time.
    Expired,
}

/// An invite as the API shows it (never its token).
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug)]
pub struct InviteView {
    /// Id.
    pub id: i64,
    /// Address invited.
    pub email: String,
    /// Role the account gets.
    pub role: Role,
    /// Price group the account gets.
    pub group: String,
    /// Starting quota, in quota units.
    pub quota: i64,
    /// Who sent it.
    pub invited_by: Option<i64>,
    /// Pending, used or expired.
    pub status: InviteStatus,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was accepted.
    pub used_at: Option<DateTime<Utc>>,
    /// Sent.
    pub created_at: DateTime<Utc>,
}

impl InviteView {
    fn at(row: &invites::Model, now: DateTime<Utc>) -> InviteView {
        let status = match row.used_at {
            Some(_) => InviteStatus::Used,
            None if row.expires_at <= now => InviteStatus::Expired,
            None => InviteStatus::Pending,
        };
        InviteView {
            id: row.id,
            email: row.email.clone(),
            role: Role::parse(&row.role).unwrap_or(Role::User),
            group: row.group_name.clone(),
            quota: row.quota,
            invited_by: row.invited_by,
            status,
            expires_at: row.expires_at,
            used_at: row.used_at,
            created_at: row.created_at,
        }
    }
}

/// An invitation to send.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvite {
    /// Address to invite; inviting it again replaces its pending invite.
    pub email: String,
    /// Role of the account (default `user`; only root invites admins).
    #[serde(default)]
    pub role: Option<Role>,
    /// Price group (default `default`).
    #[serde(default)]
    pub group: Option<String>,
    /// Starting quota (default 0).
    #[serde(default)]
    pub quota: Option<i64>,
}

/// Accepting an invite: the token from the link and the new account's login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvite {
    /// The `token` parameter of the link in the mail.
    pub token: String,
    /// Login name: 3–64 letters, digits, `.`, `_` or `-`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{3,64}$")]
    pub username: String,
    /// Password (at least 10 characters, not one character repeated).
    #[schema(min_length = 10)]
    pub password: String,
}

/// An invite link to look at before accepting it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectInvite {
    /// The `token` parameter of the link in the mail.
    pub token: String,
}

/// What a live invite offers, shown to the invitee before they choose a password.
#[derive(Serialize, ToSchema, Debug)]
pub struct InvitePreview {
    /// The address invited; the account gets it.
    pub email: String,
    /// The role the account gets.
    pub role: Role,
    /// The price group the account gets.
    pub group: String,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

/// Inspect an invite link.
///
/// Public. Looks at an invite link without spending it and shows whom it is for:
/// the address, role and group the account will get, and when the link
/// expires. An invalid, used or expired link is refused with 400.
#[utoipa::path(post, path = "/api/invites/inspect", tag = "invites", operation_id = "inspect_invite",
    request_body = InspectInvite,
    responses((status = 200, body = InvitePreview),
        (status = 400, body = ErrorBody, description = "invalid, used or expired link")))]
pub async fn inspect(
    state: web::Data<AppState>,
    body: JsonObject<InspectInvite>,
) -> Result<HttpResponse, ApiError> {
    let invite = links::find_live(&state.db, &body.token, LinkKind::Invite, Utc::now()).await?;
    Ok(HttpResponse::Ok().json(InvitePreview {
        email: invite.email,
        role: Role::parse(&invite.role).unwrap_or(Role::User),
        group: invite.group_name,
        expires_at: invite.expires_at,
    }))
}

/// List invites.
///
/// Admin only. Invites by id, pending, used and expired (never their tokens).
/// Paged: `limit` (1–500, default 100) and `cursor` (the `next_cursor` of the
/// previous page).
#[utoipa::path(get, path = "/api/invites", tag = "invites", operation_id = "list_invites", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<InviteView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: AuthContext,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let limit = page_limit(q.limit)?;
    let mut query = invites::Entity::find()
        .filter(invites::Column::Kind.eq(LinkKind::Invite.as_str()))
        .order_by_asc(invites::Column::Id)
        .limit(limit + 1);
    if let Some(cursor) = q.cursor {
        query = query.filter(invites::Column::Id.gt(cursor));
    }
    let rows = query.all(&state.db).await?;
    let now = Utc::now();
    Ok(HttpResponse::Ok().json(Page::from_rows(
        rows,
        limit,
        |r| r.id,
        |r| InviteView::at(&r, now),
    )))
}

/// Invite a mail address.
///
/// Admin only (only root invites admins; nobody invites a root, 403). Mails a
/// one-time link to `{public_url}/invite?token=…`; it replaces the address's
/// pending invite. Nothing is stored when the mail cannot be sent (503, as when
/// mail is not configured). An address that has an account is refused with 409.
#[utoipa::path(post, path = "/api/invites", tag = "invites", operation_id = "create_invite",
    request_body = CreateInvite, security(("bearer" = [])),
    responses((status = 201, body = InviteView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "an account has this address"),
        (status = 503, body = ErrorBody, description = "mail is not configured, or the mail server refused")))]
pub async fn create(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: actix_web::HttpRequest,
    body: JsonObject<CreateInvite>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let mailer = mail::mailer(&state, "inviting")?;
    let body = body.into_inner();
    let role = body.role.unwrap_or(Role::User);
    check_may_invite(&auth, role)?;
    let email = parse_email(&body.email)?;
    if !is_sendable(&email) {
        return Err(ApiError::invalid(
            "email",
            format!("'{email}' is not an address mail can be sent to"),
        ));
    }
    let group = parse_group(body.group.as_deref().unwrap_or("default"))?;
    let quota = Quota::parse(body.quota.unwrap_or(0), "quota")?.get();
    let existing = users::Entity::find()
        .filter(users::Column::Email.eq(email.clone()))
        .one(&state.db)
        .await?;
    if let Some(user) = existing {
        return Err(ApiError::Conflict(format!(
            "{email} already has an account ('{}')",
            user.username
        )));
    }
    let now = Utc::now();
    let link = NewLink::generate();
    let expires_at = links::expiry(now, state.settings.auth.invite_ttl_hours.saturating_mul(3600));
    let site = &state.settings.public_url;
    let text = invite_text(
        &auth.user.username,
        site,
        role,
        &link.url(site, LinkKind::Invite),
        expires_at,
    );
    let row = invites::ActiveModel {
        email: Set(email),
        token_hash: Set(link.hash),
        kind: Set(LinkKind::Invite.as_str().into()),
        role: Set(role.as_str().into()),
        group_name: Set(group),
        quota: Set(quota),
        invited_by: Set(Some(auth.id())),
        expires_at: Set(expires_at),
        used_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    };
    let invite = links::issue(&state, mailer, row, "You are invited to Sluice".into(), text).await?;
    let view = InviteView::at(&invite, now);
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::created(Action::InviteCreate, target(&invite), &view),
    )
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// An invite, as the audit log names it: by the address invited, never its link.
fn target(invite: &invites::Model) -> Target {
    Target::new("invite", invite.id, &invite.email)
}

fn invite_text(inviter: &str, site: &str, role: Role, url: &str, expires_at: DateTime<Utc>) -> String {
    format!(
        "{inviter} invited you to Sluice, the LLM API gateway at {site}, as {role}.\n\n\
         Choose a username and a password here to create your account:\n\n{url}\n\n\
         The link works once and expires at {expires} UTC. If you did not expect this mail, ignore it.\n",
        role = role.as_str(),
        expires = expires_at.format("%Y-%m-%d %H:%M"),
    )
}

/// Only root invites admins, and nobody invites a second root.
fn check_may_invite(auth: &AuthContext, role: Role) -> Result<(), ApiError> {
    match role {
        Role::Root => Err(ApiError::Forbidden("there is only one root".into())),
        Role::Admin if auth.role != Role::Root => Err(ApiError::Forbidden("only root invites admins".into())),
        _ => Ok(()),
    }
}

/// Accept an invite.
///
/// Public. Creates the account with the invite's address, role, group and
/// quota and the `username` and `password` chosen, and logs it in. Each invite
/// works once. An invalid, used or expired link, or a bad username or password,
/// is refused with 400; a taken username or address with 409.
#[utoipa::path(post, path = "/api/invites/accept", tag = "invites", operation_id = "accept_invite",
    request_body = AcceptInvite,
    responses((status = 201, body = Session),
        (status = 400, body = ErrorBody, description = "invalid, used or expired link, or a bad username or password"),
        (status = 409, body = ErrorBody, description = "the username or the address is taken")))]
pub async fn accept(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    body: JsonObject<AcceptInvite>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let username = Username::parse(&body.username)?.into_inner();
    let password = NewPassword::parse(body.password, "password")?;
    // A cheap look first, so a wrong link costs no password hashing.
    links::find_live(&state.db, &body.token, LinkKind::Invite, Utc::now()).await?;
    let hash = password.hash().await?;
    let txn = state.db.begin().await?;
    let invite = links::redeem(&txn, &body.token, LinkKind::Invite, Utc::now()).await?;
    let user = create_account(&txn, invite, username, hash).await?;
    let session = open_session(&state, &txn, &user, &Origin::of(&req, &state)).await?;
    txn.commit().await?;
    remember(&state, &user);
    tracing::info!(user_id = user.id, username = %user.username, "invite accepted");
    Ok(crate::auth::cookies::respond(
        &req,
        &state.settings,
        actix_web::http::StatusCode::CREATED,
        session,
    ))
}

/// The invited account, inside the transaction that spends the invite, so
/// either both happen or neither does.
async fn create_account(
    txn: &DatabaseTransaction,
    invite: invites::Model,
    username: String,
    password_hash: String,
) -> Result<users::Model, ApiError> {
    let taken = users::Entity::find()
        .filter(
            Condition::any()
                .add(users::Column::Username.eq(username.clone()))
                .add(users::Column::Email.eq(invite.email.clone())),
        )
        .one(txn)
        .await?;
    if let Some(other) = taken {
        return Err(if other.username == username {
            ApiError::Taken {
                param: "username",
                message: format!("username '{username}' is taken; choose another"),
            }
        } else {
            // The address came with the invite, not from this form.
            ApiError::Conflict(format!(
                "{} already has an account; log in or reset its password",
                invite.email
            ))
        });
    }
    let now = Utc::now();
    users::ActiveModel {
        username: Set(username),
        email: Set(Some(invite.email)),
        password_hash: Set(Some(password_hash)),
        role: Set(invite.role),
        group_name: Set(invite.group_name),
        status: Set("enabled".into()),
        quota: Set(invite.quota),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(txn)
    .await
    .map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => ApiError::Taken {
            param: "username",
            message: "that username was just taken; choose another".into(),
        },
        _ => e.into(),
    })
}

/// Revoke an invite.
///
/// Admin only (only root revokes admin invites, 403). Deletes a pending invite
/// so its link stops working. An invite already accepted is refused with 409:
/// disable the account instead.
#[utoipa::path(delete, path = "/api/invites/{id}", tag = "invites", operation_id = "revoke_invite",
    params(("id" = i64, Path, description = "invite id")), security(("bearer" = [])),
    responses((status = 204, description = "revoked"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "already accepted")))]
pub async fn revoke(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: actix_web::HttpRequest,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let id = id.into_inner();
    let invite = invites::Entity::find_by_id(id)
        .filter(invites::Column::Kind.eq(LinkKind::Invite.as_str()))
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("invite {id}")))?;
    if invite.role != Role::User.as_str() && auth.role != Role::Root {
        return Err(ApiError::Forbidden("only root revokes admin invites".into()));
    }
    // Only while unused: an accept racing this either wins or finds no invite.
    let deleted = invites::Entity::delete_many()
        .filter(invites::Column::Id.eq(id))
        .filter(invites::Column::UsedAt.is_null())
        .exec(&state.db)
        .await?
        .rows_affected;
    if deleted == 0 {
        return Err(ApiError::Conflict(format!(
            "invite {id} was accepted already; disable the account instead"
        )));
    }
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::deleted(
            Action::InviteRevoke,
            target(&invite),
            &InviteView::at(&invite, Utc::now()),
        ),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
