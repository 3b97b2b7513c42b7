//! The real `sluice` binary: started from a config file, stopped with SIGTERM
//! while a request is in flight. The request finishes, the usage log is on
//! disk, the process exits cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use sea_orm::{Database, EntityTrait, PaginatorTrait};
use serde_json::json;

/// A provider that takes 1.5 s to answer.
async fn slow_provider() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(|| {
        App::new().route(
            "/v1/chat/completions",
            web::post().to(|| async {
                actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
                HttpResponse::Ok().json(json!({
                    "id": "x", "object": "chat.completion", "created": 0, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
                }))
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    format!("http://{addr}/v1")
}

#[actix_web::test]
async fn sigterm_drains_in_flight_requests_and_flushes_usage_logs() {
    let dir = std::env::temp_dir().join(format!("sluice-sigterm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let upstream = slow_provider().await;
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[relay]
ledger_interval_ms = 3600000   # only the shutdown flush can write the row

[[channels]]
name = "slow"
base_url = "{upstream}"
keys = ["key-1"]
models = ["m"]

[[tokens]]
name = "t"
key = "sk-sigterm-test-0000"
"#
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("SLUICE_LISTEN", "127.0.0.1:0")
        .env("SLUICE_DATA_DIR", &dir)
        .env("SLUICE_SECRET", "s")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .spawn()
        .expect("sluice starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("sluice logs its port").unwrap();
        if let Some(rest) = line.split("port=").nth(1) {
            break rest.split_whitespace().next().unwrap().parse::<u16>().unwrap();
        }
    };
    let request = actix_web::rt::spawn(async move {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .bearer_auth("sk-sigterm-test-0000")
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    assert_eq!(
        request.await.unwrap().unwrap(),
        200,
        "the in-flight request was drained"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit, got {status}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("usage logs flushed")), "{rest:?}");

    let db = Database::connect(format!("sqlite://{}", dir.join("sluice.db").display()))
        .await
        .unwrap();
    let rows = sluice_entity::usage_logs::Entity::find()
        .count(&db)
        .await
        .unwrap();
    assert_eq!(rows, 1, "the row was written at shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
