//! The database file: opening connections, recognising a file as ours, and the schema
//! with its ordered, embedded migrations.
//!
//! A file is ours when its `application_id` is [`APPLICATION_ID`]; its schema version is
//! `PRAGMA user_version`, the number of [`MIGRATIONS`] applied. At start-up a file is
//! refused, untouched, when it is not a SQLite database, is damaged (`PRAGMA
//! quick_check`), belongs to another application, or was written by a newer version of
//! this plugin. Nothing is written before those checks pass.

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::config::{Settings, PATH_VAR};

/// `PRAGMA application_id` of our files: "TASQ".
pub(crate) const APPLICATION_ID: i32 = 0x5441_5351;

/// The migrations, in order: the schema of version `n` is the first `n` applied. Append
/// new ones; never edit one that has shipped.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: tasks with their typed columns, the request-id index, and the ETag counter.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value NOT NULL
    );
    -- ETags are '<instance>-<counter>': the counter grows with every write to the
    -- database, the instance is random per database file, so no ETag ever repeats.
    INSERT INTO meta (key, value) VALUES
        ('etag_instance', lower(hex(randomblob(8)))),
        ('etag_counter', 0);

    CREATE TABLE tasks (
        task_id       TEXT PRIMARY KEY NOT NULL,
        -- The task's wire JSON, exactly as written.
        json          TEXT NOT NULL,
        session_id    TEXT NOT NULL,
        user_id       TEXT NOT NULL,
        -- TaskStatus::ordinal.
        status        INTEGER NOT NULL,
        -- created_at in microseconds since the epoch (UTC; a naive time read as UTC):
        -- the listing and lookup key.
        created_us    INTEGER NOT NULL,
        -- created_at and last_updated exactly as the task has them, for summaries
        -- without decoding the JSON: the wall-clock time as written (microseconds, as
        -- if UTC) and the offset in seconds (NULL for a naive time).
        created_local_us  INTEGER NOT NULL,
        created_offset_s  INTEGER,
        updated_local_us  INTEGER NOT NULL,
        updated_offset_s  INTEGER,
        item_count    INTEGER NOT NULL,
        -- The ETag counter of the last write.
        version       INTEGER NOT NULL,
        -- The store's clock at the last write, and when retention lets the task go.
        written_ms    INTEGER NOT NULL,
        expires_at_ms INTEGER
    );
    -- Listing order: newest created first, ties by task id descending.
    CREATE INDEX tasks_by_created ON tasks (created_us DESC, task_id DESC);
    CREATE INDEX tasks_by_session ON tasks (session_id, created_us DESC, task_id DESC);
    CREATE INDEX tasks_by_user ON tasks (user_id, created_us DESC, task_id DESC);
    CREATE INDEX tasks_by_expiry ON tasks (expires_at_ms) WHERE expires_at_ms IS NOT NULL;

    -- One row per distinct request id of a task; the key's order is the lookup's
    -- answer order (earliest created, then smallest task id).
    CREATE TABLE request_ids (
        request_id TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        task_id    TEXT NOT NULL,
        PRIMARY KEY (request_id, created_us, task_id)
    ) WITHOUT ROWID;
    CREATE INDEX request_ids_by_task ON request_ids (task_id);
    -- However a task goes (delete, purge, clear), its index entries go with it.
    CREATE TRIGGER tasks_drop_request_ids AFTER DELETE ON tasks BEGIN
        DELETE FROM request_ids WHERE task_id = old.task_id;
    END;
    "#,
];

/// The schema version this build writes and reads.
pub(crate) fn latest_version() -> i32 {
    i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX)
}

/// Whether a connection writes or only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Writer,
    Reader,
}

/// Opens a connection to an existing, prepared database with the store's settings.
pub(crate) fn connect(settings: &Settings, role: Role) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&settings.path, flags)?;
    // SQLite's own busy handler retries a locked statement until the timeout.
    conn.busy_timeout(settings.busy_timeout)?;
    conn.pragma_update(None, "synchronous", settings.synchronous.pragma())?;
    if role == Role::Reader {
        // A reader never writes, not even by mistake.
        conn.pragma_update(None, "query_only", true)?;
    }
    Ok(conn)
}

/// Opens the database at `settings.path` for writing: checks that it is ours (or empty),
/// turns on WAL, applies pending migrations, and returns the connection and the ETag
/// instance. The error names the file and the problem.
pub(crate) fn open(settings: &Settings) -> Result<(Connection, String), String> {
    let path = &settings.path;
    let fail = |problem: String| format!("{PATH_VAR}={:?}: {problem}", path.display());
    let conn = connect(settings, Role::Writer).map_err(|e| fail(describe(&e)))?;
    inspect(&conn).map_err(&fail)?;
    // WAL lets readers go on while the writer commits. A persistent setting of the file,
    // so it is made only once the file is known to be ours or empty.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| fail(describe(&e)))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(fail(format!(
            "cannot use write-ahead logging (journal mode stays {mode:?})"
        )));
    }
    migrate(&conn).map_err(&fail)?;
    let instance: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'etag_instance'",
            [],
            |row| row.get(0),
        )
        .map_err(|e| fail(format!("cannot read the ETag instance: {}", describe(&e))))?;
    Ok((conn, instance))
}

/// What a start-up error says about a SQLite error.
fn describe(err: &rusqlite::Error) -> String {
    match err.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => "not a SQLite database".to_owned(),
        Some(ErrorCode::DatabaseCorrupt) => format!("the database is damaged ({err})"),
        Some(ErrorCode::CannotOpen) => {
            format!("cannot open the file ({err}); does its directory exist?")
        }
        _ => err.to_string(),
    }
}

/// Refuses a file that is not ours, is newer, or is damaged; reads only.
fn inspect(conn: &Connection) -> Result<(), String> {
    let pragma = |name: &str| -> Result<i32, String> {
        conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .map_err(|e| describe(&e))
    };
    let application_id = pragma("application_id")?;
    let version = pragma("user_version")?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .map_err(|e| describe(&e))?;
    if application_id != APPLICATION_ID && (application_id != 0 || version != 0 || objects != 0) {
        return Err(format!(
            "a SQLite database of another application (application_id {application_id}, \
             user_version {version}, {objects} schema objects); it is left untouched"
        ));
    }
    if version > latest_version() {
        return Err(format!(
            "written by a newer version of the plugin (schema version {version}; this one \
             knows up to {}); it is left untouched",
            latest_version()
        ));
    }
    if objects > 0 {
        quick_check(conn)?;
    }
    Ok(())
}

/// `PRAGMA quick_check`: reads every page once and checks the b-trees' structure.
fn quick_check(conn: &Connection) -> Result<(), String> {
    let damaged = |detail: String| format!("the database is damaged: {detail}");
    let mut stmt = conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(|e| damaged(e.to_string()))?;
    let lines: Vec<String> = stmt
        .query_map([], |row| row.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| damaged(e.to_string()))?;
    if lines.len() == 1 && lines[0] == "ok" {
        Ok(())
    } else {
        Err(damaged(lines.join("; ")))
    }
}

/// Applies the migrations the file lacks, in one transaction that holds the write lock
/// (so two processes starting on one new file do not both migrate it).
fn migrate(conn: &Connection) -> Result<(), String> {
    let err = |e: rusqlite::Error| format!("cannot apply the schema: {}", describe(&e));
    // Plain statements rather than rusqlite's `Transaction`, which needs `&mut`.
    conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
    let applied = (|| {
        // Read again under the lock: another process may have migrated meanwhile.
        inspect_versions(conn)?;
        let version: i32 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(err)?;
        let from = usize::try_from(version).unwrap_or(0);
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(from) {
            conn.execute_batch(sql)
                .map_err(|e| format!("migration {}: {}", index + 1, describe(&e)))?;
            tracing::info!(version = index + 1, "applied a schema migration");
        }
        if from < MIGRATIONS.len() {
            conn.execute_batch(&format!(
                "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {};",
                latest_version()
            ))
            .map_err(err)?;
        }
        Ok(())
    })();
    match applied {
        Ok(()) => conn.execute_batch("COMMIT").map_err(err),
        Err(e) => {
            // Nothing of a failed migration stays; the error says why.
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// [`inspect`] without the page check, for use under the lock.
fn inspect_versions(conn: &Connection) -> Result<(), String> {
    let err = |e: rusqlite::Error| describe(&e);
    let application_id: i32 = conn
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(err)?;
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(err)?;
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(format!(
            "a SQLite database of another application (application_id {application_id})"
        ));
    }
    if version > latest_version() {
        return Err(format!(
            "written by a newer version of the plugin (schema version {version})"
        ));
    }
    Ok(())
}
