//! `ClusterOps`: each operation as the ordered steps of the parent module's docs, over
//! one cluster connection.
//!
//! Round trips per operation (each step's commands go out together, to their slots'
//! masters, and are waited for together), when nothing is wrong with the data:
//!
//! | operation | round trips | commands |
//! |---|---|---|
//! | create, update, update_if_match | 3 | `EVALSHA` add per index entry; `EVALSHA` task write; `EVALSHA` add per index entry |
//! | update that drops index entries, delete | + 3 | `EVALSHA` mark per dropped entry; `GET`; `EVALSHA` settle per dropped entry |
//! | load, load_with_etag | 1 | `GET` |
//! | load_by_request_id | 2 | `HKEYS`; `GET` per entry |
//! | list | 2 per batch | `ZRANGEBYLEX` on one listing index; `GET` per entry |
//! | any write with `TA_REDIS_WAIT_REPLICAS` | + 1 | `WAIT` per master written to |
//!
//! A task's index entries are one per distinct request id and three listing members
//! (all tasks, its session, its user), so a create with two request ids sends 5 adds, the
//! task write and 5 adds again. An update that keeps the session, user and `created_at`
//! (a status change) drops no listing entry. A listing that meets stale entries prunes
//! each (3 more round trips, all stale entries of a batch together).

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{RedisError, Value};
use ta_persistence_api::document::IndexFields;
use ta_persistence_api::error::Outcome;
use ta_persistence_api::{ETag, Operation, PersistenceError, Result, TaskDocument};
use tracing::{debug, warn};

use super::keys::{decode_ids, encode_ids, ClusterKeys, ListIndex};
use super::scripts::ClusterScripts;
use crate::codec::{self, etag_of, read_stored, select, write_status, Ttls};
use crate::error::{classify, from_redis, Class};
use crate::listing::{list_fields, member, ListFields};
use ta_persistence_api::retention::RetentionPolicy;

/// Keys asked for per `SCAN` round trip (`clear`, `purge`).
const SCAN_BATCH: usize = 500;

/// How long a prune's marks on listing entries live at least, in milliseconds: far
/// longer than a prune takes. A mark that expires only makes its prune keep the entry.
const MARK_TTL_MS: &str = "600000";

/// One index entry of a task: what a write adds before and after its task write, and
/// what a prune removes once the task no longer holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum IndexEntry {
    /// The task's entry in a request id's index.
    Request(String),
    /// The task's member in a listing index.
    Listed(ListIndex, String),
}

impl IndexEntry {
    /// The three listing entries of a task listed with `member` in this session and
    /// for this user.
    fn listings(member: &str, session_id: &str, user_id: &str) -> [IndexEntry; 3] {
        [
            IndexEntry::Listed(ListIndex::All, member.to_owned()),
            IndexEntry::Listed(ListIndex::Session(session_id.to_owned()), member.to_owned()),
            IndexEntry::Listed(ListIndex::User(user_id.to_owned()), member.to_owned()),
        ]
    }
}
/// A step of a write (parent module docs); tests fail one to check what it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    IndexAdd,
    TaskWrite,
    IndexConfirm,
    Unindex,
    Wait,
}

/// The connection and everything an operation needs besides its arguments.
pub(crate) struct ClusterOps {
    conn: ClusterConnection,
    pub(super) keys: ClusterKeys,
    scripts: ClusterScripts,
    /// The TTL in milliseconds of a task in each status, as the scripts take it (`"0"`:
    /// none).
    ttls: Ttls,
    pub(super) timeout: Duration,
    wait_replicas: u32,
    /// The step that fails next, in tests.
    #[cfg(test)]
    fault: std::sync::Mutex<Option<Step>>,
}

/// A token no other prune uses: the process, a counter, the time.
pub(crate) fn prune_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "prune:{}:{}:{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The distinct request ids of a document, in order.
fn distinct_ids(doc: &TaskDocument) -> Vec<&str> {
    let set: BTreeSet<&str> = doc.request_ids().iter().map(String::as_str).collect();
    set.into_iter().collect()
}

/// What a write of `doc` stores besides the document: its index entries, the TTL of its
/// status, its request-id record and its listing record.
struct Indexed {
    entries: Vec<IndexEntry>,
    ttl: String,
    record: String,
    listed: String,
}

/// Decodes a listing record (`[member, session id, user id]`) into its three entries;
/// none for a record that does not read.
fn listed_entries(task_id: &str, record: &[u8]) -> Vec<IndexEntry> {
    match serde_json::from_slice::<(String, String, String)>(record) {
        Ok((member, session, user)) => IndexEntry::listings(&member, &session, &user).to_vec(),
        Err(_) => {
            warn!(
                task_id,
                "a listing record does not read; its entries are left for listings to prune"
            );
            Vec::new()
        }
    }
}

/// Whether the document read holds `entry` (for a prune): `true` when that cannot be
/// known (the document does not read), so such an entry is kept.
fn document_holds(task_id: &str, json: &str, entry: &IndexEntry) -> bool {
    match entry {
        IndexEntry::Request(rid) => IndexFields::read(json).map_or(true, |f| f.holds(rid)),
        IndexEntry::Listed(index, listed) => {
            let doc = TaskDocument::stored(task_id.to_owned(), json.to_owned());
            list_fields(&doc).map_or(true, |f| {
                member(&f.key) == *listed && index.admits(&f.session_id, &f.user_id)
            })
        }
    }
}

/// The error of a write step that came after the task write: the write is applied (or
/// may be), so never "not applied".
fn after_write(op: Operation, id: &str, timeout: Duration, err: RedisError) -> PersistenceError {
    match classify(&err) {
        Class::Timeout => PersistenceError::timeout(op, id, timeout),
        _ => PersistenceError::unavailable(op, id, err, Outcome::Unknown),
    }
}

impl ClusterOps {
    pub(crate) fn new(
        conn: ClusterConnection,
        prefix: &str,
        ttl_secs: u64,
        retention: &RetentionPolicy,
        timeout: Duration,
        wait_replicas: u32,
    ) -> Self {
        ClusterOps {
            conn,
            keys: ClusterKeys::new(prefix),
            scripts: ClusterScripts::new(),
            ttls: Ttls::new(ttl_secs, retention),
            timeout,
            wait_replicas,
            #[cfg(test)]
            fault: std::sync::Mutex::new(None),
        }
    }

    pub(super) fn conn(&self) -> ClusterConnection {
        self.conn.clone()
    }

    /// The key of the index an entry is in (its marks share the slot).
    fn entry_key(&self, entry: &IndexEntry) -> String {
        match entry {
            IndexEntry::Request(rid) => self.keys.index(rid),
            IndexEntry::Listed(index, _) => self.keys.list_index(index),
        }
    }

    /// What a write of `doc` indexes it under, its TTL and its records.
    fn indexed(&self, op: Operation, doc: &TaskDocument) -> Result<Indexed> {
        let fields: ListFields = list_fields(doc).map_err(|e| {
            PersistenceError::invalid(
                op,
                doc.task_id(),
                format!("the task cannot be indexed: {e}"),
            )
        })?;
        let member = member(&fields.key);
        let ids = distinct_ids(doc);
        let mut entries: Vec<IndexEntry> = ids
            .iter()
            .map(|rid| IndexEntry::Request((*rid).to_owned()))
            .collect();
        entries.extend(IndexEntry::listings(
            &member,
            &fields.session_id,
            &fields.user_id,
        ));
        Ok(Indexed {
            entries,
            ttl: self.ttls.of(fields.status).to_owned(),
            record: encode_ids(ids),
            listed: fields.record(&member),
        })
    }

    /// Arms a fault: the next time `step` is about to run, it fails as if the connection
    /// broke, without being sent.
    #[cfg(test)]
    pub(crate) fn fail_next(&self, step: Step) {
        *self.fault.lock().unwrap() = Some(step);
    }

    /// Fails if a test armed a fault for `step`; nothing otherwise.
    #[cfg(test)]
    fn check(&self, step: Step) -> std::result::Result<(), RedisError> {
        let mut fault = self.fault.lock().unwrap();
        if *fault == Some(step) {
            *fault = None;
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                format!("fault injected before {step:?}"),
            )));
        }
        Ok(())
    }

    #[cfg(not(test))]
    #[allow(clippy::unused_self)]
    #[inline]
    fn check(&self, _step: Step) -> std::result::Result<(), RedisError> {
        Ok(())
    }

    /// Adds each entry (a request id's entry set `live`, a listing member with its mark
    /// cleared), all at once, keeping each index alive at least `ttl` milliseconds.
    async fn index_add(
        &self,
        task_id: &str,
        entries: &[IndexEntry],
        ttl: &str,
    ) -> redis::RedisResult<()> {
        let calls = entries.iter().map(|entry| {
            let mut conn = self.conn();
            let call = match entry {
                IndexEntry::Request(rid) => {
                    let mut call = self.scripts.index_add.prepare_invoke();
                    call.key(self.keys.index(rid)).arg(task_id).arg(ttl);
                    call
                }
                IndexEntry::Listed(index, listed) => {
                    let mut call = self.scripts.list_add.prepare_invoke();
                    call.key(self.keys.list_index(index))
                        .key(self.keys.list_marks(index))
                        .arg(listed)
                        .arg(ttl);
                    call
                }
            };
            async move { call.invoke_async::<i64>(&mut conn).await }
        });
        for result in join_all(calls).await {
            result?;
        }
        Ok(())
    }

    /// Steps 1 to 3 (and 5) of a create or update: `task_write` is step 2, returning the
    /// script's reply. Runs steps 3 and 5 only when the task write answered `OK`.
    async fn write(
        &self,
        op: Operation,
        id: &str,
        indexed: &Indexed,
        task_write: impl std::future::Future<Output = redis::RedisResult<Value>>,
    ) -> Result<Value> {
        let entries = &indexed.entries;
        self.check(Step::IndexAdd)
            .map_err(|e| from_redis(op, id, self.timeout, e))?;
        self.index_add(id, entries, &indexed.ttl)
            .await
            .map_err(|e| from_redis(op, id, self.timeout, e))?;
        self.check(Step::TaskWrite)
            .map_err(|e| from_redis(op, id, self.timeout, e))?;
        let reply = task_write
            .await
            .map_err(|e| from_redis(op, id, self.timeout, e))?;
        let applied = match &reply {
            Value::Int(code) => *code == crate::scripts::OK,
            Value::Array(items) => {
                matches!(items.first(), Some(Value::Int(c)) if *c == crate::scripts::OK)
            }
            _ => false,
        };
        if !applied {
            // Not written (taken, missing or changed): the entries step 1 added point at a
            // task that may not hold them; take them back through a prune, which keeps
            // those the stored task does hold.
            self.unindex(op, id, entries.clone()).await;
            return Ok(reply);
        }
        self.check(Step::IndexConfirm)
            .map_err(|e| after_write(op, id, self.timeout, e))?;
        self.index_add(id, entries, &indexed.ttl)
            .await
            .map_err(|e| after_write(op, id, self.timeout, e))?;
        Ok(reply)
    }

    /// Step 5: `WAIT` for the configured replicas on the master of each key's slot.
    async fn wait_for_replicas(&self, op: Operation, id: &str, keys: &[String]) -> Result<()> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        self.check(Step::Wait)
            .map_err(|e| after_write(op, id, self.timeout, e))?;
        let routes: HashSet<Route> = keys
            .iter()
            .map(|k| Route::with_key(k.as_bytes(), SlotAddr::Master))
            .collect();
        // Half the operation's limit in all, so a shortfall is reported as such rather
        // than cut off by the limit. Several slots may share a master, and WAITs on one
        // connection run one after the other (each blocks it), so each route gets its
        // share: a master without replicas answers them all within the half.
        let routes_count = u128::try_from(routes.len()).unwrap_or(u128::MAX).max(1);
        let millis = u64::try_from(self.timeout.as_millis() / 2 / routes_count)
            .unwrap_or(u64::MAX)
            .max(1);
        let calls = routes.into_iter().map(|route| {
            let mut conn = self.conn();
            let mut cmd = redis::cmd("WAIT");
            cmd.arg(self.wait_replicas).arg(millis);
            async move {
                conn.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await
            }
        });
        for reply in join_all(calls).await {
            let reached = match reply.map_err(|e| after_write(op, id, self.timeout, e))? {
                Value::Int(n) => n,
                other => {
                    return Err(PersistenceError::plugin(
                        op,
                        id,
                        format!("unexpected reply to WAIT: {other:?}"),
                    ))
                }
            };
            if reached < i64::from(self.wait_replicas) {
                return Err(PersistenceError::unavailable(
                    op,
                    id,
                    format!(
                        "the write is applied on its master, but only {reached} of {} replicas acknowledged it within {} ms; a failover now could lose it",
                        self.wait_replicas, millis
                    ),
                    Outcome::Unknown,
                ));
            }
        }
        Ok(())
    }

    /// The keys a write touched, for `WAIT`.
    fn written_keys(&self, task_id: &str, entries: &[IndexEntry]) -> Vec<String> {
        let mut keys = vec![self.keys.task(task_id)];
        keys.extend(entries.iter().map(|entry| self.entry_key(entry)));
        keys
    }

    /// Inserts a new task, if its id is free, and indexes it.
    pub(crate) async fn create(&self, doc: TaskDocument) -> Result<()> {
        let op = Operation::Create;
        let id = doc.task_id();
        let indexed = self.indexed(op, &doc)?;
        let mut call = self.scripts.create.prepare_invoke();
        call.key(self.keys.task(id))
            .key(self.keys.record(id))
            .key(self.keys.listed(id))
            .arg(&indexed.ttl)
            .arg(doc.json())
            .arg(&indexed.record)
            .arg(&indexed.listed);
        let mut conn = self.conn();
        let reply = self
            .write(op, id, &indexed, async move {
                call.invoke_async(&mut conn).await
            })
            .await?;
        let code = match reply {
            Value::Int(code) => code,
            other => return Err(unexpected(op, id, &other)),
        };
        write_status(op, id, code, None)?;
        self.wait_for_replicas(op, id, &self.written_keys(id, &indexed.entries))
            .await
    }

    /// Replaces a stored task (if it still has `expected`, when given), indexes it under
    /// its new entries, and prunes the entries it no longer holds.
    pub(crate) async fn update(&self, doc: &TaskDocument, expected: Option<&ETag>) -> Result<()> {
        let op = Operation::Update;
        let id = doc.task_id();
        let indexed = self.indexed(op, doc)?;
        let mut call = self.scripts.update.prepare_invoke();
        call.key(self.keys.task(id))
            .key(self.keys.record(id))
            .key(self.keys.listed(id))
            .arg(&indexed.ttl)
            .arg(doc.json())
            .arg(&indexed.record)
            .arg(&indexed.listed)
            .arg(expected.map_or("", ETag::as_str));
        let mut conn = self.conn();
        let reply = self
            .write(op, id, &indexed, async move {
                call.invoke_async(&mut conn).await
            })
            .await?;
        let (code, old) = status_and_record(op, id, reply)?;
        write_status(op, id, code, expected)?;
        let dropped: Vec<IndexEntry> = old
            .into_iter()
            .filter(|entry| !indexed.entries.contains(entry))
            .collect();
        self.unindex(op, id, dropped).await;
        self.wait_for_replicas(op, id, &self.written_keys(id, &indexed.entries))
            .await
    }

    /// Removes a stored task, then prunes its index entries.
    pub(crate) async fn delete(&self, task_id: &str) -> Result<()> {
        let op = Operation::Delete;
        self.check(Step::TaskWrite)
            .map_err(|e| from_redis(op, task_id, self.timeout, e))?;
        let reply: Value = self
            .scripts
            .delete
            .key(self.keys.task(task_id))
            .key(self.keys.record(task_id))
            .key(self.keys.listed(task_id))
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| from_redis(op, task_id, self.timeout, e))?;
        let (code, old) = status_and_record(op, task_id, reply)?;
        write_status(op, task_id, code, None)?;
        self.unindex(op, task_id, old).await;
        self.wait_for_replicas(op, task_id, &self.written_keys(task_id, &[]))
            .await
    }

    /// Step 4, and a lookup's or a listing's repair: removes `task_id`'s `entries`,
    /// except those the stored task holds (or may hold). Mark, read the task, then
    /// settle only entries still carrying the mark (parent module docs). Best effort: a
    /// failure leaves entries for a later lookup or listing to prune. How many it
    /// removed.
    pub(crate) async fn unindex(
        &self,
        op: Operation,
        task_id: &str,
        entries: Vec<IndexEntry>,
    ) -> i64 {
        if entries.is_empty() {
            return 0;
        }
        if let Err(e) = self.check(Step::Unindex) {
            debug!(op = op.as_str(), task_id, error = %e, "index entries left for lookups to prune");
            return 0;
        }
        let token = prune_token();
        let marked = self.mark(task_id, &entries, &token).await;
        if marked.is_empty() {
            return 0;
        }
        let keep = self.held(task_id, &marked).await;
        let removed = self.settle(task_id, &marked, &keep, &token).await;
        debug!(op = op.as_str(), task_id, removed, "pruned index entries");
        removed
    }

    /// Prune step (a): marks the task's `entries` with `token`; the entries that were
    /// there and are marked now.
    pub(crate) async fn mark(
        &self,
        task_id: &str,
        entries: &[IndexEntry],
        token: &str,
    ) -> Vec<IndexEntry> {
        let marks = entries.iter().map(|entry| {
            let mut conn = self.conn();
            let call = match entry {
                IndexEntry::Request(rid) => {
                    let mut call = self.scripts.index_mark.prepare_invoke();
                    call.key(self.keys.index(rid)).arg(task_id).arg(token);
                    call
                }
                IndexEntry::Listed(index, listed) => {
                    let mut call = self.scripts.list_mark.prepare_invoke();
                    call.key(self.keys.list_index(index))
                        .key(self.keys.list_marks(index))
                        .arg(listed)
                        .arg(token)
                        .arg(MARK_TTL_MS);
                    call
                }
            };
            async move { call.invoke_async::<i64>(&mut conn).await }
        });
        let mut marked = Vec::new();
        for (entry, result) in entries.iter().zip(join_all(marks).await) {
            match result {
                Ok(1) => marked.push(entry.clone()),
                Ok(_) => {}
                Err(e) => {
                    debug!(task_id, ?entry, error = %e, "could not mark an index entry")
                }
            }
        }
        marked
    }

    /// Prune step (b): whether the stored task holds each entry (a request id among its
    /// items; a listing member that is its `created_at` and id, in an index its session
    /// or user belongs to). When that cannot be known (the read failed, or the document
    /// does not read), it may: `true`.
    pub(crate) async fn held(&self, task_id: &str, entries: &[IndexEntry]) -> Vec<bool> {
        let stored: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("GET")
            .arg(self.keys.task(task_id))
            .query_async(&mut self.conn())
            .await;
        entries
            .iter()
            .map(|entry| match &stored {
                Err(_) => true,
                Ok(None) => false,
                // Not text: not a task any lookup or listing can return.
                Ok(Some(bytes)) => std::str::from_utf8(bytes)
                    .is_ok_and(|json| document_holds(task_id, json, entry)),
            })
            .collect()
    }

    /// Prune step (c): for each entry still carrying `token`, keeps it (unmarked again)
    /// or removes it; how many it removed.
    pub(crate) async fn settle(
        &self,
        task_id: &str,
        entries: &[IndexEntry],
        keep: &[bool],
        token: &str,
    ) -> i64 {
        let settles = entries.iter().zip(keep).map(|(entry, keep)| {
            let mut conn = self.conn();
            let keep = if *keep { "1" } else { "0" };
            let call = match entry {
                IndexEntry::Request(rid) => {
                    let mut call = self.scripts.index_settle.prepare_invoke();
                    call.key(self.keys.index(rid))
                        .arg(task_id)
                        .arg(token)
                        .arg(keep);
                    call
                }
                IndexEntry::Listed(index, listed) => {
                    let mut call = self.scripts.list_settle.prepare_invoke();
                    call.key(self.keys.list_index(index))
                        .key(self.keys.list_marks(index))
                        .arg(listed)
                        .arg(token)
                        .arg(keep);
                    call
                }
            };
            async move { call.invoke_async::<i64>(&mut conn).await }
        });
        let mut removed = 0;
        for result in join_all(settles).await {
            match result {
                Ok(n) => removed += n,
                Err(e) => debug!(task_id, error = %e, "could not settle an index entry"),
            }
        }
        removed
    }

    /// The stored document, undecoded, with its ETag when asked for. Bytes that are not
    /// JSON at all are quarantined and reported as `Corrupt`.
    pub(crate) async fn load(
        &self,
        task_id: &str,
        with_etag: bool,
    ) -> Result<Option<(TaskDocument, Option<ETag>)>> {
        let op = Operation::Load;
        let stored: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.keys.task(task_id))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| from_redis(op, task_id, self.timeout, e))?;
        let Some(bytes) = stored else {
            return Ok(None);
        };
        let etag = with_etag.then(|| etag_of(&bytes));
        match read_stored(task_id, bytes) {
            Ok(doc) => Ok(Some((doc, etag))),
            Err(unreadable) => {
                self.quarantine(op, task_id, &unreadable).await?;
                Err(PersistenceError::corrupt(op, task_id, unreadable.why))
            }
        }
    }

    /// Moves a corrupt document (if it is still the one read) to quarantine.
    pub(super) async fn quarantine(
        &self,
        op: Operation,
        task_id: &str,
        unreadable: &codec::Unreadable,
    ) -> Result<()> {
        let moved: Option<String> = self
            .scripts
            .quarantine
            .key(self.keys.task(task_id))
            .key(self.keys.quarantine(task_id, &unreadable.sha))
            .key(self.keys.record(task_id))
            .key(self.keys.listed(task_id))
            .arg(&unreadable.sha)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| from_redis(op, task_id, self.timeout, e))?;
        if let Some(target) = moved {
            warn!(task_id, quarantine = %target, error = %unreadable.why, "corrupt task document moved to quarantine");
        }
        Ok(())
    }

    /// The first-created task holding `request_id`, undecoded; prunes entries whose task
    /// is gone or no longer holds it, and quarantines documents that are not JSON at all.
    pub(crate) async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        let op = Operation::LoadByRequestId;
        let fail = |e| from_redis(op, request_id, self.timeout, e);
        let ids: Vec<String> = redis::cmd("HKEYS")
            .arg(self.keys.index(request_id))
            .query_async(&mut self.conn())
            .await
            .map_err(fail)?;
        let reads = ids.iter().map(|id| {
            let mut conn = self.conn();
            let key = self.keys.task(id);
            async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<Vec<u8>>>(&mut conn)
                    .await
            }
        });
        let docs = join_all(reads).await;
        let mut members = Vec::with_capacity(ids.len());
        for (id, doc) in ids.into_iter().zip(docs) {
            members.push((id, doc.map_err(fail)?));
        }
        let codec::Selection {
            winner,
            stale,
            corrupt,
            misfits,
        } = select(request_id, members);
        let mut gone: Vec<String> = stale.into_iter().map(|(id, _)| id).collect();
        for (task_id, unreadable) in corrupt {
            match self.quarantine(op, &task_id, &unreadable).await {
                Ok(()) => gone.push(task_id),
                Err(e) => {
                    warn!(task_id, request_id, error = %e.report(), "could not quarantine a corrupt task document")
                }
            }
        }
        let prunes = gone.iter().map(|task_id| {
            self.unindex(
                op,
                task_id,
                vec![IndexEntry::Request(request_id.to_owned())],
            )
        });
        join_all(prunes).await;
        for (task_id, why) in &misfits {
            warn!(task_id, request_id, error = %why, "a task document holding the request id does not fit the task model; left in place");
        }
        match (winner, misfits.into_iter().next()) {
            (None, Some((task_id, why))) => Err(PersistenceError::corrupt(op, task_id, why)),
            (winner, _) => Ok(winner),
        }
    }

    /// `PING` (every node).
    pub(crate) async fn ping(&self) -> Result<()> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| from_redis(Operation::Health, "", self.timeout, e))
    }

    /// One round trip with the operation time limit.
    pub(super) async fn limited<T>(
        &self,
        op: Operation,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        match ta_persistence_api::deadline::within(self.timeout, call).await {
            Ok(result) => result.map_err(|e| from_redis(op, "", self.timeout, e)),
            Err(_) => Err(crate::error::timed_out(op, "", self.timeout)),
        }
    }

    /// The masters' addresses, from `CLUSTER NODES`.
    pub(super) async fn masters(&self, op: Operation) -> Result<Vec<(String, u16)>> {
        let mut conn = self.conn();
        let nodes: Value = self
            .limited(
                op,
                conn.route_command(
                    redis::cmd("CLUSTER").arg("NODES").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
                ),
            )
            .await?;
        let text: String = redis::from_redis_value(nodes)
            .map_err(|e| PersistenceError::plugin(op, "", format!("CLUSTER NODES: {e}")))?;
        Ok(parse_masters(&text))
    }

    /// One `SCAN` step on the master at `host:port`: the next cursor (0 at the end) and
    /// this batch's keys matching `pattern`, of type `zset` only when `sorted_sets`.
    pub(super) async fn scan_step(
        &self,
        op: Operation,
        (host, port): (&str, u16),
        cursor: u64,
        pattern: &str,
        sorted_sets: bool,
    ) -> Result<(u64, Vec<Vec<u8>>)> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_BATCH);
        if sorted_sets {
            scan.arg("TYPE").arg("zset");
        }
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: host.to_owned(),
            port,
        });
        let mut conn = self.conn();
        let reply: Value = self.limited(op, conn.route_command(scan, route)).await?;
        redis::from_redis_value(reply)
            .map_err(|e| PersistenceError::plugin(op, "", format!("SCAN: {e}")))
    }

    /// Removes every key of this store's prefix from every master with `SCAN` and
    /// `UNLINK` (never `KEYS`); returns how many task documents it removed.
    pub(crate) async fn clear(&self) -> Result<u64> {
        let op = Operation::Clear;
        let mut removed_tasks = 0;
        for (host, port) in self.masters(op).await? {
            for pattern in self.keys.scan_patterns() {
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys) = self
                        .scan_step(op, (&host, port), cursor, &pattern, false)
                        .await?;
                    let unlinks = keys.into_iter().map(|key| {
                        let mut conn = self.conn();
                        async move {
                            redis::cmd("UNLINK")
                                .arg(&key)
                                .query_async::<u64>(&mut conn)
                                .await
                                .map(|n| (key, n))
                        }
                    });
                    for result in self
                        .limited(op, async { Ok(join_all(unlinks).await) })
                        .await?
                    {
                        let (key, n) = result.map_err(|e| from_redis(op, "", self.timeout, e))?;
                        if key.ends_with(b"}:task") {
                            removed_tasks += n;
                        }
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
        }
        Ok(removed_tasks)
    }
}

/// The address of each master in `CLUSTER NODES` output that is not failed.
fn parse_masters(text: &str) -> Vec<(String, u16)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _id = fields.next()?;
            let addr = fields.next()?;
            let flags = fields.next()?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            let addr = addr.split(['@', ',']).next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

fn unexpected(op: Operation, id: &str, reply: &Value) -> PersistenceError {
    PersistenceError::plugin(
        op,
        id,
        format!("unexpected reply from a write script: {reply:?}"),
    )
}

/// Reads `{code, record, listing record}` (update, delete): the status and the index
/// entries recorded for the old document (none of a record that is missing or does not
/// read).
fn status_and_record(op: Operation, id: &str, reply: Value) -> Result<(i64, Vec<IndexEntry>)> {
    let Value::Array(items) = &reply else {
        return Err(unexpected(op, id, &reply));
    };
    let code = match items.first() {
        Some(Value::Int(code)) => *code,
        _ => return Err(unexpected(op, id, &reply)),
    };
    let mut old: Vec<IndexEntry> = match items.get(1) {
        Some(Value::BulkString(bytes)) => std::str::from_utf8(bytes)
            .ok()
            .and_then(decode_ids)
            .unwrap_or_else(|| {
                warn!(task_id = id, "a request-id record does not read; its index entries are left for lookups to prune");
                Vec::new()
            })
            .into_iter()
            .map(IndexEntry::Request)
            .collect(),
        _ => Vec::new(),
    };
    if let Some(Value::BulkString(bytes)) = items.get(2) {
        old.extend(listed_entries(id, bytes));
    }
    Ok((code, old))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_are_read_from_cluster_nodes() {
        let text = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001,host-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 connected
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
";
        assert_eq!(
            parse_masters(text),
            vec![
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001)
            ]
        );
    }

    #[test]
    fn a_write_script_reply_gives_its_status_and_old_request_ids() {
        let reply = Value::Array(vec![
            Value::Int(1),
            Value::BulkString(encode_ids(["r1", "r:2"]).into_bytes()),
            Value::BulkString(br#"["m~","s","u"]"#.to_vec()),
        ]);
        let (code, old) = status_and_record(Operation::Update, "t", reply).unwrap();
        let mut expected = vec![
            IndexEntry::Request("r1".to_owned()),
            IndexEntry::Request("r:2".to_owned()),
        ];
        expected.extend(IndexEntry::listings("m~", "s", "u"));
        assert_eq!((code, old), (1, expected));
        let reply = Value::Array(vec![Value::Int(1), Value::Nil, Value::Nil]);
        let (_, old) = status_and_record(Operation::Delete, "t", reply).unwrap();
        assert!(old.is_empty());
        let (code, old) =
            status_and_record(Operation::Delete, "t", Value::Array(vec![Value::Int(0)])).unwrap();
        assert_eq!((code, old.len()), (0, 0));
        assert!(status_and_record(Operation::Delete, "t", Value::Int(1)).is_err());
    }

    #[test]
    fn prune_tokens_differ() {
        assert_ne!(prune_token(), prune_token());
    }
}
