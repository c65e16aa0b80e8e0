//! Another connection holding the database's write lock: the store retries within its
//! busy timeout, then fails `Unavailable` with nothing applied; reads go on meanwhile.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ta_persistence_api::{AgentTask, ErrorKind, TaskPersistenceManager, Timestamp};
use ta_plugin_sqlite::{Settings, SqliteTaskPersistenceManager};

fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "sqlite-locking-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test setup");
    dir.join("tasks.db")
}

fn task(id: &str) -> AgentTask {
    AgentTask::new(id, "s", "u", Timestamp::now_utc())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_past_the_busy_timeout_is_unavailable_with_nothing_applied() {
    let path = scratch("held");
    let settings = Settings::new(&path).busy_timeout(Duration::from_millis(100));
    let store = SqliteTaskPersistenceManager::open(settings).unwrap();
    store.create(task("before")).await.unwrap();

    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    for result in [
        store.create(task("blocked")).await,
        store.update(task("before")).await,
        store.delete("before").await,
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(!err.is_outcome_unknown(), "{err}");
        assert!(err.report().contains("busy timeout"), "{}", err.report());
    }
    // Readers do not wait for the writer's lock.
    assert!(store.load("before").await.unwrap().is_some());
    holder.execute_batch("ROLLBACK").unwrap();

    assert!(store.load("blocked").await.unwrap().is_none());
    store.create(task("blocked")).await.unwrap();
    assert!(store.load("blocked").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_released_within_the_busy_timeout_is_waited_for() {
    let path = scratch("released");
    let settings = Settings::new(&path).busy_timeout(Duration::from_secs(30));
    let store = SqliteTaskPersistenceManager::open(settings).unwrap();

    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        holder.execute_batch("COMMIT").unwrap();
    });
    store.create(task("waited")).await.unwrap();
    release.join().unwrap();
    assert!(store.load("waited").await.unwrap().is_some());
}
