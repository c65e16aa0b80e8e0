//! The statements: each store operation as blocking calls on one connection, with its
//! SQLite errors mapped to the contract's. Writes run inside the writer's transaction
//! (see `writer`), reads on a reader connection.
//!
//! A task whose `expires_at_ms` has passed is gone for every operation here, even before
//! a purge deletes its row: reads and updates skip it, and a create of its id replaces it.

use std::collections::HashSet;

use chrono::{DateTime, FixedOffset};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, ErrorCode, OptionalExtension};
use ta_persistence_api::listing::{ListKey, TaskFilter, TaskSummary};
use ta_persistence_api::{
    ETag, Operation, Outcome, PersistenceError, Result, TaskDocument, TaskStatus, Timestamp,
};

/// The condition that a task row has not expired at `?now` (a named parameter).
const LIVE: &str = "(expires_at_ms IS NULL OR expires_at_ms > :now)";

/// The typed columns of a task, beside its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) session_id: String,
    pub(crate) user_id: String,
    /// `TaskStatus::ordinal`.
    pub(crate) status: u8,
    /// The listing key's time: `created_at` in UTC microseconds.
    pub(crate) created_us: i64,
    pub(crate) created_at: Moment,
    pub(crate) last_updated: Moment,
    pub(crate) item_count: i64,
}

/// A timestamp as two columns that give it back exactly: the wall-clock time as written
/// (microseconds since the epoch, as if it were UTC) and its offset in seconds (`None`
/// for a naive time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moment {
    local_us: i64,
    offset_s: Option<i32>,
}

impl Moment {
    fn of(at: &Timestamp) -> Self {
        Moment {
            local_us: at.naive_local().and_utc().timestamp_micros(),
            offset_s: at.offset().map(|o| o.local_minus_utc()),
        }
    }

    /// The timestamp back; `None` for columns no timestamp writes.
    fn timestamp(self) -> Option<Timestamp> {
        let naive = DateTime::from_timestamp_micros(self.local_us)?.naive_utc();
        let offset = match self.offset_s {
            Some(secs) => Some(FixedOffset::east_opt(secs)?),
            None => None,
        };
        Some(Timestamp::from_parts(naive, offset))
    }
}

impl Row {
    /// The columns of a document; a document they cannot be read from is refused.
    pub(crate) fn of(doc: &TaskDocument, op: Operation) -> Result<Row> {
        let task = doc.to_task().map_err(|e| {
            PersistenceError::invalid(op, doc.task_id(), format!("not a task document: {e}"))
        })?;
        Ok(Row {
            created_us: task.created_at.utc_micros(),
            created_at: Moment::of(&task.created_at),
            last_updated: Moment::of(&task.last_updated),
            item_count: i64::try_from(task.items.len()).unwrap_or(i64::MAX),
            status: task.status.ordinal(),
            session_id: task.session_id,
            user_id: task.user_id,
        })
    }
}

/// What the writer adds to a write: the ETag counter it takes, the store's clock, and the
/// expiry retention gives it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    pub(crate) version: i64,
    pub(crate) now_ms: i64,
    pub(crate) expires_at_ms: Option<i64>,
}

/// The ETag of a task written with counter `version` in database `instance`.
pub(crate) fn etag(instance: &str, version: i64) -> ETag {
    ETag::new(format!("{instance}-{version}"))
}

/// Maps a SQLite error of `op` on `id`. A lock held past the busy timeout is
/// `Unavailable` (nothing was applied: the transaction is rolled back); damage is
/// `Corrupt`; anything else is a backend error.
pub(crate) fn db_error(op: Operation, id: &str, err: &rusqlite::Error) -> PersistenceError {
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => PersistenceError::unavailable(
            op,
            id,
            format!(
                "the database stayed locked by another connection past the busy timeout ({err})"
            ),
            Outcome::NotApplied,
        ),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            PersistenceError::corrupt(op, id, err.to_string())
        }
        _ => PersistenceError::backend(op, id, err.to_string()),
    }
}

/// `db_error` for use in `map_err`.
fn on(op: Operation, id: &str) -> impl Fn(rusqlite::Error) -> PersistenceError + '_ {
    move |err| db_error(op, id, &err)
}

/// Runs a statement whose `?1` to `?14` are a task row: id, json, session, user, status,
/// `created_us`, each time's local microseconds and offset, item count, version, write
/// time and expiry (the insert's and the update's order).
fn execute_row(
    stmt: &mut rusqlite::Statement<'_>,
    doc: &TaskDocument,
    row: &Row,
    stamp: Stamp,
) -> rusqlite::Result<usize> {
    stmt.execute(params![
        doc.task_id(),
        doc.json(),
        row.session_id,
        row.user_id,
        row.status,
        row.created_us,
        row.created_at.local_us,
        row.created_at.offset_s,
        row.last_updated.local_us,
        row.last_updated.offset_s,
        row.item_count,
        stamp.version,
        stamp.now_ms,
        stamp.expires_at_ms,
    ])
}

/// Stores a new task; `AlreadyExists` if a live task has its id.
pub(crate) fn insert(conn: &Connection, doc: &TaskDocument, row: &Row, stamp: Stamp) -> Result<()> {
    let (op, id) = (Operation::Create, doc.task_id());
    // An expired task's id is free: its row goes, and its index entries with it.
    conn.prepare_cached("DELETE FROM tasks WHERE task_id = ?1 AND expires_at_ms <= ?2")
        .and_then(|mut s| s.execute(params![id, stamp.now_ms]))
        .map_err(on(op, id))?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO tasks (task_id, json, session_id, user_id, status, created_us, \
             created_local_us, created_offset_s, updated_local_us, updated_offset_s, \
             item_count, version, written_ms, expires_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT (task_id) DO NOTHING",
        )
        .and_then(|mut s| execute_row(&mut s, doc, row, stamp))
        .map_err(on(op, id))?;
    if inserted == 0 {
        return Err(PersistenceError::already_exists(op, id));
    }
    index_add(
        conn,
        op,
        id,
        row.created_us,
        doc.request_ids().iter().map(String::as_str),
    )
}

/// Adds index entries for a task.
fn index_add<'a>(
    conn: &Connection,
    op: Operation,
    task_id: &str,
    created_us: i64,
    request_ids: impl Iterator<Item = &'a str>,
) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO request_ids (request_id, created_us, task_id) VALUES (?1, ?2, ?3)",
        )
        .map_err(on(op, task_id))?;
    for request_id in request_ids {
        stmt.execute(params![request_id, created_us, task_id])
            .map_err(on(op, task_id))?;
    }
    Ok(())
}

/// Replaces a live task, only if its ETag is `expected` when one is given.
pub(crate) fn replace(
    conn: &Connection,
    doc: &TaskDocument,
    row: &Row,
    expected: Option<&ETag>,
    instance: &str,
    stamp: Stamp,
) -> Result<()> {
    let (op, id) = (Operation::Update, doc.task_id());
    let current: Option<(i64, i64)> = conn
        .prepare_cached(&format!(
            "SELECT version, created_us FROM tasks WHERE task_id = :id AND {LIVE}"
        ))
        .and_then(|mut s| {
            s.query_row(
                rusqlite::named_params! {":id": id, ":now": stamp.now_ms},
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
        .map_err(on(op, id))?;
    let Some((version, created_us)) = current else {
        return Err(PersistenceError::not_found(op, id));
    };
    if let Some(expected) = expected {
        if *expected != etag(instance, version) {
            return Err(PersistenceError::conflict(op, id, expected.to_string()));
        }
    }
    conn.prepare_cached(
        "UPDATE tasks SET json = ?2, session_id = ?3, user_id = ?4, status = ?5, \
         created_us = ?6, created_local_us = ?7, created_offset_s = ?8, updated_local_us = ?9, \
         updated_offset_s = ?10, item_count = ?11, version = ?12, written_ms = ?13, \
         expires_at_ms = ?14 WHERE task_id = ?1",
    )
    .and_then(|mut s| execute_row(&mut s, doc, row, stamp))
    .map_err(on(op, id))?;
    reindex(conn, doc, created_us, row.created_us)
}

/// Moves a task's index entries to its new request ids, touching only those that
/// changed (an update usually appends one item), or all when `created_at` changed.
fn reindex(
    conn: &Connection,
    doc: &TaskDocument,
    old_created: i64,
    new_created: i64,
) -> Result<()> {
    let (op, id) = (Operation::Update, doc.task_id());
    let new: HashSet<&str> = doc.request_ids().iter().map(String::as_str).collect();
    if old_created != new_created {
        conn.prepare_cached("DELETE FROM request_ids WHERE task_id = ?1")
            .and_then(|mut s| s.execute([id]))
            .map_err(on(op, id))?;
        return index_add(conn, op, id, new_created, new.into_iter());
    }
    let old: Vec<String> = conn
        .prepare_cached("SELECT request_id FROM request_ids WHERE task_id = ?1")
        .and_then(|mut s| s.query_map([id], |r| r.get(0))?.collect())
        .map_err(on(op, id))?;
    let mut drop = conn
        .prepare_cached(
            "DELETE FROM request_ids WHERE request_id = ?1 AND created_us = ?2 AND task_id = ?3",
        )
        .map_err(on(op, id))?;
    for gone in old.iter().filter(|r| !new.contains(r.as_str())) {
        drop.execute(params![gone, old_created, id])
            .map_err(on(op, id))?;
    }
    let old: HashSet<&str> = old.iter().map(String::as_str).collect();
    index_add(
        conn,
        op,
        id,
        new_created,
        new.into_iter().filter(|r| !old.contains(r)),
    )
}

/// Deletes a live task; `NotFound` if there is none.
pub(crate) fn remove(conn: &Connection, task_id: &str, now_ms: i64) -> Result<()> {
    let op = Operation::Delete;
    let removed = conn
        .prepare_cached(&format!("DELETE FROM tasks WHERE task_id = :id AND {LIVE}"))
        .and_then(|mut s| s.execute(rusqlite::named_params! {":id": task_id, ":now": now_ms}))
        .map_err(on(op, task_id))?;
    if removed == 0 {
        return Err(PersistenceError::not_found(op, task_id));
    }
    Ok(())
}

/// Deletes every task; returns how many were live.
pub(crate) fn remove_all(conn: &Connection, now_ms: i64) -> Result<u64> {
    let op = Operation::Clear;
    let live: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM tasks WHERE {LIVE}"),
            rusqlite::named_params! {":now": now_ms},
            |r| r.get(0),
        )
        .map_err(on(op, ""))?;
    // The index first, so the trigger finds nothing to do for each task.
    conn.execute_batch("DELETE FROM request_ids; DELETE FROM tasks;")
        .map_err(on(op, ""))?;
    Ok(u64::try_from(live).unwrap_or(0))
}

/// Deletes up to `limit` expired tasks; returns how many.
pub(crate) fn purge(conn: &Connection, op: Operation, now_ms: i64, limit: i64) -> Result<u64> {
    let purged = conn
        .prepare_cached(
            "DELETE FROM tasks WHERE rowid IN \
             (SELECT rowid FROM tasks WHERE expires_at_ms <= ?1 LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![now_ms, limit]))
        .map_err(on(op, ""))?;
    Ok(u64::try_from(purged).unwrap_or(0))
}

/// A live task's JSON and ETag counter.
pub(crate) fn get(conn: &Connection, task_id: &str, now_ms: i64) -> Result<Option<(String, i64)>> {
    conn.prepare_cached(&format!(
        "SELECT json, version FROM tasks WHERE task_id = :id AND {LIVE}"
    ))
    .and_then(|mut s| {
        s.query_row(
            rusqlite::named_params! {":id": task_id, ":now": now_ms},
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
    })
    .map_err(on(Operation::Load, task_id))
}

/// The live task holding `request_id` that was created first (then the smallest task
/// id): its id and JSON.
pub(crate) fn find(
    conn: &Connection,
    request_id: &str,
    now_ms: i64,
) -> Result<Option<(String, String)>> {
    conn.prepare_cached(&format!(
        "SELECT t.task_id, t.json FROM request_ids AS r JOIN tasks AS t ON t.task_id = r.task_id \
         WHERE r.request_id = :rid AND {} \
         ORDER BY r.created_us, r.task_id LIMIT 1",
        LIVE.replace("expires_at_ms", "t.expires_at_ms")
    ))
    .and_then(|mut s| {
        s.query_row(
            rusqlite::named_params! {":rid": request_id, ":now": now_ms},
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
    })
    .map_err(on(Operation::LoadByRequestId, request_id))
}

/// Up to `limit` summaries of the live tasks `filter` matches, in listing order (newest
/// created first, then task id descending), strictly after `after`. Read from the typed
/// columns alone: a page costs about its size, however large its tasks are.
pub(crate) fn list(
    conn: &Connection,
    filter: &TaskFilter,
    after: Option<&ListKey>,
    limit: u32,
    now_ms: i64,
) -> Result<Vec<TaskSummary>> {
    let op = Operation::List;
    let mut sql = String::from(
        "SELECT task_id, session_id, user_id, status, created_local_us, created_offset_s, \
         updated_local_us, updated_offset_s, item_count FROM tasks \
         WHERE (expires_at_ms IS NULL OR expires_at_ms > ?)",
    );
    let mut args = vec![Value::Integer(now_ms)];
    if let Some(session) = filter.session_id() {
        sql.push_str(" AND session_id = ?");
        args.push(Value::Text(session.to_owned()));
    }
    if let Some(user) = filter.user_id() {
        sql.push_str(" AND user_id = ?");
        args.push(Value::Text(user.to_owned()));
    }
    if let Some(statuses) = filter.status_set() {
        // Small integers, written into the text: one statement per set of statuses.
        let list: Vec<String> = statuses.iter().map(|s| s.ordinal().to_string()).collect();
        sql.push_str(&format!(" AND status IN ({})", list.join(",")));
    }
    if let Some(key) = after {
        // Row values compare in order: the keys after `key` in a descending listing.
        sql.push_str(" AND (created_us, task_id) < (?, ?)");
        args.push(Value::Integer(key.created_at_micros));
        args.push(Value::Text(key.task_id.clone()));
    }
    sql.push_str(" ORDER BY created_us DESC, task_id DESC LIMIT ?");
    args.push(Value::Integer(i64::from(limit)));
    let mut stmt = conn.prepare_cached(&sql).map_err(on(op, ""))?;
    let rows = stmt
        .query_map(params_from_iter(args), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, u8>(3)?,
                Moment {
                    local_us: r.get(4)?,
                    offset_s: r.get(5)?,
                },
                Moment {
                    local_us: r.get(6)?,
                    offset_s: r.get(7)?,
                },
                r.get::<_, i64>(8)?,
            ))
        })
        .map_err(on(op, ""))?;
    let mut page = Vec::new();
    for row in rows {
        let (task_id, session_id, user_id, status, created, updated, items) =
            row.map_err(on(op, ""))?;
        let corrupt = |what: &str| {
            PersistenceError::corrupt(
                op,
                task_id.clone(),
                format!("the row's {what} column holds no valid value"),
            )
        };
        let status = TaskStatus::from_ordinal(status).ok_or_else(|| corrupt("status"))?;
        let created_at = created.timestamp().ok_or_else(|| corrupt("created_at"))?;
        let last_updated = updated.timestamp().ok_or_else(|| corrupt("last_updated"))?;
        let item_count = u64::try_from(items).map_err(|_| corrupt("item_count"))?;
        page.push(TaskSummary::new(
            task_id.clone(),
            session_id,
            user_id,
            status,
            created_at,
            last_updated,
            item_count,
        ));
    }
    Ok(page)
}
