//! `/api/logs`: the usage log — one row per relayed request — listed, totalled per
//! day or model, and exported as CSV. A user sees only their own requests; admins
//! see everyone's and may narrow to one user.

mod buckets;
mod export;
mod series;
mod stats;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use sluice_entity::usage_logs;
use utoipa::{IntoParams, ToSchema};

use super::Page;
use crate::auth::AuthContext;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::state::AppState;

pub use self::buckets::{Interval, Totals};
pub use self::series::{Series, SeriesBy, SeriesRow};
pub use self::stats::{GroupBy, Stats, StatsRow};

/// `/api/logs` routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/logs", web::get().to(list))
        .route("/logs/stats", web::get().to(stats::stats))
        .route("/logs/series", web::get().to(series::series))
        .route("/logs/export", web::get().to(export::export));
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, stats::stats, series::series, export::export),
    components(schemas(
        LogView, GroupBy, Stats, StatsRow, Totals, Interval, SeriesBy, Series, SeriesRow
    ))
)]
pub struct Doc;

/// One relayed request as the API shows it.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct LogView {
    /// Id; newer requests have larger ids.
    pub id: i64,
    /// The request id sent back to the client in `x-request-id`.
    pub request_id: String,
    /// When the request arrived.
    pub created_at: DateTime<Utc>,
    /// Whose request it was.
    pub user_id: Option<i64>,
    /// The `sk-` token it came with.
    pub token_id: Option<i64>,
    /// That token's name at the time.
    pub token_name: String,
    /// The model the client asked for.
    pub model: String,
    /// The model name sent upstream.
    pub upstream_model: String,
    /// The channel that served it.
    pub channel_id: Option<i64>,
    /// The upstream key that served it.
    pub key_id: Option<i64>,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Whether the token counts were estimated here because the provider reported none.
    pub usage_estimated: bool,
    /// Cost in quota units.
    pub quota: i64,
    /// Time until the response ended, in milliseconds.
    pub latency_ms: i64,
    /// Time until the first byte, in milliseconds.
    pub first_token_ms: Option<i64>,
    /// Whether the answer was streamed.
    pub is_stream: bool,
    /// HTTP status the client got.
    pub status: i32,
    /// Upstream attempts made (retries on other keys included).
    pub attempts: i32,
    /// What went wrong, when something did.
    pub error: Option<String>,
    /// The API the client spoke: `openai`, `anthropic` or `responses`.
    pub protocol: String,
    /// The fallback chain the client asked for, when `model` is the step that served.
    pub fallback: Option<String>,
}

impl From<&usage_logs::Model> for LogView {
    fn from(r: &usage_logs::Model) -> Self {
        LogView {
            id: r.id,
            request_id: r.request_id.clone(),
            created_at: r.created_at,
            user_id: r.user_id,
            token_id: r.token_id,
            token_name: r.token_name.clone(),
            model: r.model.clone(),
            upstream_model: r.upstream_model.clone(),
            channel_id: r.channel_id,
            key_id: r.key_id,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            usage_estimated: r.usage_estimated,
            quota: r.quota,
            latency_ms: r.latency_ms,
            first_token_ms: r.first_token_ms,
            is_stream: r.is_stream,
            status: r.status,
            attempts: r.attempts,
            error: r.error.clone(),
            protocol: r.protocol.clone(),
            fallback: r.fallback.clone(),
        }
    }
}

/// Declares the query of one `/api/logs` route: the filters all three share, then its
/// own fields. A macro because serde cannot combine `flatten` with
/// `deny_unknown_fields`, and a misspelt filter must be an error, not a wider result.
macro_rules! log_query {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Deserialize, IntoParams)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Requests made at or after this time (RFC 3339, such as `2026-11-25T00:00:00Z`).
            #[param(format = DateTime)]
            pub from: Option<String>,
            /// Requests made before this time (RFC 3339; exclusive).
            #[param(format = DateTime)]
            pub to: Option<String>,
            /// Requests for this model (the name the client asked for).
            pub model: Option<String>,
            /// Requests made with this token.
            pub token_id: Option<i64>,
            /// Requests answered with this HTTP status.
            pub status: Option<u16>,
            /// Requests of this user (admins only; everyone else sees only their own).
            pub user_id: Option<i64>,
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl $name {
            /// The filters, checked, scoped to what `auth` may see.
            fn filter(&self, auth: &AuthContext) -> Result<LogFilter, ApiError> {
                Ok(LogFilter {
                    range: TimeRange::parse(self.from.as_deref(), self.to.as_deref())?,
                    model: self.model.as_deref().map(parse_model).transpose()?,
                    token_id: self.token_id,
                    status: self.status.map(parse_status).transpose()?,
                    user_id: scope(auth, self.user_id)?,
                })
            }
        }
    };
}

log_query! {
    /// Filters and paging for `GET /api/logs`.
    ListQuery {
        /// Return requests older than this cursor (from `next_cursor`).
        cursor: Option<i64>,
        /// At most this many requests (1–500, default 100).
        limit: Option<u64>,
    }
}

log_query! {
    /// Filters and grouping for `GET /api/logs/stats`.
    StatsQuery {
        /// `day` (the default), `model`, `user` (admins), `channel` (admins) or `token`.
        group_by: Option<GroupBy>,
        /// IANA time zone days are cut in, such as `Asia/Shanghai` (default `UTC`).
        tz: Option<String>,
    }
}

log_query! {
    /// Filters, bucket and split for `GET /api/logs/series`.
    SeriesQuery {
        /// `hour` or `day` (the default), in `tz`.
        interval: Option<Interval>,
        /// Split by `none` (the default), `model`, `user` (admins), `channel` (admins) or `token`.
        by: Option<SeriesBy>,
        /// IANA time zone buckets are cut in, such as `Asia/Shanghai` (default `UTC`).
        tz: Option<String>,
    }
}

log_query! {
    /// Filters for `GET /api/logs/export`.
    ExportQuery {}
}

/// Which usage-log rows a caller asked for, checked once at the edge.
#[derive(Clone, Debug)]
struct LogFilter {
    range: TimeRange,
    model: Option<String>,
    token_id: Option<i64>,
    status: Option<i32>,
    /// `None` only for an admin who asked for everyone.
    user_id: Option<i64>,
}

impl LogFilter {
    fn condition(&self) -> Condition {
        use usage_logs::Column as C;
        let mut all = Condition::all();
        if let Some(from) = self.range.from {
            all = all.add(C::CreatedAt.gte(from));
        }
        if let Some(to) = self.range.to {
            all = all.add(C::CreatedAt.lt(to));
        }
        if let Some(model) = &self.model {
            all = all.add(C::Model.eq(model.as_str()));
        }
        if let Some(token_id) = self.token_id {
            all = all.add(C::TokenId.eq(token_id));
        }
        if let Some(status) = self.status {
            all = all.add(C::Status.eq(status));
        }
        if let Some(user_id) = self.user_id {
            all = all.add(C::UserId.eq(user_id));
        }
        all
    }

    /// Up to `n` matching rows older than `before`, newest first.
    async fn page(
        &self,
        db: &DatabaseConnection,
        before: Option<i64>,
        n: u64,
    ) -> Result<Vec<usage_logs::Model>, ApiError> {
        let mut query = usage_logs::Entity::find()
            .filter(self.condition())
            .order_by_desc(usage_logs::Column::Id)
            .limit(n);
        if let Some(before) = before {
            query = query.filter(usage_logs::Column::Id.lt(before));
        }
        Ok(query.all(db).await?)
    }
}

/// A half-open time range `[from, to)`; either end may be open.
#[derive(Clone, Copy, Debug)]
pub(super) struct TimeRange {
    pub(super) from: Option<DateTime<Utc>>,
    pub(super) to: Option<DateTime<Utc>>,
}

impl TimeRange {
    /// `from` and `to` as a query gives them (RFC 3339), checked.
    pub(super) fn parse(from: Option<&str>, to: Option<&str>) -> Result<TimeRange, ApiError> {
        let range = TimeRange {
            from: from.map(|s| parse_time("from", s)).transpose()?,
            to: to.map(|s| parse_time("to", s)).transpose()?,
        };
        if let (Some(from), Some(to)) = (range.from, range.to) {
            if from > to {
                return Err(ApiError::Unprocessable {
                    param: "from",
                    message: format!(
                        "from ({}) is after to ({}); swap them",
                        from.to_rfc3339(),
                        to.to_rfc3339()
                    ),
                });
            }
        }
        // sqlx binds an instant as a MySQL TIMESTAMP, which MariaDB turns into NULL
        // past 2038-01-19, and nothing matches a NULL bound. Nothing stored is that
        // late, so such a `to` bounds nothing (a `from` that late still finds nothing).
        Ok(TimeRange {
            to: range.to.filter(|to| to.timestamp() < i64::from(i32::MAX)),
            ..range
        })
    }
}

fn parse_time(name: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            // A raw '+' in a query string arrives as a space, so '+01:00' offsets break.
            ApiError::BadRequest(format!(
                "{name} must be an RFC 3339 timestamp such as 2026-11-25T00:00:00Z, not '{s}' \
                 (in a URL, write '+' as %2B)"
            ))
        })
}

/// Blank and control characters as every name is checked (`config::is_blank`),
/// which is what the document's pattern states.
fn parse_model(s: &str) -> Result<String, ApiError> {
    // PostgreSQL refuses a NUL in text outright; no model name has control characters.
    if s.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "model must not contain control characters".into(),
        ));
    }
    if s.chars().all(crate::config::is_blank) {
        return Err(ApiError::BadRequest(
            "model must not be empty; leave it out to see every model".into(),
        ));
    }
    Ok(crate::config::trim_name(s).to_string())
}

fn parse_status(status: u16) -> Result<i32, ApiError> {
    if (100..=599).contains(&status) {
        Ok(i32::from(status))
    } else {
        Err(ApiError::BadRequest(format!(
            "status must be an HTTP status between 100 and 599, not {status}"
        )))
    }
}

/// The user whose rows the caller may see: any (or all) for admins, their own for everyone else.
fn scope(auth: &AuthContext, asked: Option<i64>) -> Result<Option<i64>, ApiError> {
    match asked {
        _ if auth.is_admin() => Ok(asked),
        Some(id) if id != auth.id() => Err(ApiError::Forbidden(
            "only admins see other users' logs; leave out user_id to see your own".into(),
        )),
        _ => Ok(Some(auth.id())),
    }
}

/// List usage-log entries.
///
/// Any signed-in user sees their own requests; admins see everyone's, or one
/// user's with `user_id` (403 for anyone else asking for another user). Newest
/// first, filtered by time range, `model`, `token_id` and `status`; paged with
/// `limit` (1–500, default 100) and `cursor` (the `next_cursor` of the last page).
#[utoipa::path(get, path = "/api/logs", tag = "logs", operation_id = "list_logs", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<LogView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: AuthContext,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = q.filter(&auth)?;
    let limit = super::page_limit(q.limit)?;
    let rows = filter.page(&state.db, q.cursor, limit + 1).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |r| r.id, |r| LogView::from(&r))))
}
