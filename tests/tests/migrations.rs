//! Runs the migrations up/down/up and round-trips a few rows through the
//! entities, on a fresh database of the kind the suite runs against.

use chrono::{TimeZone, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Database, DatabaseConnection, EntityTrait, ModelTrait, PaginatorTrait,
    QueryFilter, Set,
};
use sluice_entity::{audit_log, channel_keys, channels, settings, tokens, usage_logs, users};
use sluice_migration::{Migrator, MigratorTrait};

async fn exercise(db: &DatabaseConnection) {
    Migrator::up(db, None).await.expect("up");
    Migrator::down(db, None).await.expect("down");
    Migrator::up(db, None).await.expect("up again");

    let now = Utc::now();
    let user = users::ActiveModel {
        username: Set("alice".into()),
        role: Set("user".into()),
        status: Set("enabled".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert user");
    assert_eq!(user.group_name, "default");
    assert_eq!(user.quota, 0);
    assert!(!user.must_change_password);
    assert!(user.email.is_none());

    // Stay below 2038: sqlx binds DateTime<Utc> as a MySQL TIMESTAMP parameter,
    // which MariaDB turns into NULL past 2038-01-19 even for DATETIME columns.
    let far = Utc.with_ymd_and_hms(2037, 1, 2, 3, 4, 5).unwrap();
    let token = tokens::ActiveModel {
        user_id: Set(user.id),
        name: Set("t".into()),
        key_hash: Set("a".repeat(64)),
        key_prefix: Set("sk-abc".into()),
        status: Set("enabled".into()),
        expires_at: Set(Some(far)),
        managed_by: Set("api".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert token");
    assert!(token.unlimited_quota);
    assert_eq!(token.expires_at, Some(far));
    assert!(token.models.is_none());

    // Duplicate key hash must be rejected.
    let dup = tokens::ActiveModel {
        user_id: Set(user.id),
        name: Set("t2".into()),
        key_hash: Set("a".repeat(64)),
        key_prefix: Set("sk-abc".into()),
        status: Set("enabled".into()),
        managed_by: Set("api".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await;
    assert!(dup.is_err(), "duplicate key_hash accepted");

    let channel = channels::ActiveModel {
        name: Set("c1".into()),
        base_url: Set("https://example.invalid/v1".into()),
        status: Set("enabled".into()),
        managed_by: Set("config".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert channel");
    assert_eq!(channel.kind, "openai");
    assert_eq!(channel.groups, r#"["default"]"#);
    assert_eq!(channel.extra_headers, "{}");
    assert_eq!(channel.model_limits, "{}");
    assert_eq!(channel.models, "[]");
    assert_eq!(channel.weight, 1);

    let key = channel_keys::ActiveModel {
        channel_id: Set(channel.id),
        secret_enc: Set("c2VjcmV0".into()),
        fingerprint: Set("f".repeat(64)),
        mask: Set("sk-...xyz".into()),
        status: Set("enabled".into()),
        managed_by: Set("config".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert channel key");
    assert!(key.rpm.is_none());

    usage_logs::ActiveModel {
        request_id: Set("req-1".into()),
        created_at: Set(now),
        user_id: Set(Some(user.id)),
        token_id: Set(Some(token.id)),
        token_name: Set("t".into()),
        model: Set("gpt-x".into()),
        upstream_model: Set("gpt-x".into()),
        channel_id: Set(Some(channel.id)),
        key_id: Set(Some(key.id)),
        prompt_tokens: Set(10),
        completion_tokens: Set(20),
        usage_estimated: Set(false),
        quota: Set(5),
        latency_ms: Set(100),
        first_token_ms: Set(None),
        is_stream: Set(true),
        status: Set(200),
        attempts: Set(1),
        error: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert usage log");

    settings::ActiveModel {
        key: Set("site.name".into()),
        value: Set("Sluice".into()),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .expect("insert setting");

    // Cascades: deleting the user removes tokens, the channel removes keys;
    // usage logs stay.
    let user_id = user.id;
    user.delete(db).await.expect("delete user");
    assert_eq!(tokens::Entity::find().count(db).await.unwrap(), 0);
    channel.delete(db).await.expect("delete channel");
    assert_eq!(channel_keys::Entity::find().count(db).await.unwrap(), 0);
    let logs = usage_logs::Entity::find()
        .filter(usage_logs::Column::Model.eq("gpt-x"))
        .all(db)
        .await
        .unwrap();
    assert_eq!(logs.len(), 1);
    assert!(logs[0].is_stream);

    // The audit trail names its actor by id and name, with no foreign key: it
    // outlives the deleted account.
    let before = r#"{"quota":0,"note":"雪"}"#;
    let entry = audit_log::ActiveModel {
        at: Set(now),
        actor_id: Set(user_id),
        actor_username: Set("alice".into()),
        actor_role: Set("admin".into()),
        address: Set(Some("2001:db8::1".into())),
        action: Set("user.top_up".into()),
        target_type: Set("user".into()),
        target_id: Set(user_id.to_string()),
        target_label: Set("alice".into()),
        before_json: Set(Some(before.into())),
        after_json: Set(Some("x".repeat(20_000))),
        request_id: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert audit entry");
    let read = audit_log::Entity::find_by_id(entry.id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.before_json.as_deref(), Some(before));
    assert_eq!(read.after_json.map(|a| a.len()), Some(20_000));
    assert_eq!(read.at.timestamp_micros(), now.timestamp_micros());

    Migrator::down(db, None).await.expect("final down");
    assert!(
        users::Entity::find().count(db).await.is_err(),
        "users table still exists"
    );
    assert!(usage_logs::Entity::find().count(db).await.is_err());
    assert!(audit_log::Entity::find().count(db).await.is_err());
}

/// Runs on the database the suite is pointed at (`SLUICE_TEST_DATABASE_URL`),
/// so `.ci/run` covers SQLite, MariaDB and PostgreSQL.
#[tokio::test]
async fn migrations_go_up_down_and_up_again_and_rows_round_trip() {
    let dir = std::env::temp_dir().join(format!("sluice-migrate-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = sluice_tests::helpers::fresh_database_url(&dir).await;
    let db = Database::connect(url).await.expect("connect");
    exercise(&db).await;
    let _ = std::fs::remove_dir_all(&dir);
}
