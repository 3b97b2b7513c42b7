//! The command line of the `sluice` binary: parse arguments, then serve (or
//! print the OpenAPI description). Its own module so that tests can build a
//! binary with the very same entry point and start real gateway processes.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Sluice: one OpenAI-compatible endpoint in front of many rate-limited keys.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML config file (also SLUICE_CONFIG).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Print the OpenAPI description (or write it to a file).
    Openapi {
        /// Write here instead of standard output (the repo keeps it in openapi/openapi.json).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Failing to start (a port taken, a bad config, a database out of reach) is
/// one line on standard error and exit status 1, never a panic or a backtrace.
pub fn main() -> std::process::ExitCode {
    match actix_web::rt::System::new().block_on(serve()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,actix_server=warn")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => crate::run(cli.config.as_deref()).await,
        Command::Openapi { out: None } => {
            print!("{}", crate::manage::openapi::document_json());
            Ok(())
        }
        Command::Openapi { out: Some(path) } => {
            std::fs::write(&path, crate::manage::openapi::document_json())?;
            Ok(())
        }
    }
}
