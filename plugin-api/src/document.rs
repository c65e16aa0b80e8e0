//! `TaskDocument`: a task as its JSON text plus the fields a store indexes.
//!
//! This is the form in which a task crosses the plugin boundary and the form a store that
//! keeps JSON (Redis) works in: the host encodes a task once, and such a store writes the
//! text as it is without decoding and re-encoding it. On the way back a store hands the
//! text on as it read it ([`TaskDocument::stored`]), and only the reader decodes it, once.
//!
//! [`IndexFields`] reads just what a store orders and indexes by (`created_at` and the
//! items' request ids) from a document, skipping the rest unparsed.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::Operation;
use crate::error::{validate_id, PersistenceError, Result};
use crate::model::{AgentTask, Timestamp, WireError};

/// A task's JSON document together with its indexed fields.
///
/// The fields always agree with the JSON: every constructor derives them from it (or
/// from the task it was encoded from), or leaves them to be read from the JSON on first
/// use ([`TaskDocument::stored`]), so a store can trust them without decoding.
#[derive(Debug, Clone)]
pub struct TaskDocument {
    task_id: String,
    /// Set at construction, or on first use for a stored document.
    index: OnceLock<Index>,
    json: String,
}

/// The indexed fields of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Index {
    /// Distinct, in first-seen order.
    request_ids: Vec<String>,
    created_at_micros: i64,
}

impl Index {
    /// Reads the fields from a document's JSON; a document whose fields cannot be read
    /// has none.
    fn read(json: &str) -> Self {
        match IndexFields::read(json) {
            Ok(fields) => Index {
                request_ids: distinct(fields.request_ids()),
                created_at_micros: fields.created_at_micros(),
            },
            Err(_) => Index {
                request_ids: Vec::new(),
                created_at_micros: TaskDocument::NOT_DERIVED,
            },
        }
    }
}

/// The distinct ids, in first-seen order; linear in their number (a task's few ids are
/// compared directly, with no set built).
fn distinct<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    crate::model::distinct_in_order(ids)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

impl PartialEq for TaskDocument {
    fn eq(&self, other: &Self) -> bool {
        self.task_id == other.task_id && self.json == other.json && self.index() == other.index()
    }
}

impl Eq for TaskDocument {}

impl TaskDocument {
    /// The `created_at_micros` of a document whose indexed fields are not known: one
    /// handed on by [`TaskDocument::into_parts`] before they were read, or one whose JSON
    /// does not hold them. No timestamp maps to it.
    pub const NOT_DERIVED: i64 = i64::MIN;

    /// Encodes a task.
    pub fn from_task(task: &AgentTask) -> Self {
        Self::with_index_of(task, task.to_json())
    }

    /// The document of `json`, which holds `task`.
    fn with_index_of(task: &AgentTask, json: String) -> Self {
        let index = Index {
            request_ids: distinct(task.items.iter().map(|item| item.request_id.as_str())),
            created_at_micros: task.created_at.utc_micros(),
        };
        Self {
            task_id: task.task_id.clone(),
            index: OnceLock::from(index),
            json,
        }
    }

    /// Reads a document from its JSON text, checking that it is a valid task.
    ///
    /// The text is kept as given; use [`TaskDocument::from_task`] on the decoded task to
    /// get the canonical form.
    pub fn from_json(json: String) -> Result<Self, WireError> {
        let task = AgentTask::from_json(&json)?;
        Ok(Self::with_index_of(&task, json))
    }

    /// A document a store read back, handed on as it is: nothing is decoded or checked
    /// here, so a reader that decodes it ([`TaskDocument::to_task`],
    /// [`TaskDocument::into_stored_task`]) does so once, and is the one to find out
    /// whether it is a valid task.
    ///
    /// Its indexed fields are read from the JSON when first asked for, and only they
    /// (see [`IndexFields`]): [`request_ids`](Self::request_ids) and
    /// [`created_at_micros`](Self::created_at_micros) then return what the text holds, or,
    /// for a text they cannot be read from, no request ids and
    /// [`TaskDocument::NOT_DERIVED`].
    pub fn stored(task_id: String, json: String) -> Self {
        Self {
            task_id,
            index: OnceLock::new(),
            json,
        }
    }

    /// Assembles a document from parts that are already known to agree with each other
    /// (they were produced by [`TaskDocument::into_parts`] on the other side of the plugin
    /// boundary). With `created_at_micros` [`TaskDocument::NOT_DERIVED`] the indexed
    /// fields were not read yet: the document is [`TaskDocument::stored`] and
    /// `request_ids` is ignored.
    #[doc(hidden)]
    pub fn from_trusted_parts(
        task_id: String,
        request_ids: Vec<String>,
        created_at_micros: i64,
        json: String,
    ) -> Self {
        if created_at_micros == Self::NOT_DERIVED {
            return Self::stored(task_id, json);
        }
        Self {
            task_id,
            index: OnceLock::from(Index {
                request_ids,
                created_at_micros,
            }),
            json,
        }
    }

    /// Decodes the task.
    pub fn to_task(&self) -> Result<AgentTask, WireError> {
        AgentTask::from_json(&self.json)
    }

    /// Decodes a document a store read back; one that does not decode is reported as
    /// [`PersistenceError::Corrupt`] of `op`, naming the task.
    pub fn into_stored_task(self, op: Operation) -> Result<AgentTask> {
        self.to_task().map_err(|e| PersistenceError::Corrupt {
            op,
            task_id: self.task_id,
            source: Box::new(e),
        })
    }

    /// The task id.
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| Index::read(&self.json))
    }

    /// The distinct request ids of the task's items, in first-seen order (read from the
    /// JSON on first use for a [`stored`](Self::stored) document).
    pub fn request_ids(&self) -> &[String] {
        &self.index().request_ids
    }

    /// `created_at` as microseconds since the Unix epoch (a naive time read as UTC):
    /// the key that orders tasks sharing a request id (read from the JSON on first use
    /// for a [`stored`](Self::stored) document; [`TaskDocument::NOT_DERIVED`] when the JSON
    /// does not hold one).
    pub fn created_at_micros(&self) -> i64 {
        self.index().created_at_micros
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Takes the parts apart: `(task_id, request_ids, created_at_micros, json)`. The
    /// indexed fields of a [`stored`](Self::stored) document that were not read yet are
    /// not read for this: they come out as no request ids and
    /// [`TaskDocument::NOT_DERIVED`], which [`TaskDocument::from_trusted_parts`] turns
    /// back into a stored document.
    pub fn into_parts(self) -> (String, Vec<String>, i64, String) {
        let (request_ids, created_at_micros) = match self.index.into_inner() {
            Some(index) => (index.request_ids, index.created_at_micros),
            None => (Vec::new(), Self::NOT_DERIVED),
        };
        (self.task_id, request_ids, created_at_micros, self.json)
    }

    /// Checks the ids a store is asked to keep: the task id and every request id.
    pub fn validate_ids(&self, op: Operation) -> Result<()> {
        validate_id(op, "task id", &self.task_id)?;
        for request_id in self.request_ids() {
            validate_id(op, "request id", request_id).map_err(|e| with_task(e, &self.task_id))?;
        }
        Ok(())
    }
}

/// What a store orders and indexes a task by, read from its JSON without decoding the
/// rest: `created_at` (as the task model reads it, every form included) and the request
/// id of each item. Everything else is skipped unparsed, so reading these from a task
/// with many large items costs a fraction of decoding it.
///
/// Only these fields are checked: a document they can be read from may still not be a
/// valid task. Keys may repeat (the last one counts, as in Python's `json`); a text that
/// the quick reader cannot read (a `NaN` in opaque content, say) is decoded in full by the
/// model instead, whose error is the one reported when that fails too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFields<'a> {
    created_at_micros: i64,
    /// Every item's, in order, repeats included.
    request_ids: Vec<Cow<'a, str>>,
}

impl<'a> IndexFields<'a> {
    /// Reads the fields from a task document's JSON.
    pub fn read(json: &'a str) -> Result<Self, WireError> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let quick = TaskFields::deserialize(&mut deserializer)
            .and_then(|fields| deserializer.end().map(|()| fields));
        match quick {
            Ok(TaskFields {
                created_at,
                request_ids,
            }) => Ok(IndexFields {
                created_at_micros: created_at.utc_micros(),
                request_ids,
            }),
            Err(_) => {
                let task = AgentTask::from_json(json)?;
                Ok(IndexFields {
                    created_at_micros: task.created_at.utc_micros(),
                    request_ids: task
                        .items
                        .into_iter()
                        .map(|item| Cow::Owned(item.request_id))
                        .collect(),
                })
            }
        }
    }

    /// `created_at` as microseconds since the Unix epoch (a naive time read as UTC).
    pub fn created_at_micros(&self) -> i64 {
        self.created_at_micros
    }

    /// Whether an item has this request id: a linear scan, with no set built first.
    pub fn holds(&self, request_id: &str) -> bool {
        self.request_ids.iter().any(|id| id == request_id)
    }

    /// The request id of every item, in order, repeats included.
    pub fn request_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.request_ids.iter().map(|id| id.as_ref())
    }
}

/// A string borrowed from the JSON text when it has no escapes.
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The task's `created_at` and its items' request ids.
struct TaskFields<'a> {
    created_at: Timestamp,
    request_ids: Vec<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for TaskFields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TaskFieldsVisitor)
    }
}

struct TaskFieldsVisitor;

impl<'de> Visitor<'de> for TaskFieldsVisitor {
    type Value = TaskFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an agent task (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut created_at = None;
        let mut request_ids = None;
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match key.0.as_ref() {
                "created_at" => created_at = Some(map.next_value::<Timestamp>()?),
                "items" => request_ids = Some(map.next_value::<ItemIds<'de>>()?.0),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(TaskFields {
            created_at: created_at.ok_or_else(|| de::Error::missing_field("created_at"))?,
            request_ids: request_ids.ok_or_else(|| de::Error::missing_field("items"))?,
        })
    }
}

/// The request id of each item of the `items` array.
struct ItemIds<'a>(Vec<Cow<'a, str>>);

impl<'de> Deserialize<'de> for ItemIds<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemsVisitor;
        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = ItemIds<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of task items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut ids = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(ItemId(id)) = seq.next_element::<ItemId<'de>>()? {
                    ids.push(id);
                }
                Ok(ItemIds(ids))
            }
        }
        deserializer.deserialize_seq(ItemsVisitor)
    }
}

/// An item's request id.
struct ItemId<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for ItemId<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = ItemId<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a task item (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut request_id = None;
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if key.0 == "request_id" {
                        request_id = Some(map.next_value::<Text<'de>>()?.0);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                request_id
                    .map(ItemId)
                    .ok_or_else(|| de::Error::missing_field("request_id"))
            }
        }
        deserializer.deserialize_map(ItemVisitor)
    }
}

/// Checks the ids of a task a store is asked to keep: the task id and every request id.
pub fn validate_task_ids(op: Operation, task: &AgentTask) -> Result<()> {
    validate_id(op, "task id", &task.task_id)?;
    for item in &task.items {
        validate_id(op, "request id", &item.request_id).map_err(|e| with_task(e, &task.task_id))?;
    }
    Ok(())
}

/// Re-targets an invalid-request-id error at the task that carried it.
fn with_task(err: PersistenceError, task_id: &str) -> PersistenceError {
    match err {
        PersistenceError::InvalidInput { op, reason, .. } => {
            PersistenceError::invalid(op, task_id, format!("an item's {reason}"))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgentTaskItem, MultiModalItem, Role};

    fn task(id: &str, request_ids: &[&str]) -> AgentTask {
        let at = Timestamp::parse("2025-01-01T00:00:01.5").unwrap();
        let mut task = AgentTask::new(id, "s", "u", at);
        task.items = request_ids
            .iter()
            .map(|r| AgentTaskItem::new(id, *r, Role::User, MultiModalItem::text("x"), at))
            .collect();
        task
    }

    #[test]
    fn a_stored_document_reads_its_index_fields_when_asked() {
        let encoded = TaskDocument::from_task(&task("t", &["b", "a", "b", "c"]));
        let stored = TaskDocument::stored("t".into(), encoded.json().to_owned());
        assert_eq!(stored.request_ids(), ["b", "a", "c"]);
        assert_eq!(stored.created_at_micros(), encoded.created_at_micros());
        assert_eq!(stored.created_at_micros(), 1_735_689_601_500_000);
        assert_eq!(stored, encoded);
        assert_eq!(stored.to_task().unwrap(), task("t", &["b", "a", "b", "c"]));
    }

    #[test]
    fn a_stored_document_crosses_as_parts_without_being_read() {
        let json = TaskDocument::from_task(&task("t", &["r"]))
            .json()
            .to_owned();
        let (id, ids, created, text) = TaskDocument::stored("t".into(), json.clone()).into_parts();
        assert_eq!(
            (id.as_str(), ids.len(), created),
            ("t", 0, TaskDocument::NOT_DERIVED)
        );
        let back = TaskDocument::from_trusted_parts(id, ids, created, text);
        assert_eq!(back.request_ids(), ["r"]);
        // Once read, the fields cross as they are.
        let read = TaskDocument::stored("t".into(), json);
        assert_eq!(read.request_ids(), ["r"]);
        let (_, ids, created, _) = read.into_parts();
        assert_eq!(ids, ["r"]);
        assert_ne!(created, TaskDocument::NOT_DERIVED);
    }

    #[test]
    fn a_stored_document_that_does_not_fit_has_no_index_fields() {
        let doc = TaskDocument::stored("t".into(), r#"{"task_id":"t"}"#.into());
        assert!(doc.request_ids().is_empty());
        assert_eq!(doc.created_at_micros(), TaskDocument::NOT_DERIVED);
        let err = doc.into_stored_task(Operation::Load).unwrap_err();
        assert!(err.is_corrupt() && err.id() == "t", "{}", err.report());
    }

    #[test]
    fn index_fields_skip_everything_else() {
        let json = r#"{"extra":{"deep":[1,[2,{"created_at":"bogus"}]]},
            "items":[{"request_id":"r1","pending_tool_calls":[{"request_id":"no"}]},
                     {"role":"user","request_id":"r\"2"},{"request_id":"r1"}],
            "created_at":"2025-01-01T00:00:00Z","status":"anything"}"#;
        let fields = IndexFields::read(json).unwrap();
        assert_eq!(fields.created_at_micros(), 1_735_689_600_000_000);
        assert_eq!(
            fields.request_ids().collect::<Vec<_>>(),
            ["r1", "r\"2", "r1"]
        );
        assert!(fields.holds("r\"2") && fields.holds("r1"));
        assert!(!fields.holds("no") && !fields.holds("r"));
    }

    #[test]
    fn index_fields_take_the_last_of_repeated_keys() {
        let json = r#"{"created_at":"2000-01-01T00:00:00","items":[{"request_id":"old"}],
            "created_at":"2025-01-01T00:00:00","items":[{"request_id":"a","request_id":"b"}]}"#;
        let fields = IndexFields::read(json).unwrap();
        assert_eq!(fields.created_at_micros(), 1_735_689_600_000_000);
        assert_eq!(fields.request_ids().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn index_fields_read_created_at_as_the_model_does() {
        // A Unix time, which the model reads as an aware UTC datetime.
        let json = r#"{"created_at":1700000000,"items":[]}"#;
        let fields = IndexFields::read(json).unwrap();
        let model = Timestamp::parse("2023-11-14T22:13:20Z").unwrap();
        assert_eq!(fields.created_at_micros(), model.utc_micros());
    }

    #[test]
    fn index_fields_report_the_model_error_naming_the_field() {
        let valid = TaskDocument::from_task(&task("t", &["r"]))
            .json()
            .to_owned();
        for (json, field) in [
            (
                valid.replace(r#""created_at":"2025"#, r#""created_at":"soon","x":"2025"#),
                "created_at",
            ),
            (
                valid.replace(r#""request_id":"r""#, r#""request_id":7"#),
                "items[0].request_id",
            ),
        ] {
            assert_ne!(json, valid);
            let err = IndexFields::read(&json).unwrap_err();
            assert!(!err.is_not_json(), "{err}");
            assert!(err.to_string().contains(field), "{json}: {err}");
        }
        let err = IndexFields::read("{\"items\": [").unwrap_err();
        assert!(err.is_not_json(), "{err}");
    }
}
