//! Every wire fixture read by pydantic and by us, when `python3` with pydantic is at hand.
//!
//! For each document: pydantic (reading it as the Python original does, `json.loads` then
//! `model_validate`) accepts it exactly when we do; and when both do, pydantic reads the
//! bytes we write back as the same task as the original (compared through its own
//! `model_dump_json`). Skipped, with a notice, where pydantic cannot be imported.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ta_persistence_api::model::AgentTask;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/wire");

/// The task model as pydantic models it, built from the wire-format table rather than
/// declared as classes. Reads NUL-separated documents on stdin and prints, as a JSON list,
/// pydantic's own dump of each, or null for a document it refuses.
const ORACLE: &str = r#"
import json, sys
from datetime import datetime
from typing import Literal, Optional
from pydantic import create_model

content = create_model(
    "Content", content_type=(Literal["text", "image"], "text"), content=(str, ...))
item = create_model(
    "Item",
    task_id=(str, ...), request_id=(str, ...), role=(Literal["user", "assistant"], ...),
    item=(content, ...), updated=(datetime, ...),
    pending_tool_calls=(Optional[list[dict]], None), chat_history=(Optional[dict], None))
task = create_model(
    "Task",
    task_id=(str, ...), session_id=(str, ...), user_id=(str, ...), items=(list[item], ...),
    created_at=(datetime, ...), last_updated=(datetime, ...),
    status=(Literal["Running", "Paused", "Completed", "Failed", "Canceled"], "Running"))

def read(raw):
    try:
        return task.model_validate(json.loads(raw.decode("utf-8"))).model_dump_json()
    except Exception:
        return None

print(json.dumps([read(doc) for doc in sys.stdin.buffer.read().split(b"\0")]))
"#;

fn pydantic_available() -> bool {
    Command::new("python3")
        .args(["-c", "import pydantic"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// pydantic's reading of each document (`None`: refused).
fn pydantic_reads(docs: &[Vec<u8>]) -> Vec<Option<String>> {
    let mut child = Command::new("python3")
        .args(["-c", ORACLE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(&docs.join(&0u8)).expect("documents sent");
    drop(stdin);
    let output = child.wait_with_output().expect("python3 finishes");
    assert!(output.status.success(), "the pydantic oracle failed");
    let results: Vec<Option<String>> =
        serde_json::from_slice(&output.stdout).expect("the oracle prints a JSON list");
    assert_eq!(results.len(), docs.len());
    results
}

fn fixture_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for folder in ["canonical", "lenient", "rejected"] {
        for entry in fs::read_dir(Path::new(FIXTURES).join(folder)).expect("fixture folder") {
            let path = entry.expect("directory entry").path();
            let name = path.to_string_lossy();
            if name.ends_with(".json") && !name.ends_with(".expected.json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn pydantic_reads_every_fixture_as_we_do() {
    if !pydantic_available() {
        println!("skipped: python3 with pydantic is not available");
        return;
    }
    let files = fixture_files();
    assert!(files.len() >= 60, "found only {} fixtures", files.len());
    let originals: Vec<Vec<u8>> = files
        .iter()
        .map(|path| fs::read(path).expect("readable fixture"))
        .collect();
    let ours: Vec<Option<Vec<u8>>> = originals
        .iter()
        .map(|doc| {
            AgentTask::from_json_slice(doc)
                .ok()
                .map(|task| task.to_json().into_bytes())
        })
        .collect();
    let written: Vec<Vec<u8>> = ours.iter().flatten().cloned().collect();
    let mut batch = originals.clone();
    batch.extend(written);
    let results = pydantic_reads(&batch);
    let (theirs, of_ours) = results.split_at(originals.len());

    let mut failures = Vec::new();
    let mut of_ours = of_ours.iter();
    for ((path, pydantic), rust) in files.iter().zip(theirs).zip(&ours) {
        let name = path.strip_prefix(FIXTURES).unwrap_or(path).display();
        match (pydantic, rust) {
            (Some(expected), Some(_)) => {
                let back = of_ours.next().expect("one result per written document");
                if back.as_ref() != Some(expected) {
                    failures.push(format!(
                        "{name}: pydantic reads what we wrote as {back:?}, not {expected}"
                    ));
                }
            }
            (None, None) => {}
            (Some(_), None) => failures.push(format!("{name}: pydantic reads it, we do not")),
            (None, Some(_)) => {
                // Still consume the result of what we wrote.
                of_ours.next();
                failures.push(format!("{name}: we read it, pydantic does not"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
