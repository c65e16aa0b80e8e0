//! The Postgres plugin under faults, against a real server: a statement past the
//! timeout is cancelled by the server itself, and a server killed mid-workload and
//! restarted costs only typed transient errors, after which the pool recovers by itself
//! and every acknowledged write is there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ta_persistence::{AgentTask, ErrorKind, TaskPersistenceManager, TaskStatus, Timestamp};
use ta_persistence_tests::postgres_server::PostgresServer;

fn task(id: &str) -> AgentTask {
    AgentTask::new(id, "session", "user", Timestamp::now_utc())
}

/// Waits until `check` holds, for at most 20 s.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(20), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_the_timeout_is_cancelled_by_the_server() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("timeout");
    let store = server.plugin(&db, &[("TA_PG_STATEMENT_TIMEOUT_MS", "300")]);
    store.create(task("held")).await.unwrap();

    // Another session holds the table, so every statement of the plugin waits.
    let mut locker = server.spawn_psql(
        &db,
        "BEGIN; LOCK TABLE ta_tasks IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30); COMMIT;",
    );
    eventually("the lock is held", || {
        server.psql(
            &db,
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 'ta_tasks' AND l.mode = 'AccessExclusiveLock' AND l.granted",
        ) == "1"
    });

    let started = Instant::now();
    let err = store.load("held").await.unwrap_err();
    let read_waited = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    let mut changed = task("held");
    changed.status = TaskStatus::Completed;
    let err = store.update(changed).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    // The server cancelled and rolled the write back: known not applied.
    assert!(err.is_retryable() && !err.is_outcome_unknown(), "{err:?}");

    // Cancelled on the server: while the lock is still held, no statement of the plugin
    // is still waiting (a statement abandoned only by the client would be), and the
    // server says why it stopped them.
    assert_eq!(
        server.psql(
            &db,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'ta-persistence' AND state = 'active'",
        ),
        "0"
    );
    assert!(
        locker.try_wait().unwrap().is_none(),
        "the lock was released early"
    );
    let cancels = server
        .log()
        .matches("canceling statement due to statement timeout")
        .count();
    assert!(cancels >= 2, "{cancels} cancels logged:\n{}", server.log());
    // Long before the plugin's own limit (statement + connect timeout + 2 s) would fire.
    assert!(read_waited < Duration::from_secs(5), "{read_waited:?}");

    // Ends the locking session (its backend would sleep on after its client went).
    server.psql(
        &db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
    );
    let _ = locker.wait();
    let kept = store.load("held").await.unwrap().unwrap();
    assert_eq!(
        kept.status,
        TaskStatus::Running,
        "the cancelled update left nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_workload_costs_only_transient_errors_and_no_acknowledged_write() {
    let Some(mut server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("faults");
    let store: Arc<dyn TaskPersistenceManager> = Arc::new(server.plugin(
        &db,
        &[
            ("TA_PG_STATEMENT_TIMEOUT_MS", "1000"),
            ("TA_PG_CONNECT_TIMEOUT_MS", "1000"),
            ("TA_PG_POOL_SIZE", "8"),
        ],
    ));
    let stop = Arc::new(AtomicBool::new(false));
    // (task id, whether its update to Completed was acknowledged too)
    let acked = Arc::new(Mutex::new(Vec::<(String, bool)>::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            let (acked, errors) = (Arc::clone(&acked), Arc::clone(&errors));
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let id = format!("w{w}-{n}");
                    let mut t = task(&id);
                    match store.create(t.clone()).await {
                        Ok(()) => {}
                        Err(e) => {
                            errors.lock().unwrap().push((e.kind(), e.to_string()));
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    }
                    t.status = TaskStatus::Completed;
                    let updated = match store.update(t).await {
                        Ok(()) => true,
                        Err(e) => {
                            errors.lock().unwrap().push((e.kind(), e.to_string()));
                            false
                        }
                    };
                    acked.lock().unwrap().push((id, updated));
                }
            })
        })
        .collect();
    let count = |acked: &Arc<Mutex<Vec<(String, bool)>>>| acked.lock().unwrap().len();

    eventually("writes before the kill", || count(&acked) >= 200);
    server.kill();
    let at_kill = count(&acked);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let while_down = count(&acked) - at_kill;
    let errors_while_down = errors.lock().unwrap().len();
    server.start_again();
    let at_restart = count(&acked);
    eventually("writes after the restart", || {
        count(&acked) >= at_restart + 200
    });
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    // At most the writes in flight at the kill finished while the server was down.
    assert!(
        while_down <= 16,
        "{while_down} writes acknowledged by a dead server"
    );
    assert!(errors_while_down > 0, "the kill went unnoticed");
    for (kind, text) in errors.lock().unwrap().iter() {
        assert!(
            matches!(kind, ErrorKind::Unavailable | ErrorKind::Timeout),
            "{kind:?}: {text}"
        );
    }
    let acked = acked.lock().unwrap().clone();
    for (id, updated) in &acked {
        let stored = store.load(id).await.unwrap();
        let Some(stored) = stored else {
            panic!("acknowledged task {id} is gone");
        };
        if *updated {
            assert_eq!(stored.status, TaskStatus::Completed, "{id}");
        }
    }
}
