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

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Url;

use super::forward::Endpoint;

/// How far apart clients of different gateways in one process (tests) stay.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Base URLs cached per thread before the cache starts afresh (keys and channels
/// come and go; each distinct base URL is one entry, with its endpoints' URLs).
const MAX_URLS: usize = 4096;

thread_local! {
    static CLIENTS: RefCell<Vec<(u64, reqwest::Client)>> = const { RefCell::new(Vec::new()) };
    static URLS: RefCell<HashMap<String, Vec<(Endpoint, Url)>>> = RefCell::new(HashMap::new());
}

/// How to reach providers: the settings every thread's client is built with.
#[derive(Clone, Debug)]
pub struct Upstream {
    id: u64,
    connect_timeout: Duration,
}

impl Upstream {
    /// Client settings; building one here checks them once, at start.
    pub fn new(connect_timeout: Duration) -> reqwest::Result<Self> {
        let upstream = Upstream {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            connect_timeout,
        };
        upstream.build()?;
        Ok(upstream)
    }

    fn build(&self) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
    }

    /// This thread's client (a cheap handle to its pool), made on first use.
    pub fn client(&self) -> reqwest::Client {
        CLIENTS.with_borrow_mut(|clients| {
            if let Some((_, client)) = clients.iter().find(|(id, _)| *id == self.id) {
                return client.clone();
            }
            // The settings were checked in `new`; building again cannot fail on them.
            let client = self
                .build()
                .expect("provider client settings were checked at start");
            clients.push((self.id, client.clone()));
            client
        })
    }

    /// `endpoint`'s URL below `base_url`, parsed once per thread.
    pub fn url(base_url: &str, endpoint: Endpoint) -> Result<Url, String> {
        URLS.with_borrow_mut(|urls| {
            let known = urls
                .get(base_url)
                .and_then(|e| e.iter().find(|(e, _)| *e == endpoint));
            if let Some((_, url)) = known {
                return Ok(url.clone());
            }
            let full = format!("{}/{}", base_url.trim_end_matches('/'), endpoint.path());
            let url = Url::parse(&full).map_err(|e| format!("bad provider URL '{full}': {e}"))?;
            if urls.len() >= MAX_URLS {
                urls.clear();
            }
            urls.entry(base_url.to_string())
                .or_default()
                .push((endpoint, url.clone()));
            Ok(url)
        })
    }
}
