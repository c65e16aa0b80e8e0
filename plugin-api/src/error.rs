//! `PersistenceError`: every way a persistence operation can fail, as typed variants.
//!
//! Each variant names the operation ([`Operation`]) and the task or request id it was
//! about, so a message read in a log says what failed and on what; the underlying cause,
//! where there is one, is kept as the error's `source()`. Callers classify an error with
//! [`PersistenceError::kind`] or the `is_*` predicates, never by parsing its text.
//!
//! # Retrying
//!
//! A write that failed on the way to the backend or on the way back (the backend was
//! slow, or the connection broke) may have been applied all the same: the backend may
//! have done the work and only its answer was lost. Such an error has an unknown outcome
//! ([`PersistenceError::is_outcome_unknown`]), and sending the same write again is not
//! simply a retry: a `create` may then answer `AlreadyExists` for the task it stored the
//! first time, an `update` may overwrite a change made in between, a `delete` may answer
//! `NotFound`. Read the task back to learn what happened (or retry an `update_if_match`
//! with the ETag read before, which lands at most once). A read, or a write known not to
//! have reached the backend, can be sent again as it is
//! ([`PersistenceError::is_retryable`]).

use std::fmt;
use std::time::Duration;

/// A boxed error cause, kept as the `source()` of a [`PersistenceError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The operation that failed.
///
/// Its discriminants are stable: they are the operation's code across the plugin
/// boundary ([`Operation::code`]), so a new operation takes the next free code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum Operation {
    /// `create(task)`.
    Create = 0,
    /// `load(task_id)` or `load_with_etag(task_id)`.
    Load = 1,
    /// `update(task)` or `update_if_match(task, etag)`.
    Update = 2,
    /// `delete(task_id)`.
    Delete = 3,
    /// `load_by_request_id(request_id)`.
    LoadByRequestId = 4,
    /// `health()`.
    Health = 5,
    /// `clear()`.
    Clear = 6,
    /// Constructing a manager (a plugin's constructor, a connection at start-up).
    Construct = 7,
    /// `list_tasks(filter, page)`.
    List = 8,
    /// `purge()`.
    Purge = 9,
}

impl Operation {
    /// Every operation, in the order of their codes.
    pub const ALL: [Operation; 10] = [
        Operation::Create,
        Operation::Load,
        Operation::Update,
        Operation::Delete,
        Operation::LoadByRequestId,
        Operation::Health,
        Operation::Clear,
        Operation::Construct,
        Operation::List,
        Operation::Purge,
    ];

    /// The operation's stable code across the plugin boundary.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The operation with this code, if there is one.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// The operation's name as the trait spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Load => "load",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::LoadByRequestId => "load_by_request_id",
            Operation::Health => "health",
            Operation::Clear => "clear",
            Operation::Construct => "construct",
            Operation::List => "list_tasks",
            Operation::Purge => "purge",
        }
    }

    /// What the operation's id argument names: a task id, a request id, or nothing.
    fn subject(self) -> &'static str {
        match self {
            Operation::LoadByRequestId => "request",
            Operation::Health
            | Operation::Clear
            | Operation::Construct
            | Operation::List
            | Operation::Purge => "",
            _ => "task",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of failure a [`PersistenceError`] is, for matching without the details.
///
/// Its discriminants are stable: they cross the plugin boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum ErrorKind {
    /// `create` of a task id that is already stored.
    AlreadyExists = 1,
    /// `update` or `delete` of a task id that is not stored.
    NotFound = 2,
    /// The input was refused before anything was stored (bad id, bad document).
    InvalidInput = 3,
    /// `update_if_match` found the stored task changed since its ETag was read.
    Conflict = 4,
    /// The stored data could not be read back.
    Corrupt = 5,
    /// The backend could not be reached.
    Unavailable = 6,
    /// The backend did not answer in time.
    Timeout = 7,
    /// The backend answered with an error.
    Backend = 8,
    /// A plugin failed (it panicked, or broke the interface's rules).
    Plugin = 9,
    /// The backend does not offer the operation (a plugin built for an older interface).
    Unsupported = 10,
}

impl ErrorKind {
    /// The kind with this discriminant, if there is one.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => ErrorKind::AlreadyExists,
            2 => ErrorKind::NotFound,
            3 => ErrorKind::InvalidInput,
            4 => ErrorKind::Conflict,
            5 => ErrorKind::Corrupt,
            6 => ErrorKind::Unavailable,
            7 => ErrorKind::Timeout,
            8 => ErrorKind::Backend,
            9 => ErrorKind::Plugin,
            10 => ErrorKind::Unsupported,
            _ => return None,
        })
    }

    /// Whether the failure is of a kind that may pass (the backend was unreachable or
    /// slow); `Conflict` is not counted: it needs a fresh read first.
    ///
    /// This says nothing about whether the same call can simply be sent again: a write
    /// that timed out may have been applied. Use [`PersistenceError::is_retryable`] and
    /// [`PersistenceError::is_outcome_unknown`] for that.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::Timeout)
    }
}

impl Operation {
    /// Whether the operation changes stored data (`create`, `update`, `delete`, `clear`,
    /// `purge`).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Operation::Create
                | Operation::Update
                | Operation::Delete
                | Operation::Clear
                | Operation::Purge
        )
    }
}

/// What is known of the effect of an operation that failed with
/// [`PersistenceError::Timeout`] or [`PersistenceError::Unavailable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Nothing was changed: the operation is a read, or the write never reached the
    /// backend (the connection was refused) or was refused by it.
    NotApplied,
    /// A write that may or may not have been applied: it was sent, and its answer was
    /// not received in time or the connection broke before it came.
    Unknown,
}

impl Outcome {
    /// The outcome of `op` when nothing more is known of how far it got: unknown for a
    /// write, not applied for a read.
    pub fn of_unanswered(op: Operation) -> Self {
        if op.is_write() {
            Outcome::Unknown
        } else {
            Outcome::NotApplied
        }
    }
}

/// Formats the op and its id: `create task 't1'`, `load_by_request_id request 'r1'`, `health`.
///
/// The id is escaped (`'a\nb'`): ids come from callers and stored data, and a newline or
/// control character printed raw would let one forge lines in a log or drive a terminal.
struct On<'a>(Operation, &'a str);

impl fmt::Display for On<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = self.0.subject();
        if subject.is_empty() || self.1.is_empty() {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{} {} '{}'", self.0, subject, self.1.escape_debug())
        }
    }
}

/// The end of a message whose write may have been applied.
fn outcome_suffix(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Unknown => " (the write may have been applied)",
        Outcome::NotApplied => "",
    }
}

/// A failed persistence operation.
///
/// Every variant is `#[non_exhaustive]`: match on it with `..`, and build one with its
/// constructor ([`PersistenceError::not_found`], [`PersistenceError::unavailable`], ...),
/// so that a field added later breaks no caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistenceError {
    /// `create` of a task id that is already stored; nothing was changed.
    #[error("{}: a task with this id already exists", On(*.op, .task_id))]
    #[non_exhaustive]
    AlreadyExists {
        /// The failed operation.
        op: Operation,
        /// The task id.
        task_id: String,
    },

    /// `update` or `delete` of a task that is not stored; nothing was changed.
    #[error("{}: no such task", On(*.op, .task_id))]
    #[non_exhaustive]
    NotFound {
        /// The failed operation.
        op: Operation,
        /// The task id.
        task_id: String,
    },

    /// The input was refused; nothing was stored.
    #[error("{}: invalid input: {reason}", On(*.op, .id))]
    #[non_exhaustive]
    InvalidInput {
        /// The failed operation.
        op: Operation,
        /// The task or request id the call named (possibly the invalid id itself).
        id: String,
        /// What is wrong with it.
        reason: String,
    },

    /// `update_if_match`: the stored task no longer has the ETag the caller read; nothing
    /// was changed. Load it again, re-apply the change, and retry.
    #[error("{}: conflict: the task changed since ETag {expected} was read", On(*.op, .task_id))]
    #[non_exhaustive]
    Conflict {
        /// The failed operation.
        op: Operation,
        /// The task id.
        task_id: String,
        /// The ETag the caller expected.
        expected: String,
    },

    /// The stored task could not be decoded.
    #[error("{}: stored data is corrupt", On(*.op, .task_id))]
    #[non_exhaustive]
    Corrupt {
        /// The failed operation.
        op: Operation,
        /// The task id.
        task_id: String,
        /// Why it could not be decoded.
        #[source]
        source: BoxError,
    },

    /// The backend could not be reached (connection refused or lost).
    ///
    /// A write whose connection broke after it was sent may have been applied:
    /// `outcome` says whether that is known ([`PersistenceError::is_outcome_unknown`];
    /// see the module doc on retrying).
    #[error("{}: backend unavailable{}", On(*.op, .id), outcome_suffix(*.outcome))]
    #[non_exhaustive]
    Unavailable {
        /// The failed operation.
        op: Operation,
        /// The task or request id, if the operation had one.
        id: String,
        /// The connection failure.
        #[source]
        source: BoxError,
        /// Whether the write may have been applied.
        outcome: Outcome,
    },

    /// The backend did not answer within the configured time.
    ///
    /// The limit can fire after the backend did the work, so a write that timed out has
    /// an unknown outcome: it may have been applied ([`PersistenceError::is_outcome_unknown`];
    /// see the module doc on retrying).
    #[error("{}: timed out after {} ms{}", On(*.op, .id), .after.as_millis(), outcome_suffix(*.outcome))]
    #[non_exhaustive]
    Timeout {
        /// The failed operation.
        op: Operation,
        /// The task or request id, if the operation had one.
        id: String,
        /// How long the call waited.
        after: Duration,
        /// Whether the write may have been applied.
        outcome: Outcome,
    },

    /// The backend answered with an error.
    #[error("{}: backend error", On(*.op, .id))]
    #[non_exhaustive]
    Backend {
        /// The failed operation.
        op: Operation,
        /// The task or request id, if the operation had one.
        id: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },

    /// A plugin failed: it panicked or broke the interface's rules.
    #[error("{}: plugin failure", On(*.op, .id))]
    #[non_exhaustive]
    Plugin {
        /// The failed operation.
        op: Operation,
        /// The task or request id, if the operation had one.
        id: String,
        /// What went wrong inside the plugin.
        #[source]
        source: BoxError,
    },

    /// The backend does not offer this operation: a plugin built for an older interface
    /// version, or a manager that does not implement it. Nothing was changed.
    #[error("{op}: not supported by {backend}{}", interface_suffix(*.interface_version))]
    #[non_exhaustive]
    Unsupported {
        /// The operation asked for.
        op: Operation,
        /// The backend: a plugin's name, or a manager's type.
        backend: String,
        /// The interface version the plugin was built for, when it is a plugin.
        interface_version: Option<u32>,
    },
}

/// The end of an `Unsupported` message naming the plugin's interface version.
fn interface_suffix(version: Option<u32>) -> String {
    match version {
        Some(v) => format!(" (built for plugin interface version {v})"),
        None => String::new(),
    }
}

impl PersistenceError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PersistenceError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            PersistenceError::NotFound { .. } => ErrorKind::NotFound,
            PersistenceError::InvalidInput { .. } => ErrorKind::InvalidInput,
            PersistenceError::Conflict { .. } => ErrorKind::Conflict,
            PersistenceError::Corrupt { .. } => ErrorKind::Corrupt,
            PersistenceError::Unavailable { .. } => ErrorKind::Unavailable,
            PersistenceError::Timeout { .. } => ErrorKind::Timeout,
            PersistenceError::Backend { .. } => ErrorKind::Backend,
            PersistenceError::Plugin { .. } => ErrorKind::Plugin,
            PersistenceError::Unsupported { .. } => ErrorKind::Unsupported,
        }
    }

    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        match self {
            PersistenceError::AlreadyExists { op, .. }
            | PersistenceError::NotFound { op, .. }
            | PersistenceError::InvalidInput { op, .. }
            | PersistenceError::Conflict { op, .. }
            | PersistenceError::Corrupt { op, .. }
            | PersistenceError::Unavailable { op, .. }
            | PersistenceError::Timeout { op, .. }
            | PersistenceError::Backend { op, .. }
            | PersistenceError::Plugin { op, .. }
            | PersistenceError::Unsupported { op, .. } => *op,
        }
    }

    /// The task id (or, for `load_by_request_id`, the request id) the error is about;
    /// empty when the operation had none.
    pub fn id(&self) -> &str {
        match self {
            PersistenceError::AlreadyExists { task_id, .. }
            | PersistenceError::NotFound { task_id, .. }
            | PersistenceError::Conflict { task_id, .. }
            | PersistenceError::Corrupt { task_id, .. } => task_id,
            PersistenceError::InvalidInput { id, .. }
            | PersistenceError::Unavailable { id, .. }
            | PersistenceError::Timeout { id, .. }
            | PersistenceError::Backend { id, .. }
            | PersistenceError::Plugin { id, .. } => id,
            PersistenceError::Unsupported { .. } => "",
        }
    }

    /// `true` for [`ErrorKind::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        self.kind() == ErrorKind::AlreadyExists
    }

    /// `true` for [`ErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// `true` for [`ErrorKind::InvalidInput`].
    pub fn is_invalid_input(&self) -> bool {
        self.kind() == ErrorKind::InvalidInput
    }

    /// `true` for [`ErrorKind::Conflict`].
    pub fn is_conflict(&self) -> bool {
        self.kind() == ErrorKind::Conflict
    }

    /// `true` for [`ErrorKind::Corrupt`].
    pub fn is_corrupt(&self) -> bool {
        self.kind() == ErrorKind::Corrupt
    }

    /// `true` for [`ErrorKind::Unsupported`].
    pub fn is_unsupported(&self) -> bool {
        self.kind() == ErrorKind::Unsupported
    }

    /// Whether the failure may pass (see [`ErrorKind::is_transient`]); whether the call
    /// can be sent again as it is, is [`is_retryable`](Self::is_retryable).
    pub fn is_transient(&self) -> bool {
        self.kind().is_transient()
    }

    /// What is known of the failed operation's effect, for `Timeout` and `Unavailable`;
    /// `None` for the other kinds, which the backend answered and which changed nothing.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            PersistenceError::Unavailable { outcome, .. }
            | PersistenceError::Timeout { outcome, .. } => Some(*outcome),
            _ => None,
        }
    }

    /// Whether the same call can be sent again as it is: the backend was unreachable or
    /// slow, and the call is a read or a write known not to have been applied.
    pub fn is_retryable(&self) -> bool {
        self.is_transient() && self.outcome() == Some(Outcome::NotApplied)
    }

    /// Whether this is a write that may or may not have been applied (it timed out, or
    /// its connection broke after it was sent). Read the task back before deciding what
    /// to do; see the module doc on retrying.
    pub fn is_outcome_unknown(&self) -> bool {
        self.outcome() == Some(Outcome::Unknown)
    }

    /// A [`ErrorKind::Timeout`] error of `op` after `after`; a write's outcome is unknown.
    pub fn timeout(op: Operation, id: impl Into<String>, after: Duration) -> Self {
        PersistenceError::Timeout {
            op,
            id: id.into(),
            after,
            outcome: Outcome::of_unanswered(op),
        }
    }

    /// An [`ErrorKind::Unavailable`] error with the given cause and outcome.
    pub fn unavailable(
        op: Operation,
        id: impl Into<String>,
        source: impl Into<BoxError>,
        outcome: Outcome,
    ) -> Self {
        PersistenceError::Unavailable {
            op,
            id: id.into(),
            source: source.into(),
            outcome,
        }
    }

    /// An [`ErrorKind::InvalidInput`] error.
    pub fn invalid(op: Operation, id: impl Into<String>, reason: impl Into<String>) -> Self {
        PersistenceError::InvalidInput {
            op,
            id: id.into(),
            reason: reason.into(),
        }
    }

    /// An [`ErrorKind::Backend`] error with the given cause.
    pub fn backend(op: Operation, id: impl Into<String>, source: impl Into<BoxError>) -> Self {
        PersistenceError::Backend {
            op,
            id: id.into(),
            source: source.into(),
        }
    }

    /// An [`ErrorKind::AlreadyExists`] error.
    pub fn already_exists(op: Operation, task_id: impl Into<String>) -> Self {
        PersistenceError::AlreadyExists {
            op,
            task_id: task_id.into(),
        }
    }

    /// An [`ErrorKind::NotFound`] error.
    pub fn not_found(op: Operation, task_id: impl Into<String>) -> Self {
        PersistenceError::NotFound {
            op,
            task_id: task_id.into(),
        }
    }

    /// An [`ErrorKind::Conflict`] error: the stored task no longer has `expected`.
    pub fn conflict(
        op: Operation,
        task_id: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        PersistenceError::Conflict {
            op,
            task_id: task_id.into(),
            expected: expected.into(),
        }
    }

    /// An [`ErrorKind::Corrupt`] error with the reason the stored data could not be read.
    pub fn corrupt(op: Operation, task_id: impl Into<String>, source: impl Into<BoxError>) -> Self {
        PersistenceError::Corrupt {
            op,
            task_id: task_id.into(),
            source: source.into(),
        }
    }

    /// An [`ErrorKind::Unsupported`] error: `backend` does not offer `op`.
    pub fn unsupported(
        op: Operation,
        backend: impl Into<String>,
        interface_version: Option<u32>,
    ) -> Self {
        PersistenceError::Unsupported {
            op,
            backend: backend.into(),
            interface_version,
        }
    }

    /// An [`ErrorKind::Plugin`] error with the given cause.
    pub fn plugin(op: Operation, id: impl Into<String>, source: impl Into<BoxError>) -> Self {
        PersistenceError::Plugin {
            op,
            id: id.into(),
            source: source.into(),
        }
    }

    /// The whole message: this error's text followed by each cause's, joined by `": "`
    /// (a cause that only repeats the text before it, as wrapped I/O errors often do, is
    /// shown once).
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(err) = cause {
            let text = err.to_string();
            if !out.ends_with(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            cause = err.source();
        }
        out
    }
}

/// The result of a persistence operation.
pub type Result<T, E = PersistenceError> = std::result::Result<T, E>;

/// Checks a task or request id: non-empty and at most [`crate::model::MAX_ID_LEN`] bytes.
///
/// `what` names the argument in the message (`"task id"`, `"request id"`).
pub fn validate_id(op: Operation, what: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(PersistenceError::invalid(
            op,
            id,
            format!("{what} is empty"),
        ));
    }
    if id.len() > crate::model::MAX_ID_LEN {
        // Keep the message readable: the id itself may be megabytes.
        let shown: String = id.chars().take(32).collect();
        return Err(PersistenceError::invalid(
            op,
            format!("{shown}..."),
            format!(
                "{what} is {} bytes long; the limit is {}",
                id.len(),
                crate::model::MAX_ID_LEN
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_operation_and_the_id() {
        let e = PersistenceError::AlreadyExists {
            op: Operation::Create,
            task_id: "t1".into(),
        };
        assert_eq!(
            e.to_string(),
            "create task 't1': a task with this id already exists"
        );
        let e = PersistenceError::NotFound {
            op: Operation::Delete,
            task_id: "t2".into(),
        };
        assert_eq!(e.to_string(), "delete task 't2': no such task");
        let e = PersistenceError::invalid(Operation::LoadByRequestId, "", "request id is empty");
        assert_eq!(
            e.to_string(),
            "load_by_request_id: invalid input: request id is empty"
        );
    }

    #[test]
    fn ids_are_shown_escaped_so_they_cannot_forge_lines() {
        let e = PersistenceError::NotFound {
            op: Operation::Delete,
            task_id: "a\nERROR forged \u{1b}[31m'q'".into(),
        };
        let text = e.to_string();
        assert_eq!(
            text,
            r"delete task 'a\nERROR forged \u{1b}[31m\'q\'': no such task"
        );
        assert!(!text.contains('\n') && !text.contains('\u{1b}'));
    }

    #[test]
    fn the_cause_chain_is_kept_and_reported() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = PersistenceError::unavailable(Operation::Load, "t3", io, Outcome::NotApplied);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_transient());
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(e.report(), "load task 't3': backend unavailable: refused");
    }

    #[test]
    fn a_write_that_timed_out_has_an_unknown_outcome_and_is_not_retryable() {
        let after = Duration::from_millis(200);
        for op in [
            Operation::Create,
            Operation::Update,
            Operation::Delete,
            Operation::Clear,
        ] {
            let e = PersistenceError::timeout(op, "t", after);
            assert!(e.is_transient(), "{op}");
            assert!(e.is_outcome_unknown(), "{op}");
            assert!(!e.is_retryable(), "{op}");
            assert!(e.to_string().contains("may have been applied"), "{e}");
        }
        for op in [
            Operation::Load,
            Operation::LoadByRequestId,
            Operation::Health,
        ] {
            let e = PersistenceError::timeout(op, "t", after);
            assert!(e.is_retryable() && !e.is_outcome_unknown(), "{op}");
            assert!(!e.to_string().contains("may have been applied"), "{e}");
        }
        assert_eq!(
            PersistenceError::timeout(Operation::Load, "t", after).to_string(),
            "load task 't': timed out after 200 ms"
        );
    }

    #[test]
    fn a_write_known_not_to_have_been_applied_is_retryable() {
        let refused = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e =
            PersistenceError::unavailable(Operation::Create, "t", refused(), Outcome::NotApplied);
        assert!(e.is_retryable() && !e.is_outcome_unknown());
        let e = PersistenceError::unavailable(Operation::Update, "t", refused(), Outcome::Unknown);
        assert!(!e.is_retryable() && e.is_outcome_unknown());
        assert_eq!(
            e.to_string(),
            "update task 't': backend unavailable (the write may have been applied)"
        );
        // Errors the backend answered changed nothing and carry no outcome.
        let e = PersistenceError::backend(Operation::Create, "t", "WRONGTYPE");
        assert!(!e.is_retryable() && !e.is_outcome_unknown());
        assert_eq!(e.outcome(), None);
    }

    #[test]
    fn kinds_round_trip_through_their_discriminant() {
        use ErrorKind::*;
        let all = [
            AlreadyExists,
            NotFound,
            InvalidInput,
            Conflict,
            Corrupt,
            Unavailable,
            Timeout,
            Backend,
            Plugin,
            Unsupported,
        ];
        for kind in all {
            // Exhaustive: a new kind stops this compiling until it is listed above.
            match kind {
                AlreadyExists | NotFound | InvalidInput | Conflict | Corrupt | Unavailable
                | Timeout | Backend | Plugin | Unsupported => {}
            }
            assert_eq!(ErrorKind::from_u8(kind as u8), Some(kind), "{kind:?}");
        }
        // Every discriminant that maps to a kind is one of them, each once, in order.
        let mapped: Vec<ErrorKind> = (0..=u8::MAX).filter_map(ErrorKind::from_u8).collect();
        assert_eq!(mapped, all);
    }

    #[test]
    fn operations_round_trip_through_their_code() {
        for (i, op) in Operation::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(op.code()), i, "{op}");
            assert_eq!(Operation::from_code(op.code()), Some(op));
        }
        assert_eq!(Operation::from_code(Operation::ALL.len() as u8), None);
    }

    #[test]
    fn ids_are_checked_for_emptiness_and_length() {
        assert!(validate_id(Operation::Load, "task id", "x").is_ok());
        let long = "a".repeat(crate::model::MAX_ID_LEN);
        assert!(validate_id(Operation::Load, "task id", &long).is_ok());
        let too_long = "a".repeat(crate::model::MAX_ID_LEN + 1);
        let e = validate_id(Operation::Create, "task id", &too_long).unwrap_err();
        assert!(e.is_invalid_input());
        assert!(e.to_string().contains("1025 bytes"), "{e}");
        assert!(validate_id(Operation::Create, "task id", "")
            .unwrap_err()
            .is_invalid_input());
    }
}
