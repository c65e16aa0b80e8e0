//! The Redis plugin's connection: passwords, TLS, a server that dies and comes back in
//! the middle of a workload, and two independently constructed managers racing on one
//! server. Each test runs the real plugin library against its own `redis-server`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Commands as _;
use ta_persistence_api::ffi::ForeignManager;
use ta_persistence_api::{
    AgentTask, AgentTaskItem, ErrorKind, MultiModalItem, PersistenceError, Role,
    TaskPersistenceManager, Timestamp,
};
use ta_persistence_tests::redis_server::{
    load_redis_plugin, sample_task as task, RedisServer, ServerOptions,
};

/// When the sample tasks were created.
const T0: &str = "2025-01-01T00:00:00";

/// The constructor's error text, which must exist.
fn construct_error(vars: &BTreeMap<String, String>) -> String {
    match load_redis_plugin(vars) {
        Ok(_) => panic!("the constructor succeeded"),
        Err(e) => {
            println!("constructor error: {e}");
            e.to_string()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_server_needs_the_right_password() {
    let password = "correct-horse-battery-staple";
    let Some(server) = RedisServer::maybe_start_with(ServerOptions::default().password(password))
    else {
        return;
    };
    let store = load_redis_plugin(&server.vars()).expect("the right password works");
    store.create(task("t1", T0, &["r1"])).await.unwrap();
    assert!(store.load("t1").await.unwrap().is_some());

    let wrong = "wrong-password-1234";
    let err = construct_error(&server.vars_with(&[("TA_REDIS_PWD", wrong)]));
    assert!(!err.contains(wrong) && !err.contains(password), "{err}");
    assert!(
        err.contains(&server.port().to_string()),
        "the error names the server: {err}"
    );

    let mut no_password = server.vars();
    no_password.remove("TA_REDIS_PWD");
    let err = construct_error(&no_password);
    assert!(!err.contains(password), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_works_with_the_configured_ca_and_only_with_it() {
    let Some(server) = RedisServer::maybe_start_with(ServerOptions::default().tls()) else {
        return;
    };
    let store = load_redis_plugin(&server.vars()).expect("TLS with the test CA");
    store.create(task("secure", T0, &["rs"])).await.unwrap();
    assert_eq!(
        store
            .load_by_request_id("rs")
            .await
            .unwrap()
            .unwrap()
            .task_id,
        "secure"
    );
    store.delete("secure").await.unwrap();
    store.health().await.unwrap();

    // Without the CA the server's certificate is not trusted.
    let mut no_ca = server.vars();
    no_ca.remove("TA_REDIS_CA_CERT");
    let err = construct_error(&no_ca);
    assert!(err.contains("Redis at localhost"), "{err}");
    // Plain text to a TLS port gets no answer the client accepts.
    let mut plain = server.vars_with(&[("TA_REDIS_SSL", "false"), ("TA_REDIS_TIMEOUT_MS", "1000")]);
    plain.remove("TA_REDIS_CA_CERT");
    let err = construct_error(&plain);
    assert!(err.contains("Redis at localhost"), "{err}");
    // An empty variable is refused, not read as unset.
    let err = construct_error(&server.vars_with(&[("TA_REDIS_CA_CERT", "")]));
    assert!(
        err.contains("TA_REDIS_CA_CERT") && err.contains("empty"),
        "{err}"
    );
    // A CA file without a certificate is refused at start-up, naming the variable,
    // instead of failing every connection later as an unknown issuer.
    let garbage = server.dir().join("garbage-ca.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let garbage = garbage.to_str().unwrap().to_owned();
    let err = construct_error(&server.vars_with(&[("TA_REDIS_CA_CERT", &garbage)]));
    assert!(
        err.contains("TA_REDIS_CA_CERT") && err.contains("no PEM certificate"),
        "{err}"
    );
    assert!(!err.contains("UnknownIssuer"), "{err}");
    // A malformed switch is refused before anything connects.
    let err = construct_error(&server.vars_with(&[("TA_REDIS_SSL", "sometimes")]));
    assert!(
        err.contains("TA_REDIS_SSL") && err.contains("sometimes"),
        "{err}"
    );
}

/// Every request id of every stored task is in its set, and every member of every set
/// is a stored task holding that request id.
fn assert_index_consistent(conn: &mut redis::Connection, prefix: &str) {
    // KEYS is fine here: a test's own small server, after the workload.
    let task_keys: Vec<String> = conn.keys(format!("{prefix}:task:*")).expect("KEYS");
    let index_keys: Vec<String> = conn
        .keys(format!("{prefix}:request_index:*"))
        .expect("KEYS");
    let mut holders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for key in &task_keys {
        let json: String = conn.get(key).expect("GET");
        let task = AgentTask::from_json(&json).expect("every stored document is a valid task");
        assert_eq!(key, &format!("{prefix}:task:{}", task.task_id));
        for rid in task.request_ids() {
            holders
                .entry(rid.to_owned())
                .or_default()
                .insert(task.task_id.clone());
        }
    }
    let mut indexed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for key in &index_keys {
        let rid = key
            .trim_start_matches(&format!("{prefix}:request_index:"))
            .to_owned();
        indexed.insert(rid, conn.smembers(key).expect("SMEMBERS"));
    }
    assert_eq!(indexed, holders, "the index agrees with the documents");
}

fn is_outage(err: &PersistenceError) -> bool {
    matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_workload_comes_back_consistent() {
    // An append-only file synced on every write, so what was acknowledged survives a kill.
    let options =
        ServerOptions::default().args(&["--appendonly", "yes", "--appendfsync", "always"]);
    let Some(mut server) = RedisServer::maybe_start_with(options) else {
        return;
    };
    let prefix = "killtest";
    let store: Arc<dyn TaskPersistenceManager> =
        Arc::new(server.plugin(&[("TA_REDIS_PREFIX", prefix), ("TA_REDIS_TIMEOUT_MS", "400")]));

    let deadline = Instant::now() + Duration::from_millis(6000);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let (mut ok, mut failed) = (Vec::new(), Vec::new());
                let mut n = 0;
                while Instant::now() < deadline {
                    n += 1;
                    let id = format!("w{w}-{n}");
                    let rid = format!("r{}", n % 5);
                    let outcome = async {
                        store.create(task(&id, T0, &[&rid, &id])).await?;
                        store.update(task(&id, T0, &[&rid, "after"])).await?;
                        store.load_by_request_id(&rid).await?;
                        if n % 3 == 0 {
                            store.delete(&id).await?;
                        }
                        Ok::<_, PersistenceError>(())
                    }
                    .await;
                    match outcome {
                        Ok(()) => ok.push(Instant::now()),
                        Err(e) => {
                            failed.push((Instant::now(), e));
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(700)).await;
    let killed_at = Instant::now();
    server.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = store.health().await.unwrap_err();
    assert!(is_outage(&err), "health while down: {}", err.report());
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.start_again();
    let back_at = Instant::now();

    let settled = back_at + Duration::from_millis(2000);
    let mut outage_errors = 0;
    for worker in workers {
        let (ok, failed) = worker.await.expect("a worker never panics");
        assert!(
            ok.iter().any(|when| *when < killed_at),
            "work before the kill"
        );
        assert!(
            ok.iter().any(|when| *when > settled),
            "work after the restart"
        );
        for (when, err) in &failed {
            assert!(is_outage(err), "only outage errors: {}", err.report());
            assert!(
                *when >= killed_at,
                "no error before the kill: {}",
                err.report()
            );
            assert!(
                *when < settled,
                "no error once the server is back: {}",
                err.report()
            );
        }
        outage_errors += failed.len();
        for (_, err) in failed.iter().take(3) {
            println!("during the outage: {}", err.report());
        }
    }
    assert!(outage_errors > 0, "the outage was noticed");
    // Recovery is quick: health answers again within a second or two of the restart.
    let mut healthy = store.health().await;
    while healthy.is_err() && back_at.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        healthy = store.health().await;
    }
    healthy.expect("healthy again after the restart");
    store
        .create(task("after-restart", T0, &["r-after"]))
        .await
        .unwrap();
    assert_index_consistent(&mut server.conn(), prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_racing_on_one_server_lose_nothing() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let vars = server.vars_with_prefix("race");
    let first: Arc<ForeignManager> = Arc::new(load_redis_plugin(&vars).unwrap());
    let second: Arc<ForeignManager> = Arc::new(load_redis_plugin(&vars).unwrap());

    // Both create each of 50 ids at once: exactly one wins per id.
    let mut races = Vec::new();
    for n in 0..50 {
        for (who, store) in [("first", &first), ("second", &second)] {
            let store = Arc::clone(store);
            races.push(tokio::spawn(async move {
                let mut t = task(&format!("id-{n}"), T0, &[&format!("rid-{n}")]);
                t.user_id = who.to_owned();
                (n, who, store.create(t).await)
            }));
        }
    }
    let mut winners: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for race in races {
        let (n, who, result) = race.await.unwrap();
        match result {
            Ok(()) => winners.entry(n).or_default().push(who),
            Err(e) => assert!(e.is_already_exists(), "{}", e.report()),
        }
    }
    assert_eq!(winners.len(), 50);
    for (n, who) in &winners {
        assert_eq!(who.len(), 1, "id-{n} had {who:?}");
        let stored = first.load(&format!("id-{n}")).await.unwrap().unwrap();
        assert_eq!(stored.user_id, who[0], "the stored task is the winner's");
    }

    // Both append 20 items to one task with read-modify-write: none is lost.
    first.create(task("shared", T0, &["r0"])).await.unwrap();
    let mut writers = Vec::new();
    for (who, store) in [("first", &first), ("second", &second)] {
        let store = Arc::clone(store);
        writers.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for n in 0..20 {
                loop {
                    let current = store.load_with_etag("shared").await.unwrap().unwrap();
                    let mut next = current.value.clone();
                    let rid = format!("{who}-{n}");
                    next.items.push(AgentTaskItem::new(
                        "shared",
                        &rid,
                        Role::Assistant,
                        MultiModalItem::text(rid.as_str()),
                        Timestamp::now_utc(),
                    ));
                    match store.update_if_match(next, &current.etag).await {
                        Ok(_) => break,
                        Err(e) if e.is_conflict() => conflicts += 1,
                        Err(e) => panic!("{}", e.report()),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for writer in writers {
        conflicts += writer.await.unwrap();
    }
    let done = second.load("shared").await.unwrap().unwrap();
    assert_eq!(
        done.items.len(),
        41,
        "1 + 2 x 20 items ({conflicts} conflicts retried)"
    );
    for who in ["first", "second"] {
        for n in 0..20 {
            let rid = format!("{who}-{n}");
            assert_eq!(
                first
                    .load_by_request_id(&rid)
                    .await
                    .unwrap()
                    .unwrap()
                    .task_id,
                "shared"
            );
        }
    }
    assert_index_consistent(&mut server.conn(), "race");
}

#[tokio::test(flavor = "current_thread")]
async fn the_plugin_serves_a_current_thread_host_and_drops_inside_it() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    // Constructed, used and dropped on the host runtime's only thread: the plugin never
    // blocks on its own runtime there and never drops a runtime inside async code.
    let store = server.plugin(&[("TA_REDIS_PREFIX", "ct")]);
    store.create(task("ct-1", T0, &["r"])).await.unwrap();
    assert_eq!(
        store
            .load_by_request_id("r")
            .await
            .unwrap()
            .unwrap()
            .task_id,
        "ct-1"
    );
    drop(store);
    let again = server.plugin(&[("TA_REDIS_PREFIX", "ct")]);
    assert!(again.load("ct-1").await.unwrap().is_some());
}

/// Blocks `server` with `DEBUG SLEEP` from a connection of its own, and returns once the
/// server has stopped answering (a `PING` from a third connection times out), with the
/// thread that wakes it up.
fn put_to_sleep(server: &RedisServer, seconds: f64) -> std::thread::JoinHandle<()> {
    let mut sleeper = server.conn();
    let mut probe = server.conn();
    probe
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("a read timeout");
    let thread = std::thread::spawn(move || {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(seconds)
            .query::<()>(&mut sleeper)
            .expect("DEBUG SLEEP");
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis::cmd("PING").query::<String>(&mut probe).is_ok() {
        assert!(Instant::now() < deadline, "the server never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    thread
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_timed_out_has_an_unknown_outcome_and_may_be_stored() {
    let options = ServerOptions::default().args(&["--enable-debug-command", "local"]);
    let Some(server) = RedisServer::maybe_start_with(options) else {
        return;
    };
    let store = server.plugin(&[("TA_REDIS_TIMEOUT_MS", "300")]);
    store.create(task("before", T0, &["rb"])).await.unwrap();

    // The server sleeps longer than the limit: the create is sent, waits behind the
    // sleep, and the plugin gives up on it.
    let waking = put_to_sleep(&server, 1.5);
    let err = store
        .create(task("slow", T0, &["rs"]))
        .await
        .expect_err("a create behind a sleeping server must time out");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{}", err.report());
    assert!(err.is_outcome_unknown(), "{}", err.report());
    assert!(!err.is_retryable(), "{}", err.report());
    // A read that timed out changed nothing and can be sent again as it is.
    let read = store
        .load("before")
        .await
        .expect_err("a read must time out");
    assert_eq!(read.kind(), ErrorKind::Timeout, "{}", read.report());
    assert!(read.is_retryable() && !read.is_outcome_unknown());
    waking.join().expect("the sleeping connection");

    // Why the outcome is unknown: the script ran once the server woke up, so the task
    // the caller was told timed out is stored, and a blind retry says it already exists.
    let stored = store.load("slow").await.unwrap();
    assert_eq!(stored, Some(task("slow", T0, &["rs"])));
    let retry = store.create(task("slow", T0, &["rs"])).await.unwrap_err();
    assert!(retry.is_already_exists(), "{}", retry.report());
}
