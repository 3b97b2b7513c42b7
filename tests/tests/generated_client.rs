//! Clients generated from the committed OpenAPI document run the whole
//! onboarding: an admin invites, the invitee accepts from the mailed link, logs
//! in, creates a token, chats with it (whole and streamed) and reads their
//! usage log. Python (openapi-python-client), and TypeScript (openapi-typescript
//! with openapi-fetch, and @hey-api/openapi-ts), type-checked by TypeScript 5
//! before they run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
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

/// Generate both TypeScript clients afresh into `tests/generated_client/ts/gen`
/// and compile them with the onboarding scripts (`tsc`, strict): a type error in
/// what the document promises fails here. Once per test run.
fn build_typescript_clients() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = workspace().join("tests/generated_client/ts");
            let bin = sluice_tests::npm::install(&dir);
            let spec = workspace().join("openapi/openapi.json");
            let _ = std::fs::remove_dir_all(dir.join("gen"));
            let _ = std::fs::remove_dir_all(dir.join("dist"));
            let steps: [(&str, Vec<&std::ffi::OsStr>); 3] = [
                (
                    "openapi-typescript",
                    vec![spec.as_os_str(), "-o".as_ref(), "gen/schema.d.ts".as_ref()],
                ),
                (
                    "openapi-ts",
                    vec!["-i".as_ref(), spec.as_os_str(), "-o".as_ref(), "gen/hey".as_ref()],
                ),
                ("tsc", vec!["-p".as_ref(), ".".as_ref()]),
            ];
            for (tool, args) in steps {
                let out = Command::new(bin.join(tool))
                    .args(args)
                    .current_dir(&dir)
                    .output()
                    .unwrap_or_else(|e| panic!("{tool}: {e}"));
                assert!(
                    out.status.success(),
                    "{tool} failed:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            dir.join("dist")
        })
        .clone()
}

/// Run one step of a compiled TypeScript onboarding script.
async fn run_ts_step(script: &str, args: Vec<String>) -> Value {
    let dist = tokio::task::spawn_blocking(build_typescript_clients)
        .await
        .unwrap();
    let script = dist.join(script);
    let output = tokio::process::Command::new("node")
        .arg(script)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "step failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
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
    assert_eq!(done["reply"], "echo: hello from a generated client");
    assert_eq!(done["streamed"], "echo: stream to a generated client");
    assert_eq!(mock.requests().len(), 2);
    app.usage_logs(2).await;
    let jwt = done["access_token"].as_str().unwrap().to_string();
    let logs = run_step(&client_dir, vec!["logs".into(), app.address.clone(), jwt]).await;
    assert_eq!(logs["models"], serde_json::json!(["llama", "llama"]), "{logs}");
    assert_eq!(logs["statuses"], serde_json::json!([200, 200]), "{logs}");
}

/// The TypeScript onboarding, through `script`, as `username`.
async fn typescript_onboarding(script: &str, username: &str) {
    let mock = MockProvider::start(MockConfig::default()).await;
    let smtp = SmtpServer::start().await;
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, &["k1"], &["llama"], 0)]);
    config.smtp = Some(smtp.settings());
    let app = spawn_app(config).await;
    let root = app.root_token().await;
    let email = format!("{username}@example.com");
    let invited = run_ts_step(
        script,
        vec!["invite".into(), app.address.clone(), root, email.clone()],
    )
    .await;
    assert_eq!(invited["status"], 201);
    let mail = smtp.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(mail.to, [email]);
    let token = mail.token("invite").expect("the mail carries the invite link");

    let done = run_ts_step(
        script,
        vec!["accept".into(), app.address.clone(), token, username.into()],
    )
    .await;
    assert_eq!(done["username"], username);
    assert_eq!(done["role"], "user");
    assert_eq!(done["models"], serde_json::json!(["llama"]));
    assert!(
        done["reply"].as_str().unwrap().starts_with("echo: hello from"),
        "{done}"
    );
    assert!(
        done["streamed"].as_str().unwrap().starts_with("echo: stream to"),
        "{done}"
    );
    assert_eq!(mock.requests().len(), 2);
    // Usage rows are written by the ledger moments later: wait for them, then read
    // them through the client.
    app.usage_logs(2).await;
    let jwt = done["access_token"].as_str().unwrap().to_string();
    let logs = run_ts_step(script, vec!["logs".into(), app.address.clone(), jwt]).await;
    assert_eq!(logs["models"], serde_json::json!(["llama", "llama"]), "{logs}");
    assert_eq!(logs["statuses"], serde_json::json!([200, 200]), "{logs}");
}

#[actix_rt::test]
async fn a_typescript_client_from_openapi_typescript_and_openapi_fetch_onboards_a_user() {
    typescript_onboarding("onboard-fetch.js", "dana").await;
}

#[actix_rt::test]
async fn a_typescript_sdk_from_hey_api_onboards_a_user() {
    typescript_onboarding("onboard-hey.js", "erin").await;
}
