//! Nothing accepted is lost: usage logs survive a graceful stop, in-flight
//! requests finish during it, and the config file syncs idempotently.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use sea_orm::{EntityTrait, PaginatorTrait, QueryOrder};
use sluice_actors::ledger::{Flush, Record};
use sluice_actors::UsageRecord;
use sluice_entity::{channel_keys, channels, tokens, usage_logs};
use sluice_tests::helpers::{channel, spawn_app, AppConfig, TOKEN};
use sluice_tests::mock::{MockConfig, MockProvider};

#[actix_rt::test]
async fn usage_logs_pending_at_shutdown_are_written_before_exit() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, &["k1"], &["llama"], 0)]);
    // The periodic flush would never fire within this test: only shutdown writes.
    config.relay.ledger_interval_ms = 3_600_000;
    let app = spawn_app(config).await;
    for i in 0..25 {
        assert_eq!(app.chat("llama", &format!("{i}")).await.status(), 200);
    }
    let app = app.restart().await;
    let logs = app.usage_logs(25).await;
    assert_eq!(logs.len(), 25);
    assert!(logs.iter().all(|l| l.status == 200 && l.completion_tokens > 0));
}

/// The ledger writes its rows with a statement of its own making, not the
/// entity's: every field must land in its column, on each database.
#[actix_rt::test]
async fn every_field_of_a_usage_row_is_stored_as_recorded() {
    let app = spawn_app(AppConfig::new(Vec::new())).await;
    let at = Utc.with_ymd_and_hms(2026, 11, 29, 21, 30, 5).unwrap();
    let full = UsageRecord {
        request_id: "req-full".into(),
        created_at: at,
        user_id: Some(7),
        token_id: Some(9),
        token_name: "ci's \"token\" ✓".into(),
        model: "llama".into(),
        upstream_model: "meta/llama-3.1-8b-instruct".into(),
        channel_id: Some(3),
        key_id: Some(4),
        prompt_tokens: 1_234_567_890_123,
        completion_tokens: 42,
        usage_estimated: true,
        quota: -5,
        latency_ms: 1_500,
        first_token_ms: Some(120),
        is_stream: true,
        status: 502,
        attempts: 3,
        error: Some("provider answered 500: {\"error\": \"boom\"} ✗".into()),
        protocol: "anthropic".into(),
        fallback: Some("fast-then-big".into()),
        ..Default::default()
    };
    let bare = |id: &str| UsageRecord {
        request_id: id.into(),
        created_at: at,
        ..Default::default()
    };
    // Three rows: written as an INSERT of two, then one of one.
    let records = [full, bare("req-bare-1"), bare("req-bare-2")];
    for r in &records {
        app.ledger.do_send(Record(r.clone()));
    }
    assert_eq!(app.ledger.send(Flush).await.unwrap(), Ok(3));
    let rows = usage_logs::Entity::find()
        .order_by_asc(usage_logs::Column::Id)
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    for (row, r) in rows.iter().zip(&records) {
        let expected = usage_logs::Model {
            id: row.id,
            request_id: r.request_id.clone(),
            created_at: r.created_at,
            user_id: r.user_id,
            token_id: r.token_id,
            token_name: r.token_name.clone(),
            model: r.model.clone(),
            upstream_model: r.upstream_model.clone(),
            channel_id: r.channel_id,
            key_id: r.key_id,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            usage_estimated: r.usage_estimated,
            quota: r.quota,
            latency_ms: r.latency_ms,
            first_token_ms: r.first_token_ms,
            is_stream: r.is_stream,
            status: r.status,
            attempts: r.attempts,
            error: r.error.clone(),
            // A record that names no protocol was spoken in OpenAI's.
            protocol: if r.protocol.is_empty() {
                "openai".into()
            } else {
                r.protocol.clone()
            },
            fallback: r.fallback.clone(),
        };
        assert_eq!(row, &expected);
    }
}

#[actix_rt::test]
async fn a_request_in_flight_at_shutdown_finishes_and_is_logged() {
    let mock = MockProvider::start(MockConfig {
        latency: Duration::from_millis(1500),
        ..MockConfig::default()
    })
    .await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1"],
        &["llama"],
        0,
    )]))
    .await;
    let client = app.client.clone();
    let url = format!("{}/v1/chat/completions", app.address);
    let in_flight = tokio::task::spawn_local(async move {
        client
            .post(url)
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"model": "llama", "messages": [{"role": "user", "content": "slow"}]}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    while mock.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let app = app.restart().await;
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "the request was drained, not cut"
    );
    let logs = app.usage_logs(1).await;
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].status, 200);
}

#[actix_rt::test]
async fn syncing_the_same_file_twice_changes_nothing() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1", "k2"],
        &["llama"],
        40,
    )]))
    .await;
    let before = (
        channels::Entity::find().all(&app.db).await.unwrap(),
        channel_keys::Entity::find()
            .order_by_asc(channel_keys::Column::Id)
            .all(&app.db)
            .await
            .unwrap(),
        tokens::Entity::find().all(&app.db).await.unwrap(),
    );
    let app = app.restart().await;
    let after = (
        channels::Entity::find().all(&app.db).await.unwrap(),
        channel_keys::Entity::find()
            .order_by_asc(channel_keys::Column::Id)
            .all(&app.db)
            .await
            .unwrap(),
        tokens::Entity::find().all(&app.db).await.unwrap(),
    );
    assert_eq!(before.0.len(), 1);
    assert_eq!(before.1.len(), 2);
    let ids = |v: &(Vec<channels::Model>, Vec<channel_keys::Model>, Vec<tokens::Model>)| {
        (
            v.0.iter()
                .map(|c| (c.id, c.name.clone(), c.rpm))
                .collect::<Vec<_>>(),
            v.1.iter()
                .map(|k| (k.id, k.fingerprint.clone(), k.status.clone()))
                .collect::<Vec<_>>(),
            v.2.iter().map(|t| (t.id, t.key_hash.clone())).collect::<Vec<_>>(),
        )
    };
    assert_eq!(ids(&before), ids(&after));
}

#[actix_rt::test]
async fn editing_the_file_updates_adds_and_removes_what_it_declares() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = spawn_app(AppConfig::new(vec![
        channel("nim", &mock.base_url, &["k1", "k2"], &["llama"], 40),
        channel("old", &mock.base_url, &["o1"], &["qwen"], 0),
    ]))
    .await;
    let k1_id = channel_keys::Entity::find()
        .order_by_asc(channel_keys::Column::Id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .id;
    let app = app
        .restart_with(|s| {
            s.channels.retain(|c| c.name == "nim");
            s.channels[0].keys = vec!["k1".into(), "k3".into()];
            s.channels[0].rpm = 20;
        })
        .await;
    let chans = channels::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(chans.len(), 1);
    assert_eq!(chans[0].rpm, 20);
    let keys = channel_keys::Entity::find()
        .order_by_asc(channel_keys::Column::Id)
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].id, k1_id, "a kept key keeps its id");
    let res = app.chat("qwen", "gone").await;
    assert_eq!(res.status(), 404, "the removed channel's model is gone");
    assert_eq!(app.chat("llama", "x").await.status(), 200);
    assert_eq!(app.key_states().await[0].snapshot.configured.rpm, 20);
}

#[actix_rt::test]
async fn provider_keys_are_encrypted_and_tokens_hashed_at_rest() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["nvapi-very-secret-key-1234"],
        &["llama"],
        0,
    )]))
    .await;
    let key = channel_keys::Entity::find().one(&app.db).await.unwrap().unwrap();
    assert!(!key.secret_enc.contains("very-secret"));
    assert_eq!(key.mask, "nvapi-…1234");
    let token = tokens::Entity::find().one(&app.db).await.unwrap().unwrap();
    assert_ne!(token.key_hash, TOKEN);
    assert!(!token.key_prefix.contains("0123456789abcdef"));
    assert_eq!(tokens::Entity::find().count(&app.db).await.unwrap(), 1);
    // And the stored key still works after a restart (same secret).
    let app = app.restart().await;
    assert_eq!(app.chat("llama", "hi").await.status(), 200);
    assert_eq!(mock.requests()[0].key, "nvapi-very-secret-key-1234");
}
