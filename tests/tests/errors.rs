//! Every way a `/v1` request can fail gets an OpenAI-shaped error with the
//! right status, and bad input changes nothing.

use std::time::Duration;

use sea_orm::EntityTrait;
use serde_json::{json, Value};
use sluice_api::config::TokenDecl;
use sluice_entity::channel_keys;
use sluice_tests::helpers::{channel, json_body, spawn_app, AppConfig, TestApp};
use sluice_tests::mock::{KeyBehavior, MockConfig, MockProvider};

async fn assert_error(res: reqwest::Response, status: u16, code: &str, message_has: &str) -> Value {
    assert_eq!(res.status(), status);
    let body = json_body(res).await;
    let err = &body["error"];
    assert_eq!(err["code"], code, "{body}");
    assert!(err["type"].is_string(), "{body}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains(message_has),
        "'{message}' should mention '{message_has}'"
    );
    body
}

async fn app_with_one_key() -> (MockProvider, TestApp) {
    let mock = MockProvider::start(MockConfig::default()).await;
    let mut config = AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1"],
        &["llama", "qwen"],
        0,
    )]);
    config.relay.max_body_bytes = 4096;
    config.tokens.push(TokenDecl {
        name: "llama-only".into(),
        key: "sk-llama-only-123456".into(),
        models: Some(vec!["llama".into()]),
        ..Default::default()
    });
    (mock, spawn_app(config).await)
}

#[actix_rt::test]
async fn missing_and_unknown_tokens_get_401() {
    let (mock, app) = app_with_one_key().await;
    let url = format!("{}/v1/chat/completions", app.address);
    let res = app
        .client
        .post(&url)
        .json(&json!({"model": "llama"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "invalid_api_key", "Authorization: Bearer").await;
    let res = app
        .post_as(
            "sk-not-a-real-token-000",
            "/v1/chat/completions",
            json!({"model": "llama"}),
        )
        .await;
    assert_error(res, 401, "invalid_api_key", "invalid API key").await;
    let res = app
        .client
        .get(format!("{}/v1/models", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(mock.requests().is_empty());
    assert!(app.usage_logs(0).await.is_empty());
}

#[actix_rt::test]
async fn a_model_outside_the_token_allow_list_gets_403() {
    let (mock, app) = app_with_one_key().await;
    let res = app
        .post_as(
            "sk-llama-only-123456",
            "/v1/chat/completions",
            json!({"model": "qwen", "messages": []}),
        )
        .await;
    assert_error(res, 403, "model_not_allowed", "allowed: llama").await;
    assert!(mock.requests().is_empty());
}

#[actix_rt::test]
async fn an_unknown_model_gets_404_naming_the_available_ones() {
    let (mock, app) = app_with_one_key().await;
    let res = app.chat("gpt-5", "hi").await;
    assert_error(
        res,
        404,
        "model_not_found",
        "model 'gpt-5' is not served here; available: llama, qwen",
    )
    .await;
    assert!(mock.requests().is_empty());
}

#[actix_rt::test]
async fn malformed_bodies_get_400() {
    let (mock, app) = app_with_one_key().await;
    let url = format!("{}/v1/chat/completions", app.address);
    let res = app
        .client
        .post(&url)
        .bearer_auth(sluice_tests::helpers::TOKEN)
        .header("content-type", "application/json")
        .body("{\"model\": \"llama\", ")
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "invalid_request", "not valid JSON").await;
    let res = app.post("/v1/chat/completions", json!(["model", "llama"])).await;
    assert_error(res, 400, "invalid_request", "JSON object").await;
    let res = app.post("/v1/chat/completions", json!({"messages": []})).await;
    assert_error(res, 400, "invalid_request", "'model' is required").await;
    assert!(mock.requests().is_empty());
}

#[actix_rt::test]
async fn a_body_over_the_limit_gets_413() {
    let (mock, app) = app_with_one_key().await;
    let res = app.chat("llama", &"x".repeat(10_000)).await;
    assert_error(res, 413, "request_too_large", "4096 bytes").await;
    assert!(mock.requests().is_empty());
}

#[actix_rt::test]
async fn an_unknown_v1_route_gets_an_openai_shaped_404() {
    let (_mock, app) = app_with_one_key().await;
    let res = app.post("/v1/responses/nope", json!({})).await;
    assert_error(res, 404, "unknown_url", "/v1/responses/nope").await;
}

#[actix_rt::test]
async fn a_provider_refusal_of_the_request_is_passed_through_without_retry() {
    let (mock, app) = app_with_one_key().await;
    // The mock answers 400 to a chat without messages, as a provider would.
    let res = app.post("/v1/chat/completions", json!({"model": "llama"})).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        mock.requests().len(),
        1,
        "a request the provider rejects is not retried"
    );
    let log = &app.usage_logs(1).await[0];
    assert_eq!(log.status, 400);
    assert!(log.error.as_deref().unwrap().contains("400"));
}

#[actix_rt::test]
async fn waiting_longer_than_max_wait_gets_429_with_retry_after() {
    let mock = MockProvider::start(MockConfig {
        rpm_per_key: 1,
        ..MockConfig::default()
    })
    .await;
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, &["k1"], &["llama"], 1)]);
    config.relay.max_wait_secs = 1;
    let app = spawn_app(config).await;
    assert_eq!(app.chat("llama", "first").await.status(), 200);
    let started = std::time::Instant::now();
    let res = app.chat("llama", "second").await;
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited first");
    let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (55..=61).contains(&retry_after),
        "the window frees in ~59 s, said {retry_after}"
    );
    assert_error(res, 429, "rate_limit_exceeded", "waited 1 s").await;
    assert_eq!(
        mock.requests().len(),
        1,
        "the provider never saw the second request"
    );
    assert_eq!(mock.rate_limited(), 0);
    let logs = app.usage_logs(2).await;
    assert_eq!(logs[1].status, 429);
}

#[actix_rt::test]
async fn when_every_key_fails_the_client_gets_502_naming_the_last_provider_error() {
    let mock = MockProvider::start(MockConfig::default()).await;
    mock.set_behavior("k1", KeyBehavior::ServerError);
    mock.set_behavior("k2", KeyBehavior::ServerError);
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1", "k2"],
        &["llama"],
        0,
    )]))
    .await;
    let res = app.chat("llama", "hi").await;
    assert_error(res, 502, "upstream_failed", "provider answered 500").await;
    let mut keys: Vec<String> = mock.requests().iter().map(|r| r.key.clone()).collect();
    keys.sort();
    assert_eq!(keys, ["k1", "k2"], "each key tried once");
    assert_eq!(app.usage_logs(1).await[0].attempts, 2);
}

#[actix_rt::test]
async fn a_key_rejected_twice_is_disabled_with_its_reason_and_then_503() {
    let mock = MockProvider::start(MockConfig::default()).await;
    mock.set_behavior("revoked", KeyBehavior::Unauthorized);
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["revoked"],
        &["llama"],
        0,
    )]))
    .await;
    assert_error(
        app.chat("llama", "1").await,
        502,
        "upstream_failed",
        "provider answered 401",
    )
    .await;
    assert_error(
        app.chat("llama", "2").await,
        502,
        "upstream_failed",
        "Authentication failed",
    )
    .await;
    assert_error(app.chat("llama", "3").await, 503, "no_available_key", "disabled").await;
    assert_eq!(mock.requests().len(), 2, "a disabled key is not called");

    let mut key = None;
    for _ in 0..50 {
        key = channel_keys::Entity::find().one(&app.db).await.unwrap();
        if key.as_ref().is_some_and(|k| k.status == "auto_disabled") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let key = key.unwrap();
    assert_eq!(key.status, "auto_disabled");
    assert!(key.disabled_reason.unwrap().contains("401"));

    // The reason survives a restart, and the key stays off.
    let app = app.restart().await;
    assert_error(app.chat("llama", "4").await, 503, "no_available_key", "401").await;
}
