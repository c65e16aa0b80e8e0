//! The statements of each operation, run over a connection of the pool.
//!
//! Each operation takes a connection, runs one prepared statement (prepared once per
//! connection and cached, so afterwards an operation is one round trip) and maps what
//! it gets back, or its error, to the contract's answer.

use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use ta_persistence_api::listing::{Page, PageRequest, TaskFilter, TaskSummary};
use ta_persistence_api::retention::RetentionPolicy;
use ta_persistence_api::{ETag, Operation, PersistenceError, Result, TaskDocument, Versioned};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::error::{from_pg, from_pool};
use crate::sql::{self, ListShape};

/// The statement texts, built once.
#[derive(Debug)]
struct Statements {
    create: String,
    update: String,
    update_if_match: String,
    delete: String,
    get: String,
}

/// The operations over a pool of connections.
#[derive(Debug)]
pub(crate) struct Ops {
    pool: Pool,
    statements: Statements,
    retention: RetentionPolicy,
    /// The server's statement timeout, reported when it cancels a statement.
    statement_timeout: Duration,
    /// The limit on waiting for a connection.
    wait: Duration,
    purge_batch: i64,
}

/// What a write stores beside the document: the typed columns.
struct Columns {
    session_id: String,
    user_id: String,
    status: &'static str,
    created_us: i64,
    /// Microseconds the task is kept after this write; `None`: until deleted.
    keep_us: Option<i64>,
}

impl Ops {
    pub(crate) fn new(
        pool: Pool,
        retention: RetentionPolicy,
        statement_timeout: Duration,
        wait: Duration,
        purge_batch: u32,
    ) -> Self {
        Ops {
            pool,
            statements: Statements {
                create: sql::create(),
                update: sql::update(),
                update_if_match: sql::update_if_match(),
                delete: sql::delete(),
                get: sql::get(),
            },
            retention,
            statement_timeout,
            wait,
            purge_batch: i64::from(purge_batch),
        }
    }

    /// The retention policy writes apply.
    pub(crate) fn retention(&self) -> &RetentionPolicy {
        &self.retention
    }

    async fn client(&self, op: Operation, id: &str) -> Result<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| from_pool(op, id, self.wait, e))
    }

    /// Runs a prepared statement and returns its rows.
    async fn query(
        &self,
        op: Operation,
        id: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let client = self.client(op, id).await?;
        let pg = |e| from_pg(op, id, self.statement_timeout, e);
        let statement = client.prepare_cached(sql).await.map_err(pg)?;
        client.query(&statement, params).await.map_err(pg)
    }

    /// Runs a prepared statement that yields at most one row.
    async fn query_opt(
        &self,
        op: Operation,
        id: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        Ok(self.query(op, id, sql, params).await?.into_iter().next())
    }

    /// The typed columns of a document to be written.
    fn columns(&self, op: Operation, doc: &TaskDocument) -> Result<Columns> {
        let invalid = |why: String| PersistenceError::invalid(op, doc.task_id(), why);
        let summary = TaskSummary::from_json(doc.json()).map_err(|e| invalid(e.to_string()))?;
        let created_us = doc.created_at_micros();
        if created_us == TaskDocument::NOT_DERIVED {
            return Err(invalid("the document has no readable created_at".into()));
        }
        let keep_us = match self.retention.max_age(summary.status) {
            Some(age) => Some(
                i64::try_from(age.as_micros())
                    .map_err(|_| invalid("the retention period is too long to store".into()))?,
            ),
            None => None,
        };
        Ok(Columns {
            session_id: summary.session_id,
            user_id: summary.user_id,
            status: summary.status.as_str(),
            created_us,
            keep_us,
        })
    }

    /// Runs one of the three writes of a whole document; `version` only for
    /// `update_if_match`. Returns the first row, if any.
    async fn write(
        &self,
        op: Operation,
        sql: &str,
        doc: &TaskDocument,
        version: Option<i64>,
    ) -> Result<Option<Row>> {
        let id = doc.task_id();
        let c = self.columns(op, doc)?;
        let request_ids: Vec<&[u8]> = doc.request_ids().iter().map(|r| r.as_bytes()).collect();
        let (task_id, session, user) =
            (id.as_bytes(), c.session_id.as_bytes(), c.user_id.as_bytes());
        let json = doc.json();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &task_id,
            &json,
            &session,
            &user,
            &c.status,
            &c.created_us,
            &c.keep_us,
            &request_ids,
        ];
        if let Some(version) = &version {
            params.push(version);
        }
        self.query_opt(op, id, sql, &params).await
    }

    pub(crate) async fn create(&self, doc: TaskDocument) -> Result<()> {
        let sql = &self.statements.create;
        match self.write(Operation::Create, sql, &doc, None).await? {
            Some(_) => Ok(()),
            None => Err(PersistenceError::already_exists(
                Operation::Create,
                doc.task_id(),
            )),
        }
    }

    pub(crate) async fn update(&self, doc: TaskDocument) -> Result<()> {
        let sql = &self.statements.update;
        match self.write(Operation::Update, sql, &doc, None).await? {
            Some(_) => Ok(()),
            None => Err(not_found(Operation::Update, doc.task_id())),
        }
    }

    pub(crate) async fn update_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        // ETags are versions from a sequence, all positive: one that does not parse
        // matches no row, and the answer is `Conflict` (or `NotFound`) as for any other.
        let expected = etag.as_str().parse::<i64>().unwrap_or(-1);
        let sql = &self.statements.update_if_match;
        let row = self
            .write(Operation::Update, sql, &doc, Some(expected))
            .await?;
        let op = Operation::Update;
        let (version, exists) = match &row {
            Some(row) => (column::<Option<i64>>(op, row, 0)?, column(op, row, 1)?),
            None => (None, false),
        };
        match (version, exists) {
            (Some(v), _) => Ok(ETag::new(v.to_string())),
            (None, true) => Err(PersistenceError::conflict(
                Operation::Update,
                doc.task_id(),
                etag.as_str(),
            )),
            (None, false) => Err(not_found(Operation::Update, doc.task_id())),
        }
    }

    pub(crate) async fn delete(&self, task_id: &str) -> Result<()> {
        let sql = &self.statements.delete;
        let row = self
            .query_opt(Operation::Delete, task_id, sql, &[&task_id.as_bytes()])
            .await?;
        let live = row
            .map(|r| column::<bool>(Operation::Delete, &r, 0))
            .transpose()?;
        match live {
            Some(true) => Ok(()),
            _ => Err(not_found(Operation::Delete, task_id)),
        }
    }

    pub(crate) async fn get(&self, task_id: &str) -> Result<Option<Versioned<TaskDocument>>> {
        let sql = &self.statements.get;
        let row = self
            .query_opt(Operation::Load, task_id, sql, &[&task_id.as_bytes()])
            .await?;
        let Some(row) = row else { return Ok(None) };
        let op = Operation::Load;
        let doc = TaskDocument::stored(task_id.to_owned(), column(op, &row, 0)?);
        let version: i64 = column(op, &row, 1)?;
        Ok(Some(Versioned::new(doc, ETag::new(version.to_string()))))
    }

    pub(crate) async fn find(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        let op = Operation::LoadByRequestId;
        let row = self
            .query_opt(op, request_id, sql::find(), &[&request_id.as_bytes()])
            .await?;
        row.map(|row| {
            Ok(TaskDocument::stored(
                task_id_of(op, &row, 0)?,
                column(op, &row, 1)?,
            ))
        })
        .transpose()
    }

    pub(crate) async fn list(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let op = Operation::List;
        let after = page.start_after(filter)?;
        let statuses: Option<Vec<&str>> = filter
            .status_set()
            .map(|s| s.iter().map(|s| s.as_str()).collect());
        let session = filter.session_id().map(str::as_bytes);
        let user = filter.user_id().map(str::as_bytes);
        let shape = ListShape {
            session: session.is_some(),
            user: user.is_some(),
            statuses: statuses.is_some(),
            after: after.is_some(),
        };
        let after_at = after.as_ref().map(|k| k.created_at_micros);
        let after_id = after.as_ref().map(|k| k.task_id.as_bytes());
        // One row more than the page, to know whether there is a next page.
        let limit = i64::from(page.size()) + 1;
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(6);
        if let Some(session) = &session {
            params.push(session);
        }
        if let Some(user) = &user {
            params.push(user);
        }
        if let Some(statuses) = &statuses {
            params.push(statuses);
        }
        if let (Some(at), Some(id)) = (&after_at, &after_id) {
            params.push(at);
            params.push(id);
        }
        params.push(&limit);
        let rows = self.query(op, "", &shape.sql(), &params).await?;
        let mut summaries = Vec::with_capacity(rows.len());
        for row in &rows {
            let task_id = task_id_of(op, row, 0)?;
            let json: &str = column(op, row, 1)?;
            let summary = TaskSummary::from_json(json)
                .map_err(|e| PersistenceError::corrupt(op, task_id, e))?;
            summaries.push(summary);
        }
        Ok(Page::from_ordered(summaries, filter, page.size()))
    }

    /// Deletes every expired task, in batches of at most the configured size, each its
    /// own transaction (so a large backlog never holds many locks or one long
    /// transaction); returns how many.
    pub(crate) async fn purge(&self) -> Result<u64> {
        let op = Operation::Purge;
        let mut total = 0u64;
        loop {
            let row = self
                .query_opt(op, "", sql::purge_batch(), &[&self.purge_batch])
                .await?;
            let deleted: i64 = row.map_or(Ok(0), |r| column(op, &r, 0))?;
            total += u64::try_from(deleted).unwrap_or(0);
            if deleted < self.purge_batch {
                return Ok(total);
            }
        }
    }

    pub(crate) async fn clear(&self) -> Result<u64> {
        let row = self
            .query_opt(Operation::Clear, "", sql::clear(), &[])
            .await?;
        let live: i64 = row.map_or(Ok(0), |r| column(Operation::Clear, &r, 0))?;
        Ok(u64::try_from(live).unwrap_or(0))
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        self.query(Operation::Health, "", "SELECT 1", &[])
            .await
            .map(drop)
    }
}

fn not_found(op: Operation, task_id: &str) -> PersistenceError {
    PersistenceError::not_found(op, task_id)
}

/// Column `index` of a row, as the type the statement yields (an error, not a panic,
/// should a schema changed by hand yield another).
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    op: Operation,
    row: &'a Row,
    index: usize,
) -> Result<T> {
    row.try_get(index)
        .map_err(|e| PersistenceError::backend(op, "", e))
}

/// A task id read back from a `bytea` column; every id was written from a `String`.
fn task_id_of(op: Operation, row: &Row, index: usize) -> Result<String> {
    let bytes: Vec<u8> = column(op, row, index)?;
    String::from_utf8(bytes).map_err(|e| PersistenceError::backend(op, "", e))
}
