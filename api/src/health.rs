//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// Register `/healthz` and `/readyz`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// The process answers.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database answers too.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "unavailable", "error": e.to_string() })),
    }
}
