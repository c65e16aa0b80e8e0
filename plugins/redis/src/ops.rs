//! `Ops`: each operation as Redis commands over one multiplexed connection.
//!
//! Round trips per operation, when nothing is wrong with the data:
//!
//! | operation | round trips | commands |
//! |---|---|---|
//! | create, update, update_if_match, delete | 1 | one `EVALSHA` |
//! | load, load_with_etag | 1 | `GET` |
//! | load_by_request_id | 1 | one `EVALSHA` (the set's members with their documents) |
//! | list | 1 per batch | one `EVALSHA` per batch of index entries (entries with their documents) |
//! | health | 1 | `PING` |
//!
//! A listing page reads its entries from the narrowest index for the filter (the
//! session's, else the user's, else the one of all tasks) in batches of what it still
//! needs, so it costs about its size when the index holds what the filter asks for.
//! Entries it skips cost too: those of other statuses when the filter names statuses
//! (there is no index per status), and stale ones (a task that is gone or was moved by
//! another writer), which it prunes so that no later page pays for them again.
//!
//! Only unusual data costs more: a document that is not JSON at all is moved to quarantine
//! (one more script), and a lookup that met dangling or stale set members prunes them (one
//! more). A document that is JSON but not a valid task is left where it is: the reader
//! that decodes it reports it as `Corrupt`.
//! The connection reconnects by itself; these functions only map its errors.

use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, Value};
use ta_persistence_api::listing::{Page, PageRequest, TaskFilter, TaskSummary};
use ta_persistence_api::retention::RetentionPolicy;
use ta_persistence_api::{ETag, Operation, PersistenceError, Result, TaskDocument};
use tracing::{debug, info, warn};

use crate::codec::{
    self, etag_of, json_text, parse_members, read_stored, select, sha1_hex, write_status, Ttls,
};
use crate::error::from_redis;
use crate::keys::Keys;
use crate::listing::{list_fields, member, member_key, ListFields};
use crate::scripts::{self, Scripts};

/// How often `load` reads again when a corrupt document changed before it could be
/// quarantined (another writer replaced it).
const READ_ATTEMPTS: usize = 3;

/// Keys fetched and removed per `SCAN`/`UNLINK` round trip in `clear`.
const CLEAR_BATCH: usize = 500;

/// Index entries a purge walks per script call: small enough that the server, which
/// runs nothing else meanwhile, is never held for long.
const SWEEP_BATCH: usize = 500;

/// Task keys a reindex reads and indexes per round trip.
const REINDEX_BATCH: usize = 200;

/// How often a reindex reads a task again that changed between its read and its
/// indexing, before leaving it to the writer that changed it.
const REINDEX_ATTEMPTS: usize = 3;

/// The largest batch of entries a listing reads at once.
const MAX_LIST_BATCH: usize = 1024;

/// What a reindex did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReindexReport {
    /// Task keys found by the scan.
    pub scanned: u64,
    /// Tasks indexed.
    pub indexed: u64,
    /// Tasks that were gone, or changed on every attempt, by the time they were indexed.
    pub changed: u64,
    /// Tasks whose document is not a valid task (`load` reports them as `Corrupt`).
    pub unreadable: u64,
    /// Tasks left unindexed because a key they would go to holds another type.
    pub wrong_type: u64,
    /// Stale index entries removed afterwards (of tasks that are gone).
    pub pruned: u64,
}
/// The connection and everything an operation needs besides its arguments.
pub(crate) struct Ops {
    conn: ConnectionManager,
    keys: Keys,
    scripts: Scripts,
    /// The write scripts' TTL argument per status.
    ttls: Ttls,
    timeout: std::time::Duration,
}

impl Ops {
    pub(crate) fn new(
        conn: ConnectionManager,
        prefix: &str,
        ttl_secs: u64,
        retention: &RetentionPolicy,
        timeout: std::time::Duration,
    ) -> Self {
        Ops {
            conn,
            keys: Keys::new(prefix),
            scripts: Scripts::new(),
            ttls: Ttls::new(ttl_secs, retention),
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

    /// A write script's call with what every write passes: the task key, the entries
    /// hash, the task's three listing indexes and its request-id keys, then the id, the
    /// TTL for its status, the document, its listing member and record.
    fn write_call<'s>(
        &self,
        op: Operation,
        script: &'s redis::Script,
        doc: &TaskDocument,
    ) -> Result<redis::ScriptInvocation<'s>> {
        let id = doc.task_id();
        let fields = list_fields(doc).map_err(|e| {
            PersistenceError::invalid(op, id, format!("the task cannot be indexed: {e}"))
        })?;
        let member = member(&fields.key);
        let mut call = script.prepare_invoke();
        call.key(self.keys.task(id))
            .key(self.keys.list_entries())
            .key(self.keys.list_all())
            .key(self.keys.list_session(&fields.session_id))
            .key(self.keys.list_user(&fields.user_id));
        for request_id in doc.request_ids() {
            call.key(self.keys.index(request_id));
        }
        call.arg(id)
            .arg(self.ttls.of(fields.status))
            .arg(doc.json())
            .arg(&member)
            .arg(fields.record(&member))
            .arg(self.keys.listing_prefix());
        Ok(call)
    }

    /// Inserts a new task and indexes it, if its id is free.
    pub(crate) async fn create(&self, doc: TaskDocument) -> Result<()> {
        let id = doc.task_id();
        let call = self.write_call(Operation::Create, &self.scripts.create, &doc)?;
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
        let mut call = self.write_call(Operation::Update, &self.scripts.update, doc)?;
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
            .key(self.keys.list_entries())
            .arg(task_id)
            .arg(self.keys.index_prefix())
            .arg(self.keys.listing_prefix())
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
            .key(self.keys.quarantine(task_id))
            .key(self.keys.list_entries());
        call.arg(sha)
            .arg(task_id)
            .arg(self.keys.index_prefix())
            .arg(self.keys.listing_prefix());
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

    /// One page of tasks matching `filter`, in listing order, from the narrowest index
    /// for the filter. Entries whose task is gone, or whose document no longer fits
    /// (another `created_at`, session or user, written by another writer), are skipped
    /// and pruned. Each round trip has the operation time limit, not the whole page.
    pub(crate) async fn list(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let op = Operation::List;
        let start = page.start_after(filter)?;
        let size = page.size() as usize;
        let (index, scope) = match (filter.session_id(), filter.user_id()) {
            (Some(session), _) => (self.keys.list_session(session), Scope::Session(session)),
            (None, Some(user)) => (self.keys.list_user(user), Scope::User(user)),
            (None, None) => (self.keys.list_all(), Scope::All),
        };
        let mut lower = start.map_or_else(|| "-".to_owned(), |key| format!("({}", member(&key)));
        let mut found: Vec<TaskSummary> = Vec::with_capacity(size + 1);
        // One more than the page, to know whether another page follows.
        let mut batch = size + 1;
        let mut conn = self.conn();
        loop {
            let reply: Value = self
                .limited(
                    op,
                    self.scripts
                        .list_page
                        .key(&index)
                        .arg(&lower)
                        .arg(batch)
                        .arg(self.keys.task_prefix())
                        .invoke_async(&mut conn),
                )
                .await?;
            let entries = parse_members(reply).map_err(|why| {
                PersistenceError::plugin(
                    op,
                    "",
                    format!("unexpected reply from the listing script: {why}"),
                )
            })?;
            let got = entries.len();
            let mut stale: Vec<(String, String, String)> = Vec::new();
            for (entry, doc) in entries {
                lower = format!("({entry}");
                match judge_entry(&entry, doc, &scope) {
                    Entry::Listed(summary) => {
                        if filter.matches_summary(&summary) {
                            found.push(summary);
                        }
                    }
                    Entry::Gone(task_id) => stale.push((entry, task_id, String::new())),
                    Entry::Moved(task_id, sha) => stale.push((entry, task_id, sha)),
                    Entry::Unreadable(task_id, why) => warn!(
                        task_id,
                        error = %why,
                        "a listed task's document is not a valid task; left out of the listing"
                    ),
                }
                if found.len() > size {
                    break;
                }
            }
            if !stale.is_empty() {
                self.prune_listing(&index, &stale).await;
            }
            if found.len() > size || got < batch {
                break;
            }
            // Entries were skipped: read further in larger batches.
            batch = batch
                .saturating_mul(2)
                .max(size + 1 - found.len())
                .min(MAX_LIST_BATCH);
        }
        Ok(Page::from_ordered(found, filter, page.size()))
    }

    /// Removes listing entries a listing found stale, unless their task was written
    /// since. Best effort: a failure only leaves them for the next listing.
    async fn prune_listing(&self, index: &str, stale: &[(String, String, String)]) {
        let mut call = self.scripts.prune_listing.prepare_invoke();
        call.key(index)
            .key(self.keys.list_entries())
            .arg(self.keys.task_prefix())
            .arg(self.keys.listing_prefix());
        for (entry, task_id, sha) in stale {
            call.arg(entry).arg(task_id).arg(sha);
        }
        let mut conn = self.conn();
        match self
            .limited(Operation::List, call.invoke_async::<i64>(&mut conn))
            .await
        {
            Ok(removed) => debug!(index, removed, "pruned stale listing entries"),
            Err(e) => debug!(index, error = %e.report(), "could not prune stale listing entries"),
        }
    }

    /// Walks the index of all tasks in bounded batches and removes the entries of tasks
    /// that are gone, with everything their records name; returns how many entries of
    /// that index it removed. Redis expires task keys by itself, so this only tidies
    /// the indexes; each batch is one short script, so writers run in between.
    pub(crate) async fn sweep(&self, op: Operation) -> Result<u64> {
        let mut conn = self.conn();
        let mut lower: Vec<u8> = b"-".to_vec();
        let mut removed = 0;
        loop {
            let (last, n): (Vec<u8>, u64) = self
                .limited(
                    op,
                    self.scripts
                        .sweep
                        .key(self.keys.list_all())
                        .key(self.keys.list_entries())
                        .arg(&lower)
                        .arg(SWEEP_BATCH)
                        .arg(self.keys.task_prefix())
                        .arg(self.keys.listing_prefix())
                        .invoke_async(&mut conn),
                )
                .await?;
            removed += n;
            if last.is_empty() {
                return Ok(removed);
            }
            lower = [b"(".as_slice(), last.as_slice()].concat();
        }
    }

    /// `purge`: Redis removes expired task keys by itself, the moment they expire (no
    /// read ever sees one), so nothing is left for a purge to delete and it answers 0;
    /// it sweeps the entries those tasks left in the listing indexes (request-id
    /// entries are pruned by the lookups that meet them).
    pub(crate) async fn purge(&self) -> Result<u64> {
        let removed = self.sweep(Operation::Purge).await?;
        info!(
            index_entries_removed = removed,
            "purge: expired tasks are removed by Redis; swept the listing entries they left"
        );
        Ok(0)
    }

    /// Rebuilds the listing indexes and the request-id index from a `SCAN` of the task
    /// keys, in bounded batches, then sweeps entries of tasks that are gone. Safe while
    /// writers run: each task is indexed by a script that first checks its document is
    /// still the one read (one that changed is read again; one that keeps changing is
    /// left to its writer, whose own script indexes it).
    pub(crate) async fn reindex(&self) -> Result<ReindexReport> {
        let op = Operation::Purge;
        let mut conn = self.conn();
        let mut report = ReindexReport::default();
        let pattern = self.keys.task_pattern();
        let prefix_len = self.keys.task_prefix().len();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .limited(
                    op,
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(REINDEX_BATCH)
                        .query_async(&mut conn),
                )
                .await?;
            report.scanned += keys.len() as u64;
            let mut pending: Vec<String> = Vec::with_capacity(keys.len());
            for key in keys {
                match String::from_utf8(key[prefix_len.min(key.len())..].to_vec()) {
                    Ok(id) => pending.push(id),
                    Err(_) => report.unreadable += 1,
                }
            }
            for _ in 0..REINDEX_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                pending = self.reindex_batch(&mut conn, pending, &mut report).await?;
            }
            report.changed += pending.len() as u64;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        report.pruned = self.sweep(op).await?;
        info!(?report, "reindex done");
        Ok(report)
    }

    /// Reads and indexes one batch of tasks; returns the ids whose document changed
    /// between the read and the indexing, to be tried again.
    async fn reindex_batch(
        &self,
        conn: &mut ConnectionManager,
        ids: Vec<String>,
        report: &mut ReindexReport,
    ) -> Result<Vec<String>> {
        let op = Operation::Purge;
        let keys: Vec<String> = ids.iter().map(|id| self.keys.task(id)).collect();
        let docs: Vec<Option<Vec<u8>>> = self
            .limited(op, redis::cmd("MGET").arg(&keys).query_async(conn))
            .await?;
        let mut call = self.scripts.reindex.prepare_invoke();
        call.key(self.keys.list_entries())
            .key(self.keys.list_all())
            .arg(self.keys.task_prefix())
            .arg(self.keys.index_prefix())
            .arg(self.keys.listing_prefix());
        let mut sent: Vec<String> = Vec::with_capacity(ids.len());
        for (id, doc) in ids.into_iter().zip(docs) {
            let Some(bytes) = doc else {
                // Gone since the scan: nothing to index.
                report.changed += 1;
                continue;
            };
            let sha = sha1_hex(&bytes);
            let Some((fields, json)) = json_text(bytes)
                .ok()
                .and_then(|json| TaskSummary::from_json(&json).ok().map(|s| (s, json)))
                .filter(|(summary, _)| summary.task_id == id)
                .map(|(summary, json)| (ListFields::of_summary(&summary), json))
            else {
                warn!(
                    task_id = %id,
                    "reindex: the document is not a valid task of its key; not indexed"
                );
                report.unreadable += 1;
                continue;
            };
            let entry = member(&fields.key);
            let doc = TaskDocument::stored(id.clone(), json);
            let request_ids = doc.request_ids();
            call.arg(&id)
                .arg(&sha)
                .arg(&entry)
                .arg(fields.record(&entry))
                .arg(&fields.session_id)
                .arg(&fields.user_id)
                .arg(request_ids.len())
                .arg(request_ids);
            sent.push(id);
        }
        if sent.is_empty() {
            return Ok(Vec::new());
        }
        let results: Vec<i64> = self.limited(op, call.invoke_async(conn)).await?;
        let mut again = Vec::new();
        for (id, result) in sent.into_iter().zip(results) {
            match result {
                scripts::OK => report.indexed += 1,
                scripts::WRONG_TYPE => {
                    warn!(
                        task_id = %id,
                        "reindex: a key the task's entries go to holds another type; not indexed"
                    );
                    report.wrong_type += 1;
                }
                _ => again.push(id),
            }
        }
        Ok(again)
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
        match ta_persistence_api::deadline::within(self.timeout, call).await {
            Ok(result) => result.map_err(self.fail(op, "")),
            Err(_) => Err(crate::error::timed_out(op, "", self.timeout)),
        }
    }
}

/// Which index a listing reads, and so what an entry's task must have to belong there.
pub(crate) enum Scope<'a> {
    All,
    Session(&'a str),
    User(&'a str),
}

/// What a listing entry turned out to be.
pub(crate) enum Entry {
    /// A task listed where it belongs.
    Listed(TaskSummary),
    /// The task is gone (or the entry names none): its id, `""` for none.
    Gone(String),
    /// The task is there but its document does not fit the entry (another writer changed
    /// its `created_at`, session or user): its id and the document's SHA-1.
    Moved(String, String),
    /// The document is not a valid task.
    Unreadable(String, String),
}

/// What a listing entry of `scope`'s index is, given its task's document (if any).
pub(crate) fn judge_entry(entry: &str, doc: Option<Vec<u8>>, scope: &Scope<'_>) -> Entry {
    let Some(key) = member_key(entry) else {
        return Entry::Gone(String::new());
    };
    let Some(bytes) = doc else {
        return Entry::Gone(key.task_id);
    };
    let json = match json_text(bytes) {
        Ok(json) => json,
        Err(unreadable) => return Entry::Unreadable(key.task_id, unreadable.why.to_string()),
    };
    let summary = match TaskSummary::from_json(&json) {
        Ok(summary) => summary,
        Err(e) => return Entry::Unreadable(key.task_id, e.to_string()),
    };
    let fits = match scope {
        Scope::All => true,
        Scope::Session(session) => summary.session_id == *session,
        Scope::User(user) => summary.user_id == *user,
    };
    if fits && summary.key() == key {
        Entry::Listed(summary)
    } else {
        Entry::Moved(key.task_id, sha1_hex(json.as_bytes()))
    }
}
