//! `conformance` and `bench` never touch the tasks a store keeps unless told to: against a
//! real Redis holding an operator's tasks, the whole keyspace is the same before and after
//! each run (also a run that fails part-way, and one interrupted with Ctrl-C), and
//! `--in-place` runs against the configured store as documented.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ta_persistence_tests::cdylib::{plugin, workspace_root};
use ta_persistence_tests::cli::{code, command, run, stderr};
use ta_persistence_tests::redis_server::{RedisServer, REDIS_CLASS};

/// The plugin variables of a store on `server` with the default prefix (the Python
/// original's `task_persistence`), as an operator would configure it.
fn operator_vars(server: &RedisServer) -> Vec<(String, String)> {
    let redis = plugin("ta-plugin-redis");
    let mut vars = vec![
        (
            "TA_PERSISTENCE_MODULE".to_owned(),
            redis.display().to_string(),
        ),
        ("TA_PERSISTENCE_CLASS".to_owned(), REDIS_CLASS.to_owned()),
        ("TA_PERSISTENCE_STRICT".to_owned(), "true".to_owned()),
    ];
    vars.extend(server.vars());
    vars
}

fn borrowed(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A task document with this id, from the canonical minimal fixture.
fn task_json(id: &str, text: &str) -> String {
    let path = workspace_root().join("tests/fixtures/wire/canonical/minimal.json");
    let mut task: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture reads"))
            .expect("the fixture is JSON");
    task["task_id"] = id.into();
    task["items"][0]["task_id"] = id.into();
    task["items"][0]["item"]["content"] = text.into();
    task.to_string()
}

/// Stores the operator's tasks through `ta-persist put`.
fn put_tasks(vars: &[(&str, &str)], ids: &[&str]) {
    for id in ids {
        let json = task_json(id, &format!("kept by the operator: {id}"));
        let out = run(&["put", "-"], vars, json.as_bytes());
        assert_eq!(code(&out), 0, "put {id}: {}", stderr(&out));
    }
}

/// Every key of the server with its value (a set's members sorted) and whether it
/// expires: what "the store is unchanged" means.
fn keyspace(server: &RedisServer) -> BTreeMap<String, String> {
    let mut conn = server.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut conn)
        .expect("the test server answers");
    keys.into_iter()
        .map(|key| {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query(&mut conn)
                .expect("the test server answers");
            let value = match kind.as_str() {
                "string" => {
                    let v: Vec<u8> = redis::cmd("GET")
                        .arg(&key)
                        .query(&mut conn)
                        .expect("the test server answers");
                    String::from_utf8_lossy(&v).into_owned()
                }
                "set" => {
                    let mut members: Vec<String> = redis::cmd("SMEMBERS")
                        .arg(&key)
                        .query(&mut conn)
                        .expect("the test server answers");
                    members.sort();
                    members.join("\n")
                }
                other => format!("({other})"),
            };
            let ttl: i64 = redis::cmd("TTL")
                .arg(&key)
                .query(&mut conn)
                .expect("the test server answers");
            (key, format!("{value} [expires: {}]", ttl >= 0))
        })
        .collect()
}

#[test]
fn conformance_and_bench_leave_a_store_with_tasks_as_it_was() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let vars = operator_vars(&server);
    let vars = borrowed(&vars);
    put_tasks(&vars, &["mine-1", "mine-2", "mine-3"]);
    let before = keyspace(&server);
    assert_eq!(
        before
            .keys()
            .filter(|k| k.starts_with("task_persistence:task:"))
            .count(),
        3,
        "{before:?}"
    );

    let redis = plugin("ta-plugin-redis");
    let out = run(
        &[
            "conformance",
            redis.to_str().unwrap(),
            "--class",
            REDIS_CLASS,
        ],
        &vars,
        b"",
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        stderr(&out)
            .contains("scratch namespace TA_REDIS_PREFIX=\"task_persistence:ta-persist-scratch:"),
        "{}",
        stderr(&out)
    );
    assert_eq!(keyspace(&server), before, "conformance changed the store");

    let out = run(
        &[
            "bench",
            "--tasks",
            "300",
            "--concurrency",
            "1,16",
            "--no-memory",
        ],
        &vars,
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("create"),
        "the bench reports its phases"
    );
    assert_eq!(keyspace(&server), before, "bench changed the store");
}

#[test]
fn a_bench_that_fails_part_way_leaves_the_store_as_it_was() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let vars = operator_vars(&server);
    let vars = borrowed(&vars);
    put_tasks(&vars, &["mine-1", "mine-2"]);
    let before = keyspace(&server);

    // Room for a few hundred of the bench's tasks, then every write fails (out of
    // memory), while removals still go through.
    let mut conn = server.conn();
    let info: String = redis::cmd("INFO").arg("memory").query(&mut conn).unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO reports used_memory");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .exec(&mut conn)
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used + 1_000_000)
        .exec(&mut conn)
        .unwrap();

    let out = run(
        &[
            "bench",
            "--tasks",
            "5000",
            "--concurrency",
            "8",
            "--no-warmup",
            "--no-memory",
        ],
        &vars,
        b"",
    );
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .exec(&mut conn)
        .unwrap();
    assert_eq!(code(&out), 1, "the bench must fail: {}", stderr(&out));
    assert!(
        stderr(&out).contains("create phase"),
        "it fails while creating: {}",
        stderr(&out)
    );
    assert_eq!(
        keyspace(&server),
        before,
        "the failed bench left data behind or changed the store"
    );
}

#[test]
fn in_place_runs_against_the_configured_store_as_documented() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let vars = operator_vars(&server);
    let vars = borrowed(&vars);
    // `task-7` is one of the bench's own ids: in place, the bench fails on it, removes the
    // tasks it created before, and keeps the operator's.
    put_tasks(&vars, &["mine-1", "task-7"]);
    let before = keyspace(&server);
    let out = run(
        &[
            "bench",
            "--in-place",
            "--tasks",
            "50",
            "--concurrency",
            "1",
            "--no-warmup",
            "--no-memory",
        ],
        &vars,
        b"",
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("task 'task-7': a task with this id already exists"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        keyspace(&server),
        before,
        "in place, bench removes only its own tasks"
    );

    // In place, conformance clears the configured store: the operator's tasks go.
    let redis = plugin("ta-plugin-redis");
    let out = run(
        &[
            "conformance",
            redis.to_str().unwrap(),
            "--class",
            REDIS_CLASS,
            "--in-place",
            "--filter",
            "etag",
        ],
        &vars,
        b"",
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr(&out).contains("--in-place"), "{}", stderr(&out));
    let after = keyspace(&server);
    assert!(
        after.keys().all(|k| !k.starts_with("task_persistence:")),
        "in place, conformance clears the store, also at the end: {after:?}"
    );
    assert_eq!(code(&run(&["get", "mine-1"], &vars, b"")), 3);
}

#[test]
fn an_interrupted_bench_clears_its_scratch_namespace() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let vars = operator_vars(&server);
    let vars = borrowed(&vars);
    put_tasks(&vars, &["mine-1"]);
    let before = keyspace(&server);

    let mut child: Child = command(
        &[
            "bench",
            "--tasks",
            "50000",
            "--concurrency",
            "4",
            "--no-warmup",
            "--no-memory",
        ],
        &vars,
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("ta-persist starts");
    // Interrupt once the bench has written a good number of tasks.
    let mut conn = server.conn();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let keys: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
        if keys as usize > before.len() + 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the bench wrote nothing");
        assert!(child.try_wait().unwrap().is_none(), "the bench ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let out = child.wait_with_output().expect("the bench ends");
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert_eq!(
        keyspace(&server),
        before,
        "the interrupted bench left data behind"
    );
}

#[test]
fn a_plugin_without_a_scratch_namespace_is_refused_unless_in_place() {
    let misbehaving = plugin("ta-fixture-misbehaving");
    let vars = [
        ("TA_PERSISTENCE_MODULE", misbehaving.to_str().unwrap()),
        ("TA_PERSISTENCE_CLASS", "PanickingManager"),
    ];
    let bench = [
        "bench",
        "--tasks",
        "20",
        "--concurrency",
        "2",
        "--no-warmup",
        "--no-memory",
    ];
    let out = run(&bench, &vars, b"");
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("plugin \"misbehaving\" offers no scratch namespace")
            && stderr(&out).contains("--in-place"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty(), "nothing ran");

    let out = run(
        &[
            "conformance",
            misbehaving.to_str().unwrap(),
            "--class",
            "PanickingManager",
        ],
        &[],
        b"",
    );
    assert_eq!(code(&out), 5, "{}", stderr(&out));

    // With the flag it runs (this fixture keeps no request-id index, so its `find` phase
    // then fails: what matters here is that the run was not refused).
    let in_place: Vec<&str> = bench.iter().copied().chain(["--in-place"]).collect();
    let out = run(&in_place, &vars, b"");
    assert_ne!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("running against the configured store as it is (--in-place)")
            && stderr(&out).contains("misbehaving/PanickingManager C=2"),
        "{}",
        stderr(&out)
    );
}
