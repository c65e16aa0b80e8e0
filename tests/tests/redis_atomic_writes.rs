//! Every Redis write is all or nothing, also when a command inside its script would fail:
//! with a key of the wrong type planted at the task key, at an index key, at a listing
//! index or at the listing entries hash, create, update, update_if_match and delete fail
//! with a typed error and leave every key (its type, its value, its expiry) exactly as
//! it was. Real plugin library, real `redis-server`.

use std::collections::BTreeMap;

use redis::Commands as _;
use ta_persistence_api::ffi::ForeignManager;
use ta_persistence_api::{ErrorKind, PersistenceError, TaskPersistenceManager};
use ta_persistence_tests::redis_server::{
    python_index_key as index_key, python_task_key as task_key, sample_task as task, RedisServer,
};

/// One key as Redis holds it: type, absolute expiry (ms since the epoch, -1: none) and
/// the `DUMP` serialisation of its value.
type KeyState = (String, i64, Vec<u8>);

/// Every key of the database with its state. The expiry is read as an absolute time
/// (`PEXPIRETIME`), so two dumps taken apart compare equal when nothing was written.
fn dump(conn: &mut redis::Connection) -> BTreeMap<String, KeyState> {
    let keys: Vec<String> = conn.keys("*").expect("KEYS");
    keys.into_iter()
        .map(|key| {
            let kind: String = redis::cmd("TYPE").arg(&key).query(conn).expect("TYPE");
            let expiry: i64 = redis::cmd("PEXPIRETIME")
                .arg(&key)
                .query(conn)
                .expect("PEXPIRETIME");
            let value: Vec<u8> = redis::cmd("DUMP").arg(&key).query(conn).expect("DUMP");
            (key, (kind, expiry, value))
        })
        .collect()
}

/// Runs `call`, expects it to fail as a backend error naming `bad_key`, and checks that
/// no key changed.
async fn refused_without_a_trace<T: std::fmt::Debug>(
    conn: &mut redis::Connection,
    what: &str,
    bad_key: &str,
    call: impl std::future::Future<Output = Result<T, PersistenceError>>,
) {
    let before = dump(conn);
    let err = call.await.expect_err(&format!(
        "{what} must fail with {bad_key} of the wrong type"
    ));
    assert_eq!(err.kind(), ErrorKind::Backend, "{what}: {}", err.report());
    assert!(
        err.report().contains(bad_key) && err.report().contains("WRONGTYPE"),
        "{what}: the error names the key: {}",
        err.report()
    );
    assert!(
        !err.is_outcome_unknown(),
        "{what}: a refused write is known not to have happened"
    );
    let after = dump(conn);
    assert_eq!(before, after, "{what} changed keys although it failed");
}

/// Tasks t1 (r1, r2) and t2 (r2, r3) stored through the plugin, with the default TTL.
async fn seeded(server: &RedisServer) -> (ForeignManager, redis::Connection) {
    let store = server.plugin(&[]);
    store
        .create(task("t1", "2025-01-01T00:00:00", &["r1", "r2"]))
        .await
        .expect("create t1");
    store
        .create(task("t2", "2025-01-01T00:00:01", &["r2", "r3"]))
        .await
        .expect("create t2");
    (store, server.conn())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_meeting_a_wrong_typed_index_key_change_nothing() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let (store, mut conn) = seeded(&server).await;
    let planted = index_key("bad");
    let _: () = conn.set(&planted, "x").unwrap();

    // create: the new task's second index key is the planted string.
    refused_without_a_trace(
        &mut conn,
        "create",
        &planted,
        store.create(task("t3", "2025-01-01T00:00:02", &["r1", "bad"])),
    )
    .await;
    assert!(!conn.exists::<_, bool>(task_key("t3")).unwrap());

    // update and update_if_match: a new index key is the planted string.
    let moved = task("t1", "2025-01-01T00:00:00", &["r4", "bad"]);
    refused_without_a_trace(&mut conn, "update", &planted, store.update(moved.clone())).await;
    let etag = store.load_with_etag("t1").await.unwrap().unwrap().etag;
    refused_without_a_trace(
        &mut conn,
        "update_if_match",
        &planted,
        store.update_if_match(moved, &etag),
    )
    .await;

    // An old index key (one the stored document names and the update drops) is the
    // planted string: t2's r3 set replaced by a hash.
    let old = index_key("r3");
    let _: () = conn.del(&old).unwrap();
    let _: () = conn.hset(&old, "f", "v").unwrap();
    let _: () = conn.expire(&old, 500).unwrap();
    let renamed = task("t2", "2025-01-01T00:00:01", &["r2", "r5"]);
    refused_without_a_trace(
        &mut conn,
        "update (old key)",
        &old,
        store.update(renamed.clone()),
    )
    .await;
    let etag = store.load_with_etag("t2").await.unwrap().unwrap().etag;
    refused_without_a_trace(
        &mut conn,
        "update_if_match (old key)",
        &old,
        store.update_if_match(renamed, &etag),
    )
    .await;

    // delete: the stored document names an index key of the wrong type.
    refused_without_a_trace(&mut conn, "delete", &old, store.delete("t2")).await;
    assert_eq!(
        store.load("t2").await.unwrap(),
        Some(task("t2", "2025-01-01T00:00:01", &["r2", "r3"]))
    );

    // With the planted keys gone, the same calls succeed (the failure was the keys).
    let _: () = conn.del(&[&planted, &old]).unwrap();
    store
        .create(task("t3", "2025-01-01T00:00:02", &["r1", "bad"]))
        .await
        .unwrap();
    store.delete("t2").await.unwrap();
    assert_eq!(
        store
            .load_by_request_id("bad")
            .await
            .unwrap()
            .unwrap()
            .task_id,
        "t3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_meeting_a_wrong_typed_task_key_change_nothing() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let (store, mut conn) = seeded(&server).await;
    let planted = task_key("th");
    let _: () = conn.hset(&planted, "field", "value").unwrap();
    let _: () = conn.expire(&planted, 900).unwrap();
    let _: () = conn.sadd(index_key("r1"), "th").unwrap();

    // create: the id is taken, whatever holds it.
    let before = dump(&mut conn);
    let err = store
        .create(task("th", "2025-01-01T00:00:00", &["r1", "r9"]))
        .await
        .unwrap_err();
    assert!(err.is_already_exists(), "{}", err.report());
    assert_eq!(before, dump(&mut conn));

    let replacement = task("th", "2025-01-01T00:00:00", &["r9"]);
    refused_without_a_trace(
        &mut conn,
        "update",
        &planted,
        store.update(replacement.clone()),
    )
    .await;
    let etag = store.load_with_etag("t1").await.unwrap().unwrap().etag;
    refused_without_a_trace(
        &mut conn,
        "update_if_match",
        &planted,
        store.update_if_match(replacement, &etag),
    )
    .await;
    refused_without_a_trace(&mut conn, "delete", &planted, store.delete("th")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_meeting_a_wrong_typed_listing_key_change_nothing() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let (store, mut conn) = seeded(&server).await;
    let entries = "task_persistence:listing:entries";
    let all = "task_persistence:listing:all";
    assert_eq!(
        conn.hlen::<_, u64>(entries).unwrap(),
        2,
        "both tasks recorded"
    );
    assert_eq!(conn.zcard::<_, u64>(all).unwrap(), 2, "both tasks listed");

    // The listing index of the sessions the tasks move to is a string.
    let planted = "task_persistence:listing:session:elsewhere";
    let _: () = conn.set(planted, "x").unwrap();
    let mut moved = task("t3", "2025-01-01T00:00:02", &["r1"]);
    moved.session_id = "elsewhere".into();
    refused_without_a_trace(&mut conn, "create", planted, store.create(moved)).await;
    let mut moved = task("t1", "2025-01-01T00:00:00", &["r1", "r2"]);
    moved.session_id = "elsewhere".into();
    refused_without_a_trace(&mut conn, "update", planted, store.update(moved.clone())).await;
    let etag = store.load_with_etag("t1").await.unwrap().unwrap().etag;
    refused_without_a_trace(
        &mut conn,
        "update_if_match",
        planted,
        store.update_if_match(moved, &etag),
    )
    .await;

    // The listing index the stored tasks are in (their old one, for an update that
    // moves them) is a hash: moving, deleting fail; the tasks stay listed where they were.
    let _: () = conn.del(planted).unwrap();
    let old = "task_persistence:listing:user:user";
    let _: () = conn.rename(old, "saved").unwrap();
    let _: () = conn.hset(old, "f", "v").unwrap();
    let mut moved = task("t1", "2025-01-01T00:00:00", &["r1", "r2"]);
    moved.user_id = "someone".into();
    refused_without_a_trace(&mut conn, "update (old index)", old, store.update(moved)).await;
    refused_without_a_trace(&mut conn, "delete", old, store.delete("t2")).await;
    let _: () = conn.del(old).unwrap();
    let _: () = conn.rename("saved", old).unwrap();

    // The entries hash is a list: every write fails.
    let saved: Vec<(String, String)> = conn.hgetall(entries).unwrap();
    let _: () = conn.del(entries).unwrap();
    let _: () = conn.rpush(entries, "x").unwrap();
    refused_without_a_trace(
        &mut conn,
        "create (entries)",
        entries,
        store.create(task("t4", "2025-01-01T00:00:03", &["r7"])),
    )
    .await;
    refused_without_a_trace(
        &mut conn,
        "update (entries)",
        entries,
        store.update(task("t1", "2025-01-01T00:00:00", &["r1"])),
    )
    .await;
    refused_without_a_trace(&mut conn, "delete (entries)", entries, store.delete("t1")).await;

    // With the hash restored, the same writes succeed and keep the indexes.
    let _: () = conn.del(entries).unwrap();
    let _: () = conn.hset_multiple(entries, &saved).unwrap();
    store
        .create(task("t4", "2025-01-01T00:00:03", &["r7"]))
        .await
        .unwrap();
    store.delete("t2").await.unwrap();
    let listed: Vec<String> = conn.zrange(all, 0, -1).unwrap();
    assert_eq!(listed.len(), 2, "t1 and t4 listed, t2 gone: {listed:?}");
    let recorded: Vec<String> = conn.hkeys(entries).unwrap();
    assert_eq!(
        recorded
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>(),
        ["t1", "t4"].map(String::from).into_iter().collect()
    );
}
