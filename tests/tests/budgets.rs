//! The key budget end to end: requests wait for capacity instead of failing,
//! spread over keys, never exceed a key's sliding window, and route around
//! throttled, failing and hanging keys.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sluice_api::config::ChannelDecl;
use sluice_tests::helpers::{channel, spawn_app, AppConfig, TestApp};
use sluice_tests::mock::{KeyBehavior, MockConfig, MockProvider};

/// A window short enough for tests, the same on both sides.
const WINDOW: Duration = Duration::from_secs(2);

async fn start(
    mock_cfg: MockConfig,
    channels: impl FnOnce(&str) -> Vec<ChannelDecl>,
) -> (MockProvider, TestApp) {
    let mock = MockProvider::start(MockConfig {
        window: WINDOW,
        ..mock_cfg
    })
    .await;
    let mut config = AppConfig::new(channels(&mock.base_url));
    config.relay.window_secs = WINDOW.as_secs();
    config.relay.window_margin_ms = 200;
    config.relay.max_wait_secs = 30;
    config.relay.stream_first_byte_secs = 1;
    config.relay.response_timeout_secs = 1;
    (mock, spawn_app(config).await)
}

async fn chat_all(app: &TestApp, n: usize) -> Vec<u16> {
    join_all(
        (0..n).map(|i| async move { app.chat("llama", &format!("request {i}")).await.status().as_u16() }),
    )
    .await
}

#[actix_rt::test]
async fn chat_waits_for_a_free_key_instead_of_failing() {
    let (mock, app) = start(
        MockConfig {
            rpm_per_key: 2,
            ..Default::default()
        },
        |url| vec![channel("nim", url, &["k1"], &["llama"], 2)],
    )
    .await;
    let statuses = chat_all(&app, 5).await;
    assert_eq!(
        statuses, [200; 5],
        "every request is served, late rather than never"
    );
    assert_eq!(mock.rate_limited(), 0, "no provider 429");
    assert_eq!(
        mock.max_in_window("k1"),
        2,
        "the sliding window is never exceeded"
    );
    let waited = app
        .usage_logs(5)
        .await
        .iter()
        .filter(|l| l.latency_ms >= 1000)
        .count();
    assert!(waited >= 3, "three requests waited for the window to slide");
}

#[actix_rt::test]
async fn requests_spread_over_every_key_at_once() {
    let keys = ["k1", "k2", "k3", "k4"];
    let (mock, app) = start(
        MockConfig {
            rpm_per_key: 3,
            ..Default::default()
        },
        |url| vec![channel("nim", url, &keys, &["llama"], 3)],
    )
    .await;
    assert_eq!(chat_all(&app, 12).await, [200; 12]);
    for key in keys {
        assert_eq!(mock.served_for_key(key), 3, "{key} took its share");
    }
    let times: Vec<Instant> = mock.requests().iter().map(|r| r.at).collect();
    let spread = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    assert!(spread < WINDOW, "nobody waited while a key had room ({spread:?})");
    assert_eq!(mock.rate_limited(), 0);
}

#[actix_rt::test]
async fn a_provider_429_lowers_the_key_limit_and_the_request_is_retried_elsewhere() {
    let (mock, app) = start(MockConfig::default(), |url| {
        vec![channel("nim", url, &["k1", "k2"], &["llama"], 10)]
    })
    .await;
    // k1's real limit is one request per window, far below the configured 10.
    mock.set_behavior("k1", KeyBehavior::Limit(1));
    for i in 0..6 {
        assert_eq!(
            app.chat("llama", &format!("{i}")).await.status(),
            200,
            "the client never sees the 429"
        );
    }
    assert_eq!(mock.rate_limited(), 1, "one 429 teaches the key its real limit");
    let k1 = app
        .key_states()
        .await
        .into_iter()
        .find(|k| k.spec.secret.expose() == "k1")
        .unwrap();
    assert_eq!(k1.snapshot.effective_rpm, 1);
    assert_eq!(k1.snapshot.rate_limited, 1);
    assert_eq!(k1.snapshot.configured.rpm, 10);
    let retried = app.usage_logs(6).await.iter().filter(|l| l.attempts == 2).count();
    assert_eq!(retried, 1);
}

#[actix_rt::test]
async fn retry_after_from_the_provider_cools_the_key_down() {
    let (mock, app) = start(MockConfig::default(), |url| {
        vec![channel("nim", url, &["k1", "k2"], &["llama"], 0)]
    })
    .await;
    mock.set_behavior("k1", KeyBehavior::RateLimitedWithRetryAfter(30));
    for i in 0..6 {
        assert_eq!(app.chat("llama", &format!("{i}")).await.status(), 200);
    }
    let k1_calls = mock.requests().iter().filter(|r| r.key == "k1").count();
    assert_eq!(k1_calls, 1, "k1 rests for the 30 s it asked for");
    let k1 = app
        .key_states()
        .await
        .into_iter()
        .find(|k| k.spec.secret.expose() == "k1")
        .unwrap();
    let cooldown = k1.snapshot.cooldown_remaining.unwrap();
    assert!(cooldown > Duration::from_secs(25) && cooldown <= Duration::from_secs(30));
}

#[actix_rt::test]
async fn failing_resetting_and_hanging_keys_are_routed_around() {
    let (mock, app) = start(MockConfig::default(), |url| {
        vec![channel(
            "nim",
            url,
            &["broken", "reset", "hang", "good"],
            &["llama"],
            0,
        )]
    })
    .await;
    mock.set_behavior("broken", KeyBehavior::ServerError);
    mock.set_behavior("reset", KeyBehavior::ResetConnection);
    mock.set_behavior("hang", KeyBehavior::Hang);
    for i in 0..4 {
        assert_eq!(app.chat("llama", &format!("{i}")).await.status(), 200);
    }
    let res = app.chat_stream("llama", "stream too").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().ends_with("[DONE]\n\n"));
    assert_eq!(mock.served_for_key("good"), 5);
    let states = app.key_states().await;
    let state = |k: &str| {
        states
            .iter()
            .find(|s| s.spec.secret.expose() == k)
            .unwrap()
            .snapshot
            .clone()
    };
    assert!(state("broken").last_error.unwrap().contains("500"));
    assert!(state("hang").last_error.unwrap().contains("no reply within 1 s"));
    assert!(state("reset").last_error.is_some());
    assert_eq!(
        state("hang").in_flight,
        0,
        "a timed-out request does not hold its slot"
    );
    assert!(
        state("broken").cooldown_remaining.is_some(),
        "a failing key backs off"
    );
}

#[actix_rt::test]
async fn higher_priority_tiers_are_used_first_and_lower_ones_take_the_overflow() {
    let (mock, app) = start(MockConfig::default(), |url| {
        let mut premium = channel("premium", url, &["p1"], &["llama"], 2);
        premium.priority = 10;
        let spare = channel("spare", url, &["s1"], &["llama"], 2);
        vec![premium, spare]
    })
    .await;
    for i in 0..3 {
        assert_eq!(app.chat("llama", &format!("{i}")).await.status(), 200);
    }
    let keys: Vec<String> = mock.requests().iter().map(|r| r.key.clone()).collect();
    assert_eq!(
        keys,
        ["p1", "p1", "s1"],
        "the spare tier serves when the premium one is full"
    );
}

#[actix_rt::test]
async fn weights_share_traffic_within_a_tier() {
    let (mock, app) = start(MockConfig::default(), |url| {
        let mut heavy = channel("heavy", url, &["h1"], &["llama"], 0);
        heavy.weight = 3;
        vec![heavy, channel("light", url, &["l1"], &["llama"], 0)]
    })
    .await;
    for i in 0..20 {
        assert_eq!(app.chat("llama", &format!("{i}")).await.status(), 200);
    }
    assert_eq!(mock.served_for_key("h1"), 15);
    assert_eq!(mock.served_for_key("l1"), 5);
}

#[actix_rt::test]
async fn a_client_that_hangs_up_mid_stream_cancels_and_is_still_logged() {
    let (mock, app) = start(
        MockConfig {
            stream_chunks: 20,
            chunk_delay: Duration::from_millis(200),
            ..Default::default()
        },
        |url| vec![channel("nim", url, &["k1"], &["llama"], 0)],
    )
    .await;
    let mut res = app.chat_stream("llama", "a long story please").await;
    assert!(res.chunk().await.unwrap().is_some());
    drop(res);
    let logs = app.usage_logs(1).await;
    assert_eq!(logs[0].status, 499);
    assert_eq!(logs[0].error.as_deref(), Some("client closed the connection"));
    for _ in 0..50 {
        if app.key_states().await[0].snapshot.in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.key_states().await[0].snapshot.in_flight,
        0,
        "the key got its slot back"
    );
    assert_eq!(mock.served_for_key("k1"), 1);
}

#[actix_rt::test]
async fn a_waiting_client_that_hangs_up_leaves_the_queue_without_using_budget() {
    let (mock, app) = start(
        MockConfig {
            rpm_per_key: 1,
            ..Default::default()
        },
        |url| vec![channel("nim", url, &["k1"], &["llama"], 1)],
    )
    .await;
    assert_eq!(app.chat("llama", "first").await.status(), 200);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let res = impatient
        .post(format!("{}/v1/chat/completions", app.address))
        .bearer_auth(sluice_tests::helpers::TOKEN)
        .json(&serde_json::json!({"model": "llama", "messages": [{"role": "user", "content": "gone"}]}))
        .send()
        .await;
    assert!(res.is_err(), "the client gave up while queued");
    // The next request is served as soon as the window frees: the abandoned
    // one took no slot.
    tokio::time::sleep(WINDOW).await;
    assert_eq!(app.chat("llama", "third").await.status(), 200);
    assert_eq!(mock.requests().len(), 2);
    assert_eq!(mock.rate_limited(), 0);
}

/// A prose prompt of about `words` words.
fn prose(words: usize, seed: usize) -> String {
    const WORDS: [&str; 12] = [
        "river",
        "gateway",
        "patiently",
        "windows",
        "sliding",
        "budget",
        "provider",
        "counted",
        "evening",
        "lantern",
        "orchard",
        "quietly",
    ];
    (0..words)
        .map(|i| WORDS[(i * 7 + seed) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

#[actix_rt::test]
async fn a_token_budget_learns_how_its_provider_counts_and_stops_drawing_429s() {
    // This provider counts a token every 2 characters: about three times what the
    // local tokenizer estimates for these prompts (~45 against ~140). Four
    // requests fill 800 of the 900-token window; a key that trusted its estimate
    // would send a fifth (800 + 45 fits) that the provider refuses (800 + 140 does
    // not), once per window.
    let (mock, app) = start(
        MockConfig {
            tpm_per_key: 900,
            chars_per_token: 2,
            ..Default::default()
        },
        |url| {
            let mut c = channel("nim", url, &["k1"], &["llama"], 0);
            c.tpm = 900;
            vec![c]
        },
    )
    .await;
    for i in 0..20 {
        let res = app.chat("llama", &prose(40, i)).await;
        assert_eq!(res.status(), 200, "request {i}");
    }
    assert_eq!(
        mock.rate_limited(),
        0,
        "estimates scaled to the provider's count after its first reply"
    );
    let k1 = app.key_states().await.into_iter().next().unwrap();
    assert_eq!(
        k1.snapshot.effective_rpm, 0,
        "no request limit was learned from token refusals"
    );
}

#[actix_rt::test]
async fn a_token_refusal_lowers_the_token_budget_not_the_request_limit() {
    // The provider's real token window is half the configured one.
    let (mock, app) = start(
        MockConfig {
            tpm_per_key: 500,
            ..Default::default()
        },
        |url| {
            let mut c = channel("nim", url, &["k1"], &["llama"], 40);
            c.tpm = 1000;
            vec![c]
        },
    )
    .await;
    // Until the provider refuses once: the client never sees it.
    let mut sent = 0;
    while mock.rate_limited() == 0 {
        assert_eq!(
            app.chat("llama", &prose(40, sent)).await.status(),
            200,
            "request {sent}"
        );
        sent += 1;
        assert!(
            sent < 20,
            "the provider's token window fills within a few requests"
        );
    }
    let k1 = app.key_states().await.into_iter().next().unwrap();
    assert_eq!(k1.snapshot.effective_rpm, 40, "the request limit is untouched");
    let learned = k1.snapshot.effective_tpm;
    assert!(
        (1..=500).contains(&learned),
        "the token budget learned what the provider accepted: {learned}"
    );
}
