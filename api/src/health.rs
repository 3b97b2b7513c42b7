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
/// is (a replica without it still serves, but learns others' changes late)
/// and whether key budgets are shared or each replica keeps to its share.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let redis = match state.cluster.link() {
        Link::Off => json!("off"),
        Link::Up => json!("connected"),
        Link::Down(why) => json!(format!("unreachable: {why}")),
    };
    let mut body = json!({ "status": "ready", "redis": redis, "budgets": "local" });
    if let Some(windows) = state.cluster.windows() {
        let (errors, last) = windows.errors();
        body["budgets"] = if windows.failing() {
            let replicas = windows.replicas().load(std::sync::atomic::Ordering::Relaxed);
            json!(format!(
                "apart: each of {replicas} replicas keeps to its share of every key's limits"
            ))
        } else {
            json!("shared")
        };
        body["redis_errors"] = json!(errors);
        body["last_redis_error"] = json!(last);
    }
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok().json(body),
        Err(e) => {
            body["status"] = json!("unavailable");
            body["error"] = json!(e.to_string());
            HttpResponse::ServiceUnavailable().json(body)
        }
    }
}
