//! The conformance suite: the contract of [`TaskPersistenceManager`], checked case by case.
//!
//! Every point of the trait's `# Contract` is a case here: an async function that drives a
//! store through the trait only and reports a [`CaseFailure`] (with the file and line of
//! the failed check) instead of panicking. The same cases run against the built-in
//! in-memory store, a plugin loaded over the stable ABI and a networked backend, so
//! passing them is what "behaves like every other backend" means.
//!
//! - [`cases`] lists every case by name, with a one-line description;
//! - [`run_suite`] runs them (or those whose name contains a filter), each against a fresh
//!   store, each with a time limit ([`CASE_TIMEOUT`]), a panicking case counting as a
//!   failure, and returns a [`SuiteReport`] that prints as a table;
//! - the case functions themselves are public (in [`crud`], [`roundtrip`], [`index`],
//!   [`etag`], [`validation`], [`documents`], [`concurrency`], [`contention`] and
//!   [`listing`]) for a test that wants to run one on its own;
//! - the retention cases ([`retention`]) need a store configured with a retention
//!   policy, so they run apart: [`run_retention_suite`] hands the policy to the function
//!   that builds each store.
//!
//! # WARNING: the suite is destructive
//!
//! The cases create, update and delete tasks, and some call [`clear`][clear], which
//! removes every task of the store. Run the suite only against a scratch store: a new
//! in-memory instance, an empty database, or a namespace that holds nothing you want to
//! keep.
//!
//! # Running it from a backend's own tests
//!
//! Enable the `conformance` feature of `ta-persistence-api` in your dev-dependencies and
//! hand [`run_suite`] a function that builds a fresh, empty store. The cases spawn tokio
//! tasks and use tokio timers, so run them inside a tokio runtime (a multi-threaded one
//! makes the concurrency cases truly parallel):
//!
//! ```ignore
//! use std::sync::Arc;
//! use ta_persistence_api::conformance::run_suite;
//! use ta_persistence_api::TaskPersistenceManager;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn my_store_conforms() {
//!     let report = run_suite(
//!         || async {
//!             let store = MyStore::connect("scratch").await.expect("connect");
//!             store.clear().await.expect("clear");
//!             Arc::new(store) as Arc<dyn DocumentManager>
//!         },
//!         None, // or Some("etag") to run only the cases whose name contains "etag"
//!     )
//!     .await;
//!     println!("{report}");
//!     assert!(report.is_success(), "{} case(s) failed", report.failed());
//! }
//! ```
//!
//! [`TaskPersistenceManager`]: crate::TaskPersistenceManager
//! [clear]: crate::TaskPersistenceManager::clear
//! [`CaseFailure`]: crate::conformance::CaseFailure
//! [`cases`]: crate::conformance::cases
//! [`run_suite`]: crate::conformance::run_suite
//! [`CASE_TIMEOUT`]: crate::conformance::CASE_TIMEOUT
//! [`SuiteReport`]: crate::conformance::SuiteReport
//! [`crud`]: crate::conformance::crud
//! [`roundtrip`]: crate::conformance::roundtrip
//! [`index`]: crate::conformance::index
//! [`etag`]: crate::conformance::etag
//! [`validation`]: crate::conformance::validation
//! [`documents`]: crate::conformance::documents
//! [`concurrency`]: crate::conformance::concurrency
//! [`contention`]: crate::conformance::contention
//! [`listing`]: crate::conformance::listing
//! [`retention`]: crate::conformance::retention
//! [`run_retention_suite`]: crate::conformance::run_retention_suite

use std::fmt;

/// Fails the enclosing case with a formatted message and the caller's file and line.
macro_rules! fail {
    ($($arg:tt)+) => {
        return Err($crate::conformance::CaseFailure::at(file!(), line!(), format!($($arg)+)))
    };
}

/// Fails the case unless the condition holds.
macro_rules! check {
    ($cond:expr $(,)?) => {
        if !$cond {
            fail!("check failed: {}", stringify!($cond));
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            fail!($($arg)+);
        }
    };
}

/// Fails the case unless both sides are equal; shows both (shortened) when they are not.
macro_rules! check_eq {
    ($left:expr, $right:expr $(,)?) => {
        check_eq!($left, $right, "{} == {}", stringify!($left), stringify!($right))
    };
    ($left:expr, $right:expr, $($arg:tt)+) => {
        match (&$left, &$right) {
            (left, right) => {
                if *left != *right {
                    fail!(
                        "{}: got {}, expected {}",
                        format!($($arg)+),
                        $crate::conformance::fixtures::shorten(&format!("{left:?}")),
                        $crate::conformance::fixtures::shorten(&format!("{right:?}")),
                    );
                }
            }
        }
    };
}

/// Fails the case unless two tasks are equal; names the first field that differs.
macro_rules! check_task {
    ($actual:expr, $expected:expr, $($arg:tt)+) => {
        if let Some(diff) = $crate::conformance::fixtures::difference(&$actual, &$expected) {
            fail!("{}: {}", format!($($arg)+), diff);
        }
    };
}

/// The value of a successful store call; fails the case with the error otherwise.
macro_rules! must {
    ($call:expr) => {
        match $call {
            Ok(value) => value,
            Err(err) => fail!("`{}` failed: {}", stringify!($call), err.report()),
        }
    };
}

/// The error of a store call that must fail with the given [`ErrorKind`](crate::ErrorKind).
macro_rules! expect_err {
    ($call:expr, $kind:ident) => {
        match $call {
            Ok(_) => fail!(
                "`{}` succeeded; expected a {:?} error",
                stringify!($call),
                $crate::ErrorKind::$kind
            ),
            Err(err) if err.kind() == $crate::ErrorKind::$kind => err,
            Err(err) => fail!(
                "`{}`: expected a {:?} error, got {:?}: {}",
                stringify!($call),
                $crate::ErrorKind::$kind,
                err.kind(),
                err.report()
            ),
        }
    };
}

/// The stored task with this id; fails the case if the load fails or finds nothing.
macro_rules! loaded {
    ($store:expr, $id:expr) => {{
        let id: &str = &$id;
        match must!($store.load(id).await) {
            Some(task) => task,
            None => fail!(
                "load({}) returned None; the task should be stored",
                $crate::conformance::fixtures::shorten(id)
            ),
        }
    }};
}

/// Fails the case unless the task id loads as `None`.
macro_rules! check_absent {
    ($store:expr, $id:expr) => {{
        let id: &str = &$id;
        if let Some(task) = must!($store.load(id).await) {
            fail!(
                "load({}) returned a task (status {:?}, {} items); it should not be stored",
                $crate::conformance::fixtures::shorten(id),
                task.status,
                task.items.len()
            );
        }
    }};
}

/// The task id `load_by_request_id` finds (or `None`); fails the case if the call fails.
macro_rules! found_by {
    ($store:expr, $request_id:expr) => {{
        let request_id: &str = &$request_id;
        must!($store.load_by_request_id(request_id).await).map(|task| task.task_id)
    }};
}

pub mod concurrency;
pub mod contention;
pub mod crud;
pub mod documents;
pub mod etag;
mod fixtures;
pub mod index;
pub mod listing;
mod registry;
pub mod retention;
pub mod roundtrip;
mod runner;
pub mod validation;

pub use registry::{cases, retention_cases, Case};
pub use runner::{
    run_case, run_retention_suite, run_suite, typed, CaseOutcome, SuiteReport, CASE_TIMEOUT,
};

/// What a case returns: `Ok(())` when the store behaved as the contract says.
pub type CaseResult = Result<(), CaseFailure>;

/// Why a case failed: where the failed check is and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFailure {
    message: String,
}

impl CaseFailure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        CaseFailure {
            message: message.into(),
        }
    }

    /// A failure at a source location (what the suite's checks produce).
    pub fn at(file: &str, line: u32, message: impl fmt::Display) -> Self {
        let file = file.rsplit(['/', '\\']).next().unwrap_or(file);
        CaseFailure::new(format!("{file}:{line}: {message}"))
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CaseFailure {}
