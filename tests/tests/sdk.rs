//! The official OpenAI Python SDK works against Sluice unchanged: chat, a
//! stream with usage, tools, embeddings, models, and typed errors. The SDK is
//! installed into a virtualenv under `target/` on first run (needs python3).

use std::process::Command;

use serde_json::Value;
use sluice_tests::helpers::{channel, spawn_app, AppConfig, TOKEN};
use sluice_tests::mock::{MockConfig, MockProvider};
use sluice_tests::python::{python, workspace};

#[actix_rt::test]
async fn the_official_openai_python_sdk_works_unchanged() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1"],
        &["llama"],
        0,
    )]))
    .await;
    let python = python();
    let script = workspace().join("tests/sdk/openai_client.py");
    let base_url = format!("{}/v1", app.address);
    // The SDK blocks; run it off the runtime that serves it.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([&base_url, TOKEN, "llama"])
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
    assert_eq!(seen["chat"], "echo: hello sdk");
    assert!(seen["chat_usage"].as_u64().unwrap() > 0);
    assert_eq!(seen["stream_text"], "echo: stream please");
    assert!(seen["stream_usage"].as_u64().unwrap() > 0);
    assert_eq!(seen["tool"], "get_weather");
    assert_eq!(seen["embeddings"], 2);
    assert_eq!(seen["models"], serde_json::json!(["llama"]));
    assert_eq!(seen["not_found"], "model_not_found");
    assert_eq!(seen["bad_key"], 401);
    assert_eq!(app.usage_logs(4).await.len(), 4);
}
