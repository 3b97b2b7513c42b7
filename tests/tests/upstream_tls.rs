//! Providers over HTTPS and HTTP/2, as hosted ones are: a provider whose
//! certificate a private CA signed is reached once `[relay] ca_file` trusts that
//! CA (and refused before); a provider that caps the streams of a connection
//! still gets every stream, however many are open at once, over few connections;
//! and a provider that stops speaking HTTP/2 is still served.

use std::time::Duration;

use futures_util::StreamExt;
use sluice_tests::h2_provider::H2Provider;
use sluice_tests::helpers::{channel, json_body, spawn_app, until, AppConfig, TestApp};

const MODEL: &str = "h2-model";

/// Hang guard only: every wait below ends on an event long before this.
const GUARD: Duration = Duration::from_secs(60);

/// Sluice in front of `provider`, trusting its CA when `trust` is set.
async fn app_for(provider: &H2Provider, trust: bool) -> TestApp {
    let mut config = AppConfig::new(vec![channel("h2", &provider.base_url, &["h2-key"], &[MODEL], 0)]);
    if trust {
        let file = std::env::temp_dir().join(format!("sluice-ca-{}.pem", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, &provider.ca_pem).unwrap();
        config.relay.ca_file = Some(file);
    }
    // A stream past the provider's cap would wait for its first byte until this,
    // far past `until`'s bound: the test then fails on the count, not on a retry.
    config.relay.stream_first_byte_secs = 600;
    spawn_app(config).await
}

#[actix_rt::test]
async fn a_provider_behind_a_private_ca_is_reached_once_ca_file_trusts_it() {
    let provider = H2Provider::start(100).await;

    // Not trusted: the certificate is refused, and the client is told so in OpenAI's shape.
    let untrusting = app_for(&provider, false).await;
    let res = untrusting.chat(MODEL, "hello").await;
    let status = res.status().as_u16();
    let body = json_body(res).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(provider.seen().is_empty(), "no request reached the provider");
    // The admin sees why on the key.
    let states = untrusting.key_states().await;
    let why = states[0].snapshot.last_error.clone().unwrap_or_default();
    assert!(why.contains("invalid peer certificate: UnknownIssuer"), "{why}");
    untrusting.stop().await;

    // Trusted: answered, over HTTP/2, with the key.
    let app = app_for(&provider, true).await;
    let res = app.chat(MODEL, "hello").await;
    assert_eq!(res.status().as_u16(), 200);
    let body = json_body(res).await;
    assert_eq!(body["choices"][0]["message"]["content"], "Hello over HTTP/2");
    let seen = provider.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].version, http::Version::HTTP_2);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer h2-key"));
    assert_eq!(seen[0].body["messages"][0]["content"], "hello");
    let rows = app.usage_logs(1).await;
    assert_eq!(rows[0].prompt_tokens, 5);
    assert_eq!(rows[0].completion_tokens, 2);
}

#[actix_rt::test]
async fn streams_past_a_providers_per_connection_cap_are_all_served() {
    // nginx's default cap is 128 and RFC 9113 advises at least 100; a client keeps
    // one HTTP/2 connection per provider and thread. More streams than the HTTP
    // workers' connections could carry under the cap, all open at once:
    const CAP: u32 = 100;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let streams = threads * CAP as usize + 50;
    let provider = H2Provider::start(CAP).await;
    let app = app_for(&provider, true).await;
    // Once the provider has answered over HTTP/2, a burst waits for one
    // connection a client rather than opening one a request.
    assert_eq!(app.chat(MODEL, "hello").await.status().as_u16(), 200);
    let streams_before = provider.seen().len();

    let (first, mut firsts) = tokio::sync::mpsc::unbounded_channel();
    let mut bodies = Vec::new();
    for i in 0..streams {
        let (app_client, address, first) = (app.client.clone(), app.address.clone(), first.clone());
        bodies.push(tokio::task::spawn_local(async move {
            let res = app_client
                .post(format!("{address}/v1/chat/completions"))
                .bearer_auth(sluice_tests::helpers::TOKEN)
                .json(&serde_json::json!({
                    "model": MODEL, "stream": true,
                    "messages": [{"role": "user", "content": format!("stream {i}")}],
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 200);
            let mut body = res.bytes_stream();
            let mut text = String::new();
            let chunk = body.next().await.expect("a first event").unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            first.send(()).unwrap();
            while let Some(chunk) = body.next().await {
                text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
            }
            text
        }));
    }
    drop(first);
    // Every stream has its first event while all of them are open upstream.
    let mut opened = 0;
    while opened < streams {
        tokio::time::timeout(Duration::from_secs(10), firsts.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{opened} of {streams} streams opened; the provider has {} open",
                    provider.open_streams()
                )
            })
            .expect("every stream reports its first event");
        opened += 1;
    }
    until(|| async { provider.open_streams() == streams }).await;
    // A client per 100 streams on each thread, each over one connection.
    let clients = streams.div_ceil(CAP as usize) + threads - 1;
    assert!(
        provider.connections_accepted() <= clients,
        "{} connections for {streams} streams, where {clients} clients carry them",
        provider.connections_accepted()
    );

    provider.release();
    for body in bodies {
        let text = tokio::time::timeout(GUARD, body)
            .await
            .expect("the stream ended")
            .unwrap();
        assert!(text.contains("Hello"), "{text}");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    }
    assert_eq!(
        provider.seen().len() - streams_before,
        streams,
        "one upstream request a stream, no retries"
    );
    assert!(provider.seen().iter().all(|s| s.version == http::Version::HTTP_2));
    let rows = app.usage_logs(streams + 1).await;
    assert_eq!(rows.len(), streams + 1);
}

/// `n` chat completions at once, over as many client connections (so both
/// HTTP workers take some); their statuses and answers.
async fn chats_at_once(app: &TestApp, n: usize) -> Vec<(u16, serde_json::Value)> {
    let chats = (0..n).map(|i| async move {
        let res = app.chat(MODEL, &format!("hello {i}")).await;
        let status = res.status().as_u16();
        (status, json_body(res).await)
    });
    futures_util::future::join_all(chats).await
}

#[actix_rt::test]
async fn a_provider_that_stops_speaking_http2_is_served_over_http1() {
    let provider = H2Provider::start(100).await;
    let app = app_for(&provider, true).await;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Known to speak HTTP/2 after its first answer: the clients each thread
    // makes for it from then on expect HTTP/2.
    assert_eq!(app.chat(MODEL, "hello").await.status().as_u16(), 200);
    for (status, body) in chats_at_once(&app, threads * 4).await {
        assert_eq!(status, 200, "{body}");
    }
    assert!(provider.seen().iter().all(|s| s.version == http::Version::HTTP_2));
    let before = provider.seen().len();

    // Its HTTP/2 connections close; new ones speak HTTP/1.1 only, and a client
    // that expects HTTP/2 is refused in the TLS handshake.
    provider.speak_http1();
    until(|| async { provider.connections_open() == 0 }).await;

    // Every request is served, none reached the provider twice, and the key
    // is not blamed for it.
    let n = threads * 4;
    for (status, body) in chats_at_once(&app, n).await {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello over HTTP/1.1");
    }
    let seen = provider.seen();
    assert_eq!(seen.len() - before, n);
    assert!(seen[before..].iter().all(|s| s.version == http::Version::HTTP_11));
    let states = app.key_states().await;
    assert_eq!(states[0].snapshot.last_error, None, "{:?}", states[0].snapshot);
}
