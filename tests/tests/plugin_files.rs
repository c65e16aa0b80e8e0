//! The file-backed example plugin through its real library, loaded by the host: the
//! conformance suite, and tasks and ETags that outlive the manager that wrote them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ta_persistence::loader::load_plugin;
use ta_persistence::{AgentTask, ErrorKind, TaskPersistenceManager, Timestamp};
use ta_persistence_api::conformance::run_suite;
use ta_persistence_api::ffi::ForeignManager;
use ta_persistence_api::DocumentManager;
use ta_persistence_tests::cdylib::plugin;

const CLASS: &str = "FileTaskPersistenceManager";

/// A fresh, empty directory for one test (under cargo's temp dir for integration tests).
fn scratch_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "plugin-files-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn open(dir: &Path) -> ForeignManager {
    let vars = BTreeMap::from([("TA_FILES_DIR".to_owned(), dir.display().to_string())]);
    let (_, manager) =
        load_plugin(&plugin("ta-plugin-files"), Some(CLASS), &vars).expect("the plugin loads");
    manager
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_against_the_file_plugin_library() {
    let report = run_suite(
        || async { Arc::new(open(&scratch_dir("suite"))) as Arc<dyn DocumentManager> },
        None,
    )
    .await;
    println!("{report}");
    assert!(report.is_success(), "{report}");
    assert!(report.passed() >= 35, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_etags_outlive_the_manager_that_wrote_them() {
    let dir = scratch_dir("durable");
    let task = AgentTask::new("kept", "s", "u", Timestamp::now_utc());
    let etag = {
        let first = open(&dir);
        first.create(task.clone()).await.unwrap();
        first.load_with_etag("kept").await.unwrap().unwrap().etag
        // Dropped here, inside async code: its runtime stops without blocking.
    };
    let second = open(&dir);
    let read = second.load_with_etag("kept").await.unwrap().unwrap();
    assert_eq!(read.value, task);
    assert_eq!(read.etag, etag);
    let next = second.update_if_match(task.clone(), &etag).await.unwrap();
    assert_ne!(next, etag);
    let err = second.update_if_match(task, &etag).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
}

#[test]
fn a_missing_directory_setting_fails_the_load_with_the_variable_named() {
    let Err(err) = load_plugin(&plugin("ta-plugin-files"), Some(CLASS), &BTreeMap::new()) else {
        panic!("the constructor accepted a configuration without a directory");
    };
    assert!(err.to_string().contains("TA_FILES_DIR"), "{err}");
}
