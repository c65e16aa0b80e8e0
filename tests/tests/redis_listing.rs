//! The Redis plugin's listing, retention and reindex against a real `redis-server`:
//! walks with writers running compared with what was stored, each filter, tampered
//! cursors, stale entries pruned, real TTLs from a retention policy (never shortening
//! another task's index key), purge, and a reindex of tasks a Python writer stored.
//!
//! The store is the plugin crate's own type, in-process (the listing operations are
//! called on it directly); writes also go through it, with the same scripts the loaded
//! library runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use redis::Commands as _;
use ta_persistence_api::ffi::{FromConfig as _, PluginConfig};
use ta_persistence_api::listing::{Cursor, ListKey, Page, PageRequest, TaskFilter, TaskSummary};
use ta_persistence_api::{
    AgentTask, DocumentStore as _, ErrorKind, TaskDocument, TaskPersistenceManager, TaskStatus,
    Timestamp,
};
use ta_persistence_tests::redis_server::{python_index_key, python_task_key, RedisServer};
use ta_plugin_redis::RedisTaskPersistenceManager;

const SESSIONS: [&str; 3] = ["s-a", "s-b", "s:c ü"];
const USERS: [&str; 4] = ["u1", "u2", "u3", "u4"];
const STATUSES: [TaskStatus; 5] = [
    TaskStatus::Running,
    TaskStatus::Paused,
    TaskStatus::Completed,
    TaskStatus::Failed,
    TaskStatus::Canceled,
];

fn store(server: &RedisServer, extra: &[(&str, &str)]) -> Arc<RedisTaskPersistenceManager> {
    let config = PluginConfig::new(server.vars_with(extra));
    Arc::new(RedisTaskPersistenceManager::from_config(&config).expect("the store connects"))
}

/// Task `n`: spread over sessions, users and statuses; created times repeat (ties go to
/// the id) and reach before 1970.
fn task(n: usize) -> AgentTask {
    let created = Timestamp::parse(&format!(
        "{}-03-01T12:00:00.{:06}",
        1940 + n % 97,
        (n % 3) * 1000
    ))
    .expect("a time");
    let mut task = AgentTask::new(
        format!("task-{n:05}"),
        SESSIONS[n % SESSIONS.len()],
        USERS[n % USERS.len()],
        created,
    );
    task.status = STATUSES[n % STATUSES.len()];
    task
}

/// Every page of a listing, checking each page's order and size on the way.
async fn walk(
    store: &RedisTaskPersistenceManager,
    filter: &TaskFilter,
    size: u32,
) -> Vec<TaskSummary> {
    let mut out: Vec<TaskSummary> = Vec::new();
    let mut request = PageRequest::new(size).expect("a valid page size");
    loop {
        let page: Page = store.list(filter, &request).await.expect("a page");
        assert!(page.tasks.len() <= size as usize);
        for summary in &page.tasks {
            assert!(
                filter.matches_summary(summary),
                "{summary:?} for {filter:?}"
            );
            if let Some(last) = out.last() {
                assert!(
                    last.key() < summary.key(),
                    "listing order: {last:?} then {summary:?}"
                );
            }
            out.push(summary.clone());
        }
        match page.next {
            Some(next) => {
                assert_eq!(
                    page.tasks.len(),
                    size as usize,
                    "only a full page has a next"
                );
                request = PageRequest::new(size)
                    .expect("a valid page size")
                    .after(next);
            }
            None => return out,
        }
    }
}

fn filters() -> Vec<TaskFilter> {
    vec![
        TaskFilter::all(),
        TaskFilter::all().session(SESSIONS[1]),
        TaskFilter::all().session(SESSIONS[2]),
        TaskFilter::all().user(USERS[3]),
        TaskFilter::all().session(SESSIONS[0]).user(USERS[0]),
        TaskFilter::all().statuses([TaskStatus::Completed, TaskStatus::Paused]),
        TaskFilter::all()
            .user(USERS[1])
            .statuses([TaskStatus::Failed, TaskStatus::Running]),
        TaskFilter::all().session("nobody"),
        TaskFilter::all().statuses([]),
    ]
}

fn expected(stored: &BTreeMap<String, AgentTask>, filter: &TaskFilter) -> Vec<TaskSummary> {
    let mut out: Vec<TaskSummary> = stored
        .values()
        .filter(|t| filter.matches_task(t))
        .map(TaskSummary::of_task)
        .collect();
    out.sort_by_key(TaskSummary::key);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walks_with_writers_running_return_each_stable_task_once() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = store(&server, &[("TA_REDIS_TTL", "0")]);
    // Stable tasks: 0..240, kept for the whole walk. Volatile: 1000.., created, updated
    // and deleted while the walks run.
    let mut stored = BTreeMap::new();
    for n in 0..240 {
        let t = task(n);
        store.create(t.clone()).await.unwrap();
        stored.insert(t.task_id.clone(), t);
    }
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for round in 0..600usize {
                let n = 1000 + round;
                store.create(task(n)).await.unwrap();
                // A stable task rewritten in place (same created_at, session, user,
                // status): it stays where it is.
                let mut again = task(round % 240);
                again.last_updated =
                    Timestamp::parse(&format!("2030-01-01T00:00:{:02}", round % 60)).unwrap();
                store.update(again).await.unwrap();
                if round >= 3 {
                    store.delete(&task(n - 3).task_id).await.unwrap();
                }
                tokio::task::yield_now().await;
            }
        })
    };
    for filter in filters() {
        for size in [1, 7, 100] {
            let listed = walk(&store, &filter, size).await;
            let ids: Vec<&str> = listed.iter().map(|s| s.task_id.as_str()).collect();
            let distinct: BTreeSet<&str> = ids.iter().copied().collect();
            assert_eq!(distinct.len(), ids.len(), "a task listed twice: {filter:?}");
            let stable: Vec<&str> = ids
                .iter()
                .copied()
                .filter(|id| stored.contains_key(*id))
                .collect();
            let want: Vec<String> = expected(&stored, &filter)
                .into_iter()
                .map(|s| s.task_id)
                .collect();
            assert_eq!(stable, want, "stable tasks of {filter:?}, pages of {size}");
        }
    }
    writer.await.unwrap();
    // Writers done: every listing is exactly what is stored.
    for n in 1000..1600 {
        if store.load(&task(n).task_id).await.unwrap().is_some() {
            stored.insert(task(n).task_id.clone(), task(n));
        }
    }
    assert_eq!(stored.len(), 243);
    for filter in filters() {
        let listed = walk(&store, &filter, 50).await;
        let want = expected(&stored, &filter);
        let keys = |v: &[TaskSummary]| v.iter().map(TaskSummary::key).collect::<Vec<ListKey>>();
        assert_eq!(keys(&listed), keys(&want), "{filter:?}");
        for (got, want) in listed.iter().zip(&want) {
            assert_eq!(
                (&got.session_id, &got.user_id, got.status, got.item_count),
                (
                    &want.session_id,
                    &want.user_id,
                    want.status,
                    want.item_count
                )
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_that_were_tampered_with_are_invalid_input() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = store(&server, &[]);
    for n in 0..12 {
        store.create(task(n)).await.unwrap();
    }
    let filter = TaskFilter::all().user(USERS[0]);
    let first = store
        .list(&filter, &PageRequest::new(1).unwrap())
        .await
        .unwrap();
    let cursor = first.next.expect("more than one page");
    let text = cursor.as_str().to_owned();
    let mut flipped = text.clone().into_bytes();
    let at = flipped.len() / 2;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    let tampered = [
        String::from_utf8(flipped).unwrap(),
        text[..text.len() - 3].to_owned(),
        format!("{text}A"),
        format!("2{}", &text[1..]),
        String::new(),
        "not a cursor".to_owned(),
    ];
    for bad in tampered {
        let err = store
            .list(
                &filter,
                &PageRequest::new(1)
                    .unwrap()
                    .after(Cursor::from_string(bad.clone())),
            )
            .await
            .expect_err("a tampered cursor is refused");
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidInput,
            "{bad:?}: {}",
            err.report()
        );
    }
    // The cursor is valid for its own filter only.
    let other = TaskFilter::all().user(USERS[1]);
    let err = store
        .list(&other, &PageRequest::new(1).unwrap().after(cursor.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let page = store
        .list(&filter, &PageRequest::new(50).unwrap().after(cursor))
        .await
        .unwrap();
    assert_eq!(
        page.tasks.len(),
        2,
        "12 tasks, 3 of user u1, one already listed"
    );
    for size in [0, 1001] {
        let err = store
            .list(&filter, &PageRequest::from_parts(size, None))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "size {size}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_tasks_gone_or_moved_by_another_writer_are_skipped_and_pruned() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = store(&server, &[]);
    let mut conn = server.conn();
    for n in 0..30 {
        store.create(task(n)).await.unwrap();
    }
    // Ten tasks vanish behind the store's back (expiry, or a Python writer's delete).
    for n in 0..10 {
        let _: () = conn.del(python_task_key(&task(n).task_id)).unwrap();
    }
    // A Python writer moves task 10 to another session (same id, same created_at).
    let mut moved = task(10);
    moved.session_id = "moved".into();
    let _: () = conn
        .set(
            python_task_key(&moved.task_id),
            TaskDocument::from_task(&moved).json(),
        )
        .unwrap();
    let old_session = TaskFilter::all().session(task(10).session_id);
    let listed = walk(&store, &old_session, 3).await;
    assert!(listed.iter().all(|s| s.task_id != moved.task_id));
    assert!(listed.iter().all(|s| s.session_id == task(10).session_id));
    let all = walk(&store, &TaskFilter::all(), 4).await;
    assert_eq!(all.len(), 20);
    assert_eq!(
        all.iter()
            .find(|s| s.task_id == moved.task_id)
            .unwrap()
            .session_id,
        "moved",
        "the global index lists the task as it is now"
    );
    // The walks pruned what they skipped: the global index holds the 20 tasks, the
    // entries hash their records, the old session no entry of the moved task.
    assert_eq!(
        conn.zcard::<_, u64>("task_persistence:listing:all")
            .unwrap(),
        20
    );
    assert_eq!(
        conn.hlen::<_, u64>("task_persistence:listing:entries")
            .unwrap(),
        20
    );
    let session_key = format!("task_persistence:listing:session:{}", task(10).session_id);
    let left: u64 = conn.zcard(&session_key).unwrap();
    assert_eq!(left as usize, listed.len());
}

fn pttl(conn: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(conn).expect("PTTL")
}

/// Every key a task of session `session-r`, user `user-r`, request `req-r` is in.
fn index_keys(request: &str) -> [String; 4] {
    [
        "task_persistence:listing:all".to_owned(),
        "task_persistence:listing:session:session-r".to_owned(),
        "task_persistence:listing:user:user-r".to_owned(),
        python_index_key(request),
    ]
}

fn retained(id: &str, request: &str, status: TaskStatus) -> AgentTask {
    let mut t =
        ta_persistence_tests::redis_server::sample_task(id, "2025-03-01T00:00:00", &[request]);
    t.session_id = "session-r".into();
    t.user_id = "user-r".into();
    t.status = status;
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_gives_finished_tasks_their_age_and_never_shortens_an_index_key() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = store(
        &server,
        &[
            ("TA_REDIS_TTL", "0"),
            ("TA_PERSISTENCE_RETENTION", "completed=1s,failed=1h"),
        ],
    );
    let mut conn = server.conn();

    // A running task: no TTL anywhere.
    store
        .create(retained("keep", "req-k", TaskStatus::Running))
        .await
        .unwrap();
    assert_eq!(pttl(&mut conn, &python_task_key("keep")), -1);
    // A task that completes: 1 s on its key. The indexes it shares with the running
    // task keep no TTL; its own request-id set gets its 1 s.
    store
        .create(retained("done", "req-d", TaskStatus::Running))
        .await
        .unwrap();
    store
        .update(retained("done", "req-d", TaskStatus::Completed))
        .await
        .unwrap();
    let left = pttl(&mut conn, &python_task_key("done"));
    assert!((1..=1000).contains(&left), "{left}");
    for key in &index_keys("req-d")[..3] {
        assert_eq!(
            pttl(&mut conn, key),
            -1,
            "{key} holds a task without expiry"
        );
    }
    // Its own request-id set held it without expiry, and keeps none: a script cannot
    // tell whether another task in a key needs it to last, so it never shortens one.
    assert_eq!(pttl(&mut conn, &python_index_key("req-d")), -1);
    // Back to running: the task loses its TTL again.
    store
        .update(retained("done", "req-d", TaskStatus::Running))
        .await
        .unwrap();
    assert_eq!(pttl(&mut conn, &python_task_key("done")), -1);
    // A task created completed gives its new set its own TTL.
    store
        .create(retained("brief", "req-b", TaskStatus::Completed))
        .await
        .unwrap();
    let own = pttl(&mut conn, &python_index_key("req-b"));
    assert!((1..=1000).contains(&own), "{own}");

    // A failed task (1 h) and a completed one (1 s) share a request id: the set keeps
    // the longer TTL whichever is written last.
    store
        .create(retained("f", "req-s", TaskStatus::Failed))
        .await
        .unwrap();
    store
        .create(retained("c", "req-s", TaskStatus::Completed))
        .await
        .unwrap();
    let shared = pttl(&mut conn, &python_index_key("req-s"));
    assert!(shared > 3_000_000, "not shortened to 1 s: {shared}");

    // The completed ones expire: gone from every read, listing and lookup.
    store
        .update(retained("done", "req-d", TaskStatus::Completed))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(store.load("done").await.unwrap(), None);
    assert_eq!(store.load_by_request_id("req-d").await.unwrap(), None);
    assert_eq!(
        store
            .load_by_request_id("req-s")
            .await
            .unwrap()
            .unwrap()
            .task_id,
        "f"
    );
    let err = store
        .update(retained("done", "req-d", TaskStatus::Completed))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let ids: Vec<String> = walk(&store, &TaskFilter::all().session("session-r"), 10)
        .await
        .into_iter()
        .map(|s| s.task_id)
        .collect();
    assert_eq!(ids, ["keep", "f"]);
    // The running task is still listed by its user; the shared keys never expired.
    assert_eq!(
        walk(&store, &TaskFilter::all().user("user-r"), 1)
            .await
            .len(),
        2
    );
    // A create of the expired id succeeds and is listed once.
    store
        .create(retained("done", "req-d", TaskStatus::Running))
        .await
        .unwrap();
    let ids: Vec<String> = walk(&store, &TaskFilter::all(), 2)
        .await
        .into_iter()
        .map(|s| s.task_id)
        .collect();
    assert_eq!(ids, ["keep", "f", "done"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_keys_outlive_every_task_they_hold() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    // Tasks live 60 s (TA_REDIS_TTL); completed ones 1 s.
    let store = store(
        &server,
        &[
            ("TA_REDIS_TTL", "60"),
            ("TA_PERSISTENCE_RETENTION", "completed=1s"),
        ],
    );
    let mut conn = server.conn();
    store
        .create(retained("long", "req-l", TaskStatus::Paused))
        .await
        .unwrap();
    store
        .create(retained("short", "req-l", TaskStatus::Completed))
        .await
        .unwrap();
    for key in index_keys("req-l") {
        let left = pttl(&mut conn, &key);
        assert!(left > 59_000, "{key}: {left} must cover the 60 s task");
    }
    // A key with a shorter TTL is pushed back by a longer-lived task.
    let _: () = conn
        .pexpire("task_persistence:listing:user:user-r", 5_000)
        .unwrap();
    store
        .update(retained("long", "req-l", TaskStatus::Paused))
        .await
        .unwrap();
    assert!(pttl(&mut conn, "task_persistence:listing:user:user-r") > 59_000);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let listed = walk(&store, &TaskFilter::all().user("user-r"), 5).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].task_id, "long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_sweeps_entries_of_expired_tasks_and_reports_none_removed_by_itself() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = store(
        &server,
        &[
            ("TA_REDIS_TTL", "0"),
            ("TA_PERSISTENCE_RETENTION", "canceled=1s"),
        ],
    );
    let mut conn = server.conn();
    for n in 0..1200 {
        let mut t = task(n);
        if n % 2 == 0 {
            t.status = TaskStatus::Canceled;
        } else if t.status == TaskStatus::Canceled {
            t.status = TaskStatus::Running;
        }
        store.create(t).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // Redis removed the 600 canceled tasks itself: purge has none left to delete, and
    // sweeps the entries they left in every index (more than one batch of them).
    assert_eq!(store.purge().await.unwrap(), 0);
    assert_eq!(
        conn.zcard::<_, u64>("task_persistence:listing:all")
            .unwrap(),
        600
    );
    assert_eq!(
        conn.hlen::<_, u64>("task_persistence:listing:entries")
            .unwrap(),
        600
    );
    let mut left = 0;
    for s in SESSIONS {
        left += conn
            .zcard::<_, u64>(format!("task_persistence:listing:session:{s}"))
            .unwrap();
    }
    for u in USERS {
        left += conn
            .zcard::<_, u64>(format!("task_persistence:listing:user:{u}"))
            .unwrap();
    }
    assert_eq!(
        left, 1200,
        "600 tasks, each in one session and one user index"
    );
    assert_eq!(walk(&store, &TaskFilter::all(), 1000).await.len(), 600);
}

/// Stores a task as the Python original does: its document and its request-id sets,
/// no listing entries.
fn python_write(conn: &mut redis::Connection, task: &AgentTask) {
    let _: () = conn
        .set(
            python_task_key(&task.task_id),
            TaskDocument::from_task(task).json(),
        )
        .expect("SET");
    for request_id in task.request_ids() {
        let _: () = conn
            .sadd(python_index_key(request_id), &task.task_id)
            .expect("SADD");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_lists_what_python_writers_stored_while_writers_run() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = store(&server, &[("TA_REDIS_TTL", "0")]);
    let mut conn = server.conn();
    let mut stored = BTreeMap::new();
    for n in 0..700 {
        let mut t = task(n);
        t.items = ta_persistence_tests::redis_server::sample_task(
            &t.task_id,
            "2025-01-01T00:00:00",
            &[format!("req-{n}").as_str()],
        )
        .items;
        python_write(&mut conn, &t);
        stored.insert(t.task_id.clone(), t);
    }
    assert!(walk(&store, &TaskFilter::all(), 100).await.is_empty());
    // A stale entry of a task that is gone, for the reindex to sweep.
    store.create(task(5000)).await.unwrap();
    let _: () = conn.del(python_task_key(&task(5000).task_id)).unwrap();

    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut kept = Vec::new();
            for n in 2000..2150 {
                store.create(task(n)).await.unwrap();
                if n % 3 == 0 {
                    store.delete(&task(n).task_id).await.unwrap();
                } else {
                    kept.push(task(n));
                }
                // Python-stored tasks rewritten by this store meanwhile.
                let mut t = task(n - 2000);
                t.status = TaskStatus::Completed;
                store.update(t).await.unwrap();
            }
            kept
        })
    };
    let report = store.reindex().await.unwrap();
    let kept = writer.await.unwrap();
    assert!(report.scanned >= 700, "{report:?}");
    assert_eq!(report.unreadable + report.wrong_type, 0, "{report:?}");
    assert!(report.indexed >= 700 - 150, "{report:?}");
    for n in 0..150 {
        stored.get_mut(&task(n).task_id).unwrap().status = TaskStatus::Completed;
    }
    for t in kept {
        stored.insert(t.task_id.clone(), t);
    }
    for filter in filters() {
        let listed = walk(&store, &filter, 64).await;
        let want = expected(&stored, &filter);
        assert_eq!(
            listed.iter().map(TaskSummary::key).collect::<Vec<_>>(),
            want.iter().map(TaskSummary::key).collect::<Vec<_>>(),
            "{filter:?}"
        );
    }
    assert_eq!(
        conn.hlen::<_, u64>("task_persistence:listing:entries")
            .unwrap() as usize,
        stored.len(),
        "one record per task; the gone task's swept"
    );
    // The request-id index reaches the Python tasks, and a second reindex changes nothing.
    assert_eq!(
        store
            .load_by_request_id("req-600")
            .await
            .unwrap()
            .unwrap()
            .task_id,
        task(600).task_id
    );
    let again = store.reindex().await.unwrap();
    assert!(again.indexed as usize >= stored.len(), "{again:?}");
    assert_eq!((again.pruned, again.changed), (0, 0), "{again:?}");
    assert_eq!(
        conn.hlen::<_, u64>("task_persistence:listing:entries")
            .unwrap() as usize,
        stored.len()
    );
}
