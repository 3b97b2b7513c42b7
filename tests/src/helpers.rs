//! `spawn_app()` and friends: the real Sluice on port 0 with its own fresh
//! database, and a `TestApp` with one method per call a user makes.
//!
//! The database is SQLite in a temp dir unless `SLUICE_TEST_DATABASE_URL`
//! names a MySQL/MariaDB or PostgreSQL server; then each test gets a database
//! of its own on that server.

use std::path::PathBuf;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryOrder};
use serde_json::{json, Value};
use sluice_api::config::{
    AuthSettings, ChannelDecl, ClusterSettings, FallbackDecl, HealthSettings, MetricsSettings, RelaySettings,
    ServerSettings, SmtpSettings, TokenDecl,
};
use sluice_api::{Application, Settings};
use sluice_entity::usage_logs;

/// The token every test app has, allowed every model.
pub const TOKEN: &str = "sk-test-0123456789abcdef";

/// Root's first password in test apps (it must be changed at first login).
pub const ROOT_PASSWORD: &str = "root-first-password";

/// Root's password after the first login.
pub const ROOT_NEW_PASSWORD: &str = "root-second-password";

/// The password of accounts made with [`TestApp::user`].
pub const USER_PASSWORD: &str = "user-password-123";

/// A fresh database for one test.
pub async fn fresh_database_url(dir: &std::path::Path) -> String {
    let server = std::env::var("SLUICE_TEST_DATABASE_URL").unwrap_or_default();
    if server.is_empty() || server.starts_with("sqlite") {
        return format!("sqlite://{}?mode=rwc", dir.join("sluice.db").display());
    }
    let name = format!("sluice_t_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to SLUICE_TEST_DATABASE_URL {server}: {e}"));
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
    format!("{base}/{name}")
}

/// One channel of `keys` in front of `base_url` serving `models`.
pub fn channel(name: &str, base_url: &str, keys: &[&str], models: &[&str], rpm: u32) -> ChannelDecl {
    ChannelDecl {
        name: name.into(),
        base_url: base_url.into(),
        kind: "openai".into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        models: models.iter().map(|m| m.to_string()).collect(),
        model_map: Default::default(),
        rpm,
        tpm: 0,
        max_concurrency: 0,
        model_limits: Default::default(),
        priority: 0,
        weight: 1,
        groups: Vec::new(),
        headers: Default::default(),
    }
}

/// What a test app is made of.
pub struct AppConfig {
    /// Channels declared.
    pub channels: Vec<ChannelDecl>,
    /// Tokens declared besides [`TOKEN`].
    pub tokens: Vec<TokenDecl>,
    /// Fallback chains declared.
    pub fallbacks: Vec<FallbackDecl>,
    /// Relay settings (short windows for tests that need them).
    pub relay: RelaySettings,
    /// Session settings.
    pub auth: AuthSettings,
    /// Outgoing mail.
    pub smtp: Option<SmtpSettings>,
    /// Key health checks.
    pub health: HealthSettings,
    /// HTTP limits and timeouts.
    pub server: ServerSettings,
    /// `/metrics` access.
    pub metrics: MetricsSettings,
    /// Redis, for replicas.
    pub cluster: ClusterSettings,
    /// The public URL links in mails start with; `None`: the app's own address.
    pub public_url: Option<String>,
    /// SQLite whatever `SLUICE_TEST_DATABASE_URL` says (for tests of its files).
    pub sqlite: bool,
}

impl AppConfig {
    /// These channels, the default token, default relay settings but a fast ledger.
    pub fn new(channels: Vec<ChannelDecl>) -> Self {
        AppConfig {
            channels,
            tokens: Vec::new(),
            fallbacks: Vec::new(),
            relay: RelaySettings {
                ledger_interval_ms: 100,
                shutdown_timeout_secs: 5,
                ..RelaySettings::default()
            },
            auth: AuthSettings::default(),
            smtp: None,
            health: HealthSettings::default(),
            server: ServerSettings::default(),
            metrics: MetricsSettings::default(),
            cluster: ClusterSettings::default(),
            public_url: Some("http://sluice.test".into()),
            sqlite: false,
        }
    }
}

/// A running Sluice.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    /// Its database.
    pub db: DatabaseConnection,
    /// HTTP client.
    pub client: reqwest::Client,
    /// `http://127.0.0.1:PORT` of `/metrics` when it has an address of its own.
    pub metrics_address: Option<String>,
    /// The router actor, to read live key state.
    pub router: actix::Addr<sluice_actors::Router>,
    /// The health prober.
    pub prober: actix::Addr<sluice_actors::prober::Prober>,
    /// The ledger, to see what waits for quota.
    pub ledger: actix::Addr<sluice_actors::Ledger>,
    handle: ServerHandle,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
    settings: Settings,
    _dir: Option<tempdir::TempDir>,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Start Sluice with `config` on a fresh database.
pub async fn spawn_app(config: AppConfig) -> TestApp {
    let dir = std::env::temp_dir().join(format!("sluice-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut tokens = vec![TokenDecl {
        name: "test".into(),
        key: TOKEN.into(),
        models: None,
        ..Default::default()
    }];
    tokens.extend(config.tokens);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the app's port");
    let address = format!("http://{}", listener.local_addr().expect("bound address"));
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: if config.sqlite {
            format!("sqlite://{}?mode=rwc", dir.join("sluice.db").display())
        } else {
            fresh_database_url(&dir).await
        },
        data_dir: dir.clone(),
        secret: Some("test-secret".into()),
        root_password: Some(ROOT_PASSWORD.into()),
        relay: config.relay,
        auth: config.auth,
        health: config.health,
        server: config.server,
        metrics: config.metrics,
        cluster: config.cluster,
        smtp: config.smtp,
        public_url: config.public_url.unwrap_or(address),
        channels: config.channels,
        tokens,
        fallbacks: config.fallbacks,
    };
    let mut app = start_on(settings, listener).await;
    app._dir = Some(tempdir::TempDir(dir));
    app
}

async fn start(settings: Settings) -> TestApp {
    let app = Application::build(settings.clone()).await.expect("app builds");
    running(app, settings)
}

async fn start_on(settings: Settings, listener: std::net::TcpListener) -> TestApp {
    let app = Application::build_on(settings.clone(), listener)
        .await
        .expect("app builds");
    running(app, settings)
}

fn running(app: Application, settings: Settings) -> TestApp {
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}"));
    let db = app.state().db.clone();
    let router = app.state().router.clone();
    let ledger = app.state().ledger.clone();
    let prober = app.prober();
    let handle = app.handle();
    let running = tokio::task::spawn_local(app.run_until_stopped());
    TestApp {
        address,
        db,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap(),
        metrics_address,
        router,
        prober,
        ledger,
        handle,
        running,
        settings,
        _dir: None,
    }
}

impl TestApp {
    /// POST a JSON body to a `/v1` path with the default token.
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.post_as(TOKEN, path, body).await
    }

    /// POST a JSON body with a given token.
    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}{}", self.address, path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    /// A one-message chat completion.
    pub async fn chat(&self, model: &str, content: &str) -> reqwest::Response {
        self.post(
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": content}]}),
        )
        .await
    }

    /// A streamed one-message chat completion.
    pub async fn chat_stream(&self, model: &str, content: &str) -> reqwest::Response {
        self.post(
            "/v1/chat/completions",
            json!({"model": model, "stream": true, "messages": [{"role": "user", "content": content}]}),
        )
        .await
    }

    /// Usage-log rows written so far, oldest first, waiting up to 5 s for `at_least`.
    pub async fn usage_logs(&self, at_least: usize) -> Vec<usage_logs::Model> {
        for _ in 0..100 {
            let rows = self.all_usage_logs().await;
            if rows.len() >= at_least {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.all_usage_logs().await
    }

    async fn all_usage_logs(&self) -> Vec<usage_logs::Model> {
        usage_logs::Entity::find()
            .order_by_asc(usage_logs::Column::Id)
            .all(&self.db)
            .await
            .expect("read usage logs")
    }

    /// A call to `/api` with an optional access token and JSON body.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.client.request(method, format!("{}{}", self.address, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request sent")
    }

    /// `GET /api…` with a token.
    pub async fn api_get(&self, path: &str, token: &str) -> reqwest::Response {
        self.api(reqwest::Method::GET, path, Some(token), None).await
    }

    /// `POST /api…` with a token.
    pub async fn api_post(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.api(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    /// `PATCH /api…` with a token.
    pub async fn api_patch(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.api(reqwest::Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// `DELETE /api…` with a token.
    pub async fn api_delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.api(reqwest::Method::DELETE, path, Some(token), None).await
    }

    /// Log in; the session JSON (panics unless 200).
    pub async fn login(&self, username: &str, password: &str) -> Value {
        let res = self
            .api(
                reqwest::Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(res.status(), 200, "login as {username}");
        json_body(res).await
    }

    /// Root's access token, after the forced first password change.
    pub async fn root_token(&self) -> String {
        let first = self.login("root", ROOT_PASSWORD).await;
        let res = self
            .api_post(
                "/api/auth/password",
                first["access_token"].as_str().unwrap(),
                json!({"current_password": ROOT_PASSWORD, "new_password": ROOT_NEW_PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), 200, "root changes the first password");
        json_body(res).await["access_token"].as_str().unwrap().to_string()
    }

    /// Create an account as `admin` and log it in; returns (user id, access token).
    pub async fn user(&self, admin: &str, username: &str, role: &str, quota: i64) -> (i64, String) {
        let res = self
            .api_post(
                "/api/users",
                admin,
                json!({"username": username, "password": USER_PASSWORD, "role": role, "quota": quota}),
            )
            .await;
        assert_eq!(res.status(), 201, "create {username}");
        let id = json_body(res).await["id"].as_i64().unwrap();
        let session = self.login(username, USER_PASSWORD).await;
        (id, session["access_token"].as_str().unwrap().to_string())
    }

    /// Run a health-probe round now; how many keys came back.
    pub async fn probe_now(&self) -> usize {
        self.prober
            .send(sluice_actors::prober::ProbeNow)
            .await
            .expect("prober answers")
    }

    /// Live state of every key, by mask order of id.
    pub async fn key_states(&self) -> Vec<sluice_actors::router::KeyState> {
        self.router
            .send(sluice_actors::router::ListKeyStates)
            .await
            .expect("router answers")
    }

    /// Stop gracefully (in-flight requests finish, the ledger flushes).
    pub async fn stop(self) -> Option<tempdir::TempDir> {
        self.handle.stop(true).await;
        self.running.await.expect("server task").expect("clean shutdown");
        self._dir
    }

    /// Stop gracefully and start again on the same database and config.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    /// Stop gracefully and start again on the same database, the config changed by `edit`.
    pub async fn restart_with(self, edit: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = self.settings.clone();
        edit(&mut settings);
        let dir = self.stop().await;
        let mut app = start(settings).await;
        app._dir = dir;
        app
    }

    /// Another Sluice on this one's database, with its settings, on a port of
    /// its own: a replica behind the same load balancer.
    pub async fn replica(&self) -> TestApp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the replica's port");
        start_on(self.settings.clone(), listener).await
    }

    /// What `/readyz` says.
    pub async fn readyz(&self) -> Value {
        json_body(
            self.client
                .get(format!("{}/readyz", self.address))
                .send()
                .await
                .expect("readyz answers"),
        )
        .await
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Where its data lives.
    pub fn data_dir(&self) -> PathBuf {
        self.settings.data_dir.clone()
    }
}

/// Redis on the machine for replicas, under a prefix of the test's own, so
/// tests running at once do not hear each other.
pub fn test_cluster() -> ClusterSettings {
    ClusterSettings {
        redis_url: Some("redis://127.0.0.1:6379/0".into()),
        prefix: format!("sluice-test-{}", uuid::Uuid::new_v4().simple()),
    }
}

/// Two replicas of `config` (which names a cluster), each subscribed to the
/// other's changes: from here on, what one does reaches the other.
pub async fn replicas_of(config: AppConfig) -> (TestApp, TestApp) {
    let a = spawn_app(config).await;
    let b = a.replica().await;
    for app in [&a, &b] {
        until(|| async { app.readyz().await["redis"] == "connected" }).await;
    }
    (a, b)
}

/// Wait for `event`, looked at every 20 ms; fail after 10 s.
pub async fn until<F, Fut>(mut event: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !event().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 10 s for it in vain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The JSON body of a response (panics with the text when it is not JSON).
pub async fn json_body(res: reqwest::Response) -> Value {
    let text = res.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Parse an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}
