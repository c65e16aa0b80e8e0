//! What the Redis plugin does with data it did not expect and with other writers:
//! quarantine of corrupt documents, deterministic lookups that prune dangling members,
//! ETags that see a writer without ETags, a clear that stays in its namespace, and one
//! round trip per operation. Each test runs the real plugin library against its own
//! `redis-server`.

use std::collections::BTreeSet;

use redis::Commands as _;
use ta_persistence_api::{ErrorKind, TaskPersistenceManager};
use ta_persistence_tests::redis_server::{
    python_index_key as index_key, python_task_key as task_key, sample_task as task, Monitor,
    RedisServer,
};

const PREFIX: &str = "task_persistence";

fn members(conn: &mut redis::Connection, key: &str) -> BTreeSet<String> {
    conn.smembers(key).expect("SMEMBERS")
}

fn pttl(conn: &mut redis::Connection, key: &str) -> i64 {
    conn.pttl(key).expect("PTTL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_documents_are_quarantined_and_never_lost() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = server.plugin(&[]);
    let mut conn = server.conn();
    let quarantine = |id: &str| format!("{PREFIX}:quarantine:{id}");

    // Not JSON at all: load reports it and moves it aside, bytes intact, without expiry.
    let garbage = "{\"task_id\": \"broken\", oops \u{1F4A5}";
    let _: () = conn.set_ex(task_key("broken"), garbage, 3600).unwrap();
    let err = store.load("broken").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert_eq!(err.id(), "broken");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the parse error is kept"
    );
    assert!(!conn.exists::<_, bool>(task_key("broken")).unwrap());
    assert_eq!(
        conn.get::<_, String>(quarantine("broken")).unwrap(),
        garbage
    );
    assert_eq!(pttl(&mut conn, &quarantine("broken")), -1);
    assert_eq!(store.load("broken").await.unwrap(), None);

    // A second corrupt document of the same id does not overwrite the first.
    let _: () = conn.set(task_key("broken"), "second").unwrap();
    assert_eq!(
        store.load("broken").await.unwrap_err().kind(),
        ErrorKind::Corrupt
    );
    assert_eq!(
        conn.get::<_, String>(quarantine("broken")).unwrap(),
        garbage
    );
    assert_eq!(
        conn.get::<_, String>(format!("{}:2", quarantine("broken")))
            .unwrap(),
        "second"
    );

    // Valid JSON that is not a valid task (an unknown status): reported as corrupt, naming
    // the field, and left where it is, index entries and expiry included: another writer
    // may read it.
    let mut drifted = task("drifted", "2025-01-01T00:00:00", &["rd"]).to_json();
    drifted = drifted.replace("\"Running\"", "\"Cancelled\"");
    let _: () = conn.set_ex(task_key("drifted"), &drifted, 600).unwrap();
    let _: () = conn.sadd(index_key("rd"), "drifted").unwrap();
    let err = store.load_with_etag("drifted").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.report().contains("status"), "{}", err.report());
    let err = store.load_by_request_id("rd").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert_eq!(err.id(), "drifted");
    assert_eq!(conn.get::<_, String>(task_key("drifted")).unwrap(), drifted);
    assert!(pttl(&mut conn, &task_key("drifted")) > 0);
    assert!(!conn.exists::<_, bool>(quarantine("drifted")).unwrap());
    assert_eq!(
        members(&mut conn, &index_key("rd")),
        BTreeSet::from(["drifted".to_owned()])
    );

    // A lookup meeting a corrupt member quarantines it and still answers.
    store
        .create(task("fine", "2025-01-01T00:00:05", &["rs"]))
        .await
        .unwrap();
    let _: () = conn.set(task_key("early-bad"), "[1, 2").unwrap();
    let _: () = conn.sadd(index_key("rs"), "early-bad").unwrap();
    assert_eq!(
        store
            .load_by_request_id("rs")
            .await
            .unwrap()
            .unwrap()
            .task_id,
        "fine"
    );
    assert_eq!(
        conn.get::<_, String>(quarantine("early-bad")).unwrap(),
        "[1, 2"
    );
    assert_eq!(
        members(&mut conn, &index_key("rs")),
        BTreeSet::from(["fine".to_owned()])
    );

    // delete of a corrupt task succeeds; update replaces one (update means replace).
    let _: () = conn.set(task_key("doomed"), "not a task").unwrap();
    store.delete("doomed").await.unwrap();
    assert!(!conn.exists::<_, bool>(task_key("doomed")).unwrap());
    assert!(store.delete("doomed").await.unwrap_err().is_not_found());
    let _: () = conn.set(task_key("fixed"), "not a task either").unwrap();
    let repaired = task("fixed", "2025-01-01T00:00:00", &["rf"]);
    store.update(repaired.clone()).await.unwrap();
    assert_eq!(store.load("fixed").await.unwrap(), Some(repaired));
    assert_eq!(
        store
            .load_by_request_id("rf")
            .await
            .unwrap()
            .unwrap()
            .task_id,
        "fixed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_documents_that_are_not_json_are_quarantined() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = server.plugin(&[]);
    let mut conn = server.conn();
    let quarantine = |id: &str| format!("{PREFIX}:quarantine:{id}");
    let plant = |conn: &mut redis::Connection, id: &str, rid: &str, json: &str| {
        let _: () = conn.set(task_key(id), json).unwrap();
        let _: () = conn.sadd(index_key(rid), id).unwrap();
    };
    // A document as Python's json writes one with a NaN in a tool call's arguments.
    let nan = task("nan", "2025-01-01T00:00:00", &["rn"])
        .to_json()
        .replace(
            "\"pending_tool_calls\":null",
            "\"pending_tool_calls\":[{\"name\":\"f\",\"args\":{\"x\":NaN,\"y\":-Infinity}}]",
        );
    assert!(nan.contains("NaN"));
    // A document from a newer writer, with a structure this version does not know.
    let odd = task("odd", "2025-01-01T00:00:00", &["ro"])
        .to_json()
        .replacen(
            '{',
            "{\"workflow\":{\"steps\":[{\"id\":1,\"next\":[2,3]}],\"meta\":{}},",
            1,
        );
    let junk = "{\"task_id\": \"junk\", \"items\": [";
    plant(&mut conn, "nan", "rn", &nan);
    plant(&mut conn, "odd", "ro", &odd);
    plant(&mut conn, "junk", "rj", junk);

    // The NaN document stays whatever this version makes of it (it is read, or reported
    // as corrupt naming the task): Python reads it.
    for result in [
        store.load("nan").await.map(|t| t.map(|t| t.task_id)),
        store
            .load_by_request_id("rn")
            .await
            .map(|t| t.map(|t| t.task_id)),
    ] {
        match result {
            Ok(found) => assert_eq!(found.as_deref(), Some("nan")),
            Err(e) => assert!(e.is_corrupt() && e.id() == "nan", "{}", e.report()),
        }
    }
    assert_eq!(conn.get::<_, String>(task_key("nan")).unwrap(), nan);
    assert!(!conn.exists::<_, bool>(quarantine("nan")).unwrap());
    assert!(conn
        .sismember::<_, _, bool>(index_key("rn"), "nan")
        .unwrap());

    // The unknown structure is read past, and kept.
    let loaded = store.load("odd").await.unwrap().unwrap();
    assert_eq!(loaded.task_id, "odd");
    assert!(loaded.extra.get("workflow").is_some());
    let found = store.load_by_request_id("ro").await.unwrap().unwrap();
    assert_eq!(found, loaded);
    assert_eq!(conn.get::<_, String>(task_key("odd")).unwrap(), odd);
    assert!(!conn.exists::<_, bool>(quarantine("odd")).unwrap());

    // Bytes that are not JSON at all go to quarantine, intact.
    assert!(store.load("junk").await.unwrap_err().is_corrupt());
    assert!(!conn.exists::<_, bool>(task_key("junk")).unwrap());
    assert_eq!(conn.get::<_, String>(quarantine("junk")).unwrap(), junk);
    // Its index entry, which the bytes could not tell, points nowhere: the next lookup
    // prunes it.
    assert_eq!(store.load_by_request_id("rj").await.unwrap(), None);
    assert!(!conn.exists::<_, bool>(index_key("rj")).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_are_deterministic_and_prune_dangling_members() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = server.plugin(&[]);
    let mut conn = server.conn();
    for (id, created) in [
        ("t-c", "2025-01-01T00:00:03"),
        ("t-b", "2025-01-01T00:00:01"),
        ("t-a", "2025-01-01T00:00:01"),
        ("t-d", "2024-12-31T23:59:59"),
    ] {
        store.create(task(id, created, &["shared"])).await.unwrap();
    }
    // t-d, the earliest, is then moved off the request id behind the index's back (as a
    // crash between two commands of the Python original would leave it), and a member
    // whose task never existed is added.
    let moved = task("t-d", "2024-12-31T23:59:59", &["elsewhere"]).to_json();
    let _: () = conn.set(task_key("t-d"), moved).unwrap();
    let _: () = conn.sadd(index_key("shared"), "ghost").unwrap();

    for _ in 0..5 {
        let found = store.load_by_request_id("shared").await.unwrap().unwrap();
        assert_eq!(
            found.task_id, "t-a",
            "earliest created_at, then the smallest id"
        );
    }
    assert_eq!(
        members(&mut conn, &index_key("shared")),
        BTreeSet::from(["t-a".to_owned(), "t-b".to_owned(), "t-c".to_owned()]),
        "the dangling and the stale member were pruned"
    );
    store.delete("t-a").await.unwrap();
    assert_eq!(
        store
            .load_by_request_id("shared")
            .await
            .unwrap()
            .unwrap()
            .task_id,
        "t-b"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_if_match_sees_a_change_by_a_writer_without_etags() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = server.plugin(&[]);
    let mut conn = server.conn();
    store
        .create(task("paused", "2025-01-01T00:00:00", &["r1"]))
        .await
        .unwrap();
    let read = store.load_with_etag("paused").await.unwrap().unwrap();

    // A Python agent approves the task: it rewrites the document with SETEX.
    let mut theirs = read.value.clone();
    theirs.status = ta_persistence_api::TaskStatus::Completed;
    let _: () = conn
        .set_ex(task_key("paused"), theirs.to_json(), 3600)
        .unwrap();

    let mut ours = read.value.clone();
    ours.status = ta_persistence_api::TaskStatus::Canceled;
    let err = store
        .update_if_match(ours.clone(), &read.etag)
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(store.load("paused").await.unwrap(), Some(theirs));

    let fresh = store.load_with_etag("paused").await.unwrap().unwrap();
    assert_ne!(fresh.etag, read.etag);
    let next = store
        .update_if_match(ours.clone(), &fresh.etag)
        .await
        .unwrap();
    assert_eq!(
        store.load_with_etag("paused").await.unwrap().unwrap().etag,
        next
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_removes_only_its_own_prefix_and_never_runs_keys() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let mut conn = server.conn();
    // A prefix with glob characters next to one it would match if they were not escaped.
    let mine = server.plugin(&[("TA_REDIS_PREFIX", "agent*")]);
    let theirs = server.plugin(&[("TA_REDIS_PREFIX", "agentX")]);
    for n in 0..1200 {
        mine.create(task(
            &format!("m{n}"),
            "2025-01-01T00:00:00",
            &[&format!("r{}", n % 7)],
        ))
        .await
        .unwrap();
    }
    theirs
        .create(task("t1", "2025-01-01T00:00:00", &["r1"]))
        .await
        .unwrap();
    let _: () = conn.set("agent*:quarantine:q1", "kept aside").unwrap();
    let _: () = conn.set("unrelated", "x").unwrap();

    server.reset_stats();
    assert_eq!(mine.clear().await.unwrap(), 1200);
    let calls = server.command_calls();
    assert!(
        !calls.contains_key("keys")
            && !calls.contains_key("flushdb")
            && !calls.contains_key("flushall"),
        "{calls:?}"
    );
    assert!(calls.get("scan").copied().unwrap_or(0) >= 3, "{calls:?}");
    assert!(calls.contains_key("unlink"), "{calls:?}");

    let mut left: Vec<String> = conn.keys("*").unwrap();
    left.sort();
    assert_eq!(
        left,
        [
            "agentX:listing:all",
            "agentX:listing:entries",
            "agentX:listing:session:session",
            "agentX:listing:user:user",
            "agentX:request_index:r1",
            "agentX:task:t1",
            "unrelated"
        ]
    );
    assert_eq!(mine.clear().await.unwrap(), 0);
    assert!(theirs.load("t1").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_is_one_round_trip() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = server.plugin(&[]);
    let mut monitor = server.monitor();
    fn ops(label: &str, expected: &[&str], monitor: &mut Monitor) {
        assert_eq!(monitor.client_commands(), expected, "{label}");
    }
    // The first call of each script may load it (NOSCRIPT, SCRIPT LOAD, EVALSHA).
    store
        .create(task("warm", "2025-01-01T00:00:00", &["w"]))
        .await
        .unwrap();
    store
        .update(task("warm", "2025-01-01T00:00:00", &["w"]))
        .await
        .unwrap();
    store.load_by_request_id("w").await.unwrap();
    store.delete("warm").await.unwrap();
    let _ = monitor.client_commands();

    store
        .create(task("t", "2025-01-01T00:00:00", &["r1", "r2", "r1"]))
        .await
        .unwrap();
    ops("create", &["evalsha"], &mut monitor);
    store.load("t").await.unwrap();
    ops("load", &["get"], &mut monitor);
    let v = store.load_with_etag("t").await.unwrap().unwrap();
    ops("load_with_etag", &["get"], &mut monitor);
    store.load_by_request_id("r2").await.unwrap();
    ops("load_by_request_id", &["evalsha"], &mut monitor);
    store
        .update(task("t", "2025-01-01T00:00:00", &["r3"]))
        .await
        .unwrap();
    ops("update", &["evalsha"], &mut monitor);
    assert!(store
        .update_if_match(task("t", "2025-01-01T00:00:00", &["r4"]), &v.etag)
        .await
        .unwrap_err()
        .is_conflict());
    ops("update_if_match", &["evalsha"], &mut monitor);
    store.delete("t").await.unwrap();
    ops("delete", &["evalsha"], &mut monitor);
    store.health().await.unwrap();
    ops("health", &["ping"], &mut monitor);
}
