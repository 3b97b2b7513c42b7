//! `GET /api/instance`: what a signed-in client needs to know about this
//! deployment — its public address, whether it sends mail, and the models the
//! caller may use — to build ready-to-paste client configuration.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthContext;
use crate::billing::UNITS_PER_USD;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// `/api/instance` route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/instance", web::get().to(instance));
}

/// The OpenAPI description of this route.
#[derive(utoipa::OpenApi)]
#[openapi(paths(instance), components(schemas(Instance)))]
pub struct Doc;

/// This deployment, as a client sees it.
#[derive(Serialize, ToSchema, Debug)]
pub struct Instance {
    /// Sluice's version.
    pub version: String,
    /// The address users reach Sluice at; the OpenAI base URL is this plus `/v1`.
    pub public_url: String,
    /// Whether invites and password resets can be mailed.
    pub mail_enabled: bool,
    /// Quota units per US dollar.
    pub units_per_usd: i64,
    /// The models the caller's group may use, sorted.
    pub models: Vec<String>,
}

/// Describe this deployment.
///
/// Any signed-in user. Returns Sluice's version, its public address (the OpenAI
/// base URL is it plus `/v1`), whether mail is enabled, quota units per US
/// dollar, and the models the caller's group may use, to build client setup.
#[utoipa::path(get, path = "/api/instance", tag = "users", operation_id = "get_instance", security(("bearer" = [])),
    responses((status = 200, body = Instance), (status = 401, body = ErrorBody)))]
pub async fn instance(state: web::Data<AppState>, auth: AuthContext) -> Result<HttpResponse, ApiError> {
    let models = state.models.list(Some(&auth.user.group_name));
    Ok(HttpResponse::Ok().json(Instance {
        version: env!("CARGO_PKG_VERSION").into(),
        public_url: state.settings.public_url.trim_end_matches('/').to_string(),
        mail_enabled: state.mailer.is_some(),
        units_per_usd: UNITS_PER_USD,
        models,
    }))
}
