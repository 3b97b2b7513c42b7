//! A quota cannot be overrun: forty requests at once against 1,000 units, with
//! and without `max_tokens`, with a provider that counts more than the local
//! estimate — and a quota held by requests in flight is waited for, not refused,
//! without keeping a key's slot from anyone else meanwhile.
//!
//! Prices: 1 unit a prompt token, 2 a completion token. The mock provider counts
//! a token per 4 characters (or 3), answers with an echo of the prompt, and stops
//! at `max_tokens` like a real model.

use futures_util::future::join_all;
use serde_json::{json, Value};
use sluice_actors::ledger::Waiting;
use sluice_tests::helpers::{channel, json_body, spawn_app, until, AppConfig, TestApp};
use sluice_tests::mock::{KeyBehavior, MockConfig, MockProvider};

const QUOTA: i64 = 1000;

/// A prompt of 60 characters (15 tokens to the provider); its echo costs ~12 more.
const PROMPT: &str = "Please tell me about rivers, lanterns, orchards and evenings";

struct World {
    app: TestApp,
    _mock: MockProvider,
    root: String,
    session: String,
    key: String,
    token_id: i64,
}

async fn world(chars_per_token: usize) -> World {
    world_with(MockConfig {
        chars_per_token,
        ..MockConfig::default()
    })
    .await
}

async fn world_with(config: MockConfig) -> World {
    let mock = MockProvider::start(config).await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1"],
        &["llama"],
        0,
    )]))
    .await;
    let root = app.root_token().await;
    let res = app
        .api(
            reqwest::Method::PUT,
            "/api/prices/llama",
            Some(&root),
            Some(json!({"input": 1_000_000, "output": 2_000_000})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let (_, session) = app.user(&root, "ada", "user", QUOTA).await;
    let made = json_body(
        app.api_post("/api/tokens", &session, json!({"name": "batch"}))
            .await,
    )
    .await;
    World {
        key: made["key"].as_str().unwrap().into(),
        token_id: made["token"]["id"].as_i64().unwrap(),
        session,
        app,
        _mock: mock,
        root,
    }
}

/// Forty requests at once; the statuses and the bodies of the answers.
async fn forty(w: &World, extra: Value) -> Vec<(u16, Value)> {
    let requests = (0..40).map(|_| {
        let mut body = json!({"model": "llama", "messages": [{"role": "user", "content": PROMPT}]});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        async move {
            let res = w.app.post_as(&w.key, "/v1/chat/completions", body).await;
            let status = res.status().as_u16();
            (status, json_body(res).await)
        }
    });
    join_all(requests).await
}

/// What the usage log charged, in all, once every row is written.
async fn charged(w: &World, answered: usize) -> i64 {
    w.app.usage_logs(answered).await.iter().map(|r| r.quota).sum()
}

async fn quota_left(w: &World) -> i64 {
    let users = json_body(w.app.api_get("/api/users", &w.root).await).await;
    users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "ada")
        .unwrap()["quota"]
        .as_i64()
        .unwrap()
}

fn served(answers: &[(u16, Value)]) -> usize {
    answers.iter().filter(|(s, _)| *s == 200).count()
}

fn assert_refusals_are_insufficient_quota(answers: &[(u16, Value)]) {
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 429, "{body}");
        assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    }
}

#[actix_rt::test]
async fn requests_without_max_tokens_cannot_overrun_the_quota() {
    let w = world(4).await;
    let answers = forty(&w, json!({})).await;
    assert_refusals_are_insufficient_quota(&answers);
    let n = served(&answers);
    let spent = charged(&w, 40).await;
    assert!(spent <= QUOTA, "charged {spent} of {QUOTA}");
    assert!(quota_left(&w).await >= 0);
    // ~39 units a request: about 25 fit, and the quota is used, not left idle.
    assert!(n >= 20, "{n} served");
    assert!(
        spent >= QUOTA - 60,
        "charged only {spent} of {QUOTA} while refusing {}",
        40 - n
    );
    // The last ones to fit were cut short to what was left, as the default policy says.
    let cut = answers
        .iter()
        .filter(|(_, b)| b["choices"][0]["finish_reason"] == "length")
        .count();
    assert!(cut <= 1, "at most the one that met the end of the quota: {cut}");
}

#[actix_rt::test]
async fn long_answers_without_max_tokens_are_cut_at_what_the_quota_pays_for() {
    // Every answer runs to 300 tokens (600 units) unless told to stop.
    let w = world_with(MockConfig {
        answer_words: 300,
        ..MockConfig::default()
    })
    .await;
    let answers = forty(&w, json!({})).await;
    assert_refusals_are_insufficient_quota(&answers);
    let spent = charged(&w, served(&answers)).await;
    assert!(spent <= QUOTA, "charged {spent} of {QUOTA}");
    assert!(quota_left(&w).await >= 0);
    let cut: Vec<_> = answers
        .iter()
        .filter(|(_, b)| b["choices"][0]["finish_reason"] == "length")
        .collect();
    assert_eq!(
        cut.len(),
        1,
        "the one that met the end of the quota was cut short"
    );
    assert!(spent >= QUOTA - 20, "charged only {spent} of {QUOTA}");
}

#[actix_rt::test]
async fn a_quota_held_by_requests_in_flight_is_waited_for_not_refused() {
    let w = world(4).await;
    // Each holds 15 × 1.5 + 2 × 16 ≈ 55 units for a real cost of ~39.
    let answers = forty(&w, json!({"max_tokens": 16})).await;
    assert_refusals_are_insufficient_quota(&answers);
    let spent = charged(&w, 40).await;
    assert!(spent <= QUOTA, "charged {spent} of {QUOTA}");
    let n = served(&answers);
    assert!(
        spent > QUOTA - 60,
        "{n} served, {spent} of {QUOTA} charged: refused while quota was left"
    );
}

/// A priced request asks for its quota and its key at once. One whose quota has
/// to wait for the account's requests in flight gives its key's slot back while
/// it waits, and queues again once the quota is held.
#[actix_rt::test]
async fn a_request_waiting_for_its_quota_keeps_no_key_slot_from_others() {
    let mock = MockProvider::start(MockConfig::default()).await;
    mock.set_behavior("k-slow", KeyBehavior::Hang);
    let mut llama = channel("nim", &mock.base_url, &["k1"], &["llama"], 0);
    // One request at a time on the only key serving llama.
    llama.max_concurrency = 1;
    let mut config = AppConfig::new(vec![
        llama,
        channel("slow", &mock.base_url, &["k-slow"], &["slow"], 0),
    ]);
    // Were the slot kept, bob would wait this long for it, then be refused.
    config.relay.max_wait_secs = 10;
    let app = spawn_app(config).await;
    let root = app.root_token().await;
    for model in ["llama", "slow"] {
        let res = app
            .api(
                reqwest::Method::PUT,
                &format!("/api/prices/{model}"),
                Some(&root),
                Some(json!({"input": 1_000_000, "output": 2_000_000})),
            )
            .await;
        assert_eq!(res.status(), 200);
    }
    let mut keys = Vec::new();
    for name in ["ada", "bob"] {
        let (_, session) = app.user(&root, name, "user", QUOTA).await;
        let made = json_body(app.api_post("/api/tokens", &session, json!({"name": name})).await).await;
        keys.push(made["key"].as_str().unwrap().to_string());
    }
    let (ada, bob) = (keys[0].clone(), keys[1].clone());
    let ask = |model: &str, max_tokens: u64| json!({"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": PROMPT}]});

    // Ada's request to a provider that never answers holds ~830 of her 1,000 units…
    let holder = {
        let (address, client, ada, body) = (
            app.address.clone(),
            app.client.clone(),
            ada.clone(),
            ask("slow", 400),
        );
        actix_rt::spawn(async move {
            let url = format!("{address}/v1/chat/completions");
            client.post(url).bearer_auth(ada).json(&body).send().await
        })
    };
    until(|| async { mock.requests().iter().any(|r| r.key == "k-slow") }).await;
    // …so her next one, which needs ~430, waits for it.
    let waiter = {
        let (address, client, ada, body) = (
            app.address.clone(),
            app.client.clone(),
            ada.clone(),
            ask("llama", 200),
        );
        actix_rt::spawn(async move {
            let url = format!("{address}/v1/chat/completions");
            let res = client
                .post(url)
                .bearer_auth(ada)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, json_body(res).await)
        })
    };
    until(|| async { app.ledger.send(Waiting).await.unwrap() == 1 }).await;

    // Bob is served by the key meanwhile.
    let res = app.post_as(&bob, "/v1/chat/completions", ask("llama", 200)).await;
    let status = res.status().as_u16();
    assert_eq!(status, 200, "{}", json_body(res).await);
    assert_eq!(mock.served_for_key("k1"), 1, "ada's waiting request was not sent");

    // Ada's first client hangs up: her quota comes back, and the waiting request is served.
    holder.abort();
    let (status, body) = waiter.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["finish_reason"], "stop",
        "not cut short: {body}"
    );
    assert_eq!(mock.served_for_key("k1"), 2);
}

#[actix_rt::test]
async fn a_provider_counting_more_than_the_estimate_overruns_by_a_sliver_at_most() {
    // A token per 3 characters: a third more than the local estimate.
    let w = world(3).await;
    let answers = forty(&w, json!({})).await;
    assert_refusals_are_insufficient_quota(&answers);
    let spent = charged(&w, 40).await;
    let left = quota_left(&w).await;
    assert!(
        left >= -25,
        "{left} left after {spent} charged: more than one request's prompt over"
    );
    assert!(spent <= QUOTA + 25, "charged {spent}");
}

#[actix_rt::test]
async fn a_group_that_refuses_never_cuts_an_answer_short() {
    let w = world(4).await;
    // A small allowance, so requests without max_tokens fit in the quota.
    w.app
        .api(
            reqwest::Method::PUT,
            "/api/prices/llama",
            Some(&w.root),
            Some(json!({"input": 1_000_000, "output": 2_000_000, "max_output_tokens": 20})),
        )
        .await;
    let res = w
        .app
        .api(
            reqwest::Method::PUT,
            "/api/groups/default/quota-policy",
            Some(&w.root),
            Some(json!({"policy": "refuse"})),
        )
        .await;
    assert_eq!(json_body(res).await["quota_policies"]["default"], "refuse");
    let answers = forty(&w, json!({})).await;
    assert_refusals_are_insufficient_quota(&answers);
    assert!(
        answers
            .iter()
            .all(|(s, b)| *s != 200 || b["choices"][0]["finish_reason"] == "stop"),
        "no answer was cut short"
    );
    let spent = charged(&w, 40).await;
    assert!(spent <= QUOTA, "charged {spent}");
    assert!(served(&answers) >= 15);
}

#[actix_rt::test]
async fn a_tokens_own_quota_is_held_the_same_way() {
    let w = world(4).await;
    let res = w
        .app
        .api_patch(
            &format!("/api/tokens/{}", w.token_id),
            &w.session,
            json!({"quota": 200}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let answers = forty(&w, json!({})).await;
    assert_refusals_are_insufficient_quota(&answers);
    let spent = charged(&w, served(&answers)).await;
    assert!(spent <= 200, "the token spent {spent} of its 200");
    assert!(spent >= 200 - 60, "the token spent only {spent} of its 200");
    let tokens = json_body(w.app.api_get("/api/tokens", &w.session).await).await;
    let token = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == w.token_id)
        .unwrap()
        .clone();
    assert!(token["quota"]["remaining"].as_i64().unwrap() >= 0, "{token}");
    assert_eq!(token["quota"]["used"].as_i64().unwrap(), spent, "{token}");
    assert!(quota_left(&w).await >= QUOTA - 200);
}

#[actix_rt::test]
async fn an_unlimited_token_and_user_are_never_capped() {
    let w = world(4).await;
    // Root's quota is unlimited: no max_tokens is added for it.
    let res = w
        .app
        .post(
            "/v1/chat/completions",
            json!({"model": "llama", "messages": [{"role": "user", "content": PROMPT}]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let sent = w._mock.requests();
    assert!(
        sent.last().unwrap().body.get("max_tokens").is_none(),
        "{:?}",
        sent.last().unwrap().body
    );
    // A limited account without max_tokens is bounded by what it can pay…
    let ask = json!({"model": "llama", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        w.app
            .post_as(&w.key, "/v1/chat/completions", ask.clone())
            .await
            .status(),
        200
    );
    let bound = w._mock.requests().last().unwrap().body["max_tokens"]
        .as_u64()
        .unwrap();
    assert!(
        (400..500).contains(&bound),
        "1000 units pay for ~495 output tokens: {bound}"
    );
    // …or by the model's allowance when it can pay for that.
    let (_, rich) = w.app.user(&w.root, "bowen", "user", 1_000_000).await;
    let made = json_body(w.app.api_post("/api/tokens", &rich, json!({"name": "b"})).await).await;
    let res = w
        .app
        .post_as(made["key"].as_str().unwrap(), "/v1/chat/completions", ask)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(w._mock.requests().last().unwrap().body["max_tokens"], 4096);
}
