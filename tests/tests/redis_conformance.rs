//! The conformance suite against the Redis plugin library, loaded by the host's loader
//! and talking to a real `redis-server` started for this test binary.

use std::sync::Arc;

use ta_persistence_api::conformance::{cases, run_suite};
use ta_persistence_api::DocumentManager;
use ta_persistence_api::TaskPersistenceManager;
use ta_persistence_tests::redis_server::{load_redis_plugin, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_plugin_passes_the_conformance_suite() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let prefix = format!("ta-conformance-{}", std::process::id());
    let manager =
        load_redis_plugin(&server.vars_with_prefix(&prefix)).expect("the Redis plugin loads");
    let store: Arc<dyn DocumentManager> = Arc::new(manager);
    let report = run_suite(
        || {
            let store = Arc::clone(&store);
            async move {
                // A fresh store for every case: the prefix emptied.
                store.clear().await.expect("clear");
                store
            }
        },
        None,
    )
    .await;
    println!("{report}");
    assert_eq!(report.results.len(), cases().len(), "every case ran");
    assert!(
        report.is_success(),
        "{} case(s) failed:\n{report}",
        report.failed()
    );

    // Nothing of another prefix was touched, and the last case's keys are all ours.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.conn())
        .expect("KEYS");
    assert!(keys.iter().all(|k| k.starts_with(&prefix)), "{keys:?}");
}
