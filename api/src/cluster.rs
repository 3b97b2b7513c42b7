//! Replicas of one deployment (`[cluster] redis_url`): a change made through
//! one — a token, a user, a channel or key, a price, a fallback chain — reaches
//! the others through Redis pub/sub, each reloading what changed from the
//! shared database; after a lost connection, a replica reloads everything
//! once it is back, so nothing missed in between stays stale. Without a Redis
//! URL all of this is off and a write only refreshes its own process.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use sluice_actors::router::SharedKeyEvent;
use sluice_actors::shared::{KeyEvent, SharedWindows};
use tokio::sync::mpsc;

use crate::catalog::fallbacks::reload_chains;
use crate::catalog::routing::reload_router;
use crate::config::ClusterSettings;
use crate::state::AppState;

/// What a write changed, and so what the other replicas reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Tokens, or users (their state travels with their tokens).
    Tokens,
    /// Channels and keys (the router's key set and the models served).
    Keys,
    /// Prices, group multipliers, weights and quota policies.
    Prices,
    /// Fallback chains.
    Fallbacks,
}

impl Change {
    const ALL: [Change; 4] = [Change::Tokens, Change::Keys, Change::Prices, Change::Fallbacks];

    fn as_str(self) -> &'static str {
        match self {
            Change::Tokens => "tokens",
            Change::Keys => "keys",
            Change::Prices => "prices",
            Change::Fallbacks => "fallbacks",
        }
    }

    fn parse(s: &str) -> Option<Change> {
        Change::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A name for this process, unique among the replicas.
fn origin_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The duty of migrating the database and applying the config file.
const START_UP: &str = "start-up";

/// Longest one replica's start-up may hold the others back.
const START_UP_LEASE: Duration = Duration::from_secs(120);

/// This replica's turn at start-up work (see [`Cluster::start_up_turn`]).
pub struct StartUpTurn(Option<SharedWindows>);

impl StartUpTurn {
    /// The start-up work is done: the next replica may go.
    pub async fn done(self) {
        if let Some(windows) = self.0 {
            if let Err(e) = windows.release(START_UP).await {
                tracing::warn!(error = %e, "cluster: could not end the start-up turn; it lapses");
            }
        }
    }
}

/// How the link to Redis is, for `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// No Redis configured: one process.
    Off,
    /// Not connected yet, or reconnecting after `error`.
    Down(String),
    /// Subscribed: changes arrive.
    Up,
}

/// This replica's side of the change feed. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    client: redis::Client,
    /// The pub/sub channel of this deployment.
    channel: String,
    /// This process, so it skips its own announcements.
    origin: String,
    outbox: mpsc::UnboundedSender<Change>,
    outbox_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Change>>>,
    link: RwLock<Link>,
    /// The key budgets replicas share.
    windows: SharedWindows,
    /// The announcer and the listener, stopped with the server.
    tasks: std::sync::Mutex<Vec<actix_web::rt::task::JoinHandle<()>>>,
}

impl Cluster {
    /// The feed for `settings`; off without a Redis URL. Connects later, in
    /// [`Cluster::start`], so a Redis that is down does not stop start-up.
    pub fn new(settings: &ClusterSettings, span: Duration) -> anyhow::Result<Cluster> {
        let Some(url) = settings.redis_url.as_deref() else {
            return Ok(Cluster { inner: None });
        };
        let windows = SharedWindows::new(url, &settings.prefix, &origin_id(), span)
            .map_err(|e| anyhow::anyhow!("[cluster] redis_url: {e}"))?;
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        Ok(Cluster {
            inner: Some(Arc::new(Inner {
                client: windows.client(),
                origin: windows.origin().to_string(),
                windows,
                channel: format!("{}:changes", settings.prefix),
                outbox,
                outbox_rx: std::sync::Mutex::new(Some(outbox_rx)),
                link: RwLock::new(Link::Down("connecting".into())),
                tasks: std::sync::Mutex::new(Vec::new()),
            })),
        })
    }

    /// Whether replicas share state through Redis.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The key budgets shared with the other replicas; `None` in one process.
    pub fn windows(&self) -> Option<SharedWindows> {
        self.inner.as_ref().map(|inner| inner.windows.clone())
    }

    /// Wait for this replica's turn to migrate the database and apply the
    /// config file (one replica at a time); give it back with
    /// [`StartUpTurn::done`]. Without Redis, or when Redis cannot be reached,
    /// it goes at once: a replica must be able to start alone.
    pub async fn start_up_turn(&self) -> StartUpTurn {
        let Some(windows) = self.windows() else {
            return StartUpTurn(None);
        };
        let deadline = std::time::Instant::now() + START_UP_LEASE;
        loop {
            match windows.lease(START_UP, START_UP_LEASE).await {
                Ok(true) => return StartUpTurn(Some(windows)),
                Ok(false) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Its holder died mid-start: the lease lapses by now anyway.
                Ok(false) => return StartUpTurn(None),
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: starting without waiting for other replicas");
                    return StartUpTurn(None);
                }
            }
        }
    }

    /// The link to Redis now.
    pub fn link(&self) -> Link {
        match &self.inner {
            None => Link::Off,
            Some(inner) => inner.link.read().expect("link lock").clone(),
        }
    }

    /// Tell the other replicas that `change` happened (after it is in the
    /// database). Never waits; a change announced while Redis is down is
    /// covered by the full reload every replica makes when it reconnects.
    pub fn announce(&self, change: Change) {
        if let Some(inner) = &self.inner {
            let _ = inner.outbox.send(change);
        }
    }

    /// Start announcing and listening, on the current (main) runtime.
    pub fn start(&self, state: AppState) {
        let Some(inner) = self.inner.clone() else {
            return;
        };
        let outbox = inner.outbox_rx.lock().expect("outbox lock").take();
        let mut tasks = inner.tasks.lock().expect("tasks lock");
        if let Some(outbox) = outbox {
            tasks.push(actix_web::rt::spawn(announcer(inner.clone(), outbox)));
        }
        tasks.push(actix_web::rt::spawn(presence(inner.windows.clone())));
        tasks.push(actix_web::rt::spawn(listener(inner.clone(), state)));
    }

    /// Stop announcing and listening (the server has stopped).
    pub fn stop(&self) {
        if let Some(inner) = &self.inner {
            for task in inner.tasks.lock().expect("tasks lock").drain(..) {
                task.abort();
            }
        }
    }
}

/// Publish announcements in order, reconnecting as needed.
async fn announcer(inner: Arc<Inner>, mut outbox: mpsc::UnboundedReceiver<Change>) {
    let mut connection = None;
    while let Some(change) = outbox.recv().await {
        let message = format!("{} {}", inner.origin, change.as_str());
        for attempt in 0..2 {
            if connection.is_none() {
                connection = inner.client.get_multiplexed_async_connection().await.ok();
            }
            let Some(conn) = connection.as_mut() else {
                break;
            };
            let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(&inner.channel)
                .arg(&message)
                .query_async(conn)
                .await;
            match sent {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "cluster: could not announce a change");
                    connection = None;
                }
            }
        }
    }
}

/// Say this replica is alive, and count the live ones: while Redis is away,
/// each keeps to its share of every key's limits by that count.
async fn presence(windows: SharedWindows) {
    let beat = sluice_actors::shared::PRESENCE_TTL / 5;
    loop {
        if let Err(e) = windows.heartbeat().await {
            tracing::debug!(error = %e, "cluster: presence not reported");
        }
        tokio::time::sleep(beat).await;
    }
}

/// Receive the other replicas' announcements; reload everything after every
/// (re)connection, since announcements made meanwhile are lost.
async fn listener(inner: Arc<Inner>, state: AppState) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match subscribe(&inner).await {
            Ok(mut pubsub) => {
                *inner.link.write().expect("link lock") = Link::Up;
                backoff = Duration::from_millis(200);
                for change in Change::ALL {
                    reload(&state, change).await;
                }
                let keys = inner.windows.channel();
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let Ok(text) = message.get_payload::<String>() else {
                        continue;
                    };
                    if message.get_channel_name() == keys {
                        match KeyEvent::parse(&text) {
                            Some(KeyEvent::Disabled { .. }) => reload(&state, Change::Keys).await,
                            Some(event) => state.router.do_send(SharedKeyEvent(event)),
                            None => {}
                        }
                        continue;
                    }
                    let Some((origin, what)) = text.split_once(' ') else {
                        continue;
                    };
                    if origin == inner.origin {
                        continue;
                    }
                    if let Some(change) = Change::parse(what) {
                        reload(&state, change).await;
                    }
                }
                *inner.link.write().expect("link lock") = Link::Down("connection lost".into());
                tracing::warn!("cluster: lost the Redis subscription; reconnecting");
            }
            Err(e) => {
                *inner.link.write().expect("link lock") = Link::Down(e.to_string());
                tracing::warn!(error = %e, "cluster: cannot subscribe to Redis; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn subscribe(inner: &Inner) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = inner.client.get_async_pubsub().await?;
    pubsub.subscribe(&inner.channel).await?;
    pubsub.subscribe(inner.windows.channel()).await?;
    Ok(pubsub)
}

/// Bring this replica's copy of `change` up to the database.
async fn reload(state: &AppState, change: Change) {
    let done = match change {
        Change::Tokens => state.tokens.reload(&state.db).await,
        Change::Keys => reload_router(&state.db, &state.secrets, &state.router, &state.models).await,
        Change::Prices => state.prices.reload(&state.db).await,
        Change::Fallbacks => reload_chains(&state.db, &state.models).await,
    };
    if let Err(e) = done {
        tracing::error!(
            error = format!("{e:#}"),
            change = change.as_str(),
            "cluster: reload failed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_travel_by_name() {
        for change in Change::ALL {
            assert_eq!(Change::parse(change.as_str()), Some(change));
        }
        assert_eq!(Change::parse("users"), None);
    }

    #[test]
    fn without_a_redis_url_nothing_is_shared() {
        let cluster = Cluster::new(&ClusterSettings::default(), Duration::from_secs(60)).unwrap();
        assert!(!cluster.enabled());
        assert_eq!(cluster.link(), Link::Off);
        cluster.announce(Change::Tokens);
    }

    #[test]
    fn a_bad_url_is_an_error_naming_the_setting() {
        let settings = ClusterSettings {
            redis_url: Some("http://nope".into()),
            ..ClusterSettings::default()
        };
        let err = Cluster::new(&settings, Duration::from_secs(60))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("[cluster] redis_url"), "{err}");
    }
}
