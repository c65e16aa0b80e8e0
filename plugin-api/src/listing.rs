//! Listing tasks: the filter, the page request, the summaries a page holds, and the
//! opaque cursor that pages through them.
//!
//! # Order and paging
//!
//! Every listing is in one order: newest `created_at` first, ties by task id, both
//! descending ([`ListKey`]'s `Ord`). Paging is by key, never by offset: a page's cursor
//! holds the key of its last task, and the next page starts strictly after it. So a walk
//! over every page returns exactly once each task that existed for the whole walk (and
//! whose `created_at` did not change), whatever else is created, updated or deleted
//! meanwhile: those other tasks may or may not appear, and never shift the ones that stay.
//!
//! # Cursors
//!
//! A [`Cursor`] is opaque to callers. It carries the key of the last task returned and
//! a digest of that key together with the filter it was made for, so a cursor that was
//! edited, truncated or produced under another filter is refused as
//! [`InvalidInput`](crate::PersistenceError::InvalidInput) rather than answered with a
//! wrong page. The digest is an integrity check, not a secret: anyone can build a valid
//! cursor, but a valid cursor only names a position in the same filter's order, so it
//! can never reveal a task the filter excludes. Cursors do not expire, and every backend
//! builds them alike, so a cursor survives a restart of the host.

use std::cmp::Ordering;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::{Operation, PersistenceError, Result};
use crate::model::{AgentTask, TaskStatus, Timestamp, WireError};

/// The page size when the caller gives none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The largest page a caller can ask for.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Which tasks a listing returns: those matching every criterion given.
///
/// No criterion lists every task. Ids are matched exactly; `statuses` is "any of".
///
/// ```
/// use ta_persistence_api::listing::TaskFilter;
/// use ta_persistence_api::TaskStatus;
///
/// let filter = TaskFilter::all()
///     .session("s1")
///     .statuses([TaskStatus::Completed, TaskStatus::Failed]);
/// assert_eq!(filter.session_id(), Some("s1"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    session_id: Option<String>,
    user_id: Option<String>,
    /// Sorted by ordinal, without repeats, so equal filters have equal digests.
    statuses: Option<Vec<TaskStatus>>,
}

impl TaskFilter {
    /// The filter that matches every task.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only tasks of this session.
    #[must_use]
    pub fn session(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    /// Only tasks of this user.
    #[must_use]
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Only tasks in one of these statuses (an empty set matches none).
    #[must_use]
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = TaskStatus>) -> Self {
        let mut statuses: Vec<TaskStatus> = statuses.into_iter().collect();
        statuses.sort_by_key(|s| s.ordinal());
        statuses.dedup();
        self.statuses = Some(statuses);
        self
    }

    /// The session id asked for, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The user id asked for, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// The statuses asked for, if any, in ordinal order without repeats.
    pub fn status_set(&self) -> Option<&[TaskStatus]> {
        self.statuses.as_deref()
    }

    /// Whether a task with these fields matches.
    pub fn matches(&self, session_id: &str, user_id: &str, status: TaskStatus) -> bool {
        self.session_id.as_deref().is_none_or(|s| s == session_id)
            && self.user_id.as_deref().is_none_or(|u| u == user_id)
            && self
                .statuses
                .as_ref()
                .is_none_or(|set| set.contains(&status))
    }

    /// Whether the task summarised matches.
    pub fn matches_summary(&self, summary: &TaskSummary) -> bool {
        self.matches(&summary.session_id, &summary.user_id, summary.status)
    }

    /// Whether the task matches.
    pub fn matches_task(&self, task: &AgentTask) -> bool {
        self.matches(&task.session_id, &task.user_id, task.status)
    }

    /// Feeds an unambiguous encoding of the filter to `hasher`.
    fn digest_into(&self, hasher: &mut Sha256) {
        fn field(hasher: &mut Sha256, value: Option<&str>) {
            match value {
                None => hasher.update([0]),
                Some(v) => {
                    hasher.update([1]);
                    hasher.update((v.len() as u64).to_be_bytes());
                    hasher.update(v.as_bytes());
                }
            }
        }
        field(hasher, self.session_id.as_deref());
        field(hasher, self.user_id.as_deref());
        match &self.statuses {
            None => hasher.update([0]),
            Some(set) => {
                hasher.update([1, set.len() as u8]);
                hasher.update(set.iter().map(|s| s.ordinal()).collect::<Vec<u8>>());
            }
        }
    }
}

/// A task's position in the listing order.
///
/// `Ord` is the listing order itself: the smaller key comes first, so a newer
/// `created_at` is smaller, and of two equal times the greater task id is smaller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListKey {
    /// `created_at` as microseconds since the Unix epoch (a naive time read as UTC), as
    /// [`Timestamp::utc_micros`] gives it.
    pub created_at_micros: i64,
    /// The task id.
    pub task_id: String,
}

impl ListKey {
    /// The key of a task created at `created_at_micros`.
    pub fn new(created_at_micros: i64, task_id: impl Into<String>) -> Self {
        ListKey {
            created_at_micros,
            task_id: task_id.into(),
        }
    }
}

impl Ord for ListKey {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .created_at_micros
            .cmp(&self.created_at_micros)
            .then_with(|| other.task_id.cmp(&self.task_id))
    }
}

impl PartialOrd for ListKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What a listing tells of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskSummary {
    /// The task id.
    pub task_id: String,
    /// Its session.
    pub session_id: String,
    /// Its user.
    pub user_id: String,
    /// Its status.
    pub status: TaskStatus,
    /// When it was created (the task's own field).
    pub created_at: Timestamp,
    /// When it was last updated (the task's own field).
    pub last_updated: Timestamp,
    /// How many items it holds.
    pub item_count: u64,
}

impl TaskSummary {
    /// A summary from its parts.
    pub fn new(
        task_id: impl Into<String>,
        session_id: impl Into<String>,
        user_id: impl Into<String>,
        status: TaskStatus,
        created_at: Timestamp,
        last_updated: Timestamp,
        item_count: u64,
    ) -> Self {
        TaskSummary {
            task_id: task_id.into(),
            session_id: session_id.into(),
            user_id: user_id.into(),
            status,
            created_at,
            last_updated,
            item_count,
        }
    }

    /// The summary of a task.
    pub fn of_task(task: &AgentTask) -> Self {
        TaskSummary {
            task_id: task.task_id.clone(),
            session_id: task.session_id.clone(),
            user_id: task.user_id.clone(),
            status: task.status,
            created_at: task.created_at,
            last_updated: task.last_updated,
            item_count: task.items.len() as u64,
        }
    }

    /// The summary of a task document's JSON (it is decoded as a whole, so a document
    /// that is not a valid task is refused as `load` would refuse it).
    pub fn from_json(json: &str) -> std::result::Result<Self, WireError> {
        AgentTask::from_json(json).map(|task| Self::of_task(&task))
    }

    /// The summary of a task document's JSON, reading only the fields a summary holds:
    /// the items are counted and everything else is skipped unparsed, so this costs a
    /// fraction of [`TaskSummary::from_json`] on a task with large items.
    ///
    /// Only the summarised fields are checked: use it on documents known to be valid
    /// tasks (the host encodes every document it hands a plugin from a task, or checks
    /// it), and [`TaskSummary::from_json`] where a document may not be one. Keys may
    /// repeat (the last one counts); a text the quick reader cannot read is decoded in
    /// full by the model instead, whose error is the one reported when that fails too.
    pub fn read_json(json: &str) -> std::result::Result<Self, WireError> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let quick = serde::Deserialize::deserialize(&mut deserializer)
            .and_then(|SummaryFields(summary)| deserializer.end().map(|()| summary));
        quick.or_else(|_| Self::from_json(json))
    }

    /// The task's position in the listing order.
    pub fn key(&self) -> ListKey {
        ListKey::new(self.created_at.utc_micros(), self.task_id.clone())
    }
}

/// An opaque position in a listing, from [`Page::next`]; pass it back in a
/// [`PageRequest`] to get the page after it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cursor(String);

/// The first character of every cursor this version makes: the format's version.
const CURSOR_VERSION: char = '1';

/// Digest bytes kept in a cursor: enough that an accidental or blind edit passes with
/// probability 2^-128.
const DIGEST_LEN: usize = 16;

impl Cursor {
    /// A cursor as the caller handed it back (it is checked when used).
    pub fn from_string(text: impl Into<String>) -> Self {
        Cursor(text.into())
    }

    /// The cursor's text, to hand to a caller.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The cursor that resumes `filter`'s listing after `key`.
    pub fn encode(filter: &TaskFilter, key: &ListKey) -> Self {
        let mut payload = Vec::with_capacity(8 + key.task_id.len() + DIGEST_LEN);
        payload.extend_from_slice(&key.created_at_micros.to_be_bytes());
        payload.extend_from_slice(key.task_id.as_bytes());
        let digest = cursor_digest(filter, &payload);
        payload.extend_from_slice(&digest);
        let mut text = String::with_capacity(1 + payload.len() * 4 / 3 + 4);
        text.push(CURSOR_VERSION);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut text);
        Cursor(text)
    }

    /// The key this cursor resumes after, when it was made by [`Cursor::encode`] for
    /// this same filter; otherwise an `InvalidInput` error of `op`.
    pub fn decode(&self, filter: &TaskFilter, op: Operation) -> Result<ListKey> {
        let refuse = |why: &str| {
            PersistenceError::invalid(op, "", format!("the page cursor is not valid: {why}"))
        };
        let Some(body) = self.0.strip_prefix(CURSOR_VERSION) else {
            return Err(refuse("it was not produced by this store"));
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| refuse("it is not in the cursor format"))?;
        if bytes.len() < 8 + DIGEST_LEN {
            return Err(refuse("it is truncated"));
        }
        let (payload, digest) = bytes.split_at(bytes.len() - DIGEST_LEN);
        if cursor_digest(filter, payload) != digest {
            return Err(refuse(
                "it was altered, or it belongs to a listing with another filter",
            ));
        }
        let (micros, id) = payload.split_at(8);
        let mut be = [0u8; 8];
        be.copy_from_slice(micros);
        let task_id =
            String::from_utf8(id.to_vec()).map_err(|_| refuse("its task id is not UTF-8"))?;
        Ok(ListKey::new(i64::from_be_bytes(be), task_id))
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Cursor").field(&self.0).finish()
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn cursor_digest(filter: &TaskFilter, payload: &[u8]) -> [u8; DIGEST_LEN] {
    let mut hasher = Sha256::new();
    hasher.update(b"ta-persistence listing cursor v1\0");
    filter.digest_into(&mut hasher);
    hasher.update(payload);
    let full = hasher.finalize();
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&full[..DIGEST_LEN]);
    out
}

/// Which page to return: its size and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    size: u32,
    cursor: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            size: DEFAULT_PAGE_SIZE,
            cursor: None,
        }
    }
}

impl PageRequest {
    /// The first page, of `size` tasks (1 to [`MAX_PAGE_SIZE`]).
    pub fn new(size: u32) -> Result<Self> {
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(PersistenceError::invalid(
                Operation::List,
                "",
                format!("a page size must be 1 to {MAX_PAGE_SIZE}; {size} was asked for"),
            ));
        }
        Ok(PageRequest { size, cursor: None })
    }

    /// The page after the one whose [`Page::next`] was `cursor`.
    #[must_use]
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.cursor = Some(cursor);
        self
    }

    /// The page size.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The cursor the page starts after, if any.
    pub fn cursor(&self) -> Option<&Cursor> {
        self.cursor.as_ref()
    }

    /// The key the page starts strictly after (`None` for the first page), checked
    /// against `filter`: the first thing a backend's `list_tasks` does.
    pub fn start_after(&self, filter: &TaskFilter) -> Result<Option<ListKey>> {
        if !(1..=MAX_PAGE_SIZE).contains(&self.size) {
            return Err(PersistenceError::invalid(
                Operation::List,
                "",
                format!(
                    "a page size must be 1 to {MAX_PAGE_SIZE}; {} was asked for",
                    self.size
                ),
            ));
        }
        self.cursor
            .as_ref()
            .map(|c| c.decode(filter, Operation::List))
            .transpose()
    }

    /// A request for `size` tasks after `cursor`, unchecked: for adapters that carry a
    /// request across a boundary (a backend checks it with [`start_after`](Self::start_after)).
    pub fn from_parts(size: u32, cursor: Option<Cursor>) -> Self {
        PageRequest { size, cursor }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Page {
    /// The tasks, in listing order.
    pub tasks: Vec<TaskSummary>,
    /// The cursor of the next page; `None` when this is the last.
    pub next: Option<Cursor>,
}

impl Page {
    /// A page from its parts.
    pub fn new(tasks: Vec<TaskSummary>, next: Option<Cursor>) -> Self {
        Page { tasks, next }
    }

    /// The page made of the first `size` of `ordered` (summaries already in listing
    /// order, already filtered and starting after the request's cursor), with a next
    /// cursor when `ordered` holds more.
    pub fn from_ordered(
        ordered: impl IntoIterator<Item = TaskSummary>,
        filter: &TaskFilter,
        size: u32,
    ) -> Self {
        let mut ordered = ordered.into_iter();
        let tasks: Vec<TaskSummary> = ordered.by_ref().take(size as usize).collect();
        let more = ordered.next().is_some();
        let next = match tasks.last() {
            Some(last) if more => Some(Cursor::encode(filter, &last.key())),
            _ => None,
        };
        Page { tasks, next }
    }
}

/// The fields of a [`TaskSummary`], read from a task document (see
/// [`TaskSummary::read_json`]).
struct SummaryFields(TaskSummary);

impl<'de> serde::Deserialize<'de> for SummaryFields {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_map(SummaryVisitor)
    }
}

struct SummaryVisitor;

impl<'de> serde::de::Visitor<'de> for SummaryVisitor {
    type Value = SummaryFields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an agent task (a JSON object)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        use serde::de::{Error as _, IgnoredAny};
        let mut task_id = None;
        let mut session_id = None;
        let mut user_id = None;
        let mut status = None;
        let mut created_at = None;
        let mut last_updated = None;
        let mut item_count = None;
        // A repeated key replaces the earlier value, as the model reads it.
        while let Some(key) = map.next_key::<crate::document::Text<'de>>()? {
            match key.0.as_ref() {
                "task_id" => task_id = Some(map.next_value::<String>()?),
                "session_id" => session_id = Some(map.next_value::<String>()?),
                "user_id" => user_id = Some(map.next_value::<String>()?),
                "status" => status = Some(map.next_value::<TaskStatus>()?),
                "created_at" => created_at = Some(map.next_value::<Timestamp>()?),
                "last_updated" => last_updated = Some(map.next_value::<Timestamp>()?),
                "items" => item_count = Some(map.next_value::<Counted>()?.0),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let required = |name: &'static str| A::Error::missing_field(name);
        Ok(SummaryFields(TaskSummary {
            task_id: task_id.ok_or_else(|| required("task_id"))?,
            session_id: session_id.ok_or_else(|| required("session_id"))?,
            user_id: user_id.ok_or_else(|| required("user_id"))?,
            status: status.unwrap_or_default(),
            created_at: created_at.ok_or_else(|| required("created_at"))?,
            last_updated: last_updated.ok_or_else(|| required("last_updated"))?,
            item_count: item_count.ok_or_else(|| required("items"))?,
        }))
    }
}

/// The length of a JSON array, its elements skipped unparsed.
struct Counted(u64);

impl<'de> serde::Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct CountVisitor;
        impl<'de> serde::de::Visitor<'de> for CountVisitor {
            type Value = Counted;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of task items")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> std::result::Result<Counted, S::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Counted(n))
            }
        }
        deserializer.deserialize_seq(CountVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(micros: i64, id: &str) -> ListKey {
        ListKey::new(micros, id)
    }

    #[test]
    fn the_quick_summary_is_the_decoded_one() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/wire");
        let mut seen = 0;
        for dir in ["canonical", "lenient"] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                let Ok(decoded) = TaskSummary::from_json(&text) else {
                    continue;
                };
                assert_eq!(TaskSummary::read_json(&text).unwrap(), decoded, "{path:?}");
                seen += 1;
            }
        }
        assert!(seen >= 10, "{seen}");
        // Repeated keys: the last one counts, as in the model.
        let json = r#"{"task_id":"t","session_id":"s","user_id":"u","status":"Paused",
            "items":[{"x":[1,{"items":[]}]},{}],"created_at":"2025-01-01T00:00:00",
            "last_updated":"2025-01-01T00:00:00","status":"Failed","user_id":"v"}"#;
        let quick = TaskSummary::read_json(json).unwrap();
        assert_eq!(
            (quick.status, quick.user_id.as_str()),
            (TaskStatus::Failed, "v")
        );
        assert_eq!(quick.item_count, 2);
        // What the quick reader refuses, the model reports.
        let err = TaskSummary::read_json(r#"{"task_id":"t"}"#).unwrap_err();
        assert!(err.to_string().contains("session_id"), "{err}");
        assert!(TaskSummary::read_json("{").unwrap_err().is_not_json());
    }

    #[test]
    fn the_order_is_newest_first_then_task_id_descending() {
        let mut keys = vec![
            key(1, "a"),
            key(3, "a"),
            key(2, "b"),
            key(2, "c"),
            key(2, "a"),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                key(3, "a"),
                key(2, "c"),
                key(2, "b"),
                key(2, "a"),
                key(1, "a")
            ]
        );
    }

    #[test]
    fn a_cursor_decodes_to_its_key_under_its_own_filter() {
        let filter = TaskFilter::all()
            .user("u")
            .statuses([TaskStatus::Failed, TaskStatus::Completed]);
        let k = key(-5, "t\u{e9}\n/1");
        let cursor = Cursor::encode(&filter, &k);
        assert_eq!(cursor.decode(&filter, Operation::List).unwrap(), k);
        // The same statuses in another order and repeated make the same filter.
        let same = TaskFilter::all().user("u").statuses([
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Completed,
        ]);
        assert_eq!(cursor.decode(&same, Operation::List).unwrap(), k);
    }

    #[test]
    fn a_cursor_from_another_filter_is_refused() {
        let cursor = Cursor::encode(&TaskFilter::all().session("s1"), &key(9, "t"));
        for other in [
            TaskFilter::all(),
            TaskFilter::all().session("s2"),
            TaskFilter::all().session("s1").user("u"),
            TaskFilter::all().session("s1").statuses([]),
            // The field boundaries are part of the digest: "s1" as a user is another filter.
            TaskFilter::all().user("s1"),
        ] {
            let err = cursor.decode(&other, Operation::List).unwrap_err();
            assert!(err.is_invalid_input(), "{other:?}: {err}");
        }
    }

    #[test]
    fn every_single_character_edit_and_every_truncation_is_refused() {
        let filter = TaskFilter::all();
        let text = Cursor::encode(&filter, &key(1_700_000_000_000_000, "task-42")).0;
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..text.len() {
            for c in alphabet.chars().chain(['2', '=']) {
                let mut edited = text.clone();
                edited.replace_range(i..=i, &c.to_string());
                if edited == text {
                    continue;
                }
                let result = Cursor(edited.clone()).decode(&filter, Operation::List);
                assert!(result.is_err(), "edit {edited} was accepted");
            }
            let truncated = Cursor(text[..i].to_owned()).decode(&filter, Operation::List);
            assert!(truncated.unwrap_err().is_invalid_input());
        }
    }

    #[test]
    fn page_sizes_outside_the_range_are_refused() {
        assert!(PageRequest::new(0).unwrap_err().is_invalid_input());
        assert!(PageRequest::new(MAX_PAGE_SIZE + 1)
            .unwrap_err()
            .is_invalid_input());
        assert_eq!(
            PageRequest::new(MAX_PAGE_SIZE).unwrap().size(),
            MAX_PAGE_SIZE
        );
        assert_eq!(PageRequest::default().size(), DEFAULT_PAGE_SIZE);
        let carried = PageRequest::from_parts(0, None);
        assert!(carried
            .start_after(&TaskFilter::all())
            .unwrap_err()
            .is_invalid_input());
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_follow() {
        let summary = |id: &str, micros: i64| {
            let at = Timestamp::from_utc(
                chrono::DateTime::from_timestamp_micros(micros).expect("in range"),
            );
            TaskSummary::new(id, "s", "u", TaskStatus::Running, at, at, 0)
        };
        let filter = TaskFilter::all();
        let all = vec![summary("c", 3), summary("b", 2), summary("a", 1)];
        let page = Page::from_ordered(all.clone(), &filter, 2);
        assert_eq!(page.tasks, all[..2]);
        let next = page.next.expect("a third task follows");
        assert_eq!(next.decode(&filter, Operation::List).unwrap(), key(2, "b"));
        let last = Page::from_ordered(all.clone(), &filter, 3);
        assert_eq!(last.tasks.len(), 3);
        assert!(last.next.is_none());
    }
}
