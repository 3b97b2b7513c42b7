//! Building and running the application: database, actors, HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use sluice_actors::ledger::Flush;
use sluice_actors::prober::Prober;
use sluice_actors::{BudgetPolicy, Ledger, Router};
use sluice_migration::{Migrator, MigratorTrait};

use crate::auth::bootstrap::ensure_root_password;
use crate::auth::jwt::JwtKeys;
use crate::auth::limiter::LoginLimiter;
use crate::auth::mail::start_mailer;
use crate::billing::PriceBook;
use crate::catalog::fallbacks::reload_chains;
use crate::catalog::models::ServedModels;
use crate::catalog::routing::reload_router;
use crate::catalog::sync::sync_config;
use crate::catalog::token_cache::TokenCache;
use crate::config::Settings;
use crate::health_probe::start_prober;
use crate::relay::usage::TokenCounter;
use crate::secrets::{master_secret, SecretBox};
use crate::state::AppState;
use crate::{console, health, manage, metrics, relay};

/// A built application, listening, not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    prober: Addr<Prober>,
}

impl Application {
    /// Connect and migrate the database, sync the config file, start the actors
    /// and bind the listener (port 0 picks a free one; read it with `port()`).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        Application::build_on(settings, listener).await
    }

    /// [`Application::build`] on a listener bound already (so a caller knows the
    /// address before the application does, to make it the public URL).
    pub async fn build_on(settings: Settings, listener: TcpListener) -> anyhow::Result<Application> {
        let db = connect(&settings).await?;
        Migrator::up(&db, None)
            .await
            .context("database migration failed")?;
        let master = master_secret(settings.secret.as_deref(), &settings.data_dir)?;
        let secrets = SecretBox::new(&master);
        sync_config(&db, &settings, &secrets)
            .await
            .context("cannot apply the config file")?;
        ensure_root_password(&db, settings.root_password.as_deref()).await?;

        let relay = &settings.relay;
        let policy = BudgetPolicy {
            window: Duration::from_secs(relay.window_secs),
            margin: Duration::from_millis(relay.window_margin_ms),
            ..BudgetPolicy::default()
        };
        let router = Router::new(policy, Some(db.clone())).start();
        let models = ServedModels::default();
        reload_router(&db, &secrets, &router, &models).await?;
        reload_chains(&db, &models).await?;
        // The ledger builds and sends batches of thousands of rows: on a thread of
        // its own, so that work never delays the router's decisions.
        let ledger_db = db.clone();
        let interval = Duration::from_millis(relay.ledger_interval_ms);
        let ledger = Ledger::start_in_arbiter(&actix::Arbiter::new().handle(), move |_| {
            Ledger::new(ledger_db, interval)
        });
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(relay.connect_timeout_secs))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()?;
        let state = AppState {
            tokens: TokenCache::load(&db).await?,
            models,
            prices: PriceBook::load(&db).await?,
            secrets: secrets.clone(),
            first_bytes: Default::default(),
            counter: Arc::new(TokenCounter::default()),
            jwt: Arc::new(JwtKeys::new(&master, settings.auth.access_ttl_secs)),
            login_limiter: Arc::new(LoginLimiter::new(settings.auth.login_attempts_per_minute)),
            mailer: start_mailer(settings.smtp.as_ref())?,
            metrics: Arc::new(metrics::Metrics::new()?),
            settings: Arc::new(settings),
            db,
            router,
            ledger,
            http,
        };

        let prober = start_prober(
            state.clone(),
            Duration::from_secs(state.settings.health.probe_interval_secs.max(1)),
        );

        let port = listener.local_addr()?.port();
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(relay::routes)
                .configure(manage::routes)
                .configure(health::routes)
                .configure(metrics::routes)
                .configure(console::routes)
        })
        .on_connect(relay::disconnect::on_connect)
        .shutdown_timeout(state.settings.relay.shutdown_timeout_secs)
        .listen(listener)?
        .run();
        tracing::info!(port, "sluice listening");
        Ok(Application {
            port,
            server,
            state,
            prober,
        })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Shared state (database, actors), for tests and tools.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The health prober (send it `ProbeNow` to run a round at once).
    pub fn prober(&self) -> Addr<Prober> {
        self.prober.clone()
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serve until stopped (SIGTERM/SIGINT or the handle): stop accepting, let
    /// in-flight requests finish, then write every pending usage log.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await?;
        flush_ledger(&self.state.ledger).await
    }
}

async fn flush_ledger(ledger: &Addr<Ledger>) -> anyhow::Result<()> {
    let written = ledger
        .send(Flush)
        .await
        .context("ledger stopped")?
        .map_err(|e| anyhow::anyhow!("could not write usage logs at shutdown: {e}"))?;
    tracing::info!(written, "usage logs flushed; bye");
    Ok(())
}

async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let url = &settings.database_url;
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create {}", settings.data_dir.display()))?;
    }
    let mut options = ConnectOptions::new(url.clone());
    options
        .sqlx_logging(false)
        .max_connections(16)
        .connect_timeout(Duration::from_secs(10))
        // On every connection: WAL lets the ledger write while readers read, and
        // in WAL a commit needs no fsync of its own (`synchronous=NORMAL`): a
        // crash or restart of Sluice loses nothing committed; only a power cut
        // may roll back the last moments, as with any database left at defaults.
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
        });
    Database::connect(options)
        .await
        .with_context(|| format!("cannot connect to the database at {}", redact(url)))
}

/// A database URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
