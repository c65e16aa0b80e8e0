//! The plugin linked in process (not through the boundary) against a real Postgres: the
//! whole conformance suite, listing and purge included, the retention cases, and
//! retention's own behaviour: an expired task is gone from every read at once, stays a
//! row until a purge deletes it in bounded batches, and the background sweeper purges by
//! itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ta_persistence_api::conformance::retention::SUITE_POLICY;
use ta_persistence_api::conformance::{cases, retention_cases, run_retention_suite, run_suite};
use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::listing::{PageRequest, TaskFilter};
use ta_persistence_api::retention::RETENTION_VAR;
use ta_persistence_api::{
    AgentTask, AgentTaskItem, DocumentManager, ErrorKind, MultiModalItem, Role,
    TaskPersistenceManager, TaskStatus, Timestamp,
};
use ta_persistence_tests::postgres_server::PostgresServer;
use ta_plugin_postgres::PostgresTaskPersistenceManager;

/// A manager of database `db`, built as the host would from these variables.
fn connect(
    server: &PostgresServer,
    db: &str,
    extra: &[(&str, &str)],
) -> PostgresTaskPersistenceManager {
    let vars = server.vars_with(db, extra);
    let config = PluginConfig::new(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    PostgresTaskPersistenceManager::from_config(&config).expect("the manager connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_passes_in_process() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("suite");
    let store: Arc<dyn DocumentManager> = Arc::new(connect(&server, &db, &[]));
    let report = run_suite(
        || {
            let store = Arc::clone(&store);
            async move {
                store.clear().await.expect("clear");
                store
            }
        },
        None,
    )
    .await;
    println!("{report}");
    assert_eq!(report.results.len(), cases().len(), "every case ran");
    assert!(report.is_success(), "{} failed:\n{report}", report.failed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_cases_pass_in_process() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("retention_suite");
    let store: Arc<dyn DocumentManager> = Arc::new(connect(
        &server,
        &db,
        &[(RETENTION_VAR, SUITE_POLICY), ("TA_PG_SWEEP_SECS", "0")],
    ));
    let report = run_retention_suite(
        |_policy| {
            let store = Arc::clone(&store);
            async move {
                store.clear().await.expect("clear");
                store
            }
        },
        None,
    )
    .await;
    println!("{report}");
    assert_eq!(
        report.results.len(),
        retention_cases().len(),
        "every case ran"
    );
    assert!(report.is_success(), "{} failed:\n{report}", report.failed());
}

fn task(id: &str, request_id: &str) -> AgentTask {
    let mut task = AgentTask::new(id, "session", "user", Timestamp::now_utc());
    task.items = vec![AgentTaskItem::new(
        id,
        request_id,
        Role::User,
        MultiModalItem::text("hi"),
        Timestamp::now_utc(),
    )];
    task
}

fn count(server: &PostgresServer, db: &str, table: &str) -> u64 {
    server
        .psql(db, &format!("SELECT count(*) FROM {table}"))
        .parse()
        .expect("a row count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tasks_vanish_from_reads_at_once_and_purge_deletes_them_in_batches() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("retention");
    let store = connect(
        &server,
        &db,
        &[
            (RETENTION_VAR, "completed=1s"),
            ("TA_PG_PURGE_BATCH", "2"),
            ("TA_PG_SWEEP_SECS", "0"),
        ],
    );
    for n in 0..5 {
        let mut t = task(&format!("done-{n}"), &format!("rq-done-{n}"));
        store.create(t.clone()).await.unwrap();
        t.status = TaskStatus::Completed;
        store.update(t).await.unwrap();
    }
    store.create(task("running", "rq-running")).await.unwrap();
    // Expiry is set by the server's clock at the write.
    assert_eq!(
        server.psql(
            &db,
            "SELECT count(*) FROM ta_tasks WHERE expires_at > now() \
             AND expires_at <= now() + interval '1 second'",
        ),
        "5"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;

    assert_eq!(store.load("done-0").await.unwrap(), None);
    assert!(store.load_with_etag("done-1").await.unwrap().is_none());
    assert_eq!(store.load_by_request_id("rq-done-2").await.unwrap(), None);
    let err = store.update(task("done-3", "x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let page = store
        .list_tasks(&TaskFilter::all(), &PageRequest::new(100).unwrap())
        .await
        .unwrap();
    let listed: Vec<&str> = page.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(listed, ["running"]);
    // Still rows (four: done-3's update above failed), until a purge.
    assert_eq!(count(&server, &db, "ta_tasks"), 6);
    // create of an expired id takes its row over, with only its own request ids.
    store.create(task("done-4", "rq-new")).await.unwrap();
    assert_eq!(store.load_by_request_id("rq-done-4").await.unwrap(), None);
    assert_eq!(
        store
            .load_by_request_id("rq-new")
            .await
            .unwrap()
            .map(|t| t.task_id),
        Some("done-4".to_owned())
    );

    // Four expired, deleted two per transaction.
    assert_eq!(store.purge().await.unwrap(), 4);
    assert_eq!(count(&server, &db, "ta_tasks"), 2);
    assert_eq!(count(&server, &db, "ta_request_ids"), 2);
    assert_eq!(store.purge().await.unwrap(), 0);
    assert!(store.load("running").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sweeper_purges_by_itself() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("sweeper");
    let store = connect(
        &server,
        &db,
        &[(RETENTION_VAR, "failed=1s"), ("TA_PG_SWEEP_SECS", "1")],
    );
    let mut t = task("failing", "rq-f");
    t.status = TaskStatus::Failed;
    store.create(t).await.unwrap();
    assert_eq!(count(&server, &db, "ta_tasks"), 1);
    let started = Instant::now();
    while count(&server, &db, "ta_tasks") > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sweeper never purged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&server, &db, "ta_request_ids"), 0);
}
