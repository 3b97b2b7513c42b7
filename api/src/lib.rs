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
    let app = Application::build(settings).await?;
    app.run_until_stopped().await
}
