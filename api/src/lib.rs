//! Sluice's HTTP side: the `/v1` relay, health probes, configuration and
//! start-up. `main.rs` only parses arguments and calls [`run`].

pub mod audit;
pub mod auth;
pub mod billing;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod console;
pub mod error;
pub mod health;
pub mod health_probe;
pub mod hygiene;
pub mod manage;
pub mod metrics;
pub mod relay;
pub mod secrets;
pub mod startup;
pub mod state;

pub use config::Settings;
pub use startup::Application;

/// Load settings, build the application and serve until stopped.
pub async fn run(config: Option<&std::path::Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    raise_open_files_limit();
    let app = Application::build(settings).await?;
    app.run_until_stopped().await
}

/// Every open stream holds two sockets (the client's and the provider's), so
/// the usual soft limit of 1,024 open files would cap a gateway near 500
/// streams. Raise it to the hard limit, as nginx's `worker_rlimit_nofile` or
/// Go's runtime do; the hard limit is the operator's to set.
fn raise_open_files_limit() {
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
}
