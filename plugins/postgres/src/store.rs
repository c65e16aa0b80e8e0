//! `PostgresTaskPersistenceManager`: [`DocumentStore`] over [`Ops`] (the typed
//! `TaskPersistenceManager` is derived from it), each call run on the plugin's runtime.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::listing::{Page, PageRequest, TaskFilter};
use ta_persistence_api::retention::RetentionPolicy;
use ta_persistence_api::runtime::PluginRuntime;
use ta_persistence_api::{
    async_trait, BoxError, DocumentStore, ETag, Operation, Result, TaskDocument, Versioned,
};
use tracing::{debug, info, warn};

use crate::config::PgConfig;
use crate::connect::{pool, prepare, start};
use crate::ops::Ops;

/// Beyond the server's statement timeout and the wait for a connection, how long an
/// operation may take before the plugin gives up on it (a server that stopped
/// answering cannot cancel anything).
const CLIENT_GRACE: Duration = Duration::from_secs(2);

/// A task store in Postgres, exported as class `PostgresTaskPersistenceManager`.
///
/// Build it with [`FromConfig`] (the host does, from the `TA_PG_*` variables and
/// `TA_PERSISTENCE_RETENTION`) or with [`PostgresTaskPersistenceManager::connect`]. It
/// owns a small tokio runtime and a pool of connections; dropping it stops both without
/// blocking.
pub struct PostgresTaskPersistenceManager {
    ops: Arc<Ops>,
    config: PgConfig,
    /// The limit on one operation, on the client side.
    limit: Duration,
    // Declared last: dropped after `ops`, so the connections go before their runtime.
    runtime: PluginRuntime,
}

impl fmt::Debug for PostgresTaskPersistenceManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTaskPersistenceManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl FromConfig for PostgresTaskPersistenceManager {
    fn from_config(config: &PluginConfig) -> std::result::Result<Self, BoxError> {
        let retention = RetentionPolicy::from_config(config)?;
        let pg = PgConfig::from_lookup(|name| config.get(name))?;
        Self::connect(pg, retention)
    }
}

impl PostgresTaskPersistenceManager {
    /// Connects, applies the schema's missing migrations, and checks the user may write
    /// the tables; an error (naming the server, never the password) when any of it fails
    /// within the configured time. Writes set expiry times by `retention`; with a
    /// non-empty policy and a sweep interval, expired tasks are also purged in the
    /// background.
    pub fn connect(
        config: PgConfig,
        retention: RetentionPolicy,
    ) -> std::result::Result<Self, BoxError> {
        let runtime = start()?;
        let pool = pool(&config)?;
        let applied = prepare(&config, &pool, &runtime)?;
        info!(
            server = %config.describe(),
            tls = ?config.tls,
            pool_size = config.pool_size,
            statement_timeout_ms = config.statement_timeout.as_millis() as u64,
            migrations_applied = ?applied,
            "connected to Postgres"
        );
        let sweep = config.sweep_every.filter(|_| !retention.is_empty());
        let ops = Arc::new(Ops::new(
            pool,
            retention,
            config.statement_timeout,
            config.connect_timeout,
            config.purge_batch,
        ));
        if let Some(every) = sweep {
            runtime.spawn(sweep_forever(Arc::downgrade(&ops), every));
        }
        let limit = config.statement_timeout + config.connect_timeout + CLIENT_GRACE;
        Ok(PostgresTaskPersistenceManager {
            ops,
            config,
            limit,
            runtime,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    /// The retention policy its writes apply.
    pub fn retention(&self) -> &RetentionPolicy {
        self.ops.retention()
    }

    /// Runs one operation on the plugin runtime, within the client-side limit.
    async fn run<T, F, Fut>(&self, op: Operation, id: &str, call: F) -> Result<T>
    where
        F: FnOnce(Arc<Ops>) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        debug!(op = op.as_str(), id, "postgres operation");
        let future = call(Arc::clone(&self.ops));
        self.runtime.run_within(op, id, self.limit, future).await
    }
}

/// Purges expired tasks every `every`, until the store is dropped.
async fn sweep_forever(ops: std::sync::Weak<Ops>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(ops) = ops.upgrade() else { return };
        match ops.purge().await {
            Ok(0) => {}
            Ok(n) => info!(purged = n, "purged expired tasks"),
            Err(e) => warn!(error = %e.report(), "background purge failed"),
        }
    }
}

#[async_trait]
impl DocumentStore for PostgresTaskPersistenceManager {
    async fn insert(&self, doc: TaskDocument) -> Result<()> {
        let id = doc.task_id().to_owned();
        self.run(Operation::Create, &id, |ops| async move {
            ops.create(doc).await
        })
        .await
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        Ok(self.get_versioned(task_id).await?.map(|v| v.value))
    }

    async fn replace(&self, doc: TaskDocument) -> Result<()> {
        let id = doc.task_id().to_owned();
        self.run(Operation::Update, &id, |ops| async move {
            ops.update(doc).await
        })
        .await
    }

    async fn remove(&self, task_id: &str) -> Result<()> {
        let id = task_id.to_owned();
        self.run(Operation::Delete, task_id, |ops| async move {
            ops.delete(&id).await
        })
        .await
    }

    async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        let id = request_id.to_owned();
        self.run(Operation::LoadByRequestId, request_id, |ops| async move {
            ops.find(&id).await
        })
        .await
    }

    async fn get_versioned(&self, task_id: &str) -> Result<Option<Versioned<TaskDocument>>> {
        let id = task_id.to_owned();
        self.run(
            Operation::Load,
            task_id,
            |ops| async move { ops.get(&id).await },
        )
        .await
    }

    async fn replace_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        let (id, etag) = (doc.task_id().to_owned(), etag.clone());
        self.run(Operation::Update, &id, |ops| async move {
            ops.update_if_match(doc, &etag).await
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.run(Operation::Health, "", |ops| async move { ops.ping().await })
            .await
    }

    async fn remove_all(&self) -> Result<u64> {
        self.run(Operation::Clear, "", |ops| async move { ops.clear().await })
            .await
    }

    async fn list(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let (filter, page) = (filter.clone(), page.clone());
        self.run(Operation::List, "", |ops| async move {
            ops.list(&filter, &page).await
        })
        .await
    }

    async fn purge_expired(&self) -> Result<u64> {
        // No limit of its own: each batch is one statement, which the server cancels past
        // the statement timeout, and a large backlog may take many batches.
        debug!(op = "purge", "postgres operation");
        let ops = Arc::clone(&self.ops);
        self.runtime
            .run(Operation::Purge, "", async move { ops.purge().await })
            .await
    }
}
