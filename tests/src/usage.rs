//! Usage-log rows written straight into the database, shaped as the ledger
//! writes them, so a test can place requests on chosen instants, users,
//! tokens, channels and statuses.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, EntityTrait};
use sluice_entity::usage_logs;

use crate::helpers::TestApp;

/// A successful `llama` request by `user_id` at `at` (RFC 3339), labelled `label`
/// in its request id; tests change the fields they care about.
pub fn request(label: &str, user_id: i64, at: &str) -> usage_logs::ActiveModel {
    usage_logs::ActiveModel {
        request_id: Set(label.into()),
        created_at: Set(DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&Utc)),
        user_id: Set(Some(user_id)),
        token_id: Set(Some(1)),
        token_name: Set("laptop".into()),
        model: Set("llama".into()),
        upstream_model: Set("meta/llama".into()),
        channel_id: Set(Some(1)),
        key_id: Set(Some(1)),
        prompt_tokens: Set(10),
        completion_tokens: Set(5),
        usage_estimated: Set(false),
        quota: Set(15),
        latency_ms: Set(120),
        first_token_ms: Set(None),
        is_stream: Set(false),
        status: Set(200),
        attempts: Set(1),
        error: Set(None),
        ..Default::default()
    }
}

/// Write rows in this order (so later rows get larger ids).
pub async fn insert(app: &TestApp, rows: Vec<usage_logs::ActiveModel>) {
    // Bounded batches: SQLite allows about 32k bound values per statement.
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<_> = rows.by_ref().take(500).collect();
        usage_logs::Entity::insert_many(batch)
            .exec(&app.db)
            .await
            .expect("insert usage logs");
    }
}
