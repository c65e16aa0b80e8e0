//! The built-in in-memory store: the embedded default backend.
//!
//! One map from task id to task, one index from request id to the tasks that hold it,
//! both behind a single `RwLock` so they can never disagree. Reads take the lock shared
//! (many at once); writes take it exclusively for a few map operations. The lock is a
//! `std` lock, not an async one, because it is never held across an `.await`: every
//! operation does its work in one synchronous critical section.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ta_persistence_api::{
    async_trait, validate_id, validate_task_ids, AgentTask, ETag, Operation, PersistenceError,
    Result, TaskPersistenceManager, Versioned,
};

/// The built-in in-memory task store.
///
/// Cloning is shallow: clones share one store (it is an `Arc` inside), which is how the
/// factory hands the same store to every caller. Tasks live as long as the store; nothing
/// is persisted across restarts and nothing is shared between processes.
#[derive(Debug, Clone, Default)]
pub struct InMemoryPersistenceManager {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: RwLock<State>,
    /// Source of ETags: every write takes a fresh number, so a task deleted and created
    /// again never gets back an ETag it had before.
    revisions: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    tasks: HashMap<String, Stored>,
    /// request id -> the tasks holding it, sorted by (created_at, task id): the first
    /// member is the answer to `load_by_request_id`.
    index: HashMap<String, Vec<Member>>,
}

#[derive(Debug)]
struct Stored {
    task: AgentTask,
    revision: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Member {
    created: i64,
    task_id: String,
}

/// Sizes of an [`InMemoryPersistenceManager`], for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Stored tasks.
    pub tasks: usize,
    /// Distinct request ids in the index.
    pub request_ids: usize,
    /// (request id, task) pairs in the index.
    pub index_entries: usize,
}

impl InMemoryPersistenceManager {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many tasks and index entries the store holds.
    pub fn stats(&self) -> MemoryStats {
        let state = self.read();
        MemoryStats {
            tasks: state.tasks.len(),
            request_ids: state.index.len(),
            index_entries: state.index.values().map(Vec::len).sum(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while the lock was held cannot leave the maps half-changed: every
        // critical section validates first and then only inserts or removes, so the
        // data behind a poisoned lock is still consistent.
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn next_revision(&self) -> u64 {
        self.inner.revisions.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn replace(&self, task: AgentTask, expected: Option<&ETag>) -> Result<ETag> {
        validate_task_ids(Operation::Update, &task)?;
        let revision = self.next_revision();
        let mut state = self.write();
        let State { tasks, index } = &mut *state;
        let Some(stored) = tasks.get_mut(task.task_id.as_str()) else {
            return Err(PersistenceError::NotFound {
                op: Operation::Update,
                task_id: task.task_id,
            });
        };
        if let Some(expected) = expected {
            if etag_of(stored.revision) != *expected {
                return Err(PersistenceError::Conflict {
                    op: Operation::Update,
                    task_id: task.task_id,
                    expected: expected.to_string(),
                });
            }
        }
        reindex(index, &stored.task, &task);
        stored.task = task;
        stored.revision = revision;
        Ok(etag_of(revision))
    }
}

fn etag_of(revision: u64) -> ETag {
    ETag::new(format!("mem-{revision}"))
}

fn member_of(task: &AgentTask) -> Member {
    Member {
        created: task.created_at.utc_micros(),
        task_id: task.task_id.clone(),
    }
}

fn index_add(index: &mut HashMap<String, Vec<Member>>, request_id: &str, member: Member) {
    let members = match index.get_mut(request_id) {
        Some(members) => members,
        None => index.entry(request_id.to_owned()).or_default(),
    };
    if let Err(at) = members.binary_search(&member) {
        members.insert(at, member);
    }
}

fn index_remove(index: &mut HashMap<String, Vec<Member>>, request_id: &str, member: &Member) {
    if let Some(members) = index.get_mut(request_id) {
        if let Ok(at) = members.binary_search(member) {
            members.remove(at);
        }
        if members.is_empty() {
            index.remove(request_id);
        }
    }
}

/// Moves a task's index entries from what `old` holds to what `new` holds, touching only
/// the request ids that differ (an appended turn usually adds one and keeps the rest).
fn reindex(index: &mut HashMap<String, Vec<Member>>, old: &AgentTask, new: &AgentTask) {
    let old_member = member_of(old);
    let new_member = member_of(new);
    let old_ids = old.request_ids();
    let new_ids = new.request_ids();
    for id in &old_ids {
        if old_member != new_member || !new_ids.contains(id) {
            index_remove(index, id, &old_member);
        }
    }
    for id in &new_ids {
        if old_member != new_member || !old_ids.contains(id) {
            index_add(index, id, new_member.clone());
        }
    }
}

#[async_trait]
impl TaskPersistenceManager for InMemoryPersistenceManager {
    async fn create(&self, task: AgentTask) -> Result<()> {
        validate_task_ids(Operation::Create, &task)?;
        let revision = self.next_revision();
        let mut state = self.write();
        let State { tasks, index } = &mut *state;
        if tasks.contains_key(task.task_id.as_str()) {
            return Err(PersistenceError::AlreadyExists {
                op: Operation::Create,
                task_id: task.task_id,
            });
        }
        let member = member_of(&task);
        for id in task.request_ids() {
            index_add(index, id, member.clone());
        }
        tasks.insert(task.task_id.clone(), Stored { task, revision });
        Ok(())
    }

    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>> {
        validate_id(Operation::Load, "task id", task_id)?;
        Ok(self.read().tasks.get(task_id).map(|s| s.task.clone()))
    }

    async fn update(&self, task: AgentTask) -> Result<()> {
        self.replace(task, None).map(drop)
    }

    async fn delete(&self, task_id: &str) -> Result<()> {
        validate_id(Operation::Delete, "task id", task_id)?;
        let mut state = self.write();
        let State { tasks, index } = &mut *state;
        let Some(stored) = tasks.remove(task_id) else {
            return Err(PersistenceError::NotFound {
                op: Operation::Delete,
                task_id: task_id.to_owned(),
            });
        };
        let member = member_of(&stored.task);
        for id in stored.task.request_ids() {
            index_remove(index, id, &member);
        }
        Ok(())
    }

    async fn load_by_request_id(&self, request_id: &str) -> Result<Option<AgentTask>> {
        validate_id(Operation::LoadByRequestId, "request id", request_id)?;
        let state = self.read();
        Ok(state
            .index
            .get(request_id)
            .and_then(|members| members.first())
            .and_then(|first| state.tasks.get(&first.task_id))
            .map(|s| s.task.clone()))
    }

    async fn load_with_etag(&self, task_id: &str) -> Result<Option<Versioned>> {
        validate_id(Operation::Load, "task id", task_id)?;
        Ok(self
            .read()
            .tasks
            .get(task_id)
            .map(|s| Versioned::new(s.task.clone(), etag_of(s.revision))))
    }

    async fn update_if_match(&self, task: AgentTask, etag: &ETag) -> Result<ETag> {
        self.replace(task, Some(etag))
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }

    async fn clear(&self) -> Result<u64> {
        let mut state = self.write();
        let removed = state.tasks.len() as u64;
        state.tasks.clear();
        state.index.clear();
        Ok(removed)
    }
}
