//! Usage totals grouped by time bucket and by a dimension (model, user, channel,
//! token), in the viewer's time zone. The database groups by UTC slots small
//! enough that every local midnight and hour falls on a slot's edge — 15 minutes,
//! since every zone's offset is a whole number of quarter hours — and the slots are
//! then folded into local hours or days here, where the zone's rules (daylight
//! saving included) are known. One query, whatever the zone; in UTC the slots are
//! the buckets themselves.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use sea_orm::sea_query::{Alias, Expr, Func, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, FromQueryResult,
    QueryFilter, QuerySelect,
};
use serde::{Deserialize, Serialize};
use sluice_entity::{channels, tokens, usage_logs, users};
use utoipa::ToSchema;

use super::LogFilter;
use crate::error::ApiError;

/// Seconds in the finest slot any zone needs.
const QUARTER_HOUR: i64 = 900;

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
    /// Requests answered 429 (rate limit or quota).
    pub rate_limited: i64,
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, other: Totals) {
        self.requests += other.requests;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.quota += other.quota;
        self.errors += other.errors;
        self.rate_limited += other.rate_limited;
    }
}

/// A time bucket's length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// Local clock hours.
    Hour,
    /// Local calendar days, from midnight to midnight.
    #[default]
    Day,
}

impl Interval {
    fn seconds(self) -> i64 {
        match self {
            Interval::Hour => 3600,
            Interval::Day => 86_400,
        }
    }

    /// The start of the local bucket holding `at`.
    fn start(self, at: DateTime<Tz>) -> DateTime<Tz> {
        let tz = at.timezone();
        let local = match self {
            Interval::Hour => at
                .date_naive()
                .and_time(NaiveTime::from_hms_opt(at.hour(), 0, 0).expect("valid")),
            Interval::Day => at.date_naive().and_time(NaiveTime::MIN),
        };
        // A midnight skipped by a daylight-saving jump starts the day at the jump.
        tz.from_local_datetime(&local).earliest().unwrap_or(at)
    }
}

/// What rows are split by besides time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    /// The model the client asked for.
    Model,
    /// The user (admins only).
    User,
    /// The channel that served it (admins only).
    Channel,
    /// The `sk-` token.
    Token,
}

impl Dimension {
    /// Whether only admins may split by this.
    pub fn admin_only(self) -> bool {
        matches!(self, Dimension::User | Dimension::Channel)
    }
}

/// A time zone, parsed from its IANA name.
pub fn parse_tz(tz: Option<&str>) -> Result<Tz, ApiError> {
    match tz.map(str::trim) {
        None | Some("") => Ok(Tz::UTC),
        // Any string can name a zone; whether the zone database knows it is not
        // something the document's schema can say, so this is a 422.
        Some(name) => name.parse().map_err(|_| ApiError::Unprocessable {
            param: "tz",
            message: format!("'{name}' is not an IANA time zone name such as Asia/Shanghai or Europe/Berlin"),
        }),
    }
}

/// One row of an aggregation: a bucket (when bucketed by time), a dimension value
/// (when split), and the totals.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    /// Local start of the time bucket.
    pub start: Option<DateTime<FixedOffset>>,
    /// The dimension's value: model name, or the id as text; `None` when the row has none.
    pub key: Option<String>,
    /// Its totals.
    pub totals: Totals,
}

#[derive(FromQueryResult)]
struct SlotRow {
    slot: i64,
    key: Option<String>,
    #[sea_orm(nested)]
    totals: Totals,
}

/// Totals of the rows `filter` matches, per local `interval` in `tz` (when given)
/// and per `dimension` value (when given), ordered by time, then key.
pub async fn aggregate(
    db: &DatabaseConnection,
    filter: &LogFilter,
    time: Option<(Interval, Tz)>,
    dimension: Option<Dimension>,
) -> Result<Vec<Bucket>, ApiError> {
    use usage_logs::Column as C;
    let backend = db.get_database_backend();
    let slot_secs = match time {
        None => None,
        Some((interval, Tz::UTC)) => Some(interval.seconds()),
        Some(_) => Some(QUARTER_HOUR),
    };
    let slot = slot_secs.map_or_else(|| zero(backend), |s| epoch_slot(backend, s));
    let key = match dimension {
        None => Expr::cust("NULL"),
        Some(Dimension::Model) => Expr::col(C::Model).into(),
        Some(Dimension::User) => as_text(backend, "user_id"),
        Some(Dimension::Channel) => as_text(backend, "channel_id"),
        Some(Dimension::Token) => as_text(backend, "token_id"),
    };
    let errors = Expr::case(Expr::col(C::Status).gte(400), Expr::cust("1"));
    let throttled = Expr::case(Expr::col(C::Status).eq(429), Expr::cust("1"));
    let mut query = usage_logs::Entity::find()
        .select_only()
        .column_as(slot.clone(), "slot")
        .column_as(key.clone(), "key")
        .column_as(SimpleExpr::from(Func::count(Expr::col(C::Id))), "requests")
        .column_as(sum(backend, C::PromptTokens), "prompt_tokens")
        .column_as(sum(backend, C::CompletionTokens), "completion_tokens")
        .column_as(sum(backend, C::Quota), "quota")
        // COUNT skips the NULL that CASE gives other rows, and is an integer everywhere.
        .column_as(SimpleExpr::from(Func::count(errors)), "errors")
        .column_as(SimpleExpr::from(Func::count(throttled)), "rate_limited")
        .filter(filter.condition());
    if slot_secs.is_some() {
        query = query.group_by(slot);
    }
    if dimension.is_some() {
        query = query.group_by(key);
    }
    let rows = query.into_model::<SlotRow>().all(db).await?;
    Ok(fold(rows, time, slot_secs.unwrap_or(1)))
}

/// Fold UTC slots into local buckets.
fn fold(rows: Vec<SlotRow>, time: Option<(Interval, Tz)>, slot_secs: i64) -> Vec<Bucket> {
    let mut merged: BTreeMap<(Option<DateTime<FixedOffset>>, Option<String>), Totals> = BTreeMap::new();
    for row in rows {
        let start = time.map(|(interval, tz)| local_bucket(row.slot * slot_secs, interval, tz));
        *merged.entry((start, row.key)).or_default() += row.totals;
    }
    merged
        .into_iter()
        .map(|((start, key), totals)| Bucket { start, key, totals })
        .collect()
}

/// The local bucket that the instant `epoch_secs` falls in.
fn local_bucket(epoch_secs: i64, interval: Interval, tz: Tz) -> DateTime<FixedOffset> {
    let at = Utc
        .timestamp_opt(epoch_secs, 0)
        .single()
        .expect("slots are real instants")
        .with_timezone(&tz);
    interval.start(at).fixed_offset()
}

/// The bucket's local date, for per-day keys.
pub fn local_date(start: DateTime<FixedOffset>) -> NaiveDate {
    start.date_naive()
}

/// `floor(epoch seconds of created_at / secs)`, spelt per backend without bound
/// values, so the GROUP BY expression is textually the one selected, as PostgreSQL
/// and strict MySQL require.
fn epoch_slot(backend: DatabaseBackend, secs: i64) -> SimpleExpr {
    Expr::cust(match backend {
        // Stored as UTC DATETIME and read in a UTC session.
        DatabaseBackend::MySql => format!("CAST(FLOOR(UNIX_TIMESTAMP(created_at) / {secs}) AS SIGNED)"),
        DatabaseBackend::Postgres => {
            format!("CAST(FLOOR(EXTRACT(EPOCH FROM created_at) / {secs}) AS BIGINT)")
        }
        // Stored as RFC 3339 text; strftime reads the offset. Integer division floors
        // for the non-negative instants stored here.
        DatabaseBackend::Sqlite => format!("(CAST(strftime('%s', created_at) AS INTEGER) / {secs})"),
    })
}

/// A 64-bit zero (a bare `0` is a 32-bit integer on PostgreSQL).
fn zero(backend: DatabaseBackend) -> SimpleExpr {
    Expr::cust(match backend {
        DatabaseBackend::MySql => "CAST(0 AS SIGNED)",
        DatabaseBackend::Postgres | DatabaseBackend::Sqlite => "CAST(0 AS BIGINT)",
    })
}

fn as_text(backend: DatabaseBackend, column: &str) -> SimpleExpr {
    Expr::cust(match backend {
        DatabaseBackend::MySql => format!("CAST({column} AS CHAR)"),
        DatabaseBackend::Postgres | DatabaseBackend::Sqlite => format!("CAST({column} AS TEXT)"),
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

/// Names for the keys of a dimension: model names stand for themselves; users,
/// channels and tokens are looked up (a deleted one shows as `#id`).
pub async fn labels(
    db: &DatabaseConnection,
    dimension: Option<Dimension>,
    keys: impl Iterator<Item = Option<String>>,
) -> Result<HashMap<Option<String>, String>, ApiError> {
    let keys: Vec<Option<String>> = keys.collect();
    let ids: Vec<i64> = keys.iter().flatten().filter_map(|k| k.parse().ok()).collect();
    let names: HashMap<i64, String> = match dimension {
        None | Some(Dimension::Model) => HashMap::new(),
        Some(Dimension::User) => users::Entity::find()
            .filter(users::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect(),
        Some(Dimension::Channel) => channels::Entity::find()
            .filter(channels::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect(),
        Some(Dimension::Token) => tokens::Entity::find()
            .filter(tokens::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect(),
    };
    Ok(keys
        .into_iter()
        .map(|key| {
            let label = match (&key, dimension) {
                (None, Some(_)) => "none".to_string(),
                (None, None) => "all".to_string(),
                (Some(k), None | Some(Dimension::Model)) => k.clone(),
                (Some(k), Some(_)) => k
                    .parse()
                    .ok()
                    .and_then(|id| names.get(&id).cloned())
                    .unwrap_or_else(|| format!("#{k}")),
            };
            (key, label)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    fn slot(epoch: i64, key: &str, requests: i64) -> SlotRow {
        SlotRow {
            slot: epoch / QUARTER_HOUR,
            key: Some(key.into()),
            totals: Totals {
                requests,
                ..Totals::default()
            },
        }
    }

    #[test]
    fn days_are_cut_at_the_viewers_midnight() {
        let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
        // 15:59 and 16:00 UTC are 23:59 and 00:00 the next day in Shanghai.
        let rows = vec![
            slot(at("2026-11-28T15:45:00Z"), "m", 1),
            slot(at("2026-11-28T16:00:00Z"), "m", 2),
            slot(at("2026-11-29T03:15:00Z"), "m", 4),
        ];
        let buckets = fold(rows, Some((Interval::Day, shanghai)), QUARTER_HOUR);
        let days: Vec<(String, i64)> = buckets
            .iter()
            .map(|b| (b.start.unwrap().to_rfc3339(), b.totals.requests))
            .collect();
        assert_eq!(
            days,
            vec![
                ("2026-11-28T00:00:00+08:00".to_string(), 1),
                ("2026-11-29T00:00:00+08:00".to_string(), 6),
            ]
        );
    }

    #[test]
    fn half_hour_zones_get_their_own_hours() {
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        // 10:15 and 10:30 UTC are 15:45 and 16:00 in India (+05:30).
        let rows = vec![
            slot(at("2026-11-29T10:15:00Z"), "m", 1),
            slot(at("2026-11-29T10:30:00Z"), "m", 1),
        ];
        let buckets = fold(rows, Some((Interval::Hour, kolkata)), QUARTER_HOUR);
        let hours: Vec<String> = buckets.iter().map(|b| b.start.unwrap().to_rfc3339()).collect();
        assert_eq!(
            hours,
            vec!["2026-11-29T15:00:00+05:30", "2026-11-29T16:00:00+05:30"]
        );
    }

    #[test]
    fn a_daylight_saving_day_keeps_its_own_offsets() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Clocks go back on 2026-10-25: that day starts at +02:00, the next at +01:00.
        let rows = vec![
            slot(at("2026-10-25T20:00:00Z"), "m", 1),
            slot(at("2026-10-25T23:00:00Z"), "m", 1),
        ];
        let buckets = fold(rows, Some((Interval::Day, berlin)), QUARTER_HOUR);
        let days: Vec<String> = buckets.iter().map(|b| b.start.unwrap().to_rfc3339()).collect();
        assert_eq!(
            days,
            vec!["2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"]
        );
    }

    #[test]
    fn dimensions_stay_apart_within_a_bucket() {
        let rows = vec![
            slot(at("2026-11-29T10:00:00Z"), "a", 1),
            slot(at("2026-11-29T10:15:00Z"), "b", 2),
            slot(at("2026-11-29T10:30:00Z"), "a", 3),
        ];
        let buckets = fold(rows, Some((Interval::Hour, Tz::UTC)), QUARTER_HOUR);
        let got: Vec<(Option<String>, i64)> =
            buckets.into_iter().map(|b| (b.key, b.totals.requests)).collect();
        assert_eq!(got, vec![(Some("a".into()), 4), (Some("b".into()), 2)]);
    }

    #[test]
    fn unknown_zones_are_refused_naming_the_field() {
        assert!(matches!(
            parse_tz(Some("Mars/Olympus")),
            Err(ApiError::Unprocessable { param: "tz", .. })
        ));
        assert_eq!(parse_tz(None).unwrap(), Tz::UTC);
        assert_eq!(
            parse_tz(Some("Asia/Shanghai")).unwrap(),
            chrono_tz::Asia::Shanghai
        );
    }
}
