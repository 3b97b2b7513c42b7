//! The OpenAPI description: the committed file is what the server serves,
//! every route in it is deny-by-default, Redocly and Spectral find nothing to
//! report, and schemathesis finds no 5xx and no response that breaks the schema.

use std::process::Command;

use serde_json::Value;
use sluice_api::manage::OPEN_ROUTES;
use sluice_tests::helpers::{channel, json_body, spawn_app, AppConfig, TestApp, TOKEN};
use sluice_tests::mock::{MockConfig, MockProvider};
use sluice_tests::python::{tool, workspace};
use sluice_tests::smtp::SmtpServer;

async fn served_spec(app: &TestApp) -> (String, Value) {
    let res = app
        .client
        .get(format!("{}/api/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap();
    (text, json)
}

#[actix_rt::test]
async fn the_committed_spec_is_what_the_server_serves() {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let (served, spec) = served_spec(&app).await;
    let committed = std::fs::read_to_string(workspace().join("openapi/openapi.json")).unwrap();
    assert!(
        committed == served,
        "openapi/openapi.json is stale: run `cargo run -p sluice-api --bin sluice -- openapi --out openapi/openapi.json`"
    );
    assert_eq!(spec["openapi"], "3.1.0");
    // Client generators name methods after operation ids: they must be unique.
    let mut ids: Vec<&str> = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().expect("every operation has an id"))
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operation ids");
    let docs = app
        .client
        .get(format!("{}/api/docs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        docs.text()
            .await
            .unwrap()
            .contains("One OpenAI-compatible endpoint"),
        "the page carries the spec"
    );
}

#[actix_rt::test]
async fn every_route_but_the_listed_open_ones_needs_credentials() {
    let app = spawn_app(AppConfig::new(vec![])).await;
    let (_, spec) = served_spec(&app).await;
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            let method_upper = method.to_uppercase();
            if OPEN_ROUTES.iter().any(|(m, p)| *m == method_upper && *p == path) {
                continue;
            }
            // Any value will do for path parameters: auth comes first.
            let concrete = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "1" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            let res = app
                .api(
                    reqwest::Method::from_bytes(method_upper.as_bytes()).unwrap(),
                    &concrete,
                    None,
                    None,
                )
                .await;
            assert_eq!(res.status(), 401, "{method_upper} {path} without credentials");
            let body = json_body(res).await;
            assert!(
                body["error"]["message"].is_string(),
                "{method_upper} {path}: {body}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "checked {checked} routes");
}

/// Every check, on data the schema allows and on data it refuses.
const EVERY_CHECK: (&str, &str) = ("all", "all");

/// Run schemathesis against the live server with `(checks, mode)`; panics with
/// its report on failure.
async fn schemathesis(
    app: &TestApp,
    token: &str,
    paths: &str,
    min_operations: usize,
    (checks, mode): (&str, &str),
) {
    let spec = format!("{}/api/openapi.json", app.address);
    let header = format!("Authorization: Bearer {token}");
    let regex = paths.to_string();
    let (checks, mode) = (checks.to_string(), mode.to_string());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(tool("schemathesis"))
            .arg("--config-file")
            .arg(workspace().join("tests/schemathesis.toml"))
            .args(["run", &spec, "-H", &header, "--include-path-regex", &regex])
            // An event stream never ends by itself: tests/tests/channels.rs reads it.
            .args(["--exclude-path", "/api/keys/state/stream"])
            .args([
                "--checks",
                &checks,
                "--mode",
                &mode,
                // A key test may wait seconds for room and for its provider.
                "--request-timeout",
                "60",
                "--max-examples",
                "25",
                // One worker: CPython before 3.12 tracks AST recursion depth per
                // process, and Hypothesis parsing lambdas in two threads at once
                // fails spuriously ("AST constructor recursion depth mismatch").
                "--workers",
                "1",
                "--seed",
                "1",
                "--no-color",
            ])
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems on {paths}:\n{report}"
    );
    let tested: usize = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        tested >= min_operations,
        "schemathesis tested {tested} operations of {paths}:\n{report}"
    );
}

#[actix_rt::test]
async fn schemathesis_finds_no_server_error_and_no_response_outside_the_schema() {
    let mock = MockProvider::start(MockConfig::default()).await;
    let smtp = SmtpServer::start().await;
    let mut config = AppConfig::new(vec![channel("nim", &mock.base_url, &["k1"], &["llama"], 0)]);
    config.smtp = Some(smtp.settings());
    let app = spawn_app(config).await;
    let root = app.root_token().await;
    schemathesis(&app, &root, "^/api/", 30, EVERY_CHECK).await;
    // On an instance of its own: the run above made channels to hosts that do
    // not exist, which /v1 would rightly answer with 502.
    let mock = MockProvider::start(MockConfig::default()).await;
    let app = spawn_app(AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &["k1"],
        &["llama"],
        0,
    )]))
    .await;
    // Every check on data the schema allows: Sluice itself refuses none of it.
    // A request the schema refuses is the provider's to refuse: the relay passes
    // bodies through as sent (but for the model name), so it checks only what it
    // reads itself (tests/tests/errors.rs).
    schemathesis(&app, TOKEN, "^/v1/", 5, EVERY_CHECK).await;
}

/// Run one linter from `tests/openapi-lint` over the committed document:
/// whether it exited 0, its standard output, and everything it printed.
fn lint(linter: &str, args: &[&str]) -> (bool, String, String) {
    let dir = workspace().join("tests/openapi-lint");
    let bin = sluice_tests::npm::install(&dir).join(linter);
    let output = Command::new(bin)
        .args(args)
        .arg(workspace().join("openapi/openapi.json"))
        .current_dir(&dir)
        // Nothing leaves the machine (Redocly reports usage unless told not to).
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
        .output()
        .expect("the linter runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    (output.status.success(), stdout, all)
}

#[test]
fn redocly_and_spectral_find_nothing_to_report() {
    // Redocly's recommended rules, errors and warnings.
    let (ok, stdout, all) = lint("redocly", &["lint", "--format=json"]);
    assert!(ok, "redocly lint:\n{all}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}:\n{all}"));
    assert_eq!(report["totals"]["errors"], 0, "{report:#}");
    assert_eq!(report["totals"]["warnings"], 0, "{report:#}");
    // Spectral's OpenAPI rules, warnings included.
    let (ok, _, all) = lint(
        "spectral",
        &["lint", "-r", ".spectral.yaml", "--fail-severity=warn"],
    );
    assert!(ok, "spectral lint:\n{all}");
}
