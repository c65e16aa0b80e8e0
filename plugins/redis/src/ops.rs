//! `Ops`: each operation as Redis commands over one multiplexed connection.
//!
//! Round trips per operation, when nothing is wrong with the data:
//!
//! | operation | round trips | commands |
//! |---|---|---|
//! | create, update, update_if_match, delete | 1 | one `EVALSHA` |
//! | load, load_with_etag | 1 | `GET` |
//! | load_by_request_id | 1 | one `EVALSHA` (the set's members with their documents) |
//! | health | 1 | `PING` |
//!
//! Only unusual data costs more: a document that is not JSON at all is moved to quarantine
//! (one more script), and a lookup that met dangling or stale set members prunes them (one
//! more). A document that is JSON but not a valid task is left where it is: the reader
//! that decodes it reports it as `Corrupt`.
//! The connection reconnects by itself; these functions only map its errors.

use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, Value};
use ta_persistence_api::{ETag, Operation, PersistenceError, Result, TaskDocument};
use tracing::{debug, warn};

use crate::codec::{self, etag_of, parse_members, read_stored, select, ttl_args, write_status};
use crate::error::from_redis;
use crate::keys::Keys;
use crate::scripts::Scripts;

/// How often `load` reads again when a corrupt document changed before it could be
/// quarantined (another writer replaced it).
const READ_ATTEMPTS: usize = 3;

/// Keys fetched and removed per `SCAN`/`UNLINK` round trip in `clear`.
const CLEAR_BATCH: usize = 500;

/// The connection and everything an operation needs besides its arguments.
pub(crate) struct Ops {
    conn: ConnectionManager,
    keys: Keys,
    scripts: Scripts,
    /// The write scripts' TTL arguments: seconds and milliseconds, `"0"` for none.
    ttl: (String, String),
    timeout: std::time::Duration,
}

impl Ops {
    pub(crate) fn new(
        conn: ConnectionManager,
        prefix: &str,
        ttl_secs: u64,
        timeout: std::time::Duration,
    ) -> Self {
        Ops {
            conn,
            keys: Keys::new(prefix),
            scripts: Scripts::new(),
            ttl: ttl_args(ttl_secs),
            timeout,
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn fail<'a>(
        &'a self,
        op: Operation,
        id: &'a str,
    ) -> impl FnOnce(redis::RedisError) -> PersistenceError + 'a {
        move |e| from_redis(op, id, self.timeout, e)
    }

    /// A write script's call with what every write passes: the task key and its index
    /// keys, then the id, the TTL settings and the document.
    fn write_call<'s>(
        &self,
        script: &'s redis::Script,
        doc: &TaskDocument,
    ) -> redis::ScriptInvocation<'s> {
        let id = doc.task_id();
        let mut call = script.prepare_invoke();
        call.key(self.keys.task(id));
        for request_id in doc.request_ids() {
            call.key(self.keys.index(request_id));
        }
        call.arg(id)
            .arg(&self.ttl.0)
            .arg(&self.ttl.1)
            .arg(doc.json());
        call
    }

    /// Inserts a new task and indexes it, if its id is free.
    pub(crate) async fn create(&self, doc: TaskDocument) -> Result<()> {
        let id = doc.task_id();
        let call = self.write_call(&self.scripts.create, &doc);
        let code: i64 = call
            .invoke_async(&mut self.conn())
            .await
            .map_err(self.fail(Operation::Create, id))?;
        write_status(Operation::Create, id, code, None)
    }

    /// Replaces a stored task (if it still has `expected`, when given) and moves its
    /// index entries.
    pub(crate) async fn update(&self, doc: &TaskDocument, expected: Option<&ETag>) -> Result<()> {
        let id = doc.task_id();
        let mut call = self.write_call(&self.scripts.update, doc);
        call.arg(self.keys.index_prefix())
            .arg(expected.map_or("", ETag::as_str));
        let code: i64 = call
            .invoke_async(&mut self.conn())
            .await
            .map_err(self.fail(Operation::Update, id))?;
        write_status(Operation::Update, id, code, expected)
    }

    /// Removes a stored task and its index entries; a corrupt one too.
    pub(crate) async fn delete(&self, task_id: &str) -> Result<()> {
        let code: i64 = self
            .scripts
            .delete
            .key(self.keys.task(task_id))
            .arg(task_id)
            .arg(self.keys.index_prefix())
            .invoke_async(&mut self.conn())
            .await
            .map_err(self.fail(Operation::Delete, task_id))?;
        write_status(Operation::Delete, task_id, code, None)
    }

    /// The stored document, undecoded, with its ETag when asked for. Bytes that are not
    /// JSON at all are quarantined and reported as `Corrupt`.
    pub(crate) async fn load(
        &self,
        task_id: &str,
        with_etag: bool,
    ) -> Result<Option<(TaskDocument, Option<ETag>)>> {
        let op = Operation::Load;
        let key = self.keys.task(task_id);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let stored: Option<Vec<u8>> = self
                .conn()
                .get(&key)
                .await
                .map_err(self.fail(op, task_id))?;
            let Some(bytes) = stored else {
                return Ok(None);
            };
            let etag = with_etag.then(|| etag_of(&bytes));
            let unreadable = match read_stored(task_id, bytes) {
                Ok(doc) => return Ok(Some((doc, etag))),
                Err(unreadable) => unreadable,
            };
            let moved = self.quarantine(op, task_id, &unreadable.sha).await?;
            if let Some(target) = &moved {
                warn!(
                    task_id,
                    quarantine = %target,
                    error = %unreadable.why,
                    "corrupt task document moved to quarantine"
                );
            }
            if moved.is_some() || attempt >= READ_ATTEMPTS {
                return Err(PersistenceError::corrupt(op, task_id, unreadable.why));
            }
            // Another writer replaced the document since it was read: read it again.
        }
    }

    /// Moves a corrupt document (if it is still the one with this SHA-1) to quarantine;
    /// the key it went to, if moved.
    async fn quarantine(&self, op: Operation, task_id: &str, sha: &str) -> Result<Option<String>> {
        let mut call = self.scripts.quarantine.prepare_invoke();
        call.key(self.keys.task(task_id))
            .key(self.keys.quarantine(task_id));
        call.arg(sha).arg(task_id).arg(self.keys.index_prefix());
        call.invoke_async(&mut self.conn())
            .await
            .map_err(self.fail(op, task_id))
    }

    /// The first-created task holding `request_id`, undecoded; prunes set members whose
    /// task is gone or no longer holds it, and quarantines those that are not JSON at all.
    /// Members that are JSON but whose `created_at` or request ids cannot be read are left
    /// alone; if nothing else holds the request id, the lookup reports the first of them
    /// as `Corrupt`.
    pub(crate) async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        let op = Operation::LoadByRequestId;
        let index = self.keys.index(request_id);
        let reply: Value = self
            .scripts
            .find
            .key(&index)
            .arg(self.keys.task_prefix())
            .invoke_async(&mut self.conn())
            .await
            .map_err(self.fail(op, request_id))?;
        let members = parse_members(reply).map_err(|why| {
            PersistenceError::plugin(
                op,
                request_id,
                format!("unexpected reply from the find script: {why}"),
            )
        })?;
        let codec::Selection {
            winner,
            mut stale,
            corrupt,
            misfits,
        } = select(request_id, members);
        for (task_id, unreadable) in corrupt {
            // A lookup still answers when the quarantine fails; the next one tries again.
            match self.quarantine(op, &task_id, &unreadable.sha).await {
                Ok(moved) => {
                    if let Some(target) = &moved {
                        warn!(
                            task_id,
                            request_id,
                            quarantine = %target,
                            error = %unreadable.why,
                            "corrupt task document met by a lookup moved to quarantine"
                        );
                    }
                    // Its task key is gone now (or holds a newer document, which the
                    // prune leaves alone).
                    stale.push((task_id, String::new()));
                }
                Err(e) => warn!(
                    task_id,
                    request_id,
                    error = %e.report(),
                    "could not quarantine a corrupt task document"
                ),
            }
        }
        if !stale.is_empty() {
            self.prune(&index, request_id, &stale).await;
        }
        for (task_id, why) in &misfits {
            warn!(
                task_id,
                request_id,
                error = %why,
                "a task document holding the request id does not fit the task model; left in place"
            );
        }
        match (winner, misfits.into_iter().next()) {
            (None, Some((task_id, why))) => Err(PersistenceError::corrupt(op, task_id, why)),
            (winner, _) => Ok(winner),
        }
    }

    /// Removes dangling or stale members from a request-id set, unless their task was
    /// written since. Best effort: a failure only leaves them for the next lookup.
    async fn prune(&self, index: &str, request_id: &str, stale: &[(String, String)]) {
        let mut call = self.scripts.prune.prepare_invoke();
        call.key(index).arg(self.keys.task_prefix());
        for (task_id, sha) in stale {
            call.arg(task_id).arg(sha);
        }
        match call.invoke_async::<i64>(&mut self.conn()).await {
            Ok(removed) => debug!(request_id, removed, "pruned request-id set members"),
            Err(e) => debug!(request_id, error = %e, "could not prune request-id set members"),
        }
    }

    /// `PING`.
    pub(crate) async fn ping(&self) -> Result<()> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(self.fail(Operation::Health, ""))
    }

    /// Removes every key of this store's prefix with `SCAN` and `UNLINK` in batches (never
    /// `KEYS`, which blocks the server); returns how many task keys it removed. Each
    /// round trip has the operation time limit, not the whole clear.
    pub(crate) async fn clear(&self) -> Result<u64> {
        let op = Operation::Clear;
        let mut conn = self.conn();
        let mut tasks_removed = 0;
        for (n, pattern) in self.keys.scan_patterns().iter().enumerate() {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = self
                    .limited(
                        op,
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(CLEAR_BATCH)
                            .query_async(&mut conn),
                    )
                    .await?;
                if !keys.is_empty() {
                    let removed: u64 = self
                        .limited(op, redis::cmd("UNLINK").arg(&keys).query_async(&mut conn))
                        .await?;
                    if n == 0 {
                        tasks_removed += removed;
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(tasks_removed)
    }

    /// One round trip with the operation time limit.
    async fn limited<T>(
        &self,
        op: Operation,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(self.fail(op, "")),
            Err(_) => Err(crate::error::timed_out(op, "", self.timeout)),
        }
    }
}
