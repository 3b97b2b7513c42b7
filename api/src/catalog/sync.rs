//! Bring the database in line with the channels, keys and tokens the config
//! file declares. Idempotent: running it twice changes nothing the second time.
//! File-managed rows that left the file are removed; rows made through the API
//! are never touched.

use std::collections::HashMap;

use anyhow::Context;
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, TransactionTrait,
};
use sluice_actors::key::mask_secret;
use sluice_entity::{channel_keys, channels, fallbacks, tokens, users};

use crate::config::{ChannelDecl, FallbackDecl, Settings, TokenDecl};
use crate::secrets::{hash_hex, SecretBox};

/// Who owns rows declared in the config file.
pub const MANAGED_BY_CONFIG: &str = "config";

/// Apply the file's declarations to the database in one transaction.
pub async fn sync_config(
    db: &DatabaseConnection,
    settings: &Settings,
    secrets: &SecretBox,
) -> anyhow::Result<()> {
    let txn = db.begin().await?;
    let root = ensure_root(&txn).await?;
    let existing: HashMap<String, channels::Model> = channels::Entity::find()
        .filter(channels::Column::ManagedBy.eq(MANAGED_BY_CONFIG))
        .all(&txn)
        .await?
        .into_iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    for decl in &settings.channels {
        let channel = upsert_channel(&txn, decl, existing.get(&decl.name), secrets).await?;
        sync_keys(&txn, channel.id, &decl.keys, secrets).await?;
    }
    for (name, stale) in existing {
        if !settings.channels.iter().any(|c| c.name == name) {
            channels::Entity::delete_by_id(stale.id).exec(&txn).await?;
        }
    }
    sync_tokens(&txn, root, &settings.tokens).await?;
    sync_fallbacks(&txn, &settings.fallbacks).await?;
    txn.commit().await?;
    Ok(())
}

/// Chains are matched by name; a chain made through the API keeps its name.
async fn sync_fallbacks(txn: &impl ConnectionTrait, decls: &[FallbackDecl]) -> anyhow::Result<()> {
    let now = Utc::now();
    let existing = fallbacks::Entity::find().all(txn).await?;
    for decl in decls {
        let models = serde_json::to_string(&decl.models)?;
        match existing.iter().find(|f| f.name == decl.name) {
            Some(f) if f.managed_by != MANAGED_BY_CONFIG => anyhow::bail!(
                "fallback '{}' in the config file has the name of one made through the API",
                decl.name
            ),
            Some(f) => {
                if f.models != models || f.wait_secs != decl.wait_secs as i64 {
                    let mut row: fallbacks::ActiveModel = f.clone().into();
                    row.models = Set(models);
                    row.wait_secs = Set(decl.wait_secs as i64);
                    row.updated_at = Set(now);
                    row.update(txn).await?;
                }
            }
            None => {
                fallbacks::ActiveModel {
                    name: Set(decl.name.clone()),
                    models: Set(models),
                    wait_secs: Set(decl.wait_secs as i64),
                    managed_by: Set(MANAGED_BY_CONFIG.into()),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
            }
        }
    }
    for stale in existing {
        if stale.managed_by == MANAGED_BY_CONFIG && !decls.iter().any(|d| d.name == stale.name) {
            fallbacks::Entity::delete_by_id(stale.id).exec(txn).await?;
        }
    }
    Ok(())
}

/// The root account owns file-declared tokens. Its password is set by the
/// account flows; until then it cannot log in (there is no default password).
async fn ensure_root(txn: &impl ConnectionTrait) -> anyhow::Result<i64> {
    if let Some(root) = users::Entity::find()
        .filter(users::Column::Role.eq("root"))
        .one(txn)
        .await?
    {
        return Ok(root.id);
    }
    let now = Utc::now();
    let root = users::ActiveModel {
        username: Set("root".into()),
        role: Set("root".into()),
        group_name: Set("default".into()),
        status: Set("enabled".into()),
        must_change_password: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(txn)
    .await
    .context("cannot create the root account")?;
    Ok(root.id)
}

async fn upsert_channel(
    txn: &impl ConnectionTrait,
    decl: &ChannelDecl,
    existing: Option<&channels::Model>,
    secrets: &SecretBox,
) -> anyhow::Result<channels::Model> {
    let now = Utc::now();
    let mut row = channels::ActiveModel {
        name: Set(decl.name.clone()),
        kind: Set(decl.kind.clone()),
        base_url: Set(decl.base_url.trim_end_matches('/').to_string()),
        models: Set(serde_json::to_string(&decl.models)?),
        model_map: Set(serde_json::to_string(&sorted(&decl.model_map))?),
        priority: Set(decl.priority),
        groups: Set(serde_json::to_string(&decl.groups)?),
        weight: Set(decl.weight as i32),
        extra_headers: Set(secrets.seal_map(&sorted(&decl.headers))),
        rpm: Set(decl.rpm as i64),
        tpm: Set(decl.tpm as i64),
        max_concurrency: Set(decl.max_concurrency as i32),
        model_limits: Set(serde_json::to_string(&sorted(&decl.model_limits))?),
        status: Set("enabled".into()),
        managed_by: Set(MANAGED_BY_CONFIG.into()),
        updated_at: Set(now),
        ..Default::default()
    };
    Ok(match existing {
        Some(current) => {
            row.id = Set(current.id);
            row.created_at = Set(current.created_at);
            row.update(txn).await?
        }
        None => {
            row.created_at = Set(now);
            row.insert(txn).await?
        }
    })
}

fn sorted<V: Clone>(map: &HashMap<String, V>) -> std::collections::BTreeMap<String, V> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Keys are matched by fingerprint, so a key keeps its id (and its usage
/// history, and a disabled state with its reason) across restarts.
async fn sync_keys(
    txn: &impl ConnectionTrait,
    channel_id: i64,
    keys: &[String],
    secrets: &SecretBox,
) -> anyhow::Result<()> {
    let existing = channel_keys::Entity::find()
        .filter(channel_keys::Column::ChannelId.eq(channel_id))
        .all(txn)
        .await?;
    let mut wanted: Vec<(String, &str)> = Vec::new();
    for key in keys.iter().map(|k| k.trim()) {
        let fp = hash_hex(key);
        if !wanted.iter().any(|(f, _)| *f == fp) {
            wanted.push((fp, key));
        }
    }
    for row in &existing {
        if !wanted.iter().any(|(fp, _)| *fp == row.fingerprint) {
            channel_keys::Entity::delete_by_id(row.id).exec(txn).await?;
        }
    }
    let now = Utc::now();
    for (fp, key) in wanted {
        if existing.iter().any(|r| r.fingerprint == fp) {
            continue;
        }
        channel_keys::ActiveModel {
            channel_id: Set(channel_id),
            secret_enc: Set(secrets.seal(key)),
            fingerprint: Set(fp),
            mask: Set(mask_secret(key)),
            status: Set("enabled".into()),
            managed_by: Set(MANAGED_BY_CONFIG.into()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(txn)
        .await?;
    }
    Ok(())
}

async fn sync_tokens(txn: &impl ConnectionTrait, owner: i64, decls: &[TokenDecl]) -> anyhow::Result<()> {
    let existing = tokens::Entity::find()
        .filter(tokens::Column::ManagedBy.eq(MANAGED_BY_CONFIG))
        .all(txn)
        .await?;
    let now = Utc::now();
    for decl in decls {
        let hash = hash_hex(&decl.key);
        let models = decl.models.as_ref().map(serde_json::to_string).transpose()?;
        let current = tokens::Entity::find()
            .filter(tokens::Column::KeyHash.eq(hash.clone()))
            .one(txn)
            .await?;
        match current {
            Some(t) if t.managed_by != MANAGED_BY_CONFIG => {
                anyhow::bail!(
                    "token '{}' in the config file has the key of a token made through the API",
                    decl.name
                )
            }
            Some(t) => {
                let limits = (decl.rpm as i64, decl.tpm as i64, decl.max_concurrency as i32);
                if t.name != decl.name || t.models != models || (t.rpm, t.tpm, t.max_concurrency) != limits {
                    let mut row: tokens::ActiveModel = t.into();
                    row.name = Set(decl.name.clone());
                    row.models = Set(models);
                    row.rpm = Set(limits.0);
                    row.tpm = Set(limits.1);
                    row.max_concurrency = Set(limits.2);
                    row.updated_at = Set(now);
                    row.update(txn).await?;
                }
            }
            None => {
                tokens::ActiveModel {
                    user_id: Set(owner),
                    name: Set(decl.name.clone()),
                    key_hash: Set(hash),
                    key_prefix: Set(token_prefix(&decl.key)),
                    status: Set("enabled".into()),
                    models: Set(models),
                    unlimited_quota: Set(true),
                    remaining_quota: Set(0),
                    used_quota: Set(0),
                    managed_by: Set(MANAGED_BY_CONFIG.into()),
                    created_at: Set(now),
                    updated_at: Set(now),
                    rpm: Set(decl.rpm as i64),
                    tpm: Set(decl.tpm as i64),
                    max_concurrency: Set(decl.max_concurrency as i32),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
            }
        }
    }
    for stale in existing {
        if !decls.iter().any(|d| hash_hex(&d.key) == stale.key_hash) {
            tokens::Entity::delete_by_id(stale.id).exec(txn).await?;
        }
    }
    Ok(())
}

/// What is shown of a token after creation: `sk-` and a few characters.
pub fn token_prefix(key: &str) -> String {
    let head: String = key.chars().take(7).collect();
    format!("{head}…")
}
