//! Key budgets shared by replicas (`[cluster] redis_url`): however the traffic
//! is split between them, together they keep every key inside its window, and
//! a provider 429 taught to one is known to the other.

use std::time::Duration;

use futures_util::future::join_all;
use sluice_api::config::ClusterSettings;
use sluice_tests::helpers::{channel, replicas_of, spawn_app, test_cluster, until, AppConfig, TestApp};
use sluice_tests::mock::{KeyBehavior, MockConfig, MockProvider};
use sluice_tests::process::GatewayProcess;
use sluice_tests::redis_cluster::RedisCluster;

/// A window short enough for tests, the same on both sides.
const WINDOW: Duration = Duration::from_secs(2);

/// A provider allowing `rpm` requests per key in the test window.
async fn strict_mock(rpm: u32) -> MockProvider {
    MockProvider::start(MockConfig {
        rpm_per_key: rpm,
        window: WINDOW,
        ..MockConfig::default()
    })
    .await
}

/// The provider refused nothing and no key had more than `rpm` in any window.
fn never_over(mock: &MockProvider, keys: &[&str], rpm: usize) {
    assert_eq!(mock.rate_limited(), 0, "no provider 429");
    for key in keys {
        let most = mock.max_in_window(key);
        assert!(
            most <= rpm,
            "{key} had {most} requests in one window, over its {rpm}"
        );
    }
}

/// The test window on the gateway's side, and room to wait several of them.
fn short_windows(config: &mut AppConfig) {
    config.relay.window_secs = WINDOW.as_secs();
    config.relay.window_margin_ms = 200;
    config.relay.max_wait_secs = 30;
}

/// Two replicas of one deployment in front of `keys` keys at `rpm` each.
async fn two_replicas(mock: &MockProvider, keys: &[&str], rpm: u32) -> (TestApp, TestApp) {
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, keys, &["llama"], rpm)]);
    config.cluster = test_cluster();
    short_windows(&mut config);
    replicas_of(config).await
}

/// `n` chats at once, alternating between the replicas; their statuses.
async fn chat_through_both(a: &TestApp, b: &TestApp, n: usize) -> Vec<u16> {
    join_all((0..n).map(|i| async move {
        let app = if i % 2 == 0 { a } else { b };
        app.chat("llama", &format!("request {i}")).await.status().as_u16()
    }))
    .await
}

#[actix_rt::test]
async fn two_replicas_together_keep_every_key_inside_its_window() {
    let mock = strict_mock(3).await;
    let (a, b) = two_replicas(&mock, &["k1", "k2"], 3).await;

    // 18 requests, 6 a window: three windows' worth, half through each replica.
    // Each replica alone would believe it had both keys' whole budgets.
    let statuses = chat_through_both(&a, &b, 18).await;

    assert_eq!(
        statuses, [200; 18],
        "every request is served, late rather than never"
    );
    never_over(&mock, &["k1", "k2"], 3);
    for app in [&a, &b] {
        let ready = app.readyz().await;
        assert_eq!(ready["budgets"], "shared", "{ready}");
        assert_eq!(ready["redis_errors"], 0, "{ready}");
    }
    let waited = a
        .usage_logs(18)
        .await
        .iter()
        .filter(|l| l.latency_ms >= 1000)
        .count();
    assert!(
        waited >= 6,
        "requests past the first window waited for it to slide ({waited} did)"
    );
}

#[actix_rt::test]
async fn a_slot_freed_on_one_replica_lets_the_other_send_at_once() {
    // One request in flight at a time on the key, all replicas together: a
    // request waiting on B goes when A's ends, not a window later.
    let mock = MockProvider::start(MockConfig {
        latency: Duration::from_millis(300),
        ..MockConfig::default()
    })
    .await;
    let mut config = AppConfig::new(vec![sluice_api::config::ChannelDecl {
        max_concurrency: 1,
        ..channel("nim", &mock.base_url, &["k1"], &["llama"], 0)
    }]);
    config.cluster = test_cluster();
    config.relay.max_wait_secs = 30;
    let (a, b) = replicas_of(config).await;

    let statuses = chat_through_both(&a, &b, 6).await;

    assert_eq!(statuses, [200; 6]);
    assert_eq!(mock.max_concurrent("k1"), 1, "never two in flight on the key");
    for app in [&a, &b] {
        assert_eq!(app.readyz().await["redis_errors"], 0);
    }
}

/// Requests through real replica processes, all at once: their statuses.
async fn chat_through(client: &reqwest::Client, addresses: &[&str], n: usize, from: usize) -> Vec<u16> {
    join_all((0..n).map(|i| {
        let url = format!("{}/v1/chat/completions", addresses[i % addresses.len()]);
        async move {
            client
                .post(url)
                .bearer_auth(sluice_tests::helpers::TOKEN)
                .json(&serde_json::json!({"model": "llama",
                    "messages": [{"role": "user", "content": format!("request {}", from + i)}]}))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16())
        }
    }))
    .await
}

#[actix_rt::test]
async fn real_processes_share_keys_and_a_killed_one_leaves_its_requests_counted() {
    let mock = strict_mock(3).await;
    let dir = std::env::temp_dir().join(format!("sluice-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = sluice_tests::helpers::fresh_database_url(&dir).await;
    let prefix = format!("sluice-test-{}", uuid::Uuid::new_v4().simple());
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[relay]
window_secs = {window}
window_margin_ms = 200
max_wait_secs = 30

[cluster]
prefix = "{prefix}"

[[channels]]
name = "nim"
base_url = "{base_url}"
keys = ["k1", "k2"]
models = ["llama"]
rpm = 3

[[tokens]]
name = "test"
key = "{token}"
"#,
            window = WINDOW.as_secs(),
            base_url = mock.base_url,
            token = sluice_tests::helpers::TOKEN,
        ),
    )
    .unwrap();
    let binary = env!("CARGO_BIN_EXE_sluice-replica");
    // Both at once: they take turns migrating the database and applying the file.
    let mut started = GatewayProcess::start(binary, &config, &database, &dir, 2);
    let b = started.pop().unwrap();
    let mut a = started.pop().unwrap();
    let client = reqwest::Client::new();

    // Split between the two processes: 12 requests, two windows' worth.
    let statuses = chat_through(&client, &[&a.address, &b.address], 12, 0).await;
    assert_eq!(statuses, [200; 12], "every request is served");

    // A fills both keys' windows, then dies without a word.
    let statuses = chat_through(&client, &[&a.address], 6, 12).await;
    assert_eq!(statuses, [200; 6]);
    a.kill();
    // B must still count what A sent: it waits for the window, no 429.
    let statuses = chat_through(&client, &[&b.address], 6, 18).await;
    assert_eq!(statuses, [200; 6], "B serves everything after A died");

    never_over(&mock, &["k1", "k2"], 3);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn a_replica_that_cannot_reach_redis_keeps_serving_inside_the_limits_and_says_so() {
    let mock = strict_mock(2).await;
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, &["k1"], &["llama"], 2)]);
    // Nothing listens on port 1.
    config.cluster = ClusterSettings {
        redis_url: Some("redis://127.0.0.1:1/0".into()),
        ..test_cluster()
    };
    short_windows(&mut config);
    let app = spawn_app(config).await;

    let statuses = join_all((0..4).map(|i| {
        let app = &app;
        async move { app.chat("llama", &format!("request {i}")).await.status().as_u16() }
    }))
    .await;

    assert_eq!(statuses, [200; 4], "served without Redis");
    never_over(&mock, &["k1"], 2);
    let ready = app.readyz().await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert!(ready["budgets"].as_str().unwrap().starts_with("apart"), "{ready}");
    assert!(ready["redis_errors"].as_u64().unwrap() > 0, "{ready}");
}

#[actix_rt::test]
async fn a_tokens_own_limit_holds_across_replicas() {
    let mock = MockProvider::start(MockConfig {
        window: WINDOW,
        ..MockConfig::default()
    })
    .await;
    // The key has no limit; the token allows 2 requests a window.
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, &["k1"], &["llama"], 0)]);
    config.tokens.push(sluice_api::config::TokenDecl {
        name: "paced".into(),
        key: "sk-paced-0123456789".into(),
        models: None,
        rpm: 2,
        tpm: 0,
        max_concurrency: 0,
    });
    config.cluster = test_cluster();
    short_windows(&mut config);
    let (a, b) = replicas_of(config).await;

    let statuses = join_all((0..6).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        async move {
            app.post_as(
                "sk-paced-0123456789",
                "/v1/chat/completions",
                serde_json::json!({"model": "llama", "messages": [{"role": "user", "content": format!("r{i}")}]}),
            )
            .await
            .status()
            .as_u16()
        }
    }))
    .await;

    assert_eq!(
        statuses, [200; 6],
        "every request waits its turn, none is refused"
    );
    assert_eq!(
        mock.max_in_window("k1"),
        2,
        "two requests a window, both replicas together"
    );
    for app in [&a, &b] {
        assert_eq!(app.readyz().await["redis_errors"], 0);
    }
}

/// Whether `app`'s router has the only key disabled by health checks.
async fn health_disabled(app: &TestApp) -> bool {
    app.key_states().await[0].snapshot.health_disabled
}

#[actix_rt::test]
async fn a_key_health_checks_disable_on_one_replica_is_off_on_all_and_one_probe_brings_it_back() {
    let mock = MockProvider::start(MockConfig::default()).await;
    mock.set_behavior("flaky", KeyBehavior::Unauthorized);
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, &["flaky"], &["llama"], 0)]);
    config.cluster = test_cluster();
    let (a, b) = replicas_of(config).await;

    // Two 401s through A disable the key there; B never sent it anything.
    for _ in 0..2 {
        a.chat("llama", "hi").await;
    }
    assert!(health_disabled(&a).await);
    until(|| health_disabled(&b)).await;
    let sent = mock.requests().len();
    assert_eq!(
        b.chat("llama", "hi").await.status(),
        503,
        "B does not send to it either"
    );
    assert_eq!(mock.requests().len(), sent);

    // The key works again: the replica holding the prober's lease probes it
    // (one probe, not one per replica) and both take it back.
    mock.set_behavior("flaky", KeyBehavior::Normal);
    let restored = a.probe_now().await + b.probe_now().await;
    assert_eq!(restored, 1, "one replica probed");
    assert_eq!(mock.requests().len(), sent + 1, "one probe reached the provider");
    until(|| async { !health_disabled(&a).await && !health_disabled(&b).await }).await;
    assert_eq!(b.chat("llama", "back").await.status(), 200);
}

#[actix_rt::test]
async fn on_a_redis_cluster_replicas_share_every_keys_window_as_on_one_redis() {
    let redis = RedisCluster::start().await;
    let mock = strict_mock(3).await;
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, &["k1", "k2"], &["llama"], 3)]);
    config.cluster = ClusterSettings {
        redis_url: Some(redis.url.clone()),
        ..test_cluster()
    };
    short_windows(&mut config);
    let (a, b) = replicas_of(config).await;

    let statuses = chat_through_both(&a, &b, 12).await;

    assert_eq!(statuses, [200; 12]);
    never_over(&mock, &["k1", "k2"], 3);
    for app in [&a, &b] {
        let ready = app.readyz().await;
        assert_eq!(ready["budgets"], "shared", "{ready}");
        assert_eq!(ready["redis_errors"], 0, "{ready}");
    }
}

/// The request limit `app` has in force on the key `secret`.
async fn effective_rpm(app: &TestApp, secret: &str) -> u32 {
    app.key_states()
        .await
        .into_iter()
        .find(|k| k.spec.secret.expose() == secret)
        .expect("the key is served")
        .snapshot
        .effective_rpm
}

#[actix_rt::test]
async fn a_limit_one_replica_learns_from_a_provider_429_is_taken_by_the_other() {
    let mock = MockProvider::start(MockConfig {
        window: WINDOW,
        ..MockConfig::default()
    })
    .await;
    let mut config = AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1", "k2"],
        &["llama"],
        10,
    )]);
    config.cluster = test_cluster();
    short_windows(&mut config);
    let (a, b) = replicas_of(config).await;
    // k1's real limit is one request per window, far below the configured 10.
    mock.set_behavior("k1", KeyBehavior::Limit(1));

    for i in 0..4 {
        assert_eq!(a.chat("llama", &format!("{i}")).await.status(), 200);
    }
    assert_eq!(mock.rate_limited(), 1, "one 429 teaches A the key's real limit");
    assert_eq!(effective_rpm(&a, "k1").await, 1);

    // B never sent to k1, yet learns it too.
    until(|| async { effective_rpm(&b, "k1").await == 1 }).await;
    assert_eq!(effective_rpm(&b, "k2").await, 10, "only the refused key");
}
