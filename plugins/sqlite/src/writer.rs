//! `Writer`: the one thread that writes, committing waiting writes in groups.
//!
//! Every write is sent to this thread over a channel and answered over a oneshot, so the
//! caller's thread never blocks. The thread takes the first waiting write and every
//! other one queued behind it (up to [`MAX_GROUP`]), applies them in arrival order in
//! one `BEGIN IMMEDIATE .. COMMIT`, each under a savepoint of its own (a write that fails
//! leaves the others alone), and answers them only after the commit: one transaction,
//! and one flush to disk, for many writes. With one caller at a time a group holds one
//! write; the more callers wait, the larger the groups, so a commit's cost is shared.
//!
//! Writers in other processes are kept out by SQLite's lock; while one holds it, `BEGIN
//! IMMEDIATE` retries within the busy timeout, then the whole group fails `Unavailable`
//! with nothing applied.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, TransactionBehavior};
use ta_persistence_api::{ETag, Operation, Outcome, PersistenceError, Result, TaskDocument};
use tokio::sync::oneshot;

use crate::sql::{self, Row, Stamp};

/// The most writes committed in one transaction: bounds how long one commit holds the
/// database lock and how long the first write of a group waits for the last.
pub(crate) const MAX_GROUP: usize = 256;

/// A write to apply.
#[derive(Debug)]
pub(crate) enum Write {
    /// Create a task.
    Insert(TaskDocument, Row),
    /// Update a task, if it still has the ETag when one is given.
    Replace(TaskDocument, Row, Option<ETag>),
    /// Delete a task.
    Remove(String),
    /// Delete every task.
    RemoveAll,
    /// Delete up to this many expired tasks, as operation `Operation`.
    Purge(Operation, i64),
}

impl Write {
    fn op(&self) -> Operation {
        match self {
            Write::Insert(..) => Operation::Create,
            Write::Replace(..) => Operation::Update,
            Write::Remove(_) => Operation::Delete,
            Write::RemoveAll => Operation::Clear,
            Write::Purge(op, _) => *op,
        }
    }

    fn id(&self) -> &str {
        match self {
            Write::Insert(doc, _) | Write::Replace(doc, _, _) => doc.task_id(),
            Write::Remove(id) => id,
            Write::RemoveAll | Write::Purge(..) => "",
        }
    }

    fn status(&self) -> Option<u8> {
        match self {
            Write::Insert(_, row) | Write::Replace(_, row, _) => Some(row.status),
            _ => None,
        }
    }
}

/// What a write returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Done {
    /// Nothing more than success.
    Nothing,
    /// The task's new ETag.
    ETag(ETag),
    /// How many tasks went.
    Count(u64),
}

/// A queued write and where its answer goes.
#[derive(Debug)]
struct Job {
    write: Write,
    reply: oneshot::Sender<Result<Done>>,
}

/// For a task status (`TaskStatus::ordinal`), how long retention keeps it after a write,
/// in milliseconds; `None` keeps it.
pub(crate) type MaxAge = Box<dyn Fn(u8) -> Option<i64> + Send>;

/// The handle to the writer thread. Dropping it lets the thread finish what is queued
/// and stop.
#[derive(Debug)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Transactions committed so far (each holding one group of writes): what the
    /// tests read to see that writes were grouped.
    #[cfg_attr(not(test), allow(dead_code))]
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the thread on `conn`, a connection to a prepared database; a lock held by
    /// another connection is waited for up to `busy_timeout`.
    pub(crate) fn start(
        conn: Connection,
        instance: String,
        max_age: MaxAge,
        busy_timeout: Duration,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let mut state = State {
            conn,
            instance,
            max_age,
            commits: Arc::clone(&commits),
        };
        thread::Builder::new()
            .name("ta-sqlite-writer".into())
            .spawn(move || {
                BUSY_LIMIT.set(busy_timeout);
                // Without the handler the connection keeps SQLite's own busy timeout.
                if let Err(e) = state.conn.busy_handler(Some(retry_busy)) {
                    tracing::warn!(error = %e, "cannot install the busy handler");
                }
                state.run(&queue)
            })?;
        Ok(Writer { jobs, commits })
    }

    /// How many transactions the thread has committed.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Queues a write and waits, without blocking, for its answer.
    pub(crate) async fn submit(&self, write: Write) -> Result<Done> {
        let (op, id) = (write.op(), write.id().to_owned());
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job { write, reply }).is_err() {
            return Err(stopped(op, &id, Outcome::NotApplied));
        }
        // The thread drops a job unanswered only if it died while holding it.
        answer
            .await
            .unwrap_or_else(|_| Err(stopped(op, &id, Outcome::of_unanswered(op))))
    }
}

/// The error of a write the writer thread can no longer take or answer.
fn stopped(op: Operation, id: &str, outcome: Outcome) -> PersistenceError {
    PersistenceError::unavailable(op, id, "the SQLite writer thread has stopped", outcome)
}

/// The writer thread's own state.
struct State {
    conn: Connection,
    instance: String,
    max_age: MaxAge,
    commits: Arc<AtomicU64>,
}

impl State {
    fn run(mut self, queue: &mpsc::Receiver<Job>) {
        // `recv` fails only when every handle is gone and the queue is empty.
        while let Ok(first) = queue.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            let (writes, replies): (Vec<Write>, Vec<_>) =
                group.into_iter().map(|j| (j.write, j.reply)).unzip();
            let answers = self.commit(&writes);
            for (reply, answer) in replies.into_iter().zip(answers) {
                // A caller that stopped waiting does not need its answer.
                let _ = reply.send(answer);
            }
        }
        tracing::debug!("SQLite writer stopped");
    }

    /// Applies `writes` in one transaction; one answer per write, in order.
    fn commit(&mut self, writes: &[Write]) -> Vec<Result<Done>> {
        let now_ms = now_ms();
        let fail_all = |err: rusqlite::Error| -> Vec<Result<Done>> {
            writes
                .iter()
                .map(|w| Err(sql::db_error(w.op(), w.id(), &err)))
                .collect()
        };
        let mut tx = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(err) => return fail_all(err),
        };
        let counter: i64 = match tx.query_row(
            "SELECT value FROM meta WHERE key = 'etag_counter'",
            [],
            |r| r.get(0),
        ) {
            Ok(counter) => counter,
            Err(err) => return fail_all(err),
        };
        let mut version = counter;
        let mut answers = Vec::with_capacity(writes.len());
        for write in writes {
            version += 1;
            let stamp = Stamp {
                version,
                now_ms,
                expires_at_ms: write
                    .status()
                    .and_then(|s| (self.max_age)(s))
                    .map(|age| now_ms.saturating_add(age)),
            };
            let answer = match tx.savepoint() {
                Ok(sp) => {
                    // A failed write's changes are rolled back to its savepoint when `sp`
                    // is dropped uncommitted; the group goes on.
                    let applied = apply(&sp, write, &self.instance, stamp);
                    match applied {
                        Ok(done) => sp
                            .commit()
                            .map(|()| done)
                            .map_err(|e| sql::db_error(write.op(), write.id(), &e)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(sql::db_error(write.op(), write.id(), &e)),
            };
            answers.push(answer);
        }
        let committed = tx
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = 'etag_counter'",
                [version],
            )
            .and_then(|_| tx.commit());
        match committed {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                answers
            }
            // Nothing of the group was applied; writes that failed on their own keep
            // their own error.
            Err(err) => answers
                .into_iter()
                .zip(writes)
                .map(|(answer, w)| answer.and_then(|_| Err(sql::db_error(w.op(), w.id(), &err))))
                .collect(),
        }
    }
}

/// Applies one write inside the group's transaction.
fn apply(conn: &Connection, write: &Write, instance: &str, stamp: Stamp) -> Result<Done> {
    match write {
        Write::Insert(doc, row) => sql::insert(conn, doc, row, stamp).map(|()| Done::Nothing),
        Write::Replace(doc, row, expected) => {
            sql::replace(conn, doc, row, expected.as_ref(), instance, stamp)
                .map(|()| Done::ETag(sql::etag(instance, stamp.version)))
        }
        Write::Remove(id) => sql::remove(conn, id, stamp.now_ms).map(|()| Done::Nothing),
        Write::RemoveAll => sql::remove_all(conn, stamp.now_ms).map(Done::Count),
        Write::Purge(op, limit) => sql::purge(conn, *op, stamp.now_ms, *limit).map(Done::Count),
    }
}

thread_local! {
    /// The writer thread's busy timeout (a busy handler is a plain function).
    static BUSY_LIMIT: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    /// When the current wait for the lock began.
    static BUSY_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The writer's busy handler: retries every millisecond or two until the busy timeout.
///
/// SQLite's own handler backs off to 100 ms between tries; the lock is not queued, so
/// against another process that commits continuously a writer polling that rarely
/// seldom finds it free and waits out its timeout. Short sleeps catch the gaps between
/// the other's transactions.
fn retry_busy(attempt: i32) -> bool {
    let now = Instant::now();
    let since = match BUSY_SINCE.get() {
        Some(since) if attempt > 0 => since,
        _ => {
            BUSY_SINCE.set(Some(now));
            now
        }
    };
    if now.duration_since(since) >= BUSY_LIMIT.get() {
        return false;
    }
    thread::sleep(Duration::from_micros(if attempt < 20 {
        250
    } else {
        1_000
    }));
    true
}

/// The store's clock: milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
