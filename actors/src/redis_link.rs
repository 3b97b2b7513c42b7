//! One way to reach the deployment's Redis, for everything replicas share (key
//! windows, quotas, leases, the change feed): a single Redis, or a Redis
//! Cluster when the URL lists several nodes (`redis://a:7000,redis://b:7001`).
//! Every call is bounded by a timeout, so a Redis gone silent costs a caller
//! one timeout at most, and a lost connection is made anew on the next call.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// A connection to the deployment's Redis. Cheap to clone.
#[derive(Clone)]
pub enum Connection {
    /// To a single Redis.
    Single(MultiplexedConnection),
    /// To a Redis Cluster: each command goes to the node of its keys' slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// The deployment's Redis, connected on first use.
pub struct RedisLink {
    /// A single Redis, or a Redis Cluster's first node (for pub/sub: a
    /// message published on any node of a cluster reaches every node's subscribers).
    client: redis::Client,
    /// The Redis Cluster, when there is one.
    cluster: Option<ClusterClient>,
    connection: tokio::sync::Mutex<Option<Connection>>,
    timeout: Duration,
}

impl RedisLink {
    /// The Redis at `url` (`redis://host:6379/0`, or several node URLs joined
    /// by commas for a Redis Cluster), each call bounded by `timeout`. The
    /// error says what is wrong with the URL.
    pub fn open(url: &str, timeout: Duration) -> Result<RedisLink, String> {
        let nodes: Vec<&str> = url.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
        let first = *nodes.first().ok_or_else(|| "no Redis URL".to_string())?;
        let single = redis::Client::open(first).map_err(|e| format!("'{first}' is not a Redis URL: {e}"))?;
        let cluster = if nodes.len() == 1 {
            None
        } else {
            let client = ClusterClient::builder(nodes.iter().copied())
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1)
                .build()
                .map_err(|e| format!("'{url}' is not a list of Redis Cluster nodes: {e}"))?;
            Some(client)
        };
        Ok(RedisLink {
            client: single,
            cluster,
            connection: tokio::sync::Mutex::new(None),
            timeout,
        })
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// The client for pub/sub and other connections of their own.
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    async fn connection(&self) -> RedisResult<Connection> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let connection = match &self.cluster {
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout));
                Connection::Single(
                    self.client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
            Some(cluster) => Connection::Cluster(cluster.get_async_connection().await?),
        };
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// `request` on the shared connection, connecting first if need be, all
    /// within the timeout; a connection that broke is dropped, so the next
    /// call connects anew.
    pub async fn call<T, F, Fut>(&self, request: F) -> RedisResult<T>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let answer = tokio::time::timeout(self.timeout, async {
            let connection = self.connection().await?;
            request(connection).await
        })
        .await;
        let error = match answer {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if !lost_link(&e) => return Err(e),
            Ok(Err(e)) => e,
            Err(_) => RedisError::from((redis::ErrorKind::Io, "no answer within the call timeout")),
        };
        *self.connection.lock().await = None;
        Err(error)
    }
}

/// Whether an error means the connection is gone (rather than a command refused).
pub fn lost_link(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_a_single_redis_and_several_a_cluster() {
        let second = Duration::from_secs(1);
        assert!(!RedisLink::open("redis://127.0.0.1:6379/0", second)
            .unwrap()
            .is_cluster());
        let cluster = RedisLink::open("redis://127.0.0.1:7000, redis://127.0.0.1:7001", second).unwrap();
        assert!(cluster.is_cluster());
        assert_eq!(
            cluster.client().get_connection_info().addr().to_string(),
            "127.0.0.1:7000"
        );
        let err = RedisLink::open("http://nope", second).err().unwrap();
        assert!(err.contains("'http://nope'"), "{err}");
    }
}
