//! Maps the Postgres client's and the pool's errors to [`PersistenceError`]s.
//!
//! The mapping reads SQLSTATE codes and the client's own predicates (`is_closed`, the
//! error's source), never message text. What is known of a failed write:
//!
//! - every write is one statement, so an error the server answered (a cancelled
//!   statement included) means the statement was rolled back: nothing was applied;
//! - an error of the pool (no free connection, no connection could be opened) means the
//!   statement was never sent: nothing was applied;
//! - a connection that broke after the statement was sent may have committed it: the
//!   outcome of a write is unknown.

use std::time::Duration;

use deadpool_postgres::{PoolError, TimeoutType};
use ta_persistence_api::error::Outcome;
use ta_persistence_api::{Operation, PersistenceError};
use tokio_postgres::error::SqlState;

/// Whether a SQLSTATE says the server cannot serve now (shutting down, starting up,
/// out of connections, a connection failure, a read-only standby after a fail-over).
pub(crate) fn is_unavailable_state(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::READ_ONLY_SQL_TRANSACTION,
        ]
        .contains(code)
}

/// The persistence error for a failed statement of `op` about `id`; `timeout` is the
/// statement timeout, reported when the server cancelled the statement.
pub(crate) fn from_pg(
    op: Operation,
    id: &str,
    timeout: Duration,
    err: tokio_postgres::Error,
) -> PersistenceError {
    if let Some(code) = err.code() {
        if *code == SqlState::QUERY_CANCELED {
            // The server cancelled the statement (statement_timeout): it was rolled back.
            return PersistenceError::timeout(op, id, timeout).with_outcome(Outcome::NotApplied);
        }
        if is_unavailable_state(code) {
            return PersistenceError::unavailable(op, id, err, Outcome::NotApplied);
        }
        return PersistenceError::backend(op, id, err);
    }
    if err.is_closed() || source_is_io(&err) {
        // Sent, perhaps committed, and the answer lost.
        let outcome = Outcome::of_unanswered(op);
        return PersistenceError::unavailable(op, id, err, outcome);
    }
    PersistenceError::backend(op, id, err)
}

fn source_is_io(err: &tokio_postgres::Error) -> bool {
    std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>())
}

/// A client error as one line: the server's message and SQLSTATE for an error the
/// server answered, else the client's message with its causes.
pub(crate) fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// A pool error as one line, with the client error inside it described.
pub(crate) fn describe_pool(err: &PoolError) -> String {
    match err {
        PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

/// The persistence error for a connection the pool could not hand out; nothing was
/// sent. `wait` is the limit on waiting for a connection.
pub(crate) fn from_pool(
    op: Operation,
    id: &str,
    wait: Duration,
    err: PoolError,
) -> PersistenceError {
    match err {
        PoolError::Timeout(TimeoutType::Wait) => {
            PersistenceError::timeout(op, id, wait).with_outcome(Outcome::NotApplied)
        }
        PoolError::Timeout(_) | PoolError::Closed => {
            PersistenceError::unavailable(op, id, err, Outcome::NotApplied)
        }
        PoolError::Backend(e) => match e.code() {
            // A refused password or an unknown database will not pass by itself.
            Some(code) if !is_unavailable_state(code) => PersistenceError::backend(op, id, e),
            _ => PersistenceError::unavailable(op, id, e, Outcome::NotApplied),
        },
        other => PersistenceError::backend(op, id, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ta_persistence_api::ErrorKind;

    #[test]
    fn server_states_are_classified_by_code() {
        for code in [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CONNECTION_FAILURE,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ] {
            assert!(is_unavailable_state(&code), "{code:?}");
        }
        for code in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::INSUFFICIENT_PRIVILEGE,
            SqlState::QUERY_CANCELED,
            SqlState::UNDEFINED_TABLE,
        ] {
            assert!(!is_unavailable_state(&code), "{code:?}");
        }
    }

    #[test]
    fn pool_failures_were_never_sent() {
        let t = Duration::from_millis(70);
        let waited = from_pool(
            Operation::Create,
            "t1",
            t,
            PoolError::Timeout(TimeoutType::Wait),
        );
        assert!(
            matches!(waited, PersistenceError::Timeout { after, .. } if after == t),
            "{waited:?}"
        );
        assert!(waited.is_retryable());
        let closed = from_pool(Operation::Update, "t1", t, PoolError::Closed);
        assert_eq!(closed.kind(), ErrorKind::Unavailable);
        assert!(closed.is_retryable() && !closed.is_outcome_unknown());
    }
}
