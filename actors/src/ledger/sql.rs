//! What the ledger reads from and writes to the database: usage rows and
//! spending in one transaction, balances as stored, admins' quota changes.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, Iden, QueryFilter,
    Statement, TransactionTrait, Value,
};
use sluice_entity::{tokens, usage_logs, users};

use super::{QuotaChange, QuotaTarget, UsageRecord};
use crate::balances::{Deltas, Limit};
use crate::quota_store::Balance;

/// Rows per INSERT: a power of two up to this. Each statement shape is prepared
/// and cached by the database driver; a batch of any size is written with at
/// most eight shapes (128, 64, … 1 rows), where one INSERT per batch size would
/// fill every connection's statement cache with large one-off statements.
const INSERT_ROWS: usize = 128;

/// How `n` rows are cut into INSERTs: as many of the largest size as fit, then
/// the binary digits of what is left.
fn insert_sizes(n: usize) -> impl Iterator<Item = usize> {
    let full = std::iter::repeat_n(INSERT_ROWS, n / INSERT_ROWS);
    let rest = n % INSERT_ROWS;
    full.chain(
        (0..INSERT_ROWS.trailing_zeros())
            .rev()
            .map(|bit| 1 << bit)
            .filter(move |size| rest & size != 0),
    )
}

/// The ledger's writes to the database: one at a time, in the order they
/// asked, so that spending lands in order and a quota change or the last flush
/// never runs beside a batch. Batches are written off the ledger's mailbox
/// (reservations go on meanwhile); what one of them fails to write waits here
/// and goes first in the next write.
#[derive(Clone, Default)]
pub(super) struct Writer {
    turn: Arc<tokio::sync::Mutex<()>>,
    unwritten: Arc<Mutex<(Vec<UsageRecord>, Deltas)>>,
}

impl Writer {
    /// Write what an earlier batch left, then `rows` and `deltas`, in one
    /// transaction; how many rows went in, or the error and everything that
    /// did not.
    pub(super) async fn write(
        &self,
        db: &DatabaseConnection,
        rows: Vec<UsageRecord>,
        deltas: Deltas,
    ) -> Result<usize, (DbErr, Vec<UsageRecord>, Deltas)> {
        let _turn = self.turn.lock().await;
        let (rows, deltas) = self.with_unwritten(rows, deltas);
        match write(db, &rows, &deltas).await {
            Ok(()) => Ok(rows.len()),
            Err(e) => Err((e, rows, deltas)),
        }
    }

    /// Write a batch in the background: what fails stays here for the next
    /// write. Whether it was written.
    pub(super) async fn write_batch(
        &self,
        db: &DatabaseConnection,
        rows: Vec<UsageRecord>,
        deltas: Deltas,
    ) -> bool {
        let _turn = self.turn.lock().await;
        let (rows, deltas) = self.with_unwritten(rows, deltas);
        match write(db, &rows, &deltas).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, rows = rows.len(), "usage log write failed; will retry");
                *self.unwritten.lock().expect("unwritten rows") = (rows, deltas);
                false
            }
        }
    }

    /// Rows a failed batch left for the next write.
    pub(super) fn unwritten_rows(&self) -> usize {
        self.unwritten.lock().expect("unwritten rows").0.len()
    }

    fn with_unwritten(&self, rows: Vec<UsageRecord>, deltas: Deltas) -> (Vec<UsageRecord>, Deltas) {
        let (mut first, mut spent) = std::mem::take(&mut *self.unwritten.lock().expect("unwritten rows"));
        if first.is_empty() && spent.is_empty() {
            return (rows, deltas);
        }
        first.extend(rows);
        spent.merge(deltas);
        (first, spent)
    }
}

/// Rows and spending in one transaction: a crash leaves both or neither.
async fn write(db: &DatabaseConnection, rows: &[UsageRecord], deltas: &Deltas) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    let mut rest = rows;
    for size in insert_sizes(rows.len()) {
        let (chunk, after) = rest.split_at(size);
        txn.execute(insert_rows(backend, chunk)).await?;
        rest = after;
    }
    for (id, spent) in &deltas.users {
        let mut update = users::Entity::update_many()
            .col_expr(
                users::Column::UsedQuota,
                Expr::col(users::Column::UsedQuota).add(spent.quota),
            )
            .col_expr(
                users::Column::RequestCount,
                Expr::col(users::Column::RequestCount).add(spent.requests),
            );
        if spent.limited {
            update = update.col_expr(
                users::Column::Quota,
                Expr::col(users::Column::Quota).sub(spent.quota),
            );
        }
        update.filter(users::Column::Id.eq(*id)).exec(&txn).await?;
    }
    for (id, spent) in &deltas.tokens {
        let mut update = tokens::Entity::update_many()
            .col_expr(
                tokens::Column::UsedQuota,
                Expr::col(tokens::Column::UsedQuota).add(spent.quota),
            )
            .col_expr(tokens::Column::LastUsedAt, Expr::value(spent.last_used));
        if spent.limited {
            update = update.col_expr(
                tokens::Column::RemainingQuota,
                Expr::col(tokens::Column::RemainingQuota).sub(spent.quota),
            );
        }
        update.filter(tokens::Column::Id.eq(*id)).exec(&txn).await?;
    }
    txn.commit().await
}

/// An account's balance as stored (a missing row has nothing left).
pub(super) async fn load_balance(db: &DatabaseConnection, account: QuotaTarget) -> Result<Balance, DbErr> {
    let (left, unlimited) = match account {
        QuotaTarget::User(id) => match users::Entity::find_by_id(id).one(db).await? {
            Some(u) => (u.quota, u.role == "root"),
            None => (0, false),
        },
        QuotaTarget::Token(id) => match tokens::Entity::find_by_id(id).one(db).await? {
            Some(t) => (t.remaining_quota, t.unlimited_quota),
            None => (0, false),
        },
    };
    Ok(Balance { left, unlimited })
}

/// How much an account may spend, as stored.
pub(super) async fn load_limit(db: &DatabaseConnection, account: QuotaTarget) -> Result<Limit, DbErr> {
    let balance = load_balance(db, account).await?;
    Ok(if balance.unlimited {
        Limit::Unlimited
    } else {
        Limit::Left(balance.left)
    })
}

/// A user's and a token's balance as stored.
pub(super) async fn load_limits(
    db: &DatabaseConnection,
    user: i64,
    token: Option<i64>,
) -> Result<(Limit, Option<Limit>), DbErr> {
    let user_limit = load_limit(db, QuotaTarget::User(user)).await?;
    let token_limit = match token {
        Some(t) => Some(load_limit(db, QuotaTarget::Token(t)).await?),
        None => None,
    };
    Ok((user_limit, token_limit))
}

/// Whether the account's row still exists.
pub(super) async fn exists(db: &DatabaseConnection, account: QuotaTarget) -> Result<bool, DbErr> {
    Ok(match account {
        QuotaTarget::User(id) => users::Entity::find_by_id(id).one(db).await?.is_some(),
        QuotaTarget::Token(id) => tokens::Entity::find_by_id(id).one(db).await?.is_some(),
    })
}

/// A column of a usage row, and how its value is read from the record.
type Field = (usage_logs::Column, fn(&UsageRecord) -> Value);

/// A usage row's columns, each with how its value is read from the record.
const ROW: [Field; 21] = {
    use usage_logs::Column as C;
    [
        (C::RequestId, |r| r.request_id.clone().into()),
        (C::CreatedAt, |r| r.created_at.into()),
        (C::UserId, |r| r.user_id.into()),
        (C::TokenId, |r| r.token_id.into()),
        (C::TokenName, |r| r.token_name.clone().into()),
        (C::Model, |r| r.model.clone().into()),
        (C::UpstreamModel, |r| r.upstream_model.clone().into()),
        (C::ChannelId, |r| r.channel_id.into()),
        (C::KeyId, |r| r.key_id.into()),
        (C::PromptTokens, |r| r.prompt_tokens.into()),
        (C::CompletionTokens, |r| r.completion_tokens.into()),
        (C::UsageEstimated, |r| r.usage_estimated.into()),
        (C::Quota, |r| r.quota.into()),
        (C::LatencyMs, |r| r.latency_ms.into()),
        (C::FirstTokenMs, |r| r.first_token_ms.into()),
        (C::IsStream, |r| r.is_stream.into()),
        (C::Status, |r| r.status.into()),
        (C::Attempts, |r| r.attempts.into()),
        (C::Error, |r| r.error.clone().into()),
        // A record that names no protocol was spoken in OpenAI's.
        (C::Protocol, |r| {
            if r.protocol.is_empty() {
                "openai".to_string()
            } else {
                r.protocol.clone()
            }
            .into()
        }),
        (C::Fallback, |r| r.fallback.clone().into()),
    ]
};

/// One INSERT of `rows`, its text written directly: building it through
/// sea-query's statement tree cost the actors' thread a quarter of its time on
/// the relay benchmark (docs/BENCHMARKS.md). The values are sea-orm's own, so
/// the driver binds them exactly as the entity would.
fn insert_rows(backend: DbBackend, rows: &[UsageRecord]) -> Statement {
    let quote = |name: &str| match backend {
        DbBackend::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    };
    let columns: Vec<String> = ROW.iter().map(|(c, _)| quote(&c.to_string())).collect();
    let per_row = ROW.len();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        quote(&usage_logs::Entity.to_string()),
        columns.join(", ")
    );
    let mut values = Vec::with_capacity(rows.len() * per_row);
    for (i, row) in rows.iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for c in 0..per_row {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                DbBackend::Postgres => {
                    let _ = write!(sql, "${}", i * per_row + c + 1);
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
        values.extend(ROW.iter().map(|(_, value)| value(row)));
    }
    Statement::from_sql_and_values(backend, sql, values)
}

/// Apply a quota change in the database; returns the new limit.
pub(super) async fn apply_change(
    db: &DatabaseConnection,
    target: QuotaTarget,
    change: QuotaChange,
) -> Result<Limit, DbErr> {
    match target {
        QuotaTarget::User(id) => {
            let value = match change {
                QuotaChange::Add(n) => Expr::col(users::Column::Quota).add(n),
                QuotaChange::Set(n) => Expr::value(n),
                QuotaChange::Unlimited => return Err(DbErr::Custom("users cannot be made unlimited".into())),
            };
            users::Entity::update_many()
                .col_expr(users::Column::Quota, value)
                .filter(users::Column::Id.eq(id))
                .exec(db)
                .await?;
        }
        QuotaTarget::Token(id) => {
            let mut update = tokens::Entity::update_many();
            update = match change {
                QuotaChange::Add(n) => update.col_expr(
                    tokens::Column::RemainingQuota,
                    Expr::col(tokens::Column::RemainingQuota).add(n),
                ),
                QuotaChange::Set(n) => update
                    .col_expr(tokens::Column::RemainingQuota, Expr::value(n))
                    .col_expr(tokens::Column::UnlimitedQuota, Expr::value(false)),
                QuotaChange::Unlimited => update.col_expr(tokens::Column::UnlimitedQuota, Expr::value(true)),
            };
            update.filter(tokens::Column::Id.eq(id)).exec(db).await?;
        }
    }
    load_limit(db, target).await
}

/// Add `diff` to what an account has left and, for a token, set whether it is
/// unlimited: the database's side of a change Redis made first.
pub(super) async fn add_to_balance(
    db: &DatabaseConnection,
    target: QuotaTarget,
    diff: i64,
    unlimited: Option<bool>,
) -> Result<(), DbErr> {
    match target {
        QuotaTarget::User(id) => {
            users::Entity::update_many()
                .col_expr(users::Column::Quota, Expr::col(users::Column::Quota).add(diff))
                .filter(users::Column::Id.eq(id))
                .exec(db)
                .await?;
        }
        QuotaTarget::Token(id) => {
            let mut update = tokens::Entity::update_many().col_expr(
                tokens::Column::RemainingQuota,
                Expr::col(tokens::Column::RemainingQuota).add(diff),
            );
            if let Some(unlimited) = unlimited {
                update = update.col_expr(tokens::Column::UnlimitedQuota, Expr::value(unlimited));
            }
            update.filter(tokens::Column::Id.eq(id)).exec(db).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_written_with_few_statement_shapes() {
        let sizes: Vec<usize> = insert_sizes(300).collect();
        assert_eq!(sizes, [128, 128, 32, 8, 4]);
        assert_eq!(sizes.iter().sum::<usize>(), 300);
        let shapes: std::collections::BTreeSet<usize> = (0..2000).flat_map(insert_sizes).collect();
        assert_eq!(shapes.len(), 8, "{shapes:?}");
        assert_eq!(insert_sizes(0).count(), 0);
    }
}
