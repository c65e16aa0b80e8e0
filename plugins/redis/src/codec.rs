//! Reading what Redis returns: stored documents, ETags, script replies, and the choice
//! among the tasks sharing a request id. Pure: no I/O here.
//!
//! A stored document is not decoded here: it is handed on as its text
//! ([`TaskDocument::stored`]) for the reader to decode once, and a lookup reads only what
//! it orders by ([`IndexFields`]). What Redis holds is judged by the Python original's
//! rules (DESIGN decision 14): bytes that are not JSON at all, as Python's `json` reads
//! JSON, are [`Unreadable`] and go to quarantine; JSON that does not fit the task model is
//! left where it is, for the reader to report as `Corrupt`.

use redis::Value;
use ta_persistence_api::document::IndexFields;
use ta_persistence_api::model::{check_json_syntax, WireError};
use ta_persistence_api::{BoxError, ETag, Operation, PersistenceError, TaskDocument};

use crate::scripts;

/// The ETag of a stored document: the lowercase hex SHA-1 of its bytes, the same value
/// Lua's `redis.sha1hex` computes, so any writer's change (a Python agent's included)
/// changes it.
pub(crate) fn etag_of(bytes: &[u8]) -> ETag {
    ETag::new(sha1_hex(bytes))
}

/// The lowercase hex SHA-1 of some bytes.
pub(crate) fn sha1_hex(bytes: &[u8]) -> String {
    sha1_smol::Sha1::from(bytes).digest().to_string()
}

/// A stored document that is not JSON at all.
#[derive(Debug)]
pub(crate) struct Unreadable {
    /// The SHA-1 of the bytes read: quarantine moves the document only if it is still
    /// these bytes.
    pub(crate) sha: String,
    /// Why it could not be read.
    pub(crate) why: BoxError,
}

/// The text of stored bytes, if they are a JSON document as Python's `json` reads it.
pub(crate) fn json_text(bytes: Vec<u8>) -> Result<String, Unreadable> {
    match String::from_utf8(bytes) {
        Err(e) => Err(Unreadable {
            sha: sha1_hex(e.as_bytes()),
            why: Box::new(e),
        }),
        Ok(json) => match check_json_syntax(json.as_bytes()) {
            Ok(()) => Ok(json),
            Err(e) => Err(Unreadable {
                sha: sha1_hex(json.as_bytes()),
                why: Box::new(e),
            }),
        },
    }
}

/// A stored document of `task_id`, handed on undecoded; quarantine material if it is
/// not JSON at all.
pub(crate) fn read_stored(task_id: &str, bytes: Vec<u8>) -> Result<TaskDocument, Unreadable> {
    json_text(bytes).map(|json| TaskDocument::stored(task_id.to_owned(), json))
}

/// The `(seconds, milliseconds)` TTL arguments of the write scripts; `"0"` for no expiry.
pub(crate) fn ttl_args(ttl_secs: u64) -> (String, String) {
    (
        ttl_secs.to_string(),
        ttl_secs.saturating_mul(1000).to_string(),
    )
}

/// Maps a write script's status code to the operation's outcome.
pub(crate) fn write_status(
    op: Operation,
    task_id: &str,
    code: i64,
    expected: Option<&ETag>,
) -> Result<(), PersistenceError> {
    let task_id = task_id.to_owned();
    match (code, op) {
        (scripts::OK, _) => Ok(()),
        (scripts::MISSING, Operation::Create) => Err(PersistenceError::already_exists(op, task_id)),
        (scripts::MISSING, _) => Err(PersistenceError::not_found(op, task_id)),
        (scripts::CONFLICT, _) => Err(PersistenceError::conflict(
            op,
            task_id,
            expected.map(ETag::to_string).unwrap_or_default(),
        )),
        (other, _) => Err(PersistenceError::plugin(
            op,
            task_id,
            format!("a script returned the unknown status {other}"),
        )),
    }
}

/// A member of a request-id set with its task's document, if the task still exists.
pub(crate) type Member = (String, Option<Vec<u8>>);

/// Reads the find script's reply: a flat array of task id, then document or nil.
pub(crate) fn parse_members(reply: Value) -> Result<Vec<Member>, String> {
    let Value::Array(items) = reply else {
        return Err(format!("expected an array, got {reply:?}"));
    };
    if items.len() % 2 != 0 {
        return Err(format!("expected pairs, got {} values", items.len()));
    }
    let mut members = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(id), Some(doc)) = (items.next(), items.next()) {
        let id = match id {
            Value::BulkString(bytes) => {
                String::from_utf8(bytes).map_err(|e| format!("a member is not UTF-8: {e}"))?
            }
            other => return Err(format!("expected a task id, got {other:?}")),
        };
        let doc = match doc {
            Value::BulkString(bytes) => Some(bytes),
            Value::Nil => None,
            other => return Err(format!("expected a document or nil, got {other:?}")),
        };
        members.push((id, doc));
    }
    Ok(members)
}

/// What a request-id lookup found among the set's members.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    /// The first-created task holding the request id (ties: the smallest task id).
    pub(crate) winner: Option<TaskDocument>,
    /// Members to remove from the set: the task id and the SHA-1 of its document when it
    /// no longer holds the request id, or `""` when the task is gone.
    pub(crate) stale: Vec<(String, String)>,
    /// Members whose document is not JSON at all.
    pub(crate) corrupt: Vec<(String, Unreadable)>,
    /// Members whose document is JSON, but whose `created_at` or request ids cannot be
    /// read: left in place and in the set, and not chosen.
    pub(crate) misfits: Vec<(String, WireError)>,
}

/// Chooses among the members of `request_id`'s set, and sorts out the ones to prune.
///
/// Each candidate costs one pass over its text that reads `created_at` and the request
/// ids and skips the rest, and one linear scan of those ids: no decoding, and nothing
/// quadratic in a task's size.
pub(crate) fn select(request_id: &str, members: Vec<Member>) -> Selection {
    let mut selection = Selection::default();
    // (created_at, task id, text) of the best candidate so far.
    let mut best: Option<(i64, String, String)> = None;
    for (task_id, doc) in members {
        let Some(bytes) = doc else {
            selection.stale.push((task_id, String::new()));
            continue;
        };
        let json = match String::from_utf8(bytes) {
            Ok(json) => json,
            Err(e) => {
                let sha = sha1_hex(e.as_bytes());
                let why = Box::new(e);
                selection.corrupt.push((task_id, Unreadable { sha, why }));
                continue;
            }
        };
        let (created, holds) = match IndexFields::read(&json) {
            Ok(fields) => (fields.created_at_micros(), fields.holds(request_id)),
            Err(e) if e.is_not_json() => {
                let why = Box::new(e);
                let sha = sha1_hex(json.as_bytes());
                selection.corrupt.push((task_id, Unreadable { sha, why }));
                continue;
            }
            Err(e) => {
                selection.misfits.push((task_id, e));
                continue;
            }
        };
        if !holds {
            let sha = sha1_hex(json.as_bytes());
            selection.stale.push((task_id, sha));
            continue;
        }
        let better = best
            .as_ref()
            .is_none_or(|(at, id, _)| (created, task_id.as_str()) < (*at, id.as_str()));
        if better {
            best = Some((created, task_id, json));
        }
    }
    selection.winner = best.map(|(_, task_id, json)| TaskDocument::stored(task_id, json));
    selection
}

#[cfg(test)]
mod tests {
    use ta_persistence_api::{AgentTask, AgentTaskItem, MultiModalItem, Role, Timestamp};

    use super::*;

    fn doc(id: &str, created: &str, request_ids: &[&str]) -> Vec<u8> {
        let at = Timestamp::parse(created).unwrap();
        let mut task = AgentTask::new(id, "s", "u", at);
        task.items = request_ids
            .iter()
            .map(|r| AgentTaskItem::new(id, *r, Role::User, MultiModalItem::text("x"), at))
            .collect();
        task.to_json().into_bytes()
    }

    #[test]
    fn the_etag_is_the_hex_sha1_of_the_bytes() {
        // SHA-1("abc"), as every implementation (and redis.sha1hex) writes it.
        assert_eq!(
            etag_of(b"abc").as_str(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn ttl_zero_means_no_expiry() {
        assert_eq!(ttl_args(0), ("0".to_owned(), "0".to_owned()));
        assert_eq!(ttl_args(3600), ("3600".to_owned(), "3600000".to_owned()));
    }

    #[test]
    fn status_codes_map_to_typed_errors() {
        assert!(write_status(Operation::Create, "t", scripts::OK, None).is_ok());
        let e = write_status(Operation::Create, "t", scripts::MISSING, None).unwrap_err();
        assert!(e.is_already_exists() && e.id() == "t");
        let e = write_status(Operation::Update, "t", scripts::MISSING, None).unwrap_err();
        assert!(e.is_not_found());
        let e = write_status(Operation::Delete, "t", scripts::MISSING, None).unwrap_err();
        assert!(e.is_not_found());
        let tag = ETag::new("abc");
        let e = write_status(Operation::Update, "t", scripts::CONFLICT, Some(&tag)).unwrap_err();
        assert!(e.is_conflict() && e.to_string().contains("abc"));
        let e = write_status(Operation::Update, "t", 7, None).unwrap_err();
        assert_eq!(e.kind(), ta_persistence_api::ErrorKind::Plugin);
    }

    #[test]
    fn members_are_read_in_pairs() {
        let reply = Value::Array(vec![
            Value::BulkString(b"t1".to_vec()),
            Value::BulkString(b"{}".to_vec()),
            Value::BulkString(b"t2".to_vec()),
            Value::Nil,
        ]);
        let members = parse_members(reply).unwrap();
        assert_eq!(
            members,
            vec![
                ("t1".to_owned(), Some(b"{}".to_vec())),
                ("t2".to_owned(), None)
            ]
        );
        assert!(parse_members(Value::Array(vec![Value::Nil])).is_err());
        assert!(parse_members(Value::Int(1)).is_err());
        assert_eq!(parse_members(Value::Array(vec![])).unwrap(), vec![]);
    }

    #[test]
    fn the_first_created_task_wins_and_ties_go_to_the_smallest_id() {
        let members = vec![
            (
                "b".to_owned(),
                Some(doc("b", "2025-01-01T00:00:01", &["r"])),
            ),
            (
                "c".to_owned(),
                Some(doc("c", "2025-01-01T00:00:00", &["r"])),
            ),
            (
                "a".to_owned(),
                Some(doc("a", "2025-01-01T00:00:00", &["r"])),
            ),
        ];
        let s = select("r", members);
        assert_eq!(s.winner.unwrap().task_id(), "a");
        assert!(s.stale.is_empty() && s.corrupt.is_empty());
    }

    #[test]
    fn gone_stale_and_corrupt_members_are_sorted_out() {
        let moved = doc("moved", "2020-01-01T00:00:00", &["other"]);
        let moved_sha = sha1_hex(&moved);
        let members = vec![
            ("gone".to_owned(), None),
            ("moved".to_owned(), Some(moved)),
            ("bad".to_owned(), Some(b"{not json".to_vec())),
            (
                "ok".to_owned(),
                Some(doc("ok", "2025-01-01T00:00:00", &["r"])),
            ),
        ];
        let s = select("r", members);
        assert_eq!(s.winner.unwrap().task_id(), "ok");
        assert_eq!(
            s.stale,
            vec![
                ("gone".to_owned(), String::new()),
                ("moved".to_owned(), moved_sha)
            ]
        );
        assert_eq!(s.corrupt.len(), 1);
        assert_eq!(s.corrupt[0].0, "bad");
        assert_eq!(s.corrupt[0].1.sha, sha1_hex(b"{not json"));
    }

    #[test]
    fn non_utf8_documents_are_corrupt() {
        let e = read_stored("x", vec![0xff, 0xfe]).unwrap_err();
        assert_eq!(e.sha, sha1_hex(&[0xff, 0xfe]));
        let s = select("r", vec![("x".to_owned(), Some(vec![0xff]))]);
        assert!(s.winner.is_none());
        assert_eq!(s.corrupt.len(), 1);
    }

    /// A valid task document with `insert` spliced in just after its opening brace.
    fn with_extra(id: &str, request_ids: &[&str], insert: &str) -> String {
        let json = String::from_utf8(doc(id, "2025-01-01T00:00:00", request_ids)).unwrap();
        format!("{{{insert},{}", &json[1..])
    }

    #[test]
    fn only_bytes_that_are_not_json_are_unreadable() {
        // JSON by Python's rules, whatever the task model makes of it: handed on as is.
        let nan = with_extra(
            "n",
            &["r"],
            r#""pending_tool_calls":[{"x":NaN,"y":-Infinity}]"#,
        );
        let odd = with_extra(
            "o",
            &["r"],
            r#""future":{"deep":[1,{"a":[null,true]}],"b":{}}"#,
        );
        let misfit = r#"{"task_id":"m","items":"not a list"}"#;
        for json in [nan.as_str(), odd.as_str(), misfit] {
            let stored = read_stored("t", json.as_bytes().to_vec()).unwrap();
            assert_eq!(stored.json(), json);
            assert_eq!(stored.task_id(), "t");
        }
        for bytes in [&b"{\"task_id\": oops"[..], b"", b"[1, 2", b"{\"a\":nan}"] {
            let e = read_stored("t", bytes.to_vec()).unwrap_err();
            assert_eq!(e.sha, sha1_hex(bytes));
        }
    }

    #[test]
    fn a_lookup_leaves_json_that_does_not_fit_and_quarantines_only_non_json() {
        let odd = with_extra("odd", &["r"], r#""future":{"deep":[1,{"a":[]}]}"#);
        let misfit = String::from_utf8(doc("misfit", "2020-01-01T00:00:00", &["r"]))
            .unwrap()
            .replace(
                r#""created_at":"2020-01-01T00:00:00""#,
                r#""created_at":"yesterday""#,
            );
        let members = vec![
            ("odd".to_owned(), Some(odd.clone().into_bytes())),
            ("misfit".to_owned(), Some(misfit.into_bytes())),
            ("junk".to_owned(), Some(b"{\"items\": [".to_vec())),
        ];
        let s = select("r", members);
        // An unknown extra structure is skipped: the task is found, its text intact.
        assert_eq!(
            s.winner.as_ref().map(TaskDocument::json),
            Some(odd.as_str())
        );
        // JSON whose created_at is not a datetime: left alone, the field named.
        assert_eq!(s.misfits.len(), 1);
        assert_eq!(s.misfits[0].0, "misfit");
        assert!(
            s.misfits[0].1.to_string().contains("created_at"),
            "{}",
            s.misfits[0].1
        );
        assert!(s.stale.is_empty());
        assert_eq!(s.corrupt.len(), 1);
        assert_eq!(s.corrupt[0].0, "junk");
    }

    #[test]
    fn a_lookup_reads_request_ids_with_escapes_and_repeats() {
        let json =
            String::from_utf8(doc("e", "2025-01-01T00:00:00", &["a\"b", "x", "a\"b"])).unwrap();
        assert!(json.contains(r#"a\"b"#));
        let s = select("a\"b", vec![("e".to_owned(), Some(json.into_bytes()))]);
        assert_eq!(s.winner.unwrap().task_id(), "e");
    }
}
