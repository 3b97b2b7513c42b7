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
//!
//! A client that does not know a provider speaks HTTP/2 opens a connection for
//! every request that finds none idle, until one has negotiated HTTP/2 (ALPN):
//! a burst of 10,000 streams held 440 TLS connections where 100 carried them
//! (docs/BENCHMARKS.md). Once a provider has answered over HTTP/2, clients made
//! for it expect HTTP/2 (`http2_prior_knowledge`), so a burst waits for one
//! connection. Should such a client fail to connect, the provider is
//! forgotten as HTTP/2 and its clients made afresh.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
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
    state: Arc<LaneState>,
}

/// What is known of a lane's client, and its requests in flight.
#[derive(Default)]
struct LaneState {
    in_flight: AtomicU32,
    /// Made expecting HTTP/2 (prior knowledge).
    h2: bool,
    /// It has answered over HTTP/2, and said so ([`Upstream::spoke_h2`]).
    told: AtomicBool,
}

/// A request counted on its client's lane until dropped: with the reply read,
/// or with a stream's body at its end.
pub struct InFlight(Arc<LaneState>);

impl InFlight {
    /// Whether the client was made expecting HTTP/2.
    pub fn expects_h2(&self) -> bool {
        self.0.h2
    }

    /// Whether an HTTP/2 answer on this client has news: it was not made
    /// expecting HTTP/2, and has not answered over it before.
    pub fn learns_h2(&self) -> bool {
        !self.0.h2 && !self.0.told.swap(true, Ordering::Relaxed)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
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
    /// Base URLs that answered over HTTP/2, for every thread.
    h2: Arc<RwLock<HashSet<String>>>,
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
            h2: Arc::default(),
        };
        upstream
            .build(false)
            .with_context(|| "the provider HTTP client's settings")?;
        Ok(upstream)
    }

    fn build(&self, h2: bool) -> reqwest::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90));
        if h2 {
            builder = builder.http2_prior_knowledge();
        }
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
        self.with_providers(|providers| {
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
            let (client, in_flight) = self.lane(base_url, &mut provider.lanes);
            Ok((client, url, in_flight))
        })
    }

    /// `base_url` answered over HTTP/2: clients made for it from now on, on
    /// every thread, expect HTTP/2.
    pub fn spoke_h2(&self, base_url: &str) {
        if !self.h2.read().expect("h2 set").contains(base_url) {
            self.h2.write().expect("h2 set").insert(base_url.to_string());
        }
    }

    /// A client made expecting HTTP/2 failed to reach `base_url`: the provider
    /// is not taken for HTTP/2 any more, and this thread's clients that expect
    /// it are let go (requests on them keep theirs). Another thread's let go
    /// when one fails there.
    pub fn h2_failed(&self, base_url: &str) {
        self.h2.write().expect("h2 set").remove(base_url);
        self.with_providers(|providers| {
            if let Some(provider) = providers.get_mut(base_url) {
                provider.lanes.retain(|lane| !lane.state.h2);
            }
        });
    }

    /// This gateway's providers on this thread.
    fn with_providers<R>(&self, f: impl FnOnce(&mut HashMap<String, Provider>) -> R) -> R {
        PROVIDERS.with_borrow_mut(|gateways| {
            let at = match gateways.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    gateways.push((self.id, HashMap::new()));
                    gateways.len() - 1
                }
            };
            f(&mut gateways[at].1)
        })
    }

    /// Of a provider's clients, the first with room for another request in
    /// flight (made when none has), and the request counted on it.
    fn lane(&self, base_url: &str, lanes: &mut Vec<Lane>) -> (reqwest::Client, InFlight) {
        let busy = |lane: &Lane| lane.state.in_flight.load(Ordering::Relaxed);
        let chosen = match lanes.iter().position(|l| busy(l) < STREAMS_PER_CLIENT) {
            Some(i) => i,
            None => {
                let h2 = self.h2.read().expect("h2 set").contains(base_url);
                lanes.push(Lane {
                    // The settings were checked in `new`; building again cannot fail on them.
                    client: self
                        .build(h2)
                        .expect("provider client settings were checked at start"),
                    state: Arc::new(LaneState {
                        h2,
                        ..LaneState::default()
                    }),
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
        lane.state.in_flight.fetch_add(1, Ordering::Relaxed);
        (lane.client.clone(), InFlight(lane.state.clone()))
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

    #[test]
    fn clients_made_after_a_provider_spoke_http2_expect_it_until_one_fails() {
        let upstream = Upstream::new(Duration::from_secs(1), None).unwrap();
        let base = "https://h2.example/v1";
        let route = || upstream.route(base, Endpoint::Chat).unwrap().2;
        let first = route();
        assert!(!first.expects_h2(), "nothing is known of a new provider");
        // Its first HTTP/2 answer has news; the next on the same client none.
        assert!(first.learns_h2());
        upstream.spoke_h2(base);
        assert!(!first.learns_h2());
        // The client made before keeps asking; the next one made expects HTTP/2,
        // on this thread and on any other.
        let mut held: Vec<InFlight> = (1..STREAMS_PER_CLIENT).map(|_| route()).collect();
        assert!(held.iter().all(|f| !f.expects_h2()));
        let second = route();
        assert!(second.expects_h2());
        assert!(
            !second.learns_h2(),
            "a client that expects HTTP/2 has nothing to tell"
        );
        let other = upstream.clone();
        let elsewhere = std::thread::spawn(move || other.route(base, Endpoint::Chat).unwrap().2.expects_h2());
        assert!(elsewhere.join().unwrap());
        // One fails: the provider is forgotten as HTTP/2, and this thread's
        // clients that expected it are let go; a new one asks again.
        upstream.h2_failed(base);
        held.push(first);
        let third = route();
        assert!(!third.expects_h2());
        let lanes = PROVIDERS.with_borrow(|g| {
            let (_, providers) = g.iter().find(|(id, _)| *id == upstream.id).unwrap();
            providers[base]
                .lanes
                .iter()
                .map(|l| l.state.h2)
                .collect::<Vec<_>>()
        });
        assert_eq!(lanes, [false, false]);
        drop(second);
    }
}
