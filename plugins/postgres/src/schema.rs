//! The schema's migrations, embedded in the plugin, and applying them at start-up.
//!
//! Migrations are an ordered list; each is applied once, in one transaction together
//! with its row in `ta_schema_migrations`, so a migration is either wholly applied and
//! recorded or not at all. Start-up takes a session-level advisory lock first, so of
//! several hosts starting at once one applies what is missing and the others, once they
//! get the lock, find nothing left to do. A database already migrated past the newest
//! migration this plugin knows was upgraded by a newer plugin: it is refused, since
//! this code may not understand its schema.
//!
//! The tables hold ids as `bytea`: ids may hold any character (a NUL included, which a
//! Postgres `text` cannot), and `bytea` compares by bytes, which is the order listing
//! and the request-id tie-break need, whatever the database's collation.

use std::fmt;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// The advisory lock key that serialises migrations across hosts (any fixed number,
/// unlikely to be used by another application of the same database: "ta-migr" in ASCII).
pub const MIGRATION_LOCK: i64 = 0x0074_612d_6d69_6772;

/// The table that records applied migrations.
pub const MIGRATIONS_TABLE: &str = "ta_schema_migrations";

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its number: 1, 2, ... in order.
    pub version: i64,
    /// What it does, recorded with it.
    pub name: &'static str,
    /// The SQL, run as one batch inside the migration's transaction.
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tasks, request ids, listing and expiry indexes",
        sql: r#"
CREATE SEQUENCE ta_task_version;

CREATE TABLE ta_tasks (
    task_id    bytea PRIMARY KEY,
    json       text NOT NULL,
    session_id bytea NOT NULL,
    user_id    bytea NOT NULL,
    status     text NOT NULL,
    created_us bigint NOT NULL,
    version    bigint NOT NULL,
    expires_at timestamptz
);
CREATE INDEX ta_tasks_by_created ON ta_tasks (created_us DESC, task_id DESC);
CREATE INDEX ta_tasks_by_session ON ta_tasks (session_id, created_us DESC, task_id DESC);
CREATE INDEX ta_tasks_by_user ON ta_tasks (user_id, created_us DESC, task_id DESC);
CREATE INDEX ta_tasks_expiring ON ta_tasks (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE ta_request_ids (
    request_id bytea NOT NULL,
    task_id    bytea NOT NULL REFERENCES ta_tasks (task_id) ON DELETE CASCADE,
    PRIMARY KEY (request_id, task_id)
);
CREATE INDEX ta_request_ids_by_task ON ta_request_ids (task_id);
"#,
    },
    Migration {
        version: 2,
        name: "listing index by status",
        // Without it a listing filtered by status alone walks the global index past every
        // task of other statuses, or (when the planner expects few matches) reads the table
        // and sorts it: either way about the number of stored tasks, not the page size.
        sql: r#"
CREATE INDEX ta_tasks_by_status ON ta_tasks (status, created_us DESC, task_id DESC);
"#,
    },
];

/// The newest schema version this plugin knows.
pub fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Why the schema could not be brought up to date.
#[derive(Debug)]
pub enum MigrateError {
    /// The database was migrated by a newer version of the plugin.
    Newer {
        /// The database's schema version.
        found: i64,
        /// The newest this plugin knows.
        known: i64,
    },
    /// The user may not change the schema (or the server is a read-only standby).
    NotPermitted {
        /// What the plugin was doing.
        doing: String,
        /// The server's error.
        source: tokio_postgres::Error,
    },
    /// The schema is current but the user may not write the tables.
    ReadOnly {
        /// The privileges that are missing.
        missing: String,
    },
    /// Any other failure.
    Db {
        /// What the plugin was doing.
        doing: String,
        /// The error.
        source: tokio_postgres::Error,
    },
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrateError::Newer { found, known } => write!(
                f,
                "the database schema is at version {found}, newer than this plugin knows \
                 (up to {known}): it was migrated by a newer version; upgrade the plugin"
            ),
            MigrateError::NotPermitted { doing, source } => write!(
                f,
                "{doing}: the database user may not change the schema ({}); apply the \
                 migrations once as a user that may create tables, or grant that privilege",
                db_message(source)
            ),
            MigrateError::ReadOnly { missing } => write!(
                f,
                "the database user may not write the task tables (missing: {missing}); \
                 a task store needs SELECT, INSERT, UPDATE and DELETE on them"
            ),
            MigrateError::Db { doing, source } => {
                write!(f, "{doing}: {}", db_message(source))
            }
        }
    }
}

impl std::error::Error for MigrateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MigrateError::NotPermitted { source, .. } | MigrateError::Db { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// The server's own message for a database error, else the client's.
fn db_message(err: &tokio_postgres::Error) -> String {
    crate::error::describe(err)
}

fn failed(doing: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> MigrateError {
    let doing = doing.into();
    move |source| {
        let refused = source.code().is_some_and(|c| {
            *c == SqlState::INSUFFICIENT_PRIVILEGE || *c == SqlState::READ_ONLY_SQL_TRANSACTION
        });
        if refused {
            MigrateError::NotPermitted { doing, source }
        } else {
            MigrateError::Db { doing, source }
        }
    }
}

/// The schema version recorded in the database (0 for none).
async fn current_version(client: &Client) -> Result<i64, MigrateError> {
    let row = client
        .query_one(
            "SELECT to_regclass('ta_schema_migrations') IS NOT NULL AS present",
            &[],
        )
        .await
        .map_err(failed("reading the schema version"))?;
    if !row.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM ta_schema_migrations",
            &[],
        )
        .await
        .map_err(failed("reading the schema version"))?;
    Ok(row.get(0))
}

/// Brings the schema up to date (under the advisory lock) and checks that the user may
/// write the tables. Returns the versions it applied.
pub async fn migrate(client: &mut Client) -> Result<Vec<i64>, MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed("taking the migration lock"))?;
    let applied = apply_missing(client).await;
    // Released with the session anyway; unlocking now lets the next host go on at once.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed("releasing the migration lock"));
    let applied = applied?;
    unlocked?;
    check_privileges(client).await?;
    Ok(applied)
}

async fn apply_missing(client: &mut Client) -> Result<Vec<i64>, MigrateError> {
    let current = current_version(client).await?;
    let known = latest();
    if current > known {
        return Err(MigrateError::Newer {
            found: current,
            known,
        });
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        let doing = format!(
            "applying migration {} ({})",
            migration.version, migration.name
        );
        let tx = client.transaction().await.map_err(failed(doing.clone()))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS ta_schema_migrations (
                 version    bigint PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(failed(doing.clone()))?;
        tx.batch_execute(migration.sql)
            .await
            .map_err(failed(doing.clone()))?;
        tx.execute(
            "INSERT INTO ta_schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(failed(doing.clone()))?;
        tx.commit().await.map_err(failed(doing))?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied schema migration"
        );
        applied.push(migration.version);
    }
    Ok(applied)
}

/// Refuses a user that may read the tables but not write them: every write would fail.
async fn check_privileges(client: &Client) -> Result<(), MigrateError> {
    let row = client
        .query_one(
            "SELECT array_to_string(array(
                 SELECT t || ':' || p
                 FROM unnest(ARRAY['ta_tasks', 'ta_request_ids']) AS t,
                      unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS p
                 WHERE NOT has_table_privilege(t, p)
             ) || CASE WHEN has_sequence_privilege('ta_task_version', 'USAGE')
                       THEN ARRAY[]::text[] ELSE ARRAY['ta_task_version:USAGE'] END, ', ')",
            &[],
        )
        .await
        .map_err(failed("checking the user's privileges"))?;
    let missing: String = row.get(0);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MigrateError::ReadOnly { missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_up_in_order() {
        for (n, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, n as i64 + 1, "{}", m.name);
        }
        assert_eq!(latest(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_newer_schema_says_to_upgrade_the_plugin() {
        let text = MigrateError::Newer { found: 7, known: 1 }.to_string();
        assert!(text.contains("version 7") && text.contains("upgrade the plugin"));
    }
}
