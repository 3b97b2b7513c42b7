//! Routing benchmark: N keys × RPM on the strict mock provider, offered a
//! steady request rate, as in DESIGN.md ("4 keys × 40 RPM offered 3 requests/s").
//!
//! `cargo run --release -p sluice-tests --bin routing-bench -- --help`
//! (`--dispatch` measures one routing decision instead, see `dispatch_bench`).
//!
//! It prints requests served, client-visible errors, provider 429s, the most
//! requests any key saw in one window, and latency percentiles next to the
//! best any scheduler could do on that load.

use std::time::{Duration, Instant};

use clap::Parser;
use sluice_api::config::ClusterSettings;
use sluice_tests::helpers::{channel, spawn_app, AppConfig};
use sluice_tests::mock::{MockConfig, MockProvider};

#[derive(Parser, Debug)]
#[command(about = "Offer a steady load to Sluice in front of strictly limited mock keys")]
struct Args {
    /// Upstream keys.
    #[arg(long, default_value_t = 4)]
    keys: usize,
    /// Requests per window each key allows (the mock enforces it strictly).
    #[arg(long, default_value_t = 40)]
    rpm: u32,
    /// Offered load, requests per second.
    #[arg(long, default_value_t = 3.0)]
    rate: f64,
    /// How long to offer load, seconds.
    #[arg(long, default_value_t = 90)]
    duration: u64,
    /// Provider latency per request, milliseconds.
    #[arg(long, default_value_t = 300)]
    latency_ms: u64,
    /// Window length, seconds (60 for real providers).
    #[arg(long, default_value_t = 60)]
    window: u64,
    /// Stream every other request.
    #[arg(long)]
    mixed_streams: bool,
    /// Stream every request.
    #[arg(long)]
    streams: bool,
    /// This many of the keys accept connections and never answer.
    #[arg(long, default_value_t = 0)]
    hanging: usize,
    /// Also run the load split over this many replicas sharing Redis
    /// (`--redis`), and print both runs side by side.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Redis for `--replicas` (each run its own key prefix).
    #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
    redis: String,
    /// Instead: the cost of one routing decision at 10 and 1,000 keys and 100 and
    /// 10,000 waiting requests (the scheduler alone).
    #[arg(long)]
    dispatch: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// The smallest possible wait of request `i` arriving at `i / rate`: with
/// `capacity` slots per window, request i may start no sooner than request
/// `i - capacity` started plus one window.
fn optimal_waits(n: usize, rate: f64, capacity: usize, window: Duration) -> Vec<Duration> {
    let mut starts: Vec<f64> = Vec::with_capacity(n);
    let mut waits = Vec::with_capacity(n);
    for i in 0..n {
        let arrival = i as f64 / rate;
        // capacity 0: unlimited keys, nobody waits.
        let start = if capacity > 0 && i >= capacity {
            arrival.max(starts[i - capacity] + window.as_secs_f64())
        } else {
            arrival
        };
        starts.push(start);
        waits.push(Duration::from_secs_f64(start - arrival));
    }
    waits
}

fn print_dispatch_costs() {
    println!("keys  waiters  nobody-can-go (µs)  grant one (µs)");
    for keys in [10, 1000] {
        for waiters in [100, 10_000] {
            let cost = sluice_tests::dispatch_bench::measure(keys, waiters);
            println!(
                "{:>4}  {:>7}  {:>18.1}  {:>14.1}",
                cost.keys,
                cost.waiters,
                cost.saturated.as_secs_f64() * 1e6,
                cost.grant.as_secs_f64() * 1e6
            );
        }
    }
}

#[actix_rt::main]
async fn main() {
    let args = Args::parse();
    if args.dispatch {
        return print_dispatch_costs();
    }
    let n = (args.rate * args.duration as f64).round() as usize;
    println!(
        "offering {n} requests at {}/s for {} s to {} keys × {} per {} s (provider latency {} ms){}",
        args.rate,
        args.duration,
        args.keys,
        args.rpm,
        args.window,
        args.latency_ms,
        if args.hanging > 0 {
            format!(", {} of them hanging", args.hanging)
        } else {
            String::new()
        }
    );
    let mut runs = vec![(1, run(&args, 1).await)];
    if args.replicas > 1 {
        runs.push((args.replicas, run(&args, args.replicas).await));
    }
    let window = Duration::from_secs(args.window);
    let mut optimal = optimal_waits(n, args.rate, args.keys * args.rpm as usize, window);
    optimal.sort();
    let base = Duration::from_millis(args.latency_ms);
    let heading: Vec<String> = runs
        .iter()
        .map(|(r, _)| {
            if *r == 1 {
                "one process".to_string()
            } else {
                format!("{r} replicas")
            }
        })
        .collect();
    let row = |name: &str, cells: Vec<String>| {
        let cells: Vec<String> = cells.iter().map(|c| format!("{c:>24}")).collect();
        println!("{name:<42}{}", cells.join(""));
    };
    row("", heading);
    row(
        "served",
        runs.iter()
            .map(|(_, r)| format!("{} / {n}", r.latencies.len()))
            .collect(),
    );
    row(
        "client-visible errors",
        runs.iter()
            .map(|(_, r)| {
                if r.errors.is_empty() {
                    "none".into()
                } else {
                    format!("{:?}", r.errors)
                }
            })
            .collect(),
    );
    row(
        "provider 429s",
        runs.iter().map(|(_, r)| r.rate_limited.to_string()).collect(),
    );
    row(
        &format!("most on one key in any {} s window", args.window),
        runs.iter()
            .map(|(_, r)| format!("{} (limit {})", r.max_in_window, args.rpm))
            .collect(),
    );
    let seconds = |d: Duration| format!("{:.3} s", d.as_secs_f64());
    for (name, p) in [("latency p50", 0.5), ("latency p95", 0.95), ("latency max", 1.0)] {
        row(
            name,
            runs.iter()
                .map(|(_, r)| seconds(percentile(&r.latencies, p)))
                .collect(),
        );
    }
    for (name, p) in [
        ("best possible p50 (wait + latency)", 0.5),
        ("best possible p95", 0.95),
        ("best possible max", 1.0),
    ] {
        row(
            name,
            runs.iter()
                .map(|_| seconds(percentile(&optimal, p) + base))
                .collect(),
        );
    }
}

/// What one run measured.
struct Report {
    latencies: Vec<Duration>,
    errors: std::collections::BTreeMap<u16, usize>,
    rate_limited: usize,
    max_in_window: usize,
}

/// Offer the load to `replicas` gateways (sharing Redis when more than one),
/// each request to the next replica in turn, against a fresh strict mock.
async fn run(args: &Args, replicas: usize) -> Report {
    let window = Duration::from_secs(args.window);
    let mock = MockProvider::start(MockConfig {
        rpm_per_key: args.rpm,
        window,
        latency: Duration::from_millis(args.latency_ms),
        ..MockConfig::default()
    })
    .await;
    let keys: Vec<String> = (1..=args.keys).map(|i| format!("nvapi-bench-{i}")).collect();
    for key in keys.iter().take(args.hanging) {
        mock.set_behavior(key, sluice_tests::mock::KeyBehavior::Hang);
    }
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut config = AppConfig::new(vec![channel(
        "nim",
        &mock.base_url,
        &key_refs,
        &["bench"],
        args.rpm,
    )]);
    config.relay.window_secs = args.window;
    config.relay.max_wait_secs = 120;
    if replicas > 1 {
        config.cluster = ClusterSettings {
            redis_url: Some(args.redis.clone()),
            prefix: format!("sluice-bench-{}", uuid::Uuid::new_v4().simple()),
        };
    }
    let first = spawn_app(config).await;
    let mut apps = vec![first];
    for _ in 1..replicas {
        let replica = apps[0].replica().await;
        apps.push(replica);
    }
    // Shared windows need the replicas to hear each other first.
    for app in apps.iter().filter(|_| replicas > 1) {
        sluice_tests::helpers::until(|| async { app.readyz().await["redis"] == "connected" }).await;
    }

    let n = (args.rate * args.duration as f64).round() as usize;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let at = started + Duration::from_secs_f64(i as f64 / args.rate);
        tokio::time::sleep_until(at.into()).await;
        let app = &apps[i % apps.len()];
        let client = app.client.clone();
        let url = format!("{}/v1/chat/completions", app.address);
        let stream = args.streams || (args.mixed_streams && i % 2 == 1);
        tasks.push(tokio::task::spawn_local(async move {
            let t0 = Instant::now();
            let res = client
                .post(url)
                .bearer_auth(sluice_tests::helpers::TOKEN)
                .json(&serde_json::json!({"model": "bench", "stream": stream,
                    "messages": [{"role": "user", "content": format!("request {i}")}]}))
                .send()
                .await;
            let status = match res {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let _ = r.bytes().await;
                    s
                }
                Err(_) => 0,
            };
            (status, t0.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    let mut errors: std::collections::BTreeMap<u16, usize> = Default::default();
    for t in tasks {
        let (status, latency) = t.await.unwrap();
        if status == 200 {
            latencies.push(latency);
        } else {
            *errors.entry(status).or_default() += 1;
        }
    }
    latencies.sort();
    let report = Report {
        latencies,
        errors,
        rate_limited: mock.rate_limited(),
        max_in_window: keys.iter().map(|k| mock.max_in_window(k)).max().unwrap_or(0),
    };
    for app in apps {
        app.stop().await;
    }
    report
}
