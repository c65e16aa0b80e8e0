//! The JSON wire format: serde for the model types and `AgentTask::{from_json, to_json}`.
//!
//! Everything is written by hand rather than derived, because the format needs what derive
//! cannot give cheaply: unknown fields kept in order and written after the known ones
//! (`#[serde(flatten)]` would buffer every field and cannot hold raw JSON), and defaults for
//! some missing fields but an error for `null`.
//!
//! Reading needs a `serde_json` deserializer (from text or from a `serde_json::Value`),
//! because opaque values and unknown fields are kept as raw JSON text.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{check_json_syntax, normalize};
use super::{
    AgentTask, AgentTaskItem, ContentType, ExtraFields, MultiModalItem, OpaqueJson, Role,
    TaskStatus,
};

/// Why a task document could not be read, and where.
///
/// Two kinds, told apart by [`WireError::is_not_json`]:
/// - the bytes are not a JSON document at all, as Python's `json.loads` reads JSON (see
///   [`check_json_syntax`](super::check_json_syntax)): nothing can read them;
/// - they are JSON, but do not fit the task model (a missing field, a wrong type, an
///   unknown status): a newer or other writer may have stored them, so they deserve to be
///   kept and reported rather than discarded.
///
/// `path` names the field (`items[0].role`, or `(root)` for the document itself), `line`
/// and `column` the place in the text (1-based; 0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} at {path}: {message}{}",
    if *.not_json { "not a JSON document" } else { "invalid task document" },
    position_suffix(*.line, *.column)
)]
pub struct WireError {
    path: String,
    message: String,
    line: usize,
    column: usize,
    not_json: bool,
}

fn position_suffix(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" (line {line}, column {column})")
    }
}

/// How the path of the document itself is shown.
const ROOT_PATH: &str = "(root)";

impl WireError {
    /// The field at fault, such as `items[0].role`; `(root)` for the document itself.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong, without the position (for example ``unknown variant `system`, expected
    /// `user` or `assistant` ``).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The 1-based line of the problem, or 0 when unknown.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column of the problem, or 0 when unknown.
    pub fn column(&self) -> usize {
        self.column
    }

    /// Whether the bytes are not a JSON document at all (as Python's `json.loads` reads
    /// JSON), rather than JSON that does not fit the task model.
    pub fn is_not_json(&self) -> bool {
        self.not_json
    }

    /// A syntax error found by [`check_json_syntax`](super::check_json_syntax).
    pub(crate) fn not_json(message: &str, line: usize, column: usize) -> Self {
        Self {
            path: ROOT_PATH.to_owned(),
            message: message.to_owned(),
            line,
            column,
            not_json: true,
        }
    }

    /// Builds the error from `serde_json`'s, with the path the second, tracking pass found.
    fn new(path: &str, error: &serde_json::Error) -> Self {
        let (line, column) = (error.line(), error.column());
        let mut message = error.to_string();
        if line != 0 {
            let suffix = format!(" at line {line} column {column}");
            if message.ends_with(&suffix) {
                message.truncate(message.len() - suffix.len());
            }
        }
        let path = if path.is_empty() || path == "." {
            ROOT_PATH
        } else {
            path
        };
        Self {
            path: path.to_owned(),
            message,
            line,
            column,
            not_json: false,
        }
    }

    /// Explains a failed parse. Reading is done a second time with path tracking, so that a
    /// document that parses (the usual case) pays nothing for it.
    fn locate<'de, R: serde_json::de::Read<'de>>(
        first: serde_json::Error,
        mut deserializer: serde_json::Deserializer<R>,
    ) -> Self {
        match serde_path_to_error::deserialize::<_, AgentTask>(&mut deserializer) {
            Err(tracked) => Self::new(&tracked.path().to_string(), tracked.inner()),
            Ok(_) => match deserializer.end() {
                // Trailing characters after the document.
                Err(trailing) => Self::new(ROOT_PATH, &trailing),
                Ok(()) => Self::new(ROOT_PATH, &first),
            },
        }
    }
}

impl AgentTask {
    /// The slow path, after `serde_json` failed to read `bytes` as a task: bytes that are
    /// not JSON at all are reported as such; a document with what only Python's `json`
    /// reads (repeated keys, `NaN`/`Infinity`) is rewritten and read again; otherwise the
    /// first error stands, explained.
    fn from_python_json(bytes: &[u8], first: serde_json::Error) -> Result<AgentTask, WireError> {
        check_json_syntax(bytes)?;
        // The syntax check has just shown the bytes to be UTF-8.
        let text = std::str::from_utf8(bytes).unwrap_or_default();
        let normalized = normalize::normalize(text);
        match serde_json::from_str::<AgentTask>(&normalized.text) {
            Ok(mut task) => {
                normalized.restore(&mut task);
                Ok(task)
            }
            // Only opaque values were set aside: the document reads as the input does, and
            // the first error stands, with its position in the input.
            Err(_) if !normalized.changed => Err(WireError::locate(
                first,
                serde_json::Deserializer::from_str(text),
            )),
            Err(again) => {
                let mut error =
                    WireError::locate(again, serde_json::Deserializer::from_str(&normalized.text));
                // Positions in the rewritten text are not positions in the input.
                error.line = 0;
                error.column = 0;
                error.message = normalized.describe(&error.message);
                if normalized.replaced_literals && error.message.contains("sequence") {
                    error.message.push_str(
                        " (NaN and Infinity are read only inside opaque values, where a \
                         placeholder array stands for them here)",
                    );
                }
                Err(error)
            }
        }
    }
}

impl AgentTask {
    /// Reads a task document: the JSON pydantic's `model_dump_json()` writes, or anything
    /// the Python original reads (`json.loads`, then pydantic): keys in any order or
    /// repeated (the last wins), whitespace, missing defaults, every datetime form pydantic
    /// takes, `NaN`/`Infinity` inside opaque values.
    ///
    /// Standard JSON is read in one pass; only a document that fails it is checked for
    /// what Python's `json` reads beyond it. The error tells bytes that are not JSON at all
    /// ([`WireError::is_not_json`]) from JSON that does not fit the model.
    pub fn from_json(json: &str) -> Result<AgentTask, WireError> {
        serde_json::from_str(json).or_else(|first| Self::from_python_json(json.as_bytes(), first))
    }

    /// [`AgentTask::from_json`] for bytes (which must be UTF-8).
    pub fn from_json_slice(json: &[u8]) -> Result<AgentTask, WireError> {
        serde_json::from_slice(json).or_else(|first| Self::from_python_json(json, first))
    }

    /// The task as pydantic's `model_dump_json()` writes it: compact, known fields in
    /// declaration order, then any unknown fields in the order they were read.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        // `serde_json` writes only UTF-8; the fallback never runs.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Appends [`AgentTask::to_json`]'s bytes to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.reserve(self.estimated_json_len());
        direct::task(out, self);
    }

    /// About the length of the document, so the buffer is allocated once.
    fn estimated_json_len(&self) -> usize {
        let fixed = 160 + 2 * TIMESTAMP_LEN;
        let ids = self.task_id.len() + self.session_id.len() + self.user_id.len();
        let items: usize = self
            .items
            .iter()
            .map(AgentTaskItem::estimated_json_len)
            .sum();
        fixed + ids + items + self.extra.estimated_json_len()
    }
}

/// The longest usual timestamp, `"2025-03-09T08:00:00.123000+02:00"` with its quotes.
const TIMESTAMP_LEN: usize = 34;

impl AgentTaskItem {
    fn estimated_json_len(&self) -> usize {
        let fixed = 190 + TIMESTAMP_LEN;
        // Some slack for escapes in free text.
        let content = self.item.content.len() + self.item.content.len() / 16;
        let tools: usize = self
            .pending_tool_calls
            .iter()
            .flatten()
            .map(|call| call.as_str().len() + 1)
            .sum();
        let history = self.chat_history.as_ref().map_or(0, |h| h.as_str().len());
        fixed
            + self.task_id.len()
            + self.request_id.len()
            + content
            + tools
            + history
            + self.extra.estimated_json_len()
            + self.item.extra.estimated_json_len()
    }
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// The document written directly: the same bytes as the `Serialize` impls below write
/// through `serde_json` (a test holds the two equal), without its string escaping, which
/// goes byte by byte through a table and was two thirds of an encode. Here the runs that
/// need no escape, almost every byte of a task, are found eight bytes at a time and
/// copied whole. The `Serialize` impls stay for callers that serialize a task into some
/// other serde format or value.
mod direct {
    use super::{ContentKey, ItemKey, TaskKey};
    use crate::model::timestamp::MAX_LEN;
    use crate::model::{AgentTask, AgentTaskItem, ExtraFields, OpaqueJson, Timestamp};

    pub(super) fn task(out: &mut Vec<u8>, task: &AgentTask) {
        out.extend_from_slice(b"{\"task_id\":");
        string(out, &task.task_id);
        out.extend_from_slice(b",\"session_id\":");
        string(out, &task.session_id);
        out.extend_from_slice(b",\"user_id\":");
        string(out, &task.user_id);
        out.extend_from_slice(b",\"items\":[");
        for (n, item) in task.items.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            self::item(out, item);
        }
        out.extend_from_slice(b"],\"created_at\":");
        timestamp(out, &task.created_at);
        out.extend_from_slice(b",\"last_updated\":");
        timestamp(out, &task.last_updated);
        out.extend_from_slice(b",\"status\":");
        string(out, task.status.as_str());
        extra(out, &task.extra, TaskKey::NAMES);
        out.push(b'}');
    }

    fn item(out: &mut Vec<u8>, item: &AgentTaskItem) {
        out.extend_from_slice(b"{\"task_id\":");
        string(out, &item.task_id);
        out.extend_from_slice(b",\"request_id\":");
        string(out, &item.request_id);
        out.extend_from_slice(b",\"role\":");
        string(out, item.role.as_str());
        out.extend_from_slice(b",\"item\":{\"content_type\":");
        string(out, item.item.content_type.as_str());
        out.extend_from_slice(b",\"content\":");
        string(out, &item.item.content);
        extra(out, &item.item.extra, ContentKey::NAMES);
        out.extend_from_slice(b"},\"updated\":");
        timestamp(out, &item.updated);
        out.extend_from_slice(b",\"pending_tool_calls\":");
        match &item.pending_tool_calls {
            None => out.extend_from_slice(b"null"),
            Some(calls) => {
                out.push(b'[');
                for (n, call) in calls.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    raw(out, call);
                }
                out.push(b']');
            }
        }
        out.extend_from_slice(b",\"chat_history\":");
        match &item.chat_history {
            None => out.extend_from_slice(b"null"),
            Some(history) => raw(out, history),
        }
        extra(out, &item.extra, ItemKey::NAMES);
        out.push(b'}');
    }

    /// The unknown fields after the known ones, skipping any that shadow a known name.
    fn extra(out: &mut Vec<u8>, extra: &ExtraFields, known: &[&str]) {
        for (name, value) in extra.iter() {
            if !known.contains(&name) {
                out.push(b',');
                string(out, name);
                out.push(b':');
                raw(out, value);
            }
        }
    }

    /// An opaque value is kept as text that is already JSON: written as it is.
    fn raw(out: &mut Vec<u8>, value: &OpaqueJson) {
        out.extend_from_slice(value.as_str().as_bytes());
    }

    fn timestamp(out: &mut Vec<u8>, at: &Timestamp) {
        let mut buf = [0u8; MAX_LEN];
        // Digits, signs, `T`, `Z`, `:` and `.` only: nothing to escape.
        let text = at.write_to(&mut buf);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }

    /// A JSON string, escaped as `serde_json` escapes it: `"` and `\\`, the control
    /// characters (the five with a short form as `\\b \\t \\n \\f \\r`, the others as
    /// `\\u00xx`), and nothing else (not DEL, not non-ASCII).
    pub(super) fn string(out: &mut Vec<u8>, text: &str) {
        let bytes = text.as_bytes();
        out.push(b'"');
        let mut copied = 0;
        let mut at = 0;
        while at < bytes.len() {
            // Skip whole words with no byte to escape.
            while let Some(word) = bytes.get(at..at + 8) {
                let mut le = [0u8; 8];
                le.copy_from_slice(word);
                if needs_escape(u64::from_le_bytes(le)) {
                    break;
                }
                at += 8;
            }
            let Some(&byte) = bytes.get(at) else { break };
            let short = match byte {
                b'"' => b'"',
                b'\\' => b'\\',
                0x08 => b'b',
                0x09 => b't',
                0x0A => b'n',
                0x0C => b'f',
                0x0D => b'r',
                0x00..=0x1F => b'u',
                _ => {
                    at += 1;
                    continue;
                }
            };
            out.extend_from_slice(&bytes[copied..at]);
            out.push(b'\\');
            out.push(short);
            if short == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xF)],
                ]);
            }
            at += 1;
            copied = at;
        }
        out.extend_from_slice(&bytes[copied..]);
        out.push(b'"');
    }

    /// Whether any of the eight bytes is `"`, `\\` or below 0x20. Exact about whether
    /// there is one (the classic "has a zero byte" test), so a word it passes needs no
    /// escape.
    fn needs_escape(word: u64) -> bool {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let quote = word ^ (ONES * b'"' as u64);
        let backslash = word ^ (ONES * b'\\' as u64);
        let zero_in = |w: u64| w.wrapping_sub(ONES) & !w;
        // A byte below 0x20: subtracting 0x20 borrows into its high bit, and the byte's
        // own high bit is clear.
        let control = word.wrapping_sub(ONES * 0x20) & !word;
        (zero_in(quote) | zero_in(backslash) | control) & HIGH != 0
    }
}

/// Writes the unknown fields after the known ones, skipping any that shadow a known name.
fn serialize_extra<M: SerializeMap>(
    map: &mut M,
    extra: &ExtraFields,
    known: &[&str],
) -> Result<(), M::Error> {
    for (name, value) in extra.iter() {
        if !known.contains(&name) {
            map.serialize_entry(name, value)?;
        }
    }
    Ok(())
}

impl Serialize for AgentTask {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(TaskKey::NAMES.len() + self.extra.len()))?;
        map.serialize_entry("task_id", &self.task_id)?;
        map.serialize_entry("session_id", &self.session_id)?;
        map.serialize_entry("user_id", &self.user_id)?;
        map.serialize_entry("items", &self.items)?;
        map.serialize_entry("created_at", &self.created_at)?;
        map.serialize_entry("last_updated", &self.last_updated)?;
        map.serialize_entry("status", &self.status)?;
        serialize_extra(&mut map, &self.extra, TaskKey::NAMES)?;
        map.end()
    }
}

impl Serialize for AgentTaskItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(ItemKey::NAMES.len() + self.extra.len()))?;
        map.serialize_entry("task_id", &self.task_id)?;
        map.serialize_entry("request_id", &self.request_id)?;
        map.serialize_entry("role", &self.role)?;
        map.serialize_entry("item", &self.item)?;
        map.serialize_entry("updated", &self.updated)?;
        map.serialize_entry("pending_tool_calls", &self.pending_tool_calls)?;
        map.serialize_entry("chat_history", &self.chat_history)?;
        serialize_extra(&mut map, &self.extra, ItemKey::NAMES)?;
        map.end()
    }
}

impl Serialize for MultiModalItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(ContentKey::NAMES.len() + self.extra.len()))?;
        map.serialize_entry("content_type", &self.content_type)?;
        map.serialize_entry("content", &*self.content)?;
        serialize_extra(&mut map, &self.extra, ContentKey::NAMES)?;
        map.end()
    }
}

impl Serialize for TaskStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Serialize for ContentType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------
// Reading: enums
// ---------------------------------------------------------------------------------------

/// A string enum read by its exact (case-sensitive) wire spelling.
macro_rules! wire_enum {
    ($ty:ident, $what:literal, { $($text:literal => $variant:ident),+ $(,)? }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct EnumVisitor;

                impl Visitor<'_> for EnumVisitor {
                    type Value = $ty;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }

                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        match v {
                            $($text => Ok($ty::$variant),)+
                            _ => Err(E::unknown_variant(v, &[$($text),+])),
                        }
                    }
                }

                deserializer.deserialize_str(EnumVisitor)
            }
        }
    };
}

wire_enum!(TaskStatus, "a task status (`Running`, `Paused`, `Completed`, `Failed` or `Canceled`)", {
    "Running" => Running,
    "Paused" => Paused,
    "Completed" => Completed,
    "Failed" => Failed,
    "Canceled" => Canceled,
});

wire_enum!(Role, "a role (`user` or `assistant`)", {
    "user" => User,
    "assistant" => Assistant,
});

wire_enum!(ContentType, "a content type (`text` or `image`)", {
    "text" => Text,
    "image" => Image,
});

// ---------------------------------------------------------------------------------------
// Reading: objects
// ---------------------------------------------------------------------------------------

/// The keys of one object type: a variant per known field, `Other` for the rest. Known
/// keys are matched without allocating.
macro_rules! wire_keys {
    ($name:ident { $($text:literal => $variant:ident),+ $(,)? }) => {
        enum $name {
            $($variant,)+
            Other(String),
        }

        impl $name {
            /// The known field names, in declaration (and writing) order.
            const NAMES: &'static [&'static str] = &[$($text),+];
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct KeyVisitor;

                impl Visitor<'_> for KeyVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a field name")
                    }

                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        Ok(match v {
                            $($text => $name::$variant,)+
                            _ => $name::Other(v.to_owned()),
                        })
                    }

                    fn visit_string<E: de::Error>(self, v: String) -> Result<$name, E> {
                        Ok(match v.as_str() {
                            $($text => $name::$variant,)+
                            _ => $name::Other(v),
                        })
                    }
                }

                deserializer.deserialize_identifier(KeyVisitor)
            }
        }
    };
}

wire_keys!(TaskKey {
    "task_id" => TaskId,
    "session_id" => SessionId,
    "user_id" => UserId,
    "items" => Items,
    "created_at" => CreatedAt,
    "last_updated" => LastUpdated,
    "status" => Status,
});

wire_keys!(ItemKey {
    "task_id" => TaskId,
    "request_id" => RequestId,
    "role" => Role,
    "item" => Item,
    "updated" => Updated,
    "pending_tool_calls" => PendingToolCalls,
    "chat_history" => ChatHistory,
});

wire_keys!(ContentKey {
    "content_type" => ContentType,
    "content" => Content,
});

/// Reads the value of a known field into its slot. A repeated key replaces the earlier
/// value, as in Python's `json` (the last one wins).
fn read_field<'de, A, T>(map: &mut A, slot: &mut Option<T>) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    T: Deserialize<'de>,
{
    *slot = Some(map.next_value()?);
    Ok(())
}

fn read_extra<'de, A: MapAccess<'de>>(
    map: &mut A,
    extra: &mut ExtraFields,
    name: String,
) -> Result<(), A::Error> {
    let value: OpaqueJson = map.next_value()?;
    extra.push_read(name, value);
    Ok(())
}

fn required<T, E: de::Error>(slot: Option<T>, name: &'static str) -> Result<T, E> {
    slot.ok_or_else(|| E::missing_field(name))
}

/// A JSON value that must be an object (a tool call or a chat history).
struct JsonObject(OpaqueJson);

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = OpaqueJson::deserialize(deserializer)?;
        if value.is_object() {
            Ok(Self(value))
        } else {
            let text = value.as_str();
            let shown = if text.len() > 40 {
                format!("{}...", text.chars().take(40).collect::<String>())
            } else {
                text.to_owned()
            };
            Err(de::Error::custom(format_args!(
                "invalid type: {} `{shown}`, expected a JSON object",
                value.kind()
            )))
        }
    }
}

impl<'de> Deserialize<'de> for AgentTask {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TaskVisitor)
    }
}

struct TaskVisitor;

impl<'de> Visitor<'de> for TaskVisitor {
    type Value = AgentTask;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an agent task (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AgentTask, A::Error> {
        let mut task_id = None;
        let mut session_id = None;
        let mut user_id = None;
        let mut items = None;
        let mut created_at = None;
        let mut last_updated = None;
        let mut status = None;
        let mut extra = ExtraFields::default();
        while let Some(key) = map.next_key::<TaskKey>()? {
            match key {
                TaskKey::TaskId => read_field(&mut map, &mut task_id)?,
                TaskKey::SessionId => read_field(&mut map, &mut session_id)?,
                TaskKey::UserId => read_field(&mut map, &mut user_id)?,
                TaskKey::Items => read_field(&mut map, &mut items)?,
                TaskKey::CreatedAt => read_field(&mut map, &mut created_at)?,
                TaskKey::LastUpdated => read_field(&mut map, &mut last_updated)?,
                TaskKey::Status => read_field(&mut map, &mut status)?,
                TaskKey::Other(name) => read_extra(&mut map, &mut extra, name)?,
            }
        }
        extra.settle_repeats();
        Ok(AgentTask {
            task_id: required(task_id, "task_id")?,
            session_id: required(session_id, "session_id")?,
            user_id: required(user_id, "user_id")?,
            items: required(items, "items")?,
            created_at: required(created_at, "created_at")?,
            last_updated: required(last_updated, "last_updated")?,
            status: status.unwrap_or_default(),
            extra,
        })
    }
}

impl<'de> Deserialize<'de> for AgentTaskItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = AgentTaskItem;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a task item (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AgentTaskItem, A::Error> {
        let mut task_id = None;
        let mut request_id = None;
        let mut role = None;
        let mut item = None;
        let mut updated = None;
        let mut pending_tool_calls: Option<Option<Vec<JsonObject>>> = None;
        let mut chat_history: Option<Option<JsonObject>> = None;
        let mut extra = ExtraFields::default();
        while let Some(key) = map.next_key::<ItemKey>()? {
            match key {
                ItemKey::TaskId => read_field(&mut map, &mut task_id)?,
                ItemKey::RequestId => read_field(&mut map, &mut request_id)?,
                ItemKey::Role => read_field(&mut map, &mut role)?,
                ItemKey::Item => read_field(&mut map, &mut item)?,
                ItemKey::Updated => read_field(&mut map, &mut updated)?,
                ItemKey::PendingToolCalls => read_field(&mut map, &mut pending_tool_calls)?,
                ItemKey::ChatHistory => read_field(&mut map, &mut chat_history)?,
                ItemKey::Other(name) => read_extra(&mut map, &mut extra, name)?,
            }
        }
        extra.settle_repeats();
        Ok(AgentTaskItem {
            task_id: required(task_id, "task_id")?,
            request_id: required(request_id, "request_id")?,
            role: required(role, "role")?,
            item: required(item, "item")?,
            updated: required(updated, "updated")?,
            // Same layout, so the vector is reused rather than copied.
            pending_tool_calls: pending_tool_calls
                .flatten()
                .map(|calls| calls.into_iter().map(|call| call.0).collect()),
            chat_history: chat_history.flatten().map(|history| history.0),
            extra,
        })
    }
}

impl<'de> Deserialize<'de> for MultiModalItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ContentVisitor)
    }
}

struct ContentVisitor;

impl<'de> Visitor<'de> for ContentVisitor {
    type Value = MultiModalItem;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("item content (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MultiModalItem, A::Error> {
        let mut content_type = None;
        let mut content = None;
        let mut extra = ExtraFields::default();
        while let Some(key) = map.next_key::<ContentKey>()? {
            match key {
                ContentKey::ContentType => read_field(&mut map, &mut content_type)?,
                ContentKey::Content => read_field(&mut map, &mut content)?,
                ContentKey::Other(name) => read_extra(&mut map, &mut extra, name)?,
            }
        }
        extra.settle_repeats();
        Ok(MultiModalItem {
            content_type: content_type.unwrap_or_default(),
            content: required::<String, _>(content, "content")?.into(),
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/wire");

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn built_task_writes_the_python_bytes() {
        let mut task = AgentTask::new("t-1", "s-1", "u-1", ts("2025-11-03T14:21:07.512034"));
        task.status = TaskStatus::Paused;
        task.last_updated = ts("2025-11-03T14:21:09Z");
        task.items.push(AgentTaskItem::new(
            "t-1",
            "r-1",
            Role::User,
            MultiModalItem::text("héllo \"x\"\n"),
            ts("2025-11-03T14:21:07.512034"),
        ));
        let mut paused = AgentTaskItem::new(
            "t-1",
            "r-1",
            Role::Assistant,
            MultiModalItem::image("data:image/png;base64,AAAA"),
            ts("2025-11-03T14:21:09.000100+02:00"),
        );
        paused.pending_tool_calls = Some(vec![OpaqueJson::parse(
            r#"{ "id": "call_1", "arguments": "{\"a\": 1}" }"#,
        )
        .unwrap()]);
        paused.chat_history = Some(OpaqueJson::from_value(&serde_json::json!({"messages": []})));
        task.items.push(paused);

        let expected = concat!(
            r#"{"task_id":"t-1","session_id":"s-1","user_id":"u-1","items":["#,
            r#"{"task_id":"t-1","request_id":"r-1","role":"user","item":{"content_type":"text","content":"héllo \"x\"\n"},"#,
            r#""updated":"2025-11-03T14:21:07.512034","pending_tool_calls":null,"chat_history":null},"#,
            r#"{"task_id":"t-1","request_id":"r-1","role":"assistant","item":{"content_type":"image","content":"data:image/png;base64,AAAA"},"#,
            r#""updated":"2025-11-03T14:21:09.000100+02:00","pending_tool_calls":[{"id":"call_1","arguments":"{\"a\": 1}"}],"#,
            r#""chat_history":{"messages":[]}}],"#,
            r#""created_at":"2025-11-03T14:21:07.512034","last_updated":"2025-11-03T14:21:09Z","status":"Paused"}"#,
        );
        assert_eq!(task.to_json(), expected);
        assert_eq!(AgentTask::from_json(expected).unwrap(), task);
        let mut out = b"prefix:".to_vec();
        task.write_json(&mut out);
        assert_eq!(&out[7..], expected.as_bytes());
    }

    #[test]
    fn unknown_fields_are_kept_in_order_at_every_level() {
        let input = r#"{"zz":[1, 2],"task_id":"t","session_id":"s","user_id":"u",
            "items":[{"task_id":"t","new_b":{"x" : 1},"request_id":"r","role":"user",
                "item":{"extra_2":2,"content":"c","extra_1":"1"},
                "updated":"2025-01-01T00:00:00","new_a":null}],
            "created_at":"2025-01-01","last_updated":"2025-01-01","aa":true}"#;
        let task = AgentTask::from_json(input).unwrap();
        let names: Vec<&str> = task.extra.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["zz", "aa"]);
        let item = &task.items[0];
        assert_eq!(
            item.extra.get("new_b").map(OpaqueJson::as_str),
            Some(r#"{"x":1}"#)
        );
        assert_eq!(
            task.to_json(),
            concat!(
                r#"{"task_id":"t","session_id":"s","user_id":"u","items":[{"task_id":"t","request_id":"r","role":"user","#,
                r#""item":{"content_type":"text","content":"c","extra_2":2,"extra_1":"1"},"updated":"2025-01-01T00:00:00","#,
                r#""pending_tool_calls":null,"chat_history":null,"new_b":{"x":1},"new_a":null}],"#,
                r#""created_at":"2025-01-01T00:00:00","last_updated":"2025-01-01T00:00:00","status":"Running","zz":[1,2],"aa":true}"#,
            )
        );
    }

    #[test]
    fn extra_fields_never_shadow_known_ones() {
        let mut task = AgentTask::new("t", "s", "u", ts("2025-01-01"));
        task.extra
            .insert("status".into(), OpaqueJson::parse("\"Failed\"").unwrap());
        task.extra
            .insert("more".into(), OpaqueJson::parse("1").unwrap());
        let json = task.to_json();
        assert!(json.ends_with(r#""status":"Running","more":1}"#), "{json}");
    }

    #[test]
    fn repeated_keys_keep_the_last_value_as_python_does() {
        let base = r#"{"task_id":"a","session_id":"s","user_id":"u","items":[],"created_at":"2025-01-01","last_updated":"2025-01-01""#;
        // Read directly: every value fits.
        let task = AgentTask::from_json(&format!(r#"{base},"task_id":"b"}}"#)).unwrap();
        assert_eq!(task.task_id, "b");
        // Read after rewriting: the first value does not fit, the last does.
        let task =
            AgentTask::from_json(&format!(r#"{base},"status":1,"status":"Paused"}}"#)).unwrap();
        assert_eq!(task.status, TaskStatus::Paused);
        // An unknown field keeps its first place and takes its last value.
        let task = AgentTask::from_json(&format!(
            r#"{base},"x":1,"y":2,"x":3,"status":{{}},"status":"Failed"}}"#
        ))
        .unwrap();
        let extra: Vec<(&str, &str)> = task.extra.iter().map(|(k, v)| (k, v.as_str())).collect();
        assert_eq!(extra, [("x", "3"), ("y", "2")]);
        assert_eq!(task.status, TaskStatus::Failed);
        // The last value decides, also when it is the one that does not fit.
        let err = AgentTask::from_json(&format!(r#"{base},"status":"Paused","status":"Done"}}"#))
            .unwrap_err();
        assert_eq!(err.path(), "status");
        assert!(!err.is_not_json());
    }

    #[test]
    fn opaque_values_nest_as_deep_as_python_reads_them() {
        // Far past serde_json's limit of 128 levels; Python's json reads about 1000.
        let deep = format!("{}{}", "[".repeat(600), "]".repeat(600));
        let text = format!(
            r#"{{"task_id":"t","session_id":"s","user_id":"u","items":[{{"task_id":"t","request_id":"r","role":"user","item":{{"content_type":"text","content":"c"}},"updated":"2025-01-01T00:00:00","pending_tool_calls":[{{"a":{deep}}}],"chat_history":{{"d":{deep}}},"x":{deep}}}],"created_at":"2025-01-01T00:00:00","last_updated":"2025-01-01T00:00:00","status":"Running"}}"#
        );
        let task = AgentTask::from_json(&text).unwrap();
        let item = &task.items[0];
        assert_eq!(
            item.chat_history.as_ref().map(OpaqueJson::as_str),
            Some(format!(r#"{{"d":{deep}}}"#).as_str())
        );
        assert_eq!(
            item.extra.get("x").map(OpaqueJson::as_str),
            Some(deep.as_str())
        );
        assert_eq!(task.to_json(), text);
        // Deep nesting in a typed place is still refused, and says where.
        let bad = text.replace(r#""user_id":"u""#, &format!(r#""user_id":{deep}"#));
        let err = AgentTask::from_json(&bad).unwrap_err();
        assert_eq!(err.path(), "user_id");
        assert!(!err.is_not_json());
    }

    #[test]
    fn nan_and_infinity_are_kept_verbatim_in_opaque_values_only() {
        let doc = |tail: &str| {
            format!(
                r#"{{"task_id":"t","session_id":"s","user_id":"u","items":[{{"task_id":"t","request_id":"r","role":"user","item":{{"content":"c"}},"updated":"2025-01-01"{tail}}}],"created_at":"2025-01-01","last_updated":"2025-01-01"}}"#
            )
        };
        let text = doc(
            r#","pending_tool_calls":[{"a":NaN}],"chat_history":{"b":[Infinity,-Infinity,"NaN"]},"x":-Infinity"#,
        );
        let task = AgentTask::from_json(&text).unwrap();
        let item = &task.items[0];
        assert_eq!(
            item.pending_tool_calls.as_ref().unwrap()[0].as_str(),
            r#"{"a":NaN}"#
        );
        assert_eq!(
            item.chat_history.as_ref().unwrap().as_str(),
            r#"{"b":[Infinity,-Infinity,"NaN"]}"#
        );
        assert_eq!(
            item.extra.get("x").map(OpaqueJson::as_str),
            Some("-Infinity")
        );
        assert!(task.to_json().contains(
            r#""pending_tool_calls":[{"a":NaN}],"chat_history":{"b":[Infinity,-Infinity,"NaN"]}"#
        ));
        assert_eq!(AgentTask::from_json(&task.to_json()).unwrap(), task);

        // A marker-like string already in the input does not confuse the placeholders.
        let text = doc(r#","chat_history":{"s":"\u0000ta0-0","n":NaN}"#);
        let task = AgentTask::from_json(&text).unwrap();
        assert_eq!(
            task.items[0].chat_history.as_ref().unwrap().as_str(),
            r#"{"s":"\u0000ta0-0","n":NaN}"#
        );

        for tail in [
            r#","updated":NaN"#,
            r#","role":Infinity"#,
            r#","chat_history":NaN"#,
        ] {
            let err = AgentTask::from_json(&doc(tail)).unwrap_err();
            assert!(!err.is_not_json(), "{tail}: {err}");
            assert!(!err.message().contains("ta0-"), "{tail}: {err}");
        }
    }

    #[test]
    fn errors_name_path_message_and_position() {
        let err = AgentTask::from_json(
            r#"{"task_id":"t","session_id":"s","user_id":"u","items":[{"task_id":"t","request_id":"r","role":"system"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.path(), "items[0].role");
        assert!(!err.is_not_json());
        assert_eq!(
            err.message(),
            "unknown variant `system`, expected `user` or `assistant`"
        );
        assert_eq!((err.line(), err.column()), (1, 102));
        assert_eq!(
            err.to_string(),
            "invalid task document at items[0].role: unknown variant `system`, \
             expected `user` or `assistant` (line 1, column 102)"
        );

        let err = AgentTask::from_json(r#"{"task_id":"t"}"#).unwrap_err();
        assert_eq!(err.path(), "(root)");
        assert_eq!(err.message(), "missing field `session_id`");

        let err = AgentTask::from_json(
            r#"{"items":[{"task_id":"t","request_id":"r","role":"user","item":{"content":"c"}}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.path(), "items[0]");
        assert_eq!(err.message(), "missing field `updated`");

        let err = AgentTask::from_json(r#"{"status":null}"#).unwrap_err();
        assert_eq!(err.path(), "status");
        assert!(
            err.message()
                .starts_with("invalid type: null, expected a task status"),
            "{err}"
        );

        let err = AgentTask::from_json(
            r#"{"task_id":"t","session_id":"s","user_id":"u","items":[],"created_at":"2025-01-01","last_updated":"2025-01-01"} x"#,
        )
        .unwrap_err();
        assert_eq!(err.path(), "(root)");
        assert!(err.is_not_json());
        assert_eq!(err.message(), "extra data after the document");
        assert_eq!((err.line(), err.column()), (1, 113));
        assert!(err
            .to_string()
            .starts_with("not a JSON document at (root): "));

        let err = AgentTask::from_json_slice(b"{\"task_id\":\"\xff\"}").unwrap_err();
        assert!(err.is_not_json());
        assert!(err.message().contains("UTF-8"), "{err}");

        let err = AgentTask::from_json(
            r#"{"task_id":"t","session_id":"s","user_id":"u","items":[{"task_id":"t","request_id":"r","role":"user","item":{"content":"c"},"updated":"2025-01-01","chat_history":[1]}],"created_at":"2025-01-01","last_updated":"2025-01-01"}"#,
        )
        .unwrap_err();
        assert_eq!(err.path(), "items[0].chat_history");
        assert!(
            err.message()
                .contains("invalid type: array `[1]`, expected a JSON object"),
            "{err}"
        );
    }

    #[test]
    fn enums_use_the_exact_wire_spelling() {
        for status in [
            TaskStatus::Running,
            TaskStatus::Paused,
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Canceled,
        ] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(serde_json::from_str::<TaskStatus>(&json).unwrap(), status);
        }
        assert!(serde_json::from_str::<TaskStatus>("\"running\"").is_err());
        assert!(serde_json::from_str::<ContentType>("\"TEXT\"").is_err());
        assert_eq!(
            serde_json::from_str::<Role>("\"assistant\"").unwrap(),
            Role::Assistant
        );
        assert!(serde_json::from_str::<Role>("1").is_err());
    }

    fn canonical_files() -> Vec<(String, String)> {
        let mut files: Vec<_> = std::fs::read_dir(format!("{FIXTURES}/canonical"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap();
                (path.display().to_string(), text)
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn parse_write_parse_is_stable_for_every_canonical_fixture() {
        let files = canonical_files();
        assert!(files.len() >= 10, "found only {} fixtures", files.len());
        for (name, text) in files {
            let first = AgentTask::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let written = first.to_json();
            let second = AgentTask::from_json(&written).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(first, second, "{name}");
            assert_eq!(second.to_json(), written, "{name}");
            let from_bytes = AgentTask::from_json_slice(text.as_bytes()).unwrap();
            assert_eq!(from_bytes, first, "{name}");
        }
    }

    /// The direct writer against `serde_json` through the `Serialize` impls.
    fn via_serde(task: &AgentTask) -> String {
        serde_json::to_string(task).unwrap()
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        // Every ASCII byte and a few wider characters, at every offset of a word and
        // across word boundaries, alone and in runs.
        let mut specials: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
        specials
            .extend(["é", "€", "😀", "\u{2028}", "\u{7f}", "\u{80}", "\u{ff}"].map(String::from));
        for special in &specials {
            for before in 0..17 {
                for after in [0, 1, 7, 8, 9] {
                    let text = format!("{}{special}{}", "a".repeat(before), "b".repeat(after));
                    let mut out = Vec::new();
                    direct::string(&mut out, &text);
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        serde_json::to_string(&text).unwrap(),
                        "{text:?}"
                    );
                }
            }
        }
        let dense: String = (0u8..0x80).map(char::from).cycle().take(1000).collect();
        let mut out = Vec::new();
        direct::string(&mut out, &dense);
        assert_eq!(out, serde_json::to_vec(&dense).unwrap());
    }

    #[test]
    fn the_direct_writer_writes_what_the_serialize_impls_write() {
        for (name, text) in canonical_files() {
            let task = AgentTask::from_json(&text).unwrap();
            assert_eq!(task.to_json(), via_serde(&task), "{name}");
        }
        // Unknown fields at every level, one shadowing a known name, escapes in every
        // string, no items, tool calls, history.
        let input = r#"{"zz":[1, 2],"task_id":"t\"1","session_id":"s\n","user_id":"u\u0001",
            "items":[{"task_id":"t","new_b":{"x" : 1},"request_id":"r\\","role":"user",
                "item":{"extra_2":2,"content":"c\t\u00e9","extra_1":"1"},
                "updated":"2025-01-01T00:00:00+05:30","new_a":null,
                "pending_tool_calls":[{"a":1},{"b":[]}],"chat_history":{"m":[]}}],
            "created_at":"2025-01-01","last_updated":"2025-01-01T00:00:00.000001Z","aa":true,
            "weird \"key\"":{}}"#;
        let mut task = AgentTask::from_json(input).unwrap();
        assert_eq!(task.to_json(), via_serde(&task));
        task.extra
            .insert("status".to_owned(), OpaqueJson::parse("1").unwrap());
        task.items[0].pending_tool_calls = Some(Vec::new());
        assert_eq!(task.to_json(), via_serde(&task));
        task.items.clear();
        assert_eq!(task.to_json(), via_serde(&task));
    }

    #[test]
    fn estimate_is_close_to_the_real_length() {
        for (name, text) in canonical_files() {
            let task = AgentTask::from_json(&text).unwrap();
            let estimate = task.estimated_json_len();
            assert!(
                estimate >= text.len(),
                "{name}: {estimate} < {}",
                text.len()
            );
            assert!(
                estimate <= text.len() * 2 + 256,
                "{name}: {estimate} vs {}",
                text.len()
            );
        }
    }
}
