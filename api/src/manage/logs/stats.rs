//! `GET /api/logs/stats`: requests, tokens, quota and errors totalled per UTC day or
//! per model. The database does the grouping, so the answer costs one query however
//! many rows match; only the day bucket and integer sums need per-backend spelling.

use actix_web::{web, HttpResponse};
use sea_orm::sea_query::{Alias, Expr, Func, SimpleExpr};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use sluice_entity::usage_logs;
use utoipa::ToSchema;

use super::{LogFilter, StatsQuery};
use crate::auth::AuthContext;
use crate::manage::error::ApiError;
use crate::manage::ErrorBody;
use crate::state::AppState;

/// How stats are bucketed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One bucket per UTC calendar day, keyed `YYYY-MM-DD`.
    #[default]
    Day,
    /// One bucket per model the clients asked for.
    Model,
}

/// What a set of requests added up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, FromQueryResult)]
pub struct Totals {
    /// Requests.
    pub requests: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Cost in quota units.
    pub quota: i64,
    /// Requests answered with an HTTP status of 400 or more.
    pub errors: i64,
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, other: Totals) {
        self.requests += other.requests;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.quota += other.quota;
        self.errors += other.errors;
    }
}

/// One bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, FromQueryResult)]
pub struct StatsRow {
    /// The day (`YYYY-MM-DD`, UTC) or the model.
    pub key: String,
    /// Its totals.
    #[serde(flatten)]
    #[sea_orm(nested)]
    pub totals: Totals,
}

/// Buckets in key order, and their sum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// How the rows are bucketed.
    pub group_by: GroupBy,
    /// One row per day or model that had requests, in key order.
    pub rows: Vec<StatsRow>,
    /// Every matching request.
    pub total: Totals,
}

/// Totals per UTC day or per model (yours; admins: everyone's or one user's).
#[utoipa::path(get, path = "/api/logs/stats", tag = "logs", operation_id = "log_stats", params(StatsQuery), security(("bearer" = [])),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn stats(
    state: web::Data<AppState>,
    auth: AuthContext,
    q: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = q.filter(&auth)?;
    let group_by = q.group_by.unwrap_or_default();
    let rows = buckets(&state.db, &filter, group_by).await?;
    let mut total = Totals::default();
    for row in &rows {
        total += row.totals;
    }
    Ok(HttpResponse::Ok().json(Stats {
        group_by,
        rows,
        total,
    }))
}

async fn buckets(
    db: &DatabaseConnection,
    filter: &LogFilter,
    group_by: GroupBy,
) -> Result<Vec<StatsRow>, ApiError> {
    use usage_logs::Column as C;
    let backend = db.get_database_backend();
    let key = match group_by {
        GroupBy::Day => utc_day(backend),
        GroupBy::Model => Expr::col(C::Model).into(),
    };
    let errors = Expr::case(Expr::col(C::Status).gte(400), Expr::cust("1"));
    Ok(usage_logs::Entity::find()
        .select_only()
        .column_as(key.clone(), "key")
        .column_as(SimpleExpr::from(Func::count(Expr::col(C::Id))), "requests")
        .column_as(sum(backend, C::PromptTokens), "prompt_tokens")
        .column_as(sum(backend, C::CompletionTokens), "completion_tokens")
        .column_as(sum(backend, C::Quota), "quota")
        // COUNT skips the NULL that CASE gives non-errors, and is an integer everywhere.
        .column_as(SimpleExpr::from(Func::count(errors)), "errors")
        .filter(filter.condition())
        .group_by(key.clone())
        .order_by_asc(key)
        .into_model::<StatsRow>()
        .all(db)
        .await?)
}

/// `created_at` as `YYYY-MM-DD` in UTC. Written without bound values so the GROUP BY
/// expression is textually the one selected, as PostgreSQL and strict MySQL require.
fn utc_day(backend: DatabaseBackend) -> SimpleExpr {
    Expr::cust(match backend {
        // Stored as UTC DATETIME: the connection runs in UTC.
        DatabaseBackend::MySql => "DATE_FORMAT(created_at, '%Y-%m-%d')",
        DatabaseBackend::Postgres => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        // Stored as RFC 3339 text; date() reads the offset and answers in UTC.
        DatabaseBackend::Sqlite => "date(created_at)",
    })
}

/// `SUM(column)` as a 64-bit integer: PostgreSQL sums BIGINT into NUMERIC and MySQL
/// into DECIMAL, neither of which decodes as `i64`.
fn sum(backend: DatabaseBackend, column: usage_logs::Column) -> SimpleExpr {
    let integer = match backend {
        DatabaseBackend::MySql => "SIGNED",
        DatabaseBackend::Postgres | DatabaseBackend::Sqlite => "BIGINT",
    };
    Func::cast_as(Func::sum(Expr::col(column)), Alias::new(integer)).into()
}
