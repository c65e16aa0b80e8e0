//! `DocumentStore`: the easier trait for a store that keeps tasks as JSON documents.
//!
//! Implement it instead of [`TaskPersistenceManager`] and get that trait for free: every
//! typed method is derived (tasks are encoded once on the way in and decoded once on the
//! way out), ids are validated before your method is called, and a stored document that
//! no longer decodes is reported as `Corrupt`. Over the plugin boundary nothing is
//! decoded at all: the host's JSON reaches [`DocumentStore::insert`] as it was sent.

use async_trait::async_trait;

use crate::document::{validate_task_ids, TaskDocument};
use crate::error::{validate_id, Operation, PersistenceError, Result};
use crate::listing::{Page, PageRequest, TaskFilter};
use crate::manager::{ETag, TaskPersistenceManager, Versioned};
use crate::model::AgentTask;

/// A task store over JSON documents. See the module doc.
///
/// The contract is [`TaskPersistenceManager`]'s, method for method; ids reaching these
/// methods have already been checked.
#[async_trait]
pub trait DocumentStore: Send + Sync + 'static {
    /// Stores a new document; `AlreadyExists` if its task id is taken.
    async fn insert(&self, doc: TaskDocument) -> Result<()>;

    /// The stored document of a task, or `None`.
    async fn get(&self, task_id: &str) -> Result<Option<TaskDocument>>;

    /// Replaces a stored document; `NotFound` if its task id is not stored.
    async fn replace(&self, doc: TaskDocument) -> Result<()>;

    /// Removes a stored task; `NotFound` if it is not stored.
    async fn remove(&self, task_id: &str) -> Result<()>;

    /// The first-created document holding this request id, or `None`.
    async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>>;

    /// The stored document with its ETag, or `None`.
    async fn get_versioned(&self, task_id: &str) -> Result<Option<Versioned<TaskDocument>>>;

    /// Replaces a stored document only if it still has `etag`; returns the new ETag.
    async fn replace_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag>;

    /// [`get`](Self::get), decoded: the stored task, or `None`; a document that does not
    /// decode is `Corrupt`. The default decodes what `get` returns. A store that can
    /// decode the text where it lies overrides it (the host's adapter over a plugin reads
    /// the plugin's bytes in place, instead of copying them out first).
    async fn get_task(&self, task_id: &str) -> Result<Option<AgentTask>> {
        let doc = self.get(task_id).await?;
        doc.map(|d| d.into_stored_task(Operation::Load)).transpose()
    }

    /// [`find`](Self::find), decoded, as [`get_task`](Self::get_task) is `get`.
    async fn find_task(&self, request_id: &str) -> Result<Option<AgentTask>> {
        let doc = self.find(request_id).await?;
        doc.map(|d| d.into_stored_task(Operation::LoadByRequestId))
            .transpose()
    }

    /// Checks that the store can serve.
    async fn ping(&self) -> Result<()>;

    /// Removes every task of this store; returns how many.
    async fn remove_all(&self) -> Result<u64>;

    /// One page of the tasks `filter` matches, in listing order (see
    /// [`crate::listing`]); the default answers `Unsupported`.
    async fn list(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let _ = (filter, page);
        Err(PersistenceError::unsupported(
            Operation::List,
            std::any::type_name::<Self>(),
            None,
        ))
    }

    /// Removes every task whose retention has expired; returns how many. The default
    /// answers `Unsupported`.
    async fn purge_expired(&self) -> Result<u64> {
        Err(PersistenceError::unsupported(
            Operation::Purge,
            std::any::type_name::<Self>(),
            None,
        ))
    }
}

/// The operations of [`TaskPersistenceManager`] over [`TaskDocument`]s: how tasks cross
/// the plugin boundary and how the command line moves raw documents.
///
/// Boundary plumbing, not the contract: applications use [`TaskPersistenceManager`].
/// Every [`DocumentStore`] is one (its documents pass through untouched), and
/// [`TypedDocuments`] makes one of any typed manager, by encoding and decoding.
#[async_trait]
pub trait DocumentManager: TaskPersistenceManager {
    /// [`create`](TaskPersistenceManager::create) of an encoded task.
    async fn create_document(&self, doc: TaskDocument) -> Result<()>;

    /// [`load`](TaskPersistenceManager::load), encoded.
    async fn load_document(&self, task_id: &str) -> Result<Option<TaskDocument>>;

    /// [`update`](TaskPersistenceManager::update) with an encoded task.
    async fn update_document(&self, doc: TaskDocument) -> Result<()>;

    /// [`load_by_request_id`](TaskPersistenceManager::load_by_request_id), encoded.
    async fn load_document_by_request_id(&self, request_id: &str) -> Result<Option<TaskDocument>>;

    /// [`load_with_etag`](TaskPersistenceManager::load_with_etag), encoded.
    async fn load_document_with_etag(
        &self,
        task_id: &str,
    ) -> Result<Option<Versioned<TaskDocument>>>;

    /// [`update_if_match`](TaskPersistenceManager::update_if_match) with an encoded task.
    async fn update_document_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag>;
}

#[async_trait]
impl<T: DocumentStore> TaskPersistenceManager for T {
    async fn create(&self, task: AgentTask) -> Result<()> {
        validate_task_ids(Operation::Create, &task)?;
        self.insert(TaskDocument::from_task(&task)).await
    }

    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>> {
        validate_id(Operation::Load, "task id", task_id)?;
        self.get_task(task_id).await
    }

    async fn update(&self, task: AgentTask) -> Result<()> {
        validate_task_ids(Operation::Update, &task)?;
        self.replace(TaskDocument::from_task(&task)).await
    }

    async fn delete(&self, task_id: &str) -> Result<()> {
        validate_id(Operation::Delete, "task id", task_id)?;
        self.remove(task_id).await
    }

    async fn load_by_request_id(&self, request_id: &str) -> Result<Option<AgentTask>> {
        validate_id(Operation::LoadByRequestId, "request id", request_id)?;
        self.find_task(request_id).await
    }

    async fn load_with_etag(&self, task_id: &str) -> Result<Option<Versioned>> {
        let Some(v) = self.load_document_with_etag(task_id).await? else {
            return Ok(None);
        };
        let task = v.value.into_stored_task(Operation::Load)?;
        Ok(Some(Versioned::new(task, v.etag)))
    }

    async fn update_if_match(&self, task: AgentTask, etag: &ETag) -> Result<ETag> {
        validate_task_ids(Operation::Update, &task)?;
        self.replace_if_match(TaskDocument::from_task(&task), etag)
            .await
    }

    async fn health(&self) -> Result<()> {
        self.ping().await
    }

    async fn clear(&self) -> Result<u64> {
        self.remove_all().await
    }

    async fn list_tasks(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        self.list(filter, page).await
    }

    async fn purge(&self) -> Result<u64> {
        self.purge_expired().await
    }
}

#[async_trait]
impl<T: DocumentStore> DocumentManager for T {
    async fn create_document(&self, doc: TaskDocument) -> Result<()> {
        doc.validate_ids(Operation::Create)?;
        self.insert(doc).await
    }

    async fn load_document(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        validate_id(Operation::Load, "task id", task_id)?;
        self.get(task_id).await
    }

    async fn update_document(&self, doc: TaskDocument) -> Result<()> {
        doc.validate_ids(Operation::Update)?;
        self.replace(doc).await
    }

    async fn load_document_by_request_id(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        validate_id(Operation::LoadByRequestId, "request id", request_id)?;
        self.find(request_id).await
    }

    async fn load_document_with_etag(
        &self,
        task_id: &str,
    ) -> Result<Option<Versioned<TaskDocument>>> {
        validate_id(Operation::Load, "task id", task_id)?;
        self.get_versioned(task_id).await
    }

    async fn update_document_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        doc.validate_ids(Operation::Update)?;
        self.replace_if_match(doc, etag).await
    }
}

/// A typed manager as a [`DocumentManager`]: documents are decoded on the way in and
/// encoded on the way out. The export macro wraps a plugin's typed manager in it.
#[derive(Debug)]
pub struct TypedDocuments<M>(M);

impl<M: TaskPersistenceManager> TypedDocuments<M> {
    /// Wraps `manager`.
    pub fn new(manager: M) -> Self {
        TypedDocuments(manager)
    }

    /// The wrapped manager.
    pub fn inner(&self) -> &M {
        &self.0
    }
}

/// The task a document sent to `op` holds; a document that is not a valid task is
/// `InvalidInput`. For a typed manager's [`DocumentManager`] methods.
pub fn decode_document(op: Operation, doc: &TaskDocument) -> Result<AgentTask> {
    doc.to_task()
        .map_err(|e| PersistenceError::invalid(op, doc.task_id(), e.to_string()))
}

#[async_trait]
impl<M: TaskPersistenceManager> TaskPersistenceManager for TypedDocuments<M> {
    async fn create(&self, task: AgentTask) -> Result<()> {
        self.0.create(task).await
    }

    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>> {
        self.0.load(task_id).await
    }

    async fn update(&self, task: AgentTask) -> Result<()> {
        self.0.update(task).await
    }

    async fn delete(&self, task_id: &str) -> Result<()> {
        self.0.delete(task_id).await
    }

    async fn load_by_request_id(&self, request_id: &str) -> Result<Option<AgentTask>> {
        self.0.load_by_request_id(request_id).await
    }

    async fn load_with_etag(&self, task_id: &str) -> Result<Option<Versioned>> {
        self.0.load_with_etag(task_id).await
    }

    async fn update_if_match(&self, task: AgentTask, etag: &ETag) -> Result<ETag> {
        self.0.update_if_match(task, etag).await
    }

    async fn health(&self) -> Result<()> {
        self.0.health().await
    }

    async fn clear(&self) -> Result<u64> {
        self.0.clear().await
    }

    async fn list_tasks(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        self.0.list_tasks(filter, page).await
    }

    async fn purge(&self) -> Result<u64> {
        self.0.purge().await
    }
}

#[async_trait]
impl<M: TaskPersistenceManager> DocumentManager for TypedDocuments<M> {
    async fn create_document(&self, doc: TaskDocument) -> Result<()> {
        let task = decode_document(Operation::Create, &doc)?;
        self.0.create(task).await
    }

    async fn load_document(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        Ok(self
            .0
            .load(task_id)
            .await?
            .map(|task| TaskDocument::from_task(&task)))
    }

    async fn update_document(&self, doc: TaskDocument) -> Result<()> {
        let task = decode_document(Operation::Update, &doc)?;
        self.0.update(task).await
    }

    async fn load_document_by_request_id(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        Ok(self
            .0
            .load_by_request_id(request_id)
            .await?
            .map(|task| TaskDocument::from_task(&task)))
    }

    async fn load_document_with_etag(
        &self,
        task_id: &str,
    ) -> Result<Option<Versioned<TaskDocument>>> {
        Ok(self
            .0
            .load_with_etag(task_id)
            .await?
            .map(|v| Versioned::new(TaskDocument::from_task(&v.value), v.etag)))
    }

    async fn update_document_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        let task = decode_document(Operation::Update, &doc)?;
        self.0.update_if_match(task, etag).await
    }
}
