//! The Postgres plugin's schema and writes against a real server: migrations applied
//! once by hosts starting together, a newer schema and a read-only user refused with
//! clear errors, racing creates from several hosts with one winner, the exact wire
//! bytes in the table, and ETags that never come back.

use std::sync::{Arc, Barrier};

use ta_persistence::{AgentTask, ErrorKind, TaskPersistenceManager, Timestamp};
use ta_persistence_api::{DocumentManager, TaskDocument};
use ta_persistence_tests::postgres_server::{load_postgres_plugin, PostgresServer};

fn task(id: &str, session: &str) -> AgentTask {
    let created = Timestamp::parse("2025-11-03T14:21:07.512034").expect("a valid timestamp");
    AgentTask::new(id, session, "user", created)
}

#[test]
fn hosts_starting_together_apply_each_migration_once() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("migrate_race");
    let vars = server.vars(&db);
    let hosts = 6;
    let barrier = Arc::new(Barrier::new(hosts));
    let results: Vec<_> = (0..hosts)
        .map(|_| {
            let (vars, barrier) = (vars.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                load_postgres_plugin(&vars)
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    // Without the lock, all but one would fail on tables that already exist.
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!(
        server.psql(
            &db,
            "SELECT string_agg(version || ':' || n, ',') FROM \
             (SELECT version, count(*) AS n FROM ta_schema_migrations GROUP BY version ORDER BY version) v"
        ),
        "1:1,2:1"
    );
}

#[test]
fn a_database_migrated_by_a_newer_plugin_is_refused() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("newer");
    drop(server.plugin(&db, &[]));
    server.psql(
        &db,
        "INSERT INTO ta_schema_migrations (version, name) VALUES (99, 'from the future')",
    );
    let Err(err) = load_postgres_plugin(&server.vars(&db)) else {
        panic!("a schema at version 99 was accepted");
    };
    let text = err.to_string();
    assert!(
        text.contains("version 99") && text.contains("upgrade the plugin"),
        "{text}"
    );
}

#[test]
fn a_user_that_may_not_write_gets_a_clear_error() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    server.psql(
        "postgres",
        "CREATE ROLE reader LOGIN PASSWORD 'reader-secret-pw'",
    );
    let reader = |db: &str| {
        let mut vars = server.vars(db);
        vars.insert("TA_PG_USER".into(), "reader".into());
        vars.insert("TA_PG_PASSWORD".into(), "reader-secret-pw".into());
        vars
    };

    // A fresh database the user may not create tables in.
    let fresh = server.database("readonly_fresh");
    server.psql(&fresh, "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
    let Err(err) = load_postgres_plugin(&reader(&fresh)) else {
        panic!("a user without CREATE migrated the schema");
    };
    let text = err.to_string();
    assert!(text.contains("may not change the schema"), "{text}");
    assert!(text.contains("applying migration 1"), "{text}");
    assert!(!text.contains("reader-secret-pw"), "{text}");

    // A migrated database the user may only read.
    let migrated = server.database("readonly_migrated");
    drop(server.plugin(&migrated, &[]));
    server.psql(
        &migrated,
        "GRANT SELECT ON ta_tasks, ta_request_ids, ta_schema_migrations TO reader",
    );
    let Err(err) = load_postgres_plugin(&reader(&migrated)) else {
        panic!("a read-only user was accepted");
    };
    let text = err.to_string();
    assert!(
        text.contains("may not write") && text.contains("ta_tasks:INSERT"),
        "{text}"
    );
    // Given the privileges, the same user works.
    server.psql(
        &migrated,
        "GRANT INSERT, UPDATE, DELETE ON ta_tasks, ta_request_ids TO reader; \
         GRANT USAGE ON SEQUENCE ta_task_version TO reader",
    );
    assert!(load_postgres_plugin(&reader(&migrated)).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_from_several_hosts_have_exactly_one_winner() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("create_race");
    let hosts: Vec<Arc<dyn TaskPersistenceManager>> = (0..3)
        .map(|_| Arc::new(server.plugin(&db, &[])) as Arc<dyn TaskPersistenceManager>)
        .collect();
    for round in 0..20 {
        let id = format!("contested-{round}");
        let attempts: Vec<_> = hosts
            .iter()
            .enumerate()
            .flat_map(|(h, host)| (0..3).map(move |n| (h, n, Arc::clone(host))))
            .map(|(h, n, host)| {
                let task = task(&id, &format!("host-{h}-{n}"));
                tokio::spawn(async move { (task.session_id.clone(), host.create(task).await) })
            })
            .collect();
        let mut winners = Vec::new();
        for attempt in attempts {
            let (session, result) = attempt.await.unwrap();
            match result {
                Ok(()) => winners.push(session),
                Err(e) => assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let stored = hosts[0].load(&id).await.unwrap().unwrap();
        assert_eq!(stored.session_id, winners[0], "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_holds_the_exact_wire_bytes() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("bytes");
    let store = server.plugin(&db, &[]);
    // Keys out of alphabetical order inside opaque JSON: jsonb would sort them.
    let text = TaskDocument::from_task(&task("bytes-1", "s"))
        .json()
        .replacen(
            "\"pending_tool_calls\":null",
            "\"pending_tool_calls\":[{\"zeta\":1.50,\"alpha\":[true,null]}]",
            1,
        );
    let doc = TaskDocument::from_json(text.clone()).unwrap();
    store.create_document(doc).await.unwrap();
    let stored = server.psql(
        &db,
        "SELECT json FROM ta_tasks WHERE task_id = convert_to('bytes-1', 'UTF8')",
    );
    assert_eq!(stored, text);
    let loaded = store.load_document("bytes-1").await.unwrap().unwrap();
    assert_eq!(loaded.json(), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etag_never_comes_back_after_delete_and_create() {
    let Some(server) = PostgresServer::maybe_start() else {
        return;
    };
    let db = server.database("etags");
    let store = server.plugin(&db, &[]);
    let t = task("reborn", "s");
    store.create(t.clone()).await.unwrap();
    let first = store.load_with_etag("reborn").await.unwrap().unwrap().etag;
    store.delete("reborn").await.unwrap();
    store.create(t.clone()).await.unwrap();
    let second = store.load_with_etag("reborn").await.unwrap().unwrap().etag;
    assert_ne!(first, second);
    let err = store.update_if_match(t.clone(), &first).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    store.update_if_match(t, &second).await.unwrap();
}
