//! `GET /api/logs/export`: the matching usage-log rows as a CSV attachment, newest
//! first, streamed a chunk of rows at a time so an export of millions of requests
//! never sits in memory whole.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use chrono::SecondsFormat;
use futures_util::{stream, StreamExt};
use sluice_entity::usage_logs;

use super::ExportQuery;
use crate::auth::AuthContext;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::state::AppState;

/// Rows per query: enough to amortise the round trip, few enough to keep memory flat.
const CHUNK: u64 = 1000;

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
    // The first chunk is read before answering, so a failing database is a 500, not a
    // 200 with a truncated file.
    let first = filter.page(&state.db, None, CHUNK).await?;
    let head = csv_chunk(&first, true)?;
    let db = state.db.clone();
    let rest = stream::try_unfold(resume_after(&first), move |before| {
        let (db, filter) = (db.clone(), filter.clone());
        async move {
            let Some(before) = before else { return Ok(None) };
            let rows = filter.page(&db, Some(before), CHUNK).await?;
            Ok(Some((csv_chunk(&rows, false)?, resume_after(&rows))))
        }
    });
    let body = stream::once(async { Ok(head) })
        .chain(rest)
        .map(|chunk| chunk.inspect_err(|e: &ApiError| tracing::error!(error = %e, "usage export cut short")));
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"sluice-usage.csv\"",
        ))
        .streaming(body))
}

/// Where the next chunk starts, or `None` when this one was the last.
fn resume_after(rows: &[usage_logs::Model]) -> Option<i64> {
    if rows.len() as u64 == CHUNK {
        rows.last().map(|r| r.id)
    } else {
        None
    }
}

fn csv_chunk(rows: &[usage_logs::Model], with_header: bool) -> Result<Bytes, ApiError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    if with_header {
        out.write_record(COLUMNS).map_err(csv_failed)?;
    }
    for row in rows {
        out.write_record(record(row)).map_err(csv_failed)?;
    }
    let bytes = out.into_inner().map_err(|e| csv_failed(e.into_error().into()))?;
    Ok(Bytes::from(bytes))
}

fn csv_failed(e: csv::Error) -> ApiError {
    ApiError::Internal(anyhow::Error::new(e).context("writing the usage CSV"))
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

/// A text cell a spreadsheet will not run as a formula. Token names are chosen by
/// users and errors quote providers, while the admin opening the export is the one
/// a formula would attack; a leading `'` makes the cell plain text.
pub(in crate::manage) fn text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}
