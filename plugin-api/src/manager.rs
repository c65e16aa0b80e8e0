//! The async trait every persistence backend implements: the built-in store, plugins,
//! and the host's adapter over a loaded plugin.

use std::fmt;

use async_trait::async_trait;

use crate::error::{Operation, PersistenceError, Result};
use crate::listing::{Page, PageRequest, TaskFilter};
use crate::model::AgentTask;

/// An opaque version tag of a stored task: it changes whenever the stored task changes.
///
/// Read one with [`TaskPersistenceManager::load_with_etag`] and hand it back to
/// [`TaskPersistenceManager::update_if_match`]. Compare ETags only for equality; their
/// text is backend-specific.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(String);

impl ETag {
    /// An ETag with the given text.
    pub fn new(tag: impl Into<String>) -> Self {
        ETag(tag.into())
    }

    /// The ETag's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A task together with the ETag of the stored version it was read from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Versioned<T = AgentTask> {
    /// The task (or document).
    pub value: T,
    /// The ETag of the stored version `value` was read from.
    pub etag: ETag,
}

impl<T> Versioned<T> {
    /// Pairs a value with its ETag.
    pub fn new(value: T, etag: ETag) -> Self {
        Versioned { value, etag }
    }
}

/// A task store.
///
/// # Contract
///
/// Every backend behaves the same way; the conformance suite checks each point.
///
/// - **Ids.** A task id or request id is non-empty and at most
///   [`MAX_ID_LEN`](crate::model::MAX_ID_LEN) bytes. Any other id, as an argument or in a
///   task's items, fails with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
///   and nothing is stored.
/// - **`create`** stores a new task. If the id is already stored it fails with
///   `AlreadyExists` and the stored task is unchanged. Of several concurrent creates of
///   one id, exactly one succeeds.
/// - **`load`** returns the stored task, or `None` for an unknown id (not an error).
/// - **`update`** replaces a stored task (last writer wins). An unknown id fails with
///   `NotFound` and nothing is stored.
/// - **`delete`** removes a stored task. An unknown id fails with `NotFound`.
/// - **`load_by_request_id`** returns a task that has an item with this request id, or
///   `None`. When several tasks have it, the one created first wins: the smallest
///   `created_at` (a naive time read as UTC), ties broken by the smallest task id.
/// - **The request-id index** always agrees with the stored tasks: after `update` the
///   task is found by exactly the request ids of its new items; after `delete` by none.
///   Duplicate request ids within one task count once.
/// - **Value semantics.** A loaded task is the caller's own value: changing it changes
///   nothing stored. Only `update` (and `update_if_match`) change a stored task.
/// - **Optimistic concurrency.** `load_with_etag` returns the task with its ETag;
///   `update_if_match` replaces the task only if the stored one still has that ETag,
///   else fails with `Conflict` and changes nothing (an unknown id fails with
///   `NotFound`). The ETag changes whenever the stored task changes, whoever wrote it.
/// - **Failures** of the backend itself are `Unavailable`, `Timeout` or `Backend`;
///   stored data that cannot be decoded is `Corrupt`; every error names its operation
///   and id ([`PersistenceError`]).
///
/// - **Listing.** `list_tasks` returns one page of the tasks a [`TaskFilter`] matches,
///   newest `created_at` first (ties by task id, descending), paged by an opaque cursor
///   (see [`crate::listing`] for the order, the paging guarantee and the cursor's checks).
/// - **Retention.** A store configured with a [`RetentionPolicy`](crate::retention::RetentionPolicy)
///   forgets finished tasks a set time after their last write (see [`crate::retention`]);
///   `purge` removes what has expired now.
///
/// `list_tasks` and `purge` have default bodies that answer
/// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported), so a manager written
/// before they existed still compiles; every backend of this project implements them.
#[async_trait]
pub trait TaskPersistenceManager: Send + Sync + 'static {
    /// Stores a new task; `AlreadyExists` if its id is taken.
    async fn create(&self, task: AgentTask) -> Result<()>;

    /// The stored task with this id, or `None`.
    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>>;

    /// Replaces a stored task; `NotFound` if its id is not stored.
    async fn update(&self, task: AgentTask) -> Result<()>;

    /// Removes a stored task; `NotFound` if its id is not stored.
    async fn delete(&self, task_id: &str) -> Result<()>;

    /// The first-created task with an item of this request id, or `None`.
    async fn load_by_request_id(&self, request_id: &str) -> Result<Option<AgentTask>>;

    /// The stored task with this id and its current ETag, or `None`.
    async fn load_with_etag(&self, task_id: &str) -> Result<Option<Versioned>>;

    /// Replaces a stored task only if it still has `etag`; returns the new ETag.
    /// `Conflict` if it changed, `NotFound` if it is not stored.
    async fn update_if_match(&self, task: AgentTask, etag: &ETag) -> Result<ETag>;

    /// Checks that the backend can serve requests.
    async fn health(&self) -> Result<()>;

    /// Removes every task of this store (and only this store's tasks); returns how many.
    /// An administrative operation: applications never need it.
    async fn clear(&self) -> Result<u64>;

    /// One page of the tasks `filter` matches, in listing order.
    async fn list_tasks(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let _ = (filter, page);
        Err(PersistenceError::unsupported(
            Operation::List,
            std::any::type_name::<Self>(),
            None,
        ))
    }

    /// Removes every task whose retention has expired; returns how many.
    async fn purge(&self) -> Result<u64> {
        Err(PersistenceError::unsupported(
            Operation::Purge,
            std::any::type_name::<Self>(),
            None,
        ))
    }
}

/// A shared manager is a manager: `Arc<dyn TaskPersistenceManager>` can be handed to
/// anything that takes one by value (an adapter, a decorator).
#[async_trait]
impl<M: TaskPersistenceManager + ?Sized> TaskPersistenceManager for std::sync::Arc<M> {
    async fn create(&self, task: AgentTask) -> Result<()> {
        (**self).create(task).await
    }

    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>> {
        (**self).load(task_id).await
    }

    async fn update(&self, task: AgentTask) -> Result<()> {
        (**self).update(task).await
    }

    async fn delete(&self, task_id: &str) -> Result<()> {
        (**self).delete(task_id).await
    }

    async fn load_by_request_id(&self, request_id: &str) -> Result<Option<AgentTask>> {
        (**self).load_by_request_id(request_id).await
    }

    async fn load_with_etag(&self, task_id: &str) -> Result<Option<Versioned>> {
        (**self).load_with_etag(task_id).await
    }

    async fn update_if_match(&self, task: AgentTask, etag: &ETag) -> Result<ETag> {
        (**self).update_if_match(task, etag).await
    }

    async fn health(&self) -> Result<()> {
        (**self).health().await
    }

    async fn clear(&self) -> Result<u64> {
        (**self).clear().await
    }

    async fn list_tasks(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        (**self).list_tasks(filter, page).await
    }

    async fn purge(&self) -> Result<u64> {
        (**self).purge().await
    }
}
