//! A fallback is never silent, even in an application that installs no `tracing`
//! subscriber: the README's first example (`host/examples/quickstart.rs`, the same code)
//! is run as a user would run it, pointed at a library that does not exist, and must
//! name the fallback and its reason on stderr exactly once. The `embed` example, which
//! installs a subscriber, must not get the line a second time on stderr.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use ta_persistence_tests::cdylib::workspace_root;

/// Builds an example of the host crate and returns its executable.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .args(["-p", "ta-persistence", "--example", name])
        .arg("--message-format=json-render-diagnostics");
    let shown = format!("{cmd:?}");
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "{shown} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("{shown} reported no executable"));
    built.push((name.to_owned(), path.clone()));
    path
}

/// Runs an example with only the given `TA_*` variables and no `RUST_LOG`.
fn run(name: &str, vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(example(name));
    cmd.env_remove("RUST_LOG");
    for (var, _) in std::env::vars() {
        if var.to_ascii_uppercase().contains("PERSIST") {
            cmd.env_remove(var);
        }
    }
    cmd.envs(vars.iter().copied());
    cmd.output().expect("the example runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn missing_library() -> String {
    workspace_root()
        .join("target/no-such-dir/libno_such_plugin.so")
        .display()
        .to_string()
}

#[test]
fn the_readme_example_without_a_subscriber_names_the_fallback_on_stderr_once() {
    let path = missing_library();
    let out = run(
        "quickstart",
        &[
            ("TA_PERSISTENCE_MODULE", &path),
            ("TA_PERSISTENCE_CLASS", "RedisTaskPersistenceManager"),
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let reason = format!("{path}: no such file");
    assert_eq!(stderr.matches(&reason).count(), 1, "stderr:\n{stderr}");
    assert_eq!(
        stderr.matches("falling back to the built-in").count(),
        1,
        "stderr:\n{stderr}"
    );
    // The application's own first line says so too, from the factory.
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains("FALLBACK") && first.contains(&reason),
        "stdout:\n{stdout}"
    );
}

#[test]
fn the_readme_example_is_quiet_when_nothing_went_wrong() {
    let out = run("quickstart", &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stderr, "", "nothing to report, nothing on stderr");
    assert!(
        stdout.starts_with("persistence: built-in in-memory store\n"),
        "{stdout}"
    );
    assert!(stdout.contains("read back: Some(\"task-1\")"), "{stdout}");
}

#[test]
fn a_misspelled_module_variable_is_named_on_stderr_and_refused_when_strict() {
    let path = missing_library();
    let vars = [
        ("TA_PERSISTANCE_MODULE", path.as_str()),
        ("TA_PERSISTENCE_CLASS", "RedisTaskPersistenceManager"),
    ];
    let out = run("quickstart", &vars);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr
            .matches("did you mean TA_PERSISTENCE_MODULE?")
            .count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr
            .matches("\"TA_PERSISTANCE_MODULE\" looks like a misspelled TA_PERSISTENCE_MODULE")
            .count(),
        1,
        "{stderr}"
    );

    let strict = [vars[0], vars[1], ("TA_PERSISTENCE_STRICT", "true")];
    let out = run("quickstart", &strict);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "strict must refuse to start:\n{stdout}"
    );
    assert!(!stdout.contains("persistence:"), "{stdout}");
    assert!(stderr.contains("TA_PERSISTANCE_MODULE"), "{stderr}");
}

#[test]
fn with_a_subscriber_the_fallback_is_logged_and_not_written_again() {
    let path = missing_library();
    let out = run(
        "embed",
        &[
            ("TA_PERSISTENCE_MODULE", &path),
            ("TA_PERSISTENCE_CLASS", "RedisTaskPersistenceManager"),
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("ta-persistence: error"), "{stderr}");
    // The example's subscriber writes to stdout: its error line, and the example's own.
    let reason = format!("{path}: no such file");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("falling back") && l.contains(&reason)),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("persistence: ") && l.contains("FALLBACK")),
        "{stdout}"
    );
}

#[test]
fn the_readme_shows_the_example_these_tests_run() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let example =
        std::fs::read_to_string(workspace_root().join("host/examples/quickstart.rs")).unwrap();
    let start = readme
        .find("```rust\n")
        .expect("the README has a Rust example")
        + 8;
    let len = readme[start..].find("```").expect("the example ends");
    let snippet = &readme[start..start + len];
    assert!(
        example.contains(snippet),
        "README's first example differs from host/examples/quickstart.rs:\n{snippet}"
    );
}
