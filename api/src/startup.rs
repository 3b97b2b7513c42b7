//! Building and running the application: database, actors, HTTP server.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
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
use sluice_actors::quota_store::QuotaStore;
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
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::health_probe::start_prober;
use crate::hygiene::Hygiene;
use crate::relay::usage::TokenCounter;
use crate::secrets::{master_secret, SecretBox};
use crate::state::AppState;
use crate::{console, health, manage, metrics, relay};

/// Connections the kernel queues on a listener until they are accepted. Rust's
/// standard library asks for 128: a burst of clients connecting at once
/// overflowed it (benchmarked: 2,000 agents' streams, some of whose connections
/// then failed), and a dropped connection attempt waits a second or more for its
/// retry. Linux caps it at `net.core.somaxconn` (4,096 by default); actix-web
/// asks for 1,024 when it binds, nginx for 511.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Listen on `addr` (host and port; port 0 picks a free one) with a queue of
/// [`LISTEN_BACKLOG`] connections, trying each address the host resolves to.
pub fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut failed = None;
    for addr in addr.to_socket_addrs()? {
        match listen_on(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => failed = Some(e),
        }
    }
    Err(failed
        .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")))
}

fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As the standard library's listeners do: a restart can bind again at once.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// A built application, listening, not yet serving.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
    state: AppState,
    prober: Addr<Prober>,
}

impl Application {
    /// Connect and migrate the database, sync the config file, start the actors
    /// and bind the listener (port 0 picks a free one; read it with `port()`).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let listener =
            listen(&settings.listen).with_context(|| format!("cannot listen on {}", settings.listen))?;
        Application::build_on(settings, listener).await
    }

    /// [`Application::build`] on a listener bound already (so a caller knows the
    /// address before the application does, to make it the public URL).
    pub async fn build_on(settings: Settings, listener: TcpListener) -> anyhow::Result<Application> {
        // Every address first: a taken port fails before anything starts.
        let metrics_listener = settings
            .metrics
            .listen
            .as_deref()
            .map(|addr| listen(addr).with_context(|| format!("cannot listen on {addr} (metrics)")))
            .transpose()?;
        let metrics_port = metrics_listener
            .as_ref()
            .map(|l| l.local_addr().map(|a| a.port()))
            .transpose()?;
        let relay = &settings.relay;
        let policy = BudgetPolicy {
            window: Duration::from_secs(relay.window_secs),
            margin: Duration::from_millis(relay.window_margin_ms),
            ..BudgetPolicy::default()
        };
        let cluster = Cluster::new(&settings.cluster, policy.window + policy.margin)?;
        let master = master_secret(settings.secret.as_deref(), &settings.data_dir)?;
        let secrets = SecretBox::new(&master);
        // Replicas starting together take turns: two migrating one database
        // at once, or inserting the same declared channel, would collide (and
        // two opening one SQLite file at once find it locked).
        let turn = cluster.start_up_turn().await;
        let db = connect(&settings).await?;
        Migrator::up(&db, None)
            .await
            .context("database migration failed")?;
        sync_config(&db, &settings, &secrets)
            .await
            .context("cannot apply the config file")?;
        ensure_root_password(&db, settings.root_password.as_deref()).await?;
        let sealed = crate::catalog::channels::seal_stored_headers(&db, &secrets)
            .await
            .context("cannot seal the channels' header values")?;
        if sealed > 0 {
            tracing::info!(channels = sealed, "sealed header values stored in plain text");
        }
        turn.done().await;

        let router = Router::new(policy, Some(db.clone()), cluster.windows()).start();
        let models = ServedModels::default();
        reload_router(&db, &secrets, &router, &models).await?;
        reload_chains(&db, &models).await?;
        let ledger_interval = Duration::from_millis(relay.ledger_interval_ms);
        let ledger = match (settings.cluster.redis_url.as_deref(), cluster.windows()) {
            (Some(url), Some(windows)) => {
                let store = QuotaStore::open(url, &settings.cluster.prefix)
                    .map_err(|e| anyhow::anyhow!("[cluster] {}", e.0))?;
                // The live replicas (kept by the cluster's presence count), for
                // the share of a balance each may spend while Redis does not answer.
                Ledger::cluster(db.clone(), ledger_interval, store, windows.replicas())
            }
            _ => Ledger::new(db.clone(), ledger_interval),
        }
        .start();
        let http = relay::upstream::Upstream::new(
            Duration::from_secs(relay.connect_timeout_secs),
            relay.ca_file.as_deref(),
        )?;
        let state = AppState {
            tokens: TokenCache::load(&db).await?,
            models,
            prices: PriceBook::load(&db).await?,
            cluster,
            secrets: secrets.clone(),
            first_bytes: Default::default(),
            prompt_counts: Default::default(),
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

        state.cluster.start(state.clone());
        let prober = start_prober(
            state.clone(),
            Duration::from_secs(state.settings.health.probe_interval_secs.max(1)),
        );

        let port = listener.local_addr()?.port();
        let data = web::Data::new(state.clone());
        let hygiene = web::Data::new(Hygiene::new(&state.settings, metrics_port));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(hygiene.clone())
                .wrap(actix_web::middleware::from_fn(crate::hygiene::guard))
                .configure(relay::routes)
                .configure(manage::routes)
                .configure(health::routes)
                .configure(metrics::routes)
                .configure(console::routes)
        })
        .on_connect(relay::disconnect::on_connect)
        .client_request_timeout(Duration::from_secs(
            state.settings.server.request_head_timeout_secs,
        ))
        .shutdown_timeout(state.settings.relay.shutdown_timeout_secs)
        .listen(listener)?;
        let server = match metrics_listener {
            Some(l) => server.listen(l)?,
            None => server,
        }
        .run();
        tracing::info!(port, metrics_port, "sluice listening");
        Ok(Application {
            port,
            metrics_port,
            server,
            state,
            prober,
        })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `/metrics` is served on alone, when `[metrics] listen` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
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
        self.state.cluster.stop();
        flush_ledger(&self.state.ledger).await
    }
}

async fn flush_ledger(ledger: &Addr<Ledger>) -> anyhow::Result<()> {
    // A worker answers its client before its courier hands the usage row over:
    // wait for every row on its way to reach the ledger's mailbox, ahead of `Flush`.
    if tokio::time::timeout(Duration::from_secs(5), sluice_actors::courier::settled())
        .await
        .is_err()
    {
        tracing::warn!("messages from the HTTP workers still on their way after 5 s; flushing without them");
    }
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
        create_private_dir(&settings.data_dir)?;
        private_sqlite_files(url)?;
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

/// Create `dir` (and its parents) readable by this user only, when missing.
pub fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// The SQLite database holds sealed keys, token hashes and password hashes:
/// its file is created readable and writable by this user only (SQLite gives
/// its `-wal` and `-shm` files the same mode), and an existing file readable
/// by others is made private.
fn private_sqlite_files(url: &str) -> anyhow::Result<()> {
    use sea_orm::sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;
    let options = SqliteConnectOptions::from_str(url).context("invalid SQLite URL")?;
    let path = options.get_filename();
    if path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:") {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("cannot make {} private", file.display()))?;
                tracing::warn!(file = %file.display(), "was readable by other users; now 0600");
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod listen_tests {
    use std::net::TcpStream;

    use super::*;

    #[test]
    fn a_burst_of_connections_queues_until_accepted() {
        let listener = listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Nothing accepts: the kernel completes each handshake and queues the
        // connection, up to the backlog. With the standard library's 128, the
        // 130th attempt is dropped and retried after a second, and so on.
        let burst = 600;
        let connected: Vec<TcpStream> = (0..burst)
            .map(|i| {
                TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("connection {i} of {burst} was not queued: {e}"))
            })
            .collect();
        assert_eq!(connected.len(), burst);
    }

    #[test]
    fn an_address_that_cannot_be_listened_on_is_an_error() {
        let taken = listen("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        assert!(listen(&addr).is_err(), "a port in use is refused");
        assert!(listen("no-such-host.invalid:80").is_err());
    }
}
