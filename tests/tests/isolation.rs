//! Tenant isolation, route by route: a user cannot read or change another
//! user's data, and cannot reach admin routes. The route list comes from the
//! served OpenAPI document, so a new route without a rule here fails the test.

use reqwest::Method;
use serde_json::{json, Value};
use sluice_tests::helpers::{channel, json_body, spawn_app, AppConfig, TestApp};
use sluice_tests::mock::{MockConfig, MockProvider};

/// What a plain user gets from a route when aiming at someone else's data.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    /// Admin only: 403.
    Admin,
    /// Acts on a resource by id: someone else's is 404, as if it did not exist.
    OwnOnly,
    /// Acts on the caller alone, or is open: checked by the data tests below.
    SelfOrOpen,
}

fn rule(method: &str, path: &str) -> Option<Rule> {
    use Rule::*;
    Some(match (method, path) {
        (_, p) if p.starts_with("/v1/") => SelfOrOpen,
        (_, p) if p.starts_with("/api/auth/") => SelfOrOpen,
        ("GET", "/api/openapi.json") | ("GET", "/api/docs") => SelfOrOpen,
        ("POST", "/api/invites/accept") | ("POST", "/api/invites/inspect") => SelfOrOpen,
        ("GET", "/api/instance") => SelfOrOpen,
        ("GET", "/api/users/me") => SelfOrOpen,
        (_, "/api/users") | (_, "/api/users/{id}") | (_, "/api/users/{id}/topup") => Admin,
        (_, "/api/invites") | (_, "/api/invites/{id}") => Admin,
        ("GET", "/api/prices") | ("GET", "/api/groups") => SelfOrOpen,
        (_, "/api/prices/{model}") | (_, "/api/groups/{group}") => Admin,
        (_, "/api/groups/{group}/weight") | (_, "/api/groups/{group}/quota-policy") => Admin,
        ("GET", "/api/tokens") | ("POST", "/api/tokens") => SelfOrOpen,
        (_, "/api/tokens/{id}") => OwnOnly,
        ("GET", "/api/logs") | ("GET", "/api/logs/stats") | ("GET", "/api/logs/series") => SelfOrOpen,
        ("GET", "/api/logs/export") => SelfOrOpen,
        (_, "/api/channels") | (_, "/api/channels/{id}") | (_, "/api/channels/{id}/keys") => Admin,
        (_, "/api/fallbacks") | (_, "/api/fallbacks/{id}") => Admin,
        (_, "/api/channels/{id}/test") | (_, "/api/keys/{id}") | (_, "/api/keys/{id}/test") => Admin,
        (_, "/api/keys/state") | (_, "/api/keys/state/stream") => Admin,
        ("GET", "/api/audit") | ("GET", "/api/audit/export") => Admin,
        _ => return None,
    })
}

/// A request body that would succeed for an admin or the owner, so a refusal
/// is about who asks, not about the input.
fn valid_body(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("GET", _) | ("DELETE", _) => None,
        ("POST", "/api/users") => Some(json!({"username": "mallory", "password": "mallory-password-1"})),
        ("PATCH", "/api/users/{id}") => Some(json!({"status": "disabled", "quota": 0})),
        ("POST", "/api/users/{id}/topup") => Some(json!({"amount": 1000})),
        ("PUT", "/api/prices/{model}") => Some(json!({"input": 0, "output": 0})),
        ("PUT", "/api/groups/{group}") => Some(json!({"multiplier_permille": 1})),
        ("PUT", "/api/groups/{group}/weight") => Some(json!({"weight": 2})),
        ("PUT", "/api/groups/{group}/quota-policy") => Some(json!({"policy": "refuse"})),
        ("POST", "/api/invites") => Some(json!({"email": "mallory@example.com", "role": "user"})),
        ("PATCH", "/api/tokens/{id}") => Some(json!({"status": "disabled"})),
        ("POST", "/api/channels") => {
            Some(json!({"name": "evil", "base_url": "http://127.0.0.1:9/v1", "models": ["llama"]}))
        }
        ("PATCH", "/api/channels/{id}") => Some(json!({"status": "disabled"})),
        ("POST", "/api/channels/{id}/keys") => Some(json!({"keys": "stolen-key"})),
        ("POST", "/api/channels/{id}/test") | ("POST", "/api/keys/{id}/test") => Some(json!({})),
        ("PATCH", "/api/keys/{id}") => Some(json!({"status": "disabled"})),
        ("POST", "/api/fallbacks") => Some(json!({"name": "evil", "models": ["llama"]})),
        ("PATCH", "/api/fallbacks/{id}") => Some(json!({"wait_secs": 1})),
        _ => panic!("add a valid body for {method} {path}"),
    }
}

struct World {
    app: TestApp,
    _mock: MockProvider,
    alice: String,
    bob: String,
    bob_id: i64,
    bob_token_id: i64,
    bob_key: String,
    alice_key: String,
}

async fn world() -> World {
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1"],
        &["llama"],
        0,
    )]))
    .await;
    let root = app.root_token().await;
    let (_, alice) = app.user(&root, "alice", "user", 1000).await;
    let (bob_id, bob) = app.user(&root, "bob", "user", 1000).await;
    let created = |session: String| {
        let app = &app;
        async move { json_body(app.api_post("/api/tokens", &session, json!({"name": "t"})).await).await }
    };
    let bob_token = created(bob.clone()).await;
    let alice_token = created(alice.clone()).await;
    World {
        bob_token_id: bob_token["token"]["id"].as_i64().unwrap(),
        bob_key: bob_token["key"].as_str().unwrap().into(),
        alice_key: alice_token["key"].as_str().unwrap().into(),
        app,
        _mock: mock,
        alice,
        bob,
        bob_id,
    }
}

#[actix_rt::test]
async fn a_user_cannot_reach_admin_routes_or_another_users_resources() {
    let w = world().await;
    let spec: Value = json_body(
        w.app
            .client
            .get(format!("{}/api/openapi.json", w.app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut unclassified = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let Some(rule) = rule(&method, path) else {
                unclassified.push(format!("{method} {path}"));
                continue;
            };
            if rule == Rule::SelfOrOpen {
                continue;
            }
            // Aim at bob's things, as alice.
            let concrete = path
                .replace(
                    "{id}",
                    &if path.starts_with("/api/tokens") {
                        w.bob_token_id
                    } else {
                        w.bob_id
                    }
                    .to_string(),
                )
                .replace("{model}", "llama")
                .replace("{group}", "default");
            let body = valid_body(&method, path);
            let res = w
                .app
                .api(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    &concrete,
                    Some(&w.alice),
                    body,
                )
                .await;
            let expected = if rule == Rule::Admin { 403 } else { 404 };
            assert_eq!(res.status(), expected, "alice → {method} {concrete}");
        }
    }
    assert!(
        unclassified.is_empty(),
        "routes with no isolation rule: {unclassified:?}"
    );
    // Bob's token still works and is unchanged.
    let res = w
        .app
        .api_get(&format!("/api/tokens/{}", w.bob_token_id), &w.bob)
        .await;
    assert_eq!(json_body(res).await["status"], "enabled");
}

#[actix_rt::test]
async fn lists_show_only_the_callers_own_tokens_and_logs() {
    let w = world().await;
    for key in [&w.bob_key, &w.alice_key] {
        let res = w
            .app
            .post_as(
                key,
                "/v1/chat/completions",
                json!({"model": "llama", "messages": [{"role": "user", "content": "x"}]}),
            )
            .await;
        assert_eq!(res.status(), 200);
    }
    w.app.usage_logs(2).await;
    let tokens = json_body(w.app.api_get("/api/tokens", &w.alice).await).await;
    assert_eq!(tokens["items"].as_array().unwrap().len(), 1);
    assert_ne!(tokens["items"][0]["id"], w.bob_token_id);

    let logs = json_body(w.app.api_get("/api/logs", &w.alice).await).await;
    let items = logs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "alice sees her one request: {logs}");
    assert_ne!(items[0]["token_id"], w.bob_token_id);
    for path in [
        "/api/logs",
        "/api/logs/stats",
        "/api/logs/series",
        "/api/logs/export",
    ] {
        let res = w
            .app
            .api_get(&format!("{path}?user_id={}", w.bob_id), &w.alice)
            .await;
        assert_eq!(res.status(), 403, "{path} for bob's id");
    }
    // Totals per user or per channel tell about others: admins only.
    for path in [
        "/api/logs/stats?group_by=user",
        "/api/logs/stats?group_by=channel",
        "/api/logs/series?by=user",
        "/api/logs/series?by=channel",
    ] {
        assert_eq!(w.app.api_get(path, &w.alice).await.status(), 403, "{path}");
    }
    let series = json_body(w.app.api_get("/api/logs/series?by=token", &w.alice).await).await;
    let rows = series["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "alice's one token in one bucket: {series}");
    assert_eq!(rows[0]["requests"], 1);
    let export = w
        .app
        .api_get("/api/logs/export", &w.alice)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(export.lines().count(), 2, "header and alice's one row: {export}");
    let me = json_body(w.app.api_get("/api/users/me", &w.alice).await).await;
    assert_eq!(me["username"], "alice");
}
