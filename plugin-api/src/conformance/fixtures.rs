//! Task builders, fixed timestamps, per-case ids and readable differences for the cases.

use std::fmt::{self, Write as _};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeDelta, Utc};

use super::CaseFailure;
use crate::model::{
    AgentTask, AgentTaskItem, MultiModalItem, OpaqueJson, Role, TaskStatus, Timestamp,
};

/// 2025-01-01T00:00:00Z in microseconds since the Unix epoch: the suite's time origin.
pub(super) const BASE_MICROS: i64 = 1_735_689_600_000_000;

/// One second in microseconds.
pub(super) const SECOND: i64 = 1_000_000;

/// Ids scoped to one case (and one run), so that cases never touch each other's tasks.
#[derive(Debug, Clone)]
pub(super) struct Ns(String);

impl Ns {
    /// The namespace of a case: its name plus a tag that differs between runs.
    pub(super) fn new(case: &str) -> Self {
        Ns(format!("{case}-{}", run_tag()))
    }

    /// An id in this namespace.
    pub(super) fn id(&self, suffix: impl fmt::Display) -> String {
        format!("{}-{suffix}", self.0)
    }
}

/// Six hex digits that differ between runs (time and process), shared by all cases of one.
fn run_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0);
        format!(
            "{:06x}",
            (nanos ^ std::process::id().rotate_left(13)) & 0x00ff_ffff
        )
    })
}

/// A UTC timestamp `offset` microseconds after the suite's time origin.
pub(super) fn utc_at(offset: i64) -> Timestamp {
    Timestamp::from_utc(instant(offset))
}

/// The same instant as [`utc_at`], as a naive timestamp (no offset).
pub(super) fn naive_at(offset: i64) -> Timestamp {
    Timestamp::from_naive(instant(offset).naive_utc())
}

fn instant(offset: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + TimeDelta::microseconds(BASE_MICROS + offset)
}

/// A timestamp from its text; a fixture that does not parse fails the case.
pub(super) fn parse_time(text: &str) -> Result<Timestamp, CaseFailure> {
    Timestamp::parse(text)
        .map_err(|e| CaseFailure::new(format!("fixture timestamp {text:?} does not parse: {e}")))
}

/// Opaque JSON from its text; a fixture that does not parse fails the case.
pub(super) fn opaque(text: &str) -> Result<OpaqueJson, CaseFailure> {
    OpaqueJson::parse(text)
        .map_err(|e| CaseFailure::new(format!("fixture JSON {text:?} does not parse: {e}")))
}

/// The `n`th item of a task: a text message, user and assistant taking turns.
pub(super) fn item(task_id: &str, request_id: &str, n: usize) -> AgentTaskItem {
    let role = if n.is_multiple_of(2) {
        Role::User
    } else {
        Role::Assistant
    };
    let content = MultiModalItem::text(format!("message {n} of {task_id}"));
    AgentTaskItem::new(
        task_id,
        request_id,
        role,
        content,
        utc_at(n as i64 * SECOND),
    )
}

/// A running task created at the time origin, with one item per request id.
pub(super) fn task<S: AsRef<str>>(task_id: &str, request_ids: &[S]) -> AgentTask {
    task_created(task_id, request_ids, utc_at(0))
}

/// A running task created at `created`, with one item per request id.
pub(super) fn task_created<S: AsRef<str>>(
    task_id: &str,
    request_ids: &[S],
    created: Timestamp,
) -> AgentTask {
    let mut task = AgentTask::new(task_id, "session-1", "user-1", created);
    set_items(&mut task, request_ids);
    task
}

/// Replaces a task's items by one item per request id.
pub(super) fn set_items<S: AsRef<str>>(task: &mut AgentTask, request_ids: &[S]) {
    task.items = request_ids
        .iter()
        .enumerate()
        .map(|(n, id)| item(&task.task_id, id.as_ref(), n))
        .collect();
}

/// Appends one item with this request id.
pub(super) fn push_item(task: &mut AgentTask, request_id: &str) {
    let n = task.items.len();
    task.items.push(item(&task.task_id, request_id, n));
}

/// The task as the next turn would write it: a new status and a later `last_updated`.
pub(super) fn advanced(task: &AgentTask, status: TaskStatus) -> AgentTask {
    let mut next = task.clone();
    next.status = status;
    next.last_updated = utc_at(3_600 * SECOND);
    next
}

/// Text of about `bytes` bytes (never more) mixing ASCII, characters JSON escapes and
/// multi-byte characters.
pub(super) fn big_text(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 64);
    let mut n = 0u64;
    while text.len() < bytes {
        let _ = writeln!(
            text,
            "line {n}: \"quoted\" back\\slash\ttab é 漢字 🚀 {{\"json\": [1, 2]}}"
        );
        n += 1;
    }
    let mut end = bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// A task whose items use every field: tool calls, chat history, an image, both roles,
/// naive and offset timestamps.
pub(super) fn rich_task(task_id: &str, request_id: &str) -> Result<AgentTask, CaseFailure> {
    let mut task = AgentTask::new(task_id, "session-ü", "user@example.com", naive_at(0));
    task.status = TaskStatus::Paused;
    task.last_updated = parse_time("2025-01-01T02:00:07.000301+02:00")?;

    let asked = AgentTaskItem::new(
        task_id,
        request_id,
        Role::User,
        MultiModalItem::text("Send \"Q3\" to finance\\ops?\nLine two: é 漢字 🚀"),
        naive_at(SECOND + 17),
    );

    let mut pending = AgentTaskItem::new(
        task_id,
        request_id,
        Role::Assistant,
        MultiModalItem::text("HITL intervention required."),
        parse_time("2024-02-29T12:30:00.000001-09:30")?,
    );
    pending.pending_tool_calls = Some(vec![
        opaque(concat!(
            r#"{"id":"call_1","name":"EmailPlugin-send_email","#,
            r#""arguments":"{\"to\": \"finance@example.com\"}","metadata":{},"index":null}"#,
        ))?,
        opaque(r#"{"zeta":1.50,"alpha":[true,false,null],"nested":{"b":1,"a":"é"}}"#)?,
    ]);
    pending.chat_history = Some(opaque(concat!(
        r#"{"messages":[{"role":"user","items":[{"content_type":"text","text":"hi 🚀"}]},"#,
        r#"{"role":"assistant","items":[]}],"system_message":null}"#,
    ))?);

    let picture = AgentTaskItem::new(
        task_id,
        request_id,
        Role::User,
        MultiModalItem::image(concat!(
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
            "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
        )),
        utc_at(2 * SECOND),
    );

    let mut none_pending = AgentTaskItem::new(
        task_id,
        format!("{request_id}-second"),
        Role::Assistant,
        MultiModalItem::text(""),
        parse_time("2025-01-01T00:00:03Z")?,
    );
    none_pending.pending_tool_calls = Some(Vec::new());
    none_pending.chat_history = Some(opaque("{}")?);

    task.items = vec![asked, pending, picture, none_pending];
    Ok(task)
}

/// Text shortened for a message: at most about 120 characters, with the full length.
pub(super) fn shorten(text: &str) -> String {
    const KEEP: usize = 120;
    if text.len() <= KEEP + 40 {
        return text.to_owned();
    }
    let mut end = KEEP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

/// Where two tasks differ (the first differing field), or `None` if they are equal.
pub(super) fn difference(actual: &AgentTask, expected: &AgentTask) -> Option<String> {
    if actual == expected {
        return None;
    }
    macro_rules! field {
        ($label:expr, $a:expr, $e:expr) => {
            if $a != $e {
                return Some(format!(
                    "{} differs: got {}, expected {}",
                    $label,
                    shorten(&format!("{:?}", $a)),
                    shorten(&format!("{:?}", $e))
                ));
            }
        };
    }
    field!("task_id", actual.task_id, expected.task_id);
    field!("session_id", actual.session_id, expected.session_id);
    field!("user_id", actual.user_id, expected.user_id);
    field!("status", actual.status, expected.status);
    field!("created_at", actual.created_at, expected.created_at);
    field!("last_updated", actual.last_updated, expected.last_updated);
    field!(
        "the number of items",
        actual.items.len(),
        expected.items.len()
    );
    for (n, (a, e)) in actual.items.iter().zip(&expected.items).enumerate() {
        let at = |what: &str| format!("items[{n}].{what}");
        field!(at("task_id"), a.task_id, e.task_id);
        field!(at("request_id"), a.request_id, e.request_id);
        field!(at("role"), a.role, e.role);
        field!(at("updated"), a.updated, e.updated);
        field!(
            at("item.content_type"),
            a.item.content_type,
            e.item.content_type
        );
        if a.item.content != e.item.content {
            return Some(content_difference(n, &a.item.content, &e.item.content));
        }
        field!(at("item.extra"), a.item.extra, e.item.extra);
        field!(
            at("pending_tool_calls"),
            a.pending_tool_calls,
            e.pending_tool_calls
        );
        field!(at("chat_history"), a.chat_history, e.chat_history);
        field!(at("extra"), a.extra, e.extra);
    }
    field!("extra", actual.extra, expected.extra);
    Some("the tasks differ".to_owned())
}

fn content_difference(n: usize, actual: &str, expected: &str) -> String {
    let at = actual
        .char_indices()
        .zip(expected.chars())
        .find(|((_, a), e)| a != e)
        .map(|((i, _), _)| i)
        .unwrap_or(actual.len().min(expected.len()));
    format!(
        "items[{n}].item.content differs: {} bytes, expected {} bytes, first difference \
         at byte {at}",
        actual.len(),
        expected.len()
    )
}
