//! `SqliteTaskPersistenceManager`: the plugin's interface code. Writes go to the writer
//! thread (group commit), reads to a reader connection on the plugin's runtime; the
//! host's threads only await answers.

use std::sync::Arc;
use std::time::Duration;

use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::listing::{Page, PageRequest, TaskFilter};
use ta_persistence_api::runtime::PluginRuntime;
use ta_persistence_api::{
    async_trait, BoxError, DocumentStore, ETag, Operation, PersistenceError, Result, TaskDocument,
    TaskStatus, Versioned,
};

use crate::config::Settings;
use crate::readers::Readers;
use crate::schema;
use crate::sql::{self, Row};
use crate::writer::{now_ms, Done, Write, Writer};

/// A durable task store in one SQLite database file, exported as class
/// `SqliteTaskPersistenceManager`.
#[derive(Debug)]
pub struct SqliteTaskPersistenceManager {
    writer: Arc<Writer>,
    readers: Arc<Readers>,
    /// The database's ETag instance (see `schema`).
    instance: Arc<str>,
    // Last: dropped after everything that runs on it.
    runtime: PluginRuntime,
}

impl FromConfig for SqliteTaskPersistenceManager {
    fn from_config(config: &PluginConfig) -> std::result::Result<Self, BoxError> {
        Self::open(Settings::from_config(config)?)
    }
}

impl SqliteTaskPersistenceManager {
    /// Opens (or creates) the database `settings.path`. A file that is not a SQLite
    /// database, is damaged, belongs to another application or was written by a newer
    /// version is refused with an error naming it, and left untouched.
    pub fn open(settings: Settings) -> std::result::Result<Self, BoxError> {
        let (conn, instance) = schema::open(&settings)?;
        let policy = settings.retention;
        let max_age = move |status| {
            let age = policy.max_age(TaskStatus::from_ordinal(status)?)?;
            Some(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
        };
        let writer = Writer::start(
            conn,
            instance.clone(),
            Box::new(max_age),
            settings.busy_timeout,
        )
        .map_err(|e| format!("cannot start the SQLite writer thread: {e}"))?;
        let writer = Arc::new(writer);
        // Reads are blocking calls; the async side only awaits them.
        let runtime = PluginRuntime::builder("ta-sqlite")
            .workers(1)
            .max_blocking_threads(settings.readers)
            .build()?;
        if !policy.is_empty() {
            runtime.spawn(sweep(Arc::clone(&writer)));
        }
        tracing::info!(
            path = %settings.path.display(),
            synchronous = settings.synchronous.pragma(),
            "SQLite store ready"
        );
        Ok(Self {
            writer,
            readers: Arc::new(Readers::new(settings)),
            instance: instance.into(),
            runtime,
        })
    }

    /// Runs `read` on a reader connection, on a blocking thread of the plugin's runtime.
    async fn read<T: Send + 'static>(
        &self,
        op: Operation,
        id: &str,
        read: impl FnOnce(&rusqlite::Connection, i64) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = Arc::clone(&self.readers);
        let owned = id.to_owned();
        self.runtime
            .run_blocking(op, id, move || {
                readers.with(op, &owned, |conn| read(conn, now_ms()))
            })
            .await
    }

    async fn write(&self, write: Write) -> Result<Done> {
        self.writer.submit(write).await
    }
}

/// Expired tasks deleted per transaction: a purge never holds the write lock long.
const PURGE_BATCH: i64 = 1_000;
/// How often the store deletes expired tasks by itself (they are invisible from the
/// moment they expire; this only frees their space).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Deletes every expired task, in batches of [`PURGE_BATCH`], each its own transaction
/// (other writes go in between); returns how many.
async fn purge(writer: &Writer, op: Operation) -> Result<u64> {
    let mut total = 0;
    loop {
        match writer.submit(Write::Purge(op, PURGE_BATCH)).await? {
            Done::Count(n) => {
                total += n;
                if n < PURGE_BATCH.unsigned_abs() {
                    return Ok(total);
                }
            }
            other => return Err(unexpected(op, "", &other)),
        }
    }
}

/// The background sweep, on the plugin's runtime (stopped when the store is dropped).
async fn sweep(writer: Arc<Writer>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        match purge(&writer, Operation::Purge).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "deleted expired tasks"),
            Err(e) => tracing::warn!(error = %e.report(), "sweeping expired tasks failed"),
        }
    }
}

/// The answer a write of `op` should not have given.
fn unexpected(op: Operation, id: &str, done: &Done) -> PersistenceError {
    PersistenceError::plugin(op, id, format!("the writer answered {done:?}"))
}

#[async_trait]
impl DocumentStore for SqliteTaskPersistenceManager {
    async fn insert(&self, doc: TaskDocument) -> Result<()> {
        let row = Row::of(&doc, Operation::Create)?;
        self.write(Write::Insert(doc, row)).await.map(drop)
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        Ok(self.get_versioned(task_id).await?.map(|v| v.value))
    }

    async fn replace(&self, doc: TaskDocument) -> Result<()> {
        let row = Row::of(&doc, Operation::Update)?;
        self.write(Write::Replace(doc, row, None)).await.map(drop)
    }

    async fn remove(&self, task_id: &str) -> Result<()> {
        self.write(Write::Remove(task_id.to_owned()))
            .await
            .map(drop)
    }

    async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        let rid = request_id.to_owned();
        let found = self.read(Operation::LoadByRequestId, request_id, move |conn, now| {
            sql::find(conn, &rid, now)
        });
        Ok(found
            .await?
            .map(|(task_id, json)| TaskDocument::stored(task_id, json)))
    }

    async fn get_versioned(&self, task_id: &str) -> Result<Option<Versioned<TaskDocument>>> {
        let id = task_id.to_owned();
        let instance = Arc::clone(&self.instance);
        self.read(Operation::Load, task_id, move |conn, now| {
            let found = sql::get(conn, &id, now)?;
            Ok(found.map(|(json, version)| {
                Versioned::new(
                    TaskDocument::stored(id, json),
                    sql::etag(&instance, version),
                )
            }))
        })
        .await
    }

    async fn replace_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        let row = Row::of(&doc, Operation::Update)?;
        let id = doc.task_id().to_owned();
        match self
            .write(Write::Replace(doc, row, Some(etag.clone())))
            .await?
        {
            Done::ETag(etag) => Ok(etag),
            other => Err(unexpected(Operation::Update, &id, &other)),
        }
    }

    async fn ping(&self) -> Result<()> {
        self.read(Operation::Health, "", |conn, _| {
            conn.query_row("SELECT 1 FROM meta LIMIT 1", [], |_| Ok(()))
                .map_err(|e| sql::db_error(Operation::Health, "", &e))
        })
        .await
    }

    async fn remove_all(&self) -> Result<u64> {
        match self.write(Write::RemoveAll).await? {
            Done::Count(n) => Ok(n),
            other => Err(unexpected(Operation::Clear, "", &other)),
        }
    }

    async fn list(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let after = page.start_after(filter)?;
        let (size, owned) = (page.size(), filter.clone());
        // One more than the page, to know whether another follows.
        let found = self.read(Operation::List, "", move |conn, now| {
            sql::list(conn, &owned, after.as_ref(), size.saturating_add(1), now)
        });
        Ok(Page::from_ordered(found.await?, filter, size))
    }

    async fn purge_expired(&self) -> Result<u64> {
        purge(&self.writer, Operation::Purge).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::PathBuf;
    use std::time::Duration;

    use ta_persistence_api::{AgentTask, ErrorKind, TaskPersistenceManager, Timestamp};

    use super::*;

    /// A fresh database path under the system's temp dir.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ta-plugin-sqlite-{name}-{}-{}",
            std::process::id(),
            now_ms()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("tasks.db")
    }

    fn task(id: &str) -> AgentTask {
        AgentTask::new(id, "s", "u", Timestamp::now_utc())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etags_never_repeat_across_delete_recreate_and_restart() {
        let path = scratch("etags");
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        for life in 0..3 {
            let store = SqliteTaskPersistenceManager::open(Settings::new(&path)).unwrap();
            for round in 0..3 {
                store.create(task("t")).await.unwrap();
                let first = store.load_with_etag("t").await.unwrap().unwrap().etag;
                let second = store.update_if_match(task("t"), &first).await.unwrap();
                for etag in [first, second] {
                    assert!(
                        seen.insert(etag.clone()),
                        "life {life} round {round}: {etag} repeats"
                    );
                    all.push(etag);
                }
                store.delete("t").await.unwrap();
            }
        }
        // No ETag of an earlier life of the task matches the current one.
        let store = SqliteTaskPersistenceManager::open(Settings::new(&path)).unwrap();
        store.create(task("t")).await.unwrap();
        for old in &all {
            let err = store.update_if_match(task("t"), old).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Conflict, "{old}: {err}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_writes_are_committed_together_and_fail_alone() {
        let path = scratch("group");
        let store = Arc::new(
            SqliteTaskPersistenceManager::open(
                Settings::new(&path).busy_timeout(Duration::from_secs(30)),
            )
            .unwrap(),
        );
        for i in 0..32 {
            store.create(task(&format!("old-{i}"))).await.unwrap();
        }
        let before = store.writer.commits();
        // Another connection holds the write lock, so the writes queue up behind it.
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut calls = Vec::new();
        for i in 0..64 {
            // Even calls create new tasks; odd ones repeat a stored id and must fail.
            let id = if i % 2 == 0 {
                format!("new-{i}")
            } else {
                format!("old-{}", i / 2)
            };
            let store = Arc::clone(&store);
            let mut t = task(&id);
            t.session_id = "group".into();
            calls.push(tokio::spawn(async move { (id, store.create(t).await) }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        holder.execute_batch("COMMIT").unwrap();
        for call in calls {
            let (id, result) = call.await.unwrap();
            if id.starts_with("new-") {
                result.unwrap();
                assert_eq!(store.load(&id).await.unwrap().unwrap().session_id, "group");
            } else {
                assert_eq!(result.unwrap_err().kind(), ErrorKind::AlreadyExists, "{id}");
                assert_eq!(store.load(&id).await.unwrap().unwrap().session_id, "s");
            }
        }
        // The first write waited for the lock alone; the rest came in one group.
        let commits = store.writer.commits() - before;
        assert!(commits <= 3, "64 writes took {commits} transactions");
    }
}
