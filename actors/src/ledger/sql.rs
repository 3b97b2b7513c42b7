//! What the ledger reads from and writes to the database: usage rows and
//! spending in one transaction, balances as stored, admins' quota changes.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, TransactionTrait,
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

/// Rows and spending in one transaction: a crash leaves both or neither.
pub(super) async fn write(
    db: &DatabaseConnection,
    rows: &[UsageRecord],
    deltas: &Deltas,
) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    let mut rest = rows;
    for size in insert_sizes(rows.len()) {
        let (chunk, after) = rest.split_at(size);
        usage_logs::Entity::insert_many(chunk.iter().map(to_row))
            .exec(&txn)
            .await?;
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

fn to_row(r: &UsageRecord) -> usage_logs::ActiveModel {
    usage_logs::ActiveModel {
        request_id: Set(r.request_id.clone()),
        created_at: Set(r.created_at),
        user_id: Set(r.user_id),
        token_id: Set(r.token_id),
        token_name: Set(r.token_name.clone()),
        model: Set(r.model.clone()),
        upstream_model: Set(r.upstream_model.clone()),
        channel_id: Set(r.channel_id),
        key_id: Set(r.key_id),
        prompt_tokens: Set(r.prompt_tokens),
        completion_tokens: Set(r.completion_tokens),
        usage_estimated: Set(r.usage_estimated),
        quota: Set(r.quota),
        latency_ms: Set(r.latency_ms),
        first_token_ms: Set(r.first_token_ms),
        is_stream: Set(r.is_stream),
        status: Set(r.status),
        attempts: Set(r.attempts),
        error: Set(r.error.clone()),
        protocol: Set(if r.protocol.is_empty() {
            "openai".into()
        } else {
            r.protocol.clone()
        }),
        fallback: Set(r.fallback.clone()),
        ..Default::default()
    }
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
