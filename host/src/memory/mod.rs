//! The built-in in-memory store: the embedded default backend.
//!
//! One map from task id to task (kept in a compact form, see `packed.rs`), one index from
//! request id to the tasks that hold it, both behind a single `RwLock` so they can never
//! disagree. Reads take the lock shared (many at once); writes take it exclusively for a
//! few map operations. The lock is a `std` lock, not an async one, because it is never
//! held across an `.await`: every operation does its work in one synchronous critical
//! section, and packs or unpacks a task outside the exclusive lock where it can.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

mod packed;

use packed::Packed;
use ta_persistence_api::{
    async_trait, decode_document, validate_id, validate_task_ids, AgentTask, DocumentManager, ETag,
    Operation, PersistenceError, Result, TaskDocument, TaskPersistenceManager, Versioned,
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

/// hashbrown's map with its default hasher (foldhash): fast, and still seeded per
/// process, which matters because ids come from clients.
type Map<K, V> = hashbrown::HashMap<K, V>;

#[derive(Debug, Default)]
struct State {
    /// task id -> task. The key is shared with the task's index entries.
    tasks: Map<Arc<str>, Stored>,
    /// request id -> the tasks holding it, sorted by (created_at, task id): the first
    /// member is the answer to `load_by_request_id`.
    index: Map<Box<str>, Members>,
}

#[derive(Debug)]
struct Stored {
    packed: Packed,
    revision: u64,
}

impl Stored {
    fn task(&self, op: Operation, task_id: &str) -> Result<AgentTask> {
        self.packed.unpack().map_err(|_| corrupt(op, task_id))
    }

    fn index_keys(&self, op: Operation, task_id: &str) -> Result<(i64, Vec<&str>)> {
        self.packed.index_keys().map_err(|_| corrupt(op, task_id))
    }
}

/// A packed task that does not read back: a bug in `packed`, reported, not hidden.
fn corrupt(op: Operation, task_id: &str) -> PersistenceError {
    PersistenceError::corrupt(
        op,
        task_id,
        "the in-memory copy of the task does not read back",
    )
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Member {
    created: i64,
    task_id: Arc<str>,
}

/// The tasks holding one request id. Almost always one (every item of a request carries
/// its id), so that case needs no allocation of its own.
#[derive(Debug)]
enum Members {
    One(Member),
    /// Sorted, at least two.
    Many(Vec<Member>),
}

impl Members {
    fn first(&self) -> &Member {
        match self {
            Members::One(m) => m,
            // `Many` always holds at least two members.
            Members::Many(v) => &v[0],
        }
    }

    fn len(&self) -> usize {
        match self {
            Members::One(_) => 1,
            Members::Many(v) => v.len(),
        }
    }

    fn insert(&mut self, member: Member) {
        match self {
            Members::One(m) if *m == member => {}
            Members::One(m) => {
                let mut v = vec![m.clone(), member];
                v.sort();
                *self = Members::Many(v);
            }
            Members::Many(v) => {
                if let Err(at) = v.binary_search(&member) {
                    v.insert(at, member);
                }
            }
        }
    }

    /// Removes a member; `true` when none is left.
    fn remove(&mut self, member: &Member) -> bool {
        match self {
            Members::One(m) => m == member,
            Members::Many(v) => {
                if let Ok(at) = v.binary_search(member) {
                    v.remove(at);
                }
                if v.len() == 1 {
                    *self = Members::One(v.remove(0));
                }
                false
            }
        }
    }
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
            index_entries: state.index.values().map(Members::len).sum(),
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
        let packed = Packed::pack(&task);
        let new_created = task.created_at.utc_micros();
        let new_ids = task.request_ids();
        // Built outside the lock: the part of re-indexing that grows with the new items.
        let new_set = IdSet::new(&new_ids);
        let revision = self.next_revision();
        let mut state = self.write();
        let State { tasks, index } = &mut *state;
        let Some((key, stored)) = tasks.get_key_value_mut(task.task_id.as_str()) else {
            return Err(PersistenceError::not_found(
                Operation::Update,
                task.task_id.clone(),
            ));
        };
        if let Some(expected) = expected {
            if etag_of(stored.revision) != *expected {
                return Err(PersistenceError::conflict(
                    Operation::Update,
                    task.task_id.clone(),
                    expected.to_string(),
                ));
            }
        }
        let old_keys = stored.index_keys(Operation::Update, key)?;
        reindex(index, key, old_keys, (new_created, &new_set));
        *stored = Stored { packed, revision };
        Ok(etag_of(revision))
    }
}

fn etag_of(revision: u64) -> ETag {
    ETag::new(format!("mem-{revision}"))
}

fn index_add(index: &mut Map<Box<str>, Members>, request_id: &str, member: Member) {
    match index.get_mut(request_id) {
        Some(members) => members.insert(member),
        None => {
            index.insert(request_id.into(), Members::One(member));
        }
    }
}

fn index_remove(index: &mut Map<Box<str>, Members>, request_id: &str, member: &Member) {
    if let Some(members) = index.get_mut(request_id) {
        if members.remove(member) {
            index.remove(request_id);
        }
    }
}

/// Up to this many request ids, scanning the other list beats building a set.
const SCAN_MAX: usize = 16;

/// A list of distinct request ids that answers "does it hold this id?" in constant time
/// once it is long.
struct IdSet<'a> {
    ids: &'a [&'a str],
    set: Option<hashbrown::HashSet<&'a str>>,
}

impl<'a> IdSet<'a> {
    fn new(ids: &'a [&'a str]) -> Self {
        let set = (ids.len() > SCAN_MAX).then(|| ids.iter().copied().collect());
        Self { ids, set }
    }

    fn ids(&self) -> &'a [&'a str] {
        self.ids
    }

    fn contains(&self, id: &str) -> bool {
        match &self.set {
            None => self.ids.contains(&id),
            Some(set) => set.contains(id),
        }
    }
}

/// Moves a task's index entries from its old (created_at, request ids) to its new ones,
/// touching only the request ids that differ (an appended turn usually adds one and
/// keeps the rest). Linear in the number of ids.
fn reindex(
    index: &mut Map<Box<str>, Members>,
    key: &Arc<str>,
    (old_created, old_ids): (i64, Vec<&str>),
    (new_created, new_set): (i64, &IdSet<'_>),
) {
    let member = |created| Member {
        created,
        task_id: Arc::clone(key),
    };
    let moved = old_created != new_created;
    let old_member = member(old_created);
    for id in &old_ids {
        if moved || !new_set.contains(id) {
            index_remove(index, id, &old_member);
        }
    }
    let new_member = member(new_created);
    let old_set = IdSet::new(&old_ids);
    for id in new_set.ids() {
        if moved || !old_set.contains(id) {
            index_add(index, id, new_member.clone());
        }
    }
}

impl InMemoryPersistenceManager {
    /// [`TaskPersistenceManager::create`], done at once: every operation of this store
    /// completes synchronously, so a caller that knows it holds the built-in store can
    /// skip the boxed future of the trait call.
    pub(crate) fn create_now(&self, task: AgentTask) -> Result<()> {
        validate_task_ids(Operation::Create, &task)?;
        let packed = Packed::pack(&task);
        // Outside the lock: the only part that grows with the number of items.
        let ids = task.request_ids();
        let revision = self.next_revision();
        let mut state = self.write();
        let State { tasks, index } = &mut *state;
        if tasks.contains_key(task.task_id.as_str()) {
            return Err(PersistenceError::already_exists(
                Operation::Create,
                task.task_id,
            ));
        }
        let key: Arc<str> = Arc::from(task.task_id.as_str());
        let member = Member {
            created: task.created_at.utc_micros(),
            task_id: Arc::clone(&key),
        };
        for id in ids {
            index_add(index, id, member.clone());
        }
        tasks.insert(key, Stored { packed, revision });
        Ok(())
    }

    /// [`TaskPersistenceManager::load`], done at once.
    pub(crate) fn load_now(&self, task_id: &str) -> Result<Option<AgentTask>> {
        validate_id(Operation::Load, "task id", task_id)?;
        let state = self.read();
        state
            .tasks
            .get(task_id)
            .map(|s| s.task(Operation::Load, task_id))
            .transpose()
    }

    /// [`TaskPersistenceManager::update`], done at once.
    pub(crate) fn update_now(&self, task: AgentTask) -> Result<()> {
        self.replace(task, None).map(drop)
    }

    /// [`TaskPersistenceManager::delete`], done at once.
    pub(crate) fn delete_now(&self, task_id: &str) -> Result<()> {
        validate_id(Operation::Delete, "task id", task_id)?;
        let mut state = self.write();
        let State { tasks, index } = &mut *state;
        let Some((key, stored)) = tasks.get_key_value(task_id) else {
            return Err(PersistenceError::not_found(Operation::Delete, task_id));
        };
        // Read the index keys before changing anything: if they cannot be read, the task
        // and its index entries stay as they were, rather than leaving orphan entries.
        let (created, ids) = stored.index_keys(Operation::Delete, key)?;
        let member = Member {
            created,
            task_id: Arc::clone(key),
        };
        for id in ids {
            index_remove(index, id, &member);
        }
        tasks.remove(task_id);
        Ok(())
    }

    /// [`TaskPersistenceManager::load_by_request_id`], done at once.
    pub(crate) fn load_by_request_id_now(&self, request_id: &str) -> Result<Option<AgentTask>> {
        validate_id(Operation::LoadByRequestId, "request id", request_id)?;
        let state = self.read();
        state
            .index
            .get(request_id)
            .and_then(|members| state.tasks.get_key_value(&*members.first().task_id))
            .map(|(id, s)| s.task(Operation::LoadByRequestId, id))
            .transpose()
    }
}

#[async_trait]
impl TaskPersistenceManager for InMemoryPersistenceManager {
    async fn create(&self, task: AgentTask) -> Result<()> {
        self.create_now(task)
    }

    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>> {
        self.load_now(task_id)
    }

    async fn update(&self, task: AgentTask) -> Result<()> {
        self.update_now(task)
    }

    async fn delete(&self, task_id: &str) -> Result<()> {
        self.delete_now(task_id)
    }

    async fn load_by_request_id(&self, request_id: &str) -> Result<Option<AgentTask>> {
        self.load_by_request_id_now(request_id)
    }

    async fn load_with_etag(&self, task_id: &str) -> Result<Option<Versioned>> {
        validate_id(Operation::Load, "task id", task_id)?;
        let state = self.read();
        state
            .tasks
            .get(task_id)
            .map(|s| {
                Ok(Versioned::new(
                    s.task(Operation::Load, task_id)?,
                    etag_of(s.revision),
                ))
            })
            .transpose()
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

// The built-in store keeps decoded tasks: documents are decoded on the way in and encoded
// on the way out, as `TypedDocuments` would, without its extra call on the typed path.
#[async_trait]
impl DocumentManager for InMemoryPersistenceManager {
    async fn create_document(&self, doc: TaskDocument) -> Result<()> {
        self.create_now(decode_document(Operation::Create, &doc)?)
    }

    async fn load_document(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        Ok(self.load_now(task_id)?.map(|t| TaskDocument::from_task(&t)))
    }

    async fn update_document(&self, doc: TaskDocument) -> Result<()> {
        self.update_now(decode_document(Operation::Update, &doc)?)
    }

    async fn load_document_by_request_id(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        Ok(self
            .load_by_request_id_now(request_id)?
            .map(|t| TaskDocument::from_task(&t)))
    }

    async fn load_document_with_etag(
        &self,
        task_id: &str,
    ) -> Result<Option<Versioned<TaskDocument>>> {
        Ok(self
            .load_with_etag(task_id)
            .await?
            .map(|v| Versioned::new(TaskDocument::from_task(&v.value), v.etag)))
    }

    async fn update_document_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        let task = decode_document(Operation::Update, &doc)?;
        self.update_if_match(task, etag).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ta_persistence_api::{AgentTaskItem, MultiModalItem, Role, Timestamp};

    fn task(id: &str, request_ids: &[&str]) -> AgentTask {
        let now = Timestamp::parse("2025-01-01T00:00:00").unwrap();
        let mut task = AgentTask::new(id, "s", "u", now);
        for request_id in request_ids {
            task.items.push(AgentTaskItem::new(
                id,
                *request_id,
                Role::User,
                MultiModalItem::text("x"),
                now,
            ));
        }
        task
    }

    #[tokio::test]
    async fn a_delete_that_cannot_read_the_index_keys_changes_nothing() {
        let store = InMemoryPersistenceManager::new();
        store.create(task("t1", &["r1", "r2"])).await.unwrap();
        let before = store.stats();
        store
            .write()
            .tasks
            .get_mut("t1")
            .unwrap()
            .packed
            .break_for_test();
        let err = store.delete("t1").await.unwrap_err();
        assert!(matches!(err, PersistenceError::Corrupt { .. }), "{err:?}");
        assert_eq!(store.stats(), before);
        let state = store.read();
        assert!(state.tasks.contains_key("t1"));
        assert_eq!(&*state.index["r1"].first().task_id, "t1");
        assert_eq!(&*state.index["r2"].first().task_id, "t1");
    }

    #[tokio::test]
    async fn many_request_ids_are_indexed_and_reindexed_exactly() {
        let store = InMemoryPersistenceManager::new();
        let ids: Vec<String> = (0..5000).map(|n| format!("r{n}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        store.create(task("t1", &refs)).await.unwrap();
        assert_eq!(store.stats().index_entries, 5000);
        // Drop the first half, keep the second, add new ones.
        let next: Vec<String> = (2500..7500).map(|n| format!("r{n}")).collect();
        let refs: Vec<&str> = next.iter().map(String::as_str).collect();
        store.update(task("t1", &refs)).await.unwrap();
        let stats = store.stats();
        assert_eq!((stats.request_ids, stats.index_entries), (5000, 5000));
        assert!(store.load_by_request_id("r0").await.unwrap().is_none());
        assert!(store.load_by_request_id("r2500").await.unwrap().is_some());
        assert!(store.load_by_request_id("r7499").await.unwrap().is_some());
        store.delete("t1").await.unwrap();
        assert_eq!(store.stats(), MemoryStats::default());
    }
}
