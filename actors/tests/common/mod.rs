//! What the ledger's tests share: a user to charge, a usage row to charge it with.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection};
use sluice_actors::UsageRecord;
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

/// A served request of `user`'s that cost `cost`.
pub fn row(user: i64, cost: i64) -> UsageRecord {
    UsageRecord {
        request_id: uuid::Uuid::new_v4().simple().to_string(),
        created_at: Utc::now(),
        user_id: Some(user),
        quota: cost,
        status: 200,
        ..Default::default()
    }
}
