//! The memory plugin as earlier releases built it, from this repository's history, loaded
//! by the current host: the interface-2 release loads, passes the suite, and answers
//! `list_tasks` and `purge` with `Unsupported` naming it and version 2; the interface-1
//! build is refused at the layout check with a message that says to rebuild it.
//!
//! Without the history (a shallow clone) each test says so loudly and passes, unless
//! `CI` is set.

use std::collections::BTreeMap;
use std::sync::Arc;

use ta_persistence::loader::{load_plugin, open_library, LoadError};
use ta_persistence::{AgentTask, ErrorKind, PersistenceError, TaskPersistenceManager, Timestamp};
use ta_persistence_api::conformance::run_suite;
use ta_persistence_api::{DocumentManager, PageRequest, TaskFilter};
use ta_persistence_tests::released::{
    history_required, memory_plugin_at, INTERFACE_1, INTERFACE_2,
};

const CLASS: &str = "MemoryTaskPersistenceManager";

/// The plugin built from `commit`, or `None` after a loud notice when the history is
/// not available (a failure under CI).
fn released(commit: &str) -> Option<std::path::PathBuf> {
    let found = memory_plugin_at(commit);
    if found.is_none() {
        assert!(
            !history_required(),
            "commit {commit} is not in this clone's history, and CI is set: fetch the full history"
        );
        eprintln!(
            "\n*** SKIPPED: commit {commit} is not in this clone's history (shallow clone?); \
             the released plugin cannot be built. Fetch the full history to run this test. ***\n"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interface_2_release_of_the_memory_plugin_loads_and_serves() {
    let Some(path) = released(INTERFACE_2) else {
        return;
    };
    let lib = open_library(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lib.name(), "ta-plugin-memory");
    assert_eq!(lib.interface_version(), 2);

    let report = run_suite(
        || {
            let path = path.clone();
            async move {
                let (_, manager) = load_plugin(&path, Some(CLASS), &BTreeMap::new()).unwrap();
                Arc::new(manager) as Arc<dyn DocumentManager>
            }
        },
        None,
    )
    .await;
    println!("{report}");
    assert!(report.is_success(), "{report}");

    let (_, manager) = load_plugin(&path, Some(CLASS), &BTreeMap::new()).unwrap();
    let task = AgentTask::new("old-1", "s", "u", Timestamp::now_utc());
    manager.create(task.clone()).await.unwrap();
    for err in [
        manager
            .list_tasks(&TaskFilter::all(), &PageRequest::default())
            .await
            .unwrap_err(),
        manager.purge().await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{}", err.report());
        let PersistenceError::Unsupported {
            backend,
            interface_version,
            ..
        } = &err
        else {
            panic!("{}", err.report());
        };
        assert_eq!(backend, "ta-plugin-memory");
        assert_eq!(*interface_version, Some(2));
    }
    assert_eq!(manager.load("old-1").await.unwrap(), Some(task));
}

#[test]
fn an_interface_1_build_of_the_memory_plugin_is_refused_saying_to_rebuild_it() {
    let Some(path) = released(INTERFACE_1) else {
        return;
    };
    let err = open_library(&path).unwrap_err();
    assert!(
        matches!(err, LoadError::LayoutMismatch { .. }),
        "expected a layout refusal, got {err}"
    );
    assert_eq!(err.step(), 5);
    let text = err.to_string();
    assert!(
        text.contains("rebuild the plugin against this host's ta-persistence-api"),
        "{text}"
    );
    assert!(text.contains("too many fields"), "{text}");
}
