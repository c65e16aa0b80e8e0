//! The built-in in-memory store: the embedded default backend.
//!
//! One map from task id to task (kept in a compact form, see `packed.rs`), one index from
//! request id to the tasks that hold it, the listing indexes (`listing.rs`) and the
//! expiry schedule (`expiry.rs`), all behind a single `RwLock` so they can never
//! disagree. Reads take the lock shared (many at once); writes take it exclusively for a
//! few map operations. The lock is a `std` lock, not an async one, because it is never
//! held across an `.await`: every operation does its work in one synchronous critical
//! section, and packs or unpacks a task outside the exclusive lock where it can.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

mod expiry;
mod listing;
mod packed;

use expiry::{is_live, Deadlines, Sweepable};
use listing::{Entry, Listed, Listing};
use packed::Packed;
use ta_persistence_api::listing::{Page, PageRequest, TaskFilter, TaskSummary};
use ta_persistence_api::retention::RetentionPolicy;
use ta_persistence_api::{
    async_trait, decode_document, validate_id, validate_task_ids, AgentTask, DocumentManager, ETag,
    Operation, PersistenceError, Result, TaskDocument, TaskPersistenceManager, Versioned,
};
use tokio::time::Instant;

/// The built-in in-memory task store.
///
/// Cloning is shallow: clones share one store (it is an `Arc` inside), which is how the
/// factory hands the same store to every caller. Tasks live as long as the store; nothing
/// is persisted across restarts and nothing is shared between processes.
///
/// # Listing and retention
///
/// `list_tasks` reads ordered indexes kept with the tasks, so a page costs about its
/// size whatever the number of tasks. A store made [`with_retention`](Self::with_retention)
/// forgets finished tasks a set time after their last write (see
/// [`ta_persistence_api::retention`]): an expired task is invisible at once, and is
/// removed by `purge` or by a background sweep.
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
    /// How long finished tasks are kept.
    policy: RetentionPolicy,
    /// The background sweep, if one runs.
    sweeper: Sweeper,
}

/// The background sweep's handle: the sweep stops when the store (and so this) is dropped.
#[derive(Debug, Default)]
struct Sweeper(Mutex<Option<tokio::task::AbortHandle>>);

impl Drop for Sweeper {
    fn drop(&mut self) {
        let handle = self.0.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = handle.take() {
            handle.abort();
        }
    }
}

impl Inner {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while the lock was held cannot leave the maps half-changed: every
        // critical section validates first and then only inserts or removes, so the
        // data behind a poisoned lock is still consistent.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sweepable for Inner {
    fn purge_batch(&self, at: Instant) -> usize {
        let mut state = self.write();
        let due = state.deadlines.expired(at, expiry::BATCH);
        let mut removed = 0;
        for task_id in due {
            // A task that cannot be read back stays (and stays invisible); the error is a
            // bug in `packed` that every read of it reports.
            if state.remove(Operation::Purge, &task_id).is_ok() {
                removed += 1;
            }
        }
        removed
    }
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
    /// The tasks in listing order, per status, session and user.
    listing: Listing,
    /// The tasks that expire, by when.
    deadlines: Deadlines,
}

#[derive(Debug)]
struct Stored {
    packed: Packed,
    revision: u64,
    /// When the task expires under the store's retention policy, if it does.
    expires: Option<Instant>,
}

impl Stored {
    fn task(&self, op: Operation, task_id: &str) -> Result<AgentTask> {
        self.packed.unpack().map_err(|_| corrupt(op, task_id))
    }

    fn index_keys(&self, op: Operation, task_id: &str) -> Result<(i64, Vec<&str>)> {
        self.packed.index_keys().map_err(|_| corrupt(op, task_id))
    }

    fn listed(&self, op: Operation, task_id: &str) -> Result<Listed<'_>> {
        let head = self.packed.head().map_err(|_| corrupt(op, task_id))?;
        Ok(Listed {
            session_id: head.session_id,
            user_id: head.user_id,
            status: head.status,
            created: head.created_at.utc_micros(),
        })
    }

    fn summary(&self, op: Operation, task_id: &str) -> Result<TaskSummary> {
        let head = self.packed.head().map_err(|_| corrupt(op, task_id))?;
        Ok(TaskSummary::new(
            head.task_id,
            head.session_id,
            head.user_id,
            head.status,
            head.created_at,
            head.last_updated,
            u64::from(head.item_count),
        ))
    }

    /// Whether the task has not expired.
    fn is_live(&self) -> bool {
        is_live(self.expires)
    }
}

impl State {
    /// The stored task with this id, unless it has expired.
    fn live(&self, task_id: &str) -> Option<(&Arc<str>, &Stored)> {
        self.tasks
            .get_key_value(task_id)
            .filter(|(_, stored)| stored.is_live())
    }

    /// Removes a task with its index and listing entries and its expiry. If its index
    /// keys cannot be read, nothing changes (rather than leaving orphan entries).
    fn remove(&mut self, op: Operation, task_id: &str) -> Result<bool> {
        let State {
            tasks,
            index,
            listing,
            deadlines,
        } = self;
        let Some((key, stored)) = tasks.get_key_value(task_id) else {
            return Ok(false);
        };
        let (created, ids) = stored.index_keys(op, key)?;
        let listed = stored.listed(op, key)?;
        let member = Member {
            created,
            task_id: Arc::clone(key),
        };
        for id in ids {
            index_remove(index, id, &member);
        }
        listing.remove(key, &listed);
        deadlines.reschedule(key, stored.expires, None);
        tasks.remove(task_id);
        Ok(true)
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
    #[cfg(test)]
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

    /// The members in order, first-created first.
    fn iter(&self) -> std::slice::Iter<'_, Member> {
        match self {
            Members::One(m) => std::slice::from_ref(m).iter(),
            Members::Many(v) => v.iter(),
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
    /// Stored tasks (expired ones not yet removed included).
    pub tasks: usize,
    /// Distinct request ids in the index.
    pub request_ids: usize,
    /// (request id, task) pairs in the index.
    pub index_entries: usize,
    /// Entries of the listing indexes: three per task (its status's, its session's and
    /// its user's).
    pub list_entries: usize,
    /// Tasks with an expiry scheduled.
    pub expiring: usize,
}

impl InMemoryPersistenceManager {
    /// An empty store that keeps every task until it is deleted.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that forgets finished tasks as `policy` says (see
    /// [`ta_persistence_api::retention`]).
    ///
    /// Expired tasks are invisible at once. When this is called inside a tokio runtime,
    /// a task of that runtime also removes them in the background (a short turn at the
    /// lock per batch), until the store is dropped; elsewhere only
    /// [`purge`](TaskPersistenceManager::purge) and writes of their ids remove them.
    pub fn with_retention(policy: RetentionPolicy) -> Self {
        let store = InMemoryPersistenceManager {
            inner: Arc::new(Inner {
                policy,
                ..Inner::default()
            }),
        };
        if !policy.is_empty() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let every = expiry::sweep_interval(&policy);
                let sweep = runtime.spawn(expiry::sweep(Arc::downgrade(&store.inner), every));
                *store
                    .inner
                    .sweeper
                    .0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(sweep.abort_handle());
            }
        }
        store
    }

    /// The store's retention policy.
    pub fn retention(&self) -> &RetentionPolicy {
        &self.inner.policy
    }

    /// How many tasks and index entries the store holds.
    pub fn stats(&self) -> MemoryStats {
        let state = self.read();
        MemoryStats {
            tasks: state.tasks.len(),
            request_ids: state.index.len(),
            index_entries: state.index.values().map(Members::len).sum(),
            list_entries: state.listing.entries(),
            expiring: state.deadlines.len(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner.read()
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.write()
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
        let new_listed = Listed {
            session_id: &task.session_id,
            user_id: &task.user_id,
            status: task.status,
            created: new_created,
        };
        let expires = expiry::expiry(&self.inner.policy, task.status);
        let revision = self.next_revision();
        let mut state = self.write();
        let State {
            tasks,
            index,
            listing,
            deadlines,
        } = &mut *state;
        let not_found = || PersistenceError::not_found(Operation::Update, task.task_id.clone());
        let Some((key, stored)) = tasks.get_key_value_mut(task.task_id.as_str()) else {
            return Err(not_found());
        };
        if !stored.is_live() {
            return Err(not_found());
        }
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
        let old_listed = stored.listed(Operation::Update, key)?;
        reindex(index, key, old_keys, (new_created, &new_set));
        listing.relist(key, &old_listed, &new_listed);
        deadlines.reschedule(key, stored.expires, expires);
        *stored = Stored {
            packed,
            revision,
            expires,
        };
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
        let expires = expiry::expiry(&self.inner.policy, task.status);
        let revision = self.next_revision();
        let mut state = self.write();
        if let Some(stored) = state.tasks.get(task.task_id.as_str()) {
            if stored.is_live() {
                return Err(PersistenceError::already_exists(
                    Operation::Create,
                    task.task_id,
                ));
            }
            // An expired task's id is free: its remains go first.
            state.remove(Operation::Create, &task.task_id)?;
        }
        let State {
            tasks,
            index,
            listing,
            deadlines,
        } = &mut *state;
        let key: Arc<str> = Arc::from(task.task_id.as_str());
        let created = task.created_at.utc_micros();
        let member = Member {
            created,
            task_id: Arc::clone(&key),
        };
        for id in ids {
            index_add(index, id, member.clone());
        }
        let listed = Listed {
            session_id: &task.session_id,
            user_id: &task.user_id,
            status: task.status,
            created,
        };
        listing.add(&key, &listed);
        deadlines.reschedule(&key, None, expires);
        tasks.insert(
            key,
            Stored {
                packed,
                revision,
                expires,
            },
        );
        Ok(())
    }

    /// [`TaskPersistenceManager::load`], done at once.
    pub(crate) fn load_now(&self, task_id: &str) -> Result<Option<AgentTask>> {
        validate_id(Operation::Load, "task id", task_id)?;
        let state = self.read();
        state
            .live(task_id)
            .map(|(_, s)| s.task(Operation::Load, task_id))
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
        let live = state.tasks.get(task_id).map(Stored::is_live);
        // An expired task is removed all the same, but it was already gone for the caller.
        if state.remove(Operation::Delete, task_id)? && live == Some(true) {
            return Ok(());
        }
        Err(PersistenceError::not_found(Operation::Delete, task_id))
    }

    /// [`TaskPersistenceManager::load_by_request_id`], done at once.
    pub(crate) fn load_by_request_id_now(&self, request_id: &str) -> Result<Option<AgentTask>> {
        validate_id(Operation::LoadByRequestId, "request id", request_id)?;
        let state = self.read();
        let Some(members) = state.index.get(request_id) else {
            return Ok(None);
        };
        // The first member that has not expired: with retention, an earlier task holding
        // the id may be expired and not yet removed.
        members
            .iter()
            .find_map(|m| state.live(&m.task_id))
            .map(|(id, s)| s.task(Operation::LoadByRequestId, id))
            .transpose()
    }

    /// One page of a listing, done at once (see [`TaskPersistenceManager::list_tasks`]).
    pub fn list_now(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let after = page.start_after(filter)?.map(Entry::of_key);
        let size = page.size() as usize;
        let state = self.read();
        // One more than the page, to know whether another page follows.
        let mut found = Vec::with_capacity(size + 1);
        for entry in state.listing.walk(filter, after.as_ref()) {
            let Some((id, stored)) = state.live(entry.task_id()) else {
                continue;
            };
            let listed = stored.listed(Operation::List, id)?;
            if !filter.matches(listed.session_id, listed.user_id, listed.status) {
                continue;
            }
            found.push(stored.summary(Operation::List, id)?);
            if found.len() > size {
                break;
            }
        }
        drop(state);
        Ok(Page::from_ordered(found, filter, page.size()))
    }

    /// Removes every task that has expired by now, a batch per turn at the lock; returns
    /// how many (see [`TaskPersistenceManager::purge`]).
    pub fn purge_now(&self) -> u64 {
        let at = expiry::now();
        let mut removed = 0u64;
        loop {
            let n = self.inner.purge_batch(at);
            removed += n as u64;
            if n < expiry::BATCH {
                return removed;
            }
        }
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
            .live(task_id)
            .map(|(_, s)| {
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
        state.listing.clear();
        state.deadlines.clear();
        Ok(removed)
    }

    async fn list_tasks(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        self.list_now(filter, page)
    }

    async fn purge(&self) -> Result<u64> {
        Ok(self.purge_now())
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

    mod listing_and_retention {
        use std::time::Duration;

        use super::*;
        use ta_persistence_api::listing::Cursor;
        use ta_persistence_api::TaskStatus;

        fn at(micros: i64) -> Timestamp {
            Timestamp::from_utc(chrono::DateTime::from_timestamp_micros(micros).unwrap())
        }

        fn task_in(
            id: &str,
            session: &str,
            user: &str,
            status: TaskStatus,
            micros: i64,
        ) -> AgentTask {
            let mut task = AgentTask::new(id, session, user, at(micros));
            task.status = status;
            task
        }

        /// Every page of a listing, followed to the end.
        async fn walk(
            store: &InMemoryPersistenceManager,
            filter: &TaskFilter,
            size: u32,
        ) -> Vec<String> {
            let mut ids = Vec::new();
            let mut request = PageRequest::new(size).unwrap();
            loop {
                let page = store.list_tasks(filter, &request).await.unwrap();
                assert!(page.tasks.len() <= size as usize);
                ids.extend(page.tasks.iter().map(|t| t.task_id.clone()));
                match page.next {
                    Some(next) => request = PageRequest::new(size).unwrap().after(next),
                    None => return ids,
                }
            }
        }

        const STATUSES: [TaskStatus; 5] = [
            TaskStatus::Running,
            TaskStatus::Paused,
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Canceled,
        ];

        fn population() -> Vec<AgentTask> {
            (0..200)
                .map(|n: i64| {
                    task_in(
                        &format!("t{:03}", (n * 37) % 200),
                        &format!("s{}", n % 7),
                        &format!("u{}", n % 3),
                        STATUSES[(n % 5) as usize],
                        // Groups of four share a time, so ties are broken by task id.
                        1_700_000_000_000_000 + (n / 4) * 1_000,
                    )
                })
                .collect()
        }

        #[tokio::test]
        async fn every_filter_walks_its_tasks_once_in_listing_order() {
            let store = InMemoryPersistenceManager::new();
            let tasks = population();
            for task in &tasks {
                store.create(task.clone()).await.unwrap();
            }
            let filters = [
                TaskFilter::all(),
                TaskFilter::all().session("s3"),
                TaskFilter::all().user("u1"),
                TaskFilter::all().session("s2").user("u2"),
                TaskFilter::all().statuses([TaskStatus::Failed, TaskStatus::Running]),
                TaskFilter::all()
                    .user("u0")
                    .statuses([TaskStatus::Completed]),
                TaskFilter::all().statuses([]),
                TaskFilter::all().session("nobody"),
            ];
            for filter in &filters {
                let mut expected: Vec<&AgentTask> =
                    tasks.iter().filter(|t| filter.matches_task(t)).collect();
                // Newest first, then the greater task id: spelled out, not via ListKey.
                expected.sort_by(|a, b| {
                    b.created_at
                        .utc_micros()
                        .cmp(&a.created_at.utc_micros())
                        .then(b.task_id.cmp(&a.task_id))
                });
                let expected: Vec<String> = expected.iter().map(|t| t.task_id.clone()).collect();
                for size in [1, 7, 1000] {
                    assert_eq!(
                        walk(&store, filter, size).await,
                        expected,
                        "{filter:?} by {size}"
                    );
                }
            }
            let page = store
                .list_tasks(&TaskFilter::all(), &PageRequest::new(1).unwrap())
                .await
                .unwrap();
            let newest = tasks
                .iter()
                .max_by_key(|t| (t.created_at.utc_micros(), t.task_id.clone()))
                .unwrap();
            assert_eq!(page.tasks[0], TaskSummary::of_task(newest));
            assert_eq!(store.stats().list_entries, 3 * tasks.len());
        }

        #[tokio::test]
        async fn the_indexes_follow_updates_and_deletes() {
            let store = InMemoryPersistenceManager::new();
            store
                .create(task_in("a", "s1", "u1", TaskStatus::Running, 10))
                .await
                .unwrap();
            store
                .create(task_in("b", "s1", "u1", TaskStatus::Running, 20))
                .await
                .unwrap();
            // Moved to another session, user, status and time.
            store
                .update(task_in("a", "s2", "u2", TaskStatus::Failed, 30))
                .await
                .unwrap();
            assert_eq!(
                walk(&store, &TaskFilter::all().session("s1"), 10).await,
                ["b"]
            );
            assert_eq!(walk(&store, &TaskFilter::all().user("u2"), 10).await, ["a"]);
            assert_eq!(walk(&store, &TaskFilter::all(), 10).await, ["a", "b"]);
            let failed = TaskFilter::all().statuses([TaskStatus::Failed]);
            assert_eq!(walk(&store, &failed, 10).await, ["a"]);
            store.delete("a").await.unwrap();
            assert!(walk(&store, &failed, 10).await.is_empty());
            assert_eq!(store.stats().list_entries, 3);
            store.clear().await.unwrap();
            assert_eq!(store.stats(), MemoryStats::default());
        }

        #[tokio::test]
        async fn a_cursor_from_another_filter_or_edited_is_invalid_input() {
            let store = InMemoryPersistenceManager::new();
            for task in population() {
                store.create(task).await.unwrap();
            }
            let filter = TaskFilter::all().session("s1");
            let page = store
                .list_tasks(&filter, &PageRequest::new(2).unwrap())
                .await
                .unwrap();
            let next = page.next.unwrap();
            let other = TaskFilter::all().session("s2");
            let request = PageRequest::new(2).unwrap().after(next.clone());
            let err = store.list_tasks(&other, &request).await.unwrap_err();
            assert!(err.is_invalid_input(), "{err}");
            let mut edited = next.as_str().to_owned();
            edited.pop();
            let request = PageRequest::new(2)
                .unwrap()
                .after(Cursor::from_string(edited));
            assert!(store
                .list_tasks(&filter, &request)
                .await
                .unwrap_err()
                .is_invalid_input());
        }

        fn policy() -> RetentionPolicy {
            RetentionPolicy::parse("completed=1h,failed=2h").unwrap()
        }

        /// A store with `policy()` and no background sweep (it is made outside any
        /// runtime), so that what `purge` finds does not depend on when the sweep ran.
        fn unswept() -> InMemoryPersistenceManager {
            std::thread::spawn(|| InMemoryPersistenceManager::with_retention(policy()))
                .join()
                .unwrap()
        }

        #[tokio::test(start_paused = true)]
        async fn an_expired_task_is_gone_from_every_read_and_its_id_is_free() {
            let store = unswept();
            let mut done = task_in("done", "s", "u", TaskStatus::Completed, 1);
            done.items.push(AgentTaskItem::new(
                "done",
                "r1",
                Role::User,
                MultiModalItem::text("x"),
                at(1),
            ));
            store.create(done.clone()).await.unwrap();
            let mut later = task_in("later", "s", "u", TaskStatus::Running, 2);
            later.items.push(AgentTaskItem::new(
                "later",
                "r1",
                Role::User,
                MultiModalItem::text("y"),
                at(2),
            ));
            store.create(later.clone()).await.unwrap();
            store
                .create(task_in("failed", "s", "u", TaskStatus::Failed, 3))
                .await
                .unwrap();
            assert_eq!(store.stats().expiring, 2);

            tokio::time::advance(Duration::from_secs(3600) - Duration::from_millis(1)).await;
            assert!(store.load("done").await.unwrap().is_some());
            tokio::time::advance(Duration::from_millis(1)).await;
            assert_eq!(store.load("done").await.unwrap(), None);
            assert_eq!(store.load_with_etag("done").await.unwrap(), None);
            // The request id's first holder expired: the next one answers.
            assert_eq!(store.load_by_request_id("r1").await.unwrap(), Some(later));
            assert_eq!(
                walk(&store, &TaskFilter::all(), 10).await,
                ["failed", "later"]
            );
            let err = store.update(done.clone()).await.unwrap_err();
            assert_eq!(err.kind(), ta_persistence_api::ErrorKind::NotFound);
            assert_eq!(
                store.delete("done").await.unwrap_err().kind(),
                ta_persistence_api::ErrorKind::NotFound
            );
            // The delete removed it; the failed one expires an hour later and is purged.
            assert_eq!(store.stats().tasks, 2);
            tokio::time::advance(Duration::from_secs(3600)).await;
            // No sweep: purge finds the failed task.
            assert_eq!(store.purge().await.unwrap(), 1);
            assert_eq!(store.purge().await.unwrap(), 0);
            let stats = store.stats();
            assert_eq!((stats.tasks, stats.expiring, stats.list_entries), (1, 0, 3));
            assert_eq!((stats.request_ids, stats.index_entries), (1, 1));
            // An expired id can be created again, and starts a new life.
            store.create(done.clone()).await.unwrap();
            store
                .create(task_in("x", "s", "u", TaskStatus::Completed, 4))
                .await
                .unwrap();
            tokio::time::advance(Duration::from_secs(3600)).await;
            store
                .create(task_in("x", "s", "u", TaskStatus::Running, 4))
                .await
                .unwrap();
            assert!(store.load("x").await.unwrap().is_some());
        }

        #[tokio::test(start_paused = true)]
        async fn a_write_sets_or_clears_the_expiry_from_the_store_clock() {
            let store = unswept();
            store
                .create(task_in("t", "s", "u", TaskStatus::Completed, 1))
                .await
                .unwrap();
            tokio::time::advance(Duration::from_secs(1800)).await;
            // Rewritten: the hour starts again.
            store
                .update(task_in("t", "s", "u", TaskStatus::Completed, 1))
                .await
                .unwrap();
            tokio::time::advance(Duration::from_secs(1800)).await;
            assert!(store.load("t").await.unwrap().is_some());
            // Back to running: never expires.
            store
                .update(task_in("t", "s", "u", TaskStatus::Running, 1))
                .await
                .unwrap();
            assert_eq!(store.stats().expiring, 0);
            tokio::time::advance(Duration::from_secs(86_400)).await;
            assert!(store.load("t").await.unwrap().is_some());
            // Canceled is not in the policy: kept.
            store
                .update(task_in("t", "s", "u", TaskStatus::Canceled, 1))
                .await
                .unwrap();
            tokio::time::advance(Duration::from_secs(86_400)).await;
            assert_eq!(store.purge().await.unwrap(), 0);
            assert!(store.load("t").await.unwrap().is_some());
        }

        #[tokio::test(start_paused = true)]
        async fn the_background_sweep_removes_expired_tasks_and_stops_with_the_store() {
            let alive = || {
                tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks()
            };
            let before = alive();
            let store = InMemoryPersistenceManager::with_retention(policy());
            assert_eq!(alive(), before + 1);
            // More than one batch.
            let n = 3 * expiry::BATCH + 5;
            for k in 0..n {
                store
                    .create(task_in(
                        &format!("t{k}"),
                        "s",
                        "u",
                        TaskStatus::Completed,
                        k as i64,
                    ))
                    .await
                    .unwrap();
            }
            store
                .create(task_in("kept", "s", "u", TaskStatus::Running, 0))
                .await
                .unwrap();
            // An hour, then one sweep interval (6 minutes) for the sweep to come round.
            tokio::time::sleep(Duration::from_secs(3600 + 360 + 1)).await;
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            let stats = store.stats();
            assert_eq!((stats.tasks, stats.expiring, stats.list_entries), (1, 0, 3));
            drop(store);
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert_eq!(alive(), before);
        }

        #[test]
        fn without_a_runtime_the_store_works_and_purges_on_demand() {
            let store = InMemoryPersistenceManager::with_retention(policy());
            futures::executor::block_on(async {
                store
                    .create(task_in("t", "s", "u", TaskStatus::Completed, 1))
                    .await
                    .unwrap();
                assert!(store.load("t").await.unwrap().is_some());
                assert_eq!(store.purge().await.unwrap(), 0);
                assert_eq!(walk(&store, &TaskFilter::all(), 5).await, ["t"]);
            });
            assert_eq!(store.retention(), &policy());
        }
    }
}
