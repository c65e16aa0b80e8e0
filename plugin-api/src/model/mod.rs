//! The task data model: `AgentTask` and its parts, as the Python original writes them.
//!
//! Every type here reads and writes the JSON that pydantic's `model_dump_json()` produces
//! for the Python `AgentTask`: compact, keys in declaration order, explicit `null`s, enum
//! values as strings, and datetimes that keep their naive or offset form. Reading accepts
//! every document the Python original reads (`json.loads`, then pydantic's lax mode):
//! missing `status` and `content_type` take their defaults, keys may come in any order and
//! repeat (the last one wins), datetimes take every form pydantic's parser takes, and
//! opaque values may hold `NaN`/`Infinity`. Unlike pydantic, fields this version does not
//! know are kept and written back after the known ones, so a document written by a newer
//! writer loses nothing when an older reader updates it.
//!
//! A document that cannot be read says whether it is not JSON at all
//! ([`WireError::is_not_json`], [`check_json_syntax`]) or JSON that does not fit the model.
//!
//! `pending_tool_calls` elements and `chat_history` are [`OpaqueJson`]: the store never
//! looks inside them and keeps them verbatim.

use std::collections::HashSet;
use std::sync::Arc;

mod normalize;
mod opaque;
mod syntax;
mod timestamp;
mod wire;

pub use opaque::{ExtraFields, OpaqueJson};
pub use syntax::check_json_syntax;
pub use timestamp::{Timestamp, TimestampError};
pub use wire::WireError;

/// One persisted agent task: the unit of persistence, stored as one JSON document.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentTask {
    /// Primary key. Non-empty, at most [`MAX_ID_LEN`] bytes when stored.
    pub task_id: String,
    /// The session the task belongs to.
    pub session_id: String,
    /// The user who owns the task.
    pub user_id: String,
    /// The task's items, oldest first. The framework only ever appends.
    pub items: Vec<AgentTaskItem>,
    /// When the task was created (caller-maintained).
    pub created_at: Timestamp,
    /// When the task last changed (caller-maintained).
    pub last_updated: Timestamp,
    /// The task's state.
    pub status: TaskStatus,
    /// Fields this version does not know, kept in input order and written back.
    pub extra: ExtraFields,
}

/// One message or event of a task.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentTaskItem {
    /// The parent task's id (never checked against the parent, as in the original).
    pub task_id: String,
    /// The request that produced the item: the key of the request-id index.
    pub request_id: String,
    /// Who produced the item.
    pub role: Role,
    /// The item's content.
    pub item: MultiModalItem,
    /// When the item was written.
    pub updated: Timestamp,
    /// Tool calls awaiting approval: each element is a JSON object, kept verbatim.
    pub pending_tool_calls: Option<Vec<OpaqueJson>>,
    /// A chat-history snapshot (a JSON object), kept verbatim.
    pub chat_history: Option<OpaqueJson>,
    /// Fields this version does not know, kept in input order and written back.
    pub extra: ExtraFields,
}

/// Text or image content of an item.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MultiModalItem {
    /// What `content` holds. Defaults to text when absent on input.
    pub content_type: ContentType,
    /// The text, or for images a `data:<mime>;base64,...` URI.
    ///
    /// Shared and immutable: content can be megabytes (images are stored inline), and a
    /// store hands out a copy of the task on every load, so cloning it must not copy the
    /// content. Replace it to change it.
    pub content: Arc<str>,
    /// Fields this version does not know, kept in input order and written back.
    pub extra: ExtraFields,
}

/// The kind of an item's content (`"text"` or `"image"` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ContentType {
    /// Plain text (`"text"`).
    #[default]
    Text,
    /// An inline image as a data URI (`"image"`).
    Image,
}

/// The state of a task (`"Running"`, `"Paused"`, `"Completed"`, `"Failed"`, `"Canceled"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TaskStatus {
    /// Work in progress; the default when absent on input.
    #[default]
    Running,
    /// Waiting for a human decision (human-in-the-loop).
    Paused,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped by a rejection or a cancel (US spelling, as on the wire).
    Canceled,
}

/// Who produced an item (`"user"` or `"assistant"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// The end user.
    User,
    /// The agent.
    Assistant,
}

/// Up to this many values, looking back through the few kept so far is cheaper than
/// hashing; beyond it, a set keeps the work linear.
const LINEAR_DEDUP_MAX: usize = 16;

/// The distinct values of `values`, each at its first place: how a task's request ids are
/// listed. Linear in the number of values (a hash set past the first few), so a task with
/// any number of items costs no more than reading it.
pub fn distinct_in_order<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let values = values.into_iter();
    let mut out: Vec<&str> = Vec::with_capacity(values.size_hint().0.min(LINEAR_DEDUP_MAX));
    let mut seen: Option<HashSet<&str>> = None;
    for value in values {
        match &mut seen {
            Some(set) => {
                if set.insert(value) {
                    out.push(value);
                }
            }
            None => {
                if !out.contains(&value) {
                    out.push(value);
                    if out.len() > LINEAR_DEDUP_MAX {
                        seen = Some(out.iter().copied().collect());
                    }
                }
            }
        }
    }
    out
}

/// The longest task or request id a store accepts, in bytes.
pub const MAX_ID_LEN: usize = 1024;

impl AgentTask {
    /// A task with no items, status `Running`, both timestamps set to `now`.
    pub fn new(
        task_id: impl Into<String>,
        session_id: impl Into<String>,
        user_id: impl Into<String>,
        now: Timestamp,
    ) -> Self {
        Self {
            task_id: task_id.into(),
            session_id: session_id.into(),
            user_id: user_id.into(),
            items: Vec::new(),
            created_at: now,
            last_updated: now,
            status: TaskStatus::Running,
            extra: ExtraFields::default(),
        }
    }

    /// The distinct request ids of the task's items, in first-seen order. Linear in the
    /// number of items.
    pub fn request_ids(&self) -> Vec<&str> {
        distinct_in_order(self.items.iter().map(|item| item.request_id.as_str()))
    }
}

impl AgentTaskItem {
    /// An item with no pending tool calls and no chat history.
    pub fn new(
        task_id: impl Into<String>,
        request_id: impl Into<String>,
        role: Role,
        item: MultiModalItem,
        updated: Timestamp,
    ) -> Self {
        Self {
            task_id: task_id.into(),
            request_id: request_id.into(),
            role,
            item,
            updated,
            pending_tool_calls: None,
            chat_history: None,
            extra: ExtraFields::default(),
        }
    }
}

impl MultiModalItem {
    /// Text content.
    pub fn text(content: impl Into<Arc<str>>) -> Self {
        Self {
            content_type: ContentType::Text,
            content: content.into(),
            extra: ExtraFields::default(),
        }
    }

    /// Image content, as a `data:<mime>;base64,...` URI.
    pub fn image(data_uri: impl Into<Arc<str>>) -> Self {
        Self {
            content_type: ContentType::Image,
            content: data_uri.into(),
            extra: ExtraFields::default(),
        }
    }
}

impl TaskStatus {
    /// A small number for the status (0 to 4, in declaration order), for compact storage.
    ///
    /// An exhaustive match, so that adding a status fails to compile until it has one.
    pub const fn ordinal(self) -> u8 {
        match self {
            TaskStatus::Running => 0,
            TaskStatus::Paused => 1,
            TaskStatus::Completed => 2,
            TaskStatus::Failed => 3,
            TaskStatus::Canceled => 4,
        }
    }

    /// The status whose [`ordinal`](Self::ordinal) is `ordinal`, if any.
    pub const fn from_ordinal(ordinal: u8) -> Option<Self> {
        Some(match ordinal {
            0 => TaskStatus::Running,
            1 => TaskStatus::Paused,
            2 => TaskStatus::Completed,
            3 => TaskStatus::Failed,
            4 => TaskStatus::Canceled,
            _ => return None,
        })
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Running => "Running",
            TaskStatus::Paused => "Paused",
            TaskStatus::Completed => "Completed",
            TaskStatus::Failed => "Failed",
            TaskStatus::Canceled => "Canceled",
        }
    }
}

impl Role {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

impl ContentType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Text => "text",
            ContentType::Image => "image",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_in_order_keeps_first_places_at_any_size() {
        assert_eq!(
            distinct_in_order(["b", "a", "b", "c", "a"]),
            ["b", "a", "c"]
        );
        assert!(distinct_in_order([]).is_empty());
        // Past the linear threshold: repeats of early and late values are all dropped.
        let values: Vec<String> = (0..1000).map(|n| format!("r{}", n % 300)).collect();
        let distinct = distinct_in_order(values.iter().map(String::as_str));
        let expected: Vec<String> = (0..300).map(|n| format!("r{n}")).collect();
        assert_eq!(distinct, expected);
    }

    #[test]
    fn request_ids_are_distinct_in_first_seen_order() {
        let now = Timestamp::parse("2025-01-01").unwrap();
        let mut task = AgentTask::new("t", "s", "u", now);
        for id in ["r2", "r1", "r2", "r3", "r1"] {
            task.items.push(AgentTaskItem::new(
                "t",
                id,
                Role::User,
                MultiModalItem::text("x"),
                now,
            ));
        }
        assert_eq!(task.request_ids(), ["r2", "r1", "r3"]);
    }

    #[test]
    fn status_ordinals_round_trip() {
        let all = [
            TaskStatus::Running,
            TaskStatus::Paused,
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Canceled,
        ];
        for (n, status) in all.into_iter().enumerate() {
            assert_eq!(usize::from(status.ordinal()), n);
            assert_eq!(TaskStatus::from_ordinal(status.ordinal()), Some(status));
        }
        assert_eq!(TaskStatus::from_ordinal(5), None);
    }
}
