//! Listing entries: how a task's position in the listing order is spelled as a sorted-set
//! member, and what a write reads from a document to index it. Pure: no I/O here.
//!
//! # Members
//!
//! Every member of a listing index has score 0, so Redis orders the set by the member's
//! bytes, and the member is built so that this byte order IS the listing order
//! ([`ListKey`]'s: newest `created_at` first, ties by task id, descending):
//!
//! ```text
//! <16 hex digits: created_at micros, sign bit flipped, all bits inverted>:<task id, each byte b as 2 hex digits of 255 - b>~
//! ```
//!
//! Flipping the sign bit maps every `i64` (negative ones, before 1970, included) onto a
//! `u64` in the same order; inverting the bits reverses it; fixed-width lowercase hex
//! compares like the number. Each id byte inverted reverses the byte order of ids of
//! one length; the closing `~`, greater than every hex digit, puts a longer id before
//! its own prefix (`"ab"` before `"a"`, as descending order wants). So `ZRANGEBYLEX key
//! (<member> + LIMIT 0 n` is exactly "the next n tasks after this key", with no float
//! score to lose microseconds far from 1970. Members are ASCII, readable with care in
//! `redis-cli`, and give back the task id without reading anything else.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Deserialize;
use ta_persistence_api::listing::{ListKey, TaskSummary};
use ta_persistence_api::model::WireError;
use ta_persistence_api::{TaskDocument, TaskStatus};

/// The member of a listing index that stands for `key`.
pub(crate) fn member(key: &ListKey) -> String {
    let ordered = (key.created_at_micros as u64) ^ (1 << 63);
    let mut out = String::with_capacity(18 + 2 * key.task_id.len());
    // Writing to a String cannot fail.
    let _ = write!(out, "{:016x}:", !ordered);
    for byte in key.task_id.bytes() {
        let _ = write!(out, "{:02x}", 255 - byte);
    }
    out.push('~');
    out
}

/// The key a member stands for; `None` for text that no [`member`] call produced.
pub(crate) fn member_key(member: &str) -> Option<ListKey> {
    let body = member.strip_suffix('~')?;
    let (time, id) = body.split_once(':')?;
    if time.len() != 16 || id.len() % 2 != 0 || !is_lower_hex(time) || !is_lower_hex(id) {
        return None;
    }
    let inverted = u64::from_str_radix(time, 16).ok()?;
    let micros = (!inverted ^ (1 << 63)) as i64;
    let bytes = (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&id[i..i + 2], 16).map(|b| 255 - b))
        .collect::<Result<Vec<u8>, _>>()
        .ok()?;
    let task_id = String::from_utf8(bytes).ok()?;
    Some(ListKey::new(micros, task_id))
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a write needs to know of a task to index it and give it its TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListFields {
    /// The task's session.
    pub(crate) session_id: String,
    /// The task's user.
    pub(crate) user_id: String,
    /// The task's status (its TTL depends on it).
    pub(crate) status: TaskStatus,
    /// The task's position in the listing order.
    pub(crate) key: ListKey,
}

impl ListFields {
    /// The fields of a summary.
    pub(crate) fn of_summary(summary: &TaskSummary) -> Self {
        ListFields {
            session_id: summary.session_id.clone(),
            user_id: summary.user_id.clone(),
            status: summary.status,
            key: summary.key(),
        }
    }

    /// The record kept in the entries hash: where this task's entries are, so a later
    /// write, delete or prune finds them without reading the old document's fields.
    /// A JSON array `[member, session id, user id]` (the scripts decode it with `cjson`).
    pub(crate) fn record(&self, member: &str) -> String {
        // Serialising three strings cannot fail.
        serde_json::to_string(&[member, &self.session_id, &self.user_id]).unwrap_or_default()
    }
}

/// The top-level fields a write reads, borrowed where the text allows; everything else
/// (the items above all) is skipped unparsed.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    session_id: Cow<'a, str>,
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    status: TaskStatus,
}

/// The fields of a document about to be written. The usual document (encoded by the
/// host) is read in one pass that skips the items; anything that pass cannot read (a key
/// given twice, which Python's `json` allows) is decoded in full, as `load` would.
pub(crate) fn list_fields(doc: &TaskDocument) -> Result<ListFields, WireError> {
    let micros = doc.created_at_micros();
    if micros != TaskDocument::NOT_DERIVED {
        if let Ok(head) = serde_json::from_str::<Head<'_>>(doc.json()) {
            return Ok(ListFields {
                session_id: head.session_id.into_owned(),
                user_id: head.user_id.into_owned(),
                status: head.status,
                key: ListKey::new(micros, doc.task_id()),
            });
        }
    }
    let summary = TaskSummary::from_json(doc.json())?;
    Ok(ListFields {
        key: ListKey::new(summary.created_at.utc_micros(), doc.task_id()),
        ..ListFields::of_summary(&summary)
    })
}

#[cfg(test)]
mod tests {
    use ta_persistence_api::{AgentTask, Timestamp};

    use super::*;

    fn key(micros: i64, id: &str) -> ListKey {
        ListKey::new(micros, id)
    }

    #[test]
    fn member_byte_order_is_the_listing_order() {
        let keys = [
            key(i64::MAX, "a"),
            key(1_700_000_000_000_001, "a"),
            key(1_700_000_000_000_000, "b"),
            key(1_700_000_000_000_000, "ab"),
            key(1_700_000_000_000_000, "a\u{0}"),
            key(1_700_000_000_000_000, "a"),
            key(1_700_000_000_000_000, ""),
            key(1, "z"),
            key(0, "z"),
            key(-1, "z"),
            key(-62_135_596_800_000_000, "ü"),
            key(-62_135_596_800_000_000, "z"),
            key(i64::MIN, "z"),
        ];
        let mut sorted = keys.to_vec();
        sorted.sort();
        assert_eq!(sorted, keys, "the fixture is in listing order");
        for pair in keys.windows(2) {
            let (a, b) = (member(&pair[0]), member(&pair[1]));
            assert!(a.as_bytes() < b.as_bytes(), "{a} < {b} for {pair:?}");
        }
    }

    #[test]
    fn members_give_back_their_key_and_refuse_anything_else() {
        for k in [
            key(0, ""),
            key(-1, "t:1 ü"),
            key(i64::MIN, "x"),
            key(i64::MAX, "\u{0}"),
        ] {
            assert_eq!(member_key(&member(&k)), Some(k.clone()));
        }
        let good = member(&key(5, "t1"));
        for bad in [
            "",
            "~",
            good.trim_end_matches('~'),
            &good[1..],
            good.replace(':', ";").as_str(),
            good.to_uppercase().as_str(),
            "7ffffffffffffffa:8b0~",
            "7ffffffffffffffa:3f3f3f~",
        ] {
            assert_eq!(member_key(bad), None, "{bad}");
        }
        assert_eq!(member_key("7ffffffffffffffa:8bce~"), Some(key(5, "t1")));
    }

    #[test]
    fn fields_are_read_from_the_document() {
        let created = Timestamp::parse("2024-05-06T07:08:09.123456").unwrap();
        let mut task = AgentTask::new("t1", "s1", "u1", created);
        task.status = TaskStatus::Completed;
        let doc = TaskDocument::from_task(&task);
        let fields = list_fields(&doc).unwrap();
        assert_eq!(
            fields,
            ListFields {
                session_id: "s1".into(),
                user_id: "u1".into(),
                status: TaskStatus::Completed,
                key: TaskSummary::of_task(&task).key(),
            }
        );
        // A key given twice: the last one counts, as for every reader.
        let twice = doc.json().replacen(
            "\"user_id\":\"u1\"",
            "\"user_id\":\"u0\",\"user_id\":\"u2\"",
            1,
        );
        assert_ne!(twice, doc.json());
        let fields = list_fields(&TaskDocument::stored("t1".into(), twice)).unwrap();
        assert_eq!(fields.user_id, "u2");
        assert!(list_fields(&TaskDocument::stored("t1".into(), "{}".into())).is_err());
        assert_eq!(
            fields.record("m~"),
            r#"["m~","s1","u2"]"#,
            "the record the scripts decode"
        );
    }
}
