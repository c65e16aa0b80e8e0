//! Running the cases: a fresh store per case, a time limit, panics caught, and a report.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use super::{cases, retention_cases, Case, CaseFailure, CaseResult};
use crate::document_store::{DocumentManager, TypedDocuments};
use crate::manager::TaskPersistenceManager;
use crate::retention::RetentionPolicy;

/// How long one case may run before it counts as failed.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// The outcome of one case.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CaseOutcome {
    /// The case's name.
    pub name: &'static str,
    /// What the case checks.
    pub description: &'static str,
    /// Whether the store behaved as the contract says.
    pub passed: bool,
    /// Why the case failed (its file and line, what was found); empty when it passed.
    pub message: String,
    /// How long the case ran.
    pub duration: Duration,
}

/// The outcomes of a suite run, in the order the cases ran.
///
/// Its `Display` is a table of the cases followed by a line `N passed, M failed`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SuiteReport {
    /// One outcome per case that ran.
    pub results: Vec<CaseOutcome>,
}

impl SuiteReport {
    /// How many cases passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    /// How many cases failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// The cases that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CaseOutcome> {
        self.results.iter().filter(|r| !r.passed)
    }

    /// Whether at least one case ran and none failed (a filter that matches no case is
    /// not a success).
    pub fn is_success(&self) -> bool {
        !self.results.is_empty() && self.failed() == 0
    }
}

impl fmt::Display for SuiteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .results
            .iter()
            .map(|r| r.name.len())
            .chain([4])
            .max()
            .unwrap_or(4);
        writeln!(
            f,
            "{:<width$}  {:<6}  {:>10}  message",
            "case", "result", "time"
        )?;
        for r in &self.results {
            let result = if r.passed { "ok" } else { "FAILED" };
            let millis = r.duration.as_secs_f64() * 1000.0;
            let time = format!("{millis:.1} ms");
            let message = r.message.split_whitespace().collect::<Vec<_>>().join(" ");
            let line = format!("{:<width$}  {result:<6}  {time:>10}  {message}", r.name);
            writeln!(f, "{}", line.trim_end())?;
        }
        write!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}

/// A typed manager (one that implements [`TaskPersistenceManager`] itself rather than
/// [`DocumentStore`](crate::DocumentStore)) as the suite's store: the document cases
/// reach it through [`TypedDocuments`].
pub fn typed<M: TaskPersistenceManager>(manager: M) -> Arc<dyn DocumentManager> {
    Arc::new(TypedDocuments::new(manager))
}

/// Runs every case whose name contains `filter` (all of them for `None`), each against a
/// fresh store from `make_store`.
///
/// `make_store` is called once per case, just before it runs; for a backend shared
/// between runs (a database, a server) it is the place to empty the scratch namespace.
/// Each case runs with a limit of [`CASE_TIMEOUT`], and a case that panics counts as
/// failed, so one broken case never hides the others.
///
/// Must be called inside a tokio runtime with timers enabled.
pub async fn run_suite<F, Fut>(make_store: F, filter: Option<&str>) -> SuiteReport
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<dyn DocumentManager>>,
{
    run_cases(cases(), make_store, filter).await
}

/// Runs the retention cases ([`retention_cases`]) as [`run_suite`] runs the others: each
/// against a fresh store from `make_store`, which is given the policy to configure it
/// with ([`suite_policy`](super::retention::suite_policy)).
///
/// The cases wait on tokio's clock (a few seconds in all, or no time in a paused
/// runtime for a store whose expiry follows tokio's clock).
pub async fn run_retention_suite<F, Fut>(mut make_store: F, filter: Option<&str>) -> SuiteReport
where
    F: FnMut(RetentionPolicy) -> Fut,
    Fut: Future<Output = Arc<dyn DocumentManager>>,
{
    let policy = super::retention::suite_policy();
    run_cases(retention_cases(), || make_store(policy), filter).await
}

async fn run_cases<F, Fut>(all: Vec<Case>, mut make_store: F, filter: Option<&str>) -> SuiteReport
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<dyn DocumentManager>>,
{
    let mut report = SuiteReport::default();
    for case in all {
        if filter.is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        let store = make_store().await;
        report.results.push(run_case(&case, store).await);
    }
    report
}

/// Runs one case against a store, with the time limit and panic handling of [`run_suite`].
pub async fn run_case(case: &Case, store: Arc<dyn DocumentManager>) -> CaseOutcome {
    let started = Instant::now();
    let guarded = AssertUnwindSafe(case.run(store)).catch_unwind();
    let result: CaseResult = match tokio::time::timeout(CASE_TIMEOUT, guarded).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(CaseFailure::new(format!(
            "the case panicked: {}",
            panic_message(panic.as_ref())
        ))),
        Err(_) => Err(CaseFailure::new(format!(
            "the case did not finish within {} s",
            CASE_TIMEOUT.as_secs()
        ))),
    };
    let duration = started.elapsed();
    let (passed, message) = match result {
        Ok(()) => (true, String::new()),
        Err(failure) => (false, failure.message().to_owned()),
    };
    CaseOutcome {
        name: case.name,
        description: case.description,
        passed,
        message,
        duration,
    }
}

/// The text of a panic's payload, when it is a string.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a non-string panic payload)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: &'static str, passed: bool, message: &str) -> CaseOutcome {
        CaseOutcome {
            name,
            description: "",
            passed,
            message: message.to_owned(),
            duration: Duration::from_micros(1500),
        }
    }

    #[test]
    fn the_report_is_a_table_closed_by_the_counts() {
        let report = SuiteReport {
            results: vec![
                outcome("short", true, ""),
                outcome("a_longer_name", false, "crud.rs:10: two\nlines"),
            ],
        };
        let text = report.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("case           result"), "{text}");
        assert_eq!(lines[1], "short          ok          1.5 ms");
        assert_eq!(
            lines[2],
            "a_longer_name  FAILED      1.5 ms  crud.rs:10: two lines"
        );
        assert_eq!(lines[3], "1 passed, 1 failed");
        assert!(!report.is_success());
        assert!(!SuiteReport::default().is_success());
    }

    #[test]
    fn case_names_are_unique_and_described() {
        let all = cases();
        assert!(all.len() >= 40, "{} cases", all.len());
        let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "duplicate case names");
        assert!(all.iter().all(|c| !c.description.is_empty()));
    }
}
