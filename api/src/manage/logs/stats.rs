//! `GET /api/logs/stats`: requests, tokens, quota, errors and 429s totalled per
//! local day or per model, user, channel or token. The database does the
//! grouping (see [`super::buckets`]), so the answer costs one query however many
//! rows match.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::buckets::{self, Dimension, Interval, Totals};
use super::StatsQuery;
use crate::auth::AuthContext;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// How stats are bucketed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One bucket per calendar day in `tz`, keyed `YYYY-MM-DD`.
    #[default]
    Day,
    /// One bucket per model the clients asked for.
    Model,
    /// One bucket per user (admins only), keyed by user id.
    User,
    /// One bucket per channel that served (admins only), keyed by channel id.
    Channel,
    /// One bucket per `sk-` token, keyed by token id.
    Token,
}

impl GroupBy {
    fn dimension(self) -> Option<Dimension> {
        match self {
            GroupBy::Day => None,
            GroupBy::Model => Some(Dimension::Model),
            GroupBy::User => Some(Dimension::User),
            GroupBy::Channel => Some(Dimension::Channel),
            GroupBy::Token => Some(Dimension::Token),
        }
    }
}

/// One bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsRow {
    /// The day (`YYYY-MM-DD` in `tz`), the model, or the user, channel or token id
    /// (`none` for requests without one).
    pub key: String,
    /// What to show: the day, the model, the username, channel name or token name.
    pub label: String,
    /// Its totals.
    #[serde(flatten)]
    pub totals: Totals,
}

/// Buckets in key order, and their sum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// How the rows are bucketed.
    pub group_by: GroupBy,
    /// The time zone days are cut in.
    pub tz: String,
    /// One row per day, model, user, channel or token that had requests: days in
    /// order, the others by label.
    pub rows: Vec<StatsRow>,
    /// Every matching request.
    pub total: Totals,
}

/// Get usage totals.
///
/// Requests, tokens, quota, errors and 429s per day in `tz` (the default) or
/// `group_by` model, token, or (admins only) user or channel, with their sum.
/// Users see their own requests; admins everyone's or one user's. Takes the
/// same filters as `GET /api/logs`.
#[utoipa::path(get, path = "/api/logs/stats", tag = "logs", operation_id = "log_stats", params(StatsQuery), security(("bearer" = [])),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "another user's stats, or grouping by user or channel, asked by a non-admin")))]
pub async fn stats(
    state: web::Data<AppState>,
    auth: AuthContext,
    q: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = q.filter(&auth)?;
    let group_by = q.group_by.unwrap_or_default();
    let tz = buckets::parse_tz(q.tz.as_deref())?;
    let dimension = group_by.dimension();
    if dimension.is_some_and(Dimension::admin_only) {
        auth.require_admin()?;
    }
    let time = dimension.is_none().then_some((Interval::Day, tz));
    let found = buckets::aggregate(&state.db, &filter, time, dimension).await?;
    let labels = buckets::labels(&state.db, dimension, found.iter().map(|b| b.key.clone())).await?;
    let mut total = Totals::default();
    let mut rows: Vec<StatsRow> = found
        .into_iter()
        .map(|b| {
            total += b.totals;
            let (key, label) = match b.start {
                Some(start) => {
                    let day = buckets::local_date(start).format("%Y-%m-%d").to_string();
                    (day.clone(), day)
                }
                None => (
                    b.key.clone().unwrap_or_else(|| "none".into()),
                    labels.get(&b.key).cloned().unwrap_or_default(),
                ),
            };
            StatsRow {
                key,
                label,
                totals: b.totals,
            }
        })
        .collect();
    if dimension.is_some() {
        rows.sort_by(|a, b| a.label.cmp(&b.label).then_with(|| a.key.cmp(&b.key)));
    }
    Ok(HttpResponse::Ok().json(Stats {
        group_by,
        tz: tz.name().to_string(),
        rows,
        total,
    }))
}
