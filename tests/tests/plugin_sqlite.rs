//! The SQLite plugin through its real library, loaded by the host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ta_persistence::loader::load_plugin;
use ta_persistence::TaskPersistenceManager;
use ta_persistence_api::conformance::run_suite;
use ta_persistence_api::ffi::ForeignManager;
use ta_persistence_tests::cdylib::plugin;

const CLASS: &str = "SqliteTaskPersistenceManager";

/// A fresh database path for one test (under cargo's temp dir for integration tests).
fn scratch_db(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "plugin-sqlite-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("tasks.db")
}

fn open(db: &Path) -> ForeignManager {
    let vars = BTreeMap::from([("TA_SQLITE_PATH".to_owned(), db.display().to_string())]);
    let (_, manager) =
        load_plugin(&plugin("ta-plugin-sqlite"), Some(CLASS), &vars).expect("the plugin loads");
    manager
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_against_the_sqlite_plugin_library() {
    let report = run_suite(
        || async { Arc::new(open(&scratch_db("suite"))) as Arc<dyn TaskPersistenceManager> },
        None,
    )
    .await;
    println!("{report}");
    assert!(report.is_success(), "{report}");
}
