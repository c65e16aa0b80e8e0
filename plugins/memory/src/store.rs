//! `MemoryTaskPersistenceManager`: tasks as JSON documents in a map, with a request-id
//! index ordered the way `load_by_request_id` answers, listing indexes ordered the way
//! `list` answers, and the expiry of each finished task under the retention policy. It
//! implements [`DocumentStore`]; the typed `TaskPersistenceManager` comes with it, and
//! ids arrive already checked.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::listing::{ListKey, Page, PageRequest, TaskFilter, TaskSummary};
use ta_persistence_api::retention::RetentionPolicy;
use ta_persistence_api::{
    async_trait, BoxError, DocumentStore, ETag, Operation, PersistenceError, Result, TaskDocument,
    Versioned,
};

/// An in-memory task store, exported as class `MemoryTaskPersistenceManager`.
///
/// One mutex guards the documents and the indexes together, so they always agree; it is
/// never held across an `.await` (every method finishes its work before returning).
#[derive(Debug, Default)]
pub struct MemoryTaskPersistenceManager {
    shared: Arc<Shared>,
    /// Held only to be dropped: that tells the sweeper thread to stop.
    _stop_sweeper: Option<mpsc::Sender<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    policy: RetentionPolicy,
}

#[derive(Debug, Default)]
struct State {
    docs: HashMap<String, Entry>,
    /// request id -> (created_at, task id) of every task holding it; the first is the
    /// answer of `load_by_request_id`.
    index: HashMap<String, BTreeSet<(i64, String)>>,
    /// Every task in listing order ([`ListKey`]'s order), and the same per session and
    /// per user, so that a page reads only its own tasks (and, with a status filter,
    /// those it skips).
    all: BTreeSet<ListKey>,
    by_session: HashMap<String, BTreeSet<ListKey>>,
    by_user: HashMap<String, BTreeSet<ListKey>>,
    /// Tasks that expire, by when.
    expiries: BTreeSet<(Instant, String)>,
    /// Bumped on every write: ETags are never reused, even after delete and re-create.
    revision: u64,
}

#[derive(Debug)]
struct Entry {
    doc: TaskDocument,
    revision: u64,
    /// What a listing shows and filters by; read from the document once, when written.
    summary: TaskSummary,
    /// When the retention policy expires the task, if it does.
    expires: Option<Instant>,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }

    /// A copy of the document for a reader: its id and text only. A typed reader decodes
    /// the text and never asks for the indexed fields, so copying them (and sending them
    /// across the boundary) would be wasted; a reader that does ask reads them from the
    /// text.
    fn handed_out(&self) -> TaskDocument {
        TaskDocument::stored(self.doc.task_id().to_owned(), self.doc.json().to_owned())
    }
}

impl FromConfig for MemoryTaskPersistenceManager {
    fn from_config(config: &PluginConfig) -> std::result::Result<Self, BoxError> {
        // The only setting: the retention policy, which the host passes on with every
        // other `TA_*` variable. A malformed one is refused, with the variable named.
        let policy = RetentionPolicy::from_config(config)?;
        tracing::info!(retention = %policy, "in-memory plugin store ready");
        Ok(Self::with_retention(policy))
    }
}

impl MemoryTaskPersistenceManager {
    /// A store that forgets finished tasks as `policy` says. A thread of its own removes
    /// expired tasks in the background (they are invisible from the moment they expire);
    /// it stops when the store is dropped.
    pub fn with_retention(policy: RetentionPolicy) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            policy,
        });
        let stop = if policy.is_empty() {
            None
        } else {
            let (stop, stopped) = mpsc::channel();
            let weak = Arc::downgrade(&shared);
            let every = sweep_interval(&policy);
            // Without a thread the store still works: expired tasks stay invisible until
            // `purge` or a write of their id removes them.
            let spawned = std::thread::Builder::new()
                .name("memory-plugin-sweep".to_owned())
                .spawn(move || sweep(weak, stopped, every));
            if let Err(err) = spawned {
                tracing::warn!(%err, "no background sweep: expired tasks are removed by purge only");
            }
            Some(stop)
        };
        MemoryTaskPersistenceManager {
            shared,
            _stop_sweeper: stop,
        }
    }

    /// How many tasks the store holds, expired ones not yet removed included.
    pub fn stored(&self) -> usize {
        self.lock().docs.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    fn expiry(&self, summary: &TaskSummary, now: Instant) -> Option<Instant> {
        let age = self.shared.policy.max_age(summary.status)?;
        now.checked_add(age)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Each critical section checks before it changes anything, so a panic cannot
        // leave the maps half-updated: a poisoned lock's data is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A tenth of the shortest maximum age, from one second to one minute.
fn sweep_interval(policy: &RetentionPolicy) -> Duration {
    use ta_persistence_api::TaskStatus::{Canceled, Completed, Failed};
    let shortest = [Completed, Failed, Canceled]
        .into_iter()
        .filter_map(|s| policy.max_age(s))
        .min()
        .unwrap_or(Duration::from_secs(60));
    (shortest / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// The sweeper thread: every `every`, removes what has expired, in batches so that the
/// lock is held only briefly at a time. Ends when the store is dropped.
fn sweep(shared: Weak<Shared>, stop: mpsc::Receiver<()>, every: Duration) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        while shared.lock().purge_batch(now) == BATCH {}
    }
}

/// Expired tasks removed per turn at the lock.
const BATCH: usize = 256;

fn key_of(doc: &TaskDocument) -> ListKey {
    ListKey::new(doc.created_at_micros(), doc.task_id())
}

impl State {
    fn live(&self, task_id: &str, now: Instant) -> Option<&Entry> {
        self.docs.get(task_id).filter(|e| e.is_live(now))
    }

    fn add(&mut self, doc: TaskDocument, summary: TaskSummary, expires: Option<Instant>) {
        let member = (doc.created_at_micros(), doc.task_id().to_owned());
        for request_id in doc.request_ids() {
            self.index
                .entry(request_id.clone())
                .or_default()
                .insert(member.clone());
        }
        let key = key_of(&doc);
        self.all.insert(key.clone());
        self.by_session
            .entry(summary.session_id.clone())
            .or_default()
            .insert(key.clone());
        self.by_user
            .entry(summary.user_id.clone())
            .or_default()
            .insert(key);
        if let Some(at) = expires {
            self.expiries.insert((at, doc.task_id().to_owned()));
        }
        self.revision += 1;
        let entry = Entry {
            doc,
            revision: self.revision,
            summary,
            expires,
        };
        self.docs.insert(entry.doc.task_id().to_owned(), entry);
    }

    /// Replaces the document of a stored task, moving only the index entries that
    /// change: an agent turn keeps the task's session, user and creation time (its place
    /// in every listing) and usually adds one request id. Anything else (a new place, an
    /// expiry before or after) goes the long way, removing every entry and adding back.
    fn rewrite(&mut self, doc: TaskDocument, summary: TaskSummary, expires: Option<Instant>) {
        let State {
            docs,
            index,
            revision,
            ..
        } = self;
        let Some(entry) = docs.get_mut(doc.task_id()) else {
            return self.add(doc, summary, expires);
        };
        let stays = entry.expires.is_none()
            && expires.is_none()
            && entry.doc.created_at_micros() == doc.created_at_micros()
            && entry.summary.session_id == summary.session_id
            && entry.summary.user_id == summary.user_id;
        if !stays {
            self.take(doc.task_id());
            return self.add(doc, summary, expires);
        }
        let member = (doc.created_at_micros(), doc.task_id().to_owned());
        let (old_ids, new_ids) = (entry.doc.request_ids(), doc.request_ids());
        for gone in not_in(old_ids, new_ids) {
            if let Some(members) = index.get_mut(gone) {
                members.remove(&member);
                if members.is_empty() {
                    index.remove(gone);
                }
            }
        }
        for added in not_in(new_ids, old_ids) {
            index
                .entry(added.clone())
                .or_default()
                .insert(member.clone());
        }
        *revision += 1;
        entry.doc = doc;
        entry.summary = summary;
        entry.revision = *revision;
    }

    /// Removes a task and every index entry of it.
    fn take(&mut self, task_id: &str) -> Option<Entry> {
        let entry = self.docs.remove(task_id)?;
        let member = (entry.doc.created_at_micros(), task_id.to_owned());
        for request_id in entry.doc.request_ids() {
            if let Some(members) = self.index.get_mut(request_id) {
                members.remove(&member);
                if members.is_empty() {
                    self.index.remove(request_id);
                }
            }
        }
        let key = key_of(&entry.doc);
        self.all.remove(&key);
        for (groups, name) in [
            (&mut self.by_session, &entry.summary.session_id),
            (&mut self.by_user, &entry.summary.user_id),
        ] {
            if let Some(keys) = groups.get_mut(name) {
                keys.remove(&key);
                if keys.is_empty() {
                    groups.remove(name);
                }
            }
        }
        if let Some(at) = entry.expires {
            self.expiries.remove(&(at, task_id.to_owned()));
        }
        Some(entry)
    }

    /// Removes up to [`BATCH`] tasks expired by `now`; returns how many.
    fn purge_batch(&mut self, now: Instant) -> usize {
        let due: Vec<String> = self
            .expiries
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(BATCH)
            .map(|(_, id)| id.clone())
            .collect();
        for task_id in &due {
            self.take(task_id);
        }
        due.len()
    }
}

/// The ids of `ids` that `other` lacks; linear in their number (a set is built only when
/// `other` is long).
fn not_in<'a>(ids: &'a [String], other: &[String]) -> Vec<&'a String> {
    if other.len() <= 16 {
        return ids.iter().filter(|id| !other.contains(id)).collect();
    }
    let other: HashSet<&String> = other.iter().collect();
    ids.iter().filter(|id| !other.contains(id)).collect()
}

fn etag(revision: u64) -> ETag {
    ETag::new(format!("rev-{revision}"))
}

/// The summary of a document sent to `op`. The host hands on only valid tasks (it
/// encodes them, or checks a raw document first), so only the summarised fields are read,
/// and the rest of the text is skipped unparsed; one whose fields cannot be read is
/// refused.
fn summarise(op: Operation, doc: &TaskDocument) -> Result<TaskSummary> {
    TaskSummary::read_json(doc.json())
        .map_err(|e| PersistenceError::invalid(op, doc.task_id(), e.to_string()))
}

impl MemoryTaskPersistenceManager {
    fn write(&self, doc: TaskDocument, expected: Option<&ETag>) -> Result<ETag> {
        let summary = summarise(Operation::Update, &doc)?;
        let now = Instant::now();
        let expires = self.expiry(&summary, now);
        let mut state = self.lock();
        let Some(current) = state.live(doc.task_id(), now).map(|e| e.revision) else {
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
        state.rewrite(doc, summary, expires);
        Ok(etag(state.revision))
    }
}

#[async_trait]
impl DocumentStore for MemoryTaskPersistenceManager {
    async fn insert(&self, doc: TaskDocument) -> Result<()> {
        let summary = summarise(Operation::Create, &doc)?;
        let now = Instant::now();
        let expires = self.expiry(&summary, now);
        let mut state = self.lock();
        if state.live(doc.task_id(), now).is_some() {
            return Err(PersistenceError::already_exists(
                Operation::Create,
                doc.task_id(),
            ));
        }
        // An expired task's id is free: its remains go first.
        state.take(doc.task_id());
        state.add(doc, summary, expires);
        Ok(())
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        let state = self.lock();
        Ok(state.live(task_id, Instant::now()).map(Entry::handed_out))
    }

    async fn replace(&self, doc: TaskDocument) -> Result<()> {
        self.write(doc, None).map(drop)
    }

    async fn remove(&self, task_id: &str) -> Result<()> {
        let now = Instant::now();
        let mut state = self.lock();
        match state.take(task_id) {
            Some(entry) if entry.is_live(now) => Ok(()),
            // Absent, or expired (and now removed): gone for the caller either way.
            _ => Err(PersistenceError::not_found(Operation::Delete, task_id)),
        }
    }

    async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        let now = Instant::now();
        let state = self.lock();
        let Some(members) = state.index.get(request_id) else {
            return Ok(None);
        };
        // The first holder that has not expired.
        Ok(members
            .iter()
            .find_map(|(_, task_id)| state.live(task_id, now))
            .map(Entry::handed_out))
    }

    async fn get_versioned(&self, task_id: &str) -> Result<Option<Versioned<TaskDocument>>> {
        let state = self.lock();
        Ok(state
            .live(task_id, Instant::now())
            .map(|e| Versioned::new(e.doc.clone(), etag(e.revision))))
    }

    async fn replace_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        self.write(doc, Some(etag))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn remove_all(&self) -> Result<u64> {
        let mut state = self.lock();
        let removed = state.docs.len() as u64;
        let revision = state.revision;
        *state = State {
            revision,
            ..State::default()
        };
        Ok(removed)
    }

    async fn list(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        // The first thing every `list` does: check the page size and the cursor.
        let after = page.start_after(filter)?;
        let start = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
        let now = Instant::now();
        let state = self.lock();
        // Walk the narrowest index the filter allows; the rest of the filter is checked
        // on each task met.
        let index = match (filter.session_id(), filter.user_id()) {
            (Some(session), _) => state.by_session.get(session),
            (None, Some(user)) => state.by_user.get(user),
            (None, None) => Some(&state.all),
        };
        let Some(index) = index else {
            return Ok(Page::default()); // no task has that session or user
        };
        let matching = index
            .range::<ListKey, _>((start, Bound::Unbounded))
            .filter_map(|key| state.live(&key.task_id, now))
            .map(|e| &e.summary)
            .filter(|summary| filter.matches_summary(summary))
            .cloned();
        // `from_ordered` takes one more than the page, to know whether another follows.
        Ok(Page::from_ordered(matching, filter, page.size()))
    }

    async fn purge_expired(&self) -> Result<u64> {
        let now = Instant::now();
        let mut removed = 0;
        loop {
            let n = self.lock().purge_batch(now);
            removed += n as u64;
            if n < BATCH {
                return Ok(removed);
            }
        }
    }
}
