//! Real gateway processes (the `sluice` binary's entry point, built with the
//! tests as `sluice-replica`), for tests of replicas that must be separate
//! processes: one is killed with SIGKILL and nothing of it runs on.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// One running gateway process; killed when dropped.
pub struct GatewayProcess {
    child: Child,
    /// Where it listens, as `http://127.0.0.1:PORT`.
    pub address: String,
}

impl GatewayProcess {
    /// Start `binary` with `config` (a TOML file, which names the Redis
    /// prefix) on `database_url` and the machine's Redis; returns once it
    /// listens (its migrations are done).
    pub fn start(binary: &str, config: &Path, database_url: &str, data_dir: &Path) -> Self {
        let mut child = Command::new(binary)
            .args(["serve", "--config"])
            .arg(config)
            .env("SLUICE_LISTEN", "127.0.0.1:0")
            .env("DATABASE_URL", database_url)
            .env("SLUICE_REDIS_URL", "redis://127.0.0.1:6379/0")
            .env("SLUICE_DATA_DIR", data_dir)
            .env("SLUICE_SECRET", "the same secret on every replica")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the gateway starts");
        let stdout = child.stdout.take().expect("its standard output");
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("the gateway logs its port before it exits")
                .expect("its log is text");
            if let Some(rest) = line.split("port=").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .expect("a port number");
            }
        };
        // Keep reading its log, so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        GatewayProcess {
            child,
            address: format!("http://127.0.0.1:{port}"),
        }
    }

    /// SIGKILL: it stops at once, finishing nothing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
