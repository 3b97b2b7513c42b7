//! The `/api` caller, as an extractor: deny by default. A handler that takes
//! [`AuthContext`] runs only for an enabled user with a valid access JWT who
//! has no pending password change; [`PendingAuth`] lets that last case through
//! (for changing the password itself). The JWT comes as `Authorization: Bearer`,
//! or from the console's session cookie (see [`super::cookies`]).

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};
use sluice_entity::{sessions, users};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages only their own tokens and logs.
    User,
    /// Manages users, channels, prices and invites.
    Admin,
    /// The first account; manages admins too.
    Root,
}

impl Role {
    /// Parse the stored form.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            "root" => Some(Role::Root),
            _ => None,
        }
    }

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Root => "root",
        }
    }
}

/// An authenticated, enabled user with no pending password change, in a live session.
#[derive(Clone, Debug)]
pub struct AuthContext {
    /// The user, as stored now.
    pub user: users::Model,
    /// Their role.
    pub role: Role,
    /// The session the access token belongs to.
    pub session_id: i64,
}

impl AuthContext {
    /// The user's id.
    pub fn id(&self) -> i64 {
        self.user.id
    }

    /// Admins and root.
    pub fn is_admin(&self) -> bool {
        self.role >= Role::Admin
    }

    /// Fail unless admin or root.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs an admin account".into()))
        }
    }
}

/// Like [`AuthContext`] but also for a user who must change their password.
#[derive(Clone, Debug)]
pub struct PendingAuth(pub AuthContext);

#[derive(Deserialize)]
struct AccessTokenQuery {
    access_token: Option<String>,
}

async fn authenticate(req: HttpRequest) -> Result<AuthContext, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered");
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    // A browser's EventSource cannot send headers: event streams also take
    // the access token as `?access_token=`.
    let from_query = || {
        req.path()
            .ends_with("/stream")
            .then(|| web::Query::<AccessTokenQuery>::from_query(req.query_string()).ok())
            .flatten()
            .and_then(|q| q.into_inner().access_token)
    };
    let token = header
        .or_else(from_query)
        .or_else(|| super::cookies::access_token(&req))
        .ok_or_else(|| {
            if req.cookie(super::cookies::ACCESS_COOKIE).is_some() {
                ApiError::Unauthorized(
                    "a session cookie authenticates a change only with the header 'Sluice-Session: cookie'"
                        .into(),
                )
            } else {
                ApiError::Unauthorized("log in first: send 'Authorization: Bearer <access token>'".into())
            }
        })?;
    let token = token.as_str();
    let claims = state.jwt.verify(token).ok_or_else(|| {
        ApiError::Unauthorized("access token is invalid or expired; refresh or log in again".into())
    })?;
    let ended = || ApiError::Unauthorized("this session has ended; log in again".into());
    let session_id = claims.sid.ok_or_else(ended)?;
    let (session, user) = sessions::Entity::find_by_id(session_id)
        .find_also_related(users::Entity)
        .one(&state.db)
        .await?
        .ok_or_else(ended)?;
    let user = user
        .filter(|u| u.id == claims.sub)
        .ok_or_else(|| ApiError::Unauthorized("this account no longer exists".into()))?;
    if session.ended_at.is_some() {
        return Err(ended());
    }
    if user.status != "enabled" {
        return Err(ApiError::Unauthorized("this account is disabled".into()));
    }
    let role = Role::parse(&user.role)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("user {} has role '{}'", user.id, user.role)))?;
    Ok(AuthContext {
        user,
        role,
        session_id,
    })
}

impl FromRequest for AuthContext {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let ctx = authenticate(req).await?;
            if ctx.user.must_change_password {
                return Err(ApiError::PasswordChangeRequired);
            }
            Ok(ctx)
        })
    }
}

impl FromRequest for PendingAuth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(req).await.map(PendingAuth) })
    }
}
