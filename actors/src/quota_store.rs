//! Quota balances shared by the replicas of one deployment, in Redis. Each
//! account (a user or a token) has three keys under one hash tag — its
//! balance, its holds and their leases — and every change is one Lua script
//! touching that one account's keys, so it is atomic, and runs on Redis
//! Cluster too. When holds shrink, a script says so on the deployment's
//! `<prefix>:quota:freed` channel, so that requests waiting for quota on any
//! replica try again.
//!
//! A reservation of a request that pays with a token and its user is two
//! scripts (the token's, then the user's, the first given back or shrunk when
//! the second cannot pay as much): no account is ever overdrawn, and a
//! request refused by the second account holds the first's quota for the
//! length of one round trip.

use std::time::Duration;

use redis::aio::PubSub;
use redis::Script;

use crate::ledger::QuotaTarget;
use crate::redis_link::{Connection, RedisLink};

/// How long a hold lives unless its replica renews it: longer than a renewal
/// round with margin, so only a dead replica's holds run out.
pub const LEASE: Duration = Duration::from_secs(300);

/// How long a call to Redis may take before the replica counts Redis as
/// unreachable and falls back to its local share.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Why Redis could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Redis: {0}")]
pub struct StoreError(pub String);

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError(e.to_string())
    }
}

/// One account's answer to a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountAnswer {
    /// Its balance is not in Redis yet: load it from the database.
    Unknown,
    /// No limit: nothing held.
    Unlimited,
    /// Held, this many units.
    Granted(i64),
    /// Other requests hold what would pay for it; this many units are left.
    Wait(i64),
    /// What is left (this many units) can never pay for it.
    Short(i64),
}

impl AccountAnswer {
    fn parse(status: &str, n: i64) -> Result<Self, StoreError> {
        Ok(match status {
            "unknown" => AccountAnswer::Unknown,
            "unlimited" => AccountAnswer::Unlimited,
            "granted" => AccountAnswer::Granted(n),
            "wait" => AccountAnswer::Wait(n),
            "short" => AccountAnswer::Short(n),
            other => return Err(StoreError(format!("unexpected reservation answer '{other}'"))),
        })
    }
}

/// An admin's change of a balance, as Redis applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BalanceChange {
    /// Add units to what is left.
    Add(i64),
    /// Set what is left (a user's: "unlimited" stays as the role says).
    Set(i64),
    /// Set what is left and lift "unlimited" (a token's `Set`).
    SetLimited(i64),
    /// No limit any more.
    Unlimited,
    /// A limit again (undoing `Unlimited`).
    Limited,
}

impl BalanceChange {
    fn args(self) -> (&'static str, i64) {
        match self {
            BalanceChange::Add(n) => ("add", n),
            BalanceChange::Set(n) => ("set", n),
            BalanceChange::SetLimited(n) => ("set_limited", n),
            BalanceChange::Unlimited => ("unlimited", 0),
            BalanceChange::Limited => ("limited", 0),
        }
    }
}

/// An account's balance: what is left, and whether it has no limit (what is
/// left is kept while it has none, so that a limit set again starts from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// Units left.
    pub left: i64,
    /// Whether it has no limit.
    pub unlimited: bool,
}

/// What a replica owes one account after Redis was unreachable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owed {
    /// Units spent meanwhile, not yet charged in Redis.
    pub spent: i64,
    /// Holds whose give-back could not be told.
    pub drop_holds: Vec<String>,
    /// Holds of requests still running, with their units.
    pub keep_holds: Vec<(String, i64)>,
}

/// The Redis name of an account: its hash tag.
pub fn account_tag(account: QuotaTarget) -> String {
    match account {
        QuotaTarget::User(id) => format!("u{id}"),
        QuotaTarget::Token(id) => format!("t{id}"),
    }
}

/// The account named by a tag.
pub fn parse_tag(tag: &str) -> Option<QuotaTarget> {
    let (kind, id) = tag.split_at_checked(1)?;
    let id = id.parse().ok()?;
    match kind {
        "u" => Some(QuotaTarget::User(id)),
        "t" => Some(QuotaTarget::Token(id)),
        _ => None,
    }
}

/// An account's three keys: balance, holds, leases. The `{…}` hash tag is the
/// account, so Redis Cluster keeps them in one slot.
pub fn account_keys(prefix: &str, account: QuotaTarget) -> [String; 3] {
    let tag = account_tag(account);
    [
        format!("{prefix}:quota:{{{tag}}}"),
        format!("{prefix}:quota:{{{tag}}}:holds"),
        format!("{prefix}:quota:{{{tag}}}:leases"),
    ]
}

/// A message on the freed channel: who sent it, and whose holds shrank.
pub fn parse_freed(message: &str) -> Option<(&str, QuotaTarget)> {
    let (origin, tag) = message.split_once(' ')?;
    Some((origin, parse_tag(tag)?))
}

struct Scripts {
    reserve: Script,
    settle: Script,
    shrink: Script,
    load: Script,
    change: Script,
    reconcile: Script,
    forget: Script,
}

impl Scripts {
    fn new() -> Self {
        let script =
            |body: &str| Script::new(&format!("{}\n{body}", include_str!("quota_scripts/prelude.lua")));
        Scripts {
            reserve: script(include_str!("quota_scripts/reserve.lua")),
            settle: script(include_str!("quota_scripts/settle.lua")),
            shrink: script(include_str!("quota_scripts/shrink.lua")),
            load: script(include_str!("quota_scripts/load.lua")),
            change: script(include_str!("quota_scripts/change.lua")),
            reconcile: script(include_str!("quota_scripts/reconcile.lua")),
            forget: script(include_str!("quota_scripts/forget.lua")),
        }
    }
}

/// The deployment's quota balances in Redis (cheap to share in an `Arc`).
pub struct QuotaStore {
    link: RedisLink,
    prefix: String,
    /// This replica, so it can tell its own announcements from the others'.
    origin: String,
    scripts: Scripts,
    lease: Duration,
}

impl QuotaStore {
    /// The store at `url` (`redis://…`), its keys under `prefix`. Connects on
    /// first use, so a Redis that is down does not stop start-up. The error
    /// names the setting at fault.
    pub fn open(url: &str, prefix: &str) -> Result<QuotaStore, StoreError> {
        if prefix.contains(['{', '}']) {
            // The account must be the first `{…}` of every key name.
            return Err(StoreError(format!(
                "prefix '{prefix}' has a brace, which Redis Cluster would take for a hash tag"
            )));
        }
        let link = RedisLink::open(url, CALL_TIMEOUT).map_err(|e| StoreError(format!("redis_url: {e}")))?;
        Ok(QuotaStore {
            link,
            prefix: prefix.to_string(),
            origin: uuid::Uuid::new_v4().simple().to_string(),
            scripts: Scripts::new(),
            lease: LEASE,
        })
    }

    /// The same store with holds leased for `lease` (tests of expiry).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The channel told when an account's holds shrink.
    pub fn freed_channel(&self) -> String {
        format!("{}:quota:freed", self.prefix)
    }

    /// This replica's name in announcements and hold ids.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// A hold id unique across replicas.
    pub fn hold_id(&self, n: u64) -> String {
        format!("{}-{n}", self.origin)
    }

    /// Subscribed to the freed channel, on a connection of its own.
    pub async fn subscribe(&self) -> Result<PubSub, StoreError> {
        let subscribed = tokio::time::timeout(CALL_TIMEOUT, async {
            let mut pubsub = self.link.client().get_async_pubsub().await?;
            pubsub.subscribe(self.freed_channel()).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        subscribed
            .map_err(|_| StoreError("timed out subscribing".into()))?
            .map_err(Into::into)
    }

    /// `request` on the link to Redis, within its timeout.
    async fn within_timeout<T, F, Fut>(&self, request: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        self.link.call(request).await.map_err(Into::into)
    }

    /// Run `script` on `account`'s keys with `args` after the channel and message.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        account: QuotaTarget,
        args: &[String],
    ) -> Result<T, StoreError> {
        let mut call = script.prepare_invoke();
        for key in account_keys(&self.prefix, account) {
            call.key(key);
        }
        call.arg(self.freed_channel())
            .arg(format!("{} {}", self.origin, account_tag(account)));
        for arg in args {
            call.arg(arg);
        }
        self.within_timeout(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.within_timeout(
            |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
        )
        .await
        .map(|_| ())
    }

    /// How long a hold lives unless renewed.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Hold up to `full` units (at least `min`) of `account` as hold `id`.
    pub async fn reserve(
        &self,
        account: QuotaTarget,
        id: &str,
        full: i64,
        min: i64,
    ) -> Result<AccountAnswer, StoreError> {
        let (status, n): (String, i64) = self
            .run(
                &self.scripts.reserve,
                account,
                &[
                    id.to_string(),
                    full.to_string(),
                    min.to_string(),
                    lease_ms(self.lease),
                ],
            )
            .await?;
        AccountAnswer::parse(&status, n)
    }

    /// Give back hold `id` and charge `charge` units; false when the balance is unknown.
    pub async fn settle(&self, account: QuotaTarget, id: &str, charge: i64) -> Result<bool, StoreError> {
        let (status, _): (String, i64) = self
            .run(
                &self.scripts.settle,
                account,
                &[id.to_string(), charge.to_string()],
            )
            .await?;
        Ok(status != "unknown")
    }

    /// Keep only `keep` units of hold `id`.
    pub async fn shrink(&self, account: QuotaTarget, id: &str, keep: i64) -> Result<(), StoreError> {
        let _: (String, i64) = self
            .run(&self.scripts.shrink, account, &[id.to_string(), keep.to_string()])
            .await?;
        Ok(())
    }

    /// Load `account`'s balance as the database has it, unless Redis has it already.
    pub async fn load(&self, account: QuotaTarget, balance: Balance) -> Result<(), StoreError> {
        let args = [balance.left.to_string(), i64::from(balance.unlimited).to_string()];
        let _: (String, i64) = self.run(&self.scripts.load, account, &args).await?;
        Ok(())
    }

    /// Apply an admin's change; the balance before it, or `None` when not loaded.
    pub async fn change(
        &self,
        account: QuotaTarget,
        change: BalanceChange,
    ) -> Result<Option<Balance>, StoreError> {
        let (kind, n) = change.args();
        let (status, left, unlimited): (String, i64, i64) = self
            .run(&self.scripts.change, account, &[kind.to_string(), n.to_string()])
            .await?;
        Ok((status != "unknown").then_some(Balance {
            left,
            unlimited: unlimited == 1,
        }))
    }

    /// Settle what this replica owes `account` after an outage, and keep its
    /// holds of requests still running counted and leased (which renews their
    /// leases, too); false when the balance is not in Redis (load it, then
    /// call again owing no spending).
    pub async fn reconcile(&self, account: QuotaTarget, owed: &Owed) -> Result<bool, StoreError> {
        let mut args = vec![
            lease_ms(self.lease),
            owed.spent.to_string(),
            owed.drop_holds.len().to_string(),
        ];
        args.extend(owed.drop_holds.iter().cloned());
        for (id, units) in &owed.keep_holds {
            args.push(id.clone());
            args.push(units.to_string());
        }
        let (status, _): (String, i64) = self.run(&self.scripts.reconcile, account, &args).await?;
        Ok(status != "unknown")
    }

    /// Drop `account`'s balance (its row is gone).
    pub async fn forget(&self, account: QuotaTarget) -> Result<(), StoreError> {
        let _: (String, i64) = self.run(&self.scripts.forget, account, &[]).await?;
        Ok(())
    }
}

fn lease_ms(lease: Duration) -> String {
    lease.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accounts_keys_share_one_hash_tag() {
        let keys = account_keys("sluice", QuotaTarget::User(42));
        assert_eq!(
            keys,
            [
                "sluice:quota:{u42}",
                "sluice:quota:{u42}:holds",
                "sluice:quota:{u42}:leases"
            ]
        );
        let tag = |k: &str| k[k.find('{').unwrap()..=k.find('}').unwrap()].to_string();
        assert!(keys.iter().all(|k| tag(k) == "{u42}"));
        assert_eq!(tag(&account_keys("sluice", QuotaTarget::Token(42))[0]), "{t42}");
    }

    #[test]
    fn a_prefix_with_a_brace_is_refused() {
        let err = QuotaStore::open("redis://127.0.0.1:6379/0", "ours{1}")
            .err()
            .unwrap();
        assert!(err.to_string().contains("hash tag"), "{err}");
    }

    #[test]
    fn freed_messages_name_the_sender_and_the_account() {
        assert_eq!(parse_freed("abc t7"), Some(("abc", QuotaTarget::Token(7))));
        assert_eq!(parse_freed("abc u12"), Some(("abc", QuotaTarget::User(12))));
        for bad in ["abc", "abc x7", "abc u", "abc u-", ""] {
            assert_eq!(parse_freed(bad), None, "{bad}");
        }
        for account in [QuotaTarget::User(3), QuotaTarget::Token(9)] {
            assert_eq!(parse_tag(&account_tag(account)), Some(account));
        }
    }
}
