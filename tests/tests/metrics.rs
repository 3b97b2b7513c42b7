//! `GET /metrics`: Prometheus reads, without credentials, how many requests
//! ended how, what was retried and why, how long requests waited, and each
//! key's budget right now — and never a provider key.

use std::collections::BTreeMap;

use sluice_actors::key::mask_secret;
use sluice_tests::helpers::{channel, spawn_app, AppConfig, TestApp};
use sluice_tests::mock::{KeyBehavior, MockConfig, MockProvider};

const KEY_A: &str = "nvapi-metrics-secret-aaaa-0001";
const KEY_B: &str = "nvapi-metrics-secret-bbbb-0002";
const KEY_C: &str = "nvapi-metrics-secret-cccc-0003";

/// One sample of the text exposition format.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape, parsed.
struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    /// The value of the one series of `name` carrying these labels (others may be present).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            })
            .map(|s| s.value)
            .collect();
        assert!(
            found.len() <= 1,
            "{name} {labels:?} matches {} series",
            found.len()
        );
        found.first().copied()
    }

    /// Like [`Scrape::get`], but the series must be there.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no series {name} {labels:?} in:\n{}", self.text))
    }
}

async fn scrape(app: &TestApp) -> Scrape {
    let res = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("scrape sent");
    assert_eq!(res.status(), 200, "/metrics needs no credentials");
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(content_type, "text/plain; version=0.0.4");
    let text = res.text().await.unwrap();
    let samples = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(parse_sample)
        .collect();
    Scrape { text, samples }
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("a sample ends with its value");
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').expect("labels close"))),
        None => (series, BTreeMap::new()),
    };
    Sample {
        name: name.to_string(),
        labels,
        value: value
            .parse()
            .unwrap_or_else(|e| panic!("bad value in '{line}': {e}")),
    }
}

/// `a="x",b="y\"z"` into a map, undoing the format's escapes.
fn parse_labels(mut rest: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while let Some((key, after)) = rest.split_once("=\"") {
        let (mut value, mut end) = (String::new(), after.len());
        let mut chars = after.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_string(), value);
        rest = &after[end..];
    }
    labels
}

/// Two keys of channel "nim" serving "llama", each configured at 10 requests a minute.
async fn two_keys() -> (MockProvider, TestApp) {
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &[KEY_A, KEY_B],
        &["llama"],
        10,
    )]))
    .await;
    (mock, app)
}

fn sent_to(mock: &MockProvider, key: &str) -> f64 {
    mock.requests().iter().filter(|r| r.key == key).count() as f64
}

#[actix_rt::test]
async fn requests_are_counted_by_model_channel_and_status() {
    let (mock, app) = two_keys().await;
    for i in 0..3 {
        assert_eq!(app.chat("llama", &format!("plain {i}")).await.status(), 200);
    }
    for i in 0..2 {
        let res = app.chat_stream("llama", &format!("stream {i}")).await;
        assert_eq!(res.status(), 200);
        res.text().await.unwrap();
    }
    assert_eq!(app.chat("gpt-5", "hi").await.status(), 404);

    let m = scrape(&app).await;
    let ok = [("model", "llama"), ("channel", "nim"), ("status", "200")];
    assert_eq!(m.value("sluice_requests_total", &ok), 5.0);
    let not_found = [("model", "unknown"), ("channel", "none"), ("status", "404")];
    assert_eq!(
        m.value("sluice_requests_total", &not_found),
        1.0,
        "the client's model name is not a label value"
    );
    assert_eq!(
        m.samples
            .iter()
            .filter(|s| s.name == "sluice_requests_total")
            .count(),
        2
    );
    assert_eq!(m.get("sluice_retries_total", &[]), None);
    assert_eq!(m.get("sluice_provider_429_total", &[]), None);

    let llama = [("model", "llama")];
    let nim = [("channel", "nim")];
    assert_eq!(m.value("sluice_queue_wait_seconds_count", &llama), 5.0);
    assert_eq!(m.value("sluice_upstream_latency_seconds_count", &nim), 5.0);
    assert_eq!(m.value("sluice_time_to_first_token_seconds_count", &llama), 5.0);
    let inf = [("model", "llama"), ("le", "+Inf")];
    assert_eq!(m.value("sluice_time_to_first_token_seconds_bucket", &inf), 5.0);
    assert_eq!(
        m.value(
            "sluice_queue_wait_seconds_bucket",
            &[("model", "llama"), ("le", "1")]
        ),
        5.0,
        "no wait with free keys"
    );

    for key in [KEY_A, KEY_B] {
        let mask = mask_secret(key);
        let labels = [("channel", "nim"), ("mask", mask.as_str())];
        let sent = sent_to(&mock, key);
        assert_eq!(m.value("sluice_key_requests_in_window", &labels), sent);
        assert_eq!(m.value("sluice_key_effective_rpm", &labels), 10.0);
        assert_eq!(m.value("sluice_key_utilisation", &labels), sent / 10.0);
        assert_eq!(m.value("sluice_key_in_flight", &labels), 0.0);
        assert_eq!(m.value("sluice_key_cooldown_seconds", &labels), 0.0);
        assert_eq!(m.value("sluice_key_disabled", &labels), 0.0);
        assert!(!m.text.contains(key), "a provider key leaked into /metrics");
    }
    assert_eq!(sent_to(&mock, KEY_A) + sent_to(&mock, KEY_B), 5.0);
    assert_eq!(m.value("sluice_queue_depth", &llama), 0.0);
    assert!(m.value("sluice_ledger_pending_rows", &[]) >= 0.0);
    assert!(!m.text.contains(sluice_tests::helpers::TOKEN));
}

#[actix_rt::test]
async fn a_provider_429_and_its_retry_are_counted() {
    let (mock, app) = two_keys().await;
    // A's real limit is one request per window, far below the configured 10.
    mock.set_behavior(KEY_A, KeyBehavior::Limit(1));
    for i in 0..6 {
        assert_eq!(app.chat("llama", &format!("{i}")).await.status(), 200);
    }
    assert_eq!(mock.rate_limited(), 1);

    let m = scrape(&app).await;
    assert_eq!(m.value("sluice_provider_429_total", &[("channel", "nim")]), 1.0);
    let retried = [("model", "llama"), ("reason", "rate_limited")];
    assert_eq!(m.value("sluice_retries_total", &retried), 1.0);
    let ok = [("model", "llama"), ("channel", "nim"), ("status", "200")];
    assert_eq!(
        m.value("sluice_requests_total", &ok),
        6.0,
        "the client never saw the 429"
    );
    let llama = [("model", "llama")];
    assert_eq!(
        m.value("sluice_queue_wait_seconds_count", &llama),
        7.0,
        "one per permit"
    );
    assert_eq!(
        m.value("sluice_upstream_latency_seconds_count", &[("channel", "nim")]),
        6.0
    );

    // The refused request still counts in A's window, as the provider counts it.
    let a_mask = mask_secret(KEY_A);
    let a = [("mask", a_mask.as_str())];
    let a_sent = sent_to(&mock, KEY_A);
    assert_eq!(m.value("sluice_key_requests_in_window", &a), a_sent);
    assert_eq!(
        m.value("sluice_key_effective_rpm", &a),
        1.0,
        "A learned its real limit"
    );
    assert_eq!(m.value("sluice_key_utilisation", &a), a_sent);
    let b_mask = mask_secret(KEY_B);
    let b = [("mask", b_mask.as_str())];
    let b_sent = sent_to(&mock, KEY_B);
    assert_eq!(a_sent + b_sent, 7.0);
    assert_eq!(m.value("sluice_key_requests_in_window", &b), b_sent);
    assert_eq!(m.value("sluice_key_utilisation", &b), b_sent / 10.0);
}

#[actix_rt::test]
async fn retries_are_counted_by_reason_and_the_request_by_the_channel_that_served_it() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let mut primary = channel("primary", &mock.base_url, &[KEY_A, KEY_C], &["llama"], 0);
    primary.priority = 1;
    let backup = channel("backup", &mock.base_url, &[KEY_B], &["llama"], 0);
    let app = spawn_app(AppConfig::new(vec![primary, backup])).await;
    mock.set_behavior(KEY_A, KeyBehavior::ServerError);
    mock.set_behavior(KEY_C, KeyBehavior::RateLimitedWithRetryAfter(30));

    assert_eq!(app.chat("llama", "hi").await.status(), 200);

    let m = scrape(&app).await;
    let served = [("model", "llama"), ("channel", "backup"), ("status", "200")];
    assert_eq!(
        m.value("sluice_requests_total", &served),
        1.0,
        "labelled by the key that answered"
    );
    for reason in ["server_error", "rate_limited"] {
        assert_eq!(
            m.value("sluice_retries_total", &[("model", "llama"), ("reason", reason)]),
            1.0
        );
    }
    assert_eq!(
        m.value("sluice_provider_429_total", &[("channel", "primary")]),
        1.0
    );
    assert_eq!(
        m.value("sluice_queue_wait_seconds_count", &[("model", "llama")]),
        3.0
    );
    assert_eq!(
        m.value("sluice_upstream_latency_seconds_count", &[("channel", "backup")]),
        1.0
    );
    assert_eq!(
        m.get("sluice_upstream_latency_seconds_count", &[("channel", "primary")]),
        None
    );
    let c_mask = mask_secret(KEY_C);
    let c = [("channel", "primary"), ("mask", c_mask.as_str())];
    let cooldown = m.value("sluice_key_cooldown_seconds", &c);
    assert!(
        cooldown > 25.0 && cooldown <= 30.0,
        "C rests as asked: {cooldown}"
    );
    assert_eq!(m.value("sluice_key_effective_rpm", &c), 0.0);
    assert_eq!(m.value("sluice_key_utilisation", &c), 0.0, "0 when unlimited");
}
