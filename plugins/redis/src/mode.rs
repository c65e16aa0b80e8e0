//! `Backend`: the operations of the configured mode, a single server ([`Ops`]) or a
//! Redis Cluster ([`ClusterOps`]), behind one type the store calls.

use ta_persistence_api::{
    ETag, Operation, Page, PageRequest, PersistenceError, Result, TaskDocument, TaskFilter,
};

use crate::cluster::ClusterOps;
use crate::ops::{Ops, ReindexReport};

/// Reindexing rebuilds indexes for tasks that writers not keeping them wrote (the Python
/// original); no such writer can write cluster-mode keys, so cluster mode does not offer
/// it, and says so.
fn not_in_cluster_mode(op: Operation) -> PersistenceError {
    PersistenceError::unsupported(op, "the Redis plugin in cluster mode", None)
}

/// The operations of one mode.
// One per store, behind an `Arc`: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Backend {
    /// A single server (or a primary with replicas): the Python original's key layout.
    Single(Ops),
    /// A Redis Cluster: the hash-tagged key layout.
    Cluster(ClusterOps),
}

impl Backend {
    pub(crate) async fn create(&self, doc: TaskDocument) -> Result<()> {
        match self {
            Backend::Single(ops) => ops.create(doc).await,
            Backend::Cluster(ops) => ops.create(doc).await,
        }
    }

    pub(crate) async fn update(&self, doc: &TaskDocument, expected: Option<&ETag>) -> Result<()> {
        match self {
            Backend::Single(ops) => ops.update(doc, expected).await,
            Backend::Cluster(ops) => ops.update(doc, expected).await,
        }
    }

    pub(crate) async fn delete(&self, task_id: &str) -> Result<()> {
        match self {
            Backend::Single(ops) => ops.delete(task_id).await,
            Backend::Cluster(ops) => ops.delete(task_id).await,
        }
    }

    pub(crate) async fn load(
        &self,
        task_id: &str,
        with_etag: bool,
    ) -> Result<Option<(TaskDocument, Option<ETag>)>> {
        match self {
            Backend::Single(ops) => ops.load(task_id, with_etag).await,
            Backend::Cluster(ops) => ops.load(task_id, with_etag).await,
        }
    }

    pub(crate) async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        match self {
            Backend::Single(ops) => ops.find(request_id).await,
            Backend::Cluster(ops) => ops.find(request_id).await,
        }
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        match self {
            Backend::Single(ops) => ops.ping().await,
            Backend::Cluster(ops) => ops.ping().await,
        }
    }

    pub(crate) async fn clear(&self) -> Result<u64> {
        match self {
            Backend::Single(ops) => ops.clear().await,
            Backend::Cluster(ops) => ops.clear().await,
        }
    }

    pub(crate) async fn list(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        match self {
            Backend::Single(ops) => ops.list(filter, page).await,
            Backend::Cluster(ops) => ops.list(filter, page).await,
        }
    }

    pub(crate) async fn purge(&self) -> Result<u64> {
        match self {
            Backend::Single(ops) => ops.purge().await,
            Backend::Cluster(ops) => ops.purge().await,
        }
    }

    pub(crate) async fn reindex(&self) -> Result<ReindexReport> {
        match self {
            Backend::Single(ops) => ops.reindex().await,
            Backend::Cluster(_) => Err(not_in_cluster_mode(Operation::Purge)),
        }
    }
}
