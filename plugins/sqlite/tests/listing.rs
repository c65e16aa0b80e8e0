//! Listing and retention: keyset pages in listing order from the typed columns, filters,
//! and expiry. Time is moved by ageing rows in the file (the store's clock is the
//! system's), never by sleeping.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ta_persistence_api::listing::{PageRequest, TaskFilter, TaskSummary};
use ta_persistence_api::retention::RetentionPolicy;
use ta_persistence_api::{AgentTask, ErrorKind, TaskPersistenceManager, TaskStatus, Timestamp};
use ta_plugin_sqlite::{Settings, SqliteTaskPersistenceManager};

fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "sqlite-listing-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test setup");
    dir.join("tasks.db")
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).expect("test setup")
}

fn task(id: &str, session: &str, user: &str, created: &str, status: TaskStatus) -> AgentTask {
    let mut task = AgentTask::new(id, session, user, at(created));
    task.status = status;
    task
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("test setup")
        .as_millis() as i64
}

/// Every page of a listing, walked by cursor.
async fn walk(
    store: &SqliteTaskPersistenceManager,
    filter: &TaskFilter,
    size: u32,
) -> Vec<TaskSummary> {
    let mut all = Vec::new();
    let mut request = PageRequest::new(size).expect("test setup");
    loop {
        let page = store
            .list_tasks(filter, &request)
            .await
            .expect("test setup");
        assert!(page.tasks.len() <= size as usize);
        all.extend(page.tasks);
        match page.next {
            Some(cursor) => request = PageRequest::new(size).expect("test setup").after(cursor),
            None => return all,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_come_in_listing_order_with_exact_summaries_and_filters() {
    let store = SqliteTaskPersistenceManager::open(Settings::new(scratch("order"))).unwrap();
    let mut tasks = vec![
        // Same instant written three ways: ties go by task id, descending.
        task("a", "s1", "u1", "2025-01-01T10:00:00Z", TaskStatus::Running),
        task(
            "b",
            "s1",
            "u2",
            "2025-01-01T12:00:00+02:00",
            TaskStatus::Completed,
        ),
        task("c", "s2", "u1", "2025-01-01T10:00:00", TaskStatus::Failed),
        task(
            "d",
            "s2",
            "u2",
            "2025-01-02T00:00:00.000001-05:30",
            TaskStatus::Paused,
        ),
        task(
            "e",
            "s1",
            "u1",
            "2024-12-31T23:59:59.999999Z",
            TaskStatus::Canceled,
        ),
    ];
    tasks[1].last_updated = at("2025-01-03T08:00:00.5+01:00");
    for t in &tasks {
        store.create(t.clone()).await.unwrap();
    }
    let mut expected: Vec<TaskSummary> = tasks.iter().map(TaskSummary::of_task).collect();
    expected.sort_by_key(TaskSummary::key);
    let ids: Vec<&str> = expected.iter().map(|s| s.task_id.as_str()).collect();
    assert_eq!(ids, ["d", "c", "b", "a", "e"]);
    for size in [1, 2, 3, 100] {
        assert_eq!(
            walk(&store, &TaskFilter::all(), size).await,
            expected,
            "size {size}"
        );
    }
    let only = |f: &dyn Fn(&TaskSummary) -> bool| -> Vec<TaskSummary> {
        expected.iter().filter(|s| f(s)).cloned().collect()
    };
    for filter in [
        TaskFilter::all().session("s1"),
        TaskFilter::all().user("u2"),
        TaskFilter::all().session("s2").user("u1"),
        TaskFilter::all().statuses([TaskStatus::Completed, TaskStatus::Failed]),
        TaskFilter::all()
            .session("s1")
            .statuses([TaskStatus::Running]),
        TaskFilter::all().session("nobody"),
    ] {
        let want = only(&|s| filter.matches_summary(s));
        assert_eq!(walk(&store, &filter, 1).await, want, "{filter:?}");
    }
    // A cursor of one filter is refused by another.
    let first = store
        .list_tasks(&TaskFilter::all(), &PageRequest::new(1).unwrap())
        .await
        .unwrap();
    let cursor = first.next.unwrap();
    let err = store
        .list_tasks(
            &TaskFilter::all().session("s1"),
            &PageRequest::new(1).unwrap().after(cursor),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_sets_expiry_on_the_stores_clock_and_expired_tasks_are_gone() {
    let path = scratch("retention");
    let policy = RetentionPolicy::parse("completed=1h,failed=2d").unwrap();
    let store = SqliteTaskPersistenceManager::open(Settings::new(&path).retention(policy)).unwrap();
    let mut done = task(
        "done",
        "s",
        "u",
        "2025-01-01T00:00:00Z",
        TaskStatus::Completed,
    );
    done.items.push(ta_persistence_api::AgentTaskItem::new(
        "done",
        "req-done",
        ta_persistence_api::Role::User,
        ta_persistence_api::MultiModalItem::text("hi"),
        at("2025-01-01T00:00:00Z"),
    ));
    let running = task(
        "running",
        "s",
        "u",
        "2025-01-01T00:00:01Z",
        TaskStatus::Running,
    );
    let before = now_ms();
    store.create(done.clone()).await.unwrap();
    store.create(running.clone()).await.unwrap();
    let after = now_ms();

    let db = rusqlite::Connection::open(&path).unwrap();
    let expiry = |id: &str| -> Option<i64> {
        db.query_row(
            "SELECT expires_at_ms FROM tasks WHERE task_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    };
    let hour = Duration::from_secs(3600).as_millis() as i64;
    let e = expiry("done").unwrap();
    assert!(
        e >= before + hour && e <= after + hour,
        "{e} not within an hour of the write"
    );
    assert_eq!(expiry("running"), None);

    // Moving it back to Running clears the expiry; to Completed sets it again.
    let mut back = done.clone();
    back.status = TaskStatus::Running;
    store.update(back).await.unwrap();
    assert_eq!(expiry("done"), None);
    store.update(done.clone()).await.unwrap();
    assert!(expiry("done").is_some());

    // An hour later (the row aged in the file): gone from every read.
    db.execute(
        "UPDATE tasks SET expires_at_ms = ?1 WHERE task_id = 'done'",
        [now_ms() - 1],
    )
    .unwrap();
    assert_eq!(store.load("done").await.unwrap(), None);
    assert!(store.load_with_etag("done").await.unwrap().is_none());
    assert_eq!(store.load_by_request_id("req-done").await.unwrap(), None);
    assert_eq!(
        store.update(done.clone()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.delete("done").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let listed = walk(&store, &TaskFilter::all(), 10).await;
    assert_eq!(listed, vec![TaskSummary::of_task(&running)]);

    // The purge deletes the row and its index entries; the live task stays.
    assert_eq!(store.purge().await.unwrap(), 1);
    assert_eq!(store.purge().await.unwrap(), 0);
    let rows: i64 = db
        .query_row(
            "SELECT count(*) FROM request_ids WHERE task_id = 'done'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0);
    assert!(store.load("running").await.unwrap().is_some());

    // A create of an expired task's id succeeds, also before a purge.
    store.create(done.clone()).await.unwrap();
    db.execute(
        "UPDATE tasks SET expires_at_ms = ?1 WHERE task_id = 'done'",
        [now_ms() - 1],
    )
    .unwrap();
    store.create(done.clone()).await.unwrap();
    assert_eq!(store.load("done").await.unwrap(), Some(done));
    assert_eq!(
        store
            .load_by_request_id("req-done")
            .await
            .unwrap()
            .map(|t| t.task_id),
        Some("done".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_of_many_expired_tasks_goes_in_batches_and_misses_none() {
    let path = scratch("purge");
    let policy = RetentionPolicy::parse("canceled=1d").unwrap();
    let store = std::sync::Arc::new(
        SqliteTaskPersistenceManager::open(Settings::new(&path).retention(policy)).unwrap(),
    );
    // Created concurrently, so they share commits.
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..2_500 {
        let t = task(
            &format!("t{i}"),
            "s",
            "u",
            "2025-01-01T00:00:00Z",
            TaskStatus::Canceled,
        );
        let store = std::sync::Arc::clone(&store);
        creates.spawn(async move { store.create(t).await });
    }
    while let Some(created) = creates.join_next().await {
        created.unwrap().unwrap();
    }
    store
        .create(task(
            "kept",
            "s",
            "u",
            "2025-01-01T00:00:00Z",
            TaskStatus::Canceled,
        ))
        .await
        .unwrap();
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute(
        "UPDATE tasks SET expires_at_ms = 0 WHERE task_id != 'kept'",
        [],
    )
    .unwrap();
    assert_eq!(store.purge().await.unwrap(), 2_500);
    let left: i64 = db
        .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 1);
}
