//! Faults against the strict mock provider: keys that answer 500, reset the
//! connection, hang, answer 401, or allow half their configured limit, and a
//! client that hangs up mid-stream. Every request a healthy key could serve is
//! served, nothing is charged twice, and each bad key ends up in the state an
//! operator should see. The prober brings back what health checks disabled,
//! and never what an operator disabled.

use std::time::Duration;

use futures_util::future::join_all;
use sea_orm::EntityTrait;
use serde_json::{json, Value};
use sluice_entity::{channel_keys, users};
use sluice_tests::helpers::{channel, json_body, spawn_app, AppConfig, TestApp};
use sluice_tests::mock::{KeyBehavior, MockConfig, MockProvider};

const WINDOW: Duration = Duration::from_secs(3);

async fn faulty_world() -> (MockProvider, TestApp, String) {
    let mock = MockProvider::start(MockConfig {
        window: WINDOW,
        stream_chunks: 10,
        chunk_delay: Duration::from_millis(100),
        ..MockConfig::default()
    })
    .await;
    for (key, behavior) in [
        ("err500", KeyBehavior::ServerError),
        ("reset", KeyBehavior::ResetConnection),
        ("hang", KeyBehavior::Hang),
        ("unauth", KeyBehavior::Unauthorized),
        ("half", KeyBehavior::Limit(2)),
    ] {
        mock.set_behavior(key, behavior);
    }
    let keys = ["good1", "good2", "err500", "reset", "hang", "unauth", "half"];
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, &keys, &["llama"], 4)]);
    config.relay.window_secs = WINDOW.as_secs();
    config.relay.window_margin_ms = 200;
    config.relay.stream_first_byte_secs = 1;
    config.relay.response_timeout_secs = 1;
    config.relay.max_attempts = 7;
    config.relay.max_wait_secs = 60;
    let app = spawn_app(config).await;
    let root = app.root_token().await;
    (mock, app, root)
}

fn state_of<'a>(states: &'a Value, mask: &str) -> &'a Value {
    states
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["mask"] == mask)
        .unwrap()
}

#[actix_rt::test]
async fn every_servable_request_is_served_once_and_bad_keys_show_why() {
    let (mock, app, root) = faulty_world().await;
    let price = json!({"input": 1_000_000, "output": 1_000_000});
    app.api(
        reqwest::Method::PUT,
        "/api/prices/llama",
        Some(&root),
        Some(price),
    )
    .await;
    let (bob_id, bob) = app.user(&root, "bob", "user", 1_000_000).await;
    let key = json_body(app.api_post("/api/tokens", &bob, json!({"name": "t"})).await).await["key"]
        .as_str()
        .unwrap()
        .to_string();

    // 30 requests, streamed and not, offered at once: the healthy capacity is
    // good1 + good2 + half = 4 + 4 + 2 per 3 s window.
    let statuses: Vec<u16> = join_all((0..30).map(|i| {
        let (app, key) = (&app, key.clone());
        async move {
            let body = json!({"model": "llama", "stream": i % 2 == 0, "messages": [{"role": "user", "content": format!("r{i}")}]});
            let res = app.post_as(&key, "/v1/chat/completions", body).await;
            let status = res.status().as_u16();
            let _ = res.bytes().await;
            status
        }
    }))
    .await;
    assert_eq!(
        statuses,
        vec![200u16; 30],
        "every request a healthy key could serve was served"
    );

    // A client that hangs up mid-stream is logged as 499 and charged what was used.
    let mut res = app
        .post_as(
            &key,
            "/v1/chat/completions",
            json!({"model": "llama", "stream": true, "messages": [{"role": "user", "content": "long"}]}),
        )
        .await;
    assert!(res.chunk().await.unwrap().is_some());
    drop(res);

    let logs = app.usage_logs(31).await;
    assert_eq!(
        logs.len(),
        31,
        "one row per request, however many keys were tried"
    );
    assert_eq!(logs.iter().filter(|l| l.status == 499).count(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let bob_row = users::Entity::find_by_id(bob_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let charged: i64 = logs.iter().map(|l| l.quota).sum();
    assert_eq!(bob_row.used_quota, charged, "nothing charged twice");
    assert_eq!(bob_row.request_count, 31);

    for k in ["good1", "good2", "half"] {
        assert!(mock.max_in_window(k) <= 4, "{k} stayed within its real limit");
    }
    // The first refusal teaches the key its real limit; recovery then probes
    // upwards after one quiet window and, refused again, after two. A key that
    // never learned would be refused about twice per window: 6 or more here.
    assert!(
        mock.rate_limited() <= 3,
        "the half-limit key learned: {} 429s",
        mock.rate_limited()
    );

    let states = json_body(app.api_get("/api/keys/state", &root).await).await;
    let unauth = state_of(&states, "…th");
    assert_eq!(unauth["health_disabled"], true);
    assert!(unauth["disabled"].as_str().unwrap().contains("401"), "{unauth}");
    assert!(state_of(&states, "…00")["last_error"]
        .as_str()
        .unwrap()
        .contains("500"));
    assert!(state_of(&states, "…ng")["last_error"]
        .as_str()
        .unwrap()
        .contains("no reply within 1 s"));
    assert!(state_of(&states, "…et")["last_error"].is_string());
    let half = state_of(&states, "…lf");
    assert_eq!(half["configured"]["rpm"], 4);
    assert_eq!(
        half["effective_rpm"], 2,
        "the learned limit is the provider's real one: {half}"
    );
    for s in states.as_array().unwrap() {
        assert_eq!(s["in_flight"], 0, "nothing holds a slot: {s}");
    }
    let stored = channel_keys::Entity::find().all(&app.db).await.unwrap();
    let unauth_row = stored.iter().find(|k| k.mask == "…th").unwrap();
    assert_eq!(unauth_row.status, "auto_disabled");
}

#[actix_rt::test]
async fn the_prober_restores_health_disabled_keys_but_never_an_operators_choice() {
    let mock = MockProvider::start(MockConfig::default()).await;
    mock.set_behavior("flaky", KeyBehavior::Unauthorized);
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["flaky", "manual"],
        &["llama"],
        0,
    )]))
    .await;
    let root = app.root_token().await;
    let ids: Vec<(String, i64)> = json_body(app.api_get("/api/keys/state", &root).await)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["mask"].as_str().unwrap().to_string(),
                s["key_id"].as_i64().unwrap(),
            )
        })
        .collect();
    let id = |mask: &str| ids.iter().find(|(m, _)| m == mask).unwrap().1;

    // Two 401s disable "flaky"; an operator disables "manual".
    for _ in 0..2 {
        app.api_post(&format!("/api/keys/{}/test", id("…ky")), &root, json!({}))
            .await;
    }
    app.api_patch(
        &format!("/api/keys/{}", id("…al")),
        &root,
        json!({"status": "disabled"}),
    )
    .await;
    assert_eq!(app.chat("llama", "nobody").await.status(), 503);

    // Still failing: the probe leaves it off.
    assert_eq!(app.probe_now().await, 0);
    mock.set_behavior("flaky", KeyBehavior::Normal);
    assert_eq!(app.probe_now().await, 1, "the fixed key comes back");
    let row = channel_keys::Entity::find_by_id(id("…ky"))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status.as_str(), row.disabled_reason), ("enabled", None));
    assert_eq!(app.chat("llama", "back").await.status(), 200);
    assert_eq!(mock.requests().last().unwrap().key, "flaky");
    let manual = channel_keys::Entity::find_by_id(id("…al"))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        manual.status, "disabled",
        "the prober never undoes an operator's disable"
    );
    assert!(mock.requests().iter().all(|r| r.key != "manual"));
}

#[actix_rt::test]
async fn a_key_failing_again_and_again_is_disabled_until_it_recovers() {
    let mock = MockProvider::start(MockConfig::default()).await;
    mock.set_behavior("sick", KeyBehavior::ServerError);
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["sick"],
        &["llama"],
        0,
    )]))
    .await;
    let root = app.root_token().await;
    let key_id = app.key_states().await[0].spec.key_id;
    // Each test request reaches the key even while it backs off (a probe waits for room).
    for _ in 0..6 {
        let r = json_body(
            app.api_post(&format!("/api/keys/{key_id}/test"), &root, json!({}))
                .await,
        )
        .await;
        assert_eq!(r["ok"], false);
    }
    let state = &json_body(app.api_get("/api/keys/state", &root).await).await[0];
    assert_eq!(state["health_disabled"], true, "{state}");
    assert!(state["disabled"].as_str().unwrap().contains("failures in a row"));
    mock.set_behavior("sick", KeyBehavior::Normal);
    assert_eq!(app.probe_now().await, 1);
    assert_eq!(app.chat("llama", "well again").await.status(), 200);
}
