//! Start-up on files that are not a store of this version: each is refused with an error
//! naming the file and the problem, and left byte for byte as it was.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ta_persistence_api::{AgentTask, TaskPersistenceManager, Timestamp};
use ta_plugin_sqlite::{Settings, SqliteTaskPersistenceManager};

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "sqlite-startup-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test setup");
    dir
}

/// Opening `path` fails; returns the message after checking it names the file and that
/// the file is unchanged.
fn refused(path: &Path) -> String {
    let before = std::fs::read(path).expect("test setup");
    let Err(err) = SqliteTaskPersistenceManager::open(Settings::new(path)) else {
        panic!("{} was opened", path.display());
    };
    let message = err.to_string();
    assert!(message.contains("TA_SQLITE_PATH"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert_eq!(
        std::fs::read(path).expect("test setup"),
        before,
        "the file was changed"
    );
    message
}

/// A store at `path` with `n` tasks written and closed again.
fn store_with_tasks(path: &Path, n: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("test setup");
    runtime.block_on(async {
        let store = SqliteTaskPersistenceManager::open(Settings::new(path)).expect("test setup");
        for i in 0..n {
            let task = AgentTask::new(format!("t-{i}"), "s", "u", Timestamp::now_utc());
            store.create(task).await.expect("test setup");
        }
    });
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let path = scratch("foreign-text").join("notes.db");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(200)).unwrap();
    let message = refused(&path);
    assert!(message.contains("not a SQLite database"), "{message}");
}

#[test]
fn a_database_of_another_application_is_refused() {
    let path = scratch("foreign-db").join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT);")
        .unwrap();
    drop(conn);
    let message = refused(&path);
    assert!(message.contains("another application"), "{message}");

    // Also one that marks itself as another application's, with no tables yet.
    let path = scratch("foreign-id").join("marked.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA application_id = 42;").unwrap();
    drop(conn);
    let message = refused(&path);
    assert!(message.contains("application_id 42"), "{message}");
}

#[test]
fn a_database_of_a_newer_schema_is_refused() {
    let path = scratch("newer").join("tasks.db");
    store_with_tasks(&path, 3);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 99;").unwrap();
    drop(conn);
    let message = refused(&path);
    assert!(message.contains("newer version"), "{message}");
    assert!(message.contains("schema version 99"), "{message}");
}

#[test]
fn a_damaged_database_is_refused() {
    let path = scratch("damaged").join("tasks.db");
    store_with_tasks(&path, 400);
    // Fold the log into the main file, so the damage below is all there is to read.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    assert!(
        bytes.len() > 8 * page,
        "the database has {} bytes",
        bytes.len()
    );
    // Overwrite pages 3 to 5 (b-tree pages of the tables and indexes) with garbage.
    for b in &mut bytes[2 * page..5 * page] {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let message = refused(&path);
    assert!(message.contains("damaged"), "{message}");
}

#[test]
fn a_truncated_database_is_refused() {
    let path = scratch("truncated").join("tasks.db");
    store_with_tasks(&path, 400);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let message = refused(&path);
    assert!(message.contains("damaged"), "{message}");
}

#[test]
fn an_empty_file_becomes_a_store_and_a_store_opens_again() {
    let path = scratch("empty").join("tasks.db");
    std::fs::write(&path, b"").unwrap();
    store_with_tasks(&path, 2);
    // Opened again, the same file is accepted and keeps its tasks.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteTaskPersistenceManager::open(Settings::new(&path)).unwrap();
        assert!(store.load("t-1").await.unwrap().is_some());
    });
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let path = scratch("missing").join("no-such-dir").join("tasks.db");
    let Err(err) = SqliteTaskPersistenceManager::open(Settings::new(&path)) else {
        panic!("a database in a missing directory was opened");
    };
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("cannot open"), "{message}");
}
