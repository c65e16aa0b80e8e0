//! `DocumentStore`: the easier trait for a store that keeps tasks as JSON documents.
//!
//! Implement it instead of [`TaskPersistenceManager`] and get that trait for free: every
//! typed method is derived (tasks are encoded once on the way in and decoded once on the
//! way out), ids are validated before your method is called, and a stored document that
//! no longer decodes is reported as `Corrupt`. Over the plugin boundary nothing is
//! decoded at all: the host's JSON reaches [`DocumentStore::insert`] as it was sent.

use async_trait::async_trait;

use crate::document::{validate_task_ids, TaskDocument};
use crate::error::{validate_id, Operation, Result};
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

    /// Checks that the store can serve.
    async fn ping(&self) -> Result<()>;

    /// Removes every task of this store; returns how many.
    async fn remove_all(&self) -> Result<u64>;
}

#[async_trait]
impl<T: DocumentStore> TaskPersistenceManager for T {
    async fn create(&self, task: AgentTask) -> Result<()> {
        validate_task_ids(Operation::Create, &task)?;
        self.insert(TaskDocument::from_task(&task)).await
    }

    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>> {
        let doc = self.load_document(task_id).await?;
        doc.map(|d| d.into_stored_task(Operation::Load)).transpose()
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
        let doc = self.load_document_by_request_id(request_id).await?;
        doc.map(|d| d.into_stored_task(Operation::LoadByRequestId))
            .transpose()
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
