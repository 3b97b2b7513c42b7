//! `sk-` tokens: each user creates, changes and deletes their own. Every write
//! updates the relay's token cache in the same step, so `/v1` sees it at once.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeZone, Utc};
use ipnet::IpNet;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use sluice_actors::ledger::{ChangeQuota, Forget, QuotaChange, QuotaTarget};
use sluice_entity::tokens;
use utoipa::ToSchema;

use super::sync::{token_prefix, MANAGED_BY_CONFIG};
use super::{parse_limit, present, Changed, Status};
use crate::billing::Quota;
use crate::cluster::Change;
use crate::error::ApiError;
use crate::secrets::{hash_hex, new_token_key};
use crate::state::AppState;

/// A token to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Name (1–128 characters).
    #[schema(min_length = 1, max_length = 128)]
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
    /// Requests per window it may make; 0 = no limit of its own (default).
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Tokens per window; 0 = no limit (default).
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Requests in flight at once; 0 = no limit (default).
    #[serde(default)]
    pub max_concurrency: Option<u32>,
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
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub models: Option<Option<Vec<String>>>,
    /// Client networks; null = any.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub ip_allow: Option<Option<Vec<String>>>,
    /// Expiry; null = never.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// Units left; null = unlimited.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub quota: Option<Option<i64>>,
    /// Requests per window it may make; 0 = no limit of its own (default).
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Tokens per window; 0 = no limit (default).
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Requests in flight at once; 0 = no limit (default).
    #[serde(default)]
    pub max_concurrency: Option<u32>,
}

fn parse_name(name: &str) -> Result<String, ApiError> {
    if !crate::config::is_plain_name(name) {
        return Err(ApiError::invalid(
            "name",
            "name must be 1–128 characters, none of them control characters",
        ));
    }
    Ok(crate::config::trim_name(name).to_string())
}

fn parse_models(models: Option<Vec<String>>) -> Result<Option<String>, ApiError> {
    let Some(models) = models else { return Ok(None) };
    let set: BTreeSet<String> = models.iter().map(|m| m.trim().to_string()).collect();
    if !set.iter().all(|m| crate::config::is_plain_name(m)) {
        return Err(ApiError::invalid(
            "models",
            "model names must be 1–128 characters, none of them control characters",
        ));
    }
    Ok(Some(serde_json::to_string(&set).expect("strings serialise")))
}

/// CIDRs (IPv4 and IPv6); a bare address means just that address.
fn parse_networks(nets: Option<Vec<String>>) -> Result<Option<String>, ApiError> {
    let Some(nets) = nets else { return Ok(None) };
    if nets.is_empty() {
        return Err(ApiError::invalid(
            "ip_allow",
            "ip_allow must list at least one network, or be null for any",
        ));
    }
    let parsed = nets
        .iter()
        .map(|n| {
            // Exactly as written: the document's pattern allows no spaces around.
            n.parse::<IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    ApiError::invalid(
                        "ip_allow",
                        format!("'{n}' is not a CIDR network or an IP address"),
                    )
                })
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
        return Err(ApiError::Unprocessable {
            param: "expires_at",
            message: "expires_at must be in the future".into(),
        });
    }
    if at >= limit {
        return Err(ApiError::Unprocessable {
            param: "expires_at",
            message: "expires_at must be before 2038-01-01".into(),
        });
    }
    Ok(Some(at))
}

fn parse_quota(quota: i64) -> Result<i64, ApiError> {
    Quota::parse(quota, "quota").map(Quota::get)
}

/// Create a token for `user_id`; returns the full key (shown this once) and the row.
pub async fn create(
    state: &AppState,
    user_id: i64,
    body: CreateToken,
) -> Result<(String, tokens::Model), ApiError> {
    let key = new_token_key();
    let now = Utc::now();
    let quota = body.quota.map(parse_quota).transpose()?;
    let row = tokens::ActiveModel {
        user_id: Set(user_id),
        name: Set(parse_name(&body.name)?),
        key_hash: Set(hash_hex(&key)),
        key_prefix: Set(token_prefix(&key)),
        status: Set(Status::Enabled.as_str().into()),
        models: Set(parse_models(body.models)?),
        ip_allow: Set(parse_networks(body.ip_allow)?),
        expires_at: Set(parse_expiry(body.expires_at)?),
        unlimited_quota: Set(quota.is_none()),
        remaining_quota: Set(quota.unwrap_or(0)),
        used_quota: Set(0),
        managed_by: Set("api".into()),
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
    state.tokens.put(&row)?;
    state.cluster.announce(Change::Tokens);
    Ok((key, row))
}

/// One of `user_id`'s tokens (someone else's is 404, as if it did not exist).
pub async fn own(state: &AppState, user_id: i64, id: i64) -> Result<tokens::Model, ApiError> {
    tokens::Entity::find_by_id(id)
        .filter(tokens::Column::UserId.eq(user_id))
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

/// Change one of `user_id`'s tokens; the relay sees the change at once.
pub async fn update(
    state: &AppState,
    user_id: i64,
    id: i64,
    body: UpdateToken,
) -> Result<Changed<tokens::Model>, ApiError> {
    let current = own(state, user_id, id).await?;
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
    if let Some(v) = body.rpm {
        row.rpm = Set(parse_limit(v.into(), "rpm")?);
    }
    if let Some(v) = body.tpm {
        row.tpm = Set(parse_limit(v, "tpm")?);
    }
    if let Some(v) = body.max_concurrency {
        row.max_concurrency = Set(parse_limit(v.into(), "max_concurrency")? as i32);
    }
    let quota_change = match body.quota {
        None => None,
        Some(None) => Some(QuotaChange::Unlimited),
        Some(Some(q)) => Some(QuotaChange::Set(parse_quota(q)?)),
    };
    if quota_change.is_some() {
        super::users::quota_may_change(state).await?;
    }
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
            .map_err(super::users::quota_not_changed)?;
    }
    let updated = own(state, user_id, current.id).await?;
    state.tokens.put(&updated)?;
    state.cluster.announce(Change::Tokens);
    Ok(Changed {
        before: current,
        after: updated,
    })
}

/// Delete one of `user_id`'s tokens; it stops working at once. Its usage logs
/// stay. The token as it was.
pub async fn delete(state: &AppState, user_id: i64, id: i64) -> Result<tokens::Model, ApiError> {
    let t = own(state, user_id, id).await?;
    writable(&t)?;
    state.tokens.remove(&t.key_hash);
    state.cluster.announce(Change::Tokens);
    tokens::Entity::delete_by_id(t.id).exec(&state.db).await?;
    state.ledger.do_send(Forget(QuotaTarget::Token(t.id)));
    Ok(t)
}
