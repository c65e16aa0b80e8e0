//! The plain data that crosses the boundary: documents, errors, listings, log records,
//! host hooks.

use std::fmt;

use abi_stable::std_types::{ROption, RStr, RString, RVec};
use abi_stable::StableAbi;

use crate::document::TaskDocument;
use crate::error::{ErrorKind, Operation, Outcome, PersistenceError, Result};
use crate::listing::{Cursor, Page, PageRequest, TaskFilter, TaskSummary};
use crate::manager::{ETag, Versioned};
use crate::model::{TaskStatus, Timestamp};

/// A task document as it crosses the boundary (see [`TaskDocument`]).
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiDocument {
    /// The task id.
    pub task_id: RString,
    /// The distinct request ids of the task's items.
    pub request_ids: RVec<RString>,
    /// `created_at` in microseconds since the Unix epoch (naive read as UTC).
    pub created_at_micros: i64,
    /// The task's JSON.
    pub json: RString,
}

impl From<TaskDocument> for FfiDocument {
    fn from(doc: TaskDocument) -> Self {
        let (task_id, request_ids, created_at_micros, json) = doc.into_parts();
        FfiDocument {
            task_id: task_id.into(),
            request_ids: request_ids.into_iter().map(RString::from).collect(),
            created_at_micros,
            json: json.into(),
        }
    }
}

impl From<FfiDocument> for TaskDocument {
    fn from(doc: FfiDocument) -> Self {
        // The other side built these parts with `TaskDocument::from_task` (or read them
        // back from a store that was given such a document), so they agree.
        TaskDocument::from_trusted_parts(
            doc.task_id.into_string(),
            doc.request_ids
                .into_iter()
                .map(RString::into_string)
                .collect(),
            doc.created_at_micros,
            doc.json.into_string(),
        )
    }
}

/// A document with its ETag, as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiVersioned {
    /// The document.
    pub doc: FfiDocument,
    /// Its ETag.
    pub etag: RString,
}

impl From<Versioned<TaskDocument>> for FfiVersioned {
    fn from(v: Versioned<TaskDocument>) -> Self {
        FfiVersioned {
            doc: v.value.into(),
            etag: v.etag.as_str().into(),
        }
    }
}

impl From<FfiVersioned> for Versioned<TaskDocument> {
    fn from(v: FfiVersioned) -> Self {
        Versioned::new(v.doc.into(), ETag::new(v.etag.into_string()))
    }
}

/// A [`PersistenceError`] as it crosses the boundary: its kind and operation as numbers,
/// its fields as strings, and its cause chain as a list of messages.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiError {
    /// [`ErrorKind`] discriminant.
    pub kind: u8,
    /// [`Operation`] code (see `op_code`).
    pub op: u8,
    /// The task or request id.
    pub id: RString,
    /// The reason (invalid input), the expected ETag (conflict), or, for a timeout or an
    /// unavailable backend, `not-applied` when the operation is known to have changed
    /// nothing (empty: a write's outcome is unknown, as older plugins imply).
    pub detail: RString,
    /// The messages of the cause chain, outermost first.
    pub causes: RVec<RString>,
    /// The waited time (timeout), milliseconds.
    pub millis: u64,
}

/// The `detail` of a timeout or unavailable error whose operation changed nothing.
pub(crate) const NOT_APPLIED: &str = "not-applied";

fn outcome_detail(outcome: Outcome) -> RString {
    match outcome {
        Outcome::NotApplied => NOT_APPLIED.into(),
        _ => RString::new(),
    }
}

/// The outcome a `detail` tells; an empty one (a plugin from before outcomes were
/// carried) is taken as nothing known of how far the operation got.
fn outcome_from_detail(detail: &str, op: Operation) -> Outcome {
    if detail == NOT_APPLIED {
        Outcome::NotApplied
    } else {
        Outcome::of_unanswered(op)
    }
}

fn op_from_code(code: u8, fallback: Operation) -> Operation {
    Operation::from_code(code).unwrap_or(fallback)
}

fn chain(source: &(dyn std::error::Error + 'static)) -> RVec<RString> {
    let mut out = RVec::new();
    let mut cause = Some(source);
    while let Some(err) = cause {
        out.push(RString::from(err.to_string()));
        cause = err.source();
    }
    out
}

impl FfiError {
    /// Encodes an error.
    pub fn from_error(err: &PersistenceError) -> Self {
        let mut out = FfiError {
            kind: err.kind() as u8,
            op: err.operation().code(),
            id: err.id().into(),
            detail: RString::new(),
            causes: RVec::new(),
            millis: 0,
        };
        match err {
            PersistenceError::InvalidInput { reason, .. } => out.detail = reason.as_str().into(),
            PersistenceError::Conflict { expected, .. } => out.detail = expected.as_str().into(),
            PersistenceError::Timeout { after, outcome, .. } => {
                out.millis = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
                out.detail = outcome_detail(*outcome);
            }
            PersistenceError::Unavailable {
                source, outcome, ..
            } => {
                out.causes = chain(source.as_ref());
                out.detail = outcome_detail(*outcome);
            }
            PersistenceError::Corrupt { source, .. }
            | PersistenceError::Backend { source, .. }
            | PersistenceError::Plugin { source, .. } => out.causes = chain(source.as_ref()),
            // The struct is frozen: the backend rides in `detail`, the interface version
            // in `millis` (plus one, so that zero is "not a plugin").
            PersistenceError::Unsupported {
                backend,
                interface_version,
                ..
            } => {
                out.detail = backend.as_str().into();
                out.millis = interface_version.map_or(0, |v| u64::from(v) + 1);
            }
            _ => {}
        }
        out
    }

    /// Decodes an error; `op` stands in for an operation code this version does not know.
    pub fn into_error(self, op: Operation) -> PersistenceError {
        let op = op_from_code(self.op, op);
        let id = self.id.into_string();
        let source = || RemoteError::from_chain(self.causes.iter().map(|c| c.as_str()));
        match ErrorKind::from_u8(self.kind) {
            Some(ErrorKind::AlreadyExists) => PersistenceError::AlreadyExists { op, task_id: id },
            Some(ErrorKind::NotFound) => PersistenceError::NotFound { op, task_id: id },
            Some(ErrorKind::InvalidInput) => PersistenceError::InvalidInput {
                op,
                id,
                reason: self.detail.into_string(),
            },
            Some(ErrorKind::Conflict) => PersistenceError::Conflict {
                op,
                task_id: id,
                expected: self.detail.into_string(),
            },
            Some(ErrorKind::Corrupt) => PersistenceError::Corrupt {
                op,
                task_id: id,
                source: source(),
            },
            Some(ErrorKind::Unavailable) => PersistenceError::Unavailable {
                op,
                id,
                source: source(),
                outcome: outcome_from_detail(&self.detail, op),
            },
            Some(ErrorKind::Timeout) => PersistenceError::Timeout {
                op,
                id,
                after: std::time::Duration::from_millis(self.millis),
                outcome: outcome_from_detail(&self.detail, op),
            },
            Some(ErrorKind::Backend) => PersistenceError::Backend {
                op,
                id,
                source: source(),
            },
            Some(ErrorKind::Plugin) => PersistenceError::Plugin {
                op,
                id,
                source: source(),
            },
            Some(ErrorKind::Unsupported) => PersistenceError::Unsupported {
                op,
                backend: self.detail.into_string(),
                interface_version: self
                    .millis
                    .checked_sub(1)
                    .and_then(|v| u32::try_from(v).ok()),
            },
            // A newer plugin's kind: keep its message, call it a plugin failure.
            None => PersistenceError::Plugin {
                op,
                id,
                source: Box::new(RemoteError {
                    message: format!("unknown error kind {}", self.kind),
                    source: Some(source()),
                }),
            },
        }
    }
}

/// A cause that came from the other side of the boundary: its message and its own cause.
#[derive(Debug)]
pub struct RemoteError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl RemoteError {
    /// Rebuilds a cause chain from its messages, outermost first.
    pub fn from_chain<'a>(
        messages: impl DoubleEndedIterator<Item = &'a str>,
    ) -> Box<dyn std::error::Error + Send + Sync> {
        let mut source: Option<Box<dyn std::error::Error + Send + Sync>> = None;
        for message in messages.rev() {
            source = Some(Box::new(RemoteError {
                message: message.to_owned(),
                source,
            }));
        }
        source.unwrap_or_else(|| {
            Box::new(RemoteError {
                message: "no details".to_owned(),
                source: None,
            })
        })
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A [`TaskFilter`] as it crosses the boundary (interface 3 on).
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiTaskFilter {
    /// Only this session's tasks.
    pub session_id: ROption<RString>,
    /// Only this user's tasks.
    pub user_id: ROption<RString>,
    /// Only tasks in one of these statuses, as [`TaskStatus::ordinal`]s.
    pub statuses: ROption<RVec<u8>>,
}

impl From<&TaskFilter> for FfiTaskFilter {
    fn from(filter: &TaskFilter) -> Self {
        FfiTaskFilter {
            session_id: filter.session_id().map(RString::from).into(),
            user_id: filter.user_id().map(RString::from).into(),
            statuses: filter
                .status_set()
                .map(|set| set.iter().map(|s| s.ordinal()).collect())
                .into(),
        }
    }
}

impl FfiTaskFilter {
    /// The filter, on the plugin's side: a status this version does not know (sent by a
    /// newer host) is refused as `InvalidInput` rather than dropped, which would widen
    /// the listing.
    pub fn to_filter(&self) -> Result<TaskFilter> {
        let mut filter = TaskFilter::all();
        if let ROption::RSome(session) = &self.session_id {
            filter = filter.session(session.as_str());
        }
        if let ROption::RSome(user) = &self.user_id {
            filter = filter.user(user.as_str());
        }
        if let ROption::RSome(ordinals) = &self.statuses {
            let statuses = ordinals
                .iter()
                .map(|&o| {
                    TaskStatus::from_ordinal(o).ok_or_else(|| {
                        PersistenceError::invalid(
                            Operation::List,
                            "",
                            format!("the filter names status {o}, which this plugin does not know"),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            filter = filter.statuses(statuses);
        }
        Ok(filter)
    }
}

/// A [`PageRequest`] as it crosses the boundary (interface 3 on); the plugin checks it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiPageRequest {
    /// The page size.
    pub size: u32,
    /// The cursor the page starts after, as the caller gave it.
    pub cursor: ROption<RString>,
}

impl From<&PageRequest> for FfiPageRequest {
    fn from(page: &PageRequest) -> Self {
        FfiPageRequest {
            size: page.size(),
            cursor: page.cursor().map(|c| RString::from(c.as_str())).into(),
        }
    }
}

impl From<&FfiPageRequest> for PageRequest {
    fn from(page: &FfiPageRequest) -> Self {
        let cursor = match &page.cursor {
            ROption::RSome(text) => Some(Cursor::from_string(text.as_str())),
            ROption::RNone => None,
        };
        PageRequest::from_parts(page.size, cursor)
    }
}

/// A [`TaskSummary`] as it crosses the boundary (interface 3 on): the status as its
/// ordinal, the times as their wire text (which keeps naive and aware times apart).
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiTaskSummary {
    /// The task id.
    pub task_id: RString,
    /// Its session.
    pub session_id: RString,
    /// Its user.
    pub user_id: RString,
    /// Its status, as [`TaskStatus::ordinal`].
    pub status: u8,
    /// `created_at`, as the task's JSON writes it.
    pub created_at: RString,
    /// `last_updated`, as the task's JSON writes it.
    pub last_updated: RString,
    /// How many items the task holds.
    pub item_count: u64,
}

impl From<TaskSummary> for FfiTaskSummary {
    fn from(summary: TaskSummary) -> Self {
        FfiTaskSummary {
            status: summary.status.ordinal(),
            created_at: summary.created_at.to_string().into(),
            last_updated: summary.last_updated.to_string().into(),
            item_count: summary.item_count,
            task_id: summary.task_id.into(),
            session_id: summary.session_id.into(),
            user_id: summary.user_id.into(),
        }
    }
}

impl FfiTaskSummary {
    /// The summary, on the host's side; `Err` says what the plugin sent that is not one.
    fn into_summary(self) -> std::result::Result<TaskSummary, String> {
        let id = self.task_id.as_str();
        let status = TaskStatus::from_ordinal(self.status)
            .ok_or_else(|| format!("task {id:?} has unknown status {}", self.status))?;
        let time = |field: &str, text: &RString| {
            Timestamp::parse(text.as_str())
                .map_err(|e| format!("task {id:?} has {field} {:?}: {}", e.input(), e.reason()))
        };
        let created_at = time("created_at", &self.created_at)?;
        let last_updated = time("last_updated", &self.last_updated)?;
        Ok(TaskSummary::new(
            self.task_id.into_string(),
            self.session_id.into_string(),
            self.user_id.into_string(),
            status,
            created_at,
            last_updated,
            self.item_count,
        ))
    }
}

/// A [`Page`] as it crosses the boundary (interface 3 on).
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiPage {
    /// The tasks, in listing order.
    pub tasks: RVec<FfiTaskSummary>,
    /// The next page's cursor; none on the last page.
    pub next: ROption<RString>,
}

impl From<Page> for FfiPage {
    fn from(page: Page) -> Self {
        FfiPage {
            tasks: page.tasks.into_iter().map(FfiTaskSummary::from).collect(),
            next: page.next.map(|c| RString::from(c.as_str())).into(),
        }
    }
}

impl FfiPage {
    /// The page, on the host's side: a summary that does not decode is a `Plugin` error
    /// naming `plugin` and the task.
    pub fn into_page(self, plugin: &str) -> Result<Page> {
        let tasks = self
            .tasks
            .into_iter()
            .map(FfiTaskSummary::into_summary)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|what| {
                PersistenceError::plugin(
                    Operation::List,
                    "",
                    format!("{plugin} answered a listing that is not one: {what}"),
                )
            })?;
        let next = match self.next {
            ROption::RSome(text) => Some(Cursor::from_string(text.into_string())),
            ROption::RNone => None,
        };
        Ok(Page::new(tasks, next))
    }
}

/// What the host gives a plugin's constructor besides its configuration.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct HostHooks {
    /// Receives the plugin's log events: `(level, target, message)`, level as in
    /// [`level_code`](super::logging::level_code). It never blocks and never unwinds.
    pub log: extern "C" fn(u8, RStr<'_>, RStr<'_>),
    /// The most verbose level the host records (0 = off, 1 = error ... 5 = trace): the
    /// plugin drops anything more verbose before it crosses.
    pub max_level: u8,
}

/// One `KEY=value` configuration variable.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiVar {
    /// The variable's name.
    pub name: RString,
    /// Its value.
    pub value: RString,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn round_trip(err: PersistenceError) -> PersistenceError {
        FfiError::from_error(&err).into_error(Operation::Health)
    }

    #[test]
    fn every_kind_survives_the_crossing_with_its_fields() {
        let cases = vec![
            PersistenceError::AlreadyExists {
                op: Operation::Create,
                task_id: "t".into(),
            },
            PersistenceError::NotFound {
                op: Operation::Delete,
                task_id: "t".into(),
            },
            PersistenceError::invalid(Operation::Update, "t", "request id is empty"),
            PersistenceError::Conflict {
                op: Operation::Update,
                task_id: "t".into(),
                expected: "e1".into(),
            },
            PersistenceError::timeout(Operation::LoadByRequestId, "r", Duration::from_millis(1500)),
            PersistenceError::timeout(Operation::Create, "t", Duration::from_millis(10)),
            PersistenceError::unavailable(Operation::Update, "t", "reset", Outcome::Unknown),
            PersistenceError::unavailable(Operation::Update, "t", "refused", Outcome::NotApplied),
            PersistenceError::backend(Operation::Load, "t", "boom"),
            PersistenceError::unsupported(Operation::List, "ta-plugin-old", Some(2)),
            PersistenceError::unsupported(Operation::Purge, "SomeManager", None),
        ];
        for err in cases {
            let text = err.report();
            let outcome = err.outcome();
            let back = round_trip(err);
            assert_eq!(back.report(), text);
            assert_eq!(back.outcome(), outcome, "{text}");
            if let PersistenceError::Unsupported {
                interface_version, ..
            } = &back
            {
                assert_eq!(text.contains("version 2"), *interface_version == Some(2));
            }
        }
    }

    #[test]
    fn an_error_without_an_outcome_leaves_a_write_unknown() {
        // What a plugin from before outcomes were carried sends: no detail.
        let mut ffi = FfiError::from_error(&PersistenceError::unavailable(
            Operation::Delete,
            "t",
            "reset",
            Outcome::NotApplied,
        ));
        ffi.detail = RString::new();
        assert!(ffi.into_error(Operation::Delete).is_outcome_unknown());
    }

    #[test]
    fn the_cause_chain_is_rebuilt_in_order() {
        let inner = std::io::Error::other("disk on fire");
        let err = PersistenceError::Corrupt {
            op: Operation::Load,
            task_id: "t9".into(),
            source: Box::new(inner),
        };
        let back = round_trip(err);
        assert!(back.is_corrupt());
        assert_eq!(back.id(), "t9");
        assert_eq!(back.operation(), Operation::Load);
        assert_eq!(
            back.report(),
            "load task 't9': stored data is corrupt: disk on fire"
        );
    }

    #[test]
    fn an_unknown_kind_becomes_a_plugin_failure() {
        let mut ffi = FfiError::from_error(&PersistenceError::backend(Operation::Load, "t", "x"));
        ffi.kind = 200;
        let back = ffi.into_error(Operation::Load);
        assert_eq!(back.kind(), ErrorKind::Plugin);
        assert!(back.report().contains("unknown error kind 200"));
    }

    #[test]
    fn documents_cross_unchanged() {
        let doc = TaskDocument::from_trusted_parts(
            "t1".into(),
            vec!["r1".into(), "r2".into()],
            42,
            "{}".into(),
        );
        let back: TaskDocument = FfiDocument::from(doc.clone()).into();
        assert_eq!(back, doc);
    }
}
