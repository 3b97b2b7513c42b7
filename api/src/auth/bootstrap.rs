//! The root account's first password: `SLUICE_ROOT_PASSWORD`, or a random one
//! printed once to the log. Either way root must change it at first login.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
};
use sluice_entity::users;

use super::password::NewPassword;
use crate::secrets::random_hex;

/// Give root a password if it has none yet.
pub async fn ensure_root_password(db: &DatabaseConnection, configured: Option<&str>) -> anyhow::Result<()> {
    let Some(root) = users::Entity::find()
        .filter(users::Column::Role.eq("root"))
        .one(db)
        .await?
    else {
        return Ok(());
    };
    if root.password_hash.is_some() {
        return Ok(());
    }
    let (password, generated) = match configured {
        Some(p) => (p.to_string(), false),
        None => (random_hex(12), true),
    };
    let hash = NewPassword::parse(password.clone(), "password")
        .map_err(|e| anyhow::anyhow!("SLUICE_ROOT_PASSWORD: {e}"))?
        .hash()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut row: users::ActiveModel = root.into();
    row.password_hash = Set(Some(hash));
    row.must_change_password = Set(true);
    row.updated_at = Set(Utc::now());
    row.update(db).await?;
    if generated {
        tracing::warn!(
            "created the root account; its one-time password is {password} — log in as 'root' and change it (it is not shown again)"
        );
    } else {
        tracing::info!("created the root account with SLUICE_ROOT_PASSWORD; change it at first login");
    }
    Ok(())
}
