//! The wire format against documents the Python original wrote (`tests/fixtures/wire`).

use std::fs;
use std::path::{Path, PathBuf};

use ta_persistence_api::model::{AgentTask, OpaqueJson, Role, TaskStatus};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/wire");

/// The `.json` files of one fixture folder, sorted by name.
fn json_files(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(FIXTURES).join(folder);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("?")
}

#[test]
fn canonical_documents_are_written_back_byte_for_byte() {
    let files = json_files("canonical");
    assert!(
        files.len() >= 13,
        "expected at least 13 canonical fixtures, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let text = read(path);
        match AgentTask::from_json(&text) {
            Ok(task) => {
                let written = task.to_json();
                if written != text {
                    failures.push(format!(
                        "{}: written back differently\n  expected: {text}\n  actual:   {written}",
                        file_name(path)
                    ));
                }
                let mut bytes = Vec::new();
                task.write_json(&mut bytes);
                if bytes != text.as_bytes() {
                    failures.push(format!(
                        "{}: write_json differs from to_json",
                        file_name(path)
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", file_name(path))),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lenient_inputs_are_written_in_the_canonical_form() {
    let inputs: Vec<PathBuf> = json_files("lenient")
        .into_iter()
        .filter(|path| file_name(path).ends_with(".input.json"))
        .collect();
    assert!(
        inputs.len() >= 30,
        "expected at least 30 lenient pairs, found {}",
        inputs.len()
    );
    let mut failures = Vec::new();
    for input in &inputs {
        let name = file_name(input).trim_end_matches(".input.json");
        let expected = read(&input.with_file_name(format!("{name}.expected.json")));
        match AgentTask::from_json_slice(read(input).as_bytes()) {
            Ok(task) => {
                let written = task.to_json();
                if written != expected {
                    failures.push(format!(
                        "{name}:\n  expected: {expected}\n  actual:   {written}"
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// How a rejected fixture must fail.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Failure {
    /// Not a JSON document at all (`is_not_json`), with a position.
    NotJson,
    /// JSON that does not fit the model, with a position.
    Corrupt,
    /// JSON that does not fit the model, found after rewriting what only Python's `json`
    /// reads (repeated keys, `NaN`): no position in the input.
    CorruptRewritten,
}

#[test]
fn rejected_documents_fail_with_a_message_naming_the_problem() {
    use Failure::*;
    // (file, how it fails, text the message must contain)
    let table: &[(&str, Failure, &[&str])] = &[
        (
            "bad_datetime",
            Corrupt,
            &["created_at", "yesterday", "ISO 8601"],
        ),
        (
            "byte_order_mark",
            NotJson,
            &["not a JSON document", "byte-order mark"],
        ),
        (
            "duplicate_last_value_invalid",
            CorruptRewritten,
            &["status", "unknown variant `Bogus`"],
        ),
        ("items_null", Corrupt, &["items", "null"]),
        (
            "missing_user_id",
            Corrupt,
            &["missing field `user_id`", "(root)"],
        ),
        (
            "nan_created_at",
            CorruptRewritten,
            &[
                "created_at",
                "NaN and Infinity are read only inside opaque values",
            ],
        ),
        (
            "nan_pending_tool_call",
            CorruptRewritten,
            &[
                "items[0].pending_tool_calls[0]",
                "`NaN`, expected a JSON object",
            ],
        ),
        (
            "not_an_object",
            Corrupt,
            &["(root)", "invalid type: sequence", "JSON object"],
        ),
        (
            "offset_hours_only",
            Corrupt,
            &["created_at", "2025-11-03T14:21:07+01", "timezone minute"],
        ),
        (
            "offset_with_seconds",
            Corrupt,
            &["created_at", "+01:01:01", "extra characters"],
        ),
        (
            "pending_tool_calls_not_objects",
            Corrupt,
            &["items[0].pending_tool_calls[0]", "expected a JSON object"],
        ),
        ("status_null", Corrupt, &["status", "null"]),
        (
            "task_id_number",
            Corrupt,
            &["task_id", "invalid type: integer `5`"],
        ),
        ("trailing_data", NotJson, &["(root)", "extra data"]),
        (
            "truncated_json",
            NotJson,
            &["not a JSON document", "unterminated string", "line 1"],
        ),
        (
            "unix_time_bool",
            Corrupt,
            &["created_at", "invalid type: boolean `true`"],
        ),
        (
            "unknown_content_type",
            Corrupt,
            &["items[0].item.content_type", "video"],
        ),
        (
            "unknown_role",
            Corrupt,
            &["items[0].role", "unknown variant `system`"],
        ),
        (
            "unknown_status",
            Corrupt,
            &["status", "unknown variant `Done`"],
        ),
    ];
    let files = json_files("rejected");
    assert_eq!(
        files.len(),
        table.len(),
        "every rejected fixture needs a row in the table (and every row a file)"
    );
    let mut failures = Vec::new();
    for (name, kind, needles) in table {
        let path = Path::new(FIXTURES)
            .join("rejected")
            .join(format!("{name}.json"));
        let bytes =
            fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        match AgentTask::from_json_slice(&bytes) {
            Ok(task) => failures.push(format!("{name}: accepted as {task:?}")),
            Err(e) => {
                let message = e.to_string();
                for needle in *needles {
                    if !message.contains(needle) {
                        failures.push(format!("{name}: {message:?} lacks {needle:?}"));
                    }
                }
                if (e.line() == 0) != (*kind == CorruptRewritten) {
                    failures.push(format!("{name}: line {} in {message:?}", e.line()));
                }
                if e.is_not_json() != (*kind == NotJson) {
                    failures.push(format!("{name}: is_not_json() is {}", e.is_not_json()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rejected_messages_are_stable() {
    let path = Path::new(FIXTURES).join("rejected/unknown_role.json");
    let err = AgentTask::from_json(&read(&path)).unwrap_err();
    assert_eq!(err.path(), "items[0].role");
    assert_eq!(
        err.message(),
        "unknown variant `system`, expected `user` or `assistant`"
    );
    assert!(
        err.to_string().starts_with(
            "invalid task document at items[0].role: unknown variant `system`, \
             expected `user` or `assistant` (line 1, column "
        ),
        "{err}"
    );
}

#[test]
fn hitl_fixture_keeps_opaque_values_verbatim() {
    let text = read(&Path::new(FIXTURES).join("canonical/hitl_chat_history.json"));
    let task = AgentTask::from_json(&text).unwrap();
    assert_eq!(task.status, TaskStatus::Paused);
    assert_eq!(task.request_ids().len(), 1);
    let paused = &task.items[1];
    assert_eq!(paused.role, Role::Assistant);
    let calls = paused.pending_tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].is_object());
    assert!(calls[0]
        .as_str()
        .starts_with(r#"{"ai_model_id":null,"metadata":{},"#));
    let history = paused.chat_history.as_ref().unwrap();
    assert!(text.contains(history.as_str()));
    assert_eq!(
        history.to_value()["messages"][2]["items"][0]["result"],
        "Revenue up 4% QoQ; costs flat."
    );
    assert_eq!(
        OpaqueJson::parse(history.as_str()).unwrap().as_str(),
        history.as_str()
    );
}

#[test]
fn pretty_printed_documents_are_written_compact() {
    let mut checked = 0;
    for path in json_files("canonical") {
        let text = read(&path);
        // serde_json cannot pretty-print `NaN`; the lenient `nan_pretty_printed` fixture
        // covers that case.
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
            assert!(text.contains("NaN"), "{}", file_name(&path));
            continue;
        };
        checked += 1;
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let task =
            AgentTask::from_json(&pretty).unwrap_or_else(|e| panic!("{}: {e}", file_name(&path)));
        // `Value` sorts object keys (also inside the opaque values), so compare as values.
        let reparsed: serde_json::Value = serde_json::from_str(&task.to_json()).unwrap();
        assert_eq!(reparsed, value, "{}", file_name(&path));
        assert!(!task.to_json().contains('\n'), "{}", file_name(&path));
    }
    assert!(checked >= 10, "only {checked} fixtures checked");
}
