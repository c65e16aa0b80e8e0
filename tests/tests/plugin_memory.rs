//! The plugin path end to end: the conformance suite through the FFI adapters in process
//! and through the real `ta-plugin-memory` library loaded by the host; several libraries
//! in one process; panics inside a plugin at run time.

use std::collections::BTreeMap;
use std::sync::Arc;

use ta_persistence::loader::{load_plugin, open_library};
use ta_persistence::{
    AgentTask, ErrorKind, InMemoryPersistenceManager, TaskPersistenceManager, Timestamp,
};
use ta_persistence_api::conformance::run_suite;
use ta_persistence_api::ffi::{Exported, ForeignManager};
use ta_persistence_api::DocumentManager;
use ta_persistence_tests::cdylib::plugin;

const MEMORY_CLASS: &str = "MemoryTaskPersistenceManager";

fn no_vars() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_through_the_ffi_adapters_in_process() {
    let report = run_suite(
        || async {
            let exported = Exported::new(InMemoryPersistenceManager::new()).into_ffi();
            Arc::new(ForeignManager::new(exported, "in-process")) as Arc<dyn DocumentManager>
        },
        None,
    )
    .await;
    println!("{report}");
    assert!(report.is_success(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_against_the_memory_plugin_library() {
    let path = plugin("ta-plugin-memory");
    let report = run_suite(
        || {
            let path = path.clone();
            async move {
                // A fresh manager of the loaded library for every case.
                let (_, manager) = load_plugin(&path, Some(MEMORY_CLASS), &no_vars()).unwrap();
                Arc::new(manager) as Arc<dyn DocumentManager>
            }
        },
        None,
    )
    .await;
    println!("{report}");
    assert!(report.is_success(), "{report}");
    assert!(report.passed() >= 35, "{report}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_plugin_serves_a_current_thread_host_runtime() {
    let (_, store) =
        load_plugin(&plugin("ta-plugin-memory"), Some(MEMORY_CLASS), &no_vars()).unwrap();
    let task = AgentTask::new("ct-1", "s", "u", Timestamp::now_utc());
    store.create(task.clone()).await.unwrap();
    assert_eq!(store.load("ct-1").await.unwrap(), Some(task));
}

#[test]
fn several_libraries_load_in_one_process_and_the_same_path_gives_the_same_library() {
    let memory = plugin("ta-plugin-memory");
    let misbehaving = plugin("ta-fixture-misbehaving");
    let a = open_library(&memory).unwrap();
    let b = open_library(&misbehaving).unwrap();
    assert_eq!(a.name(), "ta-plugin-memory");
    assert_eq!(b.name(), "misbehaving");
    assert_eq!(a.classes(), vec![MEMORY_CLASS.to_owned()]);
    let again = open_library(&memory).unwrap();
    // The same library: its root module's strings live at the same addresses.
    assert_eq!(a.name().as_ptr(), again.name().as_ptr());
    assert_ne!(a.name().as_ptr(), b.name().as_ptr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_of_one_library_are_independent_stores() {
    let path = plugin("ta-plugin-memory");
    let (_, one) = load_plugin(&path, Some(MEMORY_CLASS), &no_vars()).unwrap();
    let (_, two) = load_plugin(&path, Some(MEMORY_CLASS), &no_vars()).unwrap();
    one.create(AgentTask::new(
        "only-in-one",
        "s",
        "u",
        Timestamp::now_utc(),
    ))
    .await
    .unwrap();
    assert!(two.load("only-in-one").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_inside_the_plugin_become_errors_and_the_host_keeps_serving() {
    let (_, store) = load_plugin(
        &plugin("ta-fixture-misbehaving"),
        Some("PanickingManager"),
        &no_vars(),
    )
    .unwrap();

    // A method that panics before it returns a future.
    let err = store
        .create(AgentTask::new("panic-now", "s", "u", Timestamp::now_utc()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Plugin, "{err}");
    assert!(
        err.report()
            .contains("create panicked before returning a future"),
        "{}",
        err.report()
    );
    assert_eq!(err.id(), "panic-now");

    // The next call is served.
    let task = AgentTask::new("fine", "s", "u", Timestamp::now_utc());
    store.create(task.clone()).await.unwrap();
    assert_eq!(store.load("fine").await.unwrap(), Some(task));

    // A future that panics while polled.
    let err = store.load("panic-later").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Plugin, "{err}");
    assert!(
        err.report().contains("load panicked while polled"),
        "{}",
        err.report()
    );

    store.health().await.unwrap();
    assert!(store.load("fine").await.unwrap().is_some());
}

#[tokio::test]
async fn invalid_ids_are_refused_on_the_host_side_before_the_plugin_sees_them() {
    let (_, store) = load_plugin(
        &plugin("ta-fixture-misbehaving"),
        Some("PanickingManager"),
        &no_vars(),
    )
    .unwrap();
    // This test plugin checks nothing itself: the host's adapter must.
    let err = store.load("").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let too_long = "x".repeat(1025);
    let err = store
        .create(AgentTask::new(too_long, "s", "u", Timestamp::now_utc()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}
