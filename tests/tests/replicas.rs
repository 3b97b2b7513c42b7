//! Two Sluice processes on one database with Redis (`[cluster] redis_url`):
//! what is changed through one is honoured by the other at once, without a
//! restart.

use std::future::Future;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_api::config::ClusterSettings;
use sluice_tests::helpers::{channel, json_body, spawn_app, AppConfig, TestApp};
use sluice_tests::mock::{MockConfig, MockProvider};

/// Redis on the machine; each test its own prefix, so tests do not hear each other.
fn cluster() -> ClusterSettings {
    ClusterSettings {
        redis_url: Some("redis://127.0.0.1:6379/0".into()),
        prefix: format!("sluice-test-{}", uuid::Uuid::new_v4().simple()),
    }
}

async fn two_replicas(mock: &MockProvider) -> (TestApp, TestApp) {
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, &["k1"], &["llama"], 0)]);
    config.cluster = cluster();
    let a = spawn_app(config).await;
    let b = a.replica().await;
    for app in [&a, &b] {
        // Subscribed: from here on, changes reach it.
        until(|| async {
            let ready = json_body(
                app.client
                    .get(format!("{}/readyz", app.address))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            ready["redis"] == "connected"
        })
        .await;
    }
    (a, b)
}

/// Wait for `event` (checked every 20 ms); fail after 10 s.
async fn until<F, Fut>(mut event: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !event().await {
        assert!(tokio::time::Instant::now() < deadline, "the change never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn chat_status(app: &TestApp, key: &str, model: &str) -> u16 {
    app.post_as(
        key,
        "/v1/chat/completions",
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .status()
    .as_u16()
}

#[actix_rt::test]
async fn a_token_made_or_disabled_through_one_replica_is_honoured_by_the_other() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let (a, b) = two_replicas(&mock).await;
    let root = a.root_token().await;
    let created = json_body(a.api_post("/api/tokens", &root, json!({"name": "shared"})).await).await;
    assert!(created["key"].is_string(), "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["token"]["id"].as_i64().unwrap();

    until(|| async { chat_status(&b, &key, "llama").await == 200 }).await;

    let res = a
        .api_patch(&format!("/api/tokens/{id}"), &root, json!({"status": "disabled"}))
        .await;
    assert_eq!(res.status(), 200);
    until(|| async { chat_status(&b, &key, "llama").await == 401 }).await;
    assert_eq!(chat_status(&a, &key, "llama").await, 401);
}

#[actix_rt::test]
async fn channels_prices_and_users_changed_through_one_replica_reach_the_other() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let (a, b) = two_replicas(&mock).await;
    let root = a.root_token().await;
    let token = sluice_tests::helpers::TOKEN;
    assert_eq!(chat_status(&b, token, "qwen").await, 404, "not served yet");

    let res = a
        .api_post(
            "/api/channels",
            &root,
            json!({"name": "more", "base_url": mock.base_url, "models": ["qwen"], "keys": "k2"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    until(|| async { chat_status(&b, token, "qwen").await == 200 }).await;

    let res = a
        .api(
            Method::PUT,
            "/api/prices/qwen",
            Some(&root),
            Some(json!({"input": 7, "output": 9})),
        )
        .await;
    assert_eq!(res.status(), 200);
    until(|| async {
        let prices: Value = json_body(b.api_get("/api/prices", &root).await).await;
        prices["prices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["model"] == "qwen" && p["input"] == 7)
    })
    .await;

    // A disabled account's tokens stop everywhere.
    let (id, ada) = a.user(&root, "ada", "user", 1000).await;
    let made = json_body(a.api_post("/api/tokens", &ada, json!({"name": "ada's"})).await).await;
    let key = made["key"].as_str().unwrap().to_string();
    until(|| async { chat_status(&b, &key, "llama").await == 200 }).await;
    let res = a
        .api_patch(&format!("/api/users/{id}"), &root, json!({"status": "disabled"}))
        .await;
    assert_eq!(res.status(), 200);
    until(|| async { chat_status(&b, &key, "llama").await == 401 }).await;
}

#[actix_rt::test]
async fn a_single_process_needs_no_redis() {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let ready = json_body(
        app.client
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["redis"], "off");
}
