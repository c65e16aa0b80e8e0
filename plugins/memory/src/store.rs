//! `MemoryTaskPersistenceManager`: tasks as JSON documents in a map, with a request-id
//! index ordered the way `load_by_request_id` answers.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::{
    async_trait, validate_id, AgentTask, BoxError, ETag, Operation, PersistenceError, Result,
    TaskDocument, TaskPersistenceManager, Versioned,
};

/// An in-memory task store, exported as class `MemoryTaskPersistenceManager`.
///
/// One mutex guards the documents and the index together, so they always agree; it is
/// never held across an `.await` (every method finishes its work before returning).
#[derive(Debug, Default)]
pub struct MemoryTaskPersistenceManager {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    docs: HashMap<String, Entry>,
    /// request id -> (created_at, task id) of every task holding it; the first is the
    /// answer of `load_by_request_id`.
    index: HashMap<String, BTreeSet<(i64, String)>>,
    /// Bumped on every write: ETags are never reused, even after delete and re-create.
    revision: u64,
}

#[derive(Debug)]
struct Entry {
    doc: TaskDocument,
    revision: u64,
}

impl FromConfig for MemoryTaskPersistenceManager {
    fn from_config(_config: &PluginConfig) -> std::result::Result<Self, BoxError> {
        // This store has no settings. A real one reads its `TA_*` variables here and
        // returns an error naming any malformed one.
        tracing::info!("in-memory plugin store ready");
        Ok(Self::default())
    }
}

impl MemoryTaskPersistenceManager {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Each critical section checks before it changes anything, so a panic cannot
        // leave the maps half-updated: a poisoned lock's data is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn index_add(&mut self, doc: &TaskDocument) {
        for request_id in doc.request_ids() {
            self.index
                .entry(request_id.clone())
                .or_default()
                .insert((doc.created_at_micros(), doc.task_id().to_owned()));
        }
    }

    fn index_remove(&mut self, doc: &TaskDocument) {
        let member = (doc.created_at_micros(), doc.task_id().to_owned());
        for request_id in doc.request_ids() {
            if let Some(members) = self.index.get_mut(request_id) {
                members.remove(&member);
                if members.is_empty() {
                    self.index.remove(request_id);
                }
            }
        }
    }

    fn replace(&mut self, doc: TaskDocument, expected: Option<&ETag>) -> Result<ETag> {
        let Some(current) = self.docs.get(doc.task_id()).map(|e| e.revision) else {
            return Err(PersistenceError::NotFound {
                op: Operation::Update,
                task_id: doc.task_id().to_owned(),
            });
        };
        if let Some(expected) = expected {
            if etag(current) != *expected {
                return Err(PersistenceError::Conflict {
                    op: Operation::Update,
                    task_id: doc.task_id().to_owned(),
                    expected: expected.to_string(),
                });
            }
        }
        if let Some(old) = self.docs.remove(doc.task_id()) {
            self.index_remove(&old.doc);
        }
        self.revision += 1;
        let revision = self.revision;
        self.index_add(&doc);
        self.docs
            .insert(doc.task_id().to_owned(), Entry { doc, revision });
        Ok(etag(revision))
    }
}

fn etag(revision: u64) -> ETag {
    ETag::new(format!("rev-{revision}"))
}

fn decode(op: Operation, doc: TaskDocument) -> Result<AgentTask> {
    doc.to_task().map_err(|e| PersistenceError::Corrupt {
        op,
        task_id: doc.task_id().to_owned(),
        source: Box::new(e),
    })
}

#[async_trait]
impl TaskPersistenceManager for MemoryTaskPersistenceManager {
    async fn create(&self, task: AgentTask) -> Result<()> {
        self.create_document(TaskDocument::from_task(&task)).await
    }

    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>> {
        let doc = self.load_document(task_id).await?;
        doc.map(|d| decode(Operation::Load, d)).transpose()
    }

    async fn update(&self, task: AgentTask) -> Result<()> {
        self.update_document(TaskDocument::from_task(&task)).await
    }

    async fn delete(&self, task_id: &str) -> Result<()> {
        validate_id(Operation::Delete, "task id", task_id)?;
        let mut state = self.lock();
        let Some(entry) = state.docs.remove(task_id) else {
            return Err(PersistenceError::NotFound {
                op: Operation::Delete,
                task_id: task_id.to_owned(),
            });
        };
        state.index_remove(&entry.doc);
        Ok(())
    }

    async fn load_by_request_id(&self, request_id: &str) -> Result<Option<AgentTask>> {
        let doc = self.load_document_by_request_id(request_id).await?;
        doc.map(|d| decode(Operation::LoadByRequestId, d))
            .transpose()
    }

    async fn load_with_etag(&self, task_id: &str) -> Result<Option<Versioned>> {
        let Some(v) = self.load_document_with_etag(task_id).await? else {
            return Ok(None);
        };
        Ok(Some(Versioned::new(
            decode(Operation::Load, v.value)?,
            v.etag,
        )))
    }

    async fn update_if_match(&self, task: AgentTask, etag: &ETag) -> Result<ETag> {
        self.update_document_if_match(TaskDocument::from_task(&task), etag)
            .await
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }

    async fn clear(&self) -> Result<u64> {
        let mut state = self.lock();
        let removed = state.docs.len() as u64;
        state.docs.clear();
        state.index.clear();
        Ok(removed)
    }

    async fn create_document(&self, doc: TaskDocument) -> Result<()> {
        doc.validate_ids(Operation::Create)?;
        let mut state = self.lock();
        if state.docs.contains_key(doc.task_id()) {
            return Err(PersistenceError::AlreadyExists {
                op: Operation::Create,
                task_id: doc.task_id().to_owned(),
            });
        }
        state.revision += 1;
        let revision = state.revision;
        state.index_add(&doc);
        state
            .docs
            .insert(doc.task_id().to_owned(), Entry { doc, revision });
        Ok(())
    }

    async fn load_document(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        validate_id(Operation::Load, "task id", task_id)?;
        Ok(self.lock().docs.get(task_id).map(|e| e.doc.clone()))
    }

    async fn update_document(&self, doc: TaskDocument) -> Result<()> {
        doc.validate_ids(Operation::Update)?;
        self.lock().replace(doc, None).map(drop)
    }

    async fn load_document_by_request_id(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        validate_id(Operation::LoadByRequestId, "request id", request_id)?;
        let state = self.lock();
        let first = state
            .index
            .get(request_id)
            .and_then(|members| members.first());
        Ok(first
            .and_then(|(_, task_id)| state.docs.get(task_id))
            .map(|e| e.doc.clone()))
    }

    async fn load_document_with_etag(
        &self,
        task_id: &str,
    ) -> Result<Option<Versioned<TaskDocument>>> {
        validate_id(Operation::Load, "task id", task_id)?;
        Ok(self
            .lock()
            .docs
            .get(task_id)
            .map(|e| Versioned::new(e.doc.clone(), etag(e.revision))))
    }

    async fn update_document_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        doc.validate_ids(Operation::Update)?;
        self.lock().replace(doc, Some(etag))
    }
}
