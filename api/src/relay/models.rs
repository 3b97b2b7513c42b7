//! `GET /v1/models`: the models this token may use.

use actix_web::{web, HttpResponse};
use serde_json::json;
use sluice_actors::router::ListModels;

use super::auth::RelayAuth;
use super::error::RelayError;
use crate::state::AppState;

fn model_object(id: &str) -> serde_json::Value {
    json!({ "id": id, "object": "model", "created": 0, "owned_by": "sluice" })
}

async fn allowed_models(state: &AppState, auth: &RelayAuth) -> Result<Vec<String>, RelayError> {
    let served = state
        .router
        .send(ListModels)
        .await
        .map_err(|_| RelayError::ShuttingDown)?;
    Ok(served.into_iter().filter(|m| auth.0.allows(m)).collect())
}

/// List the models the caller's token may use.
pub async fn list(state: web::Data<AppState>, auth: RelayAuth) -> Result<HttpResponse, RelayError> {
    let models = allowed_models(&state, &auth).await?;
    let data: Vec<_> = models.iter().map(|m| model_object(m)).collect();
    Ok(HttpResponse::Ok().json(json!({ "object": "list", "data": data })))
}

/// One model, if the caller's token may use it.
pub async fn get(
    state: web::Data<AppState>,
    auth: RelayAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, RelayError> {
    let model = path.into_inner();
    let models = allowed_models(&state, &auth).await?;
    if models.contains(&model) {
        Ok(HttpResponse::Ok().json(model_object(&model)))
    } else {
        Err(RelayError::ModelNotFound {
            model,
            available: if models.is_empty() {
                "none".into()
            } else {
                models.join(", ")
            },
        })
    }
}
