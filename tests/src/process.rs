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
    /// Start `count` processes of `binary` at once with `config` (a TOML file,
    /// which names the Redis prefix) on `database_url` and the machine's
    /// Redis; returns once each listens (its migrations are done).
    pub fn start(
        binary: &str,
        config: &Path,
        database_url: &str,
        data_dir: &Path,
        count: usize,
    ) -> Vec<Self> {
        let children: Vec<Child> = (0..count)
            .map(|_| {
                Command::new(binary)
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
                    .expect("the gateway starts")
            })
            .collect();
        let mut started = Vec::with_capacity(count);
        let mut failed = None;
        for child in children {
            match listening(child) {
                Ok(process) => started.push(process),
                Err(why) => failed = failed.or(Some(why)),
            }
        }
        // Dropping the others kills them: nothing outlives a failed start.
        if let Some(why) = failed {
            drop(started);
            panic!("{why}");
        }
        started
    }

    /// SIGKILL: it stops at once, finishing nothing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read `child`'s log until it says its port; a child that exits first is
/// reaped and its failure returned.
fn listening(mut child: Child) -> Result<GatewayProcess, String> {
    let stdout = child.stdout.take().expect("its standard output");
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            return Err(format!(
                "a gateway exited ({status}) before it listened; its error is above"
            ));
        };
        if let Some(port) = line
            .split("port=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse::<u16>().ok())
        {
            break port;
        }
    };
    // Keep reading its log, so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Ok(GatewayProcess {
        child,
        address: format!("http://127.0.0.1:{port}"),
    })
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
