//! `ta-persist` on a damaged plugin file: truncated copies of a real plugin make the
//! dynamic loader die of `SIGBUS`, so the command line must refuse them with a message and
//! an exit code, in `check` (the diagnostic tool itself) and in `info`, strict or not.

use ta_persistence_tests::cli::{code, run, text};
use ta_persistence_tests::fixtures::{truncated_plugin, TRUNCATED_SIZES};

#[test]
fn check_reports_a_truncated_library_instead_of_dying() {
    for size in TRUNCATED_SIZES {
        let path = truncated_plugin(size);
        let path = path.to_str().expect("a UTF-8 scratch path");
        let out = run(
            &["check", path, "--class", "MemoryTaskPersistenceManager"],
            &[],
            b"",
        );
        let what = format!("check of a copy cut at {size} bytes");
        assert_eq!(code(&out), 1, "{what}: {}", text(&out));
        let shown = text(&out);
        assert!(
            shown.contains("[FAIL] 2. file is a complete shared library for this platform")
                && shown.contains("truncated or damaged library"),
            "{what}: {shown}"
        );
        assert!(shown.contains("[pass] 1."), "{what}: {shown}");
        assert!(!shown.contains("[pass] 3."), "{what}: {shown}");
    }
}

#[test]
fn info_falls_back_or_refuses_with_the_reason_instead_of_dying() {
    let path = truncated_plugin(TRUNCATED_SIZES[2]);
    let path = path.to_str().expect("a UTF-8 scratch path");
    let vars = [
        ("TA_PERSISTENCE_MODULE", path),
        ("TA_PERSISTENCE_CLASS", "MemoryTaskPersistenceManager"),
    ];

    let out = run(&["info", "--json"], &vars, b"");
    assert_eq!(code(&out), 9, "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("info --json");
    assert_eq!(json["failed_check"], 2, "{json}");
    assert!(
        json.to_string().contains("truncated or damaged library"),
        "{json}"
    );

    let strict = [vars[0], vars[1], ("TA_PERSISTENCE_STRICT", "true")];
    let out = run(&["info"], &strict, b"");
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("truncated or damaged library"),
        "{}",
        text(&out)
    );
}
