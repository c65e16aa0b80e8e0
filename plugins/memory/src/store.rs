//! `MemoryTaskPersistenceManager`: tasks as JSON documents in a map, with a request-id
//! index ordered the way `load_by_request_id` answers. It implements
//! [`DocumentStore`]; the typed `TaskPersistenceManager` comes with it, and ids arrive
//! already checked.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::{
    async_trait, BoxError, DocumentStore, ETag, Operation, PersistenceError, Result, TaskDocument,
    Versioned,
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
            return Err(PersistenceError::not_found(
                Operation::Update,
                doc.task_id(),
            ));
        };
        if let Some(expected) = expected {
            if etag(current) != *expected {
                return Err(PersistenceError::conflict(
                    Operation::Update,
                    doc.task_id(),
                    expected.to_string(),
                ));
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

#[async_trait]
impl DocumentStore for MemoryTaskPersistenceManager {
    async fn insert(&self, doc: TaskDocument) -> Result<()> {
        let mut state = self.lock();
        if state.docs.contains_key(doc.task_id()) {
            return Err(PersistenceError::already_exists(
                Operation::Create,
                doc.task_id(),
            ));
        }
        state.revision += 1;
        let revision = state.revision;
        state.index_add(&doc);
        state
            .docs
            .insert(doc.task_id().to_owned(), Entry { doc, revision });
        Ok(())
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        Ok(self.lock().docs.get(task_id).map(|e| e.doc.clone()))
    }

    async fn replace(&self, doc: TaskDocument) -> Result<()> {
        self.lock().replace(doc, None).map(drop)
    }

    async fn remove(&self, task_id: &str) -> Result<()> {
        let mut state = self.lock();
        let Some(entry) = state.docs.remove(task_id) else {
            return Err(PersistenceError::not_found(Operation::Delete, task_id));
        };
        state.index_remove(&entry.doc);
        Ok(())
    }

    async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        let state = self.lock();
        let first = state
            .index
            .get(request_id)
            .and_then(|members| members.first());
        Ok(first
            .and_then(|(_, task_id)| state.docs.get(task_id))
            .map(|e| e.doc.clone()))
    }

    async fn get_versioned(&self, task_id: &str) -> Result<Option<Versioned<TaskDocument>>> {
        Ok(self
            .lock()
            .docs
            .get(task_id)
            .map(|e| Versioned::new(e.doc.clone(), etag(e.revision))))
    }

    async fn replace_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        self.lock().replace(doc, Some(etag))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn remove_all(&self) -> Result<u64> {
        let mut state = self.lock();
        let removed = state.docs.len() as u64;
        state.docs.clear();
        state.index.clear();
        Ok(removed)
    }
}
