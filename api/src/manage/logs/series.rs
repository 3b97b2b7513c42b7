//! `GET /api/logs/series`: totals per local hour or day, optionally split by
//! model, user, channel or token — what a dashboard draws.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::buckets::{self, Dimension, Interval, Totals};
use super::SeriesQuery;
use crate::auth::AuthContext;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// What a series is split by besides time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeriesBy {
    /// One row per bucket.
    #[default]
    None,
    /// Per model.
    Model,
    /// Per user (admins only).
    User,
    /// Per channel (admins only).
    Channel,
    /// Per `sk-` token.
    Token,
}

impl SeriesBy {
    fn dimension(self) -> Option<Dimension> {
        match self {
            SeriesBy::None => None,
            SeriesBy::Model => Some(Dimension::Model),
            SeriesBy::User => Some(Dimension::User),
            SeriesBy::Channel => Some(Dimension::Channel),
            SeriesBy::Token => Some(Dimension::Token),
        }
    }
}

/// The longest range a series covers, per interval: charts need no more, and the
/// answer stays small.
fn longest(interval: Interval) -> Duration {
    match interval {
        Interval::Hour => Duration::days(31),
        Interval::Day => Duration::days(400),
    }
}

/// The range shown when `from` is absent.
fn default_span(interval: Interval) -> Duration {
    match interval {
        Interval::Hour => Duration::hours(24),
        Interval::Day => Duration::days(7),
    }
}

/// One bucket of one key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesRow {
    /// Local start of the bucket, with the zone's offset then.
    pub start: DateTime<FixedOffset>,
    /// The model, or the user, channel or token id (`none` for requests without
    /// one); `all` when not split.
    pub key: String,
    /// The model, username, channel name or token name.
    pub label: String,
    /// Its totals.
    #[serde(flatten)]
    pub totals: Totals,
}

/// A time series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Series {
    /// Bucket length.
    pub interval: Interval,
    /// The time zone buckets are cut in.
    pub tz: String,
    /// The split.
    pub by: SeriesBy,
    /// Buckets that had requests, by start, then key. Empty buckets are absent.
    pub rows: Vec<SeriesRow>,
}

/// Get usage totals over time.
///
/// Totals per local `hour` or `day` in `tz`, optionally split `by` model, token,
/// or (admins only) user or channel. Users see their own requests; admins
/// everyone's or one user's. Default range: the last 24 hours (hours) or 7 days
/// (days); a longer range than 31 days of hours or 400 days of days is a 400.
#[utoipa::path(get, path = "/api/logs/series", tag = "logs", operation_id = "log_series", params(SeriesQuery), security(("bearer" = [])),
    responses((status = 200, body = Series), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "another user's series, or a split by user or channel, asked by a non-admin")))]
pub async fn series(
    state: web::Data<AppState>,
    auth: AuthContext,
    q: web::Query<SeriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut filter = q.filter(&auth)?;
    let interval = q.interval.unwrap_or_default();
    let by = q.by.unwrap_or_default();
    let tz = buckets::parse_tz(q.tz.as_deref())?;
    let dimension = by.dimension();
    if dimension.is_some_and(Dimension::admin_only) {
        auth.require_admin()?;
    }
    let to = filter.range.to.unwrap_or_else(Utc::now);
    let from = *filter.range.from.get_or_insert(to - default_span(interval));
    if to - from > longest(interval) {
        return Err(ApiError::Unprocessable {
            param: "from",
            message: format!(
                "a series of {} covers at most {} days; narrow from and to",
                if interval == Interval::Hour {
                    "hours"
                } else {
                    "days"
                },
                longest(interval).num_days()
            ),
        });
    }
    let found = buckets::aggregate(&state.db, &filter, Some((interval, tz)), dimension).await?;
    let labels = buckets::labels(&state.db, dimension, found.iter().map(|b| b.key.clone())).await?;
    let rows = found
        .into_iter()
        .map(|b| SeriesRow {
            start: b.start.expect("bucketed by time"),
            label: labels.get(&b.key).cloned().unwrap_or_default(),
            key: b
                .key
                .unwrap_or_else(|| if dimension.is_some() { "none" } else { "all" }.into()),
            totals: b.totals,
        })
        .collect();
    Ok(HttpResponse::Ok().json(Series {
        interval,
        tz: tz.name().to_string(),
        by,
        rows,
    }))
}
