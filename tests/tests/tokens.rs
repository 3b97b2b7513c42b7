//! Tokens through `/api/tokens`: shown once, stored hashed, and every change
//! (models, networks, status, expiry, deletion, the owner's status) reaches
//! `/v1` at once.

use serde_json::{json, Value};
use sluice_tests::helpers::{channel, json_body, spawn_app, AppConfig, TestApp, TOKEN};
use sluice_tests::mock::{MockConfig, MockProvider};

async fn app() -> (MockProvider, TestApp, String) {
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1"],
        &["llama", "qwen"],
        0,
    )]))
    .await;
    let root = app.root_token().await;
    (mock, app, root)
}

async fn chat_with(app: &TestApp, key: &str, model: &str) -> u16 {
    app.post_as(
        key,
        "/v1/chat/completions",
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .status()
    .as_u16()
}

async fn create(app: &TestApp, session: &str, body: Value) -> (i64, String) {
    let res = app.api_post("/api/tokens", session, body).await;
    assert_eq!(res.status(), 201);
    let created = json_body(res).await;
    (
        created["token"]["id"].as_i64().unwrap(),
        created["key"].as_str().unwrap().to_string(),
    )
}

#[actix_rt::test]
async fn a_new_token_is_shown_once_and_works_on_v1_at_once() {
    let (_mock, app, root) = app().await;
    let (_, bob) = app.user(&root, "bob", "user", 0).await;
    let (id, key) = create(&app, &bob, json!({"name": "laptop"})).await;
    assert!(key.starts_with("sk-") && key.len() > 40);
    assert_eq!(chat_with(&app, &key, "llama").await, 200);

    let listed = json_body(app.api_get("/api/tokens", &bob).await).await;
    let text = listed.to_string();
    assert!(!text.contains(&key[8..]), "the key is never shown again");
    assert_eq!(listed["items"][0]["id"], id);
    assert_eq!(listed["items"][0]["key_prefix"], format!("{}…", &key[..7]));
    assert_eq!(listed["items"][0]["quota"]["unlimited"], true);
    let log = &app.usage_logs(1).await[0];
    assert_eq!(log.token_id, Some(id));
}

#[actix_rt::test]
async fn model_lists_status_and_deletion_apply_to_v1_at_once() {
    let (_mock, app, root) = app().await;
    let (id, key) = create(&app, &root, json!({"name": "narrow", "models": ["llama"]})).await;
    assert_eq!(chat_with(&app, &key, "llama").await, 200);
    assert_eq!(chat_with(&app, &key, "qwen").await, 403);
    let res = app
        .api_patch(&format!("/api/tokens/{id}"), &root, json!({"models": null}))
        .await;
    assert_eq!(json_body(res).await["models"], Value::Null);
    assert_eq!(chat_with(&app, &key, "qwen").await, 200, "null means every model");

    app.api_patch(&format!("/api/tokens/{id}"), &root, json!({"status": "disabled"}))
        .await;
    assert_eq!(chat_with(&app, &key, "llama").await, 401);
    app.api_patch(&format!("/api/tokens/{id}"), &root, json!({"status": "enabled"}))
        .await;
    assert_eq!(chat_with(&app, &key, "llama").await, 200);

    assert_eq!(
        app.api_delete(&format!("/api/tokens/{id}"), &root).await.status(),
        204
    );
    assert_eq!(chat_with(&app, &key, "llama").await, 401);
    assert_eq!(
        app.api_get(&format!("/api/tokens/{id}"), &root).await.status(),
        404
    );
}

#[actix_rt::test]
async fn ip_allow_lists_accept_ipv4_and_ipv6_networks() {
    let (_mock, app, root) = app().await;
    let (_, elsewhere) = create(
        &app,
        &root,
        json!({"name": "lan", "ip_allow": ["192.168.1.0/24", "2001:db8::/32"]}),
    )
    .await;
    assert_eq!(
        chat_with(&app, &elsewhere, "llama").await,
        403,
        "the test client is 127.0.0.1"
    );
    let (_, here) = create(
        &app,
        &root,
        json!({"name": "local", "ip_allow": ["127.0.0.1", "::1/128"]}),
    )
    .await;
    assert_eq!(chat_with(&app, &here, "llama").await, 200);

    let before = json_body(app.api_get("/api/tokens", &root).await).await["items"]
        .as_array()
        .unwrap()
        .len();
    let res = app
        .api_post(
            "/api/tokens",
            &root,
            json!({"name": "bad", "ip_allow": ["300.1.1.1/8"]}),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(json_body(res).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("300.1.1.1/8"));
    let after = json_body(app.api_get("/api/tokens", &root).await).await["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "bad input changes nothing");
}

#[actix_rt::test]
async fn an_expired_token_stops_working() {
    let (_mock, app, root) = app().await;
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let (_, key) = create(&app, &root, json!({"name": "brief", "expires_at": soon})).await;
    assert_eq!(chat_with(&app, &key, "llama").await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert_eq!(chat_with(&app, &key, "llama").await, 401);
    let res = app
        .api_post(
            "/api/tokens",
            &root,
            json!({"name": "past", "expires_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(res.status(), 422);
}

#[actix_rt::test]
async fn disabling_a_user_stops_their_tokens_at_once() {
    let (_mock, app, root) = app().await;
    let (bob_id, bob) = app.user(&root, "bob", "user", 0).await;
    let (_, key) = create(&app, &bob, json!({"name": "t"})).await;
    assert_eq!(chat_with(&app, &key, "llama").await, 200);
    app.api_patch(
        &format!("/api/users/{bob_id}"),
        &root,
        json!({"status": "disabled"}),
    )
    .await;
    assert_eq!(chat_with(&app, &key, "llama").await, 401);
    app.api_patch(
        &format!("/api/users/{bob_id}"),
        &root,
        json!({"status": "enabled"}),
    )
    .await;
    assert_eq!(chat_with(&app, &key, "llama").await, 200);
}

#[actix_rt::test]
async fn tokens_declared_in_the_config_file_are_read_only_here() {
    let (_mock, app, root) = app().await;
    let listed = json_body(app.api_get("/api/tokens", &root).await).await;
    let config_token = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["managed_by"] == "config")
        .unwrap()
        .clone();
    let id = config_token["id"].as_i64().unwrap();
    let res = app
        .api_patch(&format!("/api/tokens/{id}"), &root, json!({"status": "disabled"}))
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        app.api_delete(&format!("/api/tokens/{id}"), &root).await.status(),
        409
    );
    assert_eq!(chat_with(&app, TOKEN, "llama").await, 200);
}
