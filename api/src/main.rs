//! The `sluice` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// jemalloc: measured against glibc's malloc and mimalloc on the relay benchmark
/// (docs/BENCHMARKS.md): as fast as mimalloc, and it gives memory back.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start (the `MALLOC_CONF` of this build; the
/// `_RJEM_MALLOC_CONF` environment variable still overrides). Freed pages go
/// back to the system within a second, by a background thread, not the default
/// ten seconds: idle RSS measured 37 MB before, 30 MB after, with the same
/// relay throughput (docs/BENCHMARKS.md).
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8; 60] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

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
fn main() -> std::process::ExitCode {
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
        Command::Serve => sluice_api::run(cli.config.as_deref()).await,
        Command::Openapi { out: None } => {
            print!("{}", sluice_api::manage::openapi::document_json());
            Ok(())
        }
        Command::Openapi { out: Some(path) } => {
            std::fs::write(&path, sluice_api::manage::openapi::document_json())?;
            Ok(())
        }
    }
}
