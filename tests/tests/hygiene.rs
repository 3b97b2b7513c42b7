//! HTTP hygiene: over-size bodies refused on their declared length before a
//! byte is read, slow clients cut off, over-long URLs and headers refused, all
//! with JSON errors; `/api` answers never cached; `/metrics` behind a token or
//! on its own address; the SQLite files and the generated secret private.

use std::time::Duration;

use serde_json::Value;
use sluice_api::config::{MetricsSettings, ServerSettings};
use sluice_tests::helpers::{json_body, spawn_app, AppConfig, TestApp, TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Hang guard only: every wait below ends on an event long before this.
const GUARD: Duration = Duration::from_secs(60);

async fn app_with(edit: impl FnOnce(&mut AppConfig)) -> TestApp {
    let mut config = AppConfig::new(vec![]);
    edit(&mut config);
    spawn_app(config).await
}

/// Send `head` (and `body`) on a raw connection and read until the server
/// closes it or sends a whole response: its status and JSON body.
async fn raw(app: &TestApp, head: &str, body: &[u8]) -> (u16, Value) {
    let addr = app.address.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if let Some(parsed) = response(&got) {
                return Some(parsed);
            }
        }
        response(&got)
    };
    tokio::time::timeout(GUARD, read)
        .await
        .expect("the server answered or closed")
        .unwrap_or_else(|| panic!("no whole response: {:?}", String::from_utf8_lossy(&got)))
}

/// A whole HTTP/1.1 response with a Content-Length body, parsed.
fn response(bytes: &[u8]) -> Option<(u16, Value)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (body.len() >= length).then(|| {
        (
            status,
            serde_json::from_str(&body[..length]).unwrap_or(Value::Null),
        )
    })
}

#[actix_rt::test]
async fn a_declared_oversize_body_is_refused_before_it_is_sent() {
    let app = app_with(|_| {}).await;
    for path in ["/v1/chat/completions", "/api/auth/login"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 2000000000\r\n\r\n"
        );
        // Not a byte of the body is sent: the answer comes anyway.
        let (status, body) = raw(&app, &head, b"").await;
        assert_eq!(status, 413, "{path}: {body}");
        assert_eq!(body["error"]["code"], "request_too_large", "{path}: {body}");
    }
    // Anthropic's clients get Anthropic's shape.
    let head = "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000000000\r\n\r\n";
    let (status, body) = raw(&app, head, b"").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "request_too_large", "{body}");
}

#[actix_rt::test]
async fn a_body_that_stops_arriving_is_timed_out() {
    let app = app_with(|c| {
        c.server = ServerSettings {
            body_timeout_secs: 1,
            ..ServerSettings::default()
        }
    })
    .await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    let (status, body) = raw(&app, &head, br#"{"model":"#).await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"]["code"], "request_timeout");
    let head = "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    let (status, body) = raw(&app, head, br#"{"username":"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not arrive"),
        "{body}"
    );
}

#[actix_rt::test]
async fn a_client_slow_to_send_its_headers_is_cut_off() {
    let app = app_with(|c| {
        c.server = ServerSettings {
            request_head_timeout_secs: 1,
            ..ServerSettings::default()
        }
    })
    .await;
    let addr = app.address.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(GUARD, conn.read_to_end(&mut got))
        .await
        .expect("the server closed the connection")
        .ok();
    let text = String::from_utf8_lossy(&got);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

#[actix_rt::test]
async fn over_long_urls_and_headers_get_json_errors() {
    let app = app_with(|_| {}).await;
    let long = "x".repeat(9 * 1024);
    let res = app
        .client
        .get(format!("{}/v1/models?q={long}", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 414);
    assert_eq!(json_body(res).await["error"]["code"], "uri_too_long");
    let mut req = app.client.get(format!("{}/api/instance", app.address));
    for n in 0..20 {
        req = req.header(format!("x-filler-{n}"), "y".repeat(1000));
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 431);
    assert_eq!(json_body(res).await["error"]["code"], "headers_too_large");
    // Within the limits all is as ever.
    let res = app
        .client
        .get(format!("{}/v1/models", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[actix_rt::test]
async fn api_answers_are_never_cached() {
    let app = app_with(|_| {}).await;
    let root = app.root_token().await;
    for res in [
        app.api_get("/api/users/me", &root).await,
        app.api_post("/api/tokens", &root, serde_json::json!({"name": "t"}))
            .await,
        app.api_get("/api/users/me", "not-a-token").await,
        app.api_get("/api/instance", &root).await,
    ] {
        assert_eq!(res.headers()["cache-control"], "no-store", "{}", res.url());
    }
}

#[actix_rt::test]
async fn metrics_can_require_a_token() {
    let app = app_with(|c| {
        c.metrics = MetricsSettings {
            token: Some("scrape-secret-123".into()),
            listen: None,
        }
    })
    .await;
    let url = format!("{}/metrics", app.address);
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(json_body(res).await["error"]["code"], "unauthorized");
    let res = app.client.get(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .get(&url)
        .bearer_auth("scrape-secret-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("sluice_"));
}

#[actix_rt::test]
async fn metrics_can_have_an_address_of_its_own() {
    let app = app_with(|c| {
        c.metrics = MetricsSettings {
            token: None,
            listen: Some("127.0.0.1:0".into()),
        }
    })
    .await;
    let own = app.metrics_address.clone().expect("a metrics address");
    let res = app.client.get(format!("{own}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("sluice_"));
    // Nothing else is served there…
    let res = app
        .client
        .get(format!("{own}/v1/models"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // …and the main address no longer serves it.
    let res = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .client
        .get(format!("{}/v1/models", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[cfg(unix)]
#[actix_rt::test]
async fn the_database_files_and_the_secret_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = app_with(|c| c.sqlite = true).await;
    // Root's first login writes, so the WAL files exist.
    app.root_token().await;
    let app = app.restart_with(|s| s.secret = None).await;
    let dir = app.data_dir();
    for name in ["sluice.db", "sluice.db-wal", "sluice.db-shm", "secret"] {
        let mode = std::fs::metadata(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} is {:o}", mode & 0o777);
    }
    // A file made readable by others is made private at the next start.
    std::fs::set_permissions(dir.join("sluice.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let app = app.restart().await;
    let mode = std::fs::metadata(app.data_dir().join("sluice.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
