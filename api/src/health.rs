//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::cluster::Link;
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

/// The database answers too; with replicas, also says how the link to Redis
/// is (a replica without it still serves, but learns others' changes late).
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let redis = match state.cluster.link() {
        Link::Off => json!("off"),
        Link::Up => json!("connected"),
        Link::Down(why) => json!(format!("unreachable: {why}")),
    };
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready", "redis": redis })),
        Err(e) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable",
            "error": e.to_string(),
            "redis": redis,
        })),
    }
}
