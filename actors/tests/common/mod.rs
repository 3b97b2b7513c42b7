//! What the ledger's tests share: a user to charge.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection};
use sluice_entity::users;

/// A user `ada` with `quota` units left; its id.
pub async fn user(db: &DatabaseConnection, quota: i64) -> i64 {
    let now = Utc::now();
    users::ActiveModel {
        username: Set("ada".into()),
        role: Set("user".into()),
        group_name: Set("default".into()),
        status: Set("enabled".into()),
        quota: Set(quota),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
    .id
}
