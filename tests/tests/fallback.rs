//! Fallback chains: a virtual model naming an ordered list of models. A request
//! moves on when no key of the current model has room within the chain's wait,
//! or when the model fails on every key; the usage row names the model that
//! served. Chains come from the config file or `/api/fallbacks`, are listed in
//! `/v1/models`, and tokens' allow-lists apply to their names.

use std::time::Duration;

use serde_json::{json, Value};
use sluice_api::config::{FallbackDecl, TokenDecl};
use sluice_tests::helpers::{channel, json_body, spawn_app, AppConfig, TestApp, TOKEN};
use sluice_tests::mock::{KeyBehavior, MockConfig, MockProvider};

/// Short windows, so a saturated model frees within seconds.
const WINDOW: Duration = Duration::from_secs(3);

/// `deepseek` on keys `d1`, `d2` (one request a window each), `qwen` on `q1`,
/// and the chain `smart` = deepseek, else qwen, waiting 1 s for deepseek.
async fn start(edit: impl FnOnce(&mut AppConfig)) -> (MockProvider, TestApp) {
    let mock = MockProvider::start(MockConfig {
        window: WINDOW,
        ..MockConfig::default()
    })
    .await;
    let mut config = AppConfig::new(vec![
        channel("deepseek-ch", &mock.base_url, &["d1", "d2"], &["deepseek"], 1),
        channel("qwen-ch", &mock.base_url, &["q1"], &["qwen"], 0),
    ]);
    config.relay.window_secs = WINDOW.as_secs();
    config.relay.window_margin_ms = 200;
    config.fallbacks = vec![FallbackDecl {
        name: "smart".into(),
        models: vec!["deepseek".into(), "qwen".into()],
        wait_secs: 1,
    }];
    edit(&mut config);
    (mock, spawn_app(config).await)
}

async fn models(app: &TestApp, token: &str) -> Vec<String> {
    let res = app
        .client
        .get(format!("{}/v1/models", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let list = json_body(res).await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[actix_rt::test]
async fn a_chain_serves_from_its_second_model_while_the_first_is_saturated() {
    let (mock, app) = start(|_| {}).await;
    for _ in 0..2 {
        assert_eq!(app.chat("smart", "first").await.status(), 200);
    }
    // Both deepseek keys are at their one request a window: after a second's
    // wait the chain moves on to qwen.
    let res = app.chat("smart", "third").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        json_body(res).await["choices"][0]["message"]["content"],
        "echo: third"
    );
    let rows = app.usage_logs(3).await;
    let served: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.model.as_str(), r.fallback.as_deref()))
        .collect();
    assert_eq!(
        served,
        [
            ("deepseek", Some("smart")),
            ("deepseek", Some("smart")),
            ("qwen", Some("smart"))
        ]
    );
    assert!(
        rows[2].latency_ms >= 900,
        "it waited the chain's second: {} ms",
        rows[2].latency_ms
    );
    assert!(
        rows[2].latency_ms < 2900,
        "and not for deepseek's window: {} ms",
        rows[2].latency_ms
    );
    assert_eq!(mock.served_for_key("q1"), 1);
    assert_eq!(mock.rate_limited(), 0);
    // A stream moves on the same way, and names the model that serves.
    let res = app.chat_stream("smart", "streamed").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("[DONE]"));
    assert_eq!(app.usage_logs(4).await[3].model, "qwen");
    assert!(models(&app, TOKEN).await.contains(&"smart".to_string()));
}

#[actix_rt::test]
async fn a_chain_moves_on_when_every_key_of_its_first_model_fails() {
    let (mock, app) = start(|_| {}).await;
    mock.set_behavior("d1", KeyBehavior::ServerError);
    mock.set_behavior("d2", KeyBehavior::ServerError);
    let res = app.chat("smart", "hello").await;
    assert_eq!(res.status(), 200);
    let rows = app.usage_logs(1).await;
    assert_eq!(rows[0].model, "qwen");
    assert_eq!(rows[0].fallback.as_deref(), Some("smart"));
    assert_eq!(rows[0].attempts, 3, "two failed deepseek keys, then qwen");
    assert_eq!(rows[0].status, 200);
    // Asked for directly, deepseek still fails as it did.
    let res = app.chat("deepseek", "direct").await;
    assert_eq!(res.status(), 502);
    // When the last model fails too, the client gets its error.
    mock.set_behavior("q1", KeyBehavior::ServerError);
    let res = app.chat("smart", "nothing works").await;
    assert_eq!(res.status(), 502);
    let error = json_body(res).await;
    assert!(
        error["error"]["message"].as_str().unwrap().contains("'qwen'"),
        "{error}"
    );
    let last = app.usage_logs(3).await.pop().unwrap();
    assert_eq!((last.model.as_str(), last.status), ("qwen", 502));
}

#[actix_rt::test]
async fn chains_are_managed_through_the_api_and_tokens_allow_them_by_name() {
    let (_mock, app) = start(|c| {
        c.tokens.push(TokenDecl {
            name: "chain-only".into(),
            key: "sk-chain-only-0123456789".into(),
            models: Some(vec!["fast".into()]),
            ..Default::default()
        })
    })
    .await;
    let root = app.root_token().await;
    let list = json_body(app.api_get("/api/fallbacks", &root).await).await;
    assert_eq!(list[0]["name"], "smart");
    assert_eq!(list[0]["managed_by"], "config");
    let id = list[0]["id"].as_i64().unwrap();
    let res = app
        .api_patch(&format!("/api/fallbacks/{id}"), &root, json!({"wait_secs": 2}))
        .await;
    assert_eq!(res.status(), 409, "the config file owns it");

    let bad = app
        .api_post("/api/fallbacks", &root, json!({"name": "fast", "models": []}))
        .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(json_body(bad).await["error"]["param"], "models");
    let res = app
        .api_post(
            "/api/fallbacks",
            &root,
            json!({"name": "fast", "models": ["qwen", "deepseek"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let fast = json_body(res).await;
    assert_eq!(fast["wait_secs"], 5);
    let taken = app
        .api_post(
            "/api/fallbacks",
            &root,
            json!({"name": "fast", "models": ["qwen"]}),
        )
        .await;
    assert_eq!(taken.status(), 409);
    assert_eq!(json_body(taken).await["error"]["param"], "name");

    // The token allowed only `fast` uses it, and nothing else.
    let chain_only = "sk-chain-only-0123456789";
    assert_eq!(models(&app, chain_only).await, ["fast"]);
    let res = app
        .post_as(
            chain_only,
            "/v1/chat/completions",
            json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .post_as(
            chain_only,
            "/v1/chat/completions",
            json!({"model": "qwen", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(res.status(), 403);
    let instance = json_body(app.api_get("/api/instance", &root).await).await;
    assert_eq!(instance["models"], json!(["deepseek", "fast", "qwen", "smart"]));

    let id = fast["id"].as_i64().unwrap();
    let res = app
        .api_patch(
            &format!("/api/fallbacks/{id}"),
            &root,
            json!({"models": ["deepseek"], "wait_secs": 0}),
        )
        .await;
    assert_eq!(json_body(res).await["models"], json!(["deepseek"]));
    let res = app.chat("fast", "once more").await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.usage_logs(2).await[1].model, "deepseek");
    assert_eq!(
        app.api_delete(&format!("/api/fallbacks/{id}"), &root)
            .await
            .status(),
        204
    );
    let res = app.chat("fast", "gone").await;
    assert_eq!(res.status(), 404);
    let logs = json_body(app.api_get("/api/logs", &root).await).await;
    let newest: &Value = &logs["items"][0];
    assert_eq!(newest["fallback"], "fast");
    assert_eq!(newest["protocol"], "openai");
}
