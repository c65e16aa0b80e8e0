//! `InstrumentedManager`: a duration histogram and a `tracing` span for every operation
//! of the manager a factory hands out, and the factory's load information as metrics.
//!
//! Everything goes through the [`metrics`] facade: the application installs the recorder
//! (Prometheus, OpenTelemetry, StatsD, ...) it wants, before it builds the factory;
//! without one, recording costs a clock read and a no-op call.
//!
//! # Names
//!
//! The names follow Prometheus' conventions (snake case, a `ta_persistence_` namespace,
//! the base unit as a suffix, `_total` on counters, `_info` on an information gauge):
//! the facade's exporters are Prometheus-shaped, and OpenTelemetry's `db.client.*`
//! names would be rewritten by a Prometheus exporter anyway, while their
//! `db.system.name` expects a registered database name that a plugin host cannot know.
//!
//! | name | type | unit | labels |
//! |---|---|---|---|
//! | [`OPERATION_DURATION`] | histogram | seconds | `operation`, `backend`, `outcome` |
//! | [`FALLBACK_ACTIVE`] | gauge | 1 or 0 | none |
//! | [`PLUGIN_INFO`] | gauge, always 1 | none | `plugin`, `version`, `interface_version`, `class` |
//! | [`PLUGIN_LOADS`] | counter | loads | `outcome` (`ok` or `failed`) |
//!
//! - `operation` is the operation's name as [`Operation::as_str`] spells it (`create`,
//!   `load`, `update`, `delete`, `load_by_request_id`, `health`, `clear`): the ETag and
//!   document forms count as the operation they perform.
//! - `backend` is `memory` for the built-in store (also when it stands in for a plugin
//!   that failed) and the plugin's name for a plugin.
//! - `outcome` is `ok`, or the error's [`ErrorKind`] in snake case (`not_found`,
//!   `timeout`, ...). A `load` that finds nothing is `ok`: it is an answer, not an error.
//!
//! A call whose future the caller drops before it completes (it gave up waiting) has no
//! outcome, and is not recorded.
//!
//! # Spans
//!
//! Each operation runs in an `info` span named `persistence` with the fields
//! `operation`, `backend`, `task_id` or `request_id` (Debug-quoted, so a control
//! character in an id cannot forge a log line) and, once it completes, `outcome`. No
//! task content, ETag or configuration value is ever recorded.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use metrics::{Key, Label, Level, Metadata, Unit};
use ta_persistence_api::async_trait;
use ta_persistence_api::{
    AgentTask, DocumentManager, ETag, ErrorKind, Operation, Page, PageRequest, Result,
    TaskDocument, TaskFilter, TaskPersistenceManager, Versioned,
};
use tracing::field::Empty;
use tracing::Instrument as _;

use crate::memory::InMemoryPersistenceManager;

/// The duration of each operation, in seconds (a histogram).
pub const OPERATION_DURATION: &str = "ta_persistence_operation_duration_seconds";
/// 1 while the host serves the built-in store because the configured plugin failed, 0
/// otherwise (a gauge).
pub const FALLBACK_ACTIVE: &str = "ta_persistence_fallback_active";
/// The loaded plugin: always 1, the information is in the labels (a gauge).
pub const PLUGIN_INFO: &str = "ta_persistence_plugin_info";
/// Plugin loads, by outcome (a counter).
pub const PLUGIN_LOADS: &str = "ta_persistence_plugin_loads_total";

/// Histogram bucket bounds, in seconds, for [`OPERATION_DURATION`]: from an in-process
/// call (a few microseconds) to a network store near its deadline (seconds).
///
/// Exporters that need buckets (Prometheus renders a histogram without them as a
/// summary) can use these: `set_buckets_for_metric(Matcher::Full(OPERATION_DURATION.into()),
/// DURATION_BUCKETS)`.
pub const DURATION_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `backend` label of the built-in store.
pub const BUILT_IN_BACKEND: &str = "memory";

/// Where this module's metrics say they come from (recorders may filter on it).
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The `outcome` labels: `ok`, each error kind, and `error` for a kind this host does not
/// know yet.
const OUTCOMES: [&str; 11] = [
    "ok",
    "already_exists",
    "not_found",
    "invalid_input",
    "conflict",
    "corrupt",
    "unavailable",
    "timeout",
    "backend",
    "plugin",
    "error",
];

/// The index in [`OUTCOMES`] of a call's result.
fn outcome_index<T>(result: &Result<T>) -> usize {
    let Err(err) = result else { return 0 };
    match err.kind() {
        ErrorKind::AlreadyExists => 1,
        ErrorKind::NotFound => 2,
        ErrorKind::InvalidInput => 3,
        ErrorKind::Conflict => 4,
        ErrorKind::Corrupt => 5,
        ErrorKind::Unavailable => 6,
        ErrorKind::Timeout => 7,
        ErrorKind::Backend => 8,
        ErrorKind::Plugin => 9,
        _ => 10,
    }
}

/// The `outcome` label of a call's result: `ok` or the error kind in snake case.
pub fn outcome<T>(result: &Result<T>) -> &'static str {
    OUTCOMES[outcome_index(result)]
}

/// One histogram key per operation and outcome, built once per manager so that a call
/// allocates nothing for its labels: a retained key is cloned by reference count.
struct Keys {
    by_operation: [[Key; OUTCOMES.len()]; Operation::ALL.len()],
}

impl Keys {
    fn new(backend: &str) -> Self {
        let by_operation = Operation::ALL.map(|op| {
            OUTCOMES.map(|outcome| {
                let labels = vec![
                    Label::from_static_parts("operation", op.as_str()),
                    Label::new("backend", backend.to_owned()),
                    Label::from_static_parts("outcome", outcome),
                ];
                Key::from_parts(OPERATION_DURATION, labels).to_retained()
            })
        });
        Keys { by_operation }
    }

    fn get(&self, op: Operation, outcome: usize) -> &Key {
        // A row per operation (`Construct` is never timed here, and its row stays unused).
        let row = Operation::ALL.iter().position(|o| *o == op).unwrap_or(0);
        &self.by_operation[row][outcome]
    }
}

/// A manager whose every call is timed into [`OPERATION_DURATION`] and runs in a
/// `persistence` span (see the module doc). The factory wraps every manager it hands out
/// in one.
pub struct InstrumentedManager {
    inner: Arc<dyn DocumentManager>,
    /// The same store as `inner` when it is the built-in one: its operations complete
    /// synchronously, so the busiest calls run directly, without the boxed future and
    /// the extra poll of a call through `inner`.
    built_in: Option<InMemoryPersistenceManager>,
    backend: Arc<str>,
    keys: Keys,
}

impl std::fmt::Debug for InstrumentedManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedManager")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Which id field a span carries.
#[derive(Clone, Copy)]
enum Subject<'a> {
    Task(&'a str),
    Request(&'a str),
    None,
}

impl InstrumentedManager {
    /// Wraps `inner`; `backend` is the `backend` label and span field (see the module doc).
    pub fn new(inner: Arc<dyn DocumentManager>, backend: &str) -> Self {
        InstrumentedManager {
            inner,
            built_in: None,
            backend: Arc::from(backend),
            keys: Keys::new(backend),
        }
    }

    /// Wraps the built-in store, calling it directly (same spans and metrics as
    /// [`InstrumentedManager::new`]).
    pub fn built_in(store: InMemoryPersistenceManager, backend: &str) -> Self {
        let mut manager = Self::new(Arc::new(store.clone()), backend);
        manager.built_in = Some(store);
        manager
    }

    /// The `backend` label.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// The wrapped manager.
    pub fn inner(&self) -> &Arc<dyn DocumentManager> {
        &self.inner
    }

    /// The span of one call. It is made before the call is, because the write methods
    /// move their task (and its id) into the call.
    fn span(&self, op: Operation, subject: Subject<'_>) -> tracing::Span {
        let backend: &str = &self.backend;
        let operation = op.as_str();
        match subject {
            Subject::Task(id) => {
                tracing::info_span!("persistence", operation, backend, task_id = ?id, outcome = Empty)
            }
            Subject::Request(id) => {
                tracing::info_span!("persistence", operation, backend, request_id = ?id, outcome = Empty)
            }
            Subject::None => {
                tracing::info_span!("persistence", operation, backend, outcome = Empty)
            }
        }
    }

    /// Runs one call in its span and records its duration and outcome.
    async fn observe<T>(
        &self,
        op: Operation,
        span: tracing::Span,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let result = call.instrument(span.clone()).await;
        self.record(op, &span, started, &result);
        result
    }

    /// Runs one synchronous call of the built-in store in its span, as [`Self::observe`]
    /// does an asynchronous one.
    fn observe_now<T>(
        &self,
        op: Operation,
        span: tracing::Span,
        call: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let started = Instant::now();
        let result = span.in_scope(call);
        self.record(op, &span, started, &result);
        result
    }

    /// Records a completed call's outcome in its span and its duration.
    fn record<T>(&self, op: Operation, span: &tracing::Span, started: Instant, result: &Result<T>) {
        let seconds = started.elapsed().as_secs_f64();
        let outcome = outcome_index(result);
        span.record("outcome", OUTCOMES[outcome]);
        let key = self.keys.get(op, outcome);
        metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA))
            .record(seconds);
    }
}

#[async_trait]
impl TaskPersistenceManager for InstrumentedManager {
    async fn create(&self, task: AgentTask) -> Result<()> {
        let span = self.span(Operation::Create, Subject::Task(&task.task_id));
        if let Some(store) = &self.built_in {
            return self.observe_now(Operation::Create, span, || store.create_now(task));
        }
        self.observe(Operation::Create, span, self.inner.create(task))
            .await
    }

    async fn load(&self, task_id: &str) -> Result<Option<AgentTask>> {
        let span = self.span(Operation::Load, Subject::Task(task_id));
        if let Some(store) = &self.built_in {
            return self.observe_now(Operation::Load, span, || store.load_now(task_id));
        }
        self.observe(Operation::Load, span, self.inner.load(task_id))
            .await
    }

    async fn update(&self, task: AgentTask) -> Result<()> {
        let span = self.span(Operation::Update, Subject::Task(&task.task_id));
        if let Some(store) = &self.built_in {
            return self.observe_now(Operation::Update, span, || store.update_now(task));
        }
        self.observe(Operation::Update, span, self.inner.update(task))
            .await
    }

    async fn delete(&self, task_id: &str) -> Result<()> {
        let span = self.span(Operation::Delete, Subject::Task(task_id));
        if let Some(store) = &self.built_in {
            return self.observe_now(Operation::Delete, span, || store.delete_now(task_id));
        }
        self.observe(Operation::Delete, span, self.inner.delete(task_id))
            .await
    }

    async fn load_by_request_id(&self, request_id: &str) -> Result<Option<AgentTask>> {
        let op = Operation::LoadByRequestId;
        let span = self.span(op, Subject::Request(request_id));
        if let Some(store) = &self.built_in {
            return self.observe_now(op, span, || store.load_by_request_id_now(request_id));
        }
        self.observe(op, span, self.inner.load_by_request_id(request_id))
            .await
    }

    async fn load_with_etag(&self, task_id: &str) -> Result<Option<Versioned>> {
        let span = self.span(Operation::Load, Subject::Task(task_id));
        self.observe(Operation::Load, span, self.inner.load_with_etag(task_id))
            .await
    }

    async fn update_if_match(&self, task: AgentTask, etag: &ETag) -> Result<ETag> {
        let span = self.span(Operation::Update, Subject::Task(&task.task_id));
        let call = self.inner.update_if_match(task, etag);
        self.observe(Operation::Update, span, call).await
    }

    async fn health(&self) -> Result<()> {
        let span = self.span(Operation::Health, Subject::None);
        self.observe(Operation::Health, span, self.inner.health())
            .await
    }

    async fn clear(&self) -> Result<u64> {
        let span = self.span(Operation::Clear, Subject::None);
        self.observe(Operation::Clear, span, self.inner.clear())
            .await
    }

    async fn list_tasks(&self, filter: &TaskFilter, page: &PageRequest) -> Result<Page> {
        let span = self.span(Operation::List, Subject::None);
        self.observe(Operation::List, span, self.inner.list_tasks(filter, page))
            .await
    }

    async fn purge(&self) -> Result<u64> {
        let span = self.span(Operation::Purge, Subject::None);
        self.observe(Operation::Purge, span, self.inner.purge())
            .await
    }
}

#[async_trait]
impl DocumentManager for InstrumentedManager {
    async fn create_document(&self, doc: TaskDocument) -> Result<()> {
        let span = self.span(Operation::Create, Subject::Task(doc.task_id()));
        let call = self.inner.create_document(doc);
        self.observe(Operation::Create, span, call).await
    }

    async fn load_document(&self, task_id: &str) -> Result<Option<TaskDocument>> {
        let span = self.span(Operation::Load, Subject::Task(task_id));
        let call = self.inner.load_document(task_id);
        self.observe(Operation::Load, span, call).await
    }

    async fn update_document(&self, doc: TaskDocument) -> Result<()> {
        let span = self.span(Operation::Update, Subject::Task(doc.task_id()));
        let call = self.inner.update_document(doc);
        self.observe(Operation::Update, span, call).await
    }

    async fn load_document_by_request_id(&self, request_id: &str) -> Result<Option<TaskDocument>> {
        let op = Operation::LoadByRequestId;
        let span = self.span(op, Subject::Request(request_id));
        let call = self.inner.load_document_by_request_id(request_id);
        self.observe(op, span, call).await
    }

    async fn load_document_with_etag(
        &self,
        task_id: &str,
    ) -> Result<Option<Versioned<TaskDocument>>> {
        let span = self.span(Operation::Load, Subject::Task(task_id));
        let call = self.inner.load_document_with_etag(task_id);
        self.observe(Operation::Load, span, call).await
    }

    async fn update_document_if_match(&self, doc: TaskDocument, etag: &ETag) -> Result<ETag> {
        let span = self.span(Operation::Update, Subject::Task(doc.task_id()));
        let call = self.inner.update_document_if_match(doc, etag);
        self.observe(Operation::Update, span, call).await
    }
}

/// Registers each metric's description and unit with the installed recorder (for
/// Prometheus, the `# HELP` lines). The factory calls it; calling it again is harmless.
pub fn describe() {
    metrics::describe_histogram!(
        OPERATION_DURATION,
        Unit::Seconds,
        "Duration of each task persistence operation, by operation, backend and outcome."
    );
    metrics::describe_gauge!(
        FALLBACK_ACTIVE,
        "1 while the built-in in-memory store stands in for a plugin that failed to load."
    );
    metrics::describe_gauge!(
        PLUGIN_INFO,
        "The loaded persistence plugin (always 1): name, version, interface version, class."
    );
    metrics::describe_counter!(
        PLUGIN_LOADS,
        Unit::Count,
        "Persistence plugin loads, by outcome (ok or failed)."
    );
}

/// Sets [`FALLBACK_ACTIVE`].
pub(crate) fn record_fallback(active: bool) {
    metrics::gauge!(FALLBACK_ACTIVE).set(if active { 1.0 } else { 0.0 });
}

/// Records a plugin load that succeeded: [`PLUGIN_INFO`] and [`PLUGIN_LOADS`].
pub(crate) fn record_plugin_loaded(
    plugin: &str,
    version: &str,
    interface_version: u32,
    class: &str,
) {
    metrics::gauge!(
        PLUGIN_INFO,
        "plugin" => plugin.to_owned(),
        "version" => version.to_owned(),
        "interface_version" => interface_version.to_string(),
        "class" => class.to_owned(),
    )
    .set(1.0);
    metrics::counter!(PLUGIN_LOADS, "outcome" => "ok").increment(1);
}

/// Records a plugin load that failed ([`PLUGIN_LOADS`]).
pub(crate) fn record_plugin_failed() {
    metrics::counter!(PLUGIN_LOADS, "outcome" => "failed").increment(1);
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    use metrics_util::MetricKind;
    use ta_persistence_api::{AgentTaskItem, MultiModalItem, Role, Timestamp};

    use super::*;
    use crate::config::Config;
    use crate::factory::PersistenceFactory;
    use crate::memory::InMemoryPersistenceManager;

    /// Runs `body` on a runtime of its own with `recorder` as this thread's recorder.
    fn recorded<F: Future>(recorder: &DebuggingRecorder, body: impl FnOnce() -> F) -> F::Output {
        metrics::with_local_recorder(recorder, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap()
                .block_on(body())
        })
    }

    /// The labels of a key, as (name, value) pairs.
    fn labels(key: &Key) -> Vec<(String, String)> {
        key.labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect()
    }

    /// How many durations were recorded for (operation, backend, outcome), and whether
    /// each was a plausible duration.
    fn durations(
        snapshot: &[(MetricKind, Key, DebugValue)],
        op: &str,
        backend: &str,
        outcome: &str,
    ) -> usize {
        let want = vec![
            ("operation".to_owned(), op.to_owned()),
            ("backend".to_owned(), backend.to_owned()),
            ("outcome".to_owned(), outcome.to_owned()),
        ];
        snapshot
            .iter()
            .filter(|(kind, key, _)| {
                *kind == MetricKind::Histogram
                    && key.name() == OPERATION_DURATION
                    && labels(key) == want
            })
            .map(|(_, _, value)| match value {
                DebugValue::Histogram(values) => {
                    assert!(
                        values.iter().all(|v| v.0 >= 0.0 && v.0 < 60.0),
                        "{values:?}"
                    );
                    values.len()
                }
                other => panic!("{OPERATION_DURATION} is not a histogram: {other:?}"),
            })
            .sum()
    }

    fn take(snapshotter: &Snapshotter) -> Vec<(MetricKind, Key, DebugValue)> {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(ck, _, _, value)| {
                let (kind, key) = ck.into_parts();
                (kind, key, value)
            })
            .collect()
    }

    fn gauge(
        snapshot: &[(MetricKind, Key, DebugValue)],
        name: &str,
    ) -> Option<(Vec<(String, String)>, f64)> {
        snapshot.iter().find_map(|(kind, key, value)| match value {
            DebugValue::Gauge(v) if *kind == MetricKind::Gauge && key.name() == name => {
                Some((labels(key), v.0))
            }
            _ => None,
        })
    }

    fn counter(snapshot: &[(MetricKind, Key, DebugValue)], name: &str, outcome: &str) -> u64 {
        snapshot
            .iter()
            .filter(|(_, key, _)| key.name() == name)
            .filter(|(_, key, _)| labels(key) == [("outcome".to_owned(), outcome.to_owned())])
            .map(|(_, _, value)| match value {
                DebugValue::Counter(n) => *n,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    }

    fn task(id: &str, text: &str) -> AgentTask {
        let now = Timestamp::now_utc();
        let mut task = AgentTask::new(id, "s", "u", now);
        task.items.push(AgentTaskItem::new(
            id,
            "r1",
            Role::User,
            MultiModalItem::text(text),
            now,
        ));
        task
    }

    #[test]
    fn each_operation_is_timed_with_its_outcome() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorded(&recorder, || async {
            let store = InstrumentedManager::built_in(InMemoryPersistenceManager::new(), "memory");
            store.create(task("t1", "hi")).await.unwrap();
            let dup = store.create(task("t1", "hi")).await.unwrap_err();
            assert!(dup.is_already_exists());
            assert!(store.load("t1").await.unwrap().is_some());
            // Nothing found is an answer, not an error.
            assert!(store.load("t2").await.unwrap().is_none());
            assert!(store.delete("t2").await.unwrap_err().is_not_found());
            let v = store.load_with_etag("t1").await.unwrap().unwrap();
            store
                .update_if_match(v.value.clone(), &v.etag)
                .await
                .unwrap();
            let stale = store.update_if_match(v.value, &v.etag).await.unwrap_err();
            assert_eq!(stale.kind(), ErrorKind::Conflict);
            assert!(store.load_by_request_id("r1").await.unwrap().is_some());
            store.health().await.unwrap();
            assert_eq!(store.clear().await.unwrap(), 1);
        });
        let snap = take(&snapshotter);
        let count = |op, outcome| durations(&snap, op, "memory", outcome);
        assert_eq!(count("create", "ok"), 1);
        assert_eq!(count("create", "already_exists"), 1);
        assert_eq!(
            count("load", "ok"),
            3,
            "load and load_with_etag count as load"
        );
        assert_eq!(count("delete", "not_found"), 1);
        assert_eq!(count("update", "ok"), 1);
        assert_eq!(count("update", "conflict"), 1);
        assert_eq!(count("load_by_request_id", "ok"), 1);
        assert_eq!(count("health", "ok"), 1);
        assert_eq!(count("clear", "ok"), 1);
        assert_eq!(count("delete", "ok"), 0);
        let total: usize = snap
            .iter()
            .filter(|(_, key, _)| key.name() == OPERATION_DURATION)
            .map(|(_, _, v)| match v {
                DebugValue::Histogram(values) => values.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(total, 11, "one duration per call, none twice");
    }

    #[test]
    fn the_document_forms_are_timed_as_their_operation() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorded(&recorder, || async {
            let store =
                InstrumentedManager::new(Arc::new(InMemoryPersistenceManager::new()), "docs");
            let doc = TaskDocument::from_task(&task("d1", "hi"));
            store.create_document(doc.clone()).await.unwrap();
            assert!(store.load_document("d1").await.unwrap().is_some());
            assert!(store
                .load_document_by_request_id("r9")
                .await
                .unwrap()
                .is_none());
            let v = store.load_document_with_etag("d1").await.unwrap().unwrap();
            store
                .update_document_if_match(v.value, &v.etag)
                .await
                .unwrap();
            store.update_document(doc).await.unwrap();
        });
        let snap = take(&snapshotter);
        assert_eq!(durations(&snap, "create", "docs", "ok"), 1);
        assert_eq!(durations(&snap, "load", "docs", "ok"), 2);
        assert_eq!(durations(&snap, "load_by_request_id", "docs", "ok"), 1);
        assert_eq!(durations(&snap, "update", "docs", "ok"), 2);
    }

    #[test]
    fn a_fallback_sets_the_gauge_and_counts_the_failed_load() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorded(&recorder, || async {
            let factory =
                PersistenceFactory::from_config(&Config::plugin("/nowhere/libp.so", "Any"))
                    .unwrap();
            assert!(factory.active_backend().is_fallback());
            let store = factory.get_persistence_manager();
            assert!(store.delete("t1").await.unwrap_err().is_not_found());
        });
        let snap = take(&snapshotter);
        assert_eq!(gauge(&snap, FALLBACK_ACTIVE), Some((vec![], 1.0)));
        assert_eq!(counter(&snap, PLUGIN_LOADS, "failed"), 1);
        assert_eq!(counter(&snap, PLUGIN_LOADS, "ok"), 0);
        assert_eq!(gauge(&snap, PLUGIN_INFO), None);
        // The fallback serves as the built-in store, instrumented.
        assert_eq!(durations(&snap, "delete", BUILT_IN_BACKEND, "not_found"), 1);

        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorded(&recorder, || async {
            let factory = PersistenceFactory::from_config(&Config::default()).unwrap();
            assert!(!factory.active_backend().is_fallback());
        });
        let snap = take(&snapshotter);
        assert_eq!(gauge(&snap, FALLBACK_ACTIVE), Some((vec![], 0.0)));
        assert_eq!(counter(&snap, PLUGIN_LOADS, "failed"), 0);
    }

    /// A `tracing` writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_operation_has_a_span_with_quoted_ids_and_no_content() {
        // Both ways of calling the store: through the trait, and directly.
        spans_have_quoted_ids_and_no_content(|| {
            InstrumentedManager::new(Arc::new(InMemoryPersistenceManager::new()), "memory")
        });
        spans_have_quoted_ids_and_no_content(|| {
            InstrumentedManager::built_in(InMemoryPersistenceManager::new(), "memory")
        });
    }

    fn spans_have_quoted_ids_and_no_content(make: impl Fn() -> InstrumentedManager) {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(async {
                    let store = make();
                    store
                        .create(task("a\nb", "a secret payload"))
                        .await
                        .unwrap();
                    assert!(store
                        .load_by_request_id("req\u{1b}[2J")
                        .await
                        .unwrap()
                        .is_none());
                    assert!(store.delete("gone").await.unwrap_err().is_not_found());
                });
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "one closed span per call:\n{out}");
        assert!(
            lines[0].contains(
                r#"persistence{operation="create" backend="memory" task_id="a\nb" outcome="ok"}"#
            ),
            "{out}"
        );
        assert!(
            lines[1].contains(r#"operation="load_by_request_id""#),
            "{out}"
        );
        assert!(lines[1].contains(r#"request_id="req\u{1b}[2J""#), "{out}");
        assert!(
            lines[2].contains(r#"task_id="gone" outcome="not_found""#),
            "{out}"
        );
        assert!(
            !out.contains("secret"),
            "task content reached a span:\n{out}"
        );
        assert!(
            !out.contains('\u{1b}'),
            "a raw control character reached the log:\n{out}"
        );
    }
}
