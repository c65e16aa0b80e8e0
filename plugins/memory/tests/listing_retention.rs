//! The memory plugin's store, used directly: the whole conformance suite (listing
//! included), the retention cases on the real clock, and its retention setting.

use std::sync::Arc;
use std::time::Duration;

use ta_persistence_api::conformance::{cases, retention_cases, run_retention_suite, run_suite};
use ta_persistence_api::ffi::{FromConfig, PluginConfig};
use ta_persistence_api::retention::{RetentionPolicy, RETENTION_VAR};
use ta_persistence_api::{
    AgentTask, DocumentManager, PageRequest, TaskFilter, TaskPersistenceManager, TaskStatus,
    Timestamp,
};
use ta_plugin_memory::MemoryTaskPersistenceManager;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_passes_the_conformance_suite() {
    let report = run_suite(
        || async { Arc::new(MemoryTaskPersistenceManager::default()) as Arc<dyn DocumentManager> },
        None,
    )
    .await;
    assert_eq!(report.results.len(), cases().len());
    assert!(report.is_success(), "{report}");
}

/// The plugin's expiry follows the system clock, so these wait for real (seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_passes_the_retention_suite() {
    let report = run_retention_suite(
        |policy| async move {
            Arc::new(MemoryTaskPersistenceManager::with_retention(policy))
                as Arc<dyn DocumentManager>
        },
        None,
    )
    .await;
    assert_eq!(report.results.len(), retention_cases().len());
    assert!(report.is_success(), "{report}");
}

#[test]
fn the_policy_is_read_from_the_configuration_and_a_bad_one_refused() {
    let bad = PluginConfig::new([(RETENTION_VAR, "completed=soon")]);
    let err = MemoryTaskPersistenceManager::from_config(&bad).unwrap_err();
    assert!(err.to_string().starts_with(RETENTION_VAR), "{err}");
    let good = PluginConfig::new([(RETENTION_VAR, "completed=1s")]);
    let store = MemoryTaskPersistenceManager::from_config(&good).unwrap();
    futures_lite_block_on(async {
        let mut task = AgentTask::new("t", "s", "u", Timestamp::now_utc());
        task.status = TaskStatus::Completed;
        store.create(task).await.unwrap();
    });
    assert_eq!(store.stored(), 1);
    // The sweeper thread runs every second: the task is removed without a purge.
    let mut waited = Duration::ZERO;
    while store.stored() > 0 && waited < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
        waited += Duration::from_millis(100);
    }
    assert_eq!(store.stored(), 0, "not swept after {waited:?}");
    let page = futures_lite_block_on(store.list_tasks(&TaskFilter::all(), &PageRequest::default()))
        .unwrap();
    assert!(page.tasks.is_empty());
    assert!(
        RetentionPolicy::from_config(&PluginConfig::new([("TA_OTHER", "x")]))
            .unwrap()
            .is_empty()
    );
}

/// Runs a future that never waits (every method of this store completes at once).
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(f)
}

/// The ids of the tasks a listing with `filter` shows.
async fn listed(store: &MemoryTaskPersistenceManager, filter: TaskFilter) -> Vec<String> {
    let page = store
        .list_tasks(&filter, &PageRequest::default())
        .await
        .expect("a listing");
    page.tasks.into_iter().map(|s| s.task_id).collect()
}

#[tokio::test]
async fn updates_move_exactly_the_index_entries_that_change() {
    use ta_persistence_api::{AgentTaskItem, MultiModalItem, Role};
    let store = MemoryTaskPersistenceManager::default();
    let at = Timestamp::parse("2025-01-01T00:00:00").unwrap();
    let item = |request_id: &str| {
        AgentTaskItem::new("t", request_id, Role::User, MultiModalItem::text("x"), at)
    };
    let mut task = AgentTask::new("t", "s1", "u1", at);
    task.items.push(item("r1"));
    store.create(task.clone()).await.unwrap();
    // A turn: same place in every listing, one request id more.
    task.items.push(item("r2"));
    task.status = TaskStatus::Paused;
    store.update(task.clone()).await.unwrap();
    assert_eq!(
        store.load_by_request_id("r2").await.unwrap(),
        Some(task.clone())
    );
    assert_eq!(
        store.load_by_request_id("r1").await.unwrap(),
        Some(task.clone())
    );
    assert_eq!(listed(&store, TaskFilter::all().session("s1")).await, ["t"]);
    let status = TaskFilter::all().statuses([TaskStatus::Paused]);
    assert_eq!(listed(&store, status).await, ["t"]);
    // A request id dropped, another kept.
    task.items.remove(0);
    store.update(task.clone()).await.unwrap();
    assert_eq!(store.load_by_request_id("r1").await.unwrap(), None);
    assert_eq!(
        store.load_by_request_id("r2").await.unwrap(),
        Some(task.clone())
    );
    // A new session and user: the task moves in those listings.
    task.session_id = "s2".into();
    task.user_id = "u2".into();
    store.update(task.clone()).await.unwrap();
    assert!(listed(&store, TaskFilter::all().session("s1"))
        .await
        .is_empty());
    assert!(listed(&store, TaskFilter::all().user("u1"))
        .await
        .is_empty());
    assert_eq!(listed(&store, TaskFilter::all().session("s2")).await, ["t"]);
    assert_eq!(listed(&store, TaskFilter::all().user("u2")).await, ["t"]);
    assert_eq!(listed(&store, TaskFilter::all()).await, ["t"]);
    store.delete("t").await.unwrap();
    assert!(listed(&store, TaskFilter::all()).await.is_empty());
    assert_eq!(store.load_by_request_id("r2").await.unwrap(), None);
}
