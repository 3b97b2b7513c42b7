//! `sk-` tokens, held in memory by hash: authenticating a request reads no
//! database row. Whoever changes a token updates this cache in the same step.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sea_orm::{DatabaseConnection, EntityTrait};
use sluice_actors::Limits;
use sluice_entity::{tokens, users};

use crate::secrets::hash_hex;

/// What the relay needs to know about a token.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenInfo {
    /// Database id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Name, for logs.
    pub name: String,
    /// Allowed models; `None` = all.
    pub models: Option<HashSet<String>>,
    /// Whether it may be used at all.
    pub enabled: bool,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Client addresses allowed; `None` = any.
    pub ip_allow: Option<Vec<IpNet>>,
    /// The token's own limits (0 = none).
    pub limits: Limits,
}

impl TokenInfo {
    /// Whether this token may call `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.contains(model))
    }

    /// Whether this token may be used from `ip`.
    pub fn allows_ip(&self, ip: Option<IpAddr>) -> bool {
        match (&self.ip_allow, ip) {
            (None, _) => true,
            (Some(nets), Some(ip)) => nets.iter().any(|n| n.contains(&ip)),
            (Some(_), None) => false,
        }
    }
}

impl TryFrom<&tokens::Model> for TokenInfo {
    type Error = serde_json::Error;

    fn try_from(t: &tokens::Model) -> Result<Self, Self::Error> {
        Ok(TokenInfo {
            id: t.id,
            user_id: t.user_id,
            name: t.name.clone(),
            models: t.models.as_deref().map(serde_json::from_str).transpose()?,
            enabled: t.status == "enabled",
            expires_at: t.expires_at,
            ip_allow: t.ip_allow.as_deref().map(serde_json::from_str).transpose()?,
            limits: limits(t.rpm, t.tpm, t.max_concurrency),
        })
    }
}

/// Limits as stored (negative values cannot pass the API; read as none).
pub fn limits(rpm: i64, tpm: i64, max_concurrency: i32) -> Limits {
    Limits {
        rpm: u32::try_from(rpm).unwrap_or(0),
        tpm: u64::try_from(tpm).unwrap_or(0),
        max_concurrency: u32::try_from(max_concurrency).unwrap_or(0),
    }
}

/// What the relay needs to know about a token's owner.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnerInfo {
    /// A disabled user's tokens stop at once.
    pub enabled: bool,
    /// Price group.
    pub group: String,
    /// The user's own limits (0 = none).
    pub limits: Limits,
}

/// Tokens by the SHA-256 of their key, and their owners.
#[derive(Clone, Debug, Default)]
pub struct TokenCache {
    by_hash: Arc<RwLock<HashMap<String, Arc<TokenInfo>>>>,
    owners: Arc<RwLock<HashMap<i64, OwnerInfo>>>,
}

impl TokenCache {
    /// Load every token and user from the database.
    pub async fn load(db: &DatabaseConnection) -> anyhow::Result<TokenCache> {
        let cache = TokenCache::default();
        for t in tokens::Entity::find().all(db).await? {
            cache.put(&t)?;
        }
        for u in users::Entity::find().all(db).await? {
            cache.set_user(&u);
        }
        Ok(cache)
    }

    /// Replace everything with what the database holds now (another replica
    /// changed something).
    pub async fn reload(&self, db: &DatabaseConnection) -> anyhow::Result<()> {
        let fresh = TokenCache::load(db).await?;
        let tokens = std::mem::take(&mut *fresh.by_hash.write().expect("token cache lock"));
        let owners = std::mem::take(&mut *fresh.owners.write().expect("token cache lock"));
        *self.by_hash.write().expect("token cache lock") = tokens;
        *self.owners.write().expect("token cache lock") = owners;
        Ok(())
    }

    /// Record a user's state (on creation and on every change).
    pub fn set_user(&self, user: &users::Model) {
        self.owners.write().expect("token cache lock").insert(
            user.id,
            OwnerInfo {
                enabled: user.status == "enabled",
                group: user.group_name.clone(),
                limits: limits(user.rpm, user.tpm, user.max_concurrency),
            },
        );
    }

    /// The owner's state; unknown owners count as disabled.
    pub fn owner(&self, user_id: i64) -> OwnerInfo {
        self.owners
            .read()
            .expect("token cache lock")
            .get(&user_id)
            .cloned()
            .unwrap_or(OwnerInfo {
                enabled: false,
                group: "default".into(),
                limits: Limits::default(),
            })
    }

    /// Add or replace a token.
    pub fn put(&self, t: &tokens::Model) -> anyhow::Result<()> {
        let info = Arc::new(TokenInfo::try_from(t)?);
        self.by_hash
            .write()
            .expect("token cache lock")
            .insert(t.key_hash.clone(), info);
        Ok(())
    }

    /// Forget a token.
    pub fn remove(&self, key_hash: &str) {
        self.by_hash.write().expect("token cache lock").remove(key_hash);
    }

    /// The token with this full key, if any.
    pub fn find(&self, key: &str) -> Option<Arc<TokenInfo>> {
        self.by_hash
            .read()
            .expect("token cache lock")
            .get(&hash_hex(key))
            .cloned()
    }
}
