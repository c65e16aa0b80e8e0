//! The Redis plugin in cluster mode, loaded by the host's loader, on real Redis Clusters
//! (3 masters, 3 replicas) started on loopback by each test: the conformance suite with
//! its listing and retention cases, the key layout by `CLUSTER KEYSLOT`, the commands
//! each operation sends, a listing walk while others write, a live slot migration under
//! load, and a killed master.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ta_persistence_api::conformance::retention::SUITE_POLICY;
use ta_persistence_api::conformance::{cases, retention_cases, run_case, run_retention_suite};
use ta_persistence_api::ffi::ForeignManager;
use ta_persistence_api::listing::{PageRequest, TaskFilter};
use ta_persistence_api::{DocumentManager, PersistenceError, TaskPersistenceManager};
use ta_persistence_tests::redis_cluster::RedisCluster;
use ta_persistence_tests::redis_server::{
    load_redis_plugin, sample_task, RedisServer, ServerOptions,
};

fn plugin(cluster: &RedisCluster, prefix: &str, extra: &[(&str, &str)]) -> ForeignManager {
    let mut vars = cluster.vars(prefix);
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    load_redis_plugin(&vars).expect("the Redis plugin loads in cluster mode")
}

/// The hash tag of a key: between the first `{` and the next `}`.
fn tag(key: &str) -> &str {
    let open = key.find('{').expect("a hash tag");
    let len = key[open + 1..].find('}').expect("a closed hash tag");
    &key[open + 1..open + 1 + len]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_on_a_cluster_and_every_key_is_in_its_designed_slot() {
    let Some(cluster) = RedisCluster::maybe_start() else {
        return;
    };
    let prefix = "ta-cluster";
    let store: Arc<dyn DocumentManager> = Arc::new(plugin(&cluster, prefix, &[]));
    let mut failed = Vec::new();
    for case in cases() {
        store.clear().await.expect("clear");
        let outcome = run_case(&case, Arc::clone(&store)).await;
        println!(
            "{:<60} {}",
            outcome.name,
            if outcome.passed {
                "ok"
            } else {
                &outcome.message
            }
        );
        if !outcome.passed {
            failed.push(format!("{}: {}", outcome.name, outcome.message));
        }
    }
    assert!(
        failed.is_empty(),
        "cases failed on the cluster:\n{}",
        failed.join("\n")
    );

    // Ids with braces and percent signs cannot break a tag; each key's slot is its tag's.
    let manager = plugin(&cluster, prefix, &[]);
    manager.clear().await.unwrap();
    let ids = ["plain", "a{b}c", "}{", "{", "%7B", "ü:*"];
    for (n, id) in ids.iter().enumerate() {
        let rids = [format!("r{n}"), format!("{{req}}{id}")];
        let rids: Vec<&str> = rids.iter().map(String::as_str).collect();
        let mut task = sample_task(id, "2025-01-01T00:00:00Z", &rids);
        // Sessions and users with braces too, each task in its own.
        task.session_id = format!("s{{{id}");
        task.user_id = format!("u}}{id}");
        manager.create(task.clone()).await.unwrap();
        let found = manager.load_by_request_id(rids[1]).await.unwrap();
        assert_eq!(found.map(|t| t.task_id), Some((*id).to_owned()));
        let page = PageRequest::default();
        for filter in [
            TaskFilter::all().session(&task.session_id),
            TaskFilter::all().user(&task.user_id),
        ] {
            let listed = manager.list_tasks(&filter, &page).await.unwrap();
            let listed: Vec<String> = listed.tasks.into_iter().map(|s| s.task_id).collect();
            assert_eq!(listed, [(*id).to_owned()], "{filter:?}");
        }
        // Moved to another session and back: each move prunes the member it left (a
        // mark, then a settle, in the index's marks hash, which Redis drops once empty).
        let mut moved = task.clone();
        moved.session_id = format!("moved{{{id}");
        manager.update(moved).await.unwrap();
        manager.update(task).await.unwrap();
    }
    let listed = manager
        .list_tasks(&TaskFilter::all(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.tasks.len(), ids.len());
    let keys = cluster.keys(&format!("{prefix}:*"));
    let count = |suffix: &str| keys.iter().filter(|k| k.ends_with(suffix)).count();
    // Per task: document, two records, two request-id indexes, a session index and a
    // user index (the moved-to session's is empty and gone); the index of all tasks.
    // Scripts touch an index and its marks hash together, which the cluster would refuse
    // (CROSSSLOT) if their slots differed; no prune was left half done, so no marks.
    assert_eq!(keys.len(), ids.len() * 7 + 1, "{keys:?}");
    assert_eq!(count(":marks"), 0, "{keys:?}");
    let mut task_slots = BTreeSet::new();
    let mut list_slots = BTreeSet::new();
    for key in &keys {
        let slot = cluster.keyslot(key);
        let tag = tag(key);
        assert_eq!(slot, cluster.keyslot(tag), "{key}");
        assert!(!tag.contains('{'), "{key}");
        if key.ends_with(":task") {
            assert!(tag.starts_with("t:"), "{key}");
            for record in ["}:request_ids", "}:listing"] {
                let record = key.replace("}:task", record);
                assert!(keys.contains(&record), "{key} has its record {record}");
                assert_eq!(cluster.keyslot(&record), slot, "{key}");
            }
            task_slots.insert(slot);
        } else if key.ends_with(":request_index") {
            assert!(tag.starts_with("r:"), "{key}");
        } else if key.ends_with(":list") || key.ends_with(":marks") {
            assert!(
                tag == "l:all" || tag.starts_with("l:s:") || tag.starts_with("l:u:"),
                "{key}"
            );
            // An index and its marks share the slot: one script touches both.
            let index = key.replace("}:marks", "}:list");
            assert_eq!(cluster.keyslot(&index), slot, "{key}");
            list_slots.insert(slot);
        } else {
            assert!(
                key.ends_with(":request_ids") || key.ends_with(":listing"),
                "{key}"
            );
        }
    }
    assert!(
        task_slots.len() > 1,
        "tasks spread over slots: {task_slots:?}"
    );
    assert!(
        list_slots.len() > 1,
        "listing indexes spread over slots: {list_slots:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_cases_pass_on_a_cluster_with_real_ttls() {
    let Some(cluster) = RedisCluster::maybe_start() else {
        return;
    };
    let report = run_retention_suite(
        |policy| {
            assert_eq!(policy.to_string(), SUITE_POLICY);
            let store: Arc<dyn DocumentManager> = Arc::new(plugin(
                &cluster,
                "ta-cluster-retention",
                &[
                    ("TA_PERSISTENCE_RETENTION", SUITE_POLICY),
                    ("TA_REDIS_TTL", "0"),
                ],
            ));
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
    assert!(report.is_success(), "{report}");

    // A retained status gives the task's keys its TTL; the indexes live at least as
    // long; a write into a status that is not retained makes them all persistent.
    let manager = plugin(
        &cluster,
        "ta-cluster-ttl",
        &[
            ("TA_PERSISTENCE_RETENTION", "completed=1h"),
            ("TA_REDIS_TTL", "0"),
        ],
    );
    let created = "2025-01-01T00:00:00Z";
    let mut task = sample_task("t", created, &["r"]);
    manager.create(task.clone()).await.unwrap();
    let pttl = |key: &str| -> i64 {
        let node = cluster.master_of(cluster.keyslot(key));
        redis::cmd("PTTL")
            .arg(key)
            .query(&mut cluster.nodes()[node].conn())
            .unwrap()
    };
    let keys = cluster.keys("ta-cluster-ttl:*");
    assert_eq!(keys.len(), 7, "{keys:?}");
    assert!(keys.iter().all(|k| pttl(k) == -1), "running: no TTL");
    task.status = ta_persistence_api::TaskStatus::Completed;
    manager.update(task.clone()).await.unwrap();
    let task_ttl = pttl("ta-cluster-ttl:{t:t}:task");
    assert!(task_ttl > 3_500_000 && task_ttl <= 3_600_000, "{task_ttl}");
    for key in &keys {
        let left = pttl(key);
        if key.contains("{t:") {
            assert!(left > 3_500_000 && left <= task_ttl, "{key}: {left}");
        } else {
            // Indexes that had none keep none: an expiry is never shortened or added
            // below a task that may have none.
            assert_eq!(left, -1, "{key}");
        }
    }
    task.status = ta_persistence_api::TaskStatus::Running;
    manager.update(task).await.unwrap();
    assert!(keys.iter().all(|k| pttl(k) == -1), "running again: no TTL");
}

/// Walks every page of `filter` with pages of `size`; the ids in the order listed.
async fn walk(manager: &ForeignManager, filter: &TaskFilter, size: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let first = PageRequest::new(size).expect("a valid page size");
    let mut request = first.clone();
    loop {
        let page = manager
            .list_tasks(filter, &request)
            .await
            .expect("a listing page");
        ids.extend(page.tasks.into_iter().map(|s| s.task_id));
        match page.next {
            Some(cursor) => request = first.clone().after(cursor),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_walk_on_a_cluster_is_exact_while_writers_move_tasks() {
    let Some(cluster) = RedisCluster::maybe_start() else {
        return;
    };
    let manager = Arc::new(plugin(&cluster, "ta-walk", &[]));
    let at = |n: usize| format!("2025-01-01T00:{:02}:{:02}Z", (n / 60) % 60, n % 60);
    // Stable tasks: in session "walk" throughout; writers change their status and items.
    let stable: Vec<String> = (0..120).map(|n| format!("stable-{n:03}")).collect();
    for (n, id) in stable.iter().enumerate() {
        let mut task = sample_task(id, &at(n % 40), &[]);
        task.session_id = "walk".into();
        manager.create(task).await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (manager, stop, stable) = (Arc::clone(&manager), Arc::clone(&stop), stable.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    // A newcomer that moves to another session and user, then leaves.
                    let id = format!("extra-{w}-{n}");
                    let mut extra = sample_task(&id, &at(n % 41), &[]);
                    extra.session_id = "walk".into();
                    manager.create(extra.clone()).await.unwrap();
                    extra.session_id = "elsewhere".into();
                    extra.user_id = format!("user-{w}");
                    manager.update(extra).await.unwrap();
                    if n % 2 == 0 {
                        manager.delete(&id).await.unwrap();
                    }
                    // A stable task changes status and items, never its place.
                    let sid = &stable[(w * 31 + n) % stable.len()];
                    let mut task = manager.load(sid).await.unwrap().unwrap();
                    task.status = ta_persistence_api::TaskStatus::Paused;
                    let rid = format!("{sid}-{w}-{n}");
                    task.items = sample_task(sid, &at(0), &[&rid]).items;
                    manager.update(task).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let walk_filter = TaskFilter::all().session("walk");
    let mut walks = 0;
    let started = Instant::now();
    while walks < 3 || started.elapsed() < Duration::from_secs(3) {
        for (filter, size) in [(&walk_filter, 7), (&TaskFilter::all(), 13)] {
            let walked = walk(&manager, filter, size).await;
            let distinct: BTreeSet<&String> = walked.iter().collect();
            assert_eq!(distinct.len(), walked.len(), "a task listed twice");
            let stable_seen: Vec<&String> = walked
                .iter()
                .filter(|id| id.starts_with("stable-"))
                .collect();
            let mut expected: Vec<(String, &String)> = stable
                .iter()
                .enumerate()
                .map(|(n, id)| (at(n % 40), id))
                .collect();
            // Listing order: newest first, ties by task id descending.
            expected.sort_by(|a, b| b.cmp(a));
            let expected: Vec<&String> = expected.into_iter().map(|(_, id)| id).collect();
            assert_eq!(stable_seen, expected, "every stable task, once, in order");
        }
        walks += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut writes, mut kept) = (0, 0);
    for w in writers {
        let rounds = w.await.unwrap();
        writes += rounds;
        // Each writer deleted the extras of its even rounds.
        kept += rounds / 2;
    }
    println!("{walks} walks of each index while {writes} write rounds ran");
    assert!(writes > 0);
    // Once the writers are done the walk is exact: only the stable tasks are in "walk",
    // every extra left "walk" for "elsewhere".
    let walked = walk(&manager, &walk_filter, 7).await;
    assert_eq!(walked.len(), stable.len(), "{walked:?}");
    let elsewhere = walk(&manager, &TaskFilter::all().session("elsewhere"), 50).await;
    assert!(elsewhere.iter().all(|id| id.starts_with("extra-")));
    assert_eq!(elsewhere.len(), kept, "the extras not deleted");
    // The walks pruned what they met: the "walk" index holds only the stable tasks.
    let key = "ta-walk:{l:s:walk}:list";
    let node = cluster.master_of(cluster.keyslot(key));
    let members: usize = redis::cmd("ZCARD")
        .arg(key)
        .query(&mut cluster.nodes()[node].conn())
        .unwrap();
    assert_eq!(members, stable.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_sends_the_commands_the_design_says() {
    let Some(cluster) = RedisCluster::maybe_start() else {
        return;
    };
    let manager = plugin(&cluster, "ta-count", &[]);
    let created = "2025-01-01T00:00:00Z";
    // Warm up: every script loaded on every master.
    for n in 0..20 {
        let id = format!("warm-{n}");
        manager
            .create(sample_task(&id, created, &["w1", "w2"]))
            .await
            .unwrap();
        manager
            .update(sample_task(&id, created, &["w2"]))
            .await
            .unwrap();
        manager.delete(&id).await.unwrap();
    }
    let measure = |label: &str| {
        let calls = cluster.command_calls();
        cluster.reset_stats();
        println!("{label}: {calls:?}");
        calls
    };
    measure("warm-up");
    let count = |calls: &BTreeMap<String, u64>, name: &str| calls.get(name).copied().unwrap_or(0);
    // `INFO commandstats` counts the commands scripts run too: the task scripts `GET`
    // the document and record they check, which the figures below include.

    manager
        .create(sample_task("t", created, &["r1", "r2"]))
        .await
        .unwrap();
    let c = measure("create, 2 request ids");
    // Index-add ×5 (2 request ids, 3 listing indexes), task write, index-confirm ×5;
    // the task script reads the two records it replaces.
    assert_eq!(count(&c, "evalsha"), 11, "{c:?}");
    assert_eq!(count(&c, "get"), 2, "{c:?}");
    assert_eq!(count(&c, "zadd"), 6, "{c:?}");

    manager
        .update(sample_task("t", created, &["r1", "r2", "r3"]))
        .await
        .unwrap();
    let c = measure("update adding a request id");
    // 6 + 1 + 6; the task script reads the document and both records.
    assert_eq!(count(&c, "evalsha"), 13, "{c:?}");
    assert_eq!(count(&c, "get"), 3, "{c:?}");

    manager
        .update(sample_task("t", created, &["r2", "r3"]))
        .await
        .unwrap();
    let c = measure("update dropping a request id");
    // 5 + 1 + 5, then mark and settle of the dropped one, with one read of the task.
    assert_eq!(count(&c, "evalsha"), 13, "{c:?}");
    assert_eq!(count(&c, "get"), 4, "{c:?}");

    let page = manager
        .list_tasks(
            &TaskFilter::all().session("session"),
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(page.tasks.len(), 1);
    let c = measure("list, one task");
    // One range read of the session's index, one read of the task: nothing else.
    assert_eq!(
        (count(&c, "zrangebylex"), count(&c, "get")),
        (1, 1),
        "{c:?}"
    );
    let sent: u64 = c
        .iter()
        .filter(|(name, _)| !["info", "config|resetstat"].contains(&name.as_str()))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(sent, 2, "{c:?}");

    manager.load("t").await.unwrap().unwrap();
    let c = measure("load");
    assert_eq!((count(&c, "get"), count(&c, "evalsha")), (1, 0), "{c:?}");

    manager.load_by_request_id("r2").await.unwrap().unwrap();
    let c = measure("load_by_request_id, one entry");
    assert_eq!((count(&c, "hkeys"), count(&c, "get")), (1, 1), "{c:?}");
    assert_eq!(count(&c, "evalsha"), 0, "{c:?}");

    manager.delete("t").await.unwrap();
    let c = measure("delete, 2 request ids");
    // Task script, then mark ×5 (2 request ids, 3 listing members), one read, settle ×5.
    assert_eq!((count(&c, "evalsha"), count(&c, "get")), (11, 4), "{c:?}");
    assert_eq!(manager.load_by_request_id("r2").await.unwrap(), None);
    assert!(
        cluster.keys("ta-count:*").is_empty(),
        "{:?}",
        cluster.keys("*")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mode_refuses_the_other_kind_of_server() {
    let Some(single) = RedisServer::maybe_start() else {
        return;
    };
    // A cluster-enabled node, not yet part of a cluster, is enough to be refused.
    let node =
        RedisServer::start_with(ServerOptions::default().args(&["--cluster-enabled", "yes"]));

    let vars = BTreeMap::from([
        ("TA_REDIS_CLUSTER".to_owned(), "true".to_owned()),
        (
            "TA_REDIS_NODES".to_owned(),
            format!("127.0.0.1:{}", single.port()),
        ),
    ]);
    let err = load_redis_plugin(&vars).unwrap_err().to_string();
    assert!(
        err.contains("TA_REDIS_CLUSTER=true") && err.contains("not a cluster node"),
        "{err}"
    );

    let err = load_redis_plugin(&node.vars_with(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Redis Cluster node") && err.contains("TA_REDIS_CLUSTER=true"),
        "{err}"
    );
}

/// What a worker of a load test had acknowledged: task id → the request ids of its last
/// acknowledged write.
type Acknowledged = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// Runs `workers` loops of create, update, lookup on `manager` until `stop`; records
/// acknowledged writes, and panics at the first error that is not transient.
fn start_workload(
    manager: &Arc<ForeignManager>,
    workers: usize,
    stop: &Arc<AtomicBool>,
    acknowledged: &Acknowledged,
    transient: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..workers)
        .map(|w| {
            let manager = Arc::clone(manager);
            let stop = Arc::clone(stop);
            let acknowledged = Arc::clone(acknowledged);
            let transient = Arc::clone(transient);
            tokio::spawn(async move {
                let created = "2025-01-01T00:00:00Z";
                let mut n = 0;
                let check = |e: PersistenceError| {
                    assert!(e.is_transient(), "a non-transient error under load: {e}");
                    transient.fetch_add(1, Ordering::Relaxed);
                };
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let id = format!("w{w}-{n}");
                    let first = [format!("{id}-a")];
                    let first: Vec<&str> = first.iter().map(String::as_str).collect();
                    match manager.create(sample_task(&id, created, &first)).await {
                        Ok(()) => {}
                        Err(e) => {
                            check(e);
                            continue;
                        }
                    }
                    acknowledged
                        .lock()
                        .expect("the record")
                        .insert(id.clone(), vec![format!("{id}-a")]);
                    let second = [format!("{id}-b"), format!("{id}-c")];
                    let second_refs: Vec<&str> = second.iter().map(String::as_str).collect();
                    match manager
                        .update(sample_task(&id, created, &second_refs))
                        .await
                    {
                        Ok(()) => {
                            acknowledged
                                .lock()
                                .expect("the record")
                                .insert(id.clone(), second.to_vec());
                        }
                        // Applied or not: either version is acceptable later, so the
                        // task is left out of the exact check.
                        Err(e) => {
                            acknowledged.lock().expect("the record").remove(&id);
                            check(e);
                            continue;
                        }
                    }
                    if let Err(e) = manager.load_by_request_id(&second[0]).await {
                        check(e);
                    }
                }
                n
            })
        })
        .collect()
}

/// Every acknowledged task loads with its last acknowledged request ids, and each of
/// those finds it.
async fn check_acknowledged(manager: &ForeignManager, acknowledged: &Acknowledged) {
    let acknowledged = acknowledged.lock().expect("the record").clone();
    assert!(!acknowledged.is_empty());
    for (id, rids) in &acknowledged {
        let task = manager
            .load(id)
            .await
            .expect("an acknowledged task loads")
            .unwrap_or_else(|| panic!("acknowledged task {id} lost"));
        let held: Vec<String> = task.items.iter().map(|i| i.request_id.clone()).collect();
        assert_eq!(&held, rids, "{id}");
        for rid in rids {
            let found = manager.load_by_request_id(rid).await.expect("a lookup");
            assert_eq!(found.map(|t| t.task_id), Some(id.clone()), "{rid}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_slot_migration_under_load_gives_only_transient_errors_and_loses_nothing() {
    let Some(cluster) = RedisCluster::maybe_start() else {
        return;
    };
    let manager = Arc::new(plugin(&cluster, "ta-reshard", &[]));
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Acknowledged = Arc::default();
    let transient = Arc::new(AtomicUsize::new(0));
    let workers = start_workload(&manager, 8, &stop, &acknowledged, &transient);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let masters = cluster.masters();
    let (from, to) = (masters[0], masters[1]);
    let slot_of_from = (0..16384u16)
        .find(|&s| cluster.master_of(s) == from)
        .unwrap();
    let args: Vec<String> = [
        "--cluster".to_owned(),
        "reshard".to_owned(),
        format!("127.0.0.1:{}", cluster.nodes()[to].port()),
        "--cluster-from".to_owned(),
        cluster.node_id(from),
        "--cluster-to".to_owned(),
        cluster.node_id(to),
        "--cluster-slots".to_owned(),
        "1000".to_owned(),
        "--cluster-pipeline".to_owned(),
        "5".to_owned(),
        "--cluster-yes".to_owned(),
    ]
    .to_vec();
    let started = Instant::now();
    let out = tokio::task::block_in_place(|| cluster.cli(&args));
    let moved_in = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut rounds = 0;
    for w in workers {
        rounds += w.await.unwrap();
    }
    assert!(!out.contains("[ERR]"), "reshard failed:\n{out}");
    cluster.wait_until_ok();
    assert_eq!(cluster.master_of(slot_of_from), to, "the slot moved");
    println!(
        "reshard of 1000 slots took {moved_in:?}; {rounds} workload rounds; {} transient errors",
        transient.load(Ordering::Relaxed)
    );
    check_acknowledged(&manager, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_over_and_the_plugin_recovers_without_a_restart() {
    let Some(mut cluster) = RedisCluster::maybe_start() else {
        return;
    };
    let prefix = "ta-failover";
    let manager = plugin(
        &cluster,
        prefix,
        &[
            ("TA_REDIS_WAIT_REPLICAS", "1"),
            ("TA_REDIS_TIMEOUT_MS", "3000"),
        ],
    );
    let created = "2025-01-01T00:00:00Z";
    let ids: Vec<String> = (0..60).map(|n| format!("f-{n}")).collect();
    for id in &ids {
        let rid = format!("{id}-r");
        manager
            .create(sample_task(id, created, &[&rid]))
            .await
            .unwrap();
    }
    // Kill the master of the first task's slot: every write above reached its replica.
    let victim = cluster.master_of(cluster.keyslot(&format!("{prefix}:{{t:f-0}}:task")));
    cluster.kill(victim);
    let killed_at = Instant::now();

    let mut errors = 0;
    let recovered = loop {
        match manager.load("f-0").await {
            Ok(found) => break found,
            Err(e) => {
                assert!(e.is_transient(), "not a transient error: {}", e.report());
                errors += 1;
            }
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "no recovery within a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "recovered after {:?} with {errors} typed errors",
        killed_at.elapsed()
    );
    assert!(errors > 0, "the failover was seen as errors first");
    assert_eq!(recovered.map(|t| t.task_id).as_deref(), Some("f-0"));
    cluster.wait_until_ok();
    // Every write acknowledged after WAIT survived the failover; the same manager serves
    // reads, lookups and writes again.
    for id in &ids {
        let task = manager
            .load(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} lost"));
        assert_eq!(&task.task_id, id);
        let rid = format!("{id}-r");
        let found = manager.load_by_request_id(&rid).await.unwrap();
        assert_eq!(found.map(|t| t.task_id).as_ref(), Some(id));
    }
    // Writes need a replica to acknowledge them; the promoted master has none now, so
    // they are applied but reported as not replicated (outcome unknown); on a loaded
    // machine the operation's own limit may come first, with the same outcome.
    let err = manager
        .update(sample_task("f-0", created, &["f-0-r", "f-0-new"]))
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown() && err.is_transient(), "{err}");
    assert!(
        err.report().contains("replicas acknowledged")
            || err.kind() == ta_persistence_api::ErrorKind::Timeout,
        "{}",
        err.report()
    );
    let found = manager.load_by_request_id("f-0-new").await.unwrap();
    assert_eq!(found.map(|t| t.task_id).as_deref(), Some("f-0"));
}
