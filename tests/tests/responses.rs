//! OpenAI's Responses API on `/v1/responses`: the official OpenAI Python SDK's
//! `responses.create` (whole and streamed, with a function call round trip)
//! and Codex CLI's `codex exec`, against Sluice in front of the mock provider.

use std::process::Command;

use serde_json::{json, Value};
use sluice_tests::agents::codex_exec;
use sluice_tests::helpers::{channel, json_body, spawn_app, AppConfig, TestApp, TOKEN};
use sluice_tests::mock::{MockConfig, MockProvider, ToolCalls};
use sluice_tests::python::{python, workspace};

async fn app(mock: &MockProvider) -> TestApp {
    spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1"],
        &["gpt-5-codex"],
        0,
    )]))
    .await
}

#[actix_rt::test]
async fn the_openai_python_sdk_creates_responses_whole_and_streamed_with_a_function_call() {
    let mock = MockProvider::start(MockConfig {
        call_tools: ToolCalls::UntilAnswered,
        ..MockConfig::default()
    })
    .await;
    let app = app(&mock).await;
    let (python, script) = (python(), workspace().join("tests/sdk/responses_client.py"));
    let base_url = format!("{}/v1", app.address);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([&base_url, TOKEN, "gpt-5-codex"])
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
    assert_eq!(seen["text"], "echo: hello responses");
    assert_eq!(seen["status"], "completed");
    assert!(seen["usage"].as_u64().unwrap() > 0);
    let events: Vec<&str> = seen["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(events.first(), Some(&"response.created"));
    assert_eq!(events.last(), Some(&"response.completed"));
    assert!(events.contains(&"response.output_item.added") && events.contains(&"response.output_item.done"));
    assert_eq!(seen["stream_text"], "echo: stream please");
    assert!(seen["stream_usage"].as_u64().unwrap() > 0);
    assert_eq!(seen["tool"], "get_weather");
    assert_eq!(seen["tool_stream_end"], "response.completed");
    assert_eq!(seen["after_tool"], "echo: sunny, 21 C");
    assert_eq!(seen["whole_tool"], json!(["function_call"]));
    assert_eq!(seen["not_found"], "model_not_found");
    assert_eq!(seen["previous"], 400);

    let bodies: Vec<Value> = mock.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies.len(), 5);
    assert_eq!(
        bodies[0]["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello responses"}])
    );
    assert_eq!(
        bodies[2]["tools"].as_array().unwrap().len(),
        1,
        "the hosted web_search tool is not offered upstream"
    );
    let round_trip = bodies[3]["messages"].as_array().unwrap();
    assert_eq!(round_trip[1]["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(round_trip[2]["role"], "tool");
    let rows = app.usage_logs(5).await;
    assert!(
        rows.iter().all(|r| r.protocol == "responses" && r.status == 200),
        "{rows:?}"
    );
}

#[actix_rt::test]
async fn responses_errors_keep_openais_shape() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = app(&mock).await;
    let res = app.post("/v1/responses", json!({"model": "gpt-5-codex"})).await;
    assert_eq!(res.status(), 400);
    let body = json_body(res).await;
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(body["error"]["message"].as_str().unwrap().contains("'input'"));
    let res = app
        .client
        .post(format!("{}/v1/responses", app.address))
        .json(&json!({"model": "gpt-5-codex", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(json_body(res).await["error"]["code"], "invalid_api_key");
    assert!(mock.requests().is_empty());
}

/// Codex CLI (`codex exec`) with a custom provider at Sluice's `/v1` answers a
/// prompt: one streamed request with developer messages, its function tools,
/// a namespace group and a hosted tool.
#[actix_rt::test]
async fn codex_exec_answers_a_prompt_through_sluice() {
    let mock = MockProvider::start(MockConfig {
        call_tools: ToolCalls::Never,
        ..MockConfig::default()
    })
    .await;
    let app = app(&mock).await;
    let run = codex_exec(&format!("{}/v1", app.address), TOKEN, "gpt-5-codex", "say hi").await;
    assert!(run.success, "codex exec failed:\n{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("echo: say hi"), "{}", run.stdout);
    let requests = mock.requests();
    assert_eq!(requests.len(), 1, "one request for `exec`: {requests:?}");
    let body = &requests[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["messages"][0]["role"], "system");
    let tools = body["tools"].as_array().unwrap();
    assert!(
        tools.iter().all(|t| t["type"] == "function"),
        "hosted and namespace tools are left out"
    );
    assert!(tools.iter().any(|t| t["function"]["name"] == "exec_command"));
    let rows = app.usage_logs(1).await;
    assert_eq!((rows[0].protocol.as_str(), rows[0].status), ("responses", 200));
}
