//! `GET /api/logs/export`: the matching usage-log rows as a CSV attachment
//! (streamed by [`csv_download`]).

use actix_web::{web, HttpResponse};
use chrono::SecondsFormat;
use sluice_entity::usage_logs;

use super::ExportQuery;
use crate::auth::AuthContext;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::manage::csv_download::{csv_download, spreadsheet_text as text, CHUNK};
use crate::state::AppState;

/// The header row; [`record`] writes the columns in this order.
const COLUMNS: [&str; 22] = [
    "id",
    "request_id",
    "created_at",
    "user_id",
    "token_id",
    "token_name",
    "model",
    "upstream_model",
    "channel_id",
    "key_id",
    "prompt_tokens",
    "completion_tokens",
    "usage_estimated",
    "quota",
    "latency_ms",
    "first_token_ms",
    "is_stream",
    "status",
    "attempts",
    "error",
    "protocol",
    "fallback",
];

/// Export usage-log entries as CSV.
///
/// Any signed-in user exports their own requests; admins everyone's, or one
/// user's with `user_id`. Takes the same filters as `GET /api/logs` and streams
/// every matching row, newest first, as the attachment `sluice-usage.csv`.
#[utoipa::path(get, path = "/api/logs/export", tag = "logs", operation_id = "export_logs", params(ExportQuery), security(("bearer" = [])),
    responses(
        (status = 200, content_type = "text/csv", body = String,
            description = "A header row, then one row per request, as an attachment named sluice-usage.csv"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn export(
    state: web::Data<AppState>,
    auth: AuthContext,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = q.filter(&auth)?;
    let db = state.db.clone();
    csv_download(
        "sluice-usage.csv",
        COLUMNS,
        record,
        |r| r.id,
        move |before| {
            let (db, filter) = (db.clone(), filter.clone());
            async move { filter.page(&db, before, CHUNK).await }
        },
    )
    .await
}

/// One row's cells, in [`COLUMNS`] order.
fn record(r: &usage_logs::Model) -> [String; 22] {
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    [
        r.id.to_string(),
        text(&r.request_id),
        r.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        opt(r.user_id),
        opt(r.token_id),
        text(&r.token_name),
        text(&r.model),
        text(&r.upstream_model),
        opt(r.channel_id),
        opt(r.key_id),
        r.prompt_tokens.to_string(),
        r.completion_tokens.to_string(),
        r.usage_estimated.to_string(),
        r.quota.to_string(),
        r.latency_ms.to_string(),
        opt(r.first_token_ms),
        r.is_stream.to_string(),
        r.status.to_string(),
        r.attempts.to_string(),
        r.error.as_deref().map(text).unwrap_or_default(),
        text(&r.protocol),
        r.fallback.as_deref().map(text).unwrap_or_default(),
    ]
}
