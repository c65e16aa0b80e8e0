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

    /// The distinct request ids of the task's items, in first-seen order.
    pub fn request_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::with_capacity(self.items.len());
        for item in &self.items {
            if !ids.contains(&item.request_id.as_str()) {
                ids.push(&item.request_id);
            }
        }
        ids
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
