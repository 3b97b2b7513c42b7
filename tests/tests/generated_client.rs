//! A client generated from the committed OpenAPI document (openapi-python-client)
//! runs the whole onboarding: an admin invites, the invitee accepts from the
//! mailed link, logs in, creates a token and calls `/v1` with it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sluice_tests::helpers::{channel, spawn_app, AppConfig};
use sluice_tests::mock::{MockConfig, MockProvider};
use sluice_tests::python::{tool, workspace};
use sluice_tests::smtp::SmtpServer;

/// Generate the client afresh from `openapi/openapi.json` into `target/`.
fn generate_client() -> std::path::PathBuf {
    let out = workspace().join("target/generated-client");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let bin = tool("openapi-python-client");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let status = Command::new(&bin)
        .args(["generate", "--meta", "none", "--path"])
        .arg(workspace().join("openapi/openapi.json"))
        .arg("--output-path")
        .arg(out.join("sluice_client"))
        .env("PATH", path)
        .status()
        .unwrap();
    assert!(status.success(), "openapi-python-client failed");
    out
}

async fn run_step(client_dir: &Path, args: Vec<String>) -> Value {
    let python = tool("python");
    let script = workspace().join("tests/generated_client/onboard.py");
    let dir = client_dir.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(args)
            .env("PYTHONPATH", dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "step failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[actix_rt::test]
async fn a_generated_client_onboards_a_user_from_invite_to_first_request() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let smtp = SmtpServer::start().await;
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, &["k1"], &["llama"], 0)]);
    config.smtp = Some(smtp.settings());
    let app = spawn_app(config).await;
    let root = app.root_token().await;
    let client_dir = tokio::task::spawn_blocking(generate_client).await.unwrap();

    let invited = run_step(
        &client_dir,
        vec![
            "invite".into(),
            app.address.clone(),
            root,
            "carol@example.com".into(),
        ],
    )
    .await;
    assert_eq!(invited["status"], 201);
    let mail = smtp.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(mail.to, ["carol@example.com"]);
    let token = mail.token("invite").expect("the mail carries the invite link");

    let done = run_step(&client_dir, vec!["accept".into(), app.address.clone(), token]).await;
    assert_eq!(done["username"], "carol");
    assert_eq!(done["role"], "user");
    assert_eq!(done["models"], serde_json::json!(["llama"]));
    assert_eq!(done["chat_status"], 200);
    assert_eq!(done["reply"], "echo: hello from a generated client");
    assert_eq!(mock.requests().len(), 1);
}
