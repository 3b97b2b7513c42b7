//! `/api/prices` and `/api/groups`: what a model costs and how a group's
//! multiplier scales it. Everyone reads; admins change. Changes reach the
//! relay's price book in the same request.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sluice_entity::{model_prices, settings};
use utoipa::ToSchema;

use crate::audit::{self, Action, Actor, AuditEntry, Target};
use crate::auth::AuthContext;
use crate::billing::{
    Price, QuotaPolicy, DEFAULT_OUTPUT_ALLOWANCE, GROUP_MULTIPLIERS_KEY, GROUP_QUOTA_POLICIES_KEY,
    GROUP_WEIGHTS_KEY, MAX_PRICE, UNITS_PER_USD,
};
use crate::catalog::users::parse_group;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::manage::body::JsonObject;
use crate::state::AppState;

/// `/api/prices` and `/api/groups` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/prices", web::get().to(list_prices))
        .route("/prices/{model}", web::put().to(set_price))
        .route("/prices/{model}", web::delete().to(delete_price))
        .route("/groups", web::get().to(list_groups))
        .route("/groups/{group}", web::put().to(set_group))
        .route("/groups/{group}", web::delete().to(delete_group))
        .route("/groups/{group}/weight", web::put().to(set_group_weight))
        .route(
            "/groups/{group}/quota-policy",
            web::put().to(set_group_quota_policy),
        );
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_prices,
        set_price,
        delete_price,
        list_groups,
        set_group,
        delete_group,
        set_group_weight,
        set_group_quota_policy
    ),
    components(schemas(
        PriceList,
        ModelPrice,
        Price,
        GroupList,
        GroupMultiplier,
        GroupWeight,
        GroupQuotaPolicy,
        QuotaPolicy
    ))
)]
pub struct Doc;

/// A model and its price.
#[derive(Serialize, ToSchema)]
pub struct ModelPrice {
    /// Model, as clients name it.
    pub model: String,
    /// Quota units per million prompt tokens.
    pub input: i64,
    /// Quota units per million completion tokens.
    pub output: i64,
    /// Completion tokens reserved for a request that names no `max_tokens`.
    pub max_output_tokens: u32,
}

/// Every priced model; unlisted models are free.
#[derive(Serialize, ToSchema)]
pub struct PriceList {
    /// Quota units per US dollar (prices are in quota units).
    pub units_per_usd: i64,
    /// Prices, by model name.
    pub prices: Vec<ModelPrice>,
}

/// A group's multiplier.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMultiplier {
    /// Permille: 1000 = ×1, 800 = 20 % off (1–100000).
    #[schema(minimum = 1, maximum = 100_000)]
    pub multiplier_permille: u32,
}

/// A group's share of a busy key pool.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupWeight {
    /// While requests wait, each user of this group gets this many turns for every
    /// one a user of a weight-1 group gets (1–100; 1 is the default).
    #[schema(minimum = 1, maximum = 100)]
    pub weight: u32,
}

/// What a group's requests do when quota runs short.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupQuotaPolicy {
    /// `clamp` (the default): a request whose output allowance the quota left
    /// cannot pay is sent with `max_tokens` lowered to what it can pay; `refuse`:
    /// it is refused with `insufficient_quota`.
    pub policy: QuotaPolicy,
}

/// Every group with a multiplier (others pay ×1) or a weight (others weigh 1).
#[derive(Serialize, ToSchema)]
pub struct GroupList {
    /// Multipliers in permille, by group.
    pub groups: BTreeMap<String, u32>,
    /// Shares of a busy pool, by group (groups not listed weigh 1).
    pub weights: BTreeMap<String, u32>,
    /// What happens when quota runs short, by group (groups not listed: clamp).
    pub quota_policies: BTreeMap<String, QuotaPolicy>,
}

impl GroupList {
    fn now(state: &AppState) -> GroupList {
        GroupList {
            groups: state.prices.groups().into_iter().collect(),
            weights: state.prices.weights().into_iter().collect(),
            quota_policies: state.prices.policies().into_iter().collect(),
        }
    }
}

fn parse_model(model: &str) -> Result<String, ApiError> {
    if !crate::config::is_plain_name(model) {
        return Err(ApiError::invalid(
            "model",
            "model must be 1–128 characters, none of them control characters",
        ));
    }
    Ok(crate::config::trim_name(model).to_string())
}

/// List model prices.
///
/// Any signed-in user. Every priced model with its input and output price per
/// million tokens (in quota units) and the output allowance reserved when a
/// request names no `max_tokens`; unlisted models are free.
#[utoipa::path(get, path = "/api/prices", tag = "billing", security(("bearer" = [])),
    responses((status = 200, body = PriceList), (status = 401, body = ErrorBody)))]
pub async fn list_prices(state: web::Data<AppState>, _auth: AuthContext) -> HttpResponse {
    let mut prices: Vec<ModelPrice> = state
        .prices
        .prices()
        .into_iter()
        .map(|(model, p)| ModelPrice {
            model,
            input: p.input,
            output: p.output,
            max_output_tokens: p.max_output_tokens.unwrap_or(DEFAULT_OUTPUT_ALLOWANCE),
        })
        .collect();
    prices.sort_by(|a, b| a.model.cmp(&b.model));
    HttpResponse::Ok().json(PriceList {
        units_per_usd: UNITS_PER_USD,
        prices,
    })
}

/// Set a model's price.
///
/// Admin only. Creates or replaces the model's price, in quota units per million
/// tokens; the relay charges it from the next request. An `input` or `output`
/// outside 0–10^12, a `max_output_tokens` outside 1–1000000, or a model name
/// that is not 1–128 characters is refused with 400.
#[utoipa::path(put, path = "/api/prices/{model}", tag = "billing", params(("model" = String, Path, description = "model name")),
    request_body = Price, security(("bearer" = [])),
    responses((status = 200, body = Price), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn set_price(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    model: web::Path<String>,
    body: JsonObject<Price>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let model = parse_model(&model)?;
    let price = body.into_inner();
    if !(0..=MAX_PRICE).contains(&price.input) || !(0..=MAX_PRICE).contains(&price.output) {
        let param = if (0..=MAX_PRICE).contains(&price.input) {
            "output"
        } else {
            "input"
        };
        return Err(ApiError::invalid(
            param,
            format!("prices must be between 0 and {MAX_PRICE}"),
        ));
    }
    if price
        .max_output_tokens
        .is_some_and(|n| !(1..=1_000_000).contains(&n))
    {
        return Err(ApiError::invalid(
            "max_output_tokens",
            "max_output_tokens must be 1–1000000",
        ));
    }
    model_prices::Entity::insert(model_prices::ActiveModel {
        model: Set(model.clone()),
        input_price: Set(price.input),
        output_price: Set(price.output),
        max_output_tokens: Set(price.max_output_tokens.map(|n| n as i32)),
        updated_at: Set(Utc::now()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(model_prices::Column::Model)
            .update_columns([
                model_prices::Column::InputPrice,
                model_prices::Column::OutputPrice,
                model_prices::Column::MaxOutputTokens,
                model_prices::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(&state.db)
    .await?;
    let before = state.prices.price(&model);
    state.prices.set_price(&model, Some(price));
    state.cluster.announce(crate::cluster::Change::Prices);
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::changed(Action::PriceSet, price_target(&model), &before, &price),
    )
    .await?;
    Ok(HttpResponse::Ok().json(price))
}

/// Remove a model's price.
///
/// Admin only. The model becomes free from the next request. A model with no
/// price is a 404.
#[utoipa::path(delete, path = "/api/prices/{model}", tag = "billing", params(("model" = String, Path, description = "model name")),
    security(("bearer" = [])),
    responses((status = 204, description = "removed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_price(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    model: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let deleted = model_prices::Entity::delete_many()
        .filter(model_prices::Column::Model.eq(model.as_str()))
        .exec(&state.db)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(ApiError::not_found(format!("price of '{model}'")));
    }
    let before = state.prices.price(&model);
    state.prices.set_price(&model, None);
    state.cluster.announce(crate::cluster::Change::Prices);
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::deleted(Action::PriceDelete, price_target(&model), &before),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A model's price, as the audit log names it.
fn price_target(model: &str) -> Target {
    Target::new("price", model, model)
}

/// A group, as the audit log names it.
fn group_target(group: &str) -> Target {
    Target::new("group", group, group)
}

/// List group settings.
///
/// Any signed-in user. Every group with a price multiplier (others pay ×1), a
/// share of a busy key pool (others weigh 1) or a quota policy (others clamp).
#[utoipa::path(get, path = "/api/groups", tag = "billing", security(("bearer" = [])),
    responses((status = 200, body = GroupList), (status = 401, body = ErrorBody)))]
pub async fn list_groups(state: web::Data<AppState>, _auth: AuthContext) -> HttpResponse {
    HttpResponse::Ok().json(GroupList::now(&state))
}

async fn save_groups(state: &AppState, groups: BTreeMap<String, u32>) -> Result<(), ApiError> {
    save_setting(state, GROUP_MULTIPLIERS_KEY, &groups).await?;
    state.prices.set_groups(groups.into_iter().collect());
    state.cluster.announce(crate::cluster::Change::Prices);
    Ok(())
}

async fn save_setting(state: &AppState, key: &str, map: &impl Serialize) -> Result<(), ApiError> {
    let value = serde_json::to_string(map).expect("map serialises");
    settings::Entity::insert(settings::ActiveModel {
        key: Set(key.into()),
        value: Set(value),
        updated_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(settings::Column::Key)
            .update_columns([settings::Column::Value, settings::Column::UpdatedAt])
            .to_owned(),
    )
    .exec_without_returning(&state.db)
    .await?;
    Ok(())
}

/// Set a group's price multiplier.
///
/// Admin only. Sets `multiplier_permille` (1000 = ×1, 800 = 20 % off; 1–100000,
/// otherwise 400) and returns every group's settings; it applies from the next
/// request.
#[utoipa::path(put, path = "/api/groups/{group}", tag = "billing", params(("group" = String, Path, description = "group name")),
    request_body = GroupMultiplier, security(("bearer" = [])),
    responses((status = 200, body = GroupList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn set_group(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    group: web::Path<String>,
    body: JsonObject<GroupMultiplier>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let group = parse_group(&group)?;
    if !(1..=100_000).contains(&body.multiplier_permille) {
        return Err(ApiError::invalid(
            "multiplier_permille",
            "multiplier_permille must be 1–100000",
        ));
    }
    let mut groups: BTreeMap<String, u32> = state.prices.groups().into_iter().collect();
    let before = groups.insert(group.clone(), body.multiplier_permille);
    save_groups(&state, groups).await?;
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::changed(
            Action::GroupMultiplier,
            group_target(&group),
            &json!({ "multiplier_permille": before }),
            &json!({ "multiplier_permille": body.multiplier_permille }),
        ),
    )
    .await?;
    Ok(HttpResponse::Ok().json(GroupList::now(&state)))
}

/// Set a group's quota policy.
///
/// Admin only. Chooses what a group's requests do when quota runs short: `clamp`
/// (the default) lowers `max_tokens` to what the quota left pays for; `refuse`
/// answers `insufficient_quota`. Returns every group's settings.
#[utoipa::path(put, path = "/api/groups/{group}/quota-policy", tag = "billing", params(("group" = String, Path, description = "group name")),
    request_body = GroupQuotaPolicy, security(("bearer" = [])),
    responses((status = 200, body = GroupList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn set_group_quota_policy(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    group: web::Path<String>,
    body: JsonObject<GroupQuotaPolicy>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let group = parse_group(&group)?;
    let before = state.prices.quota_policy(&group);
    let mut policies: BTreeMap<String, QuotaPolicy> = state.prices.policies().into_iter().collect();
    if body.policy == QuotaPolicy::default() {
        policies.remove(&group);
    } else {
        policies.insert(group.clone(), body.policy);
    }
    save_setting(&state, GROUP_QUOTA_POLICIES_KEY, &policies).await?;
    state.prices.set_policies(policies.into_iter().collect());
    state.cluster.announce(crate::cluster::Change::Prices);
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::changed(
            Action::GroupQuotaPolicy,
            group_target(&group),
            &json!({ "policy": before }),
            &json!({ "policy": body.policy }),
        ),
    )
    .await?;
    Ok(HttpResponse::Ok().json(GroupList::now(&state)))
}

/// Set a group's weight.
///
/// Admin only. Sets the group's share of a busy key pool: while requests wait,
/// each of its users gets `weight` turns for every one a weight-1 user gets
/// (1–100, otherwise 400; 1 is the default). Returns every group's settings.
#[utoipa::path(put, path = "/api/groups/{group}/weight", tag = "billing", params(("group" = String, Path, description = "group name")),
    request_body = GroupWeight, security(("bearer" = [])),
    responses((status = 200, body = GroupList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn set_group_weight(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    group: web::Path<String>,
    body: JsonObject<GroupWeight>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let group = parse_group(&group)?;
    if !(1..=100).contains(&body.weight) {
        return Err(ApiError::invalid("weight", "weight must be 1–100"));
    }
    let before = state.prices.weight(&group);
    let mut weights: BTreeMap<String, u32> = state.prices.weights().into_iter().collect();
    if body.weight == 1 {
        weights.remove(&group);
    } else {
        weights.insert(group.clone(), body.weight);
    }
    save_setting(&state, GROUP_WEIGHTS_KEY, &weights).await?;
    state.prices.set_weights(weights.into_iter().collect());
    state.cluster.announce(crate::cluster::Change::Prices);
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::changed(
            Action::GroupWeight,
            group_target(&group),
            &json!({ "weight": before }),
            &json!({ "weight": body.weight }),
        ),
    )
    .await?;
    Ok(HttpResponse::Ok().json(GroupList::now(&state)))
}

/// Remove a group's price multiplier.
///
/// Admin only. The group pays ×1 from the next request. A group with no
/// multiplier is a 404.
#[utoipa::path(delete, path = "/api/groups/{group}", tag = "billing", params(("group" = String, Path, description = "group name")),
    security(("bearer" = [])),
    responses((status = 204, description = "removed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_group(
    state: web::Data<AppState>,
    auth: AuthContext,
    req: HttpRequest,
    group: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let mut groups: BTreeMap<String, u32> = state.prices.groups().into_iter().collect();
    let Some(before) = groups.remove(group.as_str()) else {
        return Err(ApiError::not_found(format!("multiplier of group '{group}'")));
    };
    save_groups(&state, groups).await?;
    audit::record(
        &state.db,
        &Actor::new(&auth, &req, &state.settings),
        AuditEntry::deleted(
            Action::GroupMultiplierDelete,
            group_target(&group),
            &json!({ "multiplier_permille": before }),
        ),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
