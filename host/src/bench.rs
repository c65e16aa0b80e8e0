//! The standard "agent-turns" workload, run against any [`TaskPersistenceManager`].
//!
//! `T` tasks go through five phases (create, load, find, turn, delete) with `C`
//! operations in flight; each phase reports operations per second and latency
//! percentiles. Payloads are built before a phase's clock starts, so the figures cover
//! only the store calls. The workload is the same in every language and backend, so its
//! figures can be set side by side as ratios.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use ta_persistence_api::model::OpaqueJson;
use ta_persistence_api::{
    AgentTask, AgentTaskItem, MultiModalItem, PersistenceError, Role, TaskPersistenceManager,
    Timestamp,
};

/// The five phases, in the order they run.
pub const PHASES: [Phase; 5] = [
    Phase::Create,
    Phase::Load,
    Phase::Find,
    Phase::Turn,
    Phase::Delete,
];

/// One phase of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Phase {
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
    pub fn as_str(self) -> &'static str {
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
#[non_exhaustive]
pub struct PhaseResult {
    /// Which phase.
    pub phase: Phase,
    /// Operations completed.
    pub ops: usize,
    /// Operations per second over the phase's wall time.
    pub ops_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th-percentile latency, microseconds.
    pub p99_us: f64,
}

/// Memory figures taken around the create phase (Linux only; `None` elsewhere).
#[derive(Debug, Clone, Copy, Serialize)]
#[non_exhaustive]
pub struct MemoryFigures {
    /// Resident set before the payloads were built, KiB.
    pub rss_before_kib: u64,
    /// Resident set after the create phase, KiB.
    pub rss_after_create_kib: u64,
    /// Peak resident set of the process so far, KiB.
    pub peak_rss_kib: u64,
    /// (after create - before) / tasks: what the store holds per task, bytes.
    pub bytes_per_task: u64,
}

/// The figures of one run at one concurrency.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RunResult {
    /// Which backend ran.
    pub backend: String,
    /// Tasks in the workload.
    pub tasks: usize,
    /// Operations in flight.
    pub concurrency: usize,
    /// One entry per phase, in order.
    pub phases: Vec<PhaseResult>,
    /// Memory around the create phase.
    pub memory: Option<MemoryFigures>,
}

/// A workload run that could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// An operation failed.
    #[error("{phase} phase: {source}")]
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
#[non_exhaustive]
pub struct Workload {
    /// Number of tasks (`T`).
    pub tasks: usize,
    /// Operations in flight (`C`).
    pub concurrency: usize,
}

impl Workload {
    /// `tasks` tasks with `concurrency` operations in flight.
    pub fn new(tasks: usize, concurrency: usize) -> Self {
        Workload {
            tasks,
            concurrency: concurrency.max(1),
        }
    }
}

/// Called after every completed operation (for a progress bar).
pub type Progress = Arc<dyn Fn(Phase, usize) + Send + Sync>;

/// 512 ASCII characters, distinct per task so nothing is shared between tasks.
fn content(i: usize, which: &str) -> String {
    let head = format!("{which} message of task {i}: ");
    let mut s = String::with_capacity(512);
    s.push_str(&head);
    let filler = "lorem ipsum dolor sit amet consectetur adipiscing elit ";
    while s.len() < 512 {
        let room = 512 - s.len();
        s.push_str(&filler[..room.min(filler.len())]);
    }
    s
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
pub fn turn_items(i: usize, turn: usize) -> [AgentTaskItem; 2] {
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
pub fn new_task(i: usize) -> AgentTask {
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

/// Runs `op(i)` for every `i < n` with `concurrency` in flight; returns the wall time
/// and every operation's latency in nanoseconds.
async fn drive<F, Fut>(
    phase: Phase,
    n: usize,
    concurrency: usize,
    progress: Option<Progress>,
    op: F,
) -> Result<(Duration, Vec<u64>), BenchError>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), BenchError>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let op = Arc::new(op);
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let next = Arc::clone(&next);
        let op = Arc::clone(&op);
        let progress = progress.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(n / concurrency + 1);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t0 = Instant::now();
                op(i).await?;
                latencies.push(t0.elapsed().as_nanos() as u64);
                if let Some(p) = &progress {
                    p(phase, 1);
                }
            }
            Ok::<_, BenchError>(latencies)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for worker in workers {
        match worker.await {
            Ok(latencies) => all.extend(latencies?),
            Err(join) => {
                return Err(BenchError::Check {
                    phase: phase.as_str(),
                    message: format!("a worker failed: {join}"),
                })
            }
        }
    }
    Ok((started.elapsed(), all))
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
/// The store must not hold any of the workload's ids (`task-{i}`) beforehand; it holds
/// none of them afterwards.
pub async fn run(
    store: Arc<dyn TaskPersistenceManager>,
    backend: &str,
    workload: &Workload,
    progress: Option<Progress>,
) -> Result<RunResult, BenchError> {
    let n = workload.tasks;
    let c = workload.concurrency;
    let mut phases = Vec::with_capacity(PHASES.len());

    let rss_before = mem::rss_kib();
    let payloads: Arc<Vec<Mutex<Option<AgentTask>>>> =
        Arc::new((0..n).map(|i| Mutex::new(Some(new_task(i)))).collect());
    let ids: Arc<Vec<String>> = Arc::new((0..n).map(|i| format!("task-{i}")).collect());
    let request_ids: Arc<Vec<String>> = Arc::new((0..n).map(|i| format!("req-{i}-0")).collect());

    // create
    let (s, p) = (Arc::clone(&store), Arc::clone(&payloads));
    let (wall, lat) = drive(Phase::Create, n, c, progress.clone(), move |i| {
        let (s, p) = (Arc::clone(&s), Arc::clone(&p));
        async move {
            let task = take(&p, i).ok_or_else(|| missing(Phase::Create, format!("payload {i}")))?;
            s.create(task).await.map_err(op_err(Phase::Create))
        }
    })
    .await?;
    phases.push(summarize(Phase::Create, wall, lat));
    drop(payloads);
    let memory = match (rss_before, mem::rss_kib(), mem::peak_rss_kib()) {
        (Some(before), Some(after), Some(peak)) => Some(MemoryFigures {
            rss_before_kib: before,
            rss_after_create_kib: after,
            peak_rss_kib: peak,
            bytes_per_task: after.saturating_sub(before) * 1024 / n.max(1) as u64,
        }),
        _ => None,
    };

    // load
    let (s, ids_) = (Arc::clone(&store), Arc::clone(&ids));
    let (wall, lat) = drive(Phase::Load, n, c, progress.clone(), move |i| {
        let (s, ids) = (Arc::clone(&s), Arc::clone(&ids_));
        async move {
            match s.load(&ids[i]).await.map_err(op_err(Phase::Load))? {
                Some(_) => Ok(()),
                None => Err(missing(Phase::Load, ids[i].clone())),
            }
        }
    })
    .await?;
    phases.push(summarize(Phase::Load, wall, lat));

    // find
    let (s, rids) = (Arc::clone(&store), Arc::clone(&request_ids));
    let (wall, lat) = drive(Phase::Find, n, c, progress.clone(), move |i| {
        let (s, rids) = (Arc::clone(&s), Arc::clone(&rids));
        async move {
            match s
                .load_by_request_id(&rids[i])
                .await
                .map_err(op_err(Phase::Find))?
            {
                Some(_) => Ok(()),
                None => Err(missing(Phase::Find, rids[i].clone())),
            }
        }
    })
    .await?;
    phases.push(summarize(Phase::Find, wall, lat));

    // turn: the new items are built before the clock starts
    let turns: Arc<Vec<Mutex<Option<[AgentTaskItem; 2]>>>> =
        Arc::new((0..n).map(|i| Mutex::new(Some(turn_items(i, 1)))).collect());
    let (s, ids_, t) = (Arc::clone(&store), Arc::clone(&ids), Arc::clone(&turns));
    let (wall, lat) = drive(Phase::Turn, n, c, progress.clone(), move |i| {
        let (s, ids, t) = (Arc::clone(&s), Arc::clone(&ids_), Arc::clone(&t));
        async move {
            let mut task = s
                .load(&ids[i])
                .await
                .map_err(op_err(Phase::Turn))?
                .ok_or_else(|| missing(Phase::Turn, ids[i].clone()))?;
            let items = take(&t, i).ok_or_else(|| missing(Phase::Turn, format!("turn {i}")))?;
            task.items.extend(items);
            task.last_updated = Timestamp::now_utc();
            s.update(task).await.map_err(op_err(Phase::Turn))
        }
    })
    .await?;
    phases.push(summarize(Phase::Turn, wall, lat));
    drop(turns);
    if n > 0 {
        let last = format!("req-{}-1", n - 1);
        if store
            .load_by_request_id(&last)
            .await
            .map_err(op_err(Phase::Turn))?
            .is_none()
        {
            return Err(missing(Phase::Turn, last));
        }
    }

    // delete
    let (s, ids_) = (Arc::clone(&store), Arc::clone(&ids));
    let (wall, lat) = drive(Phase::Delete, n, c, progress, move |i| {
        let (s, ids) = (Arc::clone(&s), Arc::clone(&ids_));
        async move { s.delete(&ids[i]).await.map_err(op_err(Phase::Delete)) }
    })
    .await?;
    phases.push(summarize(Phase::Delete, wall, lat));

    Ok(RunResult {
        backend: backend.to_owned(),
        tasks: n,
        concurrency: c,
        phases,
        memory,
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
    use crate::InMemoryPersistenceManager;

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
            let shared: Arc<dyn TaskPersistenceManager> = Arc::new(store.clone());
            let r = run(shared, "memory", &Workload::new(200, c), None)
                .await
                .unwrap();
            assert_eq!(r.phases.len(), 5);
            assert!(r.phases.iter().all(|p| p.ops == 200));
            assert_eq!(store.stats(), crate::MemoryStats::default());
        }
    }
}
