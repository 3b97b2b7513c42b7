//! `/api/tokens`: each user creates, lists, edits, disables and deletes their
//! own `sk-` tokens. The full key is shown once, at creation. Every change
//! reaches the relay's token cache in the same request.

use std::collections::BTreeSet;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, TimeZone, Utc};
use ipnet::IpNet;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use sluice_actors::ledger::{ChangeQuota, Forget, QuotaChange, QuotaTarget};
use sluice_entity::tokens;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::{page_limit, ErrorBody, Page, Status};
use crate::auth::AuthContext;
use crate::billing::Quota;
use crate::catalog::sync::{token_prefix, MANAGED_BY_CONFIG};
use crate::secrets::{hash_hex, new_token_key};
use crate::state::AppState;

/// `/api/tokens` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens", web::get().to(list))
        .route("/tokens", web::post().to(create))
        .route("/tokens/{id}", web::get().to(get))
        .route("/tokens/{id}", web::patch().to(update))
        .route("/tokens/{id}", web::delete().to(delete));
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

/// A token to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Name (1–128 characters).
    pub name: String,
    /// Models it may use; absent or null = all.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Client networks (CIDR such as `192.168.1.0/24` or `2001:db8::/32`, or single addresses); absent = any.
    #[serde(default)]
    pub ip_allow: Option<Vec<String>>,
    /// Expiry (RFC 3339, in the future, before 2038); absent = never.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Quota units it may spend; absent or null = unlimited.
    #[serde(default)]
    pub quota: Option<i64>,
}

/// Changes to a token. Absent fields stay; `null` clears (models, ip_allow,
/// expires_at) or makes the quota unlimited.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateToken {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// `enabled` or `disabled`.
    #[serde(default)]
    pub status: Option<Status>,
    /// Models it may use; null = all.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub models: Option<Option<Vec<String>>>,
    /// Client networks; null = any.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub ip_allow: Option<Option<Vec<String>>>,
    /// Expiry; null = never.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// Units left; null = unlimited.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<i64>)]
    pub quota: Option<Option<i64>>,
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

fn parse_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(ApiError::BadRequest("name must be 1–128 characters".into()));
    }
    Ok(name.to_string())
}

fn parse_models(models: Option<Vec<String>>) -> Result<Option<String>, ApiError> {
    let Some(models) = models else { return Ok(None) };
    let set: BTreeSet<String> = models.iter().map(|m| m.trim().to_string()).collect();
    if set.iter().any(|m| m.is_empty() || m.len() > 128) {
        return Err(ApiError::BadRequest(
            "model names must be 1–128 characters".into(),
        ));
    }
    Ok(Some(serde_json::to_string(&set).expect("strings serialise")))
}

/// CIDRs (IPv4 and IPv6); a bare address means just that address.
fn parse_networks(nets: Option<Vec<String>>) -> Result<Option<String>, ApiError> {
    let Some(nets) = nets else { return Ok(None) };
    if nets.is_empty() {
        return Err(ApiError::BadRequest(
            "ip_allow must list at least one network, or be null for any".into(),
        ));
    }
    let parsed = nets
        .iter()
        .map(|n| {
            let n = n.trim();
            n.parse::<IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| ApiError::BadRequest(format!("'{n}' is not a CIDR network or an IP address")))
        })
        .collect::<Result<Vec<IpNet>, _>>()?;
    Ok(Some(serde_json::to_string(&parsed).expect("networks serialise")))
}

/// Expiry must be ahead, and before 2038: MariaDB cannot store later instants.
fn parse_expiry(at: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(at) = at else { return Ok(None) };
    let limit = Utc
        .with_ymd_and_hms(2038, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date");
    if at <= Utc::now() {
        return Err(ApiError::BadRequest("expires_at must be in the future".into()));
    }
    if at >= limit {
        return Err(ApiError::BadRequest(
            "expires_at must be before 2038-01-01".into(),
        ));
    }
    Ok(Some(at))
}

fn parse_quota(quota: i64) -> Result<i64, ApiError> {
    Quota::parse(quota, "quota").map(Quota::get)
}

/// Your tokens.
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

/// Create a token; the response carries the full key, once.
#[utoipa::path(operation_id = "create_token", post, path = "/api/tokens", tag = "tokens", request_body = CreateToken, security(("bearer" = [])),
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: AuthContext,
    body: web::Json<CreateToken>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let key = new_token_key();
    let now = Utc::now();
    let quota = body.quota.map(parse_quota).transpose()?;
    let row = tokens::ActiveModel {
        user_id: Set(auth.id()),
        name: Set(parse_name(&body.name)?),
        key_hash: Set(hash_hex(&key)),
        key_prefix: Set(token_prefix(&key)),
        status: Set("enabled".into()),
        models: Set(parse_models(body.models)?),
        ip_allow: Set(parse_networks(body.ip_allow)?),
        expires_at: Set(parse_expiry(body.expires_at)?),
        unlimited_quota: Set(quota.is_none()),
        remaining_quota: Set(quota.unwrap_or(0)),
        used_quota: Set(0),
        managed_by: Set("api".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&state.db)
    .await?;
    state.tokens.put(&row)?;
    Ok(HttpResponse::Created().json(CreatedToken {
        key,
        token: TokenView::try_from(&row)?,
    }))
}

/// One of your tokens (someone else's is 404).
async fn own(state: &AppState, auth: &AuthContext, id: i64) -> Result<tokens::Model, ApiError> {
    tokens::Entity::find_by_id(id)
        .filter(tokens::Column::UserId.eq(auth.id()))
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("token {id}")))
}

fn writable(t: &tokens::Model) -> Result<(), ApiError> {
    if t.managed_by == MANAGED_BY_CONFIG {
        return Err(ApiError::Conflict(format!(
            "token '{}' is declared in the config file; change it there",
            t.name
        )));
    }
    Ok(())
}

/// One of your tokens.
#[utoipa::path(operation_id = "get_token", get, path = "/api/tokens/{id}", tag = "tokens", params(("id" = i64, Path, description = "token id")),
    security(("bearer" = [])), responses((status = 200, body = TokenView), (status = 404, body = ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let t = own(&state, &auth, *id).await?;
    Ok(HttpResponse::Ok().json(TokenView::try_from(&t)?))
}

/// Change one of your tokens; the relay sees the change at once.
#[utoipa::path(operation_id = "update_token", patch, path = "/api/tokens/{id}", tag = "tokens", params(("id" = i64, Path, description = "token id")),
    request_body = UpdateToken, security(("bearer" = [])),
    responses((status = 200, body = TokenView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
    body: web::Json<UpdateToken>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let current = own(&state, &auth, *id).await?;
    writable(&current)?;
    let mut row: tokens::ActiveModel = current.clone().into();
    if let Some(name) = &body.name {
        row.name = Set(parse_name(name)?);
    }
    if let Some(status) = body.status {
        row.status = Set(status.as_str().into());
    }
    if let Some(models) = body.models {
        row.models = Set(parse_models(models)?);
    }
    if let Some(nets) = body.ip_allow {
        row.ip_allow = Set(parse_networks(nets)?);
    }
    if let Some(at) = body.expires_at {
        row.expires_at = Set(parse_expiry(at)?);
    }
    let quota_change = match body.quota {
        None => None,
        Some(None) => Some(QuotaChange::Unlimited),
        Some(Some(q)) => Some(QuotaChange::Set(parse_quota(q)?)),
    };
    row.updated_at = Set(Utc::now());
    row.update(&state.db).await?;
    if let Some(change) = quota_change {
        // Through the ledger: spending not yet written is written first.
        state
            .ledger
            .send(ChangeQuota {
                target: QuotaTarget::Token(current.id),
                change,
            })
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
            .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    }
    let updated = own(&state, &auth, current.id).await?;
    state.tokens.put(&updated)?;
    Ok(HttpResponse::Ok().json(TokenView::try_from(&updated)?))
}

/// Delete one of your tokens; it stops working at once. Its usage logs stay.
#[utoipa::path(operation_id = "delete_token", delete, path = "/api/tokens/{id}", tag = "tokens", params(("id" = i64, Path, description = "token id")),
    security(("bearer" = [])), responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    auth: AuthContext,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let t = own(&state, &auth, *id).await?;
    writable(&t)?;
    state.tokens.remove(&t.key_hash);
    tokens::Entity::delete_by_id(t.id).exec(&state.db).await?;
    state.ledger.do_send(Forget(QuotaTarget::Token(t.id)));
    Ok(HttpResponse::NoContent().finish())
}
