//! `RedisTaskPersistenceManager`: [`DocumentStore`] over [`Ops`] (the typed
//! `TaskPersistenceManager` is derived from it), each call run on the plugin's runtime
//! with the configured time limit.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::runtime::PluginRuntime;
use ta_persistence_api::{
    async_trait, BoxError, DocumentStore, ETag, Operation, Page, PageRequest, Result, TaskDocument,
    TaskFilter, Versioned,
};
use tracing::{debug, info};

use crate::codec::etag_of;
use crate::config::RedisConfig;
use crate::mode::Backend;
use crate::ops::{Ops, ReindexReport};
use crate::runtime::{connect, start};

/// A task store in Redis, exported as class `RedisTaskPersistenceManager`.
///
/// Build it with [`FromConfig`] (the host does, from the `TA_REDIS_*` variables) or with
/// [`RedisTaskPersistenceManager::connect`]. It owns a small tokio runtime and one
/// multiplexed connection that reconnects by itself; dropping it stops both without
/// blocking.
pub struct RedisTaskPersistenceManager {
    ops: Arc<Backend>,
    config: RedisConfig,
    // Declared last: dropped after `ops`, so the connection goes before its runtime.
    runtime: PluginRuntime,
}

impl fmt::Debug for RedisTaskPersistenceManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTaskPersistenceManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl FromConfig for RedisTaskPersistenceManager {
    fn from_config(config: &PluginConfig) -> std::result::Result<Self, BoxError> {
        let config = RedisConfig::from_lookup(|name| config.get(name))?;
        Self::connect(config)
    }
}

impl RedisTaskPersistenceManager {
    /// Connects to the configured server and checks it answers `PING`; an error (naming
    /// the server, never the password) when it cannot within the configured time.
    pub fn connect(config: RedisConfig) -> std::result::Result<Self, BoxError> {
        let runtime = start()?;
        if let Some(cluster) = &config.cluster {
            let conn = crate::cluster::connect(&config, cluster, &runtime)?;
            info!(
                nodes = ?cluster.nodes,
                tls = config.tls,
                prefix = %config.prefix,
                ttl_secs = config.ttl_secs,
                retention = %config.retention,
                wait_replicas = cluster.wait_replicas,
                "connected to the Redis Cluster"
            );
            let ops = Arc::new(Backend::Cluster(crate::cluster::ClusterOps::new(
                conn,
                &config.prefix,
                config.ttl_secs,
                &config.retention,
                config.timeout,
                cluster.wait_replicas,
            )));
            return Ok(RedisTaskPersistenceManager {
                ops,
                config,
                runtime,
            });
        }
        let conn = connect(&config, &runtime)?;
        info!(
            host = %config.host,
            port = config.port,
            db = config.db,
            tls = config.tls,
            prefix = %config.prefix,
            ttl_secs = config.ttl_secs,
            retention = %config.retention,
            "connected to Redis"
        );
        let ops = Arc::new(Backend::Single(Ops::new(
            conn,
            &config.prefix,
            config.ttl_secs,
            &config.retention,
            config.timeout,
        )));
        Ok(RedisTaskPersistenceManager {
            ops,
            config,
            runtime,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Rebuilds the listing indexes and the request-id index from a `SCAN` of the task
    /// keys, for tasks written by writers that do not keep them (the Python original,
    /// or a version of this plugin from before listing), then removes index entries of
    /// tasks that are gone. Bounded batches, safe while writers run; each round trip has
    /// the operation time limit, not the whole walk. Errors are reported as
    /// [`Operation::Purge`] errors, the maintenance operation of the contract.
    pub async fn reindex(&self) -> Result<ReindexReport> {
        self.run(Operation::Purge, "", false, |ops| async move {
            ops.reindex().await
        })
        .await
    }

    /// Runs one operation on the plugin runtime, within the time limit when `limited`.
    async fn run<T, F, Fut>(&self, op: Operation, id: &str, limited: bool, call: F) -> Result<T>
    where
        F: FnOnce(Arc<Backend>) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        debug!(op = op.as_str(), id, "redis operation");
        let future = call(Arc::clone(&self.ops));
        if limited {
            let limit = self.config.timeout;
            self.runtime.run_within(op, id, limit, future).await
        } else {
            self.runtime.run(op, id, future).await
        }
    }
}

#[async_trait]
impl DocumentStore for RedisTaskPersistenceManager {
    async fn insert(&self, doc: TaskDocument) -> Result<()> {
        let id = doc.task_id().to_owned();
        self.run(Operation::Create, &id, true, |ops| async move {
            ops.create(doc).await
        })
        .await
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        let id = task_id.to_owned();
        let found = self
            .run(Operation::Load, task_id, true, |ops| async move {
                ops.load(&id, false).await
            })
            .await?;
        Ok(found.map(|(doc, _)| doc))
    }

    async fn replace(&self, doc: TaskDocument) -> Result<()> {
        let id = doc.task_id().to_owned();
        self.run(Operation::Update, &id, true, |ops| async move {
            ops.update(&doc, None).await
        })
        .await
    }

    async fn remove(&self, task_id: &str) -> Result<()> {
        let id = task_id.to_owned();
        self.run(Operation::Delete, task_id, true, |ops| async move {
            ops.delete(&id).await
        })
        .await
    }

    async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        let id = request_id.to_owned();
        self.run(
            Operation::LoadByRequestId,
            request_id,
            true,
            |ops| async move { ops.find(&id).await },
        )
        .await
    }

    async fn get_versioned(&self, task_id: &str) -> Result<Option<Versioned<TaskDocument>>> {
        let id = task_id.to_owned();
        let found = self
            .run(Operation::Load, task_id, true, |ops| async move {
                ops.load(&id, true).await
            })
            .await?;
        Ok(found.and_then(|(doc, etag)| etag.map(|etag| Versioned::new(doc, etag))))
    }

    async fn replace_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        let id = doc.task_id().to_owned();
        let expected = etag.clone();
        self.run(Operation::Update, &id, true, |ops| async move {
            ops.update(&doc, Some(&expected)).await?;
            Ok(etag_of(doc.json().as_bytes()))
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.run(Operation::Health, "", true, |ops| async move {
            ops.ping().await
        })
        .await
    }

    async fn list(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let (filter, page) = (filter.clone(), page.clone());
        // Each round trip of a listing has the time limit: a page that skips many
        // entries (a status filter) may take longer as a whole.
        self.run(Operation::List, "", false, |ops| async move {
            ops.list(&filter, &page).await
        })
        .await
    }

    async fn purge_expired(&self) -> Result<u64> {
        self.run(Operation::Purge, "", false, |ops| async move {
            ops.purge().await
        })
        .await
    }

    async fn remove_all(&self) -> Result<u64> {
        // Each round trip of a clear has the time limit; the whole may take longer.
        self.run(Operation::Clear, "", false, |ops| async move {
            ops.clear().await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_that_cannot_connect_is_a_constructor_error() {
        let vars = PluginConfig::new([
            ("TA_REDIS_HOST", "127.0.0.1"),
            ("TA_REDIS_PORT", "1"),
            ("TA_REDIS_PWD", "never-echoed"),
            ("TA_REDIS_TIMEOUT_MS", "2000"),
        ]);
        let err = RedisTaskPersistenceManager::from_config(&vars)
            .unwrap_err()
            .to_string();
        assert!(err.contains("127.0.0.1:1"), "{err}");
        assert!(!err.contains("never-echoed"), "{err}");
        let bad = PluginConfig::new([("TA_REDIS_TTL", "soon")]);
        let err = RedisTaskPersistenceManager::from_config(&bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TA_REDIS_TTL") && err.contains("soon"),
            "{err}"
        );
    }
}
