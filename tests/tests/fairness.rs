//! Sharing a saturated pool: tenants take fair turns while they wait, their own
//! limits hold them like a key's would, a hanging key is left behind within
//! seconds, and a provider that throttles every attempt ends in a 429, not a 502.

use std::time::Duration;

use serde_json::{json, Value};
use sluice_tests::helpers::{channel, json_body, spawn_app, AppConfig, TestApp};
use sluice_tests::mock::{KeyBehavior, MockConfig, MockProvider};

/// Short windows on both sides, so a saturated pool frees within seconds.
const WINDOW: Duration = Duration::from_secs(3);

async fn start(rpm: u32, keys: &[&str], edit: impl FnOnce(&mut AppConfig)) -> (MockProvider, TestApp) {
    let mock = MockProvider::start(MockConfig {
        rpm_per_key: rpm,
        window: WINDOW,
        ..MockConfig::default()
    })
    .await;
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, keys, &["llama"], rpm)]);
    config.relay.window_secs = WINDOW.as_secs();
    config.relay.window_margin_ms = 200;
    edit(&mut config);
    (mock, spawn_app(config).await)
}

/// A new user with one token; returns (session, `sk-` key, token id).
async fn tenant(app: &TestApp, root: &str, name: &str) -> (String, String, i64) {
    let (_, session) = app.user(root, name, "user", 0).await;
    let (key, id) = token(app, &session, name).await;
    (session, key, id)
}

async fn token(app: &TestApp, session: &str, name: &str) -> (String, i64) {
    let made = json_body(app.api_post("/api/tokens", session, json!({"name": name})).await).await;
    (
        made["key"].as_str().unwrap().to_string(),
        made["token"]["id"].as_i64().unwrap(),
    )
}

async fn chat(app: &TestApp, key: &str, content: &str) -> reqwest::Response {
    app.post_as(
        key,
        "/v1/chat/completions",
        json!({"model": "llama", "messages": [{"role": "user", "content": content}]}),
    )
    .await
}

/// Wait for something the test cannot be told about directly.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The prompts the provider received, in the order it received them.
fn served(mock: &MockProvider) -> Vec<String> {
    mock.requests()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// One tenant bursts 20 requests into a pool of 2 keys × 5 a window; once the
/// window is full, another sends one. It must go at the next free slot, not
/// behind the whole burst.
async fn light_goes_at_the_next_free_slot(app: &TestApp, mock: &MockProvider, heavy: &str, light: &str) {
    let burst: Vec<_> = (0..20)
        .map(|i| {
            let (address, key) = (app.address.clone(), heavy.to_string());
            actix_rt::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{address}/v1/chat/completions"))
                    .bearer_auth(key)
                    .json(&json!({"model": "llama", "messages": [{"role": "user", "content": format!("heavy {i}")}]}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    until("the first window to fill", || served(mock).len() == 10).await;
    let res = chat(app, light, "light").await;
    assert_eq!(res.status(), 200);
    for handle in burst {
        assert_eq!(handle.await.unwrap(), 200, "the burst is served too, later");
    }
    // First come, first served would put it after the ten still waiting, in the
    // third window (position 20). Fair turns give it the first free slot of the
    // second window; the ten requests of that window reach the provider together,
    // in whatever order the network takes them.
    let order = served(mock);
    let position = order.iter().position(|p| p == "light");
    assert!(
        position.is_some_and(|p| (10..20).contains(&p)),
        "the light request goes in the window after it arrived: {order:?}"
    );
    assert_eq!(mock.rate_limited(), 0);
}

#[actix_rt::test]
async fn a_light_users_request_goes_at_the_next_free_slot_during_a_burst() {
    let (mock, app) = start(5, &["k1", "k2"], |_| {}).await;
    let root = app.root_token().await;
    let (_, heavy, _) = tenant(&app, &root, "batch").await;
    let (_, light, _) = tenant(&app, &root, "chat").await;
    light_goes_at_the_next_free_slot(&app, &mock, &heavy, &light).await;
}

#[actix_rt::test]
async fn the_tokens_of_one_user_take_turns_too() {
    let (mock, app) = start(5, &["k1", "k2"], |_| {}).await;
    let root = app.root_token().await;
    let (session, heavy, _) = tenant(&app, &root, "ada").await;
    let (light, _) = token(&app, &session, "phone").await;
    light_goes_at_the_next_free_slot(&app, &mock, &heavy, &light).await;
}

#[actix_rt::test]
async fn a_token_over_its_own_limit_waits_then_gets_a_429_naming_it() {
    let (mock, app) = start(0, &["k1"], |c| c.relay.max_wait_secs = 2).await;
    let root = app.root_token().await;
    let (session, key, id) = tenant(&app, &root, "ada").await;
    let res = app
        .api_patch(&format!("/api/tokens/{id}"), &session, json!({"rpm": 2}))
        .await;
    assert_eq!(json_body(res).await["rpm"], 2);
    for i in 0..2 {
        assert_eq!(chat(&app, &key, &format!("ok {i}")).await.status(), 200);
    }
    let refused = chat(&app, &key, "one too many").await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=WINDOW.as_secs()).contains(&retry_after),
        "when its window frees: {retry_after}"
    );
    let error: Value = json_body(refused).await;
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("token 'ada' is at its limit of 2 requests per 3 s"),
        "{message}"
    );
    assert_eq!(served(&mock).len(), 2, "the provider never saw the third");
}

#[actix_rt::test]
async fn a_users_limit_covers_all_their_tokens() {
    let (mock, app) = start(0, &["k1"], |c| c.relay.max_wait_secs = 2).await;
    let root = app.root_token().await;
    let (session, first, _) = tenant(&app, &root, "ada").await;
    let (second, _) = token(&app, &session, "phone").await;
    let id = json_body(app.api_get("/api/users/me", &session).await).await["id"]
        .as_i64()
        .unwrap();
    let res = app
        .api_patch(
            &format!("/api/users/{id}"),
            &root,
            json!({"rpm": 2, "max_concurrency": 1}),
        )
        .await;
    let user = json_body(res).await;
    assert_eq!(
        (user["rpm"].as_i64(), user["max_concurrency"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(chat(&app, &first, "a").await.status(), 200);
    assert_eq!(chat(&app, &second, "b").await.status(), 200);
    let refused = chat(&app, &first, "c").await;
    assert_eq!(refused.status(), 429);
    let message = json_body(refused).await["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("your account is at its limit of 2 requests"),
        "{message}"
    );
    assert_eq!(served(&mock).len(), 2);
}

#[actix_rt::test]
async fn a_hanging_key_is_left_behind_and_its_requests_served_elsewhere() {
    // A bound far longer than the test may take: only recognising the hang ends it.
    let (mock, app) = start(0, &["k1", "k2", "k3", "hangs"], |c| {
        c.relay.stream_first_byte_secs = 3600;
        c.relay.response_timeout_secs = 3600;
    })
    .await;
    mock.set_behavior("hangs", KeyBehavior::Hang);
    let app = &app;
    let requests = (0..12).map(|i| async move {
        let res = app.chat_stream("llama", &format!("stream {i}")).await;
        let status = res.status();
        let body = res.text().await.unwrap();
        (status, body.contains("[DONE]"))
    });
    let answers = futures_util::future::join_all(requests).await;
    assert!(answers.iter().all(|(s, done)| *s == 200 && *done), "{answers:?}");
    let keys = app.key_states().await;
    let hung = keys.iter().find(|k| k.spec.secret.expose() == "hangs").unwrap();
    assert!(hung.snapshot.health_disabled, "taken out of service");
    let reason = hung.snapshot.disabled.clone().unwrap();
    assert!(reason.contains("no first byte"), "{reason}");
    let tried = mock.requests().iter().filter(|r| r.key == "hangs").count();
    assert!(tried >= 1, "the hanging key was tried");
    let logs = app.usage_logs(12).await;
    assert!(
        logs.iter().any(|l| l.attempts == 2),
        "its request was retried on another key"
    );

    // The prober brings it back once it answers.
    mock.set_behavior("hangs", KeyBehavior::Normal);
    assert_eq!(app.probe_now().await, 1);
    let keys = app.key_states().await;
    let back = keys.iter().find(|k| k.spec.secret.expose() == "hangs").unwrap();
    assert!(!back.snapshot.health_disabled);
}

#[actix_rt::test]
async fn throttling_on_every_attempt_ends_in_a_429_not_a_502() {
    let (mock, app) = start(0, &["k1", "k2"], |c| c.relay.max_wait_secs = 3).await;
    mock.set_behavior("k1", KeyBehavior::RateLimitedWithRetryAfter(1));
    mock.set_behavior("k2", KeyBehavior::RateLimitedWithRetryAfter(1));
    let res = app.chat("llama", "hello").await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let error = json_body(res).await;
    assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}");
    assert!(
        mock.rate_limited() > 4,
        "it kept waiting for the keys, past max_attempts (4)"
    );
}
