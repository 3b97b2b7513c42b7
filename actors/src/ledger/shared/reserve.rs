//! A request's reservation in Redis: the token's script, then the user's.
//! Each script is atomic on its own account, so neither is ever overdrawn; the
//! token's hold is given back when the user cannot pay, or shrunk to what the
//! user can. (The token goes first, so its refusal is the one reported when
//! both are short, as in a single process.)

use sea_orm::DatabaseConnection;

use super::load_into_redis;
use crate::balances::{Ask, QuotaError};
use crate::ledger::QuotaTarget;
use crate::quota_store::{AccountAnswer, QuotaStore, StoreError};

/// The answer to a reservation made in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ledger) enum Outcome {
    /// Held in both accounts.
    Granted {
        amount: i64,
        user_limited: bool,
        token_limited: bool,
    },
    /// Other requests hold what would pay for it: wait for them.
    Wait,
    /// What is left can never pay for it.
    Short(QuotaError),
}

/// Why a reservation could not be answered from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ledger) enum Failure {
    /// Redis did not answer: serve from this process's share.
    Store(StoreError),
    /// A balance could not be read from the database.
    Database(String),
}

/// What the user is asked for once the token answered `token`: no more than
/// the token holds, and never less than the request's minimum.
fn user_ask(ask: Ask, token: AccountAnswer) -> Ask {
    match token {
        AccountAnswer::Granted(held) => Ask {
            full: held,
            min: ask.min.min(held),
        },
        _ => ask,
    }
}

/// Hold `ask` against the token (when there is one) and the user as hold `id`.
pub(in crate::ledger) async fn reserve_both(
    store: &QuotaStore,
    db: &DatabaseConnection,
    id: &str,
    user: i64,
    token: Option<i64>,
    ask: Ask,
) -> Result<Outcome, Failure> {
    let needed = ask.min.max(1);
    let mut token_answer = AccountAnswer::Unlimited;
    if let Some(t) = token {
        token_answer = reserve_one(store, db, QuotaTarget::Token(t), id, ask).await?;
        match token_answer {
            AccountAnswer::Wait(_) => return Ok(Outcome::Wait),
            AccountAnswer::Short(left) => return Ok(Outcome::Short(QuotaError::Token { left, needed })),
            _ => {}
        }
    }
    let user_answer = reserve_one(
        store,
        db,
        QuotaTarget::User(user),
        id,
        user_ask(ask, token_answer),
    )
    .await;
    let token_held = match token_answer {
        AccountAnswer::Granted(held) => token.map(|t| (QuotaTarget::Token(t), held)),
        _ => None,
    };
    let give_back = || async {
        if let Some((account, _)) = token_held {
            // If this fails too, the hold's lease runs out.
            let _ = store.settle(account, id, 0).await;
        }
    };
    let user_answer = match user_answer {
        Ok(answer) => answer,
        Err(e) => {
            give_back().await;
            return Err(e);
        }
    };
    let token_limited = token_held.is_some();
    match user_answer {
        AccountAnswer::Granted(amount) => {
            if let Some((account, held)) = token_held.filter(|(_, held)| *held > amount) {
                if let Err(e) = store.shrink(account, id, amount).await {
                    // The token holds `held` until the request settles: safe, only idle.
                    tracing::debug!(error = %e, held, amount, "quota: could not shrink a token's hold");
                }
            }
            Ok(Outcome::Granted {
                amount,
                user_limited: true,
                token_limited,
            })
        }
        AccountAnswer::Unlimited => Ok(Outcome::Granted {
            amount: token_held.map_or(ask.full, |(_, held)| held),
            user_limited: false,
            token_limited,
        }),
        AccountAnswer::Wait(_) => {
            give_back().await;
            Ok(Outcome::Wait)
        }
        AccountAnswer::Short(left) => {
            give_back().await;
            Ok(Outcome::Short(QuotaError::User { left, needed }))
        }
        AccountAnswer::Unknown => unreachable!("reserve_one loads unknown balances"),
    }
}

/// Hold `ask` against one account, loading its balance from the database
/// first when Redis has none.
async fn reserve_one(
    store: &QuotaStore,
    db: &DatabaseConnection,
    account: QuotaTarget,
    id: &str,
    ask: Ask,
) -> Result<AccountAnswer, Failure> {
    let answer = store
        .reserve(account, id, ask.full, ask.min)
        .await
        .map_err(Failure::Store)?;
    if answer != AccountAnswer::Unknown {
        return Ok(answer);
    }
    load_into_redis(store, db, account).await?;
    match store
        .reserve(account, id, ask.full, ask.min)
        .await
        .map_err(Failure::Store)?
    {
        AccountAnswer::Unknown => Err(Failure::Store(StoreError(format!(
            "the balance of {account:?} vanished while it was loaded"
        )))),
        answer => Ok(answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_is_asked_no_more_than_the_token_holds() {
        let ask = Ask { full: 500, min: 10 };
        assert_eq!(user_ask(ask, AccountAnswer::Unlimited), ask);
        assert_eq!(
            user_ask(ask, AccountAnswer::Granted(70)),
            Ask { full: 70, min: 10 }
        );
        assert_eq!(
            user_ask(Ask { full: 0, min: 0 }, AccountAnswer::Granted(0)),
            Ask { full: 0, min: 0 },
            "a free request stays free"
        );
    }
}
