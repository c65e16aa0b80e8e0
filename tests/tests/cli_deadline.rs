//! `ta-persist` against a plugin that never answers: `check` refuses a constructor that
//! blocks past `TA_PERSISTENCE_TIMEOUT_MS` and reports a hanging health check as failing,
//! and the task commands end with a backend failure instead of hanging. Real plugin
//! library: `ta-fixture-misbehaving`.

use ta_persistence_tests::cdylib::plugin;
use ta_persistence_tests::cli::{code, run, text};

#[test]
fn check_holds_construction_and_health_to_the_deadline() {
    let lib = plugin("ta-fixture-misbehaving");
    let lib = lib.to_str().expect("a UTF-8 path");
    let deadline = [
        ("TA_PERSISTENCE_TIMEOUT_MS", "300"),
        ("TA_FIXTURE_BLOCK_MS", "60000"),
    ];

    let out = run(
        &["check", lib, "--class", "SlowConstructor"],
        &deadline,
        b"",
    );
    let shown = text(&out);
    assert_eq!(code(&out), 1, "{shown}");
    assert!(
        shown.contains("[FAIL] 10. constructor succeeds")
            && shown.contains("did not return within 300 ms"),
        "{shown}"
    );

    let out = run(&["check", lib, "--class", "HangingManager"], &deadline, b"");
    let shown = text(&out);
    assert_eq!(code(&out), 0, "{shown}");
    assert!(shown.contains("[pass] 10. constructor succeeds"), "{shown}");
    assert!(
        shown.contains("health: failing") && shown.contains("300 ms"),
        "{shown}"
    );
}

#[test]
fn task_commands_on_a_hanging_plugin_end_with_a_backend_failure() {
    let lib = plugin("ta-fixture-misbehaving");
    let vars = [
        ("TA_PERSISTENCE_MODULE", lib.to_str().expect("a UTF-8 path")),
        ("TA_PERSISTENCE_CLASS", "HangingManager"),
        ("TA_PERSISTENCE_TIMEOUT_MS", "300"),
    ];
    for args in [
        &["get", "t1"][..],
        &["find", "r1"],
        &["delete", "t1"],
        &["clear", "--yes"],
    ] {
        let out = run(args, &vars, b"");
        let shown = text(&out);
        assert_eq!(code(&out), 6, "{args:?}: {shown}");
        assert!(shown.contains("300 ms"), "{args:?}: {shown}");
    }
    let out = run(&["info"], &vars, b"");
    assert_eq!(code(&out), 6, "info: {}", text(&out));
}
