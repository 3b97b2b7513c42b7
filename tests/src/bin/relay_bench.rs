//! Relay overhead against nginx: the real `sluice` binary (release build) and
//! nginx's `proxy_pass` in front of the same static upstream (nginx answering a
//! fixed chat completion), loaded by `wrk` in one run, alternating, so both see
//! the same machine. Prints requests per second, latency, the ratio, CPU time per
//! request of each proxy, and Sluice's memory.
//!
//! Needs Debian's `nginx-light` and `wrk` (it installs nothing), and a release
//! build of the gateway:
//!
//! ```sh
//! cargo build --release && cargo run --release -p sluice-tests --bin relay-bench
//! ```
//!
//! `--flat 300` instead loads Sluice alone for five minutes and prints each
//! 10 s slice (is the last as fast as the first?) and the ledger's lag;
//! `--database-url` runs it on MariaDB or PostgreSQL. `--open-loop 5000`
//! offers 5,000 requests a second on a fixed schedule and prints the latency
//! Sluice adds to the upstream's; `--streams 9900` holds 9,900 streams
//! open at once and prints Sluice's memory. `--history-kb 32` sends with
//! each request (and each stream) 32 KB of earlier conversation, as agents
//! do; `--free` leaves the model unpriced, so no quota is held. `--tls` makes
//! the upstream speak HTTPS with HTTP/2, as hosted providers do
//! (`--h2-streams` sets its limit of concurrent streams on a connection).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use sluice_tests::relay_bench::{cpu_seconds, free_port, rss_mb, wait_until_up, wrk, Wrk};

#[derive(Parser, Debug)]
#[command(about = "Sluice's relay against nginx proxy_pass, on the same static upstream")]
struct Args {
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Open connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Rounds of (nginx, Sluice).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Instead of comparing: load Sluice alone for this many seconds, in 10 s slices.
    #[arg(long)]
    flat: Option<u64>,
    /// Instead: offer this many requests a second open-loop, to the upstream
    /// directly and through Sluice, and print the latency Sluice adds.
    #[arg(long)]
    open_loop: Option<u32>,
    /// Instead: hold this many streams open through Sluice at once (a slow
    /// upstream keeps them open) and print Sluice's memory.
    #[arg(long)]
    streams: Option<usize>,
    /// Send with each request an earlier conversation of about this many KB
    /// (40 messages), as an agent resends its history every turn.
    #[arg(long, default_value_t = 0)]
    history_kb: usize,
    /// The upstream speaks HTTPS and offers HTTP/2, as hosted providers do; Sluice
    /// trusts its certificate (made with the `openssl` command) through `[relay] ca_file`.
    #[arg(long)]
    tls: bool,
    /// With `--tls`: the upstream's limit of concurrent HTTP/2 streams on one
    /// connection (nginx's default; RFC 9113 advises servers to allow at least 100).
    #[arg(long, default_value_t = 128)]
    h2_streams: u32,
    /// Leave the model unpriced: requests hold no quota (to see what holding costs).
    #[arg(long)]
    free: bool,
    /// Sluice's database (default: SQLite in a temporary directory).
    #[arg(long)]
    database_url: Option<String>,
    /// The gateway binary.
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
}

/// A chat completion as a provider returns it, with usage.
const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1764400000,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":14,"completion_tokens":3,"total_tokens":17}}"#;

const ROOT_PASSWORD: &str = "relay-bench-root-1";

/// The upstream's answer to a streamed request: a first event at once, then
/// comments trickled at a byte a second, so the stream stays open for minutes.
fn slow_stream() -> String {
    let first = r#"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"bench","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
    format!("{first}\\n\\n{}data: [DONE]\\n\\n", ": waiting\\n\\n".repeat(100))
}

/// An nginx instance with one server block.
struct Nginx {
    child: Child,
    port: u16,
    workers: Vec<u32>,
}

impl Nginx {
    /// `server` is the inside of the server block; it listens on the returned port.
    fn start(dir: &Path, name: &str, workers: u32, http: &str, server: &str) -> Nginx {
        Nginx::start_with(dir, name, workers, http, "", server, 8192)
    }

    /// `listen` is added to the listen directive (say, ` ssl http2`).
    fn start_with(
        dir: &Path,
        name: &str,
        workers: u32,
        http: &str,
        listen: &str,
        server: &str,
        connections: u32,
    ) -> Nginx {
        let port = free_port();
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes {workers}; daemon off; pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  {http}
  server {{ listen 127.0.0.1:{port}{listen}; {server} }}
}}
",
                d = dir.display()
            ),
        )
        .expect("write nginx.conf");
        let child = Command::new("nginx")
            .args(["-c", conf.to_str().unwrap(), "-p", dir.to_str().unwrap()])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nginx ({e}): apt-get install -y nginx-light"));
        wait_until_up(port);
        let workers = children_of(child.id());
        Nginx { child, port, workers }
    }

    fn cpu(&self) -> f64 {
        self.workers.iter().map(|p| cpu_seconds(*p)).sum()
    }
}

/// Processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()?
                        .split_whitespace()
                        .nth(1)?
                        .parse::<u32>()
                        .ok()
                })
                == Some(parent)
        })
        .collect()
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master takes its workers down with it (SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The gateway, as users run it.
struct Sluice {
    child: Child,
    port: u16,
}

impl Sluice {
    /// `ca_file`: the CA that signed the upstream's certificate, when it speaks HTTPS.
    fn start(
        binary: &Path,
        dir: &Path,
        upstream: &str,
        ca_file: Option<&Path>,
        database_url: Option<&str>,
    ) -> Sluice {
        let port = free_port();
        let config = dir.join("sluice.toml");
        let relay = match ca_file {
            Some(file) => format!("[relay]\nca_file = \"{}\"\n\n", file.display()),
            None => String::new(),
        };
        std::fs::write(
            &config,
            format!(
                "{relay}[[channels]]\nname = \"nginx\"\nbase_url = \"{upstream}/v1\"\nkeys = [\"bench-key\"]\nmodels = [\"bench\"]\n"
            ),
        )
        .unwrap();
        let mut command = Command::new(binary);
        command
            .args(["--config", config.to_str().unwrap()])
            .env("SLUICE_LISTEN", format!("127.0.0.1:{port}"))
            .env("SLUICE_DATA_DIR", dir)
            .env("SLUICE_SECRET", "relay-bench")
            .env("SLUICE_ROOT_PASSWORD", ROOT_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}): cargo build --release first",
                binary.display()
            )
        });
        wait_until_up(port);
        Sluice { child, port }
    }

    /// Price the model and make a token with a quota, so every request reserves
    /// and settles quota like a paying tenant's.
    async fn set_up_tenant(&self, priced: bool) -> String {
        let base = format!("http://127.0.0.1:{}", self.port);
        let client = reqwest::Client::new();
        let login: serde_json::Value = client
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"username": "root", "password": ROOT_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let first = login["access_token"].as_str().expect("root logs in").to_string();
        let changed: serde_json::Value = client
            .post(format!("{base}/api/auth/password"))
            .bearer_auth(&first)
            .json(&json!({"current_password": ROOT_PASSWORD, "new_password": "relay-bench-root-2"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwt = changed["access_token"].as_str().unwrap().to_string();
        if priced {
            client
                .put(format!("{base}/api/prices/bench"))
                .bearer_auth(&jwt)
                .json(&json!({"input": 280000, "output": 1100000}))
                .send()
                .await
                .unwrap();
        }
        let token: serde_json::Value = client
            .post(format!("{base}/api/tokens"))
            .bearer_auth(&jwt)
            .json(&json!({"name": "bench", "quota": 1_000_000_000_000i64}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        token["key"].as_str().expect("token made").to_string()
    }

    async fn ledger_pending(&self) -> f64 {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("sluice_ledger_pending_rows "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate authority, and a certificate for 127.0.0.1 it signed with its
/// key: (CA certificate, server certificate, server key), made with `openssl`.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let [ca, ca_key, cert, key] = ["ca.crt", "ca.key", "upstream.crt", "upstream.key"].map(|f| dir.join(f));
    let request = || {
        let mut openssl = Command::new("openssl");
        openssl.args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ]);
        openssl.args(["-nodes", "-days", "2"]);
        openssl
    };
    let run = |openssl: &mut Command| {
        let made = openssl
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install -y openssl"));
        assert!(made.success(), "openssl could not make a certificate");
    };
    run(request()
        .args(["-subj", "/CN=relay-bench CA", "-keyout"])
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    run(request()
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (ca, cert, key)
}

/// Open `n` streams through Sluice, wait until each has its first event, then
/// read Sluice's memory with all of them open.
async fn hold_streams(sluice: &Sluice, token: &str, body: &str, n: usize, idle_rss: f64) {
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", sluice.port);
    let client = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
    // Each stream reports once: open (its first event came), or why not.
    let (opened, mut open) = tokio::sync::mpsc::channel::<Result<(), String>>(n);
    let (close, closed) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    // One copy of the body, shared by every stream (10,000 × 32 KB otherwise).
    let body = bytes::Bytes::from(body.to_string());
    for _ in 0..n {
        let (client, url, token, body) = (client.clone(), url.clone(), token.to_string(), body.clone());
        let (opened, mut closed) = (opened.clone(), closed.clone());
        tokio::task::spawn_local(async move {
            let request = client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json");
            // Only a stream counts: an error answer (say, Sluice out of descriptors) is not one.
            // The response is held until the end: dropping it closes the stream.
            let mut held = None;
            let outcome = match request.body(body).send().await {
                Err(e) => Err(format!("no answer: {e}")),
                Ok(res) if !res.status().is_success() => Err(format!("answered {}", res.status())),
                Ok(res) => match held.insert(res).chunk().await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err("ended without an event".to_string()),
                    Err(e) => Err(format!("broke before its first event: {e}")),
                },
            };
            let _ = opened.send(outcome).await;
            let _ = closed.wait_for(|c| *c).await;
            drop(held);
        });
    }
    drop(opened);
    let mut count = 0;
    let mut failed = std::collections::BTreeMap::<String, usize>::new();
    while count + failed.values().sum::<usize>() < n {
        match tokio::time::timeout(Duration::from_secs(60), open.recv()).await {
            Ok(Some(Ok(()))) => count += 1,
            Ok(Some(Err(why))) => *failed.entry(why).or_default() += 1,
            _ => break,
        }
    }
    for (why, times) in &failed {
        println!("{times} streams did not open: {why}");
    }
    let opened_at = Instant::now();
    let rss = rss_mb(sluice.child.id());
    let per_stream = |rss: f64| (rss - idle_rss) * 1024.0 / count.max(1) as f64;
    println!(
        "{count} of {n} streams open after {:.1} s; Sluice RSS {rss:.1} MB (idle {idle_rss:.1} MB), {:.1} KB a stream",
        started.elapsed().as_secs_f64(),
        per_stream(rss)
    );
    // Then as the streams go on trickling, as a model's answers do: what the
    // opening allocated and freed goes back to the system meanwhile.
    for after in [2, 20] {
        tokio::time::sleep_until((opened_at + Duration::from_secs(after)).into()).await;
        let rss = rss_mb(sluice.child.id());
        println!(
            "{after} s later, the same streams open: Sluice RSS {rss:.1} MB, {:.1} KB a stream",
            per_stream(rss)
        );
    }
    let _ = close.send(true);
}

/// Room for `streams` open streams in this process (the client's end) and in the
/// nginx and Sluice it starts (which inherit the limit): Sluice holds two
/// descriptors a stream (client, upstream), plus room to spare. Raising the hard limit needs
/// `CAP_SYS_RESOURCE`; without it the run stops where the limit does, and says so.
fn open_files_for(streams: usize) {
    use rlimit::Resource;
    let wanted = streams as u64 * 3 + 1024;
    let (soft, hard) = Resource::NOFILE.get().unwrap_or((1024, 1024));
    let hard = hard.max(wanted);
    if Resource::NOFILE.set(soft.max(wanted), hard).is_err() {
        let (soft, hard) = Resource::NOFILE.get().unwrap_or((soft, hard));
        let _ = Resource::NOFILE.set(hard, hard);
        println!("open files limited to {soft}/{hard} (raising the hard limit needs CAP_SYS_RESOURCE): fewer streams may open");
    }
}

/// The chat completion request: one short message, after `history_kb` KB of
/// earlier conversation; streamed if `stream`.
fn request_body(history_kb: usize, stream: bool) -> String {
    const WORDS: [&str; 12] = [
        "the", "build", "failed", "because", "module", "returns", "an", "error", "when", "parsing", "config",
        "files",
    ];
    let mut messages = Vec::new();
    if history_kb > 0 {
        let per_message = history_kb * 1024 / 40;
        for i in 0..40 {
            let mut text = String::new();
            let mut w = i;
            while text.len() < per_message {
                text.push_str(WORDS[w % WORDS.len()]);
                text.push(' ');
                w = (w * 7 + 3) % 1009;
            }
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            messages.push(json!({"role": role, "content": text}));
        }
    }
    messages.push(json!({"role": "user", "content": "Say hello in one word."}));
    let mut body = json!({"model": "bench", "messages": messages});
    if stream {
        body["stream"] = json!(true);
    }
    body.to_string()
}

fn script(dir: &Path, token: &str, body: &str) -> PathBuf {
    let path = dir.join("post.lua");
    std::fs::write(
        &path,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
        ),
    )
    .unwrap();
    path
}

fn print_run(name: &str, run: &Wrk, cpu_us: f64) {
    println!(
        "{name:<7} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  {:>6.1} µs CPU/request{}",
        run.rps,
        run.p50.as_secs_f64() * 1e3,
        run.p99.as_secs_f64() * 1e3,
        cpu_us,
        if run.errors > 0 {
            format!("  {} errors", run.errors)
        } else {
            String::new()
        }
    );
}

#[actix_rt::main]
async fn main() {
    let args = Args::parse();
    assert!(
        Command::new("wrk").arg("--version").output().is_ok(),
        "wrk is missing: apt-get install -y wrk"
    );
    if let Some(n) = args.streams {
        open_files_for(n);
    }
    let dir = std::env::temp_dir().join(format!("relay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let answer = match args.streams {
        None => format!("location / {{ default_type application/json; return 200 '{COMPLETION}'; }}"),
        Some(_) => format!(
            "location / {{ default_type text/event-stream; limit_rate_after 512; limit_rate 1; return 200 '{}'; }}",
            slow_stream()
        ),
    };
    let connections = match args.streams {
        None => 8192,
        Some(n) => (n as u32 + 1024).max(19_000),
    };
    let (upstream, ca_file) = if args.tls {
        let (ca, cert, key) = certificates(&dir);
        let tls = format!(
            "ssl_certificate {}; ssl_certificate_key {}; http2_max_concurrent_streams {}; {answer}",
            cert.display(),
            key.display(),
            args.h2_streams
        );
        let upstream = Nginx::start_with(&dir, "upstream", 1, "", " ssl http2", &tls, connections);
        (upstream, Some(ca))
    } else {
        (
            Nginx::start_with(&dir, "upstream", 1, "", "", &answer, connections),
            None,
        )
    };
    let scheme = if args.tls { "https" } else { "http" };
    let upstream_base = format!("{scheme}://127.0.0.1:{}", upstream.port);
    let nginx = Nginx::start(
        &dir,
        "proxy",
        2,
        &format!("upstream provider {{ server 127.0.0.1:{}; keepalive 64; }}", upstream.port),
        &format!("location / {{ proxy_pass {scheme}://provider; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}"),
    );
    let sluice = Sluice::start(
        &args.sluice,
        &dir,
        &upstream_base,
        ca_file.as_deref(),
        args.database_url.as_deref(),
    );
    // Idle: started, settled, no request yet.
    std::thread::sleep(Duration::from_secs(3));
    let idle_rss = rss_mb(sluice.child.id());
    let token = sluice.set_up_tenant(!args.free).await;
    let body = request_body(args.history_kb, false);
    let lua = script(&dir, &token, &body);
    let sluice_url = format!("http://127.0.0.1:{}/v1/chat/completions", sluice.port);
    let nginx_url = format!("http://127.0.0.1:{}/v1/chat/completions", nginx.port);
    let duration = Duration::from_secs(args.duration);

    if let Some(n) = args.streams {
        hold_streams(&sluice, &token, &request_body(args.history_kb, true), n, idle_rss).await;
        return;
    }

    if let Some(rate) = args.open_loop {
        let upstream_url = format!("{upstream_base}/v1/chat/completions");
        println!("open loop, {rate} requests a second for {} s each", args.duration);
        for (name, url) in [
            ("upstream", &upstream_url),
            ("sluice", &sluice_url),
            ("upstream", &upstream_url),
            ("sluice", &sluice_url),
        ] {
            let r = sluice_tests::relay_bench::open_loop(url, &token, &body, rate, duration).await;
            println!(
                "{name:<9} {} sent, {} errors   p50 {:>6.3} ms  p99 {:>6.3} ms  p99.9 {:>6.3} ms",
                r.sent,
                r.errors,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.p999.as_secs_f64() * 1e3
            );
        }
        return;
    }

    if let Some(total) = args.flat {
        println!(
            "Sluice alone, {} connections, {total} s in 10 s slices; idle RSS {idle_rss:.1} MB",
            args.connections
        );
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(total) {
            let run = wrk(&sluice_url, &lua, Duration::from_secs(10), args.connections);
            let pending = sluice.ledger_pending().await;
            println!(
                "{:>4} s  {:>8.0} req/s  p99 {:>6.2} ms  ledger pending {pending:>6}  RSS {:.1} MB",
                started.elapsed().as_secs(),
                run.rps,
                run.p99.as_secs_f64() * 1e3,
                rss_mb(sluice.child.id())
            );
        }
        return;
    }

    println!(
        "wrk -t1 -c{} -d{}s, {} rounds; Sluice idle RSS {idle_rss:.1} MB",
        args.connections, args.duration, args.rounds
    );
    let (mut nginx_rps, mut sluice_rps) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        println!("round {round}");
        let before = nginx.cpu();
        let run = wrk(&nginx_url, &lua, duration, args.connections);
        print_run("nginx", &run, (nginx.cpu() - before) * 1e6 / run.requests as f64);
        nginx_rps.push(run.rps);
        let before = cpu_seconds(sluice.child.id());
        let run = wrk(&sluice_url, &lua, duration, args.connections);
        print_run(
            "sluice",
            &run,
            (cpu_seconds(sluice.child.id()) - before) * 1e6 / run.requests as f64,
        );
        sluice_rps.push(run.rps);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "Sluice / nginx: {:.2}× ({:.0} / {:.0} req/s); Sluice RSS after load {:.1} MB",
        mean(&sluice_rps) / mean(&nginx_rps),
        mean(&sluice_rps),
        mean(&nginx_rps),
        rss_mb(sluice.child.id())
    );
    drop(sluice);
    drop(nginx);
    drop(upstream);
    let _ = std::fs::remove_dir_all(&dir);
}
