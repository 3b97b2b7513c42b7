//! `GET /v1/models`: the models this token may use.

use actix_web::{web, HttpResponse};

use super::auth::RelayAuth;
use super::error::RelayError;
use crate::state::AppState;

fn model_object(id: &str) -> ModelObject {
    ModelObject {
        id: id.to_string(),
        object: "model".into(),
        created: 0,
        owned_by: "sluice".into(),
    }
}

fn allowed_models(state: &AppState, auth: &RelayAuth) -> Vec<String> {
    let served = state.models.list(Some(&auth.owner.group));
    served.into_iter().filter(|m| auth.token.allows(m)).collect()
}

/// A model in the list.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ModelObject {
    /// The name clients use.
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Always 0.
    pub created: i64,
    /// Always `sluice`.
    pub owned_by: String,
}

/// The model list.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    /// The models.
    pub data: Vec<ModelObject>,
}

/// List models.
///
/// Needs an `sk-` token. The models served to the token owner's group that the
/// token may use, in OpenAI's list format.
#[utoipa::path(operation_id = "list_models", get, path = "/v1/models", tag = "relay", security(("sk_token" = [])),
    responses((status = 200, body = ModelList), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(state: web::Data<AppState>, auth: RelayAuth) -> Result<HttpResponse, RelayError> {
    let models = allowed_models(&state, &auth);
    let data = models.iter().map(|m| model_object(m)).collect();
    Ok(HttpResponse::Ok().json(ModelList {
        object: "list".into(),
        data,
    }))
}

/// Get a model.
///
/// Needs an `sk-` token. The model in OpenAI's format when it is served to the
/// token owner's group and the token may use it; otherwise a 404 that lists the
/// models available.
#[utoipa::path(operation_id = "get_model", get, path = "/v1/models/{model}", tag = "relay", security(("sk_token" = [])),
    params(("model" = String, Path, description = "model name")),
    responses((status = 200, body = ModelObject), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    auth: RelayAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, RelayError> {
    let model = path.into_inner();
    let models = allowed_models(&state, &auth);
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
