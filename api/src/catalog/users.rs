//! Accounts: admins create, change and top up users. Every write updates what
//! the relay knows of the owner (enabled, group) in the same step, so disabling
//! a user stops their tokens at once.

use crate::auth::sessions::{end_sessions, EndReason};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use sluice_actors::ledger::{CanChangeQuota, ChangeFailed, ChangeQuota, QuotaChange, QuotaTarget};
use sluice_entity::users;
use utoipa::ToSchema;

use super::{parse_limit, Changed, Status};
use crate::auth::password::NewPassword;
use crate::auth::{AuthContext, Role};
use crate::billing::{Quota, MAX_QUOTA};
use crate::error::ApiError;
use crate::state::AppState;

/// A new account, made by an admin.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login name: 3–64 letters, digits, `.`, `_` or `-`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{3,64}$")]
    pub username: String,
    /// Password (at least 10 characters, not one character repeated); the user need not change it.
    #[schema(min_length = 10)]
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
    /// Requests per window the user may make, all tokens together; 0 = no limit of its own (default).
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Tokens per window; 0 = no limit (default).
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Requests in flight at once; 0 = no limit (default).
    #[serde(default)]
    pub max_concurrency: Option<u32>,
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
    /// Requests per window the user may make, all tokens together; 0 = no limit of its own (default).
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Tokens per window; 0 = no limit (default).
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Requests in flight at once; 0 = no limit (default).
    #[serde(default)]
    pub max_concurrency: Option<u32>,
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
            Err(ApiError::invalid(
                "username",
                "username must be 3–64 characters of letters, digits, '.', '_' or '-'",
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
        Err(ApiError::invalid("email", format!("'{s}' is not a mail address")))
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
        Err(ApiError::invalid(
            "group",
            "group must be 1–64 letters, digits, '_' or '-'",
        ))
    }
}

/// Tell the relay about an account as it is now (after any write to it).
pub fn remember(state: &AppState, user: &users::Model) {
    state.tokens.set_user(user);
    state.cluster.announce(crate::cluster::Change::Tokens);
}

/// An account by id, or 404.
pub async fn find(state: &AppState, id: i64) -> Result<users::Model, ApiError> {
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

/// Create an account (admin).
pub async fn create(
    state: &AppState,
    auth: &AuthContext,
    body: CreateUser,
) -> Result<users::Model, ApiError> {
    auth.require_admin()?;
    let role = body.role.unwrap_or(Role::User);
    check_may_grant(auth, role)?;
    let username = Username::parse(&body.username)?.into_inner();
    let email = body.email.as_deref().map(parse_email).transpose()?;
    let group = parse_group(body.group.as_deref().unwrap_or("default"))?;
    let quota = Quota::parse(body.quota.unwrap_or(0), "quota")?.get();
    let hash = NewPassword::parse(body.password, "password")?.hash().await?;
    let taken = users::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(users::Column::Username.eq(username.clone()))
                .add(users::Column::Email.eq(email.clone())),
        )
        .one(&state.db)
        .await?;
    if let Some(other) = taken {
        return Err(if other.username == username {
            ApiError::Taken {
                param: "username",
                message: format!("username '{username}' is taken"),
            }
        } else {
            ApiError::Taken {
                param: "email",
                message: "that mail address is taken".into(),
            }
        });
    }
    let now = Utc::now();
    let user = users::ActiveModel {
        username: Set(username),
        email: Set(email),
        password_hash: Set(Some(hash)),
        role: Set(role.as_str().into()),
        group_name: Set(group),
        status: Set(Status::Enabled.as_str().into()),
        quota: Set(quota),
        created_at: Set(now),
        updated_at: Set(now),
        rpm: Set(parse_limit(body.rpm.unwrap_or(0).into(), "rpm")?),
        tpm: Set(parse_limit(body.tpm.unwrap_or(0), "tpm")?),
        max_concurrency: Set(
            parse_limit(body.max_concurrency.unwrap_or(0).into(), "max_concurrency")? as i32,
        ),
        ..Default::default()
    }
    .insert(&state.db)
    .await?;
    remember(state, &user);
    Ok(user)
}

/// Change an account (admin): mail, role, group, status, quota.
pub async fn update(
    state: &AppState,
    auth: &AuthContext,
    id: i64,
    body: UpdateUser,
) -> Result<Changed<users::Model>, ApiError> {
    auth.require_admin()?;
    let user = find(state, id).await?;
    check_may_manage(auth, &user)?;
    let mut row: users::ActiveModel = user.clone().into();
    if let Some(email) = &body.email {
        row.email = Set(Some(parse_email(email)?));
    }
    if let Some(role) = body.role {
        if user.role == Role::Root.as_str() && role != Role::Root {
            return Err(ApiError::Forbidden("root stays root".into()));
        }
        if role.as_str() != user.role {
            check_may_grant(auth, role)?;
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
        if status == Status::Disabled && (user.id == auth.id() || user.role == Role::Root.as_str()) {
            return Err(ApiError::Forbidden("you cannot disable yourself or root".into()));
        }
        row.status = Set(status.as_str().into());
    }
    if let Some(v) = body.rpm {
        row.rpm = Set(parse_limit(v.into(), "rpm")?);
    }
    if let Some(v) = body.tpm {
        row.tpm = Set(parse_limit(v, "tpm")?);
    }
    if let Some(v) = body.max_concurrency {
        row.max_concurrency = Set(parse_limit(v.into(), "max_concurrency")? as i32);
    }
    let new_quota = body.quota.map(|q| Quota::parse(q, "quota")).transpose()?;
    if new_quota.is_some() {
        quota_may_change(state).await?;
    }
    row.updated_at = Set(Utc::now());
    let mut updated = row.update(&state.db).await.map_err(|e| match e {
        sea_orm::DbErr::Query(_) | sea_orm::DbErr::Exec(_) => ApiError::Taken {
            param: "email",
            message: "that mail address is taken".into(),
        },
        other => other.into(),
    })?;
    if let Some(quota) = new_quota {
        change_quota(state, updated.id, QuotaChange::Set(quota.get())).await?;
        updated = find(state, updated.id).await?;
    }
    if body.status == Some(Status::Disabled) && user.status != Status::Disabled.as_str() {
        // Signed-in browsers and API clients stop at their next request.
        end_sessions(&state.db, updated.id, None, EndReason::Disabled).await?;
    }
    remember(state, &updated);
    if user.email != updated.email {
        if let Some(old) = &user.email {
            notify_email_change(state, auth, &updated, old);
        }
    }
    Ok(Changed {
        before: user,
        after: updated,
    })
}

/// Tell the address an account had that it no longer has it: if the change was
/// not wanted (a taken-over admin account re-pointing a user's mail before a
/// password reset), the owner hears of it at the address they still read. Sent
/// after the change, on its own: a mail server that is down delays no one.
fn notify_email_change(state: &AppState, auth: &AuthContext, user: &users::Model, old: &str) {
    let Some(mailer) = state.mailer.clone() else {
        tracing::warn!(
            user_id = user.id,
            "mail address changed; no mail configured to tell the old one"
        );
        return;
    };
    let text = format!(
        "The mail address of the Sluice account '{username}' at {site} was changed \
         from {old} to another address by {actor} ({role}) at {at} UTC.\n\n\
         Mail for this account, password-reset links included, no longer comes here. \
         If you did not expect this, contact the administrators of {site} at once.\n",
        username = user.username,
        site = state.settings.public_url,
        actor = auth.user.username,
        role = auth.role.as_str(),
        at = user.updated_at.format("%Y-%m-%d %H:%M:%S"),
    );
    let (old, user_id) = (old.to_string(), user.id);
    actix_web::rt::spawn(async move {
        let subject = "The mail address of your Sluice account was changed".to_string();
        if crate::auth::mail::send(&mailer, &old, subject, text)
            .await
            .is_ok()
        {
            tracing::info!(user_id, "old mail address told of its change");
        }
    });
}

/// Add quota to an account (admin).
pub async fn top_up(
    state: &AppState,
    auth: &AuthContext,
    id: i64,
    amount: i64,
) -> Result<Changed<users::Model>, ApiError> {
    auth.require_admin()?;
    let amount = Quota::parse(amount, "amount")?.get();
    if amount == 0 {
        return Err(ApiError::invalid("amount", "amount must be positive"));
    }
    let user = find(state, id).await?;
    check_may_manage(auth, &user)?;
    if user.quota.saturating_add(amount) > MAX_QUOTA {
        // Depends on the balance now, not on the request alone.
        return Err(ApiError::Conflict(format!(
            "the quota would pass the limit of {MAX_QUOTA}"
        )));
    }
    change_quota(state, user.id, QuotaChange::Add(amount)).await?;
    let after = find(state, user.id).await?;
    Ok(Changed { before: user, after })
}

/// Through the ledger: spending not yet written is written first.
async fn change_quota(state: &AppState, user_id: i64, change: QuotaChange) -> Result<(), ApiError> {
    state
        .ledger
        .send(ChangeQuota {
            target: QuotaTarget::User(user_id),
            change,
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(quota_not_changed)
}

/// Refuse now, before anything is written, a quota change the ledger would refuse.
pub(crate) async fn quota_may_change(state: &AppState) -> Result<(), ApiError> {
    state
        .ledger
        .send(CanChangeQuota)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(quota_not_changed)
}

/// A quota change the ledger refused, as the API tells it.
pub(crate) fn quota_not_changed(e: ChangeFailed) -> ApiError {
    match e {
        ChangeFailed::StoreUnreachable(_) => ApiError::Unavailable(e.to_string()),
        ChangeFailed::Failed(_) => ApiError::Internal(anyhow::anyhow!(e)),
    }
}
