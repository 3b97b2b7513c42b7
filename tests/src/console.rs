//! What the console's browser tests run against: a real Sluice whose public URL
//! is its own address, a mock provider that answers slowly enough for requests
//! to be seen in flight, and the loopback SMTP server's inbox readable over HTTP,
//! so a browser test in Node can follow a mailed link. [`run_story`] runs one
//! `tests/console/*.test.mjs` file against a fresh fixture.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;
use serde_json::json;

use crate::helpers::{spawn_app, AppConfig, TestApp, ROOT_PASSWORD};
use crate::mock::{MockConfig, MockProvider};
use crate::python::workspace;
use crate::smtp::SmtpServer;

/// How long the mock provider takes to answer, so requests are visibly in flight.
pub const MOCK_LATENCY: Duration = Duration::from_millis(800);

/// Everything a browser story needs, running.
pub struct ConsoleFixture {
    /// Sluice, with the console at `/`.
    pub app: TestApp,
    /// The provider channels point at.
    pub mock: MockProvider,
    /// Where Sluice sends mail.
    pub smtp: Arc<SmtpServer>,
    /// `http://127.0.0.1:PORT` of the inbox reader.
    pub mailbox_url: String,
    mailbox: ServerHandle,
}

impl ConsoleFixture {
    /// Start the mock provider, the SMTP server and its inbox reader, and Sluice.
    pub async fn start() -> ConsoleFixture {
        ConsoleFixture::start_with(|_| {}).await
    }

    /// The same, with Sluice's configuration changed first (chains declared in
    /// its config file, say).
    pub async fn start_with(configure: impl FnOnce(&mut AppConfig)) -> ConsoleFixture {
        let mock = MockProvider::start(MockConfig {
            latency: MOCK_LATENCY,
            ..MockConfig::default()
        })
        .await;
        let smtp = Arc::new(SmtpServer::start().await);
        let (mailbox_url, mailbox) = serve_mailbox(smtp.clone());
        let mut config = AppConfig::new(Vec::new());
        config.smtp = Some(smtp.settings());
        config.public_url = None;
        configure(&mut config);
        let app = spawn_app(config).await;
        ConsoleFixture {
            app,
            mock,
            smtp,
            mailbox_url,
            mailbox,
        }
    }

    /// The environment a story reads (see `tests/console/lib.mjs`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SLUICE_URL", self.app.address.clone()),
            ("SLUICE_ROOT_PASSWORD", ROOT_PASSWORD.into()),
            ("MAILBOX_URL", self.mailbox_url.clone()),
            ("MOCK_BASE_URL", self.mock.base_url.clone()),
            ("MOCK_LATENCY_MS", MOCK_LATENCY.as_millis().to_string()),
            (
                "SCREENSHOT_DIR",
                workspace()
                    .join("target/console-screenshots")
                    .display()
                    .to_string(),
            ),
        ]
    }

    /// Stop everything.
    pub async fn stop(self) {
        self.mailbox.stop(false).await;
        self.app.stop().await;
        self.mock.stop().await;
    }
}

#[derive(Deserialize)]
struct MailQuery {
    to: Option<String>,
    wait_ms: Option<u64>,
}

/// `GET /mails?to=&wait_ms=`: the mails sent to `to` (all when absent), waiting up
/// to `wait_ms` for at least one; each with its decoded body and the links in it.
async fn mails(smtp: web::Data<Arc<SmtpServer>>, q: web::Query<MailQuery>) -> HttpResponse {
    let deadline = Instant::now() + Duration::from_millis(q.wait_ms.unwrap_or(0).min(60_000));
    loop {
        let found: Vec<_> = smtp
            .mails()
            .into_iter()
            .filter(|m| {
                q.to.as_ref()
                    .is_none_or(|to| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
            })
            .map(|m| {
                let body = m.body();
                let links: Vec<String> = body
                    .split_whitespace()
                    .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
                    .map(String::from)
                    .collect();
                json!({ "to": m.to, "subject": m.header("Subject"), "body": body, "links": links })
            })
            .collect();
        if !found.is_empty() || Instant::now() >= deadline {
            return HttpResponse::Ok().json(found);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn serve_mailbox(smtp: Arc<SmtpServer>) -> (String, ServerHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the mailbox");
    let url = format!("http://{}", listener.local_addr().expect("mailbox address"));
    let data = web::Data::new(smtp);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/mails", web::get().to(mails))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(0)
    .listen(listener)
    .expect("listen mailbox")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (url, handle)
}

/// The folder of the browser stories and their `package.json`.
pub fn stories_dir() -> PathBuf {
    workspace().join("tests/console")
}

/// Install the browser driver on first use. Needs Node.js and npm, and
/// Debian's chromium at `/usr/bin/chromium`.
fn install_node_modules() {
    crate::npm::install(&stories_dir());
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Debian's chromium: apt-get install -y chromium"
    );
}

/// One story at a time: each drives a whole browser.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Run `tests/console/<file>` with `node --test` against a fresh fixture; fails
/// the calling test with the story's output when any of its steps fails.
pub async fn run_story(file: &str) {
    run_story_with(file, |_| {}).await;
}

/// [`run_story`] against a Sluice whose configuration `configure` changed.
pub async fn run_story_with(file: &str, configure: impl FnOnce(&mut AppConfig)) {
    install_node_modules();
    let _one_at_a_time = BROWSER.lock().await;
    let fixture = ConsoleFixture::start_with(configure).await;
    let mut command = tokio::process::Command::new("node");
    command
        .args(["--test", "--test-reporter=spec", file])
        .current_dir(stories_dir())
        .envs(fixture.env())
        .kill_on_drop(true);
    let output = command.output().await.expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    fixture.stop().await;
    assert!(
        output.status.success(),
        "browser story {file} failed:\n{stdout}\n{stderr}"
    );
}
