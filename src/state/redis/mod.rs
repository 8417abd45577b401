//! Redis / Valkey as the state the replicas share (DESIGN §9). This replica keeps its
//! own state as always and the engine is where it meets the others: what one learns
//! (a cooldown, an opened circuit) is written there and published, every other
//! replica applies it to its local mirror, and admission never waits on the network.
//! Every operation is bounded by `[state] timeout`; past it, or with the engine down,
//! the replica acts on its local state and the link reconnects in the background.

mod link;
pub mod responses;
mod sync;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::task::JoinHandle;

use crate::config::RedisPolicy;
use crate::failover::health::Health;
pub use link::Link;

/// The engine connection every state operation goes through.
pub struct Engine {
    client: redis::Client,
    conn: ConnectionManager,
    pub policy: RedisPolicy,
    pub link: Link,
    /// This process's id on the events channel, so it ignores its own messages.
    replica: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the engine did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Engine(String),
    /// The link is down: fail fast rather than make every request wait out the
    /// timeout; the link's own task finds out when the engine is back.
    #[error("the engine is unreachable")]
    Down,
}

impl Engine {
    pub fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.policy.key_prefix)
    }

    fn channel(&self) -> String {
        format!("{}events", self.policy.key_prefix)
    }

    /// Runs one state operation within `[state] timeout`, booking its result on the
    /// link; fails at once while the link is down.
    pub async fn op<T, F>(
        &self,
        what: &str,
        f: impl FnOnce(ConnectionManager) -> F,
    ) -> Result<T, StateError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        if !self.link.is_up() {
            return Err(StateError::Down);
        }
        self.try_op(what, f).await
    }

    /// [`Engine::op`] even while the link is down: how the link finds out it is back.
    async fn try_op<T, F>(
        &self,
        what: &str,
        f: impl FnOnce(ConnectionManager) -> F,
    ) -> Result<T, StateError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let res = match tokio::time::timeout(self.policy.timeout, f(self.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StateError::Engine(e.to_string())),
            Err(_) => Err(StateError::Timeout(self.policy.timeout)),
        };
        if let Err(e) = &res {
            self.link.failed(what, e);
        }
        res
    }
}

/// A running connection to the shared engine: the engine, and the tasks that keep
/// this replica's mirror in step with it. Dropping it (a reload to `memory`, or to
/// another engine) stops them and leaves the replica on its own state.
pub struct Shared {
    pub engine: Arc<Engine>,
    health: Arc<Health>,
    tasks: Vec<JoinHandle<()>>,
}

impl Shared {
    /// Never fails on an unreachable engine: the replica starts on its own state and
    /// the link keeps trying. Only a URL the client library rejects is an error.
    pub fn start(
        policy: RedisPolicy,
        health: Arc<Health>,
        errors: Counter,
    ) -> Result<Shared, String> {
        let client = redis::Client::open(policy.url.expose()).map_err(|e| {
            format!(
                "state.url_env: {} is not a usable Redis URL ({})",
                policy.url_env,
                e.category()
            )
        })?;
        let password = client
            .get_connection_info()
            .redis_settings()
            .password()
            .map(str::to_string);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout(&policy)))
            .set_response_timeout(Some(policy.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(|e| {
                format!(
                    "state: cannot set up the engine connection: {}",
                    e.category()
                )
            })?;
        let engine = Arc::new(Engine {
            client,
            conn,
            link: Link::new(policy.url.display(), password, errors),
            policy,
            replica: format!("{:016x}", fastrand::u64(..)),
        });
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| "state: shared state needs the proxy's runtime".to_string())?;
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        health.set_fleet(Some(tx));
        let tasks = vec![
            rt.spawn(sync::publish(engine.clone(), health.clone(), rx)),
            rt.spawn(sync::subscribe(engine.clone(), health.clone())),
        ];
        Ok(Shared {
            engine,
            health,
            tasks,
        })
    }

    pub fn policy(&self) -> &RedisPolicy {
        &self.engine.policy
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.health.set_fleet(None);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Connecting includes a TCP and maybe a TLS handshake: give it more than one
/// operation's budget, but never long enough to matter to anyone waiting.
fn connect_timeout(policy: &RedisPolicy) -> Duration {
    (policy.timeout * 4).clamp(Duration::from_millis(200), Duration::from_secs(2))
}
