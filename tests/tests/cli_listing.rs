//! `ta-persist list` and `purge`: their refusals of bad input (exit 5, before any store
//! is opened), and their output on the built-in store, which is new and empty in each
//! process.

use ta_persistence_tests::cli::{code, run, stderr, stdout};

const RETENTION: &str = "TA_PERSISTENCE_RETENTION";

#[test]
fn bad_statuses_limits_and_cursors_are_invalid_input() {
    let out = run(&["list", "--status", "completed,done"], &[], b"");
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("\"done\" is not a status"),
        "{}",
        stderr(&out)
    );
    for limit in ["0", "1001"] {
        let out = run(&["list", "--limit", limit], &[], b"");
        assert_eq!(code(&out), 5, "{}", stderr(&out));
        assert!(stderr(&out).contains("1 to 1000"), "{}", stderr(&out));
    }
    let out = run(
        &["list", "--cursor", "1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
        &[],
        b"",
    );
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cursor is not valid"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn an_empty_store_lists_a_header_or_nothing_in_json() {
    let out = run(&["list"], &[], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["TASK", "ID", "SESSION", "USER", "STATUS", "CREATED", "LAST", "UPDATED", "ITEMS"]
    );
    let out = run(&["list", "--all", "--json", "--user", "u"], &[], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn purge_reports_a_count_and_the_dry_run_the_policy() {
    let out = run(&["purge"], &[(RETENTION, "completed=1d")], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "0\n");
    let out = run(
        &["purge", "--dry-run"],
        &[(RETENTION, "failed=30d, completed=7d")],
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "policy: completed=7d,failed=30d\ncompleted 0\nfailed 0\ntotal 0\n"
    );
    let out = run(&["purge", "--dry-run"], &[], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).ends_with("total 0\n"), "{}", stdout(&out));
}

#[test]
fn a_malformed_policy_is_a_configuration_error_naming_the_variable() {
    for args in [&["purge"][..], &["list"][..]] {
        let out = run(args, &[(RETENTION, "running=1d")], b"");
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains(RETENTION), "{}", stderr(&out));
    }
}
