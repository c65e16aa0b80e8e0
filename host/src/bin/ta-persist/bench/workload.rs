//! The standard "agent-turns" workload, run against any [`TaskPersistenceManager`].
//!
//! `T` tasks go through five phases (create, load, find, turn, delete) with `C`
//! operations in flight; each phase reports operations per second and latency
//! percentiles. Payloads are built before a phase's clock starts, so the figures cover
//! only the store calls. The workload is the same in every language and backend, so its
//! figures can be set side by side as ratios.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use ta_persistence::DocumentManager;
use ta_persistence_api::model::OpaqueJson;
use ta_persistence_api::{
    AgentTask, AgentTaskItem, MultiModalItem, PersistenceError, Role, TaskPersistenceManager,
    Timestamp,
};

/// The five phases, in the order they run.
pub(crate) const PHASES: [Phase; 5] = [
    Phase::Create,
    Phase::Load,
    Phase::Find,
    Phase::Turn,
    Phase::Delete,
];

/// One phase of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Phase {
    /// Create every task.
    Create,
    /// Load every task by id.
    Load,
    /// `load_by_request_id` of every task's first request id.
    Find,
    /// Load, append two items, update: one agent turn.
    Turn,
    /// Delete every task.
    Delete,
}

impl Phase {
    /// The phase's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Create => "create",
            Phase::Load => "load",
            Phase::Find => "find",
            Phase::Turn => "turn",
            Phase::Delete => "delete",
        }
    }
}

/// The figures of one phase.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PhaseResult {
    /// Which phase.
    pub(crate) phase: Phase,
    /// Operations completed.
    pub(crate) ops: usize,
    /// Operations per second over the phase's wall time.
    pub(crate) ops_per_sec: f64,
    /// Median latency, microseconds.
    pub(crate) p50_us: f64,
    /// 99th-percentile latency, microseconds.
    pub(crate) p99_us: f64,
}

/// Memory figures taken around the create phase (Linux only; `None` elsewhere).
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct MemoryFigures {
    /// Resident set before the payloads were built, KiB.
    pub(crate) rss_before_kib: u64,
    /// Resident set after the create phase, KiB.
    pub(crate) rss_after_create_kib: u64,
    /// Peak resident set of the process so far, KiB.
    pub(crate) peak_rss_kib: u64,
    /// (RSS after create - RSS before) / tasks, bytes: what the store holds per task,
    /// allocator overhead included (the allocator is first asked to return freed pages:
    /// see [`super::heap::release`]).
    pub(crate) bytes_per_task: u64,
    /// Net heap bytes allocated from before the payloads were built to after the create
    /// phase, per task: the store's own bytes, exactly, without allocator overhead. Only
    /// in a run that counts (see [`Workload::count_heap`]) of a program that installed
    /// the counting allocator (`ta-persist` does; see [`super::heap`]).
    pub(crate) heap_bytes_per_task: Option<u64>,
}

/// The figures of one run at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunResult {
    /// Which backend ran.
    pub(crate) backend: String,
    /// Tasks in the workload.
    pub(crate) tasks: usize,
    /// Operations in flight.
    pub(crate) concurrency: usize,
    /// One entry per phase, in order.
    pub(crate) phases: Vec<PhaseResult>,
    /// Memory around the create phase, in a run that measures it
    /// ([`Workload::count_heap`]).
    pub(crate) memory: Option<MemoryFigures>,
}

/// A workload run that could not complete.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    /// An operation failed.
    #[error("{phase} phase")]
    Operation {
        /// The phase.
        phase: &'static str,
        /// The failure.
        #[source]
        source: PersistenceError,
    },
    /// The store answered wrongly (a miss where a task must be).
    #[error("{phase} phase: {message}")]
    Check {
        /// The phase.
        phase: &'static str,
        /// What was wrong.
        message: String,
    },
}

/// The workload's parameters.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    /// Number of tasks (`T`).
    pub(crate) tasks: usize,
    /// Operations in flight (`C`).
    pub(crate) concurrency: usize,
    /// Take the memory figures ([`RunResult::memory`]): count heap bytes during payload
    /// building and the create phase, and return freed pages to the system before each
    /// resident-set reading. Both cost time, so a run that measures memory should not be
    /// the one whose speed is reported.
    pub(crate) count_heap: bool,
}

impl Workload {
    /// `tasks` tasks with `concurrency` operations in flight.
    pub(crate) fn new(tasks: usize, concurrency: usize) -> Self {
        Workload {
            tasks,
            concurrency: concurrency.max(1),
            count_heap: false,
        }
    }

    /// The same workload, counting heap bytes (see [`Workload::count_heap`]).
    pub(crate) fn counting_heap(mut self) -> Self {
        self.count_heap = true;
        self
    }
}

/// Operations per progress report.
const PROGRESS_BATCH: usize = 256;

/// Called with the number of operations completed since the last call (for a progress
/// bar), every few hundred operations.
pub(crate) type Progress = Arc<dyn Fn(Phase, usize) + Send + Sync>;

/// 512 ASCII characters, distinct per task so nothing is shared between tasks.
fn content(i: usize, which: &str) -> Arc<str> {
    use std::fmt::Write as _;
    // Built in a stack buffer and allocated once, at its final size: a payload should
    // leave no freed garbage behind to inflate the memory figures.
    let mut buf = [0u8; 512];
    let mut head = String::with_capacity(48);
    let _ = write!(head, "{which} message of task {i}: ");
    let filler = b"lorem ipsum dolor sit amet consectetur adipiscing elit ";
    let start = head.len().min(buf.len());
    buf[..start].copy_from_slice(&head.as_bytes()[..start]);
    for (at, byte) in buf[start..].iter_mut().enumerate() {
        *byte = filler[at % filler.len()];
    }
    Arc::from(std::str::from_utf8(&buf).unwrap_or_default())
}

fn tool_call(i: usize) -> OpaqueJson {
    OpaqueJson::from_value(&serde_json::json!({
        "plugin_name": "EmailPlugin",
        "function_name": "send_email",
        "arguments": {
            "to": format!("user-{}@example.com", i % 10),
            "subject": "Quarterly summary",
            "body": "Revenue up 4% QoQ; costs flat.",
            "priority": "normal",
            "attempt": 1
        },
        "id": format!("call-{i:08}")
    }))
}

/// The two items one turn of task `i` adds, with request id `req-{i}-{turn}`.
pub(crate) fn turn_items(i: usize, turn: usize) -> [AgentTaskItem; 2] {
    let task_id = format!("task-{i}");
    let request_id = format!("req-{i}-{turn}");
    let now = Timestamp::now_utc();
    let user = AgentTaskItem::new(
        task_id.clone(),
        request_id.clone(),
        Role::User,
        MultiModalItem::text(content(i, "user")),
        now,
    );
    let mut assistant = AgentTaskItem::new(
        task_id,
        request_id,
        Role::Assistant,
        MultiModalItem::text(content(i, "assistant")),
        now,
    );
    assistant.pending_tool_calls = Some(vec![tool_call(i)]);
    [user, assistant]
}

/// Task `i` of the workload, as the create phase stores it.
pub(crate) fn new_task(i: usize) -> AgentTask {
    let now = Timestamp::now_utc();
    let mut task = AgentTask::new(
        format!("task-{i}"),
        format!("session-{}", i % 100),
        format!("user-{}", i % 10),
        now,
    );
    task.items.extend(turn_items(i, 0));
    task
}

/// What a copy and the JSON forms of one workload task cost, with no store involved:
/// the floors under the phases' figures. A built-in `load` returns a copy (value
/// semantics: the caller's task is its own); a plugin's `load` decodes the task from
/// the plugin's JSON, and its `create` or `update` encodes one.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Floors {
    /// `clone` and drop of a new task, ns per task.
    pub(crate) copy_ns: f64,
    /// Encoding it to the wire JSON, ns per task.
    pub(crate) encode_ns: f64,
    /// Decoding it from the wire JSON, ns per task.
    pub(crate) decode_ns: f64,
}

impl Floors {
    /// Times each over `tasks` distinct tasks (at most 10,000), best of three passes.
    pub(crate) fn measure(tasks: usize) -> Floors {
        use std::hint::black_box;
        let tasks: Vec<AgentTask> = (0..tasks.clamp(1, 10_000)).map(new_task).collect();
        let json: Vec<String> = tasks.iter().map(AgentTask::to_json).collect();
        let per_task = |pass: &dyn Fn()| {
            (0..3)
                .map(|_| {
                    let started = Instant::now();
                    pass();
                    started.elapsed().as_nanos() as f64 / tasks.len() as f64
                })
                .fold(f64::INFINITY, f64::min)
        };
        Floors {
            copy_ns: per_task(&|| tasks.iter().for_each(|t| drop(black_box(t.clone())))),
            encode_ns: per_task(&|| tasks.iter().for_each(|t| drop(black_box(t.to_json())))),
            decode_ns: per_task(&|| {
                json.iter()
                    .for_each(|j| drop(black_box(AgentTask::from_json(j).ok())))
            }),
        }
    }
}

/// What the workers of a run share: the store and every prebuilt payload. Each worker
/// holds one `Arc` of it for a whole phase, so an operation costs no reference counting
/// of its own.
struct Shared {
    store: Arc<dyn DocumentManager>,
    payloads: Vec<Mutex<Option<AgentTask>>>,
    /// Built just before the turn phase, so the create phase's memory figure does not
    /// count it.
    turns: OnceLock<Vec<Mutex<Option<[AgentTaskItem; 2]>>>>,
    ids: Vec<String>,
    request_ids: Vec<String>,
    /// Which tasks this run created and has not deleted: what it removes if it fails.
    created: Vec<AtomicBool>,
    /// Set when an operation failed, so that the other workers stop too.
    failed: AtomicBool,
}

impl Shared {
    /// One operation of `phase` on task `i`.
    async fn op(&self, phase: Phase, i: usize) -> Result<(), BenchError> {
        let fail = op_err(phase);
        match phase {
            Phase::Create => {
                let task = take(&self.payloads, i)
                    .ok_or_else(|| missing(phase, format!("payload {i}")))?;
                self.store.create(task).await.map_err(fail)?;
                self.created[i].store(true, Ordering::Relaxed);
                Ok(())
            }
            Phase::Load => match self.store.load(&self.ids[i]).await.map_err(fail)? {
                Some(_) => Ok(()),
                None => Err(missing(phase, self.ids[i].clone())),
            },
            Phase::Find => {
                let rid = &self.request_ids[i];
                match self.store.load_by_request_id(rid).await.map_err(fail)? {
                    Some(_) => Ok(()),
                    None => Err(missing(phase, rid.clone())),
                }
            }
            Phase::Turn => {
                let id = &self.ids[i];
                let mut task = self
                    .store
                    .load(id)
                    .await
                    .map_err(&fail)?
                    .ok_or_else(|| missing(phase, id.clone()))?;
                let items = self
                    .turns
                    .get()
                    .and_then(|turns| take(turns, i))
                    .ok_or_else(|| missing(phase, format!("turn {i}")))?;
                task.items.extend(items);
                task.last_updated = Timestamp::now_utc();
                self.store.update(task).await.map_err(fail)
            }
            Phase::Delete => {
                self.store.delete(&self.ids[i]).await.map_err(fail)?;
                self.created[i].store(false, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Deletes every task this run created and has not deleted; returns the ids of those
    /// that could not be deleted.
    async fn remove_created(&self) -> Vec<String> {
        let mut left = Vec::new();
        for (id, created) in self.ids.iter().zip(&self.created) {
            if !created.load(Ordering::Relaxed) {
                continue;
            }
            match self.store.delete(id).await {
                Ok(()) => created.store(false, Ordering::Relaxed),
                // Gone already (expired, or removed by someone else): nothing to do.
                Err(err) if err.is_not_found() => created.store(false, Ordering::Relaxed),
                Err(_) => left.push(id.to_owned()),
            }
        }
        left
    }
}

/// Runs `phase` for every task with `concurrency` operations in flight; returns the wall
/// time and every operation's latency in nanoseconds.
async fn drive(
    shared: &Arc<Shared>,
    phase: Phase,
    concurrency: usize,
    progress: Option<Progress>,
) -> Result<(Duration, Vec<u64>), BenchError> {
    let n = shared.ids.len();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let next = Arc::clone(&next);
        let shared = Arc::clone(shared);
        let progress = progress.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(n / concurrency + 1);
            let mut unreported = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || shared.failed.load(Ordering::Relaxed) {
                    break;
                }
                let t0 = Instant::now();
                if let Err(err) = shared.op(phase, i).await {
                    shared.failed.store(true, Ordering::Relaxed);
                    return Err(err);
                }
                latencies.push(t0.elapsed().as_nanos() as u64);
                // Report progress in batches: a per-operation callback would cost more
                // than the fastest operations being measured.
                unreported += 1;
                if unreported == PROGRESS_BATCH {
                    if let Some(p) = &progress {
                        p(phase, unreported);
                    }
                    unreported = 0;
                }
            }
            if let (Some(p), true) = (&progress, unreported > 0) {
                p(phase, unreported);
            }
            Ok::<_, BenchError>(latencies)
        }));
    }
    // Every worker is awaited, even after one failed: none may still be writing when the
    // run cleans up.
    let mut all = Vec::with_capacity(n);
    let mut first_error = None;
    for worker in workers {
        let outcome = worker.await.unwrap_or_else(|join| {
            Err(BenchError::Check {
                phase: phase.as_str(),
                message: format!("a worker failed: {join}"),
            })
        });
        match outcome {
            Ok(latencies) => all.extend(latencies),
            Err(err) => {
                shared.failed.store(true, Ordering::Relaxed);
                first_error.get_or_insert(err);
            }
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok((started.elapsed(), all)),
    }
}

fn summarize(phase: Phase, wall: Duration, mut latencies: Vec<u64>) -> PhaseResult {
    latencies.sort_unstable();
    // Nearest-rank percentiles, as the Python baseline computes them.
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1] as f64 / 1000.0
    };
    PhaseResult {
        phase,
        ops: latencies.len(),
        ops_per_sec: latencies.len() as f64 / wall.as_secs_f64().max(f64::EPSILON),
        p50_us: pct(50.0),
        p99_us: pct(99.0),
    }
}

fn op_err(phase: Phase) -> impl Fn(PersistenceError) -> BenchError {
    move |source| BenchError::Operation {
        phase: phase.as_str(),
        source,
    }
}

fn missing(phase: Phase, what: String) -> BenchError {
    BenchError::Check {
        phase: phase.as_str(),
        message: format!("{what} was not found"),
    }
}

/// Takes a prebuilt payload out of its slot (each slot is taken exactly once).
fn take<T>(slots: &[Mutex<Option<T>>], i: usize) -> Option<T> {
    slots
        .get(i)?
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
}

/// Runs the whole workload once against `store`.
///
/// The workload's tasks have ids `task-{i}`; a task of that id already stored makes the
/// run fail and is left as it is. Afterwards the store holds none of the tasks the run
/// created, also when it failed (unless deleting failed too: those are logged).
pub(crate) async fn run(
    store: Arc<dyn DocumentManager>,
    backend: &str,
    workload: &Workload,
    progress: Option<Progress>,
) -> Result<RunResult, BenchError> {
    let n = workload.tasks;
    let c = workload.concurrency;
    let ids: Vec<String> = (0..n).map(|i| format!("task-{i}")).collect();
    let request_ids: Vec<String> = (0..n).map(|i| format!("req-{i}-0")).collect();
    let created = (0..n).map(|_| AtomicBool::new(false)).collect();
    // The baseline is taken before the payloads exist: they move into the store, so
    // (after create - before) is what the store holds.
    // Memory is measured only in a run that counts the heap: returning freed pages to the
    // system before reading the RSS would make a timed run pay to fault them back in.
    let measuring = workload.count_heap;
    let counting = measuring && super::heap::start();
    if measuring {
        super::heap::release();
    }
    let rss_before = mem::rss_kib();
    let payloads = (0..n).map(|i| Mutex::new(Some(new_task(i)))).collect();
    let shared = Arc::new(Shared {
        store: Arc::clone(&store),
        payloads,
        turns: OnceLock::new(),
        ids,
        request_ids,
        created,
        failed: AtomicBool::new(false),
    });
    let outcome = run_phases(
        &shared,
        workload,
        progress,
        measuring.then_some((counting, rss_before)),
    )
    .await;
    if outcome.is_err() {
        let left = shared.remove_created().await;
        if !left.is_empty() {
            tracing::error!(
                count = left.len(),
                first = ?left.first(),
                "the failed benchmark run could not delete some of the tasks it created"
            );
        }
    }
    let (phases, memory) = outcome?;
    Ok(RunResult {
        backend: backend.to_owned(),
        tasks: n,
        concurrency: c,
        phases,
        memory,
    })
}

/// The five phases of [`run`]; `measure` is `Some((counting, rss_before))` in a run that
/// takes the memory figures.
async fn run_phases(
    shared: &Arc<Shared>,
    workload: &Workload,
    progress: Option<Progress>,
    measure: Option<(bool, Option<u64>)>,
) -> Result<(Vec<PhaseResult>, Option<MemoryFigures>), BenchError> {
    let (n, c) = (workload.tasks, workload.concurrency);
    let store = &shared.store;
    let mut phases = Vec::with_capacity(PHASES.len());
    let mut memory = None;
    for phase in PHASES {
        if phase == Phase::Turn {
            // The turn's new items, built before its clock starts.
            shared
                .turns
                .get_or_init(|| (0..n).map(|i| Mutex::new(Some(turn_items(i, 1)))).collect());
        }
        let (wall, latencies) = drive(shared, phase, c, progress.clone()).await?;
        phases.push(summarize(phase, wall, latencies));
        if let (Phase::Create, Some((counting, rss_before))) = (phase, measure) {
            let heap = if counting { super::heap::stop() } else { None };
            memory = memory_after_create(n, rss_before, heap);
        }
        if phase == Phase::Turn && n > 0 {
            let last = format!("req-{}-1", n - 1);
            let found = store
                .load_by_request_id(&last)
                .await
                .map_err(op_err(Phase::Turn))?;
            if found.is_none() {
                return Err(missing(Phase::Turn, last));
            }
        }
    }
    Ok((phases, memory))
}

fn memory_after_create(
    n: usize,
    rss_before: Option<u64>,
    heap_delta: Option<i64>,
) -> Option<MemoryFigures> {
    let n = n.max(1) as u64;
    super::heap::release();
    let (before, after, peak) = (rss_before?, mem::rss_kib()?, mem::peak_rss_kib()?);
    Some(MemoryFigures {
        rss_before_kib: before,
        rss_after_create_kib: after,
        peak_rss_kib: peak,
        bytes_per_task: after.saturating_sub(before) * 1024 / n,
        heap_bytes_per_task: heap_delta.map(|d| d.max(0) as u64 / n),
    })
}

/// Process memory readings from `/proc/self/status`.
mod mem {
    fn status_kib(field: &str) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        line[field.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// Current resident set, KiB.
    pub(super) fn rss_kib() -> Option<u64> {
        status_kib("VmRSS:")
    }

    /// Peak resident set, KiB.
    pub(super) fn peak_rss_kib() -> Option<u64> {
        status_kib("VmHWM:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ta_persistence::InMemoryPersistenceManager;

    #[test]
    fn a_new_task_matches_the_workload_shape() {
        let t = new_task(7);
        assert_eq!(t.task_id, "task-7");
        assert_eq!(t.items.len(), 2);
        assert_eq!(t.items[0].item.content.len(), 512);
        assert_eq!(t.request_ids(), vec!["req-7-0"]);
        let json = t.to_json();
        assert!(
            (1500..2100).contains(&json.len()),
            "a task is about 1.6-1.8 KB of JSON, got {}",
            json.len()
        );
        let call = t.items[1].pending_tool_calls.as_ref().unwrap()[0]
            .as_str()
            .len();
        assert!(
            (180..260).contains(&call),
            "tool call is ~200 B, got {call}"
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let lat: Vec<u64> = (1..=100).map(|v| v * 1000).collect();
        let r = summarize(Phase::Load, Duration::from_secs(1), lat);
        assert_eq!(r.p50_us, 50.0);
        assert_eq!(r.p99_us, 99.0);
        assert_eq!(r.ops, 100);
        assert!((r.ops_per_sec - 100.0).abs() < 1e-9);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_workload_runs_and_leaves_the_store_empty() {
        let store = InMemoryPersistenceManager::new();
        for c in [1, 8] {
            let shared: Arc<dyn DocumentManager> = Arc::new(store.clone());
            let r = run(shared, "memory", &Workload::new(200, c), None)
                .await
                .unwrap();
            assert_eq!(r.phases.len(), 5);
            assert!(r.phases.iter().all(|p| p.ops == 200));
            assert_eq!(store.stats(), ta_persistence::MemoryStats::default());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_run_removes_its_own_tasks_and_keeps_the_others() {
        let store = InMemoryPersistenceManager::new();
        let mut theirs = AgentTask::new(
            "task-150",
            "their-session",
            "their-user",
            Timestamp::now_utc(),
        );
        theirs.items.extend(turn_items(9999, 0));
        store.create(theirs.clone()).await.unwrap();
        let shared: Arc<dyn DocumentManager> = Arc::new(store.clone());
        let err = run(shared, "memory", &Workload::new(300, 8), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BenchError::Operation { phase: "create", source } if source.kind() == ta_persistence::ErrorKind::AlreadyExists),
            "{err:?}"
        );
        assert_eq!(store.load("task-150").await.unwrap(), Some(theirs));
        for i in (0..300).filter(|&i| i != 150) {
            let id = format!("task-{i}");
            assert_eq!(store.load(&id).await.unwrap(), None, "{id} was left behind");
        }
    }
}
