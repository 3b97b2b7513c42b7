//! The HTTP client for providers: one connection pool per thread.
//!
//! Each actix-web worker is a single-threaded runtime, and a pooled connection
//! is a task on the runtime that opened it. With one pool shared by every
//! worker, about half the requests went out on a connection owned by the other
//! worker, and each of them woke that thread twice (request out, reply back):
//! 1.6 % of the relay's CPU in those wake-ups alone on the relay benchmark, plus
//! the context switches (docs/BENCHMARKS.md). A pool per thread keeps a request
//! and its connection on one thread, as nginx keeps a keep-alive pool per worker.
//! Provider URLs are parsed once per thread too (3.6 % of the CPU went to
//! parsing the same URL again for every request).
//!
//! A thread keeps more than one client for a provider when it has many requests
//! in flight there: see [`STREAMS_PER_CLIENT`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use reqwest::Url;

use super::forward::Endpoint;

/// How far apart clients of different gateways in one process (tests) stay.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Base URLs kept per thread before the cache starts afresh (keys and channels
/// come and go; each distinct base URL is one entry, with its endpoints' URLs
/// and its clients).
const MAX_URLS: usize = 4096;

/// Requests in flight on one client before the next request to the same
/// provider goes through another client, and so over another connection. An
/// HTTP/2 provider caps the streams a connection carries at once
/// (`SETTINGS_MAX_CONCURRENT_STREAMS`: RFC 9113 advises at least 100, nginx
/// allows 128), and a client keeps one HTTP/2 connection per provider: past the
/// cap, a request waited on it for another stream to end, until it was taken for
/// a hung key (benchmarked: 256 of 2,000 streams opened, two threads × 128). Over
/// HTTP/1.1 each request in flight has a connection of its own either way.
const STREAMS_PER_CLIENT: u32 = 100;

/// A client and the requests in flight on it.
struct Lane {
    client: reqwest::Client,
    in_flight: Arc<AtomicU32>,
}

/// A request counted on its client's lane until dropped: with the reply read,
/// or with a stream's body at its end.
pub struct InFlight(Arc<AtomicU32>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a thread keeps for one provider base URL: its endpoints' URLs, parsed
/// once, and its clients.
#[derive(Default)]
struct Provider {
    urls: Vec<(Endpoint, Url)>,
    lanes: Vec<Lane>,
}

thread_local! {
    /// Per gateway (`Upstream::id`; tests run several in one process), per base URL.
    static PROVIDERS: RefCell<Vec<(u64, HashMap<String, Provider>)>> = const { RefCell::new(Vec::new()) };
}

/// How to reach providers: the settings every thread's client is built with.
#[derive(Clone, Debug)]
pub struct Upstream {
    id: u64,
    connect_timeout: Duration,
    /// Certificate authorities trusted besides the built-in roots (`[relay] ca_file`).
    roots: Vec<reqwest::Certificate>,
}

impl Upstream {
    /// Client settings; building one here checks them once, at start. `ca_file`
    /// names a PEM file of extra certificate authorities (one or more).
    pub fn new(connect_timeout: Duration, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let roots = match ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem =
                    std::fs::read(path).with_context(|| format!("[relay] ca_file {}", path.display()))?;
                let roots = reqwest::Certificate::from_pem_bundle(&pem)
                    .with_context(|| format!("[relay] ca_file {}", path.display()))?;
                anyhow::ensure!(
                    !roots.is_empty(),
                    "[relay] ca_file {} holds no PEM certificate",
                    path.display()
                );
                roots
            }
        };
        let upstream = Upstream {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            connect_timeout,
            roots,
        };
        upstream
            .build()
            .with_context(|| "the provider HTTP client's settings")?;
        Ok(upstream)
    }

    fn build(&self) -> reqwest::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90));
        for root in &self.roots {
            builder = builder.add_root_certificate(root.clone());
        }
        builder.build()
    }

    /// `endpoint`'s URL below `base_url` (parsed once per thread), and a client
    /// of this thread for that provider (a cheap handle to its pool): the first
    /// with room for another request in flight, made when none has. The request
    /// counts on it while the [`InFlight`] lives.
    pub fn route(
        &self,
        base_url: &str,
        endpoint: Endpoint,
    ) -> Result<(reqwest::Client, Url, InFlight), String> {
        PROVIDERS.with_borrow_mut(|gateways| {
            let at = match gateways.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    gateways.push((self.id, HashMap::new()));
                    gateways.len() - 1
                }
            };
            let providers = &mut gateways[at].1;
            if !providers.contains_key(base_url) && providers.len() >= MAX_URLS {
                // Requests in flight keep their counts: they hold them.
                providers.clear();
            }
            let provider = match providers.get_mut(base_url) {
                Some(provider) => provider,
                None => providers.entry(base_url.to_string()).or_default(),
            };
            let url = match provider.urls.iter().find(|(e, _)| *e == endpoint) {
                Some((_, url)) => url.clone(),
                None => {
                    let full = format!("{}/{}", base_url.trim_end_matches('/'), endpoint.path());
                    let url = Url::parse(&full).map_err(|e| format!("bad provider URL '{full}': {e}"))?;
                    provider.urls.push((endpoint, url.clone()));
                    url
                }
            };
            let (client, in_flight) = self.lane(&mut provider.lanes);
            Ok((client, url, in_flight))
        })
    }

    /// Of a provider's clients, the first with room for another request in
    /// flight (made when none has), and the request counted on it.
    fn lane(&self, lanes: &mut Vec<Lane>) -> (reqwest::Client, InFlight) {
        let busy = |lane: &Lane| lane.in_flight.load(Ordering::Relaxed);
        let chosen = match lanes.iter().position(|l| busy(l) < STREAMS_PER_CLIENT) {
            Some(i) => i,
            None => {
                lanes.push(Lane {
                    // The settings were checked in `new`; building again cannot fail on them.
                    client: self
                        .build()
                        .expect("provider client settings were checked at start"),
                    in_flight: Arc::default(),
                });
                lanes.len() - 1
            }
        };
        // Past one spare, idle clients after the chosen one serve nothing;
        // their idle connections close with them.
        while lanes.len() > chosen + 2 && lanes.last().is_some_and(|l| busy(l) == 0) {
            lanes.pop();
        }
        let lane = &lanes[chosen];
        lane.in_flight.fetch_add(1, Ordering::Relaxed);
        (lane.client.clone(), InFlight(lane.in_flight.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_file_error(contents: Option<&str>) -> String {
        let path = std::env::temp_dir().join(format!(
            "sluice-ca-test-{}.pem",
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        ));
        if let Some(text) = contents {
            std::fs::write(&path, text).unwrap();
        }
        let error = Upstream::new(Duration::from_secs(1), Some(&path))
            .expect_err("a bad ca_file is refused at start");
        let _ = std::fs::remove_file(&path);
        format!("{error:#}")
    }

    #[test]
    fn a_ca_file_that_cannot_be_used_stops_the_start_with_its_name() {
        let missing = ca_file_error(None);
        assert!(missing.starts_with("[relay] ca_file "), "{missing}");
        assert!(missing.contains("No such file"), "{missing}");
        let empty = ca_file_error(Some("not a certificate\n"));
        assert!(empty.contains("holds no PEM certificate"), "{empty}");
    }

    #[test]
    fn a_thread_adds_a_client_for_a_provider_only_past_the_streams_one_carries() {
        let upstream = Upstream::new(Duration::from_secs(1), None).unwrap();
        let lanes = || {
            PROVIDERS.with_borrow(|g| {
                g.iter()
                    .find(|(id, _)| *id == upstream.id)
                    .map_or(0, |(_, p)| p.get("http://a/v1").map_or(0, |p| p.lanes.len()))
            })
        };
        let client = |base_url: &str| upstream.route(base_url, Endpoint::Chat).unwrap().2;
        let mut held: Vec<InFlight> = (0..STREAMS_PER_CLIENT).map(|_| client("http://a/v1")).collect();
        assert_eq!(lanes(), 1);
        // Another provider has clients of its own.
        drop(client("http://b/v1"));
        assert_eq!(lanes(), 1);
        held.push(client("http://a/v1"));
        assert_eq!(
            lanes(),
            2,
            "the 101st request in flight goes through a second client"
        );
        // With room again on the first, it is chosen; the second stays as the spare.
        held.remove(0);
        drop(client("http://a/v1"));
        assert_eq!(lanes(), 2);
        // Both full, and one more: a third client. When all end, the idle ones beyond a spare go.
        held.extend((0..STREAMS_PER_CLIENT + 1).map(|_| client("http://a/v1")));
        assert_eq!(lanes(), 3);
        held.clear();
        drop(client("http://a/v1"));
        assert_eq!(lanes(), 2);
    }
}
