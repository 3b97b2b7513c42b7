//! One-time links, for invites and password resets: a random token travels
//! only in the mail, the `invites` table keeps its SHA-256, and redeeming it
//! marks it used exactly once, however many requests race for it.

use actix::Addr;
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
};
use sluice_actors::Mailer;
use sluice_entity::invites;

use super::mail;
use crate::error::ApiError;
use crate::secrets::{hash_hex, random_hex};
use crate::state::AppState;

/// What a link is for; stored in `invites.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// Join: create an account.
    Invite,
    /// Choose a new password.
    Reset,
}

impl LinkKind {
    /// The stored form, which is also the console page the link opens.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Invite => "invite",
            LinkKind::Reset => "reset",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            LinkKind::Invite => "invite link",
            LinkKind::Reset => "password-reset link",
        }
    }
}

/// A fresh token; only [`NewLink::hash`] is stored.
pub struct NewLink {
    token: String,
    /// SHA-256 hex of the token.
    pub hash: String,
}

impl NewLink {
    /// 256 random bits: not guessable, so redeeming needs no throttle.
    pub fn generate() -> NewLink {
        let token = random_hex(32);
        NewLink {
            hash: hash_hex(&token),
            token,
        }
    }

    /// The link to mail: the console page for `kind`, carrying the token.
    pub fn url(&self, public_url: &str, kind: LinkKind) -> String {
        format!("{public_url}/{}?token={}", kind.as_str(), self.token)
    }
}

/// Store a link and mail it. When the mail cannot be sent the row is taken
/// back, so a link exists only once someone has it; when it was sent, older
/// pending links of the same kind for the address stop working.
pub async fn issue(
    state: &AppState,
    mailer: &Addr<Mailer>,
    row: invites::ActiveModel,
    subject: String,
    text: String,
) -> Result<invites::Model, ApiError> {
    let row = row.insert(&state.db).await?;
    if let Err(e) = mail::send(mailer, &row.email, subject, text).await {
        invites::Entity::delete_by_id(row.id).exec(&state.db).await?;
        return Err(e);
    }
    invites::Entity::delete_many()
        .filter(invites::Column::Email.eq(row.email.clone()))
        .filter(invites::Column::Kind.eq(row.kind.clone()))
        .filter(invites::Column::UsedAt.is_null())
        .filter(invites::Column::Id.lt(row.id))
        .exec(&state.db)
        .await?;
    Ok(row)
}

/// When a link made at `now` with a lifetime of `ttl_secs` stops working.
pub fn expiry(now: DateTime<Utc>, ttl_secs: u64) -> DateTime<Utc> {
    // A lifetime beyond ten years is a typo; clamping keeps the date arithmetic in range.
    const TEN_YEARS: u64 = 10 * 366 * 24 * 3600;
    now + Duration::seconds(ttl_secs.min(TEN_YEARS) as i64)
}

/// The link for `token` if it could be spent now, without spending it: a
/// cheap check before slow work such as hashing a password.
pub async fn find_live(
    db: &impl ConnectionTrait,
    token: &str,
    kind: LinkKind,
    now: DateTime<Utc>,
) -> Result<invites::Model, ApiError> {
    let row = find(db, &hash_hex(token.trim()), kind).await?;
    let unused = row.as_ref().is_some_and(|r| r.used_at.is_none());
    check(kind, unused, row.as_ref(), now)?;
    row.ok_or_else(|| refuse_unknown(kind))
}

/// Spend a link inside `txn`: mark it used, then check it may be used now.
///
/// The mark is a conditional update run first, so of two requests racing
/// for one link exactly one changes a row; the other waits for the row lock
/// and then changes none. When the caller's work fails later, dropping `txn`
/// rolls the mark back and the link still works.
pub async fn redeem(
    txn: &DatabaseTransaction,
    token: &str,
    kind: LinkKind,
    now: DateTime<Utc>,
) -> Result<invites::Model, ApiError> {
    let hash = hash_hex(token.trim());
    let marked = invites::Entity::update_many()
        .col_expr(invites::Column::UsedAt, Expr::value(now))
        .filter(invites::Column::TokenHash.eq(hash.clone()))
        .filter(invites::Column::Kind.eq(kind.as_str()))
        .filter(invites::Column::UsedAt.is_null())
        .exec(txn)
        .await?
        .rows_affected
        == 1;
    let row = find(txn, &hash, kind).await?;
    check(kind, marked, row.as_ref(), now)?;
    row.ok_or_else(|| refuse_unknown(kind))
}

async fn find(
    db: &impl ConnectionTrait,
    hash: &str,
    kind: LinkKind,
) -> Result<Option<invites::Model>, ApiError> {
    Ok(invites::Entity::find()
        .filter(invites::Column::TokenHash.eq(hash))
        .filter(invites::Column::Kind.eq(kind.as_str()))
        .one(db)
        .await?)
}

/// Whether a link found as `row` may be spent now; `marked` is whether this
/// request is the one that marked it used.
fn check(
    kind: LinkKind,
    marked: bool,
    row: Option<&invites::Model>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    match row {
        None => Err(refuse_unknown(kind)),
        Some(_) if !marked => Err(ApiError::Gone(format!(
            "this {} was already used; each link works once",
            kind.noun()
        ))),
        Some(row) if row.expires_at <= now => Err(ApiError::Gone(format!(
            "this {} expired at {}; ask for a new one",
            kind.noun(),
            row.expires_at.format("%Y-%m-%d %H:%M UTC")
        ))),
        Some(_) => Ok(()),
    }
}

fn refuse_unknown(kind: LinkKind) -> ApiError {
    ApiError::NotFound(format!(
        "this {} is not valid: it may be mistyped, revoked or replaced by a newer one",
        kind.noun()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(expires_in: Duration, now: DateTime<Utc>) -> invites::Model {
        invites::Model {
            id: 1,
            email: "ada@example.com".into(),
            token_hash: "h".into(),
            kind: "invite".into(),
            role: "user".into(),
            group_name: "default".into(),
            quota: 0,
            invited_by: None,
            expires_at: now + expires_in,
            used_at: None,
            created_at: now,
        }
    }

    fn message(r: Result<(), ApiError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn a_fresh_link_marked_by_this_request_may_be_spent() {
        let now = Utc::now();
        let row = link(Duration::hours(1), now);
        assert!(check(LinkKind::Invite, true, Some(&row), now).is_ok());
    }

    #[test]
    fn used_expired_and_unknown_links_are_told_apart() {
        let now = Utc::now();
        let fresh = link(Duration::hours(1), now);
        let stale = link(Duration::seconds(-1), now);
        assert!(message(check(LinkKind::Invite, false, Some(&fresh), now)).contains("already used"));
        assert!(message(check(LinkKind::Reset, true, Some(&stale), now)).contains("expired"));
        assert!(message(check(LinkKind::Reset, false, None, now)).contains("not valid"));
    }

    #[test]
    fn links_carry_the_token_but_only_its_hash_is_kept() {
        let link = NewLink::generate();
        let url = link.url("https://sluice.example.com", LinkKind::Reset);
        let token = url
            .strip_prefix("https://sluice.example.com/reset?token=")
            .unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(hash_hex(token), link.hash);
        assert_ne!(NewLink::generate().hash, link.hash);
    }

    #[test]
    fn an_absurd_lifetime_is_clamped_instead_of_overflowing() {
        let now = Utc::now();
        assert_eq!(expiry(now, 60), now + Duration::minutes(1));
        assert!(expiry(now, u64::MAX) < now + Duration::days(3700));
    }
}
