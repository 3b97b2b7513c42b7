//! Tools of the relay benchmark (`src/bin/relay_bench.rs`): free ports, `wrk`
//! runs and their figures, a process's CPU time and memory from `/proc`.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something accepts connections on `port` (30 s at most).
pub fn wait_until_up(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What one `wrk` run measured.
#[derive(Debug, Clone, Default)]
pub struct Wrk {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Non-2xx answers and socket errors.
    pub errors: u64,
}

/// `wrk -t1 -c{connections} -d{duration} --latency -s {script} {url}`.
pub fn wrk(url: &str, script: &Path, duration: Duration, connections: u32) -> Wrk {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs()),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .expect("wrk runs: apt-get install -y wrk");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

fn parse_duration(s: &str) -> Duration {
    let (number, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = number.parse().unwrap_or(0.0);
    Duration::from_secs_f64(match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => 0.0,
    })
}

/// The figures of `wrk --latency`'s report.
pub fn parse_wrk(text: &str) -> Wrk {
    let mut w = Wrk::default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["50%", v] => w.p50 = parse_duration(v),
            ["99%", v] => w.p99 = parse_duration(v),
            ["Requests/sec:", v] => w.rps = v.parse().unwrap_or(0.0),
            [n, "requests", "in", ..] => w.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => w.errors += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                w.errors += rest
                    .iter()
                    .filter_map(|t| t.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    w
}

/// User plus system CPU seconds a process (all its threads) used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime); after the command they are 12 and 13.
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Resident memory of a process, in MB.
pub fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_reports_are_read() {
        let report = "Running 10s test @ http://127.0.0.1:1/v1/chat/completions
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.01ms  500.00us  12.00ms   90.00%
  Latency Distribution
     50%    1.85ms
     75%    2.10ms
     90%    2.60ms
     99%  750.00us
  150000 requests in 10.00s, 50.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  15000.12
";
        let w = parse_wrk(report);
        assert_eq!(w.requests, 150_000);
        assert!((w.rps - 15000.12).abs() < 1e-6);
        assert_eq!(w.p50, Duration::from_micros(1850));
        assert_eq!(w.p99, Duration::from_micros(750));
        assert_eq!(w.errors, 7);
    }
}

/// Latencies of an open-loop run.
#[derive(Debug, Clone, Default)]
pub struct OpenLoop {
    /// Requests sent.
    pub sent: usize,
    /// Answers that were not 200 (or never came).
    pub errors: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
}

/// Offer `rate` requests a second for `duration`, whatever the answers' pace
/// (each request leaves at its time, as real clients do), and measure each one.
pub async fn open_loop(url: &str, token: &str, body: &str, rate: u32, duration: Duration) -> OpenLoop {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()
        .expect("client");
    let n = (f64::from(rate) * duration.as_secs_f64()) as usize;
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until(started + Duration::from_secs_f64(i as f64 / f64::from(rate))).await;
        let request = client
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string());
        tasks.push(tokio::task::spawn_local(async move {
            let sent = Instant::now();
            let ok = match request.send().await {
                Ok(res) => res.status() == 200 && res.bytes().await.is_ok(),
                Err(_) => false,
            };
            (ok, sent.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    let mut errors = 0;
    for task in tasks {
        let (ok, latency) = task.await.expect("request task");
        if ok {
            latencies.push(latency);
        } else {
            errors += 1;
        }
    }
    latencies.sort();
    let at = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    OpenLoop {
        sent: n,
        errors,
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
    }
}
