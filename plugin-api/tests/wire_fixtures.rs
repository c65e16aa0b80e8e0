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
        files.len() >= 10,
        "expected at least 10 canonical fixtures, found {}",
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
        inputs.len() >= 9,
        "expected at least 9 lenient pairs, found {}",
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

#[test]
fn rejected_documents_fail_with_a_message_naming_the_problem() {
    // (file, text the message must contain)
    let table: &[(&str, &[&str])] = &[
        ("bad_datetime", &["created_at", "yesterday", "ISO 8601"]),
        ("items_null", &["items", "null"]),
        ("missing_user_id", &["missing field `user_id`", "(root)"]),
        (
            "not_an_object",
            &["(root)", "invalid type: sequence", "JSON object"],
        ),
        (
            "pending_tool_calls_not_objects",
            &["items[0].pending_tool_calls[0]", "expected a JSON object"],
        ),
        ("status_null", &["status", "null"]),
        ("task_id_number", &["task_id", "invalid type: integer `5`"]),
        (
            "truncated_json",
            &["not a JSON document", "unterminated string", "line 1"],
        ),
        (
            "unknown_content_type",
            &["items[0].item.content_type", "video"],
        ),
        (
            "unknown_role",
            &["items[0].role", "unknown variant `system`"],
        ),
        ("unknown_status", &["status", "unknown variant `Done`"]),
    ];
    let files = json_files("rejected");
    assert_eq!(
        files.len(),
        table.len(),
        "every rejected fixture needs a row in the table (and every row a file)"
    );
    let mut failures = Vec::new();
    for (name, needles) in table {
        let path = Path::new(FIXTURES)
            .join("rejected")
            .join(format!("{name}.json"));
        let text = read(&path);
        match AgentTask::from_json(&text) {
            Ok(task) => failures.push(format!("{name}: accepted as {task:?}")),
            Err(e) => {
                let message = e.to_string();
                for needle in *needles {
                    if !message.contains(needle) {
                        failures.push(format!("{name}: {message:?} lacks {needle:?}"));
                    }
                }
                if e.line() == 0 {
                    failures.push(format!("{name}: no position in {message:?}"));
                }
                // Only bytes that are not JSON at all say so; the rest is JSON that does
                // not fit the model.
                if e.is_not_json() != (*name == "truncated_json") {
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
    for path in json_files("canonical") {
        let text = read(&path);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let task =
            AgentTask::from_json(&pretty).unwrap_or_else(|e| panic!("{}: {e}", file_name(&path)));
        // `Value` sorts object keys (also inside the opaque values), so compare as values.
        let reparsed: serde_json::Value = serde_json::from_str(&task.to_json()).unwrap();
        assert_eq!(reparsed, value, "{}", file_name(&path));
        assert!(!task.to_json().contains('\n'), "{}", file_name(&path));
    }
}
