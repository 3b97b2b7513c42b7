//! Anthropic's Messages API on `/v1/messages`: Anthropic's own Python SDK (a
//! reply, a stream, a tool call round trip, token counting, typed errors) and
//! Claude Code itself, against Sluice in front of the OpenAI-compatible mock.
//! The SDK is installed into a virtualenv under `target/`, Claude Code with npm
//! under `tests/agents/` (both on first run).

use std::process::Command;

use serde_json::{json, Value};
use sluice_api::config::TokenDecl;
use sluice_tests::agents::{claude_code, AgentRun};
use sluice_tests::helpers::{channel, json_body, spawn_app, AppConfig, TestApp, TOKEN};
use sluice_tests::mock::{MockConfig, MockProvider, ToolCalls};
use sluice_tests::python::{python, workspace};

async fn app_with(mock: &MockProvider, edit: impl FnOnce(&mut AppConfig)) -> TestApp {
    let mut config = AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1"],
        &["claude-sonnet-4-5"],
        0,
    )]);
    edit(&mut config);
    spawn_app(config).await
}

async fn messages(app: &TestApp, auth: (&str, &str), body: Value) -> reqwest::Response {
    app.client
        .post(format!("{}/v1/messages?beta=true", app.address))
        .header(auth.0, auth.1)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn hello() -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]})
}

#[actix_rt::test]
async fn anthropics_python_sdk_works_unchanged_streamed_and_not_with_a_tool_call() {
    let mock = MockProvider::start(MockConfig {
        call_tools: ToolCalls::UntilAnswered,
        ..MockConfig::default()
    })
    .await;
    let app = app_with(&mock, |_| {}).await;
    let (python, script) = (python(), workspace().join("tests/sdk/anthropic_client.py"));
    let base_url = app.address.clone();
    // The SDK blocks; run it off the runtime that serves it.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([&base_url, TOKEN, "claude-sonnet-4-5"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "SDK script failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["text"], "echo: hello claude");
    assert_eq!(seen["stop_reason"], "end_turn");
    assert!(seen["usage"][0].as_u64().unwrap() > 0 && seen["usage"][1].as_u64().unwrap() > 0);
    assert_eq!(seen["stream_text"], "echo: stream please");
    assert_eq!(seen["stream_stop_reason"], "end_turn");
    assert!(seen["stream_usage"][1].as_u64().unwrap() > 0, "{seen}");
    assert_eq!(seen["tool"], "get_weather");
    assert_eq!(seen["tool_input"], json!({}));
    assert_eq!(seen["tool_stop_reason"], "tool_use");
    assert_eq!(seen["after_tool"], "echo: sunny, 21 C");
    assert_eq!(seen["after_tool_stop_reason"], "end_turn");
    assert_eq!(seen["whole_tool"], json!(["tool_use"]));
    assert!(seen["count_tokens"].as_u64().unwrap() > 4);
    assert_eq!(seen["not_found"], "not_found_error");
    assert_eq!(seen["bad_key"], json!([401, "authentication_error"]));

    // The provider got OpenAI chats: the system prompt first, the tool's
    // result as a tool message after the assistant's call.
    let bodies: Vec<Value> = mock.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies.len(), 5, "five relayed requests (counting is local)");
    assert_eq!(
        bodies[1]["messages"][0],
        json!({"role": "system", "content": "You are terse."})
    );
    assert_eq!(bodies[1]["stream_options"], json!({"include_usage": true}));
    let round_trip = bodies[3]["messages"].as_array().unwrap();
    assert_eq!(round_trip[1]["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(round_trip[2]["role"], "tool");
    assert_eq!(
        round_trip[2]["tool_call_id"],
        round_trip[1]["tool_calls"][0]["id"]
    );
    assert_eq!(bodies[3]["tools"][0]["function"]["parameters"]["type"], "object");

    let rows = app.usage_logs(5).await;
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter().all(|r| r.protocol == "anthropic" && r.status == 200),
        "{rows:?}"
    );
    assert_eq!(rows.iter().filter(|r| r.is_stream).count(), 2);
    assert!(
        rows.iter().all(|r| !r.usage_estimated),
        "usage came from the provider"
    );
}

#[actix_rt::test]
async fn the_key_comes_as_x_api_key_or_bearer_and_errors_have_anthropics_shape() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = app_with(&mock, |c| {
        c.tokens.push(TokenDecl {
            name: "narrow".into(),
            key: "sk-narrow-0123456789".into(),
            models: Some(vec!["other".into()]),
            ..Default::default()
        })
    })
    .await;
    let bearer = format!("Bearer {TOKEN}");
    for auth in [("x-api-key", TOKEN), ("authorization", bearer.as_str())] {
        let res = messages(&app, auth, hello()).await;
        assert_eq!(res.status(), 200, "{auth:?}");
        let message = json_body(res).await;
        assert_eq!(message["type"], "message");
        assert_eq!(message["content"][0]["text"], "echo: hi");
    }
    let cases = [
        (("x-anthropic", "none"), hello(), 401, "authentication_error"),
        (
            ("x-api-key", "sk-wrong-0000000000"),
            hello(),
            401,
            "authentication_error",
        ),
        (
            ("x-api-key", "sk-narrow-0123456789"),
            hello(),
            403,
            "permission_error",
        ),
        (
            ("x-api-key", TOKEN),
            json!({"model": "gpt-9", "max_tokens": 1, "messages": []}),
            404,
            "not_found_error",
        ),
        (
            ("x-api-key", TOKEN),
            json!({"model": "claude-sonnet-4-5"}),
            400,
            "invalid_request_error",
        ),
        (("x-api-key", TOKEN), json!([1, 2]), 400, "invalid_request_error"),
    ];
    for (auth, body, status, kind) in cases {
        let res = messages(&app, auth, body.clone()).await;
        assert_eq!(res.status(), status, "{auth:?} {body}");
        let error = json_body(res).await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["error"]["type"], kind, "{error}");
        assert!(!error["error"]["message"].as_str().unwrap().is_empty());
    }
    let res = app
        .client
        .post(format!("{}/v1/messages/count_tokens", app.address))
        .header("x-api-key", TOKEN)
        .json(&json!({"model": "claude-sonnet-4-5", "system": "Be brief.", "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(json_body(res).await["input_tokens"].as_u64().unwrap() >= 4);
    // Counting is for a model the caller may use, as with Anthropic.
    let res = app
        .client
        .post(format!("{}/v1/messages/count_tokens", app.address))
        .header("x-api-key", TOKEN)
        .json(&json!({"model": "not-served", "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(json_body(res).await["error"]["type"], "not_found_error");
    assert_eq!(
        mock.requests().len(),
        2,
        "refusals and counting never reach the provider"
    );
}

#[actix_rt::test]
async fn a_saturated_pool_answers_anthropic_clients_with_rate_limit_error_and_retry_after() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = app_with(&mock, |c| {
        c.channels[0].rpm = 1;
        c.relay.max_wait_secs = 1;
    })
    .await;
    assert_eq!(messages(&app, ("x-api-key", TOKEN), hello()).await.status(), 200);
    let res = messages(&app, ("x-api-key", TOKEN), hello()).await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 1, "the slot frees within the minute: {retry}");
    assert_eq!(json_body(res).await["error"]["type"], "rate_limit_error");
    let rows = app.usage_logs(2).await;
    assert_eq!(rows[1].status, 429);
    assert_eq!(rows[1].protocol, "anthropic");
}

/// Claude Code (`claude -p`), pointed at Sluice with `ANTHROPIC_BASE_URL`,
/// answers a prompt through the mock provider: one streamed request with its
/// whole system prompt, a dozen tools and `system` turns inside `messages`.
#[actix_rt::test]
async fn claude_code_answers_a_prompt_through_sluice() {
    let mock = MockProvider::start(MockConfig {
        // Claude Code always offers its tools; a model that calls none answers in text.
        call_tools: ToolCalls::Never,
        ..MockConfig::default()
    })
    .await;
    let app = app_with(&mock, |_| {}).await;
    let run: AgentRun = claude_code(&app.address, TOKEN, "claude-sonnet-4-5", "say hi").await;
    assert!(run.success, "claude -p failed:\n{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("echo: "), "{}", run.stdout);
    assert!(run.stdout.contains("say hi"), "{}", run.stdout);
    let requests = mock.requests();
    assert_eq!(requests.len(), 1, "one request for `-p`");
    let body = &requests[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["messages"][0]["role"], "system");
    assert!(
        body["tools"].as_array().unwrap().len() >= 5,
        "its tools are offered"
    );
    let rows = app.usage_logs(1).await;
    assert_eq!((rows[0].protocol.as_str(), rows[0].status), ("anthropic", 200));
    assert!(rows[0].is_stream);
}
