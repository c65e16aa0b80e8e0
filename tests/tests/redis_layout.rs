//! The Redis plugin and the Python original share one database: the key layout and
//! document bytes both ways, TTLs (expiry, none, and index sets that never expire before
//! their tasks), and request ids read back out of stored documents however they are
//! spelled. Each test runs the real plugin library against its own `redis-server`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use redis::Commands as _;
use ta_persistence_api::{
    AgentTask, AgentTaskItem, MultiModalItem, Role, TaskPersistenceManager, Timestamp,
};
use ta_persistence_tests::cdylib::workspace_root;
use ta_persistence_tests::redis_server::{
    python_index_key as index_key, python_task_key as task_key, sample_task as task, RedisServer,
};

const PREFIX: &str = "task_persistence";

fn members(conn: &mut redis::Connection, key: &str) -> BTreeSet<String> {
    conn.smembers(key).expect("SMEMBERS")
}

fn pttl(conn: &mut redis::Connection, key: &str) -> i64 {
    conn.pttl(key).expect("PTTL")
}

/// The canonical documents the Python original writes, by file name.
fn python_documents() -> BTreeMap<String, String> {
    let dir = workspace_root().join("tests/fixtures/wire/canonical");
    std::fs::read_dir(&dir)
        .expect("the wire fixtures")
        .map(|entry| {
            let path = entry.expect("a fixture").path();
            let text = std::fs::read_to_string(&path).expect("a fixture file");
            let name = path
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            (name, text.trim_end().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_written_by_python_are_read_updated_and_deleted() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = server.plugin(&[]);
    let mut conn = server.conn();
    for (name, json) in python_documents() {
        let expected = AgentTask::from_json(&json).expect("a canonical document");
        let id = expected.task_id.clone();
        let rids: BTreeSet<String> = expected
            .request_ids()
            .into_iter()
            .map(str::to_owned)
            .collect();
        // Exactly what the Python original does on create: SETEX, then SADD + EXPIRE.
        let _: () = conn.set_ex(task_key(&id), &json, 3600).unwrap();
        for rid in &rids {
            let _: () = conn.sadd(index_key(rid), &id).unwrap();
            let _: () = conn.expire(index_key(rid), 3600).unwrap();
        }

        assert_eq!(
            store.load(&id).await.unwrap(),
            Some(expected.clone()),
            "{name}"
        );
        for rid in &rids {
            let found = store.load_by_request_id(rid).await.unwrap();
            assert_eq!(found.map(|t| t.task_id), Some(id.clone()), "{name}: {rid}");
        }

        // An update through the plugin: the new document, byte for byte, and the index
        // moved to the new request ids, with TTLs on everything.
        let mut next = expected.clone();
        next.items.push(AgentTaskItem::new(
            &id,
            "req-new",
            Role::Assistant,
            MultiModalItem::text("ok"),
            Timestamp::parse("2025-11-03T15:00:00").unwrap(),
        ));
        store.update(next.clone()).await.unwrap();
        let stored: String = conn.get(task_key(&id)).unwrap();
        assert_eq!(stored, next.to_json(), "{name}");
        assert!(
            members(&mut conn, &index_key("req-new")).contains(&id),
            "{name}"
        );
        for rid in rids.iter().chain(["req-new".to_owned()].iter()) {
            assert!(
                members(&mut conn, &index_key(rid)).contains(&id),
                "{name}: {rid}"
            );
            assert!(
                pttl(&mut conn, &index_key(rid)) >= pttl(&mut conn, &task_key(&id)) - 50,
                "{name}: {rid}"
            );
        }
        assert!(pttl(&mut conn, &task_key(&id)) > 3_590_000, "{name}");

        store.delete(&id).await.unwrap();
        let left: Vec<String> = conn.keys(format!("{PREFIX}:*")).unwrap();
        assert!(left.is_empty(), "{name}: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_plugin_writes_is_what_python_writes() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = server.plugin(&[("TA_REDIS_TTL", "120")]);
    let mut conn = server.conn();
    for (name, json) in python_documents() {
        let task = AgentTask::from_json(&json).expect("a canonical document");
        let id = task.task_id.clone();
        store.create(task.clone()).await.unwrap();
        let stored: String = conn.get(task_key(&id)).unwrap();
        assert_eq!(
            stored, json,
            "{name}: the stored bytes are the Python original's"
        );
        let task_ttl = pttl(&mut conn, &task_key(&id));
        assert!(
            (110_000..=120_000).contains(&task_ttl),
            "{name}: {task_ttl}"
        );
        for rid in task.request_ids() {
            assert_eq!(
                members(&mut conn, &index_key(rid)),
                BTreeSet::from([id.clone()]),
                "{name}"
            );
            assert!(pttl(&mut conn, &index_key(rid)) >= task_ttl - 50, "{name}");
        }
        store.delete(&id).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_expire_and_lookups_prune_what_expired() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let short = server.plugin(&[("TA_REDIS_TTL", "1")]);
    let long = server.plugin(&[("TA_REDIS_TTL", "60")]);
    let mut conn = server.conn();
    short
        .create(task("brief", "2025-01-01T00:00:00", &["shared", "own"]))
        .await
        .unwrap();
    long.create(task("lasting", "2025-01-01T00:00:09", &["shared"]))
        .await
        .unwrap();
    assert!(pttl(&mut conn, &task_key("brief")) <= 1000);
    assert!(
        pttl(&mut conn, &index_key("shared")) > 50_000,
        "the set lives as long as its longest task"
    );
    assert_eq!(
        short
            .load_by_request_id("shared")
            .await
            .unwrap()
            .unwrap()
            .task_id,
        "brief"
    );

    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(short.load("brief").await.unwrap(), None);
    assert_eq!(short.load_by_request_id("own").await.unwrap(), None);
    let found = short.load_by_request_id("shared").await.unwrap();
    assert_eq!(
        found.unwrap().task_id,
        "lasting",
        "the expired task is skipped"
    );
    assert_eq!(
        members(&mut conn, &index_key("shared")),
        BTreeSet::from(["lasting".to_owned()]),
        "and pruned"
    );
    assert!(!conn.exists::<_, bool>(index_key("own")).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_zero_means_no_expiry_for_tasks_and_their_sets() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = server.plugin(&[("TA_REDIS_TTL", "0")]);
    let mut conn = server.conn();
    // A set another writer gave a TTL: a task without expiry makes it persistent.
    let _: () = conn.sadd(index_key("old"), "someone-else").unwrap();
    let _: () = conn.expire(index_key("old"), 30).unwrap();
    store
        .create(task("forever", "2025-01-01T00:00:00", &["r1", "old"]))
        .await
        .unwrap();
    for key in [task_key("forever"), index_key("r1"), index_key("old")] {
        assert_eq!(pttl(&mut conn, &key), -1, "{key}");
    }
    store
        .update(task("forever", "2025-01-01T00:00:00", &["r2"]))
        .await
        .unwrap();
    assert_eq!(pttl(&mut conn, &task_key("forever")), -1);
    assert_eq!(pttl(&mut conn, &index_key("r2")), -1);
    assert!(!conn.exists::<_, bool>(index_key("r1")).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_set_never_expires_before_a_task_it_lists() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let long = server.plugin(&[("TA_REDIS_TTL", "1000")]);
    let short = server.plugin(&[("TA_REDIS_TTL", "10")]);
    let mut conn = server.conn();
    long.create(task("a", "2025-01-01T00:00:00", &["r"]))
        .await
        .unwrap();
    short
        .create(task("b", "2025-01-01T00:00:01", &["r"]))
        .await
        .unwrap();
    assert!(
        pttl(&mut conn, &index_key("r")) > 990_000,
        "a shorter TTL never shortens the set's"
    );
    assert!(pttl(&mut conn, &task_key("b")) <= 10_000);
    short
        .update(task("a", "2025-01-01T00:00:00", &["r"]))
        .await
        .unwrap();
    assert!(pttl(&mut conn, &index_key("r")) > 990_000);
    let very_long = server.plugin(&[("TA_REDIS_TTL", "5000")]);
    very_long
        .update(task("b", "2025-01-01T00:00:01", &["r"]))
        .await
        .unwrap();
    let set_ttl = pttl(&mut conn, &index_key("r"));
    assert!(set_ttl > 4_990_000, "a longer TTL extends it: {set_ttl}");
    for id in ["a", "b"] {
        assert!(set_ttl >= pttl(&mut conn, &task_key(id)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_move_request_ids_with_escapes_and_ignore_lookalikes_in_opaque_content() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let store = server.plugin(&[]);
    let mut conn = server.conn();
    // Ids the scripts must read through JSON escapes, and a "request_id" key inside a
    // tool call's arguments naming another task's request id.
    let odd = ["quote\"d", "back\\slash", "tab\there", "ünï", "slash/ok"];
    let mut json = task("odd", "2025-01-01T00:00:00", &odd).to_json();
    json = json.replacen(
        "\"pending_tool_calls\":null",
        "\"pending_tool_calls\":[{\"request_id\":\"theirs\",\"arguments\":{\"request_id\":\"quote\\\"d\"}}]",
        1,
    );
    let with_lookalike = AgentTask::from_json(&json).expect("a valid task");
    store
        .create(task("other", "2025-01-01T00:00:00", &["theirs"]))
        .await
        .unwrap();
    store.create(with_lookalike).await.unwrap();
    for rid in odd {
        assert_eq!(
            members(&mut conn, &index_key(rid)),
            BTreeSet::from(["odd".to_owned()]),
            "{rid:?}"
        );
    }

    store
        .update(task("odd", "2025-01-01T00:00:00", &["plain"]))
        .await
        .unwrap();
    for rid in odd {
        assert!(
            !conn.exists::<_, bool>(index_key(rid)).unwrap(),
            "{rid:?} was removed"
        );
        assert_eq!(store.load_by_request_id(rid).await.unwrap(), None);
    }
    assert_eq!(
        members(&mut conn, &index_key("theirs")),
        BTreeSet::from(["other".to_owned()])
    );
    assert_eq!(
        store
            .load_by_request_id("plain")
            .await
            .unwrap()
            .unwrap()
            .task_id,
        "odd"
    );

    // Plain ids with the lookalike: read by the scan alone, without a full decode.
    let json = task("scan", "2025-01-01T00:00:00", &["s1", "s2"])
        .to_json()
        .replacen(
            "\"pending_tool_calls\":null",
            "\"pending_tool_calls\":[{\"request_id\":\"theirs\"}]",
            1,
        );
    store
        .create(AgentTask::from_json(&json).unwrap())
        .await
        .unwrap();
    store
        .update(task("scan", "2025-01-01T00:00:00", &["s3"]))
        .await
        .unwrap();
    assert!(!conn.exists::<_, bool>(index_key("s1")).unwrap());
    assert!(!conn.exists::<_, bool>(index_key("s2")).unwrap());
    assert_eq!(
        members(&mut conn, &index_key("theirs")),
        BTreeSet::from(["other".to_owned()])
    );
    store.delete("scan").await.unwrap();

    // The same through delete, from a document with escaped ids.
    store
        .update(task("odd", "2025-01-01T00:00:00", &odd))
        .await
        .unwrap();
    store.delete("odd").await.unwrap();
    let left: BTreeSet<String> = conn.keys(format!("{PREFIX}:*")).unwrap();
    let listing = |rest: &str| format!("{PREFIX}:listing:{rest}");
    assert_eq!(
        left,
        BTreeSet::from([
            index_key("theirs"),
            task_key("other"),
            listing("all"),
            listing("entries"),
            listing("session:session"),
            listing("user:user"),
        ])
    );
}
