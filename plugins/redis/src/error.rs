//! Maps the Redis client's errors (and a missed deadline) to [`PersistenceError`]s.
//!
//! The mapping reads the client's own predicates (`is_timeout`, `is_connection_refusal`,
//! `is_connection_dropped`, `is_io_error`, `is_unrecoverable_error`, the retry method),
//! never the message text, which changes between versions.
//!
//! A write that timed out, or whose connection broke, may have been applied (the script
//! ran and only its answer was lost): its error says the outcome is unknown. Only a
//! refused connection (nothing was sent) or an error the server answered (the scripts
//! check everything before they write, so an error means nothing was written) is known
//! to have changed nothing.

use std::time::Duration;

use redis::{ErrorKind, RedisError, RetryMethod, ServerErrorKind};
use ta_persistence_api::error::Outcome;
use ta_persistence_api::{Operation, PersistenceError};

/// What kind of failure a Redis error is, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The server did not answer in time.
    Timeout,
    /// The server could not be reached, or the connection broke, or the server is
    /// temporarily unable to serve (loading its data set, for example).
    Unavailable,
    /// The server answered with an error.
    Backend,
}

/// Classifies a Redis error.
pub(crate) fn classify(err: &RedisError) -> Class {
    // A refused password is a configuration problem, not a transient one, although the
    // client would reconnect for it.
    if err.kind() == ErrorKind::AuthenticationFailed {
        Class::Backend
    } else if err.is_timeout() {
        Class::Timeout
    } else if err.is_connection_refusal()
        || err.is_connection_dropped()
        || err.is_io_error()
        || err.is_unrecoverable_error()
        || matches!(err.retry_method(), RetryMethod::WaitAndRetry)
        // A cluster between topologies (failover, migration): redirections exhausted, no
        // connection to a slot's node yet, a demoted master.
        || err.is_cluster_error()
        || matches!(
            err.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
    {
        Class::Unavailable
    } else {
        Class::Backend
    }
}

/// The persistence error for a failed Redis call of `op` about `id`; `timeout` is the
/// configured limit, reported when the client itself timed out.
pub(crate) fn from_redis(
    op: Operation,
    id: &str,
    timeout: Duration,
    err: RedisError,
) -> PersistenceError {
    match classify(&err) {
        Class::Timeout => PersistenceError::timeout(op, id, timeout),
        Class::Unavailable => {
            let outcome = outcome_of(op, &err);
            PersistenceError::unavailable(op, id, err, outcome)
        }
        Class::Backend => PersistenceError::backend(op, id, err),
    }
}

/// What is known of the effect of `op`, which failed with `err` (an unavailable server).
fn outcome_of(op: Operation, err: &RedisError) -> Outcome {
    // Not sent, or answered by the server with an error: nothing was written.
    if err.is_connection_refusal() || matches!(err.kind(), ErrorKind::Server(_)) {
        Outcome::NotApplied
    } else {
        Outcome::of_unanswered(op)
    }
}

/// The persistence error for an operation that did not finish within `after`; a write's
/// outcome is unknown.
pub(crate) fn timed_out(op: Operation, id: &str, after: Duration) -> PersistenceError {
    PersistenceError::timeout(op, id, after)
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn io_error(kind: io::ErrorKind) -> RedisError {
        RedisError::from(io::Error::new(kind, "x"))
    }

    #[test]
    fn connection_problems_are_unavailable() {
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::NotConnected,
        ] {
            assert_eq!(classify(&io_error(kind)), Class::Unavailable, "{kind:?}");
        }
    }

    #[test]
    fn io_timeouts_are_timeouts() {
        assert_eq!(classify(&io_error(io::ErrorKind::TimedOut)), Class::Timeout);
        let e = from_redis(
            Operation::Load,
            "t1",
            Duration::from_millis(50),
            io_error(io::ErrorKind::TimedOut),
        );
        assert!(
            matches!(e, PersistenceError::Timeout { after, .. } if after == Duration::from_millis(50))
        );
        assert_eq!(e.id(), "t1");
    }

    #[test]
    fn a_write_is_known_not_applied_only_when_it_was_never_sent() {
        let t = Duration::from_secs(1);
        let refused = from_redis(
            Operation::Create,
            "t",
            t,
            io_error(io::ErrorKind::ConnectionRefused),
        );
        assert!(refused.is_retryable() && !refused.is_outcome_unknown());
        for kind in [io::ErrorKind::ConnectionReset, io::ErrorKind::UnexpectedEof] {
            let dropped = from_redis(Operation::Delete, "t", t, io_error(kind));
            assert!(
                dropped.is_outcome_unknown() && !dropped.is_retryable(),
                "{kind:?}"
            );
            let read = from_redis(Operation::Load, "t", t, io_error(kind));
            assert!(read.is_retryable(), "{kind:?}");
        }
        let timed = from_redis(Operation::Update, "t", t, io_error(io::ErrorKind::TimedOut));
        assert!(timed.is_outcome_unknown());
        assert!(timed_out(Operation::Create, "t", t).is_outcome_unknown());
        assert!(timed_out(Operation::Load, "t", t).is_retryable());
    }

    #[test]
    fn a_cluster_between_topologies_is_unavailable() {
        for kind in [
            ErrorKind::ClusterConnectionNotFound,
            ErrorKind::Server(ServerErrorKind::ClusterDown),
            ErrorKind::Server(ServerErrorKind::TryAgain),
            ErrorKind::Server(ServerErrorKind::MasterDown),
            ErrorKind::Server(ServerErrorKind::ReadOnly),
        ] {
            let e = RedisError::from((kind, "x"));
            assert_eq!(classify(&e), Class::Unavailable, "{kind:?}");
        }
    }

    #[test]
    fn server_answers_are_backend_errors() {
        let e = RedisError::from((ErrorKind::UnexpectedReturnType, "wrong type"));
        assert_eq!(classify(&e), Class::Backend);
        let auth = RedisError::from((ErrorKind::AuthenticationFailed, "refused"));
        assert_eq!(classify(&auth), Class::Backend);
        let mapped = from_redis(Operation::Update, "t2", Duration::from_secs(1), e);
        assert_eq!(mapped.kind(), ta_persistence_api::ErrorKind::Backend);
        assert!(std::error::Error::source(&mapped).is_some());
    }
}
