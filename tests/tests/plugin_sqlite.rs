//! The SQLite plugin through its real library, loaded by the host: the conformance
//! suite, tasks that survive SIGKILL, and two processes racing on one database file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ta_persistence::loader::load_plugin;
use ta_persistence::TaskPersistenceManager;
use ta_persistence_api::conformance::{run_retention_suite, run_suite};
use ta_persistence_api::ffi::ForeignManager;
use ta_persistence_api::DocumentManager;
use ta_persistence_tests::cdylib::plugin;

const CLASS: &str = "SqliteTaskPersistenceManager";

/// A fresh database path for one test (under cargo's temp dir for integration tests).
fn scratch_db(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "plugin-sqlite-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test setup");
    dir.join("tasks.db")
}

fn open(db: &Path) -> ForeignManager {
    open_with(db, &[])
}

fn open_with(db: &Path, extra: &[(&str, &str)]) -> ForeignManager {
    let mut vars = BTreeMap::from([("TA_SQLITE_PATH".to_owned(), db.display().to_string())]);
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let (_, manager) =
        load_plugin(&plugin("ta-plugin-sqlite"), Some(CLASS), &vars).expect("the plugin loads");
    manager
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_against_the_sqlite_plugin_library() {
    let report = run_suite(
        || async { Arc::new(open(&scratch_db("suite"))) as Arc<dyn DocumentManager> },
        None,
    )
    .await;
    println!("{report}");
    assert!(report.is_success(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_cases_pass_against_the_sqlite_plugin_library() {
    let report = run_retention_suite(
        |policy| async move {
            let policy = policy.to_string();
            let db = scratch_db("retention");
            let store = open_with(&db, &[("TA_PERSISTENCE_RETENTION", policy.as_str())]);
            Arc::new(store) as Arc<dyn DocumentManager>
        },
        None,
    )
    .await;
    println!("{report}");
    assert!(report.is_success(), "{report}");
    assert!(report.passed() > 0, "{report}");
}

/// A `ta-test-writer` child creating `<prefix>-0..<count>` on `db`, started and ready
/// (its store constructed), waiting for `go`.
fn writer(
    db: &Path,
    vars: &[(&str, &str)],
    prefix: &str,
    count: u64,
    session: &str,
) -> (Child, BufReader<ChildStdout>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ta-test-writer"));
    cmd.arg(plugin("ta-plugin-sqlite"))
        .arg(CLASS)
        .args([prefix, &count.to_string(), "16", session])
        .env("TA_SQLITE_PATH", db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the writer starts");
    let mut out = BufReader::new(child.stdout.take().expect("test setup"));
    let mut line = String::new();
    out.read_line(&mut line).expect("test setup");
    assert_eq!(line.trim(), "ready", "the writer did not start");
    (child, out)
}

fn go(child: &mut Child) {
    child
        .stdin
        .as_mut()
        .expect("test setup")
        .write_all(b"go\n")
        .expect("test setup");
    child
        .stdin
        .as_mut()
        .expect("test setup")
        .flush()
        .expect("test setup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_create_survives_sigkill() {
    for mode in ["full", "normal"] {
        let db = scratch_db(&format!("kill-{mode}"));
        let vars = [("TA_SQLITE_SYNCHRONOUS", mode)];
        let (mut child, mut out) = writer(&db, &vars, "k", 10_000_000, "s");
        go(&mut child);
        let mut acknowledged = Vec::new();
        let mut line = String::new();
        // Killed mid-workload: 16 callers have creates in flight.
        while acknowledged.len() < 2_000 {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "the writer stopped early"
            );
            match line.trim().split_once(' ') {
                Some(("ok", id)) => acknowledged.push(id.to_owned()),
                _ => panic!("unexpected answer: {line}"),
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Lines already in the pipe were acknowledged before the kill too.
        for rest in out.lines() {
            let rest = rest.unwrap();
            if let Some(id) = rest.strip_prefix("ok ") {
                acknowledged.push(id.to_owned());
            }
        }
        let store = open_with(&db, &vars);
        let mut missing = Vec::new();
        for id in &acknowledged {
            if store.load(id).await.unwrap().is_none() {
                missing.push(id.clone());
            }
        }
        println!(
            "{mode}: {} acknowledged, {} missing",
            acknowledged.len(),
            missing.len()
        );
        assert!(
            missing.is_empty(),
            "{mode}: acknowledged but lost: {missing:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_racing_on_one_file_make_exactly_one_winner_per_id() {
    let db = scratch_db("race");
    // Create the file first, so both processes start on a prepared database.
    drop(open(&db));
    let count = 600;
    let (mut a, out_a) = writer(&db, &[], "race", count, "A");
    let (mut b, out_b) = writer(&db, &[], "race", count, "B");
    go(&mut a);
    go(&mut b);
    let answers = |out: BufReader<ChildStdout>| -> (BTreeSet<String>, BTreeSet<String>) {
        let (mut won, mut lost) = (BTreeSet::new(), BTreeSet::new());
        for line in out.lines() {
            let line = line.unwrap();
            match line.split_once(' ') {
                Some(("ok", id)) => assert!(won.insert(id.to_owned())),
                Some(("lost", id)) => assert!(lost.insert(id.to_owned())),
                _ => panic!("unexpected answer: {line}"),
            }
        }
        (won, lost)
    };
    let (won_a, lost_a) = answers(out_a);
    let (won_b, lost_b) = answers(out_b);
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    let all: BTreeSet<String> = (0..count).map(|n| format!("race-{n}")).collect();
    assert_eq!(won_a.len() + lost_a.len(), all.len());
    assert_eq!(won_b.len() + lost_b.len(), all.len());
    assert!(won_a.is_disjoint(&won_b), "an id was created twice");
    assert_eq!(&won_a | &won_b, all, "an id was created by neither");
    assert_eq!(lost_a, won_b);
    println!("A won {}, B won {}", won_a.len(), won_b.len());
    let store = open(&db);
    for (winners, session) in [(&won_a, "A"), (&won_b, "B")] {
        for id in winners {
            let task = store.load(id).await.unwrap().unwrap();
            assert_eq!(task.session_id, session, "{id}");
        }
    }
}
