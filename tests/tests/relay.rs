//! The relay end to end: bodies pass through, streams arrive chunk by chunk,
//! usage is exact, models are mapped.

use serde_json::{json, Value};
use sluice_tests::helpers::{channel, json_body, spawn_app, sse_data, AppConfig, TOKEN};
use sluice_tests::mock::{MockConfig, MockProvider};

async fn nvidia() -> (MockProvider, AppConfig) {
    let mock = MockProvider::start(MockConfig::default()).await;
    let mut ch = channel(
        "nvidia",
        &mock.base_url,
        &["nvapi-1"],
        &["minimax-m2.1", "deepseek-v3.2"],
        40,
    );
    ch.model_map
        .insert("minimax-m2.1".into(), "minimaxai/minimax-m2.1".into());
    (mock, AppConfig::new(vec![ch]))
}

#[actix_rt::test]
async fn chat_is_relayed_with_the_model_mapped_and_usage_logged() {
    let (mock, config) = nvidia().await;
    let app = spawn_app(config).await;

    let res = app.chat("minimax-m2.1", "hello there").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("x-request-id").is_some());
    let body = json_body(res).await;
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hello there");
    assert_eq!(
        body["model"], "minimaxai/minimax-m2.1",
        "the provider's reply is untouched"
    );

    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].key, "nvapi-1");
    assert_eq!(seen[0].body["model"], "minimaxai/minimax-m2.1");

    let logs = app.usage_logs(1).await;
    assert_eq!(logs.len(), 1);
    let log = &logs[0];
    assert_eq!(log.model, "minimax-m2.1");
    assert_eq!(log.upstream_model, "minimaxai/minimax-m2.1");
    assert_eq!(log.status, 200);
    assert_eq!(
        log.prompt_tokens,
        body["usage"]["prompt_tokens"].as_i64().unwrap()
    );
    assert_eq!(
        log.completion_tokens,
        body["usage"]["completion_tokens"].as_i64().unwrap()
    );
    assert!(!log.usage_estimated);
    assert!(!log.is_stream);
    assert_eq!(log.token_name, "test");
    assert_eq!(log.attempts, 1);
}

#[actix_rt::test]
async fn unmapped_models_keep_their_name() {
    let (mock, config) = nvidia().await;
    let app = spawn_app(config).await;
    assert_eq!(app.chat("deepseek-v3.2", "hi").await.status(), 200);
    assert_eq!(mock.requests()[0].body["model"], "deepseek-v3.2");
}

#[actix_rt::test]
async fn tools_images_and_unknown_fields_pass_through_untouched() {
    let (mock, config) = nvidia().await;
    let app = spawn_app(config).await;
    let body = json!({
        "model": "deepseek-v3.2",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "look", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "a cat"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "auto",
        "temperature": 0.2,
        "x_vendor_extension": {"nested": [1, 2, 3]}
    });
    let res = app.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(res.status(), 200);
    let reply = json_body(res).await;
    assert_eq!(
        reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(reply["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        mock.requests()[0].body,
        body,
        "only the model could change, and it is unmapped"
    );
}

#[actix_rt::test]
async fn a_stream_arrives_chunk_by_chunk_without_the_usage_chunk_it_did_not_ask_for() {
    let mock = MockProvider::start(MockConfig {
        stream_chunks: 4,
        chunk_delay: std::time::Duration::from_millis(300),
        ..MockConfig::default()
    })
    .await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1"],
        &["m"],
        0,
    )]))
    .await;

    let mut res = app.chat_stream("m", "one two three four").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // Chunks come as the provider sends them: the first arrives long before the last.
    let started = std::time::Instant::now();
    let mut arrivals = Vec::new();
    let mut body = String::new();
    while let Some(chunk) = res.chunk().await.unwrap() {
        arrivals.push(started.elapsed());
        body.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        arrivals.len() >= 3,
        "streamed in several reads, got {}",
        arrivals.len()
    );
    assert!(arrivals.last().unwrap().saturating_sub(arrivals[0]) >= std::time::Duration::from_millis(600));

    let events = sse_data(&body);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none_or(Value::is_null)),
        "usage chunk stripped: {body}"
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "echo: one two three four");

    // Sluice asked the provider for usage anyway, so the log is exact.
    assert_eq!(mock.requests()[0].body["stream_options"]["include_usage"], true);
    let log = &app.usage_logs(1).await[0];
    assert!(log.is_stream);
    assert!(!log.usage_estimated);
    assert_eq!(log.completion_tokens, 5);
    assert!(log.first_token_ms.unwrap() <= log.latency_ms);
}

#[actix_rt::test]
async fn a_client_that_asks_for_usage_gets_the_usage_chunk() {
    let (mock, config) = nvidia().await;
    let app = spawn_app(config).await;
    let res = app
        .post(
            "/v1/chat/completions",
            json!({"model": "deepseek-v3.2", "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    let body = res.text().await.unwrap();
    let events = sse_data(&body);
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        mock.requests()[0].body["stream_options"],
        json!({"include_usage": true})
    );
}

#[actix_rt::test]
async fn without_provider_usage_tokens_are_counted_locally() {
    let mock = MockProvider::start(MockConfig {
        send_usage: false,
        ..MockConfig::default()
    })
    .await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1"],
        &["m"],
        0,
    )]))
    .await;
    let request = |stream: bool| {
        json!({"model": "m", "stream": stream,
               "messages": [{"role": "user", "content": "count these words please"}],
               "tools": [{"type": "function", "function": {"name": "weather",
                          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]})
    };
    let res = app.post("/v1/chat/completions", request(false)).await;
    assert_eq!(res.status(), 200);
    let res = app.post("/v1/chat/completions", request(true)).await;
    let body = res.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"));
    let logs = app.usage_logs(2).await;
    assert_eq!(logs.len(), 2);
    for log in &logs {
        assert!(log.usage_estimated);
        assert!(log.prompt_tokens > 0 && log.completion_tokens > 0, "{log:?}");
    }
    // A stream's prompt is counted at its end, from the body as sent upstream
    // (kept instead of the parsed request): the same count, tools included, as
    // the whole reply's from the parsed request.
    assert_eq!(logs[0].prompt_tokens, logs[1].prompt_tokens, "{logs:?}");
}

#[actix_rt::test]
async fn completions_and_embeddings_are_relayed() {
    let (mock, config) = nvidia().await;
    let app = spawn_app(config).await;
    let res = app
        .post(
            "/v1/completions",
            json!({"model": "deepseek-v3.2", "prompt": "say hi"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_body(res).await["choices"][0]["text"], "echo: say hi");

    let res = app
        .post(
            "/v1/embeddings",
            json!({"model": "deepseek-v3.2", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_body(res).await["data"].as_array().unwrap().len(), 2);
    let paths: Vec<String> = mock.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/v1/completions", "/v1/embeddings"]);
    assert_eq!(app.usage_logs(2).await.len(), 2);
}

#[actix_rt::test]
async fn models_lists_what_the_token_may_use() {
    let (_mock, mut config) = nvidia().await;
    config.tokens.push(sluice_api::config::TokenDecl {
        name: "narrow".into(),
        key: "sk-narrow-0123456789".into(),
        models: Some(vec!["deepseek-v3.2".into()]),
        ..Default::default()
    });
    let app = spawn_app(config).await;
    let list = |token: &'static str| {
        let app = &app;
        async move {
            let res = app
                .client
                .get(format!("{}/v1/models", app.address))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let body = json_body(res).await;
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(TOKEN).await, ["deepseek-v3.2", "minimax-m2.1"]);
    assert_eq!(list("sk-narrow-0123456789").await, ["deepseek-v3.2"]);
    let res = app
        .client
        .get(format!("{}/v1/models/minimax-m2.1", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(json_body(res).await["id"], "minimax-m2.1");
}

/// The request shape OpenClaw sends with `api: "openai-completions"`: a
/// stream with tools, usage requested, and provider-specific fields.
#[actix_rt::test]
async fn an_openclaw_agent_turn_streams_tool_calls_with_usage() {
    let (mock, config) = nvidia().await;
    let app = spawn_app(config).await;
    let body = json!({
        "model": "minimax-m2.1",
        "messages": [
            {"role": "system", "content": "You are a personal assistant running inside OpenClaw."},
            {"role": "user", "content": "read README.md"}
        ],
        "stream": true,
        "stream_options": {"include_usage": true},
        "store": false,
        "max_tokens": 8192,
        "tools": [{"type": "function", "function": {"name": "read", "description": "Read a file",
                   "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]
    });
    let res = app.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let events: Vec<Value> = sse_data(&text)
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let call = events
        .iter()
        .find_map(|e| e["choices"][0]["delta"]["tool_calls"][0]["function"]["name"].as_str());
    assert_eq!(call, Some("read"));
    assert!(events.last().unwrap()["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let mut sent = body;
    sent["model"] = json!("minimaxai/minimax-m2.1");
    assert_eq!(
        mock.requests()[0].body,
        sent,
        "forwarded untouched but for the mapped model"
    );
}
