//! A real Redis Cluster of three primaries on loopback (the machine's
//! `redis-server` and `redis-cli`), for tests that replicas work on one as on
//! a single Redis. Stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running three-node Redis Cluster.
pub struct RedisCluster {
    nodes: Vec<Child>,
    dir: PathBuf,
    /// Its nodes as `[cluster] redis_url` lists them: `redis://…,redis://…`.
    pub url: String,
}

impl RedisCluster {
    /// Start three nodes on free ports, join them and wait until every slot is served.
    pub async fn start() -> RedisCluster {
        let dir =
            std::env::temp_dir().join(format!("sluice-redis-cluster-{}", uuid::Uuid::new_v4().simple()));
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for port in &ports {
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("a directory for the node");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
                .args(["--save", "", "--appendonly", "no"])
                .current_dir(&node_dir)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server starts (apt-get install -y redis-server)");
            nodes.push(child);
        }
        let cluster = RedisCluster {
            nodes,
            dir,
            url: ports
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(","),
        };
        for port in &ports {
            wait_for(|| redis_cli(*port, &["ping"]).is_some_and(|out| out.contains("PONG"))).await;
        }
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(created.success(), "the cluster forms");
        for port in &ports {
            wait_for(|| {
                redis_cli(*port, &["cluster", "info"]).is_some_and(|out| out.contains("cluster_state:ok"))
            })
            .await;
        }
        cluster
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free now whose cluster-bus port (10,000 above) is free too: below
/// the kernel's ephemeral range, so that neither can overflow or be taken by
/// an outgoing connection.
fn free_port() -> u16 {
    loop {
        let pick = 20_000 + (uuid::Uuid::new_v4().as_u128() % 10_000) as u16;
        let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(pick) && free(pick + 10_000) {
            return pick;
        }
    }
}

fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Wait for `ready` (looked at every 50 ms); fail after 10 s.
async fn wait_for(mut ready: impl FnMut() -> bool) {
    for _ in 0..200 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the Redis Cluster did not come up");
}
