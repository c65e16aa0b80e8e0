//! What `ta-persist` prints can be trusted by a terminal and a log: ids are quoted and
//! escaped, colour appears only on a terminal without `NO_COLOR`, and `put` reads a
//! bounded amount of input.

use std::process::{Command, Stdio};

use ta_persistence_tests::cdylib::{ta_persist, workspace_root};
use ta_persistence_tests::cli::{code, run, stderr};

fn minimal() -> std::path::PathBuf {
    workspace_root().join("tests/fixtures/wire/canonical/minimal.json")
}

/// The minimal task with another id.
fn task_with_id(id: &str) -> String {
    let mut task: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(minimal()).expect("the fixture reads"))
            .expect("the fixture is JSON");
    task["task_id"] = id.into();
    task["items"][0]["task_id"] = id.into();
    task.to_string()
}

#[test]
fn ids_with_newlines_and_escapes_are_printed_quoted() {
    let hostile = "x\nERROR forged line \u{1b}[31mred";
    for args in [["delete", hostile], ["get", hostile], ["find", hostile]] {
        let out = run(&args, &[], b"");
        assert_eq!(code(&out), 3, "{}", stderr(&out));
        let text = stderr(&out);
        assert_eq!(
            text.lines().count(),
            1,
            "one line, nothing forged: {text:?}"
        );
        assert!(
            text.contains(r"'x\nERROR forged line \u{1b}[31mred'"),
            "{text:?}"
        );
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }

    let out = run(&["put", "-"], &[], task_with_id("a\nb").as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "created task 'a\\nb'\n");
}

#[test]
fn put_reads_at_most_the_limit_and_names_it() {
    // An endless input stops at the default limit, with an error that names it.
    let out = run(&["put", "/dev/zero"], &[], b"");
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("larger than the 64 MiB limit")
            && stderr(&out).contains("--max-size")
            && stderr(&out).contains("TA_PERSIST_MAX_INPUT"),
        "{}",
        stderr(&out)
    );

    let file = minimal();
    let file = file.to_str().unwrap();
    let size = std::fs::metadata(file).unwrap().len();
    let exact = size.to_string();
    let under = (size - 1).to_string();
    // A file of exactly the limit is read; one byte less is refused, from a file and from
    // standard input alike.
    let out = run(&["put", "--max-size", &exact, file], &[], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(&["put", "--max-size", &under, file], &[], b"");
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("the {under} bytes limit")),
        "{}",
        stderr(&out)
    );
    let text = std::fs::read(file).unwrap();
    let out = run(&["update", "--max-size", &under, "-"], &[], &text);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let out = run(&["put", "-"], &[("TA_PERSIST_MAX_INPUT", "1K")], &text);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(&["put", "-"], &[("TA_PERSIST_MAX_INPUT", "100")], &text);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("100 bytes limit"), "{}", stderr(&out));
}

/// Runs `ta-persist info` (with a plugin that is missing, so the host logs an error)
/// on a pseudo-terminal, through `script`; returns what the terminal showed.
fn info_on_a_terminal(no_color: Option<&str>) -> String {
    let mut cmd = Command::new("script");
    // `script` runs the command through a shell: quote the path for it.
    let shown = format!("'{}' info", ta_persist().display());
    cmd.args(["-qec", &shown, "/dev/null"])
        .env("RUST_LOG", "warn")
        .env("TA_PERSISTENCE_MODULE", "/nonexistent/libnothing.so")
        .env("TA_PERSISTENCE_CLASS", "Anything")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    if let Some(value) = no_color {
        cmd.env("NO_COLOR", value);
    }
    let out = cmd
        .output()
        .expect("script(1) (util-linux) runs, to give the command a terminal");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    // A pipe (a log file, a collector) gets plain text.
    let out = run(
        &["info"],
        &[
            ("TA_PERSISTENCE_MODULE", "/nonexistent/libnothing.so"),
            ("TA_PERSISTENCE_CLASS", "Anything"),
            ("RUST_LOG", "warn"),
        ],
        b"",
    );
    assert_eq!(code(&out), 9);
    let text = stderr(&out);
    assert!(text.contains("falling back"), "the error is logged: {text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");

    let coloured = info_on_a_terminal(None);
    assert!(coloured.contains("falling back"), "{coloured:?}");
    assert!(
        coloured.contains("\u{1b}["),
        "a terminal gets colour: {coloured:?}"
    );
    let plain = info_on_a_terminal(Some("1"));
    assert!(plain.contains("falling back"), "{plain:?}");
    assert!(
        !plain.contains('\u{1b}'),
        "NO_COLOR turns colour off: {plain:?}"
    );
}
