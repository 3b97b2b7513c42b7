//! Two Sluice processes on one database with Redis (`[cluster] redis_url`):
//! what is changed through one is honoured by the other at once, without a
//! restart, and a quota spent through both is one quota.

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use sluice_actors::ledger::Waiting;
use sluice_api::config::ClusterSettings;
use sluice_tests::helpers::{
    channel, json_body, replicas_of, spawn_app, test_cluster, until, AppConfig, TestApp,
};
use sluice_tests::mock::{KeyBehavior, MockConfig, MockProvider};
use sluice_tests::redis_cluster::RedisCluster;

async fn two_replicas(mock: &MockProvider) -> (TestApp, TestApp) {
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, &["k1"], &["llama"], 0)]);
    config.cluster = test_cluster();
    replicas_of(config).await
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

/// Prices as in `quota.rs`: 1 unit a prompt token, 2 a completion token.
async fn price(app: &TestApp, root: &str, model: &str) {
    let res = app
        .api(
            Method::PUT,
            &format!("/api/prices/{model}"),
            Some(root),
            Some(json!({"input": 1_000_000, "output": 2_000_000})),
        )
        .await;
    assert_eq!(res.status(), 200);
}

/// An account with `quota` and a token of its own, made through `a`, known to
/// `b` (which answers 404 for an unserved model only once it knows the token).
async fn account(a: &TestApp, b: &TestApp, root: &str, name: &str, quota: i64) -> (i64, String) {
    let (id, session) = a.user(root, name, "user", quota).await;
    let made = json_body(a.api_post("/api/tokens", &session, json!({"name": name})).await).await;
    let key = made["key"].as_str().unwrap().to_string();
    until(|| async { chat_status(b, &key, "not-served").await == 404 }).await;
    (id, key)
}

/// What is left of the account `name` (the database's figure).
async fn quota_left(app: &TestApp, root: &str, name: &str) -> i64 {
    let users = json_body(app.api_get("/api/users", root).await).await;
    users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == name)
        .unwrap()["quota"]
        .as_i64()
        .unwrap()
}

/// A chat of `model` with `extra` fields; its status and body.
async fn chat(app: &TestApp, key: &str, model: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": PROMPT}]});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let res = app.post_as(key, "/v1/chat/completions", body).await;
    let status = res.status().as_u16();
    (status, json_body(res).await)
}

/// 60 characters: 15 tokens to the provider; with its echo ~39 units a request.
const PROMPT: &str = "Please tell me about rivers, lanterns, orchards and evenings";

#[actix_rt::test]
async fn a_quota_spent_through_two_replicas_at_once_is_never_overrun() {
    const QUOTA: i64 = 1000;
    let mock = MockProvider::start(MockConfig::default()).await;
    let (a, b) = two_replicas(&mock).await;
    let root = a.root_token().await;
    price(&a, &root, "llama").await;
    price(&b, &root, "llama").await;
    let (_, key) = account(&a, &b, &root, "ada", QUOTA).await;

    // Forty requests at once, every other one through each replica: ~1,560
    // units asked of 1,000, so each replica alone could pay for all it got.
    let answers = join_all((0..40).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        chat(app, &key, "llama", json!({}))
    }))
    .await;
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 429, "{body}");
        assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    }
    let served = answers.iter().filter(|(s, _)| *s == 200).count();
    let spent: i64 = a.usage_logs(served).await.iter().map(|r| r.quota).sum();
    assert!(spent <= QUOTA, "charged {spent} of {QUOTA} through two replicas");
    assert!(quota_left(&a, &root, "ada").await >= 0);
    assert!(served < 40, "some were refused");
    assert!(
        spent >= QUOTA - 60,
        "{served} served, only {spent} of {QUOTA} charged: the quota was left idle"
    );
}

#[actix_rt::test]
async fn a_top_up_through_one_replica_lets_a_request_on_the_other_go() {
    top_up_through_one_replica_serves_the_other(test_cluster()).await;
}

#[actix_rt::test]
async fn on_a_redis_cluster_a_top_up_through_one_replica_lets_a_request_on_the_other_go() {
    let redis = RedisCluster::start().await;
    top_up_through_one_replica_serves_the_other(ClusterSettings {
        redis_url: Some(redis.url.clone()),
        ..test_cluster()
    })
    .await;
}

async fn top_up_through_one_replica_serves_the_other(cluster: ClusterSettings) {
    let mock = MockProvider::start(MockConfig::default()).await;
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, &["k1"], &["llama"], 0)]);
    config.cluster = cluster;
    let (a, b) = replicas_of(config).await;
    let root = a.root_token().await;
    price(&a, &root, "llama").await;
    price(&b, &root, "llama").await;
    let (id, key) = account(&a, &b, &root, "bowen", 10).await;

    let (status, body) = chat(&b, &key, "llama", json!({})).await;
    assert_eq!(status, 429, "10 units pay for no request: {body}");
    assert_eq!(body["error"]["code"], "insufficient_quota");

    let res = a
        .api_post(&format!("/api/users/{id}/topup"), &root, json!({"amount": 1000}))
        .await;
    assert_eq!(res.status(), 200);
    // No waiting for a change to travel: the balance both spend is one.
    let (status, body) = chat(&b, &key, "llama", json!({})).await;
    assert_eq!(status, 200, "{body}");

    // A token's own quota set through one replica binds the other at once too.
    let session = b.login("bowen", sluice_tests::helpers::USER_PASSWORD).await;
    let session = session["access_token"].as_str().unwrap();
    let tokens = json_body(a.api_get("/api/tokens", session).await).await;
    let token_id = tokens["items"][0]["id"].as_i64().unwrap();
    let res = a
        .api_patch(&format!("/api/tokens/{token_id}"), session, json!({"quota": 5}))
        .await;
    assert_eq!(res.status(), 200);
    let (status, body) = chat(&b, &key, "llama", json!({})).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("token"),
        "the token's quota is named: {body}"
    );
}

#[actix_rt::test]
async fn a_hold_given_back_on_one_replica_wakes_a_request_waiting_on_the_other() {
    let mock = MockProvider::start(MockConfig::default()).await;
    mock.set_behavior("k-slow", KeyBehavior::Hang);
    let mut config = AppConfig::new(vec![
        channel("nim", &mock.base_url, &["k1"], &["llama"], 0),
        channel("slow", &mock.base_url, &["k-slow"], &["slow"], 0),
    ]);
    config.cluster = test_cluster();
    // Shorter than the safety-net retry of waiting reservations: only the
    // announcement from the other replica can let the waiting request go in time.
    config.relay.max_wait_secs = 10;
    let (a, b) = replicas_of(config).await;
    let root = a.root_token().await;
    for app in [&a, &b] {
        price(app, &root, "llama").await;
        price(app, &root, "slow").await;
    }
    let (_, key) = account(&a, &b, &root, "cyril", 1000).await;

    // Through A, a request to a provider that never answers holds ~830 units…
    let holder = {
        let (a_address, key) = (a.address.clone(), key.clone());
        let client = a.client.clone();
        actix_rt::spawn(async move {
            client
                .post(format!("{a_address}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&json!({"model": "slow", "max_tokens": 400,
                              "messages": [{"role": "user", "content": PROMPT}]}))
                .send()
                .await
        })
    };
    until(|| async { mock.requests().iter().any(|r| r.key == "k-slow") }).await;
    // …so one through B that needs ~430 waits for it, rather than being cut short.
    let waiter = {
        let (b_address, key) = (b.address.clone(), key.clone());
        let client = b.client.clone();
        actix_rt::spawn(async move {
            let res = client
                .post(format!("{b_address}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&json!({"model": "llama", "max_tokens": 200,
                              "messages": [{"role": "user", "content": PROMPT}]}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, json_body(res).await)
        })
    };
    until(|| async { b.ledger.send(Waiting).await.unwrap() == 1 }).await;

    // The client on A hangs up: A gives the hold back, and B hears of it.
    holder.abort();
    let (status, body) = waiter.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["finish_reason"], "stop",
        "not cut short: {body}"
    );
}
