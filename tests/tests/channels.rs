//! Channels and keys through `/api`: changes serve at once without a restart,
//! keys are stored sealed and shown masked, the test button goes through the
//! key's budget, and the live state (and its event stream) shows what each
//! key is doing.

use std::time::Duration;

use sea_orm::EntityTrait;
use serde_json::{json, Value};
use sluice_entity::channel_keys;
use sluice_tests::helpers::{channel, json_body, spawn_app, AppConfig, TestApp};
use sluice_tests::mock::{KeyBehavior, MockConfig, MockProvider};

async fn app() -> (MockProvider, TestApp, String) {
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "file",
        &mock.base_url,
        &["f1"],
        &["llama"],
        0,
    )]))
    .await;
    let root = app.root_token().await;
    (mock, app, root)
}

async fn create_channel(app: &TestApp, root: &str, body: Value) -> Value {
    let res = app.api_post("/api/channels", root, body).await;
    assert_eq!(res.status(), 201);
    json_body(res).await
}

#[actix_rt::test]
async fn a_channel_made_through_the_api_serves_at_once_and_shows_keys_masked() {
    let (mock, app, root) = app().await;
    let created = create_channel(
        &app,
        &root,
        json!({"name": "nvidia", "base_url": mock.base_url, "models": ["minimax-m2.1"],
               "model_map": {"minimax-m2.1": "minimaxai/minimax-m2.1"}, "rpm": 40,
               "keys": "nvapi-first-secret-0001\n\n  nvapi-second-secret-0002  \nnvapi-first-secret-0001\n"}),
    )
    .await;
    assert_eq!(created["keys"]["added"].as_array().unwrap().len(), 2);
    assert_eq!(created["keys"]["duplicates"], 1);
    assert_eq!(created["channel"]["key_count"], 2);
    let id = created["channel"]["id"].as_i64().unwrap();

    assert_eq!(
        app.chat("minimax-m2.1", "hi").await.status(),
        200,
        "no restart needed"
    );
    assert_eq!(mock.requests()[0].body["model"], "minimaxai/minimax-m2.1");

    let keys = json_body(app.api_get(&format!("/api/channels/{id}/keys"), &root).await).await;
    let text = keys.to_string();
    assert!(
        !text.contains("secret-000"),
        "keys are only ever shown masked: {text}"
    );
    assert_eq!(keys[0]["mask"], "nvapi-…0001");
    let stored = channel_keys::Entity::find().all(&app.db).await.unwrap();
    assert!(stored.iter().all(|k| !k.secret_enc.contains("secret")));

    // Adding more, one per line.
    let res = app
        .api_post(
            &format!("/api/channels/{id}/keys"),
            &root,
            json!({"keys": "nvapi-third-secret-0003"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        app.key_states().await.len(),
        4,
        "three new keys and the file's one"
    );
}

#[actix_rt::test]
async fn edits_apply_without_a_restart_and_in_flight_requests_finish() {
    let mock = MockProvider::start(MockConfig {
        latency: Duration::from_millis(800),
        ..MockConfig::default()
    })
    .await;
    let app = spawn_app(AppConfig::new(vec![])).await;
    let root = app.root_token().await;
    let created = create_channel(
        &app,
        &root,
        json!({"name": "nim", "base_url": mock.base_url, "models": ["llama"], "rpm": 5, "keys": "k1"}),
    )
    .await;
    let id = created["channel"]["id"].as_i64().unwrap();
    let key_id = created["keys"]["added"][0]["id"].as_i64().unwrap();

    // A slow request is in flight while the key is deleted: it finishes.
    let client = app.client.clone();
    let url = format!("{}/v1/chat/completions", app.address);
    let in_flight = tokio::task::spawn_local(async move {
        client
            .post(url)
            .bearer_auth(sluice_tests::helpers::TOKEN)
            .json(&json!({"model": "llama", "messages": [{"role": "user", "content": "slow"}]}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    while mock.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let res = app
        .api_patch(&format!("/api/keys/{key_id}"), &root, json!({"rpm": 7}))
        .await;
    assert_eq!(json_body(res).await["rpm"], 7);
    assert_eq!(
        app.key_states().await[0].snapshot.configured.rpm,
        7,
        "the key's own limit wins at once"
    );
    assert_eq!(
        app.api_delete(&format!("/api/keys/{key_id}"), &root)
            .await
            .status(),
        204
    );
    assert_eq!(
        in_flight.await.unwrap(),
        200,
        "a request in flight finishes on the key it holds"
    );
    assert_eq!(app.chat("llama", "after").await.status(), 503, "no key left");

    app.api_post(&format!("/api/channels/{id}/keys"), &root, json!({"keys": "k2"}))
        .await;
    assert_eq!(app.chat("llama", "again").await.status(), 200);
    let res = app
        .api_patch(
            &format!("/api/channels/{id}"),
            &root,
            json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.chat("llama", "off").await.status(), 503);
    let res = app
        .api_patch(
            &format!("/api/channels/{id}"),
            &root,
            json!({"status": "enabled", "models": ["llama", "qwen"]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.chat("qwen", "new model").await.status(), 200);
    assert_eq!(
        app.api_delete(&format!("/api/channels/{id}"), &root)
            .await
            .status(),
        204
    );
    assert_eq!(app.chat("llama", "gone").await.status(), 404);
}

#[actix_rt::test]
async fn channels_from_the_config_file_are_read_only_and_bad_input_changes_nothing() {
    let (mock, app, root) = app().await;
    let list = json_body(app.api_get("/api/channels", &root).await).await;
    let file = &list[0];
    assert_eq!(file["managed_by"], "config");
    let id = file["id"].as_i64().unwrap();
    assert_eq!(
        app.api_patch(&format!("/api/channels/{id}"), &root, json!({"rpm": 1}))
            .await
            .status(),
        409
    );
    assert_eq!(
        app.api_delete(&format!("/api/channels/{id}"), &root)
            .await
            .status(),
        409
    );
    assert_eq!(
        app.api_post(&format!("/api/channels/{id}/keys"), &root, json!({"keys": "x"}))
            .await
            .status(),
        409
    );

    for (bad, status) in [
        (
            json!({"name": "x", "base_url": "ftp://nope", "models": ["m"]}),
            400,
        ),
        (json!({"name": "x", "base_url": mock.base_url, "models": []}), 400),
        (
            json!({"name": "x\ny", "base_url": mock.base_url, "models": ["m"]}),
            400,
        ),
        // Right on its own, wrong against another field.
        (
            json!({"name": "x", "base_url": mock.base_url, "models": ["m"], "model_map": {"other": "y"}}),
            422,
        ),
        (
            json!({"name": "x", "base_url": mock.base_url, "models": ["m", "m"]}),
            422,
        ),
        (
            json!({"name": "x", "base_url": mock.base_url, "models": ["m"], "kind": "anthropic"}),
            400,
        ),
        (
            json!({"name": "x", "base_url": mock.base_url, "models": ["m"], "weight": 0}),
            400,
        ),
        (
            json!({"name": "file", "base_url": mock.base_url, "models": ["m"]}),
            409,
        ),
    ] {
        let res = app.api_post("/api/channels", &root, bad.clone()).await;
        assert_eq!(res.status().as_u16(), status, "{bad}");
        if status == 409 {
            // A taken name is named, for the form to show it by its field.
            assert_eq!(json_body(res).await["error"]["param"], "name", "{bad}");
        }
    }
    let after = json_body(app.api_get("/api/channels", &root).await).await;
    assert_eq!(after.as_array().unwrap().len(), 1, "nothing was created");
}

#[actix_rt::test]
async fn the_test_button_sends_one_request_through_that_exact_key() {
    let (mock, app, root) = app().await;
    let created = create_channel(
        &app,
        &root,
        json!({"name": "two", "base_url": mock.base_url, "models": ["llama"], "rpm": 3, "keys": "good\nbroken"}),
    )
    .await;
    let id = created["channel"]["id"].as_i64().unwrap();
    let good = created["keys"]["added"][0]["id"].as_i64().unwrap();
    mock.set_behavior("broken", KeyBehavior::Unauthorized);

    let res = app
        .api_post(&format!("/api/keys/{good}/test"), &root, json!({}))
        .await;
    let result = json_body(res).await;
    assert_eq!(
        (result["ok"].as_bool(), result["status"].as_u64()),
        (Some(true), Some(200))
    );
    assert_eq!(mock.requests().last().unwrap().key, "good");
    assert_eq!(mock.requests().last().unwrap().body["max_tokens"], 1);

    let results = json_body(
        app.api_post(
            &format!("/api/channels/{id}/test"),
            &root,
            json!({"model": "llama"}),
        )
        .await,
    )
    .await;
    let broken = results
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ok"] == false)
        .unwrap()
        .clone();
    assert!(broken["error"].as_str().unwrap().contains("401"), "{broken}");
    // The tests counted against the good key's budget like any request.
    let state = app
        .key_states()
        .await
        .into_iter()
        .find(|k| k.spec.key_id == good)
        .unwrap();
    assert_eq!(state.snapshot.requests_in_window, 2);
    let res = app
        .api_post(&format!("/api/keys/{good}/test"), &root, json!({"model": "nope"}))
        .await;
    assert_eq!(res.status(), 404, "the channel does not serve that model");
}

#[actix_rt::test]
async fn live_key_state_comes_as_json_and_as_an_event_stream() {
    let (_mock, app, root) = app().await;
    for i in 0..3 {
        assert_eq!(app.chat("llama", &format!("{i}")).await.status(), 200);
    }
    let states = json_body(app.api_get("/api/keys/state", &root).await).await;
    let f1 = &states[0];
    assert_eq!(f1["mask"], "…f1");
    assert_eq!(f1["requests_in_window"], 3);
    assert_eq!(f1["served"], 3);
    assert_eq!(f1["next_ready_in_ms"], 0);
    assert_eq!(f1["queue_depth"], 0);

    // EventSource cannot send headers: the stream also takes ?access_token=.
    let url = format!(
        "{}/api/keys/state/stream?interval_ms=250&access_token={root}",
        app.address
    );
    let mut res = app.client.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut text = String::new();
    while text.matches("event: keys").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), res.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let parsed: Value = serde_json::from_str(data).unwrap();
    assert_eq!(parsed[0]["requests_in_window"], 3);
    drop(res);
    let url = format!("{}/api/keys/state/stream?access_token=wrong", app.address);
    assert_eq!(app.client.get(url).send().await.unwrap().status(), 401);
}

#[actix_rt::test]
async fn header_values_are_sealed_at_rest_shown_masked_and_sent_upstream() {
    let (mock, app, root) = app().await;
    let secret = "org-credential-5f2a9c81d7";
    let created = create_channel(
        &app,
        &root,
        json!({"name": "with-headers", "base_url": mock.base_url, "models": ["qwen"], "keys": "h1",
               "headers": {"X-Org-Credential": secret}}),
    )
    .await;
    let id = created["channel"]["id"].as_i64().unwrap();
    assert_eq!(created["channel"]["headers"]["X-Org-Credential"], "org-cr…81d7");
    let stored = sluice_entity::channels::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !stored.extra_headers.contains(secret),
        "stored: {}",
        stored.extra_headers
    );

    // Sent upstream in the clear, of course.
    assert_eq!(app.chat("qwen", "hi").await.status(), 200);
    let sent = mock.requests().last().unwrap().clone();
    assert_eq!(sent.headers["x-org-credential"], secret);

    // Sent back as shown (masked), the value is kept; a new one replaces it.
    let path = format!("/api/channels/{id}");
    let shown = created["channel"]["headers"].clone();
    let res = app
        .api_patch(&path, &root, json!({"headers": shown, "priority": 1}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.chat("qwen", "hi").await.status(), 200);
    assert_eq!(
        mock.requests().last().unwrap().headers["x-org-credential"],
        secret
    );
    let res = app
        .api_patch(
            &path,
            &root,
            json!({"headers": {"X-Org-Credential": "rotated-credential-0000"}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.chat("qwen", "hi").await.status(), 200);
    assert_eq!(
        mock.requests().last().unwrap().headers["x-org-credential"],
        "rotated-credential-0000"
    );

    // A value stored in plain text by an older version is sealed at the next start.
    let mut row: sluice_entity::channels::ActiveModel = stored.into();
    row.extra_headers = sea_orm::ActiveValue::Set(format!(r#"{{"X-Org-Credential":"{secret}"}}"#));
    sea_orm::ActiveModelTrait::update(row, &app.db).await.unwrap();
    let app = app.restart().await;
    let stored = sluice_entity::channels::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !stored.extra_headers.contains(secret),
        "stored: {}",
        stored.extra_headers
    );
    assert_eq!(app.chat("qwen", "hi").await.status(), 200);
    assert_eq!(
        mock.requests().last().unwrap().headers["x-org-credential"],
        secret
    );
}
