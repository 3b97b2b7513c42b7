//! Fallback chains: create, change and delete one, each followed by handing
//! every chain to the relay's model snapshot, so a change serves at once.
//! Chains declared in the config file are the file's to change.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder,
};
use serde::Deserialize;
use sluice_entity::fallbacks;
use utoipa::ToSchema;

use super::models::{Chain, ServedModels};
use super::sync::MANAGED_BY_CONFIG;
use super::Changed;
use crate::config::FallbackDecl;
use crate::error::ApiError;
use crate::state::AppState;

/// A fallback chain to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFallback {
    /// The name clients ask for (1–128 characters); a served model's name makes
    /// the chain stand for that model.
    pub name: String,
    /// Models tried in order (1–16, each served by a channel).
    pub models: Vec<String>,
    /// Seconds each step but the last waits for a key with room (default 5, at most 3600).
    #[serde(default)]
    pub wait_secs: Option<u64>,
}

/// Changes to a fallback chain; absent fields stay.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateFallback {
    /// Name.
    pub name: Option<String>,
    /// Models, in order (replaces them all).
    pub models: Option<Vec<String>>,
    /// Seconds each step but the last waits.
    pub wait_secs: Option<u64>,
}

/// The chain a stored row describes.
pub fn chain(row: &fallbacks::Model) -> Result<Chain, ApiError> {
    Ok(Chain {
        name: row.name.clone(),
        models: serde_json::from_str(&row.models).map_err(|e| ApiError::Internal(e.into()))?,
        wait: Duration::from_secs(row.wait_secs.max(0) as u64),
    })
}

/// Load every chain into the relay's snapshot (at start-up, and after each change).
pub async fn reload_chains(db: &DatabaseConnection, models: &ServedModels) -> anyhow::Result<()> {
    let rows = fallbacks::Entity::find().all(db).await?;
    let chains = rows
        .iter()
        .map(chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::new)?;
    models.replace_chains(chains);
    Ok(())
}

async fn refresh(state: &AppState) -> Result<(), ApiError> {
    reload_chains(&state.db, &state.models)
        .await
        .map_err(ApiError::Internal)?;
    state.cluster.announce(crate::cluster::Change::Fallbacks);
    Ok(())
}

/// Every chain, by id.
pub async fn list(state: &AppState) -> Result<Vec<fallbacks::Model>, ApiError> {
    Ok(fallbacks::Entity::find()
        .order_by_asc(fallbacks::Column::Id)
        .all(&state.db)
        .await?)
}

/// A chain by id, or 404.
pub async fn find(state: &AppState, id: i64) -> Result<fallbacks::Model, ApiError> {
    fallbacks::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("fallback {id}")))
}

async fn refuse_taken_name(state: &AppState, name: &str, except: Option<i64>) -> Result<(), ApiError> {
    let mut q = fallbacks::Entity::find().filter(fallbacks::Column::Name.eq(name));
    if let Some(id) = except {
        q = q.filter(fallbacks::Column::Id.ne(id));
    }
    if q.count(&state.db).await? > 0 {
        return Err(ApiError::Taken {
            param: "name",
            message: format!("a fallback named '{name}' exists"),
        });
    }
    Ok(())
}

fn trimmed(d: FallbackDecl) -> FallbackDecl {
    FallbackDecl {
        name: d.name.trim().to_string(),
        models: d.models.iter().map(|m| m.trim().to_string()).collect(),
        wait_secs: d.wait_secs,
    }
}

fn to_row(d: &FallbackDecl, row: &mut fallbacks::ActiveModel) {
    row.name = Set(d.name.clone());
    row.models = Set(serde_json::to_string(&d.models).expect("serialises"));
    row.wait_secs = Set(d.wait_secs as i64);
    row.updated_at = Set(Utc::now());
}

/// Create a chain; it serves at once.
pub async fn create(state: &AppState, b: CreateFallback) -> Result<fallbacks::Model, ApiError> {
    let decl = trimmed(FallbackDecl {
        name: b.name,
        models: b.models,
        wait_secs: b.wait_secs.unwrap_or(5),
    });
    decl.validate()?;
    refuse_taken_name(state, &decl.name, None).await?;
    let mut row = fallbacks::ActiveModel {
        managed_by: Set("api".into()),
        created_at: Set(Utc::now()),
        ..Default::default()
    };
    to_row(&decl, &mut row);
    let created = row.insert(&state.db).await?;
    refresh(state).await?;
    Ok(created)
}

/// Change a chain; requests arriving after it use the new steps.
pub async fn update(
    state: &AppState,
    id: i64,
    b: UpdateFallback,
) -> Result<Changed<fallbacks::Model>, ApiError> {
    let current = find(state, id).await?;
    writable(&current)?;
    let now = chain(&current)?;
    let decl = trimmed(FallbackDecl {
        name: b.name.unwrap_or(now.name),
        models: b.models.unwrap_or(now.models),
        wait_secs: b.wait_secs.unwrap_or(now.wait.as_secs()),
    });
    decl.validate()?;
    refuse_taken_name(state, &decl.name, Some(id)).await?;
    let mut row: fallbacks::ActiveModel = current.clone().into();
    to_row(&decl, &mut row);
    let updated = row.update(&state.db).await?;
    refresh(state).await?;
    Ok(Changed {
        before: current,
        after: updated,
    })
}

/// Delete a chain; its name is no longer served (unless a model has it). The
/// chain as it was.
pub async fn delete(state: &AppState, id: i64) -> Result<fallbacks::Model, ApiError> {
    let current = find(state, id).await?;
    writable(&current)?;
    fallbacks::Entity::delete_by_id(id).exec(&state.db).await?;
    refresh(state).await?;
    Ok(current)
}

/// Refuse to change a chain the config file owns.
fn writable(row: &fallbacks::Model) -> Result<(), ApiError> {
    if row.managed_by == MANAGED_BY_CONFIG {
        return Err(ApiError::Conflict(format!(
            "fallback '{}' is declared in the config file; change it there",
            row.name
        )));
    }
    Ok(())
}
