//! The conformance suite against the Postgres plugin library, loaded by the host's loader
//! and talking to a real Postgres started for this test binary: every case, then the
//! retention cases against a manager configured with their policy.
//!
//! Every case must pass, listing and purge included: the boundary carries them.

use std::sync::Arc;

use ta_persistence_api::conformance::retention::SUITE_POLICY;
use ta_persistence_api::conformance::{cases, retention_cases, run_retention_suite, run_suite};
use ta_persistence_api::retention::RETENTION_VAR;
use ta_persistence_api::{DocumentManager, TaskPersistenceManager};
use ta_persistence_tests::postgres_server::PostgresServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_plugin_passes_the_conformance_suite() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("conformance");
    let store: Arc<dyn DocumentManager> = Arc::new(server.plugin(&db, &[]));
    let report = run_suite(
        || {
            let store = Arc::clone(&store);
            async move {
                // A fresh store for every case: the tables emptied.
                store.clear().await.expect("clear");
                store
            }
        },
        None,
    )
    .await;
    println!("{report}");
    assert_eq!(report.results.len(), cases().len(), "every case ran");
    assert!(report.is_success(), "failed case(s):\n{report}");
    // The last case's tasks are rows of the tables, with their request ids beside them.
    let rows: i64 = server
        .psql(&db, "SELECT count(*) FROM ta_tasks")
        .parse()
        .unwrap();
    let live = store.clear().await.unwrap();
    assert_eq!(live, u64::try_from(rows).unwrap());
    assert_eq!(server.psql(&db, "SELECT count(*) FROM ta_request_ids"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_plugin_passes_the_retention_cases() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("retention_suite");
    let store: Arc<dyn DocumentManager> = Arc::new(server.plugin(
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
    assert!(report.is_success(), "failed case(s):\n{report}");
}
