//! The `ta-persist` command line, run as a user would: `check`, `info` and
//! `conformance` against real libraries, and the task commands with their exit codes
//! against a real Redis through the plugin.

use ta_persistence_tests::cdylib::plugin;
use ta_persistence_tests::cli::{code, run, stderr, stdout};
use ta_persistence_tests::redis_server::RedisServer;

#[test]
fn check_passes_a_plugin_and_names_the_failed_step_of_a_broken_one() {
    let memory = plugin("ta-plugin-memory");
    let out = run(
        &[
            "check",
            memory.to_str().unwrap(),
            "--class",
            "MemoryTaskPersistenceManager",
        ],
        &[],
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert_eq!(
        stdout(&out).matches("[pass]").count(),
        ta_persistence::loader::CHECKS.len(),
        "{}",
        stdout(&out)
    );

    let no_root = plugin("ta-fixture-no-root");
    let out = run(&["check", no_root.to_str().unwrap()], &[], b"");
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(
        text.contains("[FAIL] 4. root-module symbol is exported"),
        "{text}"
    );
    assert_eq!(text.matches("[pass]").count(), 3, "{text}");
}

#[test]
fn info_reports_the_backend_and_exits_9_after_a_fallback() {
    let out = run(&["info", "--json"], &[], b"");
    assert_eq!(code(&out), 0);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["backend"], "memory");

    let memory = plugin("ta-plugin-memory");
    let vars = [
        ("TA_PERSISTENCE_MODULE", memory.to_str().unwrap()),
        ("TA_PERSISTENCE_CLASS", "MemoryTaskPersistenceManager"),
    ];
    let out = run(&["info", "--json"], &vars, b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["backend"], "plugin");
    assert_eq!(json["plugin"], "ta-plugin-memory");
    assert_eq!(json["health"], "ok");

    let vars = [
        ("TA_PERSISTENCE_MODULE", "/nonexistent/libnothing.so"),
        ("TA_PERSISTENCE_CLASS", "Anything"),
    ];
    let out = run(&["info", "--json"], &vars, b"");
    assert_eq!(code(&out), 9);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["backend"], "memory (fallback)");
    assert_eq!(json["failed_check"], 1);

    let strict = [vars[0], vars[1], ("TA_PERSISTENCE_STRICT", "true")];
    let out = run(&["info"], &strict, b"");
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("TA_PERSISTENCE_STRICT"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn conformance_runs_the_suite_against_a_library() {
    let memory = plugin("ta-plugin-memory");
    let out = run(
        &[
            "conformance",
            memory.to_str().unwrap(),
            "--class",
            "MemoryTaskPersistenceManager",
            "--filter",
            "etag",
        ],
        &[],
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let text = stdout(&out);
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert!(last.ends_with("passed, 0 failed"), "{text}");
}

#[test]
fn task_commands_round_trip_through_redis_with_distinct_exit_codes() {
    let Some(server) = RedisServer::maybe_start() else {
        return;
    };
    let redis = plugin("ta-plugin-redis");
    let port = server.port().to_string();
    let prefix = format!("ta-cli-{}", std::process::id());
    let vars = [
        ("TA_PERSISTENCE_MODULE", redis.to_str().unwrap()),
        ("TA_PERSISTENCE_CLASS", "RedisTaskPersistenceManager"),
        ("TA_PERSISTENCE_STRICT", "true"),
        ("TA_REDIS_HOST", "127.0.0.1"),
        ("TA_REDIS_PORT", port.as_str()),
        ("TA_REDIS_PREFIX", prefix.as_str()),
    ];
    let fixtures = ta_persistence_tests::cdylib::workspace_root().join("tests/fixtures/wire");
    let minimal = fixtures.join("canonical/minimal.json");
    let text = std::fs::read_to_string(&minimal).unwrap();

    let put = run(&["put", minimal.to_str().unwrap()], &vars, b"");
    assert_eq!(code(&put), 0, "{}", stderr(&put));
    let again = run(&["put", "-"], &vars, &std::fs::read(&minimal).unwrap());
    assert_eq!(code(&again), 4, "already exists: {}", stderr(&again));

    let got = run(&["get", "task-1"], &vars, b"");
    assert_eq!(code(&got), 0);
    assert_eq!(stdout(&got).trim_end(), text.trim_end());
    let found = run(&["find", "req-1"], &vars, b"");
    assert_eq!(code(&found), 0);
    assert_eq!(stdout(&found).trim_end(), text.trim_end());
    assert_eq!(code(&run(&["get", "no-such-task"], &vars, b"")), 3);

    let rejected = fixtures.join("rejected/unknown_role.json");
    let bad = run(&["update", rejected.to_str().unwrap()], &vars, b"");
    assert_eq!(code(&bad), 5);
    assert!(stderr(&bad).contains("items[0].role"), "{}", stderr(&bad));

    assert_eq!(code(&run(&["delete", "task-1"], &vars, b"")), 0);
    assert_eq!(code(&run(&["delete", "task-1"], &vars, b"")), 3);
    assert_eq!(code(&run(&["clear"], &vars, b"")), 5, "clear needs --yes");
    assert_eq!(code(&run(&["clear", "--yes"], &vars, b"")), 0);

    // The server gone: strict start-up refuses (1); without strict, the commands refuse
    // to work on the fallback store (6).
    drop(server);
    assert_eq!(code(&run(&["get", "task-1"], &vars, b"")), 1);
    let lenient = &vars[..2];
    let lenient: Vec<(&str, &str)> = lenient
        .iter()
        .copied()
        .chain([
            ("TA_REDIS_PORT", port.as_str()),
            ("TA_REDIS_TIMEOUT_MS", "500"),
        ])
        .collect();
    assert_eq!(code(&run(&["get", "task-1"], &lenient, b"")), 6);
}

#[test]
fn bench_compares_with_a_saved_result_phase_by_phase() {
    let dir = std::env::temp_dir().join(format!("ta-bench-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("before.json");
    let quick = [
        "--tasks",
        "200",
        "--concurrency",
        "1",
        "--no-warmup",
        "--no-memory",
    ];

    let out = run(&[&["bench", "--json"][..], &quick].concat(), &[], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    std::fs::write(&saved, &out.stdout).unwrap();

    let file = saved.to_str().unwrap();
    let out = run(
        &[&["bench", "--compare", file][..], &quick].concat(),
        &[],
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("compared with {file}")), "{text}");
    for phase in ["create", "load", "find", "turn", "delete"] {
        let row = text
            .lines()
            .skip_while(|l| !l.starts_with("compared with"))
            .find(|l| l.split_whitespace().nth(1) == Some(phase))
            .unwrap_or_else(|| panic!("no {phase} row in {text}"));
        let ratio: f64 = row.split_whitespace().last().unwrap().parse().unwrap();
        assert!(ratio > 0.0, "{row}");
    }

    std::fs::write(&saved, "{\"not\": \"a result\"}").unwrap();
    let out = run(
        &[&["bench", "--compare", file][..], &quick].concat(),
        &[],
        b"",
    );
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a `bench --json` result"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
