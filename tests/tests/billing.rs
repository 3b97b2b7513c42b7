//! Quota and billing: prices per model, group multipliers, reserve before
//! relaying, settle with the real usage, charge a retried request once, and
//! stay exact under concurrent requests.

use futures_util::future::join_all;
use sea_orm::EntityTrait;
use serde_json::{json, Value};
use sluice_entity::{tokens, users};
use sluice_tests::helpers::{channel, json_body, spawn_app, AppConfig, TestApp};
use sluice_tests::mock::{KeyBehavior, MockConfig, MockProvider};

/// 1 unit per prompt token, 2 per completion token.
const PRICE: (i64, i64) = (1_000_000, 2_000_000);

async fn app(keys: &[&str]) -> (MockProvider, TestApp, String) {
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        keys,
        &["llama", "free"],
        0,
    )]))
    .await;
    let root = app.root_token().await;
    let res = app
        .api(
            reqwest::Method::PUT,
            "/api/prices/llama",
            Some(&root),
            Some(json!({"input": PRICE.0, "output": PRICE.1})),
        )
        .await;
    assert_eq!(res.status(), 200);
    (mock, app, root)
}

async fn token_for(app: &TestApp, session: &str, body: Value) -> (i64, String) {
    let created = json_body(app.api_post("/api/tokens", session, body).await).await;
    (
        created["token"]["id"].as_i64().unwrap(),
        created["key"].as_str().unwrap().to_string(),
    )
}

async fn chat(app: &TestApp, key: &str, model: &str) -> reqwest::Response {
    app.post_as(
        key,
        "/v1/chat/completions",
        json!({"model": model, "messages": [{"role": "user", "content": "price me please"}]}),
    )
    .await
}

async fn user_row(app: &TestApp, id: i64) -> users::Model {
    // The ledger writes every 100 ms in tests; wait for the spending to land.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    users::Entity::find_by_id(id).one(&app.db).await.unwrap().unwrap()
}

#[actix_rt::test]
async fn a_priced_request_charges_the_user_and_the_token_exactly_what_it_used() {
    let (_mock, app, root) = app(&["k1"]).await;
    let (bob_id, bob) = app.user(&root, "bob", "user", 10_000).await;
    let (token_id, key) = token_for(&app, &bob, json!({"name": "t", "quota": 5_000})).await;
    let res = chat(&app, &key, "llama").await;
    assert_eq!(res.status(), 200);
    let usage = json_body(res).await["usage"].clone();
    let expected =
        usage["prompt_tokens"].as_i64().unwrap() + usage["completion_tokens"].as_i64().unwrap() * 2;
    let log = &app.usage_logs(1).await[0];
    assert_eq!(log.quota, expected);
    let bob_row = user_row(&app, bob_id).await;
    assert_eq!(bob_row.quota, 10_000 - expected);
    assert_eq!(bob_row.used_quota, expected);
    assert_eq!(bob_row.request_count, 1);
    let token = tokens::Entity::find_by_id(token_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (token.remaining_quota, token.used_quota),
        (5_000 - expected, expected)
    );
    assert!(token.last_used_at.is_some());
    // A free model costs nothing.
    assert_eq!(chat(&app, &key, "free").await.status(), 200);
    assert_eq!(user_row(&app, bob_id).await.quota, 10_000 - expected);
}

#[actix_rt::test]
async fn exhausted_quota_answers_insufficient_quota_without_calling_the_provider() {
    let (mock, app, root) = app(&["k1"]).await;
    let (bob_id, bob) = app.user(&root, "bob", "user", 0).await;
    let (_, key) = token_for(&app, &bob, json!({"name": "t"})).await;
    let res = chat(&app, &key, "llama").await;
    assert_eq!(res.status(), 429);
    let body = json_body(res).await;
    assert_eq!(body["error"]["code"], "insufficient_quota");
    assert!(mock.requests().is_empty());
    // A top-up applies at once.
    app.api_post(
        &format!("/api/users/{bob_id}/topup"),
        &root,
        json!({"amount": 1000}),
    )
    .await;
    assert_eq!(chat(&app, &key, "llama").await.status(), 200);
    // A token's own quota also stops it: the estimate must fit.
    let (small_id, small) = token_for(&app, &bob, json!({"name": "small", "quota": 1})).await;
    let res = chat(&app, &small, "llama").await;
    assert_eq!(res.status(), 429);
    assert!(json_body(res).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("token"));
    app.api_patch(&format!("/api/tokens/{small_id}"), &bob, json!({"quota": 500}))
        .await;
    assert_eq!(
        chat(&app, &small, "llama").await.status(),
        200,
        "a raised token quota applies at once"
    );
    assert_eq!(
        mock.requests().len(),
        2,
        "refused requests never reached the provider"
    );
}

#[actix_rt::test]
async fn a_group_multiplier_scales_the_cost() {
    let (_mock, app, root) = app(&["k1"]).await;
    let res = app
        .api(
            reqwest::Method::PUT,
            "/api/groups/vip",
            Some(&root),
            Some(json!({"multiplier_permille": 500})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let (bob_id, bob) = app.user(&root, "bob", "user", 10_000).await;
    app.api_patch(&format!("/api/users/{bob_id}"), &root, json!({"group": "vip"}))
        .await;
    let (_, key) = token_for(&app, &bob, json!({"name": "t"})).await;
    let usage = json_body(chat(&app, &key, "llama").await).await["usage"].clone();
    let full = usage["prompt_tokens"].as_i64().unwrap() + usage["completion_tokens"].as_i64().unwrap() * 2;
    assert_eq!(
        app.usage_logs(1).await[0].quota,
        (full + 1) / 2,
        "half, rounded up"
    );
}

#[actix_rt::test]
async fn a_retried_request_is_charged_once() {
    let (mock, app, root) = app(&["broken", "good"]).await;
    mock.set_behavior("broken", KeyBehavior::ServerError);
    let (bob_id, bob) = app.user(&root, "bob", "user", 10_000).await;
    let (_, key) = token_for(&app, &bob, json!({"name": "t"})).await;
    for _ in 0..3 {
        assert_eq!(chat(&app, &key, "llama").await.status(), 200);
    }
    let logs = app.usage_logs(3).await;
    assert!(logs.iter().any(|l| l.attempts == 2), "some request was retried");
    let charged: i64 = logs.iter().map(|l| l.quota).sum();
    assert_eq!(user_row(&app, bob_id).await.used_quota, charged);
    assert_eq!(logs.len(), 3, "one row per request, not per attempt");
}

#[actix_rt::test]
async fn quota_stays_exact_under_concurrent_requests() {
    let (_mock, app, root) = app(&["k1", "k2"]).await;
    let (bob_id, bob) = app.user(&root, "bob", "user", 300).await;
    let (_, key) = token_for(&app, &bob, json!({"name": "t"})).await;
    let statuses: Vec<u16> = join_all((0..40).map(|_| {
        let (app, key) = (&app, key.clone());
        async move { chat(app, &key, "llama").await.status().as_u16() }
    }))
    .await;
    let served = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(served + refused, 40);
    assert!(
        served > 0 && refused > 0,
        "the quota ran out part-way: {served} served"
    );
    // Refused requests are rejected input: no row, no charge.
    let logs = app.usage_logs(served).await;
    assert_eq!(logs.len(), served);
    let charged: i64 = logs.iter().map(|l| l.quota).sum();
    let bob_row = user_row(&app, bob_id).await;
    assert_eq!(
        bob_row.used_quota, charged,
        "every unit charged is logged, none twice"
    );
    assert_eq!(bob_row.quota, 300 - charged);
    assert_eq!(bob_row.request_count, served as i64);
}
